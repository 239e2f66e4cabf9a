#pragma once
// Prepared statements compiled once per connection and reused (SQLite's parse/plan is the
// expensive part of a small statement).

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <memory>
#include <string>
#include <unordered_map>

namespace speak4::store {

/// Threading: like its connection, used by one thread at a time.
class statement_cache {
public:
    explicit statement_cache(SQLite::Database& db)
        : db_(db) {}

    /// The prepared statement for `sql`, reset and with its bindings cleared. tryReset(), not
    /// reset(): reset() rethrows the error of the statement's last failed step, which would fail
    /// this new use too.
    SQLite::Statement& get(const std::string& sql) {
        auto it = cache_.find(sql);
        if (it == cache_.end())
            it = cache_.emplace(sql, std::make_unique<SQLite::Statement>(db_, sql)).first;
        it->second->tryReset();
        it->second->clearBindings();
        return *it->second;
    }

    /// Resets every statement. Call at the end of each unit of work: a SELECT left on a row
    /// keeps the connection's read transaction open after COMMIT, so it would stop seeing other
    /// connections' writes and its next BEGIN IMMEDIATE would fail with "database is locked".
    void reset_all() noexcept {
        for (auto& kv : cache_)
            kv.second->tryReset();
    }

    SQLite::Database& db() { return db_; }

private:
    SQLite::Database& db_;
    std::unordered_map<std::string, std::unique_ptr<SQLite::Statement>> cache_;
};

} // namespace speak4::store
