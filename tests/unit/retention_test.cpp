// Retention: old inbox bodies are emptied (the row and its event_id stay, the body behind a dead
// letter too), old change feed and conflict rows go, recent ones stay; batches are bounded and
// a later pass carries on where the last one stopped.
#include "store/database.hpp"
#include "store/migrations.hpp"
#include "store/retention.hpp"
#include "support/test_support.hpp"

#include <SQLiteCpp/Statement.h>
#include <gtest/gtest.h>

using namespace speak4;
using namespace std::chrono_literals;

namespace {

const sys_time now = *parse_iso8601("2026-12-01T12:00:00Z");

long long count(SQLite::Database& db, const std::string& sql) {
    return db.execAndGet(sql).getInt64();
}

void add_inbox(SQLite::Database& db, int id, sys_time at) {
    SQLite::Statement q(db, "INSERT INTO inbox(id, event_id, type, body, received_at) VALUES "
                            "(?, ?, 'contact.created', '{\"big\":\"body\"}', ?)");
    q.bind(1, id);
    q.bind(2, "e-" + std::to_string(id));
    q.bind(3, format_iso8601(at));
    q.exec();
}

void add_change(SQLite::Database& db, sys_time at) {
    SQLite::Statement q(db, "INSERT INTO changes(entity, entity_id, kind, source, ts) VALUES "
                            "('contact', 1, 'updated', 'remote', ?)");
    q.bind(1, format_iso8601(at));
    q.exec();
}

void add_conflict(SQLite::Database& db, sys_time at) {
    SQLite::Statement q(db, "INSERT INTO conflicts(entity, entity_id, field, policy, winner, ts) "
                            "VALUES ('contact', 1, 'firstName', 'newest_wins', 'local', ?)");
    q.bind(1, format_iso8601(at));
    q.exec();
}

} // namespace

TEST(retention, prunes_by_age_keeps_recent_rows_dedup_and_dead_letter_bodies) {
    speak4::testing::temp_dir dir;
    auto db = store::open_database({dir / "s.db"});
    store::migrate(*db);
    for (int i = 1; i <= 10; ++i)
        add_inbox(*db, i, now - 40 * 24h + std::chrono::hours(i)); // old
    for (int i = 11; i <= 13; ++i)
        add_inbox(*db, i, now - 1h); // recent
    // A dead letter behind inbox row 2 keeps its body (the console shows it).
    db->exec("INSERT INTO outbox(op, entity, entity_id, state, next_attempt_at, inbox_id, "
             "created_at, updated_at) VALUES ('create', 'contact', 1, 'dead', '2026-01-01', 2, "
             "'2026-01-01', '2026-01-01')");
    for (int i = 0; i < 7; ++i)
        add_change(*db, now - 31 * 24h);
    for (int i = 0; i < 2; ++i)
        add_change(*db, now - 2h);
    for (int i = 0; i < 4; ++i)
        add_conflict(*db, now - 100 * 24h);
    add_conflict(*db, now - 10 * 24h);

    store::retention_policy p;
    p.batch = 4; // bounded: several passes
    store::pruned_history total;
    for (int pass = 0; pass < 10; ++pass) {
        const auto h = store::prune_history(*db, now, p);
        EXPECT_LE(h.inbox_bodies, 4);
        EXPECT_LE(h.changes, 4);
        total.inbox_bodies += h.inbox_bodies;
        total.changes += h.changes;
        total.conflicts += h.conflicts;
    }
    EXPECT_EQ(total.inbox_bodies, 9); // 10 old, one behind a dead letter
    EXPECT_EQ(total.changes, 7);
    EXPECT_EQ(total.conflicts, 4);
    EXPECT_EQ(count(*db, "SELECT COUNT(*) FROM inbox"), 13) << "rows stay for duplicate checks";
    EXPECT_EQ(count(*db, "SELECT COUNT(*) FROM inbox WHERE body = ''"), 9);
    EXPECT_EQ(count(*db, "SELECT COUNT(*) FROM inbox WHERE id = 2 AND body <> ''"), 1);
    EXPECT_EQ(count(*db, "SELECT COUNT(*) FROM inbox WHERE id > 10 AND body <> ''"), 3);
    EXPECT_EQ(count(*db, "SELECT COUNT(*) FROM changes"), 2);
    EXPECT_EQ(count(*db, "SELECT COUNT(*) FROM conflicts"), 1);
    // Nothing left to do: a pass changes nothing.
    EXPECT_EQ(store::prune_history(*db, now, p).total(), 0);
}
