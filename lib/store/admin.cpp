#include "store/admin.hpp"

#include <SQLiteCpp/Statement.h>
#include <SQLiteCpp/Transaction.h>
#include <algorithm>
#include <map>

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

// The columns of an outbox row as outbox_row holds them, then the mirror ids of its entity.
constexpr const char* outbox_columns =
    "o.id, o.op, o.entity, o.entity_id, o.state, o.attempts, o.next_attempt_at, o.last_error, "
    "o.created_at, o.payload, o.last_status, o.updated_at, o.inbox_id, "
    "CASE o.entity WHEN 'contact' THEN ct.speak4_id WHEN 'task' THEN t.speak4_id "
    "  WHEN 'note' THEN n.speak4_id END, "
    "CASE o.entity WHEN 'contact' THEN ct.ghl_id WHEN 'task' THEN t.ghl_id "
    "  WHEN 'note' THEN n.ghl_id END ";
constexpr const char* outbox_joins =
    "LEFT JOIN contacts ct ON o.entity = 'contact' AND ct.id = o.entity_id "
    "LEFT JOIN tasks t ON o.entity = 'task' AND t.id = o.entity_id "
    "LEFT JOIN notes n ON o.entity = 'note' AND n.id = o.entity_id ";

outbox_row read_outbox(SQLite::Statement& q) {
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
    return r;
}

std::optional<inbox_event> read_inbox(SQLite::Database& db, long long id) {
    SQLite::Statement q(db, "SELECT id, event_id, type, body, received_at FROM inbox WHERE id = ?");
    q.bind(1, static_cast<std::int64_t>(id));
    if (!q.executeStep())
        return std::nullopt;
    return inbox_event{q.getColumn(0).getInt64(), opt_text(q.getColumn(1)),
                       q.getColumn(2).getString(), q.getColumn(3).getString(),
                       q.getColumn(4).getString()};
}

std::optional<std::string> state_of(SQLite::Database& db, long long id) {
    SQLite::Statement q(db, "SELECT state FROM outbox WHERE id = ?");
    q.bind(1, static_cast<std::int64_t>(id));
    if (!q.executeStep())
        return std::nullopt;
    return q.getColumn(0).getString();
}

template <class F>
repair_result repair_dead(SQLite::Database& db, long long id, F apply) {
    SQLite::Transaction tx(db, SQLite::TransactionBehavior::IMMEDIATE);
    const auto state = state_of(db, id);
    if (!state)
        return {repair_result::kind::not_found, {}};
    if (*state != "dead")
        return {repair_result::kind::not_dead, *state};
    if (!apply())
        return {repair_result::kind::not_dead, *state};
    tx.commit();
    return {repair_result::kind::done, {}};
}

bool status_matches(const std::optional<int>& status, const std::string& want) {
    if (want == "error")
        return !status;
    if (!status)
        return false;
    if (want.size() == 3 && want[1] == 'x' && want[2] == 'x')
        return *status / 100 == want[0] - '0';
    return std::to_string(*status) == want;
}

audit_row read_audit(SQLite::Statement& q) {
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
    return r;
}

constexpr const char* audit_columns = "id, ts, method, path, status, latency_ms, attempt, "
                                      "outbox_id, error, rate_limit_remaining, trace_id";

conflict_row read_conflict(SQLite::Statement& q) {
    conflict_row c;
    c.id = q.getColumn(0).getInt64();
    c.ts = q.getColumn(1).getString();
    c.ref.entity = q.getColumn(2).getString();
    c.ref.entity_id = q.getColumn(3).getInt64();
    c.field = q.getColumn(4).getString();
    c.local_value = opt_text(q.getColumn(5));
    c.remote_value = opt_text(q.getColumn(6));
    c.policy = q.getColumn(7).getString();
    c.winner = q.getColumn(8).getString();
    c.ref.speak4_id = opt_text(q.getColumn(9));
    c.ref.ghl_id = opt_text(q.getColumn(10));
    return c;
}

constexpr const char* conflict_select =
    "SELECT c.id, c.ts, c.entity, c.entity_id, c.field, c.local_value, c.remote_value, c.policy, "
    "c.winner, "
    "CASE c.entity WHEN 'contact' THEN ct.speak4_id WHEN 'task' THEN t.speak4_id "
    "  WHEN 'note' THEN n.speak4_id END, "
    "CASE c.entity WHEN 'contact' THEN ct.ghl_id WHEN 'task' THEN t.ghl_id "
    "  WHEN 'note' THEN n.ghl_id END "
    "FROM conflicts c "
    "LEFT JOIN contacts ct ON c.entity = 'contact' AND ct.id = c.entity_id "
    "LEFT JOIN tasks t ON c.entity = 'task' AND t.id = c.entity_id "
    "LEFT JOIN notes n ON c.entity = 'note' AND n.id = c.entity_id ";

/// The minute an ISO-8601 time falls in ("2026-12-03T08:41:07.123Z" -> "2026-12-03T08:41").
std::string minute_of(const std::string& ts) {
    return ts.substr(0, 16);
}

long long percentile(std::vector<long long>& v, double p) {
    const auto k = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
    return v[k];
}

} // namespace

std::vector<dead_letter> list_dead_letters(SQLite::Database& db, int limit) {
    SQLite::Transaction tx(db, SQLite::TransactionBehavior::DEFERRED);
    SQLite::Statement q(db, std::string("SELECT ") + outbox_columns + "FROM outbox o " +
                                outbox_joins + "WHERE o.state = 'dead' ORDER BY o.id DESC LIMIT ?");
    q.bind(1, limit);
    std::vector<dead_letter> out;
    std::vector<std::optional<long long>> inbox_ids;
    while (q.executeStep()) {
        dead_letter d;
        d.row = read_outbox(q);
        d.last_status = opt_int<int>(q.getColumn(10));
        d.updated_at = q.getColumn(11).getString();
        inbox_ids.push_back(opt_int<long long>(q.getColumn(12)));
        d.ref = {d.row.entity, d.row.entity_id, opt_text(q.getColumn(13)),
                 opt_text(q.getColumn(14))};
        out.push_back(std::move(d));
    }
    q.reset();
    for (std::size_t i = 0; i < out.size(); ++i)
        if (inbox_ids[i])
            out[i].event = read_inbox(db, *inbox_ids[i]);
    tx.commit();
    return out;
}

repair_result retry_dead_letter(SQLite::Database& db, long long id, const std::string& now) {
    return repair_dead(db, id, [&] { return retry_outbox(db, id, now); });
}

repair_result drop_dead_letter(SQLite::Database& db, long long id) {
    return repair_dead(db, id, [&] { return drop_outbox(db, id); });
}

std::string path_template(std::string_view path) {
    if (const auto q = path.find('?'); q != std::string_view::npos)
        path = path.substr(0, q);
    std::vector<std::string_view> seg;
    std::size_t pos = 1;
    while (pos <= path.size()) {
        const auto slash = path.find('/', pos);
        seg.push_back(path.substr(pos, slash == std::string_view::npos ? std::string_view::npos
                                                                       : slash - pos));
        if (slash == std::string_view::npos)
            break;
        pos = slash + 1;
    }
    if (path.empty() || path[0] != '/' || seg.empty() || seg[0] != "contacts" || seg.size() < 2)
        return std::string(path);
    // /contacts/, /contacts/search, /contacts/search/duplicate, /contacts/business/:businessId
    if (seg[1].empty() || seg[1] == "search")
        return std::string(path);
    std::string out = "/contacts/";
    if (seg[1] == "business")
        return seg.size() > 2 ? out + "business/:businessId" : out + "business";
    out += ":contactId";
    if (seg.size() > 2) {
        out += "/";
        out += seg[2];
        if (seg.size() > 3) {
            out += seg[2] == "tasks" ? "/:taskId" : "/:id";
            for (std::size_t i = 4; i < seg.size(); ++i) {
                out += "/";
                out += seg[i];
            }
        }
    }
    return out;
}

audit_page query_audit(SQLite::Database& db, const audit_query& in) {
    // The ts index bounds the scan to the time range; the filters run on at most scan_limit rows
    // of it, so no query reads the whole table.
    SQLite::Statement q(db, std::string("SELECT ") + audit_columns +
                                " FROM audit_log WHERE ts >= ?1 AND ts < ?2 AND "
                                "(?3 IS NULL OR id < ?3) ORDER BY ts DESC, id DESC LIMIT ?4");
    q.bind(1, in.since);
    q.bind(2, in.until);
    if (in.before_id)
        q.bind(3, static_cast<std::int64_t>(*in.before_id));
    q.bind(4, in.scan_limit);
    audit_page page;
    int scanned = 0;
    while (q.executeStep()) {
        ++scanned;
        audit_row r = read_audit(q);
        if (in.status && !status_matches(r.status, *in.status))
            continue;
        if (in.path_template && path_template(r.path) != *in.path_template)
            continue;
        if (static_cast<int>(page.rows.size()) == in.limit) {
            page.more = true;
            break;
        }
        page.rows.push_back(std::move(r));
    }
    if (!page.more && scanned == in.scan_limit) {
        page.truncated = true;
        page.more = true;
    }
    return page;
}

std::vector<conflict_row> list_conflicts(SQLite::Database& db, int limit,
                                         std::optional<long long> before_id) {
    SQLite::Statement q(db, std::string(conflict_select) +
                                "WHERE (?1 IS NULL OR c.id < ?1) ORDER BY c.id DESC LIMIT ?2");
    if (before_id)
        q.bind(1, static_cast<std::int64_t>(*before_id));
    q.bind(2, limit);
    std::vector<conflict_row> out;
    while (q.executeStep())
        out.push_back(read_conflict(q));
    return out;
}

std::optional<std::string> oldest_pending_at(SQLite::Database& db) {
    SQLite::Statement q(db, "SELECT MIN(created_at) FROM outbox WHERE state = 'pending' OR "
                            "state = 'inflight'");
    if (!q.executeStep())
        return std::nullopt;
    return opt_text(q.getColumn(0));
}

series read_series(SQLite::Database& db, sys_time now, int minutes) {
    minutes = std::clamp(minutes, 1, 24 * 60);
    const auto end_minute =
        std::chrono::floor<std::chrono::minutes>(now) + std::chrono::minutes(1); // exclusive
    const auto start = end_minute - std::chrono::minutes(minutes);
    const std::string since = format_iso8601(start);
    series out;
    std::map<std::string, std::size_t> index;
    for (int i = 0; i < minutes; ++i) {
        const auto t = start + std::chrono::minutes(i);
        minute_point p;
        const std::string iso = format_iso8601(t);
        p.minute = iso.substr(0, 16) + ":00Z";
        index.emplace(iso.substr(0, 16), out.points.size());
        out.points.push_back(std::move(p));
    }

    SQLite::Transaction tx(db, SQLite::TransactionBehavior::DEFERRED);
    // Calls per minute by status class, and their latencies. At most 24 h x the daily budget's
    // share is read (200k/day at most at GHL), bounded again here.
    constexpr int max_calls = 250000;
    std::vector<std::vector<long long>> latencies(out.points.size());
    {
        SQLite::Statement q(db, "SELECT ts, status, latency_ms FROM audit_log WHERE ts >= ? "
                                "ORDER BY ts LIMIT ?");
        q.bind(1, since);
        q.bind(2, max_calls);
        int n = 0;
        while (q.executeStep()) {
            ++n;
            const auto it = index.find(minute_of(q.getColumn(0).getString()));
            if (it == index.end())
                continue;
            auto& p = out.points[it->second];
            if (q.getColumn(1).isNull()) {
                ++p.no_response;
                continue;
            }
            const int status = q.getColumn(1).getInt();
            if (status == 429)
                ++p.rate_limited;
            else if (status >= 500)
                ++p.server_error;
            else if (status >= 400)
                ++p.client_error;
            else
                ++p.ok;
            if (!q.getColumn(2).isNull())
                latencies[it->second].push_back(q.getColumn(2).getInt64());
        }
        out.truncated = n == max_calls;
    }
    for (std::size_t i = 0; i < out.points.size(); ++i) {
        if (latencies[i].empty())
            continue;
        out.points[i].p50_ms = percentile(latencies[i], 0.50);
        out.points[i].p95_ms = percentile(latencies[i], 0.95);
    }
    {
        SQLite::Statement q(db, "SELECT substr(ts, 1, 16), COUNT(*) FROM changes WHERE ts >= ? "
                                "GROUP BY 1");
        q.bind(1, since);
        while (q.executeStep()) {
            const auto it = index.find(q.getColumn(0).getString());
            if (it != index.end())
                out.points[it->second].changes = q.getColumn(1).getInt64();
        }
    }
    {
        // Queue depth at the end of each minute: rows created by then and not finished by then.
        // Waiting rows count from their creation on; finished ones (done, dead) until their last
        // update. The rows still waiting are few; finished rows of the window are bounded.
        std::vector<long long> delta(out.points.size() + 1, 0);
        long long base = 0; // waiting at the start of the window
        SQLite::Statement q(
            db, "SELECT created_at, CASE WHEN state = 'pending' OR state = 'inflight' THEN NULL "
                "ELSE updated_at END FROM outbox WHERE state = 'pending' OR state = 'inflight' OR "
                "updated_at >= ? LIMIT ?");
        q.bind(1, since);
        q.bind(2, max_calls);
        const auto slot = [&](const std::string& ts) -> std::optional<std::size_t> {
            if (ts < since)
                return std::nullopt; // before the window
            const auto it = index.find(minute_of(ts));
            return it == index.end() ? std::optional<std::size_t>(out.points.size())
                                     : std::optional<std::size_t>(it->second);
        };
        while (q.executeStep()) {
            const std::string created = q.getColumn(0).getString();
            const auto finished = opt_text(q.getColumn(1));
            const auto c = slot(created);
            if (c)
                ++delta[*c];
            else
                ++base;
            if (finished) {
                const auto f = slot(*finished);
                if (f)
                    --delta[*f];
                else
                    --base;
            }
        }
        long long depth = base;
        for (std::size_t i = 0; i < out.points.size(); ++i) {
            depth += delta[i];
            out.points[i].queue_depth = std::max(0LL, depth);
        }
    }
    tx.commit();
    return out;
}

std::optional<contact_timeline> find_contact_timeline(SQLite::Database& db, std::string_view key,
                                                      const std::string& since, int limit) {
    SQLite::Transaction tx(db, SQLite::TransactionBehavior::DEFERRED);
    SQLite::Statement find(db,
                           "SELECT id, speak4_id, ghl_id, email, "
                           "  TRIM(COALESCE(first_name, '') || ' ' || COALESCE(last_name, '')), "
                           "  deleted FROM contacts "
                           "WHERE merged_into IS NULL AND (ghl_id = ?1 OR id = (SELECT "
                           "  contact_id FROM contact_aliases WHERE speak4_id = ?1) OR "
                           "  (email IS NOT NULL AND email = ?1 COLLATE NOCASE)) "
                           "ORDER BY id LIMIT 1");
    find.bind(1, std::string(key));
    if (!find.executeStep())
        return std::nullopt;
    contact_timeline t;
    t.contact_id = find.getColumn(0).getInt64();
    t.speak4_id = opt_text(find.getColumn(1));
    t.ghl_id = opt_text(find.getColumn(2));
    t.email = opt_text(find.getColumn(3));
    t.name = opt_text(find.getColumn(4));
    t.deleted = find.getColumn(5).getInt() != 0;
    find.reset();

    // The contact and its children, as (entity, id) pairs the other tables name.
    const auto mine = [](const char* x) {
        const std::string e = std::string(x) + ".entity";
        const std::string id = std::string(x) + ".entity_id";
        return "((" + e + " = 'contact' AND " + id + " = :cid) OR (" + e + " = 'task' AND " + id +
               " IN (SELECT id FROM tasks WHERE contact_id = :cid)) OR (" + e + " = 'note' AND " +
               id + " IN (SELECT id FROM notes WHERE contact_id = :cid)))";
    };
    const auto cid = static_cast<std::int64_t>(t.contact_id);
    {
        SQLite::Statement q(db, "SELECT x.id, x.op, x.entity, x.entity_id, x.state, x.attempts, "
                                "x.next_attempt_at, x.last_error, x.created_at, x.payload, "
                                "x.inbox_id FROM outbox x WHERE " +
                                    mine("x") + " ORDER BY x.id DESC LIMIT :limit");
        q.bind(":cid", cid);
        q.bind(":limit", limit);
        std::vector<long long> inbox_ids;
        while (q.executeStep()) {
            t.outbox.push_back(read_outbox(q));
            if (!q.getColumn(10).isNull())
                inbox_ids.push_back(q.getColumn(10).getInt64());
        }
        q.reset();
        std::sort(inbox_ids.begin(), inbox_ids.end());
        inbox_ids.erase(std::unique(inbox_ids.begin(), inbox_ids.end()), inbox_ids.end());
        for (auto it = inbox_ids.rbegin(); it != inbox_ids.rend(); ++it)
            if (auto e = read_inbox(db, *it))
                t.events.push_back(std::move(*e));
    }
    {
        SQLite::Statement q(db, "SELECT x.seq, x.ts, x.entity, x.entity_id, x.kind, x.source "
                                "FROM changes x WHERE " +
                                    mine("x") + " ORDER BY x.seq DESC LIMIT :limit");
        q.bind(":cid", cid);
        q.bind(":limit", limit);
        while (q.executeStep())
            t.changes.push_back({q.getColumn(0).getInt64(), q.getColumn(1).getString(),
                                 q.getColumn(2).getString(), q.getColumn(3).getInt64(),
                                 q.getColumn(4).getString(), q.getColumn(5).getString()});
    }
    {
        SQLite::Statement q(db, std::string(conflict_select) + "WHERE " + mine("c") +
                                    " ORDER BY c.id DESC LIMIT :limit");
        q.bind(":cid", cid);
        q.bind(":limit", limit);
        while (q.executeStep())
            t.conflicts.push_back(read_conflict(q));
    }
    {
        // Calls made for its outbox rows, and calls naming its GHL id (pulls), in the time range.
        std::string sql = std::string("SELECT ") + audit_columns +
                          " FROM audit_log WHERE ts >= :since AND (outbox_id IN (SELECT x.id "
                          "FROM outbox x WHERE " +
                          mine("x") + ")";
        if (t.ghl_id)
            sql += " OR path = :path OR substr(path, 1, length(:path) + 1) = :path || '/'";
        sql += ") ORDER BY ts DESC, id DESC LIMIT :limit";
        SQLite::Statement q(db, sql);
        q.bind(":since", since);
        if (t.ghl_id)
            q.bind(":path", "/contacts/" + *t.ghl_id);
        q.bind(":limit", limit);
        q.bind(":cid", cid);
        while (q.executeStep())
            t.calls.push_back(read_audit(q));
    }
    tx.commit();
    return t;
}

} // namespace speak4::store
