// lib/sync mirror: remote contacts, tasks, notes and appointments applied to the mirror (fields,
// raw kept, malformed fields tolerated, change rows), per-field conflicts under each policy with
// their conflicts rows and the pending outbox rows they settle, tag routes, and no echo (the
// pull side never writes an outbox row).
#include "core/clock.hpp"
#include "ghl/model.hpp"
#include "store/database.hpp"
#include "store/migrations.hpp"
#include "support/test_support.hpp"
#include "sync/intake.hpp"
#include "sync/mirror.hpp"

#include <SQLiteCpp/Statement.h>
#include <SQLiteCpp/Transaction.h>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <gtest/gtest.h>

using namespace speak4;
using namespace std::chrono_literals;
using speak4::testing::temp_dir;
namespace bj = boost::json;

namespace {

class mirror_test : public ::testing::Test {
protected:
    void SetUp() override {
        db_ = store::open_database({dir_ / "s.db"});
        store::migrate(*db_);
        in_ = std::make_unique<sync::intake>(*db_, clock_);
    }

    static ghl::contact contact(const std::string& json) {
        auto c = ghl::parse_contact(bj::parse(json));
        EXPECT_TRUE(c.has_value()) << json;
        return c.value_or(ghl::contact{});
    }

    /// A remote contact with dateUpdated `at` (default: now).
    ghl::contact remote(const std::string& id, const std::string& fields,
                        std::optional<sys_time> at = std::nullopt) {
        return contact(R"({"id":")" + id + R"(","dateUpdated":")" +
                       format_iso8601(at.value_or(clock_.now())) + "\"" +
                       (fields.empty() ? "" : "," + fields) + "}");
    }

    sync::contact_result apply(const ghl::contact& c) {
        SQLite::Transaction tx(*db_, SQLite::TransactionBehavior::IMMEDIATE);
        sync::mirror m(*db_, clock_, opt_);
        auto r = m.apply_contact(c);
        tx.commit();
        return r;
    }

    template <class F>
    auto with_mirror(F f) {
        SQLite::Transaction tx(*db_, SQLite::TransactionBehavior::IMMEDIATE);
        sync::mirror m(*db_, clock_, opt_);
        auto r = f(m);
        tx.commit();
        return r;
    }

    void emit(const std::string& text) {
        auto ev = sync::parse_event(text);
        ASSERT_TRUE(ev) << ev.error().message;
        auto r = in_->accept(*ev, text);
        ASSERT_TRUE(r) << r.error().message;
    }

    long long count(const std::string& sql) { return db_->execAndGet(sql).getInt64(); }
    std::string text(const std::string& sql) {
        auto v = db_->execAndGet(sql);
        return v.isNull() ? "<null>" : v.getString();
    }
    long long pushes() { return count("SELECT COUNT(*) FROM outbox WHERE op <> 'pull'"); }
    bj::object outbox_set(long long id) {
        auto p = bj::parse(text("SELECT payload FROM outbox WHERE id = " + std::to_string(id)))
                     .as_object();
        return p.contains("set") ? p["set"].as_object() : bj::object{};
    }

    temp_dir dir_;
    manual_clock clock_;
    sync::mirror_options opt_;
    std::unique_ptr<SQLite::Database> db_;
    std::unique_ptr<sync::intake> in_;
};

const char* const ada_fields = R"("firstName":"Ada","lastName":"Lovelace","email":"ada@example.com",
    "phone":"+15551234567","tags":["vip","math"],"customFields":[{"id":"cf1","value":"87"},{"id":"cf2","value":["a","b"]}],
    "companyName":"Analytical Engines","dnd":false,"businessId":"641c094001436dbc2081e642","firstNameLowerCase":"ada")";

} // namespace

TEST_F(mirror_test, a_new_contact_lands_in_its_columns_with_raw_and_a_change_row) {
    const auto r = apply(remote("g1", ada_fields));
    EXPECT_TRUE(r.created);
    EXPECT_TRUE(r.changed);
    EXPECT_EQ(r.invalid_fields, 0);
    EXPECT_EQ(r.business_id, "641c094001436dbc2081e642");
    EXPECT_EQ(
        text("SELECT first_name || '|' || last_name || '|' || email || '|' || phone FROM contacts"),
        "Ada|Lovelace|ada@example.com|+15551234567");
    EXPECT_EQ(text("SELECT tags FROM contacts"), R"(["vip","math"])");
    EXPECT_EQ(bj::parse(text("SELECT custom_fields FROM contacts")),
              bj::parse(R"({"cf1":"87","cf2":["a","b"]})"));
    const auto fields = bj::parse(text("SELECT fields FROM contacts")).as_object();
    EXPECT_EQ(fields.at("companyName"), "Analytical Engines");
    EXPECT_EQ(fields.at("dnd"), false);
    EXPECT_FALSE(fields.contains("firstNameLowerCase"));
    EXPECT_EQ(text("SELECT business_id FROM contacts"), "641c094001436dbc2081e642");
    EXPECT_EQ(text("SELECT remote_updated_at FROM contacts"), format_iso8601(clock_.now()));
    const auto raw = bj::parse(text("SELECT raw FROM contacts")).as_object();
    EXPECT_EQ(raw.at("firstNameLowerCase"), "ada"); // raw keeps everything GHL sent
    EXPECT_EQ(text("SELECT entity || ':' || kind || ':' || source FROM changes"),
              "contact:created:remote");
    EXPECT_EQ(count("SELECT COUNT(*) FROM outbox"), 0);
}

TEST_F(mirror_test, raw_is_the_record_without_its_search_cursor_wherever_the_cursor_sits) {
    // raw is the item as received minus "searchAfter", in the bytes a copy with the member
    // erased serializes to (Boost.JSON's erase moves the last member into the hole).
    const std::vector<std::string> items = {
        R"({"id":"g1","searchAfter":[1,"g1"],"firstName":"A","tags":["t"],"z":{"k":[1,2.5,null]}})",
        R"({"id":"g2","firstName":"B","searchAfter":[2,"g2"],"email":"b@x.io","dnd":true})",
        R"({"id":"g3","firstName":"C","lastName":"\u00e9\"q","searchAfter":[3,"g3"]})",
        R"({"searchAfter":[4,"g4"],"id":"g4"})",
        R"({"id":"g6","a":"x\"searchAfter\":[6]","searchAfter":[6,"g6\"}"]})",
        R"({"id":"g7","n":[{"searchAfter":1}],"searchAfter":{"k":"v"}})",
        R"({"id":"g5","firstName":"E","phone":"+15550000005"})",
    };
    for (const auto& item : items) {
        SCOPED_TRACE(item);
        const ghl::contact c = contact(item);
        apply(c);
        bj::object expected = bj::parse(item).as_object();
        expected.erase("searchAfter");
        EXPECT_EQ(text("SELECT raw FROM contacts WHERE ghl_id = '" + c.id + "'"),
                  bj::serialize(expected));
    }
}

TEST_F(mirror_test, a_contact_prepared_ahead_applies_exactly_like_one_prepared_in_place) {
    // The pull prepares search items on the network thread (prepare_contact) and applies them
    // later: the mirror must end up the same as with apply_contact(c) alone, for a new contact,
    // the same version again, a newer one, one with malformed fields, and a webhook stub.
    temp_dir other;
    auto db2 = store::open_database({other / "s.db"});
    store::migrate(*db2);
    auto apply_both = [&](const ghl::contact& c) {
        const sync::prepared_contact p = sync::prepare_contact(c);
        const auto a = with_mirror([&](sync::mirror& m) { return m.apply_contact(c, p); });
        SQLite::Transaction tx(*db2, SQLite::TransactionBehavior::IMMEDIATE);
        sync::mirror m2(*db2, clock_, opt_);
        const auto b = m2.apply_contact(c);
        tx.commit();
        EXPECT_EQ(a.id, b.id);
        EXPECT_EQ(a.created, b.created);
        EXPECT_EQ(a.changed, b.changed);
        EXPECT_EQ(a.invalid_fields, b.invalid_fields);
        EXPECT_EQ(a.conflicts, b.conflicts);
    };
    apply_both(remote("g1", ada_fields));
    apply_both(remote("g1", ada_fields));
    clock_.advance(1min);
    apply_both(remote("g1", R"("firstName":"Augusta","tags":["vip"],"searchAfter":[1,"g1"])"));
    apply_both(remote("g2", R"("firstName":7,"tags":"x","customFields":[{"id":"c","value":1},3],
                               "dnd":"no","searchAfter":[2,"g2"],"email":"e@x.io")"));
    apply_both(contact(R"({"id":"g3"})"));
    const sync::prepared_contact p =
        sync::prepare_contact(remote("g4", R"("searchAfter":[4,"g4"],"lastName":"L")"));
    EXPECT_EQ(p.raw.find("searchAfter"), std::string::npos);
    EXPECT_EQ(p.remote_updated, format_iso8601(clock_.now()));
    auto rows = [](SQLite::Database& db) {
        std::string out;
        SQLite::Statement q(db, "SELECT * FROM contacts ORDER BY id");
        while (q.executeStep())
            for (int i = 0; i < q.getColumnCount(); ++i)
                out += q.getColumn(i).getString() + "|";
        SQLite::Statement c(db, "SELECT * FROM changes ORDER BY seq");
        while (c.executeStep())
            for (int i = 0; i < c.getColumnCount(); ++i)
                out += c.getColumn(i).getString() + "|";
        return out;
    };
    EXPECT_EQ(rows(*db_), rows(*db2));
}

TEST_F(mirror_test, the_same_version_again_changes_nothing_and_a_new_one_is_an_update) {
    apply(remote("g1", ada_fields));
    const auto again = apply(remote("g1", ada_fields));
    EXPECT_FALSE(again.created);
    EXPECT_FALSE(again.changed);
    EXPECT_EQ(count("SELECT COUNT(*) FROM changes"), 1);

    clock_.advance(1min);
    const auto r = apply(remote(
        "g1", R"("firstName":"Ada","lastName":"King","email":"ada@example.com","tags":["vip"])"));
    EXPECT_TRUE(r.changed);
    EXPECT_EQ(text("SELECT last_name FROM contacts"), "King");
    // A field GHL no longer sends is gone from the mirror too.
    EXPECT_EQ(text("SELECT phone FROM contacts"), "<null>");
    EXPECT_EQ(text("SELECT custom_fields FROM contacts"), "{}");
    EXPECT_EQ(text("SELECT tags FROM contacts"), R"(["vip"])");
    EXPECT_EQ(text("SELECT kind FROM changes ORDER BY seq DESC LIMIT 1"), "updated");
    EXPECT_EQ(count("SELECT COUNT(*) FROM contacts"), 1);
}

TEST_F(mirror_test, malformed_fields_are_skipped_and_the_rest_stored) {
    const auto r =
        apply(contact(R"({"id":"g1","firstName":42,"lastName":"Ok","email":"ok@example.com",
        "tags":["good",7,null,"also"],"customFields":[{"id":"cf1","value":"1"},"junk",{"value":"no id"}],
        "dnd":"yes","dateUpdated":"not a date","unexpected":{"deep":[1,2,3]}})"));
    EXPECT_FALSE(r.skipped);
    EXPECT_GE(r.invalid_fields, 4);
    EXPECT_EQ(text("SELECT first_name FROM contacts"), "<null>");
    EXPECT_EQ(text("SELECT last_name || '|' || email FROM contacts"), "Ok|ok@example.com");
    EXPECT_EQ(text("SELECT tags FROM contacts"), R"(["good","also"])");
    EXPECT_EQ(text("SELECT custom_fields FROM contacts"), R"({"cf1":"1"})");
    EXPECT_FALSE(bj::parse(text("SELECT fields FROM contacts")).as_object().contains("dnd"));
    EXPECT_EQ(text("SELECT remote_updated_at FROM contacts"), "<null>");
    EXPECT_TRUE(bj::parse(text("SELECT raw FROM contacts")).as_object().contains("unexpected"));

    // An existing contact keeps its value where the remote one is malformed.
    apply(remote("g2", ada_fields));
    clock_.advance(1s);
    apply(remote("g2",
                 R"("firstName":["x"],"lastName":"Lovelace","email":"ada@example.com","tags":"vip",
                          "customFields":"nope")"));
    EXPECT_EQ(text("SELECT first_name FROM contacts WHERE ghl_id = 'g2'"), "Ada");
    EXPECT_EQ(text("SELECT tags FROM contacts WHERE ghl_id = 'g2'"), R"(["vip","math"])");
    EXPECT_EQ(bj::parse(text("SELECT custom_fields FROM contacts WHERE ghl_id = 'g2'")),
              bj::parse(R"({"cf1":"87","cf2":["a","b"]})"));
    EXPECT_EQ(text("SELECT phone FROM contacts WHERE ghl_id = 'g2'"),
              "<null>"); // absent, not malformed
}

TEST_F(mirror_test, a_contact_deleted_here_is_not_resurrected_and_deletes_are_change_rows) {
    apply(remote("g1", ada_fields));
    EXPECT_TRUE(with_mirror([](sync::mirror& m) { return m.mark_contact_deleted("g1"); }));
    EXPECT_FALSE(with_mirror([](sync::mirror& m) { return m.mark_contact_deleted("g1"); }));
    EXPECT_FALSE(with_mirror([](sync::mirror& m) { return m.mark_contact_deleted("unknown"); }));
    clock_.advance(1min);
    const auto r = apply(remote("g1", R"("firstName":"Back")"));
    EXPECT_TRUE(r.skipped);
    EXPECT_EQ(text("SELECT first_name || deleted FROM contacts"), "Ada1");
    EXPECT_EQ(text("SELECT group_concat(kind, ',') FROM (SELECT kind FROM changes ORDER BY seq)"),
              "created,deleted");
}

TEST_F(mirror_test, a_webhook_stub_gets_its_data_as_a_creation) {
    const std::string now = format_iso8601(clock_.now());
    db_->exec("INSERT INTO contacts(ghl_id, created_at, updated_at) VALUES ('g1', '" + now +
              "', '" + now + "')");
    const auto r = apply(remote("g1", ada_fields));
    EXPECT_TRUE(r.created);
    EXPECT_EQ(count("SELECT COUNT(*) FROM contacts"), 1);
    EXPECT_EQ(text("SELECT kind FROM changes"), "created");
}

TEST_F(mirror_test, tag_routes_set_and_clear_the_workflow) {
    opt_.rules.tag_routes = {{"vip", "priority-callback"}, {"hot", "fast-track"}};
    apply(remote("g1", R"("firstName":"A","tags":["VIP"])"));
    EXPECT_EQ(text("SELECT workflow FROM contacts"), "priority-callback");
    EXPECT_EQ(count("SELECT COUNT(*) FROM changes WHERE kind = 'workflow'"), 1);
    clock_.advance(1s);
    apply(remote("g1", R"("firstName":"A","tags":["vip","hot"])"));
    EXPECT_EQ(text("SELECT workflow FROM contacts"), "fast-track"); // "hot" < "vip"
    clock_.advance(1s);
    apply(remote("g1", R"("firstName":"A","tags":["hot","other"])"));
    EXPECT_EQ(count("SELECT COUNT(*) FROM changes WHERE kind = 'workflow'"),
              2); // unchanged: no row
    clock_.advance(1s);
    apply(remote("g1", R"("firstName":"A","tags":[])"));
    EXPECT_EQ(text("SELECT workflow FROM contacts"), "<null>");
    EXPECT_EQ(count("SELECT COUNT(*) FROM changes WHERE kind = 'workflow'"), 3);
}

// --- conflicts ---------------------------------------------------------------------------------

TEST_F(mirror_test, a_local_phone_change_and_a_remote_email_change_both_survive) {
    opt_.policy = conflict_policy::remote_wins;
    apply(remote("g1", ada_fields));
    emit(R"({"type":"contact.updated","contact":{"ghl_id":"g1","phone":"+15550000000"}})");
    const long long row = count("SELECT id FROM outbox");
    clock_.advance(1min);
    // GHL still has the old phone (the push has not happened) and a new email.
    const auto r =
        apply(remote("g1", R"("firstName":"Ada","lastName":"Lovelace","email":"ada@new.example",
        "phone":"+15551234567","tags":["vip","math"],"customFields":[{"id":"cf1","value":"87"},{"id":"cf2","value":["a","b"]}],
        "companyName":"Analytical Engines","dnd":false,"businessId":"641c094001436dbc2081e642")"));
    EXPECT_EQ(r.conflicts, 0);
    EXPECT_EQ(text("SELECT email || '|' || phone FROM contacts"), "ada@new.example|+15550000000");
    EXPECT_EQ(count("SELECT COUNT(*) FROM conflicts"), 0);
    EXPECT_EQ(bj::serialize(outbox_set(row)), R"({"phone":"+15550000000"})");
    EXPECT_EQ(text("SELECT state FROM outbox WHERE id = " + std::to_string(row)), "pending");
}

TEST_F(mirror_test, remote_wins_takes_the_field_out_of_the_pending_push) {
    opt_.policy = conflict_policy::remote_wins;
    apply(remote("g1", ada_fields));
    emit(
        R"({"type":"contact.updated","contact":{"ghl_id":"g1","email":"local@example.com","phone":"+15550000000"}})");
    const long long row = count("SELECT id FROM outbox");
    clock_.advance(1min);
    const auto r = apply(
        remote("g1", R"("firstName":"Remote","lastName":"Lovelace","email":"remote@example.com",
        "phone":"+15551234567","tags":["vip","math"])"));
    EXPECT_EQ(r.conflicts, 1); // email only: phone changed on one side, firstName on the other
    EXPECT_EQ(text("SELECT first_name || '|' || email || '|' || phone FROM contacts"),
              "Remote|remote@example.com|+15550000000");
    EXPECT_EQ(text("SELECT entity || '|' || field || '|' || local_value || '|' || remote_value || "
                   "'|' || policy || '|' || "
                   "winner FROM conflicts"),
              "contact|email|local@example.com|remote@example.com|remote_wins|remote");
    EXPECT_EQ(bj::serialize(outbox_set(row)), R"({"phone":"+15550000000"})");
    EXPECT_EQ(text("SELECT state FROM outbox WHERE id = " + std::to_string(row)), "pending");
}

TEST_F(mirror_test, remote_wins_settles_an_update_left_with_nothing_to_send) {
    opt_.policy = conflict_policy::remote_wins;
    apply(remote("g1", ada_fields));
    emit(R"({"type":"contact.updated","contact":{"ghl_id":"g1","email":"local@example.com"}})");
    clock_.advance(1min);
    apply(remote("g1", R"("firstName":"Ada","email":"remote@example.com")"));
    EXPECT_EQ(text("SELECT state FROM outbox"), "done");
    EXPECT_NE(text("SELECT last_error FROM outbox").find("superseded"), std::string::npos);
}

TEST_F(mirror_test, local_wins_keeps_the_local_value_and_the_push) {
    opt_.policy = conflict_policy::local_wins;
    apply(remote("g1", ada_fields));
    emit(R"({"type":"contact.updated","contact":{"ghl_id":"g1","email":"local@example.com"}})");
    clock_.advance(1min);
    const auto r = apply(remote("g1", R"("firstName":"Ada","email":"remote@example.com")"));
    EXPECT_EQ(r.conflicts, 1);
    EXPECT_EQ(text("SELECT email FROM contacts"), "local@example.com");
    EXPECT_EQ(text("SELECT winner || '|' || policy FROM conflicts"), "local|local_wins");
    EXPECT_EQ(bj::serialize(outbox_set(1)), R"({"email":"local@example.com"})");
    EXPECT_EQ(text("SELECT state FROM outbox"), "pending");
}

TEST_F(mirror_test, newest_wins_compares_dateUpdated_with_the_outbox_row) {
    opt_.policy = conflict_policy::newest_wins;
    apply(remote("g1", ada_fields));
    clock_.advance(1min);
    const sys_time local_at = clock_.now();
    emit(
        R"({"type":"contact.updated","contact":{"ghl_id":"g1","email":"local@example.com","lastName":"Local"}})");
    clock_.advance(1min);
    // Remote email changed before the local change: local wins it.
    apply(remote("g1", R"("firstName":"Ada","lastName":"Lovelace","email":"older@example.com")",
                 local_at - 10s));
    EXPECT_EQ(text("SELECT email FROM contacts"), "local@example.com");
    // Remote lastName changed after it: remote wins that one.
    apply(remote("g1", R"("firstName":"Ada","lastName":"Newer","email":"older@example.com")",
                 local_at + 10s));
    EXPECT_EQ(text("SELECT last_name FROM contacts"), "Newer");
    EXPECT_EQ(text("SELECT email FROM contacts"), "local@example.com");
    EXPECT_EQ(text("SELECT group_concat(field || ':' || winner, ',') FROM (SELECT * FROM conflicts "
                   "ORDER BY id)"),
              "email:local,lastName:remote");
    EXPECT_EQ(bj::serialize(outbox_set(1)), R"({"email":"local@example.com"})");
}

TEST_F(mirror_test, custom_fields_and_tags_conflict_one_by_one) {
    opt_.policy = conflict_policy::remote_wins;
    apply(remote("g1", ada_fields));
    emit(
        R"({"type":"contact.updated","contact":{"ghl_id":"g1","customFields":{"cf1":"90","cf3":"new"}}})");
    emit(R"({"type":"contact.tagged","contact":{"ghl_id":"g1"},"tags":["local-tag"]})");
    clock_.advance(1min);
    apply(remote("g1", R"("firstName":"Ada","tags":["vip","remote-tag"],
        "customFields":[{"id":"cf1","value":"99"},{"id":"cf2","value":["a","b"]}])"));
    EXPECT_EQ(
        text("SELECT group_concat(field, ',') FROM (SELECT field FROM conflicts ORDER BY field)"),
        "customFields.cf1,tags");
    EXPECT_EQ(bj::parse(text("SELECT custom_fields FROM contacts")),
              bj::parse(R"({"cf1":"99","cf2":["a","b"],"cf3":"new"})"));
    EXPECT_EQ(text("SELECT tags FROM contacts"), R"(["vip","remote-tag"])");
    EXPECT_EQ(bj::serialize(outbox_set(1)), R"({"customFields":{"cf3":"new"}})");
    EXPECT_EQ(text("SELECT state FROM outbox WHERE op = 'tag_add'"), "done");
}

TEST_F(mirror_test, an_inflight_push_is_left_alone) {
    opt_.policy = conflict_policy::remote_wins;
    apply(remote("g1", ada_fields));
    emit(R"({"type":"contact.updated","contact":{"ghl_id":"g1","email":"local@example.com"}})");
    db_->exec("UPDATE outbox SET state = 'inflight'");
    clock_.advance(1min);
    apply(remote("g1", R"("firstName":"Ada","email":"remote@example.com")"));
    // The request is built and may land after the copy was read: GHL ends with its value, so
    // the mirror keeps it too, and the row is not touched.
    EXPECT_EQ(text("SELECT email FROM contacts"), "local@example.com");
    EXPECT_EQ(text("SELECT state FROM outbox"), "inflight");
    EXPECT_EQ(bj::serialize(outbox_set(1)), R"({"email":"local@example.com"})");
    EXPECT_EQ(count("SELECT COUNT(*) FROM conflicts"), 0);
    // Once it is done, a copy read afterwards is the truth again.
    db_->exec("UPDATE outbox SET state = 'done', attempts = 1");
    clock_.advance(1min);
    apply(remote("g1", R"("firstName":"Ada","email":"remote@example.com")"));
    EXPECT_EQ(text("SELECT email FROM contacts"), "remote@example.com");
}

// A copy read before one of our pushes landed is older than that push: the fields it wrote
// keep their local value, the others follow GHL.
TEST_F(mirror_test, a_copy_read_before_our_push_landed_does_not_undo_it) {
    apply(remote("g1", ada_fields));
    emit(R"({"type":"contact.updated","contact":{"ghl_id":"g1","email":"local@example.com"}})");
    const auto read_at = clock_.now();
    clock_.advance(1s);
    db_->exec("UPDATE outbox SET state = 'done', attempts = 1, updated_at = '" +
              format_iso8601(clock_.now()) + "'");
    clock_.advance(1s);
    with_mirror([&](sync::mirror& m) {
        m.set_fetched_at(read_at);
        return m.apply_contact(remote("g1", R"("firstName":"Adele","email":"old@example.com")"))
            .changed;
    });
    EXPECT_EQ(text("SELECT email FROM contacts"), "local@example.com");
    EXPECT_EQ(text("SELECT first_name FROM contacts"), "Adele");
    EXPECT_EQ(count("SELECT COUNT(*) FROM conflicts"), 0);
}

// GHL showing what one of our queued writes sets (an attempt whose answer was lost) is our own
// write coming back, not a remote edit: no conflict, and the writes queued behind it survive.
TEST_F(mirror_test, our_own_write_coming_back_is_not_a_conflict) {
    opt_.policy = conflict_policy::newest_wins;
    apply(remote("g1", ada_fields));
    emit(R"({"type":"contact.tagged","contact":{"ghl_id":"g1"},"tags":["chaos","vip"]})");
    emit(R"({"type":"contact.untagged","contact":{"ghl_id":"g1"},"tags":["vip"]})");
    emit(R"({"type":"contact.updated","contact":{"ghl_id":"g1","lastName":"One"}})");
    emit(R"({"type":"contact.updated","contact":{"ghl_id":"g1","lastName":"Two"}})");
    clock_.advance(1min); // GHL's copy is newer than every local change
    apply(remote("g1", R"("firstName":"Ada","lastName":"One","tags":["math","chaos","vip"])"));
    EXPECT_EQ(count("SELECT COUNT(*) FROM conflicts"), 0);
    EXPECT_EQ(text("SELECT tags FROM contacts"), R"(["math","chaos"])");
    EXPECT_EQ(text("SELECT last_name FROM contacts"), "Two");
    EXPECT_EQ(count("SELECT COUNT(*) FROM outbox WHERE state = 'pending'"), 4);
}

TEST_F(mirror_test, applying_remote_data_never_writes_an_outbox_row) {
    opt_.rules.tag_routes = {{"vip", "w"}};
    apply(remote("g1", ada_fields));
    clock_.advance(1min);
    apply(remote("g1", R"("firstName":"Changed","tags":[])"));
    std::vector<ghl::task> tasks{
        *ghl::parse_task(bj::parse(R"({"id":"t1","title":"T","completed":false})"))};
    with_mirror([&](sync::mirror& m) { return m.apply_tasks(1, tasks, clock_.now()).created; });
    with_mirror([](sync::mirror& m) { return m.mark_contact_deleted("g1"); });
    EXPECT_EQ(count("SELECT COUNT(*) FROM outbox"), 0);
}

// --- tasks, notes, appointments ----------------------------------------------------------------

TEST_F(mirror_test, tasks_are_upserted_and_those_gone_remotely_marked_deleted) {
    apply(remote("g1", ada_fields));
    auto task = [](const std::string& json) { return *ghl::parse_task(bj::parse(json)); };
    std::vector<ghl::task> list{
        task(
            R"({"id":"t1","title":"Call","body":"b","dueDate":"2026-12-01T15:00:00Z","completed":false,"assignedTo":"u1"})"),
        task(R"({"id":"t2","title":"Mail","dueDate":"2026-12-02T09:00:00.000Z","completed":true})"),
        task(R"({"id":"t3","title":7,"completed":"no"})")};
    clock_.advance(1s);
    auto r = with_mirror([&](sync::mirror& m) { return m.apply_tasks(1, list, clock_.now()); });
    EXPECT_EQ(r.created, 3);
    EXPECT_EQ(text("SELECT title || '|' || body || '|' || due_date || '|' || completed || '|' || "
                   "assigned_to FROM tasks "
                   "WHERE ghl_id = 't1'"),
              "Call|b|2026-12-01T15:00:00.000Z|0|u1");
    EXPECT_EQ(text("SELECT completed FROM tasks WHERE ghl_id = 't2'"), "1");
    EXPECT_EQ(text("SELECT coalesce(title, 'none') || completed FROM tasks WHERE ghl_id = 't3'"),
              "none0");
    EXPECT_EQ(text("SELECT contact_id FROM tasks WHERE ghl_id = 't1'"), "1");
    EXPECT_EQ(count("SELECT COUNT(*) FROM changes WHERE entity = 'task' AND kind = 'created'"), 3);

    // t2 gone remotely, t1 renamed; a local task without a GHL id is left alone.
    emit(
        R"({"type":"task.created","contact":{"ghl_id":"g1"},"task":{"speak4_id":"lt","title":"Local",
        "dueDate":"2026-12-03T00:00:00Z"}})");
    clock_.advance(1s);
    list = {
        task(
            R"({"id":"t1","title":"Call back","body":"b","dueDate":"2026-12-01T15:00:00Z","completed":false,"assignedTo":"u1"})"),
        task(R"({"id":"t3","title":7,"completed":"no"})")};
    r = with_mirror([&](sync::mirror& m) { return m.apply_tasks(1, list, clock_.now()); });
    EXPECT_EQ(r.updated, 1);
    EXPECT_EQ(r.unchanged, 1);
    EXPECT_EQ(r.deleted, 1);
    EXPECT_EQ(text("SELECT deleted FROM tasks WHERE ghl_id = 't2'"), "1");
    EXPECT_EQ(text("SELECT title FROM tasks WHERE ghl_id = 't1'"), "Call back");
    EXPECT_EQ(text("SELECT deleted FROM tasks WHERE speak4_id = 'lt'"), "0");
    EXPECT_EQ(count("SELECT COUNT(*) FROM changes WHERE entity = 'task' AND kind = 'deleted'"), 1);
}

TEST_F(mirror_test, a_task_linked_while_the_list_was_in_flight_is_not_deleted) {
    apply(remote("g1", ada_fields));
    const sys_time listed_at = clock_.now();
    clock_.advance(1s);
    const std::string now = format_iso8601(clock_.now());
    // A push linked t9 after the list was requested (its updated_at is later).
    db_->exec("INSERT INTO tasks(speak4_id, ghl_id, contact_id, title, created_at, updated_at) "
              "VALUES ('s', 't9', 1, 'x', '" +
              now + "', '" + now + "')");
    auto r = with_mirror([&](sync::mirror& m) { return m.apply_tasks(1, {}, listed_at); });
    EXPECT_EQ(r.deleted, 0);
    EXPECT_EQ(text("SELECT deleted FROM tasks"), "0");
}

TEST_F(mirror_test, task_fields_conflict_like_contact_fields) {
    opt_.policy = conflict_policy::remote_wins;
    apply(remote("g1", ada_fields));
    auto task = [](const std::string& json) { return *ghl::parse_task(bj::parse(json)); };
    with_mirror([&](sync::mirror& m) {
        return m
            .apply_tasks(1, {task(R"({"id":"t1","title":"Call","completed":false})")}, clock_.now())
            .created;
    });
    emit(
        R"({"type":"task.updated","contact":{"ghl_id":"g1"},"task":{"ghl_id":"t1","title":"Local title"}})");
    emit(
        R"({"type":"task.completed","contact":{"ghl_id":"g1"},"task":{"ghl_id":"t1","completed":true}})");
    clock_.advance(1s);
    auto r = with_mirror([&](sync::mirror& m) {
        return m.apply_tasks(1, {task(R"({"id":"t1","title":"Remote title","completed":false})")},
                             clock_.now());
    });
    EXPECT_EQ(r.conflicts, 1); // title; `completed` changed only locally
    EXPECT_EQ(text("SELECT title || '|' || completed FROM tasks"), "Remote title|1");
    EXPECT_EQ(text("SELECT entity || '|' || field || '|' || winner FROM conflicts"),
              "task|title|remote");
    EXPECT_EQ(text("SELECT state FROM outbox WHERE op = 'update'"), "done");
    EXPECT_EQ(text("SELECT state FROM outbox WHERE op = 'complete'"), "pending");
}

TEST_F(mirror_test, notes_are_upserted_and_removed) {
    apply(remote("g1", ada_fields));
    auto note = [](const std::string& json) { return *ghl::parse_note(bj::parse(json)); };
    auto r = with_mirror([&](sync::mirror& m) {
        return m.apply_notes(1,
                             {note(R"({"id":"n1","body":"Called","title":"Call"})"),
                              note(R"({"id":"n2","body":"x"})")},
                             clock_.now());
    });
    EXPECT_EQ(r.created, 2);
    EXPECT_EQ(text("SELECT body || '|' || title FROM notes WHERE ghl_id = 'n1'"), "Called|Call");
    EXPECT_TRUE(
        bj::parse(text("SELECT raw FROM notes WHERE ghl_id = 'n1'")).as_object().contains("title"));
    clock_.advance(1s);
    r = with_mirror([&](sync::mirror& m) {
        return m.apply_notes(1, {note(R"({"id":"n1","body":"Called twice"})")}, clock_.now());
    });
    EXPECT_EQ(r.updated, 1);
    EXPECT_EQ(r.deleted, 1);
    EXPECT_EQ(text("SELECT body || '|' || coalesce(title, '-') FROM notes WHERE ghl_id = 'n1'"),
              "Called twice|-");
    EXPECT_EQ(text("SELECT deleted FROM notes WHERE ghl_id = 'n2'"), "1");
}

TEST_F(mirror_test, appointments_keep_their_reminder_in_line) {
    opt_.rules.appointment_reminder_minutes = 30;
    apply(remote("g1", ada_fields));
    const sys_time start = clock_.now() + 48h;
    auto appt = [](const std::string& json) { return *ghl::parse_appointment(bj::parse(json)); };
    auto at = [](sys_time t) {
        // GHL's API form: "YYYY-MM-DD HH:MM:SS".
        std::string s = format_iso8601(t);
        return s.substr(0, 10) + " " + s.substr(11, 8);
    };
    const std::string a1 = R"({"id":"a1","title":"Demo","startTime":")" + at(start) +
                           R"(","endTime":")" + at(start + 30min) +
                           R"(","status":"booked","appointmentStatus":"confirmed"})";
    auto r = with_mirror(
        [&](sync::mirror& m) { return m.apply_appointments(1, {appt(a1)}, clock_.now()); });
    EXPECT_EQ(r.created, 1);
    EXPECT_EQ(r.reminders, 1);
    EXPECT_EQ(text("SELECT title || '|' || start_time || '|' || end_time || '|' || status FROM "
                   "appointments"),
              "Demo|" + format_iso8601(start) + "|" + format_iso8601(start + 30min) + "|confirmed");
    EXPECT_EQ(text("SELECT remind_at FROM reminders"), format_iso8601(start - 30min));

    // Moved by a day: the reminder follows.
    clock_.advance(1min);
    const std::string moved = R"({"id":"a1","title":"Demo","startTime":")" + at(start + 24h) +
                              R"(","appointmentStatus":"confirmed"})";
    r = with_mirror(
        [&](sync::mirror& m) { return m.apply_appointments(1, {appt(moved)}, clock_.now()); });
    EXPECT_EQ(r.updated, 1);
    EXPECT_EQ(text("SELECT remind_at FROM reminders"), format_iso8601(start + 24h - 30min));

    // Cancelled: its unfired reminder goes.
    clock_.advance(1min);
    const std::string cancelled = R"({"id":"a1","title":"Demo","startTime":")" + at(start + 24h) +
                                  R"(","appointmentStatus":"cancelled"})";
    with_mirror(
        [&](sync::mirror& m) { return m.apply_appointments(1, {appt(cancelled)}, clock_.now()); });
    EXPECT_EQ(count("SELECT COUNT(*) FROM reminders"), 0);
    EXPECT_EQ(text("SELECT status FROM appointments"), "cancelled");

    // Gone from the list: deleted.
    clock_.advance(1min);
    r = with_mirror([&](sync::mirror& m) { return m.apply_appointments(1, {}, clock_.now()); });
    EXPECT_EQ(r.deleted, 1);
    EXPECT_EQ(text("SELECT deleted FROM appointments"), "1");
    EXPECT_EQ(text("SELECT group_concat(kind, ',') FROM (SELECT kind FROM changes WHERE entity = "
                   "'appointment' ORDER BY seq)"),
              "created,updated,updated,deleted");
    EXPECT_EQ(text("SELECT group_concat(kind, ',') FROM (SELECT kind FROM changes WHERE entity = "
                   "'reminder' ORDER BY seq)"),
              "scheduled,rescheduled,removed");
}

TEST_F(mirror_test, audit_rows_and_cursors) {
    sync::audit_entry e;
    e.ts = format_iso8601(clock_.now());
    e.method = "POST";
    e.path = "/contacts/search";
    e.status = 200;
    e.latency_ms = 12;
    e.rate_limit_remaining = 97;
    e.daily_remaining = 199000;
    e.trace_id = "tr-1";
    with_mirror([&](sync::mirror& m) {
        m.write_audit({e});
        m.set_cursor("contacts.search", R"({"complete":true})");
        return 0;
    });
    EXPECT_EQ(text("SELECT method || ' ' || path || ' ' || status || ' ' || rate_limit_remaining "
                   "|| ' ' || trace_id || ' ' || "
                   "coalesce(outbox_id, '-') FROM audit_log"),
              "POST /contacts/search 200 97 tr-1 -");
    EXPECT_EQ(text("SELECT value FROM sync_cursors WHERE name = 'rate_limit.remaining'"), "97");
    EXPECT_EQ(text("SELECT value FROM sync_cursors WHERE name = 'rate_limit.daily_remaining'"),
              "199000");
    EXPECT_EQ(with_mirror([](sync::mirror& m) { return m.cursor("contacts.search"); }),
              R"({"complete":true})");
}
