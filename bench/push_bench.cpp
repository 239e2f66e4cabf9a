// push_bench: the push path (intake -> outbox -> sync::dispatcher -> GHL client) against a
// ghl-sim PROCESS over loopback HTTP. The dispatcher runs in this process with its db_worker;
// the simulator's CPU is not counted.
//
//   push_bench --mode drain [--burst B] [--window-ms W] [--backlog K] ...
//     (a) a backlog of K updates to K distinct contacts (no coalescing possible) against a
//     simulator limiting B requests per W ms, the dispatcher's rate limiter set to the same;
//     reports achieved requests/s over the steady part (whole windows after the first) as a
//     fraction of B/W, and the 429s.
//   push_bench --mode mix [--contacts N] [--rate R] [--group G] ...
//     (b) a mixed workload: per contact, a create, updates, tags, a task (created, updated,
//     completed) and a note; reports API calls / accepted events. With --rate 0 the outbox is
//     filled before the dispatcher starts; with --rate R events arrive at R/s while it runs,
//     G contacts interleaved (a contact's consecutive events G/R s apart).
//     (c) CPU per pushed operation: this process's CPU during the drain (minus the emitting
//     thread's) per API call and per outbox item.
#include "bench_common.hpp"
#include "core/log.hpp"
#include "ghl/client.hpp"
#include "store/db_worker.hpp"
#include "store/migrations.hpp"
#include "sync/dispatcher.hpp"
#include "sync/intake.hpp"

#include <SQLiteCpp/Database.h>
#include <algorithm>
#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <mutex>
#include <thread>

namespace asio = boost::asio;
using namespace speak4;
using namespace std::chrono_literals;

namespace {

struct request_log {
    std::mutex m;
    std::vector<double> started; // seconds since epoch
    long long calls = 0;
    long long rate_limited = 0;
    std::map<std::string, long long> by_op;
};

/// Accepts `texts` in one transaction; returns how many were accepted (not duplicates).
long long emit(store::db_worker& db, const std::vector<std::string>& texts) {
    std::vector<sync::raw_event> evs;
    for (const auto& t : texts) {
        auto ev = sync::parse_event(t);
        if (!ev)
            throw std::runtime_error("bad event: " + ev.error().message + ": " + t);
        evs.push_back({*ev, t});
    }
    return db.run_sync([&](SQLite::Database& d) {
        sync::intake in(d, system_clock::instance());
        long long ok = 0;
        for (const auto& r : in.accept_batch(evs)) {
            if (!r)
                throw std::runtime_error("intake refused an event: " + r.error().message);
            ok += r->duplicate ? 0 : 1;
        }
        return ok;
    });
}

} // namespace

int main(int argc, char** argv) try {
    bench::args a(argc, argv);
    speak4::log::init(speak4::log::level::warn, speak4::log::format::json);
    if (a.help) {
        std::cout << "push_bench --mode drain [--burst 50] [--window-ms 1000] [--backlog 1500]\n"
                     "push_bench --mode mix [--contacts 500] [--rate 0] [--group 50]\n"
                     "common: [--concurrency 4] [--coalesce-ms 250] [--sim PATH] [--limit-s 120]\n";
        return 0;
    }
    const std::string mode = a.str("mode", "drain");
    const bool drain = mode == "drain";
    if (!drain && mode != "mix")
        throw std::invalid_argument("--mode drain|mix");
    const int burst = static_cast<int>(a.num("burst", 50));
    const int window_ms = static_cast<int>(a.num("window-ms", 1000));
    const long long backlog = a.num("backlog", 1500);
    const long long contacts = a.num("contacts", 500);
    const double rate = static_cast<double>(a.num("rate", 0));
    const long long group = std::max(1LL, a.num("group", 50));
    const int concurrency = static_cast<int>(a.num("concurrency", 4));
    const int coalesce_ms = static_cast<int>(a.num("coalesce-ms", 250));
    const long long limit_s = a.num("limit-s", 120);

    std::unique_ptr<bench::child> sim;
    std::vector<std::string> sim_args;
    if (drain)
        sim_args = {"--burst",         std::to_string(burst),
                    "--window-ms",     std::to_string(window_ms),
                    "--seed-contacts", std::to_string(backlog)};
    else
        sim_args = bench::unthrottled_sim_args();
    const std::string url = bench::start_sim(sim, a.str("sim", SPEAK4_GHL_SIM_BINARY), sim_args);

    bench::temp_dir dir;
    store::db_worker db(store::open_options{dir / "s.db"});
    db.run_sync([](SQLite::Database& d) { store::migrate(d); });

    asio::io_context io;
    ghl::http_options ho;
    ho.base_url = url;
    ho.timeout = 10s;
    ho.max_connections = static_cast<std::size_t>(concurrency);
    auto http = std::make_shared<ghl::http_client>(io.get_executor(), ho);
    ghl::rate_limit_options rl;
    if (drain) {
        rl.burst = burst;
        rl.window = std::chrono::milliseconds(window_ms);
    } else {
        rl.burst = 1000000000;
        rl.window = 1000ms;
        rl.daily = 1000000000000LL;
    }
    request_log log;
    sync::ghl_access access{
        http,
        std::make_shared<ghl::static_token_provider>(secret("sim-private-token")),
        std::make_shared<ghl::rate_limiter>(rl),
        {}};
    access.options.location_id = "simLocation000000001";
    access.options.observer = [&log](const ghl::request_record& r) {
        std::lock_guard lock(log.m);
        log.started.push_back(
            std::chrono::duration<double>(r.started_at.time_since_epoch()).count());
        ++log.calls;
        ++log.by_op[r.operation];
        if (r.status == 429)
            ++log.rate_limited;
    };
    sync::dispatcher_options opt;
    opt.max_concurrency = concurrency;
    opt.coalesce = std::chrono::milliseconds(coalesce_ms);
    opt.idle_poll = 50ms;
    opt.retry = sync::retry_policy{200, 5000, 20};

    // The events.
    std::vector<std::string> events;
    if (drain) {
        std::vector<std::string> ids;
        asio::co_spawn(
            io, [&]() -> asio::awaitable<void> { ids = co_await bench::sim_contact_ids(*http); },
            asio::detached);
        io.run();
        io.restart();
        if (static_cast<long long>(ids.size()) < backlog)
            throw std::runtime_error("the simulator holds fewer contacts than --backlog");
        for (long long i = 0; i < backlog; ++i)
            events.push_back(R"({"type":"contact.updated","event_id":"u-)" + std::to_string(i) +
                             R"(","contact":{"ghl_id":")" + ids[static_cast<std::size_t>(i)] +
                             R"(","lastName":"Updated )" + std::to_string(i) + R"("}})");
    } else {
        // Groups of G contacts; within a group, step k of every contact before step k+1.
        for (long long g = 0; g < contacts; g += group) {
            std::vector<std::vector<std::string>> stories;
            for (long long i = g; i < std::min(contacts, g + group); ++i)
                stories.push_back(bench::contact_story(i));
            for (std::size_t k = 0; k < stories.front().size(); ++k)
                for (const auto& s : stories)
                    events.push_back(s[k]);
        }
    }

    std::atomic<long long> accepted{0};
    double emit_thread_cpu = 0;
    const bool streamed = !drain && rate > 0;
    double intake_cpu = 0, intake_wall = 0;
    if (!streamed) {
        const double c0 = bench::process_cpu_seconds(), t0 = bench::now_seconds();
        for (std::size_t i = 0; i < events.size(); i += 500)
            accepted +=
                emit(db, std::vector<std::string>(
                             events.begin() + static_cast<long>(i),
                             events.begin() + static_cast<long>(std::min(events.size(), i + 500))));
        intake_cpu = bench::process_cpu_seconds() - c0;
        intake_wall = bench::now_seconds() - t0;
    }

    sync::dispatcher d(io.get_executor(), db, access, opt);
    bool finished = false;
    std::atomic<bool> emitting{streamed};
    std::thread emitter;
    const double cpu0 = bench::process_cpu_seconds();
    const double t0 = bench::now_seconds();
    if (streamed) {
        emitter = std::thread([&] {
            const double start = bench::now_seconds();
            for (std::size_t i = 0; i < events.size(); ++i) {
                const double due = start + static_cast<double>(i) / rate;
                const double wait = due - bench::now_seconds();
                if (wait > 0)
                    std::this_thread::sleep_for(std::chrono::duration<double>(wait));
                accepted += emit(db, {events[i]});
                asio::post(io, [&d] { d.wake(); });
            }
            emit_thread_cpu = bench::thread_cpu_seconds();
            emitting = false;
        });
    }
    double t_done = 0;
    asio::co_spawn(io, d.run(), [&](std::exception_ptr) { finished = true; });
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            asio::steady_timer t(io);
            for (;;) {
                t.expires_after(100ms);
                co_await t.async_wait(asio::use_awaitable);
                if (emitting)
                    continue;
                const auto open = co_await db.run([](SQLite::Database& x) {
                    return x
                        .execAndGet(
                            "SELECT COUNT(*) FROM outbox WHERE state IN ('pending','inflight')")
                        .getInt64();
                });
                if (open == 0)
                    break;
            }
            t_done = bench::now_seconds();
            d.stop();
        },
        asio::detached);
    io.run_for(std::chrono::seconds(limit_s));
    if (emitter.joinable())
        emitter.join();
    const double cpu1 = bench::process_cpu_seconds();
    if (!finished || t_done == 0)
        throw std::runtime_error("the outbox did not drain within --limit-s");
    const double wall = t_done - t0;

    const auto ds = d.stats();
    long long dead = 0, not_done = 0;
    db.run_sync([&](SQLite::Database& x) {
        dead = x.execAndGet("SELECT COUNT(*) FROM outbox WHERE state = 'dead'").getInt64();
        not_done = x.execAndGet("SELECT COUNT(*) FROM outbox WHERE state <> 'done'").getInt64();
    });
    io.restart();
    boost::json::value sst;
    asio::co_spawn(
        io, [&]() -> asio::awaitable<void> { sst = co_await bench::sim_stats(*http); },
        asio::detached);
    io.run();
    const long long sim_requests = sst.at("requests").as_int64();
    const long long sim_429 = sst.at("rate_limited").as_int64();

    std::printf("mode=%s events=%zu accepted=%lld outbox_items=%lld done=%lld retried=%lld "
                "dead=%lld not_done=%lld\n",
                mode.c_str(), events.size(), accepted.load(), ds.items, ds.done, ds.retried, dead,
                not_done);
    std::printf("client_calls=%lld sim_requests=%lld client_429=%lld sim_429=%lld wall_s=%.3f\n",
                log.calls, sim_requests, log.rate_limited, sim_429, wall);
    for (const auto& [op, n] : log.by_op)
        std::printf("  %-40s %lld\n", op.c_str(), n);
    if (!streamed && intake_wall > 0)
        std::printf("intake (before the drain): %.3f s, %.1f CPU us/event\n", intake_wall,
                    intake_cpu * 1e6 / static_cast<double>(accepted.load()));
    const double push_cpu = (cpu1 - cpu0) - emit_thread_cpu;
    const double cpu_per_call = push_cpu * 1e6 / static_cast<double>(std::max(1LL, log.calls));
    const double cpu_per_item = push_cpu * 1e6 / static_cast<double>(std::max(1LL, ds.items));

    if (drain) {
        std::vector<double> st = log.started;
        std::sort(st.begin(), st.end());
        const double w = window_ms / 1000.0;
        const double first = st.front(), last = st.back();
        const long long full = static_cast<long long>(std::floor((last - first - w) / w));
        long long in_steady = 0;
        for (double s : st)
            if (s >= first + w && s < first + w + static_cast<double>(full) * w)
                ++in_steady;
        const double allowed = burst / w;
        const double achieved =
            full > 0 ? static_cast<double>(in_steady) / (static_cast<double>(full) * w) : 0;
        std::printf("steady part: %lld whole windows after the first, %lld requests; overall %.2f "
                    "requests/s\n",
                    full, in_steady, static_cast<double>(st.size()) / (last - first));
        std::printf("RESULT push_bench drain: %.2f requests/s of %.2f allowed = %.3f, 429s=%lld "
                    "(B=%d W=%dms K=%lld, "
                    "C=%d); %.1f CPU us/call\n",
                    achieved, allowed, achieved / allowed, std::max(log.rate_limited, sim_429),
                    burst, window_ms, backlog, concurrency, cpu_per_call);
    } else {
        std::printf("RESULT push_bench mix: %.3f API calls per accepted event (%lld calls / %lld "
                    "events, %lld "
                    "contacts, rate=%s, group=%lld, coalesce=%dms); %.1f CPU us per API call, %.1f "
                    "CPU us per "
                    "outbox item, %.0f events/s drained\n",
                    static_cast<double>(sim_requests) / static_cast<double>(accepted.load()),
                    sim_requests, accepted.load(), contacts,
                    streamed ? std::to_string(static_cast<long long>(rate)).c_str() : "preloaded",
                    group, coalesce_ms, cpu_per_call, cpu_per_item,
                    static_cast<double>(accepted.load()) / wall);
    }
    return (dead == 0 && not_done == 0) ? 0 : 1;
} catch (const std::exception& e) {
    std::fprintf(stderr, "push_bench: %s\n", e.what());
    return 1;
}
