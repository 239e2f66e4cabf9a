// ghl-sim against a tiny synchronous HTTP(S) client: shapes, statuses, paging, rate limits,
// OAuth, TLS, faults, webhooks and shutdown. Every socket read has a timeout (SO_RCVTIMEO).

#include "ghl_sim.hpp"

#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <future>
#include <gtest/gtest.h>
#include <map>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <optional>
#include <set>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <vector>

namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = net::ssl;
namespace bj = boost::json;
using tcp = net::ip::tcp;
using namespace std::chrono_literals;
using speak4::sim::fault_config;
using speak4::sim::options;
using speak4::sim::server;

constexpr const char* token = "sim-private-token";

struct reply {
    int status = 0;
    std::string body;
    std::map<std::string, std::string> headers; // lower-cased names
    beast::error_code ec;                       // set when the exchange failed
    bj::value json() const { return bj::parse(body); }
    bj::object obj() const { return json().as_object(); }
    std::string header(const std::string& name) const {
        auto it = headers.find(name);
        return it == headers.end() ? std::string() : it->second;
    }
};

struct request_spec {
    std::string method = "GET";
    std::string target = "/";
    std::string body;
    std::string content_type = "application/json";
    std::string auth = std::string("Bearer ") + token;
    std::optional<std::string> version = std::string("2021-07-28");
};

void set_timeouts(tcp::socket& s, int seconds) {
    timeval tv{seconds, 0};
    ::setsockopt(s.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(s.native_handle(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

template <class Stream>
reply exchange(Stream& stream, const request_spec& spec) {
    reply r;
    http::request<http::string_body> req{http::string_to_verb(spec.method), spec.target, 11};
    req.set(http::field::host, "localhost");
    if (!spec.auth.empty()) {
        req.set(http::field::authorization, spec.auth);
    }
    if (spec.version) {
        req.set("Version", *spec.version);
    }
    if (!spec.body.empty()) {
        req.set(http::field::content_type, spec.content_type);
        req.body() = spec.body;
    }
    req.keep_alive(false);
    req.prepare_payload();
    http::write(stream, req, r.ec);
    if (r.ec) {
        return r;
    }
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(std::uint64_t{64} * 1024 * 1024);
    http::read(stream, buffer, parser, r.ec);
    if (r.ec) {
        return r;
    }
    auto& res = parser.get();
    r.status = static_cast<int>(res.result_int());
    r.body = res.body();
    for (const auto& f : res) {
        std::string name(f.name_string());
        for (auto& ch : name) {
            ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        }
        r.headers[name] = std::string(f.value());
    }
    return r;
}

/// One request on a fresh connection (plain HTTP).
reply call(std::uint16_t port, const request_spec& spec, int timeout_seconds = 20) {
    net::io_context ioc;
    tcp::socket socket(ioc);
    beast::error_code ec;
    socket.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port), ec);
    if (ec) {
        reply r;
        r.ec = ec;
        return r;
    }
    set_timeouts(socket, timeout_seconds);
    return exchange(socket, spec);
}

/// One request over TLS, verifying the server against `ca_pem` for host "localhost".
reply call_tls(std::uint16_t port, const std::string& ca_pem, const request_spec& spec) {
    net::io_context ioc;
    ssl::context ctx(ssl::context::tls_client);
    ctx.add_certificate_authority(net::buffer(ca_pem));
    ctx.set_verify_mode(ssl::verify_peer);
    ssl::stream<tcp::socket> stream(ioc, ctx);
    stream.set_verify_callback(ssl::host_name_verification("localhost"));
    SSL_set_tlsext_host_name(stream.native_handle(), "localhost");
    reply r;
    stream.next_layer().connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port), r.ec);
    if (r.ec) {
        return r;
    }
    set_timeouts(stream.next_layer(), 20);
    stream.handshake(ssl::stream_base::client, r.ec);
    if (r.ec) {
        return r;
    }
    r = exchange(stream, spec);
    beast::error_code ignored;
    stream.shutdown(ignored); // stream_truncated here is benign: the response was complete
    return r;
}

request_spec get(std::string target) {
    request_spec s;
    s.target = std::move(target);
    return s;
}

request_spec send(std::string method, std::string target, const bj::value& body) {
    request_spec s;
    s.method = std::move(method);
    s.target = std::move(target);
    s.body = bj::serialize(body);
    return s;
}

std::string str(const bj::value& v) {
    return std::string(v.as_string());
}

class sim_test : public ::testing::Test {
protected:
    void start(options opt = {}) {
        sim_ = std::make_unique<server>(std::move(opt));
        sim_->start();
        port_ = sim_->port();
    }
    void SetUp() override {}
    void TearDown() override {
        if (sim_) {
            sim_->stop();
        }
    }
    reply do_(const request_spec& s) { return call(port_, s); }
    std::string loc() const { return sim_->location_id(); }

    std::unique_ptr<server> sim_;
    std::uint16_t port_ = 0;
};

// ---------------------------------------------------------------------------------------------

TEST_F(sim_test, create_returns_201_with_contact_shape_and_rate_limit_headers) {
    start();
    auto r = do_(send(
        "POST", "/contacts/",
        bj::object{{"locationId", loc()},
                   {"firstName", "Ada"},
                   {"lastName", "Lovelace"},
                   {"email", "Ada@Example.com"},
                   {"tags", bj::array{"vip"}},
                   {"customFields", bj::array{bj::object{{"id", "cf1"}, {"field_value", "87"}}}}}));
    ASSERT_FALSE(r.ec) << r.ec.message();
    ASSERT_EQ(r.status, 201) << r.body;
    auto c = r.obj().at("contact").as_object();
    EXPECT_EQ(str(c.at("id")).size(), 20U);
    EXPECT_EQ(str(c.at("emailLowerCase")), "ada@example.com");
    EXPECT_EQ(str(c.at("firstNameLowerCase")), "ada");
    EXPECT_EQ(c.at("customFields").as_array().at(0).as_object().at("value"), bj::value("87"));
    EXPECT_EQ(str(c.at("dateAdded")).size(), 24U); // 2021-07-02T05:18:26.704Z
    EXPECT_TRUE(r.obj().contains("traceId"));
    for (const char* h :
         {"x-ratelimit-limit-daily", "x-ratelimit-daily-remaining",
          "x-ratelimit-interval-milliseconds", "x-ratelimit-max", "x-ratelimit-remaining"}) {
        EXPECT_FALSE(r.header(h).empty()) << h;
    }
    // GET, PUT (succeded spelling, only given fields, tags replace), DELETE.
    const std::string id = str(c.at("id"));
    auto g = do_(get("/contacts/" + id));
    ASSERT_EQ(g.status, 200);
    EXPECT_EQ(str(g.obj().at("contact").at("lastName")), "Lovelace");
    auto p = do_(send("PUT", "/contacts/" + id,
                      bj::object{{"firstName", "Augusta"}, {"tags", bj::array{"a", "b"}}}));
    ASSERT_EQ(p.status, 200) << p.body;
    EXPECT_EQ(p.obj().at("succeded"), bj::value(true));
    EXPECT_EQ(str(p.obj().at("contact").at("lastName")), "Lovelace");
    EXPECT_EQ(p.obj().at("contact").at("tags"), (bj::array{"a", "b"}));
    EXPECT_GT(str(p.obj().at("contact").at("dateUpdated")), str(c.at("dateUpdated")));
    auto d = do_(send("DELETE", "/contacts/" + id, bj::object{}));
    EXPECT_EQ(d.status, 200);
    EXPECT_EQ(d.obj().at("succeded"), bj::value(true));
    auto gone = do_(get("/contacts/" + id));
    EXPECT_EQ(gone.status, 400);
    EXPECT_EQ(str(gone.obj().at("message")), "Contact with id " + id + " not found");
    EXPECT_EQ(sim_->get_stats().creates["contact"], 1);
    EXPECT_EQ(sim_->get_stats().by_route["POST /contacts/"], 1);
}

TEST_F(sim_test, create_without_trailing_slash_and_upsert) {
    start();
    auto r = do_(
        send("POST", "/contacts", bj::object{{"locationId", loc()}, {"email", "u@example.com"}}));
    ASSERT_EQ(r.status, 201) << r.body;
    auto u = do_(
        send("POST", "/contacts/upsert",
             bj::object{{"locationId", loc()}, {"email", "U@example.com"}, {"firstName", "Una"}}));
    ASSERT_EQ(u.status, 200) << u.body;
    EXPECT_EQ(u.obj().at("new"), bj::value(false));
    EXPECT_EQ(u.obj().at("contact").at("id"), r.obj().at("contact").at("id"));
    auto n = do_(send("POST", "/contacts/upsert",
                      bj::object{{"locationId", loc()}, {"phone", "+1 555 000 1111"}}));
    ASSERT_EQ(n.status, 200);
    EXPECT_EQ(n.obj().at("new"), bj::value(true));
}

TEST_F(sim_test, duplicate_contact_is_400_with_meta) {
    start();
    auto id = sim_->seed_contact(bj::object{{"firstName", "Ada"},
                                            {"lastName", "L"},
                                            {"email", "ada@example.com"},
                                            {"phone", "+15551234567"}});
    auto r = do_(send("POST", "/contacts/",
                      bj::object{{"locationId", loc()}, {"email", "ADA@example.com"}}));
    ASSERT_EQ(r.status, 400) << r.body;
    EXPECT_EQ(str(r.obj().at("message")), "This location does not allow duplicated contacts.");
    EXPECT_EQ(str(r.obj().at("meta").at("contactId")), id);
    EXPECT_EQ(str(r.obj().at("meta").at("contactName")), "Ada L");
    EXPECT_EQ(str(r.obj().at("meta").at("matchingField")), "email");
    auto p = do_(send("POST", "/contacts/",
                      bj::object{{"locationId", loc()}, {"phone", "+1 (555) 123-4567"}}));
    ASSERT_EQ(p.status, 400);
    EXPECT_EQ(str(p.obj().at("meta").at("matchingField")), "phone");
    // The duplicate search finds it; a miss is contact: null.
    auto d =
        do_(get("/contacts/search/duplicate?locationId=" + loc() + "&email=ada%40example.com"));
    ASSERT_EQ(d.status, 200) << d.body;
    EXPECT_EQ(str(d.obj().at("contact").at("id")), id);
    auto miss =
        do_(get("/contacts/search/duplicate?locationId=" + loc() + "&email=nobody%40example.com"));
    EXPECT_TRUE(miss.obj().at("contact").is_null());
    // With duplicates allowed the create goes through.
    sim_->set_allow_duplicates(true);
    EXPECT_EQ(do_(send("POST", "/contacts/",
                       bj::object{{"locationId", loc()}, {"email", "ada@example.com"}}))
                  .status,
              201);
}

TEST_F(sim_test, validation_422_has_array_message) {
    start();
    auto unknown =
        do_(send("POST", "/contacts/",
                 bj::object{{"locationId", loc()}, {"email", "x@example.com"}, {"foo", 1}}));
    ASSERT_EQ(unknown.status, 422) << unknown.body;
    EXPECT_EQ(unknown.obj().at("message"), (bj::array{"property foo should not exist"}));
    EXPECT_EQ(str(unknown.obj().at("error")), "Unprocessable Entity");
    auto missing = do_(send("POST", "/contacts/", bj::object{{"email", "x@example.com"}}));
    ASSERT_EQ(missing.status, 422);
    EXPECT_TRUE(missing.obj().at("message").is_array());
    auto id = sim_->seed_contact(bj::object{{"firstName", "T"}});
    // locationId is not part of UpdateContactDto.
    auto put = do_(send("PUT", "/contacts/" + id, bj::object{{"locationId", loc()}}));
    ASSERT_EQ(put.status, 422);
    EXPECT_EQ(put.obj().at("message"), (bj::array{"property locationId should not exist"}));
    auto task = do_(send("POST", "/contacts/" + id + "/tasks", bj::object{{"title", "x"}}));
    ASSERT_EQ(task.status, 422);
    EXPECT_EQ(task.obj().at("message").as_array().size(), 2U); // dueDate, completed
    auto note = do_(send("POST", "/contacts/" + id + "/notes", bj::object{}));
    EXPECT_EQ(note.status, 422);
    auto search = do_(send("POST", "/contacts/search", bj::object{{"locationId", loc()}}));
    ASSERT_EQ(search.status, 422);
    EXPECT_TRUE(search.obj().at("message").is_array());
    auto both = do_(send("POST", "/contacts/search",
                         bj::object{{"locationId", loc()},
                                    {"pageLimit", 10},
                                    {"page", 1},
                                    {"searchAfter", bj::array{1, "x"}}}));
    EXPECT_EQ(both.status, 422);
    auto big = do_(
        send("POST", "/contacts/search", bj::object{{"locationId", loc()}, {"pageLimit", 501}}));
    EXPECT_EQ(big.status, 422);
}

TEST_F(sim_test, auth_and_version_are_required) {
    start();
    auto s = get("/contacts/abc");
    s.auth = "Bearer wrong";
    auto r = do_(s);
    ASSERT_EQ(r.status, 401);
    EXPECT_EQ(
        r.body,
        R"({"statusCode":401,"message":"Invalid token: access token is invalid","error":"Unauthorized"})");
    s.auth.clear();
    EXPECT_EQ(do_(s).status, 401);
    auto v = get("/contacts/abc");
    v.version.reset();
    EXPECT_EQ(do_(v).status, 400);
}

TEST_F(sim_test, search_pages_every_contact_exactly_once_with_search_after) {
    start();
    auto ids = sim_->seed_contacts(1234);
    // A range that excludes the first 34 (their dateUpdated are 1 ms apart, in seed order).
    auto first = sim_->state().at("contacts").as_array();
    std::map<std::string, std::string> updated;
    for (const auto& c : first) {
        updated[str(c.at("id"))] = str(c.at("dateUpdated"));
    }
    const std::string from = updated[ids[34]];
    std::set<std::string> seen;
    bj::value after;
    long long total = -1;
    std::string last_key;
    for (int page = 0; page < 100; ++page) {
        bj::object body{
            {"locationId", loc()},
            {"pageLimit", 100},
            {"filters", bj::array{bj::object{{"field", "dateUpdated"},
                                             {"operator", "range"},
                                             {"value", bj::object{{"gte", from}}}}}},
            {"sort", bj::array{bj::object{{"field", "dateUpdated"}, {"direction", "asc"}}}}};
        if (!after.is_null()) {
            body["searchAfter"] = after;
        }
        auto r = do_(send("POST", "/contacts/search", body));
        ASSERT_EQ(r.status, 200) << r.body;
        auto o = r.obj();
        total = o.at("total").as_int64();
        const auto& contacts = o.at("contacts").as_array();
        for (const auto& c : contacts) {
            EXPECT_TRUE(seen.insert(str(c.at("id"))).second) << "repeated " << c.at("id");
            EXPECT_GE(str(c.at("dateUpdated")), last_key);
            last_key = str(c.at("dateUpdated"));
            EXPECT_EQ(c.at("searchAfter").as_array().size(), 2U);
        }
        if (contacts.size() < 100) {
            break;
        }
        after = contacts.back().at("searchAfter");
    }
    EXPECT_EQ(total, 1200);
    EXPECT_EQ(seen.size(), 1200U);
    EXPECT_EQ(seen.count(ids[33]), 0U);
    EXPECT_EQ(seen.count(ids[34]), 1U);

    // Epoch-ms bounds work the same; page mode; sort by name desc; email/tags filters.
    auto ms = do_(send(
        "POST", "/contacts/search",
        bj::object{
            {"locationId", loc()},
            {"pageLimit", 5},
            {"page", 2},
            {"filters",
             bj::array{bj::object{{"field", "tags"}, {"operator", "contains"}, {"value", "even"}}}},
            {"sort",
             bj::array{bj::object{{"field", "firstNameLowerCase"}, {"direction", "desc"}}}}}));
    ASSERT_EQ(ms.status, 200) << ms.body;
    EXPECT_EQ(ms.obj().at("total").as_int64(), 617);
    EXPECT_EQ(ms.obj().at("contacts").as_array().size(), 5U);
    auto by_email = do_(
        send("POST", "/contacts/search",
             bj::object{{"locationId", loc()},
                        {"pageLimit", 5},
                        {"filters", bj::array{bj::object{{"field", "email"},
                                                         {"operator", "eq"},
                                                         {"value", "CONTACT7@example.com"}}}}}));
    ASSERT_EQ(by_email.status, 200);
    ASSERT_EQ(by_email.obj().at("contacts").as_array().size(), 1U);
    EXPECT_EQ(str(by_email.obj().at("contacts").at(0).at("id")), ids[6]);
    auto cap = do_(send("POST", "/contacts/search",
                        bj::object{{"locationId", loc()}, {"pageLimit", 500}, {"page", 21}}));
    EXPECT_EQ(cap.status, 422);
}

/// Pages /contacts/search with searchAfter until a short page; returns the ids in order.
std::vector<std::string> page_all(std::uint16_t port, const std::string& location,
                                  const bj::array& sort, int limit) {
    std::vector<std::string> ids;
    bj::value after;
    for (int page = 0; page < 10000; ++page) {
        bj::object body{{"locationId", location}, {"pageLimit", limit}, {"sort", sort}};
        if (!after.is_null()) {
            body["searchAfter"] = after;
        }
        auto r = call(port, send("POST", "/contacts/search", body));
        EXPECT_EQ(r.status, 200) << r.body;
        if (r.status != 200) {
            break;
        }
        auto o = r.obj();
        const auto& contacts = o.at("contacts").as_array();
        for (const auto& c : contacts) {
            ids.push_back(str(c.at("id")));
        }
        if (static_cast<int>(contacts.size()) < limit) {
            break;
        }
        after = contacts.back().at("searchAfter");
    }
    return ids;
}

TEST_F(sim_test, search_after_descending_ties_and_multi_field_sorts) {
    options o;
    o.rate_limit = false;
    start(o);
    auto seeded = sim_->seed_contacts(250);
    // Five contacts updated in the same millisecond: the id breaks the tie.
    for (int i = 0; i < 5; ++i) {
        sim_->seed_contact(
            bj::object{{"firstName", "Tie"}, {"lastName", "Same"}, {"dateUpdated", 1700000000000}});
    }
    auto desc = page_all(port_, loc(),
                         bj::array{bj::object{{"field", "dateUpdated"}, {"direction", "desc"}}}, 7);
    EXPECT_EQ(desc.size(), 255U);
    EXPECT_EQ(std::set<std::string>(desc.begin(), desc.end()).size(), 255U);
    EXPECT_EQ(desc.front(), seeded.back()); // newest first
    auto ties = page_all(port_, loc(),
                         bj::array{bj::object{{"field", "dateUpdated"}, {"direction", "asc"}}}, 1);
    EXPECT_EQ(ties.size(), 255U);
    EXPECT_EQ(std::set<std::string>(ties.begin(), ties.end()).size(), 255U);
    auto multi =
        page_all(port_, loc(),
                 bj::array{bj::object{{"field", "lastNameLowerCase"}, {"direction", "asc"}},
                           bj::object{{"field", "dateAdded"}, {"direction", "desc"}}},
                 13);
    EXPECT_EQ(multi.size(), 255U);
    EXPECT_EQ(std::set<std::string>(multi.begin(), multi.end()).size(), 255U);
    auto names =
        page_all(port_, loc(),
                 bj::array{bj::object{{"field", "firstNameLowerCase"}, {"direction", "desc"}}}, 10);
    EXPECT_EQ(std::set<std::string>(names.begin(), names.end()).size(), 255U);
}

TEST_F(sim_test, search_scales_to_100k_contacts) {
    options o;
    o.rate_limit = false; // 200 pages would exceed the 100/10 s burst
    start(o);
    const auto t0 = std::chrono::steady_clock::now();
    sim_->seed_contacts(100000);
    std::size_t seen = 0;
    bj::value after;
    for (int page = 0; page < 300; ++page) {
        bj::object body{
            {"locationId", loc()},
            {"pageLimit", 500},
            {"filters", bj::array{bj::object{{"field", "dateUpdated"},
                                             {"operator", "range"},
                                             {"value", bj::object{{"gte", 0}}}}}},
            {"sort", bj::array{bj::object{{"field", "dateUpdated"}, {"direction", "asc"}}}}};
        if (!after.is_null()) {
            body["searchAfter"] = after;
        }
        auto r = do_(send("POST", "/contacts/search", body));
        ASSERT_EQ(r.status, 200) << r.body;
        auto o = r.obj();
        const auto& contacts = o.at("contacts").as_array();
        seen += contacts.size();
        if (contacts.size() < 500) {
            break;
        }
        after = contacts.back().at("searchAfter");
    }
    EXPECT_EQ(seen, 100000U);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 120s);
}

TEST_F(sim_test, legacy_list_pages_with_start_after_and_start_after_id) {
    options o;
    o.rate_limit = false;
    start(o);
    sim_->seed_contacts(45);
    std::set<std::string> seen;
    std::string target = "/contacts/?locationId=" + loc() + "&limit=10";
    int pages = 0;
    for (;;) {
        auto r = do_(get(target));
        ASSERT_EQ(r.status, 200) << r.body;
        auto o2 = r.obj();
        ++pages;
        for (const auto& c : o2.at("contacts").as_array()) {
            EXPECT_TRUE(seen.insert(str(c.at("id"))).second);
        }
        const auto& meta = o2.at("meta").as_object();
        EXPECT_EQ(meta.at("total").as_int64(), 45);
        EXPECT_EQ(meta.at("currentPage").as_int64(), pages);
        if (meta.at("nextPageUrl").is_null()) {
            break;
        }
        ASSERT_LT(pages, 10);
        target = "/contacts/?locationId=" + loc() +
                 "&limit=10&startAfter=" + std::to_string(meta.at("startAfter").as_int64()) +
                 "&startAfterId=" + str(meta.at("startAfterId"));
    }
    EXPECT_EQ(pages, 5);
    EXPECT_EQ(seen.size(), 45U);
    EXPECT_EQ(do_(get("/contacts/?locationId=" + loc() + "&limit=101")).status, 422);
}

TEST_F(sim_test, rate_limit_headers_and_429_after_burst) {
    options o;
    o.burst = 3;
    o.window_ms = 60000;
    o.send_retry_after = true;
    start(o);
    auto id = sim_->seed_contact(bj::object{{"firstName", "R"}});
    for (int i = 0; i < 3; ++i) {
        auto r = do_(get("/contacts/" + id));
        ASSERT_EQ(r.status, 200);
        EXPECT_EQ(r.header("x-ratelimit-max"), "3");
        EXPECT_EQ(r.header("x-ratelimit-remaining"), std::to_string(2 - i));
        EXPECT_EQ(r.header("x-ratelimit-interval-milliseconds"), "60000");
    }
    auto limited = do_(get("/contacts/" + id));
    ASSERT_EQ(limited.status, 429);
    EXPECT_EQ(limited.body, R"({"statusCode":429,"message":"Too many requests"})");
    EXPECT_EQ(limited.header("x-ratelimit-remaining"), "0");
    EXPECT_FALSE(limited.header("retry-after").empty());
    EXPECT_EQ(sim_->get_stats().rate_limited, 1);
    sim_->set_rate_limits(true, 3, 100, 1000);
    std::this_thread::sleep_for(150ms);
    EXPECT_EQ(do_(get("/contacts/" + id)).status, 200);
}

TEST_F(sim_test, oauth_code_exchange_refresh_rotation_and_reuse) {
    options o;
    o.access_token_ttl_seconds = 3600;
    start(o);
    auto form = [](const std::string& body) {
        request_spec s;
        s.method = "POST";
        s.target = "/oauth/token";
        s.body = body;
        s.content_type = "application/x-www-form-urlencoded";
        s.auth.clear();
        s.version.reset();
        return s;
    };
    const std::string client = "client_id=sim-client-id&client_secret=sim-client-secret";
    const std::string code = sim_->issue_auth_code();
    auto r =
        do_(form(client + "&grant_type=authorization_code&code=" + code + "&user_type=Location"));
    ASSERT_EQ(r.status, 200) << r.body;
    auto tok = r.obj();
    EXPECT_EQ(str(tok.at("token_type")), "Bearer");
    EXPECT_EQ(tok.at("expires_in").as_int64(), 3600);
    EXPECT_EQ(str(tok.at("userType")), "Location");
    EXPECT_EQ(str(tok.at("locationId")), loc());
    EXPECT_FALSE(str(tok.at("userId")).empty());
    // The code is single-use.
    EXPECT_EQ(do_(form(client + "&grant_type=authorization_code&code=" + code)).status, 400);
    // The access token works.
    auto id = sim_->seed_contact(bj::object{{"firstName", "O"}});
    auto api = get("/contacts/" + id);
    api.auth = "Bearer " + str(tok.at("access_token"));
    EXPECT_EQ(do_(api).status, 200);
    // Refresh rotates; the old refresh token is then invalid.
    const std::string rt1 = str(tok.at("refresh_token"));
    auto r2 = do_(form(client + "&grant_type=refresh_token&refresh_token=" + rt1));
    ASSERT_EQ(r2.status, 200) << r2.body;
    EXPECT_NE(str(r2.obj().at("refresh_token")), rt1);
    auto reuse = do_(form(client + "&grant_type=refresh_token&refresh_token=" + rt1));
    ASSERT_EQ(reuse.status, 400);
    EXPECT_EQ(reuse.body,
              R"({"statusCode":400,"message":"Invalid grant: refresh token is invalid"})");
    // Inactive location: 400, and the refresh token still works afterwards.
    const std::string rt2 = str(r2.obj().at("refresh_token"));
    sim_->set_location_active(false);
    auto inactive = do_(form(client + "&grant_type=refresh_token&refresh_token=" + rt2));
    EXPECT_EQ(inactive.status, 400);
    EXPECT_EQ(str(inactive.obj().at("message")), "Location is not active");
    sim_->set_location_active(true);
    EXPECT_EQ(do_(form(client + "&grant_type=refresh_token&refresh_token=" + rt2)).status, 200);
    // Wrong secret; expired access tokens get 401.
    EXPECT_EQ(do_(form("client_id=sim-client-id&client_secret=nope&grant_type=refresh_token&"
                       "refresh_token=x"))
                  .status,
              401);
    sim_->expire_access_tokens();
    EXPECT_EQ(do_(api).status, 401);
}

TEST_F(sim_test, tls_verifies_with_the_test_ca_and_fails_with_another) {
    options o;
    o.tls = true;
    o.pki = speak4::sim::make_test_pki({"localhost"});
    start(o);
    EXPECT_EQ(sim_->base_url().rfind("https://localhost:", 0), 0U);
    auto id = sim_->seed_contact(bj::object{{"firstName", "T"}});
    auto ok = call_tls(port_, o.pki.ca_cert_pem, get("/contacts/" + id));
    ASSERT_FALSE(ok.ec) << ok.ec.message();
    EXPECT_EQ(ok.status, 200);
    auto other = speak4::sim::make_test_pki();
    auto bad = call_tls(port_, other.ca_cert_pem, get("/contacts/" + id));
    EXPECT_TRUE(bad.ec);
    EXPECT_EQ(bad.status, 0);
}

TEST_F(sim_test, fault_error_rate_answers_the_status_without_applying) {
    start();
    fault_config f;
    f.error_rate = 1;
    f.error_statuses = {503};
    sim_->set_faults(f);
    auto r = do_(
        send("POST", "/contacts/", bj::object{{"locationId", loc()}, {"email", "e@example.com"}}));
    EXPECT_EQ(r.status, 503);
    EXPECT_TRUE(sim_->state().at("contacts").as_array().empty());
    EXPECT_EQ(sim_->get_stats().faults["error"], 1);
    // Admin routes are never faulted.
    auto admin = call(port_, get("/_sim/stats"));
    EXPECT_EQ(admin.status, 200);
}

TEST_F(sim_test, fault_drop_after_apply_writes_then_closes) {
    start();
    auto id = sim_->seed_contact(bj::object{{"firstName", "D"}});
    fault_config f;
    f.drop_after_apply_rate = 1;
    f.routes = {"POST /contacts/:contactId/tasks"};
    sim_->set_faults(f);
    auto r = do_(send(
        "POST", "/contacts/" + id + "/tasks",
        bj::object{{"title", "Call"}, {"dueDate", "2030-01-01T10:00:00Z"}, {"completed", false}}));
    EXPECT_TRUE(r.ec);
    EXPECT_EQ(r.status, 0);
    auto tasks = sim_->state().at("tasks").as_array();
    ASSERT_EQ(tasks.size(), 1U);
    EXPECT_EQ(str(tasks[0].at("title")), "Call");
    EXPECT_EQ(sim_->get_stats().creates_by_key["task " + id + " Call"], 1);
    // Other routes are untouched.
    EXPECT_EQ(do_(get("/contacts/" + id + "/tasks")).status, 200);
    auto log = sim_->requests();
    ASSERT_GE(log.size(), 2U);
    EXPECT_EQ(log[0].fault, "drop_after");
    EXPECT_EQ(log[0].status, 0);
}

TEST_F(sim_test, fault_malformed_and_slow_bodies) {
    start();
    auto id = sim_->seed_contact(bj::object{{"firstName", "M"}});
    fault_config f;
    f.malformed_rate = 1;
    sim_->set_faults(f);
    auto bad = do_(get("/contacts/" + id));
    EXPECT_EQ(bad.status, 200);
    boost::system::error_code ec;
    bj::parse(bad.body, ec);
    EXPECT_TRUE(ec);
    f = {};
    f.slow_body_rate = 1;
    f.slow_body_chunk_bytes = 64;
    f.slow_body_delay_ms = 5;
    sim_->set_faults(f);
    auto slow = do_(get("/contacts/" + id));
    ASSERT_EQ(slow.status, 200) << slow.ec.message();
    EXPECT_EQ(str(slow.obj().at("contact").at("id")), id);
}

TEST_F(sim_test, stop_returns_promptly_while_a_timeout_fault_holds_a_connection) {
    start();
    fault_config f;
    f.timeout_rate = 1;
    sim_->set_faults(f);
    auto pending = std::async(std::launch::async,
                              [port = port_] { return call(port, get("/contacts/x"), 30); });
    // Wait until the request has been received.
    for (int i = 0; i < 200 && sim_->get_stats().requests == 0; ++i) {
        std::this_thread::sleep_for(10ms);
    }
    ASSERT_EQ(sim_->get_stats().requests, 1);
    const auto t0 = std::chrono::steady_clock::now();
    sim_->stop();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
    ASSERT_EQ(pending.wait_for(10s), std::future_status::ready);
    auto r = pending.get();
    EXPECT_EQ(r.status, 0);
    EXPECT_TRUE(r.ec);
}

TEST_F(sim_test, tags_tasks_notes_and_appointments) {
    start();
    auto id = sim_->seed_contact(bj::object{{"firstName", "S"}, {"tags", bj::array{"a"}}});
    auto add =
        do_(send("POST", "/contacts/" + id + "/tags", bj::object{{"tags", bj::array{"b", "a"}}}));
    ASSERT_EQ(add.status, 201) << add.body;
    EXPECT_EQ(add.obj().at("tags"), (bj::array{"a", "b"}));
    auto del =
        do_(send("DELETE", "/contacts/" + id + "/tags", bj::object{{"tags", bj::array{"a"}}}));
    ASSERT_EQ(del.status, 200);
    EXPECT_EQ(del.obj().at("tags"), (bj::array{"b"}));

    auto t = do_(send(
        "POST", "/contacts/" + id + "/tasks",
        bj::object{{"title", "T1"}, {"dueDate", "2030-01-01T10:00:00Z"}, {"completed", false}}));
    ASSERT_EQ(t.status, 201) << t.body;
    auto task = t.obj().at("task").as_object();
    EXPECT_EQ(str(task.at("dueDate")), "2030-01-01T10:00:00.000Z");
    EXPECT_EQ(str(task.at("contactId")), id);
    const std::string tid = str(task.at("id"));
    auto done = do_(send("PUT", "/contacts/" + id + "/tasks/" + tid + "/completed",
                         bj::object{{"completed", true}}));
    ASSERT_EQ(done.status, 200);
    EXPECT_EQ(done.obj().at("task").at("completed"), bj::value(true));
    EXPECT_EQ(
        do_(send("PUT", "/contacts/" + id + "/tasks/" + tid + "/completed", bj::object{})).status,
        422);
    EXPECT_EQ(
        do_(send("PUT", "/contacts/" + id + "/tasks/" + tid, bj::object{{"title", "T2"}})).status,
        200);
    EXPECT_EQ(do_(get("/contacts/" + id + "/tasks")).obj().at("tasks").as_array().size(), 1U);
    auto td = do_(send("DELETE", "/contacts/" + id + "/tasks/" + tid, bj::object{}));
    EXPECT_EQ(td.obj().at("succeded"), bj::value(true));
    EXPECT_EQ(do_(get("/contacts/" + id + "/tasks/" + tid)).status, 404);

    auto n = do_(send("POST", "/contacts/" + id + "/notes", bj::object{{"body", "hello"}}));
    ASSERT_EQ(n.status, 201) << n.body;
    const std::string nid = str(n.obj().at("note").at("id"));
    EXPECT_EQ(str(do_(get("/contacts/" + id + "/notes/" + nid)).obj().at("note").at("body")),
              "hello");
    EXPECT_EQ(
        do_(send("PUT", "/contacts/" + id + "/notes/" + nid, bj::object{{"body", "bye"}})).status,
        200);
    EXPECT_EQ(do_(send("DELETE", "/contacts/" + id + "/notes/" + nid, bj::object{})).status, 200);

    sim_->seed_appointment(id,
                           bj::object{{"title", "Demo"}, {"startTime", "2030-05-01T09:00:00Z"}});
    auto a = do_(get("/contacts/" + id + "/appointments"));
    ASSERT_EQ(a.status, 200);
    EXPECT_EQ(str(a.obj().at("events").at(0).at("startTime")), "2030-05-01 09:00:00");

    sim_->update_contact(id, bj::object{{"businessId", "641c094001436dbc2081e642"}});
    auto b = do_(get("/contacts/business/641c094001436dbc2081e642?locationId=" + loc()));
    ASSERT_EQ(b.status, 200) << b.body;
    EXPECT_EQ(b.obj().at("count").as_int64(), 1);
    EXPECT_EQ(do_(get("/contacts/" + std::string(20, 'Z') + "/tasks")).status, 400);
}

TEST_F(sim_test, admin_interface_over_http) {
    start();
    auto seed = call(port_, send("POST", "/_sim/contacts",
                                 bj::object{{"firstName", "Admin"}, {"email", "a@example.com"}}));
    ASSERT_EQ(seed.status, 201) << seed.body;
    const std::string id = str(seed.obj().at("id"));
    EXPECT_EQ(
        call(port_, send("PATCH", "/_sim/contacts/" + id, bj::object{{"lastName", "Z"}})).status,
        200);
    EXPECT_EQ(
        call(port_, send("POST", "/_sim/contacts/" + id + "/notes", bj::object{{"body", "n"}}))
            .status,
        201);
    EXPECT_EQ(call(port_, send("POST", "/_sim/bulk_seed", bj::object{{"count", 10}})).status, 201);
    auto state = call(port_, get("/_sim/state"));
    EXPECT_EQ(state.obj().at("contacts").as_array().size(), 11U);
    EXPECT_EQ(state.obj().at("notes").as_array().size(), 1U);
    EXPECT_EQ(call(port_, send("PUT", "/_sim/faults",
                               bj::object{{"error_rate", 1}, {"error_statuses", bj::array{500}}}))
                  .status,
              200);
    EXPECT_EQ(sim_->faults().error_rate, 1);
    EXPECT_EQ(do_(get("/contacts/" + id)).status, 500);
    auto code = call(port_, send("POST", "/_sim/oauth/code", bj::object{}));
    EXPECT_FALSE(str(code.obj().at("code")).empty());
    EXPECT_EQ(
        call(port_, send("POST", "/_sim/location/active", bj::object{{"active", false}})).status,
        200);
    EXPECT_EQ(call(port_, send("POST", "/_sim/reset", bj::object{})).status, 200);
    EXPECT_TRUE(sim_->state().at("contacts").as_array().empty());
    EXPECT_EQ(sim_->get_stats().requests, 0);
    EXPECT_EQ(call(port_, get("/_sim/nope")).status, 404);
}

// A one-shot webhook receiver: accepts connections, answers 200, keeps what it got.
struct receiver {
    net::io_context ioc;
    tcp::acceptor acceptor{ioc, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0)};
    std::thread thread;
    std::mutex mutex;
    std::vector<http::request<http::string_body>> got;
    std::atomic<bool> done{false};

    void run(int n) {
        thread = std::thread([this, n] {
            for (int i = 0; i < n; ++i) {
                tcp::socket s(ioc);
                beast::error_code ec;
                acceptor.accept(s, ec);
                if (ec || done) {
                    return;
                }
                set_timeouts(s, 10);
                beast::flat_buffer buf;
                http::request<http::string_body> req;
                http::read(s, buf, req, ec);
                http::response<http::string_body> res{http::status::ok, 11};
                res.keep_alive(false);
                res.prepare_payload();
                http::write(s, res, ec);
                std::lock_guard lock(mutex);
                got.push_back(std::move(req));
            }
        });
    }
    ~receiver() {
        done = true;
        // close() alone does not wake a blocked accept() on Linux; shutdown() does.
        ::shutdown(acceptor.native_handle(), SHUT_RDWR);
        beast::error_code ec;
        acceptor.close(ec);
        if (thread.joinable()) {
            thread.join();
        }
    }
};

bool verify(const std::string& pem, const EVP_MD* md, const std::string& body,
            const std::string& sig_b64) {
    BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
    EVP_PKEY* key = PEM_read_bio_PUBKEY(bio, nullptr, nullptr, nullptr);
    BIO_free(bio);
    if (key == nullptr) {
        return false;
    }
    std::string sig(sig_b64.size(), '\0');
    int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(sig.data()),
                            reinterpret_cast<const unsigned char*>(sig_b64.data()),
                            static_cast<int>(sig_b64.size()));
    if (n < 0) {
        EVP_PKEY_free(key);
        return false;
    }
    // EVP_DecodeBlock counts base64 padding as zero bytes.
    std::size_t len = static_cast<std::size_t>(n);
    if (sig_b64.size() >= 1 && sig_b64.back() == '=') {
        --len;
    }
    if (sig_b64.size() >= 2 && sig_b64[sig_b64.size() - 2] == '=') {
        --len;
    }
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    bool ok =
        EVP_DigestVerifyInit(ctx, nullptr, md, nullptr, key) == 1 &&
        EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(sig.data()), len,
                         reinterpret_cast<const unsigned char*>(body.data()), body.size()) == 1;
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(key);
    return ok;
}

TEST_F(sim_test, webhooks_are_signed_with_ed25519_and_rsa) {
    receiver rx;
    const auto rx_port = rx.acceptor.local_endpoint().port();
    rx.run(2);
    options o;
    o.webhook_url = "http://127.0.0.1:" + std::to_string(rx_port) + "/webhooks/ghl";
    start(o);
    auto id = sim_->seed_contact(bj::object{{"firstName", "W"}, {"email", "w@example.com"}});
    sim_->update_contact(id, bj::object{{"lastName", "X"}});
    for (int i = 0; i < 500; ++i) {
        {
            std::lock_guard lock(rx.mutex);
            if (rx.got.size() == 2) {
                break;
            }
        }
        std::this_thread::sleep_for(10ms);
    }
    std::lock_guard lock(rx.mutex);
    ASSERT_EQ(rx.got.size(), 2U);
    const auto& first = rx.got[0];
    auto payload = bj::parse(first.body()).as_object();
    EXPECT_EQ(str(payload.at("type")), "ContactCreate");
    EXPECT_EQ(str(payload.at("id")), id);
    EXPECT_EQ(str(payload.at("locationId")), loc());
    EXPECT_FALSE(str(payload.at("webhookId")).empty());
    EXPECT_FALSE(str(payload.at("timestamp")).empty());
    EXPECT_EQ(std::string(first.target()), "/webhooks/ghl");
    const std::string sig(first["x-ghl-signature"]);
    EXPECT_TRUE(verify(sim_->webhook_public_key_pem(), nullptr, first.body(), sig));
    EXPECT_FALSE(verify(sim_->webhook_public_key_pem(), nullptr, first.body() + " ", sig));
    EXPECT_TRUE(verify(sim_->webhook_rsa_public_key_pem(), EVP_sha256(), first.body(),
                       std::string(first["x-wh-signature"])));
    EXPECT_EQ(str(bj::parse(rx.got[1].body()).at("type")), "ContactUpdate");
    // The sim's own signing helper matches, and deliveries are recorded.
    EXPECT_EQ(sim_->sign_webhook(first.body()), sig);
    for (int i = 0; i < 200 && sim_->get_stats().webhooks_sent < 2; ++i) {
        std::this_thread::sleep_for(10ms);
    }
    EXPECT_EQ(sim_->get_stats().webhooks_sent, 2);
    auto recs = sim_->webhooks();
    ASSERT_EQ(recs.size(), 2U);
    EXPECT_EQ(recs[0].status, 200);
}

TEST_F(sim_test, ids_are_deterministic_from_the_seed) {
    options o;
    o.seed = 42;
    server a(o);
    server b(o);
    EXPECT_EQ(a.seed_contact(bj::object{{"firstName", "x"}}),
              b.seed_contact(bj::object{{"firstName", "x"}}));
}

} // namespace
