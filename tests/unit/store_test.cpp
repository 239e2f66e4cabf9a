// lib/store: opening, migrations (fresh, re-run, newer database refused), damaged databases.
#include "core/error.hpp"
#include "store/database.hpp"
#include "store/inspect.hpp"
#include "store/migrations.hpp"
#include "support/test_support.hpp"

#include <SQLiteCpp/Statement.h>
#include <gtest/gtest.h>
#include <set>

using namespace speak4;
using speak4::testing::temp_dir;

namespace {

std::set<std::string> columns(SQLite::Database& db, const std::string& table) {
    std::set<std::string> out;
    SQLite::Statement q(db, "SELECT name FROM pragma_table_info(?)");
    q.bind(1, table);
    while (q.executeStep())
        out.insert(q.getColumn(0).getString());
    return out;
}

} // namespace

TEST(store, fresh_database_gets_every_migration_and_the_design_schema) {
    temp_dir dir;
    auto db = store::open_database({dir / "s.db"});
    const auto r = store::migrate(*db);
    EXPECT_EQ(r.from, 0);
    EXPECT_EQ(r.to, store::embedded_migrations().back().version);
    EXPECT_EQ(store::schema_version(*db), r.to);
    EXPECT_EQ(db->execAndGet("PRAGMA journal_mode").getString(), "wal");
    EXPECT_EQ(db->execAndGet("SELECT COUNT(*) FROM schema_migrations").getInt(),
              static_cast<int>(store::embedded_migrations().size()));

    // DESIGN §4: the public columns.
    const std::map<std::string, std::set<std::string>> contract = {
        {"contacts",
         {"id", "speak4_id", "ghl_id", "first_name", "last_name", "email", "phone", "tags",
          "custom_fields", "workflow", "deleted", "remote_updated_at", "raw"}},
        {"tasks",
         {"id", "speak4_id", "ghl_id", "contact_id", "title", "body", "due_date", "completed",
          "deleted"}},
        {"notes", {"id", "speak4_id", "ghl_id", "contact_id", "body", "deleted"}},
        {"appointments",
         {"id", "ghl_id", "contact_id", "title", "start_time", "end_time", "status"}},
        {"reminders", {"id", "appointment_id", "remind_at", "fired"}},
        {"outbox",
         {"id", "op", "entity", "entity_id", "state", "attempts", "next_attempt_at", "last_error",
          "created_at"}},
        {"audit_log",
         {"id", "ts", "method", "path", "status", "latency_ms", "attempt", "outbox_id", "error",
          "rate_limit_remaining", "trace_id"}},
        {"sync_cursors", {"name", "value", "updated_at"}},
        {"changes", {"seq", "entity", "entity_id", "kind", "ts"}},
        {"inbox", {"id", "event_id"}},
        {"oauth_tokens", {"location_id", "access_token", "refresh_token", "expires_at", "state"}},
        {"conflicts", {"id", "entity", "entity_id", "field", "policy", "winner"}},
    };
    for (const auto& [table, cols] : contract) {
        const auto have = columns(*db, table);
        for (const auto& c : cols)
            EXPECT_TRUE(have.count(c)) << table << "." << c << " is missing";
    }
}

TEST(store, rerunning_migrations_is_a_no_op) {
    temp_dir dir;
    {
        auto db = store::open_database({dir / "s.db"});
        store::migrate(*db);
    }
    auto db = store::open_database({dir / "s.db"});
    const auto r = store::migrate(*db);
    EXPECT_EQ(r.from, r.to);
    EXPECT_EQ(db->execAndGet("SELECT COUNT(*) FROM schema_migrations").getInt(),
              static_cast<int>(store::embedded_migrations().size()));
}

TEST(store, migrations_apply_in_order_and_a_failing_one_leaves_the_previous_version) {
    temp_dir dir;
    auto db = store::open_database({dir / "s.db"});
    std::vector<store::migration> ms = store::embedded_migrations();
    const int v = ms.back().version;
    ms.push_back({v + 1, "add_thing", "CREATE TABLE thing(x); "});
    ms.push_back({v + 2, "broken", "CREATE TABLE other(y); SELECT no_such_function();"});
    EXPECT_THROW(store::migrate(*db, ms), std::exception);
    // v+1 landed; v+2 rolled back whole (its table and its version bump).
    EXPECT_EQ(store::schema_version(*db), v + 1);
    EXPECT_EQ(db->execAndGet("SELECT COUNT(*) FROM sqlite_master WHERE name = 'other'").getInt(),
              0);
    EXPECT_EQ(db->execAndGet("SELECT COUNT(*) FROM sqlite_master WHERE name = 'thing'").getInt(),
              1);
}

TEST(store, a_database_newer_than_the_binary_is_refused) {
    temp_dir dir;
    auto db = store::open_database({dir / "s.db"});
    store::migrate(*db);
    const int v = store::schema_version(*db);
    db->exec("PRAGMA user_version = " + std::to_string(v + 5));
    try {
        store::migrate(*db);
        FAIL() << "expected io_error";
    } catch (const io_error& e) {
        EXPECT_NE(std::string(e.what()).find("newer than this binary"), std::string::npos)
            << e.what();
    }
    EXPECT_EQ(store::schema_version(*db), v + 5);
}

TEST(store, a_file_that_is_not_a_database_is_a_clear_io_error) {
    temp_dir dir;
    speak4::testing::write_file(dir / "bad.db", std::string(4096, 'x'));
    try {
        store::open_database({dir / "bad.db"});
        FAIL() << "expected io_error";
    } catch (const io_error& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find("bad.db"), std::string::npos) << msg;
        EXPECT_NE(msg.find("not a database"), std::string::npos) << msg;
    }
}

TEST(store, an_unreachable_path_is_a_clear_io_error) {
    temp_dir dir;
    speak4::testing::write_file(dir / "file", "x");
    EXPECT_THROW(store::open_database({dir / "file" / "sub" / "s.db"}), io_error);
}

TEST(store, retry_and_drop_touch_only_their_rows) {
    temp_dir dir;
    auto db = store::open_database({dir / "s.db"});
    store::migrate(*db);
    db->exec("INSERT INTO outbox(op, entity, entity_id, state, next_attempt_at, created_at, "
             "updated_at, last_error) VALUES "
             "('create','contact',1,'dead','t','t','t','400 bad'),"
             "('update','contact',1,'dead','t','t','t','400 bad'),"
             "('update','contact',2,'inflight','t','t','t',NULL),"
             "('update','contact',3,'pending','t','t','t',NULL)");
    EXPECT_TRUE(store::retry_outbox(*db, 1, "now"));
    EXPECT_FALSE(store::retry_outbox(*db, 3, "now")); // in flight
    EXPECT_EQ(store::retry_dead(*db, "now"), 1);
    EXPECT_FALSE(store::drop_outbox(*db, 3)); // in flight: never dropped under the dispatcher
    EXPECT_TRUE(store::drop_outbox(*db, 4));
    const auto s = store::read_status(*db);
    EXPECT_EQ(s.queue.pending, 2);
    EXPECT_EQ(s.queue.inflight, 1);
    EXPECT_EQ(s.queue.dead, 0);
    EXPECT_EQ(store::list_outbox(*db, std::string("pending"), 10).size(), 2u);
}
