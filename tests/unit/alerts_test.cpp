// Webhook alerts: the conditions, the start/end tracking, the message, the URL checks, and the
// delivery coroutine against a loopback receiver (retried after a 500, dropped after a 404,
// one message per start and per end).
#include "app/alerts.hpp"
#include "core/error.hpp"
#include "support/test_support.hpp"
#include "support/webhook_receiver.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json/parse.hpp>
#include <gtest/gtest.h>

namespace speak4::app {
namespace {

using namespace std::chrono_literals;
namespace bj = boost::json;

sys_time at(int seconds) {
    return sys_time(std::chrono::milliseconds(1'700'000'000'000LL + seconds * 1000LL));
}

TEST(AlertConditions, NothingWrongFiresNothing) {
    alert_inputs in;
    in.poll_interval_seconds = 60;
    in.last_pull_age_seconds = 30;
    in.oldest_pending_age_seconds = 2;
    EXPECT_TRUE(firing_conditions(in, alerts_config{}, at(0)).empty());
}

TEST(AlertConditions, EachConditionHasItsKeyAndSaysWhatIsWrong) {
    alerts_config cfg;
    cfg.stale_pull_polls = 3;
    cfg.oldest_pending_minutes = 15;
    alert_inputs in;
    in.dead_letters = 2;
    in.poll_interval_seconds = 60;
    in.last_pull_age_seconds = 181;
    in.oldest_pending_age_seconds = 15 * 60 + 1;
    in.last_429_at = at(0) - 9min;
    health::part auth;
    auth.state = "needs_reauth";
    auth.healthy = false;
    auth.reason = "refresh token revoked";
    in.health.parts["auth"] = auth;
    health::part breaker;
    breaker.state = "open";
    breaker.healthy = false;
    in.health.parts["breaker"] = breaker;
    health::part db;
    db.state = "busy";
    db.healthy = false;
    in.health.parts["database"] = db;
    health::loop_view stalled;
    stalled.name = "dispatcher";
    stalled.state = health::loop_state::backing_off;
    stalled.healthy = false;
    stalled.stalled = true;
    stalled.error = "database is locked";
    in.health.loops.push_back(stalled);
    health::loop_view fine;
    fine.name = "reconciler";
    in.health.loops.push_back(fine);

    const auto f = firing_conditions(in, cfg, at(0));
    ASSERT_EQ(f.size(), 8u);
    EXPECT_EQ(f.at("dead_letters"),
              "2 dead letters in the outbox (`speak4-sync queue list --state dead`)");
    EXPECT_NE(f.at("needs_reauth").find("refresh token revoked"), std::string::npos);
    EXPECT_NE(f.at("breaker_open").find("circuit breaker open"), std::string::npos);
    EXPECT_EQ(f.at("part:database"), "database is busy");
    EXPECT_EQ(f.at("loop:dispatcher"), "the dispatcher loop is stalled: database is locked");
    EXPECT_FALSE(f.contains("loop:reconciler"));
    EXPECT_NE(f.at("pull_stale").find("181 s"), std::string::npos);
    EXPECT_NE(f.at("oldest_pending").find("901 s"), std::string::npos);
    EXPECT_TRUE(f.contains("rate_limited"));
}

TEST(AlertConditions, ThresholdsAreStrict) {
    alerts_config cfg;
    alert_inputs in;
    in.poll_interval_seconds = 60;
    in.last_pull_age_seconds = 180; // exactly 3 polls: not yet
    in.oldest_pending_age_seconds = 15 * 60;
    in.last_429_at = at(0) - 10min; // the window is over
    EXPECT_TRUE(firing_conditions(in, cfg, at(0)).empty());
    in.poll_interval_seconds = 0; // pulls off: never stale
    in.last_pull_age_seconds = 1e6;
    EXPECT_TRUE(firing_conditions(in, cfg, at(0)).empty());
}

TEST(AlertTracker, StartsOnceEndsOnce) {
    alert_tracker t;
    auto tr = t.update({{"dead_letters", "1 dead letter"}}, at(0));
    ASSERT_EQ(tr.size(), 1u);
    EXPECT_TRUE(tr[0].started);
    EXPECT_EQ(tr[0].key, "dead_letters");
    EXPECT_TRUE(t.update({{"dead_letters", "3 dead letters"}}, at(30)).empty())
        << "still firing, whatever the count: no second message";
    tr = t.update({}, at(200));
    ASSERT_EQ(tr.size(), 1u);
    EXPECT_FALSE(tr[0].started);
    EXPECT_EQ(tr[0].summary, "3 dead letters");
    EXPECT_EQ(tr[0].since, at(0));
    EXPECT_EQ(tr[0].at, at(200));
    EXPECT_TRUE(t.update({}, at(230)).empty());
    EXPECT_EQ(t.firing(), 0u);
}

TEST(AlertTracker, IndependentConditions) {
    alert_tracker t;
    EXPECT_EQ(t.update({{"a", "x"}, {"b", "y"}}, at(0)).size(), 2u);
    const auto tr = t.update({{"b", "y"}, {"c", "z"}}, at(10));
    ASSERT_EQ(tr.size(), 2u);
    EXPECT_EQ(tr[0].key, "a");
    EXPECT_FALSE(tr[0].started);
    EXPECT_EQ(tr[1].key, "c");
    EXPECT_TRUE(tr[1].started);
    EXPECT_EQ(t.firing(), 2u);
}

TEST(AlertMessage, SlackCompatibleText) {
    alert_transition start{"dead_letters", true, "2 dead letters", at(0), at(0)};
    const auto j = bj::parse(alert_message(start, "loc-1")).as_object();
    ASSERT_EQ(j.size(), 1u) << "only \"text\": accepted by Slack, Mattermost and Rocket.Chat";
    const std::string text(j.at("text").as_string());
    EXPECT_EQ(text.rfind("FIRING speak4-sync [loc-1] dead_letters: 2 dead letters (since ", 0), 0u)
        << text;
    alert_transition end{"dead_letters", false, "2 dead letters", at(0), at(200)};
    const std::string t2(bj::parse(alert_message(end, "loc-1")).as_object().at("text").as_string());
    EXPECT_EQ(t2, "RESOLVED speak4-sync [loc-1] dead_letters: cleared after 3 m 20 s (was: 2 "
                  "dead letters)");
}

TEST(AlertWebhookUrl, SplitsAndRefusesWithoutShowingTheUrl) {
    const auto t = parse_webhook_url("https://hooks.slack.com/services/T0/B0/XyZ");
    EXPECT_EQ(t.origin, "https://hooks.slack.com");
    EXPECT_EQ(t.target, "/services/T0/B0/XyZ");
    EXPECT_EQ(parse_webhook_url("http://127.0.0.1:9/x?y=1").target, "/x?y=1");
    EXPECT_EQ(parse_webhook_url("https://example.com").target, "/");
    for (const std::string bad :
         {"http://hooks.example.com/secret-path-123", "ftp://example.com/secret-path-123",
          "https:///secret-path-123", "https://u:p@example.com/secret-path-123",
          "https://exa mple.com/secret-path-123"}) {
        try {
            parse_webhook_url(bad);
            ADD_FAILURE() << "accepted " << bad;
        } catch (const config_error& e) {
            EXPECT_EQ(e.key(), "alerts.webhook_url_file");
            const std::string what = e.what();
            EXPECT_EQ(what.rfind("alerts.webhook_url_file: ", 0), 0u) << what;
            EXPECT_EQ(what.find("secret-path-123"), std::string::npos) << what;
        }
    }
}

/// Runs the alerter until `done` or `timeout`.
void run_until(boost::asio::io_context& io, const std::function<bool()>& done,
               std::chrono::milliseconds timeout) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (!done() && std::chrono::steady_clock::now() < end)
        io.run_for(20ms);
}

TEST(WebhookAlerter, OneMessagePerStartAndEndRetriedAfterAFailure) {
    testing::webhook_receiver rx({500}); // the first delivery fails: retried
    boost::asio::io_context io;
    long long dead = 2;
    alerts_config cfg;
    cfg.check_interval_seconds = 1;
    auto a =
        webhook_alerter::create(io.get_executor(), secret(rx.url("/services/T0/B0/hook-secret")),
                                "loc-1", cfg, [&dead]() -> boost::asio::awaitable<alert_inputs> {
                                    alert_inputs in;
                                    in.dead_letters = dead;
                                    co_return in;
                                });
    bool ended = false;
    boost::asio::co_spawn(io, webhook_alerter::run(a), [&](std::exception_ptr) { ended = true; });

    run_until(
        io, [&] { return rx.received().size() >= 2; }, 10s);
    auto got = rx.received();
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[0].method, "POST");
    EXPECT_EQ(got[0].target, "/services/T0/B0/hook-secret");
    EXPECT_NE(got[0].head.find("application/json"), std::string::npos);
    EXPECT_EQ(got[0].body, got[1].body) << "the retry sends the same message";
    EXPECT_NE(got[1].body.find("FIRING"), std::string::npos);
    EXPECT_NE(got[1].body.find("2 dead letters"), std::string::npos);
    EXPECT_EQ(a->counters().sent, 1);
    EXPECT_EQ(a->counters().failed_attempts, 1);

    run_until(
        io, [] { return false; }, 1500ms);
    EXPECT_EQ(rx.received().size(), 2u) << "still firing: nothing more";
    dead = 0;
    run_until(
        io, [&] { return rx.received().size() >= 3; }, 5s);
    got = rx.received();
    ASSERT_EQ(got.size(), 3u);
    EXPECT_NE(got[2].body.find("RESOLVED"), std::string::npos);
    run_until(
        io, [] { return false; }, 1500ms);
    EXPECT_EQ(rx.received().size(), 3u);

    a->stop();
    run_until(
        io, [&] { return ended; }, 5s);
    EXPECT_TRUE(ended);
}

TEST(WebhookAlerter, ARefusedUrlIsDroppedNotRetried) {
    testing::webhook_receiver rx({404});
    boost::asio::io_context io;
    alerts_config cfg;
    cfg.check_interval_seconds = 1;
    auto a = webhook_alerter::create(io.get_executor(), secret(rx.url("/gone")), "loc-1", cfg,
                                     []() -> boost::asio::awaitable<alert_inputs> {
                                         alert_inputs in;
                                         in.dead_letters = 1;
                                         co_return in;
                                     });
    boost::asio::co_spawn(io, webhook_alerter::run(a), [](std::exception_ptr) {});
    run_until(
        io, [&] { return a->counters().dropped == 1; }, 5s);
    EXPECT_EQ(a->counters().dropped, 1);
    run_until(
        io, [] { return false; }, 2500ms);
    EXPECT_EQ(rx.received().size(), 1u) << "a 404 is not retried";
    EXPECT_EQ(a->counters().waiting, 0u);
    a->stop();
    run_until(
        io, [] { return false; }, 200ms);
}

TEST(WebhookAlerter, MessagesBeyondTheHourlyBudgetWait) {
    testing::webhook_receiver rx;
    boost::asio::io_context io;
    alerts_config cfg;
    cfg.check_interval_seconds = 1;
    cfg.max_per_hour = 1;
    int round = 0;
    auto a = webhook_alerter::create(io.get_executor(), secret(rx.url("/h")), "loc-1", cfg,
                                     [&round]() -> boost::asio::awaitable<alert_inputs> {
                                         alert_inputs in;
                                         in.dead_letters = ++round == 1 ? 1 : 0;
                                         co_return in;
                                     });
    boost::asio::co_spawn(io, webhook_alerter::run(a), [](std::exception_ptr) {});
    run_until(
        io, [&] { return a->counters().waiting == 1; }, 5s);
    EXPECT_EQ(rx.received().size(), 1u) << "the start went out";
    EXPECT_EQ(a->counters().waiting, 1u) << "the end waits for the hour's budget";
    a->stop();
    run_until(
        io, [] { return false; }, 200ms);
}

} // namespace
} // namespace speak4::app
