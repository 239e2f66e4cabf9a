#include "app/online_check.hpp"

#include "ghl/client.hpp"
#include "store/db_worker.hpp"
#include "store/migrations.hpp"
#include "sync/custom_fields.hpp"
#include "sync/oauth_store.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

namespace speak4::app {

namespace asio = boost::asio;

bool online_report::ok() const {
    for (const auto& c : checks)
        if (c.result != scope_check::state::granted)
            return false;
    return true;
}

namespace {

/// How a probe's outcome speaks about its scope. `write_probe`: a 4xx other than 401 proves
/// the scope (GHL checked it before looking at the made-up id).
void classify(scope_check& c, const std::optional<ghl::error>& e, bool write_probe) {
    if (!e) {
        c.result = scope_check::state::granted;
        c.detail = "ok";
        return;
    }
    c.detail = e->what();
    if (e->status == 401 || e->status == 403 || e->kind == ghl::error_kind::auth ||
        e->kind == ghl::error_kind::needs_reauth) {
        c.result = scope_check::state::missing;
        return;
    }
    if (write_probe && e->status >= 400 && e->status < 500 && e->status != 429) {
        c.result = scope_check::state::granted;
        c.detail = "ok (GHL answered " + std::to_string(e->status) + " about the probe's id)";
        return;
    }
    c.result = scope_check::state::unknown; // GHL down, timeout, 5xx: no verdict
}

} // namespace

online_report check_online(const config& cfg, const secrets& sec) {
    // OAuth tokens live in the database; a private token needs none (init checks before any
    // database exists).
    std::unique_ptr<store::db_worker> db;
    if (cfg.ghl.auth == auth_mode::oauth) {
        {
            auto conn = store::open_database({cfg.database.path});
            store::migrate(*conn);
        }
        db = std::make_unique<store::db_worker>(store::open_options{cfg.database.path});
    }
    asio::io_context io;
    auto http =
        std::make_shared<ghl::http_client>(io.get_executor(), ghl::http_options_from(cfg.ghl));
    std::shared_ptr<ghl::token_provider> tokens;
    if (cfg.ghl.auth == auth_mode::oauth)
        tokens = ghl::oauth_token_provider::create(
            io.get_executor(), ghl::oauth_options_from(cfg.ghl, sec.client_secret),
            std::make_shared<sync::sqlite_token_store>(*db),
            std::make_shared<ghl::http_token_endpoint>(http));
    else
        tokens = std::make_shared<ghl::static_token_provider>(sec.ghl_token);
    auto limiter =
        std::make_shared<ghl::rate_limiter>(ghl::rate_limit_options_from(cfg.rate_limit));
    online_report report;
    ghl::client client(http,
                       ghl::client_options_from(cfg.ghl,
                                                [&report](const auto& r) {
                                                    if (r.rate_remaining)
                                                        report.rate_remaining = r.rate_remaining;
                                                    if (r.daily_remaining)
                                                        report.daily_remaining = r.daily_remaining;
                                                }),
                       tokens, limiter);

    auto session = [&]() -> asio::awaitable<void> {
        scope_check read{"contacts.readonly",
                         cfg.sync.direction == sync_direction::push
                             ? "the lookups pushes make (search, children)"
                             : "pulls (GHL → Speak4)",
                         "GET /contacts/"};
        ghl::list_request lr;
        lr.limit = 1;
        auto l = co_await client.list_contacts(lr);
        std::optional<ghl::error> le;
        if (!l)
            le = l.error();
        classify(read, le, false);
        report.checks.push_back(std::move(read));

        // sync.direction = "pull" never writes: the write scope is not needed, so not probed.
        if (cfg.sync.direction != sync_direction::pull) {
            scope_check write{"contacts.write", "pushes (Speak4 → GHL)",
                              "PUT /contacts/:contactId"};
            ghl::contact_write w;
            w.first_name = "speak4-sync scope probe";
            auto u = co_await client.update_contact("speak4SyncScopeProbe0", std::move(w));
            std::optional<ghl::error> ue;
            if (!u)
                ue = u.error();
            classify(write, ue, true);
            if (u) // it cannot exist; if GHL says it updated something, say so
                write.detail = "ok (GHL accepted the probe)";
            report.checks.push_back(std::move(write));
        }

        if (sync::uses_custom_fields(cfg.rules.field_map)) {
            scope_check cf{"locations/customFields.readonly", "[rules.field_map] custom fields",
                           "GET /locations/:locationId/customFields"};
            auto f = co_await client.list_custom_fields();
            std::optional<ghl::error> fe;
            if (!f)
                fe = f.error();
            classify(cf, fe, false);
            report.checks.push_back(std::move(cf));
        }
        co_await http->shutdown();
    };
    auto fut = asio::co_spawn(io, session(), asio::use_future);
    io.run();
    fut.get();
    if (db)
        db->stop();
    return report;
}

} // namespace speak4::app
