#include "store/migrations.hpp"

#include "core/clock.hpp"
#include "core/error.hpp"

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <SQLiteCpp/Transaction.h>
#include <string>

namespace speak4::store {

int schema_version(SQLite::Database& db) {
    return db.execAndGet("PRAGMA user_version").getInt();
}

migrate_result migrate(SQLite::Database& db, const std::vector<migration>& all) {
    const int latest = all.empty() ? 0 : all.back().version;
    migrate_result r;
    r.from = schema_version(db);
    r.to = r.from;
    if (r.from > latest)
        throw io_error("database schema version " + std::to_string(r.from) +
                       " is newer than this binary knows (" + std::to_string(latest) +
                       "); run the speak4-sync that wrote it, or a newer one");
    for (const auto& m : all) {
        if (m.version <= r.to)
            continue;
        // IMMEDIATE takes the write lock up front, so two processes migrating at once queue up
        // instead of both reading the old version; the version is re-read under the lock.
        SQLite::Transaction tx(db, SQLite::TransactionBehavior::IMMEDIATE);
        if (schema_version(db) >= m.version) {
            r.to = schema_version(db);
            continue;
        }
        db.exec(m.sql);
        SQLite::Statement rec(
            db, "INSERT INTO schema_migrations(version, name, applied_at) VALUES (?,?,?)");
        rec.bind(1, m.version);
        rec.bind(2, m.name);
        rec.bind(3, format_iso8601(system_clock::instance().now()));
        rec.exec();
        db.exec("PRAGMA user_version = " + std::to_string(m.version));
        tx.commit();
        r.to = m.version;
    }
    return r;
}

} // namespace speak4::store
