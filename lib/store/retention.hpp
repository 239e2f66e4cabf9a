#pragma once
// Retention of what grows with traffic: inbox bodies (up to 256 KiB each), the change feed and
// the conflict log are pruned by age, oldest first and in bounded batches, so the database size
// stays flat under steady traffic. An inbox row itself stays (its event_id is what tells a
// repeated event from a new one); only its body is emptied, and never the body behind a dead
// letter (the console shows it).

#include "core/time.hpp"

#include <SQLiteCpp/Database.h>

namespace speak4::store {

struct retention_policy {
    int inbox_days = 30;     ///< sync.inbox_retention_days
    int changes_days = 30;   ///< sync.changes_retention_days (the feed keeps at least 1 day)
    int conflicts_days = 90; ///< sync.conflicts_retention_days
    int batch = 5000;        ///< rows looked at per table and call
};

struct pruned_history {
    long long inbox_bodies = 0;
    long long changes = 0;
    long long conflicts = 0;
    long long total() const { return inbox_bodies + changes + conflicts; }
};

/// One bounded pass (one transaction). Threading: the database thread.
pruned_history prune_history(SQLite::Database& db, sys_time now, const retention_policy& p);

} // namespace speak4::store
