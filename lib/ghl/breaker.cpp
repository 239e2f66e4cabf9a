#include "ghl/breaker.hpp"

#include "core/log.hpp"
#include "core/time.hpp"

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace speak4::ghl {

namespace asio = boost::asio;
namespace bj = boost::json;

std::string_view to_string(breaker_state s) {
    switch (s) {
    case breaker_state::closed:
        return "closed";
    case breaker_state::open:
        return "open";
    case breaker_state::half_open:
        return "half_open";
    }
    return "closed";
}

bj::object to_json(const breaker_snapshot& s) {
    auto time = [](const std::optional<sys_time>& t) {
        return t ? bj::value(format_iso8601(*t)) : bj::value(nullptr);
    };
    bj::object o{{"state", to_string(s.state)},
                 {"since", format_iso8601(s.since)},
                 {"opened_at", time(s.opened_at)},
                 {"next_probe_at", time(s.next_probe_at)},
                 {"probe_interval_ms", s.probe_interval.count()},
                 {"recent_requests", s.recent_requests},
                 {"recent_failures", s.recent_failures},
                 {"failure_rate", s.recent_requests > 0
                                      ? static_cast<double>(s.recent_failures) / s.recent_requests
                                      : 0.0},
                 {"opened_total", s.opened_total},
                 {"sent_while_open", s.sent_while_open},
                 {"refused_total", s.refused_total},
                 {"probes_failed", s.probes_failed}};
    if (!s.last_failure.empty())
        o["last_failure"] = s.last_failure;
    return o;
}

breaker::breaker(breaker_options opt, const speak4::clock& clk)
    : opt_(opt)
    , clock_(clk)
    , since_(clk.now())
    , interval_(opt.probe_interval) {
    opt_.window_requests = std::max(1, opt_.window_requests);
    opt_.min_requests = std::clamp(opt_.min_requests, 1, opt_.window_requests);
    opt_.failure_percent = std::clamp(opt_.failure_percent, 1, 100);
    opt_.probe_interval = std::max(std::chrono::milliseconds(1), opt_.probe_interval);
    opt_.probe_max = std::max(opt_.probe_interval, opt_.probe_max);
    interval_ = opt_.probe_interval;
}

void breaker::trim(sys_time now) {
    while (!recent_.empty() && (static_cast<int>(recent_.size()) > opt_.window_requests ||
                                now - recent_.front().at > opt_.window_age))
        recent_.pop_front();
}

breaker_snapshot breaker::snapshot_locked() const {
    breaker_snapshot s;
    s.state = state_;
    s.since = since_;
    s.opened_at = opened_at_;
    if (state_ == breaker_state::open)
        s.next_probe_at = next_probe_at_;
    s.probe_interval = interval_;
    s.recent_requests = static_cast<int>(recent_.size());
    s.recent_failures = static_cast<int>(
        std::count_if(recent_.begin(), recent_.end(), [](const outcome& o) { return o.failure; }));
    s.opened_total = opened_total_;
    s.sent_while_open = sent_while_open_;
    s.refused_total = refused_total_;
    s.probes_failed = probes_failed_;
    s.last_failure = last_failure_;
    return s;
}

void breaker::notify(const breaker_snapshot& s) {
    std::vector<listener> ls;
    std::shared_ptr<asio::steady_timer> timer;
    {
        std::lock_guard lock(mutex_);
        ls = listeners_;
        timer = timer_;
    }
    if (timer)
        asio::post(timer->get_executor(), [timer] { timer->cancel(); });
    for (const auto& l : ls) {
        try {
            l(s);
        } catch (const std::exception& e) {
            log::warn("breaker listener failed", {{"error", e.what()}});
        }
    }
}

bool breaker::allow() {
    std::lock_guard lock(mutex_);
    if (state_ == breaker_state::closed)
        return true;
    ++refused_total_;
    return false;
}

void breaker::record(bool failure, std::string_view what) {
    std::optional<breaker_snapshot> changed;
    {
        std::lock_guard lock(mutex_);
        if (state_ != breaker_state::closed)
            return; // in flight when it opened: the outage is known already
        const auto now = clock_.now();
        recent_.push_back({now, failure});
        if (failure && !what.empty())
            last_failure_ = std::string(what);
        trim(now);
        const auto n = static_cast<int>(recent_.size());
        const auto failed = static_cast<int>(std::count_if(
            recent_.begin(), recent_.end(), [](const outcome& o) { return o.failure; }));
        if (failure && n >= opt_.min_requests && failed * 100 >= opt_.failure_percent * n) {
            state_ = breaker_state::open;
            since_ = now;
            opened_at_ = now;
            interval_ = opt_.probe_interval;
            next_probe_at_ = now + interval_;
            ++opened_total_;
            changed = snapshot_locked();
        }
    }
    if (changed) {
        log::warn("circuit breaker open: GHL looks down; requests pause, probes test it",
                  {{"recent_requests", changed->recent_requests},
                   {"recent_failures", changed->recent_failures},
                   {"last_failure", changed->last_failure},
                   {"next_probe_at", format_iso8601(*changed->next_probe_at)}});
        notify(*changed);
    }
}

bool breaker::begin_probe() {
    std::optional<breaker_snapshot> changed;
    {
        std::lock_guard lock(mutex_);
        if (state_ != breaker_state::open || clock_.now() < next_probe_at_)
            return false;
        state_ = breaker_state::half_open;
        since_ = clock_.now();
        ++sent_while_open_;
        changed = snapshot_locked();
    }
    notify(*changed);
    return true;
}

void breaker::end_probe(bool answered, std::string_view what) {
    breaker_snapshot changed;
    {
        std::lock_guard lock(mutex_);
        if (state_ != breaker_state::half_open)
            return;
        const auto now = clock_.now();
        since_ = now;
        if (answered) {
            state_ = breaker_state::closed;
            opened_at_.reset();
            interval_ = opt_.probe_interval;
            recent_.clear(); // a fresh start: the outage's failures say nothing about now
        } else {
            state_ = breaker_state::open;
            ++probes_failed_;
            if (!what.empty())
                last_failure_ = std::string(what);
            interval_ = std::min(opt_.probe_max, interval_ * 2);
            next_probe_at_ = now + interval_;
        }
        changed = snapshot_locked();
    }
    if (answered)
        log::info("circuit breaker closed: GHL answered the probe; requests resume",
                  {{"probes_sent", changed.sent_while_open}});
    else
        log::info("circuit breaker probe failed",
                  {{"error", changed.last_failure},
                   {"next_probe_at", format_iso8601(*changed.next_probe_at)}});
    notify(changed);
}

breaker_snapshot breaker::snapshot() const {
    std::lock_guard lock(mutex_);
    return snapshot_locked();
}

breaker_state breaker::state() const {
    std::lock_guard lock(mutex_);
    return state_;
}

std::optional<sys_time> breaker::next_probe_at() const {
    std::lock_guard lock(mutex_);
    if (state_ != breaker_state::open)
        return std::nullopt;
    return next_probe_at_;
}

void breaker::subscribe(listener l) {
    std::lock_guard lock(mutex_);
    listeners_.push_back(std::move(l));
}

void breaker::stop() {
    std::shared_ptr<asio::steady_timer> timer;
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
        timer = timer_;
    }
    if (timer)
        asio::post(timer->get_executor(), [timer] { timer->cancel(); });
}

asio::awaitable<void> breaker::run_probes(probe_fn probe) {
    auto timer = std::make_shared<asio::steady_timer>(co_await asio::this_coro::executor);
    {
        std::lock_guard lock(mutex_);
        timer_ = timer;
    }
    for (;;) {
        std::optional<sys_time> due;
        {
            std::lock_guard lock(mutex_);
            if (stopping_)
                break;
            if (state_ == breaker_state::open)
                due = next_probe_at_;
        }
        if (due && clock_.now() >= *due && begin_probe()) {
            std::optional<std::string> failed = std::string("the probe did not run");
            try {
                failed = co_await probe();
            } catch (const std::exception& e) {
                failed = std::string("the probe threw: ") + e.what();
            }
            end_probe(!failed, failed.value_or(""));
            continue;
        }
        // Sleep until the probe is due, or (closed) until a state change wakes us.
        if (due)
            timer->expires_after(std::chrono::duration_cast<std::chrono::milliseconds>(
                std::max(*due - clock_.now(), std::chrono::milliseconds(1))));
        else
            timer->expires_after(std::chrono::hours(1));
        boost::system::error_code ec;
        co_await timer->async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    std::lock_guard lock(mutex_);
    timer_.reset();
}

} // namespace speak4::ghl
