// `speak4-sync check-config --online` on the real binary against ghl-sim: a good token has
// every scope the config needs (and nothing is written to GHL by the write probe); a token GHL
// refuses is reported scope by scope and exits 78; GHL unreachable exits 69; the token never
// appears in the output.
#include "ghl_sim.hpp"
#include "support/test_support.hpp"

#include <gtest/gtest.h>

using namespace speak4::testing;

namespace {

class online_check_test : public ::testing::Test {
protected:
    void SetUp() override {
        speak4::sim::options so;
        so.static_tokens = {"pit-secret-online", "pit-read-only"};
        so.static_token_scopes = {{"pit-read-only", "contacts.readonly"}};
        sim_ = std::make_unique<speak4::sim::server>(so);
        sim_->start();
        sim_->seed_custom_field({{"name", "Lead score"}, {"dataType", "NUMERICAL"}});
    }
    void TearDown() override { sim_->stop(); }

    run_result check(const std::string& token, const std::string& base_url = "",
                     const std::string& sync = "") {
        write_file(dir_ / "ghl-token", token + "\n", 0600);
        write_file(dir_ / "speak4-sync.toml",
                   "[database]\npath = \"" + (dir_ / "s.db").string() + "\"\n[ghl]\nbase_url = \"" +
                       (base_url.empty() ? sim_->base_url() : base_url) + "\"\nlocation_id = \"" +
                       sim_->location_id() + "\"\ntoken_file = \"" + (dir_ / "ghl-token").string() +
                       "\"\ntimeout_ms = 2000\n[sync]\n" + sync +
                       "[rules.field_map]\nscore = \"Lead score\"\n");
        return run_cli(
            {"--config", (dir_ / "speak4-sync.toml").string(), "check-config", "--online"});
    }

    temp_dir dir_;
    std::unique_ptr<speak4::sim::server> sim_;
};

} // namespace

TEST_F(online_check_test, a_good_token_has_every_needed_scope_and_nothing_is_written) {
    const auto r = check("pit-secret-online");
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    for (const std::string scope :
         {"contacts.readonly", "contacts.write", "locations/customFields.readonly"}) {
        const auto line = r.out.find("scope " + scope);
        ASSERT_NE(line, std::string::npos) << scope << " not checked:\n" << r.out;
        const std::string text = r.out.substr(line, r.out.find('\n', line) - line);
        EXPECT_NE(text.find("granted"), std::string::npos) << text;
    }
    EXPECT_NE(r.out.find("rate limit: "), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("every scope this configuration needs"), std::string::npos);
    EXPECT_EQ(sim_->state().at("contacts").as_array().size(), 0u) << "the write probe wrote";
    EXPECT_EQ((r.out + r.err).find("pit-secret-online"), std::string::npos);
}

TEST_F(online_check_test, a_refused_token_is_reported_scope_by_scope) {
    const auto r = check("not-a-token-of-this-location");
    EXPECT_EQ(r.exit_code, 78) << r.out << r.err;
    EXPECT_NE(r.err.find("the token lacks contacts.readonly, needed for pulls"), std::string::npos)
        << r.err;
    EXPECT_NE(r.err.find("the token lacks contacts.write, needed for pushes"), std::string::npos)
        << r.err;
    EXPECT_EQ((r.out + r.err).find("not-a-token-of-this-location"), std::string::npos);
}

TEST_F(online_check_test, ghl_unreachable_is_not_a_verdict) {
    const auto r = check("pit-secret-online", "http://127.0.0.1:" + std::to_string(free_port()));
    EXPECT_EQ(r.exit_code, 69) << r.out << r.err;
    EXPECT_NE(r.out.find("not verified"), std::string::npos) << r.out;
}

TEST_F(online_check_test, a_read_only_token_lacks_what_pushes_need_and_suits_pull_only) {
    const auto both = check("pit-read-only");
    EXPECT_EQ(both.exit_code, 78) << both.out << both.err;
    EXPECT_NE(both.err.find("the token lacks contacts.write, needed for pushes"), std::string::npos)
        << both.err;
    EXPECT_NE(both.err.find("the token lacks locations/customFields.readonly"), std::string::npos)
        << both.err;
    EXPECT_EQ(both.err.find("lacks contacts.readonly"), std::string::npos) << both.err;
    EXPECT_EQ(sim_->state().at("contacts").as_array().size(), 0u);

    // Pull only: the write scope is not needed, so it is neither probed nor missing (the custom
    // field map still needs its scope).
    const auto pull = check("pit-read-only", "", "direction = \"pull\"\n");
    EXPECT_EQ(pull.out.find("scope contacts.write"), std::string::npos) << pull.out;
    EXPECT_EQ(pull.err.find("contacts.write"), std::string::npos) << pull.err;
    EXPECT_NE(pull.out.find("scope contacts.readonly"), std::string::npos) << pull.out;
}
