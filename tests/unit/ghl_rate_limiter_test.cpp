// The per-location token bucket: arithmetic on a manual clock, correction from GHL's headers,
// Retry-After, 429 without Retry-After, the daily budget, and the async acquire (whose sleeps
// advance the manual clock, so nothing here sleeps).

#include "ghl/rate_limiter.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <gtest/gtest.h>
#include <map>

using namespace speak4;
using namespace speak4::ghl;
using namespace std::chrono_literals;

namespace {

const std::string loc = "loc1";

// No guard: keeps the arithmetic below exact (the guard has its own test).
rate_limit_options opts(int burst = 100, std::chrono::milliseconds window = 10s,
                        long long daily = 200000) {
    return {burst, window, daily, 0ms};
}

// Noon UTC, so the daily reset (00:00 UTC) is 12 h away.
sys_time noon() {
    return *parse_iso8601("2026-03-10T12:00:00.000Z");
}

int drain(rate_limiter& rl, sys_time now) {
    int n = 0;
    while (!rl.try_acquire(loc, now))
        ++n;
    return n;
}

} // namespace

TEST(GhlRateLimiter, FullBurstThenTokensComeBackOneWindowAfterUse) {
    manual_clock clk(noon());
    rate_limiter rl(opts(), clk);
    const auto t0 = clk.now();
    EXPECT_EQ(rl.next_allowed(loc, t0), t0); // unknown location: at once
    EXPECT_EQ(drain(rl, t0), 100);
    // 100 per 10 s: the tokens spent at t0 come back at t0 + 10 s.
    auto wait = rl.try_acquire(loc, t0);
    ASSERT_TRUE(wait);
    EXPECT_EQ(*wait, 10s);
    EXPECT_EQ(rl.next_allowed(loc, t0), t0 + 10s);
    clk.advance(9999ms);
    EXPECT_TRUE(rl.try_acquire(loc, clk.now()));
    clk.advance(1ms);
    EXPECT_EQ(drain(rl, clk.now()), 100);
    EXPECT_EQ(rl.state(loc, clk.now()).tokens, 0);
}

TEST(GhlRateLimiter, NoWindowLongIntervalEverHoldsMoreThanTheBurst) {
    manual_clock clk(noon());
    rate_limiter rl(opts(), clk);
    const auto t1 = clk.now();
    for (int i = 0; i < 50; ++i)
        ASSERT_FALSE(rl.try_acquire(loc, clk.now()));
    clk.advance(5s);
    EXPECT_EQ(drain(rl, clk.now()), 50);
    EXPECT_EQ(rl.next_allowed(loc, clk.now()), t1 + 10s);
    clk.set(t1 + 10s);
    EXPECT_EQ(drain(rl, clk.now()), 50); // the first half came back
    clk.set(t1 + 15s);
    EXPECT_EQ(drain(rl, clk.now()), 50);
    // Idle for long: never more than the burst.
    clk.advance(1h);
    EXPECT_EQ(drain(rl, clk.now()), 100);
}

TEST(GhlRateLimiter, LocationsAreIndependent) {
    manual_clock clk(noon());
    rate_limiter rl(opts(2, 1s), clk);
    EXPECT_EQ(drain(rl, clk.now()), 2);
    EXPECT_FALSE(rl.try_acquire("loc2", clk.now()));
    EXPECT_FALSE(rl.try_acquire("loc2", clk.now()));
    EXPECT_TRUE(rl.try_acquire("loc2", clk.now()));
}

TEST(GhlRateLimiter, RemainingHeaderLowersTheBucket) {
    manual_clock clk(noon());
    rate_limiter rl(opts(), clk);
    ASSERT_FALSE(rl.try_acquire(loc, clk.now()));
    rate_headers h;
    h.remaining = 3; // another client of the same app spends this location's budget too
    rl.observe(loc, 200, h, clk.now());
    EXPECT_EQ(rl.state(loc, clk.now()).tokens, 3);
    EXPECT_EQ(drain(rl, clk.now()), 3);
    // A higher Remaining does not raise it (the response may predate our later requests).
    h.remaining = 90;
    rl.observe(loc, 200, h, clk.now());
    EXPECT_EQ(drain(rl, clk.now()), 0);
    EXPECT_EQ(rl.state(loc, clk.now()).tokens, 0);
    // What was taken away comes back a window later.
    clk.advance(10s);
    EXPECT_EQ(drain(rl, clk.now()), 100);
}

TEST(GhlRateLimiter, MaxAndIntervalHeadersReplaceTheConfiguredShape) {
    manual_clock clk(noon());
    rate_limiter rl(opts(), clk);
    rate_headers h;
    h.max = 50;
    h.interval_ms = 5000; // 10 per second, as before, but a burst of 50
    rl.observe(loc, 200, h, clk.now());
    auto st = rl.state(loc, clk.now());
    EXPECT_EQ(st.burst, 50);
    EXPECT_EQ(st.window, 5000ms);
    EXPECT_EQ(drain(rl, clk.now()), 50);
    const auto spent_at = clk.now();
    h = {};
    h.max = 10;
    h.interval_ms = 10000;
    rl.observe(loc, 200, h, clk.now());
    EXPECT_EQ(rl.state(loc, clk.now()).burst, 10);
    clk.advance(500ms);
    // 50 out, room for 10: wait until 41 have come back (spent with the 5 s window then).
    EXPECT_EQ(rl.next_allowed(loc, clk.now()), spent_at + 5s);
    clk.set(spent_at + 5s);
    EXPECT_EQ(drain(rl, clk.now()), 10);
}

TEST(GhlRateLimiter, RetryAfterBlocksUntilItPasses) {
    manual_clock clk(noon());
    rate_limiter rl(opts(), clk);
    rate_headers h;
    h.retry_after = 30s;
    rl.observe(loc, 429, h, clk.now());
    EXPECT_EQ(rl.next_allowed(loc, clk.now()), clk.now() + 30s);
    clk.advance(29s);
    EXPECT_EQ(rl.try_acquire(loc, clk.now()), std::optional(1000ms));
    clk.advance(1s);
    // The bucket refilled while blocked: the full burst is there again.
    EXPECT_EQ(drain(rl, clk.now()), 100);
}

TEST(GhlRateLimiter, TooManyRequestsWithoutRetryAfterWaitsOneWindow) {
    manual_clock clk(noon());
    rate_limiter rl(opts(), clk);
    // Only one request sent here, yet GHL says 429 (the budget is shared with others).
    ASSERT_FALSE(rl.try_acquire(loc, clk.now()));
    rl.observe(loc, 429, {}, clk.now());
    EXPECT_EQ(rl.state(loc, clk.now()).tokens, 0);
    EXPECT_EQ(rl.next_allowed(loc, clk.now()), clk.now() + 10s);
    clk.advance(9999ms);
    EXPECT_TRUE(rl.try_acquire(loc, clk.now()));
    clk.advance(1ms);
    EXPECT_EQ(drain(rl, clk.now()), 100);
}

TEST(GhlRateLimiter, RetryAfterOnOtherStatusesIsHonouredToo) {
    manual_clock clk(noon());
    rate_limiter rl(opts(), clk);
    rate_headers h;
    h.retry_after = 5s;
    rl.observe(loc, 503, h, clk.now());
    EXPECT_EQ(rl.next_allowed(loc, clk.now()), clk.now() + 5s);
}

TEST(GhlRateLimiter, DailyBudgetBlocksUntilMidnightUtc) {
    manual_clock clk(noon());
    rate_limiter rl(opts(100, 10s, 3), clk);
    EXPECT_EQ(drain(rl, clk.now()), 3);
    const auto midnight = *parse_iso8601("2026-03-11T00:00:00.000Z");
    EXPECT_EQ(rl.next_allowed(loc, clk.now()), midnight);
    EXPECT_EQ(rl.state(loc, clk.now()).daily_remaining, 0);
    clk.set(midnight);
    EXPECT_EQ(drain(rl, clk.now()), 3);
}

TEST(GhlRateLimiter, DailyRemainingHeaderCorrectsTheDailyBudget) {
    manual_clock clk(noon());
    rate_limiter rl(opts(), clk);
    rate_headers h;
    h.daily_remaining = 2;
    h.daily_limit = 5000;
    rl.observe(loc, 200, h, clk.now());
    EXPECT_EQ(rl.state(loc, clk.now()).daily_limit, 5000);
    EXPECT_EQ(drain(rl, clk.now()), 2);
    EXPECT_EQ(rl.next_allowed(loc, clk.now()), *parse_iso8601("2026-03-11T00:00:00.000Z"));
    // The reset restores the limit the server announced.
    clk.set(*parse_iso8601("2026-03-11T00:00:00.000Z"));
    EXPECT_EQ(rl.state(loc, clk.now()).daily_remaining, 5000);
}

TEST(GhlRateLimiter, ParsesTheHeaders) {
    const sys_time now = noon();
    header_list h = {{"x-ratelimit-remaining", "97"},
                     {"X-RateLimit-Max", "100"},
                     {"X-RateLimit-Interval-Milliseconds", "10000"},
                     {"X-RateLimit-Daily-Remaining", "199990"},
                     {"X-RateLimit-Limit-Daily", "200000"},
                     {"Retry-After", "7"}};
    auto r = parse_rate_headers(h, now);
    EXPECT_EQ(r.remaining, 97);
    EXPECT_EQ(r.max, 100);
    EXPECT_EQ(r.interval_ms, 10000);
    EXPECT_EQ(r.daily_remaining, 199990);
    EXPECT_EQ(r.daily_limit, 200000);
    EXPECT_EQ(r.retry_after, std::optional(7000ms));

    // Malformed values are ignored, HTTP-dates are relative to now.
    header_list bad = {{"X-RateLimit-Remaining", "many"},
                       {"X-RateLimit-Max", "-3"},
                       {"Retry-After", "Tue, 10 Mar 2026 12:00:42 GMT"}};
    r = parse_rate_headers(bad, now);
    EXPECT_FALSE(r.remaining);
    EXPECT_FALSE(r.max);
    EXPECT_EQ(r.retry_after, std::optional(42000ms));
}

TEST(GhlRateLimiter, AsyncAcquireWaitsOnTheInjectedClock) {
    manual_clock clk(noon());
    int sleeps = 0;
    rate_limiter rl(opts(10, 1s), clk, [&](std::chrono::milliseconds d) -> asio::awaitable<void> {
        ++sleeps;
        clk.advance(d);
        co_return;
    });
    boost::asio::io_context io;
    const auto start = clk.now();
    int acquired = 0;
    boost::asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            for (int i = 0; i < 25; ++i) {
                auto r = co_await rl.acquire(loc);
                if (r.acquired)
                    ++acquired;
            }
        },
        boost::asio::detached);
    io.run();
    EXPECT_EQ(acquired, 25);
    // 10 at once, 10 when they come back a second later, 5 more after another second.
    EXPECT_EQ(clk.now() - start, 2000ms);
    EXPECT_EQ(sleeps, 2);
}

TEST(GhlRateLimiter, AsyncAcquireGivesUpBeyondMaxWait) {
    manual_clock clk(noon());
    rate_limiter rl(opts(), clk, [&](std::chrono::milliseconds d) -> asio::awaitable<void> {
        clk.advance(d);
        co_return;
    });
    rate_headers h;
    h.retry_after = 120s;
    rl.observe(loc, 429, h, clk.now());
    boost::asio::io_context io;
    acquire_result got;
    boost::asio::co_spawn(
        io, [&]() -> asio::awaitable<void> { got = co_await rl.acquire(loc, 60s); },
        boost::asio::detached);
    io.run();
    EXPECT_FALSE(got.acquired);
    EXPECT_EQ(got.not_before, noon() + 120s);
    EXPECT_EQ(clk.now(), noon()); // did not wait at all

    boost::asio::co_spawn(
        io, [&]() -> asio::awaitable<void> { got = co_await rl.acquire(loc, 180s); },
        boost::asio::detached);
    io.restart();
    io.run();
    EXPECT_TRUE(got.acquired);
    EXPECT_EQ(got.waited, 120s);
}

TEST(GhlRateLimiter, OptionsFromConfig) {
    rate_limit_config cfg;
    cfg.burst = 7;
    cfg.window_seconds = 3;
    cfg.daily = 99;
    auto o = rate_limit_options_from(cfg);
    EXPECT_EQ(o.burst, 7);
    EXPECT_EQ(o.window, 3000ms);
    EXPECT_EQ(o.daily, 99);
}

TEST(GhlRateLimiter, SpentTokenComesBackOneWindowAfterTheResponse) {
    manual_clock clk(noon());
    rate_limiter rl(opts(2, 1s), clk, [&](std::chrono::milliseconds d) -> asio::awaitable<void> {
        clk.advance(d);
        co_return;
    });
    boost::asio::io_context io;
    acquire_result a, b;
    boost::asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            a = co_await rl.acquire(loc);
            b = co_await rl.acquire(loc);
        },
        boost::asio::detached);
    io.run();
    ASSERT_TRUE(a.acquired && b.acquired);
    EXPECT_EQ(a.returns_at, noon() + 1s);
    // The first request's response comes 300 ms later: its token returns at +1.3 s.
    clk.advance(300ms);
    rl.observe(loc, 200, {}, clk.now(), a.returns_at);
    EXPECT_EQ(rl.next_allowed(loc, clk.now()), noon() + 1s); // b's token
    clk.set(noon() + 1s);
    EXPECT_FALSE(rl.try_acquire(loc, clk.now()));
    EXPECT_EQ(rl.next_allowed(loc, clk.now()), noon() + 1300ms);
}

TEST(GhlRateLimiter, GuardDelaysEveryReturn) {
    manual_clock clk(noon());
    rate_limit_options o = opts(1, 1s);
    o.guard = 10ms;
    rate_limiter rl(o, clk);
    ASSERT_FALSE(rl.try_acquire(loc, clk.now()));
    EXPECT_EQ(rl.next_allowed(loc, clk.now()), noon() + 1010ms);
    clk.advance(5ms); // the response
    rl.observe(loc, 200, {}, clk.now(), noon() + 1010ms);
    EXPECT_EQ(rl.next_allowed(loc, clk.now()), noon() + 1015ms);
    EXPECT_EQ(rate_limit_options{}.guard, 10ms);
}

// --- lanes ----------------------------------------------------------------------------------

TEST(GhlRateLimiter, PullLaneLeavesTheReserveForPushes) {
    manual_clock clk(noon());
    rate_limit_options o = opts(100, 10s);
    o.push_reserve_percent = 20;
    rate_limiter rl(o, clk);
    int pulls = 0;
    while (!rl.try_acquire(loc, clk.now(), lane::pull))
        ++pulls;
    EXPECT_EQ(pulls, 80) << "pulls stop at the reserve while no push waits";
    // A push arriving after the bulk of pulls goes at once, and can use the reserve.
    EXPECT_EQ(drain(rl, clk.now()), 20);
    EXPECT_EQ(rl.state(loc, clk.now()).pull_out, 80);
    EXPECT_EQ(rl.state(loc, clk.now()).push_out, 20);
}

TEST(GhlRateLimiter, BothLanesWaitingShareTheBudget) {
    // 50 pull loops and 50 push loops all want tokens for 20 windows: the pull lane gets its
    // guaranteed share and no more (pushes first), every window.
    manual_clock clk(noon());
    rate_limit_options o = opts(50, 1s);
    o.pull_share_percent = 20;
    boost::asio::io_context io;
    rate_limiter rl(o, clk, [&](std::chrono::milliseconds d) -> asio::awaitable<void> {
        // Time moves on for everyone once every waiter has had its turn.
        co_await boost::asio::post(io, boost::asio::use_awaitable);
        clk.advance(std::clamp<std::chrono::milliseconds>(d, 1ms, 1ms));
    });
    std::map<lane, long long> got;
    const auto until = noon() + 20s;
    for (int i = 0; i < 100; ++i) {
        const lane l = i % 2 ? lane::pull : lane::push;
        boost::asio::co_spawn(
            io,
            [&, l]() -> asio::awaitable<void> {
                while (clk.now() < until) {
                    auto r = co_await rl.acquire(loc, 2s, l);
                    if (r.acquired && clk.now() < until)
                        ++got[l];
                }
            },
            boost::asio::detached);
    }
    io.run();
    const long long total = got[lane::push] + got[lane::pull];
    EXPECT_LE(total, 50 * 21) << "never more than the burst per window";
    EXPECT_GE(total, 50 * 19);
    const double pull_share = static_cast<double>(got[lane::pull]) / static_cast<double>(total);
    EXPECT_GE(pull_share, 0.17) << got[lane::pull] << " of " << total;
    EXPECT_LE(pull_share, 0.30) << got[lane::pull] << " of " << total;
}

// --- restarts -------------------------------------------------------------------------------

TEST(GhlRateLimiter, EveryTokenSpentIsCoveredByASavedSnapshotBeforeItIsUsed) {
    manual_clock clk(noon());
    std::vector<rate_snapshot> saved;
    rate_limiter rl(opts(100, 10s), clk, [&](std::chrono::milliseconds d) -> asio::awaitable<void> {
        clk.advance(d);
        co_return;
    });
    rl.set_persistence(
        [&](std::string, rate_snapshot s) -> asio::awaitable<bool> {
            saved.push_back(std::move(s));
            co_return true;
        },
        10, 1s);
    boost::asio::io_context io;
    int spent = 0;
    bool covered = true;
    boost::asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            for (int i = 0; i < 35; ++i) {
                auto r = co_await rl.acquire(loc);
                if (!r.acquired)
                    continue;
                ++spent;
                // Killed right now: the last snapshot saved must count every token spent.
                long long out = 0;
                for (const auto& [t, n] : saved.back().out)
                    out += n;
                covered = covered && out >= spent;
                clk.advance(30ms);
            }
        },
        boost::asio::detached);
    io.run();
    EXPECT_EQ(spent, 35);
    EXPECT_TRUE(covered);
    EXPECT_EQ(saved.size(), 4u) << "one save per reservation of 10";

    // The next process restores the last snapshot: what the predecessor spent (and reserved) is
    // not available again until it comes back.
    manual_clock later(clk.now() + 100ms);
    rate_limiter next(opts(100, 10s), later);
    next.restore(loc, saved.back(), later.now());
    EXPECT_LE(next.state(loc, later.now()).tokens, 100 - 35);
    EXPECT_GE(next.state(loc, later.now()).tokens, 100 - 40);
    // A window after the last reservation expired, everything is back.
    later.advance(12s);
    EXPECT_EQ(next.state(loc, later.now()).tokens, 100);
}

TEST(GhlRateLimiter, SnapshotRoundTripsThroughJson) {
    manual_clock clk(noon());
    rate_limiter rl(opts(100, 10s), clk);
    for (int i = 0; i < 7; ++i)
        ASSERT_FALSE(rl.try_acquire(loc, clk.now()));
    rate_headers h;
    h.retry_after = 3s;
    rl.observe(loc, 503, h, clk.now());
    const auto s = rl.snapshot(loc, clk.now());
    const auto back = rate_snapshot_from_json(to_json(s));
    ASSERT_TRUE(back);
    EXPECT_EQ(back->burst, 100);
    EXPECT_EQ(back->window, 10s);
    ASSERT_EQ(back->out.size(), 1u);
    EXPECT_EQ(back->out[0].second, 7);
    EXPECT_EQ(back->blocked_until, noon() + 3s);
    EXPECT_EQ(back->daily_remaining, 200000 - 7);
    EXPECT_FALSE(rate_snapshot_from_json(boost::json::object{{"burst", "x"}}));
}

TEST(GhlRateLimiter, ConservativeStartUntilGhlSaysWhatRemains) {
    manual_clock clk(noon());
    rate_limiter rl(opts(100, 10s), clk);
    rl.start_conservatively(loc, clk.now());
    EXPECT_TRUE(rl.state(loc, clk.now()).conservative);
    EXPECT_EQ(drain(rl, clk.now()), 1) << "one request, to learn what remains";
    rate_headers h;
    h.remaining = 40; // the predecessor spent 59 in this window
    rl.observe(loc, 200, h, clk.now());
    EXPECT_FALSE(rl.state(loc, clk.now()).conservative);
    EXPECT_EQ(rl.state(loc, clk.now()).tokens, 40);
}
