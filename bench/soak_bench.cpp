// soak_bench: the real daemon for a long run (default 30 minutes) under a steady mixed load,
// sampled for growth. A ghl-sim process (unthrottled) and `speak4-sync run` pointed at it; the
// bench POSTs the mixed Speak4 workload (bench::contact_story, 10 events per contact, contacts
// interleaved) at --rate events/s over one keep-alive connection, and edits contacts "in GHL"
// at --remote-rate per second (the simulator's admin PATCH) so the pull path runs too (poll
// every 10 s). Every --sample-seconds it records the daemon's RSS and peak RSS
// (/proc/PID/status), its open file descriptors (/proc/PID/fd), the database size (main file +
// WAL), and the rows it holds. At the end: growth of each over the second half of the run,
// where a leak would show, and database bytes per stored row (growth beyond the data would
// show as that figure rising).
//
//   soak_bench [--minutes 30] [--rate 20] [--remote-rate 1] [--sample-seconds 10]
//              [--seed-contacts 200] [--binary PATH] [--sim PATH] [--keep DIR] [--csv FILE]
#include "bench_common.hpp"

#include <SQLiteCpp/Database.h>
#include <algorithm>
#include <boost/json/serialize.hpp>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <random>
#include <thread>

namespace {

struct sample {
    double t = 0;
    long rss_kib = 0;
    long hwm_kib = 0;
    long fds = 0;
    long long db_bytes = 0;
    long long sent = 0;
    long long rows = 0; // inbox + outbox + audit_log + contacts + tasks + notes + changes
    long long backlog = 0;
};

long status_kib(int pid, const char* key) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    const std::string k = std::string(key) + ":";
    while (std::getline(f, line))
        if (line.rfind(k, 0) == 0)
            return std::strtol(line.c_str() + k.size(), nullptr, 10);
    return -1;
}

long open_fds(int pid) {
    long n = 0;
    std::error_code ec;
    for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec);
         !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
        ++n;
    return n;
}

long long size_of(const std::filesystem::path& p) {
    std::error_code ec;
    const auto n = std::filesystem::file_size(p, ec);
    return ec ? 0 : static_cast<long long>(n);
}

unsigned short port_of(const std::string& url) {
    return static_cast<unsigned short>(std::stoi(url.substr(url.rfind(':') + 1)));
}

std::string request(const std::string& method, const std::string& target, const std::string& body) {
    return method + " " + target +
           " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: " +
           std::to_string(body.size()) + "\r\n\r\n" + body;
}

} // namespace

int main(int argc, char** argv) try {
    bench::args a(argc, argv);
    if (a.help) {
        std::cout << "soak_bench [--minutes 30] [--rate 20 (events/s)] [--remote-rate 1 (GHL "
                     "edits/s)]\n"
                     "           [--sample-seconds 10] [--seed-contacts 200] [--binary PATH] "
                     "[--sim PATH]\n"
                     "           [--keep DIR (keep the database and logs)] [--csv FILE (the "
                     "samples)]\n";
        return 0;
    }
    const double minutes = static_cast<double>(a.num("minutes", 30));
    const long long rate = a.num("rate", 20);
    const long long remote_rate = a.num("remote-rate", 1);
    const long long sample_every = a.num("sample-seconds", 10);
    const long long seeds = a.num("seed-contacts", 200);

    std::unique_ptr<bench::child> sim;
    std::vector<std::string> sim_args = bench::unthrottled_sim_args();
    sim_args.insert(sim_args.end(), {"--token", "bench-ghl-token"});
    const std::string url = bench::start_sim(sim, a.str("sim", SPEAK4_GHL_SIM_BINARY), sim_args);
    bench::http_connection admin(port_of(url));

    // Contacts that exist in GHL before the daemon starts: the initial import, then remote edits.
    std::vector<std::string> remote_ids;
    for (long long i = 0; i < seeds; ++i) {
        const std::string body = R"({"firstName":"Remote)" + std::to_string(i) +
                                 R"(","email":"remote)" + std::to_string(i) +
                                 R"(@example.com","tags":["seeded"]})";
        if (admin.exchange(request("POST", "/_sim/contacts", body)) != 201)
            throw std::runtime_error("seeding the simulator failed: " + admin.last_body);
        remote_ids.emplace_back(boost::json::parse(admin.last_body).at("id").as_string().c_str());
    }

    bench::temp_dir tmp;
    const bench::daemon_config cfg = bench::write_daemon_config(
        a.str("keep", "").empty() ? tmp.path() : std::filesystem::path(a.str("keep", "")), url,
        "[rate_limit]\nburst = 1000000\nwindow_seconds = 1\ndaily = 1000000000\n"
        "[sync]\npoll_interval_seconds = 10\n");
    bench::child daemon(a.str("binary", SPEAK4_BINARY), {"--config", cfg.config().string(), "run"},
                        cfg.err_log().string());
    bench::wait_ready(cfg);
    bench::http_connection api(cfg.port);
    const std::filesystem::path& dir = cfg.dir;
    const std::filesystem::path& db_path = cfg.db;
    const std::string& api_token = cfg.api_token;

    SQLite::Database db(db_path.string(), SQLite::OPEN_READONLY);
    db.setBusyTimeout(5000);
    auto count = [&](const char* sql) { return db.execAndGet(sql).getInt64(); };

    std::vector<sample> samples;
    std::FILE* csv = a.str("csv", "").empty() ? nullptr : std::fopen(a.str("csv", "").c_str(), "w");
    if (csv)
        std::fprintf(csv, "t_s,rss_kib,hwm_kib,fds,db_bytes,events_sent,rows,backlog\n");
    std::printf("%8s %9s %9s %5s %10s %9s %9s %8s\n", "t_s", "rss_KiB", "peak_KiB", "fds",
                "db_bytes", "events", "rows", "backlog");
    auto take = [&](double t, long long sent) {
        sample s;
        s.t = t;
        s.rss_kib = status_kib(daemon.pid(), "VmRSS");
        s.hwm_kib = status_kib(daemon.pid(), "VmHWM");
        s.fds = open_fds(daemon.pid());
        s.db_bytes = size_of(db_path) + size_of(dir / "s.db-wal");
        s.sent = sent;
        s.rows = count("SELECT (SELECT COUNT(*) FROM inbox) + (SELECT COUNT(*) FROM outbox) + "
                       "(SELECT COUNT(*) FROM audit_log) + (SELECT COUNT(*) FROM contacts) + "
                       "(SELECT COUNT(*) FROM tasks) + (SELECT COUNT(*) FROM notes) + "
                       "(SELECT COUNT(*) FROM changes)");
        s.backlog = count("SELECT COUNT(*) FROM outbox WHERE state IN ('pending', 'inflight')");
        samples.push_back(s);
        std::printf("%8.0f %9ld %9ld %5ld %10lld %9lld %9lld %8lld\n", s.t, s.rss_kib, s.hwm_kib,
                    s.fds, s.db_bytes, s.sent, s.rows, s.backlog);
        std::fflush(stdout);
        if (csv) {
            std::fprintf(csv, "%.0f,%ld,%ld,%ld,%lld,%lld,%lld,%lld\n", s.t, s.rss_kib, s.hwm_kib,
                         s.fds, s.db_bytes, s.sent, s.rows, s.backlog);
            std::fflush(csv);
        }
    };

    // The load: contacts in groups of 10, step k of each before step k+1, so a contact's events
    // arrive about a second apart at the default rate (realistic, and some coalescing).
    std::mt19937 rng(42);
    std::vector<std::string> queue;
    long long next_contact = 0;
    auto refill = [&] {
        std::vector<std::vector<std::string>> stories;
        for (int g = 0; g < 10; ++g)
            stories.push_back(bench::contact_story(next_contact++));
        for (std::size_t k = 0; k < stories.front().size(); ++k)
            for (const auto& s : stories)
                queue.push_back(s[k]);
        std::reverse(queue.begin(), queue.end());
    };
    long long sent = 0, failed = 0, remote_edits = 0;
    const double t0 = bench::now_seconds();
    const double end = t0 + minutes * 60;
    double next_sample = t0;
    double next_remote = t0;
    const double cpu0 = daemon.cpu_seconds();
    for (double now = t0; now < end; now = bench::now_seconds()) {
        if (now >= next_sample) {
            take(now - t0, sent);
            next_sample += static_cast<double>(sample_every);
        }
        if (remote_rate > 0 && now >= next_remote && !remote_ids.empty()) {
            const auto& id = remote_ids[rng() % remote_ids.size()];
            const std::string body =
                R"({"lastName":"Edited )" + std::to_string(remote_edits) + R"("})";
            if (admin.exchange(request("PATCH", "/_sim/contacts/" + id, body)) == 200)
                ++remote_edits;
            next_remote += 1.0 / static_cast<double>(remote_rate);
        }
        // Events due by now at `rate`/s.
        const auto due = static_cast<long long>((now - t0) * static_cast<double>(rate));
        while (sent + failed < due) {
            if (queue.empty())
                refill();
            const int st = api.exchange(bench::post_event(queue.back(), api_token));
            queue.pop_back();
            st == 202 ? ++sent : ++failed;
        }
        ::usleep(5000);
    }
    take(bench::now_seconds() - t0, sent);
    const double daemon_cpu = daemon.cpu_seconds() - cpu0;
    const int code = daemon.stop();
    if (csv)
        std::fclose(csv);

    // Growth over the second half (after warm-up: caches, the initial import, SQLite's page
    // cache reaching its bound).
    const std::size_t half = samples.size() / 2;
    const sample& mid = samples[half];
    const sample& last = samples.back();
    long fd_min = mid.fds, fd_max = mid.fds;
    long rss_min = mid.rss_kib, rss_max = mid.rss_kib;
    for (std::size_t i = half; i < samples.size(); ++i) {
        fd_min = std::min(fd_min, samples[i].fds);
        fd_max = std::max(fd_max, samples[i].fds);
        rss_min = std::min(rss_min, samples[i].rss_kib);
        rss_max = std::max(rss_max, samples[i].rss_kib);
    }
    auto per_row = [](const sample& s) {
        return s.rows > 0 ? static_cast<double>(s.db_bytes) / static_cast<double>(s.rows) : 0.0;
    };
    std::printf("events sent %lld (failed %lld), remote edits %lld, daemon CPU %.1f s "
                "(%.0f us/event), exit %d\n",
                sent, failed, remote_edits, daemon_cpu,
                sent > 0 ? daemon_cpu * 1e6 / static_cast<double>(sent) : 0.0, code);
    std::printf("second half (t=%.0f..%.0f s): RSS %ld..%ld KiB (first sample %ld, peak %ld), "
                "fds %ld..%ld, db %.1f -> %.1f MiB for %lld -> %lld rows (%.0f -> %.0f "
                "bytes/row), backlog at end %lld\n",
                mid.t, last.t, rss_min, rss_max, samples.front().rss_kib, last.hwm_kib, fd_min,
                fd_max, static_cast<double>(mid.db_bytes) / 1048576.0,
                static_cast<double>(last.db_bytes) / 1048576.0, mid.rows, last.rows, per_row(mid),
                per_row(last), last.backlog);
    std::printf("RESULT soak_bench: %.0f min, %lld events: RSS second half %ld..%ld KiB (%+ld), "
                "fds %ld..%ld, db %.0f -> %.0f bytes/row, backlog %lld, failures %lld\n",
                minutes, sent, rss_min, rss_max, last.rss_kib - mid.rss_kib, fd_min, fd_max,
                per_row(mid), per_row(last), last.backlog, failed);
    return failed == 0 && code == 0 ? 0 : 1;
} catch (const std::exception& e) {
    std::fprintf(stderr, "soak_bench: %s\n", e.what());
    return 1;
}
