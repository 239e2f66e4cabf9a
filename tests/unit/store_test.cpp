// lib/store: opening, migrations (fresh, re-run, newer database refused), damaged databases.
#include "core/error.hpp"
#include "store/database.hpp"
#include "store/inspect.hpp"
#include "store/migrations.hpp"
#include "support/test_support.hpp"

#include <SQLiteCpp/Exception.h>
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

TEST(store, the_outbox_rebuild_keeps_rows_ids_indexes_and_the_same_checks) {
    // 0005 rebuilds the outbox to drop its IN-list CHECKs: rows written under 0004 survive with
    // their ids, the indexes are back, and the same values are still refused.
    temp_dir dir;
    auto db = store::open_database({dir / "s.db"});
    std::vector<store::migration> before;
    for (const auto& m : store::embedded_migrations())
        if (m.version < 5)
            before.push_back(m);
    store::migrate(*db, before);
    db->exec("INSERT INTO inbox(id, event_id, type, body, received_at) VALUES (7, 'e', "
             "'contact.created', '{}', 't')");
    db->exec("INSERT INTO outbox(id, op, entity, entity_id, state, attempts, next_attempt_at, "
             "payload, inbox_id, created_at, updated_at, uncertain, last_status, claimed_at) "
             "VALUES (41, 'tag_remove', 'note', 3, 'dead', 2, 'n', '{\"a\":1}', 7, 'c', 'u', 1, "
             "404, 'x')");
    store::migrate(*db);
    ASSERT_GE(store::schema_version(*db), 5);
    SQLite::Statement q(*db, "SELECT id, op, entity, entity_id, state, attempts, next_attempt_at, "
                             "payload, inbox_id, created_at, updated_at, uncertain, last_status, "
                             "claimed_at FROM outbox");
    ASSERT_TRUE(q.executeStep());
    EXPECT_EQ(q.getColumn(0).getInt64(), 41);
    EXPECT_EQ(q.getColumn(1).getString(), "tag_remove");
    EXPECT_EQ(q.getColumn(2).getString(), "note");
    EXPECT_EQ(q.getColumn(3).getInt64(), 3);
    EXPECT_EQ(q.getColumn(4).getString(), "dead");
    EXPECT_EQ(q.getColumn(5).getInt(), 2);
    EXPECT_EQ(q.getColumn(6).getString(), "n");
    EXPECT_EQ(q.getColumn(7).getString(), "{\"a\":1}");
    EXPECT_EQ(q.getColumn(8).getInt64(), 7);
    EXPECT_EQ(q.getColumn(11).getInt(), 1);
    EXPECT_EQ(q.getColumn(12).getInt(), 404);
    EXPECT_EQ(q.getColumn(13).getString(), "x");
    EXPECT_FALSE(q.executeStep());
    q.reset();

    std::set<std::string> indexes;
    SQLite::Statement ix(*db, "SELECT name FROM pragma_index_list('outbox')");
    while (ix.executeStep())
        indexes.insert(ix.getColumn(0).getString());
    for (const char* name :
         {"outbox_due", "outbox_entity", "outbox_pending_entity", "outbox_state_id"})
        EXPECT_TRUE(indexes.count(name)) << name;
    EXPECT_EQ(
        db->execAndGet("SELECT COUNT(*) FROM sqlite_master WHERE name = 'outbox_rebuilt'").getInt(),
        0);

    // Every allowed value is accepted, anything else refused, column by column.
    auto insert = [&](const std::string& op, const std::string& entity, const std::string& state) {
        SQLite::Statement ins(*db, "INSERT INTO outbox(op, entity, entity_id, state, "
                                   "next_attempt_at, created_at, updated_at) "
                                   "VALUES (?,?,1,?,'n','c','u')");
        ins.bind(1, op);
        ins.bind(2, entity);
        ins.bind(3, state);
        ins.exec();
    };
    for (const char* op :
         {"create", "update", "delete", "complete", "tag_add", "tag_remove", "pull"})
        EXPECT_NO_THROW(insert(op, "contact", "pending")) << op;
    for (const char* entity : {"contact", "task", "note"})
        EXPECT_NO_THROW(insert("update", entity, "pending")) << entity;
    for (const char* state : {"pending", "inflight", "done", "dead"})
        EXPECT_NO_THROW(insert("update", "task", state)) << state;
    EXPECT_THROW(insert("upsert", "contact", "pending"), SQLite::Exception);
    EXPECT_THROW(insert("Create", "contact", "pending"), SQLite::Exception);
    EXPECT_THROW(insert("update", "appointment", "pending"), SQLite::Exception);
    EXPECT_THROW(insert("update", "contact", "queued"), SQLite::Exception);
    EXPECT_THROW(db->exec("UPDATE outbox SET state = 'lost' WHERE id = 41"), SQLite::Exception);
    // The foreign key to inbox still holds.
    EXPECT_THROW(db->exec("UPDATE outbox SET inbox_id = 999 WHERE id = 41"), SQLite::Exception);
}

TEST(store, deleting_and_recreating_records_never_reuses_a_mirror_id) {
    // DESIGN §9: a changes row always names the same record, so an id once given is never
    // given again, even after the newest row of a table is deleted.
    temp_dir dir;
    auto db = store::open_database({dir / "s.db"});
    store::migrate(*db);
    auto last = [&] { return db->getLastInsertRowid(); };
    db->exec("INSERT INTO contacts(speak4_id, created_at, updated_at) VALUES ('s4-1','t','t')");
    const auto c1 = last();
    db->exec("INSERT INTO contacts(ghl_id, created_at, updated_at) VALUES ('g-2','t','t')");
    const auto c2 = last();
    auto child = [&](const std::string& sql) {
        db->exec(sql);
        return last();
    };
    const auto t = child("INSERT INTO tasks(ghl_id, contact_id, created_at, updated_at) VALUES "
                         "('t-1'," +
                         std::to_string(c2) + ",'t','t')");
    const auto n = child("INSERT INTO notes(ghl_id, contact_id, created_at, updated_at) VALUES "
                         "('n-1'," +
                         std::to_string(c2) + ",'t','t')");
    const auto a = child("INSERT INTO appointments(ghl_id, contact_id, updated_at) VALUES "
                         "('a-1'," +
                         std::to_string(c2) + ",'t')");
    // Delete the newest row of each table, then create another: a fresh id each time.
    db->exec("DELETE FROM tasks WHERE id = " + std::to_string(t));
    db->exec("DELETE FROM notes WHERE id = " + std::to_string(n));
    db->exec("DELETE FROM appointments WHERE id = " + std::to_string(a));
    db->exec("DELETE FROM contacts WHERE id = " + std::to_string(c2));
    const auto c3 = child("INSERT INTO contacts(ghl_id, created_at, updated_at) VALUES "
                          "('g-2','t','t')");
    EXPECT_GT(c3, c2);
    const auto t2 = child("INSERT INTO tasks(ghl_id, contact_id, created_at, updated_at) VALUES "
                          "('t-1'," +
                          std::to_string(c3) + ",'t','t')");
    const auto n2 = child("INSERT INTO notes(ghl_id, contact_id, created_at, updated_at) VALUES "
                          "('n-1'," +
                          std::to_string(c3) + ",'t','t')");
    const auto a2 = child("INSERT INTO appointments(ghl_id, contact_id, updated_at) VALUES "
                          "('a-1'," +
                          std::to_string(c3) + ",'t')");
    EXPECT_GT(t2, t);
    EXPECT_GT(n2, n);
    EXPECT_GT(a2, a);
    // The same after a reopen (the high-water mark is on disk, not in the connection).
    db.reset();
    db = store::open_database({dir / "s.db"});
    db->exec("DELETE FROM tasks WHERE id = " + std::to_string(t2));
    db->exec("INSERT INTO tasks(ghl_id, contact_id, created_at, updated_at) VALUES ('t-3'," +
             std::to_string(c3) + ",'t','t')");
    EXPECT_GT(db->getLastInsertRowid(), t2);
    // A contact's Speak4 id is also its first alias.
    EXPECT_EQ(db->execAndGet("SELECT contact_id FROM contact_aliases WHERE speak4_id = 's4-1'")
                  .getInt64(),
              c1);
}

TEST(store, the_stable_id_rebuild_keeps_rows_ids_references_and_indexes) {
    temp_dir dir;
    auto db = store::open_database({dir / "s.db"});
    std::vector<store::migration> before;
    for (const auto& m : store::embedded_migrations())
        if (m.version < 6)
            before.push_back(m);
    store::migrate(*db, before);
    db->exec("INSERT INTO contacts(id, speak4_id, ghl_id, email, created_at, updated_at) VALUES "
             "(5, 's4-5', 'g-5', 'ada@example.com', 'c', 'u'), (9, NULL, 'g-9', NULL, 'c', 'u')");
    db->exec("INSERT INTO tasks(id, speak4_id, contact_id, title, created_at, updated_at) VALUES "
             "(3, 't-3', 5, 'call', 'c', 'u')");
    db->exec("INSERT INTO notes(id, ghl_id, contact_id, body, created_at, updated_at) VALUES "
             "(4, 'n-4', 9, 'hi', 'c', 'u')");
    db->exec("INSERT INTO appointments(id, ghl_id, contact_id, updated_at) VALUES (2, 'a-2', 9, "
             "'u')");
    db->exec("INSERT INTO reminders(appointment_id, remind_at) VALUES (2, 'r')");
    db->exec("INSERT INTO pull_queue(contact_id, what, reason, next_attempt_at, created_at) "
             "VALUES (9, 'all', 'initial', 'n', 'c')");
    store::migrate(*db);
    ASSERT_GE(store::schema_version(*db), 6);
    EXPECT_EQ(db->execAndGet("SELECT email FROM contacts WHERE id = 5").getString(),
              "ada@example.com");
    EXPECT_EQ(db->execAndGet("SELECT contact_id FROM tasks WHERE id = 3").getInt64(), 5);
    EXPECT_EQ(db->execAndGet("SELECT contact_id FROM notes WHERE id = 4").getInt64(), 9);
    EXPECT_EQ(db->execAndGet("SELECT contact_id FROM appointments WHERE id = 2").getInt64(), 9);
    EXPECT_EQ(db->execAndGet("SELECT appointment_id FROM reminders").getInt64(), 2);
    EXPECT_EQ(db->execAndGet("SELECT contact_id FROM pull_queue").getInt64(), 9);
    EXPECT_EQ(db->execAndGet("SELECT contact_id FROM contact_aliases WHERE speak4_id = 's4-5'")
                  .getInt64(),
              5);
    EXPECT_EQ(db->execAndGet("SELECT COUNT(*) FROM contact_aliases").getInt(), 1);
    EXPECT_EQ(db->execAndGet("SELECT COUNT(*) FROM pragma_foreign_key_check").getInt(), 0);
    // The references point at the rebuilt tables (by their final names) and still hold.
    EXPECT_THROW(db->exec("UPDATE tasks SET contact_id = 999 WHERE id = 3"), SQLite::Exception);
    EXPECT_THROW(db->exec("UPDATE reminders SET appointment_id = 999"), SQLite::Exception);
    EXPECT_THROW(db->exec("UPDATE pull_queue SET contact_id = 999"), SQLite::Exception);
    EXPECT_EQ(
        db->execAndGet("SELECT COUNT(*) FROM sqlite_master WHERE instr(sql, '_new') > 0").getInt(),
        0);
    std::set<std::string> indexes;
    SQLite::Statement ix(*db, "SELECT name FROM sqlite_master WHERE type = 'index'");
    while (ix.executeStep())
        indexes.insert(ix.getColumn(0).getString());
    for (const char* name : {"contacts_email", "contacts_phone", "tasks_contact", "notes_contact",
                             "appointments_contact", "reminders_due", "pull_queue_due"})
        EXPECT_TRUE(indexes.count(name)) << name;
    // New ids continue above the highest kept one.
    db->exec("INSERT INTO contacts(ghl_id, created_at, updated_at) VALUES ('g-new','c','u')");
    EXPECT_EQ(db->getLastInsertRowid(), 10);
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

// DESIGN §9: a revived dead row never overwrites a newer value.
TEST(store, revived_dead_rows_lose_what_newer_rows_already_sent) {
    temp_dir dir;
    auto db = store::open_database({dir / "s.db"});
    store::migrate(*db);
    db->exec("INSERT INTO outbox(op, entity, entity_id, state, next_attempt_at, created_at, "
             "updated_at, last_error, payload) VALUES "
             "('update','contact',1,'dead','t','t','t','422','{\"set\":{\"firstName\":\"Old\","
             "\"lastName\":\"Keep\"}}'),"
             "('update','contact',1,'done','t','t','t',NULL,'{\"set\":{\"firstName\":\"New\"}}'),"
             "('tag_add','contact',1,'dead','t','t','t','422','{\"tags\":[\"a\"]}'),"
             "('tag_remove','contact',1,'done','t','t','t',NULL,'{\"tags\":[\"a\"]}'),"
             "('update','contact',2,'dead','t','t','t','422','{\"set\":{\"firstName\":\"X\"}}'),"
             "('update','contact',2,'done','t','t','t',NULL,'{\"set\":{\"firstName\":\"Y\"}}'),"
             "('update','contact',3,'dead','t','t','t','422','{\"set\":{\"firstName\":\"Z\"}}')");
    EXPECT_EQ(store::retry_dead(*db, "now"), 2); // rows 1 and 7; 3 and 5 superseded
    auto text = [&](const std::string& sql) { return db->execAndGet(sql).getString(); };
    EXPECT_EQ(text("SELECT state FROM outbox WHERE id = 1"), "pending");
    EXPECT_EQ(text("SELECT payload FROM outbox WHERE id = 1"), R"({"set":{"lastName":"Keep"}})");
    EXPECT_NE(text("SELECT last_error FROM outbox WHERE id = 1").find("2"), std::string::npos);
    EXPECT_EQ(text("SELECT state FROM outbox WHERE id = 3"), "done");
    EXPECT_NE(text("SELECT last_error FROM outbox WHERE id = 3").find("superseded"),
              std::string::npos);
    EXPECT_EQ(text("SELECT state FROM outbox WHERE id = 5"), "done");
    EXPECT_EQ(text("SELECT state || payload FROM outbox WHERE id = 7"),
              R"(pending{"set":{"firstName":"Z"}})");
    EXPECT_EQ(store::read_status(*db).queue.dead, 0);
}
