// GET /v1/changes: the change feed, paged, with a long-poll that holds no thread and no
// database connection while it waits. See routes.hpp.

#include "api/request_util.hpp"
#include "api/routes.hpp"
#include "core/json.hpp"
#include "core/log.hpp"

#include <SQLiteCpp/Statement.h>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <limits>

namespace speak4::api {
namespace {

namespace net = boost::asio;
namespace bj = boost::json;
using boost::system::error_code;
using steady = std::chrono::steady_clock;
constexpr auto use_aw = net::use_awaitable;

constexpr long long max_changes_limit = 1000;
constexpr long long default_changes_limit = 100;

bj::value opt_json(const std::optional<std::string>& s) {
    return s ? bj::value(*s) : bj::value(nullptr);
}

} // namespace

net::awaitable<reply> routes::get_changes(const request& req) {
    const auto params = parse_query(req.target);
    if (!params)
        co_return error_reply(status::bad_request, "bad_query", params.error());
    long long since = 0;
    long long limit = default_changes_limit;
    long long wait = 0;
    bool seen_since = false, seen_limit = false, seen_wait = false;
    for (const auto& p : *params) {
        const auto once = [&](bool& seen) {
            const bool dup = seen;
            seen = true;
            return !dup;
        };
        if (p.name == "since") {
            if (!once(seen_since))
                co_return error_reply(status::bad_request, "bad_query", "since is given twice",
                                      "since");
            const auto v = parse_non_negative(p.value, std::numeric_limits<long long>::max());
            if (!v)
                co_return error_reply(status::bad_request, "bad_query",
                                      "since must be a non-negative integer (a change seq)",
                                      "since");
            since = *v;
        } else if (p.name == "limit") {
            if (!once(seen_limit))
                co_return error_reply(status::bad_request, "bad_query", "limit is given twice",
                                      "limit");
            const auto v = parse_non_negative(p.value, max_changes_limit);
            if (!v || *v == 0)
                co_return error_reply(status::bad_request, "bad_query",
                                      "limit must be an integer from 1 to " +
                                          std::to_string(max_changes_limit),
                                      "limit");
            limit = *v;
        } else if (p.name == "wait") {
            if (!once(seen_wait))
                co_return error_reply(status::bad_request, "bad_query", "wait is given twice",
                                      "wait");
            const auto v = parse_non_negative(p.value, opt_.max_wait.count());
            if (!v)
                co_return error_reply(status::bad_request, "bad_query",
                                      "wait must be an integer number of seconds from 0 to " +
                                          std::to_string(opt_.max_wait.count()),
                                      "wait");
            wait = *v;
        } else {
            co_return error_reply(status::bad_request, "bad_query",
                                  "unknown query parameter '" + clip(p.name, 64) +
                                      "' (expected since, limit, wait)",
                                  clip(p.name, 64));
        }
    }

    const auto deadline = steady::now() + std::chrono::seconds(wait);
    for (;;) {
        const std::uint64_t generation = change_generation_;
        auto page = co_await query_changes(since, limit);
        if (!page) {
            reply r = error_reply(status::service_unavailable, "database_error", page.error());
            r.retry_after = 1;
            co_return r;
        }
        if (!page->rows.empty() || wait == 0 || stopping_ || steady::now() >= deadline) {
            bj::array rows;
            rows.reserve(page->rows.size());
            for (const auto& c : page->rows) {
                bj::object row{{"seq", c.seq},
                               {"entity", c.entity},
                               {"entity_id", c.entity_id},
                               {"kind", c.kind},
                               {"source", c.source},
                               {"ts", c.ts},
                               {"speak4_id", opt_json(c.speak4_id)},
                               {"ghl_id", opt_json(c.ghl_id)}};
                if (c.detail)
                    if (auto d = json::parse(*c.detail); d && d->is_object())
                        row["detail"] = std::move(*d);
                rows.push_back(std::move(row));
            }
            const long long last = page->rows.empty() ? since : page->rows.back().seq;
            co_return json_reply(
                status::ok,
                bj::object{{"changes", std::move(rows)}, {"last_seq", last}, {"more", page->more}});
        }
        if (generation != change_generation_)
            continue; // committed while we were querying: look again
        // Long-poll: a timer on the strand, no thread and no database connection held. It is
        // cancelled by changes_committed() (or by stop()), or expires at the deadline.
        net::steady_timer timer(strand_);
        timer.expires_at(deadline);
        change_waiters_.push_back(&timer);
        const auto self = std::prev(change_waiters_.end());
        error_code ec;
        co_await timer.async_wait(net::redirect_error(use_aw, ec));
        change_waiters_.erase(self);
    }
}

net::awaitable<boost::system::result<routes::changes_page, std::string>>
routes::query_changes(long long since, long long limit) {
    using R = boost::system::result<changes_page, std::string>;
    try {
        changes_page page = co_await db_.run(read_job([since, limit](store::statement_cache& st) {
            auto& q = st.get(
                "SELECT c.seq, c.entity, c.entity_id, c.kind, c.source, c.ts, "
                "  CASE c.entity WHEN 'contact' THEN ct.speak4_id WHEN 'task' THEN t.speak4_id "
                "    WHEN 'note' THEN n.speak4_id END, "
                "  CASE c.entity WHEN 'contact' THEN ct.ghl_id WHEN 'task' THEN t.ghl_id "
                "    WHEN 'note' THEN n.ghl_id WHEN 'appointment' THEN a.ghl_id END, c.detail "
                "FROM changes c "
                "LEFT JOIN contacts ct ON c.entity = 'contact' AND ct.id = c.entity_id "
                "LEFT JOIN tasks t ON c.entity = 'task' AND t.id = c.entity_id "
                "LEFT JOIN notes n ON c.entity = 'note' AND n.id = c.entity_id "
                "LEFT JOIN appointments a ON c.entity = 'appointment' AND a.id = c.entity_id "
                "WHERE c.seq > ? ORDER BY c.seq LIMIT ?");
            q.bind(1, static_cast<std::int64_t>(since));
            q.bind(2, static_cast<std::int64_t>(limit + 1)); // one more: is there a next page?
            changes_page out;
            while (q.executeStep()) {
                if (static_cast<long long>(out.rows.size()) == limit) {
                    out.more = true;
                    break;
                }
                change_row r;
                r.seq = q.getColumn(0).getInt64();
                r.entity = q.getColumn(1).getString();
                r.entity_id = q.getColumn(2).getInt64();
                r.kind = q.getColumn(3).getString();
                r.source = q.getColumn(4).getString();
                r.ts = q.getColumn(5).getString();
                if (!q.getColumn(6).isNull())
                    r.speak4_id = q.getColumn(6).getString();
                if (!q.getColumn(7).isNull())
                    r.ghl_id = q.getColumn(7).getString();
                if (!q.getColumn(8).isNull())
                    r.detail = q.getColumn(8).getString();
                out.rows.push_back(std::move(r));
            }
            q.reset();
            return out;
        }));
        db_ok();
        co_return page;
    } catch (const std::exception& e) {
        db_failed(e.what());
        co_return R(boost::system::in_place_error,
                    std::string("reading the change feed failed: ") + e.what());
    }
}

void routes::changes_committed() {
    if (opt_.on_work_committed)
        opt_.on_work_committed();
    ++change_generation_;
    for (auto* t : change_waiters_)
        t->cancel();
}
} // namespace speak4::api
