#pragma once
// The daemon's configuration (DESIGN §6): TOML, every key with a default, unknown keys and bad
// values refused with the key and line named. Secrets are never in the TOML; the *_file keys
// name files (mode 0600) or systemd credentials ($CREDENTIALS_DIRECTORY).
//
// Relative paths. database.path, ghl.ca_file, webhooks.public_key_file and
// webhooks.rsa_public_key_file are resolved against the config file's directory while parsing,
// so the struct holds them ready to open. The secret keys (ghl.token_file,
// ghl.client_secret_file, api.token_file) are kept as written and resolved by load_secrets():
// a relative one names a systemd credential in $CREDENTIALS_DIRECTORY when that is set (so
// `token_file = "ghl-token"` works with `LoadCredential=ghl-token:...`), and is otherwise
// resolved against the config file's directory. They are resolved late on purpose: parsing
// stays a pure function of the text, and `check-config` run outside systemd reports the same
// values the service would see.
//
// Empty strings. An optional key set to "" (location_id, client_id, the *_file keys) is the
// same as leaving it out, so the example config can list every key with its default.

#include "core/log.hpp"
#include "core/secret.hpp"

#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace speak4 {

enum class auth_mode { private_token, oauth };
enum class conflict_policy { remote_wins, local_wins, newest_wins };
enum class list_mode { search, legacy };
/// sync.direction: both ways, GHL → Speak4 only (a read-only token works), Speak4 → GHL only.
enum class sync_direction { both, pull, push };
/// sync.mode: live, or a dry run that reads from GHL but sends no write (the outbox waits).
enum class sync_mode { live, dry_run };
/// sync.entities: what syncs besides contacts (which everything else belongs to).
struct entity_set {
    bool tasks = true;
    bool notes = true;
    bool appointments = true;
    bool operator==(const entity_set&) const = default;
};
enum class fetch_children { all, on_demand };
/// sync.on_duplicate: a contact.created GHL calls a duplicate of a contact already linked to
/// another Speak4 id is a dead letter plus a conflicts row (conflict) or linked to it (link).
enum class on_duplicate { conflict, link };

std::string_view to_string(auth_mode);
std::string_view to_string(conflict_policy);
std::string_view to_string(list_mode);
std::string_view to_string(sync_direction);
std::string_view to_string(sync_mode);
std::string_view to_string(fetch_children);
std::string_view to_string(on_duplicate);

struct database_config {
    std::filesystem::path path = "/var/lib/speak4-sync/speak4-sync.db";

    bool operator==(const database_config&) const = default;
};

struct ghl_config {
    // https://, or http:// for a loopback host only; stored without a trailing '/'.
    std::string base_url = "https://services.leadconnectorhq.com";
    std::string api_version = "2021-07-28";
    std::string location_id; // required by `run`, not by local commands
    auth_mode auth = auth_mode::private_token;
    std::filesystem::path token_file;         // private token; credential "ghl-token"
    std::string client_id;                    // oauth
    std::filesystem::path client_secret_file; // oauth; credential "ghl-client-secret"
    std::filesystem::path ca_file;            // extra CA bundle; empty = system CAs
    int timeout_ms = 30000;
    int max_concurrency = 4;

    bool operator==(const ghl_config&) const = default;
};

struct rate_limit_config {
    int burst = 100;
    int window_seconds = 10;
    long long daily = 200000;
    int pull_share_percent = 20;   // the pull lane's guaranteed share while pushes wait too
    int push_reserve_percent = 20; // the part of the burst pulls leave for pushes to come

    bool operator==(const rate_limit_config&) const = default;
};

struct retry_config {
    int base_ms = 500;
    int max_ms = 300000;
    /// Accepted so older configs still load; transient failures are never dead-lettered by
    /// count (DESIGN §9), so it no longer changes anything.
    int max_attempts = 12;
    /// Transient failures of one outbox row are retried for this long after its first failure,
    /// then the row is a dead letter. "24h", "90m", "1h30m", "2d" or seconds.
    std::chrono::seconds give_up_after{std::chrono::hours(24)};

    bool operator==(const retry_config&) const = default;
};

/// The circuit breaker in front of GHL (lib/ghl/breaker.hpp).
struct health_config {
    /// A loop that completes no iteration for this long (beyond its own sleep) is reported
    /// stalled, and so is a database job that waits this long for a lock: /healthz is not ok.
    int stall_after_seconds = 60;

    bool operator==(const health_config&) const = default;
};

struct breaker_config {
    int failure_percent = 60;
    int window_requests = 20;
    int min_requests = 10;
    int window_seconds = 60;
    int probe_interval_ms = 2000;
    int probe_max_ms = 60000;

    bool operator==(const breaker_config&) const = default;
};

struct sync_config {
    int poll_interval_seconds = 60;
    int full_sweep_hours = 24;
    conflict_policy conflict = conflict_policy::newest_wins;
    int coalesce_ms = 250;
    /// An incremental pass re-reads this many seconds before its cursor: GHL's search index
    /// shows changes late and out of order (seconds, sometimes more).
    int index_lag_seconds = 300;
    speak4::list_mode list_mode = list_mode::search;
    speak4::fetch_children fetch_children = fetch_children::all;
    speak4::on_duplicate on_duplicate = on_duplicate::conflict;
    int audit_retention_days = 30;
    sync_direction direction = sync_direction::both;
    entity_set entities;
    sync_mode mode = sync_mode::live;
    int inbox_retention_days = 30;     ///< inbox bodies emptied after (the row stays)
    int changes_retention_days = 30;   ///< change feed rows deleted after (at least 1)
    int conflicts_retention_days = 90; ///< conflict log rows deleted after

    bool operator==(const sync_config&) const = default;
};

struct api_config {
    std::string listen = "127.0.0.1:8737"; // host:port; [v6]:port
    std::filesystem::path token_file;      // bearer token for /v1/*; credential "api-token"

    bool operator==(const api_config&) const = default;
};

struct webhooks_config {
    bool enabled = false;
    std::filesystem::path public_key_file;     // Ed25519 PEM (x-ghl-signature)
    std::filesystem::path rsa_public_key_file; // RSA PEM (legacy x-wh-signature)
    int max_age_seconds = 300;

    bool operator==(const webhooks_config&) const = default;
};

/// Optional alerts for teams without Prometheus: a Slack-compatible JSON message posted when a
/// condition starts and when it ends (README "Alerts"). The URL is a secret, read by
/// load_secrets() from webhook_url_file (credential "alerts-webhook-url").
struct alerts_config {
    std::filesystem::path webhook_url_file; // empty = no webhook alerts
    int check_interval_seconds = 30;        // how often the conditions are evaluated
    int oldest_pending_minutes = 15;        // an event waiting longer than this
    int stale_pull_polls = 3;               // no completed pull for this many poll intervals
    int max_per_hour = 30;                  // messages beyond this wait (rate limit)

    bool operator==(const alerts_config&) const = default;
};

struct logging_config {
    log::level level = log::level::info;
    log::format format = log::format::json;

    bool operator==(const logging_config&) const = default;
};

struct rules_config {
    int appointment_reminder_minutes = 60;
    bool business_contacts = false;
    std::map<std::string, std::string> tag_routes; // GHL tag -> Speak4 workflow
    std::map<std::string, std::string> field_map;  // Speak4 field -> GHL field or customFields.<id>

    bool operator==(const rules_config&) const = default;
};

struct config {
    std::filesystem::path source;   // the file it came from (empty for defaults)
    std::filesystem::path base_dir; // relative paths resolve against this (the file's directory)
    database_config database;
    ghl_config ghl;
    rate_limit_config rate_limit;
    retry_config retry;
    breaker_config breaker;
    health_config health;
    sync_config sync;
    api_config api;
    webhooks_config webhooks;
    alerts_config alerts;
    logging_config logging;
    rules_config rules;

    bool operator==(const config&) const = default;
};

/// GHL's contact write fields a field map may name directly (firstName, …, "tags").
bool is_ghl_contact_field(std::string_view name);

/// Parses TOML text. `origin` names the source in messages. Relative paths in the file are
/// resolved against `base_dir` (see the top of this file). Throws config_error naming the key
/// and line of the first problem (by line):
///   "speak4-sync.toml:12: sync.conflict: must be one of remote_wins, local_wins, newest_wins"
/// Every problem in the text is found: what() lists all of them, one a line, in that format.
config parse_config(std::string_view toml_text, std::string_view origin,
                    const std::filesystem::path& base_dir);

/// Reads and parses a config file (config_error with key "" if it cannot be read). `origin` is the
/// file name, `base_dir` its directory (made absolute), and `source` the absolute path.
config load_config(const std::filesystem::path& path);

/// The secrets a config refers to, resolved. Each *_file key: an absolute path is used as is; a
/// relative one is looked up in $CREDENTIALS_DIRECTORY when set, else resolved against the
/// config file's directory (config::base_dir); an unset key falls back to the
/// systemd credential of its default name ("ghl-token", "ghl-client-secret", "api-token") when
/// $CREDENTIALS_DIRECTORY holds it. Files readable by group or others are refused.
struct secrets {
    secret ghl_token;          // private token (auth = private_token)
    secret client_secret;      // oauth
    secret api_token;          // local API bearer token (empty = API refuses /v1/*)
    secret alerts_webhook_url; // [alerts] webhook_url_file (empty = no webhook alerts)
};

/// Where the secret of one *_file key is read from: `configured` resolved as described at the
/// top of this file, or, when it is empty, $CREDENTIALS_DIRECTORY/`credential` if that file
/// exists. Empty when there is none.
std::filesystem::path resolve_secret_path(const config& cfg,
                                          const std::filesystem::path& configured,
                                          std::string_view credential);

/// Loads the secrets. `require_ghl` demands the GHL credential for the configured auth mode.
/// Throws config_error naming the key ("ghl.token_file: secret file ... is readable by group
/// or others (mode 0644); chmod 600 it"). A configured file that cannot be read is an error even
/// when `require_ghl` is false. Only the GHL secret of the configured auth mode is read. With
/// `require_ghl` and auth = oauth, ghl.client_id must be set too. Messages name paths, never
/// secret values.
secrets load_secrets(const config& cfg, bool require_ghl);

} // namespace speak4
