// intake_bench: event intake over HTTP into the real daemon. Spawns a ghl-sim process and
// `speak4-sync run` pointed at it (the dispatcher pushes to the simulator meanwhile, under the
// daemon's [rate_limit]), then M keep-alive connections (one thread each, one request in flight
// per connection) POST N events with distinct event_ids (contact.created for distinct
// speak4_ids) to /v1/events with the API bearer token. A 202 is only sent after the event is
// committed. Reports events/s; every non-202 is counted as a failure.
//
//   intake_bench [--events N] [--connections M] [--binary PATH] [--sim PATH] [--sim-unlimited]
#include "bench_common.hpp"

#include <arpa/inet.h>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <mutex>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

int main(int argc, char** argv) try {
    bench::args a(argc, argv);
    if (a.help) {
        std::cout << "intake_bench [--events N=100000] [--connections M=64] [--binary PATH] [--sim "
                     "PATH]\n"
                     "             [--sim-unlimited (the simulator and the daemon's limiter "
                     "unthrottled)]\n"
                     "             [--keep DIR (keep the database and logs there)]\n";
        return 0;
    }
    const long long n = a.num("events", 100000);
    const long long m = a.num("connections", 64);
    const bool unlimited = a.flag("sim-unlimited");

    std::unique_ptr<bench::child> sim;
    const std::string url = bench::start_sim(sim, a.str("sim", SPEAK4_GHL_SIM_BINARY), [&] {
        std::vector<std::string> v =
            unlimited ? bench::unthrottled_sim_args() : std::vector<std::string>{};
        v.insert(v.end(), {"--token", "bench-ghl-token"});
        return v;
    }());

    bench::temp_dir tmp;
    const bench::daemon_config cfg = bench::write_daemon_config(
        a.str("keep", "").empty() ? tmp.path() : std::filesystem::path(a.str("keep", "")), url,
        unlimited ? "[rate_limit]\nburst = 1000000\nwindow_seconds = 1\ndaily = 1000000000\n" : "");
    bench::child daemon(a.str("binary", SPEAK4_BINARY), {"--config", cfg.config().string(), "run"},
                        cfg.err_log().string());
    bench::wait_ready(cfg);
    const unsigned short port = cfg.port;
    const std::string& api_token = cfg.api_token;

    std::atomic<long long> ok{0}, failed{0}, reconnects{0};
    std::atomic<int> first_failure_status{-1};
    std::string first_failure_body;
    std::mutex fm;
    std::vector<std::thread> threads;
    const double daemon_cpu0 = daemon.cpu_seconds();
    const double cpu0 = bench::process_cpu_seconds();
    const double t0 = bench::now_seconds();
    for (long long k = 0; k < m; ++k) {
        threads.emplace_back([&, k] {
            bench::http_connection c(port);
            for (long long i = k; i < n; i += m) {
                const std::string s = std::to_string(i);
                const std::string body =
                    R"({"type":"contact.created","event_id":"bench-)" + s +
                    R"(","contact":{"speak4_id":"s4-)" + s + R"(","firstName":"P)" + s +
                    R"(","lastName":"Bench","email":"p)" + s + R"(@example.com"}})";
                const int st = c.exchange(bench::post_event(body, api_token));
                if (st == 202) {
                    ++ok;
                } else {
                    ++failed;
                    int expected = -1;
                    if (first_failure_status.compare_exchange_strong(expected, st)) {
                        std::lock_guard lock(fm);
                        first_failure_body = c.last_body;
                    }
                }
            }
            reconnects += c.connects - 1;
        });
    }
    for (auto& t : threads)
        t.join();
    const double wall = bench::now_seconds() - t0;
    const double cpu = bench::process_cpu_seconds() - cpu0;
    const double daemon_cpu = daemon.cpu_seconds() - daemon_cpu0;
    const double sim_cpu = sim->cpu_seconds();

    const int code = daemon.stop();
    std::printf("events=%lld connections=%lld ok=%lld failed=%lld reconnects=%lld wall_s=%.3f "
                "daemon_exit=%d\n",
                n, m, ok.load(), failed.load(), reconnects.load(), wall, code);
    if (failed > 0)
        std::printf("first failure: status %d body %s\n", first_failure_status.load(),
                    first_failure_body.c_str());
    std::printf("cpu: daemon %.2f s (%.1f us/event), load generator %.2f s, ghl-sim (whole life) "
                "%.2f s; %u cores\n",
                daemon_cpu, daemon_cpu * 1e6 / static_cast<double>(n), cpu, sim_cpu,
                std::thread::hardware_concurrency());
    std::printf("RESULT intake_bench: %.0f events/s (N=%lld, M=%lld, failures=%lld)\n",
                static_cast<double>(ok) / wall, n, m, failed.load());
    return failed == 0 ? 0 : 1;
} catch (const std::exception& e) {
    std::fprintf(stderr, "intake_bench: %s\n", e.what());
    return 1;
}
