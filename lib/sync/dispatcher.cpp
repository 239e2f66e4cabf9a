#include "sync/dispatcher.hpp"

#include "core/json.hpp"
#include "core/log.hpp"
#include "store/db_error.hpp"

#include <SQLiteCpp/Statement.h>
#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cctype>

namespace speak4::sync {
namespace {

namespace asio = boost::asio;
namespace bj = boost::json;

std::optional<std::string> str(const bj::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    if (!v || !v->is_string())
        return std::nullopt;
    return std::string(v->get_string());
}

ghl::task_write task_fields(const bj::object& set) {
    ghl::task_write w;
    w.title = str(set, "title");
    w.body = str(set, "body");
    w.due_date = str(set, "dueDate");
    w.assigned_to = str(set, "assignedTo");
    if (const auto* c = set.if_contains("completed"); c && c->is_bool())
        w.completed = c->get_bool();
    return w;
}

ghl::note_write note_fields(const bj::object& set) {
    ghl::note_write w;
    w.body = str(set, "body");
    w.title = str(set, "title");
    return w;
}

/// A GHL task/note id a sibling row (one Speak4 created) is already linked to: not ours.
bool is_known_child(const entity_context& ctx, const std::string& id) {
    return std::find(ctx.known_child_ghl_ids.begin(), ctx.known_child_ghl_ids.end(), id) !=
           ctx.known_child_ghl_ids.end();
}

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

/// The message a dead letter keeps: the error and, for 4xx, GHL's body.
std::string describe(const ghl::error& e) {
    std::string s = e.what();
    if (!e.body.empty() && s.find(e.body) == std::string::npos)
        s += " body: " + e.body;
    return s;
}

} // namespace

outcome outcome_from_error(const ghl::error& e, bool gone_is_done) {
    outcome o;
    o.error = describe(e);
    if (e.status)
        o.status = e.status;
    switch (e.kind) {
    case ghl::error_kind::never_sent:
    case ghl::error_kind::outcome_unknown:
    case ghl::error_kind::retryable:
    case ghl::error_kind::bad_response:
        // A 2xx GHL answered with a body we cannot use is retried as a server fault: it may
        // have been applied, so a create is looked up before it is sent again.
        o.what = outcome::kind::retry;
        o.retry_after = e.retry_after;
        o.may_have_been_applied = e.may_have_been_applied();
        o.held = e.kind == ghl::error_kind::never_sent && e.step == "breaker";
        break;
    case ghl::error_kind::auth:
    case ghl::error_kind::needs_reauth:
    case ghl::error_kind::missing_scope:
        // Credentials, not the change, are the problem: park without spending attempts (a
        // missing scope until the app is re-authorized with it and the daemon reloaded).
        o.what = outcome::kind::wait_auth;
        break;
    case ghl::error_kind::not_found:
        o.gone = true;
        if (gone_is_done) {
            o.what = outcome::kind::done;
        } else {
            o.what = outcome::kind::dead;
            o.error += " (the record vanished remotely)";
        }
        break;
    case ghl::error_kind::permanent:
    case ghl::error_kind::duplicate_contact:
    case ghl::error_kind::invalid_request:
        o.what = outcome::kind::dead;
        break;
    }
    return o;
}

audit_entry audit_from_request(const ghl::request_record& r) {
    audit_entry e;
    e.ts = format_iso8601(r.started_at);
    e.method = r.method;
    e.path = r.path;
    if (r.status)
        e.status = r.status;
    if (r.written || r.status)
        e.latency_ms = r.latency.count();
    e.attempt = r.attempt;
    if (!r.error.empty())
        e.error = r.error;
    e.rate_limit_remaining = r.rate_remaining;
    e.daily_remaining = r.daily_remaining;
    e.trace_id = r.trace_id;
    return e;
}

namespace {

outcome contact_done(const ghl::contact& c) {
    outcome o;
    o.ghl_id = c.id;
    o.raw = c.raw;
    if (c.date_updated)
        o.remote_updated_at = format_iso8601(*c.date_updated);
    return o;
}

template <class Record>
outcome record_done(const Record& r) {
    outcome o;
    o.ghl_id = r.id;
    o.raw = r.raw;
    return o;
}

} // namespace

dispatcher_options dispatcher_options_from(const config& cfg) {
    dispatcher_options o;
    o.max_concurrency = cfg.ghl.max_concurrency;
    o.coalesce = std::chrono::milliseconds(cfg.sync.coalesce_ms);
    o.retry = {cfg.retry.base_ms, cfg.retry.max_ms, cfg.retry.max_attempts,
               cfg.retry.give_up_after};
    o.on_duplicate = cfg.sync.on_duplicate;
    o.index_lag = std::chrono::seconds(cfg.sync.index_lag_seconds);
    o.conflict = cfg.sync.conflict;
    return o;
}

dispatcher::dispatcher(asio::any_io_executor ex, store::db_worker& db, ghl_access ghl,
                       dispatcher_options opt, const speak4::clock& clk, std::uint64_t seed)
    : ex_(ex)
    , db_(db)
    , ghl_(std::move(ghl))
    , opt_(opt)
    , clock_(clk)
    , rng_(seed)
    , wake_(ex)
    , drained_(ex) {}

asio::awaitable<bool> dispatcher::record_together(const work_item& item, const outcome& out,
                                                  const std::vector<audit_entry>& audit,
                                                  double jitter) {
    // Group commit for outcomes: the first item to finish writes, in one transaction, its own
    // outcome and those of the items that finish while it does; the others wait for it. With
    // synchronous = FULL each commit is an fsync, so this pays one per group instead of one per
    // call. If the group's transaction fails, each item records itself alone (the caller).
    pending_record mine{{&item, &out, &audit, jitter}, asio::steady_timer(ex_), false, false};
    mine.wakeup.expires_at(asio::steady_timer::time_point::max());
    to_record_.push_back(&mine);
    if (recording_) {
        boost::system::error_code ec;
        while (!mine.settled)
            co_await mine.wakeup.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        co_return mine.ok;
    }
    recording_ = true;
    while (!to_record_.empty()) {
        std::vector<pending_record*> group;
        group.swap(to_record_);
        std::vector<outbox_store::finished> jobs;
        jobs.reserve(group.size());
        for (const auto* p : group)
            jobs.push_back(p->job);
        bool ok = true;
        try {
            co_await db_.run(
                [&](SQLite::Database& db) { box(db).finish_all(jobs, clock_.now(), opt_.retry); });
        } catch (const std::exception& e) {
            ok = false;
            log::warn("recording push outcomes together failed; each records alone",
                      {{"items", static_cast<std::int64_t>(group.size())}, {"error", e.what()}});
        }
        for (auto* p : group) {
            p->ok = ok;
            p->settled = true;
            if (p != &mine)
                p->wakeup.cancel();
        }
    }
    recording_ = false;
    co_return mine.ok;
}

outbox_store& dispatcher::box(SQLite::Database& db) {
    store::check_fail_point("dispatcher.db");
    if (!box_ || &box_->db() != &db) {
        box_ = std::make_unique<outbox_store>(db);
        box_->set_conflict_policy(opt_.conflict);
    }
    return *box_;
}

double dispatcher::uniform01() {
    return std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
}

void dispatcher::wake() {
    wake_.cancel();
}

bool dispatcher::held_by_breaker() const {
    return ghl_.options.breaker && ghl_.options.breaker->state() != ghl::breaker_state::closed;
}

void dispatcher::stop() {
    stopping_ = true;
    wake_.cancel();
}

void dispatcher::credentials_changed() {
    asio::co_spawn(
        ex_,
        [this]() -> asio::awaitable<void> {
            try {
                const int n = co_await db_.run([&](SQLite::Database& db) {
                    return box(db).release_auth_waiters(clock_.now());
                });
                if (n)
                    log::info("credentials changed: retrying parked work", {{"rows", n}});
            } catch (const std::exception& e) {
                log::error("releasing parked work failed", {{"error", e.what()}});
            }
            wake_.cancel();
        },
        asio::detached);
}

void dispatcher::pause(bool paused) {
    paused_ = paused;
    wake_.cancel();
}

dispatcher_stats dispatcher::stats() const {
    std::lock_guard lock(stats_mutex_);
    return stats_;
}

asio::awaitable<void> dispatcher::run() {
    // Nothing is claimed before the rows a crash left in flight are recovered; a database that
    // cannot do that yet (locked, full, failing) is waited for, never given up on. Corruption
    // ends the process (the database worker's fatal hook), not this loop.
    auto backoff = std::chrono::milliseconds(200);
    while (!stopping_) {
        auto r = co_await db_.try_run(
            [&](SQLite::Database& db) { return box(db).recover_inflight(clock_.now()); });
        if (r) {
            if (*r)
                log::warn("recovered outbox rows left in flight", {{"rows", *r}});
            break;
        }
        if (failing_.empty())
            log::error("outbox recovery failed; retrying", {{"error", r.error().message}});
        failing_ = r.error().message;
        if (heartbeat_)
            heartbeat_(failing_);
        wake_.expires_after(backoff);
        boost::system::error_code ec;
        co_await wake_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
    }

    while (!stopping_) {
        std::string failure; // this iteration's database failure
        const int free = opt_.max_concurrency - active_;
        std::vector<work_item> items;
        std::optional<sys_time> claimed_at; // when the claim looked, if it did
        // While the breaker is open nothing is claimed: rows keep their attempts and their
        // order, and the breaker's state change (a probe GHL answered) wakes this loop.
        const bool held = held_by_breaker();
        if (free > 0 && !paused_ && !held) {
            try {
                items = co_await db_.run([&](SQLite::Database& db) {
                    claimed_at = clock_.now();
                    return box(db).claim(*claimed_at, opt_.coalesce, free);
                });
            } catch (const std::exception& e) {
                failure = std::string("outbox claim failed: ") + e.what();
            }
        }
        for (auto& item : items) {
            ++active_;
            asio::co_spawn(ex_, process(std::move(item)), asio::detached);
        }
        if (!items.empty() && active_ < opt_.max_concurrency) {
            if (heartbeat_)
                heartbeat_("");
            continue; // more may be due right away
        }

        // Sleep until the next row is due, new work is committed, an item finishes, or the
        // poll interval passes (another process may have emitted events).
        auto wait = opt_.idle_poll;
        if (!paused_ && !held && active_ < opt_.max_concurrency) {
            try {
                auto due = co_await db_.run(
                    [this](SQLite::Database& db) { return box(db).next_due(opt_.coalesce); });
                if (due) {
                    auto until =
                        std::chrono::duration_cast<std::chrono::milliseconds>(*due - clock_.now());
                    // Due already, yet the claim just found nothing: those rows wait for work
                    // in flight (a task for its contact's create), whose end wakes this loop.
                    // Sleeping 0 here would spin on the database thread.
                    if (items.empty() && claimed_at && *due <= *claimed_at)
                        until = opt_.idle_poll;
                    wait = std::clamp(until, std::chrono::milliseconds(0), opt_.idle_poll);
                }
            } catch (const std::exception& e) {
                failure = std::string("outbox scan failed: ") + e.what();
            }
        }
        // One log line per streak of failures (and one when it ends), not one per iteration.
        if (!failure.empty() && failing_.empty())
            log::error("dispatcher: database work failed; backing off", {{"error", failure}});
        else if (failure.empty() && !failing_.empty())
            log::info("dispatcher: database work resumed", {{"after", failing_}});
        failing_ = failure;
        if (heartbeat_)
            heartbeat_(failure);
        if (!failure.empty())
            wait = std::max(wait, std::chrono::milliseconds(1000));
        if (wait.count() > 0 && !stopping_) {
            wake_.expires_after(wait);
            boost::system::error_code ec;
            co_await wake_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        }
    }
    // Let the items in flight finish and be recorded.
    while (active_ > 0) {
        drained_.expires_after(std::chrono::seconds(1));
        boost::system::error_code ec;
        co_await drained_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
}

asio::awaitable<void> dispatcher::process(work_item item) {
    std::vector<audit_entry> audit;
    ghl::client_options copt = ghl_.options;
    if (item.act == action::pull)
        copt.lane = ghl::lane::pull; // webhook and per-contact pulls: the pull lane
    const std::int64_t outbox_id = item.first_row;
    const int attempt = item.attempts + 1;
    copt.observer = [&audit, outbox_id, attempt,
                     base = ghl_.options.observer](const ghl::request_record& r) {
        if (base)
            base(r); // metrics
        audit_entry e = audit_from_request(r);
        e.attempt = attempt; // the outbox attempt (the client counts its 401 retry separately)
        e.outbox_id = outbox_id;
        audit.push_back(std::move(e));
    };
    ghl::client c(ghl_.http, std::move(copt), ghl_.tokens, ghl_.limiter, clock_);
    outcome out;
    try {
        out = co_await execute(c, item);
    } catch (const std::exception& e) {
        // Nothing in execute() should throw; if it does, the item is retried, never lost.
        out = outcome{};
        out.what = outcome::kind::retry;
        out.error = std::string("internal error: ") + e.what();
        out.may_have_been_applied = true;
    }
    if (out.what == outcome::kind::wait_auth && !paused_)
        log::warn("push waits for credentials",
                  {{"outbox_id", item.first_row}, {"error", out.error}});
    const double u = uniform01();
    for (int tries = 0;; ++tries) {
        std::string failure;
        try {
            // First with the other items finishing now (one commit for all), then alone.
            if (tries == 0 && co_await record_together(item, out, audit, u))
                break;
            co_await db_.run([&](SQLite::Database& db) {
                box(db).finish(item, out, audit, clock_.now(), opt_.retry, [u] { return u; });
            });
            break;
        } catch (const std::exception& e) {
            failure = e.what();
        }
        // The rows stay in flight; a restart recovers them as uncertain. Retry a few times first
        // (a busy database, a full disk being freed).
        log::error("recording a push outcome failed",
                   {{"outbox_id", item.first_row}, {"error", failure}});
        if (tries >= 5) {
            // Give the rows back as uncertain (a create is then looked up, not re-sent blindly);
            // if even that fails they stay in flight until the next start recovers them.
            try {
                co_await db_.run([&](SQLite::Database& db) {
                    box(db).release(item, clock_.now() + std::chrono::seconds(30));
                });
            } catch (const std::exception& e) {
                log::error("releasing a push failed",
                           {{"outbox_id", item.first_row}, {"error", e.what()}});
            }
            break;
        }
        asio::steady_timer t(ex_, std::chrono::milliseconds(200 << tries));
        boost::system::error_code ec;
        co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    log::info("push", {{"op", std::string(to_string(item.act))},
                       {"entity", std::string(to_string(item.ctx.entity))},
                       {"entity_id", item.ctx.id},
                       {"outbox_id", item.first_row},
                       {"rows", static_cast<std::int64_t>(item.rows.size())},
                       {"outcome", out.what == outcome::kind::done    ? "done"
                                   : out.what == outcome::kind::retry ? "retry"
                                   : out.what == outcome::kind::dead  ? "dead"
                                                                      : "wait_auth"},
                       {"status", out.status ? bj::value(*out.status) : bj::value(nullptr)}});
    {
        std::lock_guard lock(stats_mutex_);
        ++stats_.items;
        if (out.what == outcome::kind::done)
            ++stats_.done;
        else if (out.what == outcome::kind::retry)
            ++stats_.retried;
        else if (out.what == outcome::kind::dead)
            ++stats_.dead;
    }
    --active_;
    wake_.cancel();
}

asio::awaitable<outcome> dispatcher::execute(ghl::client& c, const work_item& item) {
    if (item.act == action::pull) {
        if (!pull_) {
            outcome o;
            o.what = outcome::kind::dead;
            o.error = "pull: no reconciler configured";
            co_return o;
        }
        co_return co_await pull_(c, item);
    }
    switch (item.ctx.entity) {
    case entity_kind::contact:
        co_return co_await execute_contact(c, item);
    case entity_kind::task:
        co_return co_await execute_task(c, item);
    case entity_kind::note:
        co_return co_await execute_note(c, item);
    }
    co_return not_an_operation(item);
}

outcome dispatcher::not_an_operation(const work_item& item) {
    outcome o;
    o.what = outcome::kind::dead;
    o.error = std::string(to_string(item.act)) + " is not an operation on a " +
              std::string(to_string(item.ctx.entity));
    return o;
}

bool says_gone(const ghl::error& e, entity_kind kind, std::string_view id,
               std::string_view parent_id) {
    if (e.kind != ghl::error_kind::not_found)
        return false;
    auto body = json::parse(e.body);
    if (!body || !body->is_object())
        return false; // an HTML page, a proxy's answer: says nothing about the record
    const std::string message = lower(ghl::message_from_body(e.body));
    if (message.find("not found") == std::string::npos)
        return false;
    const auto names = [&](std::string_view x) {
        return !x.empty() && message.find(lower(std::string(x))) != std::string::npos;
    };
    if (names(id) || names(parent_id))
        return true;
    if (message.find(" id ") != std::string::npos)
        return false; // names a record, another one
    // "Task not found": about a record of this kind, not a user, a field or a route.
    const std::string k(to_string(kind));
    return message.rfind(k, 0) == 0 || message.rfind("the " + k, 0) == 0;
}

asio::awaitable<outcome> dispatcher::failed(ghl::client& c, const work_item& item,
                                            const ghl::error& e, call what) {
    outcome o = outcome_from_error(e, what == call::remove);
    if (e.kind != ghl::error_kind::not_found)
        co_return o;
    const auto& ctx = item.ctx;
    o.gone = false;
    o.what = outcome::kind::dead;
    const std::string id = ctx.ghl_id.value_or("");
    const std::string parent = ctx.contact_ghl_id.value_or("");
    if (what == call::create || id.empty()) {
        o.error = describe(e) + " (not found on a create or lookup: nothing marked deleted)";
        co_return o;
    }
    if (!says_gone(e, ctx.entity, id, parent)) {
        o.error = describe(e) +
                  " (not evidence that the record is gone: the answer does not name it; "
                  "nothing marked deleted)";
        co_return o;
    }
    if (what == call::remove) {
        o.what = outcome::kind::done; // already gone: what the delete wanted
        o.gone = true;
        o.error.clear();
        co_return o;
    }
    // A write answered "not found" for the record: confirmed by reading it (DESIGN §9).
    std::optional<bool> present; // nullopt: the read failed otherwise
    std::optional<ghl::error> read_error;
    if (ctx.entity == entity_kind::contact) {
        auto got = co_await c.get_contact(id);
        if (got)
            present = true;
        else if (says_gone(got.error(), entity_kind::contact, id))
            present = false;
        else
            read_error = got.error();
    } else {
        std::vector<std::string> ids;
        if (ctx.entity == entity_kind::task) {
            auto l = co_await c.list_tasks(parent);
            if (l)
                for (const auto& t : *l)
                    ids.push_back(t.id);
            else
                read_error = l.error();
        } else {
            auto l = co_await c.list_notes(parent);
            if (l)
                for (const auto& n : *l)
                    ids.push_back(n.id);
            else
                read_error = l.error();
        }
        if (!read_error)
            present = std::find(ids.begin(), ids.end(), id) != ids.end();
        else if (says_gone(*read_error, entity_kind::contact, parent))
            present = false; // its contact is gone, and the record with it
    }
    if (present && !*present) {
        o.gone = true;
        o.error = describe(e) + " (the record vanished remotely; a read confirmed it)";
        co_return o;
    }
    if (present) {
        o.error = describe(e) + " (GHL still shows the record: not deleted)";
        co_return o;
    }
    // The confirmation could not be read: try again later, nothing decided.
    outcome r = outcome_from_error(*read_error, false);
    r.gone = false;
    if (r.what == outcome::kind::dead)
        r.error = describe(e) + " (unconfirmed: " + describe(*read_error) + ")";
    co_return r;
}

asio::awaitable<std::optional<outcome>> dispatcher::refuse_duplicate(const work_item& item,
                                                                     const std::string& existing,
                                                                     const std::string& why) {
    if (opt_.on_duplicate == on_duplicate::link)
        co_return std::nullopt;
    const std::optional<std::string> other =
        co_await db_.run([&](SQLite::Database& db) -> std::optional<std::string> {
            SQLite::Statement q(db, "SELECT speak4_id FROM contacts WHERE ghl_id = ? AND id <> ? "
                                    "AND speak4_id IS NOT NULL");
            q.bind(1, existing);
            q.bind(2, item.ctx.id);
            if (!q.executeStep())
                return std::nullopt;
            return q.getColumn(0).getString();
        });
    if (!other)
        co_return std::nullopt;
    // Two Speak4 contacts are two people to Speak4: merging them would overwrite one person's
    // GHL record with the other's fields. An operator decides (DESIGN §9).
    const std::string mine = item.ctx.speak4_id.value_or("(none)");
    outcome o;
    o.what = outcome::kind::dead;
    o.status = 400;
    o.error = "contact.speak4_id " + mine + ": GHL calls it a duplicate of GHL contact " +
              existing + ", which is Speak4 contact " + *other +
              " (sync.on_duplicate = \"conflict\": not merged; `queue retry` after a fix, or "
              "sync.on_duplicate = \"link\"): " +
              why;
    o.conflict = outcome::identity_conflict{"speak4_id", mine, *other, "on_duplicate=conflict"};
    co_return o;
}

void dispatcher::count_lookup(bool found) {
    std::lock_guard lock(stats_mutex_);
    if (found)
        ++stats_.linked;
    else
        ++stats_.lookups;
}

asio::awaitable<ghl::result<std::optional<std::string>>>
dispatcher::find_existing(ghl::client& c, const work_item& item) {
    using found_t = ghl::result<std::optional<std::string>>;
    const auto& ctx = item.ctx;
    count_lookup(false);
    std::optional<std::string> found;
    switch (ctx.entity) {
    case entity_kind::contact: {
        // The mirror's email/phone first; for an uncertain create also every value an earlier
        // attempt may have sent (later updates were merged into this one).
        std::vector<std::pair<std::optional<std::string>, std::optional<std::string>>> probes;
        if (ctx.email || ctx.phone)
            probes.emplace_back(ctx.email, ctx.phone);
        if (item.uncertain) {
            for (const auto& e : item.emails)
                if (e != ctx.email)
                    probes.emplace_back(e, std::nullopt);
            for (const auto& p : item.phones)
                if (p != ctx.phone)
                    probes.emplace_back(std::nullopt, p);
        }
        for (const auto& probe : probes) {
            auto dup = co_await c.find_duplicate(probe.first, probe.second);
            if (!dup)
                co_return found_t(dup.error());
            if (*dup) {
                found = (*dup)->id;
                break;
            }
        }
        if (probes.empty() && item.uncertain && (ctx.first_name || ctx.last_name)) {
            // No email or phone to match on: look for a contact of this name added since the
            // first attempt.
            ghl::search_request req;
            req.page_limit = 10;
            if (ctx.first_name)
                req.filters.push_back(
                    ghl::filter("firstNameLowerCase", "eq", bj::value(lower(*ctx.first_name))));
            if (ctx.last_name)
                req.filters.push_back(
                    ghl::filter("lastNameLowerCase", "eq", bj::value(lower(*ctx.last_name))));
            if (auto since = parse_iso8601(item.first_created_at))
                req.filters.push_back(ghl::range_filter(
                    "dateAdded", bj::value(format_iso8601(*since - std::chrono::minutes(10)))));
            auto page = co_await c.search_contacts(std::move(req));
            if (!page)
                co_return found_t(page.error());
            if (page->contacts.size() == 1)
                found = page->contacts.front().id;
        }
        break;
    }
    case entity_kind::task: {
        // Tasks and notes have no natural key: a task of the contact with the same title (one
        // of those the covered rows set) and due date that no sibling row is linked to.
        auto list = co_await c.list_tasks(*ctx.contact_ghl_id);
        if (!list)
            co_return found_t(list.error());
        const ghl::task_write fields = task_fields(item.set);
        const auto due = fields.due_date ? parse_iso8601(*fields.due_date) : std::nullopt;
        for (const auto& t : *list) {
            const bool same_title = t.title && (t.title == fields.title ||
                                                std::find(item.titles.begin(), item.titles.end(),
                                                          *t.title) != item.titles.end());
            if (!is_known_child(ctx, t.id) && same_title && (!due || t.due_at == due)) {
                found = t.id;
                break;
            }
        }
        break;
    }
    case entity_kind::note: {
        auto list = co_await c.list_notes(*ctx.contact_ghl_id);
        if (!list)
            co_return found_t(list.error());
        const ghl::note_write fields = note_fields(item.set);
        for (const auto& n : *list) {
            const bool same_body = n.body && (n.body == fields.body ||
                                              std::find(item.bodies.begin(), item.bodies.end(),
                                                        *n.body) != item.bodies.end());
            if (!is_known_child(ctx, n.id) && same_body) {
                found = n.id;
                break;
            }
        }
        break;
    }
    }
    if (found)
        count_lookup(true);
    co_return found_t(std::move(found));
}

asio::awaitable<outcome> dispatcher::execute_contact(ghl::client& c, const work_item& item) {
    const auto& ctx = item.ctx;
    switch (item.act) {
    case action::create: {
        const ghl::contact_write fields = ghl::contact_write_from_json(item.set);
        const bool nothing_to_match =
            !ctx.email && !ctx.phone && item.emails.empty() && item.phones.empty();
        if (item.uncertain && !item.lead && nothing_to_match) {
            // Only a name and a creation time to look for, and only GHL's search index has
            // them: it shows a new contact late. Look only once it has had time to catch up, or
            // the lookup misses the contact the lost attempt made and this creates it again.
            // When the create was last sent: its audit row (filed under the item's first row);
            // after a crash that left none, when the row was queued.
            const auto last = co_await db_.run([&](SQLite::Database& db) {
                SQLite::Statement q(db, "SELECT MAX(ts) FROM audit_log WHERE outbox_id = ? AND "
                                        "method = 'POST' AND path = '/contacts/'");
                q.bind(1, item.first_row);
                if (q.executeStep() && !q.getColumn(0).isNull())
                    return q.getColumn(0).getString();
                return item.first_created_at;
            });
            const auto at = parse_iso8601(last);
            const auto now = clock_.now();
            if (at && now < *at + opt_.index_lag) {
                {
                    std::lock_guard lock(stats_mutex_);
                    ++stats_.unmatched_waits;
                }
                outcome o;
                o.what = outcome::kind::retry;
                o.may_have_been_applied = true; // still uncertain: looked up when it comes back
                o.retry_after = std::chrono::duration_cast<std::chrono::milliseconds>(
                    *at + opt_.index_lag - now);
                o.error =
                    "a create with no email or phone whose outcome is unknown: waiting for "
                    "GHL's search index (sync.index_lag_seconds) before looking it up by name";
                co_return o;
            }
            std::lock_guard lock(stats_mutex_);
            ++stats_.unmatched_lookups;
        }
        // A lead is matched by email/phone first; a create that may already have reached GHL is
        // looked up before it is sent again (DESIGN §8: no duplicates).
        if (item.lead || item.uncertain) {
            auto found = co_await find_existing(c, item);
            if (!found)
                co_return co_await failed(c, item, found.error(), call::create);
            if (*found) {
                // A lead always links ("create or update"); an uncertain create matching a
                // contact another Speak4 contact is linked to is not ours to overwrite.
                if (!item.lead) {
                    auto refused = co_await refuse_duplicate(
                        item, **found, "the lookup after an uncertain create found it");
                    if (refused)
                        co_return std::move(*refused);
                }
                auto up = co_await c.update_contact(**found, fields);
                if (!up)
                    co_return co_await failed(c, item, up.error(), call::write);
                co_return contact_done(*up);
            }
        }
        auto created = co_await c.create_contact(fields);
        if (created)
            co_return contact_done(*created);
        if (created.error().kind == ghl::error_kind::duplicate_contact &&
            created.error().duplicate) {
            // GHL already has this person: link to it and apply our fields as an update.
            const std::string existing = created.error().duplicate->contact_id;
            if (!item.lead) {
                auto refused = co_await refuse_duplicate(item, existing, describe(created.error()));
                if (refused)
                    co_return std::move(*refused);
            }
            auto up = co_await c.update_contact(existing, fields);
            if (!up)
                co_return co_await failed(c, item, up.error(), call::write);
            co_return contact_done(*up);
        }
        co_return co_await failed(c, item, created.error(), call::create);
    }
    case action::update: {
        auto up = co_await c.update_contact(*ctx.ghl_id, ghl::contact_write_from_json(item.set));
        if (!up)
            co_return co_await failed(c, item, up.error(), call::write);
        co_return contact_done(*up);
    }
    case action::remove: {
        std::optional<std::string> id = ctx.ghl_id;
        if (!id && ctx.email) { // an uncertain create: find what it may have made
            auto dup = co_await c.find_duplicate(ctx.email, ctx.phone);
            if (!dup)
                co_return co_await failed(c, item, dup.error(), call::create);
            if (*dup)
                id = (*dup)->id;
        }
        if (!id)
            co_return outcome{};
        auto del = co_await c.delete_contact(*id);
        if (!del)
            co_return co_await failed(c, item, del.error(), call::remove);
        co_return outcome{};
    }
    case action::tag_add:
    case action::tag_remove: {
        // Not a conditional expression: GCC 12 miscompiles co_await inside ?: (the temporaries
        // of both arms are destroyed).
        ghl::result<std::vector<std::string>> r = std::vector<std::string>{};
        if (item.act == action::tag_add)
            r = co_await c.add_tags(*ctx.ghl_id, item.tags);
        else
            r = co_await c.remove_tags(*ctx.ghl_id, item.tags);
        if (!r)
            co_return co_await failed(c, item, r.error(), call::write);
        co_return outcome{};
    }
    case action::complete:
    case action::pull:
        break;
    }
    co_return not_an_operation(item);
}

asio::awaitable<outcome> dispatcher::execute_task(ghl::client& c, const work_item& item) {
    const auto& ctx = item.ctx;
    const std::string cid = *ctx.contact_ghl_id;
    switch (item.act) {
    case action::create: {
        const ghl::task_write fields = task_fields(item.set);
        if (item.uncertain) {
            auto found = co_await find_existing(c, item);
            if (!found)
                co_return co_await failed(c, item, found.error(), call::create);
            if (*found) {
                auto up = co_await c.update_task(cid, **found, fields);
                if (!up)
                    co_return co_await failed(c, item, up.error(), call::write);
                co_return record_done(*up);
            }
        }
        auto created = co_await c.create_task(cid, fields);
        if (!created)
            co_return co_await failed(c, item, created.error(), call::create);
        co_return record_done(*created);
    }
    case action::update: {
        auto up = co_await c.update_task(cid, *ctx.ghl_id, task_fields(item.set));
        if (!up)
            co_return co_await failed(c, item, up.error(), call::write);
        co_return record_done(*up);
    }
    case action::complete: {
        auto r = co_await c.complete_task(cid, *ctx.ghl_id, item.completed);
        if (!r)
            co_return co_await failed(c, item, r.error(), call::write);
        co_return record_done(*r);
    }
    case action::remove: {
        if (!ctx.ghl_id)
            co_return outcome{};
        auto r = co_await c.delete_task(cid, *ctx.ghl_id);
        if (!r)
            co_return co_await failed(c, item, r.error(), call::remove);
        co_return outcome{};
    }
    case action::tag_add:
    case action::tag_remove:
    case action::pull:
        break;
    }
    co_return not_an_operation(item);
}

asio::awaitable<outcome> dispatcher::execute_note(ghl::client& c, const work_item& item) {
    const auto& ctx = item.ctx;
    const std::string cid = *ctx.contact_ghl_id;
    switch (item.act) {
    case action::create: {
        const ghl::note_write fields = note_fields(item.set);
        if (item.uncertain) {
            auto found = co_await find_existing(c, item);
            if (!found)
                co_return co_await failed(c, item, found.error(), call::create);
            if (*found) {
                auto up = co_await c.update_note(cid, **found, fields);
                if (!up)
                    co_return co_await failed(c, item, up.error(), call::write);
                co_return record_done(*up);
            }
        }
        auto created = co_await c.create_note(cid, fields);
        if (!created)
            co_return co_await failed(c, item, created.error(), call::create);
        co_return record_done(*created);
    }
    case action::update: {
        auto up = co_await c.update_note(cid, *ctx.ghl_id, note_fields(item.set));
        if (!up)
            co_return co_await failed(c, item, up.error(), call::write);
        co_return record_done(*up);
    }
    case action::remove: {
        if (!ctx.ghl_id)
            co_return outcome{};
        auto r = co_await c.delete_note(cid, *ctx.ghl_id);
        if (!r)
            co_return co_await failed(c, item, r.error(), call::remove);
        co_return outcome{};
    }
    case action::complete:
    case action::tag_add:
    case action::tag_remove:
    case action::pull:
        break;
    }
    co_return not_an_operation(item);
}

} // namespace speak4::sync
