#pragma once
// The outbox, dispatcher side (DESIGN §8): claiming due work per entity in order, coalescing
// pending rows into one call, and recording each outcome together with its audit rows and the
// mirror write-back in one transaction. Everything here is synchronous SQLite work that runs on
// the database thread; the network side lives in dispatcher.hpp.

#include "core/config.hpp"
#include "core/entity.hpp"
#include "core/time.hpp"
#include "store/statement_cache.hpp"

#include <SQLiteCpp/Database.h>
#include <boost/json/object.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace speak4::sync {

/// What one claimed piece of work does on GHL.
enum class action { create, update, remove, complete, tag_add, tag_remove, pull };
std::string_view to_string(action a);

/// The identity and current mirror data of the entity a work item is about.
struct entity_context {
    entity_kind entity = entity_kind::contact;
    std::int64_t id = 0;                       ///< mirror row id
    std::optional<std::string> ghl_id;         ///< the entity's GHL id, when known
    std::optional<std::string> speak4_id;      ///< contacts: the first Speak4 id, when any
    std::optional<std::string> contact_ghl_id; ///< tasks and notes: their contact's GHL id
    std::int64_t contact_id = 0;               ///< tasks and notes: their contact's mirror id
    // For looking up a create whose outcome is unknown:
    std::optional<std::string> email, phone, first_name, last_name; ///< contacts
    std::optional<std::string> title, body, due_date;               ///< tasks and notes
    /// GHL ids already linked to sibling rows that Speak4 created. A row the pull path added
    /// (no speak4_id) may be this very record, created by an attempt whose outcome was lost:
    /// it is not excluded, and linking to it folds it into this row.
    std::vector<std::string> known_child_ghl_ids;
};

/// Pending outbox rows of one entity, coalesced into one call.
struct work_item {
    action act = action::update;
    entity_context ctx;
    boost::json::object set;       ///< create/update: GHL fields, later rows win
    std::vector<std::string> tags; ///< tag_add / tag_remove
    bool completed = true;         ///< complete
    bool children = false;         ///< pull: tasks, notes and appointments too
    bool lead = false;             ///< create: find by email/phone first
    bool uncertain = false;        ///< an earlier attempt may have reached GHL
    int attempts = 0;              ///< attempts so far (the most of its rows)
    /// Every email, phone, title and body the covered rows ever set: an earlier attempt of a
    /// create may have sent an older value than the merged `set`, so a lookup tries them all.
    std::vector<std::string> emails, phones, titles, bodies;
    std::vector<std::int64_t> rows; ///< outbox ids covered, oldest first
    std::int64_t first_row = 0;     ///< the row audit entries are filed under
    std::string first_created_at;   ///< when the oldest row was written
};

/// One HTTP request sent to GHL while working on an item (an audit_log row).
struct audit_entry {
    std::string ts;
    std::string method;
    std::string path;          ///< concrete path with ids, no query secrets
    std::optional<int> status; ///< none when no response came
    std::optional<long long> latency_ms;
    int attempt = 1;
    std::optional<std::int64_t> outbox_id;
    std::optional<std::string> error;
    std::optional<long long> rate_limit_remaining;
    std::optional<long long> daily_remaining;
    std::optional<std::string> trace_id;
};

/// How a work item ended.
struct outcome {
    enum class kind {
        done,      ///< applied; write back below
        retry,     ///< try again after a backoff (transient failure)
        dead,      ///< permanent failure: a dead letter with `error`
        wait_auth, ///< no usable credentials: back to pending without spending an attempt
    } what = kind::done;
    std::string error;         ///< retry/dead: "PUT /contacts/:contactId: 422 {…}"
    std::optional<int> status; ///< last HTTP status
    std::optional<std::chrono::milliseconds> retry_after;
    bool may_have_been_applied = false; ///< retry: the request may have reached GHL
    /// retry: nothing was sent because the circuit breaker holds every request back (GHL is
    /// down): no attempt is spent and the row is due again at `retry_after` (the next probe).
    bool held = false;
    bool gone = false; ///< dead/done because the record vanished remotely
    /// An identity question GHL's answer raised that an operator decides (a duplicate of a
    /// contact linked to another Speak4 id): recorded in `conflicts` with the outcome.
    struct identity_conflict {
        std::string field;        ///< "speak4_id" | "ghl_id"
        std::string local_value;  ///< this row's id
        std::string remote_value; ///< the other one
        std::string policy;       ///< e.g. "on_duplicate=conflict"
    };
    std::optional<identity_conflict> conflict;
    // Write-back on done:
    std::optional<std::string> ghl_id; ///< the entity's GHL id (create, or linked)
    std::optional<std::string> remote_updated_at;
    std::optional<boost::json::object> raw; ///< the record GHL returned
};

/// How transient failures are retried (DESIGN §9): never dead-lettered by count; a row whose
/// calls keep failing transiently is retried with full-jitter backoff until `give_up_after`
/// has passed since it was queued (its oldest covered row's created_at), then it is a dead
/// letter. Rows held back by the circuit breaker spend no attempt and are never given up while
/// held: the give-up is decided only on the outcome of a request GHL was sent.
struct retry_policy {
    int base_ms = 500;
    int max_ms = 300000;
    int max_attempts = 12; ///< accepted for old configs; no longer decides anything
    std::chrono::seconds give_up_after{std::chrono::hours(24)};
};

/// Full-jitter backoff: random(0, min(max_ms, base_ms * 2^attempt)), at least `retry_after`.
/// `attempt` counts from 0 for the first retry. `uniform01` returns a value in [0, 1).
std::chrono::milliseconds backoff_delay(const retry_policy& p, int attempt,
                                        std::optional<std::chrono::milliseconds> retry_after,
                                        const std::function<double()>& uniform01);

/// Inserts one audit_log row per entry and keeps the rate-limit cursors ("rate_limit.remaining",
/// "rate_limit.daily_remaining") that `status` shows, inside the caller's transaction.
void write_audit_rows(store::statement_cache& stmts, const std::vector<audit_entry>& entries,
                      const std::string& now);

/// Database side of the dispatcher. Threading: one instance per connection, used on the
/// database thread only.
class outbox_store {
public:
    explicit outbox_store(SQLite::Database& db);
    SQLite::Database& db() const { return db_; }

    /// How fields merge when a push learns that its contact is one the mirror already has
    /// (a link, DESIGN §9). Default newest_wins.
    void set_conflict_policy(conflict_policy p) { policy_ = p; }

    /// Rows a crash left in flight go back to pending, marked uncertain (the request may have
    /// reached GHL). Returns how many. Called once at start-up, before any claim.
    int recover_inflight(sys_time now);

    /// Claims up to `max_items` work items: for each entity whose oldest open row is due (and
    /// older than `coalesce` on its first attempt, so bursts of updates merge), the longest
    /// run of mergeable rows becomes one item and those rows go in flight. Tasks and notes
    /// wait for their contact's GHL id. Rows that can never be sent (their contact has no GHL
    /// id and no create pending) are dead-lettered here with the reason.
    std::vector<work_item> claim(sys_time now, std::chrono::milliseconds coalesce, int max_items);

    /// Records how an item ended, its audit rows and the mirror write-back, in one transaction.
    void finish(const work_item& item, const outcome& out, const std::vector<audit_entry>& audit,
                sys_time now, const retry_policy& policy, const std::function<double()>& uniform01);

    /// An item that ended, as finish_all() takes it (pointers: the caller keeps them alive).
    struct finished {
        const work_item* item = nullptr;
        const outcome* out = nullptr;
        const std::vector<audit_entry>* audit = nullptr;
        double jitter = 0.5; ///< the backoff's uniform draw in [0, 1)
    };
    /// finish() for several items in one transaction (one commit, one fsync): all are recorded
    /// or none is.
    void finish_all(const std::vector<finished>& items, sys_time now, const retry_policy& policy);

    /// Gives an item's rows back (pending, uncertain, due at `retry_at`) when its outcome could
    /// not be recorded: never left in flight for the life of the process.
    void release(const work_item& item, sys_time retry_at);

    /// Rows parked for credentials (a 401, or needs_reauth) become due now: after a token
    /// rotation (SIGHUP) or `auth exchange`. Returns how many.
    int release_auth_waiters(sys_time now);

    /// When the next pending row becomes claimable by time: a retry when its backoff ends, a
    /// first attempt once `coalesce` has passed since it was queued (nullopt: none pending).
    /// A row due by time may still wait for another (a task for its contact's create).
    std::optional<sys_time> next_due(std::chrono::milliseconds coalesce);

    /// Deletes audit rows and done outbox rows older than `cutoff`. Returns rows deleted.
    long long prune(sys_time cutoff);

private:
    /// The body of finish(), inside the caller's transaction.
    void record(const work_item& item, const outcome& out, const std::vector<audit_entry>& audit,
                const std::string& now_s, sys_time now, const retry_policy& policy,
                const std::function<double()>& uniform01);
    /// After a tag call succeeded: the contact's last known GHL copy (`raw`, what a pull compares
    /// against) gets the same change, so the next pull sees our own tags as known, not as a
    /// remote edit that could override changes still queued behind it.
    void note_pushed_tags(const work_item& item);

    SQLite::Database& db_;
    store::statement_cache stmts_; ///< every statement, prepared once per connection
    conflict_policy policy_ = conflict_policy::newest_wins;
};

} // namespace speak4::sync
