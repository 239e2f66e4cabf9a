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
};

dispatcher_options dispatcher_options_from(const config& cfg);

/// What the outbox does after a failed GHL call: retry (transient, or a 2xx body that could not
/// be used), wait for credentials (401, needs_reauth), dead letter (other 4xx, with the body),
/// or, for a record that is gone, done when `gone_is_done` (a delete, a pull) else dead.
outcome outcome_from_error(const ghl::error& e, bool gone_is_done);

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

    /// New work was committed (intake): look now instead of at the next poll.
    void wake();

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
