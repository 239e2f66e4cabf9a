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
    explicit statement_cache(SQLite::Database& db) : db_(db) {}

    /// The prepared statement for `sql`, reset and with its bindings cleared.
    SQLite::Statement& get(const std::string& sql) {
        auto it = cache_.find(sql);
        if (it == cache_.end())
            it = cache_.emplace(sql, std::make_unique<SQLite::Statement>(db_, sql)).first;
        it->second->reset();
        it->second->clearBindings();
        return *it->second;
    }

    SQLite::Database& db() { return db_; }

private:
    SQLite::Database& db_;
    std::unordered_map<std::string, std::unique_ptr<SQLite::Statement>> cache_;
};

} // namespace speak4::store
