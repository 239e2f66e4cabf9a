// The GHL client against ghl-sim over HTTPS on loopback: every typed call, OAuth (code
// exchange, refresh on 401, a consumed refresh token), 429 with and without Retry-After, the
// rate-limit headers steering the bucket, a failure matrix (fail the n-th I/O step until the
// operation succeeds, cold and over a kept-alive connection), TLS failing closed (untrusted CA,
// wrong host name), oversized and malformed responses, simulator faults, and the pool.

#include "ghl/client.hpp"
#include "ghl_sim.hpp"

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/json/parse.hpp>
#include <chrono>
#include <gtest/gtest.h>
#include <map>
#include <set>
#include <thread>

using namespace speak4;
using namespace speak4::ghl;
using namespace std::chrono_literals;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

constexpr auto tuple_awaitable = net::as_tuple(net::use_awaitable);
const std::string pit = "sim-private-token";

bool contains(const std::string& hay, std::string_view needle) {
    return hay.find(needle) != std::string::npos;
}

/// A bare HTTP server on 127.0.0.1 (plain TCP, same io_context) that answers every request
/// with `response`, and closes the connection after it when `close_after`.
class raw_server {
public:
    raw_server(net::io_context& io, std::string response, bool close_after)
        : acceptor_(io, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0))
        , response_(std::move(response))
        , close_after_(close_after) {
        net::co_spawn(io, accept_loop(), net::detached);
    }
    std::string base_url() const {
        return "http://127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port());
    }
    int connections = 0;
    int requests = 0;

private:
    net::awaitable<void> accept_loop() {
        for (;;) {
            auto [ec, sock] = co_await acceptor_.async_accept(tuple_awaitable);
            if (ec)
                co_return;
            ++connections;
            net::co_spawn(acceptor_.get_executor(), serve(std::move(sock)), net::detached);
        }
    }
    net::awaitable<void> serve(tcp::socket sock) {
        std::string buf;
        const std::string response = response_;
        const bool close_after = close_after_;
        for (;;) {
            auto [ec, n] = co_await net::async_read_until(sock, net::dynamic_buffer(buf),
                                                          "\r\n\r\n", tuple_awaitable);
            if (ec)
                co_return;
            buf.erase(0, n);
            ++requests;
            auto [wec, wn] =
                co_await net::async_write(sock, net::buffer(response), tuple_awaitable);
            (void)wn;
            if (wec || close_after) {
                boost::system::error_code ignored;
                sock.shutdown(tcp::socket::shutdown_both, ignored);
                sock.close(ignored);
                co_return;
            }
        }
    }
    tcp::acceptor acceptor_;
    std::string response_;
    bool close_after_;
};

struct memory_store final : oauth_token_store {
    std::map<std::string, token_set> rows;
    std::map<std::string, std::string> reauth;
    net::awaitable<store_result<std::optional<token_set>>> load(std::string location) override {
        auto it = rows.find(location);
        co_return it == rows.end() ? std::optional<token_set>()
                                   : std::optional<token_set>(it->second);
    }
    net::awaitable<store_result<void>> save(token_set t) override {
        reauth.erase(t.location_id);
        rows[t.location_id] = std::move(t);
        co_return store_result<void>();
    }
    net::awaitable<store_result<void>> mark_needs_reauth(std::string location,
                                                         std::string reason) override {
        reauth[location] = std::move(reason);
        co_return store_result<void>();
    }
};

class GhlClient : public ::testing::Test {
protected:
    net::io_context io;
    std::unique_ptr<sim::server> sim;
    sim::test_pki pki;
    std::shared_ptr<http_client> http;
    std::shared_ptr<rate_limiter> limiter;
    std::shared_ptr<token_provider> tokens;
    std::unique_ptr<client> cli;
    std::vector<request_record> records;

    void start_sim(sim::options o = {}) {
        o.tls = true;
        if (o.pki.ca_cert_pem.empty())
            o.pki = sim::make_test_pki();
        pki = o.pki;
        sim = std::make_unique<sim::server>(o);
        sim->start();
    }

    http_options transport(std::string base_url = {}) const {
        http_options h;
        h.base_url = base_url.empty() ? sim->base_url() : std::move(base_url);
        h.use_system_cas = false;
        h.ca_pem = pki.ca_cert_pem;
        h.timeout = 5s;
        h.max_connections = 4;
        return h;
    }

    std::unique_ptr<client> make_client(http_options h, rate_limit_options rl = {},
                                        const std::shared_ptr<token_provider>& tp = nullptr) {
        http = std::make_shared<http_client>(io.get_executor(), std::move(h));
        limiter = std::make_shared<rate_limiter>(rl);
        tokens = tp ? tp : std::make_shared<static_token_provider>(secret(pit));
        client_options co;
        co.location_id = sim ? sim->location_id() : "simLocation000000001";
        co.observer = [this](const request_record& r) { records.push_back(r); };
        return std::make_unique<client>(http, co, tokens, limiter);
    }

    void make_default_client() { cli = make_client(transport()); }

    /// Runs `a` on the test's io_context until it completes (other work may stay pending).
    template <class T>
    T run(net::awaitable<T> a) {
        std::optional<T> out;
        std::exception_ptr ex;
        bool done = false;
        net::co_spawn(io, std::move(a), [&](const std::exception_ptr& e, T v) {
            ex = e;
            if (!e)
                out.emplace(std::move(v));
            done = true;
        });
        io.restart();
        const auto deadline = std::chrono::steady_clock::now() + 60s;
        while (!done && std::chrono::steady_clock::now() < deadline)
            io.run_one_for(100ms);
        if (!done)
            throw std::runtime_error("operation did not complete within 60 s");
        if (ex)
            std::rethrow_exception(ex);
        return std::move(*out);
    }

    /// Lets pending handlers (graceful closes, the raw server) run for a moment.
    void settle(std::chrono::milliseconds d = 50ms) {
        io.restart();
        io.run_for(d);
    }

    long long creates_of(const std::string& email) const {
        const auto st = sim->get_stats();
        auto it = st.creates_by_key.find("contact email:" + email);
        return it == st.creates_by_key.end() ? 0 : it->second;
    }

    /// The sim handles a request after our side gave up on it: wait (bounded) for it to land.
    long long eventually_creates_of(const std::string& email, long long expected) {
        const auto deadline = std::chrono::steady_clock::now() + 3s;
        while (creates_of(email) != expected && std::chrono::steady_clock::now() < deadline)
            std::this_thread::sleep_for(10ms);
        return creates_of(email);
    }

    contact_write person(const std::string& email) {
        contact_write w;
        w.first_name = "Ada";
        w.last_name = "Lovelace";
        w.email = email;
        return w;
    }
};

} // namespace

// ---------------------------------------------------------------------------------------------
// Every typed call

TEST_F(GhlClient, EveryTypedCallOverHttps) {
    start_sim();
    make_default_client();

    // contacts: create (201), get, update (no locationId), duplicate create
    contact_write w = person("ada+test@example.com");
    w.phone = "+15551234567";
    w.tags = std::vector<std::string>{"vip"};
    w.company_name = "Analytical Engines";
    w.custom_fields.push_back({"Jx8aX2kWq0oHvZ3uLw1d", std::nullopt, "87"});
    auto created = run(cli->create_contact(w));
    ASSERT_TRUE(created) << created.error().what();
    const std::string id = created->id;
    EXPECT_FALSE(id.empty());
    EXPECT_EQ(created->email, "ada+test@example.com");

    auto got = run(cli->get_contact(id));
    ASSERT_TRUE(got) << got.error().what();
    EXPECT_EQ(got->first_name, "Ada");
    EXPECT_EQ(got->company_name, "Analytical Engines");
    EXPECT_EQ(got->raw.at("id"), boost::json::value(id));
    ASSERT_EQ(got->custom_fields.size(), 1u);
    EXPECT_EQ(got->custom_fields[0].value, boost::json::value("87"));

    contact_write u;
    u.first_name = "Augusta";
    u.clear = {"lastName"};
    u.company_name = "ignored on update";
    auto updated = run(cli->update_contact(id, u));
    ASSERT_TRUE(updated) << updated.error().what();
    EXPECT_EQ(updated->first_name, "Augusta");
    EXPECT_FALSE(updated->last_name);

    auto dup = run(cli->create_contact(w));
    ASSERT_FALSE(dup);
    EXPECT_EQ(dup.error().kind, error_kind::duplicate_contact) << dup.error().what();
    ASSERT_TRUE(dup.error().duplicate);
    EXPECT_EQ(dup.error().duplicate->contact_id, id);
    EXPECT_EQ(dup.error().what().rfind("POST /contacts/: 400", 0), 0u);

    // duplicate search (URL-encoded '+' and '@')
    auto by_email = run(cli->find_duplicate("ada+test@example.com", std::nullopt));
    ASSERT_TRUE(by_email) << by_email.error().what();
    ASSERT_TRUE(*by_email);
    EXPECT_EQ((*by_email)->id, id);
    auto by_phone = run(cli->find_duplicate(std::nullopt, "+15551234567"));
    ASSERT_TRUE(by_phone && *by_phone);
    EXPECT_EQ((*by_phone)->id, id);
    auto nobody = run(cli->find_duplicate("nobody@example.com", std::nullopt));
    ASSERT_TRUE(nobody);
    EXPECT_FALSE(*nobody);
    EXPECT_EQ(run(cli->find_duplicate(std::nullopt, std::nullopt)).error().kind,
              error_kind::invalid_request);

    // tags: POST adds, DELETE (JSON body) removes
    auto added = run(cli->add_tags(id, {"alpha", "beta"}));
    ASSERT_TRUE(added) << added.error().what();
    EXPECT_TRUE(std::count(added->begin(), added->end(), "alpha"));
    auto removed = run(cli->remove_tags(id, {"alpha"}));
    ASSERT_TRUE(removed) << removed.error().what();
    auto after_tags = run(cli->get_contact(id));
    ASSERT_TRUE(after_tags);
    EXPECT_FALSE(std::count(after_tags->tags.begin(), after_tags->tags.end(), "alpha"));
    EXPECT_TRUE(std::count(after_tags->tags.begin(), after_tags->tags.end(), "beta"));
    bool saw_delete_body = false;
    for (const auto& r : sim->requests())
        if (r.route == "DELETE /contacts/:contactId/tags")
            saw_delete_body =
                boost::json::parse(r.body) == boost::json::parse(R"({"tags":["alpha"]})");
    EXPECT_TRUE(saw_delete_body);

    // search: dateUpdated range + sort + searchAfter paging
    const auto seeded = sim->seed_contacts(7);
    search_request sr;
    sr.page_limit = 3;
    sr.filters.emplace_back(range_filter("dateUpdated", "2000-01-01T00:00:00.000Z"));
    sr.sort.emplace_back(sort_by("dateUpdated"));
    std::set<std::string> searched;
    for (int page = 0; page < 10; ++page) {
        auto p = run(cli->search_contacts(sr));
        ASSERT_TRUE(p) << p.error().what();
        EXPECT_EQ(p->total, 8);
        for (const auto& c : p->contacts)
            EXPECT_TRUE(searched.insert(c.id).second) << "repeated " << c.id;
        if (!p->more)
            break;
        sr.search_after = p->next_search_after;
    }
    EXPECT_EQ(searched.size(), 8u);

    // legacy listing: startAfter + startAfterId paging
    std::set<std::string> listed;
    list_request lr;
    lr.limit = 3;
    for (int page = 0; page < 10; ++page) {
        auto p = run(cli->list_contacts(lr));
        ASSERT_TRUE(p) << p.error().what();
        for (const auto& c : p->contacts)
            EXPECT_TRUE(listed.insert(c.id).second) << "repeated " << c.id;
        if (!p->more)
            break;
        lr.start_after = p->next_start_after;
        lr.start_after_id = p->next_start_after_id;
    }
    EXPECT_EQ(listed.size(), 8u);

    // business
    const std::string business = "641c094001436dbc2081e642";
    const auto biz_id = sim->seed_contact(boost::json::object{
        {"firstName", "Biz"}, {"email", "biz@example.com"}, {"businessId", business}});
    auto biz = run(cli->business_contacts({business, 10, 0, std::nullopt}));
    ASSERT_TRUE(biz) << biz.error().what();
    ASSERT_EQ(biz->contacts.size(), 1u);
    EXPECT_EQ(biz->contacts[0].id, biz_id);

    // tasks
    task_write tw;
    tw.title = "Send demo link";
    tw.due_date = "2026-12-01T15:00:00Z";
    tw.body = "…";
    auto task = run(cli->create_task(id, tw));
    ASSERT_TRUE(task) << task.error().what();
    EXPECT_EQ(task->title, "Send demo link");
    auto tasks = run(cli->list_tasks(id));
    ASSERT_TRUE(tasks);
    ASSERT_EQ(tasks->size(), 1u);
    auto one_task = run(cli->get_task(id, task->id));
    ASSERT_TRUE(one_task);
    EXPECT_EQ(one_task->completed, false);
    task_write tu;
    tu.title = "Send the demo link";
    auto task_updated = run(cli->update_task(id, task->id, tu));
    ASSERT_TRUE(task_updated) << task_updated.error().what();
    EXPECT_EQ(task_updated->title, "Send the demo link");
    auto completed = run(cli->complete_task(id, task->id, true));
    ASSERT_TRUE(completed) << completed.error().what();
    EXPECT_EQ(completed->completed, true);
    ASSERT_TRUE(run(cli->delete_task(id, task->id)));
    auto task_gone = run(cli->get_task(id, task->id));
    ASSERT_FALSE(task_gone);
    EXPECT_EQ(task_gone.error().kind, error_kind::not_found);
    EXPECT_EQ(run(cli->create_task(id, task_write{})).error().kind, error_kind::invalid_request);

    // notes (path parameter `id`)
    note_write nw;
    nw.body = "Called, wants a demo";
    auto note = run(cli->create_note(id, nw));
    ASSERT_TRUE(note) << note.error().what();
    auto notes = run(cli->list_notes(id));
    ASSERT_TRUE(notes);
    EXPECT_EQ(notes->size(), 1u);
    auto one_note = run(cli->get_note(id, note->id));
    ASSERT_TRUE(one_note);
    EXPECT_EQ(one_note->body, "Called, wants a demo");
    note_write nu;
    nu.body = "Called twice";
    auto note_updated = run(cli->update_note(id, note->id, nu));
    ASSERT_TRUE(note_updated) << note_updated.error().what();
    EXPECT_EQ(note_updated->body, "Called twice");
    ASSERT_TRUE(run(cli->delete_note(id, note->id)));
    EXPECT_EQ(run(cli->get_note(id, note->id)).error().kind, error_kind::not_found);

    // appointments
    sim->seed_appointment(id, boost::json::object{{"title", "Demo"},
                                                  {"startTime", "2026-12-02T10:00:00Z"},
                                                  {"endTime", "2026-12-02T10:30:00Z"}});
    auto events = run(cli->list_appointments(id));
    ASSERT_TRUE(events) << events.error().what();
    ASSERT_EQ(events->size(), 1u);
    EXPECT_EQ((*events)[0].title, "Demo");
    EXPECT_TRUE((*events)[0].start_at);

    // delete, then the contact is gone
    ASSERT_TRUE(run(cli->delete_contact(id)));
    auto gone = run(cli->get_contact(id));
    ASSERT_FALSE(gone);
    EXPECT_EQ(gone.error().kind, error_kind::not_found) << gone.error().what();
    EXPECT_EQ(run(cli->get_contact("")).error().kind, error_kind::invalid_request);

    // Every route of DESIGN §1 was driven, and the sim never saw a field outside a DTO (422).
    const auto st = sim->get_stats();
    for (const char* route : {"GET /contacts/:contactId",
                              "POST /contacts/search",
                              "GET /contacts/",
                              "GET /contacts/search/duplicate",
                              "GET /contacts/business/:businessId",
                              "POST /contacts/",
                              "PUT /contacts/:contactId",
                              "DELETE /contacts/:contactId",
                              "POST /contacts/:contactId/tags",
                              "DELETE /contacts/:contactId/tags",
                              "GET /contacts/:contactId/tasks",
                              "GET /contacts/:contactId/tasks/:taskId",
                              "POST /contacts/:contactId/tasks",
                              "PUT /contacts/:contactId/tasks/:taskId",
                              "PUT /contacts/:contactId/tasks/:taskId/completed",
                              "DELETE /contacts/:contactId/tasks/:taskId",
                              "GET /contacts/:contactId/notes",
                              "GET /contacts/:contactId/notes/:id",
                              "POST /contacts/:contactId/notes",
                              "PUT /contacts/:contactId/notes/:id",
                              "DELETE /contacts/:contactId/notes/:id",
                              "GET /contacts/:contactId/appointments"})
        EXPECT_GT(st.by_route.count(route) ? st.by_route.at(route) : 0, 0) << route;
    EXPECT_EQ(st.by_status.count(422), 0u);
    EXPECT_EQ(st.rate_limited, 0);

    // The observer saw each request once, with the operation, status and rate headers.
    EXPECT_EQ(static_cast<long long>(records.size()), st.requests);
    for (const auto& r : records) {
        EXPECT_EQ(r.operation, r.method + " " + r.path_template);
        EXPECT_TRUE(r.written);
        EXPECT_NE(r.status, 0);
        EXPECT_TRUE(r.rate_remaining) << r.operation;
        EXPECT_FALSE(contains(r.error, pit));
        EXPECT_EQ(r.path.find('?'), std::string::npos);
    }
    // Keep-alive: a handful of connections for dozens of requests.
    EXPECT_LE(http->stats().connections_opened, 4);
    EXPECT_GT(http->stats().reused, 20);
}

TEST_F(GhlClient, VersionHeaderComesFromConfig) {
    start_sim();
    http = std::make_shared<http_client>(io.get_executor(), transport());
    client_options co;
    co.location_id = sim->location_id();
    co.api_version = "2023-02-21"; // not what the contacts spec (and the sim) accept
    client c(http, co, std::make_shared<static_token_provider>(secret(pit)),
             std::make_shared<rate_limiter>(rate_limit_options{}));
    auto r = run(c.get_contact("anything"));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind, error_kind::permanent);
    EXPECT_TRUE(contains(r.error().message, "Version"));
}

TEST_F(GhlClient, RejectedPrivateTokenIsAnAuthErrorWithoutTheToken) {
    start_sim();
    cli =
        make_client(transport(), {}, std::make_shared<static_token_provider>(secret("pit-wrong")));
    auto r = run(cli->get_contact("x"));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind, error_kind::auth);
    EXPECT_EQ(r.error().status, 401);
    EXPECT_EQ(r.error().what().rfind("GET /contacts/:contactId: 401", 0), 0u) << r.error().what();
    EXPECT_FALSE(contains(r.error().what(), "pit-wrong"));
    ASSERT_EQ(records.size(), 1u); // the same token is not retried
    EXPECT_EQ(records[0].status, 401);
}

// ---------------------------------------------------------------------------------------------
// OAuth over the simulator

TEST_F(GhlClient, OAuthExchangeRefreshOn401AndConsumedRefreshToken) {
    start_sim();
    auto store = std::make_shared<memory_store>();
    http = std::make_shared<http_client>(io.get_executor(), transport());
    auto endpoint = std::make_shared<http_token_endpoint>(
        http, [this](const request_record& r) { records.push_back(r); });
    oauth_options oo;
    oo.location_id = sim->location_id();
    oo.client_id = "sim-client-id";
    oo.client_secret = secret("sim-client-secret");
    auto provider = oauth_token_provider::create(io.get_executor(), oo, store, endpoint);
    client_options co;
    co.location_id = sim->location_id();
    co.observer = [this](const request_record& r) { records.push_back(r); };
    client c(http, co, provider, std::make_shared<rate_limiter>(rate_limit_options{}));

    // Before any code exchange: needs_reauth, nothing sent to the API.
    auto before = run(c.get_contact("x"));
    ASSERT_FALSE(before);
    EXPECT_EQ(before.error().kind, error_kind::needs_reauth);
    EXPECT_TRUE(records.empty());
    provider->reload();

    auto info = run(provider->exchange_code(secret(sim->issue_auth_code())));
    ASSERT_TRUE(info) << info.error().what();
    EXPECT_EQ(info->location_id, sim->location_id());
    ASSERT_TRUE(store->rows.count(sim->location_id()));
    const auto first_refresh = store->rows[sim->location_id()].refresh_token;

    const auto id =
        sim->seed_contact(boost::json::object{{"firstName", "Oa"}, {"email", "oa@example.com"}});
    ASSERT_TRUE(run(c.get_contact(id)));

    // GHL invalidates the access token: 401, one refresh (rotation saved), one retry.
    sim->expire_access_tokens();
    records.clear();
    auto after = run(c.get_contact(id));
    ASSERT_TRUE(after) << after.error().what();
    ASSERT_EQ(records.size(), 3u);
    EXPECT_EQ(records[0].status, 401);
    EXPECT_EQ(records[0].attempt, 1);
    EXPECT_EQ(records[1].operation, "POST /oauth/token");
    EXPECT_EQ(records[1].status, 200);
    EXPECT_EQ(records[2].status, 200);
    EXPECT_EQ(records[2].attempt, 2);
    EXPECT_FALSE(store->rows[sim->location_id()].refresh_token == first_refresh);

    // The stored refresh token gets used elsewhere (e.g. the answer to a refresh was lost):
    // GHL refuses it and the provider parks in needs_reauth instead of retrying.
    token_request steal;
    steal.grant_type = "refresh_token";
    steal.client_id = "sim-client-id";
    steal.client_secret = secret("sim-client-secret");
    steal.refresh_token = store->rows[sim->location_id()].refresh_token;
    ASSERT_TRUE(run(endpoint->request_token(steal)));
    sim->expire_access_tokens();
    auto parked = run(c.get_contact(id));
    ASSERT_FALSE(parked);
    EXPECT_EQ(parked.error().kind, error_kind::needs_reauth) << parked.error().what();
    EXPECT_TRUE(provider->status().needs_reauth);
    EXPECT_TRUE(contains(store->reauth[sim->location_id()], "Invalid grant"));
    for (const auto& r : records)
        EXPECT_FALSE(contains(r.error, "sim-at-") || contains(r.error, "sim-rt-"));
}

// ---------------------------------------------------------------------------------------------
// Rate limits

TEST_F(GhlClient, RateLimitHeadersSteerTheBucket) {
    sim::options so;
    so.burst = 5;
    so.window_ms = 1500;
    start_sim(so);
    cli = make_client(transport()); // configured for GHL's 100 / 10 s: the headers correct it
    const auto id = sim->seed_contact(boost::json::object{{"email", "rl@example.com"}});
    ASSERT_TRUE(run(cli->get_contact(id)));
    EXPECT_EQ(limiter->state(sim->location_id(), limiter->clock().now()).burst, 5);
    EXPECT_EQ(limiter->state(sim->location_id(), limiter->clock().now()).window, 1500ms);

    const auto t0 = std::chrono::steady_clock::now();
    int ok = 0;
    int done = 0;
    for (int i = 0; i < 11; ++i)
        net::co_spawn(
            io,
            [&]() -> net::awaitable<void> {
                auto r = co_await cli->get_contact(id);
                ok += r ? 1 : 0;
                ++done;
            },
            net::detached);
    io.restart();
    while (done < 11 && std::chrono::steady_clock::now() - t0 < 30s)
        io.run_one_for(100ms);
    EXPECT_EQ(ok, 11);
    EXPECT_EQ(sim->get_stats().rate_limited, 0); // the daemon does not cause 429s
    // 12 requests at 5 per 1.5 s need at least two more windows.
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 2900ms);
}

namespace {
/// Another client of the same app that spends the location's budget behind our back.
void spend_budget_elsewhere(GhlClient&, sim::server& s, net::io_context& io,
                            const sim::test_pki& pki, int n) {
    http_options h;
    h.base_url = s.base_url();
    h.use_system_cas = false;
    h.ca_pem = pki.ca_cert_pem;
    auto other_http = std::make_shared<http_client>(io.get_executor(), h);
    client_options co;
    co.location_id = s.location_id();
    auto other = std::make_shared<client>(other_http, co,
                                          std::make_shared<static_token_provider>(secret(pit)),
                                          std::make_shared<rate_limiter>(rate_limit_options{}));
    int done = 0;
    net::co_spawn(
        io,
        [&, other]() -> net::awaitable<void> {
            for (int i = 0; i < n; ++i)
                (void)co_await other->get_contact("nobody");
            done = 1;
        },
        net::detached);
    io.restart();
    while (!done)
        io.run_one_for(100ms);
}
} // namespace

TEST_F(GhlClient, TooManyRequestsWithRetryAfter) {
    sim::options so;
    so.burst = 3;
    so.window_ms = 2000;
    so.send_retry_after = true;
    start_sim(so);
    make_default_client();
    const auto id = sim->seed_contact(boost::json::object{{"email", "ra@example.com"}});
    spend_budget_elsewhere(*this, *sim, io, pki, 3);

    auto limited = run(cli->get_contact(id));
    ASSERT_FALSE(limited);
    EXPECT_EQ(limited.error().kind, error_kind::retryable);
    EXPECT_EQ(limited.error().status, 429);
    EXPECT_EQ(limited.error().what().rfind("GET /contacts/:contactId: 429", 0), 0u);
    ASSERT_TRUE(limited.error().retry_after);
    const auto ra = *limited.error().retry_after;
    EXPECT_GE(ra, 1000ms);
    EXPECT_LE(ra, 2000ms);
    EXPECT_EQ(records.back().retry_after, ra);
    // The bucket honours Retry-After: the next call waits, then succeeds without another 429.
    const auto t0 = std::chrono::steady_clock::now();
    auto later = run(cli->get_contact(id));
    ASSERT_TRUE(later) << later.error().what();
    EXPECT_GE(std::chrono::steady_clock::now() - t0, ra - 50ms);
    EXPECT_EQ(sim->get_stats().rate_limited, 1);
}

TEST_F(GhlClient, TooManyRequestsWithoutRetryAfterWaitsAWindow) {
    sim::options so;
    so.burst = 3;
    so.window_ms = 2000;
    so.send_retry_after = false;
    start_sim(so);
    make_default_client();
    const auto id = sim->seed_contact(boost::json::object{{"email", "nra@example.com"}});
    spend_budget_elsewhere(*this, *sim, io, pki, 3);

    auto limited = run(cli->get_contact(id));
    ASSERT_FALSE(limited);
    EXPECT_EQ(limited.error().status, 429);
    EXPECT_FALSE(records.back().retry_after);
    ASSERT_TRUE(limited.error().retry_after); // derived: one window (from the headers)
    EXPECT_GE(*limited.error().retry_after, 1900ms);
    EXPECT_LE(*limited.error().retry_after, 2000ms + rate_limit_options{}.guard);
    const auto t0 = std::chrono::steady_clock::now();
    auto later = run(cli->get_contact(id));
    ASSERT_TRUE(later) << later.error().what();
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 1900ms);
    EXPECT_EQ(sim->get_stats().rate_limited, 1);
}

TEST_F(GhlClient, LocalBudgetBeyondMaxWaitFailsFastAsNeverSent) {
    sim::options so;
    so.burst = 1; // announced in the headers: one request a minute
    so.window_ms = 60000;
    start_sim(so);
    http = std::make_shared<http_client>(io.get_executor(), transport());
    limiter = std::make_shared<rate_limiter>(rate_limit_options{1, 60s, 1000});
    client_options co;
    co.location_id = sim->location_id();
    co.max_rate_wait = 1s;
    client c(http, co, std::make_shared<static_token_provider>(secret(pit)), limiter);
    const auto id = sim->seed_contact(boost::json::object{{"email", "mw@example.com"}});
    ASSERT_TRUE(run(c.get_contact(id)));
    auto r = run(c.get_contact(id));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind, error_kind::never_sent);
    EXPECT_EQ(r.error().step, "rate_limit");
    ASSERT_TRUE(r.error().retry_after);
    EXPECT_GT(*r.error().retry_after, 50s);
}

// ---------------------------------------------------------------------------------------------
// Failure matrices: fail the n-th I/O step, n = 0, 1, … until the operation succeeds.

TEST_F(GhlClient, FailureMatrixOnAFreshConnection) {
    start_sim();
    const std::vector<std::pair<error_kind, std::string>> expected = {
        {error_kind::never_sent, "resolve"},   {error_kind::never_sent, "connect"},
        {error_kind::never_sent, "handshake"}, {error_kind::never_sent, "write"},
        {error_kind::outcome_unknown, "read"},
    };
    int n = 0;
    for (;; ++n) {
        ASSERT_LT(n, 20) << "never succeeded";
        int step = 0;
        auto h = transport();
        h.faults = [&step, n](io_step) -> boost::system::error_code {
            return step++ == n ? boost::asio::error::connection_reset : boost::system::error_code{};
        };
        records.clear();
        cli = make_client(h);
        const std::string email = "matrix" + std::to_string(n) + "@example.com";
        auto r = run(cli->create_contact(person(email)));
        if (r) {
            EXPECT_EQ(eventually_creates_of(email, 1), 1);
            break;
        }
        ASSERT_LT(static_cast<std::size_t>(n), expected.size()) << r.error().what();
        SCOPED_TRACE(r.error().what());
        EXPECT_EQ(r.error().kind, expected[n].first);
        EXPECT_EQ(r.error().step, expected[n].second);
        EXPECT_EQ(r.error().what().rfind("POST /contacts/: " + expected[n].second, 0), 0u);
        ASSERT_EQ(records.size(), 1u);
        EXPECT_EQ(records[0].written, r.error().kind == error_kind::outcome_unknown);
        // never_sent: GHL has nothing; outcome_unknown: it got the whole request.
        EXPECT_EQ(
            eventually_creates_of(email, r.error().kind == error_kind::outcome_unknown ? 1 : 0),
            r.error().kind == error_kind::outcome_unknown ? 1 : 0);
    }
    EXPECT_EQ(static_cast<std::size_t>(n), expected.size());
}

TEST_F(GhlClient, FailureMatrixOnAKeptAliveConnection) {
    start_sim();
    const auto id = sim->seed_contact(boost::json::object{{"email", "warm@example.com"}});
    // POST: a write failing before any byte on the reused connection is retried on a fresh
    // one (n = 0 succeeds); a read failing after the request went out is outcome_unknown.
    std::vector<std::string> outcomes;
    for (int n = 0;; ++n) {
        ASSERT_LT(n, 20) << "never succeeded";
        bool armed = false;
        int step = 0;
        auto h = transport();
        h.faults = [&armed, &step, n](io_step) -> boost::system::error_code {
            return armed && step++ == n ? boost::asio::error::connection_reset
                                        : boost::system::error_code{};
        };
        cli = make_client(h);
        ASSERT_TRUE(run(cli->get_contact(id))); // warms the pool
        armed = true;
        const std::string email = "warm" + std::to_string(n) + "@example.com";
        auto r = run(cli->create_contact(person(email)));
        outcomes.push_back(r ? "ok"
                             : std::string(to_string(r.error().kind)) + " " + r.error().step);
        // Created exactly once whenever GHL got the request (retries included).
        EXPECT_EQ(eventually_creates_of(email, 1), 1) << "n=" << n;
        if (n == 0) {
            EXPECT_EQ(http->stats().stale_retries, 1);
        }
        if (step <= n) // the fault was never reached: the operation ran clean
            break;
    }
    // n = 0: the write on the reused connection failed before any byte: retried on a fresh
    // one; n = 1: the read failed after the request went out; n = 2: no fault left.
    EXPECT_EQ(outcomes, (std::vector<std::string>{"ok", "outcome_unknown read", "ok"}));

    // GET: a reused connection closing without a byte of response is retried too (idempotent).
    for (int n = 0; n < 2; ++n) {
        bool armed = false;
        int step = 0;
        auto h = transport();
        h.faults = [&armed, &step, n](io_step) -> boost::system::error_code {
            return armed && step++ == n ? boost::asio::error::connection_reset
                                        : boost::system::error_code{};
        };
        cli = make_client(h);
        ASSERT_TRUE(run(cli->get_contact(id)));
        armed = true;
        auto r = run(cli->get_contact(id));
        EXPECT_TRUE(r) << "n=" << n << ": " << r.error().what();
        EXPECT_EQ(http->stats().stale_retries, 1);
    }
}

// ---------------------------------------------------------------------------------------------
// TLS fails closed

TEST_F(GhlClient, UntrustedCertificateFailsClosed) {
    start_sim(); // its own CA
    const auto other_ca = sim::make_test_pki();
    auto h = transport();
    h.ca_pem = other_ca.ca_cert_pem;
    cli = make_client(h);
    auto r = run(cli->get_contact("x"));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind, error_kind::never_sent);
    EXPECT_EQ(r.error().step, "handshake");
    EXPECT_TRUE(contains(r.error().message, "certificate verify failed")) << r.error().what();
    EXPECT_EQ(sim->get_stats().requests, 0);

    // The system store does not know the test CA either.
    h = transport();
    h.ca_pem.clear();
    h.use_system_cas = true;
    cli = make_client(h);
    auto sys = run(cli->get_contact("x"));
    ASSERT_FALSE(sys);
    EXPECT_EQ(sys.error().step, "handshake");
    EXPECT_EQ(sim->get_stats().requests, 0);
}

TEST_F(GhlClient, WrongHostNameFailsClosed) {
    sim::options so;
    so.pki = sim::make_test_pki({"wrong.example"}); // SAN: wrong.example and IP 127.0.0.1
    start_sim(so);
    cli = make_client(transport()); // https://localhost:PORT
    auto r = run(cli->get_contact("x"));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind, error_kind::never_sent);
    EXPECT_EQ(r.error().step, "handshake");
    EXPECT_EQ(sim->get_stats().requests, 0);

    // The same certificate is fine for the name it carries (127.0.0.1): the CA is trusted.
    cli = make_client(transport("https://127.0.0.1:" + std::to_string(sim->port())));
    auto ok = run(cli->get_contact("x"));
    ASSERT_FALSE(ok);
    EXPECT_EQ(ok.error().kind, error_kind::not_found) << ok.error().what();
}

// ---------------------------------------------------------------------------------------------
// Oversized and malformed responses

TEST_F(GhlClient, OversizedResponsesAreErrorsNamingTheOperation) {
    start_sim();
    sim->seed_contacts(40);
    auto h = transport();
    h.body_limit = 2048;
    cli = make_client(h);
    list_request lr;
    lr.limit = 100;
    auto big = run(cli->list_contacts(lr));
    ASSERT_FALSE(big);
    EXPECT_EQ(big.error().kind, error_kind::bad_response);
    EXPECT_EQ(big.error().what().rfind("GET /contacts/: read: malformed or oversized response", 0),
              0u)
        << big.error().what();
    EXPECT_TRUE(contains(big.error().message, "body limit")) << big.error().what();
    EXPECT_TRUE(big.error().may_have_been_applied());

    h = transport();
    h.header_limit = 128;
    cli = make_client(h);
    auto hdr = run(cli->get_contact("x"));
    ASSERT_FALSE(hdr);
    EXPECT_EQ(hdr.error().kind, error_kind::bad_response);
    EXPECT_TRUE(contains(hdr.error().message, "header limit")) << hdr.error().what();

    // The pool survives: a normal client afterwards works.
    cli = make_client(transport());
    EXPECT_TRUE(run(cli->list_contacts(lr)));
}

TEST_F(GhlClient, MalformedResponsesAreErrorsNamingTheOperation) {
    start_sim();
    make_default_client();
    const auto id = sim->seed_contact(boost::json::object{{"email", "mal@example.com"}});
    sim::fault_config f;
    f.malformed_rate = 1;
    f.routes = {"GET /contacts/:contactId"};
    sim->set_faults(f);
    auto r = run(cli->get_contact(id));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind, error_kind::bad_response);
    EXPECT_EQ(r.error().status, 200);
    EXPECT_EQ(r.error().what().rfind("GET /contacts/:contactId: 200: response body is not JSON", 0),
              0u)
        << r.error().what();
    sim->set_faults({});

    // Broken HTTP from a server that is not GHL at all.
    for (const char* response :
         {"HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\n{}", "SMTP ready\r\n\r\n",
          "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"contact\":"}) {
        SCOPED_TRACE(response);
        raw_server raw(io, response, true);
        http_options h;
        h.base_url = raw.base_url();
        h.timeout = 2s;
        cli = make_client(h);
        auto bad = run(cli->get_contact("x"));
        ASSERT_FALSE(bad);
        EXPECT_EQ(bad.error().what().rfind("GET /contacts/:contactId: read", 0), 0u)
            << bad.error().what();
        EXPECT_TRUE(bad.error().kind == error_kind::bad_response ||
                    bad.error().kind == error_kind::outcome_unknown)
            << bad.error().what();
    }
}

TEST_F(GhlClient, SimulatorFaultsAreClassified) {
    start_sim();
    auto h = transport();
    h.timeout = 500ms;
    cli = make_client(h);
    const auto id = sim->seed_contact(boost::json::object{{"email", "faults@example.com"}});
    sim::fault_config f;

    f = {};
    f.error_rate = 1;
    f.error_statuses = {500};
    sim->set_faults(f);
    EXPECT_EQ(run(cli->get_contact(id)).error().kind, error_kind::retryable);

    f.error_statuses = {503}; // HTML from a proxy
    sim->set_faults(f);
    auto proxy = run(cli->get_contact(id));
    EXPECT_EQ(proxy.error().kind, error_kind::retryable);
    EXPECT_EQ(proxy.error().what(), "GET /contacts/:contactId: 503: Service Unavailable");

    f = {};
    f.drop_before_apply_rate = 1;
    f.routes = {"POST /contacts/"};
    sim->set_faults(f);
    auto before = run(cli->create_contact(person("drop-before@example.com")));
    ASSERT_FALSE(before);
    EXPECT_EQ(before.error().kind, error_kind::outcome_unknown) << before.error().what();
    EXPECT_EQ(eventually_creates_of("drop-before@example.com", 0), 0);

    f.drop_before_apply_rate = 0;
    f.drop_after_apply_rate = 1;
    sim->set_faults(f);
    auto after = run(cli->create_contact(person("drop-after@example.com")));
    ASSERT_FALSE(after);
    EXPECT_EQ(after.error().kind, error_kind::outcome_unknown);
    EXPECT_EQ(eventually_creates_of("drop-after@example.com", 1), 1);

    f = {};
    f.timeout_rate = 1;
    f.routes = {"GET /contacts/:contactId"};
    sim->set_faults(f);
    auto slow = run(cli->get_contact(id));
    ASSERT_FALSE(slow);
    EXPECT_EQ(slow.error().kind, error_kind::outcome_unknown);
    EXPECT_EQ(slow.error().what(),
              "GET /contacts/:contactId: read: timed out (request written, outcome unknown)");

    f = {};
    f.slow_body_rate = 1;
    f.slow_body_chunk_bytes = 64;
    f.slow_body_delay_ms = 1;
    sim->set_faults(f);
    EXPECT_TRUE(run(cli->get_contact(id)));
    sim->set_faults({});
    EXPECT_TRUE(run(cli->get_contact(id)));
}

// ---------------------------------------------------------------------------------------------
// The pool

TEST_F(GhlClient, PoolBoundsConnectionsAndServesConcurrentCalls) {
    start_sim();
    auto h = transport();
    h.max_connections = 2;
    cli = make_client(h);
    const auto id = sim->seed_contact(boost::json::object{{"email", "pool@example.com"}});
    int ok = 0;
    int done = 0;
    for (int i = 0; i < 12; ++i)
        net::co_spawn(
            io,
            [&]() -> net::awaitable<void> {
                auto r = co_await cli->get_contact(id);
                ok += r ? 1 : 0;
                ++done;
            },
            net::detached);
    io.restart();
    const auto t0 = std::chrono::steady_clock::now();
    while (done < 12 && std::chrono::steady_clock::now() - t0 < 30s)
        io.run_one_for(100ms);
    EXPECT_EQ(ok, 12);
    EXPECT_LE(http->stats().connections_opened, 2);
    EXPECT_EQ(http->stats().in_use, 0u);
}

TEST_F(GhlClient, IdleConnectionClosedByThePeerIsNotReused) {
    raw_server raw(
        io, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
        true); // says keep-alive, then closes
    http_options h;
    h.base_url = raw.base_url();
    cli = make_client(h);
    ASSERT_TRUE(run(cli->delete_contact("a")));
    settle(); // the FIN arrives
    ASSERT_TRUE(
        run(cli->delete_contact("b"))); // a DELETE is not retried: it must not hit the dead one
    EXPECT_EQ(http->stats().connections_opened, 2);
    EXPECT_EQ(http->stats().stale_retries, 0);
    EXPECT_EQ(raw.requests, 2);
}

TEST_F(GhlClient, ShutdownClosesIdleConnectionsAndRefusesNewCalls) {
    start_sim();
    make_default_client();
    const auto id = sim->seed_contact(boost::json::object{{"email", "bye@example.com"}});
    ASSERT_TRUE(run(cli->get_contact(id)));
    EXPECT_EQ(http->stats().idle, 1u);
    run([&]() -> net::awaitable<int> {
        co_await http->shutdown();
        co_return 0;
    }());
    EXPECT_EQ(http->stats().idle, 0u);
    auto r = run(cli->get_contact(id));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind, error_kind::never_sent);
}
