// pull_bench: the initial sync. Spawns an unthrottled ghl-sim process seeded with N contacts
// and runs the reconciler's incremental_pull() once into a fresh database (sync.fetch_children
// = on_demand, so only contacts are fetched). Reports contacts/s and this process's peak RSS
// (getrusage ru_maxrss; the simulator is another process, so its memory is not counted).
//
//   pull_bench [--contacts N] [--sim PATH] [--page P] [--keep DIR] [--steady K]
//              [--entities contacts,tasks,notes,appointments]
#include "bench_common.hpp"
#include "core/log.hpp"
#include "ghl/client.hpp"
#include "store/db_worker.hpp"
#include "store/migrations.hpp"
#include "sync/reconciler.hpp"

#include <SQLiteCpp/Database.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
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
               "  contacts,tasks to leave notes and appointments out\n";
        return 0;
    }
    const long long n = a.num("contacts", 100000);
    const int page = static_cast<int>(a.num("page", 500));
    const long long steady = a.num("steady", 0);

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
    std::printf(
        "steady: changed=%lld pass: ok=%d pages=%lld listed=%lld fetched=%lld; child jobs=%d; "
        "GHL requests=%lld\n",
        steady, rep2.ok ? 1 : 0, rep2.pages, rep2.listed, rep2.fetched, children, calls);
    std::printf(
        "RESULT pull_bench steady: %.2f API calls per remote change (K=%lld changed of N=%lld, "
        "entities %s)\n",
        static_cast<double>(calls) / static_cast<double>(steady), steady, n, entities.c_str());
    return rep2.ok ? 0 : 1;
} catch (const std::exception& e) {
    std::fprintf(stderr, "pull_bench: %s\n", e.what());
    return 1;
}
