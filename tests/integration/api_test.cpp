// lib/api: the local HTTP API in process. A temp-dir database behind a db_worker, the server on
// 127.0.0.1:0 driven by an io_context thread, and a small blocking HTTP client over raw sockets
// (poll() with a timeout on every read, so no test can hang).

#include "api/server.hpp"
#include "api/webhook_verify.hpp"
#include "core/clock.hpp"
#include "core/error.hpp"
#include "core/metrics.hpp"
#include "core/time.hpp"
#include "store/database.hpp"
#include "store/db_worker.hpp"
#include "store/migrations.hpp"
#include "support/test_support.hpp"

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <arpa/inet.h>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <cerrno>
#include <future>
#include <gtest/gtest.h>
#include <map>
#include <netinet/in.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <optional>
#include <poll.h>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <utility>

using namespace speak4;
using namespace std::chrono_literals;
using speak4::testing::temp_dir;

namespace {

namespace net = boost::asio;
namespace http = boost::beast::http;
namespace bj = boost::json;

const std::string token = "test-token-0123456789";

// --- a blocking HTTP/1.1 client with timeouts --------------------------------------------------

struct response {
    int status = 0;
    std::map<std::string, std::string> headers; // lower-case names
    std::string body;
    bool keep_alive = true;

    std::string header(const std::string& name) const {
        const auto it = headers.find(name);
        return it == headers.end() ? std::string() : it->second;
    }

    bj::value json() const {
        boost::system::error_code ec;
        auto v = bj::parse(body, ec);
        return ec ? bj::value(nullptr) : v;
    }
    std::string error_code() const {
        const auto v = json();
        if (!v.is_object() || !v.as_object().contains("error"))
            return "";
        const auto& e = v.as_object().at("error");
        return e.is_object() && e.as_object().contains("code") && e.at("code").is_string()
                   ? std::string(e.at("code").as_string())
                   : "";
    }
    std::string error_field() const {
        const auto v = json();
        if (!v.is_object() || !v.as_object().contains("error") ||
            !v.at("error").as_object().contains("field"))
            return "";
        return std::string(v.at("error").at("field").as_string());
    }
    /// Every error response must be {"error":{"code":"...","message":"..."}}.
    bool is_json_error() const {
        const auto v = json();
        if (!v.is_object())
            return false;
        const auto* e = v.as_object().if_contains("error");
        return e && e->is_object() && e->as_object().contains("code") &&
               e->at("code").is_string() && e->as_object().contains("message") &&
               e->at("message").is_string() && !e->at("message").as_string().empty();
    }
};

std::ostream& operator<<(std::ostream& os, const response& r) {
    return os << r.status << " " << r.body;
}

class http_client {
public:
    explicit http_client(unsigned short port) {
        fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
            error_ = errno;
    }
    ~http_client() {
        if (fd_ >= 0)
            ::close(fd_);
    }
    http_client(const http_client&) = delete;
    http_client& operator=(const http_client&) = delete;

    bool connected() const { return error_ == 0; }
    int connect_error() const { return error_; }

    bool send(std::string_view data) {
        while (!data.empty()) {
            const auto n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                return false;
            data.remove_prefix(static_cast<std::size_t>(n));
        }
        return true;
    }

    /// One final response (1xx skipped); nullopt on timeout, or if the server closed first.
    std::optional<response> read(std::chrono::milliseconds timeout = 20s) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            http::response_parser<http::string_body> p;
            p.eager(true);
            p.body_limit(std::uint64_t{16} * 1024 * 1024);
            for (;;) {
                if (!buf_.empty()) {
                    boost::system::error_code ec;
                    const auto n = p.put(net::buffer(buf_), ec);
                    buf_.erase(0, n);
                    if (ec && ec != http::error::need_more)
                        return std::nullopt;
                    if (p.is_done())
                        break;
                    if (n > 0 && !ec)
                        continue;
                }
                if (!fill(deadline)) {
                    if (eof_ && p.need_eof()) {
                        boost::system::error_code ec;
                        p.put_eof(ec);
                        if (!ec && p.is_done())
                            break;
                    }
                    return std::nullopt;
                }
            }
            auto msg = p.release();
            if (msg.result_int() / 100 == 1)
                continue;
            response r;
            r.status = static_cast<int>(msg.result_int());
            for (const auto& f : msg) {
                std::string name(f.name_string());
                for (auto& c : name)
                    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
                r.headers[name] = std::string(f.value());
            }
            r.keep_alive = msg.keep_alive();
            r.body = std::move(msg.body());
            return r;
        }
    }

    /// Whatever bytes arrive within `timeout` (at least one read), consumed.
    std::string read_raw(std::chrono::milliseconds timeout = 10s) {
        if (buf_.empty())
            fill(std::chrono::steady_clock::now() + timeout);
        return std::exchange(buf_, std::string());
    }

    /// True when the server closes the connection (EOF or reset) within `timeout`.
    bool wait_closed(std::chrono::milliseconds timeout = 10s) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        buf_.clear();
        while (fill(deadline))
            buf_.clear();
        return eof_;
    }

private:
    bool fill(std::chrono::steady_clock::time_point deadline) {
        for (;;) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0)
                return false;
            pollfd pfd{fd_, POLLIN, 0};
            const int rc = ::poll(&pfd, 1, static_cast<int>(left.count()));
            if (rc < 0 && errno == EINTR)
                continue;
            if (rc <= 0)
                return false;
            char tmp[16384];
            const auto n = ::recv(fd_, tmp, sizeof tmp, 0);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                eof_ = true;
                return false;
            }
            buf_.append(tmp, static_cast<std::size_t>(n));
            return true;
        }
    }

    int fd_ = -1;
    int error_ = 0;
    bool eof_ = false;
    std::string buf_;
};

std::string make_request(std::string_view method, std::string_view target,
                         std::string_view body = {}, const std::vector<std::string>& headers = {},
                         bool with_length = true) {
    std::string r =
        std::string(method) + " " + std::string(target) + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    for (const auto& h : headers)
        r += h + "\r\n";
    if (with_length && (!body.empty() || method == "POST"))
        r += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    r += "\r\n";
    r += body;
    return r;
}

std::string auth(const std::string& t = token) {
    return "Authorization: Bearer " + t;
}

// --- test keys -------------------------------------------------------------------------------

struct pkey_deleter {
    void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};

class test_key {
public:
    explicit test_key(const char* type, std::size_t bits = 0)
        : key_(bits ? EVP_PKEY_Q_keygen(nullptr, nullptr, type, bits)
                    : EVP_PKEY_Q_keygen(nullptr, nullptr, type)) {
        if (!key_)
            throw std::runtime_error("keygen failed");
    }
    std::string public_pem() const {
        BIO* bio = BIO_new(BIO_s_mem());
        PEM_write_bio_PUBKEY(bio, key_.get());
        char* data = nullptr;
        const long n = BIO_get_mem_data(bio, &data);
        std::string pem(data, static_cast<std::size_t>(n));
        BIO_free(bio);
        return pem;
    }
    api::public_key public_key() const {
        auto k = api::public_key::from_pem(public_pem());
        if (!k)
            throw std::runtime_error(k.error());
        return *k;
    }
    std::string sign(std::string_view body) const {
        EVP_MD_CTX* ctx = EVP_MD_CTX_new();
        const EVP_MD* md = EVP_PKEY_is_a(key_.get(), "ED25519") ? nullptr : EVP_sha256();
        std::size_t len = 0;
        const auto* data = reinterpret_cast<const unsigned char*>(body.data());
        EVP_DigestSignInit(ctx, nullptr, md, nullptr, key_.get());
        EVP_DigestSign(ctx, nullptr, &len, data, body.size());
        std::string sig(len, '\0');
        EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len, data, body.size());
        EVP_MD_CTX_free(ctx);
        sig.resize(len);
        std::string out(4 * ((sig.size() + 2) / 3) + 1, '\0');
        out.resize(static_cast<std::size_t>(EVP_EncodeBlock(
            reinterpret_cast<unsigned char*>(out.data()),
            reinterpret_cast<const unsigned char*>(sig.data()), static_cast<int>(sig.size()))));
        return out;
    }

private:
    std::unique_ptr<EVP_PKEY, pkey_deleter> key_;
};

const test_key& ed_key() {
    static const test_key k("ED25519");
    return k;
}
const test_key& rsa_key() {
    static const test_key k("RSA", 2048);
    return k;
}

// --- Prometheus text check (the full validator lives in tests/unit/metrics_test.cpp) ----------

std::vector<std::string> check_prometheus(const std::string& text,
                                          std::map<std::string, double>& samples) {
    static const std::regex sample_re(
        R"re(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*\})? (\S+)$)re");
    static const std::regex type_re(
        R"(^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$)");
    std::vector<std::string> problems;
    std::map<std::string, std::string> types;
    std::istringstream in(text);
    std::string line;
    std::map<std::string, double> inf_buckets;
    while (std::getline(in, line)) {
        std::smatch m;
        if (line.empty() || (line.rfind("# ", 0) == 0 && line.rfind("# TYPE", 0) != 0))
            continue;
        if (std::regex_match(line, m, type_re)) {
            if (types.count(m[1]))
                problems.push_back("second TYPE: " + line);
            types[m[1]] = m[2];
            continue;
        }
        if (!std::regex_match(line, m, sample_re)) {
            problems.push_back("bad line: " + line);
            continue;
        }
        std::string name = m[1];
        std::string fam = name;
        for (const char* suf : {"_bucket", "_sum", "_count"}) {
            const std::string s = suf;
            if (!types.count(fam) && name.size() > s.size() &&
                name.compare(name.size() - s.size(), s.size(), s) == 0 &&
                types.count(name.substr(0, name.size() - s.size())))
                fam = name.substr(0, name.size() - s.size());
        }
        if (!types.count(fam))
            problems.push_back("no TYPE before: " + line);
        double v = 0;
        try {
            v = m[3] == "+Inf" ? INFINITY : std::stod(m[3]);
        } catch (...) {
            problems.push_back("bad value: " + line);
        }
        samples[name + std::string(m[2])] = v;
        if (name.size() > 7 && name.ends_with("_bucket") &&
            line.find("le=\"+Inf\"") != std::string::npos)
            inf_buckets[fam] = v;
    }
    for (const auto& [fam, type] : types) {
        if (type != "histogram")
            continue;
        const auto c = samples.find(fam + "_count");
        if (c == samples.end() || !inf_buckets.count(fam) || inf_buckets[fam] != c->second)
            problems.push_back(fam + ": +Inf bucket does not equal _count");
    }
    return problems;
}

// --- the fixture -----------------------------------------------------------------------------

/// Holds the database thread inside a job until open() (to keep requests in flight).
class db_gate {
public:
    explicit db_gate(store::db_worker& db) {
        auto release = release_.get_future().share();
        auto entered = entered_.get_future();
        thread_ = std::thread([&db, release, this] {
            db.run_sync([&](SQLite::Database&) {
                entered_.set_value();
                release.wait_for(30s);
            });
        });
        entered.wait_for(10s);
    }
    void open() {
        if (!thread_.joinable())
            return;
        release_.set_value();
        thread_.join();
    }
    ~db_gate() { open(); }

private:
    std::promise<void> release_;
    std::promise<void> entered_;
    std::thread thread_;
};

class api_test : public ::testing::Test {
protected:
    void SetUp() override {
        clock_.set(*parse_iso8601("2026-03-01T12:00:00Z"));
        {
            auto db = store::open_database({db_path()});
            store::migrate(*db);
        }
        db_ = std::make_unique<store::db_worker>(store::open_options{db_path()});
    }

    void TearDown() override {
        stop_server();
        work_.reset();
        if (io_thread_.joinable())
            io_thread_.join();
        server_.reset();
        db_->stop();
    }

    api::server_options default_options() {
        api::server_options o;
        o.listen = "127.0.0.1:0";
        o.api_token = secret(token);
        o.webhooks_enabled = true;
        o.signature_keys.ed25519 = ed_key().public_key();
        o.signature_keys.rsa = rsa_key().public_key();
        return o;
    }

    void start(api::server_options o) {
        server_ = std::make_unique<api::server>(ioc_.get_executor(), std::move(o), *db_, metrics_,
                                                clock_);
        server_->start();
        port_ = server_->port();
        ASSERT_NE(port_, 0);
        io_thread_ = std::thread([this] { ioc_.run(); });
    }
    void start() { start(default_options()); }

    /// stop() and wait (bounded) for its completion.
    bool stop_server(std::chrono::milliseconds grace = 2s) {
        if (!server_)
            return true;
        auto done = std::make_shared<std::promise<void>>();
        auto f = done->get_future();
        server_->stop(grace, [done] { done->set_value(); });
        const bool ok = f.wait_for(30s) == std::future_status::ready;
        EXPECT_TRUE(ok) << "the server did not stop in time";
        return ok;
    }

    std::optional<response> call(const std::string& raw) {
        http_client c(port_);
        if (!c.connected() || !c.send(raw))
            return std::nullopt;
        return c.read();
    }
    response must(const std::string& raw) {
        auto r = call(raw);
        EXPECT_TRUE(r) << "no response to: " << raw.substr(0, 200);
        return r ? *r : response{};
    }
    response post_event(const std::string& body,
                        const std::vector<std::string>& headers = {auth()}) {
        return must(make_request("POST", "/v1/events", body, headers));
    }
    response get(const std::string& target, const std::vector<std::string>& headers = {auth()}) {
        return must(make_request("GET", target, {}, headers));
    }

    std::filesystem::path db_path() const { return dir_ / "api.db"; }

    /// A fresh connection of the test's own: what a Speak4 reader would see.
    long long count(const std::string& sql) {
        SQLite::Database db(db_path().string(), SQLite::OPEN_READONLY);
        return db.execAndGet(sql).getInt64();
    }
    std::string snapshot() {
        SQLite::Database db(db_path().string(), SQLite::OPEN_READONLY);
        std::string out;
        SQLite::Statement tables(
            db, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name");
        while (tables.executeStep()) {
            const std::string t = tables.getColumn(0).getString();
            SQLite::Statement rows(db, "SELECT * FROM \"" + t + "\"");
            out += "[" + t + "]\n";
            while (rows.executeStep()) {
                for (int i = 0; i < rows.getColumnCount(); ++i)
                    out += rows.getColumn(i).getString() + "|";
                out += "\n";
            }
        }
        return out;
    }
    void exec(const std::string& sql) {
        SQLite::Database db(db_path().string(), SQLite::OPEN_READWRITE);
        db.exec("PRAGMA busy_timeout = 5000");
        db.exec(sql);
    }

    static std::string contact_event(const std::string& speak4_id,
                                     const std::string& event_id = "") {
        bj::object ev{{"type", "contact.created"},
                      {"contact", bj::object{{"speak4_id", speak4_id}, {"firstName", "Ada"}}}};
        if (!event_id.empty())
            ev["event_id"] = event_id;
        return bj::serialize(ev);
    }

    temp_dir dir_;
    manual_clock clock_;
    metrics::registry registry_;
    metrics::daemon_metrics metrics_{registry_};
    std::unique_ptr<store::db_worker> db_;
    net::io_context ioc_;
    std::optional<net::executor_work_guard<net::io_context::executor_type>> work_{
        ioc_.get_executor()};
    std::thread io_thread_;
    std::unique_ptr<api::server> server_;
    unsigned short port_ = 0;
};

} // namespace

// --- POST /v1/events -------------------------------------------------------------------------

TEST_F(api_test, event_is_committed_before_202) {
    start();
    const auto r = post_event(contact_event("s4-1", "e-1"));
    ASSERT_EQ(r.status, 202) << r;
    EXPECT_EQ(r.header("content-type"), "application/json");
    const auto v = r.json().as_object();
    EXPECT_EQ(v.at("accepted"), true);
    const long long seq = v.at("seq").as_int64();
    EXPECT_GT(seq, 0);
    // Read by another connection right as the answer arrives: already durable and visible.
    EXPECT_EQ(count("SELECT COUNT(*) FROM inbox WHERE event_id = 'e-1'"), 1);
    EXPECT_EQ(count("SELECT COUNT(*) FROM contacts WHERE speak4_id = 's4-1'"), 1);
    EXPECT_EQ(count("SELECT MAX(seq) FROM changes"), seq);
}

TEST_F(api_test, repeated_event_id_is_a_duplicate) {
    start();
    ASSERT_EQ(post_event(contact_event("s4-1", "e-1")).status, 202);
    const std::string before = snapshot();
    const auto r = post_event(contact_event("s4-1", "e-1"));
    ASSERT_EQ(r.status, 200) << r;
    EXPECT_EQ(r.json(), bj::parse(R"({"accepted":true,"duplicate":true})"));
    EXPECT_EQ(snapshot(), before);
}

TEST_F(api_test, invalid_events_are_400_naming_the_field_and_write_nothing) {
    start();
    ASSERT_EQ(post_event(contact_event("s4-1")).status, 202);
    const std::string before = snapshot();

    auto r = post_event(R"({"type":"task.created","contact":{"speak4_id":"s4-1"},)"
                        R"("task":{"speak4_id":"t-1","dueDate":"2026-12-01T15:00:00Z"}})");
    ASSERT_EQ(r.status, 400) << r;
    EXPECT_EQ(r.error_code(), "invalid_event");
    EXPECT_EQ(r.error_field(), "task.title");
    EXPECT_EQ(r.json().at("error").at("message"), "task.title is required");

    r = post_event("{not json");
    EXPECT_EQ(r.status, 400) << r;
    EXPECT_EQ(r.error_code(), "invalid_event");
    EXPECT_TRUE(r.is_json_error());

    r = post_event("");
    EXPECT_EQ(r.status, 400) << r;

    // Valid JSON, but intake refuses it: a task for a contact the mirror does not know.
    r = post_event(R"({"type":"task.created","contact":{"speak4_id":"nobody"},)"
                   R"("task":{"speak4_id":"t-2","title":"x","dueDate":"2026-12-01T15:00:00Z"}})");
    ASSERT_EQ(r.status, 400) << r;
    EXPECT_EQ(r.error_code(), "invalid_event");
    EXPECT_EQ(r.error_field(), "contact.speak4_id");
    EXPECT_EQ(snapshot(), before);
}

TEST_F(api_test, bearer_token_is_required) {
    start();
    const std::string body = contact_event("s4-1");
    for (const auto& headers :
         std::vector<std::vector<std::string>>{{},
                                               {auth("wrong")},
                                               {auth(token + "x")},
                                               {"Authorization: Basic dGVzdDp0ZXN0"},
                                               {"Authorization: Bearer"},
                                               {auth(token.substr(1))}}) {
        auto r = post_event(body, headers);
        EXPECT_EQ(r.status, 401) << (headers.empty() ? "no header" : headers[0]) << ": " << r;
        EXPECT_EQ(r.error_code(), "unauthorized");
        EXPECT_EQ(r.header("www-authenticate"), "Bearer");
        r = get("/v1/changes", headers);
        EXPECT_EQ(r.status, 401) << r;
    }
    EXPECT_EQ(count("SELECT COUNT(*) FROM inbox"), 0);
    EXPECT_EQ(post_event(body, {"authorization: bearer " + token}).status, 202)
        << "header name and scheme are case-insensitive";
}

TEST_F(api_test, without_a_configured_token_v1_is_refused) {
    auto o = default_options();
    o.api_token = secret();
    start(std::move(o));
    auto r = post_event(contact_event("s4-1"));
    ASSERT_EQ(r.status, 401) << r;
    EXPECT_NE(r.body.find("api.token_file is not set"), std::string::npos) << r;
    r = get("/v1/changes", {auth("")});
    EXPECT_EQ(r.status, 401) << r;
    EXPECT_EQ(get("/healthz").status, 200) << "no token needed";
}

TEST_F(api_test, oversized_bodies_are_413) {
    auto o = default_options();
    start(std::move(o));
    const std::string big(std::size_t{300} * 1024, 'x');

    // Content-Length over the limit with Expect: 100-continue: refused before any body is sent.
    {
        http_client c(port_);
        ASSERT_TRUE(c.send("POST /v1/events HTTP/1.1\r\nHost: x\r\n" + auth() +
                           "\r\nContent-Length: 307200\r\nExpect: 100-continue\r\n\r\n"));
        const auto r = c.read();
        ASSERT_TRUE(r);
        EXPECT_EQ(r->status, 413) << *r;
        EXPECT_EQ(r->error_code(), "body_too_large");
        EXPECT_FALSE(r->keep_alive);
    }
    // Content-Length over the limit, body sent anyway.
    {
        auto r = post_event(big);
        EXPECT_EQ(r.status, 413) << r;
    }
    // Chunked: no length up front, refused once the limit is crossed while reading.
    {
        http_client c(port_);
        std::string req = "POST /v1/events HTTP/1.1\r\nHost: x\r\n" + auth() +
                          "\r\nTransfer-Encoding: chunked\r\n\r\n";
        const std::string chunk(std::size_t{64} * 1024, 'y');
        for (int i = 0; i < 5; ++i)
            req += "10000\r\n" + chunk + "\r\n";
        req += "0\r\n\r\n";
        ASSERT_TRUE(c.send(req));
        const auto r = c.read();
        ASSERT_TRUE(r);
        EXPECT_EQ(r->status, 413) << *r;
        EXPECT_TRUE(r->is_json_error());
    }
    // Expect: 100-continue under the limit: "100 Continue", then the body, then 202.
    {
        const std::string ev = contact_event("s4-continue");
        http_client c(port_);
        ASSERT_TRUE(c.send("POST /v1/events HTTP/1.1\r\nHost: x\r\n" + auth() +
                           "\r\nExpect: 100-continue\r\nContent-Length: " +
                           std::to_string(ev.size()) + "\r\n\r\n"));
        EXPECT_EQ(c.read_raw().rfind("HTTP/1.1 100 Continue\r\n", 0), 0u);
        ASSERT_TRUE(c.send(ev));
        const auto r = c.read();
        ASSERT_TRUE(r);
        EXPECT_EQ(r->status, 202) << *r;
    }
    // A chunked event under the limit is fine.
    {
        const std::string ev = contact_event("s4-chunked");
        http_client c(port_);
        std::ostringstream hex;
        hex << std::hex << ev.size();
        ASSERT_TRUE(c.send("POST /v1/events HTTP/1.1\r\nHost: x\r\n" + auth() +
                           "\r\nTransfer-Encoding: chunked\r\n\r\n" + hex.str() + "\r\n" + ev +
                           "\r\n0\r\n\r\n"));
        const auto r = c.read();
        ASSERT_TRUE(r);
        EXPECT_EQ(r->status, 202) << *r;
    }
    EXPECT_EQ(count("SELECT COUNT(*) FROM inbox"), 2);
    EXPECT_EQ(get("/healthz").status, 200);
}

TEST_F(api_test, concurrent_events_are_group_committed) {
    start();
    constexpr int threads = 8;
    constexpr int per_thread = 25;
    std::atomic<int> accepted{0};
    std::vector<std::string> failures;
    std::mutex failures_mutex;
    {
        // Hold the database for a moment so the first requests pile up into one batch.
        db_gate gate(*db_);
        std::vector<std::thread> workers;
        workers.reserve(threads);
        for (int t = 0; t < threads; ++t)
            workers.emplace_back([&, t] {
                http_client c(port_); // one keep-alive connection per thread
                for (int i = 0; i < per_thread; ++i) {
                    const std::string id = "s4-" + std::to_string(t) + "-" + std::to_string(i);
                    std::optional<response> r;
                    if (c.send(make_request("POST", "/v1/events", contact_event(id, "e-" + id),
                                            {auth()})))
                        r = c.read();
                    if (r && r->status == 202) {
                        ++accepted;
                    } else {
                        std::lock_guard lock(failures_mutex);
                        failures.push_back(id + ": " + (r ? r->body : "no response"));
                        return;
                    }
                }
            });
        std::this_thread::sleep_for(300ms);
        gate.open();
        for (auto& w : workers)
            w.join();
    }
    ASSERT_TRUE(failures.empty()) << failures.front();
    EXPECT_EQ(accepted.load(), threads * per_thread);
    EXPECT_EQ(count("SELECT COUNT(*) FROM inbox"), threads * per_thread);
    EXPECT_EQ(count("SELECT COUNT(*) FROM contacts"), threads * per_thread);
    const double batches = metrics_.event_batches_total.value();
    EXPECT_GE(batches, 1);
    EXPECT_LT(batches, threads * per_thread) << "every event had its own transaction";
    EXPECT_EQ(metrics_.event_batch_size.get().snap().sum, threads * per_thread);
}

TEST_F(api_test, stop_finishes_requests_in_flight_and_refuses_new_ones) {
    start();
    // B: an idle keep-alive connection opened before the stop.
    http_client b(port_);
    ASSERT_TRUE(b.send(make_request("GET", "/healthz")));
    ASSERT_EQ(b.read()->status, 200);

    auto gate = std::make_unique<db_gate>(*db_);
    // A: an event in flight, waiting for its commit behind the held database.
    std::promise<response> a_result;
    std::thread a([&] {
        http_client c(port_);
        c.send(make_request("POST", "/v1/events", contact_event("s4-a", "e-a"), {auth()}));
        auto r = c.read(30s);
        a_result.set_value(r ? *r : response{});
    });
    std::this_thread::sleep_for(300ms); // let A's request reach the batcher

    auto stopped = std::make_shared<std::promise<void>>();
    auto stopped_f = stopped->get_future();
    server_->stop(20s, [stopped] { stopped->set_value(); });
    // The listener closes at once.
    bool refused = false;
    for (int i = 0; i < 100 && !refused; ++i) {
        http_client probe(port_);
        refused = !probe.connected();
        if (!refused)
            std::this_thread::sleep_for(20ms);
    }
    EXPECT_TRUE(refused) << "new connections are still accepted after stop()";

    // B's next request arrives during the grace period: 503 shutting_down, then close.
    ASSERT_TRUE(b.send(make_request("POST", "/v1/events", contact_event("s4-b"), {auth()})));
    const auto rb = b.read();
    ASSERT_TRUE(rb);
    EXPECT_EQ(rb->status, 503) << *rb;
    EXPECT_EQ(rb->error_code(), "shutting_down");
    EXPECT_FALSE(rb->keep_alive);
    EXPECT_NE(stopped_f.wait_for(0s), std::future_status::ready) << "A is still in flight";

    gate->open();
    auto fa = a_result.get_future();
    ASSERT_EQ(fa.wait_for(30s), std::future_status::ready);
    const response ra = fa.get();
    EXPECT_EQ(ra.status, 202) << ra;
    EXPECT_FALSE(ra.keep_alive) << "a response during shutdown closes its connection";
    a.join();
    EXPECT_EQ(stopped_f.wait_for(30s), std::future_status::ready);
    EXPECT_TRUE(server_->stopped());
    EXPECT_EQ(count("SELECT COUNT(*) FROM inbox WHERE event_id = 'e-a'"), 1);
    EXPECT_EQ(count("SELECT COUNT(*) FROM contacts WHERE speak4_id = 's4-b'"), 0);
}

TEST_F(api_test, stop_with_idle_connections_is_prompt) {
    start();
    http_client idle(port_);
    ASSERT_TRUE(idle.send(make_request("GET", "/healthz")));
    ASSERT_EQ(idle.read()->status, 200);
    const auto t0 = std::chrono::steady_clock::now();
    ASSERT_TRUE(stop_server(10s));
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s) << "idle connections held the shutdown";
    EXPECT_TRUE(idle.wait_closed());
}

TEST_F(api_test, abandoned_stop_is_safe) {
    // What the daemon does when the grace period runs out: stop the io_context with a request
    // still in flight, destroy the server and the metrics, stop the database thread, and only
    // then destroy the io_context (and the coroutine frames still in it).
    std::optional<net::io_context> io(std::in_place);
    auto reg = std::make_unique<metrics::registry>();
    auto m = std::make_unique<metrics::daemon_metrics>(*reg);
    auto srv =
        std::make_unique<api::server>(io->get_executor(), default_options(), *db_, *m, clock_);
    srv->start();
    const unsigned short port = srv->port();
    std::thread runner([&] { io->run(); });
    auto gate = std::make_unique<db_gate>(*db_);
    std::thread a([&] {
        http_client c(port);
        c.send(make_request("POST", "/v1/events", contact_event("s4-a", "e-a"), {auth()}));
        (void)c.read(3s);
    });
    http_client idle(port);
    std::this_thread::sleep_for(300ms);
    srv->stop(100ms);
    std::this_thread::sleep_for(200ms);
    io->stop();
    runner.join();
    srv.reset();
    gate->open();
    db_->stop();
    m.reset();
    reg.reset();
    io.reset();
    a.join();
    SUCCEED() << "no crash, no leak, no use after free (checked under ASan)";
}

// --- GET /v1/changes -------------------------------------------------------------------------

TEST_F(api_test, changes_page_in_order_with_entity_ids) {
    start();
    for (int i = 1; i <= 5; ++i)
        ASSERT_EQ(post_event(contact_event("s4-" + std::to_string(i))).status, 202);
    exec("UPDATE contacts SET ghl_id = 'g-1' WHERE speak4_id = 's4-1'");

    auto r = get("/v1/changes?since=0&limit=2");
    ASSERT_EQ(r.status, 200) << r;
    auto v = r.json().as_object();
    auto rows = v.at("changes").as_array();
    ASSERT_EQ(rows.size(), 2u);
    EXPECT_EQ(rows[0].at("seq"), 1);
    EXPECT_EQ(rows[1].at("seq"), 2);
    EXPECT_EQ(rows[0].at("entity"), "contact");
    EXPECT_EQ(rows[0].at("kind"), "created");
    EXPECT_EQ(rows[0].at("source"), "local");
    EXPECT_EQ(rows[0].at("speak4_id"), "s4-1");
    EXPECT_EQ(rows[0].at("ghl_id"), "g-1");
    EXPECT_TRUE(rows[1].at("ghl_id").is_null());
    EXPECT_TRUE(rows[0].at("ts").is_string());
    EXPECT_TRUE(rows[0].at("entity_id").is_int64());
    EXPECT_EQ(v.at("last_seq"), 2);
    EXPECT_EQ(v.at("more"), true);

    r = get("/v1/changes?since=2&limit=10");
    v = r.json().as_object();
    rows = v.at("changes").as_array();
    ASSERT_EQ(rows.size(), 3u);
    EXPECT_EQ(rows[0].at("seq"), 3);
    EXPECT_EQ(v.at("last_seq"), 5);
    EXPECT_EQ(v.at("more"), false);

    r = get("/v1/changes?since=5");
    v = r.json().as_object();
    EXPECT_TRUE(v.at("changes").as_array().empty());
    EXPECT_EQ(v.at("last_seq"), 5);

    r = get("/v1/changes"); // defaults: since=0, limit=100
    EXPECT_EQ(r.json().at("changes").as_array().size(), 5u);
}

TEST_F(api_test, changes_bad_parameters_are_400_naming_them) {
    start();
    const std::vector<std::pair<std::string, std::string>> cases{
        {"since=-1", "since"},
        {"since=abc", "since"},
        {"since=", "since"},
        {"since=1&since=2", "since"},
        {"limit=0", "limit"},
        {"limit=1001", "limit"},
        {"limit=1.5", "limit"},
        {"wait=61", "wait"},
        {"wait=x", "wait"},
        {"foo=1", "foo"},
        {"since=99999999999999999999", "since"}};
    for (const auto& [query, field] : cases) {
        const auto r = get("/v1/changes?" + query);
        EXPECT_EQ(r.status, 400) << query << ": " << r;
        EXPECT_EQ(r.error_code(), "bad_query") << query;
        EXPECT_EQ(r.error_field(), field) << query << ": " << r;
        EXPECT_NE(r.json().at("error").at("message").as_string().find(field), bj::string::npos)
            << query << ": " << r;
    }
    EXPECT_EQ(get("/v1/changes?since=%zz").status, 400);
    EXPECT_EQ(get("/v1/changes?limit=1000&wait=0&since=0").status, 200);
}

TEST_F(api_test, long_poll_wakes_on_commit_and_on_notify) {
    start();
    // Woken by an event commit.
    {
        const auto t0 = std::chrono::steady_clock::now();
        std::future<response> poll =
            std::async(std::launch::async, [&] { return get("/v1/changes?since=0&wait=30"); });
        std::this_thread::sleep_for(300ms);
        ASSERT_EQ(post_event(contact_event("s4-1")).status, 202);
        ASSERT_EQ(poll.wait_for(20s), std::future_status::ready);
        const auto r = poll.get();
        EXPECT_LT(std::chrono::steady_clock::now() - t0, 15s);
        ASSERT_EQ(r.status, 200) << r;
        EXPECT_EQ(r.json().at("changes").as_array().size(), 1u);
    }
    // Woken by notify_changes() from another subsystem that committed a change itself.
    {
        std::future<response> poll =
            std::async(std::launch::async, [&] { return get("/v1/changes?since=1&wait=30"); });
        std::this_thread::sleep_for(300ms);
        exec("INSERT INTO changes(entity, entity_id, kind, source, ts) "
             "VALUES ('contact', 1, 'pulled', 'remote', '2026-03-01T12:00:00.000Z')");
        server_->notify_changes();
        ASSERT_EQ(poll.wait_for(20s), std::future_status::ready);
        const auto r = poll.get();
        ASSERT_EQ(r.status, 200) << r;
        const auto rows = r.json().at("changes").as_array();
        ASSERT_EQ(rows.size(), 1u);
        EXPECT_EQ(rows[0].at("kind"), "pulled");
        EXPECT_EQ(rows[0].at("speak4_id"), "s4-1");
    }
    // Nothing new: returns empty at the timeout.
    {
        const auto t0 = std::chrono::steady_clock::now();
        const auto r = get("/v1/changes?since=2&wait=1");
        const auto took = std::chrono::steady_clock::now() - t0;
        ASSERT_EQ(r.status, 200) << r;
        EXPECT_TRUE(r.json().at("changes").as_array().empty());
        EXPECT_EQ(r.json().at("last_seq"), 2);
        EXPECT_GE(took, 900ms);
        EXPECT_LT(took, 10s);
    }
}

TEST_F(api_test, long_poll_returns_at_stop) {
    start();
    std::future<response> poll =
        std::async(std::launch::async, [&] { return get("/v1/changes?since=0&wait=60"); });
    std::this_thread::sleep_for(300ms);
    ASSERT_TRUE(stop_server(10s));
    ASSERT_EQ(poll.wait_for(10s), std::future_status::ready);
    const auto r = poll.get();
    EXPECT_EQ(r.status, 200) << r;
    EXPECT_TRUE(r.json().at("changes").as_array().empty());
}

// --- GET /healthz, GET /metrics --------------------------------------------------------------

TEST_F(api_test, healthz_reports_the_health_callback) {
    auto o = default_options();
    std::atomic<bool> healthy{true};
    o.health_check = [&] {
        return healthy ? api::health{} : api::health{false, "needs_reauth: invalid_grant"};
    };
    start(std::move(o));
    auto r = must(make_request("GET", "/healthz"));
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.json(), bj::parse(R"({"status":"ok"})"));
    healthy = false;
    r = must(make_request("GET", "/healthz"));
    EXPECT_EQ(r.status, 503);
    EXPECT_EQ(r.json(),
              bj::parse(R"({"status":"unhealthy","reason":"needs_reauth: invalid_grant"})"));
    EXPECT_EQ(must(make_request("POST", "/healthz", "x")).status, 405);
}

TEST_F(api_test, metrics_parse_and_reflect_the_database) {
    start();
    ASSERT_EQ(post_event(contact_event("s4-1")).status, 202);
    ASSERT_EQ(post_event("{bad").status, 400);
    exec("UPDATE outbox SET state = 'dead'");
    const auto r = must(make_request("GET", "/metrics"));
    ASSERT_EQ(r.status, 200) << r;
    EXPECT_EQ(r.header("content-type"), "text/plain; version=0.0.4; charset=utf-8");
    std::map<std::string, double> samples;
    const auto problems = check_prometheus(r.body, samples);
    EXPECT_TRUE(problems.empty()) << problems.front() << "\n" << r.body;
    EXPECT_EQ(samples[R"(speak4_events_total{outcome="accepted"})"], 1) << r.body;
    EXPECT_EQ(samples[R"(speak4_events_total{outcome="invalid"})"], 1) << r.body;
    EXPECT_EQ(samples[R"(speak4_outbox{state="dead"})"], count("SELECT COUNT(*) FROM outbox"));
    EXPECT_EQ(samples[R"(speak4_outbox{state="pending"})"], 0);
    EXPECT_EQ(samples["speak4_dead_letters"], count("SELECT COUNT(*) FROM outbox"));
    EXPECT_EQ(samples["speak4_changes_last_seq"], count("SELECT MAX(seq) FROM changes"));
    EXPECT_EQ(samples[R"(speak4_http_requests_total{path="/v1/events",status="202"})"], 1)
        << r.body;
    for (const char* name : {"speak4_ghl_requests_total", "speak4_ghl_request_duration_seconds",
                             "speak4_ghl_rate_limit_remaining", "speak4_last_pull_age_seconds"})
        EXPECT_NE(r.body.find(std::string("# TYPE ") + name + " "), std::string::npos) << name;
}

// --- malformed requests ----------------------------------------------------------------------

TEST_F(api_test, malformed_requests_get_json_errors_and_the_server_keeps_serving) {
    start();
    const auto expect_error = [&](const std::string& raw, int status, const std::string& code) {
        const auto r = call(raw);
        ASSERT_TRUE(r) << "no response to " << raw.substr(0, 80);
        EXPECT_EQ(r->status, status) << raw.substr(0, 80) << " -> " << *r;
        EXPECT_TRUE(r->is_json_error()) << *r;
        EXPECT_EQ(r->error_code(), code) << *r;
        EXPECT_EQ(r->header("content-type"), "application/json");
        // ...and the server still answers.
        EXPECT_EQ(must(make_request("GET", "/healthz")).status, 200);
    };
    expect_error(std::string("\x01\x02\xff garbage\r\n\r\n"), 400, "bad_request");
    expect_error("GET /healthz HTTP/9.9\r\n\r\n", 400, "bad_request");
    expect_error("GET /healthz HTTP/1.1\r\nBad Header Line\r\n\r\n", 400, "bad_request");
    expect_error("GET /healthz HTTP/1.1\r\nX-Big: " + std::string(20000, 'a') + "\r\n\r\n", 431,
                 "headers_too_large");
    expect_error("POST /v1/events HTTP/1.1\r\nContent-Length: abc\r\n\r\n", 400, "bad_request");
    expect_error(make_request("DELETE", "/v1/events", "", {auth()}), 405, "method_not_allowed");
    expect_error(make_request("GET", "/v1/events", "", {auth()}), 405, "method_not_allowed");
    expect_error(make_request("BREW", "/metrics"), 405, "method_not_allowed");
    expect_error(make_request("GET", "/nope"), 404, "not_found");
    expect_error(make_request("GET", "/v1/changes/"), 404, "not_found");
    expect_error(make_request("GET", "/" + std::string(5000, 'p')), 404, "not_found");
    expect_error(make_request("POST", "/v1/events", "[1,2", {auth()}), 400, "invalid_event");
    expect_error(make_request("POST", "/v1/events", std::string(100, '['), {auth()}), 400,
                 "invalid_event");
    expect_error(make_request("POST", "/v1/events?x=1", contact_event("q"), {auth()}), 400,
                 "bad_query");

    const auto r = call(make_request("PUT", "/v1/events", "{}", {auth()}));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->header("allow"), "POST");
    // Random bytes of every kind: each connection gets an answer or a close, never a crash.
    std::mt19937 rng(42);
    for (int i = 0; i < 50; ++i) {
        std::string junk(static_cast<std::size_t>(rng() % 3000), '\0');
        for (auto& c : junk)
            c = static_cast<char>(rng());
        if (i % 2)
            junk = make_request("POST", "/v1/events", junk, {auth()});
        http_client c(port_);
        c.send(junk);
        c.send("\r\n\r\n");
        (void)c.read(5s);
    }
    EXPECT_EQ(must(make_request("GET", "/healthz")).status, 200);
    EXPECT_EQ(count("SELECT COUNT(*) FROM inbox"), 0);
}

namespace {

/// One whole response as raw bytes (header and Content-Length body) from `c`.
std::string read_response_bytes(http_client& c) {
    std::string out;
    for (int i = 0; i < 50; ++i) {
        out += c.read_raw(2s);
        const auto end = out.find("\r\n\r\n");
        if (end == std::string::npos)
            continue;
        std::smatch m;
        const std::string head = out.substr(0, end);
        if (std::regex_search(head, m, std::regex("Content-Length: ([0-9]+)")) &&
            out.size() >= end + 4 + std::stoul(m[1].str()))
            break;
    }
    return out;
}

/// What Beast writes for a response with these fields (the server's former write path).
std::string beast_bytes(unsigned version, http::status status, std::string_view content_type,
                        const std::vector<std::pair<http::field, std::string>>& extra,
                        bool keep_alive, const std::string& body) {
    http::response<http::string_body> res{status, version};
    res.set(http::field::server, "speak4-sync");
    res.set(http::field::content_type, content_type);
    res.set(http::field::cache_control, "no-store");
    for (const auto& [f, v] : extra)
        res.set(f, v);
    res.keep_alive(keep_alive);
    res.body() = body;
    res.prepare_payload();
    std::ostringstream os;
    os << res;
    return os.str();
}

std::string body_of(const std::string& raw) {
    const auto end = raw.find("\r\n\r\n");
    return end == std::string::npos ? std::string() : raw.substr(end + 4);
}

} // namespace

TEST_F(api_test, responses_are_byte_for_byte_what_beast_would_write) {
    // The server formats its responses itself (cheaper than Beast's serializer): same status
    // line, fields, order, keep-alive handling and length as the Beast response it replaced.
    start();
    {
        http_client c(port_);
        ASSERT_TRUE(c.send(make_request("POST", "/v1/events", contact_event("s4-1"), {auth()})));
        const std::string raw = read_response_bytes(c);
        EXPECT_EQ(raw, beast_bytes(11, http::status::accepted, "application/json", {}, true,
                                   body_of(raw)));
        ASSERT_TRUE(c.send(make_request("GET", "/v1/events", "", {auth()})));
        const std::string not_allowed = read_response_bytes(c);
        EXPECT_EQ(not_allowed.rfind("HTTP/1.1 405 Method Not Allowed\r\n", 0), 0u) << not_allowed;
        EXPECT_NE(not_allowed.find("\r\nAllow: "), std::string::npos) << not_allowed;
        const auto allow_at = not_allowed.find("\r\nAllow: ") + 9;
        const std::string allow =
            not_allowed.substr(allow_at, not_allowed.find("\r\n", allow_at) - allow_at);
        EXPECT_EQ(not_allowed,
                  beast_bytes(11, http::status::method_not_allowed, "application/json",
                              {{http::field::allow, allow}}, true, body_of(not_allowed)));
        ASSERT_TRUE(c.send(make_request("GET", "/healthz", "", {"Connection: close"})));
        const std::string closing = read_response_bytes(c);
        EXPECT_EQ(closing, beast_bytes(11, http::status::ok, "application/json", {}, false,
                                       body_of(closing)));
        EXPECT_TRUE(c.wait_closed());
    }
    {
        // Refused before its body was read: answered with "Connection: close" and closed.
        http_client c(port_);
        ASSERT_TRUE(c.send(make_request("POST", "/v1/events", contact_event("s4-2"))));
        const std::string unauthorized = read_response_bytes(c);
        EXPECT_EQ(unauthorized, beast_bytes(11, http::status::unauthorized, "application/json",
                                            {{http::field::www_authenticate, "Bearer"}}, false,
                                            body_of(unauthorized)));
        EXPECT_TRUE(c.wait_closed());
    }
    {
        http_client c(port_);
        ASSERT_TRUE(c.send("GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
        const std::string kept = read_response_bytes(c);
        EXPECT_EQ(kept,
                  beast_bytes(10, http::status::ok, "application/json", {}, true, body_of(kept)));
        ASSERT_TRUE(c.send("GET /healthz HTTP/1.0\r\n\r\n"));
        const std::string last = read_response_bytes(c);
        EXPECT_EQ(last,
                  beast_bytes(10, http::status::ok, "application/json", {}, false, body_of(last)));
        EXPECT_TRUE(c.wait_closed());
    }
}

TEST_F(api_test, keep_alive_and_pipelining) {
    start();
    http_client c(port_);
    ASSERT_TRUE(c.send(make_request("GET", "/healthz") +
                       make_request("POST", "/v1/events", contact_event("s4-1"), {auth()}) +
                       make_request("GET", "/v1/changes?since=0", "", {auth()})));
    auto r1 = c.read();
    auto r2 = c.read();
    auto r3 = c.read();
    ASSERT_TRUE(r1 && r2 && r3);
    EXPECT_EQ(r1->status, 200);
    EXPECT_EQ(r2->status, 202);
    EXPECT_EQ(r3->status, 200);
    EXPECT_EQ(r3->json().at("changes").as_array().size(), 1u) << "answered in order";
    EXPECT_TRUE(r3->keep_alive);
    ASSERT_TRUE(c.send(make_request("GET", "/healthz", "", {"Connection: close"})));
    ASSERT_TRUE(c.read());
    EXPECT_TRUE(c.wait_closed());
}

TEST_F(api_test, slow_and_idle_clients_time_out) {
    auto o = default_options();
    o.idle_timeout = 400ms;
    o.read_timeout = 400ms;
    start(std::move(o));
    {
        // Half a header, then nothing: the deadline on the header closes the connection.
        http_client slow(port_);
        ASSERT_TRUE(slow.send("GET /healthz HTTP/1.1\r\nHo"));
        const auto t0 = std::chrono::steady_clock::now();
        EXPECT_TRUE(slow.wait_closed(10s));
        EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
    }
    {
        // A body that never completes.
        http_client slow(port_);
        ASSERT_TRUE(slow.send("POST /v1/events HTTP/1.1\r\n" + auth() +
                              "\r\nContent-Length: 100\r\n\r\n{\"type\""));
        EXPECT_TRUE(slow.wait_closed(10s));
    }
    {
        http_client idle(port_);
        const auto t0 = std::chrono::steady_clock::now();
        EXPECT_TRUE(idle.wait_closed(10s));
        EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
    }
}

TEST_F(api_test, connections_over_the_limit_are_refused_with_503) {
    auto o = default_options();
    o.max_connections = 2;
    start(std::move(o));
    auto c1 = std::make_unique<http_client>(port_);
    http_client c2(port_);
    for (auto* c : {c1.get(), &c2}) {
        ASSERT_TRUE(c->send(make_request("GET", "/healthz")));
        ASSERT_EQ(c->read()->status, 200);
    }
    {
        http_client c3(port_);
        const auto r = c3.read(10s);
        ASSERT_TRUE(r);
        EXPECT_EQ(r->status, 503) << *r;
        EXPECT_EQ(r->error_code(), "too_many_connections");
    }
    c1.reset();
    // Once a slot is free, new connections are served again.
    bool served = false;
    for (int i = 0; i < 100 && !served; ++i) {
        const auto r = call(make_request("GET", "/healthz"));
        served = r && r->status == 200;
        if (!served)
            std::this_thread::sleep_for(50ms);
    }
    EXPECT_TRUE(served);
}

// --- POST /webhooks/ghl ----------------------------------------------------------------------

namespace {

std::string webhook_body(const std::string& type, const std::string& id, const std::string& ts,
                         const std::string& contact = "ghl-c1") {
    bj::object o{{"type", type}, {"locationId", "loc-1"}, {"webhookId", id}, {"timestamp", ts}};
    if (type.starts_with("Contact"))
        o["id"] = contact;
    else
        o["contactId"] = contact;
    return bj::serialize(o);
}

} // namespace

TEST_F(api_test, webhooks_verified_stale_replayed_forged) {
    start();
    const std::string now = format_iso8601(clock_.now());
    const auto send = [&](const std::string& body, const std::vector<std::string>& headers) {
        std::vector<std::string> h = headers;
        h.push_back("Content-Type: application/json");
        return must(make_request("POST", "/webhooks/ghl", body, h));
    };
    const auto ed = [](const std::string& body) {
        return "x-ghl-signature: " + ed_key().sign(body);
    };
    const auto rsa = [](const std::string& body) {
        return "x-wh-signature: " + rsa_key().sign(body);
    };

    // Valid: a pull of the contact is enqueued (its mirror row is a stub until pulled).
    const std::string valid = webhook_body("ContactUpdate", "wh-1", now);
    auto r = send(valid, {ed(valid)});
    ASSERT_EQ(r.status, 200) << r;
    EXPECT_EQ(r.json(), bj::parse(R"({"ok":true})"));
    EXPECT_EQ(count("SELECT COUNT(*) FROM outbox o JOIN contacts c ON c.id = o.entity_id WHERE "
                    "o.op = 'pull' AND o.entity = 'contact' AND o.state = 'pending' AND c.ghl_id = "
                    "'ghl-c1'"),
              1);
    EXPECT_EQ(count("SELECT COUNT(*) FROM webhook_seen WHERE webhook_id = 'wh-1'"), 1);
    const std::string after_valid = snapshot();

    // Forged: signed over other bytes, or with another key, or not at all.
    const std::string forged = webhook_body("ContactUpdate", "wh-2", now, "ghl-evil");
    for (const auto& headers : std::vector<std::vector<std::string>>{
             {ed(valid)},
             {"x-ghl-signature: " + test_key("ED25519").sign(forged)},
             {},
             {"x-ghl-signature: not-base64!"},
             {rsa(valid)},
             {"x-ghl-signature: " + ed_key().sign(valid), rsa(forged)}}) {
        r = send(forged, headers);
        EXPECT_EQ(r.status, 401) << r;
        EXPECT_EQ(r.error_code(), "invalid_signature") << r;
    }
    // Stale or from the future, though correctly signed.
    for (const auto& ts : {format_iso8601(clock_.now() - std::chrono::seconds(301)),
                           format_iso8601(clock_.now() + std::chrono::seconds(301))}) {
        const std::string stale = webhook_body("ContactUpdate", "wh-3", ts, "ghl-stale");
        r = send(stale, {ed(stale)});
        EXPECT_EQ(r.status, 401) << r;
        EXPECT_EQ(r.error_code(), "stale_webhook") << r;
    }
    // Replayed: the same webhook again.
    r = send(valid, {ed(valid)});
    EXPECT_EQ(r.status, 409) << r;
    EXPECT_EQ(r.error_code(), "replayed_webhook");
    // Signed garbage and a body without webhookId.
    const std::string garbage = "{not json";
    r = send(garbage, {ed(garbage)});
    EXPECT_EQ(r.status, 400) << r;
    EXPECT_EQ(r.error_code(), "invalid_webhook");
    const std::string no_id = R"({"type":"ContactUpdate","id":"x","timestamp":")" + now + "\"}";
    r = send(no_id, {ed(no_id)});
    EXPECT_EQ(r.status, 400) << r;
    EXPECT_EQ(r.error_field(), "webhookId");
    EXPECT_EQ(snapshot(), after_valid) << "a refused webhook stores nothing";

    // Legacy RSA signature alone is accepted; a task webhook for the same contact coalesces.
    const std::string task = webhook_body("TaskCreate", "wh-4", now);
    r = send(task, {rsa(task)});
    EXPECT_EQ(r.status, 200) << r;
    EXPECT_EQ(count("SELECT COUNT(*) FROM outbox"), 1);
    // Unknown types are recorded and otherwise ignored.
    const std::string install =
        R"({"type":"INSTALL","appId":"a","webhookId":"wh-5","timestamp":")" + now + "\"}";
    r = send(install, {ed(install)});
    EXPECT_EQ(r.status, 200) << r;
    EXPECT_EQ(count("SELECT COUNT(*) FROM webhook_seen"), 3);
    EXPECT_EQ(count("SELECT COUNT(*) FROM contacts"), 1);
    // Bearer tokens play no part here, and GET is not a webhook.
    EXPECT_EQ(must(make_request("GET", "/webhooks/ghl")).status, 405);
}

TEST_F(api_test, contact_delete_webhook_feeds_the_change_feed) {
    start();
    ASSERT_EQ(post_event(contact_event("s4-1")).status, 202);
    exec("UPDATE contacts SET ghl_id = 'ghl-del' WHERE speak4_id = 's4-1'");
    const long long seq = count("SELECT MAX(seq) FROM changes");
    std::future<response> poll = std::async(std::launch::async, [&] {
        return get("/v1/changes?since=" + std::to_string(seq) + "&wait=30");
    });
    std::this_thread::sleep_for(300ms);
    const std::string body =
        webhook_body("ContactDelete", "wh-del", format_iso8601(clock_.now()), "ghl-del");
    const auto r = must(
        make_request("POST", "/webhooks/ghl", body, {"x-ghl-signature: " + ed_key().sign(body)}));
    ASSERT_EQ(r.status, 200) << r;
    EXPECT_EQ(count("SELECT deleted FROM contacts WHERE speak4_id = 's4-1'"), 1);
    ASSERT_EQ(poll.wait_for(20s), std::future_status::ready);
    const auto rows = poll.get().json().at("changes").as_array();
    ASSERT_EQ(rows.size(), 1u);
    EXPECT_EQ(rows[0].at("kind"), "deleted");
    EXPECT_EQ(rows[0].at("source"), "remote");
    EXPECT_EQ(rows[0].at("ghl_id"), "ghl-del");
}

TEST_F(api_test, webhooks_disabled_is_404) {
    auto o = default_options();
    o.webhooks_enabled = false;
    start(std::move(o));
    const std::string body = webhook_body("ContactUpdate", "wh-1", format_iso8601(clock_.now()));
    const auto r = must(
        make_request("POST", "/webhooks/ghl", body, {"x-ghl-signature: " + ed_key().sign(body)}));
    EXPECT_EQ(r.status, 404) << r;
    EXPECT_TRUE(r.is_json_error());
    EXPECT_EQ(count("SELECT COUNT(*) FROM webhook_seen"), 0);
}

// --- options from the configuration ----------------------------------------------------------

TEST(api_options, from_config_loads_keys_and_names_problems) {
    temp_dir dir;
    speak4::testing::write_file(dir / "ed.pem", ed_key().public_pem());
    speak4::testing::write_file(dir / "rsa.pem", rsa_key().public_pem());
    config cfg;
    secrets sec;
    sec.api_token = secret("t");
    cfg.api.listen = "127.0.0.1:0";
    cfg.rules.field_map = {{"mobile", "phone"}};
    auto o = api::server_options::from_config(cfg, sec);
    EXPECT_FALSE(o.webhooks_enabled);
    EXPECT_EQ(o.api_token.reveal(), "t");
    EXPECT_EQ(o.field_map.at("mobile"), "phone");

    cfg.webhooks.enabled = true;
    cfg.webhooks.max_age_seconds = 120;
    const auto message = [&] {
        try {
            api::server_options::from_config(cfg, sec);
        } catch (const config_error& e) {
            return e.key() + " | " + e.what();
        }
        return std::string("no error");
    };
    EXPECT_NE(message().find("webhooks.enabled"), std::string::npos) << message();
    cfg.webhooks.public_key_file = dir / "rsa.pem";
    EXPECT_NE(message().find("not an Ed25519 public key"), std::string::npos) << message();
    cfg.webhooks.public_key_file = dir / "missing.pem";
    EXPECT_NE(message().find("webhooks.public_key_file"), std::string::npos) << message();
    cfg.webhooks.public_key_file = dir / "ed.pem";
    cfg.webhooks.rsa_public_key_file = dir / "rsa.pem";
    o = api::server_options::from_config(cfg, sec);
    EXPECT_TRUE(o.signature_keys.ed25519 && o.signature_keys.rsa);
    EXPECT_EQ(o.webhook_max_age, std::chrono::seconds(120));
    cfg.api.listen = "nonsense";
    EXPECT_NE(message().find("api.listen"), std::string::npos) << message();
}
