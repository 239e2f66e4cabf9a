#pragma once
// Client-side rate limiting per location (DESIGN §8): a token bucket of `burst` requests per
// `window` (refilled continuously) plus a daily budget, corrected from GHL's X-RateLimit-*
// headers and Retry-After, so the daemon does not cause 429s. Time comes from an injected
// speak4::clock; the waiting is injectable too, so tests never sleep.

#include "core/clock.hpp"
#include "core/config.hpp"
#include "ghl/http.hpp"

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>

namespace speak4::ghl {

struct rate_limit_options {
    int burst = 100;                         ///< requests per window
    std::chrono::milliseconds window{10000}; ///< burst window
    long long daily = 200000;                ///< requests per day (reset at 00:00 UTC)
    /// Added to each token's return time: client and server clocks tick their milliseconds
    /// at different phases, and on a fast link a request can reach the server within the
    /// same millisecond as its window edge.
    std::chrono::milliseconds guard{10};
};

/// From the [rate_limit] section.
rate_limit_options rate_limit_options_from(const rate_limit_config& cfg);

/// What one response said about the limits (all optional).
struct rate_headers {
    std::optional<long long> remaining;                   ///< X-RateLimit-Remaining
    std::optional<long long> max;                         ///< X-RateLimit-Max
    std::optional<long long> interval_ms;                 ///< X-RateLimit-Interval-Milliseconds
    std::optional<long long> daily_remaining;             ///< X-RateLimit-Daily-Remaining
    std::optional<long long> daily_limit;                 ///< X-RateLimit-Limit-Daily
    std::optional<std::chrono::milliseconds> retry_after; ///< Retry-After
};

/// Reads the headers above from a response (malformed values ignored).
rate_headers parse_rate_headers(const header_list& headers, sys_time now);

/// The state of one location's bucket, for `status` and tests.
struct bucket_state {
    long long tokens = 0; ///< requests available now
    int burst = 0;
    std::chrono::milliseconds window{0};
    long long daily_remaining = 0;
    long long daily_limit = 0;
    sys_time blocked_until;  ///< after a 429 / Retry-After (epoch when none)
    sys_time daily_reset_at; ///< next local reset of the daily budget
};

/// The outcome of acquire().
struct acquire_result {
    bool acquired = false; ///< a token was taken
    std::chrono::milliseconds waited{0};
    sys_time not_before; ///< when not acquired: when the next request may go
    sys_time returns_at; ///< when acquired: the token's provisional return time;
                         ///< pass it to observe() with the response
};

/// Token buckets per location.
///
/// Threading: thread-safe (a mutex guards the buckets); acquire() suspends on the calling
/// coroutine's executor.
///
/// Model: a bucket of `burst` tokens; a request spends one, and a spent token comes back
/// exactly `window` after it was spent (not at a continuous rate). So no window-long interval
/// ever holds more than `burst` requests, which stays under GHL's limit whether the server
/// counts in fixed windows (as ghl-sim does), sliding windows or a continuously refilled
/// bucket; a steady load still gets the full `burst` per `window`. Corrections:
/// X-RateLimit-Max / -Interval-Milliseconds replace burst and window; X-RateLimit-Remaining
/// and X-RateLimit-Daily-Remaining can only lower what is available (a response may be older
/// than requests sent since); tokens taken away by a correction come back a window later. A 429
/// blocks until Retry-After, or, without one, empties the bucket for a whole window.
class rate_limiter {
public:
    /// Waits `d` (real time by default). Tests pass one that advances a manual_clock.
    using sleep_fn = std::function<asio::awaitable<void>(std::chrono::milliseconds)>;

    explicit rate_limiter(rate_limit_options opt,
                          const speak4::clock& clk = system_clock::instance(),
                          sleep_fn sleeper = {});

    /// Pure: when may the next request for `location` go (`now` if at once)?
    sys_time next_allowed(std::string_view location, sys_time now) const;

    /// Takes a token if one is available at `now` (nullopt); otherwise returns the wait.
    std::optional<std::chrono::milliseconds> try_acquire(std::string_view location, sys_time now);

    /// Waits until a token is available and takes it, unless the wait would exceed `max_wait`
    /// (then returns at once with acquired = false and not_before set).
    asio::awaitable<acquire_result>
    acquire(std::string location,
            std::chrono::milliseconds max_wait = std::chrono::milliseconds::max());

    /// Corrects the bucket from one response (`status` 429 blocks). `returns_at` (from
    /// acquire_result) re-times the token that request spent to come back one window after
    /// `now`: GHL counted the request when it arrived, which was before its response, so a
    /// slow request cannot make the next window's first request early.
    void observe(std::string_view location, int status, const rate_headers& h, sys_time now,
                 std::optional<sys_time> returns_at = std::nullopt);

    bucket_state state(std::string_view location, sys_time now) const;

    const speak4::clock& clock() const { return clock_; }

private:
    struct bucket {
        std::multiset<sys_time> returns; ///< when each spent token comes back
        int burst = 0;
        std::chrono::milliseconds window{0};
        std::chrono::milliseconds guard{0};
        long long daily_remaining = 0;
        long long daily_limit = 0;
        sys_time daily_reset_at;
        sys_time blocked_until;
    };

    bucket& bucket_for(std::string_view location, sys_time now);
    std::optional<std::chrono::milliseconds> take(std::string_view location, sys_time now,
                                                  sys_time* returns_at);
    bucket fresh_bucket(sys_time now) const;
    static void refill(bucket& b, sys_time now);
    static long long available(const bucket& b);
    static sys_time next_allowed_in(const bucket& b, sys_time now);

    rate_limit_options opt_;
    const speak4::clock& clock_;
    sleep_fn sleep_;
    mutable std::mutex mutex_;
    std::map<std::string, bucket, std::less<>> buckets_;
};

} // namespace speak4::ghl
