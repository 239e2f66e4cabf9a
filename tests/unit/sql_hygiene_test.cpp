// SQL is built only from prepared statements: data never becomes SQL text. Every statement the
// store, intake, outbox and mirror run is traced (sqlite3_trace_v2, the SQL as prepared) while
// hostile strings travel every path that writes or reads data — events from Speak4, records and
// errors from GHL, CLI filters. None of those strings may appear in any statement's text, and
// each must come back byte for byte.
#include "core/clock.hpp"
#include "ghl/model.hpp"
#include "store/database.hpp"
#include "store/inspect.hpp"
#include "store/migrations.hpp"
#include "support/test_support.hpp"
#include "sync/event.hpp"
#include "sync/intake.hpp"
#include "sync/mirror.hpp"
#include "sync/outbox.hpp"

#include <SQLiteCpp/Transaction.h>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <gtest/gtest.h>
#include <sqlite3.h>

using namespace speak4;
using namespace std::chrono_literals;
using speak4::testing::temp_dir;
namespace bj = boost::json;

namespace {

// Each carries a marker no SQL we write contains ("zq9"), plus quoting and comment syntax that
// would break or change a statement if it were pasted into one.
const std::string quote = "zq9-O'Brien'); DROP TABLE contacts;--";
const std::string dquote = "zq9-\"name\" /* c */";
const std::string semi = "zq9-1 OR 1=1; --";

int trace(unsigned type, void* ctx, void* stmt, void*) {
    if (type == SQLITE_TRACE_STMT) {
        auto* seen = static_cast<std::vector<std::string>*>(ctx);
        if (const char* sql = sqlite3_sql(static_cast<sqlite3_stmt*>(stmt)))
            seen->emplace_back(sql);
    }
    return 0;
}

std::string json_str(const std::string& s) {
    return bj::serialize(bj::value(s));
}

class sql_hygiene_test : public ::testing::Test {
protected:
    void SetUp() override {
        db_ = store::open_database({dir_ / "s.db"});
        store::migrate(*db_);
        sqlite3_trace_v2(db_->getHandle(), SQLITE_TRACE_STMT, trace, &statements_);
        in_ = std::make_unique<sync::intake>(*db_, clock_);
    }

    void emit(const std::string& text) {
        auto ev = sync::parse_event(text);
        ASSERT_TRUE(ev) << ev.error().message << "\n" << text;
        auto r = in_->accept(*ev, text);
        ASSERT_TRUE(r) << r.error().message;
    }

    std::string text(const std::string& sql) { return db_->execAndGet(sql).getString(); }

    temp_dir dir_;
    manual_clock clock_;
    std::vector<std::string> statements_;
    std::unique_ptr<SQLite::Database> db_;
    std::unique_ptr<sync::intake> in_;
};

} // namespace

TEST_F(sql_hygiene_test, hostile_strings_travel_every_path_as_bound_values_only) {
    // Speak4 → intake: every kind of text an event carries.
    const std::string c = R"("contact":{"speak4_id":)" + json_str("s4-" + quote) + "}";
    emit(R"({"type":"contact.created","event_id":)" + json_str("e-" + semi) +
         R"(,"contact":{"speak4_id":)" + json_str("s4-" + quote) + R"(,"firstName":)" +
         json_str(quote) + R"(,"lastName":)" + json_str(dquote) +
         R"(,"email":"zq9@example.com","companyName":)" + json_str(semi) + R"(,"tags":[)" +
         json_str(quote) + "," + json_str(dquote) + R"(],"customFields":{)" +
         json_str("cf-" + semi) + ":" + json_str(quote) + "}}}");
    emit(std::string(R"({"type":"contact.updated","event_id":"e-2",)") +
         R"("contact":{"speak4_id":)" + json_str("s4-" + quote) + R"(,"city":)" + json_str(dquote) +
         "}}");
    emit(R"({"type":"contact.tagged","event_id":"e-3",)" + c + R"(,"tags":[)" + json_str(semi) +
         "]}");
    emit(R"({"type":"task.created","event_id":"e-4",)" + c + R"(,"task":{"speak4_id":)" +
         json_str("t-" + dquote) + R"(,"title":)" + json_str(quote) + R"(,"body":)" +
         json_str(semi) + R"(,"dueDate":"2026-12-01T15:00:00Z"}})");
    emit(R"({"type":"note.created","event_id":"e-5",)" + c + R"(,"note":{"speak4_id":)" +
         json_str("n-" + semi) + R"(,"body":)" + json_str(quote) + "}}");
    {
        // The same event again: the duplicate check reads by the hostile event_id.
        auto ev = sync::parse_event(R"({"type":"contact.updated","event_id":)" +
                                    json_str("e-" + semi) + R"(,"contact":{"speak4_id":)" +
                                    json_str("s4-" + quote) + R"(,"city":"x"}})");
        ASSERT_TRUE(ev) << ev.error().message;
        auto r = in_->accept(*ev, "{}");
        ASSERT_TRUE(r);
    }

    // Outbox → GHL and back: claims, a dead letter carrying GHL's body, a write-back.
    sync::outbox_store box(*db_);
    std::vector<sync::work_item> items = box.claim(clock_.now(), 0ms, 100);
    ASSERT_FALSE(items.empty());
    for (const auto& item : items) {
        sync::outcome out;
        if (item.ctx.entity == entity_kind::contact) {
            out.ghl_id = "g-" + quote;
            out.raw = bj::parse(R"({"id":)" + json_str("g-" + quote) + R"(,"firstName":)" +
                                json_str(quote) + "}")
                          .as_object();
        } else {
            out.what = sync::outcome::kind::dead;
            out.status = 422;
            out.error = "POST /contacts/:contactId/tasks: 422 " + quote;
        }
        std::vector<sync::audit_entry> audit(1);
        audit[0].ts = format_iso8601(clock_.now());
        audit[0].method = "POST";
        audit[0].path = "/contacts/" + quote;
        audit[0].status = 422;
        audit[0].error = dquote;
        audit[0].trace_id = semi;
        box.finish(item, out, audit, clock_.now(), {}, [] { return 0.5; });
    }
    clock_.advance(1min);
    (void)box.claim(clock_.now(), 0ms, 100);

    // GHL → mirror: a contact, tasks and notes whose every string is hostile.
    {
        SQLite::Transaction tx(*db_, SQLite::TransactionBehavior::IMMEDIATE);
        sync::mirror m(*db_, clock_, {});
        m.set_fetched_at(clock_.now());
        auto remote = ghl::parse_contact(bj::parse(
            R"({"id":)" + json_str("r-" + dquote) +
            R"(,"dateUpdated":"2026-11-27T10:00:00.000Z",)" + R"("firstName":)" + json_str(semi) +
            R"(,"lastName":)" + json_str(quote) + R"(,"email":"zq9r@example.com","tags":[)" +
            json_str(dquote) + R"(],"customFields":[{"id":)" + json_str("cf-" + quote) +
            R"(,"value":)" + json_str(semi) + "}]}"));
        ASSERT_TRUE(remote);
        const auto r = m.apply_contact(*remote);
        auto t = ghl::parse_task(bj::parse(R"({"id":)" + json_str("rt-" + semi) + R"(,"title":)" +
                                           json_str(dquote) + R"(,"completed":false})"));
        auto n = ghl::parse_note(bj::parse(R"({"id":)" + json_str("rn-" + quote) + R"(,"body":)" +
                                           json_str(semi) + "}"));
        ASSERT_TRUE(t && n);
        std::vector<ghl::task> tasks{*t};
        std::vector<ghl::note> notes{*n};
        m.apply_tasks(r.id, tasks, clock_.now());
        m.apply_notes(r.id, notes, clock_.now());
        (void)m.find_contact("r-" + dquote);
        m.set_cursor("pull.cursor-" + quote, semi);
        (void)m.mark_contact_deleted("r-" + dquote);
        tx.commit();
    }

    // The CLI's readers, with hostile filters.
    (void)store::read_status(*db_);
    EXPECT_TRUE(store::list_outbox(*db_, quote, 10).empty());
    EXPECT_FALSE(store::list_outbox(*db_, std::nullopt, 100).empty());
    EXPECT_TRUE(store::list_audit(*db_, "9" + quote, 10).empty());
    EXPECT_FALSE(store::list_audit(*db_, std::nullopt, 10).empty());

    // The point: thousands of statements ran; none has any of that data in its text.
    ASSERT_GT(statements_.size(), 50u);
    for (const auto& sql : statements_)
        EXPECT_EQ(sql.find("zq9"), std::string::npos) << "data pasted into SQL: " << sql;

    // And every value came back exactly as it went in.
    EXPECT_EQ(text("SELECT first_name FROM contacts WHERE speak4_id LIKE 's4-zq9%'"), quote);
    EXPECT_EQ(text("SELECT last_name FROM contacts WHERE speak4_id LIKE 's4-zq9%'"), dquote);
    EXPECT_EQ(text("SELECT json_extract(fields, '$.companyName') FROM contacts WHERE speak4_id "
                   "LIKE 's4-zq9%'"),
              semi);
    EXPECT_EQ(text("SELECT ghl_id FROM contacts WHERE speak4_id LIKE 's4-zq9%'"), "g-" + quote);
    EXPECT_EQ(text("SELECT title FROM tasks WHERE speak4_id LIKE 't-zq9%'"), quote);
    EXPECT_EQ(text("SELECT body FROM notes WHERE speak4_id LIKE 'n-zq9%'"), quote);
    EXPECT_EQ(text("SELECT event_id FROM inbox ORDER BY id LIMIT 1"), "e-" + semi);
    EXPECT_EQ(text("SELECT path FROM audit_log ORDER BY id LIMIT 1"), "/contacts/" + quote);
    EXPECT_EQ(text("SELECT last_name FROM contacts WHERE ghl_id LIKE 'r-zq9%'"), quote);
    EXPECT_EQ(text("SELECT title FROM tasks WHERE ghl_id LIKE 'rt-zq9%'"), dquote);
    EXPECT_EQ(text("SELECT body FROM notes WHERE ghl_id LIKE 'rn-zq9%'"), semi);
    EXPECT_EQ(text("SELECT COUNT(*) FROM sqlite_master WHERE name = 'contacts'"), "1");
    EXPECT_EQ(text("PRAGMA integrity_check"), "ok");
}
