// Configuration (DESIGN §6): defaults, every key read back, every bad value refused with the key
// and line named, relative paths, the shipped example configs, and secret loading.

#include "core/config.hpp"
#include "core/error.hpp"
#include "support/test_support.hpp"

#include <cstdlib>
#include <gtest/gtest.h>
#include <optional>
#include <set>
#include <string>
#include <toml++/toml.h>
#include <vector>

namespace speak4 {
namespace {

namespace fs = std::filesystem;
using speak4::testing::temp_dir;
using speak4::testing::write_file;

// Sets (or unsets) an environment variable for one test and restores it afterwards.
class env_guard {
public:
    explicit env_guard(std::string name)
        : name_(std::move(name)) {
        if (const char* v = std::getenv(name_.c_str()))
            old_ = v;
    }
    ~env_guard() {
        if (old_)
            ::setenv(name_.c_str(), old_->c_str(), 1);
        else
            ::unsetenv(name_.c_str());
    }
    env_guard(const env_guard&) = delete;
    env_guard& operator=(const env_guard&) = delete;
    void set(const std::string& value) { ::setenv(name_.c_str(), value.c_str(), 1); }
    void unset() { ::unsetenv(name_.c_str()); }

private:
    std::string name_;
    std::optional<std::string> old_;
};

config parse(std::string_view text, const fs::path& base_dir = "/etc/speak4-sync") {
    return parse_config(text, "test.toml", base_dir);
}

// ---------------------------------------------------------------------------------------------
// Bad configs: each names the key, the exact line and the problem.

struct bad_case {
    const char* name;
    const char* toml;
    const char* key;
    int line;
    const char* message; // a substring of what()
};

std::ostream& operator<<(std::ostream& os, const bad_case& c) {
    return os << c.name;
}

const bad_case bad_cases[] = {
    // unknown names
    {"unknown_key_in_section", "[ghl]\nbase_url = \"https://x.example\"\ntokn_file = \"t\"\n",
     "ghl.tokn_file", 3, "unknown key"},
    {"unknown_section", "[database]\npath = \"/x.db\"\n\n[sink]\na = 1\n", "sink", 4,
     "unknown section"},
    {"unknown_root_key", "# comment\nverbose = true\n", "verbose", 2, "unknown key"},
    {"unknown_dotted_key", "ghl.timeoutms = 5\n", "ghl.timeoutms", 1, "unknown key"},
    {"unknown_key_in_rules", "[rules]\nreminder = 5\n", "rules.reminder", 2, "unknown key"},
    {"secret_inline_is_unknown", "[ghl]\n\ntoken = \"pit-123\"\n", "ghl.token", 3, "unknown key"},
    // enums
    {"bad_conflict", "[sync]\nconflict = \"newest\"\n", "sync.conflict", 2,
     "must be one of remote_wins, local_wins, newest_wins"},
    {"bad_list_mode", "[sync]\npoll_interval_seconds = 5\nlist_mode = \"scan\"\n", "sync.list_mode",
     3, "must be one of search, legacy"},
    {"bad_fetch_children", "[sync]\nfetch_children = \"some\"\n", "sync.fetch_children", 2,
     "must be one of all, on_demand"},
    {"bad_on_duplicate", "[sync]\non_duplicate = \"merge\"\n", "sync.on_duplicate", 2,
     "must be one of conflict, link"},
    {"bad_auth", "[ghl]\nauth = \"basic\"\n", "ghl.auth", 2, "must be one of private_token, oauth"},
    {"bad_log_level", "[logging]\nlevel = \"verbose\"\n", "logging.level", 2,
     "must be one of trace, debug, info, warn, error, critical, off"},
    {"bad_log_format", "[logging]\nlevel = \"info\"\nformat = \"xml\"\n", "logging.format", 3,
     "must be one of json, text"},
    {"enum_case_matters", "[sync]\nconflict = \"Remote_Wins\"\n", "sync.conflict", 2,
     "must be one of"},
    // ranges
    {"timeout_zero", "[ghl]\ntimeout_ms = 0\n", "ghl.timeout_ms", 2,
     "must be between 1 and 600000"},
    {"timeout_too_big", "[ghl]\ntimeout_ms = 600001\n", "ghl.timeout_ms", 2,
     "must be between 1 and 600000"},
    {"max_concurrency_65", "[ghl]\nmax_concurrency = 65\n", "ghl.max_concurrency", 2,
     "must be between 1 and 64"},
    {"max_concurrency_0", "[ghl]\nmax_concurrency = 0\n", "ghl.max_concurrency", 2,
     "must be between 1 and 64"},
    {"burst_zero", "[rate_limit]\nburst = 0\n", "rate_limit.burst", 2, "must be at least 1"},
    {"burst_over_int", "[rate_limit]\nburst = 3000000000\n", "rate_limit.burst", 2,
     "must be at most 2147483647"},
    {"window_zero", "[rate_limit]\nwindow_seconds = 0\n", "rate_limit.window_seconds", 2,
     "must be at least 1"},
    {"daily_negative", "[rate_limit]\ndaily = -1\n", "rate_limit.daily", 2, "must be at least 1"},
    {"base_ms_zero", "[retry]\nbase_ms = 0\n", "retry.base_ms", 2, "must be at least 1"},
    {"max_attempts_1001", "[retry]\nmax_attempts = 1001\n", "retry.max_attempts", 2,
     "must be between 1 and 1000"},
    {"max_ms_below_base_ms", "[retry]\nbase_ms = 1000\nmax_ms = 500\n", "retry.max_ms", 3,
     "must be at least retry.base_ms (1000)"},
    {"base_ms_above_default_max", "[retry]\nmax_attempts = 3\nbase_ms = 400000\n", "retry.base_ms",
     3, "must be at most retry.max_ms (300000)"},
    {"poll_interval_zero", "[sync]\npoll_interval_seconds = 0\n", "sync.poll_interval_seconds", 2,
     "must be at least 1"},
    {"full_sweep_negative", "[sync]\nfull_sweep_hours = -1\n", "sync.full_sweep_hours", 2,
     "must be at least 0"},
    {"coalesce_negative", "[sync]\ncoalesce_ms = -5\n", "sync.coalesce_ms", 2,
     "must be at least 0"},
    {"audit_retention_zero", "[sync]\naudit_retention_days = 0\n", "sync.audit_retention_days", 2,
     "must be at least 1"},
    {"reminder_negative", "[rules]\nappointment_reminder_minutes = -10\n",
     "rules.appointment_reminder_minutes", 2, "must be at least 0"},
    {"max_age_zero", "[webhooks]\nenabled = true\nmax_age_seconds = 0\n",
     "webhooks.max_age_seconds", 3, "must be at least 1"},
    {"direction_bad", "[sync]\ndirection = \"sideways\"\n", "sync.direction", 2,
     "must be one of both, pull, push"},
    {"entities_without_contacts", "[sync]\nentities = [\"tasks\"]\n", "sync.entities", 2,
     "must list contacts"},
    {"entities_unknown", "[sync]\nentities = [\"contacts\", \"deals\"]\n", "sync.entities", 2,
     "has \"deals\"; each entry must be one of contacts, tasks, notes, appointments"},
    {"alerts_check_zero", "[alerts]\ncheck_interval_seconds = 0\n", "alerts.check_interval_seconds",
     2, "must be between 1 and 3600"},
    {"alerts_per_hour_zero", "[alerts]\nmax_per_hour = 0\n", "alerts.max_per_hour", 2,
     "must be between 1 and 3600"},
    {"alerts_url_file_int", "[alerts]\nwebhook_url_file = 3\n", "alerts.webhook_url_file", 2,
     "must be a string"},
    // types
    {"int_as_string", "[ghl]\ntimeout_ms = \"30000\"\n", "ghl.timeout_ms", 2, "must be an integer"},
    {"int_as_float", "[ghl]\ntimeout_ms = 1.5\n", "ghl.timeout_ms", 2, "must be an integer"},
    {"int_as_date", "[sync]\ncoalesce_ms = 1979-05-27\n", "sync.coalesce_ms", 2,
     "must be an integer"},
    {"string_as_int", "[ghl]\nbase_url = 5\n", "ghl.base_url", 2, "must be a string"},
    {"path_as_array", "[database]\npath = [\"a\"]\n", "database.path", 2, "must be a string"},
    {"bool_as_string", "[webhooks]\nenabled = \"yes\"\n", "webhooks.enabled", 2,
     "must be a boolean"},
    {"bool_as_int", "[rules]\nbusiness_contacts = 1\n", "rules.business_contacts", 2,
     "must be a boolean"},
    {"section_as_value", "database = \"/x.db\"\n", "database", 1, "must be a table"},
    {"section_as_array_of_tables", "\n[[ghl]]\ntimeout_ms = 5\n", "ghl", 2, "must be a table"},
    {"tag_routes_as_string", "[rules]\ntag_routes = \"vip\"\n", "rules.tag_routes", 2,
     "must be a table"},
    {"inline_table_bad_value", "sync = { conflict = \"x\" }\n", "sync.conflict", 1,
     "must be one of"},
    // ghl.base_url
    {"http_not_loopback", "[ghl]\nbase_url = \"http://services.leadconnectorhq.com\"\n",
     "ghl.base_url", 2, "plain http:// is allowed only for a loopback host"},
    {"http_loopback_lookalike", "[ghl]\nbase_url = \"http://127.0.0.1.evil.example\"\n",
     "ghl.base_url", 2, "loopback"},
    {"http_private_ip", "[ghl]\nbase_url = \"http://10.0.0.1:8080\"\n", "ghl.base_url", 2,
     "loopback"},
    {"ftp_scheme", "[ghl]\nbase_url = \"ftp://x.example\"\n", "ghl.base_url", 2,
     "must start with https:// or http://"},
    {"uppercase_scheme", "[ghl]\nbase_url = \"HTTPS://x.example\"\n", "ghl.base_url", 2,
     "must start with https:// or http://"},
    {"base_url_userinfo", "[ghl]\nbase_url = \"https://u:p@x.example\"\n", "ghl.base_url", 2,
     "user info"},
    {"base_url_no_host", "[ghl]\nbase_url = \"https://\"\n", "ghl.base_url", 2, "no host"},
    {"base_url_bad_port", "[ghl]\nbase_url = \"https://x.example:99999\"\n", "ghl.base_url", 2,
     "invalid port"},
    {"base_url_v6_unbracketed", "[ghl]\nbase_url = \"http://::1:18080\"\n", "ghl.base_url", 2,
     "must be in brackets"},
    {"base_url_space", "[ghl]\nbase_url = \"https://x.example/a b\"\n", "ghl.base_url", 2,
     "spaces"},
    {"base_url_query", "[ghl]\nbase_url = \"https://x.example/?a=1\"\n", "ghl.base_url", 2,
     "query"},
    {"api_version_empty", "[ghl]\napi_version = \"\"\n", "ghl.api_version", 2, "non-empty"},
    {"location_id_slash", "[ghl]\nlocation_id = \"abc/../x\"\n", "ghl.location_id", 2,
     "only letters, digits"},
    // api.listen
    {"listen_no_port", "[api]\nlisten = \"127.0.0.1\"\n", "api.listen", 2, "port is missing"},
    {"listen_port_zero", "[api]\nlisten = \"127.0.0.1:0\"\n", "api.listen", 2,
     "between 1 and 65535"},
    {"listen_port_big", "[api]\nlisten = \"127.0.0.1:65536\"\n", "api.listen", 2,
     "between 1 and 65535"},
    {"listen_port_text", "[api]\nlisten = \"localhost:http\"\n", "api.listen", 2,
     "between 1 and 65535"},
    {"listen_v6_unbracketed", "[api]\nlisten = \"::1:8737\"\n", "api.listen", 2, "brackets"},
    {"listen_v6_unclosed", "[api]\nlisten = \"[::1:8737\"\n", "api.listen", 2, "unclosed"},
    {"listen_v6_invalid", "[api]\nlisten = \"[zz::1]:8737\"\n", "api.listen", 2, "invalid IPv6"},
    {"listen_bad_ipv4", "[api]\nlisten = \"999.1.1.1:8737\"\n", "api.listen", 2, "invalid host"},
    {"listen_empty", "[api]\nlisten = \"\"\n", "api.listen", 2, "not empty"},
    {"listen_v6_no_port", "[api]\nlisten = \"[::1]\"\n", "api.listen", 2, "port is missing"},
    {"listen_text_after_bracket", "[api]\nlisten = \"[::1]8737\"\n", "api.listen", 2,
     "unexpected text after ']'"},
    {"listen_no_host", "[api]\nlisten = \":8737\"\n", "api.listen", 2, "host is missing"},
    // rules
    {"field_map_empty_target", "[rules.field_map]\nmobile = \"\"\n", "rules.field_map.mobile", 2,
     "must be a GHL contact field"},
    {"field_map_control_target", "[rules.field_map]\nmobile = \"Mob\\tile\"\n",
     "rules.field_map.mobile", 2, "without control characters"},
    {"field_map_custom_no_id", "[rules.field_map]\nscore = \"customFields.\"\n",
     "rules.field_map.score", 2, "needs the custom field's id"},
    {"field_map_not_string", "[rules.field_map]\nscore = 5\n", "rules.field_map.score", 2,
     "must be a string"},
    {"field_map_duplicate_target", "[rules.field_map]\nmobile = \"phone\"\ncell = \"phone\"\n",
     "rules.field_map.cell", 3, "phone is already the target of rules.field_map.mobile"},
    {"tag_route_empty", "[rules.tag_routes]\nvip = \"\"\n", "rules.tag_routes.vip", 2, "non-empty"},
    {"tag_route_not_string", "[rules]\n[rules.tag_routes]\nvip = true\n", "rules.tag_routes.vip", 3,
     "must be a string"},
    {"tag_route_quoted_key", "[rules.tag_routes]\n\"hot lead\" = 1\n",
     "rules.tag_routes.\"hot lead\"", 2, "must be a string"},
    // retry.give_up_after, [breaker], lanes
    {"give_up_after_no_unit", "[retry]\ngive_up_after = \"24\"\n", "retry.give_up_after", 2,
     "must be a duration such as"},
    {"give_up_after_bad_unit", "[retry]\ngive_up_after = \"3w\"\n", "retry.give_up_after", 2,
     "must be a duration such as"},
    {"give_up_after_zero", "[retry]\ngive_up_after = 0\n", "retry.give_up_after", 2,
     "must be between 1 and"},
    {"give_up_after_bool", "[retry]\ngive_up_after = true\n", "retry.give_up_after", 2,
     "must be a duration such as"},
    {"breaker_percent", "[breaker]\nfailure_percent = 0\n", "breaker.failure_percent", 2,
     "must be between 1 and 100"},
    {"breaker_probe_max_below", "[breaker]\nprobe_interval_ms = 5000\nprobe_max_ms = 1000\n",
     "breaker.probe_max_ms", 3, "must be at least breaker.probe_interval_ms (5000)"},
    {"breaker_min_above_window", "[breaker]\nwindow_requests = 5\nmin_requests = 6\n",
     "breaker.min_requests", 3, "must be at most breaker.window_requests (5)"},
    {"pull_share_100", "[rate_limit]\npull_share_percent = 100\n", "rate_limit.pull_share_percent",
     2, "must be between 1 and 99"},
    {"index_lag_negative", "[sync]\nindex_lag_seconds = -1\n", "sync.index_lag_seconds", 2,
     "must be between 0 and 86400"},
    // database
    {"database_path_empty", "[database]\npath = \"\"\n", "database.path", 2, "must not be empty"},
    // TOML syntax: no key, but the line
    {"syntax_missing_value", "[ghl]\ntimeout_ms = 5\nbase_url = \n", "", 3, "invalid TOML"},
    {"syntax_duplicate_key", "[sync]\ncoalesce_ms = 1\ncoalesce_ms = 2\n", "", 3, "invalid TOML"},
    {"syntax_duplicate_table", "[api]\nlisten = \"127.0.0.1:1\"\n\n[api]\n", "", 4, "invalid TOML"},
    {"syntax_unterminated_string", "\n\n[logging]\nlevel = \"info\n", "", 4, "invalid TOML"},
};

class bad_config : public ::testing::TestWithParam<bad_case> {};

TEST_P(bad_config, names_key_line_and_problem) {
    const bad_case& c = GetParam();
    try {
        (void)parse(c.toml);
        FAIL() << "accepted:\n" << c.toml;
    } catch (const config_error& e) {
        const std::string what = e.what();
        EXPECT_EQ(e.key(), c.key) << what;
        EXPECT_EQ(e.line(), c.line) << what;
        EXPECT_NE(what.find(c.message), std::string::npos) << what;
        // "ORIGIN:LINE: KEY: problem" (no KEY part for TOML syntax errors).
        std::string prefix = "test.toml:" + std::to_string(c.line) + ": ";
        if (*c.key)
            prefix += std::string(c.key) + ": ";
        EXPECT_EQ(what.rfind(prefix, 0), 0u) << what;
        EXPECT_EQ(what.find('\n'), std::string::npos) << "one problem, one line: " << what;
    }
}

INSTANTIATE_TEST_SUITE_P(config, bad_config, ::testing::ValuesIn(bad_cases),
                         [](const ::testing::TestParamInfo<bad_case>& i) {
                             return std::string(i.param.name);
                         });

TEST(config, table_has_at_least_twenty_cases) {
    EXPECT_GE(std::size(bad_cases), 20u);
}

TEST(config, message_matches_the_documented_example) {
    std::string text;
    for (int i = 1; i < 12; ++i)
        text += "# line " + std::to_string(i) + "\n";
    text += "sync.conflict = \"first\"\n";
    try {
        (void)parse_config(text, "speak4-sync.toml", "/etc");
        FAIL();
    } catch (const config_error& e) {
        EXPECT_STREQ(e.what(), "speak4-sync.toml:12: sync.conflict: must be one of remote_wins, "
                               "local_wins, newest_wins");
    }
}

TEST(config, every_problem_listed_first_by_line) {
    const char* text = "[sync]\n"
                       "conflict = \"x\"\n" // line 2
                       "[ghl]\n"
                       "timeout_ms = 0\n" // line 4
                       "bogus = 1\n";     // line 5
    try {
        (void)parse(text);
        FAIL();
    } catch (const config_error& e) {
        EXPECT_EQ(e.key(), "sync.conflict");
        EXPECT_EQ(e.line(), 2);
        EXPECT_STREQ(e.what(),
                     "test.toml:2: sync.conflict: must be one of remote_wins, local_wins, "
                     "newest_wins\n"
                     "test.toml:4: ghl.timeout_ms: must be between 1 and 600000\n"
                     "test.toml:5: ghl.bogus: unknown key (expected one of: base_url, "
                     "api_version, location_id, auth, token_file, client_id, "
                     "client_secret_file, ca_file, timeout_ms, max_concurrency)");
    }
}

TEST(config, unknown_key_message_does_not_echo_the_value) {
    try {
        (void)parse("[ghl]\ntoken = \"pit-supersecret-value\"\n");
        FAIL();
    } catch (const config_error& e) {
        EXPECT_EQ(std::string(e.what()).find("supersecret"), std::string::npos) << e.what();
    }
}

// ---------------------------------------------------------------------------------------------
// Good configs.

TEST(config, empty_file_gives_defaults) {
    const config c = parse("", "/etc/speak4-sync");
    config expected;
    expected.base_dir = "/etc/speak4-sync";
    EXPECT_TRUE(c == expected);

    EXPECT_EQ(c.database.path, "/var/lib/speak4-sync/speak4-sync.db");
    EXPECT_EQ(c.ghl.base_url, "https://services.leadconnectorhq.com");
    EXPECT_EQ(c.ghl.api_version, "2021-07-28");
    EXPECT_EQ(c.ghl.location_id, "");
    EXPECT_EQ(c.ghl.auth, auth_mode::private_token);
    EXPECT_TRUE(c.ghl.token_file.empty());
    EXPECT_TRUE(c.ghl.client_id.empty());
    EXPECT_TRUE(c.ghl.client_secret_file.empty());
    EXPECT_TRUE(c.ghl.ca_file.empty());
    EXPECT_EQ(c.ghl.timeout_ms, 30000);
    EXPECT_EQ(c.ghl.max_concurrency, 4);
    EXPECT_EQ(c.rate_limit.burst, 100);
    EXPECT_EQ(c.rate_limit.window_seconds, 10);
    EXPECT_EQ(c.rate_limit.daily, 200000);
    EXPECT_EQ(c.retry.base_ms, 500);
    EXPECT_EQ(c.retry.max_ms, 300000);
    EXPECT_EQ(c.retry.max_attempts, 12);
    EXPECT_EQ(c.sync.poll_interval_seconds, 60);
    EXPECT_EQ(c.sync.full_sweep_hours, 24);
    EXPECT_EQ(c.sync.conflict, conflict_policy::newest_wins);
    EXPECT_EQ(c.sync.coalesce_ms, 250);
    EXPECT_EQ(c.sync.list_mode, list_mode::search);
    EXPECT_EQ(c.sync.fetch_children, fetch_children::all);
    EXPECT_EQ(c.sync.on_duplicate, on_duplicate::conflict);
    EXPECT_EQ(c.sync.audit_retention_days, 30);
    EXPECT_EQ(c.api.listen, "127.0.0.1:8737");
    EXPECT_TRUE(c.api.token_file.empty());
    EXPECT_FALSE(c.webhooks.enabled);
    EXPECT_TRUE(c.webhooks.public_key_file.empty());
    EXPECT_TRUE(c.webhooks.rsa_public_key_file.empty());
    EXPECT_EQ(c.webhooks.max_age_seconds, 300);
    EXPECT_EQ(c.logging.level, log::level::info);
    EXPECT_EQ(c.logging.format, log::format::json);
    EXPECT_EQ(c.rules.appointment_reminder_minutes, 60);
    EXPECT_FALSE(c.rules.business_contacts);
    EXPECT_TRUE(c.rules.tag_routes.empty());
    EXPECT_TRUE(c.rules.field_map.empty());
}

TEST(config, comments_and_empty_sections_give_defaults) {
    const config c = parse("# nothing\n[database]\n[ghl]\n[rate_limit]\n[retry]\n[sync]\n[api]\n"
                           "[webhooks]\n[logging]\n[rules]\n[rules.tag_routes]\n"
                           "[rules.field_map]\n",
                           "");
    EXPECT_TRUE(c == config{});
}

TEST(config, every_key_read_back) {
    const char* text = R"(
[database]
path = "/srv/s4/mirror.db"

[ghl]
base_url = "https://ghl.example.com:8443/prefix/"
api_version = "2099-01-01"
location_id = "ve9EPM428h8vShlRW1KT"
auth = "oauth"
token_file = "/run/secrets/token"
client_id = "66a0-abc"
client_secret_file = "/run/secrets/client"
ca_file = "/etc/ssl/extra.pem"
timeout_ms = 600000
max_concurrency = 64

[rate_limit]
burst = 50
window_seconds = 20
daily = 5000000000

[retry]
base_ms = 100
max_ms = 100
max_attempts = 1000

[sync]
poll_interval_seconds = 1
full_sweep_hours = 0
conflict = "remote_wins"
coalesce_ms = 0
list_mode = "legacy"
fetch_children = "on_demand"
audit_retention_days = 365

[api]
listen = "[::1]:9000"
token_file = "/run/secrets/api"

[webhooks]
enabled = true
public_key_file = "/etc/s4/ghl-ed25519.pem"
rsa_public_key_file = "/etc/s4/ghl-rsa.pem"
max_age_seconds = 60

[logging]
level = "trace"
format = "text"

[rules]
appointment_reminder_minutes = 0
business_contacts = true

[rules.tag_routes]
vip = "priority-callback"
"hot lead" = "sales"

[rules.field_map]
mobile = "phone"
lead_score = "customFields.Jx8aX2kWq0oHvZ3uLw1d"
surname = "lastName"
)";
    const config c = parse(text);
    EXPECT_EQ(c.database.path, "/srv/s4/mirror.db");
    EXPECT_EQ(c.ghl.base_url, "https://ghl.example.com:8443/prefix"); // trailing '/' dropped
    EXPECT_EQ(c.ghl.api_version, "2099-01-01");
    EXPECT_EQ(c.ghl.location_id, "ve9EPM428h8vShlRW1KT");
    EXPECT_EQ(c.ghl.auth, auth_mode::oauth);
    EXPECT_EQ(c.ghl.token_file, "/run/secrets/token");
    EXPECT_EQ(c.ghl.client_id, "66a0-abc");
    EXPECT_EQ(c.ghl.client_secret_file, "/run/secrets/client");
    EXPECT_EQ(c.ghl.ca_file, "/etc/ssl/extra.pem");
    EXPECT_EQ(c.ghl.timeout_ms, 600000);
    EXPECT_EQ(c.ghl.max_concurrency, 64);
    EXPECT_EQ(c.rate_limit.burst, 50);
    EXPECT_EQ(c.rate_limit.window_seconds, 20);
    EXPECT_EQ(c.rate_limit.daily, 5000000000LL);
    EXPECT_EQ(c.retry.base_ms, 100);
    EXPECT_EQ(c.retry.max_ms, 100);
    EXPECT_EQ(c.retry.max_attempts, 1000);
    EXPECT_EQ(c.sync.poll_interval_seconds, 1);
    EXPECT_EQ(c.sync.full_sweep_hours, 0);
    EXPECT_EQ(c.sync.conflict, conflict_policy::remote_wins);
    EXPECT_EQ(c.sync.coalesce_ms, 0);
    EXPECT_EQ(c.sync.list_mode, list_mode::legacy);
    EXPECT_EQ(c.sync.fetch_children, fetch_children::on_demand);
    EXPECT_EQ(c.sync.audit_retention_days, 365);
    EXPECT_EQ(c.api.listen, "[::1]:9000");
    EXPECT_EQ(c.api.token_file, "/run/secrets/api");
    EXPECT_TRUE(c.webhooks.enabled);
    EXPECT_EQ(c.webhooks.public_key_file, "/etc/s4/ghl-ed25519.pem");
    EXPECT_EQ(c.webhooks.rsa_public_key_file, "/etc/s4/ghl-rsa.pem");
    EXPECT_EQ(c.webhooks.max_age_seconds, 60);
    EXPECT_EQ(c.logging.level, log::level::trace);
    EXPECT_EQ(c.logging.format, log::format::text);
    EXPECT_EQ(c.rules.appointment_reminder_minutes, 0);
    EXPECT_TRUE(c.rules.business_contacts);
    const std::map<std::string, std::string> routes = {{"vip", "priority-callback"},
                                                       {"hot lead", "sales"}};
    EXPECT_EQ(c.rules.tag_routes, routes);
    const std::map<std::string, std::string> fields = {
        {"mobile", "phone"},
        {"lead_score", "customFields.Jx8aX2kWq0oHvZ3uLw1d"},
        {"surname", "lastName"}};
    EXPECT_EQ(c.rules.field_map, fields);
}

TEST(config, every_enum_value_and_its_name) {
    for (auto v : {auth_mode::private_token, auth_mode::oauth}) {
        const config c = parse("ghl.auth = \"" + std::string(to_string(v)) + "\"\n");
        EXPECT_EQ(c.ghl.auth, v);
    }
    for (auto v : {conflict_policy::remote_wins, conflict_policy::local_wins,
                   conflict_policy::newest_wins}) {
        const config c = parse("sync.conflict = \"" + std::string(to_string(v)) + "\"\n");
        EXPECT_EQ(c.sync.conflict, v);
    }
    for (auto v : {list_mode::search, list_mode::legacy}) {
        const config c = parse("sync.list_mode = \"" + std::string(to_string(v)) + "\"\n");
        EXPECT_EQ(c.sync.list_mode, v);
    }
    for (auto v : {fetch_children::all, fetch_children::on_demand}) {
        const config c = parse("sync.fetch_children = \"" + std::string(to_string(v)) + "\"\n");
        EXPECT_EQ(c.sync.fetch_children, v);
    }
    EXPECT_EQ(to_string(auth_mode::oauth), "oauth");
    EXPECT_EQ(to_string(conflict_policy::local_wins), "local_wins");
    EXPECT_EQ(to_string(list_mode::legacy), "legacy");
    EXPECT_EQ(to_string(fetch_children::on_demand), "on_demand");
    for (auto v : {on_duplicate::conflict, on_duplicate::link}) {
        const config c = parse("sync.on_duplicate = \"" + std::string(to_string(v)) + "\"\n");
        EXPECT_EQ(c.sync.on_duplicate, v);
    }
    const std::pair<const char*, log::level> levels[] = {
        {"trace", log::level::trace}, {"debug", log::level::debug},
        {"info", log::level::info},   {"warn", log::level::warn},
        {"error", log::level::error}, {"critical", log::level::critical},
        {"off", log::level::off}};
    for (const auto& [name, lvl] : levels)
        EXPECT_EQ(parse("logging.level = \"" + std::string(name) + "\"\n").logging.level, lvl);
}

TEST(config, boundary_values_accepted) {
    const config lo = parse("[ghl]\ntimeout_ms = 1\nmax_concurrency = 1\n[retry]\nbase_ms = 1\n"
                            "max_ms = 1\nmax_attempts = 1\n[rate_limit]\nburst = 1\n"
                            "window_seconds = 1\ndaily = 1\n[webhooks]\nmax_age_seconds = 1\n");
    EXPECT_EQ(lo.ghl.timeout_ms, 1);
    EXPECT_EQ(lo.retry.max_attempts, 1);
    EXPECT_EQ(lo.rate_limit.daily, 1);
    EXPECT_EQ(lo.webhooks.max_age_seconds, 1);
}

TEST(config, base_url_loopback_and_https_forms) {
    const char* ok[] = {
        "https://services.leadconnectorhq.com",
        "https://x.example:443/",
        "http://127.0.0.1:18080",
        "http://127.8.9.10",
        "http://localhost:1",
        "http://LOCALHOST/",
        "http://[::1]:18080",
        "https://[2001:db8::1]:8443",
    };
    for (const char* url : ok)
        EXPECT_NO_THROW((void)parse("ghl.base_url = \"" + std::string(url) + "\"\n")) << url;
    EXPECT_EQ(parse("ghl.base_url = \"http://127.0.0.1:18080/\"\n").ghl.base_url,
              "http://127.0.0.1:18080");
    EXPECT_EQ(parse("ghl.base_url = \"https://x.example///\"\n").ghl.base_url, "https://x.example");
}

TEST(config, listen_forms) {
    for (const char* l : {"127.0.0.1:8737", "0.0.0.0:1", "localhost:65535", "[::1]:8737", "[::]:80",
                          "s4-host.internal:8080"})
        EXPECT_EQ(parse("api.listen = \"" + std::string(l) + "\"\n").api.listen, l);
}

TEST(config, empty_optional_strings_mean_unset) {
    const config c = parse("[ghl]\nlocation_id = \"\"\ntoken_file = \"\"\nclient_id = \"\"\n"
                           "client_secret_file = \"\"\nca_file = \"\"\n[api]\ntoken_file = \"\"\n"
                           "[webhooks]\npublic_key_file = \"\"\nrsa_public_key_file = \"\"\n",
                           "/etc/s4");
    config expected;
    expected.base_dir = "/etc/s4";
    EXPECT_TRUE(c == expected);
}

TEST(config, relative_paths_resolve_against_base_dir) {
    const config c = parse(R"(
database.path = "data/s4.db"
ghl.ca_file = "certs/ca.pem"
ghl.token_file = "ghl-token"
ghl.client_secret_file = "secrets/client"
api.token_file = "/abs/api-token"
webhooks.public_key_file = "keys/ed.pem"
webhooks.rsa_public_key_file = "/abs/rsa.pem"
)",
                           "/etc/s4");
    EXPECT_EQ(c.database.path, fs::path("/etc/s4/data/s4.db"));
    EXPECT_EQ(c.ghl.ca_file, fs::path("/etc/s4/certs/ca.pem"));
    EXPECT_EQ(c.webhooks.public_key_file, fs::path("/etc/s4/keys/ed.pem"));
    EXPECT_EQ(c.webhooks.rsa_public_key_file, fs::path("/abs/rsa.pem"));
    // Secret paths stay as written: load_secrets() resolves them (credentials directory first).
    EXPECT_EQ(c.ghl.token_file, fs::path("ghl-token"));
    EXPECT_EQ(c.ghl.client_secret_file, fs::path("secrets/client"));
    EXPECT_EQ(c.api.token_file, fs::path("/abs/api-token"));
    EXPECT_EQ(c.base_dir, fs::path("/etc/s4"));

    // Absolute paths are kept, and an empty base_dir leaves relative paths alone.
    EXPECT_EQ(parse("database.path = \"/x/y.db\"\n", "/etc/s4").database.path, "/x/y.db");
    EXPECT_EQ(parse("database.path = \"y.db\"\n", "").database.path, "y.db");

    env_guard creds("CREDENTIALS_DIRECTORY");
    creds.unset();
    EXPECT_EQ(resolve_secret_path(c, c.ghl.token_file, "ghl-token"), fs::path("/etc/s4/ghl-token"));
    EXPECT_EQ(resolve_secret_path(c, c.api.token_file, "api-token"), fs::path("/abs/api-token"));
    creds.set("/run/credentials/speak4-sync.service");
    EXPECT_EQ(resolve_secret_path(c, c.ghl.token_file, "ghl-token"),
              fs::path("/run/credentials/speak4-sync.service/ghl-token"));
}

// ---------------------------------------------------------------------------------------------
// Files.

TEST(config, load_config_sets_source_base_dir_and_origin) {
    temp_dir dir;
    fs::create_directories(dir / "etc");
    const fs::path file = dir / "etc" / "s4.toml";
    write_file(file, "database.path = \"../var/s4.db\"\n");
    const config c = load_config(file);
    EXPECT_EQ(c.source, file);
    EXPECT_EQ(c.base_dir, dir / "etc");
    EXPECT_EQ(c.database.path, dir / "etc" / "../var/s4.db");

    write_file(file, "[sync]\n\nconflict = 5\n");
    try {
        (void)load_config(file);
        FAIL();
    } catch (const config_error& e) {
        EXPECT_STREQ(e.what(), "s4.toml:3: sync.conflict: must be a string");
        EXPECT_EQ(e.key(), "sync.conflict");
        EXPECT_EQ(e.line(), 3);
    }
}

TEST(config, load_config_missing_file) {
    temp_dir dir;
    const fs::path file = dir / "nope.toml";
    try {
        (void)load_config(file);
        FAIL();
    } catch (const config_error& e) {
        const std::string what = e.what();
        EXPECT_EQ(e.key(), "");
        EXPECT_EQ(e.line(), 0);
        EXPECT_NE(what.find(file.string()), std::string::npos) << what;
        EXPECT_NE(what.find("No such file or directory"), std::string::npos) << what;
    }
}

TEST(config, load_config_refuses_a_directory) {
    temp_dir dir;
    try {
        (void)load_config(dir.path());
        FAIL();
    } catch (const config_error& e) {
        EXPECT_NE(std::string(e.what()).find("not a regular file"), std::string::npos);
    }
}

TEST(config, load_config_refuses_a_huge_file) {
    temp_dir dir;
    const fs::path file = dir / "big.toml";
    write_file(file, std::string(std::size_t{2} * 1024 * 1024, '#'));
    EXPECT_THROW((void)load_config(file), config_error);
}

// The keys DESIGN §6 names, by section: the example config must show every one.
const std::vector<std::pair<std::string, std::vector<std::string>>> design_keys = {
    {"database", {"path"}},
    {"ghl",
     {"base_url", "api_version", "location_id", "auth", "token_file", "client_id",
      "client_secret_file", "ca_file", "timeout_ms", "max_concurrency"}},
    {"rate_limit",
     {"burst", "window_seconds", "daily", "pull_share_percent", "push_reserve_percent"}},
    {"retry", {"base_ms", "max_ms", "max_attempts", "give_up_after"}},
    {"breaker",
     {"failure_percent", "window_requests", "min_requests", "window_seconds", "probe_interval_ms",
      "probe_max_ms"}},
    {"health", {"stall_after_seconds"}},
    {"sync",
     {"poll_interval_seconds", "full_sweep_hours", "conflict", "coalesce_ms", "index_lag_seconds",
      "list_mode", "fetch_children", "on_duplicate", "audit_retention_days", "direction",
      "entities", "mode", "inbox_retention_days", "changes_retention_days",
      "conflicts_retention_days"}},
    {"api", {"listen", "token_file"}},
    {"webhooks", {"enabled", "public_key_file", "rsa_public_key_file", "max_age_seconds"}},
    {"alerts",
     {"webhook_url_file", "check_interval_seconds", "oldest_pending_minutes", "stale_pull_polls",
      "max_per_hour"}},
    {"logging", {"level", "format"}},
    {"rules", {"appointment_reminder_minutes", "business_contacts", "tag_routes", "field_map"}},
};

TEST(config, example_config_documents_every_key_with_its_default) {
    const fs::path file = fs::path(SPEAK4_SOURCE_DIR) / "conf" / "speak4-sync.toml";
    config c;
    ASSERT_NO_THROW(c = load_config(file));
    config expected;
    expected.source = c.source;
    expected.base_dir = c.base_dir;
    EXPECT_TRUE(c == expected) << "conf/speak4-sync.toml must set every key to its default";

    const toml::table doc = toml::parse_file(file.string());
    for (const auto& [section, keys] : design_keys)
        for (const auto& key : keys)
            EXPECT_TRUE(doc.at_path(std::string(section).append(".").append(key))) << key;
}

TEST(config, demo_config_parses) {
    const fs::path dir = fs::path(SPEAK4_SOURCE_DIR) / "conf";
    config c;
    ASSERT_NO_THROW(c = load_config(dir / "demo.toml"));
    EXPECT_EQ(c.database.path, dir / "../demo-data/speak4-sync.db");
    EXPECT_EQ(c.ghl.base_url, "http://127.0.0.1:18080");
    EXPECT_EQ(c.ghl.location_id, "simLocation000000001");
    EXPECT_EQ(c.logging.format, log::format::text);
    EXPECT_GE(c.rules.tag_routes.size(), 2u);
    EXPECT_EQ(c.rules.field_map.at("mobile"), "phone");
    EXPECT_EQ(c.rules.field_map.at("lead_score"), "customFields.Jx8aX2kWq0oHvZ3uLw1d");
}

// ---------------------------------------------------------------------------------------------
// Secrets.

class secrets_test : public ::testing::Test {
protected:
    secrets_test()
        : creds_("CREDENTIALS_DIRECTORY") {
        creds_.unset();
    }

    config make(const std::string& text) { return parse_config(text, "s.toml", dir_.path()); }

    // Runs `f`, expects a config_error naming `key`, and checks no secret leaks into it.
    template <class F>
    std::string expect_error(F f, const std::string& key) {
        try {
            f();
            ADD_FAILURE() << "no error; expected one naming " << key;
            return {};
        } catch (const config_error& e) {
            std::string what = e.what();
            EXPECT_EQ(e.key(), key) << what;
            EXPECT_EQ(what.rfind(key + ": ", 0), 0u) << what;
            for (const std::string& s : written_)
                EXPECT_EQ(what.find(s), std::string::npos) << "secret value in: " << what;
            return what;
        }
    }

    fs::path secret_file(const fs::path& path, const std::string& value, unsigned mode) {
        write_file(path, value, mode);
        const std::string first_line = value.substr(0, value.find_first_of("\r\n"));
        if (!first_line.empty())
            written_.push_back(first_line);
        return path;
    }

    temp_dir dir_;
    env_guard creds_;
    std::vector<std::string> written_;
};

TEST_F(secrets_test, private_token_from_a_0600_file) {
    secret_file(dir_ / "tok", "pit-aaaa-1111\n", 0600);
    const config c = make("ghl.token_file = \"" + (dir_ / "tok").string() + "\"\n");
    const secrets s = load_secrets(c, true);
    EXPECT_EQ(s.ghl_token.reveal(), "pit-aaaa-1111");
    EXPECT_TRUE(s.client_secret.empty());
    EXPECT_TRUE(s.api_token.empty()); // optional
}

TEST_F(secrets_test, trailing_crlf_stripped_once) {
    secret_file(dir_ / "tok", "pit-bbbb\r\n", 0600);
    secret_file(dir_ / "api", "api-cccc\n\n", 0400);
    const config c = make("ghl.token_file = \"tok\"\napi.token_file = \"api\"\n");
    const secrets s = load_secrets(c, true);
    EXPECT_EQ(s.ghl_token.reveal(), "pit-bbbb");
    EXPECT_EQ(s.api_token.reveal(), "api-cccc\n");
}

TEST_F(secrets_test, relative_path_resolves_against_config_dir) {
    fs::create_directories(dir_ / "secrets");
    secret_file(dir_ / "secrets" / "tok", "pit-rel", 0600);
    const secrets s = load_secrets(make("ghl.token_file = \"secrets/tok\"\n"), true);
    EXPECT_EQ(s.ghl_token.reveal(), "pit-rel");
}

TEST_F(secrets_test, group_readable_file_refused_naming_the_key) {
    const fs::path p = secret_file(dir_ / "tok", "pit-leaky-0644\n", 0644);
    const config c = make("ghl.token_file = \"" + p.string() + "\"\n");
    const std::string what = expect_error([&] { (void)load_secrets(c, true); }, "ghl.token_file");
    EXPECT_EQ(what, "ghl.token_file: secret file " + p.string() +
                        " is readable by group or others (mode 0644); chmod 600 it");
    // Refused even when the GHL credential is not required: a configured file must be sound.
    expect_error([&] { (void)load_secrets(c, false); }, "ghl.token_file");
}

TEST_F(secrets_test, api_token_world_readable_refused) {
    secret_file(dir_ / "api", "api-leaky", 0604);
    const config c = make("api.token_file = \"api\"\n");
    const std::string what = expect_error([&] { (void)load_secrets(c, false); }, "api.token_file");
    EXPECT_NE(what.find("(mode 0604); chmod 600 it"), std::string::npos) << what;
}

TEST_F(secrets_test, configured_file_missing_is_an_error) {
    const config c = make("ghl.token_file = \"nope\"\n");
    const std::string what = expect_error([&] { (void)load_secrets(c, false); }, "ghl.token_file");
    EXPECT_NE(what.find((dir_ / "nope").string()), std::string::npos) << what;
    EXPECT_NE(what.find("No such file or directory"), std::string::npos) << what;
}

TEST_F(secrets_test, missing_token_required) {
    const config c = make("");
    const std::string what = expect_error([&] { (void)load_secrets(c, true); }, "ghl.token_file");
    EXPECT_NE(what.find("required"), std::string::npos) << what;
    EXPECT_NE(what.find("ghl-token"), std::string::npos) << what;
    // Not required: no error, no token.
    const secrets s = load_secrets(c, false);
    EXPECT_TRUE(s.ghl_token.empty());
    EXPECT_TRUE(s.api_token.empty());
}

TEST_F(secrets_test, credentials_directory_fallback) {
    temp_dir creds;
    creds_.set(creds.path().string());
    secret_file(creds / "ghl-token", "pit-from-credential\n", 0600);
    secret_file(creds / "api-token", "api-from-credential", 0600);
    const secrets s = load_secrets(make(""), true);
    EXPECT_EQ(s.ghl_token.reveal(), "pit-from-credential");
    EXPECT_EQ(s.api_token.reveal(), "api-from-credential");
}

TEST_F(secrets_test, relative_path_looked_up_in_credentials_directory) {
    temp_dir creds;
    creds_.set(creds.path().string());
    secret_file(creds / "my-token", "pit-named-credential", 0600);
    secret_file(dir_ / "my-token", "pit-next-to-config", 0600); // not used
    const secrets s = load_secrets(make("ghl.token_file = \"my-token\"\n"), true);
    EXPECT_EQ(s.ghl_token.reveal(), "pit-named-credential");
}

TEST_F(secrets_test, bad_credential_mode_refused) {
    temp_dir creds;
    creds_.set(creds.path().string());
    secret_file(creds / "ghl-token", "pit-cred-leak", 0640);
    const std::string what =
        expect_error([&] { (void)load_secrets(make(""), true); }, "ghl.token_file");
    EXPECT_NE(what.find("(mode 0640)"), std::string::npos) << what;
}

TEST_F(secrets_test, missing_token_with_empty_credentials_directory) {
    temp_dir creds;
    creds_.set(creds.path().string());
    const std::string what =
        expect_error([&] { (void)load_secrets(make(""), true); }, "ghl.token_file");
    EXPECT_NE(what.find(creds.path().string()), std::string::npos) << what;
}

TEST_F(secrets_test, oauth_needs_client_id_and_secret) {
    expect_error([&] { (void)load_secrets(make("ghl.auth = \"oauth\"\n"), true); },
                 "ghl.client_id");
    const config c = make("ghl.auth = \"oauth\"\nghl.client_id = \"cid\"\n");
    const std::string what =
        expect_error([&] { (void)load_secrets(c, true); }, "ghl.client_secret_file");
    EXPECT_NE(what.find("ghl-client-secret"), std::string::npos) << what;
    EXPECT_NO_THROW((void)load_secrets(c, false));

    secret_file(dir_ / "cs", "client-secret-value\n", 0600);
    const config ok = make("ghl.auth = \"oauth\"\nghl.client_id = \"cid\"\n"
                           "ghl.client_secret_file = \"cs\"\n");
    const secrets s = load_secrets(ok, true);
    EXPECT_EQ(s.client_secret.reveal(), "client-secret-value");
    EXPECT_TRUE(s.ghl_token.empty()); // the private token is not read in oauth mode
}

TEST_F(secrets_test, oauth_client_secret_from_credential) {
    temp_dir creds;
    creds_.set(creds.path().string());
    secret_file(creds / "ghl-client-secret", "cs-from-credential", 0600);
    const secrets s = load_secrets(make("ghl.auth = \"oauth\"\nghl.client_id = \"cid\"\n"), true);
    EXPECT_EQ(s.client_secret.reveal(), "cs-from-credential");
}

TEST_F(secrets_test, oauth_group_readable_secret_refused) {
    secret_file(dir_ / "cs", "cs-leaky-value", 0660);
    const config c = make("ghl.auth = \"oauth\"\nghl.client_id = \"cid\"\n"
                          "ghl.client_secret_file = \"cs\"\n");
    expect_error([&] { (void)load_secrets(c, true); }, "ghl.client_secret_file");
}

TEST_F(secrets_test, empty_secret_file_refused) {
    secret_file(dir_ / "tok", "\n", 0600);
    const std::string what = expect_error(
        [&] { (void)load_secrets(make("ghl.token_file = \"tok\"\n"), true); }, "ghl.token_file");
    EXPECT_NE(what.find("is empty"), std::string::npos) << what;
}

} // namespace
} // namespace speak4

TEST(config, give_up_after_takes_durations_or_seconds) {
    const auto parse = [](std::string_view t) {
        return speak4::parse_config(t, "test.toml", "/etc");
    };
    using namespace std::chrono_literals;
    EXPECT_EQ(parse("").retry.give_up_after, 24h);
    EXPECT_EQ(parse("[retry]\ngive_up_after = \"8h\"\n").retry.give_up_after, 8h);
    EXPECT_EQ(parse("[retry]\ngive_up_after = \"1h30m\"\n").retry.give_up_after, 90min);
    EXPECT_EQ(parse("[retry]\ngive_up_after = \"2d\"\n").retry.give_up_after, 48h);
    EXPECT_EQ(parse("[retry]\ngive_up_after = \"45s\"\n").retry.give_up_after, 45s);
    EXPECT_EQ(parse("[retry]\ngive_up_after = 864\n").retry.give_up_after, 864s);
}

TEST(config, breaker_and_lane_keys) {
    const auto parse = [](std::string_view t) {
        return speak4::parse_config(t, "test.toml", "/etc");
    };
    const auto c = parse("[breaker]\nfailure_percent = 75\nwindow_requests = 40\n"
                         "min_requests = 20\nwindow_seconds = 30\nprobe_interval_ms = 100\n"
                         "probe_max_ms = 1000\n[rate_limit]\npull_share_percent = 30\n"
                         "push_reserve_percent = 10\n[sync]\nindex_lag_seconds = 60\n");
    EXPECT_EQ(c.breaker.failure_percent, 75);
    EXPECT_EQ(c.breaker.window_requests, 40);
    EXPECT_EQ(c.breaker.min_requests, 20);
    EXPECT_EQ(c.breaker.window_seconds, 30);
    EXPECT_EQ(c.breaker.probe_interval_ms, 100);
    EXPECT_EQ(c.breaker.probe_max_ms, 1000);
    EXPECT_EQ(c.rate_limit.pull_share_percent, 30);
    EXPECT_EQ(c.rate_limit.push_reserve_percent, 10);
    EXPECT_EQ(c.sync.index_lag_seconds, 60);
    const auto d = parse("");
    EXPECT_EQ(d.breaker, speak4::breaker_config{});
    EXPECT_EQ(d.sync.index_lag_seconds, 300);
}

TEST(config, alerts_keys) {
    const auto c = speak4::parse_config(
        "[alerts]\nwebhook_url_file = \"alert-url\"\ncheck_interval_seconds = 5\n"
        "oldest_pending_minutes = 30\nstale_pull_polls = 4\nmax_per_hour = 10\n",
        "test.toml", "/etc/speak4-sync");
    EXPECT_EQ(c.alerts.webhook_url_file, "alert-url") << "a secret path is kept as written";
    EXPECT_EQ(c.alerts.check_interval_seconds, 5);
    EXPECT_EQ(c.alerts.oldest_pending_minutes, 30);
    EXPECT_EQ(c.alerts.stale_pull_polls, 4);
    EXPECT_EQ(c.alerts.max_per_hour, 10);
    EXPECT_EQ(speak4::parse_config("", "t", "/").alerts, speak4::alerts_config{});
}

TEST(config, direction_and_entities) {
    const auto c = speak4::parse_config(
        "[sync]\ndirection = \"pull\"\nentities = [\"contacts\", \"tasks\"]\n", "t", "/");
    EXPECT_EQ(c.sync.direction, speak4::sync_direction::pull);
    EXPECT_TRUE(c.sync.entities.tasks);
    EXPECT_FALSE(c.sync.entities.notes);
    EXPECT_FALSE(c.sync.entities.appointments);
    const auto d = speak4::parse_config("", "t", "/");
    EXPECT_EQ(d.sync.direction, speak4::sync_direction::both);
    EXPECT_EQ(d.sync.entities, speak4::entity_set{});
    EXPECT_EQ(d.sync.mode, speak4::sync_mode::live);
    EXPECT_EQ(speak4::parse_config("[sync]\nmode = \"dry_run\"\n", "t", "/").sync.mode,
              speak4::sync_mode::dry_run);
}
