// lib/sync outbox (dispatcher side): claiming in per-entity order, coalescing, dependencies,
// backoff, dead letters, crash recovery, and outcomes recorded with their audit rows.
#include "core/clock.hpp"
#include "store/database.hpp"
#include "store/migrations.hpp"
#include "support/test_support.hpp"
#include "sync/intake.hpp"
#include "sync/outbox.hpp"

#include <boost/json/parse.hpp>
#include <gtest/gtest.h>

using namespace speak4;
using namespace std::chrono_literals;
using speak4::testing::temp_dir;

namespace {

class outbox_test : public ::testing::Test {
protected:
    void SetUp() override {
        db_ = store::open_database({dir_ / "s.db"});
        store::migrate(*db_);
        in_ = std::make_unique<sync::intake>(*db_, clock_);
        box_ = std::make_unique<sync::outbox_store>(*db_);
    }

    void emit(const std::string& text) {
        auto ev = sync::parse_event(text);
        ASSERT_TRUE(ev) << ev.error().message;
        auto r = in_->accept(*ev, text);
        ASSERT_TRUE(r) << r.error().message;
    }

    std::vector<sync::work_item> claim(int n = 100) { return box_->claim(clock_.now(), 0ms, n); }

    void finish(const sync::work_item& item, const sync::outcome& out, double jitter = 0.5) {
        box_->finish(item, out, {}, clock_.now(), policy_, [jitter] { return jitter; });
    }

    long long count(const std::string& sql) { return db_->execAndGet(sql).getInt64(); }
    std::string text(const std::string& sql) { return db_->execAndGet(sql).getString(); }

    static sync::outcome done(std::string ghl_id = "") {
        sync::outcome o;
        if (!ghl_id.empty())
            o.ghl_id = ghl_id;
        return o;
    }

    temp_dir dir_;
    manual_clock clock_;
    sync::retry_policy policy_{100, 10000, 4};
    std::unique_ptr<SQLite::Database> db_;
    std::unique_ptr<sync::intake> in_;
    std::unique_ptr<sync::outbox_store> box_;
};

const char* const create_ada =
    R"({"type":"contact.created","contact":{"speak4_id":"s4-1","firstName":"Ada","email":"ada@example.com"}})";

} // namespace

TEST(backoff, full_jitter_is_bounded_by_the_capped_exponential) {
    const sync::retry_policy p{500, 300000, 12};
    EXPECT_EQ(sync::backoff_delay(p, 0, std::nullopt, [] { return 0.999; }).count(), 499);
    EXPECT_EQ(sync::backoff_delay(p, 3, std::nullopt, [] { return 0.5; }).count(), 2000);
    EXPECT_EQ(sync::backoff_delay(p, 20, std::nullopt, [] { return 0.5; }).count(),
              150000); // capped
    EXPECT_EQ(sync::backoff_delay(p, 2, std::nullopt, [] { return 0.0; }).count(), 0);
    // Retry-After is a floor.
    EXPECT_EQ(sync::backoff_delay(p, 0, 7000ms, [] { return 0.5; }).count(), 7000);
    EXPECT_EQ(sync::backoff_delay(p, 20, 7000ms, [] { return 0.5; }).count(), 150000);
}

TEST_F(outbox_test, a_create_followed_by_updates_is_one_create) {
    emit(create_ada);
    for (int i = 0; i < 100; ++i)
        emit(R"({"type":"contact.updated","contact":{"speak4_id":"s4-1","lastName":"L)" +
             std::to_string(i) + R"("}})");
    auto items = claim();
    ASSERT_EQ(items.size(), 1u);
    EXPECT_EQ(items[0].act, sync::action::create);
    EXPECT_EQ(items[0].rows.size(), 101u);
    EXPECT_EQ(items[0].set.at("firstName").as_string(), "Ada");
    EXPECT_EQ(items[0].set.at("lastName").as_string(), "L99");
    EXPECT_EQ(count("SELECT COUNT(*) FROM outbox WHERE state = 'inflight'"), 101);
    // Nothing else for this entity while it is in flight.
    EXPECT_TRUE(claim().empty());
    finish(items[0], done("ghlContact0000000001"));
    EXPECT_EQ(text("SELECT ghl_id FROM contacts"), "ghlContact0000000001");
    EXPECT_EQ(count("SELECT COUNT(*) FROM outbox WHERE state = 'done'"), 101);
    EXPECT_EQ(count("SELECT COUNT(*) FROM changes WHERE kind = 'pushed' AND source = 'push'"), 1);
}

TEST_F(outbox_test, updates_to_a_known_contact_coalesce_and_custom_fields_merge_by_id) {
    emit(
        R"({"type":"contact.updated","contact":{"ghl_id":"ghlContact0000000001","customFields":{"a":"1","b":"2"}}})");
    emit(
        R"({"type":"contact.updated","contact":{"ghl_id":"ghlContact0000000001","customFields":{"b":"3"},"email":"x@y.io"}})");
    auto items = claim();
    ASSERT_EQ(items.size(), 1u);
    EXPECT_EQ(items[0].act, sync::action::update);
    EXPECT_EQ(items[0].rows.size(), 2u);
    const auto& cf = items[0].set.at("customFields").as_object();
    EXPECT_EQ(cf.at("a").as_string(), "1");
    EXPECT_EQ(cf.at("b").as_string(), "3");
}

TEST_F(outbox_test, different_kinds_of_change_keep_their_order) {
    emit(
        R"({"type":"contact.updated","contact":{"ghl_id":"ghlContact0000000001","firstName":"A"}})");
    emit(R"({"type":"contact.tagged","contact":{"ghl_id":"ghlContact0000000001"},"tags":["a"]})");
    emit(
        R"({"type":"contact.tagged","contact":{"ghl_id":"ghlContact0000000001"},"tags":["b","a"]})");
    emit(R"({"type":"contact.untagged","contact":{"ghl_id":"ghlContact0000000001"},"tags":["a"]})");
    std::vector<sync::action> order;
    std::vector<std::vector<std::string>> tags;
    for (int round = 0; round < 10; ++round) {
        auto items = claim();
        if (items.empty())
            break;
        ASSERT_EQ(items.size(), 1u);
        order.push_back(items[0].act);
        tags.push_back(items[0].tags);
        finish(items[0], done());
    }
    ASSERT_EQ(order.size(), 3u);
    EXPECT_EQ(order[0], sync::action::update);
    EXPECT_EQ(order[1], sync::action::tag_add);
    EXPECT_EQ(tags[1], (std::vector<std::string>{"a", "b"}));
    EXPECT_EQ(order[2], sync::action::tag_remove);
}

TEST_F(outbox_test, a_task_waits_for_its_contacts_ghl_id) {
    emit(create_ada);
    emit(
        R"({"type":"task.created","contact":{"speak4_id":"s4-1"},"task":{"speak4_id":"t-1","title":"Call","dueDate":"2026-12-01T15:00:00Z"}})");
    auto first = claim();
    ASSERT_EQ(first.size(), 1u);
    EXPECT_EQ(first[0].ctx.entity, entity_kind::contact);
    EXPECT_TRUE(claim().empty()); // the task waits
    finish(first[0], done("ghlContact0000000001"));
    auto second = claim();
    ASSERT_EQ(second.size(), 1u);
    EXPECT_EQ(second[0].ctx.entity, entity_kind::task);
    EXPECT_EQ(second[0].act, sync::action::create);
    EXPECT_EQ(second[0].ctx.contact_ghl_id.value_or(""), "ghlContact0000000001");
    EXPECT_EQ(second[0].set.at("title").as_string(), "Call");
    EXPECT_FALSE(second[0].set.at("completed").as_bool());
}

TEST_F(outbox_test, a_task_whose_contact_create_died_is_dead_lettered_with_the_reason) {
    emit(create_ada);
    emit(
        R"({"type":"task.created","contact":{"speak4_id":"s4-1"},"task":{"speak4_id":"t-1","title":"Call","dueDate":"2026-12-01T15:00:00Z"}})");
    auto first = claim();
    ASSERT_EQ(first.size(), 1u);
    sync::outcome dead;
    dead.what = sync::outcome::kind::dead;
    dead.error = "POST /contacts/: 422 {\"message\":[\"email is invalid\"]}";
    dead.status = 422;
    finish(first[0], dead);
    EXPECT_TRUE(claim().empty());
    EXPECT_EQ(text("SELECT state FROM outbox WHERE entity = 'task'"), "dead");
    EXPECT_NE(
        text("SELECT last_error FROM outbox WHERE entity = 'task'").find("contact has no GHL id"),
        std::string::npos);
    EXPECT_EQ(text("SELECT last_error FROM outbox WHERE entity = 'contact'"), dead.error);
    EXPECT_EQ(count("SELECT last_status FROM outbox WHERE entity = 'contact'"), 422);
}

TEST_F(outbox_test, transient_failures_retry_past_any_count_until_give_up_after) {
    // DESIGN §9: never dead-lettered by count; only retry.give_up_after after it was queued.
    policy_.give_up_after = std::chrono::hours(1);
    emit(
        R"({"type":"contact.updated","contact":{"ghl_id":"ghlContact0000000001","firstName":"A"}})");
    sync::outcome busy;
    busy.what = sync::outcome::kind::retry;
    busy.error = "PUT /contacts/:contactId: 503";
    busy.status = 503;
    busy.may_have_been_applied = true;
    for (int attempt = 0; attempt < 3; ++attempt) {
        auto items = claim();
        ASSERT_EQ(items.size(), 1u) << attempt;
        EXPECT_EQ(items[0].attempts, attempt);
        finish(items[0], busy, 1.0);
        EXPECT_EQ(text("SELECT state FROM outbox"), "pending");
        EXPECT_TRUE(claim().empty()); // not due yet
        const auto wait = std::chrono::milliseconds(100 << attempt);
        EXPECT_EQ(text("SELECT next_attempt_at FROM outbox"), format_iso8601(clock_.now() + wait));
        clock_.advance(wait);
    }
    EXPECT_EQ(count("SELECT uncertain FROM outbox"), 1);
    // Far more attempts than max_attempts (4 here): still pending while within the hour.
    for (int attempt = 3; attempt < 40; ++attempt) {
        clock_.advance(std::chrono::milliseconds(policy_.max_ms));
        auto items = claim();
        ASSERT_EQ(items.size(), 1u) << attempt;
        finish(items[0], busy, 0.99);
        ASSERT_EQ(text("SELECT state FROM outbox"), "pending") << attempt;
    }
    EXPECT_EQ(count("SELECT attempts FROM outbox"), 40);
    clock_.advance(std::chrono::hours(1));
    auto last = claim();
    ASSERT_EQ(last.size(), 1u);
    finish(last[0], busy);
    EXPECT_EQ(text("SELECT state FROM outbox"), "dead");
    EXPECT_NE(text("SELECT last_error FROM outbox").find("gave up after 41 attempts"),
              std::string::npos);
    EXPECT_NE(text("SELECT last_error FROM outbox").find("retry.give_up_after"), std::string::npos);
}

TEST_F(outbox_test, a_row_the_breaker_held_back_spends_no_attempt_and_is_never_given_up) {
    policy_.give_up_after = std::chrono::minutes(1);
    emit(
        R"({"type":"contact.updated","contact":{"ghl_id":"ghlContact0000000001","firstName":"A"}})");
    sync::outcome held;
    held.what = sync::outcome::kind::retry;
    held.error = "PUT /contacts/:contactId: circuit breaker open (GHL looks down)";
    held.held = true;
    held.retry_after = 7s;
    clock_.advance(std::chrono::hours(2)); // far past give_up_after
    auto items = claim();
    ASSERT_EQ(items.size(), 1u);
    finish(items[0], held);
    EXPECT_EQ(text("SELECT state FROM outbox"), "pending");
    EXPECT_EQ(count("SELECT attempts FROM outbox"), 0);
    EXPECT_EQ(text("SELECT next_attempt_at FROM outbox"), format_iso8601(clock_.now() + 7s));
}

TEST_F(outbox_test, retry_after_is_honoured) {
    emit(
        R"({"type":"contact.updated","contact":{"ghl_id":"ghlContact0000000001","firstName":"A"}})");
    auto items = claim();
    sync::outcome limited;
    limited.what = sync::outcome::kind::retry;
    limited.status = 429;
    limited.retry_after = 20s;
    finish(items[0], limited, 0.0);
    clock_.advance(19s);
    EXPECT_TRUE(claim().empty());
    clock_.advance(1s);
    EXPECT_EQ(claim().size(), 1u);
}

TEST_F(outbox_test, a_crash_in_flight_is_recovered_as_uncertain) {
    emit(create_ada);
    auto items = claim();
    ASSERT_EQ(items.size(), 1u);
    // The process dies here. On restart:
    EXPECT_EQ(box_->recover_inflight(clock_.now()), 1);
    auto again = claim();
    ASSERT_EQ(again.size(), 1u);
    EXPECT_EQ(again[0].act, sync::action::create);
    EXPECT_TRUE(again[0].uncertain); // so the create is looked up before it is sent again
    EXPECT_EQ(again[0].ctx.email.value_or(""), "ada@example.com");
}

TEST_F(outbox_test, a_delete_of_a_contact_never_created_in_ghl_needs_no_call) {
    emit(create_ada);
    emit(R"({"type":"contact.deleted","contact":{"speak4_id":"s4-1"}})");
    EXPECT_TRUE(claim().empty());
    EXPECT_EQ(count("SELECT COUNT(*) FROM outbox WHERE state = 'done'"), 2);
}

// Deleted before it ever reached GHL: its task and note have nowhere to go and nothing to undo.
// They are settled without a call, not dead-lettered (nothing failed).
TEST_F(outbox_test, children_of_a_contact_deleted_before_it_reached_ghl_need_no_call) {
    emit(create_ada);
    emit(
        R"({"type":"task.created","contact":{"speak4_id":"s4-1"},"task":{"speak4_id":"t-1","title":"Call","dueDate":"2026-12-01T15:00:00Z"}})");
    emit(
        R"({"type":"note.created","contact":{"speak4_id":"s4-1"},"note":{"speak4_id":"n-1","body":"Hi"}})");
    emit(R"({"type":"contact.deleted","contact":{"speak4_id":"s4-1"}})");
    EXPECT_TRUE(claim().empty()); // the contact's rows: no call
    EXPECT_TRUE(claim().empty()); // then its children's: no call either
    EXPECT_EQ(count("SELECT COUNT(*) FROM outbox WHERE state <> 'done'"), 0);
    EXPECT_EQ(count("SELECT COUNT(*) FROM outbox WHERE entity <> 'contact' AND last_error LIKE "
                    "'its contact was deleted before it reached GHL%'"),
              2);
}

// A tag call's success is applied to the contact's last known GHL copy, so the next pull sees
// those tags as known, not as a remote edit racing the changes queued behind them.
TEST_F(outbox_test, a_pushed_tag_change_updates_the_known_ghl_copy) {
    emit(create_ada);
    auto first = claim();
    ASSERT_EQ(first.size(), 1u);
    auto created = done("ghlContact0000000001");
    created.raw =
        boost::json::parse(R"({"id":"ghlContact0000000001","tags":["lead"]})").as_object();
    finish(first[0], created);
    emit(R"({"type":"contact.tagged","contact":{"speak4_id":"s4-1"},"tags":["hot","vip"]})");
    emit(R"({"type":"contact.untagged","contact":{"speak4_id":"s4-1"},"tags":["lead"]})");
    auto add = claim();
    ASSERT_EQ(add.size(), 1u);
    EXPECT_EQ(add[0].act, sync::action::tag_add);
    finish(add[0], done());
    EXPECT_EQ(text("SELECT json_extract(raw, '$.tags') FROM contacts"), R"(["lead","hot","vip"])");
    auto remove = claim();
    ASSERT_EQ(remove.size(), 1u);
    sync::outcome failed;
    failed.what = sync::outcome::kind::retry;
    failed.error = "DELETE /contacts/:contactId/tags: 503";
    finish(remove[0], failed);
    EXPECT_EQ(text("SELECT json_extract(raw, '$.tags') FROM contacts"), R"(["lead","hot","vip"])")
        << "only a success changes it";
    clock_.advance(1min);
    auto again = claim();
    ASSERT_EQ(again.size(), 1u);
    finish(again[0], done());
    EXPECT_EQ(text("SELECT json_extract(raw, '$.tags') FROM contacts"), R"(["hot","vip"])");
}

// The dispatcher sleeps until next_due(): a first attempt is due once its coalescing window has
// passed (not at once, which made the dispatcher spin while the window ran), a retry when its
// backoff ends.
TEST_F(outbox_test, next_due_counts_the_coalescing_window_and_the_backoff) {
    EXPECT_FALSE(box_->next_due(250ms));
    const auto t0 = clock_.now();
    emit(create_ada);
    EXPECT_EQ(box_->next_due(250ms), t0 + 250ms);
    EXPECT_TRUE(box_->claim(clock_.now(), 250ms, 10).empty()) << "still in its window";
    clock_.advance(250ms);
    auto items = box_->claim(clock_.now(), 250ms, 10);
    ASSERT_EQ(items.size(), 1u);
    EXPECT_FALSE(box_->next_due(250ms)) << "nothing pending while it is in flight";
    sync::outcome failed;
    failed.what = sync::outcome::kind::retry;
    failed.error = "POST /contacts/: 503";
    failed.retry_after = 5000ms;
    finish(items[0], failed);
    EXPECT_EQ(box_->next_due(250ms), clock_.now() + 5000ms) << "a retry waits for its backoff only";
}

// Outcomes that finish together are recorded in one transaction (one commit): each exactly as
// finish() would record it alone, audit rows included.
TEST_F(outbox_test, finish_all_records_several_outcomes_in_one_transaction) {
    emit(create_ada);
    emit(
        R"({"type":"contact.created","contact":{"speak4_id":"s4-2","firstName":"Bob","email":"bob@example.com"}})");
    auto items = claim();
    ASSERT_EQ(items.size(), 2u);
    const auto created = done("ghlContact0000000001");
    sync::outcome failed;
    failed.what = sync::outcome::kind::retry;
    failed.error = "POST /contacts/: 503";
    std::vector<sync::audit_entry> one(1), two(2);
    for (auto* a : {&one, &two})
        for (auto& e : *a) {
            e.ts = format_iso8601(clock_.now());
            e.method = "POST";
            e.path = "/contacts/";
        }
    const long long audit_before = count("SELECT COUNT(*) FROM audit_log");
    box_->finish_all({{&items[0], &created, &one, 0.5}, {&items[1], &failed, &two, 0.5}},
                     clock_.now(), policy_);
    EXPECT_EQ(count("SELECT COUNT(*) FROM audit_log"), audit_before + 3);
    EXPECT_EQ(text("SELECT state FROM outbox WHERE id = " + std::to_string(items[0].first_row)),
              "done");
    EXPECT_EQ(text("SELECT ghl_id FROM contacts WHERE speak4_id = 's4-1'"), "ghlContact0000000001");
    EXPECT_EQ(text("SELECT state || ' ' || attempts || ' ' || last_error FROM outbox WHERE id = " +
                   std::to_string(items[1].first_row)),
              "pending 1 POST /contacts/: 503");
}

TEST_F(outbox_test, a_delete_absorbs_the_updates_before_it) {
    emit(
        R"({"type":"contact.updated","contact":{"ghl_id":"ghlContact0000000001","firstName":"A"}})");
    emit(R"({"type":"contact.tagged","contact":{"ghl_id":"ghlContact0000000001"},"tags":["x"]})");
    emit(R"({"type":"contact.deleted","contact":{"ghl_id":"ghlContact0000000001"}})");
    auto items = claim();
    ASSERT_EQ(items.size(), 1u);
    EXPECT_EQ(items[0].act, sync::action::remove);
    EXPECT_EQ(items[0].rows.size(), 3u);
}

TEST_F(outbox_test, a_record_gone_remotely_is_marked_deleted_in_the_mirror) {
    emit(
        R"({"type":"contact.updated","contact":{"ghl_id":"ghlContact0000000001","firstName":"A"}})");
    auto items = claim();
    sync::outcome gone;
    gone.what = sync::outcome::kind::dead;
    gone.gone = true;
    gone.error = "PUT /contacts/:contactId: 400 Contact with id ghlContact0000000001 not found "
                 "(the contact vanished remotely)";
    finish(items[0], gone);
    EXPECT_EQ(count("SELECT deleted FROM contacts"), 1);
    EXPECT_EQ(count("SELECT COUNT(*) FROM changes WHERE kind = 'deleted' AND source = 'remote'"),
              1);
}

TEST_F(outbox_test, outcomes_commit_their_audit_rows_and_rate_limit_figures) {
    emit(create_ada);
    auto items = claim();
    sync::audit_entry e;
    e.ts = format_iso8601(clock_.now());
    e.method = "POST";
    e.path = "/contacts/";
    e.status = 201;
    e.latency_ms = 12;
    e.outbox_id = items[0].first_row;
    e.rate_limit_remaining = 97;
    e.daily_remaining = 199000;
    e.trace_id = "trace-1";
    box_->finish(items[0], done("ghlContact0000000001"), {e}, clock_.now(), policy_,
                 [] { return 0.5; });
    EXPECT_EQ(
        count("SELECT COUNT(*) FROM audit_log WHERE status = 201 AND rate_limit_remaining = 97 "
              "AND trace_id = 'trace-1' AND outbox_id = 1"),
        1);
    EXPECT_EQ(text("SELECT value FROM sync_cursors WHERE name = 'rate_limit.daily_remaining'"),
              "199000");
}

TEST_F(outbox_test, coalescing_waits_for_a_quiet_period_on_the_first_attempt) {
    emit(create_ada);
    EXPECT_TRUE(box_->claim(clock_.now(), 250ms, 10).empty());
    clock_.advance(250ms);
    EXPECT_EQ(box_->claim(clock_.now(), 250ms, 10).size(), 1u);
}

TEST_F(outbox_test, prune_removes_old_audit_rows_and_finished_work_only) {
    emit(create_ada);
    emit(
        R"({"type":"contact.updated","contact":{"ghl_id":"ghlContact0000000009","firstName":"B"}})");
    auto items = claim();
    ASSERT_EQ(items.size(), 2u);
    sync::audit_entry e;
    e.ts = format_iso8601(clock_.now());
    e.method = "POST";
    e.path = "/contacts/";
    e.status = 201;
    box_->finish(items[0], done("ghlContact0000000001"), {e}, clock_.now(), policy_,
                 [] { return 0.5; });
    clock_.advance(std::chrono::hours(24 * 31));
    EXPECT_EQ(box_->prune(clock_.now() - std::chrono::hours(24 * 30)),
              2); // one audit row, one done row
    EXPECT_EQ(count("SELECT COUNT(*) FROM audit_log"), 0);
    EXPECT_EQ(count("SELECT COUNT(*) FROM outbox WHERE state = 'inflight'"), 1); // in flight: kept
}

// Issue 12, "Coalescing without collateral damage": a merged call GHL refuses (422) is retried
// one change at a time, so only the bad change becomes a dead letter.
TEST_F(outbox_test, a_refused_merged_call_is_split_and_only_the_bad_change_dies) {
    for (const char* name : {"A", "Bad", "C"})
        emit(std::string(
                 R"({"type":"contact.updated","contact":{"ghl_id":"ghlContact0000000001",)") +
             R"("lastName":"L","firstName":")" + name + R"("}})");
    auto items = claim();
    ASSERT_EQ(items.size(), 1u);
    ASSERT_EQ(items[0].rows.size(), 3u); // coalesced
    sync::outcome refused;
    refused.what = sync::outcome::kind::dead;
    refused.status = 422;
    refused.error = "PUT /contacts/:contactId: 422 firstName Bad";
    finish(items[0], refused);
    EXPECT_EQ(count("SELECT COUNT(*) FROM outbox WHERE state = 'pending' AND attempts = 0"), 3);
    EXPECT_EQ(count("SELECT COUNT(*) FROM outbox WHERE state = 'dead'"), 0);
    // One by one now.
    std::vector<std::string> outcome_of = {"done", "dead", "done"};
    for (int i = 0; i < 3; ++i) {
        auto one = claim();
        ASSERT_EQ(one.size(), 1u) << i;
        ASSERT_EQ(one[0].rows.size(), 1u) << i;
        EXPECT_EQ(one[0].rows[0], items[0].rows[static_cast<std::size_t>(i)]);
        if (outcome_of[static_cast<std::size_t>(i)] == "done")
            finish(one[0], done());
        else
            finish(one[0], refused);
    }
    EXPECT_EQ(count("SELECT COUNT(*) FROM outbox WHERE state = 'done'"), 2);
    EXPECT_EQ(text("SELECT state FROM outbox WHERE id = " + std::to_string(items[0].rows[1])),
              "dead");
    EXPECT_TRUE(claim().empty());
}
