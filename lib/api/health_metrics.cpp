// GET /healthz and GET /metrics. See routes.hpp.

#include "api/routes.hpp"
#include "store/admin.hpp"

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <map>

namespace speak4::api {
namespace {

namespace net = boost::asio;
namespace bj = boost::json;

struct scrape_values {
    std::map<std::string, long long> outbox;
    long long last_seq = 0;
    std::optional<std::string> oldest_pending_at;
};

} // namespace

reply routes::healthz() {
    if (stopping_) {
        reply r;
        r.status = status::service_unavailable;
        r.body = bj::serialize(
            bj::object{{"status", "unhealthy"},
                       {"reason", "shutting down"},
                       {"error", bj::object{{"code", "shutting_down"},
                                            {"message", "the server is shutting down"}}}});
        return r;
    }
    health h;
    if (opt_.health_check) {
        try {
            h = opt_.health_check();
        } catch (const std::exception& e) {
            h = {false, std::string("health check failed: ") + e.what(), {}};
        }
    }
    if (db_error_ && h.ok) {
        h.ok = false;
        h.reason = "database error: " + *db_error_;
    }
    bj::object body = std::move(h.detail);
    body["status"] = h.ok ? "ok" : "unhealthy";
    if (h.ok)
        body.erase("reason");
    else
        body["reason"] = h.reason.empty() ? std::string("unhealthy") : h.reason;
    return json_reply(h.ok ? status::ok : status::service_unavailable, body);
}

net::awaitable<reply> routes::get_metrics() {
    // Gauges that live in the database are read at scrape time, through the database thread.
    try {
        const scrape_values v = co_await db_.run(read_job([](store::statement_cache& st) {
            scrape_values out;
            auto& q = st.get("SELECT state, COUNT(*) FROM outbox GROUP BY state");
            while (q.executeStep())
                out.outbox[q.getColumn(0).getString()] = q.getColumn(1).getInt64();
            q.reset();
            auto& s = st.get("SELECT COALESCE(MAX(seq), 0) FROM changes");
            if (s.executeStep())
                out.last_seq = s.getColumn(0).getInt64();
            s.reset();
            out.oldest_pending_at = store::oldest_pending_at(st.db());
            return out;
        }));
        for (auto state : {"pending", "inflight", "done", "dead"}) {
            const auto it = v.outbox.find(state);
            m_.outbox.with({state}).set(it == v.outbox.end() ? 0.0
                                                             : static_cast<double>(it->second));
        }
        const auto dead = v.outbox.find("dead");
        m_.dead_letters.set(dead == v.outbox.end() ? 0.0 : static_cast<double>(dead->second));
        m_.changes_last_seq.set(static_cast<double>(v.last_seq));
        double oldest = 0;
        if (v.oldest_pending_at)
            if (const auto t = parse_iso8601(*v.oldest_pending_at))
                oldest = std::max(0.0, static_cast<double>((clock_.now() - *t).count()) / 1000.0);
        m_.oldest_pending_age_seconds.set(oldest);
        db_ok();
    } catch (const std::exception& e) {
        // Render what we have: a scrape must not fail because one gauge could not be refreshed.
        db_failed(e.what());
    }
    reply r;
    r.content_type = metrics::content_type;
    r.body = m_.reg.render();
    co_return r;
}

} // namespace speak4::api
