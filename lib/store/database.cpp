#include "store/database.hpp"

#include "core/error.hpp"

#include <SQLiteCpp/Exception.h>
#include <sqlite3.h>

namespace speak4::store {

std::string describe_sqlite_error(const std::filesystem::path& path, const std::exception& e) {
    std::string msg = "database " + path.string() + ": " + e.what();
    if (const auto* se = dynamic_cast<const SQLite::Exception*>(&e)) {
        switch (se->getErrorCode()) {
        case SQLITE_NOTADB:
        case SQLITE_CORRUPT:
            msg += " (the file is corrupt or not a SQLite database; restore it from a backup)";
            break;
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
            msg += " (another process holds a write lock; is a migration or backup running?)";
            break;
        case SQLITE_FULL:
            msg += " (the disk is full; free space and the daemon resumes by itself)";
            break;
        case SQLITE_READONLY:
        case SQLITE_CANTOPEN:
        case SQLITE_PERM:
            msg += " (check the path and the permissions of the file and its directory)";
            break;
        default:
            break;
        }
    }
    return msg;
}

std::unique_ptr<SQLite::Database> open_database(const open_options& opt) {
    try {
        if (opt.create && !opt.read_only && opt.path.has_parent_path()) {
            std::error_code ec;
            std::filesystem::create_directories(opt.path.parent_path(), ec);
        }
        int flags = opt.read_only ? SQLite::OPEN_READONLY : SQLite::OPEN_READWRITE;
        if (opt.create && !opt.read_only)
            flags |= SQLite::OPEN_CREATE;
        flags |= SQLITE_OPEN_NOMUTEX; // one thread per connection; our own code serializes
        auto db = std::make_unique<SQLite::Database>(opt.path.string(), flags, opt.busy_timeout_ms);
        // The first statements also validate the file: a non-database fails here with NOTADB.
        if (!opt.read_only)
            db->exec("PRAGMA journal_mode = WAL");
        // synchronous = FULL: an event is acknowledged (202, `emit` exit 0) only after its
        // commit, and that promise must survive a power loss, not just a process crash. NORMAL
        // in WAL mode could lose the last commits on power failure. The cost (one fsync per
        // commit) is paid once per batch: intake groups concurrent events into one transaction.
        db->exec("PRAGMA synchronous = FULL");
        db->exec("PRAGMA foreign_keys = ON");
        // Keep the WAL from growing without bound between checkpoints under steady writes.
        db->exec("PRAGMA journal_size_limit = 67108864");
        (void)db->execAndGet("PRAGMA user_version").getInt();
        return db;
    } catch (const SQLite::Exception& e) {
        throw io_error(describe_sqlite_error(opt.path, e));
    }
}

} // namespace speak4::store
