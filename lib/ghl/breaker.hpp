#pragma once
// The circuit breaker in front of GHL (DESIGN §9): when the recent failure rate says GHL is
// down, every request is refused locally (never sent, step "breaker") instead of spending rate
// budget, retry attempts and timeouts on an outage; one probe per interval, backing off to a
// cap, tests whether GHL is back. Push and pull requests both pass through ghl::client, which
// consults the breaker before each request and reports each outcome to it.
//
//   closed     requests go; each outcome is recorded. Opens when, among the last
//              `window_requests` outcomes no older than `window_age`, there are at least
//              `min_requests` and `failure_percent` of them failed.
//   open       requests are refused locally; after `probe_interval` one probe goes
//   half_open  the probe is in flight; everything else is still refused. A probe that GHL
//              answers closes the breaker (its history is forgotten); a failed probe opens it
//              again with the interval doubled, up to `probe_max`.
//
// What counts as a failure: GHL did not answer usefully: a connection that could not be made
// (resolve, connect, TLS handshake), a request sent with no response (timeout, reset), an
// unusable response (malformed, truncated), 5xx and 408. Any other answer (2xx, 4xx, 401, 429)
// is GHL working: a 429 is the rate limiter's business, not an outage.
//
// Threading: thread-safe (one mutex). Listeners run on the thread that changed the state, with
// no lock held; they must be quick (wake a loop, post a job). run_probes() runs on one executor;
// state changes from any thread wake it by posting there.

#include "core/clock.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/object.hpp>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace speak4::ghl {

struct breaker_options {
    int window_requests = 20;                       ///< outcomes considered
    std::chrono::milliseconds window_age{60000};    ///< outcomes older than this are forgotten
    int min_requests = 10;                          ///< never opens on fewer outcomes
    int failure_percent = 60;                       ///< opens at this failure rate (1..100)
    std::chrono::milliseconds probe_interval{2000}; ///< first probe after opening
    std::chrono::milliseconds probe_max{60000};     ///< the probe interval's cap (doubling)
};

enum class breaker_state { closed, open, half_open };
std::string_view to_string(breaker_state s);

/// The breaker at a moment (for health, status, metrics and tests).
struct breaker_snapshot {
    breaker_state state = breaker_state::closed;
    sys_time since;                        ///< when it entered `state`
    std::optional<sys_time> opened_at;     ///< when the current outage began (open, half_open)
    std::optional<sys_time> next_probe_at; ///< open: when the next probe goes
    std::chrono::milliseconds probe_interval{0};
    int recent_requests = 0; ///< outcomes in the window
    int recent_failures = 0;
    long long opened_total = 0;    ///< times it opened
    long long sent_while_open = 0; ///< requests sent while not closed (the probes)
    long long refused_total = 0;   ///< requests refused locally while not closed
    long long probes_failed = 0;
    std::string last_failure; ///< what the last failure said
};

/// {"state","since","opened_at","next_probe_at","probe_interval_ms","recent_requests",
/// "recent_failures","failure_rate","opened_total","sent_while_open","refused_total",
/// "last_failure"}
boost::json::object to_json(const breaker_snapshot& s);

class breaker {
public:
    using listener = std::function<void(const breaker_snapshot&)>;
    /// Sends one probe request to GHL: nullopt when GHL answered (not a failure as above),
    /// else what failed.
    using probe_fn = std::function<boost::asio::awaitable<std::optional<std::string>>()>;

    explicit breaker(breaker_options opt = {}, const speak4::clock& clk = system_clock::instance());

    /// May an ordinary request go now? Only while closed; a refusal is counted.
    bool allow();
    /// An ordinary request ended; `failure` as defined at the top of this file, `what` its error.
    void record(bool failure, std::string_view what = {});

    /// Open and the probe is due: moves to half_open and returns true (the caller sends it).
    bool begin_probe();
    /// The probe's outcome.
    void end_probe(bool answered, std::string_view what = {});

    breaker_snapshot snapshot() const;
    breaker_state state() const;
    /// When the next probe is due (open), else nullopt.
    std::optional<sys_time> next_probe_at() const;

    /// Called after every state change.
    void subscribe(listener l);

    /// The probe loop: while open, sends one probe whenever it is due, until stop(). Runs on
    /// the calling coroutine's executor.
    boost::asio::awaitable<void> run_probes(probe_fn probe);
    void stop();

    const breaker_options& options() const { return opt_; }

private:
    struct outcome {
        sys_time at;
        bool failure = false;
    };
    void trim(sys_time now);
    breaker_snapshot snapshot_locked() const;
    void notify(const breaker_snapshot& s);

    breaker_options opt_;
    const speak4::clock& clock_;
    mutable std::mutex mutex_;
    breaker_state state_ = breaker_state::closed;
    sys_time since_;
    std::optional<sys_time> opened_at_;
    sys_time next_probe_at_;
    std::chrono::milliseconds interval_;
    std::deque<outcome> recent_;
    long long opened_total_ = 0;
    long long sent_while_open_ = 0;
    long long refused_total_ = 0;
    long long probes_failed_ = 0;
    std::string last_failure_;
    std::vector<listener> listeners_;
    bool stopping_ = false;
    /// The probe loop's timer (posted to, never touched from another thread), to wake it.
    std::shared_ptr<boost::asio::steady_timer> timer_;
};

} // namespace speak4::ghl
