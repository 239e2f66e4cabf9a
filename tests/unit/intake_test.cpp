// lib/sync intake: the transactional outbox. Mirror row, outbox row(s) and change-feed row(s)
// land together or not at all; a repeated event_id has no second effect.
#include "core/clock.hpp"
#include "store/database.hpp"
#include "store/migrations.hpp"
#include "support/test_support.hpp"
#include "sync/intake.hpp"

#include <SQLiteCpp/Statement.h>
#include <gtest/gtest.h>

using namespace speak4;
using speak4::testing::temp_dir;

namespace {

class intake_test : public ::testing::Test {
protected:
    void SetUp() override {
        db_ = store::open_database({dir_ / "s.db"});
        store::migrate(*db_);
        in_ = std::make_unique<sync::intake>(*db_, clock_);
    }

    sync::intake_outcome emit(const std::string& text) {
        auto ev = sync::parse_event(text);
        EXPECT_TRUE(ev.has_value()) << text << ": " << (ev ? "" : ev.error().message);
        if (!ev)
            return sync::intake_error{sync::intake_error::kind::invalid, ev.error().field,
                                      ev.error().message};
        return in_->accept(*ev, text);
    }

    long long count(const std::string& sql) { return db_->execAndGet(sql).getInt64(); }
    std::string text(const std::string& sql) { return db_->execAndGet(sql).getString(); }

    /// Every row of every table, as text: equal snapshots mean nothing was written.
    std::string snapshot() { return snapshot(*db_); }
    static std::string snapshot(SQLite::Database& db, const std::string& except = "") {
        std::string out;
        SQLite::Statement tables(
            db, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name");
        while (tables.executeStep()) {
            const std::string t = tables.getColumn(0).getString();
            if (t == except)
                continue;
            SQLite::Statement rows(db, "SELECT * FROM \"" + t + "\"");
            out += "[" + t + "]\n";
            while (rows.executeStep()) {
                for (int i = 0; i < rows.getColumnCount(); ++i)
                    out += rows.getColumn(i).getString() + "|";
                out += "\n";
            }
        }
        return out;
    }

    temp_dir dir_;
    manual_clock clock_;
    std::unique_ptr<SQLite::Database> db_;
    std::unique_ptr<sync::intake> in_;
};

const char* const ada = R"({"type":"contact.created","event_id":"e-1",
  "contact":{"speak4_id":"s4-1","firstName":"Ada","lastName":"Lovelace","email":"ada@example.com",
             "phone":"+15551234567","tags":["vip"],"customFields":{"cf1":"87"}},
  "notes":[{"speak4_id":"n-1","body":"Called, wants a demo"}]})";

} // namespace

TEST_F(intake_test, contact_created_writes_mirror_outbox_and_changes_in_one_go) {
    auto r = emit(ada);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_FALSE(r->duplicate);
    EXPECT_EQ(count("SELECT COUNT(*) FROM contacts WHERE speak4_id = 's4-1' AND first_name = 'Ada' "
                    "AND email = 'ada@example.com' AND phone = '+15551234567'"),
              1);
    EXPECT_EQ(text("SELECT tags FROM contacts"), R"(["vip"])");
    EXPECT_EQ(text("SELECT custom_fields FROM contacts"), R"({"cf1":"87"})");
    EXPECT_EQ(
        count(
            "SELECT COUNT(*) FROM notes WHERE speak4_id = 'n-1' AND body = 'Called, wants a demo'"),
        1);
    EXPECT_EQ(count("SELECT COUNT(*) FROM outbox WHERE op = 'create' AND entity = 'contact' AND "
                    "state = 'pending'"),
              1);
    EXPECT_EQ(count("SELECT COUNT(*) FROM outbox WHERE op = 'create' AND entity = 'note'"), 1);
    EXPECT_EQ(count("SELECT COUNT(*) FROM changes WHERE source = 'local'"), 2);
    EXPECT_EQ(r->seq, 2);
    const std::string payload = text("SELECT payload FROM outbox WHERE entity = 'contact'");
    EXPECT_NE(payload.find(R"("firstName":"Ada")"), std::string::npos) << payload;
    EXPECT_NE(payload.find(R"("customFields":{"cf1":"87"})"), std::string::npos) << payload;
}

TEST_F(intake_test, a_repeated_event_id_has_no_second_effect) {
    ASSERT_TRUE(emit(ada));
    const std::string before = snapshot();
    auto again = emit(ada);
    ASSERT_TRUE(again);
    EXPECT_TRUE(again->duplicate);
    EXPECT_EQ(snapshot(), before);
}

TEST_F(intake_test, a_repeated_event_id_within_one_batch_is_applied_once) {
    auto ev = sync::parse_event(ada);
    ASSERT_TRUE(ev);
    auto results = in_->accept_batch({{*ev, ada}, {*ev, ada}});
    ASSERT_EQ(results.size(), 2u);
    ASSERT_TRUE(results[0] && results[1]);
    EXPECT_FALSE(results[0]->duplicate);
    EXPECT_TRUE(results[1]->duplicate);
    EXPECT_EQ(count("SELECT COUNT(*) FROM contacts"), 1);
    EXPECT_EQ(count("SELECT COUNT(*) FROM inbox"), 1);
}

TEST_F(intake_test, a_failure_between_any_two_writes_leaves_nothing) {
    for (const char* point : {"after_inbox", "after_mirror", "after_outbox"}) {
        SCOPED_TRACE(point);
        const std::string before = snapshot();
        in_->fail_point = [&](std::string_view p) {
            if (p == point)
                throw std::runtime_error(std::string("injected failure at ") + point);
        };
        auto r = emit(ada);
        ASSERT_FALSE(r);
        EXPECT_EQ(r.error().what, sync::intake_error::kind::io);
        EXPECT_NE(r.error().message.find("injected failure"), std::string::npos);
        EXPECT_EQ(snapshot(), before);
    }
    in_->fail_point = nullptr;
    EXPECT_TRUE(emit(ada)); // and the same event lands once the fault is gone
    EXPECT_EQ(count("SELECT COUNT(*) FROM outbox"), 2);
}

TEST_F(intake_test, a_refused_event_in_a_batch_leaves_no_trace_and_the_others_land) {
    const std::string bad = R"({"type":"task.created","contact":{"speak4_id":"nobody"},
        "task":{"speak4_id":"t-1","title":"x","dueDate":"2026-12-01T15:00:00Z"}})";
    auto good = sync::parse_event(ada);
    auto refused = sync::parse_event(bad);
    ASSERT_TRUE(good && refused);
    auto results = in_->accept_batch({{*refused, bad}, {*good, ada}});
    ASSERT_FALSE(results[0]);
    EXPECT_EQ(results[0].error().field, "contact.speak4_id");
    EXPECT_NE(results[0].error().message.find("names no known contact"), std::string::npos);
    ASSERT_TRUE(results[1]);
    EXPECT_EQ(count("SELECT COUNT(*) FROM inbox"), 1);
    EXPECT_EQ(count("SELECT COUNT(*) FROM tasks"), 0);
}

TEST_F(intake_test, a_batch_with_a_refused_event_ends_as_if_each_event_came_alone) {
    // The batch is first applied without savepoints; a refusal rolls that attempt back and the
    // batch runs again event by event. Either way the database must end up exactly as if the
    // events had come one at a time: same rows, same ids, same seqs, same outcomes.
    const std::vector<std::string> texts = {
        ada,
        R"({"type":"contact.created","event_id":"e-2","contact":{"speak4_id":"s4-2","firstName":"Bo"}})",
        // Refused after writing: its contact row goes in, then its note names one that exists.
        R"({"type":"contact.created","event_id":"e-3","contact":{"speak4_id":"s4-3","email":"c@x.io"},
            "notes":[{"speak4_id":"n-1","body":"dup"}]})",
        R"({"type":"contact.updated","event_id":"e-4","contact":{"speak4_id":"s4-2","lastName":"Bee"}})",
        ada, // a repeat within the batch
        R"({"type":"task.created","event_id":"e-5","contact":{"speak4_id":"s4-1"},
            "task":{"speak4_id":"t-1","title":"Call","dueDate":"2026-12-01T15:00:00Z"}})",
        R"({"type":"contact.tagged","event_id":"e-6","contact":{"speak4_id":"s4-404"},"tags":["x"]})",
    };
    std::vector<sync::raw_event> batch;
    for (const auto& t : texts) {
        auto ev = sync::parse_event(t);
        ASSERT_TRUE(ev) << t;
        batch.push_back({*ev, t});
    }
    const auto results = in_->accept_batch(batch);

    temp_dir other;
    auto db2 = store::open_database({other / "s.db"});
    store::migrate(*db2);
    sync::intake alone(*db2, clock_);
    std::vector<sync::intake_outcome> expected;
    for (const auto& e : batch)
        expected.push_back(alone.accept(e.ev, e.body));

    ASSERT_EQ(results.size(), expected.size());
    for (std::size_t i = 0; i < results.size(); ++i) {
        SCOPED_TRACE(i);
        ASSERT_EQ(bool(results[i]), bool(expected[i]));
        if (results[i]) {
            EXPECT_EQ(results[i]->duplicate, expected[i]->duplicate);
            EXPECT_EQ(results[i]->seq, expected[i]->seq);
            EXPECT_EQ(results[i]->inbox_id, expected[i]->inbox_id);
        } else {
            EXPECT_EQ(results[i].error().what, sync::intake_error::kind::invalid);
            EXPECT_EQ(results[i].error().field, expected[i].error().field);
        }
    }
    EXPECT_FALSE(results[2]);
    EXPECT_EQ(results[2].error().field, "notes[0].speak4_id");
    EXPECT_FALSE(results[6]);
    EXPECT_TRUE(results[4] && results[4]->duplicate);

    // (schema_migrations differs in its applied_at times only)
    EXPECT_EQ(snapshot(*db_, "schema_migrations"), snapshot(*db2, "schema_migrations"));
    EXPECT_EQ(count("SELECT COUNT(*) FROM contacts WHERE speak4_id = 's4-3'"), 0);
    EXPECT_EQ(count("SELECT COUNT(*) FROM inbox WHERE event_id = 'e-3'"), 0);
}

TEST_F(intake_test, a_batch_of_good_events_lands_with_increasing_seqs) {
    std::vector<std::string> texts;
    for (int i = 0; i < 50; ++i) {
        const std::string n = std::to_string(i);
        texts.push_back(R"({"type":"contact.created","event_id":"b-)" + n +
                        R"(","contact":{"speak4_id":"s4-b)" + n + R"(","firstName":"F)" + n +
                        R"(","phone":"+1555000)" + n + R"("}})");
    }
    std::vector<sync::raw_event> batch;
    for (const auto& t : texts)
        batch.push_back({*sync::parse_event(t), t});
    const auto results = in_->accept_batch(batch);
    ASSERT_EQ(results.size(), texts.size());
    for (std::size_t i = 0; i < results.size(); ++i) {
        ASSERT_TRUE(results[i]) << i;
        EXPECT_FALSE(results[i]->duplicate);
        EXPECT_EQ(results[i]->seq, static_cast<long long>(i) + 1); // one change row each
        EXPECT_EQ(results[i]->inbox_id, static_cast<long long>(i) + 1);
    }
    EXPECT_EQ(count("SELECT COUNT(*) FROM contacts WHERE first_name LIKE 'F%' AND phone LIKE "
                    "'+1555000%' AND tags = '[]' AND custom_fields = '{}' AND fields = '{}'"),
              50);
    EXPECT_EQ(count("SELECT COUNT(*) FROM outbox WHERE op = 'create'"), 50);
}

TEST_F(intake_test, a_single_refused_event_leaves_no_trace) {
    ASSERT_TRUE(emit(ada));
    const std::string before = snapshot();
    auto r = emit(R"({"type":"contact.created","event_id":"e-9","contact":{"speak4_id":"s4-9"},
                      "notes":[{"speak4_id":"n-1","body":"dup"}]})");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().what, sync::intake_error::kind::invalid);
    EXPECT_EQ(r.error().field, "notes[0].speak4_id");
    EXPECT_EQ(snapshot(), before);
    // The change feed goes on from where it was.
    auto next =
        emit(R"({"type":"contact.created","event_id":"e-10","contact":{"speak4_id":"s4-10"}})");
    ASSERT_TRUE(next);
    EXPECT_EQ(next->seq, 3);
}

TEST_F(intake_test, contact_updated_writes_only_the_named_columns) {
    ASSERT_TRUE(emit(ada));
    ASSERT_TRUE(emit(R"({"type":"contact.updated","contact":{"speak4_id":"s4-1",
        "firstName":"Augusta","email":null,"companyName":"Analytical"}})"));
    EXPECT_EQ(text("SELECT first_name FROM contacts"), "Augusta");
    EXPECT_EQ(text("SELECT last_name FROM contacts"), "Lovelace");
    EXPECT_EQ(count("SELECT COUNT(*) FROM contacts WHERE email IS NULL"), 1);
    EXPECT_EQ(text("SELECT phone FROM contacts"), "+15551234567");
    EXPECT_EQ(text("SELECT tags FROM contacts"), R"(["vip"])");
    EXPECT_EQ(text("SELECT fields FROM contacts"), R"({"companyName":"Analytical"})");
    ASSERT_TRUE(emit(
        R"({"type":"contact.updated","contact":{"speak4_id":"s4-1","phone":"+15559876543"}})"));
    EXPECT_EQ(text("SELECT first_name FROM contacts"), "Augusta");
    EXPECT_EQ(text("SELECT phone FROM contacts"), "+15559876543");
}

TEST_F(intake_test, every_event_type_writes_its_rows) {
    ASSERT_TRUE(emit(ada));
    ASSERT_TRUE(emit(
        R"({"type":"contact.updated","contact":{"speak4_id":"s4-1","phone":"+15550000000"},"pull":true})"));
    EXPECT_EQ(text("SELECT phone FROM contacts"), "+15550000000");
    EXPECT_EQ(count("SELECT COUNT(*) FROM outbox WHERE op = 'pull'"), 1);
    ASSERT_TRUE(
        emit(R"({"type":"contact.tagged","contact":{"speak4_id":"s4-1"},"tags":["hot","vip"]})"));
    EXPECT_EQ(text("SELECT tags FROM contacts"), R"(["vip","hot"])");
    ASSERT_TRUE(
        emit(R"({"type":"contact.untagged","contact":{"speak4_id":"s4-1"},"tags":["vip"]})"));
    EXPECT_EQ(text("SELECT tags FROM contacts"), R"(["hot"])");
    EXPECT_EQ(count("SELECT COUNT(*) FROM outbox WHERE op IN ('tag_add','tag_remove')"), 2);
    ASSERT_TRUE(emit(R"({"type":"task.created","contact":{"speak4_id":"s4-1"},
        "task":{"speak4_id":"t-1","title":"Send demo link","dueDate":"2026-12-01T15:00:00Z"}})"));
    EXPECT_EQ(text("SELECT due_date FROM tasks"), "2026-12-01T15:00:00.000Z");
    ASSERT_TRUE(emit(
        R"({"type":"task.updated","contact":{"speak4_id":"s4-1"},"task":{"speak4_id":"t-1","title":"Send the link"}})"));
    EXPECT_EQ(text("SELECT title FROM tasks"), "Send the link");
    ASSERT_TRUE(emit(
        R"({"type":"task.completed","contact":{"speak4_id":"s4-1"},"task":{"speak4_id":"t-1","completed":true}})"));
    EXPECT_EQ(count("SELECT completed FROM tasks"), 1);
    ASSERT_TRUE(emit(
        R"({"type":"task.deleted","contact":{"speak4_id":"s4-1"},"task":{"speak4_id":"t-1"}})"));
    EXPECT_EQ(count("SELECT deleted FROM tasks"), 1);
    ASSERT_TRUE(emit(
        R"({"type":"note.created","contact":{"speak4_id":"s4-1"},"note":{"speak4_id":"n-2","body":"hello"}})"));
    ASSERT_TRUE(emit(
        R"({"type":"note.updated","contact":{"speak4_id":"s4-1"},"note":{"speak4_id":"n-2","body":"hello again"}})"));
    EXPECT_EQ(text("SELECT body FROM notes WHERE speak4_id = 'n-2'"), "hello again");
    ASSERT_TRUE(emit(
        R"({"type":"note.deleted","contact":{"speak4_id":"s4-1"},"note":{"speak4_id":"n-2"}})"));
    EXPECT_EQ(count("SELECT deleted FROM notes WHERE speak4_id = 'n-2'"), 1);
    ASSERT_TRUE(emit(R"({"type":"contact.opened","contact":{"speak4_id":"s4-1"}})"));
    EXPECT_EQ(count("SELECT COUNT(*) FROM outbox WHERE op = 'pull'"), 2);
    ASSERT_TRUE(emit(
        R"({"type":"lead.created","contact":{"speak4_id":"s4-9","email":"lead@example.com"}})"));
    EXPECT_NE(text("SELECT payload FROM outbox WHERE entity_id = (SELECT id FROM contacts WHERE "
                   "speak4_id = 's4-9') "
                   "AND entity = 'contact' AND op = 'create'")
                  .find(R"("lead":true)"),
              std::string::npos);
    ASSERT_TRUE(emit(R"({"type":"contact.deleted","contact":{"speak4_id":"s4-1"}})"));
    EXPECT_EQ(count("SELECT deleted FROM contacts WHERE speak4_id = 's4-1'"), 1);
    EXPECT_EQ(count("SELECT COUNT(*) FROM outbox WHERE op = 'delete' AND entity = 'contact'"), 1);
    // Each accepted event that changed the mirror has a change-feed row, in order.
    EXPECT_EQ(count("SELECT COUNT(*) FROM changes"), 14);
}

TEST_F(intake_test, a_contact_known_only_by_ghl_id_gets_a_mirror_row) {
    auto r = emit(
        R"({"type":"contact.updated","contact":{"ghl_id":"abcdefghij0123456789","firstName":"Bo"}})");
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(count("SELECT COUNT(*) FROM contacts WHERE ghl_id = 'abcdefghij0123456789' AND "
                    "first_name = 'Bo'"),
              1);
    EXPECT_EQ(count("SELECT COUNT(*) FROM outbox WHERE op = 'update'"), 1);
}

TEST_F(intake_test, events_about_deleted_or_unknown_entities_are_refused_naming_the_field) {
    ASSERT_TRUE(emit(ada));
    ASSERT_TRUE(emit(R"({"type":"contact.deleted","contact":{"speak4_id":"s4-1"}})"));
    const std::string before = snapshot();
    struct row {
        const char* event;
        const char* field;
        const char* message;
    };
    const row rows[] = {
        {R"({"type":"contact.updated","contact":{"speak4_id":"s4-1","firstName":"A"}})",
         "contact.speak4_id", "deleted contact"},
        {R"({"type":"contact.updated","contact":{"speak4_id":"s4-404","firstName":"A"}})",
         "contact.speak4_id", "names no known contact"},
        {R"({"type":"contact.created","contact":{"speak4_id":"s4-1","firstName":"A"}})",
         "contact.speak4_id", "deleted contact"},
        {R"({"type":"note.updated","contact":{"speak4_id":"s4-1"},"note":{"speak4_id":"n-1","body":"x"}})",
         "contact.speak4_id", "deleted contact"},
        {R"({"type":"contact.deleted","contact":{"ghl_id":"zzzzzzzzzzzzzzzzzzzz"}})",
         "contact.ghl_id", "names no known contact"},
    };
    for (const auto& r : rows) {
        SCOPED_TRACE(r.event);
        auto out = emit(r.event);
        ASSERT_FALSE(out);
        EXPECT_EQ(out.error().field, r.field);
        EXPECT_NE(out.error().message.find(r.message), std::string::npos) << out.error().message;
    }
    EXPECT_EQ(snapshot(), before);
}
