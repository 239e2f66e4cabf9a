// [rules.field_map] by custom field name, on the real binary against ghl-sim: `fields` lists the
// location's custom fields with what maps to them; the daemon resolves names at start, pushes
// values to the right custom field id, refuses a value of the wrong type at intake naming both,
// pulls a remote change of the field into the mirror; an unknown name refuses to start (78)
// naming the key; a start without GHL resolves from the cached listing.
#include "ghl_sim.hpp"
#include "support/local_http.hpp"
#include "support/test_support.hpp"

#include <SQLiteCpp/Database.h>
#include <arpa/inet.h>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <csignal>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

using namespace speak4::testing;
namespace bj = boost::json;

namespace {

using answer = local_answer;

answer post_event(unsigned short port, const std::string& body, const std::string& token) {
    return local_request(port, "POST", "/v1/events", body, token);
}

class field_map_test : public ::testing::Test {
protected:
    void SetUp() override {
        speak4::sim::options so;
        so.rate_limit = false;
        so.static_tokens = {"pit-secret"};
        sim_ = std::make_unique<speak4::sim::server>(so);
        sim_->start();
        score_id_ = sim_->seed_custom_field({{"name", "Lead score"}, {"dataType", "NUMERICAL"}});
        colour_id_ = sim_->seed_custom_field({{"name", "Favourite colour"},
                                              {"dataType", "SINGLE_OPTIONS"},
                                              {"picklistOptions", bj::array{"red", "blue"}}});
        sim_->seed_custom_field(
            {{"name", "Lead score"}, {"dataType", "NUMERICAL"}, {"model", "opportunity"}});
        port_ = free_port();
        write_file(dir_ / "ghl-token", "pit-secret\n", 0600);
        write_file(dir_ / "api-token", "api-secret\n", 0600);
        write_config("score = \"Lead score\"\ncolour = \"customFields.favourite_colour\"\n");
    }
    void TearDown() override { sim_->stop(); }

    void write_config(const std::string& field_map, const std::string& base_url = "") {
        write_file(
            dir_ / "speak4-sync.toml",
            "[database]\npath = \"" + (dir_ / "s.db").string() + "\"\n[ghl]\nbase_url = \"" +
                (base_url.empty() ? sim_->base_url() : base_url) + "\"\nlocation_id = \"" +
                sim_->location_id() + "\"\ntoken_file = \"" + (dir_ / "ghl-token").string() +
                "\"\ntimeout_ms = 2000\n[api]\nlisten = \"127.0.0.1:" + std::to_string(port_) +
                "\"\ntoken_file = \"" + (dir_ / "api-token").string() +
                "\"\n[sync]\ncoalesce_ms = 10\npoll_interval_seconds = 1\n"
                "[logging]\nlevel = \"warn\"\n[rules.field_map]\n" +
                field_map);
    }
    run_result cli(std::vector<std::string> args, const std::string& in = "") {
        args.insert(args.begin(), {"--config", (dir_ / "speak4-sync.toml").string()});
        return run_cli(args, in);
    }
    std::unique_ptr<child_process> start() {
        return std::make_unique<child_process>(
            binary_path().string(),
            std::vector<std::string>{"--config", (dir_ / "speak4-sync.toml").string(), "run"},
            dir_ / "daemon.out", dir_ / "daemon.err");
    }
    bool api_up() { return post_event(port_, "{}", "api-secret").status == 400; }

    /// The GHL contact's value of custom field `id`, or null.
    bj::value sim_value(const std::string& email, const std::string& id) {
        const bj::value state = sim_->state(); // kept: a temporary would dangle in the loop
        for (const auto& c : state.at("contacts").as_array()) {
            const auto& o = c.as_object();
            if (!o.contains("email") || o.at("email") != bj::value(email))
                continue;
            if (const auto* cfs = o.if_contains("customFields"))
                for (const auto& f : cfs->as_array())
                    if (f.as_object().at("id") == bj::value(id))
                        return f.as_object().at("value");
        }
        return nullptr;
    }
    /// The mirror's value of custom field `id` for the contact s4-1, or null.
    bj::value mirror_value(const std::string& id) {
        try {
            SQLite::Database db((dir_ / "s.db").string(), SQLite::OPEN_READONLY);
            db.setBusyTimeout(5000);
            SQLite::Statement q(db, "SELECT custom_fields FROM contacts WHERE speak4_id = 's4-1'");
            if (!q.executeStep())
                return nullptr;
            const auto o = bj::parse(q.getColumn(0).getString()).as_object();
            return o.contains(id) ? o.at(id) : bj::value(nullptr);
        } catch (const std::exception&) {
            return nullptr;
        }
    }

    temp_dir dir_;
    std::unique_ptr<speak4::sim::server> sim_;
    std::string score_id_, colour_id_;
    unsigned short port_ = 0;
};

} // namespace

TEST_F(field_map_test, fields_lists_the_location_custom_fields_and_what_maps_to_them) {
    const auto r = cli({"fields", "--json"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto list = bj::parse(r.out).as_object().at("customFields").as_array();
    ASSERT_EQ(list.size(), 2u) << "contact fields only: " << r.out;
    EXPECT_EQ(list[0].at("id"), bj::value(score_id_));
    EXPECT_EQ(list[0].at("name"), bj::value("Lead score"));
    EXPECT_EQ(list[0].at("fieldKey"), bj::value("contact.lead_score"));
    EXPECT_EQ(list[0].at("dataType"), bj::value("NUMERICAL"));
    EXPECT_EQ(list[0].at("mapped_from"), bj::value("score"));
    EXPECT_EQ(list[1].at("mapped_from"), bj::value("colour"));
    const auto table = cli({"fields"});
    ASSERT_EQ(table.exit_code, 0) << table.err;
    EXPECT_NE(table.out.find("Favourite colour"), std::string::npos) << table.out;
    EXPECT_NE(table.out.find("2 custom fields"), std::string::npos) << table.out;
    EXPECT_EQ(table.out.find("pit-secret"), std::string::npos);
}

TEST_F(field_map_test, names_push_and_pull_the_right_custom_field_and_types_are_checked) {
    auto d = start();
    ASSERT_TRUE(wait_until([&] { return api_up() || !d->running(); }, 20000))
        << read_file(dir_ / "daemon.err");
    ASSERT_TRUE(d->running()) << read_file(dir_ / "daemon.err");

    auto ok = post_event(port_,
                         R"({"type":"contact.created","contact":{"speak4_id":"s4-1",)"
                         R"("email":"ada@example.com","score":42,"colour":"blue"}})",
                         "api-secret");
    ASSERT_EQ(ok.status, 202) << ok.body;
    ASSERT_TRUE(wait_until([&] { return sim_value("ada@example.com", score_id_) == 42; }, 20000))
        << read_file(dir_ / "daemon.err");
    EXPECT_EQ(sim_value("ada@example.com", colour_id_), bj::value("blue"));

    const auto bad = post_event(port_,
                                R"({"type":"contact.updated","contact":{"speak4_id":"s4-1",)"
                                R"("score":"lots"}})",
                                "api-secret");
    EXPECT_EQ(bad.status, 400);
    EXPECT_NE(bad.body.find("contact.score maps to the custom field \\\"Lead score\\\" "
                            "(NUMERICAL), which takes a number"),
              std::string::npos)
        << bad.body;
    const auto bad_option = post_event(port_,
                                       R"({"type":"contact.updated","contact":{"speak4_id":)"
                                       R"("s4-1","colour":"green"}})",
                                       "api-secret");
    EXPECT_EQ(bad_option.status, 400) << bad_option.body;

    // A change made in GHL comes back into the mirror under the same id.
    std::string ghl_id;
    const bj::value state = sim_->state();
    for (const auto& c : state.at("contacts").as_array())
        if (c.as_object().at("email") == bj::value("ada@example.com"))
            ghl_id = std::string(c.as_object().at("id").as_string());
    ASSERT_FALSE(ghl_id.empty());
    sim_->update_contact(
        ghl_id, {{"customFields", bj::array{bj::object{{"id", score_id_}, {"value", 77}}}}});
    EXPECT_TRUE(wait_until([&] { return mirror_value(score_id_) == 77; }, 20000))
        << "mirror has " << bj::serialize(mirror_value(score_id_));

    d->signal(SIGTERM);
    EXPECT_EQ(d->wait(20000), 0) << read_file(dir_ / "daemon.err");

    // GHL unreachable now: the next start resolves the names from the cached listing.
    write_config("score = \"Lead score\"\ncolour = \"customFields.favourite_colour\"\n",
                 "http://127.0.0.1:" + std::to_string(free_port()));
    auto offline = start();
    EXPECT_TRUE(wait_until([&] { return api_up() || !offline->running(); }, 20000));
    EXPECT_TRUE(offline->running()) << read_file(dir_ / "daemon.err");
    EXPECT_EQ(post_event(port_,
                         R"({"type":"contact.updated","contact":{"speak4_id":"s4-1","score":"x"}})",
                         "api-secret")
                  .status,
              400)
        << "types come from the cache too";
    offline->signal(SIGTERM);
    EXPECT_EQ(offline->wait(20000), 0);
}

TEST_F(field_map_test, an_unknown_or_ambiguous_name_refuses_to_start_naming_it) {
    write_config("score = \"Lead Scroe\"\n");
    const auto r = cli({"run"});
    EXPECT_EQ(r.exit_code, 78) << r.err;
    EXPECT_NE(r.err.find("rules.field_map.score: \"Lead Scroe\" is neither a GHL contact field "
                         "nor the name of a contact custom field of the location"),
              std::string::npos)
        << r.err;
    sim_->seed_custom_field({{"name", "Favourite colour"}, {"dataType", "TEXT"}});
    write_config("colour = \"Favourite colour\"\n");
    const auto r2 = cli({"run"});
    EXPECT_EQ(r2.exit_code, 78) << r2.err;
    EXPECT_NE(r2.err.find("\"Favourite colour\" is ambiguous"), std::string::npos) << r2.err;
}
