// The push path end to end: events -> intake -> outbox -> dispatcher -> real HTTP over loopback
// -> ghl-sim, and back into the mirror and the audit log.
#include "ghl_sim.hpp"
#include "store/db_worker.hpp"
#include "store/migrations.hpp"
#include "support/test_support.hpp"
#include "sync/dispatcher.hpp"
#include "sync/intake.hpp"

#include <SQLiteCpp/Statement.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <gtest/gtest.h>

using namespace speak4;
using namespace std::chrono_literals;
namespace asio = boost::asio;
namespace bj = boost::json;

namespace {

class push_test : public ::testing::Test {
protected:
    void SetUp() override {
        sim::options so;
        so.rate_limit = false;
        sim_ = std::make_unique<sim::server>(so);
        sim_->start();
        {
            auto db = store::open_database({dir_ / "s.db"});
            store::migrate(*db);
        }
        db_ = std::make_unique<store::db_worker>(store::open_options{dir_ / "s.db"});
        reader_ = store::open_database({dir_ / "s.db"});
    }

    void TearDown() override {
        db_.reset();
        sim_->stop();
    }

    void emit(const std::string& text) {
        auto ev = sync::parse_event(text);
        ASSERT_TRUE(ev) << text << ": " << ev.error().message;
        auto r = db_->run_sync([&](SQLite::Database& db) {
            sync::intake in(db, system_clock::instance());
            return in.accept(*ev, text);
        });
        ASSERT_TRUE(r) << r.error().message;
    }

    long long count(const std::string& sql) { return reader_->execAndGet(sql).getInt64(); }
    std::string text(const std::string& sql) { return reader_->execAndGet(sql).getString(); }

    /// Runs the dispatcher until no outbox row is pending or in flight (or `limit` passes).
    sync::dispatcher_stats drain(std::chrono::seconds limit = 60s) {
        asio::io_context io;
        ghl::http_options ho;
        ho.base_url = sim_->base_url();
        ho.timeout = timeout_;
        ho.max_connections = 4;
        auto http = std::make_shared<ghl::http_client>(io.get_executor(), ho);
        ghl::rate_limit_options rl;
        rl.burst = 100000;
        rl.window = 1000ms;
        rl.daily = 100000000;
        sync::ghl_access access{
            http,
            std::make_shared<ghl::static_token_provider>(secret("sim-private-token")),
            std::make_shared<ghl::rate_limiter>(rl),
            {}};
        access.options.location_id = sim_->location_id();
        sync::dispatcher_options opt;
        opt.max_concurrency = 4;
        opt.coalesce = 0ms;
        opt.idle_poll = 50ms;
        opt.retry = retry_;
        sync::dispatcher d(io.get_executor(), *db_, access, opt);
        bool finished = false;
        asio::co_spawn(io, d.run(), [&](std::exception_ptr) { finished = true; });
        asio::co_spawn(
            io,
            [&]() -> asio::awaitable<void> {
                asio::steady_timer t(io);
                for (;;) {
                    t.expires_after(50ms);
                    co_await t.async_wait(asio::use_awaitable);
                    const auto open = co_await db_->run([](SQLite::Database& db) {
                        return db
                            .execAndGet(
                                "SELECT COUNT(*) FROM outbox WHERE state IN ('pending','inflight')")
                            .getInt64();
                    });
                    if (open == 0)
                        break;
                }
                d.stop();
            },
            asio::detached);
        io.run_for(limit);
        EXPECT_TRUE(finished) << "the dispatcher did not drain the outbox in time";
        return d.stats();
    }

    speak4::testing::temp_dir dir_;
    std::unique_ptr<sim::server> sim_;
    std::unique_ptr<store::db_worker> db_;
    std::unique_ptr<SQLite::Database> reader_;
    std::chrono::milliseconds timeout_ = 2000ms;
    sync::retry_policy retry_{5, 100, 50};
};

bj::object sim_contact(sim::server& s, const std::string& id) {
    const bj::value state = s.state();
    for (const auto& c : state.at("contacts").as_array())
        if (c.at("id").as_string() == id)
            return c.as_object();
    return {};
}

} // namespace

TEST_F(push_test, each_trigger_reaches_ghl_and_writes_back) {
    emit(
        R"({"type":"contact.created","contact":{"speak4_id":"s4-1","firstName":"Ada","lastName":"Lovelace",
             "email":"ada@example.com","phone":"+15551234567","tags":["vip"],"customFields":{"cf1":"87"}},
             "notes":[{"speak4_id":"n-1","body":"Called, wants a demo"}]})");
    emit(R"({"type":"task.created","contact":{"speak4_id":"s4-1"},
             "task":{"speak4_id":"t-1","title":"Send demo link","dueDate":"2026-12-01T15:00:00Z"}})");
    auto st = drain();
    EXPECT_EQ(count("SELECT COUNT(*) FROM outbox WHERE state <> 'done'"), 0);
    const std::string cid = text("SELECT ghl_id FROM contacts WHERE speak4_id = 's4-1'");
    ASSERT_EQ(cid.size(), 20u);
    auto c = sim_contact(*sim_, cid);
    EXPECT_EQ(c.at("firstName").as_string(), "Ada");
    EXPECT_EQ(c.at("email").as_string(), "ada@example.com");
    EXPECT_NE(text("SELECT raw FROM contacts WHERE speak4_id = 's4-1'").find(cid),
              std::string::npos);
    EXPECT_FALSE(text("SELECT remote_updated_at FROM contacts WHERE speak4_id = 's4-1'").empty());
    EXPECT_EQ(text("SELECT LENGTH(ghl_id) FROM tasks WHERE speak4_id = 't-1'"), "20");
    EXPECT_EQ(text("SELECT LENGTH(ghl_id) FROM notes WHERE speak4_id = 'n-1'"), "20");
    // One audit row per request, each filed under its outbox row, no bodies.
    EXPECT_EQ(count("SELECT COUNT(*) FROM audit_log"), sim_->get_stats().requests);
    EXPECT_EQ(count("SELECT COUNT(*) FROM audit_log WHERE method = 'POST' AND path = '/contacts/' "
                    "AND status = 201 "
                    "AND outbox_id IS NOT NULL AND latency_ms IS NOT NULL"),
              1);
    EXPECT_EQ(count("SELECT COUNT(*) FROM audit_log WHERE path LIKE '%ada@example.com%'"), 0);

    emit(R"({"type":"contact.updated","contact":{"speak4_id":"s4-1","phone":"+15550000000"}})");
    emit(R"({"type":"contact.tagged","contact":{"speak4_id":"s4-1"},"tags":["hot"]})");
    emit(R"({"type":"contact.untagged","contact":{"speak4_id":"s4-1"},"tags":["vip"]})");
    emit(
        R"({"type":"task.updated","contact":{"speak4_id":"s4-1"},"task":{"speak4_id":"t-1","title":"Send the link"}})");
    emit(
        R"({"type":"task.completed","contact":{"speak4_id":"s4-1"},"task":{"speak4_id":"t-1","completed":true}})");
    emit(
        R"({"type":"note.updated","contact":{"speak4_id":"s4-1"},"note":{"speak4_id":"n-1","body":"Demo booked"}})");
    st = drain();
    c = sim_contact(*sim_, cid);
    EXPECT_EQ(c.at("phone").as_string(), "+15550000000");
    const auto& tags = c.at("tags").as_array();
    EXPECT_NE(std::find(tags.begin(), tags.end(), bj::value("hot")), tags.end());
    EXPECT_EQ(std::find(tags.begin(), tags.end(), bj::value("vip")), tags.end());
    const auto state = sim_->state();
    ASSERT_EQ(state.at("tasks").as_array().size(), 1u);
    EXPECT_EQ(state.at("tasks").at(0).at("title").as_string(), "Send the link");
    EXPECT_TRUE(state.at("tasks").at(0).at("completed").as_bool());
    EXPECT_EQ(state.at("notes").at(0).at("body").as_string(), "Demo booked");

    emit(R"({"type":"note.deleted","contact":{"speak4_id":"s4-1"},"note":{"speak4_id":"n-1"}})");
    emit(R"({"type":"task.deleted","contact":{"speak4_id":"s4-1"},"task":{"speak4_id":"t-1"}})");
    drain();
    EXPECT_EQ(sim_->state().at("tasks").as_array().size(), 0u);
    EXPECT_EQ(sim_->state().at("notes").as_array().size(), 0u);
    emit(R"({"type":"contact.deleted","contact":{"speak4_id":"s4-1"}})");
    drain();
    EXPECT_TRUE(sim_contact(*sim_, cid).empty());
    EXPECT_EQ(count("SELECT COUNT(*) FROM outbox WHERE state = 'dead'"), 0);
}

TEST_F(push_test, a_create_and_its_updates_are_one_call) {
    emit(
        R"({"type":"contact.created","contact":{"speak4_id":"s4-1","firstName":"A","email":"a@example.com"}})");
    for (int i = 0; i < 100; ++i)
        emit(R"({"type":"contact.updated","contact":{"speak4_id":"s4-1","lastName":"V)" +
             std::to_string(i) + R"("}})");
    drain();
    const auto s = sim_->get_stats();
    EXPECT_EQ(s.requests, 1);
    EXPECT_EQ(s.by_route.at("POST /contacts/"), 1);
    const std::string cid = text("SELECT ghl_id FROM contacts");
    EXPECT_EQ(sim_contact(*sim_, cid).at("lastName").as_string(), "V99");
}

TEST_F(push_test, a_hundred_updates_to_a_known_contact_are_one_put) {
    const std::string id = sim_->seed_contact({{"firstName", "Bo"}, {"email", "bo@example.com"}});
    for (int i = 0; i < 100; ++i)
        emit(R"({"type":"contact.updated","contact":{"ghl_id":")" + id + R"(","lastName":"V)" +
             std::to_string(i) + R"("}})");
    drain();
    const auto s = sim_->get_stats();
    EXPECT_EQ(s.requests, 1);
    EXPECT_EQ(s.by_route.at("PUT /contacts/:contactId"), 1);
    EXPECT_EQ(sim_contact(*sim_, id).at("lastName").as_string(), "V99");
}

TEST_F(push_test, the_duplicate_contact_answer_links_and_updates) {
    const std::string existing =
        sim_->seed_contact({{"firstName", "Grace"}, {"email", "grace@example.com"}});
    emit(
        R"({"type":"contact.created","contact":{"speak4_id":"s4-2","firstName":"Grace","lastName":"Hopper","email":"grace@example.com"}})");
    drain();
    EXPECT_EQ(text("SELECT ghl_id FROM contacts WHERE speak4_id = 's4-2'"), existing);
    EXPECT_EQ(sim_contact(*sim_, existing).at("lastName").as_string(), "Hopper");
    EXPECT_EQ(sim_->state().at("contacts").as_array().size(), 1u);
    EXPECT_EQ(count("SELECT COUNT(*) FROM audit_log WHERE status = 400"), 1);
    EXPECT_EQ(count("SELECT COUNT(*) FROM outbox WHERE state = 'done'"), 1);
}

TEST_F(push_test, a_lead_is_matched_by_email_before_any_create) {
    const std::string existing =
        sim_->seed_contact({{"firstName", "Lee"}, {"email", "lee@example.com"}});
    emit(
        R"({"type":"lead.created","contact":{"speak4_id":"s4-3","email":"lee@example.com","lastName":"Smith"}})");
    drain();
    EXPECT_EQ(text("SELECT ghl_id FROM contacts WHERE speak4_id = 's4-3'"), existing);
    EXPECT_EQ(sim_->get_stats().by_route.count("POST /contacts/"), 0u);
    EXPECT_EQ(sim_contact(*sim_, existing).at("lastName").as_string(), "Smith");
}

TEST_F(push_test, tasks_wait_for_their_contact_and_keep_per_entity_order) {
    emit(
        R"({"type":"contact.created","contact":{"speak4_id":"s4-1","firstName":"Ada","email":"ada@example.com"}})");
    emit(
        R"({"type":"task.created","contact":{"speak4_id":"s4-1"},"task":{"speak4_id":"t-1","title":"One","dueDate":"2026-12-01T15:00:00Z"}})");
    emit(
        R"({"type":"task.completed","contact":{"speak4_id":"s4-1"},"task":{"speak4_id":"t-1","completed":true}})");
    emit(
        R"({"type":"task.updated","contact":{"speak4_id":"s4-1"},"task":{"speak4_id":"t-1","title":"Two"}})");
    drain();
    const auto reqs = sim_->requests();
    ASSERT_GE(reqs.size(), 4u);
    EXPECT_EQ(reqs[0].route, "POST /contacts/");
    EXPECT_EQ(reqs[1].route, "POST /contacts/:contactId/tasks");
    EXPECT_EQ(reqs[2].route, "PUT /contacts/:contactId/tasks/:taskId/completed");
    EXPECT_EQ(reqs[3].route, "PUT /contacts/:contactId/tasks/:taskId");
    const auto task = sim_->state().at("tasks").at(0);
    EXPECT_EQ(task.at("title").as_string(), "Two");
    EXPECT_TRUE(task.at("completed").as_bool());
}

TEST_F(push_test, a_permanent_error_is_a_dead_letter_with_its_body) {
    const std::string id = sim_->seed_contact({{"firstName", "Bo"}});
    emit(R"({"type":"contact.updated","contact":{"ghl_id":")" + id + R"(","firstName":"B"}})");
    sim::fault_config f;
    f.error_rate = 1;
    f.error_statuses = {422};
    sim_->set_faults(f);
    drain();
    EXPECT_EQ(text("SELECT state FROM outbox"), "dead");
    EXPECT_EQ(count("SELECT last_status FROM outbox"), 422);
    EXPECT_NE(text("SELECT last_error FROM outbox").find("422"), std::string::npos);
    EXPECT_EQ(count("SELECT attempts FROM outbox"), 1);
}

TEST_F(push_test, a_contact_gone_remotely_is_dead_lettered_with_a_reason) {
    const std::string id = sim_->seed_contact({{"firstName", "Bo"}});
    emit(R"({"type":"contact.updated","contact":{"ghl_id":")" + id + R"(","firstName":"B"}})");
    sim_->delete_contact(id);
    drain();
    EXPECT_EQ(text("SELECT state FROM outbox"), "dead");
    EXPECT_NE(text("SELECT last_error FROM outbox").find("vanished remotely"), std::string::npos);
    EXPECT_EQ(count("SELECT deleted FROM contacts"), 1);
}

// 20% injected faults (429, 500, 503, timeouts, apply-then-drop, drop-before): the workload
// converges with every accepted event applied exactly once in the simulator.
TEST_F(push_test, a_mixed_workload_converges_exactly_once_under_faults) {
    timeout_ = 300ms;
    const int contacts = 25;
    for (int i = 0; i < contacts; ++i) {
        const std::string n = std::to_string(i);
        emit(R"({"type":"contact.created","event_id":"c)" + n + R"(","contact":{"speak4_id":"s4-)" +
             n + R"(","firstName":"P)" + n + R"(","email":"p)" + n +
             R"(@example.com"},"notes":[{"speak4_id":"n-)" + n + R"(","body":"note )" + n +
             R"("}]})");
        emit(R"({"type":"task.created","contact":{"speak4_id":"s4-)" + n +
             R"("},"task":{"speak4_id":"t-)" + n + R"(","title":"task )" + n +
             R"(","dueDate":"2026-12-01T15:00:00Z"}})");
        emit(R"({"type":"contact.updated","contact":{"speak4_id":"s4-)" + n + R"(","lastName":"L)" +
             n + R"("}})");
        emit(R"({"type":"contact.tagged","contact":{"speak4_id":"s4-)" + n + R"("},"tags":["t)" +
             n + R"("]})");
    }
    sim::fault_config f;
    f.error_rate = 0.08;
    f.error_statuses = {429, 500, 503};
    f.drop_after_apply_rate = 0.06;
    f.drop_before_apply_rate = 0.03;
    f.timeout_rate = 0.03;
    sim_->set_faults(f);
    const auto st = drain(120s);
    sim_->set_faults({});

    EXPECT_EQ(count("SELECT COUNT(*) FROM outbox WHERE state <> 'done'"), 0)
        << "dead letters without a permanent error";
    const auto s = sim_->get_stats();
    EXPECT_GT(s.faults.size(), 0u);
    for (const auto& [key, n] : s.creates_by_key)
        EXPECT_EQ(n, 1) << key << " was created " << n << " times";
    EXPECT_EQ(s.creates.at("contact"), contacts);
    EXPECT_EQ(s.creates.at("task"), contacts);
    EXPECT_EQ(s.creates.at("note"), contacts);
    const auto state = sim_->state();
    EXPECT_EQ(state.at("contacts").as_array().size(), static_cast<std::size_t>(contacts));
    for (const auto& c : state.at("contacts").as_array()) {
        const std::string first(c.at("firstName").as_string());
        // Appended, not "L" + first.substr(1): a false -Wrestrict of GCC 12 at -O3.
        std::string last = "L", tag = "t";
        last += first.substr(1);
        tag += first.substr(1);
        EXPECT_EQ(c.at("lastName").as_string(), last);
        const auto& tags = c.at("tags").as_array();
        EXPECT_NE(std::find(tags.begin(), tags.end(), bj::value(tag)), tags.end());
    }
    EXPECT_EQ(count("SELECT COUNT(DISTINCT ghl_id) FROM contacts"), contacts);
    EXPECT_GT(st.retried, 0);
}

// Issue 12, "Coalescing without collateral damage": three updates merged into one PUT that GHL
// refuses (422, for one change's value) are retried one by one: only the bad change is a dead
// letter, the others reach GHL in order.
TEST_F(push_test, a_refused_merged_call_is_split_and_only_the_bad_change_dies) {
    const std::string id = sim_->seed_contact({{"firstName", "Bo"}});
    for (const char* ev : {R"("firstName":"Ann","lastName":"Kept")", R"("lastName":"REJECT-ME")",
                           R"("firstName":"Cy")"})
        emit(R"({"type":"contact.updated","contact":{"ghl_id":")" + id + R"(",)" + ev + "}}");
    sim::fault_config f;
    f.reject_body_containing = "REJECT-ME";
    sim_->set_faults(f);
    drain();
    EXPECT_EQ(count("SELECT COUNT(*) FROM outbox WHERE state = 'done'"), 2);
    EXPECT_EQ(count("SELECT COUNT(*) FROM outbox WHERE state = 'dead'"), 1);
    EXPECT_NE(text("SELECT payload FROM outbox WHERE state = 'dead'").find("REJECT-ME"),
              std::string::npos);
    const auto c = sim_contact(*sim_, id);
    EXPECT_EQ(c.at("firstName").as_string(), "Cy");
    EXPECT_EQ(c.at("lastName").as_string(), "Kept");
}
