#include "store/inspect.hpp"

#include <SQLiteCpp/Statement.h>
#include <SQLiteCpp/Transaction.h>
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
    s.contacts = count(db, "SELECT COUNT(*) FROM contacts WHERE deleted = 0");
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

bool retry_outbox(SQLite::Database& db, long long id, const std::string& now) {
    SQLite::Statement u(db,
                        "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = ?, "
                        "updated_at = ? WHERE id = ? AND state IN ('dead', 'pending')");
    u.bind(1, now);
    u.bind(2, now);
    u.bind(3, static_cast<std::int64_t>(id));
    return u.exec() == 1;
}

long long retry_dead(SQLite::Database& db, const std::string& now) {
    SQLite::Statement u(db,
                        "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = ?, "
                        "updated_at = ? WHERE state = 'dead'");
    u.bind(1, now);
    u.bind(2, now);
    return u.exec();
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
    return out;
}

} // namespace speak4::store
