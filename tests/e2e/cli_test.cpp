// The real speak4-sync binary: local commands, exit codes (sysexits), and bad input that is
// rejected whole without touching the database.
#include "support/test_support.hpp"

#include <SQLiteCpp/Database.h>
#include <fstream>
#include <gtest/gtest.h>

using namespace speak4::testing;

namespace {

class cli : public ::testing::Test {
protected:
    void SetUp() override {
        config_ = dir_ / "speak4-sync.toml";
        write_file(config_, "[database]\npath = \"" + (dir_ / "s.db").string() +
                                "\"\n[ghl]\nlocation_id = \"loc1\"\n[logging]\nformat = \"json\"\n"
                                "[rules.field_map]\nmobile = \"phone\"\n");
    }

    run_result run(std::vector<std::string> args, const std::string& in = "") {
        args.insert(args.begin(), {"--config", config_.string()});
        return run_cli(args, in);
    }

    std::string db_bytes() { return read_file(dir_ / "s.db"); }

    long long count(const std::string& sql) {
        SQLite::Database db((dir_ / "s.db").string(), SQLite::OPEN_READONLY);
        return db.execAndGet(sql).getInt64();
    }

    temp_dir dir_;
    std::filesystem::path config_;
};

} // namespace

TEST_F(cli, help_for_every_command) {
    auto top = run_cli({"--help"});
    EXPECT_EQ(top.exit_code, 0);
    EXPECT_NE(top.out.find("usage: speak4-sync"), std::string::npos);
    for (const char* c : {"migrate", "check-config", "emit", "status", "queue", "audit"}) {
        auto r = run_cli({c, "--help"});
        EXPECT_EQ(r.exit_code, 0) << c;
        EXPECT_NE(r.out.find(std::string("usage: speak4-sync ") + c), std::string::npos)
            << c << ": " << r.out;
    }
    EXPECT_EQ(run_cli({}).exit_code, 64);
    auto unknown = run_cli({"frobnicate"});
    EXPECT_EQ(unknown.exit_code, 64);
    EXPECT_NE(unknown.err.find("unknown command 'frobnicate'"), std::string::npos);
    EXPECT_EQ(run({"queue", "list", "--state", "bogus"}).exit_code, 64);
}

TEST_F(cli, migrate_then_rerun) {
    auto first = run({"migrate"});
    ASSERT_EQ(first.exit_code, 0) << first.err;
    EXPECT_NE(first.out.find("schema version 0 -> "), std::string::npos) << first.out;
    auto second = run({"migrate"});
    ASSERT_EQ(second.exit_code, 0) << second.err;
    EXPECT_NE(second.out.find("up to date"), std::string::npos) << second.out;
}

TEST_F(cli, sample_events_produce_rows_a_user_can_see) {
    auto r = run({"emit", (source_dir() / "conf" / "sample-events.jsonl").string()});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("accepted"), std::string::npos);
    EXPECT_GE(count("SELECT COUNT(*) FROM contacts"), 3);
    EXPECT_GE(count("SELECT COUNT(*) FROM tasks"), 1);
    EXPECT_GE(count("SELECT COUNT(*) FROM notes"), 1);
    EXPECT_GE(count("SELECT COUNT(*) FROM outbox WHERE state = 'pending'"), 8);
    EXPECT_GE(count("SELECT COUNT(*) FROM changes"), 5);

    // Emitting the same file again is accepted (every event has an event_id) and changes nothing.
    const std::string before = db_bytes();
    auto again = run({"emit", (source_dir() / "conf" / "sample-events.jsonl").string()});
    EXPECT_EQ(again.exit_code, 0) << again.err;
    EXPECT_NE(again.out.find("already accepted"), std::string::npos) << again.out;
    EXPECT_EQ(db_bytes(), before);

    auto status = run({"status", "--json"});
    ASSERT_EQ(status.exit_code, 0) << status.err;
    EXPECT_NE(status.out.find(R"("queue":{"pending":)"), std::string::npos) << status.out;
    EXPECT_NE(status.out.find(R"("auth":{"mode":"private_token","state":"ok","expires_at":null})"),
              std::string::npos)
        << status.out;
    EXPECT_NE(status.out.find(R"("last_pull_at":null)"), std::string::npos) << status.out;
    auto text = run({"status"});
    EXPECT_EQ(text.exit_code, 0);
    EXPECT_NE(text.out.find("queue      pending"), std::string::npos) << text.out;

    auto list = run({"queue", "list", "--json"});
    EXPECT_EQ(list.exit_code, 0);
    EXPECT_NE(list.out.find(R"("state":"pending")"), std::string::npos);
    auto audit = run({"audit", "--since", "1h", "--json"});
    EXPECT_EQ(audit.exit_code, 0) << audit.err;
    EXPECT_EQ(audit.out, ""); // nothing pushed yet, so no API calls
}

TEST_F(cli, emit_reads_standard_input_and_one_pretty_printed_event) {
    auto r = run({"emit", "-"},
                 "{\n  \"type\": \"contact.created\",\n  \"contact\": {\"speak4_id\": \"s4-1\", "
                 "\"mobile\": \"+15551234567\"}\n}\n");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(count("SELECT COUNT(*) FROM contacts WHERE phone = '+15551234567'"),
              1); // field_map applied
}

TEST_F(cli, queue_retry_and_drop) {
    ASSERT_EQ(run({"emit", (source_dir() / "conf" / "sample-events.jsonl").string()}).exit_code, 0);
    {
        SQLite::Database db((dir_ / "s.db").string(), SQLite::OPEN_READWRITE);
        db.exec("UPDATE outbox SET state = 'dead', last_error = '422 {\"message\":[\"bad\"]}' "
                "WHERE id IN (1, 2)");
    }
    auto dead = run({"queue", "list", "--state", "dead"});
    EXPECT_EQ(dead.exit_code, 0);
    EXPECT_NE(dead.out.find("422"), std::string::npos) << dead.out;
    EXPECT_EQ(run({"queue", "retry", "1"}).exit_code, 0);
    EXPECT_EQ(count("SELECT COUNT(*) FROM outbox WHERE state = 'dead'"), 1);
    EXPECT_EQ(run({"queue", "retry", "--dead"}).exit_code, 0);
    EXPECT_EQ(count("SELECT COUNT(*) FROM outbox WHERE state = 'dead'"), 0);
    EXPECT_EQ(run({"queue", "drop", "2"}).exit_code, 0);
    EXPECT_EQ(count("SELECT COUNT(*) FROM outbox WHERE id = 2"), 0);
    EXPECT_EQ(run({"queue", "drop", "2"}).exit_code, 65);
    EXPECT_EQ(run({"queue", "retry", "abc"}).exit_code, 64);
}

// A bad event is rejected whole: exit 65, a message naming the field, and the database file
// byte-for-byte unchanged.
TEST_F(cli, bad_events_are_rejected_naming_the_field_and_write_nothing) {
    ASSERT_EQ(
        run({"emit", "-"},
            R"({"type":"contact.created","event_id":"seed-1","contact":{"speak4_id":"s4-1","firstName":"Ada","email":"ada@example.com"}})"
            "\n"
            R"({"type":"task.created","event_id":"seed-2","contact":{"speak4_id":"s4-1"},"task":{"speak4_id":"t-1","title":"Call","dueDate":"2026-12-01T15:00:00Z"}})")
            .exit_code,
        0);
    struct bad {
        std::string event;
        std::string field_in_message;
    };
    const std::string big(300 * 1024, 'x');
    const std::vector<bad> table = {
        {"this is not json", "not valid JSON"},
        {"[1,2,3]", "must be a JSON object"},
        {R"({"contact":{"speak4_id":"s4-1"}})", "type"},
        {R"({"type":"contact.exploded","contact":{"speak4_id":"s4-1"}})", "type"},
        {R"({"type":42,"contact":{"speak4_id":"s4-1"}})", "type"},
        {R"({"type":"contact.updated","event_id":"","contact":{"speak4_id":"s4-1","firstName":"A"}})",
         "event_id"},
        {R"({"type":"contact.updated","event_id":7,"contact":{"speak4_id":"s4-1","firstName":"A"}})",
         "event_id"},
        {R"({"type":"contact.updated"})", "contact"},
        {R"({"type":"contact.updated","contact":"s4-1"})", "contact"},
        {R"({"type":"contact.updated","contact":{"firstName":"A"}})", "contact"},
        {R"({"type":"contact.updated","contact":{"speak4_id":"s4-1","email":"not-an-email"}})",
         "contact.email"},
        {R"({"type":"contact.updated","contact":{"speak4_id":"s4-1","phone":"call me"}})",
         "contact.phone"},
        {R"({"type":"contact.updated","contact":{"speak4_id":"s4-1","firstName":12}})",
         "contact.firstName"},
        {R"({"type":"contact.updated","contact":{"speak4_id":"s4-1","shoeSize":"44"}})",
         "contact.shoeSize"},
        {R"({"type":"contact.updated","contact":{"speak4_id":"s4-1","tags":"vip"}})",
         "contact.tags"},
        {R"({"type":"contact.updated","contact":{"speak4_id":"s4-1","tags":[""]}})",
         "contact.tags"},
        {R"({"type":"contact.updated","contact":{"speak4_id":"s4-1","customFields":[1]}})",
         "contact.customFields"},
        {R"({"type":"contact.updated","contact":{"speak4_id":"s4-1","firstName":"A"},"pull":"yes"})",
         "pull"},
        {R"({"type":"contact.updated","contact":{"speak4_id":"s4-1","firstName":"A"},"surprise":1})",
         "surprise"},
        {R"({"type":"contact.updated","contact":{"speak4_id":"s4-1"},"notes":[{"speak4_id":"n-9"}]})",
         "notes[0].body"},
        {R"({"type":"contact.updated","contact":{"speak4_id":"s4-404","firstName":"A"}})",
         "contact.speak4_id"},
        {R"({"type":"contact.created","contact":{"firstName":"A"}})", "contact.speak4_id"},
        {R"({"type":"contact.tagged","contact":{"speak4_id":"s4-1"},"tags":[]})", "tags"},
        {R"({"type":"contact.tagged","contact":{"speak4_id":"s4-1"}})", "tags"},
        {R"({"type":"task.created","contact":{"speak4_id":"s4-1"},"task":{"speak4_id":"t-2","dueDate":"2026-12-01T15:00:00Z"}})",
         "task.title"},
        {R"({"type":"task.created","contact":{"speak4_id":"s4-1"},"task":{"speak4_id":"t-2","title":"x"}})",
         "task.dueDate"},
        {R"({"type":"task.created","contact":{"speak4_id":"s4-1"},"task":{"speak4_id":"t-2","title":"x","dueDate":"next tuesday"}})",
         "task.dueDate"},
        {R"({"type":"task.created","contact":{"speak4_id":"s4-1"},"task":{"speak4_id":"t-2","title":"x","dueDate":"2026-02-30T10:00:00Z"}})",
         "task.dueDate"},
        {R"({"type":"task.created","contact":{"speak4_id":"s4-1"},"task":{"speak4_id":"t-2","title":"x","dueDate":"2026-12-01T15:00:00Z","completed":"no"}})",
         "task.completed"},
        {R"({"type":"task.created","contact":{"speak4_id":"s4-1"},"task":{"speak4_id":"t-1","title":"x","dueDate":"2026-12-01T15:00:00Z"}})",
         "task.speak4_id"},
        {R"({"type":"task.created","contact":{"speak4_id":"s4-1"}})", "task"},
        {R"({"type":"task.updated","contact":{"speak4_id":"s4-1"},"task":{"speak4_id":"t-404","title":"y"}})",
         "task.speak4_id"},
        {R"({"type":"task.completed","contact":{"speak4_id":"s4-1"},"task":{"speak4_id":"t-1"}})",
         "task.completed"},
        {R"({"type":"note.created","contact":{"speak4_id":"s4-1"},"note":{"speak4_id":"n-5"}})",
         "note.body"},
        {R"({"type":"note.created","contact":{"speak4_id":"s4-1"},"note":{"speak4_id":"n-5","body":")" +
             big + R"("}})",
         "larger than"},
        {R"({"type":"note.deleted","contact":{"speak4_id":"s4-1"},"note":{"speak4_id":"n-404"}})",
         "note.speak4_id"},
        {R"({"type":"lead.created","contact":{"speak4_id":"s4-7","firstName":"Lee"}})",
         "contact.email"},
        {R"({"type":"contact.deleted","contact":{"speak4_id":"s4-1","firstName":"A"}})",
         "contact.firstName"},
        {R"({"type":"contact.updated","contact":{"speak4_id":"s4-1","a":{"b":{"c":{"d":{"e":{"f":{"g":{"h":{"i":{"j":{"k":{"l":{"m":{"n":{"o":{"p":{"q":1}}}}}}}}}}}}}}}}}})",
         "nesting"},
    };
    ASSERT_GE(table.size(), 30u);
    const std::string before = db_bytes();
    for (const auto& b : table) {
        SCOPED_TRACE(b.event.substr(0, 200));
        auto r = run({"emit", "-"}, b.event);
        EXPECT_EQ(r.exit_code, 65) << r.out << r.err;
        EXPECT_NE(r.err.find(b.field_in_message), std::string::npos) << r.err;
        EXPECT_EQ(db_bytes(), before) << "the database changed";
    }
}

TEST_F(cli, a_bad_config_refuses_to_start_naming_key_and_line) {
    write_file(config_, "[database]\npath = \"x.db\"\n[sync]\nconflict = \"coin_flip\"\n");
    for (const char* cmd : {"migrate", "status", "check-config"}) {
        auto r = run({cmd});
        EXPECT_EQ(r.exit_code, 78) << cmd;
        EXPECT_NE(r.err.find("sync.conflict"), std::string::npos) << r.err;
        EXPECT_NE(r.err.find(":4:"), std::string::npos) << r.err;
    }
    auto missing = run_cli({"--config", (dir_ / "nope.toml").string(), "status"});
    EXPECT_EQ(missing.exit_code, 78);
    EXPECT_NE(missing.err.find("nope.toml"), std::string::npos);
}

TEST_F(cli, check_config_reads_secrets_and_refuses_open_ones) {
    write_file(dir_ / "token", "pit-secret-value-123\n", 0644);
    write_file(config_,
               "[database]\npath = \"s.db\"\n[ghl]\nlocation_id = \"loc1\"\ntoken_file = \"" +
                   (dir_ / "token").string() + "\"\n");
    auto open = run({"check-config"});
    EXPECT_EQ(open.exit_code, 78);
    EXPECT_NE(open.err.find("ghl.token_file"), std::string::npos) << open.err;
    EXPECT_NE(open.err.find("chmod 600"), std::string::npos) << open.err;
    EXPECT_EQ(open.err.find("pit-secret-value-123"), std::string::npos);
    std::filesystem::permissions(dir_ / "token", std::filesystem::perms::owner_read |
                                                     std::filesystem::perms::owner_write);
    auto ok = run({"check-config"});
    EXPECT_EQ(ok.exit_code, 0) << ok.err;
    EXPECT_EQ(ok.out.find("pit-secret-value-123"), std::string::npos);
}

TEST_F(cli, a_corrupt_database_is_a_clear_io_error) {
    write_file(dir_ / "s.db", std::string(8192, 'z'));
    auto r = run({"status"});
    EXPECT_EQ(r.exit_code, 74);
    EXPECT_NE(r.err.find("s.db"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("not a database"), std::string::npos) << r.err;
    EXPECT_EQ(run({"emit", (source_dir() / "conf" / "sample-events.jsonl").string()}).exit_code,
              74);
}

TEST_F(cli, a_locked_database_is_a_clear_io_error) {
    ASSERT_EQ(run({"migrate"}).exit_code, 0);
    SQLite::Database holder((dir_ / "s.db").string(), SQLite::OPEN_READWRITE);
    holder.exec("BEGIN IMMEDIATE");
    auto r = run({"emit", "-"}, R"({"type":"contact.created","contact":{"speak4_id":"s4-1"}})");
    EXPECT_EQ(r.exit_code, 74) << r.err;
    EXPECT_NE(r.err.find("locked"), std::string::npos) << r.err;
    holder.exec("ROLLBACK");
    EXPECT_EQ(count("SELECT COUNT(*) FROM contacts"), 0);
}

TEST_F(cli, a_database_from_a_newer_binary_is_refused) {
    ASSERT_EQ(run({"migrate"}).exit_code, 0);
    {
        SQLite::Database db((dir_ / "s.db").string(), SQLite::OPEN_READWRITE);
        db.exec("PRAGMA user_version = 9999");
    }
    auto r = run({"status"});
    EXPECT_EQ(r.exit_code, 74);
    EXPECT_NE(r.err.find("newer than this binary"), std::string::npos) << r.err;
}

TEST(demo, runs_the_whole_loop_against_the_bundled_simulator) {
    temp_dir dir;
    auto r = run_cli(
        {"demo", "--dir", (dir / "demo").string(), "--port", std::to_string(free_port())}, "", 120);
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_NE(r.out.find("demo finished: every step passed"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("FAIL"), std::string::npos) << r.out;
    EXPECT_TRUE(std::filesystem::exists(dir / "demo" / "speak4-sync.db"));
}
