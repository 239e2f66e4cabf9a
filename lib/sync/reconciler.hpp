#pragma once
// The pull path (DESIGN §2, §6, §7): GHL -> mirror + change feed.
//
// What it does:
//   * Incremental pull (timer, sync.poll_interval_seconds): POST /contacts/search filtered on
//     dateUpdated >= cursor - overlap (the search index is eventually consistent), sorted by
//     dateUpdated (GHL's searchAfter breaks ties by id), paged with searchAfter, 500 a page.
//     Each page's mirror writes, its audit rows AND the cursor are committed in ONE transaction,
//     so a crash mid-pass resumes at the next page: no gap, no duplicate. With
//     sync.list_mode = "legacy" the pass lists GET /contacts/ (100 a page, passing back
//     startAfter and startAfterId) from the start each time, skipping unchanged contacts.
//     The first pass (no cursor) imports every contact of the location page by page.
//   * Whole records: search results carry only lower-cased names, so a contact already in the
//     mirror whose dateUpdated moved is fetched whole (GET /contacts/:id) before its page
//     commits; a new contact is stored from the search item when the item carries its names
//     (firstName/lastName, not only their lower-cased forms), else fetched whole too.
//   * Children (sync.fetch_children): "all": every imported or changed contact gets a row in
//     pull_queue (migrations/0003_pull.sql), which a background worker drains one contact at a
//     time: GET tasks, notes, appointments. A full resync re-reads the tasks of unchanged
//     contacts too; notes and appointments are re-read only for contacts that changed (budget).
//     "on_demand": nothing at the initial import; contacts that change afterwards are queued,
//     and contact.opened / pull:true events (outbox op='pull', run through the dispatcher's
//     pull_fn) fetch them at once. The worker yields to pushes: it (and every other request of
//     the pull path except pull_contact) waits while the rate budget is below
//     push_reserve_percent of the burst.
//   * pull_contact(): the dispatcher's pull_fn for outbox op='pull' rows (contact.opened,
//     webhooks, lead.created): GET /contacts/:id and, when the item asks for children, its
//     tasks, notes and appointments; applied in one transaction. A not-found that names the
//     contact (says_gone) marks it deleted (outcome.gone); any other 404 is a dead letter. A
//     contact marked deleted that the read shows is revived (a `revived` changes row), and so is
//     one a listing shows again once a read by id confirms it. Audit rows are the dispatcher's (its
//     client's observer).
//   * Conflicts, bad input, tag routes, reminders: lib/sync/mirror.hpp and rules.hpp.
//   * Remote deletes: every sync.full_sweep_hours (0 = never) a sweep lists every GHL contact id
//     (search sorted by dateAdded, which never moves; or the legacy listing) into table
//     sweep_seen, page by page (bounded memory, resumable), then marks mirror contacts whose
//     ghl_id was not listed deleted (a changes row each). Rows touched since the sweep began
//     (minus a margin for the index lag) are left alone. Deletion needs evidence (DESIGN §9):
//     the sweep deletes nothing when its listing disagrees with GHL's `total` (as many distinct
//     ids as GHL says it holds, or no total given), or when it would remove more than
//     sweep_max_delete_percent (10%) of the live mirror, at least one contact (small mirrors
//     too); `resync --full --allow-deletes` lifts the share limit for the next sweep. An
//     empty or truncated listing must not wipe the mirror.
//   * Reminders: due reminders are fired (rules.hpp fire_due_reminders) by the timer loop,
//     which wakes for the next one.
//   * Business contacts (rules.business_contacts): a pulled contact with a businessId brings
//     GET /contacts/business/:businessId's contacts along (once per business per pass).
//   * The pull path never writes outbox rows (a pulled change never echoes back to GHL); it only
//     edits pending rows when the remote side wins a conflict (mirror.hpp).
//
// Cursors (sync_cursors): "contacts.search" {"floor","search_after","last_updated","last_id",
// "complete","full"}, "contacts.legacy" {"start_after","start_after_id","complete"},
// "contacts.sweep" {"complete","started_at","search_after"|"start_after…","last_sweep_at"},
// "contacts.resync" (a full resync was requested), "last_pull_at" (ISO, after each complete
// pass).
//
// Wiring (the daemon's context, after the dispatcher is built):
//
//   sync::reconciler rec(ex, db, access /* the dispatcher's ghl_access */,
//                        sync::reconciler_options_from(cfg), clock);
//   disp.set_pull(rec.pull_function());
//   asio::co_spawn(ex, rec.run(), asio::detached);   // until rec.stop()
//   // `speak4-sync resync --full`: sync::request_full_resync(db, now) (any process), or
//   // rec.trigger_full_resync() in the daemon.
//
// Threading: a reconciler lives on one executor `ex` (a single-threaded io_context or a
// strand); every member is called there, except stop() and trigger_full_resync(), which may be
// called from any thread (they post to `ex`). SQLite work runs on the db_worker thread. The
// reconciler must outlive run() and every pull_contact() in flight.

#include "core/clock.hpp"
#include "core/config.hpp"
#include "ghl/client.hpp"
#include "store/db_worker.hpp"
#include "sync/dispatcher.hpp"
#include "sync/mirror.hpp"
#include "sync/outbox.hpp"

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace speak4::sync {

struct reconciler_options {
    std::chrono::milliseconds poll_interval{std::chrono::seconds(60)};
    int full_sweep_hours = 24; ///< 0: never sweep
    speak4::list_mode mode = list_mode::search;
    speak4::fetch_children children = fetch_children::all;
    entity_set entities;   ///< sync.entities: children not listed are never fetched
    mirror_options mirror; ///< conflict policy and [rules]
    /// Re-read this much before the cursor (sync.index_lag_seconds): GHL's search index shows
    /// changes late and out of order.
    std::chrono::milliseconds overlap{std::chrono::seconds(300)};
    int search_page = 500; ///< pageLimit (GHL's maximum)
    int legacy_page = 100; ///< limit of GET /contacts/ (GHL's maximum)
    int business_page = 100;
    int push_reserve_percent = 20; ///< pulls wait while the budget is below this
    int max_child_attempts = 8;    ///< then a queued child fetch is dropped
    /// A transient failure of one fetch in a pass (GET /contacts/:id, a listing page) is
    /// retried this many times inside the pass, with full-jitter backoff from `fetch_retry_base`
    /// capped at `fetch_retry_max`; a contact whose fetch still fails becomes a durable pull
    /// (outbox op='pull') and the page commits without it.
    int fetch_retries = 3;
    std::chrono::milliseconds fetch_retry_base{200};
    std::chrono::milliseconds fetch_retry_max{2000};
    std::chrono::milliseconds child_idle_poll{std::chrono::seconds(1)};
    std::chrono::milliseconds sweep_margin{std::chrono::minutes(1)};
    /// A sweep deletes at most this share of the live mirror (and at least one contact) unless
    /// `resync --full --allow-deletes` allowed more.
    int sweep_max_delete_percent = 10;
};

/// From [sync] and [rules].
reconciler_options reconciler_options_from(const config& cfg);

/// What one pass (incremental_pull) did.
struct pull_report {
    bool ok = true;
    std::string error;     ///< why the pass stopped early (the cursor stays at the last page)
    bool complete = false; ///< reached the end of the listing (last_pull_at written)
    bool initial = false;  ///< first import (no cursor before)
    bool full = false;     ///< initial or requested full resync
    long long pages = 0;   ///< pages committed
    long long listed = 0;  ///< contacts listed
    long long created = 0;
    long long updated = 0;
    long long unchanged = 0;
    long long deleted = 0;       ///< gone when fetched whole
    long long skipped = 0;       ///< deleted in the mirror
    long long fetched = 0;       ///< GET /contacts/:id calls
    long long fetch_retries = 0; ///< of those, retries after a transient failure
    long long deferred = 0;      ///< contacts left to a durable pull (their fetch kept failing)
    long long conflicts = 0;
    long long invalid_fields = 0;
    long long children_queued = 0;
    long long business = 0; ///< business contacts applied
};

/// What one delete sweep did.
struct sweep_report {
    bool ok = true;
    std::string error;
    bool complete = false;
    bool refused = false;           ///< the listing was not evidence enough: nothing was deleted
    std::string refusal;            ///< why
    long long listed_distinct = 0;  ///< distinct ids the whole sweep listed
    std::optional<long long> total; ///< GHL's total (last page)
    long long pages = 0;
    long long listed = 0;
    long long deleted = 0;
};

/// Persists a request for a full resync, picked up by the daemon's next pass. Any process may
/// call it (CLI `resync --full`). Its own transaction.
/// `allow_deletes` (`resync --full --allow-deletes`): the sweep that follows may delete more than
/// sweep_max_delete_percent of the mirror (once; a listing that disagrees with GHL's total still
/// deletes nothing).
void request_full_resync(SQLite::Database& db, sys_time now, bool allow_deletes = false);

/// The pull path. See the top of this file.
class reconciler {
public:
    reconciler(boost::asio::any_io_executor ex, store::db_worker& db, ghl_access ghl,
               reconciler_options opt, const speak4::clock& clk = system_clock::instance());
    reconciler(const reconciler&) = delete;
    reconciler& operator=(const reconciler&) = delete;

    /// The dispatcher's pull_fn, bound to this reconciler.
    pull_fn pull_function();

    /// Called once per loop iteration: "" when the pass went through, else why it stopped
    /// early (the loop goes on at its next turn). The daemon's health registry listens.
    void set_heartbeat(std::function<void(const std::string& error)> f) {
        heartbeat_ = std::move(f);
    }

    /// Pulls one contact (the dispatcher's pull_fn): GET /contacts/:id, and with item.children
    /// its tasks, notes and appointments, applied in one transaction. Never throws.
    boost::asio::awaitable<outcome> pull_contact(ghl::client& c, const work_item& item);

    /// One pass over the contacts changed since the cursor (everything the first time, or after
    /// a full resync request). Resumes a pass a crash interrupted. Never throws.
    boost::asio::awaitable<pull_report> incremental_pull();

    /// One delete sweep (resumes an interrupted one). Never throws.
    boost::asio::awaitable<sweep_report> sweep_deletes();

    /// Runs up to `max_jobs` due background child fetches now (tests, and the worker). Returns
    /// how many were attempted.
    boost::asio::awaitable<int> drain_child_queue(int max_jobs);

    /// The timer loop: passes every poll interval, sweeps when due, fires reminders, and the
    /// background child worker. Returns after stop(), once the work in hand is recorded.
    boost::asio::awaitable<void> run();

    /// Ends run() (thread-safe).
    void stop();

    /// Looks again now (the circuit breaker closed): the pass and the child worker resume
    /// without waiting for their next poll. Call on `ex`.
    void wake();

    /// Makes the next pass a full one (then a delete sweep); wakes the loop (thread-safe).
    void trigger_full_resync();

    /// Test hook, called on the database thread inside a page's transaction just before it
    /// commits ("page" for pull passes, "sweep_page" for sweeps; `page` counts from 1 within
    /// the call). Throwing aborts that commit as a crash would.
    std::function<void(std::string_view point, long long page)> fail_point;

    /// Called (on `ex`) after a page committed durable pulls (deferred fetches): the daemon
    /// wakes its dispatcher, which runs them.
    std::function<void()> on_deferred;

private:
    struct audit_sink;
    struct job;
    struct page_fetch;
    struct page_plan;
    /// What a page's commit writes besides its plan.
    struct page_commit {
        const char* cursor_name;
        boost::json::object next_cursor;
        const std::vector<audit_entry>& audit;
        sys_time fetched_at;
        bool initial = false;
        bool full = false;
        bool complete = false; ///< the last page of the listing
        bool sweep_cursor_exists = false;
        long long page_no = 0;
    };

    std::unique_ptr<ghl::client> make_client(std::shared_ptr<audit_sink> sink);
    boost::asio::awaitable<void> yield_to_pushes();
    /// One pass; `report` holds what was done even when it throws.
    boost::asio::awaitable<void> pass(bool full_requested, pull_report& report);
    /// Requests one page of the listing now; wait_page() waits for it.
    std::shared_ptr<page_fetch> start_page(bool legacy, const std::optional<std::string>& floor,
                                           const std::optional<boost::json::array>& search_after,
                                           std::optional<long long> start_after,
                                           const std::optional<std::string>& start_after_id);
    boost::asio::awaitable<void> wait_page(page_fetch& p);
    /// Per-page decisions: which items are stored as listed, fetched whole (with in-pass
    /// retries), skipped, gone or deferred. nullopt, or why the pass stops at this page.
    boost::asio::awaitable<std::optional<std::string>>
    plan_page(page_fetch& page, bool full, std::set<std::string>& businesses_done, page_plan& plan,
              pull_report& report);
    /// The page, its audit rows and the cursor in one transaction (database thread).
    pull_report commit_page(SQLite::Database& db, page_plan& plan, const page_commit& pc);
    /// GET /contacts/:id, transient failures retried a few times (fetch_retries).
    boost::asio::awaitable<ghl::result<ghl::contact>>
    fetch_whole(ghl::client& c, const std::string& id, pull_report& report);
    /// A listing page failed: true after waiting to retry it (transient, within fetch_retries).
    boost::asio::awaitable<bool> retry_page(const ghl::error& e, int attempt);
    double uniform01();
    boost::asio::awaitable<bool> fetch_business(ghl::client& c, const std::string& business_id,
                                                std::vector<ghl::contact>& out, std::string& error);
    boost::asio::awaitable<void> child_worker();
    boost::asio::awaitable<bool> run_child_job(const job& j);
    boost::asio::awaitable<void> write_audit_only(std::shared_ptr<audit_sink> sink);
    bool sweep_due(const std::optional<std::string>& cursor) const;
    /// The circuit breaker holds calls back (GHL looks down): passes, sweeps and child fetches
    /// wait instead of spending requests and attempts.
    bool held_by_breaker() const;
    mirror make_mirror(SQLite::Database& db) const;

    boost::asio::any_io_executor ex_;
    store::db_worker& db_;
    ghl_access ghl_;
    reconciler_options opt_;
    const speak4::clock& clock_;
    boost::asio::steady_timer wake_;
    boost::asio::steady_timer child_wake_;
    bool stopping_ = false;
    std::function<void(const std::string&)> heartbeat_;
    bool full_requested_ = false;
    bool pass_running_ = false;
    bool sweep_running_ = false;
    int workers_ = 0;
    std::mt19937_64 rng_{std::random_device{}()};
};

} // namespace speak4::sync
