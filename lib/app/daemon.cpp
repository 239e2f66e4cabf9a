#include "app/daemon.hpp"

#include "api/server.hpp"
#include "app/alerts.hpp"
#include "app/auth.hpp"
#include "app/fields.hpp"
#include "core/error.hpp"
#include "core/health.hpp"
#include "core/log.hpp"
#include "core/metrics.hpp"
#include "ghl/client.hpp"
#include "store/admin.hpp"
#include "store/db_worker.hpp"
#include "store/inspect.hpp"
#include "store/migrations.hpp"
#include "store/retention.hpp"
#include "sync/dispatcher.hpp"
#include "sync/oauth_store.hpp"
#include "sync/reconciler.hpp"

#include <SQLiteCpp/Statement.h>
#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json/array.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <csignal>
#include <mutex>
#include <set>
#include <sys/prctl.h>
#include <systemd/sd-daemon.h>

namespace speak4::app {
namespace {

namespace asio = boost::asio;
namespace bj = boost::json;

/// sd_notify, a no-op outside systemd (NOTIFY_SOCKET unset).
void notify(const std::string& state) {
    ::sd_notify(0, state.c_str());
}

/// sync_cursors row holding the rate limiter's last saved reservation (ghl::rate_snapshot).
constexpr const char* rate_snapshot_cursor = "rate_limit.snapshot";

/// The [breaker] section as the breaker takes it.
ghl::breaker_options breaker_options_from(const breaker_config& cfg) {
    ghl::breaker_options o;
    o.window_requests = cfg.window_requests;
    o.window_age = std::chrono::seconds(cfg.window_seconds);
    o.min_requests = cfg.min_requests;
    o.failure_percent = cfg.failure_percent;
    o.probe_interval = std::chrono::milliseconds(cfg.probe_interval_ms);
    o.probe_max = std::chrono::milliseconds(cfg.probe_max_ms);
    return o;
}

config load(const run_options& opt) {
    config cfg = load_config(opt.config_path);
    if (opt.adjust)
        opt.adjust(cfg);
    if (cfg.ghl.location_id.empty())
        throw config_error("ghl.location_id", 0,
                           "ghl.location_id: is required to run (the GHL sub-account id)");
    return cfg;
}

} // namespace

struct daemon::context {
    explicit context(run_options o)
        : opt(std::move(o))
        , signals(io, SIGTERM, SIGINT, SIGHUP)
        , watchdog(io)
        , status_timer(io)
        , grace_timer(io)
        , metrics(registry) {}

    run_options opt;
    config cfg;
    secrets sec;
    asio::io_context io{1};
    asio::signal_set signals;
    asio::steady_timer watchdog;
    asio::steady_timer status_timer;
    asio::steady_timer grace_timer;
    metrics::registry registry;
    metrics::daemon_metrics metrics;
    health::monitor monitor;

    std::unique_ptr<store::db_worker> db;
    std::shared_ptr<ghl::http_client> http;
    std::shared_ptr<ghl::rate_limiter> limiter;
    std::shared_ptr<ghl::breaker> breaker;
    std::unique_ptr<ghl::client> prober; ///< sends the breaker's probes
    std::shared_ptr<ghl::static_token_provider> pit;
    std::shared_ptr<sync::sqlite_token_store> token_store;
    std::shared_ptr<ghl::oauth_token_provider> oauth;
    std::shared_ptr<ghl::token_provider> tokens;
    std::unique_ptr<sync::dispatcher> dispatcher;
    std::unique_ptr<sync::reconciler> reconciler;
    std::unique_ptr<api::server> server;
    std::shared_ptr<webhook_alerter> alerter;
    std::optional<sys_time> last_429_at; // for the alerts' "rate_limited" condition
    /// The server the database thread wakes the change feed through (null once it is gone).
    std::mutex feed_mutex;
    api::server* feed = nullptr;

    bool stopping = false;
    int exit_status = 0; ///< non-zero once a loop could not go on (or the database is corrupt)
    std::string status_failing; ///< the status/pruning loop's current failure, logged once
    bool dispatcher_done = true;
    bool reconciler_done = true;
    bool server_done = true;
    bool status_done = true;

    void start();
    void begin_stop();
    void maybe_finish();
    void reload();
    asio::awaitable<void> watch_signals();
    asio::awaitable<void> keep_watchdog(std::chrono::microseconds interval);
    asio::awaitable<void> report_status();
    ghl::request_observer request_metrics();
    void refresh_auth_part();
    asio::awaitable<alert_inputs> observe_alerts();
    sync::resolved_fields resolve_fields_at_start();
    std::function<void(std::exception_ptr)> loop_done(const char* name, bool& done);
    void start_dispatcher();
    asio::awaitable<void> refresh_field_map(config next);
    std::shared_ptr<ghl::client> fields_client; // lists custom fields (start, SIGHUP)
    void breaker_changed(const ghl::breaker_snapshot& s);
    asio::awaitable<std::optional<std::string>> probe_ghl();
    void refresh_database_part();
    /// GHL refused `operation` for a missing scope: reported (health part "scopes", hence
    /// /healthz, status and /metrics) until a reload; the work that needs it stays parked.
    void note_missing_scope(const std::string& operation);
    std::set<std::string> missing_scopes;
    /// needs_reauth parks the queue: no claims (and one log line) until new credentials.
    void supervise_auth(const store::status_snapshot& s);
    bool queue_parked = false;
    /// Ends the process with `code` (systemd restarts it): a loop that cannot go on.
    void fail_hard(int code, const std::string& why);
    std::chrono::milliseconds stall_after() const {
        return std::chrono::seconds(cfg.health.stall_after_seconds);
    }
};

/// The breaker as a health part: an open breaker is GHL being down, not this daemon being
/// unwell (a restart would not help), so it stays healthy and says so in its reason; the
/// alert Speak4BreakerOpen watches the state.
void daemon::context::breaker_changed(const ghl::breaker_snapshot& s) {
    health::part p;
    p.state = std::string(ghl::to_string(s.state));
    p.healthy = true;
    if (s.state != ghl::breaker_state::closed)
        p.reason = "GHL looks down: calls are paused and probed (" + s.last_failure + ")";
    p.detail = ghl::to_json(s);
    p.detail.erase("state");
    monitor.set_part("breaker", std::move(p));
    if (s.state == ghl::breaker_state::closed) {
        // GHL answered again: the paused loops look now instead of at their next poll.
        if (dispatcher)
            dispatcher->wake();
        if (reconciler)
            reconciler->wake();
    }
    if (!stopping)
        status_timer.cancel(); // status --json learns of it at once
}

/// One probe: the cheapest read there is (a search page of one contact). Any answer that is
/// not a failure in the breaker's sense (ghl/breaker.hpp) says GHL is back.
asio::awaitable<std::optional<std::string>> daemon::context::probe_ghl() {
    ghl::search_request req;
    req.page_limit = 1;
    auto r = co_await prober->search_contacts(std::move(req));
    if (r)
        co_return std::nullopt;
    const auto& e = r.error();
    if (e.status != 0 && e.status < 500 && e.status != 408)
        co_return std::nullopt;
    co_return e.what();
}

void daemon::context::fail_hard(int code, const std::string& why) {
    if (stopping && exit_status != 0)
        return;
    log::error("cannot go on; ending the process so it is restarted",
               {{"reason", why}, {"exit_code", code}});
    exit_status = code;
    begin_stop();
}

void daemon::context::note_missing_scope(const std::string& operation) {
    if (!missing_scopes.insert(operation).second)
        return;
    log::error("ghl: the token lacks the scope for an operation; it is unavailable until the app "
               "is re-authorized with that scope (everything else goes on)",
               {{"operation", operation}});
    health::part p;
    p.state = "missing";
    p.healthy = false;
    boost::json::array ops;
    std::string list;
    for (const auto& o : missing_scopes) {
        ops.emplace_back(o);
        list += (list.empty() ? "" : ", ") + o;
    }
    p.reason = "the token is not authorized for: " + list;
    p.detail["unavailable"] = std::move(ops);
    monitor.set_part("scopes", std::move(p));
}

void daemon::context::supervise_auth(const store::status_snapshot& s) {
    if (!tokens || !dispatcher)
        return;
    auto st = tokens->status();
    if (oauth && st.needs_reauth) {
        // `speak4-sync auth exchange` (another process) stored a new grant: take it up.
        const store::auth_view v = store::read_auth(cfg, s);
        const std::string known = st.expires_at ? format_iso8601(*st.expires_at) : "";
        if (v.state == "ok" && v.expires_at && *v.expires_at != known) {
            log::info("new OAuth tokens in the database: resuming");
            oauth->reload();
            dispatcher->credentials_changed();
            st = tokens->status();
        }
    }
    if (st.needs_reauth == queue_parked)
        return;
    queue_parked = st.needs_reauth;
    dispatcher->pause(queue_parked);
    if (queue_parked)
        log::error("queue parked: GHL needs re-authorization; run `speak4-sync auth exchange` "
                   "(the daemon resumes by itself, or on SIGHUP)",
                   {{"reason", st.reason}});
    else
        log::info("queue resumed: the credentials are usable again");
}

void daemon::context::refresh_database_part() {
    if (!db)
        return;
    // Read from the worker's counters, not with a job: a locked database must not stall the
    // health check that reports it.
    const store::db_activity a = db->activity();
    health::part p;
    p.detail["queued_jobs"] = static_cast<std::int64_t>(a.queued);
    if (a.job_running) {
        const auto secs = std::chrono::duration_cast<std::chrono::seconds>(*a.job_running).count();
        p.detail["job_running_seconds"] = secs;
        if (*a.job_running > stall_after()) {
            p.healthy = false;
            p.state = a.lock_wait ? "locked" : "slow";
            p.reason = a.lock_wait
                           ? "a database job has waited " + std::to_string(secs) +
                                 " s for a lock another connection holds (sqlite3, a "
                                 "backup?)"
                           : "a database job has been running for " + std::to_string(secs) + " s";
        } else if (a.lock_wait) {
            p.state = "waiting_for_lock";
        }
    }
    monitor.set_part("database", std::move(p));
}

void daemon::context::refresh_auth_part() {
    if (!tokens)
        return;
    const auto st = tokens->status();
    health::part auth;
    auth.state = st.needs_reauth ? "needs_reauth" : "ok";
    auth.healthy = !st.needs_reauth;
    auth.reason = st.reason;
    auth.detail["mode"] = to_string(st.mode);
    monitor.set_part("auth", std::move(auth));
}

ghl::request_observer daemon::context::request_metrics() {
    return [this](const ghl::request_record& r) {
        metrics.ghl_requests_total
            .with({r.status ? std::to_string(r.status) : std::string("error")})
            .inc();
        if (r.status)
            metrics.ghl_request_duration_seconds.observe(static_cast<double>(r.latency.count()) /
                                                         1000.0);
        if (r.rate_remaining)
            metrics.ghl_rate_limit_remaining.set(static_cast<double>(*r.rate_remaining));
        if (r.status == 429)
            last_429_at = system_clock::instance().now();
        if (r.kind == ghl::error_kind::missing_scope)
            note_missing_scope(r.operation);
    };
}

asio::awaitable<alert_inputs> daemon::context::observe_alerts() {
    struct db_view {
        long long dead = 0;
        std::optional<std::string> oldest_pending_at;
        std::optional<std::string> last_pull_at;
    };
    const db_view v = co_await db->run([](SQLite::Database& d) {
        const auto s = store::read_status(d);
        return db_view{s.queue.dead, store::oldest_pending_at(d), s.last_pull_at};
    });
    const sys_time now = system_clock::instance().now();
    const auto age = [now](const std::optional<std::string>& at) -> std::optional<double> {
        if (!at)
            return std::nullopt;
        const auto t = parse_iso8601(*at);
        if (!t)
            return std::nullopt;
        return static_cast<double>((now - *t).count()) / 1000.0;
    };
    refresh_auth_part();
    alert_inputs in;
    in.dead_letters = v.dead;
    in.oldest_pending_age_seconds = age(v.oldest_pending_at);
    in.last_pull_age_seconds = age(v.last_pull_at);
    in.poll_interval_seconds =
        cfg.sync.direction == sync_direction::push ? 0 : cfg.sync.poll_interval_seconds;
    in.last_429_at = last_429_at;
    in.health = monitor.evaluate(now);
    co_return in;
}

// [rules.field_map] names custom fields: list them from GHL before serving (the cache in the
// database when GHL cannot be reached), so an unknown or ambiguous name refuses to start.
sync::resolved_fields daemon::context::resolve_fields_at_start() {
    std::optional<field_rows> fresh;
    std::string why;
    if (sync::uses_custom_fields(cfg.rules.field_map)) {
        auto fut = asio::co_spawn(io, fetch_custom_fields(*fields_client), asio::use_future);
        while (fut.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
            if (io.stopped())
                io.restart();
            io.run_one_for(std::chrono::milliseconds(100));
        }
        io.restart();
        auto r = fut.get();
        if (r) {
            fresh = std::move(*r);
            log::info("listed the location's custom fields", {{"count", fresh->size()}});
        } else {
            why = r.error();
            log::warn("could not list the location's custom fields; using the cached listing",
                      {{"error", why}});
        }
    }
    try {
        return db->run_sync(
            [this, &fresh](SQLite::Database& d) { return resolve_field_map(cfg, fresh, d); });
    } catch (const config_error& e) {
        if (why.empty())
            throw;
        throw config_error(e.key(), 0,
                           std::string(e.what()) + "\n(listing GHL's custom fields failed: " + why +
                               ")");
    }
}

asio::awaitable<void> daemon::context::refresh_field_map(config next) {
    std::optional<field_rows> fresh;
    if (sync::uses_custom_fields(next.rules.field_map)) {
        auto r = co_await fetch_custom_fields(*fields_client);
        if (r)
            fresh = std::move(*r);
        else
            log::warn("could not list the location's custom fields; using the cached listing",
                      {{"error", r.error()}});
    }
    try {
        auto resolved = co_await db->run(
            [&next, &fresh](SQLite::Database& d) { return resolve_field_map(next, fresh, d); });
        if (server)
            server->set_field_map(std::move(resolved.map), std::move(resolved.custom));
        log::info("field map resolved", {{"fields", next.rules.field_map.size()}});
    } catch (const std::exception& e) {
        log::error("field map refused; keeping the running one", {{"error", e.what()}});
    }
}

// A loop whose coroutine ends on its own is reported down (health), not left looking alive.
std::function<void(std::exception_ptr)> daemon::context::loop_done(const char* name, bool& done) {
    return [this, name, &done](std::exception_ptr e) {
        std::string why;
        if (e) {
            try {
                std::rethrow_exception(e);
            } catch (const std::exception& ex) {
                why = ex.what();
            }
            log::error(std::string(name) + " stopped on an error", {{"error", why}});
        }
        monitor.loop_ended(name, why.empty() && !stopping ? "ended" : why, stopping && !e);
        done = true;
        // Never a running daemon with a dead loop: the loops handle the errors they can outlive
        // themselves, so this is a bug or worse, and the process ends non-zero (systemd
        // restarts it).
        if (!stopping || e)
            fail_hard(static_cast<int>(exit_code::software),
                      std::string(name) + " stopped" + (why.empty() ? "" : ": " + why));
        maybe_finish();
    };
}

void daemon::context::start_dispatcher() {
    dispatcher_done = false;
    // Thresholds: stall_after beyond each loop's own sleep between iterations.
    monitor.loop_started("dispatcher", stall_after() + std::chrono::seconds(1));
    asio::co_spawn(io, dispatcher->run(), loop_done("dispatcher", dispatcher_done));
}

void daemon::context::start() {
    // Before any secret is in memory: no core dump (the units also set LimitCORE=0), no
    // ptrace by same-uid processes, /proc/PID/mem and environ readable by root only.
    if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
        log::warn("prctl(PR_SET_DUMPABLE, 0) failed; core dumps may hold secrets");
    // Stage 1: configuration and credentials. Anything wrong here refuses to start.
    cfg = load(opt);
    log::init(cfg.logging.level, cfg.logging.format);
    sec = load_secrets(cfg, true);
    log::info("starting", {{"config", cfg.source.string()},
                           {"location", cfg.ghl.location_id},
                           {"auth", std::string(to_string(cfg.ghl.auth))}});

    // Stage 2: the database, migrated, on its own thread.
    std::optional<ghl::rate_snapshot> spent; // what a predecessor spent in the current window
    bool new_database = false;               // no predecessor ever spent anything
    {
        auto conn = store::open_database({cfg.database.path});
        const auto m = store::migrate(*conn);
        if (m.from != m.to)
            log::info("migrated database", {{"from", m.from}, {"to", m.to}});
        new_database = m.from == 0;
        SQLite::Statement q(*conn, "SELECT value FROM sync_cursors WHERE name = ?");
        q.bind(1, rate_snapshot_cursor);
        if (q.executeStep()) {
            boost::system::error_code ec;
            auto v = bj::parse(q.getColumn(0).getString(), ec);
            if (!ec && v.is_object())
                spent = ghl::rate_snapshot_from_json(v.as_object());
        }
    }
    db = std::make_unique<store::db_worker>(store::open_options{cfg.database.path});
    if (cfg.sync.direction == sync_direction::pull) {
        // GHL -> Speak4 only: writes accepted before the switch would never be sent. Say so
        // rather than leave them waiting unseen (or send them against the setting).
        const long long writes = db->run_sync([](SQLite::Database& d) {
            return d
                .execAndGet("SELECT COUNT(*) FROM outbox WHERE state IN ('pending','inflight') "
                            "AND op <> 'pull'")
                .getInt64();
        });
        if (writes > 0)
            throw config_error("sync.direction", 0,
                               "sync.direction: is \"pull\", but the outbox holds " +
                                   std::to_string(writes) +
                                   " Speak4 write(s) not yet sent to GHL; run with \"both\" "
                                   "until they drain, or drop them (`speak4-sync queue list`, "
                                   "`queue drop ID`)");
    }
    // Corruption cannot be outlived: end the process (exit 74); its restart refuses the file.
    db->set_on_fatal([this](const store::db_error& e) {
        asio::post(io, [this, why = e.message] { fail_hard(74, why); });
    });
    // Every committed write (a pull, a push's write-back, a webhook, an event) wakes the
    // change feed's long-polls; they look again and wait on if nothing new is there.
    db->set_on_write([this] {
        std::lock_guard lock(feed_mutex);
        if (feed)
            feed->notify_changes();
    });

    // Stage 3: GHL access: transport, rate budget, tokens.
    http = std::make_shared<ghl::http_client>(io.get_executor(), ghl::http_options_from(cfg.ghl));
    limiter = std::make_shared<ghl::rate_limiter>(ghl::rate_limit_options_from(cfg.rate_limit));
    // No 429s caused, restarts included (DESIGN §9): tokens are spent only from reservations
    // saved first, the predecessor's are restored, and without any the burst counts as spent
    // until GHL's first rate-limit headers say what remains.
    {
        const auto now = system_clock::instance().now();
        if (spent)
            limiter->restore(cfg.ghl.location_id, *spent, now);
        else if (!new_database)
            limiter->start_conservatively(cfg.ghl.location_id, now);
        limiter->set_persistence(
            [this](std::string, ghl::rate_snapshot snap) -> asio::awaitable<bool> {
                const std::string value = bj::serialize(ghl::to_json(snap));
                const std::string at = format_iso8601(system_clock::instance().now());
                bool saved = false;
                try {
                    co_await db->run([&](SQLite::Database& d) {
                        SQLite::Statement w(d, "INSERT INTO sync_cursors(name, value, updated_at) "
                                               "VALUES (?, ?, ?) ON CONFLICT(name) DO UPDATE SET "
                                               "value = excluded.value, updated_at = "
                                               "excluded.updated_at");
                        w.bind(1, rate_snapshot_cursor);
                        w.bind(2, value);
                        w.bind(3, at);
                        w.exec();
                    });
                    saved = true;
                } catch (const std::exception& e) {
                    log::error("saving the rate budget failed", {{"error", e.what()}});
                }
                co_return saved;
            });
    }
    if (cfg.ghl.auth == auth_mode::oauth) {
        token_store = std::make_shared<sync::sqlite_token_store>(*db);
        oauth = ghl::oauth_token_provider::create(
            io.get_executor(), ghl::oauth_options_from(cfg.ghl, sec.client_secret), token_store,
            std::make_shared<ghl::http_token_endpoint>(
                http, token_audit(io.get_executor(), *db, request_metrics())));
        tokens = oauth;
    } else {
        pit = std::make_shared<ghl::static_token_provider>(sec.ghl_token);
        tokens = pit;
    }
    // The circuit breaker in front of every request, pushes and pulls alike (DESIGN §9).
    breaker = std::make_shared<ghl::breaker>(breaker_options_from(cfg.breaker));
    {
        ghl::client_options popt = ghl::client_options_from(cfg.ghl, request_metrics());
        popt.breaker = breaker;
        popt.breaker_probe = true;
        popt.lane = ghl::lane::pull;
        prober = std::make_unique<ghl::client>(http, std::move(popt), tokens, limiter);
    }
    breaker->subscribe([this](const ghl::breaker_snapshot& s) {
        asio::post(io, [this, s] { breaker_changed(s); });
    });
    breaker_changed(breaker->snapshot());
    sync::ghl_access access{http, tokens, limiter,
                            ghl::client_options_from(cfg.ghl, request_metrics())};
    access.options.breaker = breaker;
    fields_client =
        std::make_shared<ghl::client>(access.http, access.options, access.tokens, access.limiter);
    sync::resolved_fields fields = resolve_fields_at_start();
    dispatcher = std::make_unique<sync::dispatcher>(io.get_executor(), *db, access,
                                                    sync::dispatcher_options_from(cfg));
    reconciler = std::make_unique<sync::reconciler>(io.get_executor(), *db, access,
                                                    sync::reconciler_options_from(cfg));
    dispatcher->set_pull(reconciler->pull_function());
    // Fetches a pass deferred (durable pulls) are run by the dispatcher: at once.
    reconciler->on_deferred = [this] {
        if (dispatcher)
            dispatcher->wake();
    };
    // Each loop beats once per iteration; a failing iteration says why (health, see
    // core/health.hpp).
    const auto heartbeat = [this](const char* name) {
        return [this, name](const std::string& error) {
            if (error.empty())
                monitor.beat(name);
            else
                monitor.loop_failed(name, error);
        };
    };
    dispatcher->set_heartbeat(heartbeat("dispatcher"));
    reconciler->set_heartbeat(heartbeat("reconciler"));

    // Stage 4: listeners. Binding fails loudly here, before READY.
    auto sopt = api::server_options::from_config(cfg, sec);
    sopt.field_map = std::move(fields.map);
    sopt.custom_fields = std::move(fields.custom);
    sopt.health_check = [this]() -> api::health {
        refresh_auth_part();
        refresh_database_part();
        const health::report r = monitor.evaluate();
        api::health h{r.ok, r.reason, health::to_json(r)};
        if (stopping) {
            h.ok = false;
            h.reason = "stopping";
        }
        return h;
    };
    // New work is looked at when its coalescing window ends, not at the next idle poll.
    sopt.on_work_committed = [this] {
        if (dispatcher)
            dispatcher->wake();
    };
    // /metrics says what /healthz says: the health gauges are set from the registry per scrape.
    // 0 when nothing is pulled, so "no pull for N polls" never fires for a push-only daemon.
    metrics.poll_interval_seconds.set(
        cfg.sync.direction == sync_direction::push ? 0 : cfg.sync.poll_interval_seconds);
    registry.on_collect([this] {
        refresh_auth_part();
        refresh_database_part();
        health::export_metrics(monitor.evaluate(), metrics);
    });
    server = std::make_unique<api::server>(io.get_executor(), std::move(sopt), *db, metrics);
    server->start();
    {
        std::lock_guard lock(feed_mutex);
        feed = server.get();
    }

    // Webhook alerts (optional): a bad URL refuses to start, like any other bad setting.
    if (!sec.alerts_webhook_url.empty())
        alerter =
            webhook_alerter::create(io.get_executor(), sec.alerts_webhook_url, cfg.ghl.location_id,
                                    cfg.alerts, [this] { return observe_alerts(); });

    // Serving.
    dispatcher_done = false;
    reconciler_done = false;
    server_done = false;
    if (cfg.sync.mode == sync_mode::dry_run) {
        // A dry run sends GHL no write: the outbox waits; `plan` shows what it would send.
        dispatcher_done = true;
        health::part mode;
        mode.state = "dry_run";
        mode.reason = "sync.mode = \"dry_run\": no write is sent; set \"live\" and reload";
        monitor.set_part("mode", std::move(mode));
        log::info("sync.mode = \"dry_run\": the outbox waits (speak4-sync plan lists it)");
    } else {
        start_dispatcher();
    }
    if (cfg.sync.direction != sync_direction::push) {
        // Thresholds: stall_after beyond each loop's own sleep between iterations.
        monitor.loop_started("reconciler",
                             stall_after() + std::chrono::seconds(cfg.sync.poll_interval_seconds));
        asio::co_spawn(io, reconciler->run(), loop_done("reconciler", reconciler_done));
    } else {
        reconciler_done = true; // Speak4 -> GHL only: nothing is pulled
        log::info("sync.direction = \"push\": pulls are off");
    }
    asio::co_spawn(io, watch_signals(), asio::detached);
    status_done = false;
    monitor.loop_started("status", stall_after() + std::chrono::seconds(5));
    asio::co_spawn(io, report_status(), loop_done("status", status_done));
    if (alerter)
        asio::co_spawn(io, webhook_alerter::run(alerter), [](std::exception_ptr e) {
            if (e)
                try {
                    std::rethrow_exception(e);
                } catch (const std::exception& ex) {
                    log::error("alerts stopped on an error", {{"error", ex.what()}});
                }
        });
    asio::co_spawn(io, breaker->run_probes([this] { return probe_ghl(); }), asio::detached);
    std::uint64_t usec = 0;
    if (::sd_watchdog_enabled(0, &usec) > 0 && usec > 0)
        asio::co_spawn(io, keep_watchdog(std::chrono::microseconds(usec / 2)), asio::detached);

    notify("READY=1\nSTATUS=serving");
    log::info("ready", {{"listen", cfg.api.listen}, {"api_port", server->port()}});
    if (opt.on_ready)
        opt.on_ready(server->port());
}

void daemon::context::begin_stop() {
    if (stopping)
        return;
    stopping = true;
    notify("STOPPING=1\nSTATUS=stopping");
    log::info("stopping", {{"grace_ms", static_cast<std::int64_t>(opt.grace.count())}});
    signals.cancel();
    watchdog.cancel();
    status_timer.cancel();
    if (dispatcher)
        dispatcher->stop();
    if (reconciler)
        reconciler->stop();
    if (alerter)
        alerter->stop();
    if (breaker)
        breaker->stop();
    if (server)
        server->stop(opt.grace, [this] {
            server_done = true;
            maybe_finish();
        });
    // Work still in flight after the grace period is released: its outbox rows stay in flight
    // and are recovered (as "outcome unknown") at the next start.
    grace_timer.expires_after(opt.grace + std::chrono::seconds(1));
    grace_timer.async_wait([this](boost::system::error_code ec) {
        if (!ec) {
            log::warn("grace period over: releasing work in flight");
            io.stop();
        }
    });
    maybe_finish();
}

void daemon::context::maybe_finish() {
    if (!stopping || !dispatcher_done || !reconciler_done || !server_done || !status_done)
        return;
    grace_timer.cancel();
    if (http)
        asio::co_spawn(io, http->shutdown(), asio::detached);
}

void daemon::context::reload() {
    log::info("reloading configuration and credentials");
    try {
        config next = load(opt);
        secrets next_sec = load_secrets(next, true);
        log::init(next.logging.level, next.logging.format);
        if (next.ghl.auth != cfg.ghl.auth || next.ghl.base_url != cfg.ghl.base_url ||
            next.api.listen != cfg.api.listen || next.database.path != cfg.database.path ||
            next.ghl.location_id != cfg.ghl.location_id)
            log::warn(
                "some changes take effect only after a restart",
                {{"keys", "ghl.auth, ghl.base_url, ghl.location_id, api.listen, database.path"}});
        if (next_sec.alerts_webhook_url != sec.alerts_webhook_url)
            log::warn("some changes take effect only after a restart",
                      {{"keys", "alerts.webhook_url_file"}});
        if (pit)
            pit->set_token(next_sec.ghl_token); // token rotation without dropping work
        if (oauth)
            oauth->reload();
        sec.ghl_token = next_sec.ghl_token;
        sec.client_secret = next_sec.client_secret;
        if (queue_parked) {
            queue_parked = false;
            if (dispatcher)
                dispatcher->pause(false);
        }
        missing_scopes.clear(); // a new grant may have them: the next refusal says so again
        monitor.clear_part("scopes");
        if (dispatcher)
            dispatcher->credentials_changed();
        asio::co_spawn(io, refresh_field_map(next), asio::detached);
        if (cfg.sync.mode == sync_mode::dry_run && next.sync.mode == sync_mode::live && !stopping) {
            // Going live: the waiting outbox goes out, in order.
            cfg.sync.mode = sync_mode::live;
            monitor.clear_part("mode");
            start_dispatcher();
            log::info("sync.mode = \"live\": sending the outbox");
        } else if (cfg.sync.mode == sync_mode::live && next.sync.mode == sync_mode::dry_run) {
            log::warn("some changes take effect only after a restart", {{"keys", "sync.mode"}});
        }
        log::info("reloaded");
    } catch (const std::exception& e) {
        // A bad edit never takes a running daemon down: it keeps the last good settings.
        log::error("reload failed; keeping the running configuration", {{"error", e.what()}});
    }
}

asio::awaitable<void> daemon::context::watch_signals() {
    for (;;) {
        boost::system::error_code ec;
        const int sig = co_await signals.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        if (ec)
            co_return;
        if (sig == SIGHUP) {
            notify("RELOADING=1");
            reload();
            notify("READY=1");
        } else {
            begin_stop();
            co_return;
        }
    }
}

asio::awaitable<void> daemon::context::keep_watchdog(std::chrono::microseconds interval) {
    // WATCHDOG=1 says the process is worth keeping: the network loop runs (this coroutine is on
    // it), no loop is down, and the database thread makes progress: it is idle, or finished a
    // job or an attempt at one recently. A job waiting out another connection's lock makes an
    // attempt every busy_timeout, so a long sqlite3 session is waited out, not aborted; a
    // database thread stuck in a system call stops the pings and systemd restarts the process.
    const auto db_deadline =
        std::chrono::milliseconds(store::open_options{}.busy_timeout_ms) + std::chrono::seconds(10);
    while (!stopping) {
        const health::report r = monitor.evaluate();
        const bool loops_alive = std::none_of(r.loops.begin(), r.loops.end(), [](const auto& l) {
            return l.state == health::loop_state::down;
        });
        const store::db_activity a = db->activity();
        const bool db_alive = a.queued == 0 || a.since_progress < db_deadline;
        if (loops_alive && db_alive)
            notify("WATCHDOG=1");
        else
            log::error("watchdog: not pinging",
                       {{"loops_alive", loops_alive}, {"database_alive", db_alive}});
        watchdog.expires_after(interval);
        boost::system::error_code ec;
        co_await watchdog.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
}

asio::awaitable<void> daemon::context::report_status() {
    auto next_prune = std::chrono::steady_clock::now();
    while (!stopping) {
        std::string failure;
        if (std::chrono::steady_clock::now() >= next_prune) {
            // Audit rows and finished outbox rows older than sync.audit_retention_days go.
            const auto cutoff =
                system_clock::instance().now() - std::chrono::days(cfg.sync.audit_retention_days);
            store::retention_policy keep;
            keep.inbox_days = cfg.sync.inbox_retention_days;
            keep.changes_days = cfg.sync.changes_retention_days;
            keep.conflicts_days = cfg.sync.conflicts_retention_days;
            auto n = co_await db->try_run([cutoff, keep](SQLite::Database& d) {
                long long rows = sync::outbox_store(d).prune(cutoff);
                // Bounded batches: a backlog after a long time away goes over several turns.
                for (int i = 0; i < 20; ++i) {
                    const auto h = store::prune_history(d, system_clock::instance().now(), keep);
                    rows += h.total();
                    if (h.total() == 0)
                        break;
                }
                return rows;
            });
            if (n) {
                next_prune = std::chrono::steady_clock::now() + std::chrono::hours(1);
                if (*n)
                    log::info("pruned old rows (audit, outbox, inbox bodies, changes, conflicts)",
                              {{"rows", *n}});
            } else {
                // Tried again at the next turn (5 s), not in an hour.
                failure = "pruning failed: " + n.error().message;
            }
        }
        // Every 5 s: indexed counts of the states that matter and one cursor, not COUNT(*) over
        // the mirror; the full snapshot only while parked (its oauth rows show a new grant).
        const bool want_auth = oauth && tokens->status().needs_reauth;
        // The breaker as `status --json` shows it (another process reads the database).
        const std::string br = breaker ? bj::serialize(ghl::to_json(breaker->snapshot())) : "";
        const std::string now = format_iso8601(system_clock::instance().now());
        auto s = co_await db->try_run([want_auth, &br, &now](SQLite::Database& d) {
            if (!br.empty()) {
                SQLite::Statement w(d, "INSERT INTO sync_cursors(name, value, updated_at) "
                                       "VALUES ('breaker', ?, ?) ON CONFLICT(name) DO UPDATE "
                                       "SET value = excluded.value, updated_at = "
                                       "excluded.updated_at");
                w.bind(1, br);
                w.bind(2, now);
                w.exec();
            }
            if (want_auth)
                return store::read_status(d);
            store::status_snapshot out;
            SQLite::Statement q(d, "SELECT COUNT(*) FROM outbox WHERE state = ?");
            const std::pair<const char*, long long*> states[] = {{"pending", &out.queue.pending},
                                                                 {"inflight", &out.queue.inflight},
                                                                 {"dead", &out.queue.dead}};
            for (const auto& [name, dst] : states) {
                q.reset();
                q.bind(1, name);
                if (q.executeStep())
                    *dst = q.getColumn(0).getInt64();
            }
            SQLite::Statement c(d, "SELECT value FROM sync_cursors WHERE name = 'last_pull_at'");
            if (c.executeStep())
                out.last_pull_at = c.getColumn(0).getString();
            return out;
        });
        if (s) {
            std::string line = "STATUS=queue pending " + std::to_string(s->queue.pending) +
                               ", inflight " + std::to_string(s->queue.inflight) + ", dead " +
                               std::to_string(s->queue.dead) + "; last pull " +
                               s->last_pull_at.value_or("never");
            notify(line);
            supervise_auth(*s);
            if (s->last_pull_at)
                if (auto t = parse_iso8601(*s->last_pull_at))
                    metrics.last_pull_age_seconds.set(
                        static_cast<double>((system_clock::instance().now() - *t).count()) /
                        1000.0);
        } else if (failure.empty()) {
            failure = "status report failed: " + s.error().message;
        }
        // One log line per streak of failures, one when it ends.
        if (!failure.empty() && status_failing.empty())
            log::error("status/pruning: database work failed; retrying", {{"error", failure}});
        else if (failure.empty() && !status_failing.empty())
            log::info("status/pruning: database work resumed");
        status_failing = failure;
        if (failure.empty())
            monitor.beat("status");
        else
            monitor.loop_failed("status", failure);
        status_timer.expires_after(std::chrono::seconds(5));
        boost::system::error_code ec;
        co_await status_timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
}

daemon::daemon(run_options opt)
    : opt_(std::move(opt)) {}

daemon::~daemon() = default;

int daemon::run() {
    ctx_ = std::make_unique<context>(opt_);
    context& c = *ctx_;
    try {
        c.start();
    } catch (...) {
        // A half-finished start: stop whatever did start, then report.
        c.begin_stop();
        c.io.restart();
        c.io.run_for(std::chrono::seconds(5));
        if (c.db)
            c.db->stop(); // queued jobs may use what the reset below destroys
        ctx_.reset();
        throw;
    }
    c.io.run();
    // Everything on the network thread has finished (or was released after the grace period).
    {
        std::lock_guard lock(c.feed_mutex);
        c.feed = nullptr;
    }
    // Database jobs still queued after the grace period capture the dispatcher, the reconciler
    // and the routes (and their suspended coroutines' locals): finish them first, then destroy
    // what they use.
    c.db->stop();
    c.server.reset();
    c.dispatcher.reset();
    c.reconciler.reset();
    const int status = c.exit_status;
    if (status == 0)
        log::info("stopped");
    ctx_.reset();
    return status;
}

void daemon::request_stop() {
    if (ctx_)
        asio::post(ctx_->io, [c = ctx_.get()] { c->begin_stop(); });
}

void daemon::request_reload() {
    if (ctx_)
        asio::post(ctx_->io, [c = ctx_.get()] { c->reload(); });
}

} // namespace speak4::app
