#pragma once
// Webhook alerts for teams without Prometheus (`[alerts] webhook_url_file`): the same
// conditions as conf/prometheus/speak4-sync-alerts.yml, evaluated every
// `alerts.check_interval_seconds`, and a Slack-compatible message ({"text": …}) posted once when
// a condition starts and once when it ends.
//
// Three pieces, the first two pure (unit-tested without a network):
//   * firing_conditions(): what is wrong now, from one observation of the daemon;
//   * alert_tracker: turns successive sets of firing conditions into start/end transitions;
//   * webhook_alerter: the coroutine that observes, tracks and delivers. Delivery is in order,
//     retried with backoff on a transport error, a 5xx or a 429 (Retry-After honoured), dropped
//     with an error log on any other 4xx (the URL is wrong: retrying cannot help), and limited to
//     `alerts.max_per_hour` messages (the rest wait their turn). At most 100 messages wait; past
//     that the oldest is dropped and logged.
//
// The URL is a secret (Slack's path is its credential): it is never logged, and log lines name
// only the alert. Messages carry no token and no personal data, only counts and part names.
//
// Threading: webhook_alerter lives on the network io_context; create(), run() and stop() are
// called on its thread. run() keeps the object alive (shared_ptr) until it returns.

#include "core/clock.hpp"
#include "core/config.hpp"
#include "core/health.hpp"
#include "core/secret.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace speak4::ghl {
class http_client;
}

namespace speak4::app {

/// One look at the daemon.
struct alert_inputs {
    long long dead_letters = 0;
    std::optional<double> oldest_pending_age_seconds; ///< none waiting: nullopt
    std::optional<double> last_pull_age_seconds;      ///< never pulled: nullopt
    int poll_interval_seconds = 0;                    ///< 0: pulls are off
    std::optional<sys_time> last_429_at;              ///< the last 429 GHL answered us
    health::report health;
};

/// Alert key -> one-line summary of what is wrong. Keys: "dead_letters", "needs_reauth",
/// "breaker_open", "loop:<name>", "part:<name>", "pull_stale", "oldest_pending",
/// "rate_limited".
std::map<std::string, std::string> firing_conditions(const alert_inputs& in,
                                                     const alerts_config& cfg, sys_time now);

struct alert_transition {
    std::string key;
    bool started = true; ///< false: it ended
    std::string summary; ///< for an end: the summary it had while firing
    sys_time since;      ///< when it started
    sys_time at;         ///< this transition
};

/// Remembers what is firing; reports what started and what ended since the last update.
class alert_tracker {
public:
    std::vector<alert_transition> update(const std::map<std::string, std::string>& firing,
                                         sys_time now);
    std::size_t firing() const { return active_.size(); }

private:
    struct active {
        std::string summary;
        sys_time since;
    };
    std::map<std::string, active> active_;
};

/// The message body: {"text": "..."} (Slack, Mattermost, Rocket.Chat and most chat webhooks).
std::string alert_message(const alert_transition& t, std::string_view location_id);

/// Splits a webhook URL into the http_client's origin and the request target. Throws
/// config_error("alerts.webhook_url_file") naming the problem, never the URL.
struct webhook_target {
    std::string origin; ///< "https://hooks.slack.com"
    std::string target; ///< "/services/T0/B0/XXX"
};
webhook_target parse_webhook_url(const std::string& url);

class webhook_alerter : public std::enable_shared_from_this<webhook_alerter> {
public:
    using observe_fn = std::function<boost::asio::awaitable<alert_inputs>()>;

    /// Throws config_error("alerts.webhook_url_file") for a URL that cannot be used.
    static std::shared_ptr<webhook_alerter>
    create(boost::asio::any_io_executor ex, const secret& url, std::string location_id,
           alerts_config cfg, observe_fn observe,
           const speak4::clock& clk = system_clock::instance());

    /// Observes, tracks and delivers until stop().
    static boost::asio::awaitable<void> run(std::shared_ptr<webhook_alerter> self);
    void stop();

    struct stats {
        long long sent = 0;
        long long failed_attempts = 0;
        long long dropped = 0;
        std::size_t waiting = 0;
    };
    stats counters() const;

private:
    webhook_alerter(boost::asio::any_io_executor ex, webhook_target where, std::string location,
                    alerts_config cfg, observe_fn observe, const speak4::clock& clk);

    struct message {
        std::string key;
        bool started = true;
        std::string body;
        int attempts = 0;
        std::chrono::steady_clock::time_point not_before{};
    };

    boost::asio::awaitable<void> check();
    boost::asio::awaitable<void> deliver();
    void enqueue(message m);

    boost::asio::any_io_executor ex_;
    webhook_target where_;
    std::string location_;
    alerts_config cfg_;
    observe_fn observe_;
    const speak4::clock& clock_;
    std::shared_ptr<ghl::http_client> http_;
    boost::asio::steady_timer timer_;
    alert_tracker tracker_;
    std::deque<message> queue_;
    std::deque<std::chrono::steady_clock::time_point> sent_at_; ///< the last hour's sends
    stats stats_;
    bool stopping_ = false;
};

} // namespace speak4::app
