#include "store/retention.hpp"

#include <SQLiteCpp/Statement.h>
#include <SQLiteCpp/Transaction.h>
#include <algorithm>

namespace speak4::store {

pruned_history prune_history(SQLite::Database& db, sys_time now, const retention_policy& p) {
    using days = std::chrono::days;
    const std::string inbox_cut = format_iso8601(now - days(std::max(p.inbox_days, 1)));
    const std::string changes_cut = format_iso8601(now - days(std::max(p.changes_days, 1)));
    const std::string conflicts_cut = format_iso8601(now - days(std::max(p.conflicts_days, 1)));
    pruned_history out;
    SQLite::Transaction tx(db, SQLite::TransactionBehavior::IMMEDIATE);
    // Oldest first by primary key, a batch at a time: ids grow with time, so each pass looks at
    // the old end only, never the whole table. A cursor remembers how far inbox bodies went
    // (emptied rows stay and would be looked at again).
    long long from = 0;
    {
        SQLite::Statement c(db, "SELECT value FROM sync_cursors WHERE name = 'retention.inbox_id'");
        if (c.executeStep())
            from = std::atoll(c.getColumn(0).getString().c_str());
    }
    long long last = from;
    {
        SQLite::Statement q(db,
                            "SELECT id, received_at FROM inbox WHERE id > ? ORDER BY id LIMIT ?");
        q.bind(1, static_cast<std::int64_t>(from));
        q.bind(2, p.batch);
        SQLite::Statement u(db, "UPDATE inbox SET body = '' WHERE id = ? AND body <> '' AND "
                                "NOT EXISTS (SELECT 1 FROM outbox o WHERE o.state = 'dead' AND "
                                "o.inbox_id = inbox.id)");
        while (q.executeStep()) {
            if (q.getColumn(1).getString() >= inbox_cut)
                break; // newer from here on
            last = q.getColumn(0).getInt64();
            u.reset();
            u.bind(1, static_cast<std::int64_t>(last));
            out.inbox_bodies += u.exec();
        }
    }
    if (last != from) {
        SQLite::Statement c(db, "INSERT INTO sync_cursors(name, value, updated_at) VALUES "
                                "('retention.inbox_id', ?, ?) ON CONFLICT(name) DO UPDATE SET "
                                "value = excluded.value, updated_at = excluded.updated_at");
        c.bind(1, std::to_string(last));
        c.bind(2, format_iso8601(now));
        c.exec();
    }
    {
        SQLite::Statement d(db, "DELETE FROM changes WHERE seq IN (SELECT seq FROM changes "
                                "ORDER BY seq LIMIT ?) AND ts < ?");
        d.bind(1, p.batch);
        d.bind(2, changes_cut);
        out.changes = d.exec();
    }
    {
        SQLite::Statement d(db, "DELETE FROM conflicts WHERE id IN (SELECT id FROM conflicts "
                                "ORDER BY id LIMIT ?) AND ts < ?");
        d.bind(1, p.batch);
        d.bind(2, conflicts_cut);
        out.conflicts = d.exec();
    }
    tx.commit();
    return out;
}

} // namespace speak4::store
