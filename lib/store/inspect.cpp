#include "store/inspect.hpp"

#include <SQLiteCpp/Statement.h>
#include <SQLiteCpp/Transaction.h>
#include <algorithm>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <charconv>

namespace speak4::store {
namespace {

std::optional<std::string> opt_text(const SQLite::Column& c) {
    if (c.isNull())
        return std::nullopt;
    return c.getString();
}

template <class T>
std::optional<T> opt_int(const SQLite::Column& c) {
    if (c.isNull())
        return std::nullopt;
    return static_cast<T>(c.getInt64());
}

long long count(SQLite::Database& db, const char* sql) {
    return db.execAndGet(sql).getInt64();
}

} // namespace

status_snapshot read_status(SQLite::Database& db) {
    // One read transaction so the figures agree with each other.
    SQLite::Transaction tx(db, SQLite::TransactionBehavior::DEFERRED);
    status_snapshot s;
    s.schema_version = db.execAndGet("PRAGMA user_version").getInt();
    SQLite::Statement q(db, "SELECT state, COUNT(*) FROM outbox GROUP BY state");
    while (q.executeStep()) {
        const std::string state = q.getColumn(0).getString();
        const long long n = q.getColumn(1).getInt64();
        if (state == "pending")
            s.queue.pending = n;
        else if (state == "inflight")
            s.queue.inflight = n;
        else if (state == "done")
            s.queue.done = n;
        else if (state == "dead")
            s.queue.dead = n;
    }
    SQLite::Statement c(db, "SELECT name, value FROM sync_cursors ORDER BY name");
    while (c.executeStep())
        s.cursors[c.getColumn(0).getString()] = c.getColumn(1).getString();
    if (auto it = s.cursors.find("last_pull_at"); it != s.cursors.end())
        s.last_pull_at = it->second;
    s.changes_seq = count(db, "SELECT COALESCE(MAX(seq), 0) FROM changes");
    s.contacts =
        count(db, "SELECT COUNT(*) FROM contacts WHERE deleted = 0 AND merged_into IS NULL");
    s.tasks = count(db, "SELECT COUNT(*) FROM tasks WHERE deleted = 0");
    s.notes = count(db, "SELECT COUNT(*) FROM notes WHERE deleted = 0");
    SQLite::Statement o(db, "SELECT location_id, state, state_reason, expires_at FROM oauth_tokens "
                            "ORDER BY location_id");
    while (o.executeStep())
        s.oauth.push_back({o.getColumn(0).getString(), o.getColumn(1).getString(),
                           opt_text(o.getColumn(2)), o.getColumn(3).getString()});
    tx.commit();
    return s;
}

std::vector<outbox_row> list_outbox(SQLite::Database& db, std::optional<std::string> state,
                                    int limit) {
    SQLite::Statement q(
        db, "SELECT id, op, entity, entity_id, state, attempts, next_attempt_at, last_error, "
            "created_at, payload FROM outbox WHERE (?1 IS NULL OR state = ?1) "
            "ORDER BY id DESC LIMIT ?2");
    if (state)
        q.bind(1, *state);
    q.bind(2, limit);
    std::vector<outbox_row> rows;
    while (q.executeStep()) {
        outbox_row r;
        r.id = q.getColumn(0).getInt64();
        r.op = q.getColumn(1).getString();
        r.entity = q.getColumn(2).getString();
        r.entity_id = q.getColumn(3).getInt64();
        r.state = q.getColumn(4).getString();
        r.attempts = q.getColumn(5).getInt();
        r.next_attempt_at = q.getColumn(6).getString();
        r.last_error = opt_text(q.getColumn(7));
        r.created_at = q.getColumn(8).getString();
        r.payload = q.getColumn(9).getString();
        rows.push_back(std::move(r));
    }
    return rows;
}

namespace {

/// Revives one dead (or pending) row so that it never overwrites a newer value (DESIGN §9):
/// what later rows of the same entity already sent (done or in flight) is taken out of it —
/// the fields a later create/update set, the tags a later tag call touched, a later
/// completion — and a row with nothing left, or whose entity a later row deleted, is dropped
/// as superseded (state done, the reason in last_error). What remains goes back to pending and
/// is claimed in entity order (merged with the entity's later pending rows, later values
/// winning). Returns 1 when revived, 0 when superseded, -1 when no such row.
int revive(SQLite::Database& db, long long id, const std::string& now) {
    namespace bj = boost::json;
    SQLite::Statement row(db, "SELECT op, entity, entity_id, payload FROM outbox WHERE id = ? AND "
                              "state IN ('dead', 'pending')");
    row.bind(1, static_cast<std::int64_t>(id));
    if (!row.executeStep())
        return -1;
    const std::string op = row.getColumn(0).getString();
    const std::string entity = row.getColumn(1).getString();
    const std::int64_t entity_id = row.getColumn(2).getInt64();
    bj::object payload;
    {
        boost::system::error_code ec;
        auto v = bj::parse(row.getColumn(3).getString(), ec);
        if (!ec && v.is_object())
            payload = std::move(v.as_object());
    }
    row.reset();

    SQLite::Statement later(db, "SELECT id, op, payload FROM outbox WHERE entity = ? AND "
                                "entity_id = ? AND id > ? AND state IN ('done', 'inflight') "
                                "ORDER BY id");
    later.bind(1, entity);
    later.bind(2, entity_id);
    later.bind(3, static_cast<std::int64_t>(id));
    bool changed = false;
    bool superseded = false;
    std::string by;
    while (later.executeStep() && !superseded) {
        const std::string lid = later.getColumn(0).getString();
        const std::string lop = later.getColumn(1).getString();
        boost::system::error_code ec;
        auto lv = bj::parse(later.getColumn(2).getString(), ec);
        const bj::object empty;
        const bj::object& lp = !ec && lv.is_object() ? lv.as_object() : empty;
        auto note = [&] {
            if (by.find(lid) == std::string::npos)
                by += (by.empty() ? "" : ", ") + lid;
        };
        if (lop == "delete" && op != "delete") {
            superseded = true;
            note();
        } else if ((op == "update" || op == "create") && (lop == "update" || lop == "create")) {
            // Only an update loses fields: a create must still make its record.
            auto* set = payload.if_contains("set");
            const auto* lset = lp.if_contains("set");
            if (op == "update" && set && set->is_object() && lset && lset->is_object())
                for (const auto& kv : lset->as_object())
                    if (set->as_object().erase(kv.key())) {
                        changed = true;
                        note();
                    }
            if (op == "update" && set && set->is_object() && set->as_object().empty())
                superseded = true;
        } else if ((op == "tag_add" || op == "tag_remove") &&
                   (lop == "tag_add" || lop == "tag_remove")) {
            auto* tags = payload.if_contains("tags");
            const auto* ltags = lp.if_contains("tags");
            if (tags && tags->is_array() && ltags && ltags->is_array()) {
                bj::array keep;
                for (const auto& t : tags->as_array())
                    if (std::find(ltags->as_array().begin(), ltags->as_array().end(), t) ==
                        ltags->as_array().end())
                        keep.push_back(t);
                    else
                        note();
                if (keep.size() != tags->as_array().size()) {
                    changed = true;
                    *tags = std::move(keep);
                }
                if (tags->as_array().empty())
                    superseded = true;
            }
        } else if (op == "complete" && lop == "complete") {
            superseded = true;
            note();
        }
    }
    later.reset();
    if (superseded) {
        SQLite::Statement u(db, "UPDATE outbox SET state = 'done', last_error = ?, updated_at = ? "
                                "WHERE id = ?");
        u.bind(1, "superseded on revival: outbox row(s) " + by +
                      " already sent newer values of this " + entity);
        u.bind(2, now);
        u.bind(3, static_cast<std::int64_t>(id));
        u.exec();
        return 0;
    }
    SQLite::Statement u(db,
                        "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = ?, "
                        "payload = CASE WHEN ? THEN ? ELSE payload END, last_error = CASE "
                        "WHEN ? THEN ? ELSE last_error END, updated_at = ? WHERE id = ?");
    u.bind(1, now);
    u.bind(2, changed ? 1 : 0);
    u.bind(3, bj::serialize(payload));
    u.bind(4, changed ? 1 : 0);
    u.bind(5, "revived without what outbox row(s) " + by + " sent since");
    u.bind(6, now);
    u.bind(7, static_cast<std::int64_t>(id));
    u.exec();
    return 1;
}

/// A savepoint: atomic on its own, and nests inside a caller's transaction (the console's
/// repair_dead holds one).
struct savepoint {
    explicit savepoint(SQLite::Database& d)
        : db(d) {
        db.exec("SAVEPOINT revive");
    }
    ~savepoint() {
        if (!released) {
            try {
                db.exec("ROLLBACK TO revive");
                db.exec("RELEASE revive");
            } catch (...) {
            }
        }
    }
    void release() {
        db.exec("RELEASE revive");
        released = true;
    }
    SQLite::Database& db;
    bool released = false;
};

} // namespace

bool retry_outbox(SQLite::Database& db, long long id, const std::string& now) {
    savepoint sp(db);
    const int r = revive(db, id, now);
    sp.release();
    return r >= 0;
}

long long retry_dead(SQLite::Database& db, const std::string& now) {
    savepoint tx(db);
    std::vector<long long> ids;
    {
        SQLite::Statement q(db, "SELECT id FROM outbox WHERE state = 'dead' ORDER BY id");
        while (q.executeStep())
            ids.push_back(q.getColumn(0).getInt64());
    }
    long long n = 0;
    for (const long long id : ids)
        n += revive(db, id, now) > 0 ? 1 : 0;
    tx.release();
    return n;
}

bool drop_outbox(SQLite::Database& db, long long id) {
    SQLite::Statement d(db, "DELETE FROM outbox WHERE id = ? AND state <> 'inflight'");
    d.bind(1, static_cast<std::int64_t>(id));
    return d.exec() == 1;
}

std::vector<audit_row> list_audit(SQLite::Database& db, std::optional<std::string> since,
                                  int limit) {
    SQLite::Statement q(
        db, "SELECT id, ts, method, path, status, latency_ms, attempt, outbox_id, error, "
            "rate_limit_remaining, trace_id FROM audit_log WHERE (?1 IS NULL OR ts >= ?1) "
            "ORDER BY id DESC LIMIT ?2");
    if (since)
        q.bind(1, *since);
    q.bind(2, limit);
    std::vector<audit_row> rows;
    while (q.executeStep()) {
        audit_row r;
        r.id = q.getColumn(0).getInt64();
        r.ts = q.getColumn(1).getString();
        r.method = q.getColumn(2).getString();
        r.path = q.getColumn(3).getString();
        r.status = opt_int<int>(q.getColumn(4));
        r.latency_ms = opt_int<long long>(q.getColumn(5));
        r.attempt = opt_int<int>(q.getColumn(6));
        r.outbox_id = opt_int<long long>(q.getColumn(7));
        r.error = opt_text(q.getColumn(8));
        r.rate_limit_remaining = opt_int<long long>(q.getColumn(9));
        r.trace_id = opt_text(q.getColumn(10));
        rows.push_back(std::move(r));
    }
    return rows;
}

auth_view read_auth(const config& cfg, const status_snapshot& s) {
    auth_view v;
    if (cfg.ghl.auth != auth_mode::oauth)
        return v;
    v.state = "needs_reauth";
    v.reason = "no OAuth token stored yet: run `speak4-sync auth exchange`";
    for (const auto& o : s.oauth)
        if (o.location_id == cfg.ghl.location_id || cfg.ghl.location_id.empty()) {
            v.state = o.state;
            v.reason = o.reason;
            v.expires_at = o.expires_at;
        }
    return v;
}

boost::json::object status_json(const config& cfg, const status_snapshot& s) {
    namespace bj = boost::json;
    const auto opt = [](const auto& o) { return o ? bj::value(*o) : bj::value(nullptr); };
    const auto cursor_int = [&](const char* name) -> std::optional<long long> {
        auto it = s.cursors.find(name);
        if (it == s.cursors.end())
            return std::nullopt;
        long long v = 0;
        auto [p, ec] = std::from_chars(it->second.data(), it->second.data() + it->second.size(), v);
        if (ec != std::errc{})
            return std::nullopt;
        return v;
    };
    const auth_view auth = read_auth(cfg, s);
    bj::object cursors;
    for (const auto& [k, v] : s.cursors)
        cursors[k] = v;
    bj::object out{
        {"queue",
         {{"pending", s.queue.pending},
          {"inflight", s.queue.inflight},
          {"done", s.queue.done},
          {"dead", s.queue.dead}}},
        {"cursors", std::move(cursors)},
        {"last_pull_at", opt(s.last_pull_at)},
        {"rate_limit",
         {{"remaining", opt(cursor_int("rate_limit.remaining"))},
          {"daily_remaining", opt(cursor_int("rate_limit.daily_remaining"))}}},
        {"auth",
         {{"mode", to_string(cfg.ghl.auth)},
          {"state", auth.state},
          {"expires_at", opt(auth.expires_at)}}},
        {"changes_seq", s.changes_seq},
        {"mirror", {{"contacts", s.contacts}, {"tasks", s.tasks}, {"notes", s.notes}}},
        {"schema_version", s.schema_version},
        {"database", cfg.database.path.string()},
    };
    if (auth.reason)
        out["auth"].as_object()["reason"] = *auth.reason;
    bj::array entities{"contacts"};
    if (cfg.sync.entities.tasks)
        entities.emplace_back("tasks");
    if (cfg.sync.entities.notes)
        entities.emplace_back("notes");
    if (cfg.sync.entities.appointments)
        entities.emplace_back("appointments");
    out["sync"] =
        bj::object{{"direction", to_string(cfg.sync.direction)}, {"entities", std::move(entities)}};
    // The circuit breaker as the daemon last saved it (every 5 s and on each change); closed
    // when no daemon has run yet.
    bj::object breaker{{"state", "closed"}};
    if (auto it = s.cursors.find("breaker"); it != s.cursors.end()) {
        boost::system::error_code ec;
        auto v = bj::parse(it->second, ec);
        if (!ec && v.is_object() && v.as_object().if_contains("state"))
            breaker = std::move(v.as_object());
    }
    out["breaker"] = std::move(breaker);
    return out;
}

} // namespace speak4::store
