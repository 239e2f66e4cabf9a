// The real daemon with `[alerts] webhook_url_file` against ghl-sim and a loopback receiver: a
// contact GHL refuses becomes a dead letter, the receiver gets one FIRING message; the dead letter
// is dropped with the CLI, the receiver gets one RESOLVED message; no token or webhook URL in
// what it received or in the daemon's logs.
#include "ghl_sim.hpp"
#include "support/test_support.hpp"
#include "support/webhook_receiver.hpp"

#include <SQLiteCpp/Database.h>
#include <boost/json/parse.hpp>
#include <csignal>
#include <gtest/gtest.h>

using namespace speak4::testing;
namespace bj = boost::json;

namespace {

class alert_webhook_test : public ::testing::Test {
protected:
    void SetUp() override {
        speak4::sim::options so;
        so.rate_limit = false;
        so.static_tokens = {"ghl-token-secret-1"};
        sim_ = std::make_unique<speak4::sim::server>(so);
        sim_->start();
        speak4::sim::fault_config f;
        f.reject_body_containing = "REJECT-ME"; // a permanent 422: a dead letter at once
        sim_->set_faults(f);
        write_file(dir_ / "ghl-token", "ghl-token-secret-1\n", 0600);
        write_file(dir_ / "api-token", "api-token-secret-2\n", 0600);
        write_file(dir_ / "alert-url", rx_.url("/services/T0/B0/hook-secret-3") + "\n", 0600);
        write_file(dir_ / "speak4-sync.toml",
                   "[database]\npath = \"" + (dir_ / "s.db").string() + "\"\n[ghl]\nbase_url = \"" +
                       sim_->base_url() + "\"\nlocation_id = \"" + sim_->location_id() +
                       "\"\ntoken_file = \"" + (dir_ / "ghl-token").string() +
                       "\"\ntimeout_ms = 2000\n[api]\nlisten = \"127.0.0.1:" +
                       std::to_string(free_port()) + "\"\ntoken_file = \"" +
                       (dir_ / "api-token").string() +
                       "\"\n[sync]\ncoalesce_ms = 10\n[alerts]\nwebhook_url_file = \"" +
                       (dir_ / "alert-url").string() +
                       "\"\ncheck_interval_seconds = 1\n[logging]\nlevel = \"debug\"\n");
    }
    void TearDown() override { sim_->stop(); }

    run_result cli(std::vector<std::string> args, const std::string& in = "") {
        args.insert(args.begin(), {"--config", (dir_ / "speak4-sync.toml").string()});
        return run_cli(args, in);
    }

    long long dead_id() {
        try {
            SQLite::Database db((dir_ / "s.db").string(), SQLite::OPEN_READONLY);
            db.setBusyTimeout(5000);
            SQLite::Statement q(db, "SELECT id FROM outbox WHERE state = 'dead' LIMIT 1");
            return q.executeStep() ? q.getColumn(0).getInt64() : 0;
        } catch (const std::exception&) {
            return 0;
        }
    }

    /// The received messages' texts whose alert key is `key`.
    std::vector<std::string> texts(const std::string& key) {
        std::vector<std::string> out;
        for (const auto& r : rx_.received()) {
            const auto j = bj::parse(r.body).as_object();
            const std::string t(j.at("text").as_string());
            if (t.find("] " + key + ":") != std::string::npos)
                out.push_back(t);
        }
        return out;
    }

    temp_dir dir_;
    webhook_receiver rx_;
    std::unique_ptr<speak4::sim::server> sim_;
};

} // namespace

TEST_F(alert_webhook_test, fires_once_when_dead_letters_appear_and_once_when_they_clear) {
    child_process d(binary_path().string(),
                    {"--config", (dir_ / "speak4-sync.toml").string(), "run"}, dir_ / "daemon.out",
                    dir_ / "daemon.err");
    const auto emitted =
        cli({"emit", "-"},
            R"({"type":"contact.created","event_id":"e-1","contact":{"speak4_id":"s4-1",)"
            R"("firstName":"REJECT-ME","email":"r@example.com"}})"
            "\n"
            R"({"type":"contact.created","event_id":"e-2","contact":{"speak4_id":"s4-2",)"
            R"("firstName":"Ada","email":"ada@example.com"}})"
            "\n");
    ASSERT_EQ(emitted.exit_code, 0) << emitted.err;

    ASSERT_TRUE(wait_until([&] { return dead_id() != 0 || !d.running(); }, 30000))
        << read_file(dir_ / "daemon.err");
    ASSERT_TRUE(d.running()) << read_file(dir_ / "daemon.err");
    ASSERT_TRUE(wait_until([&] { return texts("dead_letters").size() == 1; }, 15000))
        << "no FIRING message; daemon log:\n"
        << read_file(dir_ / "daemon.out");
    EXPECT_EQ(texts("dead_letters")[0].rfind("FIRING speak4-sync [" + sim_->location_id() +
                                                 "] dead_letters: 1 dead letter",
                                             0),
              0u)
        << texts("dead_letters")[0];

    // Still dead for a few checks: no second message.
    EXPECT_FALSE(wait_until([&] { return texts("dead_letters").size() > 1; }, 3000));

    const auto dropped = cli({"queue", "drop", std::to_string(dead_id())});
    ASSERT_EQ(dropped.exit_code, 0) << dropped.err;
    ASSERT_TRUE(wait_until([&] { return texts("dead_letters").size() == 2; }, 15000))
        << "no RESOLVED message";
    EXPECT_EQ(texts("dead_letters")[1].rfind("RESOLVED speak4-sync [" + sim_->location_id() +
                                                 "] dead_letters: cleared after ",
                                             0),
              0u)
        << texts("dead_letters")[1];
    EXPECT_FALSE(wait_until([&] { return texts("dead_letters").size() > 2; }, 3000));

    for (const auto& r : rx_.received()) {
        EXPECT_EQ(r.method, "POST");
        EXPECT_EQ(r.target, "/services/T0/B0/hook-secret-3");
        for (const std::string s : {"ghl-token-secret-1", "api-token-secret-2"}) {
            EXPECT_EQ(r.head.find(s), std::string::npos) << "a token in an alert's headers";
            EXPECT_EQ(r.body.find(s), std::string::npos) << "a token in an alert: " << r.body;
        }
        EXPECT_EQ(r.body.find("r@example.com"), std::string::npos) << "personal data: " << r.body;
    }

    d.signal(SIGTERM);
    EXPECT_EQ(d.wait(20000), 0) << read_file(dir_ / "daemon.err");
    const std::string logs = read_file(dir_ / "daemon.out") + read_file(dir_ / "daemon.err");
    EXPECT_NE(logs.find("alert delivered"), std::string::npos);
    for (const std::string s : {"hook-secret-3", "ghl-token-secret-1", "api-token-secret-2"})
        EXPECT_EQ(logs.find(s), std::string::npos) << s << " in the daemon's debug log";
}

TEST_F(alert_webhook_test, a_url_that_is_not_allowed_refuses_to_start_naming_the_key) {
    write_file(dir_ / "alert-url", "http://hooks.example.com/services/hook-secret-3\n", 0600);
    const auto r = cli({"run"});
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find("alerts.webhook_url_file"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("hook-secret-3"), std::string::npos) << r.err;
    write_file(dir_ / "alert-url", "https://hooks.example.com/x\n", 0644);
    const auto r2 = cli({"run"});
    EXPECT_NE(r2.exit_code, 0);
    EXPECT_NE(r2.err.find("alerts.webhook_url_file"), std::string::npos) << r2.err;
    EXPECT_NE(r2.err.find("chmod 600"), std::string::npos) << r2.err;
}
