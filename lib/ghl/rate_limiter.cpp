#include "ghl/rate_limiter.hpp"

#include "ghl/error.hpp"

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <charconv>
#include <iterator>

namespace speak4::ghl {

namespace {

using std::chrono::milliseconds;

std::optional<long long> header_int(const header_list& h, std::string_view name) {
    auto v = find_header(h, name);
    if (!v)
        return std::nullopt;
    std::string_view s = *v;
    while (!s.empty() && s.front() == ' ')
        s.remove_prefix(1);
    while (!s.empty() && s.back() == ' ')
        s.remove_suffix(1);
    long long n = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
    if (ec != std::errc{} || p != s.data() + s.size() || n < 0)
        return std::nullopt;
    return n;
}

sys_time next_utc_midnight(sys_time now) {
    const auto day = std::chrono::floor<std::chrono::days>(now);
    return sys_time{
        std::chrono::duration_cast<milliseconds>((day + std::chrono::days{1}).time_since_epoch())};
}

asio::awaitable<void> real_sleep(milliseconds d) {
    asio::steady_timer t(co_await asio::this_coro::executor, d);
    (void)co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
}

} // namespace

rate_limit_options rate_limit_options_from(const rate_limit_config& cfg) {
    rate_limit_options o;
    o.burst = std::max(1, cfg.burst);
    o.window = std::chrono::seconds{std::max(1, cfg.window_seconds)};
    o.daily = std::max(1LL, cfg.daily);
    return o;
}

rate_headers parse_rate_headers(const header_list& headers, sys_time now) {
    rate_headers r;
    r.remaining = header_int(headers, "X-RateLimit-Remaining");
    r.max = header_int(headers, "X-RateLimit-Max");
    r.interval_ms = header_int(headers, "X-RateLimit-Interval-Milliseconds");
    r.daily_remaining = header_int(headers, "X-RateLimit-Daily-Remaining");
    r.daily_limit = header_int(headers, "X-RateLimit-Limit-Daily");
    if (auto ra = find_header(headers, "Retry-After"))
        r.retry_after = parse_retry_after(*ra, now);
    return r;
}

rate_limiter::rate_limiter(rate_limit_options opt, const speak4::clock& clk, sleep_fn sleeper)
    : opt_(opt)
    , clock_(clk)
    , sleep_(sleeper ? std::move(sleeper) : sleep_fn(real_sleep)) {
    opt_.burst = std::max(1, opt_.burst);
    opt_.window = std::max(milliseconds{1}, opt_.window);
    opt_.daily = std::max(1LL, opt_.daily);
    opt_.guard = std::max(milliseconds{0}, opt_.guard);
}

rate_limiter::bucket rate_limiter::fresh_bucket(sys_time now) const {
    bucket b;
    b.burst = opt_.burst;
    b.window = opt_.window;
    b.guard = opt_.guard;
    b.daily_limit = opt_.daily;
    b.daily_remaining = opt_.daily;
    b.daily_reset_at = next_utc_midnight(now);
    return b;
}

rate_limiter::bucket& rate_limiter::bucket_for(std::string_view location, sys_time now) {
    auto it = buckets_.find(location);
    if (it == buckets_.end())
        it = buckets_.emplace(std::string(location), fresh_bucket(now)).first;
    return it->second;
}

void rate_limiter::refill(bucket& b, sys_time now) {
    b.returns.erase(b.returns.begin(), b.returns.upper_bound(now));
    // A clock stepped backwards (or a shorter window) must not keep tokens out for longer than
    // one window from now.
    while (!b.returns.empty() && *b.returns.rbegin() > now + b.window + b.guard) {
        b.returns.erase(std::prev(b.returns.end()));
        b.returns.insert(now + b.window + b.guard);
    }
    if (now >= b.daily_reset_at) {
        b.daily_remaining = b.daily_limit;
        b.daily_reset_at = next_utc_midnight(now);
    }
}

long long rate_limiter::available(const bucket& b) {
    return std::max(0LL,
                    static_cast<long long>(b.burst) - static_cast<long long>(b.returns.size()));
}

sys_time rate_limiter::next_allowed_in(const bucket& b0, sys_time now) {
    bucket b = b0;
    refill(b, now);
    sys_time t = now;
    if (b.blocked_until > t)
        t = b.blocked_until;
    if (b.daily_remaining <= 0)
        t = std::max(t, b.daily_reset_at);
    // Tokens still out at t: the next one available is the (out - burst)-th to come back.
    const auto out =
        static_cast<long long>(std::distance(b.returns.upper_bound(t), b.returns.end()));
    if (out >= b.burst) {
        auto it = b.returns.upper_bound(t);
        std::advance(it, out - b.burst);
        t = std::max(t, *it);
    }
    return t;
}

sys_time rate_limiter::next_allowed(std::string_view location, sys_time now) const {
    std::lock_guard lock(mutex_);
    auto it = buckets_.find(location);
    if (it == buckets_.end())
        return now;
    return next_allowed_in(it->second, now);
}

std::optional<milliseconds> rate_limiter::take(std::string_view location, sys_time now,
                                               sys_time* returns_at) {
    std::lock_guard lock(mutex_);
    auto& b = bucket_for(location, now);
    const auto t = next_allowed_in(b, now);
    if (t > now)
        return std::chrono::duration_cast<milliseconds>(t - now);
    refill(b, now);
    b.returns.insert(now + b.window + b.guard);
    if (returns_at)
        *returns_at = now + b.window + b.guard;
    --b.daily_remaining;
    return std::nullopt;
}

std::optional<milliseconds> rate_limiter::try_acquire(std::string_view location, sys_time now) {
    return take(location, now, nullptr);
}

asio::awaitable<acquire_result> rate_limiter::acquire(std::string location, milliseconds max_wait) {
    acquire_result r;
    const auto start = clock_.now();
    for (;;) {
        const auto now = clock_.now();
        auto wait = take(location, now, &r.returns_at);
        if (!wait) {
            r.acquired = true;
            r.waited = std::chrono::duration_cast<milliseconds>(now - start);
            co_return r;
        }
        const auto waited = std::chrono::duration_cast<milliseconds>(now - start);
        if (max_wait != milliseconds::max() && waited + *wait > max_wait) {
            r.not_before = now + *wait;
            r.waited = waited;
            co_return r;
        }
        co_await sleep_(*wait);
    }
}

void rate_limiter::observe(std::string_view location, int status, const rate_headers& h,
                           sys_time now, std::optional<sys_time> returns_at) {
    constexpr long long max_burst = 100000; // bounds the bucket's memory
    std::lock_guard lock(mutex_);
    auto& b = bucket_for(location, now);
    refill(b, now);
    if (h.max && *h.max > 0)
        b.burst = static_cast<int>(std::min(*h.max, max_burst));
    if (h.interval_ms && *h.interval_ms > 0 && *h.interval_ms <= 24LL * 3600 * 1000)
        b.window = milliseconds{*h.interval_ms};
    refill(b, now); // a shorter window brings tokens back sooner
    if (returns_at) {
        if (auto it = b.returns.find(*returns_at); it != b.returns.end()) {
            b.returns.erase(it);
            b.returns.insert(now + b.window + b.guard);
        }
    }
    // Fewer left at the server than here (another client of the app, or requests we do not
    // know of): take the difference away until a window from now.
    if (h.remaining)
        for (long long n = available(b) - std::min(*h.remaining, max_burst); n > 0; --n)
            b.returns.insert(now + b.window + b.guard);
    if (h.daily_limit && *h.daily_limit > 0)
        b.daily_limit = *h.daily_limit;
    if (h.daily_remaining)
        b.daily_remaining = std::min(b.daily_remaining, *h.daily_remaining);
    if (status == 429) {
        // Without Retry-After, wait until a whole window has passed: by then the server's
        // window (fixed or sliding) has refilled whatever its alignment.
        const auto block = h.retry_after ? *h.retry_after : b.window;
        b.blocked_until = std::max(b.blocked_until, now + block);
        if (!h.retry_after)
            for (long long n = available(b); n > 0; --n)
                b.returns.insert(now + b.window + b.guard);
    } else if (h.retry_after) {
        // e.g. a 503 with Retry-After: honour it for the next request too.
        b.blocked_until = std::max(b.blocked_until, now + *h.retry_after);
    }
}

bucket_state rate_limiter::state(std::string_view location, sys_time now) const {
    std::lock_guard lock(mutex_);
    auto it = buckets_.find(location);
    bucket b = it == buckets_.end() ? fresh_bucket(now) : it->second;
    refill(b, now);
    return bucket_state{available(b),  b.burst,         b.window,        b.daily_remaining,
                        b.daily_limit, b.blocked_until, b.daily_reset_at};
}

} // namespace speak4::ghl
