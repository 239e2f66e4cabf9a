// The integration console in a real browser: the real daemon against ghl-sim with a dead letter
// and some traffic, Debian's headless Chromium driven over the DevTools protocol (a small client
// below, on Beast's WebSocket), the token entered as a user would. The overview must show what
// `status --json` shows, the dead letter its GHL body, Retry must move the row out of `dead` in
// SQLite, and no secret may reach the page, its request URLs, cookies or the daemon's logs.
// Screenshots of every view go to BUILD_DIR/test-artifacts/console/.
//
// Also the admin JSON's bad input (unknown routes, wrong token, retry of a row that is not dead,
// unbounded audit queries), over plain HTTP against the same daemon.
#include "ghl_sim.hpp"
#include "support/test_support.hpp"

#include <SQLiteCpp/Database.h>
#include <arpa/inet.h>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/detail/base64.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/websocket/stream.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <csignal>
#include <fstream>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <regex>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

using namespace speak4::testing;
namespace bj = boost::json;
namespace net = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;

namespace {

constexpr const char* chromium_path = "/usr/bin/chromium";
const std::string api_token = "console-api-secret-7f3a9c";
const std::string ghl_token = "console-ghl-token-51d2e8";

struct http_answer {
    int status = 0;
    std::string head;
    std::string body;
};

/// One HTTP/1.1 request over a fresh loopback connection (blocking; tests only).
http_answer http(unsigned short port, const std::string& method, const std::string& target,
                 const std::string& token = "", const std::string& body = "") {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    timeval tv{20, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        ::close(fd);
        return {};
    }
    std::string req =
        method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
    if (!token.empty())
        req += "Authorization: Bearer " + token + "\r\n";
    req += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    (void)::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
    std::string resp;
    char buf[8192];
    for (;;) {
        const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0)
            break;
        resp.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    http_answer r;
    if (resp.size() > 12)
        r.status = std::atoi(resp.substr(9, 3).c_str());
    if (auto p = resp.find("\r\n\r\n"); p != std::string::npos) {
        r.head = resp.substr(0, p);
        r.body = resp.substr(p + 4);
    }
    return r;
}

/// A minimal Chrome DevTools protocol client over one WebSocket (the browser endpoint, with
/// flattened sessions for pages). Blocking; every read has a timeout.
class devtools {
public:
    explicit devtools(const std::string& ws_url) {
        static const std::regex re(R"(^ws://([^:/]+):(\d+)(/.*)$)");
        std::smatch m;
        if (!std::regex_match(ws_url, m, re))
            throw std::runtime_error("not a DevTools URL: " + ws_url);
        net::ip::tcp::resolver resolver(ioc_);
        net::connect(ws_.next_layer(), resolver.resolve(m[1].str(), m[2].str()));
        timeval tv{60, 0};
        ::setsockopt(ws_.next_layer().native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        ws_.read_message_max(std::size_t{256} << 20);
        ws_.handshake(m[1].str() + ":" + m[2].str(), m[3].str());
    }

    /// Sends a command and returns its result; throws on a protocol error.
    bj::object call(const std::string& method, bj::object params = {},
                    const std::string& session = "") {
        const long long id = next_id_++;
        bj::object msg{{"id", id}, {"method", method}, {"params", std::move(params)}};
        if (!session.empty())
            msg["sessionId"] = session;
        ws_.write(net::buffer(bj::serialize(msg)));
        for (;;) {
            beast::flat_buffer buf;
            ws_.read(buf);
            bj::value v = bj::parse(beast::buffers_to_string(buf.data()));
            auto& o = v.as_object();
            if (const auto* got = o.if_contains("id"); got && got->to_number<long long>() == id) {
                if (const auto* err = o.if_contains("error"))
                    throw std::runtime_error(method + ": " + bj::serialize(*err));
                return o["result"].as_object();
            }
            if (o.contains("method"))
                events.push_back(std::move(o));
        }
    }

    std::vector<bj::object> events; ///< everything the browser sent besides answers

private:
    net::io_context ioc_;
    websocket::stream<net::ip::tcp::socket> ws_{ioc_};
    long long next_id_ = 1;
};

/// Headless Chromium with a fresh profile, and one page of it.
class browser {
public:
    explicit browser(const std::filesystem::path& dir)
        : profile_(dir / "chromium-profile") {
        std::filesystem::create_directories(profile_);
        proc_ = std::make_unique<child_process>(
            chromium_path,
            std::vector<std::string>{
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-extensions", "--remote-debugging-port=0",
                "--remote-debugging-address=127.0.0.1", "--user-data-dir=" + profile_.string(),
                "--window-size=1280,900", "about:blank"},
            dir / "chromium.out", dir / "chromium.err");
        std::string url;
        const bool up = wait_until(
            [&] {
                if (!std::filesystem::exists(dir / "chromium.err"))
                    return false;
                const std::string err = read_file(dir / "chromium.err");
                static const std::regex re(R"(DevTools listening on (ws://\S+))");
                std::smatch m;
                if (std::regex_search(err, m, re)) {
                    url = m[1].str();
                    return true;
                }
                return !proc_->running();
            },
            60000);
        if (!up || url.empty())
            throw std::runtime_error("chromium did not start: " + read_file(dir / "chromium.err"));
        dt_ = std::make_unique<devtools>(url);
        const auto target = dt_->call("Target.createTarget", {{"url", "about:blank"}});
        const auto attached = dt_->call("Target.attachToTarget",
                                        {{"targetId", target.at("targetId")}, {"flatten", true}});
        session_ = std::string(attached.at("sessionId").as_string());
        page("Page.enable");
        page("Network.enable");
        page("Runtime.enable");
    }
    ~browser() {
        try {
            dt_->call("Browser.close");
        } catch (const std::exception&) {
        }
        proc_->wait(10000);
    }

    bj::object page(const std::string& method, bj::object params = {}) {
        return dt_->call(method, std::move(params), session_);
    }

    /// Evaluates a JavaScript expression in the page (promises awaited); its value.
    bj::value eval(const std::string& expr) {
        auto r = page("Runtime.evaluate",
                      {{"expression", expr}, {"returnByValue", true}, {"awaitPromise", true}});
        if (r.contains("exceptionDetails"))
            throw std::runtime_error("page threw: " + bj::serialize(r["exceptionDetails"]));
        const auto& res = r["result"].as_object();
        return res.contains("value") ? res.at("value") : bj::value(nullptr);
    }
    std::string text(const std::string& selector) {
        auto v = eval("(() => { const e = document.querySelector(" + js(selector) +
                      "); return e ? e.textContent : null; })()");
        return v.is_string() ? std::string(v.as_string()) : std::string("<missing>");
    }
    bool exists(const std::string& selector) {
        return eval("document.querySelector(" + js(selector) + ") !== null").as_bool();
    }

    void navigate(const std::string& url) {
        page("Page.navigate", {{"url", url}});
        wait_until([&] { return eval("document.readyState").as_string() == "complete"; }, 30000);
    }

    /// A real mouse click at the middle of the element (scrolled into view first).
    void click(const std::string& selector) {
        const auto r = eval("(() => { const e = document.querySelector(" + js(selector) +
                            "); if (!e) return null; e.scrollIntoView({block: 'center'}); "
                            "const b = e.getBoundingClientRect(); "
                            "return [b.x + b.width / 2, b.y + b.height / 2]; })()");
        if (!r.is_array())
            throw std::runtime_error("nothing to click at " + selector);
        const double x = r.as_array()[0].to_number<double>();
        const double y = r.as_array()[1].to_number<double>();
        page("Input.dispatchMouseEvent", {{"type", "mouseMoved"}, {"x", x}, {"y", y}});
        for (const char* type : {"mousePressed", "mouseReleased"})
            page("Input.dispatchMouseEvent",
                 {{"type", type}, {"x", x}, {"y", y}, {"button", "left"}, {"clickCount", 1}});
    }

    /// Focuses the element and types `s` as keyboard input would.
    void type(const std::string& selector, const std::string& s) {
        eval("document.querySelector(" + js(selector) + ").focus()");
        page("Input.insertText", {{"text", s}});
    }

    /// The whole page as a PNG.
    void screenshot(const std::filesystem::path& file) {
        const auto m = page("Page.getLayoutMetrics");
        const auto& size = m.at("cssContentSize").as_object();
        const auto r =
            page("Page.captureScreenshot", {{"format", "png"},
                                            {"captureBeyondViewport", true},
                                            {"clip",
                                             {{"x", 0},
                                              {"y", 0},
                                              {"width", size.at("width").to_number<double>()},
                                              {"height", size.at("height").to_number<double>()},
                                              {"scale", 1}}}});
        const auto& b64 = r.at("data").as_string();
        std::string png(beast::detail::base64::decoded_size(b64.size()), '\0');
        const auto n = beast::detail::base64::decode(png.data(), b64.data(), b64.size());
        png.resize(n.first);
        std::filesystem::create_directories(file.parent_path());
        std::ofstream(file, std::ios::binary) << png;
    }

    /// URLs of every request the page made, and their Authorization headers.
    std::vector<std::pair<std::string, std::string>> requests() const {
        std::vector<std::pair<std::string, std::string>> out;
        for (const auto& e : dt_->events) {
            if (e.at("method") != "Network.requestWillBeSent")
                continue;
            const auto& req = e.at("params").at("request").as_object();
            std::string auth;
            if (const auto* h = req.at("headers").as_object().if_contains("Authorization"))
                auth = std::string(h->as_string());
            out.emplace_back(std::string(req.at("url").as_string()), auth);
        }
        return out;
    }
    /// Console messages and exceptions the page reported.
    std::vector<std::string> page_errors() const {
        std::vector<std::string> out;
        for (const auto& e : dt_->events)
            if (e.at("method") == "Runtime.exceptionThrown" ||
                (e.at("method") == "Runtime.consoleAPICalled" &&
                 e.at("params").at("type") == "error"))
                out.push_back(bj::serialize(e.at("params")));
        return out;
    }

    static std::string js(const std::string& s) { return bj::serialize(bj::value(s)); }

private:
    std::filesystem::path profile_;
    std::unique_ptr<child_process> proc_;
    std::unique_ptr<devtools> dt_;
    std::string session_;
};

class console_test : public ::testing::Test {
protected:
    void SetUp() override {
        speak4::sim::options so;
        so.static_tokens = {ghl_token};
        sim_ = std::make_unique<speak4::sim::server>(so);
        sim_->start();
        sim_->seed_contact(
            {{"firstName", "Grace"}, {"lastName", "Hopper"}, {"email", "grace@example.com"}});
        // GHL refuses any write that names this contact for good: its create is dead-lettered.
        speak4::sim::fault_config f;
        f.reject_body_containing = "refused-by-ghl";
        sim_->set_faults(f);
        api_port_ = free_port();
        write_file(dir_ / "ghl-token", ghl_token + "\n", 0600);
        write_file(dir_ / "api-token", api_token + "\n", 0600);
        write_file(
            dir_ / "speak4-sync.toml",
            "[database]\npath = \"" + (dir_ / "s.db").string() + "\"\n[ghl]\nbase_url = \"" +
                sim_->base_url() + "\"\nlocation_id = \"" + sim_->location_id() +
                "\"\ntoken_file = \"" + (dir_ / "ghl-token").string() +
                "\"\ntimeout_ms = 2000\n[api]\nlisten = \"127.0.0.1:" + std::to_string(api_port_) +
                "\"\ntoken_file = \"" + (dir_ / "api-token").string() +
                "\"\n[retry]\nbase_ms = 10\nmax_ms = 200\n[sync]\ncoalesce_ms = 10\n"
                // info: the log lines the secret check reads are the ones operators see
                "[logging]\nlevel = \"info\"\nformat = \"json\"\n");
    }
    void TearDown() override { sim_->stop(); }

    std::unique_ptr<child_process> start_daemon() {
        auto d = std::make_unique<child_process>(
            binary_path().string(),
            std::vector<std::string>{"--config", (dir_ / "speak4-sync.toml").string(), "run"},
            dir_ / "daemon.out", dir_ / "daemon.err");
        const bool up = wait_until(
            [&] { return http(api_port_, "GET", "/healthz").status != 0 || !d->running(); }, 30000);
        if (!up || !d->running())
            ADD_FAILURE() << "the daemon did not start: " << read_file(dir_ / "daemon.err");
        return d;
    }

    long long count(const std::string& sql) {
        SQLite::Database db((dir_ / "s.db").string(), SQLite::OPEN_READONLY);
        db.setBusyTimeout(5000);
        return db.execAndGet(sql).getInt64();
    }
    std::string state_of(long long id) {
        SQLite::Database db((dir_ / "s.db").string(), SQLite::OPEN_READONLY);
        db.setBusyTimeout(5000);
        SQLite::Statement q(db, "SELECT state FROM outbox WHERE id = ?");
        q.bind(1, static_cast<std::int64_t>(id));
        return q.executeStep() ? q.getColumn(0).getString() : std::string("<gone>");
    }

    /// Traffic: contacts with a task and a note each, a tag, and one contact GHL refuses.
    void send_traffic() {
        for (int i = 1; i <= 4; ++i) {
            const std::string n = std::to_string(i);
            const auto r =
                http(api_port_, "POST", "/v1/events", api_token,
                     R"({"type":"contact.created","event_id":"c-)" + n +
                         R"(","contact":{"speak4_id":"s4-)" + n + R"(","firstName":"Ada)" + n +
                         R"(","email":"ada)" + n + R"(@example.com"},"notes":[{"speak4_id":"n-)" +
                         n + R"(","body":"called"}]})");
            ASSERT_EQ(r.status, 202) << r.body;
            ASSERT_EQ(http(api_port_, "POST", "/v1/events", api_token,
                           R"({"type":"task.created","event_id":"t-)" + n +
                               R"(","contact":{"speak4_id":"s4-)" + n +
                               R"("},"task":{"speak4_id":"t-)" + n +
                               R"(","title":"demo","dueDate":"2026-12-20T15:00:00Z"}})")
                          .status,
                      202);
        }
        ASSERT_EQ(
            http(
                api_port_, "POST", "/v1/events", api_token,
                R"({"type":"contact.tagged","event_id":"g-1","contact":{"speak4_id":"s4-1"},"tags":["vip"]})")
                .status,
            202);
        ASSERT_EQ(
            http(
                api_port_, "POST", "/v1/events", api_token,
                R"({"type":"contact.created","event_id":"bad-1","contact":{"speak4_id":"s4-bad","firstName":"Rex","lastName":"refused-by-ghl","email":"rex@example.com"}})")
                .status,
            202);
    }

    bool settled() {
        return count("SELECT COUNT(*) FROM outbox WHERE state IN ('pending','inflight')") == 0 &&
               count("SELECT COUNT(*) FROM outbox WHERE state = 'dead'") == 1;
    }

    bj::object status_json() {
        const auto r =
            run_cli({"--config", (dir_ / "speak4-sync.toml").string(), "status", "--json"});
        EXPECT_EQ(r.exit_code, 0) << r.err;
        return bj::parse(r.out).as_object();
    }

    std::filesystem::path artifacts() const {
        return std::filesystem::path(SPEAK4_BUILD_DIR) / "test-artifacts" / "console";
    }

    temp_dir dir_;
    std::unique_ptr<speak4::sim::server> sim_;
    unsigned short api_port_ = 0;
};

std::string digits(const std::string& s) {
    std::string out;
    for (char c : s)
        if (c != ',')
            out += c;
    return out;
}

std::string num_or_unknown(const bj::value& v) {
    return v.is_null() ? "unknown" : std::to_string(v.to_number<long long>());
}

} // namespace

TEST_F(console_test, an_operator_sees_the_status_and_replays_a_dead_letter_in_chromium) {
    ASSERT_TRUE(std::filesystem::exists(chromium_path))
        << chromium_path << " is missing: scripts/install-deps --test installs Debian's chromium";
    auto d = start_daemon();
    send_traffic();
    ASSERT_TRUE(wait_until([&] { return settled(); }, 60000))
        << "dead " << count("SELECT COUNT(*) FROM outbox WHERE state = 'dead'") << "\n"
        << read_file(dir_ / "daemon.err");
    const long long dead_id = count("SELECT id FROM outbox WHERE state = 'dead'");

    browser b(dir_.path());
    const std::string base = "http://127.0.0.1:" + std::to_string(api_port_);
    b.navigate(base + "/console/");
    ASSERT_FALSE(b.eval("document.getElementById('login').hidden").as_bool());
    b.screenshot(artifacts() / "0-login.png");

    // A wrong token is refused and forgotten.
    b.type("#token", "not-the-token");
    b.click("#login-form button[type=submit]");
    ASSERT_TRUE(
        wait_until([&] { return b.text("#login-error") == "The token was refused."; }, 20000))
        << b.text("#login-error");

    b.type("#token", api_token);
    b.click("#login-form button[type=submit]");
    ASSERT_TRUE(wait_until([&] { return b.text("#q-dead") != "–"; }, 20000))
        << "the overview never filled in";

    // The overview shows what `status --json` shows. Both read the same database; the page
    // refreshes every 5 s, so wait until it agrees with a fresh `status --json`.
    std::string mismatch;
    const bool agrees = wait_until(
        [&] {
            const auto st = status_json();
            const auto& q = st.at("queue").as_object();
            const auto& rl = st.at("rate_limit").as_object();
            const std::vector<std::pair<std::string, std::string>> want{
                {"#q-pending", std::to_string(q.at("pending").to_number<long long>())},
                {"#q-inflight", std::to_string(q.at("inflight").to_number<long long>())},
                {"#q-done", std::to_string(q.at("done").to_number<long long>())},
                {"#q-dead", std::to_string(q.at("dead").to_number<long long>())},
                {"#rate-remaining", num_or_unknown(rl.at("remaining"))},
                {"#rate-daily", num_or_unknown(rl.at("daily_remaining"))},
                {"#auth-state", std::string(st.at("auth").at("state").as_string())},
                {"#changes-seq", std::to_string(st.at("changes_seq").to_number<long long>())},
            };
            mismatch.clear();
            for (const auto& [sel, v] : want)
                if (digits(b.text(sel)) != v)
                    mismatch += sel + ": page " + b.text(sel) + ", status --json " + v + "\n";
            const auto pull = st.at("last_pull_at");
            const std::string page_pull =
                b.eval("document.getElementById('last-pull').dataset.iso").as_string().c_str();
            if (page_pull != (pull.is_null() ? "" : pull.as_string().c_str()))
                mismatch += "last pull: page " + page_pull + ", status --json " +
                            bj::serialize(pull) + "\n";
            return mismatch.empty();
        },
        30000);
    EXPECT_TRUE(agrees) << mismatch;
    EXPECT_EQ(b.text("#q-dead"), "1");
    // Health of each loop and part, as /healthz reports them.
    EXPECT_TRUE(b.exists("#health-rows tr[data-part='loop:dispatcher']"));
    EXPECT_TRUE(b.exists("#health-rows tr[data-part='auth']"));
    EXPECT_TRUE(b.exists("#chart-calls svg rect")) << "no calls drawn";
    EXPECT_TRUE(b.exists("#chart-latency svg path"));
    b.screenshot(artifacts() / "1-overview.png");

    // The same page on a phone: nothing wider than the screen.
    b.page("Emulation.setDeviceMetricsOverride",
           {{"width", 390}, {"height", 844}, {"deviceScaleFactor", 2}, {"mobile", true}});
    b.navigate(base + "/console/#overview");
    ASSERT_TRUE(wait_until([&] { return b.text("#q-dead") == "1"; }, 20000))
        << "the token did not survive a reload of the tab";
    EXPECT_LE(b.eval("document.documentElement.scrollWidth").to_number<double>(),
              b.eval("window.innerWidth").to_number<double>() + 1);
    b.screenshot(artifacts() / "1-overview-phone.png");
    b.page("Emulation.clearDeviceMetricsOverride");

    // Dead letters: the row with GHL's answer and the event behind it.
    b.navigate(base + "/console/#dead");
    const std::string item = "article[data-outbox-id='" + std::to_string(dead_id) + "']";
    ASSERT_TRUE(wait_until([&] { return b.exists(item); }, 20000)) << "dead letter not listed";
    EXPECT_NE(b.text(item + " .ghl-body").find("the request was rejected by the simulator"),
              std::string::npos)
        << b.text(item + " .ghl-body");
    EXPECT_NE(b.text(item + " header").find("422"), std::string::npos) << b.text(item + " header");
    EXPECT_NE(b.text(item + " pre.event").find("bad-1"), std::string::npos)
        << "the Speak4 event behind the row: " << b.text(item + " pre.event");
    b.screenshot(artifacts() / "2-dead-letters.png");

    // GHL's problem is fixed; the operator clicks Retry and the row leaves `dead`.
    sim_->set_faults({});
    b.click(item + " button.retry");
    EXPECT_TRUE(wait_until([&] { return state_of(dead_id) != "dead"; }, 20000));
    EXPECT_TRUE(wait_until([&] { return state_of(dead_id) == "done"; }, 30000))
        << state_of(dead_id);
    EXPECT_TRUE(wait_until([&] { return !b.exists(item); }, 20000)) << "the list did not refresh";

    // Audit: filtered by status class and path template.
    b.navigate(base + "/console/#audit");
    ASSERT_TRUE(wait_until([&] { return b.exists("#audit-rows tr"); }, 20000));
    b.eval("document.getElementById('audit-status').value = '4xx'");
    b.eval("document.getElementById('audit-path').value = '/contacts/'");
    b.click("#audit-form button[type=submit]");
    ASSERT_TRUE(wait_until(
        [&] {
            return b
                .eval("[...document.querySelectorAll('#audit-rows tr')].length > 0 && "
                      "[...document.querySelectorAll('#audit-rows tr td:nth-child(3)')]"
                      ".every(td => td.textContent === '422')")
                .as_bool();
        },
        20000))
        << "the 4xx filter shows other calls";
    b.screenshot(artifacts() / "3-audit.png");

    b.navigate(base + "/console/#conflicts");
    ASSERT_TRUE(wait_until(
        [&] { return !b.eval("document.getElementById('conflicts-empty').hidden").as_bool(); },
        20000));
    b.screenshot(artifacts() / "4-conflicts.png");

    // Contact timeline, found by email: its event in, the calls out, its changes, in order.
    b.navigate(base + "/console/#contact");
    b.type("#contact-q", "ADA2@example.com");
    b.click("#contact-form button[type=submit]");
    ASSERT_TRUE(wait_until([&] { return b.exists("#contact-timeline li.call"); }, 20000));
    EXPECT_TRUE(b.exists("#contact-timeline li.event"));
    EXPECT_TRUE(b.exists("#contact-timeline li.change"));
    EXPECT_TRUE(b.eval("(() => { const t = [...document.querySelectorAll('#contact-timeline "
                       "li .when')].map(e => e.textContent); return t.length > 2; })()")
                    .as_bool());
    b.screenshot(artifacts() / "5-contact.png");

    // No secret in the page, its URLs or cookies; the token travelled as a header only.
    const std::string html = b.eval("document.documentElement.outerHTML").as_string().c_str();
    EXPECT_EQ(html.find(api_token), std::string::npos);
    EXPECT_EQ(html.find(ghl_token), std::string::npos);
    bool sent_as_header = false;
    for (const auto& [url, auth] : b.requests()) {
        EXPECT_EQ(url.find(api_token), std::string::npos) << url;
        EXPECT_EQ(url.find(ghl_token), std::string::npos) << url;
        EXPECT_EQ(url.rfind(base, 0), 0u) << "the page fetched from elsewhere: " << url;
        sent_as_header = sent_as_header || auth == "Bearer " + api_token;
    }
    EXPECT_TRUE(sent_as_header);
    EXPECT_TRUE(b.page("Network.getCookies").at("cookies").as_array().empty());
    EXPECT_TRUE(b.page_errors().empty()) << b.page_errors().front();

    d->signal(SIGTERM);
    EXPECT_EQ(d->wait(20000), 0);
    const std::string logs = read_file(dir_ / "daemon.err") + read_file(dir_ / "daemon.out");
    EXPECT_NE(logs.find("dead letter retried from the console"), std::string::npos);
    EXPECT_EQ(logs.find(api_token), std::string::npos);
    EXPECT_EQ(logs.find(ghl_token), std::string::npos);
    EXPECT_EQ(logs.find("not-the-token"), std::string::npos);
}

TEST_F(console_test, admin_routes_refuse_bad_input_and_bound_their_reads) {
    auto d = start_daemon();
    send_traffic();
    ASSERT_TRUE(wait_until([&] { return settled(); }, 60000)) << read_file(dir_ / "daemon.err");
    const long long dead_id = count("SELECT id FROM outbox WHERE state = 'dead'");
    const long long done_id = count("SELECT MIN(id) FROM outbox WHERE state = 'done'");

    // The console's files: no token needed, strict policies, no inline script.
    const auto page = http(api_port_, "GET", "/console/");
    EXPECT_EQ(page.status, 200);
    EXPECT_NE(page.head.find("Content-Security-Policy: default-src 'none'; script-src 'self';"),
              std::string::npos)
        << page.head;
    EXPECT_NE(page.head.find("Cache-Control: no-store"), std::string::npos);
    EXPECT_EQ(page.body.find("<script>"), std::string::npos) << "inline script";
    EXPECT_EQ(page.body.find("http://"), std::string::npos) << "nothing from elsewhere";
    EXPECT_EQ(page.body.find("https://"), std::string::npos);
    EXPECT_EQ(http(api_port_, "GET", "/console/console.js").status, 200);
    EXPECT_EQ(http(api_port_, "GET", "/console/nope.js").status, 404);

    // Wrong or missing token: 401, and nothing about the data or the token.
    for (const std::string& t : {std::string(), std::string("wrong"), api_token + "x"}) {
        const auto r = http(api_port_, "GET", "/v1/admin/dead", t);
        EXPECT_EQ(r.status, 401) << t;
        EXPECT_EQ(r.body.find("refused-by-ghl"), std::string::npos);
        EXPECT_EQ(r.body.find(api_token), std::string::npos);
        EXPECT_EQ(
            http(api_port_, "POST", "/v1/admin/outbox/" + std::to_string(dead_id) + "/retry", t)
                .status,
            401);
    }
    EXPECT_EQ(state_of(dead_id), "dead");

    // Unknown admin routes are 404, wrong methods 405.
    EXPECT_EQ(http(api_port_, "GET", "/v1/admin/nope", api_token).status, 404);
    EXPECT_EQ(http(api_port_, "GET", "/v1/admin/", api_token).status, 404);
    EXPECT_EQ(http(api_port_, "POST", "/v1/admin/outbox/abc/retry", api_token).status, 404);
    EXPECT_EQ(http(api_port_, "POST", "/v1/admin/outbox/1/explode", api_token).status, 404);
    EXPECT_EQ(http(api_port_, "GET", "/v1/admin/outbox/1/retry", api_token).status, 405);
    EXPECT_EQ(http(api_port_, "POST", "/v1/admin/overview", api_token).status, 405);

    // Retry/drop of a row that is not dead: 409 with its state; of no row: 404.
    for (const char* action : {"retry", "drop"}) {
        const auto r =
            http(api_port_, "POST", "/v1/admin/outbox/" + std::to_string(done_id) + "/" + action,
                 api_token);
        EXPECT_EQ(r.status, 409) << r.body;
        EXPECT_EQ(bj::parse(r.body).at("error").at("state"), "done") << r.body;
        EXPECT_EQ(
            http(api_port_, "POST", std::string("/v1/admin/outbox/999999/") + action, api_token)
                .status,
            404);
    }
    EXPECT_EQ(state_of(done_id), "done");

    // The dead letter as JSON: GHL's status and body, the event behind it.
    const auto dead = http(api_port_, "GET", "/v1/admin/dead", api_token);
    ASSERT_EQ(dead.status, 200);
    EXPECT_NE(dead.head.find("Cache-Control: no-store"), std::string::npos);
    const auto rows = bj::parse(dead.body).at("dead").as_array();
    ASSERT_EQ(rows.size(), 1u);
    EXPECT_EQ(rows[0].at("id").to_number<long long>(), dead_id);
    EXPECT_EQ(rows[0].at("last_status").to_number<long long>(), 422);
    EXPECT_EQ(rows[0].at("events").as_array().at(0).at("event_id"), "bad-1");

    // Bounded audit reads: limits, time ranges, filters are checked.
    EXPECT_EQ(http(api_port_, "GET", "/v1/admin/audit?limit=100000", api_token).status, 400);
    EXPECT_EQ(http(api_port_, "GET", "/v1/admin/audit?since=30d", api_token).status, 400);
    EXPECT_EQ(http(api_port_, "GET", "/v1/admin/audit?since=1h&until=2h", api_token).status, 400);
    EXPECT_EQ(http(api_port_, "GET", "/v1/admin/audit?status=abc", api_token).status, 400);
    EXPECT_EQ(http(api_port_, "GET", "/v1/admin/audit?sort=ts", api_token).status, 400);
    EXPECT_EQ(http(api_port_, "GET", "/v1/admin/series?minutes=100000", api_token).status, 400);
    const auto audit =
        http(api_port_, "GET", "/v1/admin/audit?status=422&path=/contacts/&since=15m&limit=5",
             api_token);
    ASSERT_EQ(audit.status, 200) << audit.body;
    const auto calls = bj::parse(audit.body).at("audit").as_array();
    ASSERT_FALSE(calls.empty());
    for (const auto& c : calls) {
        EXPECT_EQ(c.at("status").to_number<long long>(), 422);
        EXPECT_EQ(c.at("path_template"), "/contacts/");
    }
    const auto tasks = http(api_port_, "GET",
                            "/v1/admin/audit?path=/contacts/:contactId/tasks&limit=2", api_token);
    ASSERT_EQ(tasks.status, 200);
    const auto task_calls = bj::parse(tasks.body).at("audit").as_array();
    EXPECT_EQ(task_calls.size(), 2u);
    EXPECT_TRUE(bj::parse(tasks.body).at("more").as_bool()) << "4 task creates, a page of 2";

    // A contact found by speak4_id, ghl_id and email alike; an unknown one is 404.
    const auto by_s4 = http(api_port_, "GET", "/v1/admin/contact?q=s4-3", api_token);
    ASSERT_EQ(by_s4.status, 200);
    const auto ghl_id = bj::parse(by_s4.body).at("contact").at("ghl_id");
    ASSERT_TRUE(ghl_id.is_string());
    const auto by_ghl =
        http(api_port_, "GET", "/v1/admin/contact?q=" + std::string(ghl_id.as_string()), api_token);
    EXPECT_EQ(bj::parse(by_ghl.body).at("contact").at("speak4_id"), "s4-3");
    EXPECT_EQ(http(api_port_, "GET", "/v1/admin/contact?q=nobody%40example.com", api_token).status,
              404);
    EXPECT_EQ(http(api_port_, "GET", "/v1/admin/contact", api_token).status, 400);

    // Overview: the same figures as `status --json`.
    const auto ov = http(api_port_, "GET", "/v1/admin/overview", api_token);
    ASSERT_EQ(ov.status, 200);
    const auto st = status_json();
    EXPECT_EQ(bj::parse(ov.body).at("status").at("queue"), st.at("queue"));
    EXPECT_EQ(bj::parse(ov.body).at("status").at("auth"), st.at("auth"));

    // Drop of the dead letter, like `queue drop`.
    const auto drop =
        http(api_port_, "POST", "/v1/admin/outbox/" + std::to_string(dead_id) + "/drop", api_token);
    EXPECT_EQ(drop.status, 200) << drop.body;
    EXPECT_EQ(state_of(dead_id), "<gone>");
    d->signal(SIGTERM);
    EXPECT_EQ(d->wait(20000), 0);
}
