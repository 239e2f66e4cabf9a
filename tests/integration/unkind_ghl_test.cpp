// ghl-sim as unkind as the real API, and the GHL client's circuit breaker against it, over
// loopback: the search index lags (and indexes out of order), outages (503, reset, hang) refuse
// everything before the limits, the simulator counts its own 429s apart from injected ones, and
// a breaker in front of a client stops sending into an outage, probes, and resumes.
#include "core/clock.hpp"
#include "ghl/breaker.hpp"
#include "ghl/client.hpp"
#include "ghl_sim.hpp"
#include "support/test_support.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <gtest/gtest.h>
#include <set>
#include <stdexcept>

using namespace speak4;
using namespace std::chrono_literals;
namespace asio = boost::asio;
namespace bj = boost::json;

namespace {

class unkind_ghl_test : public ::testing::Test {
protected:
    void SetUp() override {
        sim::options so;
        so.rate_limit = false;
        sim_ = std::make_unique<sim::server>(so);
        sim_->start();
        ghl::http_options ho;
        ho.base_url = sim_->base_url();
        ho.timeout = 500ms; // a hanging GHL costs this much per request
        http_ = std::make_shared<ghl::http_client>(ioc_.get_executor(), ho);
        tokens_ = std::make_shared<ghl::static_token_provider>(secret("sim-private-token"));
        ghl::rate_limit_options rl;
        rl.burst = 1000000;
        rl.window = 1000ms;
        limiter_ = std::make_shared<ghl::rate_limiter>(rl);
        opt_.location_id = sim_->location_id();
    }
    void TearDown() override {
        http_.reset();
        ioc_.run_for(100ms);
        sim_->stop();
    }

    template <class T>
    T run(asio::awaitable<T> a, std::chrono::seconds limit = 60s) {
        auto fut = asio::co_spawn(ioc_, std::move(a), asio::use_future);
        ioc_.restart();
        const auto deadline = std::chrono::steady_clock::now() + limit;
        while (fut.wait_for(0s) != std::future_status::ready) {
            if (std::chrono::steady_clock::now() > deadline)
                throw std::runtime_error("timed out");
            ioc_.run_one_for(20ms);
        }
        return fut.get();
    }

    ghl::client client() { return ghl::client(http_, opt_, tokens_, limiter_); }

    /// Ids a dateUpdated-sorted search lists from `floor_ms` on.
    std::vector<std::string> search_ids(long long floor_ms) {
        auto c = client();
        ghl::search_request req;
        req.page_limit = 100;
        req.filters.push_back(ghl::range_filter("dateUpdated", bj::value(floor_ms)));
        req.sort.push_back(ghl::sort_by("dateUpdated", true));
        auto page = run(c.search_contacts(req));
        if (!page)
            throw std::runtime_error(page.error().what());
        std::vector<std::string> ids;
        for (const auto& ct : page->contacts)
            ids.push_back(ct.id);
        return ids;
    }

    static long long now_ms() { return to_epoch_ms(system_clock::instance().now()); }

    asio::io_context ioc_;
    std::unique_ptr<sim::server> sim_;
    std::shared_ptr<ghl::http_client> http_;
    std::shared_ptr<ghl::static_token_provider> tokens_;
    std::shared_ptr<ghl::rate_limiter> limiter_;
    ghl::client_options opt_;
};

} // namespace

TEST_F(unkind_ghl_test, search_index_lags_and_indexes_out_of_order) {
    // Seeded in the past, so only the changes below are at or after the floors searched.
    const bj::string_view past = "2026-01-01T00:00:00.000Z";
    const auto a =
        sim_->seed_contact({{"firstName", "A"}, {"email", "a@example.com"}, {"dateUpdated", past}});
    const auto b =
        sim_->seed_contact({{"firstName", "B"}, {"email", "b@example.com"}, {"dateUpdated", past}});
    sim::fault_config f;
    f.search_lag_ms = 300;
    f.search_lag_jitter_ms = 900;
    sim_->set_faults(f);
    const long long t0 = now_ms();
    sim_->update_contact(a, {{"lastName", "changed"}});
    // Reads by id are current at once; the search shows the change only after the lag.
    EXPECT_EQ(search_ids(t0), std::vector<std::string>{}) << "indexed without lag";
    auto c = client();
    auto got = run(c.get_contact(a));
    ASSERT_TRUE(got);
    EXPECT_EQ(got->raw.at("lastName").as_string(), "changed");
    ASSERT_TRUE(speak4::testing::wait_until([&] { return search_ids(t0).size() == 1; }, 5000));

    // Many changes: some contact changed later is searchable before one changed earlier.
    std::vector<std::string> ids;
    for (int i = 0; i < 30; ++i)
        ids.push_back(sim_->seed_contact(
            // (append, not "o" + to_string: GCC 12 -O3 warns falsely (-Wrestrict) on that)
            {{"email", std::string("o").append(std::to_string(i)).append("@example.com")},
             {"dateUpdated", past}}));
    const long long t1 = now_ms();
    for (const auto& id : ids)
        sim_->update_contact(id, {{"city", "X"}});
    bool out_of_order = false;
    std::set<std::string> seen_before;
    ASSERT_TRUE(speak4::testing::wait_until(
        [&] {
            const auto now = search_ids(t1);
            std::set<std::string> visible(now.begin(), now.end());
            // Out of order: a contact is visible while one changed before it is not yet.
            for (std::size_t i = 0; i + 1 < ids.size(); ++i)
                if (!visible.count(ids[i]) && visible.count(ids[i + 1]))
                    out_of_order = true;
            return visible.size() == ids.size();
        },
        10000));
    EXPECT_TRUE(out_of_order) << "30 changes, 900 ms jitter: the index never reordered them";
    (void)b;

    // Lag off: everything is searchable at once.
    sim_->set_faults({});
    const long long t2 = now_ms();
    sim_->update_contact(b, {{"city", "Y"}});
    EXPECT_EQ(search_ids(t2), std::vector<std::string>{b});
}

TEST_F(unkind_ghl_test, outages_refuse_everything_before_the_limits_then_end) {
    const auto id = sim_->seed_contact({{"email", "x@example.com"}});
    sim_->set_rate_limits(true, 5, 60000, 200000);
    auto c = client();
    for (const char* mode : {"503", "reset", "hang"}) {
        sim::fault_config f;
        f.outage = mode;
        sim_->set_faults(f);
        const auto before = sim_->get_stats();
        for (int i = 0; i < 2; ++i) {
            auto r = run(c.get_contact(id));
            ASSERT_FALSE(r) << mode;
            if (std::string(mode) == "503")
                EXPECT_EQ(r.error().status, 503);
            else
                EXPECT_EQ(r.error().status, 0) << mode << ": " << r.error().what();
        }
        const auto after = sim_->get_stats();
        // A retry on a fresh connection after a reset one may add a request per call.
        EXPECT_GE(after.outage_requests - before.outage_requests, 2) << mode;
        EXPECT_GE(after.faults.at(std::string("outage_") + mode), 2);
        sim_->set_faults({});
    }
    // None of those counted against the limits: the whole burst of 5 is still there.
    for (int i = 0; i < 5; ++i)
        EXPECT_TRUE(run(c.get_contact(id))) << i;
    EXPECT_EQ(sim_->get_stats().rate_limited, 0);
    EXPECT_EQ(sim_->get_stats().by_status.at(200), 5);

    // An outage with a duration ends by itself. (A fresh limiter: this one learned the 5 per
    // 60 s from the headers and would wait out the window.)
    sim_->set_rate_limits(false, 100, 10000, 200000);
    limiter_ = std::make_shared<ghl::rate_limiter>(ghl::rate_limit_options{1000000, 1000ms});
    auto fresh = client();
    sim::fault_config f;
    f.outage = "503";
    f.outage_ms = 300;
    sim_->set_faults(f);
    EXPECT_FALSE(run(fresh.get_contact(id)));
    EXPECT_TRUE(
        speak4::testing::wait_until([&] { return bool(run(fresh.get_contact(id))); }, 10000));
}

TEST_F(unkind_ghl_test, injected_429s_are_not_counted_as_caused) {
    const auto id = sim_->seed_contact({{"email", "y@example.com"}});
    sim::fault_config f;
    f.error_rate = 1;
    f.error_statuses = {429};
    f.max_faults = 4;
    sim_->set_faults(f);
    limiter_ = std::make_shared<ghl::rate_limiter>(ghl::rate_limit_options{1000000, 1ms, 1000000});
    auto c = client();
    for (int i = 0; i < 4; ++i) {
        auto r = run(c.get_contact(id));
        ASSERT_FALSE(r);
        EXPECT_EQ(r.error().status, 429);
    }
    const auto s = sim_->get_stats();
    EXPECT_EQ(s.injected_429, 4);
    EXPECT_EQ(s.rate_limited, 0);
    EXPECT_EQ(s.by_status.at(429), 4);
}

TEST_F(unkind_ghl_test, breaker_stops_sending_into_an_outage_probes_and_resumes) {
    const auto id = sim_->seed_contact({{"email", "z@example.com"}});
    ghl::breaker_options bo;
    bo.probe_interval = 200ms;
    bo.probe_max = 800ms;
    auto br = std::make_shared<ghl::breaker>(bo);
    opt_.breaker = br;
    sim::fault_config f;
    f.outage = "mixed";
    sim_->set_faults(f);
    auto c = client();
    int refused_locally = 0;
    for (int i = 0; i < 40; ++i) {
        auto r = run(c.get_contact(id));
        ASSERT_FALSE(r);
        refused_locally += r.error().step == "breaker" ? 1 : 0;
        if (r.error().step == "breaker") {
            EXPECT_EQ(r.error().kind, ghl::error_kind::never_sent);
            EXPECT_TRUE(r.error().retry_after);
        }
    }
    EXPECT_EQ(br->state(), ghl::breaker_state::open);
    const long long sent = sim_->get_stats().requests;
    EXPECT_LE(sent, 20) << "requests kept going into the outage";
    EXPECT_GE(refused_locally, 20);

    // The probe loop: probes fail while the outage lasts, then one closes the breaker.
    ghl::client_options po = opt_;
    po.breaker_probe = true;
    ghl::client prober(http_, po, tokens_, limiter_);
    auto probe = [&]() -> asio::awaitable<std::optional<std::string>> {
        auto r = co_await prober.get_contact(id);
        if (r || (r.error().status != 0 && r.error().status < 500 && r.error().status != 408))
            co_return std::nullopt;
        co_return r.error().what();
    };
    asio::co_spawn(ioc_, br->run_probes(probe), asio::detached);
    ioc_.restart();
    const auto t0 = std::chrono::steady_clock::now();
    while (std::chrono::steady_clock::now() - t0 < 2500ms)
        ioc_.run_one_for(20ms);
    EXPECT_EQ(br->state(), ghl::breaker_state::open);
    const auto probes = br->snapshot().sent_while_open;
    EXPECT_GE(probes, 2);
    EXPECT_LE(probes, 6) << "probes back off";
    // Only probes reach GHL while open (a probe on a reset pooled connection is sent again once,
    // on a fresh one, by the transport).
    EXPECT_GE(sim_->get_stats().requests - sent, probes);
    EXPECT_LE(sim_->get_stats().requests - sent, 2 * probes);

    sim_->set_faults({});
    const auto t1 = std::chrono::steady_clock::now();
    while (br->state() != ghl::breaker_state::closed && std::chrono::steady_clock::now() - t1 < 5s)
        ioc_.run_one_for(20ms);
    EXPECT_EQ(br->state(), ghl::breaker_state::closed);
    EXPECT_TRUE(run(c.get_contact(id)));
    br->stop();
    ioc_.run_for(50ms);
}
