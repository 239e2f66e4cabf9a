#pragma once
// The queries behind the integration console (/v1/admin/…): dead letters with the events behind
// them, a bounded audit search, conflicts, a contact's timeline, and per-minute series for the
// overview's charts. Every read is bounded (LIMIT, a time range); the repairs reuse
// inspect.hpp's `queue retry` / `queue drop` and add the check the console needs (only a dead
// row, else the state it is in).
//
// Threading: like the connection they are given (the database thread).

#include "core/time.hpp"
#include "store/inspect.hpp"

#include <SQLiteCpp/Database.h>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace speak4::store {

/// An accepted Speak4 event (a row of `inbox`).
struct inbox_event {
    long long id = 0;
    std::optional<std::string> event_id;
    std::string type;
    std::string body;
    std::string received_at;
};

/// What names the mirror row an outbox row or change is about.
struct entity_ref {
    std::string entity;
    long long entity_id = 0;
    std::optional<std::string> speak4_id;
    std::optional<std::string> ghl_id;
};

struct dead_letter {
    outbox_row row;
    std::optional<int> last_status; ///< GHL's HTTP status of the last attempt
    std::string updated_at;
    entity_ref ref;
    std::optional<inbox_event> event; ///< the event behind it (outbox.inbox_id), if kept
};

/// Dead rows, newest first, at most `limit`.
std::vector<dead_letter> list_dead_letters(SQLite::Database& db, int limit);

/// The outcome of a console repair of one outbox row.
struct repair_result {
    enum class kind { done, not_found, not_dead } what = kind::done;
    std::string state; ///< the row's state when not_dead
};

/// `queue retry ID` for a row that is dead (else not_dead with its state), in one transaction.
repair_result retry_dead_letter(SQLite::Database& db, long long id, const std::string& now);
/// `queue drop ID` for a row that is dead (else not_dead with its state), in one transaction.
repair_result drop_dead_letter(SQLite::Database& db, long long id);

/// "/contacts/abc/tasks/xyz" -> "/contacts/:contactId/tasks/:taskId": the template the GHL client
/// names the route by (ghl::request_record::path_template), the query dropped.
std::string path_template(std::string_view path);

/// A bounded audit search. Rows with since <= ts < until, newest first.
struct audit_query {
    std::string since; ///< ISO-8601
    std::string until; ///< ISO-8601
    /// "200", "429", …, or a class "2xx", "3xx", "4xx", "5xx", or "error" (no response).
    std::optional<std::string> status;
    std::optional<std::string> path_template; ///< as path_template() renders it
    std::optional<long long> before_id;       ///< paging: rows with id < this
    int limit = 100;
    /// At most this many rows of the time range are examined (the path filter runs on them).
    int scan_limit = 20000;
};

struct audit_page {
    std::vector<audit_row> rows;
    bool more = false;      ///< another page exists (before_id = the last row's id)
    bool truncated = false; ///< the scan bound was reached before `limit` matches
};

audit_page query_audit(SQLite::Database& db, const audit_query& q);

struct conflict_row {
    long long id = 0;
    std::string ts;
    entity_ref ref;
    std::string field;
    std::optional<std::string> local_value;
    std::optional<std::string> remote_value;
    std::string policy;
    std::string winner;
};

/// Conflicts, newest first, at most `limit`; `before_id` pages.
std::vector<conflict_row> list_conflicts(SQLite::Database& db, int limit,
                                         std::optional<long long> before_id = {});

/// One minute of the overview's charts.
struct minute_point {
    std::string minute;         ///< "2026-12-03T08:41:00Z"
    long long ok = 0;           ///< 2xx and 3xx
    long long client_error = 0; ///< 4xx but 429
    long long rate_limited = 0; ///< 429
    long long server_error = 0; ///< 5xx
    long long no_response = 0;  ///< no status (timeout, reset, TLS, …)
    std::optional<long long> p50_ms;
    std::optional<long long> p95_ms;
    long long queue_depth = 0; ///< pending + inflight outbox rows at the end of the minute
    long long changes = 0;     ///< rows of the change feed
};

struct series {
    std::vector<minute_point> points; ///< oldest first, one per minute up to `now`
    bool truncated = false;           ///< more audit rows than the bound: later minutes partial
};

/// The last `minutes` minutes (1 .. 24 h) up to `now`. Queue depth is reconstructed from the
/// outbox's created_at and, for finished rows, updated_at (rows pruned since are not counted).
series read_series(SQLite::Database& db, sys_time now, int minutes);

/// The oldest outbox row still waiting to be sent (pending or in flight).
std::optional<std::string> oldest_pending_at(SQLite::Database& db);

struct change_entry {
    long long seq = 0;
    std::string ts;
    std::string entity;
    long long entity_id = 0;
    std::string kind;
    std::string source;
};

/// Everything about one contact, each list newest first and at most `limit` long; the API
/// merges them into one ordered timeline.
struct contact_timeline {
    long long contact_id = 0;
    std::optional<std::string> speak4_id;
    std::optional<std::string> ghl_id;
    std::optional<std::string> email;
    std::optional<std::string> name;
    bool deleted = false;
    std::vector<inbox_event> events;   ///< behind its (and its tasks' and notes') outbox rows
    std::vector<outbox_row> outbox;    ///< its, its tasks' and its notes' outbox rows
    std::vector<audit_row> calls;      ///< for those rows, or naming its ghl_id, within `since`
    std::vector<change_entry> changes; ///< of it, its tasks and its notes
    std::vector<conflict_row> conflicts;
};

/// The contact whose speak4_id, ghl_id or email (case-insensitive) is `key` (the first by id
/// if several), with its history; calls are searched from `since` on. nullopt when none.
std::optional<contact_timeline> find_contact_timeline(SQLite::Database& db, std::string_view key,
                                                      const std::string& since, int limit);

} // namespace speak4::store
