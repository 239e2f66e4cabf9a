#pragma once
// Opening the SQLite mirror: WAL, busy timeout, foreign keys, and a deliberate `synchronous`.

#include <SQLiteCpp/Database.h>
#include <filesystem>
#include <memory>

namespace speak4::store {

struct open_options {
    std::filesystem::path path;
    bool create = true; // create the file (and its directory) if missing
    bool read_only = false;
    int busy_timeout_ms = 5000; // how long a writer waits for another writer's lock
    /// How long db_worker retries a job that found the database locked (busy_timeout each try,
    /// then a backoff) before it reports `busy` to the caller.
    int busy_retry_ms = 30000;
};

/// Opens the database and applies the connection pragmas. Throws io_error with a message that
/// names the path and the cause ("database /x/y.db: file is not a database (corrupt or not
/// SQLite)", "database /x/y.db: unable to open database file").
/// Threading: a SQLite::Database is used by one thread at a time.
std::unique_ptr<SQLite::Database> open_database(const open_options& opt);

/// Turns a SQLite failure into a one-line message naming the database and what failed.
std::string describe_sqlite_error(const std::filesystem::path& path, const std::exception& e);

} // namespace speak4::store
