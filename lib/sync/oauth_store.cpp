#include "sync/oauth_store.hpp"

#include <SQLiteCpp/Statement.h>
#include <SQLiteCpp/Transaction.h>

namespace speak4::sync {

sqlite_token_store::sqlite_token_store(store::db_worker& db)
    : db_(db) {}

std::optional<ghl::token_set> sqlite_token_store::load_sync(SQLite::Database& db,
                                                            const std::string& location_id) {
    SQLite::Statement q(
        db, "SELECT access_token, refresh_token, expires_at, scope, user_type, company_id, "
            "updated_at, state FROM oauth_tokens WHERE location_id = ?");
    q.bind(1, location_id);
    if (!q.executeStep())
        return std::nullopt;
    ghl::token_set t;
    t.location_id = location_id;
    t.access_token = secret(q.getColumn(0).getString());
    t.refresh_token = secret(q.getColumn(1).getString());
    t.expires_at = parse_iso8601(q.getColumn(2).getString()).value_or(sys_time{});
    t.scope = q.getColumn(3).getString();
    t.user_type = q.getColumn(4).isNull() ? "Location" : q.getColumn(4).getString();
    t.company_id = q.getColumn(5).getString();
    t.obtained_at = parse_iso8601(q.getColumn(6).getString()).value_or(sys_time{});
    return t;
}

void sqlite_token_store::save_sync(SQLite::Database& db, const ghl::token_set& t) {
    SQLite::Transaction tx(db, SQLite::TransactionBehavior::IMMEDIATE);
    SQLite::Statement u(db, R"(
        INSERT INTO oauth_tokens(location_id, access_token, refresh_token, expires_at, scope, user_type,
                                 company_id, state, state_reason, updated_at)
        VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'ok', NULL, ?8)
        ON CONFLICT(location_id) DO UPDATE SET access_token = excluded.access_token,
            refresh_token = excluded.refresh_token, expires_at = excluded.expires_at,
            scope = excluded.scope, user_type = excluded.user_type, company_id = excluded.company_id,
            state = 'ok', state_reason = NULL, updated_at = excluded.updated_at)");
    u.bind(1, t.location_id);
    u.bind(2, t.access_token.reveal());
    u.bind(3, t.refresh_token.reveal());
    u.bind(4, format_iso8601(t.expires_at));
    u.bind(5, t.scope);
    u.bind(6, t.user_type);
    u.bind(7, t.company_id);
    u.bind(8, format_iso8601(t.obtained_at));
    u.exec();
    tx.commit();
}

void sqlite_token_store::mark_needs_reauth_sync(SQLite::Database& db,
                                                const std::string& location_id,
                                                const std::string& reason, sys_time now) {
    // A location that never had tokens gets a row too, so `status` can show why.
    SQLite::Statement u(db, R"(
        INSERT INTO oauth_tokens(location_id, access_token, refresh_token, expires_at, state, state_reason, updated_at)
        VALUES (?1, '', '', ?3, 'needs_reauth', ?2, ?3)
        ON CONFLICT(location_id) DO UPDATE SET state = 'needs_reauth', state_reason = excluded.state_reason,
            updated_at = excluded.updated_at)");
    u.bind(1, location_id);
    u.bind(2, reason);
    u.bind(3, format_iso8601(now));
    u.exec();
}

asio::awaitable<ghl::store_result<std::optional<ghl::token_set>>>
sqlite_token_store::load(std::string location_id) {
    try {
        co_return co_await db_.run([&](SQLite::Database& db) {
            auto t = load_sync(db, location_id);
            // A row that only records needs_reauth holds no tokens.
            if (t && t->refresh_token.empty())
                t.reset();
            return t;
        });
    } catch (const std::exception& e) {
        co_return ghl::store_result<std::optional<ghl::token_set>>(
            boost::system::in_place_error, std::string("oauth_tokens: ") + e.what());
    }
}

asio::awaitable<ghl::store_result<void>> sqlite_token_store::save(ghl::token_set tokens) {
    try {
        co_await db_.run([&](SQLite::Database& db) { save_sync(db, tokens); });
        co_return ghl::store_result<void>();
    } catch (const std::exception& e) {
        co_return ghl::store_result<void>(boost::system::in_place_error,
                                          std::string("oauth_tokens: ") + e.what());
    }
}

asio::awaitable<ghl::store_result<void>>
sqlite_token_store::mark_needs_reauth(std::string location_id, std::string reason) {
    try {
        co_await db_.run([&](SQLite::Database& db) {
            mark_needs_reauth_sync(db, location_id, reason, system_clock::instance().now());
        });
        co_return ghl::store_result<void>();
    } catch (const std::exception& e) {
        co_return ghl::store_result<void>(boost::system::in_place_error,
                                          std::string("oauth_tokens: ") + e.what());
    }
}

} // namespace speak4::sync
