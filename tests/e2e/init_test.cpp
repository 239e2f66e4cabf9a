// `speak4-sync init` on the real binary, answered through stdin against ghl-sim: it asks again
// after a wrong answer, picks a custom field from the location's list, writes a config that
// `check-config --online` accepts and `run` uses, secret files 0600, and never prints a secret;
// it refuses to overwrite a config without --force; --non-interactive names what is missing.
#include "ghl_sim.hpp"
#include "support/local_http.hpp"
#include "support/test_support.hpp"

#include <arpa/inet.h>
#include <boost/json/parse.hpp>
#include <csignal>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

using namespace speak4::testing;
namespace bj = boost::json;

namespace {

int post_event(unsigned short port, const std::string& body, const std::string& token) {
    return local_request(port, "POST", "/v1/events", body, token).status;
}

unsigned mode_of(const std::filesystem::path& p) {
    struct stat st {};
    ::stat(p.c_str(), &st);
    return st.st_mode & 0777;
}

class init_test : public ::testing::Test {
protected:
    void SetUp() override {
        speak4::sim::options so;
        so.static_tokens = {"pit-secret-init-1"};
        sim_ = std::make_unique<speak4::sim::server>(so);
        sim_->start();
        score_id_ = sim_->seed_custom_field({{"name", "Lead score"}, {"dataType", "NUMERICAL"}});
        sim_->seed_custom_field({{"name", "Region"}, {"dataType", "TEXT"}});
        std::filesystem::create_directories(dir_ / "etc");
        port_ = free_port();
    }
    void TearDown() override { sim_->stop(); }

    std::filesystem::path cfg() const { return dir_ / "etc" / "speak4-sync.toml"; }

    run_result init(const std::string& answers, std::vector<std::string> extra = {}) {
        std::vector<std::string> args{"--config", cfg().string(), "init", "--base-url",
                                      sim_->base_url()};
        args.insert(args.end(), extra.begin(), extra.end());
        return run_cli(args, answers);
    }

    std::string answers() const {
        return "not a location!\n" +                         // refused: asked again
               sim_->location_id() + "\n" +                  // location id
               "\n" +                                        // auth: default private_token
               "pit-secret-init-1\n" +                       // the token (hidden)
               (dir_ / "s.db").string() + "\n"               // database
               + "localhost:99999\n" +                       // refused: bad port
               "127.0.0.1:" + std::to_string(port_) + "\n" + // listen
               "sideways\n"                                  // refused: not a direction
               "\n"                                          // direction: default both
               "contacts, deals\n"                           // refused: no such entity
               "contacts, tasks, notes\n"                    // entities
               "mobile = phone\n"                            // a standard field
               "score = 1\n"                                 // number 1 of the list
               "region = Regoin\n"                           // refused: no such field
               "region = customFields.contact.region\n"      // by fieldKey
               "\n";                                         // done
    }

    temp_dir dir_;
    std::unique_ptr<speak4::sim::server> sim_;
    std::string score_id_;
    unsigned short port_ = 0;
};

} // namespace

TEST_F(init_test, guided_setup_writes_a_config_that_checks_out_and_runs) {
    const auto r = init(answers());
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    const std::string all = r.out + r.err;
    EXPECT_EQ(all.find("pit-secret-init-1"), std::string::npos) << "the token was echoed";
    const std::string api_token = read_file(dir_ / "etc" / "api-token");
    ASSERT_GE(api_token.size(), 40u);
    EXPECT_EQ(all.find(api_token.substr(0, 40)), std::string::npos) << "the API token was shown";
    EXPECT_NE(r.out.find("a location id has only letters and digits; try again"), std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find("api.listen"), std::string::npos) << "the bad port's reason: " << r.out;
    EXPECT_NE(r.out.find("\"Regoin\" is neither a GHL contact field"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("Lead score"), std::string::npos) << "the list was shown: " << r.out;
    EXPECT_NE(r.out.find("scope contacts.write"), std::string::npos) << "checked online";
    EXPECT_NE(r.out.find("systemctl enable --now speak4-sync"), std::string::npos);

    EXPECT_EQ(mode_of(dir_ / "etc" / "ghl-token"), 0600u);
    EXPECT_EQ(mode_of(dir_ / "etc" / "api-token"), 0600u);
    EXPECT_EQ(read_file(dir_ / "etc" / "ghl-token"), "pit-secret-init-1\n");
    const std::string text = read_file(cfg());
    EXPECT_NE(text.find("token_file = \"ghl-token\""), std::string::npos)
        << "relative: LoadCredential= or the config's directory\n"
        << text;
    EXPECT_NE(text.find("\"score\" = \"Lead score\""), std::string::npos) << text;
    EXPECT_NE(text.find("direction = \"both\""), std::string::npos) << text;
    EXPECT_NE(text.find("entities = [\"contacts\", \"tasks\", \"notes\"]"), std::string::npos)
        << text;
    EXPECT_NE(r.out.find("sync.direction: must be one of both, pull, push; try again"),
              std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find("\"deals\""), std::string::npos) << r.out;
    EXPECT_NE(text.find("\"region\" = \"customFields.contact.region\""), std::string::npos);
    EXPECT_EQ(text.find("pit-secret-init-1"), std::string::npos);

    const auto check = run_cli({"--config", cfg().string(), "check-config", "--online"});
    EXPECT_EQ(check.exit_code, 0) << check.out << check.err;

    // `run` uses it: an event with the mapped custom field reaches GHL under its id.
    child_process d(binary_path().string(), {"--config", cfg().string(), "run"},
                    dir_ / "daemon.out", dir_ / "daemon.err");
    const std::string token = api_token.substr(0, api_token.find('\n'));
    ASSERT_TRUE(wait_until(
        [&] {
            return !d.running() ||
                   post_event(port_,
                              R"({"type":"contact.created","contact":{"speak4_id":"s4-1",)"
                              R"("email":"ada@example.com","score":7,"mobile":"+15550001111"}})",
                              token) == 202;
        },
        20000))
        << read_file(dir_ / "daemon.err");
    ASSERT_TRUE(d.running()) << read_file(dir_ / "daemon.err");
    EXPECT_TRUE(wait_until(
        [&] {
            const bj::value state = sim_->state();
            for (const auto& c : state.at("contacts").as_array())
                if (const auto* cfs = c.as_object().if_contains("customFields"))
                    for (const auto& f : cfs->as_array())
                        if (f.as_object().at("id") == bj::value(score_id_) &&
                            f.as_object().at("value") == bj::value(7) &&
                            c.as_object().at("phone") == bj::value("+15550001111"))
                            return true;
            return false;
        },
        20000));
    d.signal(SIGTERM);
    EXPECT_EQ(d.wait(20000), 0);
}

TEST_F(init_test, an_existing_config_is_kept_without_force) {
    write_file(cfg(), "# mine\n", 0644);
    const auto r = init(answers());
    EXPECT_EQ(r.exit_code, 73) << r.err;
    EXPECT_NE(r.err.find("--force"), std::string::npos) << r.err;
    EXPECT_EQ(read_file(cfg()), "# mine\n");
    const auto forced = init(answers(), {"--force"});
    EXPECT_EQ(forced.exit_code, 0) << forced.out << forced.err;
    EXPECT_NE(read_file(cfg()).find("location_id"), std::string::npos);
}

TEST_F(init_test, non_interactive_takes_flags_and_names_what_is_missing) {
    const auto missing = init("", {"--non-interactive", "--no-online"});
    EXPECT_EQ(missing.exit_code, 64);
    EXPECT_NE(missing.err.find("--location-id"), std::string::npos) << missing.err;

    write_file(dir_ / "pit", "pit-secret-init-1\n", 0600);
    const auto no_token = init("", {"--non-interactive", "--location-id", sim_->location_id()});
    EXPECT_EQ(no_token.exit_code, 64);
    EXPECT_NE(no_token.err.find("--token-file is required"), std::string::npos) << no_token.err;

    const auto ok =
        init("", {"--non-interactive", "--location-id", sim_->location_id(), "--token-file",
                  (dir_ / "pit").string(), "--database", (dir_ / "s.db").string(), "--listen",
                  "127.0.0.1:" + std::to_string(port_), "--map", "score=Lead score"});
    EXPECT_EQ(ok.exit_code, 0) << ok.out << ok.err;
    EXPECT_NE(read_file(cfg()).find("token_file = \"" + (dir_ / "pit").string() + "\""),
              std::string::npos)
        << read_file(cfg());

    const auto bad_map =
        init("", {"--non-interactive", "--force", "--location-id", sim_->location_id(),
                  "--token-file", (dir_ / "pit").string(), "--map", "score=Lead Scroe"});
    EXPECT_EQ(bad_map.exit_code, 78) << bad_map.err;
    EXPECT_NE(bad_map.err.find("--map score=Lead Scroe"), std::string::npos) << bad_map.err;
}
