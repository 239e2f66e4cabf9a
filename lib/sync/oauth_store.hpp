#pragma once
// The OAuth token store of lib/ghl, kept in SQLite (`oauth_tokens`). GHL's refresh token is
// single-use, so save() returns only after the new pair is committed (synchronous = FULL).

#include "ghl/auth.hpp"
#include "store/db_worker.hpp"

namespace speak4::sync {

namespace asio = boost::asio;

/// Threading: any executor; the SQLite work runs on the db_worker's thread.
class sqlite_token_store final : public ghl::oauth_token_store {
public:
    explicit sqlite_token_store(store::db_worker& db);

    asio::awaitable<ghl::store_result<std::optional<ghl::token_set>>>
    load(std::string location_id) override;
    asio::awaitable<ghl::store_result<void>> save(ghl::token_set tokens) override;
    asio::awaitable<ghl::store_result<void>> mark_needs_reauth(std::string location_id,
                                                               std::string reason) override;

    /// The synchronous bodies, for the CLI (no event loop) and tests.
    static std::optional<ghl::token_set> load_sync(SQLite::Database& db,
                                                   const std::string& location_id);
    static void save_sync(SQLite::Database& db, const ghl::token_set& tokens);
    static void mark_needs_reauth_sync(SQLite::Database& db, const std::string& location_id,
                                       const std::string& reason, sys_time now);

private:
    store::db_worker& db_;
};

} // namespace speak4::sync
