#include "app/auth.hpp"

#include "core/clock.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "core/time.hpp"
#include "ghl/client.hpp"
#include "store/db_worker.hpp"
#include "store/migrations.hpp"
#include "store/statement_cache.hpp"
#include "sync/dispatcher.hpp"
#include "sync/oauth_store.hpp"

#include <SQLiteCpp/Transaction.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

namespace speak4::app {

ghl::request_observer token_audit(boost::asio::any_io_executor ex, store::db_worker& db,
                                  ghl::request_observer also) {
    namespace asio = boost::asio;
    return [ex, &db, also = std::move(also)](const ghl::request_record& r) {
        if (also)
            also(r);
        // The record names the method, the path (/oauth/token, no query) and GHL's message;
        // the form (code, refresh token, client secret) is never part of it.
        std::vector<sync::audit_entry> rows{sync::audit_from_request(r)};
        asio::co_spawn(
            ex,
            [&db, rows = std::move(rows)]() -> asio::awaitable<void> {
                auto w = co_await db.try_run([&rows](SQLite::Database& d) {
                    store::statement_cache st(d);
                    SQLite::Transaction tx(d, SQLite::TransactionBehavior::IMMEDIATE);
                    sync::write_audit_rows(st, rows,
                                           format_iso8601(system_clock::instance().now()));
                    st.reset_all();
                    tx.commit();
                });
                if (!w)
                    log::warn("audit row for POST /oauth/token not written",
                              {{"error", w.error().message}});
            },
            asio::detached);
    };
}

boost::system::result<ghl::token_info, std::string>
exchange_code(const config& cfg, const secrets& sec, const secret& code) {
    namespace asio = boost::asio;
    if (cfg.ghl.auth != auth_mode::oauth)
        throw config_error("ghl.auth", 0,
                           "ghl.auth: must be \"oauth\" to exchange an authorization code");
    if (cfg.ghl.client_id.empty())
        throw config_error("ghl.client_id", 0, "ghl.client_id: is required for OAuth");
    {
        auto conn = store::open_database({cfg.database.path});
        store::migrate(*conn);
    }
    store::db_worker db({cfg.database.path});
    asio::io_context io;
    auto http =
        std::make_shared<ghl::http_client>(io.get_executor(), ghl::http_options_from(cfg.ghl));
    auto provider = ghl::oauth_token_provider::create(
        io.get_executor(), ghl::oauth_options_from(cfg.ghl, sec.client_secret),
        std::make_shared<sync::sqlite_token_store>(db),
        std::make_shared<ghl::http_token_endpoint>(http, token_audit(io.get_executor(), db)));
    // Close the pooled connection afterwards, or io.run() would wait out its idle timer.
    auto session = [&]() -> asio::awaitable<ghl::result<ghl::token_info>> {
        auto r = co_await provider->exchange_code(code);
        co_await http->shutdown();
        co_return r;
    };
    auto fut = asio::co_spawn(io, session(), asio::use_future);
    io.run();
    auto r = fut.get();
    db.stop();
    if (!r)
        return {boost::system::in_place_error, r.error().what()};
    return *r;
}

} // namespace speak4::app
