// The client against GHL's official OpenAPI spec: every typed call goes to Stoplight Prism
// serving ../shared/ghl-openapi/apps/contacts.json (and oauth.json) with request validation
// on (`prism mock --errors`): a request that violates the spec is answered 422 (401 for a
// security violation) with an `sl-violations` header, and fails this test. Responses are
// generated from the schemas (`--dynamic`): several of the spec's own examples violate its
// response schemas (GET /contacts/, /contacts/business/:id, /oauth/token), which Prism reports
// as a 500 even for a valid request.
#include "ghl/client.hpp"
#include "support/test_support.hpp"

#include <arpa/inet.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <cstdlib>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <set>
#include <sys/socket.h>
#include <unistd.h>

using namespace speak4;
using namespace speak4::testing;
namespace asio = boost::asio;
namespace bj = boost::json;

namespace {

std::filesystem::path spec_dir() {
    return shared_dir() / "ghl-openapi" / "apps";
}

std::filesystem::path prism_binary() {
    if (const char* p = std::getenv("PRISM"); p && *p)
        return p;
    return std::filesystem::path(SPEAK4_BUILD_DIR) / "prism" / "node_modules" / ".bin" / "prism";
}

bool port_open(unsigned short port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    return ok;
}

/// `prism mock --errors SPEC` on a free loopback port.
class prism {
public:
    prism(const std::filesystem::path& spec, const temp_dir& dir, const std::string& name)
        : port_(free_port()) {
        log_ = dir / (name + ".log");
        proc_ = std::make_unique<child_process>(
            prism_binary().string(),
            std::vector<std::string>{"mock", "--dynamic", "--errors", "-h", "127.0.0.1", "-p",
                                     std::to_string(port_), spec.string()},
            log_, log_);
        ready_ = wait_until([&] { return port_open(port_) || !proc_->running(); }, 60000) &&
                 proc_->running();
    }
    bool ready() const { return ready_; }
    unsigned short port() const { return port_; }
    std::string log() const { return read_file(log_); }

private:
    unsigned short port_;
    std::filesystem::path log_;
    std::unique_ptr<child_process> proc_;
    bool ready_ = false;
};

/// Every request the client sent, as the observer saw it.
struct seen_request {
    std::string operation;
    int status;
    std::string error;
};

class contract_test : public ::testing::Test {
protected:
    void SetUp() override {
        // CI runs with ../shared beside the clone: there a missing spec is a failure.
        if (!std::filesystem::exists(spec_dir() / "contacts.json") && std::getenv("CI"))
            FAIL() << spec_dir() << " is missing: CI needs ../shared/ghl-openapi";
        if (!std::filesystem::exists(spec_dir() / "contacts.json"))
            GTEST_SKIP() << "../shared/ghl-openapi is absent (a clone outside the workspace): no "
                            "spec to test against";
        ASSERT_TRUE(std::filesystem::exists(prism_binary()))
            << prism_binary()
            << " is missing: scripts/install-prism installs it (scripts/test does)";
    }

    ghl::client make_client(asio::io_context& io, unsigned short port) {
        ghl::http_options ho;
        ho.base_url = "http://127.0.0.1:" + std::to_string(port);
        ho.timeout = std::chrono::seconds(20);
        auto http = std::make_shared<ghl::http_client>(io.get_executor(), ho);
        ghl::client_options co;
        co.location_id = "ve9EPM428h8vShlRW1KT";
        co.observer = [this](const ghl::request_record& r) {
            seen_.push_back({r.operation, r.status, r.error});
        };
        return ghl::client(
            http, co, std::make_shared<ghl::static_token_provider>(secret("pit-contract-test")),
            std::make_shared<ghl::rate_limiter>(ghl::rate_limit_options{}));
    }

    template <class F>
    void run(asio::io_context& io, F body) {
        auto fut = asio::co_spawn(io, body(), asio::use_future);
        io.run_for(std::chrono::seconds(120));
        ASSERT_EQ(fut.wait_for(std::chrono::seconds(0)), std::future_status::ready)
            << "calls did not finish";
        fut.get();
    }

    temp_dir dir_;
    std::vector<seen_request> seen_;
};

// Braced lists are built outside the coroutine: GCC 12 miscompiles initializer lists whose
// backing arrays live across a co_await ("array used as initializer").
ghl::contact_write sample_contact() {
    return ghl::contact_write_from_json({{"firstName", "Ada"},
                                         {"lastName", "Lovelace"},
                                         {"email", "ada@example.com"},
                                         {"phone", "+15551234567"},
                                         {"tags", bj::array{"vip"}},
                                         {"companyName", "Analytical"},
                                         {"customFields", bj::object{{"cf1", "87"}}}});
}

bj::array sample_cursor() {
    return bj::array{1736471515514, "VU1SPQwBqbfa1z9MyaDl"};
}

std::vector<std::string> strings(std::initializer_list<const char*> l) {
    return {l.begin(), l.end()};
}

/// One call of every typed contacts endpoint.
asio::awaitable<void> every_contacts_call(ghl::client& c) {
    const std::vector<std::string> tags_to_add = strings({"vip", "hot"});
    const std::vector<std::string> tags_to_remove = strings({"vip"});
    const std::string cid = "ocQHyuzHvysMo5N5VsXc";
    const std::string tid = "noteTaskId0000000001";
    const std::string nid = "noteId00000000000001";

    const ghl::contact_write w = sample_contact();
    (void)co_await c.create_contact(w);
    (void)co_await c.update_contact(cid, w);
    (void)co_await c.get_contact(cid);
    ghl::search_request s;
    s.page_limit = 100;
    s.filters.push_back(ghl::range_filter("dateUpdated", bj::value("2026-11-01T00:00:00.000Z")));
    s.sort.push_back(ghl::sort_by("dateUpdated"));
    (void)co_await c.search_contacts(s);
    s.search_after = sample_cursor();
    (void)co_await c.search_contacts(s);
    ghl::list_request l;
    l.limit = 100;
    (void)co_await c.list_contacts(l);
    l.start_after = 1603870249758;
    l.start_after_id = "yd0jdjOavGk2o6Nh5Ndb";
    (void)co_await c.list_contacts(l);
    (void)co_await c.find_duplicate(std::string("ada+test@example.com"),
                                    std::string("+1 555 123 4567"));
    ghl::business_request b;
    b.business_id = "641c094001436dbc2081e642";
    b.limit = 25;
    (void)co_await c.business_contacts(b);
    (void)co_await c.add_tags(cid, tags_to_add);
    (void)co_await c.remove_tags(cid, tags_to_remove);
    ghl::task_write t;
    t.title = "Send demo link";
    t.body = "…";
    t.due_date = "2026-12-01T15:00:00.000Z";
    t.completed = false;
    (void)co_await c.create_task(cid, t);
    (void)co_await c.list_tasks(cid);
    (void)co_await c.get_task(cid, tid);
    ghl::task_write tu;
    tu.title = "Send the link";
    (void)co_await c.update_task(cid, tid, tu);
    (void)co_await c.complete_task(cid, tid, true);
    (void)co_await c.delete_task(cid, tid);
    ghl::note_write n;
    n.body = "Called, wants a demo";
    (void)co_await c.create_note(cid, n);
    (void)co_await c.list_notes(cid);
    (void)co_await c.get_note(cid, nid);
    (void)co_await c.update_note(cid, nid, n);
    (void)co_await c.delete_note(cid, nid);
    (void)co_await c.list_appointments(cid);
    (void)co_await c.delete_contact(cid);
}

/// Both grants of POST /oauth/token.
asio::awaitable<void> token_calls(ghl::http_token_endpoint& endpoint) {
    ghl::token_request code;
    code.grant_type = "authorization_code";
    code.client_id = "client-id";
    code.client_secret = secret("client-secret");
    code.code = secret("the-code");
    code.user_type = "Location";
    (void)co_await endpoint.request_token(code);
    ghl::token_request refresh;
    refresh.grant_type = "refresh_token";
    refresh.client_id = "client-id";
    refresh.client_secret = secret("client-secret");
    refresh.refresh_token = secret("the-refresh-token");
    refresh.user_type = "Location";
    (void)co_await endpoint.request_token(refresh);
}

} // namespace

TEST_F(contract_test, every_contacts_call_is_valid_against_the_official_spec) {
    prism server(spec_dir() / "contacts.json", dir_, "contacts");
    ASSERT_TRUE(server.ready()) << server.log();
    asio::io_context io;
    auto c = make_client(io, server.port());
    run(io, [&] { return every_contacts_call(c); });
    EXPECT_EQ(seen_.size(), 24u);
    std::set<std::string> operations;
    for (const auto& r : seen_)
        operations.insert(r.operation);
    EXPECT_EQ(operations.size(), 22u) << "every endpoint of DESIGN §1";
    for (const auto& r : seen_)
        EXPECT_TRUE(r.status >= 200 && r.status < 300)
            << r.operation << " -> " << r.status << " " << r.error << "\n(prism log:\n"
            << server.log().substr(0, 6000) << ")";
}

TEST_F(contract_test, oauth_token_requests_are_valid_against_the_official_spec) {
    prism server(spec_dir() / "oauth.json", dir_, "oauth");
    ASSERT_TRUE(server.ready()) << server.log();
    asio::io_context io;
    ghl::http_options ho;
    ho.base_url = "http://127.0.0.1:" + std::to_string(server.port());
    auto http = std::make_shared<ghl::http_client>(io.get_executor(), ho);
    ghl::http_token_endpoint endpoint(http, [this](const ghl::request_record& r) {
        seen_.push_back({r.operation, r.status, r.error});
    });
    run(io, [&] { return token_calls(endpoint); });
    ASSERT_EQ(seen_.size(), 2u);
    for (const auto& r : seen_)
        EXPECT_TRUE(r.status >= 200 && r.status < 300)
            << r.operation << " -> " << r.status << " " << r.error << "\n(prism log:\n"
            << server.log().substr(0, 6000) << ")";
}
