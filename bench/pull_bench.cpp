// pull_bench: the initial sync. Spawns an unthrottled ghl-sim process seeded with N contacts
// and runs the reconciler's incremental_pull() once into a fresh database (sync.fetch_children
// = on_demand, so only contacts are fetched). Reports contacts/s and this process's peak RSS
// (getrusage ru_maxrss; the simulator is another process, so its memory is not counted).
//
//   pull_bench [--contacts N] [--sim PATH] [--page P] [--keep DIR] [--steady K]
//              [--entities contacts,tasks,notes,appointments]
//              [--fault-rate F] [--search-lag-ms L] [--index-lag-s S]
#include "bench_common.hpp"
#include "core/log.hpp"
#include "ghl/client.hpp"
#include "store/db_worker.hpp"
#include "store/migrations.hpp"
#include "sync/reconciler.hpp"

#include <SQLiteCpp/Database.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstdio>
#include <iostream>

namespace asio = boost::asio;
using namespace speak4;
using namespace std::chrono_literals;

int main(int argc, char** argv) try {
    bench::args a(argc, argv);
    speak4::log::init(speak4::log::level::warn, speak4::log::format::json);
    if (a.help) {
        std::cout
            << "pull_bench [--contacts N=100000] [--page P=500] [--steady K=0] [--sim PATH] "
               "[--keep DIR]\n"
               "  --steady K: after the import, change K contacts in GHL, pull again (with their\n"
               "  tasks, notes and appointments) and report API calls per remote change\n"
               "  --entities LIST: sync.entities for the steady pass (default all), e.g.\n"
               "  contacts,tasks to leave notes and appointments out\n"

               "  --fault-rate F: during that pass, F (0..1) of GET /contacts/:id and search\n"
               "  requests fail with 500/502/503 (retried inside the pass)\n"
               "  --search-lag-ms L: ghl-sim's search index lags L ms (plus up to L jitter)\n"
               "  --index-lag-s S: the pass re-reads S s before its cursor (default 2 here)\n";
        return 0;
    }
    const long long n = a.num("contacts", 100000);
    const int page = static_cast<int>(a.num("page", 500));
    const long long steady = a.num("steady", 0);
    const double fault_rate = std::stod(a.str("fault-rate", "0"));
    const long long search_lag = a.num("search-lag-ms", 0);
    const long long index_lag = a.num("index-lag-s", 2);

    std::unique_ptr<bench::child> sim;
    const std::string url = bench::start_sim(sim, a.str("sim", SPEAK4_GHL_SIM_BINARY), [&] {
        auto v = bench::unthrottled_sim_args();
        v.insert(v.end(), {"--seed-contacts", std::to_string(n)});
        return v;
    }());

    bench::temp_dir tmp;
    const std::filesystem::path dir =
        a.str("keep", "").empty() ? tmp.path() : std::filesystem::path(a.str("keep", ""));
    std::filesystem::create_directories(dir);
    std::filesystem::remove(dir / "s.db");
    store::db_worker db(store::open_options{dir / "s.db"});
    db.run_sync([](SQLite::Database& d) { store::migrate(d); });

    asio::io_context io;
    ghl::http_options ho;
    ho.base_url = url;
    ho.timeout = 60s;
    sync::ghl_access access;
    access.http = std::make_shared<ghl::http_client>(io.get_executor(), ho);
    access.tokens = std::make_shared<ghl::static_token_provider>(secret("sim-private-token"));
    ghl::rate_limit_options rl;
    rl.burst = 1000000000;
    rl.window = 1000ms;
    rl.daily = 1000000000000LL;
    access.limiter = std::make_shared<ghl::rate_limiter>(rl);
    access.options.location_id = "simLocation000000001";

    sync::reconciler_options ro;
    ro.children = fetch_children::on_demand;
    ro.full_sweep_hours = 0;
    ro.search_page = page;
    const std::string entities = a.str("entities", "contacts,tasks,notes,appointments");
    ro.entities = {entities.find("tasks") != std::string::npos,
                   entities.find("notes") != std::string::npos,
                   entities.find("appointments") != std::string::npos};
    ro.overlap = std::chrono::seconds(index_lag);
    sync::reconciler rec(io.get_executor(), db, access, ro);

    const long rss_before = bench::peak_rss_kib();
    sync::pull_report rep;
    const double cpu0 = bench::process_cpu_seconds();
    const double t0 = bench::now_seconds();
    asio::co_spawn(io, rec.incremental_pull(), [&](std::exception_ptr e, sync::pull_report r) {
        if (e)
            std::rethrow_exception(e);
        rep = std::move(r);
    });
    io.run();
    const double wall = bench::now_seconds() - t0;
    const double cpu = bench::process_cpu_seconds() - cpu0;
    const long rss = bench::peak_rss_kib();
    const double sim_cpu = sim->cpu_seconds();

    long long rows = 0;
    db.run_sync([&](SQLite::Database& d) {
        rows = d.execAndGet("SELECT COUNT(*) FROM contacts").getInt64();
    });
    std::printf("ok=%d complete=%d error=\"%s\" pages=%lld listed=%lld created=%lld fetched=%lld "
                "mirror_rows=%lld\n",
                rep.ok ? 1 : 0, rep.complete ? 1 : 0, rep.error.c_str(), rep.pages, rep.listed,
                rep.created, rep.fetched, rows);
    std::printf("wall_s=%.3f cpu_s=%.2f (%.1f us/contact) ghl-sim cpu_s=%.2f (whole life, includes "
                "seeding); "
                "peak RSS before the pull %ld KiB\n",
                wall, cpu, cpu * 1e6 / static_cast<double>(rows), sim_cpu, rss_before);
    std::printf("RESULT pull_bench: %.0f contacts/s, peak RSS %.1f MiB (N=%lld, page=%d)\n",
                static_cast<double>(rows) / wall, static_cast<double>(rss) / 1024.0, n, page);
    if (!(rep.ok && rep.complete && rows == n))
        return 1;
    if (steady <= 0)
        return 0;

    // Steady state: K contacts change in GHL; one incremental pass brings them (and, for the
    // changed ones, their tasks, notes and appointments) back. Count the API calls GHL saw.
    long long before = 0, after = 0;
    sync::pull_report rep2;
    int children = 0;
    auto steady_run = [&]() -> asio::awaitable<void> {
        auto ids = co_await bench::sim_contact_ids(*access.http);
        for (long long i = 0; i < steady && i < static_cast<long long>(ids.size()); ++i) {
            ghl::http_request req;
            req.method = ghl::http_method::put;
            req.target =
                "/_sim/contacts/" +
                ids[static_cast<std::size_t>(i * (static_cast<long long>(ids.size()) / steady))];
            req.content_type = "application/json";
            req.body = R"({"lastName":"Changed"})";
            auto r = co_await access.http->send(req);
            if (!r || r->status != 200)
                throw std::runtime_error("remote change failed");
        }
        if (fault_rate > 0 || search_lag > 0) {
            ghl::http_request req;
            req.method = ghl::http_method::put;
            req.target = "/_sim/faults";
            req.content_type = "application/json";
            req.body = "{\"error_rate\":" + std::to_string(fault_rate) +
                       ",\"error_statuses\":[500,502,503],\"routes\":[\"GET /contacts/:contactId\","
                       "\"POST /contacts/search\"],\"search_lag_ms\":" +
                       std::to_string(search_lag) +
                       ",\"search_lag_jitter_ms\":" + std::to_string(search_lag) + "}";
            auto r = co_await access.http->send(req);
            if (!r || r->status != 200)
                throw std::runtime_error("setting faults failed");
            if (search_lag > 0) { // let the index catch up with the changes
                asio::steady_timer t(co_await asio::this_coro::executor);
                t.expires_after(std::chrono::milliseconds(2 * search_lag + 100));
                co_await t.async_wait(asio::use_awaitable);
            }
        }
        before = (co_await bench::sim_stats(*access.http)).at("requests").to_number<long long>();
        rep2 = co_await rec.incremental_pull();
        for (int k; (k = co_await rec.drain_child_queue(1000)) > 0;)
            children += k;
        after = (co_await bench::sim_stats(*access.http)).at("requests").to_number<long long>();
    };
    asio::co_spawn(io, steady_run(), [](std::exception_ptr e) {
        if (e)
            std::rethrow_exception(e);
    });
    io.restart();
    io.run();
    const long long calls = after - before;
    std::printf("steady: changed=%lld pass: ok=%d pages=%lld listed=%lld fetched=%lld retries=%lld "
                "deferred=%lld updated=%lld; child jobs=%d; GHL requests=%lld\n",
                steady, rep2.ok ? 1 : 0, rep2.pages, rep2.listed, rep2.fetched, rep2.fetch_retries,
                rep2.deferred, rep2.updated, children, calls);
    std::printf("RESULT pull_bench steady: %.2f API calls per remote change (K=%lld changed of "
                "N=%lld, faults %.0f%%, search lag %lld ms, entities %s)\n",
                static_cast<double>(calls) / static_cast<double>(steady), steady, n,
                fault_rate * 100.0, search_lag, entities.c_str());
    return rep2.ok ? 0 : 1;
} catch (const std::exception& e) {
    std::fprintf(stderr, "pull_bench: %s\n", e.what());
    return 1;
}
