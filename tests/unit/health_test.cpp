#include "core/health.hpp"

#include <gtest/gtest.h>

namespace speak4::health {
namespace {

using namespace std::chrono_literals;

TEST(Health, NothingRegisteredIsHealthy) {
    manual_clock clk;
    monitor m(clk);
    const auto r = m.evaluate();
    EXPECT_TRUE(r.ok);
    EXPECT_EQ(to_json(r).at("status").as_string(), "ok");
}

TEST(Health, ALoopThatStopsBeatingIsStalledAfterItsThreshold) {
    manual_clock clk;
    monitor m(clk);
    m.loop_started("dispatcher", 10s);
    clk.advance(9s);
    EXPECT_TRUE(m.evaluate().ok) << "no iteration yet, but within the threshold";
    m.beat("dispatcher");
    clk.advance(10s);
    EXPECT_TRUE(m.evaluate().ok);
    m.loop_failed("dispatcher", "database is locked");
    clk.advance(1s);
    auto r = m.evaluate();
    ASSERT_FALSE(r.ok);
    EXPECT_EQ(r.reason, "dispatcher stalled for 11 s: database is locked");
    ASSERT_EQ(r.loops.size(), 1u);
    EXPECT_TRUE(r.loops[0].stalled);
    EXPECT_EQ(r.loops[0].state, loop_state::backing_off);
    const auto j = to_json(r);
    EXPECT_EQ(j.at("status").as_string(), "unhealthy");
    EXPECT_EQ(j.at("loops").at("dispatcher").at("state").as_string(), "backing_off");
    EXPECT_EQ(j.at("loops").at("dispatcher").at("error").as_string(), "database is locked");
    m.beat("dispatcher"); // recovered by itself
    r = m.evaluate();
    EXPECT_TRUE(r.ok);
    EXPECT_EQ(r.loops[0].state, loop_state::running);
    EXPECT_TRUE(r.loops[0].error.empty());
}

TEST(Health, ALoopThatEndsOnItsOwnIsDownAndStaysDown) {
    manual_clock clk;
    monitor m(clk);
    m.loop_started("reconciler", 0ms); // no stall threshold
    clk.advance(std::chrono::hours(5));
    EXPECT_TRUE(m.evaluate().ok) << "without a threshold a quiet loop is not stalled";
    m.loop_ended("reconciler", "boom", false);
    m.beat("reconciler"); // a late beat does not bring it back
    const auto r = m.evaluate();
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.reason, "reconciler is down: boom");
    EXPECT_EQ(to_json(r).at("loops").at("reconciler").at("state").as_string(), "down");
}

TEST(Health, ALoopStoppedOnRequestIsNotUnhealthy) {
    manual_clock clk;
    monitor m(clk);
    m.loop_started("pruner", 1s);
    m.loop_ended("pruner", "", true);
    clk.advance(1h);
    const auto r = m.evaluate();
    EXPECT_TRUE(r.ok);
    EXPECT_EQ(r.loops[0].state, loop_state::stopped);
}

TEST(Health, PartsAreRenderedByNameAndTheFirstUnhealthyOneIsTheReason) {
    manual_clock clk;
    monitor m(clk);
    part breaker;
    breaker.state = "open";
    breaker.healthy = false;
    breaker.reason = "12 of the last 20 requests failed";
    breaker.detail["next_probe_at"] = "2026-12-03T10:00:00.000Z";
    m.set_part("breaker", breaker);
    m.set_part("database", part{});
    const auto r = m.evaluate();
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.reason, "breaker open: 12 of the last 20 requests failed");
    const auto j = to_json(r);
    EXPECT_EQ(j.at("breaker").at("state").as_string(), "open");
    EXPECT_EQ(j.at("breaker").at("next_probe_at").as_string(), "2026-12-03T10:00:00.000Z");
    EXPECT_EQ(j.at("database").at("state").as_string(), "ok");
    EXPECT_TRUE(j.at("database").at("reason").is_null());
    m.clear_part("breaker");
    EXPECT_TRUE(m.evaluate().ok);
}

} // namespace
} // namespace speak4::health
