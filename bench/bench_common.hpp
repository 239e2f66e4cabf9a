#pragma once
// Small helpers shared by the benchmarks: option parsing, child processes (ghl-sim, the daemon),
// CPU and memory accounting. Header-only; benchmarks are single files.

#include "ghl/http.hpp"

#include <arpa/inet.h>
#include <boost/asio/awaitable.hpp>
#include <boost/json/parse.hpp>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <filesystem>
#include <map>
#include <memory>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdexcept>
#include <string>
#include <string_view>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace bench {

/// `--name value` options; `--flag` alone stores "1".
class args {
public:
    args(int argc, char** argv) {
        for (int i = 1; i < argc; ++i) {
            std::string a = argv[i];
            if (a == "--help" || a == "-h") {
                help = true;
                continue;
            }
            if (a.rfind("--", 0) != 0)
                throw std::invalid_argument("unexpected argument: " + a);
            std::string key = a.substr(2);
            std::string value(1, '1');
            if (i + 1 < argc && std::string(argv[i + 1]).rfind("--", 0) != 0)
                value = std::string(argv[++i]);
            values_.insert_or_assign(std::move(key), std::move(value));
        }
    }
    long long num(const std::string& name, long long def) const {
        auto it = values_.find(name);
        return it == values_.end() ? def : std::stoll(it->second);
    }
    std::string str(const std::string& name, const std::string& def) const {
        auto it = values_.find(name);
        return it == values_.end() ? def : it->second;
    }
    bool flag(const std::string& name) const { return values_.count(name) != 0; }
    bool help = false;

private:
    std::map<std::string, std::string> values_;
};

/// A clock_gettime() clock, in seconds.
inline double clock_seconds(clockid_t clock) {
    timespec ts{};
    ::clock_gettime(clock, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}
inline double thread_cpu_seconds() {
    return clock_seconds(CLOCK_THREAD_CPUTIME_ID);
}
inline double process_cpu_seconds() {
    return clock_seconds(CLOCK_PROCESS_CPUTIME_ID);
}
inline double now_seconds() {
    return clock_seconds(CLOCK_MONOTONIC);
}

/// Peak resident set of this process, KiB.
inline long peak_rss_kib() {
    rusage ru{};
    ::getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

inline unsigned short free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    ::close(fd);
    return ntohs(a.sin_port);
}

/// A child process; killed with SIGTERM (then SIGKILL) when destroyed.
class child {
public:
    /// Starts `program args…` with stdout to a pipe (read by wait_for_line) and stderr to
    /// `err_file` ("" keeps the bench's stderr).
    child(const std::string& program, const std::vector<std::string>& args,
          const std::string& err_file = "") {
        int fds[2];
        if (::pipe(fds) != 0)
            throw std::runtime_error("pipe failed");
        pid_ = ::fork();
        if (pid_ < 0)
            throw std::runtime_error("fork failed");
        if (pid_ == 0) {
            ::dup2(fds[1], 1);
            if (!err_file.empty()) {
                const int e = ::open(err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
                if (e >= 0)
                    ::dup2(e, 2);
            }
            ::close(fds[0]);
            ::close(fds[1]);
            std::vector<char*> argv;
            argv.push_back(const_cast<char*>(program.c_str()));
            for (const auto& a : args)
                argv.push_back(const_cast<char*>(a.c_str()));
            argv.push_back(nullptr);
            ::execv(program.c_str(), argv.data());
            std::perror(program.c_str());
            ::_exit(127);
        }
        ::close(fds[1]);
        out_ = ::fdopen(fds[0], "r");
    }
    ~child() {
        stop();
        if (out_ != nullptr)
            std::fclose(out_);
    }
    child(const child&) = delete;
    child& operator=(const child&) = delete;

    /// Reads stdout lines until one starts with `prefix`; returns the rest of it.
    std::string wait_for_line(const std::string& prefix) {
        char buf[4096];
        while (std::fgets(buf, sizeof buf, out_) != nullptr) {
            std::string line(buf);
            while (!line.empty() && (line.back() == '\n' || line.back() == '\r'))
                line.pop_back();
            if (line.rfind(prefix, 0) == 0)
                return line.substr(prefix.size());
        }
        throw std::runtime_error("child exited before printing \"" + prefix + "\"");
    }

    /// Sends SIGTERM, waits up to 10 s, then SIGKILL. Returns the exit status (or -1).
    int stop() {
        if (pid_ <= 0)
            return -1;
        ::kill(pid_, SIGTERM);
        int status = 0;
        for (int i = 0; i < 1000; ++i) {
            if (::waitpid(pid_, &status, WNOHANG) == pid_) {
                pid_ = -1;
                return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
            }
            ::usleep(10000);
        }
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        pid_ = -1;
        return -1;
    }
    int pid() const { return pid_; }

    /// CPU seconds (user + system) the child has used so far, from /proc/PID/stat.
    double cpu_seconds() const {
        if (pid_ <= 0)
            return 0;
        FILE* f = std::fopen(("/proc/" + std::to_string(pid_) + "/stat").c_str(), "r");
        if (f == nullptr)
            return 0;
        char buf[2048];
        const std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
        std::fclose(f);
        buf[n] = 0;
        std::string s(buf);
        const auto p = s.rfind(')');
        if (p == std::string::npos)
            return 0;
        // Fields after the command: state(3) … utime(14) stime(15).
        std::vector<std::string> fields;
        std::size_t i = p + 2;
        while (i < s.size() && fields.size() < 13) {
            const auto j = s.find(' ', i);
            fields.push_back(s.substr(i, j - i));
            if (j == std::string::npos)
                break;
            i = j + 1;
        }
        if (fields.size() < 13)
            return 0;
        const double tick = static_cast<double>(::sysconf(_SC_CLK_TCK));
        return (std::stod(fields[11]) + std::stod(fields[12])) / tick;
    }

private:
    pid_t pid_ = -1;
    FILE* out_ = nullptr;
};

/// ghl-sim options for "no rate limit". --no-rate-limit alone stops the simulator's 429s but
/// it still advertises its burst (default 100 per 10 s) in X-RateLimit-Max and
/// -Interval-Milliseconds, and the client's rate limiter obeys those headers; so the advertised
/// limits are raised too.
inline std::vector<std::string> unthrottled_sim_args() {
    return {"--no-rate-limit", "--burst",      "1000000000", "--window-ms", "1000",
            "--daily",         "1000000000000"};
}

/// Starts build/tests/sim/ghl-sim with `extra` options on a free port; returns its base URL.
inline std::string start_sim(std::unique_ptr<child>& sim, const std::string& binary,
                             const std::vector<std::string>& extra) {
    std::vector<std::string> a{"--port", std::to_string(free_port())};
    a.insert(a.end(), extra.begin(), extra.end());
    sim = std::make_unique<child>(binary, a);
    return sim->wait_for_line("listening on ");
}

/// A fresh temporary directory, removed on destruction.
class temp_dir {
public:
    temp_dir() {
        std::string tmpl =
            (std::filesystem::temp_directory_path() / "speak4-bench-XXXXXX").string();
        if (::mkdtemp(tmpl.data()) == nullptr)
            throw std::runtime_error("mkdtemp failed");
        path_ = tmpl;
    }
    ~temp_dir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    const std::filesystem::path& path() const { return path_; }
    std::filesystem::path operator/(const std::string& s) const { return path_ / s; }

private:
    std::filesystem::path path_;
};

inline void write_file(const std::filesystem::path& p, const std::string& text,
                       mode_t mode = 0644) {
    FILE* f = std::fopen(p.c_str(), "w");
    if (f == nullptr)
        throw std::runtime_error("cannot write " + p.string());
    std::fwrite(text.data(), 1, text.size(), f);
    std::fclose(f);
    ::chmod(p.c_str(), mode);
}

/// The ids of every contact the simulator holds (GET /_sim/state, an admin route: not rate
/// limited), in its order.
inline boost::asio::awaitable<std::vector<std::string>>
sim_contact_ids(speak4::ghl::http_client& http) {
    speak4::ghl::http_request req;
    req.method = speak4::ghl::http_method::get;
    req.target = "/_sim/state";
    auto r = co_await http.send(req);
    if (!r || r->status != 200)
        throw std::runtime_error("GET /_sim/state failed");
    std::vector<std::string> ids;
    const auto v = boost::json::parse(r->body);
    for (const auto& c : v.at("contacts").as_array())
        ids.emplace_back(c.at("id").as_string());
    co_return ids;
}

/// GET /_sim/stats as JSON.
inline boost::asio::awaitable<boost::json::value> sim_stats(speak4::ghl::http_client& http) {
    speak4::ghl::http_request req;
    req.method = speak4::ghl::http_method::get;
    req.target = "/_sim/stats";
    auto r = co_await http.send(req);
    if (!r || r->status != 200)
        throw std::runtime_error("GET /_sim/stats failed");
    co_return boost::json::parse(r->body);
}

inline int connect_loopback(unsigned short port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    timeval tv{30, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

/// One keep-alive HTTP/1.1 connection to a loopback port (blocking; benchmarks only). exchange()
/// sends a request and reads one response; returns its status (0: the connection failed).
class http_connection {
public:
    explicit http_connection(unsigned short port)
        : port_(port) {}
    ~http_connection() {
        if (fd_ >= 0)
            ::close(fd_);
    }
    http_connection(const http_connection&) = delete;
    http_connection& operator=(const http_connection&) = delete;

    int exchange(const std::string& req) {
        if (fd_ < 0) {
            fd_ = connect_loopback(port_);
            buf_.clear();
            ++connects;
            if (fd_ < 0)
                return 0;
        }
        std::size_t off = 0;
        while (off < req.size()) {
            const ssize_t n = ::send(fd_, req.data() + off, req.size() - off, MSG_NOSIGNAL);
            if (n <= 0)
                return fail();
            off += static_cast<std::size_t>(n);
        }
        std::size_t header_end;
        while ((header_end = buf_.find("\r\n\r\n")) == std::string::npos)
            if (!fill())
                return fail();
        const int status = buf_.size() > 12 ? std::atoi(buf_.c_str() + 9) : 0;
        std::size_t length = 0;
        bool close = false;
        std::string head = buf_.substr(0, header_end);
        for (auto& ch : head)
            ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        if (auto p = head.find("content-length:"); p != std::string::npos)
            length = std::strtoul(head.c_str() + p + 15, nullptr, 10);
        if (head.find("connection: close") != std::string::npos)
            close = true;
        while (buf_.size() < header_end + 4 + length)
            if (!fill())
                return fail();
        last_body = buf_.substr(header_end + 4, length);
        buf_.erase(0, header_end + 4 + length);
        if (close) {
            ::close(fd_);
            fd_ = -1;
        }
        return status;
    }
    long long connects = 0;
    std::string last_body;

private:
    bool fill() {
        char b[16384];
        const ssize_t n = ::recv(fd_, b, sizeof b, 0);
        if (n <= 0)
            return false;
        buf_.append(b, static_cast<std::size_t>(n));
        return true;
    }
    int fail() {
        ::close(fd_);
        fd_ = -1;
        return 0;
    }
    unsigned short port_;
    int fd_ = -1;
    std::string buf_;
};

inline std::string post_event(const std::string& body, const std::string& token) {
    return "POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + token +
           "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\n\r\n" + body;
}

/// A `speak4-sync run` pointed at a simulator, as the benchmarks start it: its token files and
/// config in `dir` (a fresh database there), `extra_toml` appended to the config.
struct daemon_config {
    std::filesystem::path dir;
    std::filesystem::path db;
    unsigned short port = 0; ///< the local API
    std::string api_token = "bench-api-token-0123456789abcdef";
    std::filesystem::path config() const { return dir / "speak4-sync.toml"; }
    std::filesystem::path err_log() const { return dir / "daemon.err"; }
};

inline daemon_config write_daemon_config(const std::filesystem::path& dir,
                                         const std::string& ghl_url,
                                         const std::string& extra_toml) {
    daemon_config d;
    d.dir = dir;
    d.db = dir / "s.db";
    d.port = free_port();
    std::filesystem::create_directories(dir);
    write_file(dir / "ghl-token", "bench-ghl-token\n", 0600);
    write_file(dir / "api-token", d.api_token + "\n", 0600);
    std::filesystem::remove(d.db);
    write_file(d.config(),
               "[database]\npath = \"" + d.db.string() + "\"\n[ghl]\nbase_url = \"" + ghl_url +
                   "\"\nlocation_id = \"simLocation000000001\"\ntoken_file = \"" +
                   (dir / "ghl-token").string() + "\"\n[api]\nlisten = \"127.0.0.1:" +
                   std::to_string(d.port) + "\"\ntoken_file = \"" + (dir / "api-token").string() +
                   "\"\n" + extra_toml + "[logging]\nlevel = \"warn\"\nformat = \"json\"\n");
    return d;
}

/// Waits until the daemon's /healthz answers 200 (throws after 10 s).
inline void wait_ready(const daemon_config& d) {
    for (int i = 0; i < 500; ++i) {
        http_connection c(d.port);
        if (c.exchange("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n") == 200)
            return;
        ::usleep(20000);
    }
    throw std::runtime_error("the daemon did not become ready (see " + d.err_log().string() + ")");
}

/// The events of one contact in the mixed workload (10 events): created with tags, updated,
/// tagged, a task created, updated and completed, a note, updated again, untagged.
inline std::vector<std::string> contact_story(long long i) {
    const std::string n = std::to_string(i);
    const std::string c = R"("contact":{"speak4_id":"s4-)" + n + R"("})";
    const std::string id = R"("event_id":"e-)" + n + "-";
    return {
        R"({"type":"contact.created",)" + id + R"(1","contact":{"speak4_id":"s4-)" + n +
            R"(","firstName":"First)" + n + R"(","lastName":"Last","email":"p)" + n +
            R"(@example.com","phone":"+1555)" + std::to_string(1000000 + i % 9000000) +
            R"(","tags":["lead"]}})",
        R"({"type":"contact.updated",)" + id + R"(2","contact":{"speak4_id":"s4-)" + n +
            R"(","companyName":"Acme )" + n + R"("}})",
        R"({"type":"contact.tagged",)" + id + R"(3",)" + c + R"(,"tags":["hot"]})",
        R"({"type":"task.created",)" + id + R"(4",)" + c + R"(,"task":{"speak4_id":"t-)" + n +
            R"(","title":"Call back )" + n + R"(","dueDate":"2026-12-01T15:00:00Z"}})",
        R"({"type":"note.created",)" + id + R"(5",)" + c + R"(,"note":{"speak4_id":"n-)" + n +
            R"(","body":"Interested in the premium plan"}})",
        R"({"type":"contact.updated",)" + id + R"(6","contact":{"speak4_id":"s4-)" + n +
            R"(","lastName":"Lastname )" + n + R"("}})",
        R"({"type":"task.updated",)" + id + R"(7",)" + c + R"(,"task":{"speak4_id":"t-)" + n +
            R"(","title":"Call back )" + n + R"( before noon"}})",
        R"({"type":"contact.untagged",)" + id + R"(8",)" + c + R"(,"tags":["lead"]})",
        R"({"type":"task.completed",)" + id + R"(9",)" + c + R"(,"task":{"speak4_id":"t-)" + n +
            R"(","completed":true}})",
        R"({"type":"contact.updated",)" + id + R"(10","contact":{"speak4_id":"s4-)" + n +
            R"(","city":"Springfield"}})",
    };
}

} // namespace bench
