#pragma once
// Read and repair operations behind `status`, `queue` and `audit`: what an operator inspects.

#include "core/config.hpp"

#include <SQLiteCpp/Database.h>
#include <boost/json/object.hpp>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace speak4::store {

struct queue_depth {
    long long pending = 0;
    long long inflight = 0;
    long long done = 0;
    long long dead = 0;
};

struct oauth_state {
    std::string location_id;
    std::string state; // ok | needs_reauth
    std::optional<std::string> reason;
    std::string expires_at;
};

struct status_snapshot {
    int schema_version = 0;
    queue_depth queue;
    std::map<std::string, std::string> cursors;
    std::optional<std::string> last_pull_at; // cursor "last_pull_at"
    long long changes_seq = 0;
    long long contacts = 0;
    long long tasks = 0;
    long long notes = 0;
    std::vector<oauth_state> oauth;
};

status_snapshot read_status(SQLite::Database& db);

/// The auth block of `status` and `auth status`: a private token has no expiry; OAuth reads the
/// stored token set of the configured location.
struct auth_view {
    std::string state = "ok"; // ok | needs_reauth
    std::optional<std::string> expires_at;
    std::optional<std::string> reason;
};
auth_view read_auth(const config& cfg, const status_snapshot& s);

/// What `status --json` prints (DESIGN §5), for the CLI and the console's overview alike, so
/// the two never show different numbers.
boost::json::object status_json(const config& cfg, const status_snapshot& s);

struct outbox_row {
    long long id = 0;
    std::string op;
    std::string entity;
    long long entity_id = 0;
    std::string state;
    int attempts = 0;
    std::string next_attempt_at;
    std::optional<std::string> last_error;
    std::string created_at;
    std::string payload;
};

/// Outbox rows, newest first. `state` filters when set. At most `limit` rows.
std::vector<outbox_row> list_outbox(SQLite::Database& db, std::optional<std::string> state,
                                    int limit);

/// Makes a dead (or pending) row due now with its attempts reset. Returns false when no dead or
/// pending row has that id.
bool retry_outbox(SQLite::Database& db, long long id, const std::string& now);
/// Revives every dead row; returns how many.
long long retry_dead(SQLite::Database& db, const std::string& now);
/// Removes a row that is not in flight. Returns false when there is none.
bool drop_outbox(SQLite::Database& db, long long id);

struct audit_row {
    long long id = 0;
    std::string ts;
    std::string method;
    std::string path;
    std::optional<int> status;
    std::optional<long long> latency_ms;
    std::optional<int> attempt;
    std::optional<long long> outbox_id;
    std::optional<std::string> error;
    std::optional<long long> rate_limit_remaining;
    std::optional<std::string> trace_id;
};

/// Audit rows with ts >= since (when set), newest first, at most `limit`.
std::vector<audit_row> list_audit(SQLite::Database& db, std::optional<std::string> since,
                                  int limit);

} // namespace speak4::store
