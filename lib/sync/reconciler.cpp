#include "sync/reconciler.hpp"

#include "core/json.hpp"
#include "core/log.hpp"
#include "sync/rules.hpp"

#include <SQLiteCpp/Statement.h>
#include <SQLiteCpp/Transaction.h>
#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/serialize.hpp>
#include <set>

namespace speak4::sync {

namespace asio = boost::asio;
namespace bj = boost::json;

/// The audit rows of the requests one unit of work sent, committed with that work.
struct reconciler::audit_sink {
    std::vector<audit_entry> entries;
};

/// One due background child fetch.
struct reconciler::job {
    std::int64_t contact_id = 0;
    std::string ghl_id;
    bool all = false;
    int attempts = 0;
};

namespace {

constexpr const char* search_cursor = "contacts.search";
constexpr const char* legacy_cursor = "contacts.legacy";
constexpr const char* sweep_cursor = "contacts.sweep";
constexpr const char* resync_cursor = "contacts.resync";
/// Set by `resync --full --allow-deletes`: the next sweep may delete more than its share.
constexpr const char* allow_deletes_cursor = "contacts.sweep.allow_deletes";

bool transient(const ghl::error& e) {
    return e.transient() || e.kind == ghl::error_kind::bad_response;
}

/// A search/list item that carries only the lower-cased forms of the names (GHL's search does
/// so): storing it would put lower-cased names in the mirror, so it is fetched whole instead.
bool partial(const ghl::contact& c) {
    auto has = [&](std::string_view k) {
        const auto* v = c.raw.if_contains(k);
        return v && !v->is_null();
    };
    return (has("firstNameLowerCase") && !has("firstName")) ||
           (has("lastNameLowerCase") && !has("lastName")) ||
           (has("emailLowerCase") && !has("email"));
}

/// A durable pull of one contact (outbox op='pull', run by the dispatcher through
/// pull_contact) for a fetch a pass could not finish: the contact gets a stub row when the
/// mirror has none (as a webhook's pull does). False when a pending pull already covers it.
bool enqueue_pull(SQLite::Database& db, const std::string& ghl_id, const std::string& now) {
    std::int64_t contact_id = 0;
    {
        SQLite::Statement q(db, "SELECT id FROM contacts WHERE ghl_id = ?");
        q.bind(1, ghl_id);
        if (q.executeStep())
            contact_id = q.getColumn(0).getInt64();
    }
    if (contact_id == 0) {
        SQLite::Statement ins(
            db, "INSERT INTO contacts(ghl_id, created_at, updated_at) VALUES (?,?,?)");
        ins.bind(1, ghl_id);
        ins.bind(2, now);
        ins.bind(3, now);
        ins.exec();
        contact_id = db.getLastInsertRowid();
    } else {
        SQLite::Statement q(db, "SELECT 1 FROM outbox WHERE op = 'pull' AND entity = 'contact' "
                                "AND entity_id = ? AND state = 'pending' LIMIT 1");
        q.bind(1, contact_id);
        if (q.executeStep())
            return false;
    }
    SQLite::Statement ins(
        db, "INSERT INTO outbox(op, entity, entity_id, state, next_attempt_at, payload, "
            "created_at, updated_at) VALUES ('pull', 'contact', ?, 'pending', ?, ?, ?, ?)");
    ins.bind(1, contact_id);
    ins.bind(2, now);
    ins.bind(3, bj::serialize(bj::object{{"children", false}, {"reason", "pass_fetch_failed"}}));
    ins.bind(4, now);
    ins.bind(5, now);
    ins.exec();
    return true;
}

bj::object parse_cursor(const std::optional<std::string>& text) {
    if (!text)
        return {};
    auto v = json::parse(*text);
    return v && v->is_object() ? std::move(v->get_object()) : bj::object{};
}

bool cursor_complete(const bj::object& c) {
    return json::get_bool(c, "complete").value_or(true);
}

asio::awaitable<void> sleep_for(std::chrono::milliseconds d) {
    asio::steady_timer t(co_await asio::this_coro::executor, d);
    boost::system::error_code ec;
    co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
}

/// The last (dateUpdated) a page reached: the item's own dateUpdated, else its sort key.
std::optional<std::string> updated_of(const ghl::contact& c) {
    if (c.date_updated)
        return format_iso8601(*c.date_updated);
    if (!c.search_after.empty())
        if (auto ms = c.search_after.front().if_int64())
            return format_iso8601(from_epoch_ms(*ms));
    return std::nullopt;
}

} // namespace

reconciler_options reconciler_options_from(const config& cfg) {
    reconciler_options o;
    o.poll_interval = std::chrono::seconds(std::max(1, cfg.sync.poll_interval_seconds));
    o.full_sweep_hours = cfg.sync.full_sweep_hours;
    o.mode = cfg.sync.list_mode;
    o.children = cfg.sync.fetch_children;
    o.entities = cfg.sync.entities;
    // The incremental floor covers GHL's search index lag (sync.index_lag_seconds).
    o.overlap = std::chrono::seconds(cfg.sync.index_lag_seconds);
    o.mirror.policy = cfg.sync.conflict;
    o.mirror.rules = cfg.rules;
    return o;
}

void request_full_resync(SQLite::Database& db, sys_time now, bool allow_deletes) {
    SQLite::Statement c(
        db,
        "INSERT INTO sync_cursors(name, value, updated_at) VALUES (?,?,?) "
        "ON CONFLICT(name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at");
    c.bind(1, resync_cursor);
    c.bind(2, format_iso8601(now));
    c.bind(3, format_iso8601(now));
    c.exec();
    if (allow_deletes) {
        c.reset();
        c.bind(1, allow_deletes_cursor);
        c.exec();
    }
}

reconciler::reconciler(asio::any_io_executor ex, store::db_worker& db, ghl_access ghl,
                       reconciler_options opt, const speak4::clock& clk)
    : ex_(ex)
    , db_(db)
    , ghl_(std::move(ghl))
    , opt_(std::move(opt))
    , clock_(clk)
    , wake_(ex)
    , child_wake_(ex) {}

pull_fn reconciler::pull_function() {
    return [this](ghl::client& c, const work_item& item) { return pull_contact(c, item); };
}

void reconciler::stop() {
    asio::dispatch(ex_, [this] {
        stopping_ = true;
        wake_.cancel();
        child_wake_.cancel();
    });
}

void reconciler::wake() {
    wake_.cancel();
    child_wake_.cancel();
}

bool reconciler::held_by_breaker() const {
    return ghl_.options.breaker && ghl_.options.breaker->state() != ghl::breaker_state::closed;
}

void reconciler::trigger_full_resync() {
    asio::dispatch(ex_, [this] {
        full_requested_ = true;
        wake_.cancel();
    });
}

mirror reconciler::make_mirror(SQLite::Database& db) const {
    return mirror(db, clock_, opt_.mirror);
}

std::unique_ptr<ghl::client> reconciler::make_client(std::shared_ptr<audit_sink> sink) {
    ghl::client_options copt = ghl_.options;
    copt.lane = ghl::lane::pull; // passes, sweeps and child fetches never starve pushes
    copt.observer = [sink](const ghl::request_record& r) {
        sink->entries.push_back(audit_from_request(r));
    };
    return std::make_unique<ghl::client>(ghl_.http, std::move(copt), ghl_.tokens, ghl_.limiter,
                                         clock_);
}

asio::awaitable<void> reconciler::write_audit_only(std::shared_ptr<audit_sink> sink) {
    if (sink->entries.empty())
        co_return;
    try {
        co_await db_.run([&](SQLite::Database& db) {
            SQLite::Transaction tx(db, SQLite::TransactionBehavior::IMMEDIATE);
            make_mirror(db).write_audit(sink->entries);
            tx.commit();
        });
    } catch (const std::exception& e) {
        log::error("recording pull audit rows failed", {{"error", e.what()}});
    }
    sink->entries.clear();
}

asio::awaitable<void> reconciler::yield_to_pushes() {
    if (!ghl_.limiter)
        co_return;
    // Pulls leave the last part of the burst to pushes: wait while the budget is below the
    // reserve, but never longer than a window (the limiter itself still paces the request).
    const auto started = std::chrono::steady_clock::now();
    for (;;) {
        const auto st = ghl_.limiter->state(ghl_.options.location_id, ghl_.limiter->clock().now());
        const long long reserve = std::max<long long>(1, static_cast<long long>(st.burst) *
                                                             opt_.push_reserve_percent / 100);
        const auto window = st.window.count() > 0 ? st.window : std::chrono::milliseconds(10000);
        if (st.tokens > reserve || stopping_ ||
            std::chrono::steady_clock::now() - started >= window)
            co_return;
        const auto step = std::clamp(window / std::max(1, st.burst), std::chrono::milliseconds(10),
                                     std::chrono::milliseconds(1000));
        co_await sleep_for(step);
    }
}

// --- per-contact pull (the dispatcher's pull_fn) ----------------------------------------------

asio::awaitable<outcome> reconciler::pull_contact(ghl::client& c, const work_item& item) {
    if (!item.ctx.ghl_id || item.ctx.ghl_id->empty()) {
        outcome o;
        o.what = outcome::kind::dead;
        o.error = "pull: the contact has no GHL id";
        co_return o;
    }
    const std::string id = *item.ctx.ghl_id;
    const sys_time listed_at = clock_.now();

    auto mark_gone = [&]() -> asio::awaitable<outcome> {
        try {
            co_await db_.run([&](SQLite::Database& db) {
                SQLite::Transaction tx(db, SQLite::TransactionBehavior::IMMEDIATE);
                make_mirror(db).mark_contact_deleted(id);
                tx.commit();
            });
        } catch (const std::exception& e) {
            outcome o;
            o.what = outcome::kind::retry;
            o.error = std::string("pull: recording the remote delete failed: ") + e.what();
            co_return o;
        }
        log::info("contact deleted remotely", {{"ghl_id", id}});
        outcome o;
        o.gone = true;
        co_return o;
    };

    // A read by id answering "not found" about this contact is GHL saying it is gone; any other
    // not-found (an HTML 404, an unknown route) is a dead letter that deletes nothing.
    auto not_gone = [](const ghl::error& e) {
        outcome o = outcome_from_error(e, true);
        if (e.kind == ghl::error_kind::not_found) {
            o.what = outcome::kind::dead;
            o.gone = false;
            o.error += " (not evidence that the contact is gone; nothing marked deleted)";
        }
        return o;
    };
    auto got = co_await c.get_contact(id);
    if (!got) {
        if (says_gone(got.error(), entity_kind::contact, id))
            co_return co_await mark_gone();
        co_return not_gone(got.error());
    }

    std::optional<std::vector<ghl::task>> tasks;
    std::optional<std::vector<ghl::note>> notes;
    std::optional<std::vector<ghl::appointment>> appts;
    // Children sync.entities does not list are never fetched (nullopt: left as they are).
    if (item.children && opt_.entities.tasks) {
        auto t = co_await c.list_tasks(id);
        if (!t) {
            if (says_gone(t.error(), entity_kind::contact, id))
                co_return co_await mark_gone();
            co_return not_gone(t.error());
        }
        tasks = std::move(*t);
    }
    if (item.children && opt_.entities.notes) {
        auto n = co_await c.list_notes(id);
        if (!n)
            co_return not_gone(n.error());
        notes = std::move(*n);
    }
    if (item.children && opt_.entities.appointments) {
        auto a = co_await c.list_appointments(id);
        if (a) {
            appts = std::move(*a);
        } else if (transient(a.error())) {
            co_return outcome_from_error(a.error(), true);
        } else {
            // Appointments need another scope than contacts; lacking it must not block the
            // contact's pull.
            log::warn("pull: appointments not available",
                      {{"ghl_id", id}, {"error", a.error().what()}});
        }
    }

    std::vector<ghl::contact> business;
    if (opt_.mirror.rules.business_contacts && got->business_id && !got->business_id->empty()) {
        std::string err;
        if (!co_await fetch_business(c, *got->business_id, business, err))
            log::warn("pull: business contacts not fetched", {{"ghl_id", id}, {"error", err}});
    }

    contact_result res;
    try {
        res = co_await db_.run([&](SQLite::Database& db) {
            SQLite::Transaction tx(db, SQLite::TransactionBehavior::IMMEDIATE);
            mirror m = make_mirror(db);
            m.set_fetched_at(listed_at);
            m.revive_contact(got->id); // GHL shows it: a contact marked deleted lives again
            contact_result r = m.apply_contact(*got);
            if (!r.skipped) {
                if (tasks)
                    m.apply_tasks(r.id, *tasks, listed_at);
                if (notes)
                    m.apply_notes(r.id, *notes, listed_at);
                if (appts)
                    m.apply_appointments(r.id, *appts, listed_at);
                // A contact that changed has children worth reading, when not read just now.
                if (!item.children && r.changed)
                    m.enqueue_children(r.id, true, "changed");
            }
            for (const auto& b : business)
                if (b.id != got->id)
                    m.apply_contact(b);
            tx.commit();
            return r;
        });
    } catch (const std::exception& e) {
        outcome o;
        o.what = outcome::kind::retry;
        o.error = std::string("pull: applying to the mirror failed: ") + e.what();
        co_return o;
    }
    log::debug("pulled contact", {{"ghl_id", id},
                                  {"contact_id", res.id},
                                  {"changed", res.changed},
                                  {"conflicts", res.conflicts},
                                  {"children", item.children}});
    outcome o;
    o.ghl_id = id;
    co_return o;
}

asio::awaitable<bool> reconciler::fetch_business(ghl::client& c, const std::string& business_id,
                                                 std::vector<ghl::contact>& out,
                                                 std::string& error) {
    // Bounded: a business with more contacts than this is read only in part (logged).
    constexpr int max_pages = 100;
    int skip = 0;
    for (int page = 0; page < max_pages; ++page) {
        ghl::business_request req;
        req.business_id = business_id;
        req.limit = opt_.business_page;
        req.skip = skip;
        auto r = co_await c.business_contacts(req);
        if (!r) {
            error = r.error().what();
            co_return false;
        }
        for (auto& bc : r->contacts) {
            if (partial(bc)) {
                auto whole = co_await c.get_contact(bc.id);
                if (!whole) {
                    if (whole.error().kind == ghl::error_kind::not_found)
                        continue;
                    error = whole.error().what();
                    co_return false;
                }
                out.push_back(std::move(*whole));
            } else {
                out.push_back(std::move(bc));
            }
        }
        const auto n = static_cast<int>(r->contacts.size()) + r->skipped;
        skip += n;
        if (n < opt_.business_page || (r->count && skip >= *r->count))
            co_return true;
    }
    log::warn("business has more contacts than read",
              {{"business_id", business_id}, {"read", skip}});
    co_return true;
}

// --- passes ------------------------------------------------------------------------------------

asio::awaitable<pull_report> reconciler::incremental_pull() {
    if (pass_running_) {
        pull_report r;
        r.ok = false;
        r.error = "a pull pass is already running";
        co_return r;
    }
    pass_running_ = true;
    const bool full = std::exchange(full_requested_, false);
    pull_report r;
    try {
        co_await pass(full, r);
    } catch (const std::exception& e) {
        r.ok = false;
        r.error = e.what();
    }
    pass_running_ = false;
    if (!r.ok)
        log::warn("pull pass stopped", {{"error", r.error}, {"pages", r.pages}});
    else if (r.listed > 0 || r.initial)
        log::info("pull pass", {{"complete", r.complete},
                                {"initial", r.initial},
                                {"full", r.full},
                                {"pages", r.pages},
                                {"listed", r.listed},
                                {"created", r.created},
                                {"updated", r.updated},
                                {"unchanged", r.unchanged},
                                {"deleted", r.deleted},
                                {"fetched", r.fetched},
                                {"conflicts", r.conflicts},
                                {"children_queued", r.children_queued}});
    co_return r;
}

/// One page of the contact listing, requested (possibly ahead of its turn) with its own client
/// and audit sink, which the page keeps for its whole fetches and its commit.
struct reconciler::page_fetch {
    explicit page_fetch(const asio::any_io_executor& ex)
        : ready(ex, asio::steady_timer::time_point::max()) {}

    std::shared_ptr<audit_sink> sink;
    std::unique_ptr<ghl::client> client;
    sys_time fetched_at; ///< when the request went out (mirror::set_fetched_at)
    bool done = false;
    asio::steady_timer ready; ///< cancelled when done
    std::optional<std::string> error;
    std::vector<ghl::contact> items;
    /// prepare_contact() of each item that may be stored as it is (not partial()), done here
    /// on the network thread while the database thread writes the page before.
    std::vector<std::optional<prepared_contact>> prepared;
    bool more = false;
    bj::array next_search_after;
    std::optional<long long> next_start_after;
    std::optional<std::string> next_start_after_id;
};

std::shared_ptr<reconciler::page_fetch>
reconciler::start_page(bool legacy, const std::optional<std::string>& floor,
                       const std::optional<bj::array>& search_after,
                       std::optional<long long> start_after,
                       const std::optional<std::string>& start_after_id) {
    auto p = std::make_shared<page_fetch>(ex_);
    p->sink = std::make_shared<audit_sink>();
    p->client = make_client(p->sink);
    p->fetched_at = clock_.now();
    auto fetch = [](reconciler* self, std::shared_ptr<page_fetch> p, bool legacy,
                    std::optional<std::string> floor, std::optional<bj::array> search_after,
                    std::optional<long long> start_after,
                    std::optional<std::string> start_after_id) -> asio::awaitable<void> {
        if (legacy) {
            ghl::list_request req;
            req.limit = self->opt_.legacy_page;
            req.start_after = start_after;
            req.start_after_id = start_after_id;
            auto r = co_await p->client->list_contacts(req);
            for (int attempt = 0; !r; ++attempt) {
                const bool again = co_await self->retry_page(r.error(), attempt);
                if (!again)
                    break;
                r = co_await p->client->list_contacts(req);
            }
            if (r) {
                p->items = std::move(r->contacts);
                p->more = r->more;
                p->next_start_after = r->next_start_after;
                p->next_start_after_id = r->next_start_after_id;
                if (p->more && !p->next_start_after && !p->next_start_after_id) {
                    // No way to ask for the next page: stop rather than loop on this one.
                    log::warn("legacy listing gave no cursor for its next page; pass ends here");
                    p->more = false;
                }
            } else {
                p->error = r.error().what();
            }
        } else {
            ghl::search_request req;
            req.page_limit = self->opt_.search_page;
            req.search_after = std::move(search_after);
            if (floor)
                req.filters.push_back(ghl::range_filter("dateUpdated", bj::value(*floor)));
            req.sort.push_back(ghl::sort_by("dateUpdated", true));
            auto r = co_await p->client->search_contacts(req);
            for (int attempt = 0; !r; ++attempt) {
                const bool again = co_await self->retry_page(r.error(), attempt);
                if (!again)
                    break;
                r = co_await p->client->search_contacts(req);
            }
            if (r) {
                p->items = std::move(r->contacts);
                p->more = r->more;
                p->next_search_after = std::move(r->next_search_after);
            } else {
                p->error = r.error().what();
            }
        }
        p->prepared.resize(p->items.size());
        for (std::size_t i = 0; i < p->items.size(); ++i)
            if (!partial(p->items[i]))
                p->prepared[i] = prepare_contact(p->items[i]);
        p->done = true;
        p->ready.cancel();
    };
    // Never throws (the client reports errors as results); the page holds what it needs.
    asio::co_spawn(ex_, fetch(this, p, legacy, floor, search_after, start_after, start_after_id),
                   asio::detached);
    return p;
}

asio::awaitable<void> reconciler::wait_page(page_fetch& p) {
    while (!p.done) {
        boost::system::error_code ec;
        co_await p.ready.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
}

asio::awaitable<ghl::result<ghl::contact>>
reconciler::fetch_whole(ghl::client& c, const std::string& id, pull_report& report) {
    // A transient failure of one fetch is retried here, a few times with full-jitter backoff
    // (bounded), instead of failing the page; what still fails is deferred by the caller.
    const retry_policy policy{static_cast<int>(opt_.fetch_retry_base.count()),
                              static_cast<int>(opt_.fetch_retry_max.count()), 0};
    for (int attempt = 0;; ++attempt) {
        co_await yield_to_pushes();
        auto r = co_await c.get_contact(id);
        ++report.fetched;
        if (r || !transient(r.error()) || r.error().step == "breaker" ||
            attempt >= opt_.fetch_retries || stopping_)
            co_return r;
        if (r.error().retry_after && *r.error().retry_after > opt_.fetch_retry_max)
            co_return r; // a long Retry-After: the durable queue waits for it, not the pass
        ++report.fetch_retries;
        co_await sleep_for(
            backoff_delay(policy, attempt, r.error().retry_after, [this] { return uniform01(); }));
    }
}

asio::awaitable<bool> reconciler::retry_page(const ghl::error& e, int attempt) {
    if (!transient(e) || e.step == "breaker" || attempt >= opt_.fetch_retries || stopping_ ||
        (e.retry_after && *e.retry_after > opt_.fetch_retry_max))
        co_return false;
    const retry_policy policy{static_cast<int>(opt_.fetch_retry_base.count()),
                              static_cast<int>(opt_.fetch_retry_max.count()), 0};
    co_await sleep_for(
        backoff_delay(policy, attempt, e.retry_after, [this] { return uniform01(); }));
    co_return true;
}

double reconciler::uniform01() {
    return std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
}

/// What a page's items come to, decided before its commit.
struct reconciler::page_plan {
    struct to_apply {
        ghl::contact record;
        bool changed = false; // dateUpdated moved on a contact we had
        std::optional<prepared_contact> prepared;
        bool revive = false; // marked deleted, yet a read by id shows it
    };
    std::vector<to_apply> apply;
    std::vector<std::string> gone;
    /// Fetches that still failed after the in-pass retries: durable pulls (outbox op='pull'),
    /// so the page commits and the cursor moves on without skipping them.
    std::vector<std::string> deferred;
    std::vector<std::int64_t> tasks_only; // unchanged, but a full pass re-reads their tasks
    std::vector<ghl::contact> business;
    std::optional<std::string> last_updated;
    std::optional<std::string> last_id;
};

asio::awaitable<std::optional<std::string>>
reconciler::plan_page(page_fetch& page, bool full, std::set<std::string>& businesses_done,
                      page_plan& plan, pull_report& report) {
    const bool legacy = opt_.mode == list_mode::legacy;
    std::vector<ghl::contact>& items = page.items;
    report.listed += static_cast<long long>(items.size());

    // One read transaction for the page (not one per lookup: each would take and release the
    // WAL read lock).
    const std::vector<std::optional<known_contact>> known =
        co_await db_.run([&](SQLite::Database& db) {
            SQLite::Transaction tx(db, SQLite::TransactionBehavior::DEFERRED);
            mirror m = make_mirror(db);
            std::vector<std::optional<known_contact>> out;
            out.reserve(items.size());
            for (const auto& c : items)
                out.push_back(m.find_contact(c.id));
            tx.commit();
            return out;
        });

    // Which items to store as they are, fetch whole, or skip.
    for (std::size_t i = 0; i < items.size(); ++i) {
        auto& c = items[i];
        const auto& k = known[i];
        if (auto u = updated_of(c))
            plan.last_updated = u;
        plan.last_id = c.id;
        if (k && k->deleted) {
            // Listed although the mirror has it deleted: a search index behind GHL, or a
            // deletion that was wrong. A read by id (never lagged) decides (DESIGN §9).
            auto whole = co_await fetch_whole(*page.client, c.id, report);
            if (whole && whole->id == c.id)
                plan.apply.push_back({std::move(*whole), true, std::nullopt, true});
            else
                ++report.skipped;
            continue;
        }
        const bool had = k && k->has_raw;
        if (had && c.date_updated && k->remote_updated_at &&
            *c.date_updated <= *k->remote_updated_at) {
            ++report.unchanged;
            if (full)
                plan.tasks_only.push_back(k->id);
            continue;
        }
        if (had && !c.date_updated && legacy) {
            ++report.unchanged; // a listing without dateUpdated cannot tell; pull_contact can
            continue;
        }
        if (!had && !partial(c)) {
            plan.apply.push_back({std::move(c), false, std::move(page.prepared[i])});
            continue;
        }
        auto whole = co_await fetch_whole(*page.client, c.id, report);
        if (whole) {
            plan.apply.push_back({std::move(*whole), had, std::nullopt});
        } else if (says_gone(whole.error(), entity_kind::contact, c.id)) {
            plan.gone.push_back(c.id);
        } else if (transient(whole.error())) {
            plan.deferred.push_back(c.id);
        } else {
            co_return whole.error().what();
        }
    }

    if (opt_.mirror.rules.business_contacts) {
        for (const auto& a : plan.apply) {
            const auto& b = a.record.business_id;
            if (!b || b->empty() || !businesses_done.insert(*b).second)
                continue;
            std::string err;
            if (!co_await fetch_business(*page.client, *b, plan.business, err))
                co_return err;
        }
    }
    co_return std::nullopt;
}

pull_report reconciler::commit_page(SQLite::Database& db, page_plan& plan, const page_commit& pc) {
    SQLite::Transaction tx(db, SQLite::TransactionBehavior::IMMEDIATE);
    mirror m = make_mirror(db);
    m.set_fetched_at(pc.fetched_at);
    pull_report t;
    for (auto& a : plan.apply) {
        if (a.revive)
            m.revive_contact(a.record.id);
        const contact_result r = a.prepared ? m.apply_contact(a.record, std::move(*a.prepared))
                                            : m.apply_contact(a.record);
        if (r.skipped) {
            ++t.skipped;
            continue;
        }
        t.created += r.created ? 1 : 0;
        t.updated += !r.created && r.changed ? 1 : 0;
        t.unchanged += !r.created && !r.changed ? 1 : 0;
        t.conflicts += r.conflicts;
        t.invalid_fields += r.invalid_fields;
        const bool changed = r.created || a.changed;
        // Children follow (DESIGN §6): "all" for every new or changed contact; on_demand for
        // contacts that change after the initial import.
        const bool queue =
            opt_.children == fetch_children::all ? changed : (changed && !pc.initial);
        if (queue) {
            m.enqueue_children(r.id, true, pc.initial ? "initial" : pc.full ? "resync" : "changed");
            ++t.children_queued;
        }
    }
    if (opt_.children == fetch_children::all)
        for (const auto id : plan.tasks_only) {
            m.enqueue_children(id, false, "resync");
            ++t.children_queued;
        }
    for (const auto& g : plan.gone)
        t.deleted += m.mark_contact_deleted(g) ? 1 : 0;
    for (const auto& id : plan.deferred)
        t.deferred += enqueue_pull(db, id, m.now_text()) ? 1 : 0;
    for (const auto& b : plan.business) {
        const contact_result r = m.apply_contact(b);
        t.business += r.skipped ? 0 : 1;
        t.conflicts += r.conflicts;
    }
    m.write_audit(pc.audit);
    m.set_cursor(pc.cursor_name, bj::serialize(pc.next_cursor));
    if (pc.complete) {
        m.set_cursor("last_pull_at", m.now_text());
        if (pc.full)
            m.erase_cursor(resync_cursor);
        // An initial import listed everything there is: nothing to sweep yet.
        if (pc.initial && !pc.sweep_cursor_exists)
            m.set_cursor(sweep_cursor, bj::serialize(bj::object{{"complete", true},
                                                                {"last_sweep_at", m.now_text()}}));
    }
    if (fail_point)
        fail_point("page", pc.page_no);
    tx.commit();
    return t;
}

asio::awaitable<void> reconciler::pass(bool full_requested, pull_report& report) {
    const bool legacy = opt_.mode == list_mode::legacy;
    const char* cursor_name = legacy ? legacy_cursor : search_cursor;

    struct start_state {
        std::optional<std::string> cursor;
        bool resync = false;
        bool sweep_cursor = false;
    };
    const start_state st = co_await db_.run([&](SQLite::Database& db) {
        SQLite::Transaction tx(db, SQLite::TransactionBehavior::IMMEDIATE);
        mirror m = make_mirror(db);
        start_state s;
        s.cursor = m.cursor(cursor_name);
        // Persisted, so a requested resync survives a crash before it completes.
        if (full_requested)
            m.set_cursor(resync_cursor, m.now_text());
        s.resync = m.cursor(resync_cursor).has_value();
        s.sweep_cursor = m.cursor(sweep_cursor).has_value();
        tx.commit();
        return s;
    });
    const bj::object cur = parse_cursor(st.cursor);
    const bool in_progress = st.cursor && !cursor_complete(cur);
    report.initial = !st.cursor;
    // A resync requested during a pass waits for that pass to finish.
    const bool full =
        in_progress ? json::get_bool(cur, "full").value_or(false) : (report.initial || st.resync);
    report.full = full;

    // Where this pass starts.
    std::optional<std::string> floor;
    std::optional<bj::array> search_after;
    std::optional<long long> start_after;
    std::optional<std::string> start_after_id;
    std::optional<std::string> last_updated = json::get_string(cur, "last_updated");
    std::optional<std::string> last_id = json::get_string(cur, "last_id");
    if (in_progress) {
        floor = json::get_string(cur, "floor");
        if (const auto* sa = json::get_array(cur, "search_after"); sa && !sa->empty())
            search_after = *sa;
        start_after = json::get_int(cur, "start_after");
        start_after_id = json::get_string(cur, "start_after_id");
    } else if (!full && last_updated) {
        // Re-read the index lag before the cursor: GHL's search index shows changes late and
        // out of order. Unchanged contacts in the overlap are skipped by dateUpdated, so it
        // costs search pages only.
        if (auto t = parse_iso8601(*last_updated))
            floor = format_iso8601(*t - opt_.overlap);
    }

    std::set<std::string> businesses_done;
    // The page pipeline: page n+1 is requested as soon as page n has arrived (it needs only the
    // cursor page n ends at), so the listing is read while the previous page is checked and
    // written. Pages are still decided and committed strictly in order, each with its cursor.
    co_await yield_to_pushes();
    std::shared_ptr<page_fetch> page =
        start_page(legacy, floor, search_after, start_after, start_after_id);
    for (long long page_no = 1; !stopping_; ++page_no) {
        co_await wait_page(*page);
        if (page->error) {
            co_await write_audit_only(page->sink);
            report.ok = false;
            report.error = *page->error;
            co_return;
        }
        const bool more = page->more;
        std::shared_ptr<page_fetch> next;
        if (more) {
            co_await yield_to_pushes();
            next = start_page(legacy, floor, page->next_search_after, page->next_start_after,
                              page->next_start_after_id);
        }
        // Leaving early: the page requested ahead is waited for and its request audited.
        auto abandon_next = [&]() -> asio::awaitable<void> {
            if (next) {
                co_await wait_page(*next);
                co_await write_audit_only(next->sink);
            }
        };

        // Per-page decisions (and the fetches they need).
        page_plan plan;
        std::optional<std::string> stop_reason;
        std::exception_ptr failed;
        try {
            stop_reason = co_await plan_page(*page, full, businesses_done, plan, report);
        } catch (...) {
            failed = std::current_exception();
        }
        if (failed || stop_reason) {
            co_await write_audit_only(page->sink);
            co_await abandon_next();
            if (failed)
                std::rethrow_exception(failed);
            report.ok = false;
            report.error = *stop_reason;
            co_return;
        }

        // The commit: the page, its audit rows and the cursor in one transaction.
        bj::object next_cursor;
        if (legacy) {
            next_cursor["complete"] = !more;
            if (more) {
                next_cursor["start_after"] = page->next_start_after
                                                 ? bj::value(*page->next_start_after)
                                                 : bj::value(nullptr);
                next_cursor["start_after_id"] = page->next_start_after_id
                                                    ? bj::value(*page->next_start_after_id)
                                                    : bj::value(nullptr);
            }
        } else {
            if (plan.last_updated) {
                last_updated = plan.last_updated;
                last_id = plan.last_id;
            }
            next_cursor["floor"] = floor ? bj::value(*floor) : bj::value(nullptr);
            next_cursor["search_after"] =
                more ? bj::value(page->next_search_after) : bj::value(nullptr);
            next_cursor["last_updated"] =
                last_updated ? bj::value(*last_updated) : bj::value(nullptr);
            next_cursor["last_id"] = last_id ? bj::value(*last_id) : bj::value(nullptr);
            next_cursor["complete"] = !more;
        }
        next_cursor["full"] = full;
        const page_commit pc{cursor_name,
                             std::move(next_cursor),
                             page->sink->entries,
                             page->fetched_at,
                             report.initial,
                             full,
                             !more,
                             st.sweep_cursor,
                             page_no};
        pull_report tally;
        try {
            tally =
                co_await db_.run([&](SQLite::Database& db) { return commit_page(db, plan, pc); });
        } catch (...) {
            failed = std::current_exception();
        }
        if (failed) {
            co_await abandon_next();
            std::rethrow_exception(failed);
        }
        report.pages += 1;
        report.created += tally.created;
        report.updated += tally.updated;
        report.unchanged += tally.unchanged;
        report.skipped += tally.skipped;
        report.conflicts += tally.conflicts;
        report.invalid_fields += tally.invalid_fields;
        report.children_queued += tally.children_queued;
        report.deleted += tally.deleted;
        report.deferred += tally.deferred;
        report.business += tally.business;
        if (tally.children_queued > 0)
            child_wake_.cancel(); // the background worker has work now
        if (tally.deferred > 0 && on_deferred)
            on_deferred(); // the dispatcher runs the durable pulls

        if (!more) {
            report.complete = true;
            break;
        }
        page = std::move(next);
    }
    // Stopped between pages: the page requested ahead is not applied; its request is audited.
    if (!report.complete) {
        co_await wait_page(*page);
        co_await write_audit_only(page->sink);
    }
    co_return;
}

// --- delete sweep ------------------------------------------------------------------------------

bool reconciler::sweep_due(const std::optional<std::string>& text) const {
    if (opt_.full_sweep_hours <= 0)
        return false;
    if (!text)
        return true;
    const bj::object c = parse_cursor(text);
    if (!cursor_complete(c))
        return true; // resume an interrupted sweep
    const auto last = json::get_string(c, "last_sweep_at");
    const auto at = last ? parse_iso8601(*last) : std::nullopt;
    return !at || clock_.now() - *at >= std::chrono::hours(opt_.full_sweep_hours);
}

asio::awaitable<sweep_report> reconciler::sweep_deletes() {
    sweep_report report;
    if (sweep_running_) {
        report.ok = false;
        report.error = "a sweep is already running";
        co_return report;
    }
    sweep_running_ = true;
    struct guard {
        bool& flag;
        ~guard() { flag = false; }
    } g{sweep_running_};
    const bool legacy = opt_.mode == list_mode::legacy;

    try {
        bj::object cur = co_await db_.run([&](SQLite::Database& db) {
            SQLite::Transaction tx(db, SQLite::TransactionBehavior::IMMEDIATE);
            mirror m = make_mirror(db);
            bj::object c = parse_cursor(m.cursor(sweep_cursor));
            if (cursor_complete(c)) {
                // A new sweep: forget the ids of the last one.
                db.exec("DELETE FROM sweep_seen");
                bj::object fresh{{"complete", false}, {"started_at", m.now_text()}};
                if (const auto* last = c.if_contains("last_sweep_at"))
                    fresh["last_sweep_at"] = *last;
                c = std::move(fresh);
                m.set_cursor(sweep_cursor, bj::serialize(c));
            }
            tx.commit();
            return c;
        });
        const std::string started_at =
            json::get_string(cur, "started_at").value_or(format_iso8601(clock_.now()));

        for (long long page_no = 1;; ++page_no) {
            if (stopping_) {
                co_return report;
            }
            co_await yield_to_pushes();
            auto sink = std::make_shared<audit_sink>();
            auto client = make_client(sink);
            std::vector<std::string> ids;
            bool more = false;
            if (legacy) {
                ghl::list_request req;
                req.limit = opt_.legacy_page;
                req.start_after = json::get_int(cur, "start_after");
                req.start_after_id = json::get_string(cur, "start_after_id");
                auto r = co_await client->list_contacts(req);
                if (!r) {
                    co_await write_audit_only(sink);
                    report.ok = false;
                    report.error = r.error().what();
                    co_return report;
                }
                for (const auto& c : r->contacts)
                    ids.push_back(c.id);
                cur["total"] = r->total ? bj::value(*r->total) : bj::value(nullptr);
                more = r->more && (r->next_start_after || r->next_start_after_id);
                cur["start_after"] =
                    r->next_start_after ? bj::value(*r->next_start_after) : bj::value(nullptr);
                cur["start_after_id"] = r->next_start_after_id ? bj::value(*r->next_start_after_id)
                                                               : bj::value(nullptr);
                if (r->skipped > 0) {
                    // An item without an id could be any contact: deleting on this listing is
                    // unsafe.
                    co_await write_audit_only(sink);
                    report.ok = false;
                    report.error = "the listing has items without an id";
                    co_return report;
                }
            } else {
                ghl::search_request req;
                req.page_limit = opt_.search_page;
                if (const auto* sa = json::get_array(cur, "search_after"); sa && !sa->empty())
                    req.search_after = *sa;
                // dateAdded never changes, so no contact moves while the sweep pages.
                req.sort.push_back(ghl::sort_by("dateAdded", true));
                auto r = co_await client->search_contacts(std::move(req));
                if (!r) {
                    co_await write_audit_only(sink);
                    report.ok = false;
                    report.error = r.error().what();
                    co_return report;
                }
                for (const auto& c : r->contacts)
                    ids.push_back(c.id);
                cur["total"] = r->total ? bj::value(*r->total) : bj::value(nullptr);
                more = r->more;
                cur["search_after"] = r->next_search_after;
                if (r->skipped > 0) {
                    // An item without an id could be any contact: deleting on this listing is
                    // unsafe.
                    co_await write_audit_only(sink);
                    report.ok = false;
                    report.error = "the listing has items without an id";
                    co_return report;
                }
            }
            report.listed += static_cast<long long>(ids.size());
            co_await db_.run([&](SQLite::Database& db) {
                SQLite::Transaction tx(db, SQLite::TransactionBehavior::IMMEDIATE);
                mirror m = make_mirror(db);
                SQLite::Statement ins(db, "INSERT OR IGNORE INTO sweep_seen(ghl_id) VALUES (?)");
                for (const auto& id : ids) {
                    ins.reset();
                    ins.bind(1, id);
                    ins.exec();
                }
                m.write_audit(sink->entries);
                m.set_cursor(sweep_cursor, bj::serialize(cur));
                if (fail_point)
                    fail_point("sweep_page", page_no);
                tx.commit();
            });
            ++report.pages;
            if (!more)
                break;
        }

        // Everything listed: what the mirror has and GHL does not is gone.
        const auto started = parse_iso8601(started_at).value_or(clock_.now());
        const std::string cutoff = format_iso8601(started - opt_.sweep_margin);
        auto done = co_await db_.run([&](SQLite::Database& db) {
            SQLite::Transaction tx(db, SQLite::TransactionBehavior::IMMEDIATE);
            mirror m = make_mirror(db);
            const long long live =
                db.execAndGet(
                      "SELECT COUNT(*) FROM contacts WHERE deleted = 0 AND ghl_id IS NOT NULL")
                    .getInt64();
            // Rows written since the sweep began (a push that just linked its GHL id, a contact
            // pulled meanwhile) may be missing from a listing that had passed them.
            const std::string where =
                " FROM contacts c WHERE c.deleted = 0 AND c.ghl_id IS NOT NULL "
                "AND c.updated_at < ?1 AND c.created_at < ?1 "
                "AND NOT EXISTS (SELECT 1 FROM sweep_seen s WHERE s.ghl_id = c.ghl_id)";
            SQLite::Statement count(db, "SELECT COUNT(*)" + where);
            count.bind(1, cutoff);
            count.executeStep();
            const long long missing = count.getColumn(0).getInt64();
            count.reset();
            sweep_report r;
            // Deletion needs evidence (DESIGN §9): the listing must be whole (as many distinct
            // ids as GHL's `total` says it holds), and a sweep removes at most a share of the
            // mirror unless an operator allowed more (`resync --full --allow-deletes`).
            const long long seen = db.execAndGet("SELECT COUNT(*) FROM sweep_seen").getInt64();
            const auto total = json::get_int(cur, "total");
            const bool allowed = m.cursor(allow_deletes_cursor).has_value();
            const long long share =
                std::max<long long>(1, live * opt_.sweep_max_delete_percent / 100);
            r.listed_distinct = seen;
            r.total = total;
            if (missing > 0 && (!total || *total != seen)) {
                r.refused = true;
                r.refusal = total ? "the listing has " + std::to_string(seen) +
                                        " contacts, GHL's total says " + std::to_string(*total)
                                  : "GHL's listing gave no total to check it against";
            } else if (missing > share && !allowed) {
                r.refused = true;
                r.refusal = std::to_string(missing) + " of " + std::to_string(live) +
                            " contacts missing from the listing: more than the " +
                            std::to_string(opt_.sweep_max_delete_percent) +
                            "% a sweep deletes by itself (resync --full --allow-deletes)";
            }
            if (r.refused) {
                log::error("delete sweep refused: nothing deleted",
                           {{"reason", r.refusal},
                            {"missing", missing},
                            {"live", live},
                            {"listed", seen},
                            {"total", total ? bj::value(*total) : bj::value(nullptr)}});
            } else if (missing > 0) {
                std::vector<std::string> ids;
                SQLite::Statement q(db, "SELECT c.ghl_id" + where);
                q.bind(1, cutoff);
                while (q.executeStep())
                    ids.push_back(q.getColumn(0).getString());
                q.reset();
                for (const auto& id : ids)
                    r.deleted += m.mark_contact_deleted(id) ? 1 : 0;
            }
            db.exec("DELETE FROM sweep_seen");
            if (allowed && !r.refused)
                m.erase_cursor(allow_deletes_cursor); // spent by the sweep it was meant for
            m.set_cursor(sweep_cursor, bj::serialize(bj::object{{"complete", true},
                                                                {"last_sweep_at", started_at}}));
            tx.commit();
            return r;
        });
        report.deleted = done.deleted;
        report.refused = done.refused;
        report.refusal = done.refusal;
        report.listed_distinct = done.listed_distinct;
        report.total = done.total;
        report.complete = true;
        log::info("delete sweep", {{"pages", report.pages},
                                   {"listed", report.listed},
                                   {"deleted", report.deleted},
                                   {"refused", report.refused}});
    } catch (const std::exception& e) {
        report.ok = false;
        report.error = e.what();
        log::warn("delete sweep stopped", {{"error", report.error}});
    }
    co_return report;
}

// --- background children -----------------------------------------------------------------------

asio::awaitable<int> reconciler::drain_child_queue(int max_jobs) {
    int attempted = 0;
    while (attempted < max_jobs && !stopping_ && !held_by_breaker()) {
        if (ghl_.limiter) {
            // Children are a nicety: when the day's budget runs low they wait for tomorrow's.
            const auto st =
                ghl_.limiter->state(ghl_.options.location_id, ghl_.limiter->clock().now());
            if (st.daily_limit > 0 && st.daily_remaining * 20 < st.daily_limit)
                break;
        }
        const std::string now = format_iso8601(clock_.now());
        std::optional<job> j = co_await db_.run([&](SQLite::Database& db) -> std::optional<job> {
            SQLite::Statement q(
                db,
                "SELECT q.contact_id, c.ghl_id, q.what, q.attempts, c.deleted FROM pull_queue q "
                "JOIN contacts c ON c.id = q.contact_id WHERE q.next_attempt_at <= ? "
                "ORDER BY q.next_attempt_at, q.contact_id LIMIT 1");
            SQLite::Statement drop(db, "DELETE FROM pull_queue WHERE contact_id = ?");
            // A few rows may name contacts deleted or unlinked since they were queued.
            for (int i = 0; i < 100; ++i) {
                q.reset();
                q.bind(1, now);
                if (!q.executeStep())
                    return std::nullopt;
                const std::int64_t id = q.getColumn(0).getInt64();
                if (q.getColumn(1).isNull() || q.getColumn(4).getInt() != 0) {
                    q.reset();
                    drop.reset();
                    drop.bind(1, id);
                    drop.exec();
                    continue;
                }
                return job{id, q.getColumn(1).getString(), q.getColumn(2).getString() == "all",
                           q.getColumn(3).getInt()};
            }
            return std::nullopt;
        });
        if (!j)
            break;
        co_await yield_to_pushes();
        co_await run_child_job(*j);
        ++attempted;
    }
    co_return attempted;
}

asio::awaitable<bool> reconciler::run_child_job(const job& j) {
    auto sink = std::make_shared<audit_sink>();
    auto client = make_client(sink);
    const sys_time listed_at = clock_.now();
    std::optional<std::vector<ghl::task>> tasks;
    std::optional<std::vector<ghl::note>> notes;
    std::optional<std::vector<ghl::appointment>> appts;
    std::optional<ghl::error> failure;

    if (opt_.entities.tasks) {
        if (auto t = co_await client->list_tasks(j.ghl_id))
            tasks = std::move(*t);
        else
            failure = t.error();
    }
    if (!failure && j.all && opt_.entities.notes) {
        if (auto n = co_await client->list_notes(j.ghl_id))
            notes = std::move(*n);
        else
            failure = n.error();
    }
    if (!failure && j.all && opt_.entities.appointments) {
        if (auto a = co_await client->list_appointments(j.ghl_id))
            appts = std::move(*a);
        else if (transient(a.error()))
            failure = a.error();
        else
            log::warn("appointments not available",
                      {{"ghl_id", j.ghl_id}, {"error", a.error().what()}});
    }

    const bool gone = failure && says_gone(*failure, entity_kind::contact, j.ghl_id);
    try {
        co_await db_.run([&](SQLite::Database& db) {
            SQLite::Transaction tx(db, SQLite::TransactionBehavior::IMMEDIATE);
            mirror m = make_mirror(db);
            m.set_fetched_at(listed_at);
            // The contact's row now: a push may have folded a pulled copy into its own row
            // meanwhile, and SQLite can give a deleted row's id to the next new contact, so
            // j.contact_id may name another contact by now. The GHL id does not change.
            const auto here = m.find_contact(j.ghl_id);
            if (!here || here->deleted) {
                m.write_audit(sink->entries);
                tx.commit();
                return;
            }
            const std::int64_t contact_id = here->id;
            SQLite::Statement drop(db, "DELETE FROM pull_queue WHERE contact_id = ?");
            drop.bind(1, contact_id);
            if (gone) {
                m.mark_contact_deleted(j.ghl_id);
                drop.exec();
            } else if (failure) {
                const int attempts = j.attempts + 1;
                if (attempts >= opt_.max_child_attempts) {
                    drop.exec();
                    log::warn("background child pull dropped", {{"contact_id", contact_id},
                                                                {"attempts", attempts},
                                                                {"error", failure->what()}});
                } else {
                    // Back off 30 s, 1 min, 2 min, … up to an hour (at least Retry-After).
                    auto delay = std::chrono::milliseconds(
                        std::min<long long>(30000LL << std::min(attempts - 1, 10), 3600000));
                    if (failure->retry_after && *failure->retry_after > delay)
                        delay = *failure->retry_after;
                    SQLite::Statement u(
                        db,
                        "UPDATE pull_queue SET attempts = ?, next_attempt_at = ?, last_error = ? "
                        "WHERE contact_id = ?");
                    u.bind(1, attempts);
                    u.bind(2, format_iso8601(clock_.now() + delay));
                    u.bind(3, failure->what());
                    u.bind(4, contact_id);
                    u.exec();
                }
            } else {
                if (tasks)
                    m.apply_tasks(contact_id, *tasks, listed_at);
                if (notes)
                    m.apply_notes(contact_id, *notes, listed_at);
                if (appts)
                    m.apply_appointments(contact_id, *appts, listed_at);
                drop.exec();
            }
            m.write_audit(sink->entries);
            tx.commit();
        });
    } catch (const std::exception& e) {
        log::error("background child pull not recorded",
                   {{"contact_id", j.contact_id}, {"error", e.what()}});
        co_return false;
    }
    co_return !failure;
}

asio::awaitable<void> reconciler::child_worker() {
    ++workers_;
    while (!stopping_) {
        int n = 0;
        try {
            n = co_await drain_child_queue(1);
        } catch (const std::exception& e) {
            log::error("background child pull failed", {{"error", e.what()}});
        }
        if (n == 0 && !stopping_) {
            child_wake_.expires_after(opt_.child_idle_poll);
            boost::system::error_code ec;
            co_await child_wake_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        }
    }
    --workers_;
}

// --- the timer loop ----------------------------------------------------------------------------

asio::awaitable<void> reconciler::run() {
    asio::co_spawn(ex_, child_worker(), asio::detached);
    while (!stopping_) {
        if (held_by_breaker()) {
            // GHL looks down: no pass (its requests would only be refused); the breaker's
            // closing wakes this loop.
            wake_.expires_after(opt_.poll_interval);
            boost::system::error_code ec;
            co_await wake_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
            continue;
        }
        const pull_report r = co_await incremental_pull();

        bool do_sweep = false;
        try {
            const auto cursor = co_await db_.run(
                [&](SQLite::Database& db) { return make_mirror(db).cursor(sweep_cursor); });
            // A requested full resync also settles remote deletes (the initial import has none).
            do_sweep = (r.complete && r.full && !r.initial) || sweep_due(cursor);
        } catch (const std::exception& e) {
            log::error("reading the sweep cursor failed", {{"error", e.what()}});
        }
        if (do_sweep && !stopping_)
            co_await sweep_deletes();

        std::optional<sys_time> next_reminder;
        try {
            next_reminder = co_await db_.run([&](SQLite::Database& db) {
                fire_due_reminders(db, clock_.now());
                return next_reminder_due(db);
            });
        } catch (const std::exception& e) {
            log::error("firing reminders failed", {{"error", e.what()}});
        }

        if (heartbeat_)
            heartbeat_(r.ok ? std::string() : r.error);

        auto wait = opt_.poll_interval;
        if (next_reminder) {
            const auto until = std::chrono::duration_cast<std::chrono::milliseconds>(
                *next_reminder - clock_.now());
            wait = std::clamp(until, std::chrono::milliseconds(100), wait);
        }
        if (full_requested_ || stopping_)
            continue;
        wake_.expires_after(wait);
        boost::system::error_code ec;
        co_await wake_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    child_wake_.cancel();
    while (workers_ > 0)
        co_await sleep_for(std::chrono::milliseconds(20));
}

} // namespace speak4::sync
