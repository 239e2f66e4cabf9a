#pragma once
// The push path (DESIGN §8): claims due outbox work, runs up to max_concurrency GHL calls under
// the rate limiter, and records each outcome with its audit rows in one transaction. Creates
// whose outcome is unknown are looked up in GHL before they are sent again, so a retry never
// makes a duplicate record.

#include "core/clock.hpp"
#include "core/config.hpp"
#include "ghl/client.hpp"
#include "store/db_worker.hpp"
#include "sync/outbox.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <memory>
#include <random>

namespace speak4::sync {

/// What the dispatcher needs of GHL: the collaborators of ghl::client. A fresh client is
/// made per work item (cheap: shared pointers) so each item's requests reach its audit rows;
/// `options.observer`, when set, still sees every request (metrics).
struct ghl_access {
    std::shared_ptr<ghl::http_client> http;
    std::shared_ptr<ghl::token_provider> tokens;
    std::shared_ptr<ghl::rate_limiter> limiter;
    ghl::client_options options;
};

/// Runs `pull` work items (the reconciler implements it): fetch the contact (and children)
/// and apply it to the mirror. Returns the outcome to record for the item.
using pull_fn = std::function<boost::asio::awaitable<outcome>(ghl::client&, const work_item&)>;

struct dispatcher_options {
    int max_concurrency = 4;
    std::chrono::milliseconds coalesce{250};
    std::chrono::milliseconds idle_poll{1000}; ///< look for work committed by other processes
    retry_policy retry;
    /// A create GHL matches to a contact linked to another Speak4 id (sync.on_duplicate).
    speak4::on_duplicate on_duplicate = speak4::on_duplicate::conflict;
    /// Field merges when a push links two mirror contacts (sync.conflict).
    conflict_policy conflict = conflict_policy::newest_wins;
    /// How long GHL's search index may take to show a new contact (sync.index_lag_seconds): a
    /// create with no email or phone whose outcome is unknown is looked up by name only once
    /// this long has passed since the attempt that may have made it.
    std::chrono::milliseconds index_lag{std::chrono::seconds(300)};
};

dispatcher_options dispatcher_options_from(const config& cfg);

/// What the outbox does after a failed GHL call: retry (transient, or a 2xx body that could not
/// be used), wait for credentials (401, needs_reauth), dead letter (other 4xx, with the body),
/// or, for a record that is gone, done when `gone_is_done` (a delete, a pull) else dead.
outcome outcome_from_error(const ghl::error& e, bool gone_is_done);

/// True when `e` is GHL saying that this very record is gone (DESIGN §9): a not-found answer
/// whose body is JSON and whose message says "not found" about the record: it names `id` (or
/// `parent_id`, the contact of a task or note), or it is about a record of this kind ("Task not
/// found"). A bare 404 (an HTML page from a proxy, an unknown route after a wrong base_url) or a
/// 400 about another thing ("User not found" for an assignedTo) is not evidence of anything.
bool says_gone(const ghl::error& e, entity_kind kind, std::string_view id,
               std::string_view parent_id = {});

/// The audit_log row for one request the client sent.
audit_entry audit_from_request(const ghl::request_record& r);

/// Counters for /metrics and tests.
struct dispatcher_stats {
    long long items = 0; ///< work items finished (any outcome)
    long long done = 0;
    long long retried = 0;
    long long dead = 0;
    long long lookups = 0; ///< creates resolved by a lookup before sending
    long long linked = 0;  ///< creates that found their record already in GHL
    /// Uncertain creates with no email or phone to match on: waits for the search index, and
    /// lookups by name and creation time (the residual risk: README "Identities and deletions").
    long long unmatched_waits = 0;
    long long unmatched_lookups = 0;
};

/// Threading: every member must be called on `ex` (single-threaded io_context or a strand),
/// except stats(), which is thread-safe.
class dispatcher {
public:
    dispatcher(boost::asio::any_io_executor ex, store::db_worker& db, ghl_access ghl,
               dispatcher_options opt, const speak4::clock& clk = system_clock::instance(),
               std::uint64_t seed = std::random_device{}());

    void set_pull(pull_fn fn) { pull_ = std::move(fn); }
    /// Called once per loop iteration: with "" when its database work succeeded, else with the
    /// failure (the loop backs off and goes on). The daemon's health registry listens.
    void set_heartbeat(std::function<void(const std::string& error)> f) {
        heartbeat_ = std::move(f);
    }

    /// Recovers rows a crash left in flight, then claims and pushes until stop(); returns once
    /// stopped and every item in flight is recorded.
    boost::asio::awaitable<void> run();

    /// New work was committed (intake), or the circuit breaker changed state: look now instead
    /// of at the next poll.
    void wake();

    /// True while the circuit breaker (ghl_access::options.breaker) holds calls back: nothing
    /// is claimed then, so no attempt is spent on an outage.
    bool held_by_breaker() const;

    /// Claims nothing more; items in flight finish and are recorded.
    void stop();

    /// Credentials changed (SIGHUP rotation, a new OAuth grant): work parked on a 401 is
    /// retried now instead of at its next slot.
    void credentials_changed();

    /// Pauses claiming (e.g. while needs_reauth) without stopping.
    void pause(bool paused);

    dispatcher_stats stats() const;

    /// Executes one work item against GHL (exposed for tests). Never throws for GHL errors.
    boost::asio::awaitable<outcome> execute(ghl::client& c, const work_item& item);

private:
    // One function per entity kind; every create whose record may already exist in GHL (a
    // lead, an uncertain create) goes through find_existing() first.
    boost::asio::awaitable<outcome> execute_contact(ghl::client& c, const work_item& item);
    boost::asio::awaitable<outcome> execute_task(ghl::client& c, const work_item& item);
    boost::asio::awaitable<outcome> execute_note(ghl::client& c, const work_item& item);
    /// The one resolver for creates that may already exist in GHL: the GHL id of the record
    /// this item's create made (or, for a lead, the contact it is), or nullopt when there is
    /// none. Contacts: by every email/phone the create sent, else by name and creation time;
    /// tasks: by title and due date; notes: by body (records linked to sibling rows excluded).
    boost::asio::awaitable<ghl::result<std::optional<std::string>>>
    find_existing(ghl::client& c, const work_item& item);
    static outcome not_an_operation(const work_item& item);
    /// What a call that failed with `e` means for `item`. A not-found is a deletion only with
    /// evidence: it names the record (says_gone), and for a write a GET of the record confirms it
    /// (a record GHL still shows makes it a dead letter, nothing deleted). A not-found on a
    /// create or a lookup, or one that names nothing, is a dead letter with the body.
    enum class call { create, write, remove };
    boost::asio::awaitable<outcome> failed(ghl::client& c, const work_item& item,
                                           const ghl::error& e, call what);
    /// With sync.on_duplicate = "conflict": the dead letter for a create that GHL matched to
    /// GHL contact `existing` when the mirror links that contact to another Speak4 id (nullopt:
    /// go ahead and link). `why` is GHL's answer (or the lookup) that matched them.
    boost::asio::awaitable<std::optional<outcome>>
    refuse_duplicate(const work_item& item, const std::string& existing, const std::string& why);
    /// Counts a lookup (false) or a lookup that found its record (true) in stats_.
    void count_lookup(bool found);
    boost::asio::awaitable<void> process(work_item item);
    double uniform01();
    /// The outbox side on the database thread: one instance for the worker's connection, so
    /// its statements are prepared once, not on every claim and finish.
    outbox_store& box(SQLite::Database& db);
    /// Records an item's outcome in one transaction with the others finishing at the same time.
    /// False: that transaction failed (nothing of the group was recorded).
    boost::asio::awaitable<bool> record_together(const work_item& item, const outcome& out,
                                                 const std::vector<audit_entry>& audit,
                                                 double jitter);
    struct pending_record {
        outbox_store::finished job;
        boost::asio::steady_timer wakeup;
        bool settled = false;
        bool ok = false;
    };

    boost::asio::any_io_executor ex_;
    store::db_worker& db_;
    ghl_access ghl_;
    dispatcher_options opt_;
    const speak4::clock& clock_;
    std::mt19937_64 rng_;
    pull_fn pull_;
    std::function<void(const std::string&)> heartbeat_;
    std::string failing_; ///< the failure of the current streak, logged once
    boost::asio::steady_timer wake_;
    boost::asio::steady_timer drained_;
    std::unique_ptr<outbox_store> box_;      ///< database thread only
    std::vector<pending_record*> to_record_; ///< outcomes waiting for a group commit
    bool recording_ = false;                 ///< a group commit is being written
    int active_ = 0;
    bool stopping_ = false;
    bool paused_ = false;
    mutable std::mutex stats_mutex_;
    dispatcher_stats stats_;
};

} // namespace speak4::sync
