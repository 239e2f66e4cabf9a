// lib/sync reconciler against ghl-sim over loopback: the initial import (10,000 contacts, each
// exactly once), incremental pulls of remote edits, new records and deletes, per-field conflicts
// under each policy, children in the background, reminders and tag routes, resuming after a
// crash mid-pass, the legacy listing, the dispatcher's pull_fn, and no echo of pulled changes.
// Every wait is bounded; the simulator binds port 0.
#include "core/clock.hpp"
#include "ghl/client.hpp"
#include "ghl_sim.hpp"
#include "store/db_worker.hpp"
#include "store/migrations.hpp"
#include "support/test_support.hpp"
#include "sync/dispatcher.hpp"
#include "sync/intake.hpp"
#include "sync/reconciler.hpp"
#include "sync/rules.hpp"

#include <SQLiteCpp/Statement.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <gtest/gtest.h>
#include <iostream>
#include <set>
#include <stdexcept>
#include <thread>

using namespace speak4;
using namespace std::chrono_literals;
using speak4::testing::temp_dir;
namespace asio = boost::asio;
namespace bj = boost::json;

namespace {

sys_time wall_now() {
    return std::chrono::floor<std::chrono::milliseconds>(std::chrono::system_clock::now());
}

class pull_test : public ::testing::Test {
protected:
    void SetUp() override {
        sim::options so;
        so.port = 0;
        sim_ = std::make_unique<sim::server>(so);
        sim_->start();
        db_ = std::make_unique<store::db_worker>(store::open_options{dir_ / "s.db"});
        db_->run_sync([](SQLite::Database& db) { store::migrate(db); });

        ghl::http_options ho;
        ho.base_url = sim_->base_url();
        ho.timeout = 20s;
        access_.http = std::make_shared<ghl::http_client>(ioc_.get_executor(), ho);
        access_.tokens = std::make_shared<ghl::static_token_provider>(secret("sim-private-token"));
        access_.limiter = std::make_shared<ghl::rate_limiter>(ghl::rate_limit_options{});
        access_.options.location_id = sim_->location_id();
        access_.options.max_rate_wait = 30s;
        opt_.overlap = 2000ms;
    }

    void TearDown() override {
        rec_.reset();
        access_.http.reset();
        ioc_.run_for(100ms); // let closed connections finish
        sim_->stop();
    }

    sync::reconciler& rec() {
        if (!rec_)
            rec_ = std::make_unique<sync::reconciler>(ioc_.get_executor(), *db_, access_, opt_,
                                                      clock_);
        return *rec_;
    }

    /// Runs an awaitable on the test's io_context to completion (bounded).
    template <class T>
    T run(asio::awaitable<T> a, std::chrono::seconds limit = 120s) {
        auto fut = asio::co_spawn(ioc_, std::move(a), asio::use_future);
        ioc_.restart();
        const auto deadline = std::chrono::steady_clock::now() + limit;
        while (fut.wait_for(0s) != std::future_status::ready) {
            if (std::chrono::steady_clock::now() > deadline)
                throw std::runtime_error("timed out");
            ioc_.run_one_for(50ms);
        }
        return fut.get();
    }

    long long count(const std::string& sql) {
        return db_->run_sync([&](SQLite::Database& db) { return db.execAndGet(sql).getInt64(); });
    }
    std::string text(const std::string& sql) {
        return db_->run_sync([&](SQLite::Database& db) {
            SQLite::Statement q(db, sql);
            if (!q.executeStep() || q.getColumn(0).isNull())
                return std::string("<null>"); // no row, or NULL
            return q.getColumn(0).getString();
        });
    }
    long long pushes() { return count("SELECT COUNT(*) FROM outbox WHERE op <> 'pull'"); }

    void emit(const std::string& ev_text) {
        db_->run_sync([&](SQLite::Database& db) {
            auto ev = sync::parse_event(ev_text);
            ASSERT_TRUE(ev) << ev.error().message;
            sync::intake in(db, clock_);
            auto r = in.accept(*ev, ev_text);
            ASSERT_TRUE(r) << r.error().message;
        });
    }

    /// A client with no audit observer (for changes made "by a GHL user").
    ghl::client user_client() {
        return ghl::client(access_.http, access_.options, access_.tokens, access_.limiter);
    }

    long long sim_route(const std::string& route) {
        const auto s = sim_->get_stats();
        auto it = s.by_route.find(route);
        return it == s.by_route.end() ? 0 : it->second;
    }

    temp_dir dir_;
    manual_clock clock_{wall_now()};
    asio::io_context ioc_;
    std::unique_ptr<sim::server> sim_;
    std::unique_ptr<store::db_worker> db_;
    sync::ghl_access access_;
    sync::reconciler_options opt_;
    std::unique_ptr<sync::reconciler> rec_;
};

} // namespace

TEST_F(pull_test, initial_import_of_10000_contacts_lands_each_exactly_once) {
    const auto ids = sim_->seed_contacts(10000);
    opt_.children = fetch_children::all;
    const auto r = run(rec().incremental_pull(), 300s);
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_TRUE(r.complete);
    EXPECT_TRUE(r.initial);
    EXPECT_EQ(r.created, 10000);
    EXPECT_EQ(r.fetched, 0); // the simulator's search items carry the names
    EXPECT_GE(r.pages, 20);

    EXPECT_EQ(count("SELECT COUNT(*) FROM contacts"), 10000);
    EXPECT_EQ(count("SELECT COUNT(DISTINCT ghl_id) FROM contacts"), 10000);
    std::set<std::string> mirrored;
    db_->run_sync([&](SQLite::Database& db) {
        SQLite::Statement q(db, "SELECT ghl_id FROM contacts");
        while (q.executeStep())
            mirrored.insert(q.getColumn(0).getString());
    });
    EXPECT_EQ(mirrored, std::set<std::string>(ids.begin(), ids.end()));
    EXPECT_EQ(count("SELECT COUNT(*) FROM changes WHERE entity = 'contact' AND kind = 'created' "
                    "AND source = 'remote'"),
              10000);
    // GHL's exact values, not the search index's lower-cased ones.
    EXPECT_EQ(count("SELECT COUNT(*) FROM contacts WHERE first_name LIKE 'First%' AND first_name "
                    "GLOB 'F*'"),
              10000);
    // Children follow in the background; nothing is pushed.
    EXPECT_EQ(count("SELECT COUNT(*) FROM pull_queue WHERE what = 'all'"), 10000);
    EXPECT_EQ(count("SELECT COUNT(*) FROM outbox"), 0);
    EXPECT_EQ(
        count("SELECT COUNT(*) FROM audit_log WHERE method = 'POST' AND path = '/contacts/search'"),
        r.pages);
    EXPECT_NE(text("SELECT value FROM sync_cursors WHERE name = 'last_pull_at'"), "<null>");
    const auto cursor =
        bj::parse(text("SELECT value FROM sync_cursors WHERE name = 'contacts.search'"))
            .as_object();
    EXPECT_EQ(cursor.at("complete"), true);

    // The next pass reads only the overlap and changes nothing.
    const auto again = run(rec().incremental_pull());
    ASSERT_TRUE(again.ok) << again.error;
    EXPECT_EQ(again.created + again.updated, 0);
    EXPECT_LT(again.listed, 10000);
    EXPECT_EQ(count("SELECT COUNT(*) FROM changes"), 10000);
}

TEST_F(pull_test, remote_edits_new_records_and_deletes_appear) {
    opt_.children = fetch_children::on_demand;
    std::vector<std::string> ids;
    for (int i = 0; i < 5; ++i)
        ids.push_back(
            sim_->seed_contact(bj::object{{"firstName", "Ada" + std::to_string(i)},
                                          {"lastName", "Lovelace"},
                                          {"email", "ada" + std::to_string(i) + "@example.com"}}));
    ASSERT_TRUE(run(rec().incremental_pull()).complete);
    EXPECT_EQ(count("SELECT COUNT(*) FROM contacts"), 5);
    EXPECT_EQ(count("SELECT COUNT(*) FROM pull_queue"), 0); // on_demand: nothing at the import

    sim_->update_contact(ids[0], bj::object{{"firstName", "Augusta"}, {"phone", "+15551230000"}});
    const auto fresh =
        sim_->seed_contact(bj::object{{"firstName", "Grace"}, {"lastName", "Hopper"}});
    clock_.advance(1s);
    const auto r = run(rec().incremental_pull());
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_EQ(r.created, 1);
    EXPECT_EQ(r.updated, 1);
    EXPECT_EQ(r.fetched, 1); // the changed contact, fetched whole
    EXPECT_EQ(
        text("SELECT first_name || '|' || phone FROM contacts WHERE ghl_id = '" + ids[0] + "'"),
        "Augusta|+15551230000");
    EXPECT_EQ(
        text("SELECT first_name || ' ' || last_name FROM contacts WHERE ghl_id = '" + fresh + "'"),
        "Grace Hopper");
    EXPECT_EQ(count("SELECT COUNT(*) FROM audit_log WHERE method = 'GET' AND path = '/contacts/" +
                    ids[0] + "'"),
              1);
    // Changed contacts get their children queued (on_demand: "when it changes").
    EXPECT_EQ(count("SELECT COUNT(*) FROM pull_queue"), 2);

    // A remote delete: the sweep finds it.
    sim_->delete_contact(ids[2]);
    clock_.advance(2min);
    const auto s = run(rec().sweep_deletes());
    ASSERT_TRUE(s.ok) << s.error;
    EXPECT_TRUE(s.complete);
    EXPECT_EQ(s.listed, 5);
    EXPECT_EQ(s.deleted, 1);
    EXPECT_EQ(text("SELECT deleted FROM contacts WHERE ghl_id = '" + ids[2] + "'"), "1");
    EXPECT_EQ(count("SELECT COUNT(*) FROM contacts WHERE deleted = 1"), 1);
    EXPECT_EQ(count("SELECT COUNT(*) FROM changes WHERE kind = 'deleted' AND source = 'remote'"),
              1);
    EXPECT_EQ(count("SELECT COUNT(*) FROM sweep_seen"), 0);

    // No echo: nothing pulled went back to GHL.
    EXPECT_EQ(pushes(), 0);
    EXPECT_EQ(sim_route("PUT /contacts/:contactId"), 0);
    EXPECT_EQ(sim_route("POST /contacts/"), 0);
}

TEST_F(pull_test, a_sweep_refuses_to_delete_most_of_the_mirror) {
    opt_.children = fetch_children::on_demand;
    const auto ids = sim_->seed_contacts(300);
    ASSERT_TRUE(run(rec().incremental_pull()).complete);
    for (int i = 0; i < 200; ++i)
        sim_->delete_contact(ids[static_cast<std::size_t>(i)]);
    clock_.advance(2min);
    const auto s = run(rec().sweep_deletes());
    ASSERT_TRUE(s.ok) << s.error;
    EXPECT_TRUE(s.refused);
    EXPECT_EQ(count("SELECT COUNT(*) FROM contacts WHERE deleted = 1"), 0);
}

namespace {

struct policy_case {
    conflict_policy policy;
    const char* email;    // the mirror's email afterwards
    const char* winner;   // of the email conflict
    const char* push_set; // the pending update's payload set afterwards
};

class pull_conflicts : public pull_test, public ::testing::WithParamInterface<policy_case> {};

} // namespace

TEST_P(pull_conflicts, follow_the_policy_per_field) {
    const auto& pc = GetParam();
    opt_.mirror.policy = pc.policy;
    opt_.children = fetch_children::on_demand;
    const auto id = sim_->seed_contact(bj::object{{"firstName", "Ada"},
                                                  {"lastName", "Lovelace"},
                                                  {"email", "ada@example.com"},
                                                  {"phone", "+15551234567"}});
    ASSERT_TRUE(run(rec().incremental_pull()).complete);

    // Speak4 changes email and phone; before the push, a GHL user changes email and lastName.
    clock_.set(wall_now());
    emit(R"({"type":"contact.updated","contact":{"ghl_id":")" + id +
         R"(","email":"local@example.com","phone":"+15550000000"}})");
    std::this_thread::sleep_for(5ms); // GHL's dateUpdated lands after the local change
    sim_->update_contact(id, bj::object{{"email", "remote@example.com"}, {"lastName", "King"}});
    clock_.advance(1s);
    const auto r = run(rec().incremental_pull());
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_EQ(r.conflicts, 1);

    EXPECT_EQ(text("SELECT email FROM contacts"), pc.email);
    EXPECT_EQ(text("SELECT phone FROM contacts"), "+15550000000"); // local change only: kept
    EXPECT_EQ(text("SELECT last_name FROM contacts"), "King");     // remote change only: taken
    EXPECT_EQ(text("SELECT field || '|' || local_value || '|' || remote_value || '|' || winner "
                   "FROM conflicts"),
              std::string("email|local@example.com|remote@example.com|") + pc.winner);
    EXPECT_EQ(text("SELECT policy FROM conflicts"), std::string(to_string(pc.policy)));
    const auto payload =
        bj::parse(text("SELECT payload FROM outbox WHERE op = 'update'")).as_object();
    EXPECT_EQ(bj::serialize(payload.at("set")), pc.push_set);
    EXPECT_EQ(count("SELECT COUNT(*) FROM outbox"), 1); // the pull wrote none
}

INSTANTIATE_TEST_SUITE_P(
    policies, pull_conflicts,
    ::testing::Values(policy_case{conflict_policy::remote_wins, "remote@example.com", "remote",
                                  R"({"phone":"+15550000000"})"},
                      policy_case{conflict_policy::local_wins, "local@example.com", "local",
                                  R"({"email":"local@example.com","phone":"+15550000000"})"},
                      policy_case{conflict_policy::newest_wins, "remote@example.com", "remote",
                                  R"({"phone":"+15550000000"})"}),
    [](const auto& info) { return std::string(to_string(info.param.policy)); });

TEST_F(pull_test, children_reminders_and_tag_routes) {
    opt_.children = fetch_children::all;
    opt_.mirror.rules.tag_routes = {{"vip", "priority-callback"}};
    opt_.mirror.rules.appointment_reminder_minutes = 60;
    const auto id =
        sim_->seed_contact(bj::object{{"firstName", "Ada"}, {"tags", bj::array{"vip", "math"}}});
    const auto t1 = sim_->seed_task(
        id, bj::object{{"title", "Call back"}, {"dueDate", "2030-01-02T10:00:00Z"}});
    const auto t2 = sim_->seed_task(id, bj::object{{"title", "Send deck"}});
    sim_->seed_note(id, bj::object{{"body", "Wants a demo"}});
    const sys_time start = std::chrono::floor<std::chrono::seconds>(clock_.now() + 3h);
    sim_->seed_appointment(id, bj::object{{"startTime", format_iso8601(start)}, {"title", "Demo"}});

    ASSERT_TRUE(run(rec().incremental_pull()).complete);
    EXPECT_EQ(text("SELECT workflow FROM contacts"), "priority-callback");
    EXPECT_EQ(count("SELECT COUNT(*) FROM changes WHERE kind = 'workflow'"), 1);
    EXPECT_EQ(count("SELECT COUNT(*) FROM tasks"), 0); // not yet: in the background
    EXPECT_EQ(run(rec().drain_child_queue(10)), 1);
    EXPECT_EQ(count("SELECT COUNT(*) FROM pull_queue"), 0);
    EXPECT_EQ(count("SELECT COUNT(*) FROM tasks WHERE deleted = 0"), 2);
    EXPECT_EQ(text("SELECT due_date FROM tasks WHERE ghl_id = '" + t1 + "'"),
              "2030-01-02T10:00:00.000Z");
    EXPECT_EQ(text("SELECT body FROM notes"), "Wants a demo");
    EXPECT_EQ(text("SELECT title || '|' || start_time FROM appointments"),
              "Demo|" + format_iso8601(start));
    EXPECT_EQ(text("SELECT remind_at FROM reminders"), format_iso8601(start - 60min));
    EXPECT_EQ(count("SELECT COUNT(*) FROM audit_log WHERE path LIKE '/contacts/" + id + "/%'"), 3);

    // The reminder fires at its time, once.
    EXPECT_EQ(db_->run_sync([&](SQLite::Database& db) {
        return sync::fire_due_reminders(db, start - 61min);
    }),
              0);
    EXPECT_EQ(db_->run_sync([&](SQLite::Database& db) {
        return sync::fire_due_reminders(db, start - 59min);
    }),
              1);
    EXPECT_EQ(
        count("SELECT COUNT(*) FROM changes WHERE entity = 'reminder' AND kind = 'reminder_fired'"),
        1);

    // Remotely: a task deleted, the vip tag removed.
    auto user = user_client();
    ASSERT_TRUE(run(user.delete_task(id, t2)));
    sim_->update_contact(id, bj::object{{"tags", bj::array{"math"}}});
    clock_.advance(1s);
    const auto r = run(rec().incremental_pull());
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_EQ(r.updated, 1);
    EXPECT_EQ(text("SELECT workflow FROM contacts"), "<null>");
    EXPECT_EQ(count("SELECT COUNT(*) FROM changes WHERE kind = 'workflow'"), 2);
    EXPECT_EQ(run(rec().drain_child_queue(10)), 1);
    EXPECT_EQ(text("SELECT deleted FROM tasks WHERE ghl_id = '" + t2 + "'"), "1");
    EXPECT_EQ(text("SELECT deleted FROM tasks WHERE ghl_id = '" + t1 + "'"), "0");
    EXPECT_EQ(pushes(), 0);
}

// A background child fetch names its contact by row id when it is queued. While it waits for
// GHL, that row can change hands (a push folds a pulled copy into its own row, and SQLite gives
// a deleted row's id to the next new contact): the children must land on the contact the GHL
// id names now, never on whoever holds the old row id.
TEST_F(pull_test, a_child_fetch_lands_on_its_contact_even_if_the_row_changed_hands) {
    opt_.children = fetch_children::all;
    const auto ada = sim_->seed_contact(bj::object{{"firstName", "Ada"}});
    sim_->seed_note(ada, bj::object{{"body", "Ada's note"}});
    ASSERT_TRUE(run(rec().incremental_pull()).complete);
    ASSERT_EQ(count("SELECT COUNT(*) FROM pull_queue"), 1);
    const long long old_row = count("SELECT id FROM contacts WHERE ghl_id = '" + ada + "'");

    speak4::sim::fault_config slow;
    slow.latency_ms = 500;
    slow.routes = {"GET /contacts/:contactId/tasks"};
    sim_->set_faults(slow);
    std::thread meanwhile([&] {
        ASSERT_TRUE(speak4::testing::wait_until(
            [&] { return sim_->get_stats().by_route["GET /contacts/:contactId/tasks"] > 0; },
            10000));
        db_->run_sync([&](SQLite::Database& db) {
            db.exec("UPDATE contacts SET ghl_id = NULL, speak4_id = 's4-bob', first_name = 'Bob' "
                    "WHERE id = " +
                    std::to_string(old_row));
            db.exec("INSERT INTO contacts(ghl_id, first_name, created_at, updated_at) VALUES ('" +
                    ada + "', 'Ada', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z')");
        });
    });
    EXPECT_EQ(run(rec().drain_child_queue(10)), 1);
    meanwhile.join();
    EXPECT_EQ(count("SELECT COUNT(*) FROM notes WHERE contact_id = " + std::to_string(old_row)), 0)
        << "Ada's note landed on Bob";
    EXPECT_EQ(text("SELECT n.body FROM notes n JOIN contacts c ON c.id = n.contact_id "
                   "WHERE c.ghl_id = '" +
                   ada + "'"),
              "Ada's note");
}

TEST_F(pull_test, a_crash_mid_pass_resumes_without_gap_or_duplicate) {
    opt_.search_page = 100;
    opt_.children = fetch_children::on_demand;
    const auto ids = sim_->seed_contacts(1200);
    rec().fail_point = [](std::string_view point, long long page) {
        if (point == "page" && page == 5)
            throw std::runtime_error("simulated crash before the commit of page 5");
    };
    const auto first = run(rec().incremental_pull());
    EXPECT_FALSE(first.ok);
    EXPECT_NE(first.error.find("simulated crash"), std::string::npos);
    EXPECT_EQ(first.pages, 4);
    EXPECT_EQ(count("SELECT COUNT(*) FROM contacts"), 400);
    const auto cursor =
        bj::parse(text("SELECT value FROM sync_cursors WHERE name = 'contacts.search'"))
            .as_object();
    EXPECT_EQ(cursor.at("complete"), false);
    EXPECT_EQ(text("SELECT value FROM sync_cursors WHERE name = 'last_pull_at'"), "<null>");

    rec().fail_point = nullptr;
    const auto second = run(rec().incremental_pull());
    ASSERT_TRUE(second.ok) << second.error;
    EXPECT_TRUE(second.complete);
    EXPECT_EQ(second.created, 800);
    EXPECT_EQ(second.listed, 800); // resumed right after page 4: nothing read twice
    EXPECT_EQ(count("SELECT COUNT(*) FROM contacts"), 1200);
    EXPECT_EQ(count("SELECT COUNT(DISTINCT ghl_id) FROM contacts"), 1200);
    EXPECT_EQ(count("SELECT COUNT(*) FROM changes WHERE kind = 'created'"), 1200);
    std::set<std::string> mirrored;
    db_->run_sync([&](SQLite::Database& db) {
        SQLite::Statement q(db, "SELECT ghl_id FROM contacts");
        while (q.executeStep())
            mirrored.insert(q.getColumn(0).getString());
    });
    EXPECT_EQ(mirrored, std::set<std::string>(ids.begin(), ids.end()));
}

TEST_F(pull_test, a_page_that_fails_after_its_predecessor_was_requested_ahead_loses_nothing) {
    // Page n+1 is requested while page n is written. When that request fails, page n still
    // commits with its cursor, the pass stops there, every request is audited, and the next
    // pass resumes right after page n.
    opt_.search_page = 100;
    opt_.children = fetch_children::on_demand;
    const auto ids = sim_->seed_contacts(1000);
    sim::fault_config f;
    f.routes = {"POST /contacts/search"};
    f.error_rate = 1;
    f.error_statuses = {422};
    f.skip_first = 4;
    f.max_faults = 1;
    sim_->set_faults(f);
    const auto first = run(rec().incremental_pull());
    EXPECT_FALSE(first.ok);
    EXPECT_EQ(first.pages, 4);
    EXPECT_EQ(count("SELECT COUNT(*) FROM contacts"), 400);
    EXPECT_EQ(sim_route("POST /contacts/search"), 5);
    EXPECT_EQ(count("SELECT COUNT(*) FROM audit_log WHERE path = '/contacts/search'"), 5);
    EXPECT_EQ(count("SELECT COUNT(*) FROM audit_log WHERE status = 422"), 1);

    sim_->set_faults({});
    const auto second = run(rec().incremental_pull());
    ASSERT_TRUE(second.ok) << second.error;
    EXPECT_TRUE(second.complete);
    EXPECT_EQ(second.listed, 600); // resumed right after page 4
    EXPECT_EQ(second.created, 600);
    EXPECT_EQ(count("SELECT COUNT(DISTINCT ghl_id) FROM contacts"), 1000);
    EXPECT_EQ(count("SELECT COUNT(*) FROM contacts"), 1000);
    EXPECT_EQ(count("SELECT COUNT(*) FROM changes WHERE kind = 'created'"), 1000);
    EXPECT_EQ(count("SELECT COUNT(*) FROM audit_log WHERE path = '/contacts/search'"),
              sim_route("POST /contacts/search"));
}

TEST_F(pull_test, a_stop_between_pages_leaves_the_page_requested_ahead_unapplied_but_audited) {
    opt_.search_page = 100;
    opt_.children = fetch_children::on_demand;
    sim_->seed_contacts(1000);
    rec().fail_point = [this](std::string_view point, long long page) {
        if (point == "page" && page == 3)
            rec_->stop(); // thread-safe; the pass ends after this page's commit
    };
    const auto r = run(rec().incremental_pull());
    EXPECT_TRUE(r.ok) << r.error;
    EXPECT_FALSE(r.complete);
    EXPECT_EQ(r.pages, 3);
    EXPECT_EQ(count("SELECT COUNT(*) FROM contacts"), 300);
    const auto cursor =
        bj::parse(text("SELECT value FROM sync_cursors WHERE name = 'contacts.search'"))
            .as_object();
    EXPECT_EQ(cursor.at("complete"), false);
    // Page 4 was requested ahead of its turn: audited, not applied.
    EXPECT_EQ(sim_route("POST /contacts/search"), 4);
    EXPECT_EQ(count("SELECT COUNT(*) FROM audit_log WHERE path = '/contacts/search'"), 4);
}

TEST_F(pull_test, a_crash_mid_sweep_resumes) {
    opt_.search_page = 100;
    opt_.children = fetch_children::on_demand;
    const auto ids = sim_->seed_contacts(350);
    ASSERT_TRUE(run(rec().incremental_pull()).complete);
    sim_->delete_contact(ids[10]);
    sim_->delete_contact(ids[340]);
    clock_.advance(2min);
    rec().fail_point = [](std::string_view point, long long page) {
        if (point == "sweep_page" && page == 3)
            throw std::runtime_error("simulated crash");
    };
    EXPECT_FALSE(run(rec().sweep_deletes()).ok);
    EXPECT_EQ(count("SELECT COUNT(*) FROM sweep_seen"), 200);
    rec().fail_point = nullptr;
    const auto s = run(rec().sweep_deletes());
    ASSERT_TRUE(s.ok) << s.error;
    EXPECT_EQ(s.listed, 148);
    EXPECT_EQ(s.deleted, 2);
    EXPECT_EQ(count("SELECT COUNT(*) FROM contacts WHERE deleted = 1"), 2);
}

TEST_F(pull_test, legacy_list_mode_pages_with_startAfter_and_startAfterId) {
    opt_.mode = list_mode::legacy;
    opt_.children = fetch_children::on_demand;
    const auto ids = sim_->seed_contacts(250);
    const auto r = run(rec().incremental_pull());
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_TRUE(r.complete);
    EXPECT_EQ(r.created, 250);
    EXPECT_EQ(r.pages, 3);
    EXPECT_EQ(count("SELECT COUNT(DISTINCT ghl_id) FROM contacts"), 250);
    EXPECT_EQ(count("SELECT COUNT(*) FROM audit_log WHERE method = 'GET' AND path = '/contacts/'"),
              3);
    EXPECT_EQ(sim_route("POST /contacts/search"), 0);
    int with_both = 0;
    for (const auto& req : sim_->requests())
        if (req.route == "GET /contacts/" && req.target.find("startAfter=") != std::string::npos &&
            req.target.find("startAfterId=") != std::string::npos)
            ++with_both;
    EXPECT_EQ(with_both, 2);
    EXPECT_EQ(bj::parse(text("SELECT value FROM sync_cursors WHERE name = 'contacts.legacy'"))
                  .as_object()
                  .at("complete"),
              true);

    // The next pass lists again and picks up what changed.
    sim_->update_contact(ids[7], bj::object{{"firstName", "Changed"}});
    clock_.advance(1s);
    const auto again = run(rec().incremental_pull());
    ASSERT_TRUE(again.ok) << again.error;
    EXPECT_EQ(again.updated, 1);
    EXPECT_EQ(again.unchanged, 249);
    EXPECT_EQ(text("SELECT first_name FROM contacts WHERE ghl_id = '" + ids[7] + "'"), "Changed");
    EXPECT_EQ(pushes(), 0);
}

TEST_F(pull_test, pull_contact_fetches_children_and_notices_a_remote_delete) {
    opt_.mirror.rules.business_contacts = true;
    const auto id = sim_->seed_contact(bj::object{{"firstName", "Ada"},
                                                  {"email", "ada@example.com"},
                                                  {"businessId", "641c094001436dbc2081e642"}});
    const auto colleague =
        sim_->seed_contact(bj::object{{"firstName", "Charles"},
                                      {"email", "cb@example.com"},
                                      {"businessId", "641c094001436dbc2081e642"}});
    sim_->seed_task(id, bj::object{{"title", "Follow up"}});
    sim_->seed_note(id, bj::object{{"body", "Met at the expo"}});

    sync::work_item item;
    item.act = sync::action::pull;
    item.ctx.entity = entity_kind::contact;
    item.ctx.ghl_id = id;
    item.children = true;
    auto c = user_client();
    auto out = run(rec().pull_contact(c, item));
    EXPECT_EQ(out.what, sync::outcome::kind::done);
    EXPECT_FALSE(out.gone);
    EXPECT_EQ(text("SELECT first_name FROM contacts WHERE ghl_id = '" + id + "'"), "Ada");
    EXPECT_EQ(text("SELECT first_name FROM contacts WHERE ghl_id = '" + colleague + "'"),
              "Charles"); // business rule
    EXPECT_EQ(text("SELECT title FROM tasks"), "Follow up");
    EXPECT_EQ(text("SELECT body FROM notes"), "Met at the expo");
    EXPECT_EQ(sim_route("GET /contacts/business/:businessId"), 1);

    sim_->delete_contact(id);
    out = run(rec().pull_contact(c, item));
    EXPECT_EQ(out.what, sync::outcome::kind::done);
    EXPECT_TRUE(out.gone);
    EXPECT_EQ(text("SELECT deleted FROM contacts WHERE ghl_id = '" + id + "'"), "1");
    EXPECT_EQ(count("SELECT COUNT(*) FROM changes WHERE kind = 'deleted' AND source = 'remote'"),
              1);
    EXPECT_EQ(pushes(), 0);
}

TEST_F(pull_test, contact_opened_runs_through_the_dispatcher_pull_fn) {
    const auto id =
        sim_->seed_contact(bj::object{{"firstName", "Ada"}, {"email", "ada@example.com"}});
    sim_->seed_task(id, bj::object{{"title", "Follow up"}});
    ASSERT_TRUE(run(rec().incremental_pull()).complete);
    emit(R"({"type":"contact.opened","contact":{"ghl_id":")" + id + R"("}})");

    sync::dispatcher_options dopt;
    dopt.coalesce = 0ms;
    dopt.idle_poll = 20ms;
    sync::dispatcher disp(ioc_.get_executor(), *db_, access_, dopt, clock_);
    disp.set_pull(rec().pull_function());
    auto done = asio::co_spawn(ioc_, disp.run(), asio::use_future);
    ioc_.restart();
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (count("SELECT COUNT(*) FROM outbox WHERE state = 'done'") == 0 &&
           std::chrono::steady_clock::now() < deadline)
        ioc_.run_for(20ms);
    disp.stop();
    while (done.wait_for(0s) != std::future_status::ready &&
           std::chrono::steady_clock::now() < deadline + 10s)
        ioc_.run_for(20ms);
    ASSERT_EQ(done.wait_for(0s), std::future_status::ready);
    EXPECT_EQ(text("SELECT op || ':' || state FROM outbox"), "pull:done");
    EXPECT_EQ(text("SELECT title FROM tasks"), "Follow up");
    // The dispatcher files the audit rows under the outbox row.
    EXPECT_EQ(count("SELECT COUNT(*) FROM audit_log WHERE outbox_id IS NOT NULL"),
              4); // contact, tasks, notes, appts
    EXPECT_EQ(pushes(), 0);
}

TEST_F(pull_test, run_loop_pulls_fires_reminders_and_stops) {
    opt_.poll_interval = 50ms;
    opt_.children = fetch_children::all;
    opt_.child_idle_poll = 20ms;
    const auto id = sim_->seed_contact(bj::object{{"firstName", "Ada"}});
    // Starts in 30 minutes: its 60-minute reminder is already due.
    sim_->seed_appointment(id, bj::object{{"startTime", format_iso8601(wall_now() + 30min)}});
    auto done = asio::co_spawn(ioc_, rec().run(), asio::use_future);
    ioc_.restart();
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (count("SELECT COUNT(*) FROM reminders WHERE fired = 1") == 0 &&
           std::chrono::steady_clock::now() < deadline)
        ioc_.run_for(20ms);
    rec().stop();
    while (done.wait_for(0s) != std::future_status::ready &&
           std::chrono::steady_clock::now() < deadline + 10s)
        ioc_.run_for(20ms);
    ASSERT_EQ(done.wait_for(0s), std::future_status::ready);
    EXPECT_EQ(count("SELECT COUNT(*) FROM contacts"), 1);
    EXPECT_EQ(count("SELECT COUNT(*) FROM reminders WHERE fired = 1"), 1);
    EXPECT_EQ(count("SELECT COUNT(*) FROM changes WHERE kind = 'reminder_fired'"), 1);
}

TEST_F(pull_test, a_full_resync_rereads_everything_and_the_tasks_of_unchanged_contacts) {
    opt_.children = fetch_children::all;
    sim_->seed_contacts(20);
    ASSERT_TRUE(run(rec().incremental_pull()).complete);
    EXPECT_EQ(run(rec().drain_child_queue(100)), 20);
    db_->run_sync([&](SQLite::Database& db) { sync::request_full_resync(db, clock_.now()); });
    const auto r = run(rec().incremental_pull());
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_TRUE(r.full);
    EXPECT_EQ(r.listed, 20);
    EXPECT_EQ(r.unchanged, 20);
    EXPECT_EQ(count("SELECT COUNT(*) FROM pull_queue WHERE what = 'tasks'"), 20);
    EXPECT_EQ(text("SELECT value FROM sync_cursors WHERE name = 'contacts.resync'"), "<null>");
    // Back to incremental.
    EXPECT_FALSE(run(rec().incremental_pull()).full);
}

// Issue 12: a transient failure of one GET /contacts/:id is retried inside the pass; a fetch
// that keeps failing becomes a durable pull (outbox op='pull') and the page commits with its
// cursor instead of being thrown away.
TEST_F(pull_test, a_fetch_that_keeps_failing_is_deferred_and_the_page_commits) {
    opt_.children = fetch_children::on_demand;
    opt_.fetch_retry_base = 1ms;
    opt_.fetch_retry_max = 5ms;
    const auto ids = sim_->seed_contacts(20);
    ASSERT_TRUE(run(rec().incremental_pull()).complete);
    for (const auto& id : ids)
        sim_->update_contact(id, bj::object{{"firstName", "Renamed"}});
    sim::fault_config f;
    f.routes = {"GET /contacts/:contactId"};
    f.error_rate = 1;
    f.error_statuses = {503};
    f.max_faults = 1 + opt_.fetch_retries; // the first fetch and all its retries fail
    sim_->set_faults(f);
    clock_.advance(1s);
    const auto r = run(rec().incremental_pull());
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_TRUE(r.complete);
    EXPECT_EQ(r.deferred, 1);
    EXPECT_EQ(r.fetch_retries, opt_.fetch_retries);
    EXPECT_EQ(r.updated, 19);
    EXPECT_EQ(r.fetched, 20 + opt_.fetch_retries);
    EXPECT_EQ(count("SELECT COUNT(*) FROM contacts WHERE first_name = 'Renamed'"), 19);
    EXPECT_EQ(count("SELECT COUNT(*) FROM outbox WHERE op = 'pull' AND state = 'pending'"), 1);
    EXPECT_EQ(count("SELECT COUNT(*) FROM audit_log WHERE status = 503"), 1 + opt_.fetch_retries);

    // The durable pull brings the last one.
    sync::dispatcher_options dopt;
    dopt.coalesce = 0ms;
    dopt.idle_poll = 20ms;
    sync::dispatcher disp(ioc_.get_executor(), *db_, access_, dopt, clock_);
    disp.set_pull(rec().pull_function());
    auto done = asio::co_spawn(ioc_, disp.run(), asio::use_future);
    ioc_.restart();
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (count("SELECT COUNT(*) FROM outbox WHERE state = 'done'") == 0 &&
           std::chrono::steady_clock::now() < deadline)
        ioc_.run_for(20ms);
    disp.stop();
    while (done.wait_for(0s) != std::future_status::ready &&
           std::chrono::steady_clock::now() < deadline + 10s)
        ioc_.run_for(20ms);
    EXPECT_EQ(count("SELECT COUNT(*) FROM contacts WHERE first_name = 'Renamed'"), 20);
    EXPECT_EQ(count("SELECT COUNT(*) FROM contacts"), 20);
    EXPECT_EQ(pushes(), 0);
}

// Issue 12, "Pulls that make progress under faults": 160 contacts changed remotely, GHL's
// search index lagging, with and without 10% transient faults on the fetches and the listing:
// every change reaches the mirror, and the calls per change stay within 1.25x of the run
// without faults (before: a failed fetch threw its page away and the next pass redid it).
TEST_F(pull_test, remote_changes_under_ten_percent_faults_and_search_lag_cost_few_calls) {
    opt_.children = fetch_children::on_demand;
    // Faults only: GHL's own rate limit is not what this measures (the sim without it).
    sim_->stop();
    sim::options so;
    so.port = 0;
    so.rate_limit = false;
    sim_ = std::make_unique<sim::server>(so);
    sim_->start();
    ghl::http_options ho;
    ho.base_url = sim_->base_url();
    ho.timeout = 20s;
    access_.http = std::make_shared<ghl::http_client>(ioc_.get_executor(), ho);
    access_.limiter = std::make_shared<ghl::rate_limiter>(ghl::rate_limit_options{100000});
    opt_.fetch_retries =
        5; // a fetch failing 6 times in a row (1 in 10^6) would need a durable pull
    opt_.fetch_retry_base = 5ms;
    opt_.fetch_retry_max = 50ms;
    const int n = 160;
    const auto ids = sim_->seed_contacts(n);
    ASSERT_TRUE(run(rec().incremental_pull()).complete);

    // One round: rename every contact remotely, then poll (every 200 ms) until the mirror has
    // every new name. Returns the API calls it took.
    auto round = [&](const std::string& name, const sim::fault_config& faults) {
        sim::fault_config lag = faults;
        lag.search_lag_ms = 200;
        lag.search_lag_jitter_ms = 400;
        sim_->set_faults(lag);
        for (const auto& id : ids)
            sim_->update_contact(id, bj::object{{"firstName", name}});
        const long long before = sim_->get_stats().requests;
        const auto deadline = std::chrono::steady_clock::now() + 60s;
        int passes = 0;
        while (count("SELECT COUNT(*) FROM contacts WHERE first_name = '" + name + "'") < n &&
               std::chrono::steady_clock::now() < deadline) {
            clock_.advance(1s);
            const auto r = run(rec().incremental_pull());
            ++passes;
            if (!r.ok)
                ADD_FAILURE() << "pass failed: " << r.error;
            std::this_thread::sleep_for(200ms); // the poll interval
        }
        EXPECT_EQ(count("SELECT COUNT(*) FROM contacts WHERE first_name = '" + name + "'"), n);
        EXPECT_EQ(count("SELECT COUNT(*) FROM outbox"), 0) << "nothing needed a durable pull";
        const long long calls = sim_->get_stats().requests - before;
        std::cout << "[figure] " << n << " remote changes, " << name << ": " << calls << " calls ("
                  << static_cast<double>(calls) / n << " per change), " << passes << " passes\n";
        return calls;
    };
    const long long clean = round("Clean", {});
    sim::fault_config f;
    f.routes = {"GET /contacts/:contactId", "POST /contacts/search"};
    f.error_rate = 0.10;
    f.error_statuses = {500, 502, 503};
    const long long faulty = round("Faulty", f);
    EXPECT_LE(static_cast<double>(faulty), 1.25 * static_cast<double>(clean))
        << "clean " << clean << ", with 10% faults " << faulty;
    EXPECT_EQ(count("SELECT COUNT(*) FROM contacts"), n);
}

// Issue 12, "A floor that covers the index lag": a change GHL's search index shows late (its
// dateUpdated older than the cursor) is read by the next pass with the default floor
// (sync.index_lag_seconds = 300), where the old 2 s floor skipped it until the next sweep.
TEST_F(pull_test, the_floor_rereads_the_index_lag_so_a_late_indexed_change_is_not_skipped) {
    opt_.children = fetch_children::on_demand;
    const auto now = wall_now();
    const auto x = sim_->seed_contact(
        bj::object{{"firstName", "Old"}, {"dateUpdated", format_iso8601(now - 1h)}});
    sim_->seed_contact(bj::object{{"firstName", "Y"}}); // the cursor ends at its dateUpdated
    ASSERT_TRUE(run(rec().incremental_pull()).complete);
    // X's change, made a minute before the cursor, becomes searchable only now.
    sim_->update_contact(
        x, bj::object{{"firstName", "Late"}, {"dateUpdated", format_iso8601(now - 1min)}});
    clock_.advance(1s);
    const std::string name_of_x = "SELECT first_name FROM contacts WHERE ghl_id = '" + x + "'";

    opt_.overlap = 2s; // the old floor
    rec_.reset();
    ASSERT_TRUE(run(rec().incremental_pull()).complete);
    EXPECT_EQ(text(name_of_x), "Old") << "the old floor was expected to miss it";

    opt_.overlap = sync::reconciler_options_from(config{}).overlap;
    EXPECT_EQ(opt_.overlap, std::chrono::milliseconds(300s));
    rec_.reset();
    const auto r = run(rec().incremental_pull());
    ASSERT_TRUE(r.complete) << r.error;
    EXPECT_EQ(text(name_of_x), "Late");
    EXPECT_EQ(r.fetched, 1); // only the changed contact is fetched; Y is skipped by dateUpdated
}

// Issue 12, "Lanes": a bulk remote change arriving as 999 webhook pulls (outbox op='pull')
// does not queue Speak4's push behind it: the push is claimed ahead of the pulls and sent while
// only a few of them (the ones already in flight) have run.
TEST_F(pull_test, a_push_is_not_queued_behind_a_bulk_of_webhook_pulls) {
    opt_.children = fetch_children::on_demand;
    const int n = 1000;
    const auto ids = sim_->seed_contacts(n);
    ASSERT_TRUE(run(rec().incremental_pull()).complete);
    // The webhooks' pulls (of every contact but one), then a change from Speak4 to that one.
    db_->run_sync([&](SQLite::Database& db) {
        SQLite::Statement ins(db, "INSERT INTO outbox(op, entity, entity_id, state, "
                                  "next_attempt_at, payload, created_at, updated_at) SELECT "
                                  "'pull', 'contact', id, 'pending', ?1, '{\"children\":false}', "
                                  "?1, ?1 FROM contacts WHERE ghl_id <> ?2");
        ins.bind(1, format_iso8601(clock_.now()));
        ins.bind(2, ids[n / 2]);
        ins.exec();
    });
    emit(R"({"type":"contact.updated","contact":{"ghl_id":")" + ids[n / 2] +
         R"(","lastName":"FromSpeak4"}})");
    const std::string push_done =
        "SELECT COUNT(*) FROM outbox WHERE op <> 'pull' AND state = 'done'";

    sync::dispatcher_options dopt;
    dopt.coalesce = 0ms;
    dopt.idle_poll = 20ms;
    sync::dispatcher disp(ioc_.get_executor(), *db_, access_, dopt, clock_);
    disp.set_pull(rec().pull_function());
    auto done = asio::co_spawn(ioc_, disp.run(), asio::use_future);
    ioc_.restart();
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (count(push_done) == 0 && std::chrono::steady_clock::now() < deadline)
        ioc_.run_for(5ms);
    const long long pulls_before =
        count("SELECT COUNT(*) FROM outbox WHERE op = 'pull' AND state = 'done'");
    disp.stop();
    while (done.wait_for(0s) != std::future_status::ready &&
           std::chrono::steady_clock::now() < deadline + 10s)
        ioc_.run_for(20ms);
    ASSERT_EQ(count(push_done), 1);
    std::cout << "[figure] push behind " << n << " webhook pulls: sent after " << pulls_before
              << " pulls had run\n";
    EXPECT_LE(pulls_before, 2 * dopt.max_concurrency) << "the push waited behind the pulls";
    std::string last_name;
    const bj::value state = sim_->state();
    for (const auto& c : state.at("contacts").as_array())
        if (c.at("id").as_string() == ids[n / 2])
            last_name = std::string(c.at("lastName").as_string());
    EXPECT_EQ(last_name, "FromSpeak4");
}
