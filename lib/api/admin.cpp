// /v1/admin/…: the JSON the integration console reads (README lists the routes). Read-only but
// for the repair of a dead letter (retry, drop), with the semantics of `queue retry` and
// `queue drop` restricted to dead rows. Every read is bounded; the SQL is in store/admin.
// See routes.hpp.

#include "store/admin.hpp"

#include "api/request_util.hpp"
#include "api/routes.hpp"
#include "core/json.hpp"
#include "core/log.hpp"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <map>

namespace speak4::api {
namespace {

namespace net = boost::asio;
namespace bj = boost::json;

constexpr std::string_view prefix = "/v1/admin/";

template <class T>
bj::value opt(const std::optional<T>& o) {
    return o ? bj::value(*o) : bj::value(nullptr);
}

/// A JSON column kept as text: parsed when it is JSON, else the text itself.
bj::value json_or_text(const std::string& text) {
    if (auto v = json::parse(text, {std::size_t{1} << 20, 64}))
        return std::move(*v);
    return bj::value(text);
}

bj::object audit_json(const store::audit_row& r) {
    return bj::object{{"id", r.id},
                      {"ts", r.ts},
                      {"method", r.method},
                      {"path", r.path},
                      {"path_template", store::path_template(r.path)},
                      {"status", opt(r.status)},
                      {"latency_ms", opt(r.latency_ms)},
                      {"attempt", opt(r.attempt)},
                      {"outbox_id", opt(r.outbox_id)},
                      {"error", opt(r.error)},
                      {"rate_limit_remaining", opt(r.rate_limit_remaining)},
                      {"trace_id", opt(r.trace_id)}};
}

bj::object event_json(const store::inbox_event& e) {
    return bj::object{{"id", e.id},
                      {"event_id", opt(e.event_id)},
                      {"type", e.type},
                      {"received_at", e.received_at},
                      {"body", json_or_text(e.body)}};
}

bj::object outbox_json(const store::outbox_row& r) {
    return bj::object{{"id", r.id},
                      {"op", r.op},
                      {"entity", r.entity},
                      {"entity_id", r.entity_id},
                      {"state", r.state},
                      {"attempts", r.attempts},
                      {"next_attempt_at", r.next_attempt_at},
                      {"last_error", opt(r.last_error)},
                      {"created_at", r.created_at},
                      {"payload", json_or_text(r.payload)}};
}

bj::object conflict_json(const store::conflict_row& c) {
    return bj::object{{"id", c.id},
                      {"ts", c.ts},
                      {"entity", c.ref.entity},
                      {"entity_id", c.ref.entity_id},
                      {"speak4_id", opt(c.ref.speak4_id)},
                      {"ghl_id", opt(c.ref.ghl_id)},
                      {"field", c.field},
                      {"local_value", opt(c.local_value)},
                      {"remote_value", opt(c.remote_value)},
                      {"policy", c.policy},
                      {"winner", c.winner}};
}

/// The query parameters of a request, each known name at most once; anything else is a 400
/// naming the parameter.
struct params {
    std::map<std::string, std::string> values;
    std::optional<reply> error;

    params(std::string_view target, std::initializer_list<std::string_view> known) {
        auto parsed = parse_query(target);
        if (!parsed) {
            error = error_reply(status::bad_request, "bad_query", parsed.error());
            return;
        }
        for (auto& p : *parsed) {
            bool ok = false;
            for (auto k : known)
                ok = ok || p.name == k;
            if (!ok) {
                std::string list;
                for (auto k : known)
                    list += (list.empty() ? "" : ", ") + std::string(k);
                error = error_reply(status::bad_request, "bad_query",
                                    "unknown query parameter '" + clip(p.name, 64) +
                                        "' (expected " + (list.empty() ? "none" : list) + ")",
                                    clip(p.name, 64));
                return;
            }
            if (values.count(p.name)) {
                error = error_reply(status::bad_request, "bad_query", p.name + " is given twice",
                                    p.name);
                return;
            }
            values.emplace(p.name, std::move(p.value));
        }
    }

    const std::string* get(const std::string& name) const {
        const auto it = values.find(name);
        return it == values.end() ? nullptr : &it->second;
    }

    /// An integer parameter from 1 to max, or the default.
    std::optional<long long> count(const std::string& name, long long dflt, long long max) {
        const auto* v = get(name);
        if (!v)
            return dflt;
        const auto n = parse_non_negative(*v, max);
        if (!n || *n == 0) {
            error =
                error_reply(status::bad_request, "bad_query",
                            name + " must be an integer from 1 to " + std::to_string(max), name);
            return std::nullopt;
        }
        return n;
    }
};

/// "2026-12-03T08:00:00Z" as is (normalized), or an age ("90s", "15m", "2h", "7d") before now.
std::optional<sys_time> parse_time(const std::string& v, sys_time now) {
    if (auto t = parse_iso8601(v))
        return t;
    if (v.size() < 2)
        return std::nullopt;
    const char unit = v.back();
    const long long mult = unit == 's'   ? 1
                           : unit == 'm' ? 60
                           : unit == 'h' ? 3600
                           : unit == 'd' ? 86400
                                         : 0;
    const auto n =
        parse_non_negative(std::string_view(v).substr(0, v.size() - 1), 10LL * 365 * 86400);
    if (!mult || !n)
        return std::nullopt;
    return now - std::chrono::seconds(*n * mult);
}

reply db_error_reply(const std::string& what) {
    reply r = error_reply(status::service_unavailable, "database_error",
                          "the database could not be read: " + what);
    r.retry_after = 1;
    return r;
}

/// The outbox id and action of "/v1/admin/outbox/{id}/retry|drop".
struct repair_target {
    long long id = 0;
    std::string action;
};

std::optional<repair_target> parse_repair(std::string_view rest) {
    constexpr std::string_view outbox = "outbox/";
    if (!rest.starts_with(outbox))
        return std::nullopt;
    rest.remove_prefix(outbox.size());
    const auto slash = rest.find('/');
    if (slash == std::string_view::npos)
        return std::nullopt;
    const auto id =
        parse_non_negative(rest.substr(0, slash), std::numeric_limits<long long>::max());
    const std::string_view action = rest.substr(slash + 1);
    if (!id || *id == 0 || (action != "retry" && action != "drop"))
        return std::nullopt;
    return repair_target{*id, std::string(action)};
}

} // namespace

std::optional<method> admin_method(std::string_view path) {
    if (!path.starts_with(prefix))
        return std::nullopt;
    const std::string_view rest = path.substr(prefix.size());
    if (rest == "overview" || rest == "series" || rest == "dead" || rest == "audit" ||
        rest == "conflicts" || rest == "contact")
        return method::get;
    if (parse_repair(rest))
        return method::post;
    return std::nullopt;
}

net::awaitable<reply> routes::admin(const request& req) {
    const std::string_view path = target_path(req.target);
    const std::string_view rest = path.substr(prefix.size());
    const sys_time now = clock_.now();
    try {
        if (rest == "overview") {
            params p(req.target, {});
            if (p.error)
                co_return std::move(*p.error);
            const config& cfg = opt_.settings;
            auto [status_obj, oldest] =
                co_await db_.run(read_job([&cfg](store::statement_cache& st) {
                    auto& db = st.db();
                    return std::pair{store::status_json(cfg, store::read_status(db)),
                                     store::oldest_pending_at(db)};
                }));
            db_ok();
            const reply h = healthz();
            bj::object out{{"now", format_iso8601(now)},
                           {"status", std::move(status_obj)},
                           {"health", json_or_text(h.body)},
                           {"oldest_pending_at", opt(oldest)},
                           {"rate_budget",
                            {{"burst", cfg.rate_limit.burst},
                             {"window_seconds", cfg.rate_limit.window_seconds},
                             {"daily", cfg.rate_limit.daily}}},
                           {"poll_interval_seconds", cfg.sync.poll_interval_seconds}};
            if (oldest)
                if (auto t = parse_iso8601(*oldest))
                    out["oldest_pending_age_seconds"] =
                        std::chrono::duration_cast<std::chrono::seconds>(now - *t).count();
            co_return json_reply(status::ok, out);
        }
        if (rest == "series") {
            params p(req.target, {"minutes"});
            const auto minutes = p.count("minutes", 180, 24 * 60);
            if (p.error)
                co_return std::move(*p.error);
            const int m = static_cast<int>(*minutes);
            const store::series s = co_await db_.run(read_job([now, m](store::statement_cache& st) {
                return store::read_series(st.db(), now, m);
            }));
            db_ok();
            bj::array points;
            points.reserve(s.points.size());
            for (const auto& x : s.points)
                points.push_back(bj::object{{"minute", x.minute},
                                            {"ok", x.ok},
                                            {"client_error", x.client_error},
                                            {"rate_limited", x.rate_limited},
                                            {"server_error", x.server_error},
                                            {"no_response", x.no_response},
                                            {"p50_ms", opt(x.p50_ms)},
                                            {"p95_ms", opt(x.p95_ms)},
                                            {"queue_depth", x.queue_depth},
                                            {"changes", x.changes}});
            co_return json_reply(
                status::ok, bj::object{{"points", std::move(points)}, {"truncated", s.truncated}});
        }
        if (rest == "dead") {
            params p(req.target, {"limit"});
            const auto limit = p.count("limit", 100, 500);
            if (p.error)
                co_return std::move(*p.error);
            const int n = static_cast<int>(*limit);
            const auto rows = co_await db_.run(read_job(
                [n](store::statement_cache& st) { return store::list_dead_letters(st.db(), n); }));
            db_ok();
            bj::array out;
            for (const auto& d : rows) {
                bj::object o = outbox_json(d.row);
                o["last_status"] = opt(d.last_status);
                o["updated_at"] = d.updated_at;
                o["speak4_id"] = opt(d.ref.speak4_id);
                o["ghl_id"] = opt(d.ref.ghl_id);
                o["events"] = d.event ? bj::array{event_json(*d.event)} : bj::array{};
                out.push_back(std::move(o));
            }
            co_return json_reply(status::ok, bj::object{{"dead", std::move(out)}});
        }
        if (rest == "audit") {
            params p(req.target, {"since", "until", "status", "path", "limit", "before"});
            const auto limit = p.count("limit", 100, 500);
            if (p.error)
                co_return std::move(*p.error);
            store::audit_query q;
            q.limit = static_cast<int>(*limit);
            sys_time since = now - std::chrono::hours(1);
            sys_time until = now + std::chrono::seconds(1);
            if (const auto* v = p.get("since")) {
                const auto t = parse_time(*v, now);
                if (!t)
                    co_return error_reply(status::bad_request, "bad_query",
                                          "since must be an ISO-8601 time or an age like 15m, "
                                          "2h, 7d",
                                          "since");
                since = *t;
            }
            if (const auto* v = p.get("until")) {
                const auto t = parse_time(*v, now);
                if (!t)
                    co_return error_reply(status::bad_request, "bad_query",
                                          "until must be an ISO-8601 time or an age like 15m",
                                          "until");
                until = *t;
            }
            if (until <= since)
                co_return error_reply(status::bad_request, "bad_query",
                                      "until must be later than since", "until");
            if (until - since > std::chrono::days(7))
                co_return error_reply(status::bad_request, "bad_query",
                                      "the time range is longer than 7 days; narrow since/until",
                                      "since");
            q.since = format_iso8601(since);
            q.until = format_iso8601(until);
            if (const auto* v = p.get("status"); v && !v->empty()) {
                const bool code = v->size() == 3 && parse_non_negative(*v, 599) && (*v)[0] >= '1';
                const bool cls = v->size() == 3 && (*v)[0] >= '1' && (*v)[0] <= '5' &&
                                 (*v)[1] == 'x' && (*v)[2] == 'x';
                if (!code && !cls && *v != "error")
                    co_return error_reply(status::bad_request, "bad_query",
                                          "status must be a code (429), a class (4xx) or error",
                                          "status");
                q.status = *v;
            }
            if (const auto* v = p.get("path"); v && !v->empty())
                q.path_template = store::path_template(*v);
            if (const auto* v = p.get("before")) {
                const auto id = parse_non_negative(*v, std::numeric_limits<long long>::max());
                if (!id)
                    co_return error_reply(status::bad_request, "bad_query",
                                          "before must be an audit row id", "before");
                q.before_id = *id;
            }
            const auto page = co_await db_.run(read_job(
                [&q](store::statement_cache& st) { return store::query_audit(st.db(), q); }));
            db_ok();
            bj::array rows;
            for (const auto& r : page.rows)
                rows.push_back(audit_json(r));
            co_return json_reply(status::ok, bj::object{{"audit", std::move(rows)},
                                                        {"since", q.since},
                                                        {"until", q.until},
                                                        {"more", page.more},
                                                        {"truncated", page.truncated}});
        }
        if (rest == "conflicts") {
            params p(req.target, {"limit", "before"});
            const auto limit = p.count("limit", 100, 500);
            if (p.error)
                co_return std::move(*p.error);
            std::optional<long long> before;
            if (const auto* v = p.get("before")) {
                before = parse_non_negative(*v, std::numeric_limits<long long>::max());
                if (!before)
                    co_return error_reply(status::bad_request, "bad_query",
                                          "before must be a conflict id", "before");
            }
            const int n = static_cast<int>(*limit);
            const auto rows = co_await db_.run(read_job([n, before](store::statement_cache& st) {
                return store::list_conflicts(st.db(), n, before);
            }));
            db_ok();
            bj::array out;
            for (const auto& c : rows)
                out.push_back(conflict_json(c));
            co_return json_reply(status::ok, bj::object{{"conflicts", std::move(out)}});
        }
        if (rest == "contact") {
            params p(req.target, {"q", "limit"});
            const auto limit = p.count("limit", 200, 1000);
            if (p.error)
                co_return std::move(*p.error);
            const auto* key = p.get("q");
            if (!key || key->empty() || key->size() > 320)
                co_return error_reply(status::bad_request, "bad_query",
                                      "q must name a contact: its speak4_id, ghl_id or email", "q");
            const std::string k = *key;
            const int n = static_cast<int>(*limit);
            const std::string since = format_iso8601(now - std::chrono::days(30));
            const auto t = co_await db_.run(read_job([&k, &since, n](store::statement_cache& st) {
                return store::find_contact_timeline(st.db(), k, since, n);
            }));
            db_ok();
            if (!t)
                co_return error_reply(status::not_found, "not_found",
                                      "no contact has that speak4_id, ghl_id or email", "q");
            // One list in time order; entries of one time keep the order event, call, change.
            struct entry {
                std::string ts;
                int rank;
                bj::object o;
            };
            std::vector<entry> all;
            for (const auto& e : t->events)
                all.push_back({e.received_at, 0, {{"kind", "event"}, {"event", event_json(e)}}});
            for (const auto& r : t->outbox)
                all.push_back({r.created_at, 1, {{"kind", "outbox"}, {"outbox", outbox_json(r)}}});
            for (const auto& c : t->calls)
                all.push_back({c.ts, 2, {{"kind", "call"}, {"call", audit_json(c)}}});
            for (const auto& c : t->changes)
                all.push_back({c.ts,
                               3,
                               {{"kind", "change"},
                                {"change",
                                 {{"seq", c.seq},
                                  {"entity", c.entity},
                                  {"entity_id", c.entity_id},
                                  {"kind", c.kind},
                                  {"source", c.source}}}}});
            for (const auto& c : t->conflicts)
                all.push_back({c.ts, 4, {{"kind", "conflict"}, {"conflict", conflict_json(c)}}});
            std::stable_sort(all.begin(), all.end(), [](const entry& a, const entry& b) {
                return a.ts != b.ts ? a.ts < b.ts : a.rank < b.rank;
            });
            bj::array timeline;
            for (auto& e : all) {
                e.o["ts"] = e.ts;
                timeline.push_back(std::move(e.o));
            }
            co_return json_reply(status::ok, bj::object{{"contact",
                                                         {{"id", t->contact_id},
                                                          {"speak4_id", opt(t->speak4_id)},
                                                          {"ghl_id", opt(t->ghl_id)},
                                                          {"email", opt(t->email)},
                                                          {"name", opt(t->name)},
                                                          {"deleted", t->deleted}}},
                                                        {"timeline", std::move(timeline)}});
        }
        if (const auto target = parse_repair(rest)) {
            params p(req.target, {});
            if (p.error)
                co_return std::move(*p.error);
            const long long id = target->id;
            const bool retry = target->action == "retry";
            const std::string stamp = format_iso8601(now);
            const auto r = co_await db_.run([id, retry, &stamp](SQLite::Database& db) {
                auto out = retry ? store::retry_dead_letter(db, id, stamp)
                                 : store::drop_dead_letter(db, id);
                reset_busy_statements(db);
                return out;
            });
            db_ok();
            using kind = store::repair_result::kind;
            if (r.what == kind::not_found)
                co_return error_reply(status::not_found, "not_found",
                                      "no outbox row " + std::to_string(id));
            if (r.what == kind::not_dead) {
                reply c = json_reply(
                    status::conflict,
                    bj::object{{"error",
                                {{"code", "not_dead"},
                                 {"message", "outbox row " + std::to_string(id) + " is " + r.state +
                                                 ", not dead: only dead letters are retried or "
                                                 "dropped here"},
                                 {"state", r.state}}}});
                co_return c;
            }
            log::info(retry ? "dead letter retried from the console"
                            : "dead letter dropped from the console",
                      {{"outbox_id", id}});
            co_return json_reply(status::ok, bj::object{{"id", id},
                                                        {"action", target->action},
                                                        {"state", retry ? "pending" : "dropped"}});
        }
    } catch (const std::exception& e) {
        db_failed(e.what());
        co_return db_error_reply(e.what());
    }
    co_return error_reply(status::not_found, "not_found", "no such admin endpoint");
}

} // namespace speak4::api
