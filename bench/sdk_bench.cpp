// sdk_bench: issue #7 (b). CPU time and peak RSS of the REAL daemon pushing N changes, side by
// side in the same run with a Node script making the same calls through GHL's official SDK
// (@gohighlevel/api-client, bench/sdk/push_sdk.mjs), each against its own freshly started ghl-sim
// process (unthrottled, seeded with the same N/4 contacts, so both see the same ids).
//
// The workload (N = --changes, a multiple of 4; q = N/4), interleaved per i, each event on its
// own entity so that nothing can coalesce (one API call per event):
//   contact.created  s4-i (names, email, phone, a tag)              -> POST /contacts/
//   contact.updated  seeded contact i by ghl_id (lastName, city)    -> PUT /contacts/:id
//   task.created     t-i on the contact s4-i created above          -> POST /contacts/:id/tasks
//   note.created     n-i on seeded contact i by ghl_id              -> POST /contacts/:id/notes
//
// Daemon side: `speak4-sync emit` puts the events in a fresh database (its own process, measured
// separately), then `speak4-sync run` (config: the sim, a real database file, synchronous=FULL,
// audit always on, every default but sync.fetch_children = "on_demand") runs until the outbox
// is drained, and is stopped with SIGTERM. SDK side: `node push_sdk.mjs` with the same events
// file and the daemon's concurrency (ghl.max_concurrency, default 4). Both processes are children
// of this runner and measured the same way: CPU (user+sys) and peak RSS (ru_maxrss) from wait4().
// "Start-up" is subtracted for a second CPU figure: for the daemon, its CPU (summed over its
// threads' /proc/PID/task/*/schedstat) when it sends READY=1 on $NOTIFY_SOCKET (config, database,
// migrations, listeners: the end of `start()`); for node, process.cpuUsage() once the SDK is
// loaded and constructed (node's own boot + the SDK's import), as the script reports it.
//
// Verified per run: the outbox ends with N done and nothing pending, in flight or dead; audit_log
// holds one row per request the daemon's sim saw; each sim saw q requests on each of the four
// routes; the daemon's and the SDK's requests on those routes carry the same bodies (as
// multisets of canonical JSON). Extra daemon requests (its initial pull) are listed.
//
//   sdk_bench [--changes 1000] [--runs 3] [--concurrency 4] [--node node] [--keep DIR]
#include "bench_common.hpp"

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <algorithm>
#include <boost/json.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <sys/un.h>
#include <thread>

namespace json = boost::json;

namespace {

// --- processes measured with wait4 ----------------------------------------------------------

struct usage {
    int exit_code = -1; // -1: killed by a signal or never reaped
    double cpu_s = 0;   // user + system
    double user_s = 0;
    double sys_s = 0;
    long maxrss_kib = 0; // ru_maxrss
    double wall_s = 0;
};

/// A child process with stdout and stderr to files, reaped with wait4() for its rusage.
class measured_process {
public:
    measured_process(const std::vector<std::string>& argv, const std::filesystem::path& out,
                     const std::filesystem::path& err,
                     const std::vector<std::string>& extra_env = {}) {
        t0_ = bench::now_seconds();
        pid_ = ::fork();
        if (pid_ < 0)
            throw std::runtime_error("fork failed");
        if (pid_ == 0) {
            const int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
            const int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (o >= 0)
                ::dup2(o, 1);
            if (e >= 0)
                ::dup2(e, 2);
            for (const auto& kv : extra_env)
                ::putenv(const_cast<char*>(kv.c_str()));
            std::vector<char*> a;
            for (const auto& s : argv)
                a.push_back(const_cast<char*>(s.c_str()));
            a.push_back(nullptr);
            ::execvp(a[0], a.data());
            std::perror(a[0]);
            ::_exit(127);
        }
    }
    ~measured_process() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
    }
    measured_process(const measured_process&) = delete;
    measured_process& operator=(const measured_process&) = delete;

    pid_t pid() const { return pid_; }
    bool running() {
        if (pid_ <= 0)
            return false;
        return try_reap();
    }
    /// Sends `sig` (0: none), then waits up to `limit_s` for the exit (SIGKILL after that).
    usage finish(int sig, double limit_s) {
        if (pid_ > 0 && sig != 0)
            ::kill(pid_, sig);
        const double deadline = bench::now_seconds() + limit_s;
        while (pid_ > 0 && try_reap()) {
            if (bench::now_seconds() > deadline) {
                ::kill(pid_, SIGKILL);
                reap(0);
                break;
            }
            ::usleep(2000);
        }
        return u_;
    }

private:
    /// true while it is still running.
    bool try_reap() { return !reap(WNOHANG); }
    bool reap(int flags) {
        int status = 0;
        rusage ru{};
        const pid_t r = ::wait4(pid_, &status, flags, &ru);
        if (r != pid_)
            return false;
        u_.wall_s = bench::now_seconds() - t0_;
        u_.user_s = static_cast<double>(ru.ru_utime.tv_sec) +
                    static_cast<double>(ru.ru_utime.tv_usec) * 1e-6;
        u_.sys_s = static_cast<double>(ru.ru_stime.tv_sec) +
                   static_cast<double>(ru.ru_stime.tv_usec) * 1e-6;
        u_.cpu_s = u_.user_s + u_.sys_s;
        u_.maxrss_kib = ru.ru_maxrss;
        u_.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        pid_ = -1;
        return true;
    }
    pid_t pid_ = -1;
    double t0_ = 0;
    usage u_;
};

/// CPU time of every live thread of `pid` (nanosecond run time from /proc/PID/task/*/schedstat).
double threads_cpu_seconds(pid_t pid) {
    double sum = 0;
    std::error_code ec;
    for (const auto& t :
         std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
        std::ifstream f(t.path() / "schedstat");
        unsigned long long ns = 0;
        if (f >> ns)
            sum += static_cast<double>(ns) * 1e-9;
    }
    return sum;
}

/// A "VmHWM:"-style line of /proc/PID/status, KiB (0 when missing).
long proc_status_kib(pid_t pid, const std::string& key) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(f, line))
        if (line.rfind(key, 0) == 0)
            return std::strtol(line.c_str() + key.size(), nullptr, 10);
    return 0;
}

std::string read_file(const std::filesystem::path& p) {
    std::ifstream f(p);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
}

// --- plain HTTP/1.1 to loopback (the sim's admin routes, the daemon's /healthz) -------------

/// One request with "Connection: close"; returns {status, body}, status 0 when it failed.
std::pair<int, std::string> http_call(unsigned short port, const std::string& method,
                                      const std::string& target) {
    const int fd = bench::connect_loopback(port);
    if (fd < 0)
        return {0, ""};
    const std::string req = method + " " + target +
                            " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n"
                            "Connection: close\r\n\r\n";
    if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
        ::close(fd);
        return {0, ""};
    }
    std::string resp;
    char buf[65536];
    for (;;) {
        const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0)
            break;
        resp.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    const auto head_end = resp.find("\r\n\r\n");
    if (resp.size() < 12 || head_end == std::string::npos)
        return {0, ""};
    std::string body = resp.substr(head_end + 4);
    std::string head = resp.substr(0, head_end);
    for (auto& ch : head)
        ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (head.find("transfer-encoding: chunked") != std::string::npos) {
        std::string plain;
        std::size_t p = 0;
        for (;;) {
            const auto eol = body.find("\r\n", p);
            if (eol == std::string::npos)
                break;
            const std::size_t len = std::strtoul(body.c_str() + p, nullptr, 16);
            if (len == 0)
                break;
            plain.append(body, eol + 2, len);
            p = eol + 2 + len + 2;
        }
        body = plain;
    }
    return {std::atoi(resp.c_str() + 9), body};
}

unsigned short port_of(const std::string& url) {
    return static_cast<unsigned short>(std::stoi(url.substr(url.rfind(':') + 1)));
}

json::value sim_get(unsigned short port, const std::string& target) {
    auto [status, body] = http_call(port, "GET", target);
    if (status != 200)
        throw std::runtime_error("GET " + target + " on the simulator: status " +
                                 std::to_string(status));
    return json::parse(body);
}

// --- canonical JSON (keys sorted) for comparing request bodies ------------------------------

void canonical(const json::value& v, std::string& out) {
    if (v.is_object()) {
        std::vector<std::pair<std::string, const json::value*>> kv;
        for (const auto& e : v.as_object())
            kv.emplace_back(std::string(e.key()), &e.value());
        std::sort(kv.begin(), kv.end(),
                  [](const auto& x, const auto& y) { return x.first < y.first; });
        out += '{';
        for (std::size_t i = 0; i < kv.size(); ++i) {
            out += (i ? "," : "") + json::serialize(json::value(kv[i].first)) + ":";
            canonical(*kv[i].second, out);
        }
        out += '}';
    } else if (v.is_array()) {
        out += '[';
        bool first = true;
        for (const auto& e : v.as_array()) {
            out += first ? "" : ",";
            first = false;
            canonical(e, out);
        }
        out += ']';
    } else {
        out += json::serialize(v);
    }
}

// --- the workload ---------------------------------------------------------------------------

const std::vector<std::string> push_routes = {"POST /contacts/", "PUT /contacts/:contactId",
                                              "POST /contacts/:contactId/tasks",
                                              "POST /contacts/:contactId/notes"};

std::string events_jsonl(long long q, const std::vector<std::string>& seeded) {
    std::string out;
    for (long long i = 0; i < q; ++i) {
        const std::string n = std::to_string(i);
        const std::string& id = seeded[static_cast<std::size_t>(i)];
        out += R"({"type":"contact.created","event_id":"c-)" + n +
               R"(","contact":{"speak4_id":"s4-)" + n + R"(","firstName":"First)" + n +
               R"(","lastName":"Bench","email":"p)" + n + R"(@example.com","phone":"+1555)" +
               std::to_string(1000000 + i) + R"(","tags":["lead"]}})" + "\n";
        out += R"({"type":"contact.updated","event_id":"u-)" + n + R"(","contact":{"ghl_id":")" +
               id + R"(","lastName":"Updated )" + n + R"(","city":"Springfield"}})" + "\n";
        out += R"({"type":"task.created","event_id":"t-)" + n + R"(","contact":{"speak4_id":"s4-)" +
               n + R"("},"task":{"speak4_id":"t-)" + n + R"(","title":"Call back )" + n +
               R"(","dueDate":"2026-12-01T15:00:00Z"}})" + "\n";
        out += R"({"type":"note.created","event_id":"n-)" + n + R"(","contact":{"ghl_id":")" + id +
               R"("},"note":{"speak4_id":"n-)" + n +
               R"(","body":"Interested in the premium plan )" + n + R"("}})" + "\n";
    }
    return out;
}

// --- one side's outcome ---------------------------------------------------------------------

struct side_result {
    usage u;
    double startup_cpu_s = 0;   // CPU at READY=1 (daemon) / once the SDK is loaded (node)
    long startup_rss_kib = 0;   // VmHWM (daemon) / rss (node) at that point
    double work_wall_s = 0;     // from start-up done until drained / last call answered
    long long sim_requests = 0; // every API request the side's sim counted
    std::map<std::string, long long> by_route;
    std::vector<std::string> bodies; // "route body" of the push routes, canonical, sorted
    std::vector<std::string> problems;
    usage emit; // daemon only: `speak4-sync emit`
    std::string note;
};

void collect_sim(unsigned short port, side_result& r) {
    const auto stats = sim_get(port, "/_sim/stats");
    r.sim_requests = stats.at("requests").to_number<long long>();
    for (const auto& e : stats.at("by_route").as_object())
        r.by_route[std::string(e.key())] = e.value().to_number<long long>();
    const auto reqs = sim_get(port, "/_sim/requests");
    for (const auto& q : reqs.at("requests").as_array()) {
        const std::string route(q.at("route").as_string());
        if (std::find(push_routes.begin(), push_routes.end(), route) == push_routes.end())
            continue;
        if (q.at("status").to_number<int>() / 100 != 2)
            r.problems.push_back(route + " answered " +
                                 std::to_string(q.at("status").to_number<int>()));
        std::string s = route + " ";
        canonical(json::parse(q.at("body").as_string()), s);
        r.bodies.push_back(std::move(s));
    }
    std::sort(r.bodies.begin(), r.bodies.end());
}

void check_routes(side_result& r, long long q, bool extra_allowed) {
    long long push = 0;
    for (const auto& route : push_routes) {
        const long long n = r.by_route.count(route) ? r.by_route[route] : 0;
        push += n;
        if (n != q)
            r.problems.push_back(route + ": " + std::to_string(n) + " requests, expected " +
                                 std::to_string(q));
    }
    if (!extra_allowed && r.sim_requests != push)
        r.problems.push_back("the sim saw " + std::to_string(r.sim_requests - push) +
                             " requests besides the pushes");
}

struct config {
    std::string sim_bin, daemon_bin, node, sdk_dir;
    long long changes = 1000;
    int concurrency = 4;
    double limit_s = 300;
};

std::vector<std::string> sim_args(long long seeded) {
    auto a = bench::unthrottled_sim_args();
    a.insert(a.end(), {"--seed-contacts", std::to_string(seeded)});
    return a;
}

std::vector<std::string> seeded_ids(unsigned short port) {
    std::vector<std::string> ids;
    const auto state = sim_get(port, "/_sim/state"); // a temporary would die before the loop
    for (const auto& c : state.at("contacts").as_array())
        ids.emplace_back(c.at("id").as_string());
    return ids;
}

side_result run_daemon(const config& cfg, const std::filesystem::path& dir,
                       std::vector<std::string>& ids_out) {
    side_result r;
    const long long q = cfg.changes / 4;
    std::unique_ptr<bench::child> sim;
    const std::string url = bench::start_sim(sim, cfg.sim_bin, sim_args(q));
    const unsigned short sim_port = port_of(url);
    ids_out = seeded_ids(sim_port);
    bench::write_file(dir / "events.jsonl", events_jsonl(q, ids_out));

    std::filesystem::remove(dir / "s.db");
    std::filesystem::remove(dir / "s.db-wal");
    std::filesystem::remove(dir / "s.db-shm");
    const std::string api_token = "sdk-bench-api-token-0123456789abcdef";
    bench::write_file(dir / "ghl-token", "sim-private-token\n", 0600);
    bench::write_file(dir / "api-token", api_token + "\n", 0600);
    const unsigned short api_port = bench::free_port();
    // Every default (coalesce_ms 250, retry, poll_interval_seconds 60, conflict, audit) but:
    // the sim's address, a rate budget as unthrottled as the sim, and on-demand children (with
    // "all", the initial import of the seeded contacts would add 3 child lists per contact, work
    // that has nothing to do with pushing and that the SDK script does not do).
    bench::write_file(
        dir / "speak4-sync.toml",
        "[database]\npath = \"" + (dir / "s.db").string() + "\"\n[ghl]\nbase_url = \"" + url +
            "\"\nlocation_id = \"simLocation000000001\"\ntoken_file = \"" +
            (dir / "ghl-token").string() +
            "\"\nmax_concurrency = " + std::to_string(cfg.concurrency) +
            "\n[rate_limit]\nburst = 1000000000\nwindow_seconds = 1\n"
            "daily = 1000000000000\n[sync]\nfetch_children = \"on_demand\"\n"
            "[api]\nlisten = \"127.0.0.1:" +
            std::to_string(api_port) + "\"\ntoken_file = \"" + (dir / "api-token").string() +
            "\"\n[logging]\nlevel = \"warn\"\nformat = \"json\"\n");
    const std::string conf = (dir / "speak4-sync.toml").string();

    {
        measured_process emit(
            {cfg.daemon_bin, "--config", conf, "emit", (dir / "events.jsonl").string()},
            dir / "emit.out", dir / "emit.err");
        r.emit = emit.finish(0, cfg.limit_s);
        if (r.emit.exit_code != 0)
            throw std::runtime_error("emit failed: " + read_file(dir / "emit.err"));
    }

    // READY=1 arrives on a datagram socket of ours, as systemd's would.
    const auto sock_path = dir / "notify.sock";
    std::filesystem::remove(sock_path);
    const int ns = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::strncpy(sa.sun_path, sock_path.c_str(), sizeof sa.sun_path - 1);
    if (::bind(ns, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0)
        throw std::runtime_error("cannot bind " + sock_path.string());
    timeval tv{0, 2000};
    ::setsockopt(ns, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);

    measured_process d({cfg.daemon_bin, "--config", conf, "run"}, dir / "daemon.out",
                       dir / "daemon.err", {"NOTIFY_SOCKET=" + sock_path.string()});
    bool ready = false;
    const double t_start = bench::now_seconds();
    while (!ready) {
        char buf[512];
        const ssize_t n = ::recv(ns, buf, sizeof buf - 1, 0);
        if (n > 0) {
            buf[n] = 0;
            if (std::strstr(buf, "READY=1") != nullptr) {
                r.startup_cpu_s = threads_cpu_seconds(d.pid());
                r.startup_rss_kib = proc_status_kib(d.pid(), "VmHWM:");
                ready = true;
            }
        } else if (!d.running() || bench::now_seconds() - t_start > 30) {
            ::close(ns);
            throw std::runtime_error("the daemon did not get ready: " +
                                     read_file(dir / "daemon.err"));
        }
    }
    ::close(ns);
    const double t_ready = bench::now_seconds();

    // Drained: nothing pending or in flight, every item done or dead. A read-only connection
    // polled every 20 ms (WAL: it does not block the daemon's writes). Opened read-write only
    // because a read-only connection cannot create the WAL index if it is missing.
    {
        SQLite::Database db((dir / "s.db").string(), SQLite::OPEN_READWRITE);
        db.setBusyTimeout(1000);
        for (;;) {
            long long open = 0, finished = 0;
            SQLite::Statement st(db, "SELECT state, COUNT(*) FROM outbox GROUP BY state");
            while (st.executeStep()) {
                const std::string s = st.getColumn(0).getString();
                (s == "done" || s == "dead" ? finished : open) += st.getColumn(1).getInt64();
            }
            if (open == 0 && finished >= cfg.changes)
                break;
            if (!d.running())
                throw std::runtime_error("the daemon exited before draining: " +
                                         read_file(dir / "daemon.err"));
            if (bench::now_seconds() - t_ready > cfg.limit_s)
                throw std::runtime_error("the outbox did not drain within the limit");
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
    }
    r.work_wall_s = bench::now_seconds() - t_ready;
    r.u = d.finish(SIGTERM, 30);
    if (r.u.exit_code != 0)
        r.problems.push_back("daemon exit code " + std::to_string(r.u.exit_code));
    const std::string err = read_file(dir / "daemon.err");
    if (!err.empty())
        r.note = "daemon stderr: " + err.substr(0, 300);

    collect_sim(sim_port, r);
    check_routes(r, q, true);
    SQLite::Database db((dir / "s.db").string(), SQLite::OPEN_READONLY);
    SQLite::Statement st(db, "SELECT state, COUNT(*) FROM outbox GROUP BY state");
    std::map<std::string, long long> states;
    while (st.executeStep())
        states[st.getColumn(0).getString()] = st.getColumn(1).getInt64();
    if (states["done"] != cfg.changes || states.size() != 1)
        r.problems.push_back("outbox: done=" + std::to_string(states["done"]) + " (expected " +
                             std::to_string(cfg.changes) + "), " + std::to_string(states.size()) +
                             " states");
    const long long audit = db.execAndGet("SELECT COUNT(*) FROM audit_log").getInt64();
    if (audit != r.sim_requests)
        r.problems.push_back("audit_log has " + std::to_string(audit) + " rows, the sim saw " +
                             std::to_string(r.sim_requests) + " requests");
    return r;
}

side_result run_sdk(const config& cfg, const std::filesystem::path& dir,
                    const std::vector<std::string>& daemon_ids) {
    side_result r;
    const long long q = cfg.changes / 4;
    std::unique_ptr<bench::child> sim;
    const std::string url = bench::start_sim(sim, cfg.sim_bin, sim_args(q));
    const unsigned short sim_port = port_of(url);
    const auto ids = seeded_ids(sim_port);
    if (!daemon_ids.empty() && ids != daemon_ids)
        throw std::runtime_error("the two simulators seeded different contact ids");
    bench::write_file(dir / "events.jsonl", events_jsonl(q, ids));

    measured_process n({cfg.node, cfg.sdk_dir + "/push_sdk.mjs", "--base-url", url, "--token",
                        "sim-private-token", "--location", "simLocation000000001", "--events",
                        (dir / "events.jsonl").string(), "--concurrency",
                        std::to_string(cfg.concurrency)},
                       dir / "node.out", dir / "node.err");
    r.u = n.finish(0, cfg.limit_s);
    const std::string out = read_file(dir / "node.out");
    const auto p = out.find("SDK_RESULT ");
    if (p == std::string::npos)
        throw std::runtime_error("push_sdk.mjs printed no result (exit " +
                                 std::to_string(r.u.exit_code) +
                                 "): " + read_file(dir / "node.err"));
    const auto v = json::parse(out.substr(p + 11, out.find('\n', p) - p - 11));
    r.startup_cpu_s = v.at("cpu_us_sdk_ready").to_number<double>() * 1e-6;
    r.startup_rss_kib = v.at("rss_kib_sdk_ready").to_number<long>();
    r.work_wall_s = v.at("wall_s_calls").to_number<double>();
    if (r.u.exit_code != 0 || v.at("failures").to_number<long long>() != 0)
        r.problems.push_back("node exit " + std::to_string(r.u.exit_code) + ", failures " +
                             std::to_string(v.at("failures").to_number<long long>()) + ": " +
                             json::serialize(v.at("first_error")));
    r.note = "node boot (before the script's first line) " +
             std::to_string(v.at("cpu_us_at_script_start").to_number<long long>() / 1000) +
             " ms CPU";
    collect_sim(sim_port, r);
    check_routes(r, q, false);
    return r;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::string loadavg() {
    std::string s = read_file("/proc/loadavg");
    while (!s.empty() && s.back() == '\n')
        s.pop_back();
    return s;
}

void print_side(const char* name, const side_result& r) {
    std::printf("  %-6s wall %6.2f s (work %6.2f s)  CPU %7.3f s (user %.3f sys %.3f), "
                "after start-up %7.3f s (start-up %.3f s)  peak RSS %6.1f MiB (%.1f at "
                "start-up)  requests %lld\n",
                name, r.u.wall_s, r.work_wall_s, r.u.cpu_s, r.u.user_s, r.u.sys_s,
                r.u.cpu_s - r.startup_cpu_s, r.startup_cpu_s,
                static_cast<double>(r.u.maxrss_kib) / 1024.0,
                static_cast<double>(r.startup_rss_kib) / 1024.0, r.sim_requests);
}

} // namespace

int main(int argc, char** argv) try {
    bench::args a(argc, argv);
    if (a.help) {
        std::cout
            << "sdk_bench [--changes N=1000 (multiple of 4)] [--runs R=3] [--concurrency C=4]\n"
               "          [--node PATH=node] [--sdk-dir DIR] [--binary PATH] [--sim PATH]\n"
               "          [--keep DIR (keep databases, events and logs there)] [--limit-s 300]\n"
               "The SDK script needs its dependencies: (cd bench/sdk && npm ci)\n";
        return 0;
    }
    config cfg;
    cfg.sim_bin = a.str("sim", SPEAK4_GHL_SIM_BINARY);
    cfg.daemon_bin = a.str("binary", SPEAK4_BINARY);
    cfg.node = a.str("node", "node");
    cfg.sdk_dir = a.str("sdk-dir", SPEAK4_SDK_DIR);
    cfg.changes = a.num("changes", 1000);
    cfg.concurrency = static_cast<int>(a.num("concurrency", 4));
    cfg.limit_s = static_cast<double>(a.num("limit-s", 300));
    const long long runs = std::max(1LL, a.num("runs", 3));
    if (cfg.changes <= 0 || cfg.changes % 4 != 0)
        throw std::invalid_argument("--changes must be a positive multiple of 4");
    if (!std::filesystem::exists(std::filesystem::path(cfg.sdk_dir) / "node_modules" /
                                 "@gohighlevel" / "api-client"))
        throw std::runtime_error("the SDK is not installed: (cd " + cfg.sdk_dir + " && npm ci)");

    bench::temp_dir tmp;
    const std::filesystem::path root =
        a.str("keep", "").empty() ? tmp.path() : std::filesystem::path(a.str("keep", ""));

    std::printf("changes=%lld (%lld contact creates, updates, task creates, note creates) "
                "concurrency=%d runs=%lld\n",
                cfg.changes, cfg.changes / 4, cfg.concurrency, runs);
    std::vector<double> d_cpu, d_cpu_work, d_rss, s_cpu, s_cpu_work, s_rss, d_emit;
    bool ok = true;
    for (long long run = 1; run <= runs; ++run) {
        const auto ddir = root / ("run" + std::to_string(run)) / "daemon";
        const auto sdir = root / ("run" + std::to_string(run)) / "sdk";
        std::filesystem::create_directories(ddir);
        std::filesystem::create_directories(sdir);
        // Alternate which side goes first, so neither always gets the warmer page cache.
        side_result d, s;
        std::vector<std::string> ids;
        const std::string load_before = loadavg();
        if (run % 2 == 1) {
            d = run_daemon(cfg, ddir, ids);
            s = run_sdk(cfg, sdir, ids);
        } else {
            s = run_sdk(cfg, sdir, {});
            d = run_daemon(cfg, ddir, ids);
        }
        if (d.bodies != s.bodies)
            d.problems.push_back("the daemon's and the SDK's request bodies differ");
        std::printf("run %lld (%s first; loadavg before: %s, after: %s)\n", run,
                    run % 2 == 1 ? "daemon" : "sdk", load_before.c_str(), loadavg().c_str());
        print_side("daemon", d);
        print_side("sdk", s);
        std::printf("  emit   (the daemon's intake, separate process) CPU %.3f s, peak RSS %.1f "
                    "MiB\n",
                    d.emit.cpu_s, static_cast<double>(d.emit.maxrss_kib) / 1024.0);
        std::printf("  daemon requests by route:");
        for (const auto& [k, v] : d.by_route)
            std::printf(" [%s %lld]", k.c_str(), v);
        std::printf("\n  sdk requests by route:   ");
        for (const auto& [k, v] : s.by_route)
            std::printf(" [%s %lld]", k.c_str(), v);
        std::printf("\n  bodies: %s (%zu push requests each)\n",
                    d.bodies == s.bodies ? "identical multisets" : "DIFFER", d.bodies.size());
        for (const auto* side : {&d, &s}) {
            if (!side->note.empty())
                std::printf("  note: %s\n", side->note.c_str());
            for (const auto& p : side->problems) {
                std::printf("  PROBLEM (%s): %s\n", side == &d ? "daemon" : "sdk", p.c_str());
                ok = false;
            }
        }
        d_cpu.push_back(d.u.cpu_s);
        d_cpu_work.push_back(d.u.cpu_s - d.startup_cpu_s);
        d_rss.push_back(static_cast<double>(d.u.maxrss_kib) / 1024.0);
        d_emit.push_back(d.emit.cpu_s);
        s_cpu.push_back(s.u.cpu_s);
        s_cpu_work.push_back(s.u.cpu_s - s.startup_cpu_s);
        s_rss.push_back(static_cast<double>(s.u.maxrss_kib) / 1024.0);
    }
    const double dc = median(d_cpu), dw = median(d_cpu_work), dr = median(d_rss);
    const double sc = median(s_cpu), sw = median(s_cpu_work), sr = median(s_rss);
    const double de = median(d_emit);
    std::printf("\nmedian of %lld runs          daemon      sdk   sdk/daemon\n", runs);
    std::printf("CPU, whole process (s)   %8.3f %8.3f %8.1fx\n", dc, sc, sc / dc);
    std::printf("CPU, after start-up (s)  %8.3f %8.3f %8.1fx\n", dw, sw, sw / dw);
    std::printf("CPU, daemon + emit (s)   %8.3f %8.3f %8.1fx\n", dc + de, sc, sc / (dc + de));
    std::printf("peak RSS (MiB)           %8.1f %8.1f %8.1fx\n", dr, sr, sr / dr);
    std::printf("RESULT sdk_bench: SDK/daemon CPU %.1fx (whole process: daemon %.3f s, SDK %.3f "
                "s), %.1fx after start-up (%.3f s vs %.3f s), %.1fx with emit; peak RSS %.1fx "
                "(%.1f MiB vs %.1f MiB) (median of %lld, N=%lld, C=%d%s)\n",
                sc / dc, dc, sc, sw / dw, dw, sw, sc / (dc + de), sr / dr, dr, sr, runs,
                cfg.changes, cfg.concurrency, ok ? "" : ", PROBLEMS: see above");
    return ok ? 0 : 1;
} catch (const std::exception& e) {
    std::fprintf(stderr, "sdk_bench: %s\n", e.what());
    return 1;
}
