// POST /v1/events: parse and validate, then a group commit (DESIGN §3: 202 only once the event
// is durably in SQLite). See routes.hpp.

#include "api/routes.hpp"
#include "core/log.hpp"

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/object.hpp>

namespace speak4::api {
namespace {

namespace net = boost::asio;
namespace bj = boost::json;
using boost::system::error_code;
using steady = std::chrono::steady_clock;
constexpr auto use_aw = net::use_awaitable;

} // namespace

net::awaitable<reply> routes::post_event(request& req) {
    auto ev = sync::parse_event(req.body, opt_.field_map, {}, &opt_.custom_fields);
    if (ev)
        if (auto refused = sync::check_allowed(*ev, opt_.settings.sync.direction,
                                               opt_.settings.sync.entities)) {
            // A valid event this deployment does not take: 422, naming the setting.
            m_.events_total.with({"refused"}).inc();
            log::warn("event refused by the configuration",
                      {{"field", refused->field}, {"error", refused->message}});
            co_return error_reply(status::unprocessable_entity, "disabled_by_config",
                                  refused->message, refused->field);
        }
    if (!ev) {
        m_.events_total.with({"invalid"}).inc();
        // The one trace a rejected event leaves (DESIGN §3): never its body.
        log::error("event rejected", {{"field", ev.error().field}, {"error", ev.error().message}});
        co_return error_reply(status::bad_request, "invalid_event", ev.error().message,
                              ev.error().field);
    }
    const std::optional<std::string> event_id = ev->event_id;
    const std::string type(sync::to_string(ev->type));
    auto item = std::make_shared<pending_event>(strand_);
    item->ev.ev = std::move(*ev);
    item->ev.body = std::move(req.body);
    co_await submit(item);
    sync::intake_outcome out = std::move(*item->outcome);
    if (!out) {
        const auto& err = out.error();
        bj::object f{{"type", type}, {"field", err.field}, {"error", err.message}};
        if (event_id)
            f["event_id"] = *event_id;
        if (err.what == sync::intake_error::kind::io) {
            m_.events_total.with({"error"}).inc();
            log::error("event not stored: database error", f);
            reply r = error_reply(status::service_unavailable, "database_error",
                                  "the event was not stored: " + err.message);
            r.retry_after = 1;
            co_return r;
        }
        m_.events_total.with({"invalid"}).inc();
        log::error("event rejected", f);
        co_return error_reply(status::bad_request, "invalid_event", err.message, err.field);
    }
    if (out->duplicate) {
        m_.events_total.with({"duplicate"}).inc();
        co_return json_reply(status::ok, bj::object{{"accepted", true}, {"duplicate", true}});
    }
    m_.events_total.with({"accepted"}).inc();
    if (log::enabled(log::level::debug)) {
        bj::object f{{"type", type}, {"seq", out->seq}, {"inbox_id", out->inbox_id}};
        if (event_id)
            f["event_id"] = *event_id;
        log::debug("event accepted", f);
    }
    co_return json_reply(status::accepted, bj::object{{"accepted", true}, {"seq", out->seq}});
}

net::awaitable<void> routes::submit(std::shared_ptr<pending_event> item) {
    if (!batcher_running_) {
        item->outcome =
            sync::intake_error{sync::intake_error::kind::io, "", "the server is shutting down"};
        co_return;
    }
    item->done.expires_at(steady::time_point::max());
    queue_.push_back(item);
    batcher_wake_.cancel();
    while (!item->outcome) {
        error_code ec;
        co_await item->done.async_wait(net::redirect_error(use_aw, ec));
    }
}

net::awaitable<void> routes::run_batcher() {
    batcher_running_ = true;
    // Group commit: while one batch is being committed, new events queue up and go together in
    // the next one — one transaction and one fsync for all of them.
    for (;;) {
        if (queue_.empty()) {
            if (stopping_)
                break;
            error_code ec;
            batcher_wake_.expires_at(steady::time_point::max());
            co_await batcher_wake_.async_wait(net::redirect_error(use_aw, ec));
            continue;
        }
        std::vector<std::shared_ptr<pending_event>> batch;
        std::vector<sync::raw_event> events;
        while (!queue_.empty() && batch.size() < opt_.max_batch) {
            batch.push_back(std::move(queue_.front()));
            queue_.pop_front();
            events.push_back(std::move(batch.back()->ev));
        }
        std::vector<sync::intake_outcome> outcomes;
        std::string failure;
        {
            auto r = co_await db_.try_run([this, &events](SQLite::Database& db) {
                store::check_fail_point("intake.db");
                if (!dbs_.intake)
                    dbs_.intake = std::make_unique<sync::intake>(db, clock_);
                auto out = dbs_.intake->accept_batch(events);
                // Another connection held the lock, so nothing was written: the worker runs
                // the batch again (afresh) once the lock is gone, and the 202s wait for it.
                if (!out.empty() && !out.front() && out.front().error().busy) {
                    dbs_.intake.reset();
                    throw store::db_exception({store::db_errc::busy, out.front().error().message});
                }
                reset_busy_statements(db);
                // After a database failure start afresh: a statement whose step failed reports
                // that error again on its next reset.
                for (const auto& o : out)
                    if (!o && o.error().what == sync::intake_error::kind::io) {
                        dbs_.intake.reset();
                        break;
                    }
                return out;
            });
            if (r)
                outcomes = std::move(*r);
            else
                failure = r.error().message;
        }
        if (outcomes.size() != batch.size()) {
            if (failure.empty())
                failure = "intake returned " + std::to_string(outcomes.size()) + " outcomes for " +
                          std::to_string(batch.size()) + " events";
            outcomes.assign(batch.size(), sync::intake_outcome(sync::intake_error{
                                              sync::intake_error::kind::io, "", failure}));
        }
        m_.event_batches_total.inc();
        m_.event_batch_size.get().observe(static_cast<double>(batch.size()));
        bool changed = false;
        bool io_failed = false;
        for (std::size_t i = 0; i < batch.size(); ++i) {
            if (outcomes[i] && !outcomes[i]->duplicate)
                changed = true;
            if (!outcomes[i] && outcomes[i].error().what == sync::intake_error::kind::io) {
                io_failed = true;
                failure = outcomes[i].error().message;
            }
            batch[i]->outcome = std::move(outcomes[i]);
            batch[i]->done.cancel();
        }
        if (io_failed)
            db_failed(failure);
        else
            db_ok();
        if (changed)
            changes_committed();
    }
    batcher_running_ = false;
}

} // namespace speak4::api
