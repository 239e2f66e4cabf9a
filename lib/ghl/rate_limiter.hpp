#pragma once
// Client-side rate limiting per location (DESIGN §8): a token bucket of `burst` requests per
// `window` (refilled continuously) plus a daily budget, corrected from GHL's X-RateLimit-*
// headers and Retry-After, so the daemon does not cause 429s. Time comes from an injected
// speak4::clock; the waiting is injectable too, so tests never sleep.

#include "core/clock.hpp"
#include "core/config.hpp"
#include "ghl/http.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace speak4::ghl {

struct rate_limit_options {
    int burst = 100;                         ///< requests per window
    std::chrono::milliseconds window{10000}; ///< burst window
    long long daily = 200000;                ///< requests per day (reset at 00:00 UTC)
    /// Added to each token's return time: client and server clocks tick their milliseconds
    /// at different phases, and on a fast link a request can reach the server within the
    /// same millisecond as its window edge.
    std::chrono::milliseconds guard{10};
    /// Lanes (see rate_limiter): the pull lane never takes the last `push_reserve_percent` of
    /// the burst while no push waits, so a push arriving after a burst of pulls goes at once.
    int push_reserve_percent = 20;
    /// While both lanes wait, the pull lane is guaranteed this share of each window and the push
    /// lane the rest; a lane with nothing waiting leaves its share to the other.
    int pull_share_percent = 20;
};

/// Which traffic a request belongs to. Pushes are Speak4's changes; pulls everything the pull
/// path reads (webhook and per-contact pulls, passes, background child fetches, sweeps).
enum class lane { push, pull };

/// What a restarted process must know of its predecessor's spending (DESIGN §9: no 429s caused,
/// restarts included). Saved before tokens are used (see set_persistence), restored at start.
struct rate_snapshot {
    int burst = 0;
    std::chrono::milliseconds window{0};
    /// When spent tokens come back, with how many at each time (rounded up to 10 ms).
    std::vector<std::pair<sys_time, long long>> out;
    long long daily_remaining = 0;
    long long daily_limit = 0;
    sys_time daily_reset_at;
    sys_time blocked_until;
    sys_time saved_at;
};

boost::json::object to_json(const rate_snapshot& s);
/// nullopt when a field is missing or of the wrong type.
std::optional<rate_snapshot> rate_snapshot_from_json(const boost::json::object& o);

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
    sys_time blocked_until;    ///< after a 429 / Retry-After (epoch when none)
    sys_time daily_reset_at;   ///< next local reset of the daily budget
    long long pull_out = 0;    ///< tokens out that the pull lane spent
    long long push_out = 0;    ///< tokens out that the push lane spent
    bool conservative = false; ///< started without knowing the predecessor's spending
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
///
/// Lanes: every acquire names a lane. While both lanes wait, the pull lane gets at least
/// `pull_share_percent` of each window's tokens and the push lane the rest; a lane alone gets
/// everything, except that the pull lane leaves the last `push_reserve_percent` of the burst for
/// pushes that may arrive (so a push after a bulk of webhook pulls does not wait a window).
///
/// Restarts: with set_persistence(), tokens are handed out from reservations that are saved
/// first: before the first token of a reservation is spent, a snapshot is saved in which the
/// next `chunk` tokens count as spent (returning one window after the reservation expires), so
/// a process killed at any moment has saved at least everything it spent. restore() loads it in
/// the next process. Without a snapshot, start_conservatively() treats the whole burst as just
/// spent until GHL's first rate-limit headers say what remains.
class rate_limiter {
public:
    /// Waits `d` (real time by default). Tests pass one that advances a manual_clock.
    using sleep_fn = std::function<asio::awaitable<void>(std::chrono::milliseconds)>;
    /// Saves a snapshot durably; true when it was saved. Runs on the acquiring coroutine.
    using persist_fn =
        std::function<asio::awaitable<bool>(std::string location, rate_snapshot snapshot)>;

    explicit rate_limiter(rate_limit_options opt,
                          const speak4::clock& clk = system_clock::instance(),
                          sleep_fn sleeper = {});

    /// Pure: when may the next request for `location` go (`now` if at once)?
    sys_time next_allowed(std::string_view location, sys_time now) const;

    /// Takes a token if one is available at `now` (nullopt); otherwise returns the wait. Not
    /// for use with persistence (it cannot save a reservation).
    std::optional<std::chrono::milliseconds> try_acquire(std::string_view location, sys_time now,
                                                         lane l = lane::push);

    /// Waits until a token is available and takes it, unless the wait would exceed `max_wait`
    /// (then returns at once with acquired = false and not_before set).
    asio::awaitable<acquire_result>
    acquire(std::string location,
            std::chrono::milliseconds max_wait = std::chrono::milliseconds::max(),
            lane l = lane::push);

    /// Tokens are handed out only from saved reservations of `chunk` tokens (0: burst / 10, at
    /// least 1), each valid for `ttl` (0: a tenth of the window, at least 250 ms). Control plane:
    /// call before the first acquire.
    void set_persistence(persist_fn fn, int chunk = 0,
                         std::chrono::milliseconds ttl = std::chrono::milliseconds(0));
    /// What the bucket holds now, as a restarted process would need it.
    rate_snapshot snapshot(std::string_view location, sys_time now) const;
    /// Loads a predecessor's snapshot: its spent tokens, block and daily budget (a snapshot of an
    /// earlier UTC day restores only its shape).
    void restore(std::string_view location, const rate_snapshot& s, sys_time now);
    /// No snapshot to restore: count the whole burst as spent just now, until the first response
    /// with X-RateLimit-Remaining says how much is really left (then that is the budget).
    void start_conservatively(std::string_view location, sys_time now);

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
        std::multiset<sys_time> returns;         ///< when each spent token comes back
        std::multiset<sys_time> lane_returns[2]; ///< the lanes' own tokens among them
        std::multiset<sys_time> held; ///< conservative start: assumed spent, until headers come
        int burst = 0;
        std::chrono::milliseconds window{0};
        std::chrono::milliseconds guard{0};
        long long daily_remaining = 0;
        long long daily_limit = 0;
        sys_time daily_reset_at;
        sys_time blocked_until;
        int waiting[2] = {0, 0}; ///< acquire() calls waiting, per lane
        long long reserved = 0;  ///< tokens left in the saved reservation
        sys_time reserved_until;
        bool persisting = false; ///< a reservation is being saved
    };
    struct take_result {
        enum class what { granted, wait, reserve } result = what::granted;
        std::chrono::milliseconds wait{0};
    };

    bucket& bucket_for(std::string_view location, sys_time now);
    take_result take(std::string_view location, sys_time now, lane l, sys_time* returns_at,
                     bool reserve_needed);
    bucket fresh_bucket(sys_time now) const;
    static void refill(bucket& b, sys_time now);
    static long long available(const bucket& b);
    static sys_time next_allowed_in(const bucket& b, sys_time now);
    /// The lane policy: how long `l` must let the other lane go first (0: it may go now).
    std::chrono::milliseconds lane_wait(const bucket& b, lane l) const;
    rate_snapshot snapshot_of(const bucket& b, sys_time now, long long extra_out,
                              sys_time extra_return) const;
    asio::awaitable<bool> save_reservation(const std::string& location);

    rate_limit_options opt_;
    const speak4::clock& clock_;
    sleep_fn sleep_;
    persist_fn persist_;
    int chunk_ = 0;
    std::chrono::milliseconds ttl_{0};
    mutable std::mutex mutex_;
    std::map<std::string, bucket, std::less<>> buckets_;
};

} // namespace speak4::ghl
