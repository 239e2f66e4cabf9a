// The circuit breaker's state machine on a manual clock: what opens it (and what does not: a
// 10% fault rate never does), refusals while open, one probe per interval backing off to the
// cap, closing on an answered probe, and old outcomes forgotten.

#include "ghl/breaker.hpp"

#include <gtest/gtest.h>

using namespace speak4;
using namespace speak4::ghl;
using namespace std::chrono_literals;

namespace {

sys_time noon() {
    return *parse_iso8601("2026-03-10T12:00:00.000Z");
}

breaker_options opts() {
    breaker_options o;
    o.window_requests = 20;
    o.min_requests = 10;
    o.failure_percent = 60;
    o.window_age = 60s;
    o.probe_interval = 2s;
    o.probe_max = 10s;
    return o;
}

} // namespace

TEST(GhlBreaker, TenPercentFailuresNeverOpenIt) {
    manual_clock clk(noon());
    breaker b(opts(), clk);
    for (int i = 0; i < 5000; ++i) {
        ASSERT_TRUE(b.allow());
        b.record(i % 10 == 3, "500");
        clk.advance(10ms);
    }
    EXPECT_EQ(b.state(), breaker_state::closed);
    EXPECT_EQ(b.snapshot().opened_total, 0);
}

TEST(GhlBreaker, OpensOnARecentFailureRateAndRefusesEverything) {
    manual_clock clk(noon());
    breaker b(opts(), clk);
    int changes = 0;
    b.subscribe([&](const breaker_snapshot&) { ++changes; });
    for (int i = 0; i < 5; ++i)
        b.record(false);
    // 7 failures of 12 (58%): not yet; the 8th (8 of 13 = 62%) opens it.
    for (int i = 0; i < 7; ++i)
        b.record(true, "503");
    EXPECT_EQ(b.state(), breaker_state::closed);
    b.record(true, "GET /contacts/:contactId: 503");
    EXPECT_EQ(b.state(), breaker_state::open);
    EXPECT_EQ(changes, 1);
    const auto s = b.snapshot();
    EXPECT_EQ(s.opened_at, noon());
    EXPECT_EQ(s.next_probe_at, noon() + 2s);
    EXPECT_EQ(s.last_failure, "GET /contacts/:contactId: 503");
    EXPECT_FALSE(b.allow());
    EXPECT_FALSE(b.allow());
    EXPECT_EQ(b.snapshot().refused_total, 2);
    EXPECT_EQ(b.snapshot().sent_while_open, 0);
    // Requests in flight when it opened do not change it.
    b.record(false);
    EXPECT_EQ(b.state(), breaker_state::open);
}

TEST(GhlBreaker, FewRequestsNeverOpenIt) {
    manual_clock clk(noon());
    breaker b(opts(), clk);
    for (int i = 0; i < 9; ++i)
        b.record(true);
    EXPECT_EQ(b.state(), breaker_state::closed) << "9 outcomes are below min_requests";
}

TEST(GhlBreaker, OldFailuresAreForgotten) {
    manual_clock clk(noon());
    breaker b(opts(), clk);
    for (int i = 0; i < 9; ++i)
        b.record(true);
    clk.advance(61s);
    b.record(true);
    EXPECT_EQ(b.state(), breaker_state::closed);
    EXPECT_EQ(b.snapshot().recent_requests, 1);
}

TEST(GhlBreaker, OneProbePerIntervalBackingOffToTheCapThenCloses) {
    manual_clock clk(noon());
    breaker b(opts(), clk);
    for (int i = 0; i < 10; ++i)
        b.record(true);
    ASSERT_EQ(b.state(), breaker_state::open);
    EXPECT_FALSE(b.begin_probe()) << "not due yet";
    std::vector<std::chrono::milliseconds> gaps;
    sys_time last = noon();
    for (int i = 0; i < 5; ++i) {
        const auto due = *b.next_probe_at();
        gaps.push_back(std::chrono::duration_cast<std::chrono::milliseconds>(due - last));
        clk.set(due);
        ASSERT_TRUE(b.begin_probe());
        EXPECT_EQ(b.state(), breaker_state::half_open);
        EXPECT_FALSE(b.begin_probe()) << "one probe at a time";
        EXPECT_FALSE(b.allow()) << "everything else still waits";
        b.end_probe(false, "connect: refused");
        last = clk.now();
    }
    EXPECT_EQ(gaps, (std::vector<std::chrono::milliseconds>{2s, 4s, 8s, 10s, 10s}));
    EXPECT_EQ(b.snapshot().sent_while_open, 5);
    EXPECT_EQ(b.snapshot().probes_failed, 5);
    clk.set(*b.next_probe_at());
    ASSERT_TRUE(b.begin_probe());
    b.end_probe(true);
    EXPECT_EQ(b.state(), breaker_state::closed);
    EXPECT_TRUE(b.allow());
    EXPECT_EQ(b.snapshot().recent_requests, 0) << "the outage's history is forgotten";
    // A new outage starts from the first interval again.
    for (int i = 0; i < 10; ++i)
        b.record(true);
    EXPECT_EQ(*b.next_probe_at(), clk.now() + 2s);
    EXPECT_EQ(b.snapshot().opened_total, 2);
}

TEST(GhlBreaker, SnapshotJson) {
    manual_clock clk(noon());
    breaker b(opts(), clk);
    for (int i = 0; i < 10; ++i)
        b.record(true, "x");
    const auto j = to_json(b.snapshot());
    EXPECT_EQ(j.at("state").as_string(), "open");
    EXPECT_EQ(j.at("next_probe_at").as_string(), "2026-03-10T12:00:02.000Z");
    EXPECT_EQ(j.at("failure_rate").as_double(), 1.0);
    EXPECT_EQ(j.at("opened_total").as_int64(), 1);
}
