#include "sync/dispatcher.hpp"

#include "core/log.hpp"
#include "store/db_error.hpp"

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
    o.retry = {cfg.retry.base_ms, cfg.retry.max_ms, cfg.retry.max_attempts};
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
    if (!box_ || &box_->db() != &db)
        box_ = std::make_unique<outbox_store>(db);
    return *box_;
}

double dispatcher::uniform01() {
    return std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
}

void dispatcher::wake() {
    wake_.cancel();
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
        if (free > 0 && !paused_) {
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
        if (!paused_ && active_ < opt_.max_concurrency) {
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
        // A lead is matched by email/phone first; a create that may already have reached GHL is
        // looked up before it is sent again (DESIGN §8: no duplicates).
        if (item.lead || item.uncertain) {
            auto found = co_await find_existing(c, item);
            if (!found)
                co_return outcome_from_error(found.error(), false);
            if (*found) {
                auto up = co_await c.update_contact(**found, fields);
                if (!up)
                    co_return outcome_from_error(up.error(), false);
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
            auto up = co_await c.update_contact(existing, fields);
            if (!up)
                co_return outcome_from_error(up.error(), false);
            co_return contact_done(*up);
        }
        co_return outcome_from_error(created.error(), false);
    }
    case action::update: {
        auto up = co_await c.update_contact(*ctx.ghl_id, ghl::contact_write_from_json(item.set));
        if (!up)
            co_return outcome_from_error(up.error(), false);
        co_return contact_done(*up);
    }
    case action::remove: {
        std::optional<std::string> id = ctx.ghl_id;
        if (!id && ctx.email) { // an uncertain create: find what it may have made
            auto dup = co_await c.find_duplicate(ctx.email, ctx.phone);
            if (!dup)
                co_return outcome_from_error(dup.error(), false);
            if (*dup)
                id = (*dup)->id;
        }
        if (!id)
            co_return outcome{};
        auto del = co_await c.delete_contact(*id);
        if (!del)
            co_return outcome_from_error(del.error(), true);
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
            co_return outcome_from_error(r.error(), false);
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
                co_return outcome_from_error(found.error(), false);
            if (*found) {
                auto up = co_await c.update_task(cid, **found, fields);
                if (!up)
                    co_return outcome_from_error(up.error(), false);
                co_return record_done(*up);
            }
        }
        auto created = co_await c.create_task(cid, fields);
        if (!created)
            co_return outcome_from_error(created.error(), false);
        co_return record_done(*created);
    }
    case action::update: {
        auto up = co_await c.update_task(cid, *ctx.ghl_id, task_fields(item.set));
        if (!up)
            co_return outcome_from_error(up.error(), false);
        co_return record_done(*up);
    }
    case action::complete: {
        auto r = co_await c.complete_task(cid, *ctx.ghl_id, item.completed);
        if (!r)
            co_return outcome_from_error(r.error(), false);
        co_return record_done(*r);
    }
    case action::remove: {
        if (!ctx.ghl_id)
            co_return outcome{};
        auto r = co_await c.delete_task(cid, *ctx.ghl_id);
        if (!r)
            co_return outcome_from_error(r.error(), true);
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
                co_return outcome_from_error(found.error(), false);
            if (*found) {
                auto up = co_await c.update_note(cid, **found, fields);
                if (!up)
                    co_return outcome_from_error(up.error(), false);
                co_return record_done(*up);
            }
        }
        auto created = co_await c.create_note(cid, fields);
        if (!created)
            co_return outcome_from_error(created.error(), false);
        co_return record_done(*created);
    }
    case action::update: {
        auto up = co_await c.update_note(cid, *ctx.ghl_id, note_fields(item.set));
        if (!up)
            co_return outcome_from_error(up.error(), false);
        co_return record_done(*up);
    }
    case action::remove: {
        if (!ctx.ghl_id)
            co_return outcome{};
        auto r = co_await c.delete_note(cid, *ctx.ghl_id);
        if (!r)
            co_return outcome_from_error(r.error(), true);
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
