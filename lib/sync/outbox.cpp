#include "sync/outbox.hpp"

#include "core/json.hpp"
#include "core/log.hpp"
#include "sync/identity.hpp"

#include <SQLiteCpp/Statement.h>
#include <SQLiteCpp/Transaction.h>
#include <algorithm>
#include <boost/json/serialize.hpp>
#include <cmath>

namespace speak4::sync {
namespace {

namespace bj = boost::json;

std::optional<std::string> opt_text(const SQLite::Column& c) {
    if (c.isNull())
        return std::nullopt;
    return c.getString();
}

bj::object parse_object(const std::string& text) {
    auto v = json::parse(text);
    return v && v->is_object() ? std::move(v->get_object()) : bj::object{};
}

/// Later rows win field by field; customFields merge by id.
void merge_set(bj::object& into, const bj::object& from) {
    for (const auto& kv : from) {
        if (kv.key() == "customFields" && kv.value().is_object()) {
            auto* have = into.if_contains("customFields");
            if (!have || !have->is_object())
                into["customFields"] = bj::object{};
            auto& cf = into["customFields"].as_object();
            for (const auto& c : kv.value().get_object())
                cf[c.key()] = c.value();
        } else {
            into[kv.key()] = kv.value();
        }
    }
}

void add_unique(std::vector<std::string>& into, const bj::value& tags) {
    if (!tags.is_array())
        return;
    for (const auto& t : tags.get_array())
        if (t.is_string() && std::find(into.begin(), into.end(), t.get_string()) == into.end())
            into.emplace_back(t.get_string());
}

enum class op_class { write, tag_add, tag_remove, complete, pull, remove };

op_class class_of(const std::string& op) {
    if (op == "create" || op == "update")
        return op_class::write;
    if (op == "tag_add")
        return op_class::tag_add;
    if (op == "tag_remove")
        return op_class::tag_remove;
    if (op == "complete")
        return op_class::complete;
    if (op == "pull")
        return op_class::pull;
    return op_class::remove;
}

struct row {
    std::int64_t id;
    std::string op;
    bj::object payload;
    int attempts;
    bool uncertain;
    std::string created_at;
    /// Split from a merged call GHL refused (400/422): goes alone, so only the bad change
    /// dead-letters. Marked by state pending with that 4xx as last_status (a 4xx otherwise
    /// leaves a row dead, or 401 parks it).
    bool solo = false;
};

/// A refusal of the request itself (not of credentials, rate or time): 4xx other than 401,
/// 404, 408, 409 and 429.
bool refusal(std::optional<int> status) {
    return status && *status >= 400 && *status < 500 && *status != 401 && *status != 404 &&
           *status != 408 && *status != 409 && *status != 429;
}

} // namespace

std::string_view to_string(action a) {
    switch (a) {
    case action::create:
        return "create";
    case action::update:
        return "update";
    case action::remove:
        return "delete";
    case action::complete:
        return "complete";
    case action::tag_add:
        return "tag_add";
    case action::tag_remove:
        return "tag_remove";
    case action::pull:
        return "pull";
    }
    return "update";
}

std::chrono::milliseconds backoff_delay(const retry_policy& p, int attempt,
                                        std::optional<std::chrono::milliseconds> retry_after,
                                        const std::function<double()>& uniform01) {
    // Full jitter (the AWS architecture blog's "Exponential Backoff And Jitter"): spreads
    // retries of many rows evenly instead of in synchronized waves.
    const double cap =
        std::min(static_cast<double>(p.max_ms),
                 static_cast<double>(p.base_ms) * std::ldexp(1.0, std::clamp(attempt, 0, 62)));
    const double u = std::clamp(uniform01(), 0.0, 1.0);
    auto d = std::chrono::milliseconds(static_cast<long long>(cap * u));
    if (retry_after && *retry_after > d)
        d = *retry_after;
    return d;
}

namespace {

/// Resets the cached statements when a unit of work ends, however it ends: a SELECT left on a
/// row would keep the connection's read transaction open.
struct reset_after {
    store::statement_cache& stmts;
    ~reset_after() { stmts.reset_all(); }
};

} // namespace

outbox_store::outbox_store(SQLite::Database& db)
    : db_(db)
    , stmts_(db) {}

int outbox_store::recover_inflight(sys_time now) {
    const reset_after guard{stmts_};
    auto& u = stmts_.get("UPDATE outbox SET state = 'pending', uncertain = 1, claimed_at = NULL, "
                         "updated_at = ? WHERE state = 'inflight'");
    u.bind(1, format_iso8601(now));
    return u.exec();
}

void outbox_store::release(const work_item& item, sys_time retry_at) {
    const reset_after guard{stmts_};
    auto& u = stmts_.get("UPDATE outbox SET state = 'pending', uncertain = 1, claimed_at = NULL, "
                         "next_attempt_at = ?, updated_at = ? WHERE id = ? AND state = 'inflight'");
    for (auto id : item.rows) {
        u.reset();
        u.bind(1, format_iso8601(retry_at));
        u.bind(2, format_iso8601(retry_at));
        u.bind(3, id);
        u.exec();
    }
}

int outbox_store::release_auth_waiters(sys_time now) {
    const reset_after guard{stmts_};
    auto& u = stmts_.get(
        "UPDATE outbox SET next_attempt_at = ? WHERE state = 'pending' AND last_status = 401");
    u.bind(1, format_iso8601(now));
    return u.exec();
}

std::optional<sys_time> outbox_store::next_due(std::chrono::milliseconds coalesce) {
    const reset_after guard{stmts_};
    std::optional<sys_time> due;
    auto earliest = [&](SQLite::Statement& q, std::chrono::milliseconds plus) {
        if (q.executeStep() && !q.getColumn(0).isNull())
            if (auto t = parse_iso8601(q.getColumn(0).getString()))
                due = due ? std::min(*due, *t + plus) : *t + plus;
    };
    // Retries: when their backoff ends.
    earliest(stmts_.get("SELECT MIN(next_attempt_at) FROM outbox WHERE state = 'pending' "
                        "AND (attempts > 0 OR uncertain = 1)"),
             std::chrono::milliseconds(0));
    // First attempts: once the oldest has been quiet for the coalescing window (ids and
    // created_at rise together, so the oldest is the first by id).
    earliest(
        stmts_.get("SELECT MAX(created_at, next_attempt_at) FROM outbox INDEXED BY "
                   "outbox_state_id WHERE state = 'pending' AND attempts = 0 AND uncertain = 0 "
                   "ORDER BY id LIMIT 1"),
        coalesce);
    return due;
}

long long outbox_store::prune(sys_time cutoff) {
    const reset_after guard{stmts_};
    const std::string c = format_iso8601(cutoff);
    SQLite::Transaction tx(db_, SQLite::TransactionBehavior::IMMEDIATE);
    auto& a = stmts_.get("DELETE FROM audit_log WHERE ts < ?");
    a.bind(1, c);
    long long n = a.exec();
    auto& o = stmts_.get("DELETE FROM outbox WHERE state = 'done' AND updated_at < ?");
    o.bind(1, c);
    n += o.exec();
    tx.commit();
    return n;
}

void outbox_store::note_pushed_tags(const work_item& item) {
    auto& q = stmts_.get("SELECT raw FROM contacts WHERE id = ? AND raw IS NOT NULL");
    q.bind(1, item.ctx.id);
    if (!q.executeStep())
        return;
    bj::object raw = parse_object(q.getColumn(0).getString());
    bj::array tags;
    if (const auto* t = raw.if_contains("tags"); t && t->is_array())
        tags = t->get_array();
    for (const auto& name : item.tags) {
        const auto it = std::find_if(tags.begin(), tags.end(), [&](const bj::value& v) {
            return v.is_string() && v.get_string() == name;
        });
        if (item.act == action::tag_add && it == tags.end())
            tags.emplace_back(name);
        else if (item.act == action::tag_remove && it != tags.end())
            tags.erase(it);
    }
    raw["tags"] = std::move(tags);
    auto& u = stmts_.get("UPDATE contacts SET raw = ? WHERE id = ?");
    u.bind(1, bj::serialize(raw));
    u.bind(2, item.ctx.id);
    u.exec();
}

std::vector<work_item> outbox_store::claim(sys_time now, std::chrono::milliseconds coalesce,
                                           int max_items) {
    const reset_after guard{stmts_};
    const std::string now_s = format_iso8601(now);
    const std::string cutoff = format_iso8601(now - coalesce);
    SQLite::Transaction tx(db_, SQLite::TransactionBehavior::IMMEDIATE);

    // Heads of line: the oldest open row of each entity, if due. Pushes before pulls (webhook
    // and per-contact pulls): a bulk edit in GHL arriving as thousands of webhooks never queues
    // Speak4's changes behind it; the rate limiter's pull lane bounds what pulls take. Tasks and
    // notes come only once their contact has a GHL id, or once it never will (no create of it is
    // open).
    auto& heads = stmts_.get(R"(
        SELECT o.entity, o.entity_id FROM outbox o INDEXED BY outbox_state_id
        WHERE o.state = 'pending' AND o.next_attempt_at <= ?1
          AND (o.attempts > 0 OR o.uncertain = 1 OR o.created_at <= ?2)
          AND o.id = (SELECT MIN(p.id) FROM outbox p
                      WHERE p.entity = o.entity AND p.entity_id = o.entity_id
                        AND p.state IN ('pending', 'inflight'))
          AND (o.entity = 'contact' OR EXISTS (
                SELECT 1 FROM contacts c
                WHERE c.id = (CASE o.entity
                                WHEN 'task' THEN (SELECT contact_id FROM tasks WHERE id = o.entity_id)
                                ELSE (SELECT contact_id FROM notes WHERE id = o.entity_id) END)
                  AND (c.ghl_id IS NOT NULL OR NOT EXISTS (
                        SELECT 1 FROM outbox q WHERE q.entity = 'contact' AND q.entity_id = c.id
                          AND q.op = 'create' AND q.state IN ('pending', 'inflight')))))
        ORDER BY o.op = 'pull', o.id LIMIT ?3)");
    heads.bind(1, now_s);
    heads.bind(2, cutoff);
    heads.bind(3, max_items);
    std::vector<std::pair<entity_kind, std::int64_t>> entities;
    while (heads.executeStep())
        if (const auto kind = parse_entity_kind(heads.getColumn(0).getString()))
            entities.emplace_back(*kind, heads.getColumn(1).getInt64());

    std::vector<work_item> items;
    auto& rows_q = stmts_.get(
        "SELECT id, op, payload, attempts, uncertain, created_at, last_status FROM outbox "
        "WHERE entity = ? AND entity_id = ? AND state = 'pending' ORDER BY id LIMIT 1000");
    auto& mark =
        stmts_.get("UPDATE outbox SET state = ?, claimed_at = ?, updated_at = ?, last_error = ? "
                   "WHERE id = ?");
    for (const auto& [entity, entity_id] : entities) {
        rows_q.reset();
        rows_q.bind(1, std::string(to_string(entity)));
        rows_q.bind(2, entity_id);
        std::vector<row> rows;
        while (rows_q.executeStep())
            rows.push_back(
                {rows_q.getColumn(0).getInt64(), rows_q.getColumn(1).getString(),
                 parse_object(rows_q.getColumn(2).getString()), rows_q.getColumn(3).getInt(),
                 rows_q.getColumn(4).getInt() != 0, rows_q.getColumn(5).getString(),
                 !rows_q.getColumn(6).isNull() && refusal(rows_q.getColumn(6).getInt())});
        if (rows.empty())
            continue;

        work_item item;
        bool contact_deleted = false; // (tasks and notes) their contact is deleted locally
        item.ctx.entity = entity;
        item.ctx.id = entity_id;
        // Mirror context: ids and what a lookup needs.
        if (entity == entity_kind::contact) {
            auto& c = stmts_.get(
                "SELECT ghl_id, email, phone, first_name, last_name, speak4_id FROM contacts "
                "WHERE id = ?");
            c.bind(1, entity_id);
            if (c.executeStep()) {
                item.ctx.speak4_id = opt_text(c.getColumn(5));
                item.ctx.ghl_id = opt_text(c.getColumn(0));
                item.ctx.email = opt_text(c.getColumn(1));
                item.ctx.phone = opt_text(c.getColumn(2));
                item.ctx.first_name = opt_text(c.getColumn(3));
                item.ctx.last_name = opt_text(c.getColumn(4));
            }
        } else {
            const std::string t(table_of(entity));
            auto& c =
                stmts_.get("SELECT x.ghl_id, x.contact_id, c.ghl_id, x.title, x.body" +
                           std::string(entity == entity_kind::task ? ", x.due_date" : ", NULL") +
                           ", c.deleted FROM " + t +
                           " x JOIN contacts c ON c.id = x.contact_id WHERE x.id = ?");
            c.bind(1, entity_id);
            if (c.executeStep()) {
                item.ctx.ghl_id = opt_text(c.getColumn(0));
                item.ctx.contact_id = c.getColumn(1).getInt64();
                item.ctx.contact_ghl_id = opt_text(c.getColumn(2));
                item.ctx.title = opt_text(c.getColumn(3));
                item.ctx.body = opt_text(c.getColumn(4));
                item.ctx.due_date = opt_text(c.getColumn(5));
                contact_deleted = c.getColumn(6).getInt() != 0;
            }
            auto& sib = stmts_.get(
                "SELECT ghl_id FROM " + t +
                " WHERE contact_id = ? AND ghl_id IS NOT NULL AND speak4_id IS NOT NULL");
            sib.bind(1, item.ctx.contact_id);
            while (sib.executeStep())
                item.ctx.known_child_ghl_ids.push_back(sib.getColumn(0).getString());
        }

        // Coalesce: a delete absorbs everything before it; otherwise the longest run of rows of
        // the same class becomes one call.
        std::size_t n = 0;
        const auto del =
            std::find_if(rows.begin(), rows.end(), [](const row& r) { return r.op == "delete"; });
        bool skip_call = false;
        std::string skip_reason = "never created in GHL: nothing to delete";
        if (entity != entity_kind::contact && contact_deleted && !item.ctx.contact_ghl_id) {
            // The contact was deleted before it ever reached GHL (its delete absorbed its
            // create): its tasks and notes have nowhere to go and nothing to undo.
            n = rows.size();
            skip_call = true;
            skip_reason = "its contact was deleted before it reached GHL: nothing to send";
        } else if (del != rows.end()) {
            n = static_cast<std::size_t>(del - rows.begin()) + 1;
            item.act = action::remove;
            bool uncertain_create = false;
            for (std::size_t i = 0; i < n; ++i)
                uncertain_create |= rows[i].op == "create" && rows[i].uncertain;
            // Never created in GHL (and no attempt that might have): nothing to delete there.
            skip_call = !item.ctx.ghl_id && !uncertain_create;
        } else {
            const op_class cls = class_of(rows.front().op);
            // Rows split from a refused merged call go one by one, and nothing joins them.
            while (n < rows.size() && class_of(rows[n].op) == cls &&
                   (n == 0 || (!rows.front().solo && !rows[n].solo)))
                ++n;
            switch (cls) {
            case op_class::write:
                item.act = rows.front().op == "create" && !item.ctx.ghl_id ? action::create
                                                                           : action::update;
                break;
            case op_class::tag_add:
                item.act = action::tag_add;
                break;
            case op_class::tag_remove:
                item.act = action::tag_remove;
                break;
            case op_class::complete:
                item.act = action::complete;
                break;
            case op_class::pull:
                item.act = action::pull;
                break;
            case op_class::remove:
                break;
            }
        }
        for (std::size_t i = 0; i < n; ++i) {
            const row& r = rows[i];
            item.rows.push_back(r.id);
            item.attempts = std::max(item.attempts, r.attempts);
            item.uncertain |= r.uncertain;
            if (const auto* s = r.payload.if_contains("set"); s && s->is_object()) {
                merge_set(item.set, s->get_object());
                const auto& set = s->get_object();
                auto remember = [&set](const char* key, std::vector<std::string>& into) {
                    const auto* v = set.if_contains(key);
                    if (v && v->is_string() &&
                        std::find(into.begin(), into.end(), v->get_string()) == into.end())
                        into.emplace_back(v->get_string());
                };
                remember("email", item.emails);
                remember("phone", item.phones);
                remember("title", item.titles);
                remember("body", item.bodies);
            }
            if (const auto* t = r.payload.if_contains("tags"))
                add_unique(item.tags, *t);
            if (const auto* c = r.payload.if_contains("completed"); c && c->is_bool())
                item.completed = c->get_bool();
            if (const auto* ch = r.payload.if_contains("children");
                ch && ch->is_bool() && ch->get_bool())
                item.children = true;
            if (const auto* l = r.payload.if_contains("lead"); l && l->is_bool() && l->get_bool())
                item.lead = true;
        }
        item.first_row = rows.front().id;
        item.first_created_at = rows.front().created_at;

        // Work that can never reach GHL is settled here, without a call.
        std::optional<std::string> dead_reason;
        const bool needs_own_id =
            item.act != action::create && !(item.act == action::remove && item.uncertain);
        if (skip_call) {
            for (auto id : item.rows) {
                mark.reset();
                mark.bind(1, "done");
                mark.bind(2, now_s);
                mark.bind(3, now_s);
                mark.bind(4, skip_reason);
                mark.bind(5, id);
                mark.exec();
            }
            continue;
        }
        if (entity != entity_kind::contact && !item.ctx.contact_ghl_id)
            dead_reason = "its contact has no GHL id (the contact's create is dead or was dropped)";
        else if (needs_own_id && !item.ctx.ghl_id)
            dead_reason = "the " + std::string(to_string(entity)) +
                          " has no GHL id (its create is dead or was dropped)";
        for (auto id : item.rows) {
            mark.reset();
            mark.bind(1, dead_reason ? "dead" : "inflight");
            mark.bind(2, now_s);
            mark.bind(3, now_s);
            if (dead_reason)
                mark.bind(4, *dead_reason);
            mark.bind(5, id);
            mark.exec();
        }
        if (dead_reason) {
            log::warn("outbox row dead", {{"outbox_id", item.first_row},
                                          {"entity", std::string(to_string(entity))},
                                          {"error", *dead_reason}});
            continue;
        }
        items.push_back(std::move(item));
    }
    tx.commit();
    return items;
}

void write_audit_rows(store::statement_cache& stmts, const std::vector<audit_entry>& entries,
                      const std::string& now) {
    auto& a = stmts.get(
        "INSERT INTO audit_log(ts, method, path, status, latency_ms, attempt, outbox_id, error, "
        "rate_limit_remaining, trace_id) VALUES (?,?,?,?,?,?,?,?,?,?)");
    std::optional<long long> remaining, daily;
    for (const auto& e : entries) {
        a.reset();
        a.clearBindings();
        a.bind(1, e.ts);
        a.bind(2, e.method);
        a.bind(3, e.path);
        if (e.status)
            a.bind(4, *e.status);
        if (e.latency_ms)
            a.bind(5, static_cast<std::int64_t>(*e.latency_ms));
        a.bind(6, e.attempt);
        if (e.outbox_id)
            a.bind(7, *e.outbox_id);
        if (e.error)
            a.bind(8, *e.error);
        if (e.rate_limit_remaining) {
            a.bind(9, static_cast<std::int64_t>(*e.rate_limit_remaining));
            remaining = e.rate_limit_remaining;
        }
        if (e.daily_remaining)
            daily = e.daily_remaining;
        if (e.trace_id)
            a.bind(10, *e.trace_id);
        a.exec();
    }
    auto cursor = [&](const char* name, long long v) {
        auto& c = stmts.get(
            "INSERT INTO sync_cursors(name, value, updated_at) VALUES (?,?,?) ON CONFLICT(name) "
            "DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at");
        c.bind(1, name);
        c.bind(2, std::to_string(v));
        c.bind(3, now);
        c.exec();
    };
    if (remaining)
        cursor("rate_limit.remaining", *remaining);
    if (daily)
        cursor("rate_limit.daily_remaining", *daily);
}

void outbox_store::finish(const work_item& item, const outcome& out,
                          const std::vector<audit_entry>& audit, sys_time now,
                          const retry_policy& policy, const std::function<double()>& uniform01) {
    const reset_after guard{stmts_};
    SQLite::Transaction tx(db_, SQLite::TransactionBehavior::IMMEDIATE);
    record(item, out, audit, format_iso8601(now), now, policy, uniform01);
    tx.commit();
}

void outbox_store::finish_all(const std::vector<finished>& items, sys_time now,
                              const retry_policy& policy) {
    const reset_after guard{stmts_};
    const std::string now_s = format_iso8601(now);
    SQLite::Transaction tx(db_, SQLite::TransactionBehavior::IMMEDIATE);
    for (const auto& f : items)
        record(*f.item, *f.out, *f.audit, now_s, now, policy, [u = f.jitter] { return u; });
    tx.commit();
}

void outbox_store::record(const work_item& item, const outcome& out,
                          const std::vector<audit_entry>& audit, const std::string& now_s,
                          sys_time now, const retry_policy& policy,
                          const std::function<double()>& uniform01) {

    // Audit: one row per HTTP request sent, committed with the outcome it led to.
    write_audit_rows(stmts_, audit, now_s);

    const std::string table(table_of(item.ctx.entity));
    const std::string entity(to_string(item.ctx.entity));
    const int attempts = item.attempts + 1;
    std::string state = "done";
    std::string next = now_s;
    bool uncertain = false;
    std::optional<std::string> error;
    switch (out.what) {
    case outcome::kind::done:
        break;
    case outcome::kind::dead:
        state = "dead";
        error = out.error;
        if (item.rows.size() > 1 && !out.gone && item.act != action::pull &&
            item.act != action::remove && refusal(out.status)) {
            // GHL refused a merged call: its changes are retried one by one (no attempt spent),
            // so only the bad one becomes a dead letter.
            state = "pending";
            error = "refused as one call of " + std::to_string(item.rows.size()) +
                    " merged rows; retried one by one: " + out.error;
        }
        break;
    case outcome::kind::retry: {
        uncertain = item.uncertain || out.may_have_been_applied;
        error = out.error;
        state = "pending";
        if (out.held) {
            // The breaker held it back: nothing was sent, nothing is spent.
            next = format_iso8601(now + out.retry_after.value_or(std::chrono::seconds(1)));
            break;
        }
        const auto queued = parse_iso8601(item.first_created_at);
        if (queued && now - *queued >= policy.give_up_after) {
            state = "dead";
            error = "gave up after " + std::to_string(attempts) + " attempts over " +
                    std::to_string(
                        std::chrono::duration_cast<std::chrono::minutes>(now - *queued).count()) +
                    " min (retry.give_up_after): " + out.error;
        } else {
            next = format_iso8601(now +
                                  backoff_delay(policy, item.attempts, out.retry_after, uniform01));
        }
        break;
    }
    case outcome::kind::wait_auth:
        state = "pending";
        error = out.error;
        uncertain = item.uncertain;
        next = format_iso8601(now + std::chrono::seconds(30));
        break;
    }
    auto& u = stmts_.get(
        "UPDATE outbox SET state = ?, attempts = ?, next_attempt_at = ?, last_error = ?, "
        "last_status = ?, uncertain = ?, claimed_at = NULL, updated_at = ? WHERE id = ?");
    for (auto id : item.rows) {
        u.reset();
        u.clearBindings();
        u.bind(1, state);
        u.bind(2, out.what == outcome::kind::wait_auth || out.held ||
                          (out.what == outcome::kind::dead && state == "pending")
                      ? item.attempts
                      : attempts);
        u.bind(3, next);
        if (error)
            u.bind(4, *error);
        if (out.what == outcome::kind::wait_auth)
            u.bind(5, 401); // marks the row as waiting for credentials (release_auth_waiters)
        else if (out.status)
            u.bind(5, *out.status);
        u.bind(6, uncertain ? 1 : 0);
        u.bind(7, now_s);
        u.bind(8, id);
        u.exec();
    }
    if (state == "dead")
        log::warn("outbox row dead", {{"outbox_id", item.first_row},
                                      {"op", std::string(to_string(item.act))},
                                      {"entity", entity},
                                      {"error", error.value_or("")}});

    auto change = [&](const char* kind, const char* source, std::int64_t id) {
        auto& c = stmts_.get(
            "INSERT INTO changes(entity, entity_id, kind, source, ts) VALUES (?,?,?,?,?)");
        c.bind(1, entity);
        c.bind(2, id);
        c.bind(3, kind);
        c.bind(4, source);
        c.bind(5, now_s);
        c.exec();
    };

    if (out.gone) {
        // The record no longer exists in GHL: the mirror says so too.
        auto& d = stmts_.get("UPDATE " + table +
                             " SET deleted = 1, updated_at = ? WHERE id = ? AND deleted = 0");
        d.bind(1, now_s);
        d.bind(2, item.ctx.id);
        if (d.exec() > 0)
            change("deleted", "remote", item.ctx.id);
    }
    if (out.conflict)
        record_identity_conflict(stmts_, item.ctx.id, out.conflict->field,
                                 out.conflict->local_value, out.conflict->remote_value,
                                 out.conflict->policy, now_s);
    if (out.what == outcome::kind::done && !out.gone && item.act != action::pull) {
        // Write-back: the GHL id, GHL's timestamp and the record as GHL returned it.
        std::int64_t target = item.ctx.id; // the row that now stands for the GHL record
        if (out.ghl_id && out.ghl_id != item.ctx.ghl_id) {
            auto& other =
                stmts_.get("SELECT id, speak4_id FROM " + table + " WHERE ghl_id = ? AND id <> ?");
            other.bind(1, *out.ghl_id);
            other.bind(2, item.ctx.id);
            std::optional<std::int64_t> dup;
            bool dup_has_speak4_id = false;
            if (other.executeStep()) {
                dup = other.getColumn(0).getInt64();
                dup_has_speak4_id = !other.getColumn(1).isNull();
            }
            other.reset();
            if (item.ctx.ghl_id) {
                // GHL answered for another record than the one this row is linked to: one row
                // cannot be two GHL records. Nothing is relinked; an operator decides.
                record_identity_conflict(stmts_, item.ctx.id, "ghl_id", *out.ghl_id,
                                         *item.ctx.ghl_id, "refused", now_s);
            } else if (dup && item.ctx.entity == entity_kind::contact) {
                // The mirror already has this GHL contact (pulled, or another Speak4 contact's):
                // one person. Link: the row holding the GHL id gets this one's Speak4 ids,
                // children and queued work; this row stays, pointing at it (DESIGN §9).
                link_contacts(stmts_, *dup, item.ctx.id, policy_, "push", now_s);
                target = *dup;
            } else if (dup && dup_has_speak4_id) {
                // A task or note Speak4 created holds the id already: two Speak4 records are
                // not folded into one. The conflict is recorded; this row stays unlinked.
                record_identity_conflict(stmts_, item.ctx.id, "ghl_id", *out.ghl_id,
                                         "held by " + entity + " " + std::to_string(*dup),
                                         "refused", now_s);
                target = 0;
            } else {
                if (dup) {
                    // A task or note the pull added before this push linked it (it carries no
                    // Speak4 id): fold it into this row so one GHL record has one mirror row.
                    auto& mo = stmts_.get(
                        "UPDATE outbox SET entity_id = ? WHERE entity = ? AND entity_id = ?");
                    mo.bind(1, item.ctx.id);
                    mo.bind(2, entity);
                    mo.bind(3, *dup);
                    mo.exec();
                    auto& del = stmts_.get("DELETE FROM " + table + " WHERE id = ?");
                    del.bind(1, *dup);
                    del.exec();
                }
                auto& g = stmts_.get("UPDATE " + table + " SET ghl_id = ? WHERE id = ?");
                g.bind(1, *out.ghl_id);
                g.bind(2, item.ctx.id);
                g.exec();
            }
        }
        if (target == 0)
            return;
        auto& w = stmts_.get(
            "UPDATE " + table +
            " SET remote_updated_at = COALESCE(?, remote_updated_at), raw = COALESCE(?, raw), "
            "updated_at = ? WHERE id = ?");
        if (out.remote_updated_at)
            w.bind(1, *out.remote_updated_at);
        if (out.raw)
            w.bind(2, bj::serialize(*out.raw));
        w.bind(3, now_s);
        w.bind(4, target);
        w.exec();
        if (item.act == action::tag_add || item.act == action::tag_remove)
            note_pushed_tags(item);
        change("pushed", "push", target);
    }
}

} // namespace speak4::sync
