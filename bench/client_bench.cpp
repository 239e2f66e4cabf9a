// client_bench: the GHL client (ghl::client over the pooled keep-alive transport) against a
// ghl-sim process over loopback HTTP: N GET /contacts/:id with C in flight. Reports requests/s
// and client CPU microseconds per request (the io_context thread's CPU only: the simulator is
// another process).
//
//   client_bench [--requests N] [--concurrency C] [--contacts S] [--sim PATH] [--url URL]
#include "bench_common.hpp"
#include "core/log.hpp"
#include "ghl/client.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstdio>
#include <iostream>

namespace asio = boost::asio;
using namespace speak4;

int main(int argc, char** argv) try {
    bench::args a(argc, argv);
    speak4::log::init(speak4::log::level::warn, speak4::log::format::json);
    if (a.help) {
        std::cout
            << "client_bench [--requests N=20000] [--concurrency C=4] [--contacts S=1000]\n"
               "             [--warmup W=500] [--sim PATH] [--url URL (an already running sim)]\n";
        return 0;
    }
    const long long n = a.num("requests", 20000);
    const long long c = a.num("concurrency", 4);
    const long long seed = a.num("contacts", 1000);
    const long long warmup = a.num("warmup", 500);

    std::unique_ptr<bench::child> sim;
    std::string url = a.str("url", "");
    if (url.empty())
        url = bench::start_sim(sim, a.str("sim", SPEAK4_GHL_SIM_BINARY), [&] {
            auto v = bench::unthrottled_sim_args();
            v.insert(v.end(), {"--seed-contacts", std::to_string(seed)});
            return v;
        }());

    asio::io_context io;
    ghl::http_options ho;
    ho.base_url = url;
    ho.max_connections = static_cast<std::size_t>(c);
    auto http = std::make_shared<ghl::http_client>(io.get_executor(), ho);
    ghl::rate_limit_options rl;
    rl.burst = 1000000000;
    rl.window = std::chrono::milliseconds(1000);
    rl.daily = 1000000000000LL;
    ghl::client_options co;
    co.location_id = "simLocation000000001";
    ghl::client cli(http, co,
                    std::make_shared<ghl::static_token_provider>(secret("sim-private-token")),
                    std::make_shared<ghl::rate_limiter>(rl));

    std::vector<std::string> ids;
    long long failures = 0;
    double t0 = 0, t1 = 0, cpu0 = 0, cpu1 = 0;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            ids = co_await bench::sim_contact_ids(*http);
            if (ids.empty())
                throw std::runtime_error("the simulator holds no contacts");
            auto worker = [&](long long first, long long count) -> asio::awaitable<void> {
                for (long long i = first; i < first + count; ++i) {
                    auto r =
                        co_await cli.get_contact(ids[static_cast<std::size_t>(i) % ids.size()]);
                    if (!r)
                        ++failures;
                }
            };
            // Warm-up: open the pool's connections.
            co_await worker(0, warmup);
            failures = 0;
            int running = static_cast<int>(c);
            asio::steady_timer done(io, asio::steady_timer::time_point::max());
            t0 = bench::now_seconds();
            cpu0 = bench::thread_cpu_seconds();
            for (long long k = 0; k < c; ++k) {
                const long long per = n / c + (k < n % c ? 1 : 0);
                asio::co_spawn(io, worker(k * 7919, per), [&](std::exception_ptr e) {
                    if (e)
                        ++failures;
                    if (--running == 0)
                        done.cancel();
                });
            }
            boost::system::error_code ec;
            co_await done.async_wait(asio::redirect_error(asio::use_awaitable, ec));
            cpu1 = bench::thread_cpu_seconds();
            t1 = bench::now_seconds();
        },
        [](std::exception_ptr e) {
            if (e)
                std::rethrow_exception(e);
        });
    io.run();

    const auto st = http->stats();
    const double wall = t1 - t0;
    std::printf(
        "requests=%lld concurrency=%lld failures=%lld wall_s=%.3f connections_opened=%lld\n", n, c,
        failures, wall, st.connections_opened);
    std::printf("RESULT client_bench: %.0f requests/s, %.1f client CPU us/request (N=%lld, C=%lld, "
                "failures=%lld)\n",
                static_cast<double>(n) / wall, (cpu1 - cpu0) * 1e6 / static_cast<double>(n), n, c,
                failures);
    return failures == 0 ? 0 : 1;
} catch (const std::exception& e) {
    std::fprintf(stderr, "client_bench: %s\n", e.what());
    return 1;
}
