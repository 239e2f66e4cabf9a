// OAuth token provider: single-flight refresh under concurrency, the rotated pair saved before
// the new access token is used, a crash between the refresh response and the store commit
// (documented outcome: needs_reauth after restart, surfaced, no retry loop), invalid_grant and
// "Location is not active" -> needs_reauth, transient failures, a failing store, and the
// static (private integration) token provider. GHL's /oauth/token is an in-test fake with
// single-use rotating refresh tokens, like the real one (ghl-api.md §8).

#include "ghl/auth.hpp"

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <gtest/gtest.h>
#include <map>
#include <set>

using namespace speak4;
using namespace speak4::ghl;
using namespace std::chrono_literals;
namespace net = boost::asio;

namespace {

constexpr auto tuple_awaitable = net::as_tuple(net::use_awaitable);
const std::string loc = "loc1";

using journal = std::vector<std::string>;

/// A gate coroutines wait at until the test opens it.
struct gate {
    explicit gate(const net::any_io_executor& ex)
        : timer(std::make_shared<net::steady_timer>(ex, net::steady_timer::time_point::max())) {}
    std::shared_ptr<net::steady_timer> timer;
    bool open = false;
    net::awaitable<void> pass() {
        auto t = timer; // the waiting frame keeps the timer alive
        while (!open) {
            auto [ec] = co_await t->async_wait(tuple_awaitable);
            if (ec != net::error::operation_aborted)
                break;
        }
    }
    void release() {
        open = true;
        timer->cancel();
    }
};

struct fake_store final : oauth_token_store {
    explicit fake_store(journal& j)
        : log(j) {}
    journal& log;
    std::map<std::string, token_set> rows;
    std::map<std::string, std::string> reauth;
    std::shared_ptr<gate> save_gate; // saves wait here when set
    bool fail_saves = false;
    int saves = 0, loads = 0;

    net::awaitable<store_result<std::optional<token_set>>> load(std::string location) override {
        ++loads;
        auto it = rows.find(location);
        if (it == rows.end())
            co_return std::optional<token_set>();
        co_return std::optional<token_set>(it->second);
    }
    net::awaitable<store_result<void>> save(token_set t) override {
        if (auto g = save_gate)
            co_await g->pass();
        ++saves;
        if (fail_saves) {
            log.push_back("save failed " + t.refresh_token.reveal());
            co_return std::string("disk I/O error");
        }
        log.push_back("save " + t.refresh_token.reveal());
        reauth.erase(t.location_id);
        rows[t.location_id] = std::move(t);
        co_return store_result<void>();
    }
    net::awaitable<store_result<void>> mark_needs_reauth(std::string location,
                                                         std::string reason) override {
        log.push_back("needs_reauth");
        reauth[location] = std::move(reason);
        co_return store_result<void>();
    }
};

/// GHL's /oauth/token: refresh tokens are single-use, each refresh rotates the pair.
struct fake_ghl final : token_endpoint {
    explicit fake_ghl(journal& j)
        : log(j) {}
    journal& log;
    std::set<std::string> valid_refresh;
    std::set<std::string> valid_codes;
    std::shared_ptr<gate> answer_gate; // requests wait here (after consuming) when set
    std::optional<std::pair<int, std::string>> fail; // status, body
    bool location_inactive = false;
    int next = 1;
    int refresh_calls = 0, code_calls = 0;
    long long expires_in = 86399;

    error refuse(int status, const std::string& message) const {
        return classify_status("POST /oauth/token", status,
                               R"({"statusCode":)" + std::to_string(status) + R"(,"message":")" +
                                   message + R"("})");
    }

    net::awaitable<result<token_response>> request_token(token_request req) override {
        if (req.client_id != "cid" || req.client_secret.reveal() != "csecret")
            co_return refuse(401, "Invalid client credentials");
        if (fail)
            co_return classify_status("POST /oauth/token", fail->first, fail->second);
        if (req.grant_type == "refresh_token") {
            ++refresh_calls;
            log.push_back("refresh " + req.refresh_token.reveal());
            if (location_inactive)
                co_return refuse(400, "Location is not active");
            if (!valid_refresh.erase(req.refresh_token.reveal()))
                co_return refuse(400, "Invalid grant: refresh token is invalid");
        } else if (req.grant_type == "authorization_code") {
            ++code_calls;
            if (!valid_codes.erase(req.code.reveal()))
                co_return refuse(400, "Invalid grant: authorization code is invalid");
        } else {
            co_return refuse(422, "Invalid parameter: grantType");
        }
        ++next;
        const std::string at = "at-" + std::to_string(next);
        const std::string rt = "rt-" + std::to_string(next);
        valid_refresh.insert(rt);
        log.push_back("issued " + at);
        // The old token is consumed at GHL before the answer travels back.
        if (auto g = answer_gate)
            co_await g->pass();
        token_response r;
        r.access_token = secret(at);
        r.refresh_token = secret(rt);
        r.expires_in = expires_in;
        r.scope = "contacts.readonly contacts.write";
        r.user_type = "Location";
        r.location_id = req.grant_type == "authorization_code" && req.code.reveal() == "other-loc"
                            ? "loc2"
                            : loc;
        r.user_id = "user1";
        co_return r;
    }
};

oauth_options options() {
    oauth_options o;
    o.location_id = loc;
    o.client_id = "cid";
    o.client_secret = secret("csecret");
    return o;
}

token_set stored(const std::string& at, const std::string& rt, sys_time expires_at) {
    token_set t;
    t.location_id = loc;
    t.access_token = secret(at);
    t.refresh_token = secret(rt);
    t.expires_at = expires_at;
    return t;
}

/// Runs one awaitable to completion on `io`.
template <class T>
T run(net::io_context& io, net::awaitable<T> a) {
    std::optional<T> out;
    net::co_spawn(io, std::move(a), [&](const std::exception_ptr& e, T v) {
        if (e)
            std::rethrow_exception(e);
        out.emplace(std::move(v));
    });
    io.restart();
    io.run();
    EXPECT_TRUE(out.has_value());
    return std::move(*out);
}

void drain(net::io_context& io) {
    io.restart();
    while (io.poll() > 0) {
    }
}

struct fixture : ::testing::Test {
    net::io_context io; // first: destroyed last, after the fakes' timers
    manual_clock clk{*parse_iso8601("2026-03-10T12:00:00Z")};
    journal log;
    std::shared_ptr<fake_store> store = std::make_shared<fake_store>(log);
    std::shared_ptr<fake_ghl> ghl = std::make_shared<fake_ghl>(log);

    std::shared_ptr<oauth_token_provider> provider() {
        return oauth_token_provider::create(io.get_executor(), options(), store, ghl, clk);
    }
    void seed(sys_time expires_at) {
        store->rows[loc] = stored("at-1", "rt-1", expires_at);
        ghl->valid_refresh = {"rt-1"};
    }
};

using GhlAuth = fixture;

} // namespace

TEST_F(GhlAuth, FreshTokenIsUsedWithoutRefresh) {
    seed(clk.now() + 1h);
    auto p = provider();
    auto t = run(io, p->access_token());
    ASSERT_TRUE(t);
    EXPECT_EQ(t->reveal(), "at-1");
    EXPECT_EQ(ghl->refresh_calls, 0);
    EXPECT_EQ(p->status().mode, auth_mode::oauth);
    EXPECT_FALSE(p->status().needs_reauth);
    EXPECT_EQ(p->status().expires_at, clk.now() + 1h);
}

TEST_F(GhlAuth, RefreshesAheadOfExpiry) {
    seed(clk.now() + 4min); // inside the 5 min margin
    auto p = provider();
    auto t = run(io, p->access_token());
    ASSERT_TRUE(t);
    EXPECT_EQ(t->reveal(), "at-2");
    EXPECT_EQ(ghl->refresh_calls, 1);
    EXPECT_EQ(store->rows[loc].refresh_token.reveal(), "rt-2");
    EXPECT_EQ(store->rows[loc].expires_at, clk.now() + 86399s);
    // Fresh now: no second refresh.
    EXPECT_EQ(run(io, p->access_token())->reveal(), "at-2");
    EXPECT_EQ(ghl->refresh_calls, 1);
}

// A token that lives less than the 300 s margin is not refreshed before every call: the
// margin is a quarter of its lifetime (5 s of 20 s), so one refresh per ~15 s.
TEST_F(GhlAuth, ShortLivedTokensAreRefreshedOncePerThreeQuartersOfTheirLifetime) {
    ghl->expires_in = 20;
    token_set t = stored("at-1", "rt-1", clk.now() + 20s);
    t.obtained_at = clk.now();
    store->rows[loc] = t;
    ghl->valid_refresh = {"rt-1"};
    auto p = provider();
    for (int i = 0; i < 60 * 4; ++i) { // a call every 250 ms for 60 s
        auto tok = run(io, p->access_token());
        ASSERT_TRUE(tok) << tok.error().what();
        clk.advance(250ms);
    }
    EXPECT_GE(ghl->refresh_calls, 3);
    EXPECT_LE(ghl->refresh_calls, 4);
    EXPECT_EQ(refresh_margin_for(store->rows[loc], 300s), 5s);
    token_set day = stored("a", "r", clk.now() + 86399s);
    day.obtained_at = clk.now();
    EXPECT_EQ(refresh_margin_for(day, 300s), 300s);
}

// SIGHUP (reload) while a refresh is suspended on GHL's answer: the flight finishes with the
// state it started with (no reset under it), saves the rotated pair, and the reload is applied
// once it has landed (the next call reloads from the store). Clean under ASan.
TEST_F(GhlAuth, ReloadDuringARefreshWaitsForTheFlightToLand) {
    seed(clk.now() - 1s);
    ghl->answer_gate = std::make_shared<gate>(io.get_executor());
    auto p = provider();
    std::optional<result<secret>> got;
    net::co_spawn(
        io, [&, p]() -> net::awaitable<void> { got = co_await p->access_token(); }, net::detached);
    drain(io);
    ASSERT_FALSE(got);
    EXPECT_EQ(ghl->refresh_calls, 1); // suspended: rt-1 consumed at GHL, rt-2 on its way
    p->reload();                      // SIGHUP now
    ghl->answer_gate->release();
    drain(io);
    ASSERT_TRUE(got);
    ASSERT_TRUE(*got) << got->error().what();
    EXPECT_EQ((*got)->reveal(), "at-2");
    EXPECT_EQ(store->rows[loc].refresh_token.reveal(), "rt-2");
    // The reload was applied after the flight: the store is read again, no second refresh.
    const int loads = store->loads;
    auto again = run(io, p->access_token());
    ASSERT_TRUE(again);
    EXPECT_EQ(again->reveal(), "at-2");
    EXPECT_EQ(store->loads, loads + 1);
    EXPECT_EQ(ghl->refresh_calls, 1);
}

TEST_F(GhlAuth, ConcurrentCallersShareOneRefresh) {
    seed(clk.now() - 1s); // expired
    ghl->answer_gate = std::make_shared<gate>(io.get_executor());
    auto p = provider();
    constexpr int n = 25;
    std::vector<std::string> got;
    for (int i = 0; i < n; ++i)
        net::co_spawn(
            io,
            [&, p]() -> net::awaitable<void> {
                auto t = co_await p->access_token();
                got.push_back(t ? t->reveal() : t.error().what());
            },
            net::detached);
    drain(io);
    EXPECT_EQ(ghl->refresh_calls, 1); // everyone is waiting on the same refresh
    EXPECT_TRUE(got.empty());
    ghl->answer_gate->release();
    io.restart();
    io.run();
    ASSERT_EQ(got.size(), static_cast<std::size_t>(n));
    for (const auto& g : got)
        EXPECT_EQ(g, "at-2");
    EXPECT_EQ(ghl->refresh_calls, 1);
    EXPECT_EQ(store->saves, 1);
}

TEST_F(GhlAuth, ConcurrentUnauthorizedCallersShareOneRefresh) {
    seed(clk.now() + 1h); // looks fresh, but GHL revoked it: every caller gets a 401
    ghl->answer_gate = std::make_shared<gate>(io.get_executor());
    auto p = provider();
    ASSERT_EQ(run(io, p->access_token())->reveal(), "at-1");
    std::vector<std::string> got;
    for (int i = 0; i < 10; ++i)
        net::co_spawn(
            io,
            [&, p]() -> net::awaitable<void> {
                auto t = co_await p->refresh_after_unauthorized(secret("at-1"));
                got.push_back(t ? t->reveal() : t.error().what());
            },
            net::detached);
    drain(io);
    ghl->answer_gate->release();
    io.restart();
    io.run();
    ASSERT_EQ(got.size(), 10u);
    for (const auto& g : got)
        EXPECT_EQ(g, "at-2");
    EXPECT_EQ(ghl->refresh_calls, 1);
    // A late 401 for the old token is answered with the new one, without refreshing.
    EXPECT_EQ(run(io, p->refresh_after_unauthorized(secret("at-1")))->reveal(), "at-2");
    EXPECT_EQ(ghl->refresh_calls, 1);
}

TEST_F(GhlAuth, RotatedPairIsSavedBeforeTheNewTokenIsUsed) {
    seed(clk.now() - 1s);
    store->save_gate = std::make_shared<gate>(io.get_executor());
    auto p = provider();
    std::optional<std::string> got;
    net::co_spawn(
        io,
        [&, p]() -> net::awaitable<void> {
            auto t = co_await p->access_token();
            log.push_back("use " + (t ? t->reveal() : std::string("error")));
            got = t ? t->reveal() : "error";
        },
        net::detached);
    drain(io);
    // GHL rotated the pair, the save has not committed: nobody has the new token yet.
    EXPECT_EQ(ghl->refresh_calls, 1);
    EXPECT_FALSE(got);
    EXPECT_EQ(store->rows[loc].refresh_token.reveal(), "rt-1");
    // Meanwhile other callers wait too (the access token expired) instead of refreshing again.
    std::optional<std::string> second;
    net::co_spawn(
        io,
        [&, p]() -> net::awaitable<void> {
            auto t = co_await p->access_token();
            second = t ? t->reveal() : "error";
        },
        net::detached);
    drain(io);
    EXPECT_FALSE(second);
    EXPECT_EQ(ghl->refresh_calls, 1);

    store->save_gate->release();
    io.restart();
    io.run();
    EXPECT_EQ(got, "at-2");
    EXPECT_EQ(second, "at-2");
    EXPECT_EQ(log, (journal{"refresh rt-1", "issued at-2", "save rt-2", "use at-2"}));
}

TEST_F(GhlAuth, CrashBetweenRefreshResponseAndCommitEndsInNeedsReauth) {
    // Documented outcome (auth.hpp): GHL consumed rt-1 and issued rt-2, but the process died
    // before rt-2 was committed. After the restart only rt-1 is on disk; GHL refuses it
    // (invalid_grant) and the provider parks in needs_reauth, visible in status, without
    // retrying. The operator re-authorizes with a new code; nothing is lost silently.
    seed(clk.now() - 1s);
    {
        net::io_context doomed;
        store->save_gate = std::make_shared<gate>(doomed.get_executor());
        auto p = oauth_token_provider::create(doomed.get_executor(), options(), store, ghl, clk);
        bool returned = false;
        net::co_spawn(
            doomed,
            [&, p]() -> net::awaitable<void> {
                (void)co_await p->access_token();
                returned = true;
            },
            net::detached);
        while (doomed.poll() > 0) {
        }
        EXPECT_EQ(ghl->refresh_calls, 1);
        EXPECT_EQ(ghl->valid_refresh, (std::set<std::string>{"rt-2"})); // rt-1 consumed at GHL
        EXPECT_EQ(store->rows[loc].refresh_token.reveal(), "rt-1");     // not committed
        EXPECT_FALSE(returned);                                         // at-2 never used
        store->save_gate.reset();
        // "kill -9": the io_context goes away with the save still pending.
    }
    EXPECT_EQ(store->saves, 0);

    // Restart.
    auto p = provider();
    auto t = run(io, p->access_token());
    ASSERT_FALSE(t);
    EXPECT_EQ(t.error().kind, error_kind::needs_reauth);
    EXPECT_NE(t.error().message.find("Invalid grant"), std::string::npos) << t.error().what();
    EXPECT_TRUE(p->status().needs_reauth);
    EXPECT_NE(p->status().reason.find("Invalid grant"), std::string::npos);
    ASSERT_TRUE(store->reauth.count(loc));
    EXPECT_EQ(ghl->refresh_calls, 2);
    // No retry loop: later calls fail at once without asking GHL again.
    for (int i = 0; i < 3; ++i) {
        auto again = run(io, p->access_token());
        ASSERT_FALSE(again);
        EXPECT_EQ(again.error().kind, error_kind::needs_reauth);
    }
    EXPECT_EQ(run(io, p->refresh_after_unauthorized(secret("at-1"))).error().kind,
              error_kind::needs_reauth);
    EXPECT_EQ(ghl->refresh_calls, 2);

    // The operator runs `speak4-sync auth exchange`.
    ghl->valid_codes = {"code-1"};
    auto info = run(io, p->exchange_code(secret("code-1")));
    ASSERT_TRUE(info) << info.error().what();
    EXPECT_EQ(info->location_id, loc);
    EXPECT_FALSE(p->status().needs_reauth);
    EXPECT_FALSE(store->reauth.count(loc));
    auto after = run(io, p->access_token());
    ASSERT_TRUE(after);
    EXPECT_EQ(after->reveal(), "at-3");
    EXPECT_EQ(store->rows[loc].refresh_token.reveal(), "rt-3");
}

TEST_F(GhlAuth, InvalidGrantMeansNeedsReauth) {
    store->rows[loc] = stored("at-1", "rt-revoked", clk.now() - 1s);
    auto p = provider();
    auto t = run(io, p->access_token());
    ASSERT_FALSE(t);
    EXPECT_EQ(t.error().kind, error_kind::needs_reauth);
    EXPECT_FALSE(t.error().transient());
    EXPECT_TRUE(p->status().needs_reauth);
    EXPECT_EQ(log.back(), "needs_reauth");
    // reload() (after another process stored new tokens) leaves the state.
    store->rows[loc] = stored("at-9", "rt-9", clk.now() + 1h);
    p->reload();
    EXPECT_FALSE(p->status().needs_reauth);
    EXPECT_EQ(run(io, p->access_token())->reveal(), "at-9");
}

TEST_F(GhlAuth, InactiveLocationMeansNeedsReauth) {
    seed(clk.now() - 1s);
    ghl->location_inactive = true;
    auto p = provider();
    auto t = run(io, p->access_token());
    ASSERT_FALSE(t);
    EXPECT_EQ(t.error().kind, error_kind::needs_reauth);
    EXPECT_NE(store->reauth[loc].find("Location is not active"), std::string::npos);
    EXPECT_EQ(ghl->refresh_calls, 1);
    (void)run(io, p->access_token());
    EXPECT_EQ(ghl->refresh_calls, 1);
}

TEST_F(GhlAuth, NoStoredTokensMeansNeedsReauth) {
    auto p = provider();
    auto t = run(io, p->access_token());
    ASSERT_FALSE(t);
    EXPECT_EQ(t.error().kind, error_kind::needs_reauth);
    EXPECT_NE(t.error().message.find("auth exchange"), std::string::npos);
    EXPECT_EQ(ghl->refresh_calls, 0);
}

TEST_F(GhlAuth, TransientRefreshFailureKeepsAValidTokenInUse) {
    seed(clk.now() + 2min); // due for refresh, still valid
    ghl->fail = {503, R"({"message":"maintenance"})"};
    auto p = provider();
    auto t = run(io, p->access_token());
    ASSERT_TRUE(t);
    EXPECT_EQ(t->reveal(), "at-1");
    EXPECT_FALSE(p->status().needs_reauth);

    // Once expired, the failure surfaces (transient, not needs_reauth).
    clk.advance(3min);
    t = run(io, p->access_token());
    ASSERT_FALSE(t);
    EXPECT_EQ(t.error().kind, error_kind::auth);
    EXPECT_TRUE(t.error().transient());
    EXPECT_FALSE(p->status().needs_reauth);

    // GHL recovers: the still-valid rt-1 works.
    ghl->fail.reset();
    t = run(io, p->access_token());
    ASSERT_TRUE(t);
    EXPECT_EQ(t->reveal(), "at-2");
}

TEST_F(GhlAuth, FailedSaveIsRetriedWithoutASecondRefresh) {
    seed(clk.now() - 1s);
    store->fail_saves = true;
    auto p = provider();
    auto t = run(io, p->access_token());
    ASSERT_FALSE(t);
    EXPECT_NE(t.error().message.find("cannot save"), std::string::npos);
    EXPECT_TRUE(t.error().transient());
    EXPECT_EQ(ghl->refresh_calls, 1);

    store->fail_saves = false;
    t = run(io, p->access_token());
    ASSERT_TRUE(t);
    EXPECT_EQ(t->reveal(), "at-2"); // the pair from the first refresh, saved now
    EXPECT_EQ(ghl->refresh_calls, 1);
    EXPECT_EQ(store->rows[loc].refresh_token.reveal(), "rt-2");
}

TEST_F(GhlAuth, ExchangeCodeForAnotherLocationIsRefused) {
    ghl->valid_codes = {"other-loc"};
    auto p = provider();
    auto info = run(io, p->exchange_code(secret("other-loc")));
    ASSERT_FALSE(info);
    EXPECT_NE(info.error().message.find("loc2"), std::string::npos);
    EXPECT_TRUE(store->rows.count("loc2")); // the spent code's tokens are kept
    EXPECT_FALSE(store->rows.count(loc));

    auto bad = run(io, p->exchange_code(secret("nope")));
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().status, 400);
}

TEST_F(GhlAuth, ErrorsNeverContainTokens) {
    seed(clk.now() - 1s);
    ghl->valid_refresh.clear();
    auto p = provider();
    auto t = run(io, p->access_token());
    ASSERT_FALSE(t);
    const auto text = t.error().what() + p->status().reason + store->reauth[loc];
    EXPECT_EQ(text.find("rt-1"), std::string::npos);
    EXPECT_EQ(text.find("at-1"), std::string::npos);
    EXPECT_EQ(text.find("csecret"), std::string::npos);
}

TEST(GhlStaticToken, ReplaceableAtRuntime) {
    net::io_context io;
    auto p = std::make_shared<static_token_provider>(secret("pit-1"));
    EXPECT_EQ(run(io, p->access_token())->reveal(), "pit-1");
    // A 401 for the current token cannot be fixed by refreshing.
    auto r = run(io, p->refresh_after_unauthorized(secret("pit-1")));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind, error_kind::auth);
    EXPECT_EQ(r.error().what().find("pit-1"), std::string::npos);
    // SIGHUP reloaded the token file: the retry uses the new one.
    p->set_token(secret("pit-2"));
    EXPECT_EQ(run(io, p->refresh_after_unauthorized(secret("pit-1")))->reveal(), "pit-2");
    EXPECT_EQ(p->status().mode, auth_mode::private_token);
    EXPECT_FALSE(p->status().needs_reauth);

    auto empty = std::make_shared<static_token_provider>(secret());
    EXPECT_FALSE(run(io, empty->access_token()));
    EXPECT_TRUE(empty->status().needs_reauth);
}
