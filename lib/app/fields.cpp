#include "app/fields.hpp"

#include "core/error.hpp"
#include "core/log.hpp"
#include "core/time.hpp"
#include "store/db_worker.hpp"
#include "store/migrations.hpp"
#include "sync/oauth_store.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

namespace speak4::app {

namespace asio = boost::asio;

asio::awaitable<boost::system::result<field_rows, std::string>>
fetch_custom_fields(ghl::client& client) {
    auto r = co_await client.list_custom_fields();
    if (!r)
        co_return boost::system::result<field_rows, std::string>(boost::system::in_place_error,
                                                                 r.error().what());
    field_rows out;
    out.reserve(r->size());
    for (auto& f : *r)
        out.push_back({std::move(f.id), std::move(f.name), std::move(f.field_key),
                       std::move(f.data_type), f.model.empty() ? "contact" : std::move(f.model),
                       std::move(f.options)});
    co_return out;
}

boost::system::result<field_rows, std::string> list_from_ghl(const config& cfg, const secrets& sec,
                                                             bool use_database) {
    if (cfg.ghl.location_id.empty())
        throw config_error("ghl.location_id", 0,
                           "ghl.location_id: is required to list the location's custom fields");
    if (!use_database && cfg.ghl.auth == auth_mode::oauth)
        throw config_error("ghl.auth", 0,
                           "ghl.auth: OAuth tokens live in the database; list custom fields "
                           "with `speak4-sync fields` after `auth exchange`");
    std::unique_ptr<store::db_worker> db;
    if (use_database) {
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
    ghl::client client(http, ghl::client_options_from(cfg.ghl), tokens, limiter);
    auto session = [&]() -> asio::awaitable<boost::system::result<field_rows, std::string>> {
        auto r = co_await fetch_custom_fields(client);
        co_await http->shutdown();
        co_return r;
    };
    auto fut = asio::co_spawn(io, session(), asio::use_future);
    io.run();
    auto r = fut.get();
    if (r && db) {
        const std::string now = format_iso8601(system_clock::instance().now());
        const field_rows rows = *r;
        db->run_sync(
            [&rows, &now](SQLite::Database& d) { store::save_custom_fields(d, rows, now); });
    }
    if (db)
        db->stop();
    return r;
}

sync::resolved_fields resolve_field_map(const config& cfg, const std::optional<field_rows>& fresh,
                                        SQLite::Database& db) {
    std::optional<store::custom_field_cache> cached;
    if (fresh)
        store::save_custom_fields(db, *fresh, format_iso8601(system_clock::instance().now()));
    else
        cached = store::load_custom_fields(db);
    const field_rows* listing = fresh ? &*fresh : cached ? &cached->fields : nullptr;
    auto r = sync::resolve_fields(cfg.rules.field_map, listing);
    if (!r) {
        const std::string& all = r.error();
        const std::string first = all.substr(0, all.find('\n'));
        throw config_error(first.substr(0, first.find(':')), 0, all);
    }
    if (!fresh && cached && !cfg.rules.field_map.empty())
        log::info("custom fields resolved from the cache", {{"listed_at", cached->fetched_at}});
    return std::move(*r);
}

} // namespace speak4::app
