// sync.direction and sync.entities on the real binary against ghl-sim: "pull" fills the mirror,
// refuses write events (422 naming the setting) and sends GHL no write; "push" pulls nothing;
// entities without notes never call a notes endpoint and refuse note events; a switch to "pull"
// with Speak4 writes still unsent refuses to start naming them.
#include "ghl_sim.hpp"
#include "support/local_http.hpp"
#include "support/test_support.hpp"

#include <SQLiteCpp/Database.h>
#include <arpa/inet.h>
#include <boost/json/parse.hpp>
#include <csignal>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

using namespace speak4::testing;

namespace {

using answer = local_answer;

answer post_event(unsigned short port, const std::string& body) {
    return local_request(port, "POST", "/v1/events", body, "api-secret");
}

class sync_settings_test : public ::testing::Test {
protected:
    void SetUp() override {
        speak4::sim::options so;
        so.rate_limit = false;
        so.static_tokens = {"pit", "pit-readonly"};
        so.static_token_scopes = {{"pit-readonly", "contacts.readonly"}};
        sim_ = std::make_unique<speak4::sim::server>(so);
        sim_->start();
        for (int i = 0; i < 5; ++i) {
            // Appended step by step: GCC 12 -O3 warns (-Wrestrict, a false positive) on "r" + s.
            std::string first = "R", email = "r";
            first += std::to_string(i);
            email += std::to_string(i);
            email += "@example.com";
            const std::string id = sim_->seed_contact({{"firstName", first}, {"email", email}});
            sim_->seed_note(id, {{"body", "a note"}});
            sim_->seed_task(id, {{"title", "a task"}, {"dueDate", "2027-01-01T10:00:00Z"}});
        }
        port_ = free_port();
        write_file(dir_ / "ghl-token", "pit\n", 0600);
        write_file(dir_ / "api-token", "api-secret\n", 0600);
    }
    void TearDown() override { sim_->stop(); }

    void write_config(const std::string& sync) {
        write_file(
            dir_ / "speak4-sync.toml",
            "[database]\npath = \"" + (dir_ / "s.db").string() + "\"\n[ghl]\nbase_url = \"" +
                sim_->base_url() + "\"\nlocation_id = \"" + sim_->location_id() +
                "\"\ntoken_file = \"" + (dir_ / "ghl-token").string() +
                "\"\ntimeout_ms = 2000\n[api]\nlisten = \"127.0.0.1:" + std::to_string(port_) +
                "\"\ntoken_file = \"" + (dir_ / "api-token").string() +
                "\"\n[sync]\ncoalesce_ms = 10\npoll_interval_seconds = 1\n" + sync +
                "[logging]\nlevel = \"warn\"\n");
    }
    std::unique_ptr<child_process> start() {
        auto d = std::make_unique<child_process>(
            binary_path().string(),
            std::vector<std::string>{"--config", (dir_ / "speak4-sync.toml").string(), "run"},
            dir_ / "daemon.out", dir_ / "daemon.err");
        wait_until([&] { return post_event(port_, "{}").status == 400 || !d->running(); }, 20000);
        return d;
    }
    long long count(const std::string& sql) {
        try {
            SQLite::Database db((dir_ / "s.db").string(), SQLite::OPEN_READONLY);
            db.setBusyTimeout(5000);
            return db.execAndGet(sql).getInt64();
        } catch (const std::exception&) {
            return -1;
        }
    }
    std::size_t
    requests_matching(const std::function<bool(const speak4::sim::request_record&)>& f) {
        std::size_t n = 0;
        for (const auto& r : sim_->requests())
            if (f(r))
                ++n;
        return n;
    }
    static bool is_write(const speak4::sim::request_record& r) {
        return r.method != "GET" && r.route != "POST /contacts/search";
    }

    temp_dir dir_;
    std::unique_ptr<speak4::sim::server> sim_;
    unsigned short port_ = 0;
};

} // namespace

TEST_F(sync_settings_test, pull_only_fills_the_mirror_and_never_writes_to_ghl) {
    // A read-only token (contacts.readonly only) is all a pull-only deployment needs.
    write_file(dir_ / "ghl-token", "pit-readonly\n", 0600);
    write_config("direction = \"pull\"\n");
    auto d = start();
    ASSERT_TRUE(d->running()) << read_file(dir_ / "daemon.err");
    EXPECT_TRUE(wait_until(
        [&] {
            return count("SELECT COUNT(*) FROM contacts") == 5 &&
                   count("SELECT COUNT(*) FROM notes") == 5 &&
                   count("SELECT COUNT(*) FROM tasks") == 5;
        },
        20000));
    const auto refused = post_event(
        port_, R"({"type":"contact.created","contact":{"speak4_id":"s4-1","email":"x@e.com"}})");
    EXPECT_EQ(refused.status, 422) << refused.body;
    EXPECT_NE(refused.body.find("sync.direction = \\\"pull\\\" sends none"), std::string::npos)
        << refused.body;
    const auto task =
        post_event(port_, R"({"type":"task.completed","contact":{"speak4_id":"s4-1"},)"
                          R"("task":{"speak4_id":"t-1","completed":true}})");
    EXPECT_EQ(task.status, 422) << task.body;
    // A pull request is no write: accepted.
    std::string ghl_id;
    {
        SQLite::Database db((dir_ / "s.db").string(), SQLite::OPEN_READONLY);
        ghl_id = db.execAndGet("SELECT ghl_id FROM contacts LIMIT 1").getString();
    }
    EXPECT_EQ(
        post_event(port_, R"({"type":"contact.opened","contact":{"ghl_id":")" + ghl_id + R"("}})")
            .status,
        202);
    const auto emitted = run_cli({"--config", (dir_ / "speak4-sync.toml").string(), "emit", "-"},
                                 R"({"type":"contact.updated","contact":{"speak4_id":"s4-1",)"
                                 R"("firstName":"X"}})");
    EXPECT_NE(emitted.exit_code, 0);
    EXPECT_NE(emitted.err.find("sync.direction"), std::string::npos) << emitted.err;
    EXPECT_TRUE(wait_until(
        [&] {
            return count("SELECT COUNT(*) FROM outbox WHERE state IN "
                         "('pending','inflight')") == 0;
        },
        10000));
    EXPECT_EQ(requests_matching(is_write), 0u) << "a write reached GHL";
    EXPECT_EQ(requests_matching([](const auto& r) { return r.status == 401; }), 0u)
        << "a call the read-only token may not make";
    EXPECT_EQ(count("SELECT COUNT(*) FROM outbox WHERE op <> 'pull'"), 0);
    d->signal(SIGTERM);
    EXPECT_EQ(d->wait(20000), 0);
}

TEST_F(sync_settings_test, entities_without_notes_never_call_a_notes_endpoint) {
    write_config("entities = [\"contacts\", \"tasks\"]\n");
    auto d = start();
    ASSERT_TRUE(d->running()) << read_file(dir_ / "daemon.err");
    EXPECT_TRUE(wait_until(
        [&] {
            return count("SELECT COUNT(*) FROM contacts") == 5 &&
                   count("SELECT COUNT(*) FROM tasks") == 5;
        },
        20000));
    const auto note = post_event(port_, R"({"type":"note.created","contact":{"speak4_id":"s4-1"},)"
                                        R"("note":{"speak4_id":"n-1","body":"hi"}})");
    EXPECT_EQ(note.status, 422) << note.body;
    EXPECT_NE(note.body.find("sync.entities does not list notes"), std::string::npos);
    const auto attached =
        post_event(port_, R"({"type":"contact.created","contact":{"speak4_id":"s4-9",)"
                          R"("email":"n@e.com"},"notes":[{"speak4_id":"n-2","body":"x"}]})");
    EXPECT_EQ(attached.status, 422) << attached.body;
    EXPECT_EQ(post_event(port_, R"({"type":"contact.created","contact":{"speak4_id":"s4-8",)"
                                R"("email":"ok@e.com"}})")
                  .status,
              202);
    EXPECT_TRUE(wait_until(
        [&] {
            return count("SELECT COUNT(*) FROM contacts WHERE speak4_id = 's4-8' AND ghl_id IS "
                         "NOT NULL") == 1;
        },
        20000));
    EXPECT_EQ(count("SELECT COUNT(*) FROM notes"), 0);
    EXPECT_EQ(requests_matching(
                  [](const auto& r) { return r.route.find("/notes") != std::string::npos; }),
              0u);
    EXPECT_GT(requests_matching(
                  [](const auto& r) { return r.route.find("/tasks") != std::string::npos; }),
              0u);
    d->signal(SIGTERM);
    EXPECT_EQ(d->wait(20000), 0);
}

TEST_F(sync_settings_test, push_only_pulls_nothing) {
    write_config("direction = \"push\"\n");
    auto d = start();
    ASSERT_TRUE(d->running()) << read_file(dir_ / "daemon.err");
    EXPECT_EQ(post_event(port_, R"({"type":"contact.created","contact":{"speak4_id":"s4-1",)"
                                R"("email":"p@e.com"}})")
                  .status,
              202);
    EXPECT_TRUE(wait_until(
        [&] { return count("SELECT COUNT(*) FROM contacts WHERE ghl_id IS NOT NULL") == 1; },
        20000));
    const auto opened =
        post_event(port_, R"({"type":"contact.opened","contact":{"ghl_id":"abcdefabcdef"}})");
    EXPECT_EQ(opened.status, 422) << opened.body;
    EXPECT_EQ(requests_matching([](const auto& r) {
                  return r.route == "POST /contacts/search" || r.route == "GET /contacts/";
              }),
              0u)
        << "a push-only daemon listed contacts";
    EXPECT_EQ(count("SELECT COUNT(*) FROM contacts"), 1) << "nothing imported";
    d->signal(SIGTERM);
    EXPECT_EQ(d->wait(20000), 0);
}

TEST_F(sync_settings_test, switching_to_pull_with_unsent_writes_refuses_to_start) {
    write_config("");
    const auto e = run_cli({"--config", (dir_ / "speak4-sync.toml").string(), "emit", "-"},
                           R"({"type":"contact.created","contact":{"speak4_id":"s4-1",)"
                           R"("email":"w@e.com"}})");
    ASSERT_EQ(e.exit_code, 0) << e.err;
    write_config("direction = \"pull\"\n");
    const auto r = run_cli({"--config", (dir_ / "speak4-sync.toml").string(), "run"});
    EXPECT_EQ(r.exit_code, 78) << r.err;
    EXPECT_NE(r.err.find("sync.direction: is \"pull\", but the outbox holds 1 Speak4 write"),
              std::string::npos)
        << r.err;
    EXPECT_EQ(count("SELECT COUNT(*) FROM outbox WHERE state = 'pending'"), 1) << "kept";
}

TEST_F(sync_settings_test, dry_run_sends_no_write_plans_it_and_going_live_sends_exactly_that) {
    write_config("mode = \"dry_run\"\n");
    // One request at a time, so the order GHL sees is the order of the plan.
    write_file(dir_ / "speak4-sync.toml",
               read_file(dir_ / "speak4-sync.toml") + "[rate_limit]\nburst = 100000\n");
    {
        std::string t = read_file(dir_ / "speak4-sync.toml");
        t.replace(t.find("timeout_ms = 2000\n"), 18, "timeout_ms = 2000\nmax_concurrency = 1\n");
        write_file(dir_ / "speak4-sync.toml", t);
    }
    auto d = start();
    ASSERT_TRUE(d->running()) << read_file(dir_ / "daemon.err");
    for (const std::string body :
         {R"({"type":"contact.created","contact":{"speak4_id":"s4-1","email":"d1@e.com"}})",
          R"({"type":"contact.created","contact":{"speak4_id":"s4-2","email":"d2@e.com"}})",
          R"({"type":"note.created","contact":{"speak4_id":"s4-2"},"note":{"speak4_id":"n-1",)"
          R"("body":"secret words"}})",
          R"({"type":"contact.created","contact":{"speak4_id":"s4-3","email":"d3@e.com"}})"})
        ASSERT_EQ(post_event(port_, body).status, 202) << body;
    // The mirror fills as usual (reads go on), but no write reaches GHL.
    EXPECT_TRUE(wait_until([&] { return count("SELECT COUNT(*) FROM contacts") == 8; }, 20000));
    EXPECT_FALSE(wait_until([&] { return requests_matching(is_write) > 0; }, 2000));
    EXPECT_EQ(count("SELECT COUNT(*) FROM outbox WHERE state = 'pending'"), 4);

    const auto plan = run_cli({"--config", (dir_ / "speak4-sync.toml").string(), "plan", "--json"});
    ASSERT_EQ(plan.exit_code, 0) << plan.err;
    const auto doc = boost::json::parse(plan.out).as_object();
    EXPECT_EQ(doc.at("mode"), boost::json::value("dry_run"));
    std::vector<std::string> planned;
    for (const auto& c : doc.at("calls").as_array()) {
        const auto& o = c.as_object();
        std::string path(o.at("path").as_string());
        planned.push_back(std::string(o.at("method").as_string()) + " " + path);
    }
    ASSERT_EQ(planned.size(), 4u) << plan.out;
    EXPECT_EQ(planned[0], "POST /contacts/");
    EXPECT_EQ(planned[2], "POST /contacts/:contactId/notes");
    EXPECT_EQ(plan.out.find("secret words"), std::string::npos) << "a note body unmasked";
    EXPECT_EQ(plan.out.find("d1@e.com"), std::string::npos) << "an email unmasked";
    const auto status = run_cli({"--config", (dir_ / "speak4-sync.toml").string(), "status"});
    EXPECT_NE(status.out.find("dry_run"), std::string::npos) << status.out;

    // Going live (config + SIGHUP): exactly the planned calls, in order.
    std::string t = read_file(dir_ / "speak4-sync.toml");
    t.replace(t.find("mode = \"dry_run\""), 16, "mode = \"live\"");
    write_file(dir_ / "speak4-sync.toml", t);
    d->signal(SIGHUP);
    ASSERT_TRUE(wait_until(
        [&] { return count("SELECT COUNT(*) FROM outbox WHERE state <> 'done'") == 0; }, 20000))
        << read_file(dir_ / "daemon.err");
    std::vector<std::string> sent;
    for (const auto& r : sim_->requests())
        if (is_write(r))
            sent.push_back(r.route);
    EXPECT_EQ(sent, planned);
    d->signal(SIGTERM);
    EXPECT_EQ(d->wait(20000), 0);
}
