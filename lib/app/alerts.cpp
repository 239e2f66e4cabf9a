#include "app/alerts.hpp"

#include "core/error.hpp"
#include "core/log.hpp"
#include "core/time.hpp"
#include "ghl/http.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/serialize.hpp>
#include <cmath>
#include <cstdio>
#include <exception>

namespace speak4::app {
namespace {

namespace asio = boost::asio;
using steady = std::chrono::steady_clock;

constexpr std::size_t max_waiting = 100;
constexpr auto rate_limited_window = std::chrono::minutes(10);

std::string whole(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.0f", std::floor(v));
    return buf;
}

/// "3 m 20 s", "2 h 5 m", "40 s".
std::string span(std::chrono::milliseconds d) {
    const long long s = std::max<long long>(0, d.count() / 1000);
    if (s < 60)
        return std::to_string(s) + " s";
    if (s < 3600)
        return std::to_string(s / 60) + " m " + std::to_string(s % 60) + " s";
    return std::to_string(s / 3600) + " h " + std::to_string((s % 3600) / 60) + " m";
}

} // namespace

std::map<std::string, std::string> firing_conditions(const alert_inputs& in,
                                                     const alerts_config& cfg, sys_time now) {
    std::map<std::string, std::string> out;
    if (in.dead_letters > 0)
        out["dead_letters"] = std::to_string(in.dead_letters) + " dead letter" +
                              (in.dead_letters == 1 ? "" : "s") +
                              " in the outbox (`speak4-sync queue list --state dead`)";
    for (const auto& [name, p] : in.health.parts) {
        if (p.healthy)
            continue;
        const std::string why = p.reason.empty() ? "" : ": " + p.reason;
        if (name == "auth" || p.state == "needs_reauth")
            out["needs_reauth"] =
                "GHL authorisation needs a person (`speak4-sync auth exchange`)" + why;
        else if (name == "breaker")
            out["breaker_open"] = "GHL looks down: circuit breaker " + p.state + why;
        else
            out["part:" + name] = name + " is " + p.state + why;
    }
    for (const auto& l : in.health.loops) {
        if (l.healthy)
            continue;
        std::string what = l.stalled ? "stalled" : std::string(health::to_string(l.state));
        out["loop:" + l.name] =
            "the " + l.name + " loop is " + what + (l.error.empty() ? "" : ": " + l.error);
    }
    if (in.poll_interval_seconds > 0 && in.last_pull_age_seconds &&
        *in.last_pull_age_seconds >
            static_cast<double>(cfg.stale_pull_polls) * in.poll_interval_seconds)
        out["pull_stale"] = "no pull from GHL completed for " + whole(*in.last_pull_age_seconds) +
                            " s (" + std::to_string(cfg.stale_pull_polls) +
                            " poll intervals allowed)";
    if (in.oldest_pending_age_seconds &&
        *in.oldest_pending_age_seconds > cfg.oldest_pending_minutes * 60.0)
        out["oldest_pending"] = "the oldest pending event has waited " +
                                whole(*in.oldest_pending_age_seconds) + " s (more than " +
                                std::to_string(cfg.oldest_pending_minutes) + " min)";
    if (in.last_429_at && now - *in.last_429_at < rate_limited_window)
        out["rate_limited"] = "GHL answered 429 (rate limit) in the last 10 minutes";
    return out;
}

std::vector<alert_transition>
alert_tracker::update(const std::map<std::string, std::string>& firing, sys_time now) {
    std::vector<alert_transition> out;
    for (auto it = active_.begin(); it != active_.end();) {
        if (firing.contains(it->first)) {
            ++it;
            continue;
        }
        out.push_back({it->first, false, it->second.summary, it->second.since, now});
        it = active_.erase(it);
    }
    for (const auto& [key, summary] : firing) {
        if (auto it = active_.find(key); it != active_.end()) {
            it->second.summary = summary; // the end message shows the last state
            continue;
        }
        active_[key] = {summary, now};
        out.push_back({key, true, summary, now, now});
    }
    return out;
}

std::string alert_message(const alert_transition& t, std::string_view location_id) {
    std::string text = t.started ? "FIRING" : "RESOLVED";
    text += " speak4-sync [" + std::string(location_id) + "] " + t.key + ": ";
    if (t.started)
        text += t.summary + " (since " + format_iso8601(t.since) + ")";
    else
        text += "cleared after " + span(t.at - t.since) + " (was: " + t.summary + ")";
    return boost::json::serialize(boost::json::object{{"text", text}});
}

webhook_target parse_webhook_url(const std::string& url) {
    const auto fail = [](const std::string& why) -> webhook_target {
        throw config_error("alerts.webhook_url_file", 0,
                           "alerts.webhook_url_file: the URL in the file " + why);
    };
    for (const char c : url)
        if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f)
            return fail("contains spaces or control characters");
    std::string_view rest = url;
    std::string scheme;
    if (rest.starts_with("https://"))
        scheme = "https://";
    else if (rest.starts_with("http://"))
        scheme = "http://";
    else
        return fail("must start with https:// (http:// only for a loopback host)");
    rest.remove_prefix(scheme.size());
    const auto authority = rest.substr(0, rest.find_first_of("/?#"));
    if (authority.empty())
        return fail("has no host");
    if (authority.find('@') != std::string_view::npos)
        return fail("must not contain user info");
    std::string_view target = rest.substr(authority.size());
    if (const auto hash = target.find('#'); hash != std::string_view::npos)
        target = target.substr(0, hash);
    webhook_target out{scheme + std::string(authority), target.empty() || target.front() != '/'
                                                            ? "/" + std::string(target)
                                                            : std::string(target)};
    try {
        // The transport's own checks (host syntax, http:// only for loopback).
        asio::io_context probe;
        ghl::http_options o;
        o.base_url = out.origin;
        ghl::http_client check(probe.get_executor(), o);
    } catch (const std::exception& e) {
        std::string why = e.what();
        if (const auto p = why.find(": "); p != std::string::npos)
            why = why.substr(p + 2); // drop the transport's own key name
        return fail("is not usable: " + why);
    }
    return out;
}

webhook_alerter::webhook_alerter(asio::any_io_executor ex, webhook_target where,
                                 std::string location, alerts_config cfg, observe_fn observe,
                                 const speak4::clock& clk)
    : ex_(ex)
    , where_(std::move(where))
    , location_(std::move(location))
    , cfg_(std::move(cfg))
    , observe_(std::move(observe))
    , clock_(clk)
    , timer_(ex) {
    ghl::http_options o;
    o.base_url = where_.origin;
    o.timeout = std::chrono::seconds(10);
    o.max_connections = 1;
    o.body_limit = 64 * 1024;
    http_ = std::make_shared<ghl::http_client>(ex_, o);
}

std::shared_ptr<webhook_alerter> webhook_alerter::create(asio::any_io_executor ex,
                                                         const secret& url, std::string location,
                                                         alerts_config cfg, observe_fn observe,
                                                         const speak4::clock& clk) {
    return std::shared_ptr<webhook_alerter>(new webhook_alerter(ex, parse_webhook_url(url.reveal()),
                                                                std::move(location), std::move(cfg),
                                                                std::move(observe), clk));
}

void webhook_alerter::stop() {
    stopping_ = true;
    timer_.cancel();
}

webhook_alerter::stats webhook_alerter::counters() const {
    stats s = stats_;
    s.waiting = queue_.size();
    return s;
}

void webhook_alerter::enqueue(message m) {
    if (queue_.size() >= max_waiting) {
        log::error("alert dropped: too many waiting for delivery",
                   {{"alert", queue_.front().key},
                    {"state", queue_.front().started ? "firing" : "resolved"}});
        queue_.pop_front();
        ++stats_.dropped;
    }
    queue_.push_back(std::move(m));
}

asio::awaitable<void> webhook_alerter::check() {
    alert_inputs in;
    try {
        in = co_await observe_();
    } catch (const std::exception& e) {
        // A failed look (database busy) is a skipped check, not an alert or a crash.
        log::warn("alerts: could not observe the daemon", {{"error", e.what()}});
        co_return;
    }
    const sys_time now = clock_.now();
    for (auto& t : tracker_.update(firing_conditions(in, cfg_, now), now)) {
        log::info(t.started ? "alert firing" : "alert resolved",
                  {{"alert", t.key}, {"summary", t.summary}});
        enqueue({t.key, t.started, alert_message(t, location_), 0, {}});
    }
}

asio::awaitable<void> webhook_alerter::deliver() {
    while (!queue_.empty() && !stopping_) {
        const auto now = steady::now();
        message& m = queue_.front();
        if (m.not_before > now)
            co_return;
        while (!sent_at_.empty() && now - sent_at_.front() >= std::chrono::hours(1))
            sent_at_.pop_front();
        if (sent_at_.size() >= static_cast<std::size_t>(cfg_.max_per_hour)) {
            // Over the hourly budget: wait for the oldest send to leave the window.
            m.not_before = sent_at_.front() + std::chrono::hours(1);
            if (m.attempts == 0)
                log::warn("alerts: over alerts.max_per_hour; messages wait their turn",
                          {{"waiting", static_cast<std::int64_t>(queue_.size())}});
            co_return;
        }
        ghl::http_request req;
        req.method = ghl::http_method::post;
        req.target = where_.target;
        req.content_type = "application/json";
        req.body = m.body;
        ++m.attempts;
        const auto r = co_await http_->send(std::move(req));
        if (r && r->status >= 200 && r->status < 300) {
            sent_at_.push_back(steady::now());
            ++stats_.sent;
            log::info("alert delivered", {{"alert", m.key},
                                          {"state", m.started ? "firing" : "resolved"},
                                          {"attempts", m.attempts}});
            queue_.pop_front();
            continue;
        }
        ++stats_.failed_attempts;
        const int status = r ? r->status : 0;
        if (status >= 400 && status < 500 && status != 429 && status != 408) {
            // The receiver refuses the message itself (a wrong or revoked URL): retrying the
            // same request cannot help.
            log::error("alert refused by the webhook receiver; dropped",
                       {{"alert", m.key}, {"status", status}});
            ++stats_.dropped;
            queue_.pop_front();
            continue;
        }
        // Capped exponential backoff (2 s, 4 s, … 5 min); a longer Retry-After on a 429 wins.
        auto wait = std::chrono::seconds(std::min(300, 1 << std::min(m.attempts, 8)));
        if (r && status == 429)
            if (const auto ra = ghl::find_header(r->headers, "Retry-After")) {
                const long long s = std::atoll(std::string(*ra).c_str());
                if (s > wait.count())
                    wait = std::chrono::seconds(std::min<long long>(s, 3600));
            }
        m.not_before = steady::now() + wait;
        log::warn("alert delivery failed; retrying",
                  {{"alert", m.key},
                   {"attempt", m.attempts},
                   {"retry_in_s", static_cast<std::int64_t>(wait.count())},
                   {"error", r ? "HTTP " + std::to_string(status) : r.error().message()}});
        co_return;
    }
}

asio::awaitable<void> webhook_alerter::run(std::shared_ptr<webhook_alerter> self) {
    auto next_check = steady::now();
    while (!self->stopping_) {
        if (steady::now() >= next_check) {
            co_await self->check();
            next_check = steady::now() + std::chrono::seconds(self->cfg_.check_interval_seconds);
        }
        co_await self->deliver();
        auto wake = next_check;
        if (!self->queue_.empty() && self->queue_.front().not_before < wake)
            wake = self->queue_.front().not_before;
        if (self->stopping_)
            break;
        self->timer_.expires_at(wake);
        boost::system::error_code ec;
        co_await self->timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    co_await self->http_->shutdown();
}

} // namespace speak4::app
