#include "ghl/rate_limiter.hpp"

#include "core/log.hpp"
#include "ghl/error.hpp"

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/array.hpp>
#include <charconv>
#include <iterator>
#include <map>

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
    auto trim = [&](std::multiset<sys_time>& m) {
        m.erase(m.begin(), m.upper_bound(now));
        // A clock stepped backwards (or a shorter window) must not keep tokens out for longer
        // than one window from now.
        while (!m.empty() && *m.rbegin() > now + b.window + b.guard) {
            m.erase(std::prev(m.end()));
            m.insert(now + b.window + b.guard);
        }
    };
    trim(b.returns);
    trim(b.lane_returns[0]);
    trim(b.lane_returns[1]);
    trim(b.held);
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

milliseconds rate_limiter::lane_wait(const bucket& b, lane l) const {
    const long long burst = std::max(1, b.burst);
    const long long pull_share =
        std::max(1LL, burst * std::clamp(opt_.pull_share_percent, 0, 100) / 100);
    const long long push_share = std::max(1LL, burst - pull_share);
    const long long reserve = burst * std::clamp(opt_.push_reserve_percent, 0, 100) / 100;
    const auto out_push = static_cast<long long>(b.lane_returns[0].size());
    const auto out_pull = static_cast<long long>(b.lane_returns[1].size());
    // Re-checked this often while the other lane goes first: about one token's time.
    const auto step =
        std::clamp(milliseconds{b.window.count() / burst}, milliseconds{5}, milliseconds{200});
    if (l == lane::pull) {
        const bool owed = out_pull < pull_share; // below its guaranteed share of this window
        if (!owed && (b.waiting[0] > 0 || available(b) <= reserve))
            return step;
        return milliseconds{0};
    }
    if (b.waiting[1] > 0 && out_push >= push_share && out_pull < pull_share)
        return step; // pulls are owed the rest of this window
    return milliseconds{0};
}

rate_limiter::take_result rate_limiter::take(std::string_view location, sys_time now, lane l,
                                             sys_time* returns_at, bool reserve_needed) {
    std::lock_guard lock(mutex_);
    auto& b = bucket_for(location, now);
    const auto t = next_allowed_in(b, now);
    if (t > now)
        return {take_result::what::wait, std::chrono::duration_cast<milliseconds>(t - now)};
    refill(b, now);
    if (const auto w = lane_wait(b, l); w.count() > 0)
        return {take_result::what::wait, w};
    if (reserve_needed) {
        if (b.reserved <= 0 || now >= b.reserved_until) {
            b.reserved = 0;
            return {take_result::what::reserve, milliseconds{0}};
        }
        --b.reserved;
    }
    const sys_time back = now + b.window + b.guard;
    b.returns.insert(back);
    b.lane_returns[l == lane::pull ? 1 : 0].insert(back);
    if (returns_at)
        *returns_at = back;
    --b.daily_remaining;
    return {};
}

std::optional<milliseconds> rate_limiter::try_acquire(std::string_view location, sys_time now,
                                                      lane l) {
    const auto r = take(location, now, l, nullptr, false);
    if (r.result == take_result::what::granted)
        return std::nullopt;
    return r.wait;
}

asio::awaitable<bool> rate_limiter::save_reservation(const std::string& location) {
    rate_snapshot snap;
    long long chunk = 0;
    sys_time until;
    {
        std::lock_guard lock(mutex_);
        const auto now = clock_.now();
        auto& b = bucket_for(location, now);
        if (b.persisting)
            chunk = -1; // another caller is saving one: wait for it below
        else {
            b.persisting = true;
            refill(b, now);
            chunk = chunk_ > 0 ? chunk_ : std::max(1, b.burst / 10);
            until = now + ttl_;
            snap = snapshot_of(b, now, chunk, until + b.window + b.guard);
        }
    }
    if (chunk < 0) {
        co_await sleep_(milliseconds{5});
        co_return true;
    }
    bool ok = false;
    try {
        ok = co_await persist_(location, std::move(snap));
    } catch (const std::exception&) {
        ok = false;
    }
    std::lock_guard lock(mutex_);
    auto& b = bucket_for(location, clock_.now());
    b.persisting = false;
    // Saved or not, the tokens are handed out: a database that cannot save this cannot record
    // the pushes either, and stalling every request would not make that better.
    b.reserved = chunk;
    b.reserved_until = until;
    co_return ok;
}

asio::awaitable<acquire_result> rate_limiter::acquire(std::string location, milliseconds max_wait,
                                                      lane l) {
    acquire_result r;
    const auto start = clock_.now();
    const int li = l == lane::pull ? 1 : 0;
    {
        std::lock_guard lock(mutex_);
        ++bucket_for(location, start).waiting[li];
    }
    struct leave {
        rate_limiter& self;
        const std::string& location;
        int li;
        ~leave() {
            std::lock_guard lock(self.mutex_);
            auto& b = self.bucket_for(location, self.clock_.now());
            b.waiting[li] = std::max(0, b.waiting[li] - 1);
        }
    } on_leave{*this, location, li};
    for (;;) {
        const auto now = clock_.now();
        const auto t = take(location, now, l, &r.returns_at, static_cast<bool>(persist_));
        if (t.result == take_result::what::granted) {
            r.acquired = true;
            r.waited = std::chrono::duration_cast<milliseconds>(now - start);
            co_return r;
        }
        if (t.result == take_result::what::reserve) {
            if (!co_await save_reservation(location))
                log::warn("rate limiter: saving the rate budget failed; a restart now could "
                          "exceed GHL's limit",
                          {{"location", location}});
            continue;
        }
        const auto waited = std::chrono::duration_cast<milliseconds>(now - start);
        if (max_wait != milliseconds::max() && waited + t.wait > max_wait) {
            r.not_before = now + t.wait;
            r.waited = waited;
            co_return r;
        }
        co_await sleep_(t.wait);
    }
}

void rate_limiter::set_persistence(persist_fn fn, int chunk, milliseconds ttl) {
    std::lock_guard lock(mutex_);
    persist_ = std::move(fn);
    chunk_ = std::max(0, chunk);
    ttl_ = ttl.count() > 0 ? ttl : std::max(milliseconds{250}, opt_.window / 10);
}

namespace {

/// Rounded up to 10 ms: the snapshot may only err towards later returns.
sys_time ceil_10ms(sys_time t) {
    const auto ms = t.time_since_epoch().count();
    return sys_time{milliseconds{(ms + 9) / 10 * 10}};
}

} // namespace

rate_snapshot rate_limiter::snapshot_of(const bucket& b, sys_time now, long long extra_out,
                                        sys_time extra_return) const {
    rate_snapshot s;
    s.burst = b.burst;
    s.window = b.window;
    std::map<sys_time, long long> grouped;
    for (const auto t : b.returns)
        if (t > now)
            ++grouped[ceil_10ms(t)];
    if (extra_out > 0)
        grouped[ceil_10ms(extra_return)] += extra_out;
    s.out.assign(grouped.begin(), grouped.end());
    s.daily_remaining = std::max(0LL, b.daily_remaining - std::max(0LL, extra_out));
    s.daily_limit = b.daily_limit;
    s.daily_reset_at = b.daily_reset_at;
    s.blocked_until = b.blocked_until;
    s.saved_at = now;
    return s;
}

rate_snapshot rate_limiter::snapshot(std::string_view location, sys_time now) const {
    std::lock_guard lock(mutex_);
    auto it = buckets_.find(location);
    bucket b = it == buckets_.end() ? fresh_bucket(now) : it->second;
    refill(b, now);
    return snapshot_of(b, now, 0, now);
}

void rate_limiter::restore(std::string_view location, const rate_snapshot& s, sys_time now) {
    constexpr long long max_burst = 100000;
    std::lock_guard lock(mutex_);
    auto& b = bucket_for(location, now);
    if (s.burst > 0)
        b.burst = static_cast<int>(std::min<long long>(s.burst, max_burst));
    if (s.window.count() > 0 && s.window <= std::chrono::hours(24))
        b.window = s.window;
    long long restored = 0;
    for (const auto& [t, n] : s.out) {
        if (t <= now)
            continue;
        for (long long k = 0; k < n && restored < b.burst; ++k, ++restored)
            b.returns.insert(t);
    }
    refill(b, now); // clamps anything beyond a window from now
    b.blocked_until = std::max(b.blocked_until, s.blocked_until);
    if (s.daily_limit > 0)
        b.daily_limit = s.daily_limit;
    if (s.daily_reset_at == b.daily_reset_at)
        b.daily_remaining = std::min(b.daily_remaining, s.daily_remaining);
}

void rate_limiter::start_conservatively(std::string_view location, sys_time now) {
    std::lock_guard lock(mutex_);
    auto& b = bucket_for(location, now);
    refill(b, now);
    // Bounded: a burst configured far above GHL's (an unthrottled test) holds at most this many.
    for (long long n = std::min<long long>(available(b), 100000); n > 0; --n) {
        b.returns.insert(now + b.window + b.guard);
        b.held.insert(now + b.window + b.guard);
    }
    // One token is left for the request that will bring the headers.
    if (!b.held.empty()) {
        b.returns.erase(b.returns.find(*b.held.begin()));
        b.held.erase(b.held.begin());
    }
}

void rate_limiter::observe(std::string_view location, int status, const rate_headers& h,
                           sys_time now, std::optional<sys_time> returns_at) {
    constexpr long long max_burst = 100000; // bounds the bucket's memory
    std::lock_guard lock(mutex_);
    auto& b = bucket_for(location, now);
    refill(b, now);
    if (!b.held.empty() && h.remaining) {
        // A conservative start ends with GHL's first word on what remains: the tokens held back
        // are released, and the correction below takes away what the server says is spent.
        for (const auto t : b.held)
            if (auto it = b.returns.find(t); it != b.returns.end())
                b.returns.erase(it);
        b.held.clear();
    }
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
    bucket_state st{available(b),  b.burst,         b.window,        b.daily_remaining,
                    b.daily_limit, b.blocked_until, b.daily_reset_at};
    st.push_out = static_cast<long long>(b.lane_returns[0].size());
    st.pull_out = static_cast<long long>(b.lane_returns[1].size());
    st.conservative = !b.held.empty();
    return st;
}

boost::json::object to_json(const rate_snapshot& s) {
    boost::json::array out;
    for (const auto& [t, n] : s.out)
        out.push_back(boost::json::array{to_epoch_ms(t), n});
    return boost::json::object{{"burst", s.burst},
                               {"window_ms", s.window.count()},
                               {"out", std::move(out)},
                               {"daily_remaining", s.daily_remaining},
                               {"daily_limit", s.daily_limit},
                               {"daily_reset_at", to_epoch_ms(s.daily_reset_at)},
                               {"blocked_until", to_epoch_ms(s.blocked_until)},
                               {"saved_at", to_epoch_ms(s.saved_at)}};
}

std::optional<rate_snapshot> rate_snapshot_from_json(const boost::json::object& o) {
    auto num = [&](std::string_view k) -> std::optional<long long> {
        const auto* v = o.if_contains(k);
        if (!v)
            return std::nullopt;
        if (v->is_int64())
            return v->get_int64();
        if (v->is_uint64() && v->get_uint64() <= 9007199254740992ULL)
            return static_cast<long long>(v->get_uint64());
        return std::nullopt;
    };
    rate_snapshot s;
    const auto burst = num("burst"), window = num("window_ms"), dr = num("daily_remaining"),
               dl = num("daily_limit"), reset = num("daily_reset_at"),
               blocked = num("blocked_until"), saved = num("saved_at");
    const auto* out = o.if_contains("out");
    if (!burst || !window || !dr || !dl || !reset || !blocked || !saved || !out ||
        !out->is_array() || *burst < 0 || *burst > 1000000000 || *window < 0)
        return std::nullopt;
    s.burst = static_cast<int>(*burst);
    s.window = milliseconds{*window};
    s.daily_remaining = *dr;
    s.daily_limit = *dl;
    s.daily_reset_at = from_epoch_ms(*reset);
    s.blocked_until = from_epoch_ms(*blocked);
    s.saved_at = from_epoch_ms(*saved);
    for (const auto& e : out->get_array()) {
        if (!e.is_array() || e.get_array().size() != 2 || !e.get_array()[0].is_int64() ||
            !e.get_array()[1].is_int64() || e.get_array()[1].get_int64() < 0)
            return std::nullopt;
        s.out.emplace_back(from_epoch_ms(e.get_array()[0].get_int64()),
                           e.get_array()[1].get_int64());
    }
    return s;
}

} // namespace speak4::ghl
