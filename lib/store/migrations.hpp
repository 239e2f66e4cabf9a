#pragma once
// Schema migrations: migrations/NNNN_name.sql, embedded at build time, applied in order, each
// with its version bump in one IMMEDIATE transaction.

#include <string>
#include <vector>

namespace SQLite {
class Database;
}

namespace speak4::store {

struct migration {
    int version;
    std::string name;
    std::string sql;
};

/// Every migration shipped with this binary, ordered by version.
const std::vector<migration>& embedded_migrations();

struct migrate_result {
    int from = 0;
    int to = 0;
};

/// Applies the migrations newer than the database's version, each with its version bump in one
/// IMMEDIATE transaction. Throws io_error when the database is newer than `all` knows
/// ("database schema version 7 is newer than this binary (5); upgrade speak4-sync").
migrate_result migrate(SQLite::Database& db,
                       const std::vector<migration>& all = embedded_migrations());

/// The schema version recorded in the database (PRAGMA user_version).
int schema_version(SQLite::Database& db);

} // namespace speak4::store
