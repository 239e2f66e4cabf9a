// The real binary under database trouble: an operator's sqlite3 session holding the write lock
// while the daemon starts and again while it runs, a fail point that makes the dispatcher's
// database work fail for a while (or for good), and a full disk at intake. The daemon either
// works or says loudly that it does not: /healthz names the stalled part while the trouble
// lasts, nothing accepted is lost, and the work goes on once the cause is gone.
#include "ghl_sim.hpp"
#include "support/test_support.hpp"

#include <SQLiteCpp/Database.h>
#include <arpa/inet.h>
#include <atomic>
#include <csignal>
#include <future>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

using namespace speak4::testing;

namespace {

struct http_answer {
    int status = 0;
    std::string body;
};

/// One HTTP/1.1 request over a fresh loopback connection (blocking; tests only). `timeout_s`
/// bounds the wait for the answer: intake may hold a 202 while the database is locked.
http_answer http(unsigned short port, const std::string& method, const std::string& target,
                 const std::string& body = "", const std::string& token = "", int timeout_s = 10) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    timeval tv{timeout_s, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        ::close(fd);
        return {};
    }
    std::string req =
        method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
    if (!token.empty())
        req += "Authorization: Bearer " + token + "\r\n";
    if (!body.empty())
        req += "Content-Type: application/json\r\n";
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
    if (auto p = resp.find("\r\n\r\n"); p != std::string::npos)
        r.body = resp.substr(p + 4);
    return r;
}

std::string contact_event(int i) {
    const std::string n = std::to_string(i);
    return R"({"type":"contact.created","event_id":"c-)" + n + R"(","contact":{"speak4_id":"s4-)" +
           n + R"(","firstName":"P)" + n + R"(","email":"p)" + n + R"(@example.com"}})";
}

std::size_t count_lines(const std::string& text, const std::string& needle) {
    std::size_t n = 0;
    for (auto p = text.find(needle); p != std::string::npos; p = text.find(needle, p + 1))
        ++n;
    return n;
}

class resilience_test : public ::testing::Test {
protected:
    void SetUp() override { start_sim({}); }

    void start_sim(speak4::sim::options so, bool oauth = false) {
        if (sim_)
            sim_->stop();
        so.rate_limit = false;
        so.static_tokens = {"token-one"};
        sim_ = std::make_unique<speak4::sim::server>(so);
        sim_->start();
        api_port_ = free_port();
        write_file(dir_ / "ghl-token", "token-one\n", 0600);
        write_file(dir_ / "client-secret", so.client_secret + "\n", 0600);
        write_file(dir_ / "api-token", "api-secret\n", 0600);
        const std::string auth = oauth ? "auth = \"oauth\"\nclient_id = \"" + so.client_id +
                                             "\"\nclient_secret_file = \"" +
                                             (dir_ / "client-secret").string() + "\"\n"
                                       : "token_file = \"" + (dir_ / "ghl-token").string() + "\"\n";
        write_file(
            dir_ / "speak4-sync.toml",
            "[database]\npath = \"" + (dir_ / "s.db").string() +
                "\"\n"
                "[ghl]\nbase_url = \"" +
                sim_->base_url() + "\"\nlocation_id = \"" + sim_->location_id() + "\"\n" + auth +
                "timeout_ms = 2000\n"
                "[api]\nlisten = \"127.0.0.1:" +
                std::to_string(api_port_) + "\"\ntoken_file = \"" + (dir_ / "api-token").string() +
                "\"\n"
                "[retry]\nbase_ms = 10\nmax_ms = 200\n"
                "[health]\nstall_after_seconds = 2\n"
                "[sync]\ncoalesce_ms = 10\npoll_interval_seconds = 1\n"
                "[logging]\nlevel = \"info\"\nformat = \"json\"\n");
    }

    void TearDown() override { sim_->stop(); }

    std::unique_ptr<child_process> start_daemon(const std::vector<std::string>& env = {}) {
        return std::make_unique<child_process>(
            binary_path().string(),
            std::vector<std::string>{"--config", (dir_ / "speak4-sync.toml").string(), "run"},
            dir_ / "daemon.out", dir_ / "daemon.err", env);
    }

    run_result cli(std::vector<std::string> args) {
        args.insert(args.begin(), {"--config", (dir_ / "speak4-sync.toml").string()});
        return run_cli(args);
    }

    /// The real sqlite3 CLI holding BEGIN IMMEDIATE on the database for `seconds`; returns once
    /// the lock is taken.
    std::unique_ptr<child_process> hold_write_lock(int seconds) {
        const auto marker = dir_ / "locked";
        std::filesystem::remove(marker);
        const std::string script = ".bail on\n.timeout 5000\nBEGIN IMMEDIATE;\n.system touch " +
                                   marker.string() + "\n.system sleep " + std::to_string(seconds) +
                                   "\nCOMMIT;\n";
        write_file(dir_ / "lock.sql", script);
        auto p = std::make_unique<child_process>(
            "/bin/sh",
            std::vector<std::string>{"-c", "exec sqlite3 '" + (dir_ / "s.db").string() + "' < '" +
                                               (dir_ / "lock.sql").string() + "'"},
            dir_ / "sqlite3.out", dir_ / "sqlite3.err");
        EXPECT_TRUE(wait_until([&] { return std::filesystem::exists(marker); }, 10000))
            << read_file(dir_ / "sqlite3.err");
        return p;
    }

    long long count(const std::string& sql) {
        SQLite::Database db((dir_ / "s.db").string(), SQLite::OPEN_READONLY);
        db.setBusyTimeout(5000);
        return db.execAndGet(sql).getInt64();
    }

    long long contacts_created() {
        const auto s = sim_->get_stats();
        const auto it = s.creates.find("contact");
        return it == s.creates.end() ? 0 : it->second;
    }

    bool answering() { return http(api_port_, "GET", "/healthz").status != 0; }

    /// Posts events from a thread each (the answers may wait for a lock to go).
    std::vector<std::future<http_answer>> post_events(int from, int to) {
        std::vector<std::future<http_answer>> out;
        for (int i = from; i < to; ++i)
            out.push_back(std::async(std::launch::async, [this, i] {
                return http(api_port_, "POST", "/v1/events", contact_event(i), "api-secret", 60);
            }));
        return out;
    }

    /// Polls /healthz while `holder` runs; true when it said unhealthy naming `needle`.
    bool saw_unhealthy_while(child_process& holder, const std::string& needle) {
        bool seen = false;
        while (holder.running()) {
            const auto h = http(api_port_, "GET", "/healthz", "", "", 2);
            if (h.status == 503 && h.body.find(needle) != std::string::npos)
                seen = true;
            std::this_thread::sleep_for(std::chrono::milliseconds(200));
        }
        return seen;
    }

    temp_dir dir_;
    std::unique_ptr<speak4::sim::server> sim_;
    unsigned short api_port_ = 0;
};

} // namespace

// An operator's sqlite3 session holds the write lock for 10 s while the daemon starts and
// again for 10 s while it runs: the events sent meanwhile reach GHL once the lock is gone, and
// /healthz reports the stall while it lasts.
TEST_F(resilience_test, a_sqlite3_write_lock_at_start_and_mid_run_is_waited_out_and_reported) {
    ASSERT_EQ(cli({"migrate"}).exit_code, 0);

    auto holder = hold_write_lock(10);
    auto d = start_daemon();
    ASSERT_TRUE(wait_until([&] { return answering() || !d->running(); }, 20000));
    ASSERT_TRUE(d->running()) << read_file(dir_ / "daemon.err");
    auto first = post_events(0, 3);
    EXPECT_TRUE(saw_unhealthy_while(*holder, "stalled"))
        << "/healthz never reported the stall during the lock";
    EXPECT_EQ(holder->wait(5000), 0) << read_file(dir_ / "sqlite3.err");
    for (auto& f : first)
        EXPECT_EQ(f.get().status, 202);
    ASSERT_TRUE(wait_until([&] { return contacts_created() == 3; }, 30000))
        << read_file(dir_ / "daemon.err");
    EXPECT_TRUE(wait_until([&] { return http(api_port_, "GET", "/healthz").status == 200; }, 20000))
        << http(api_port_, "GET", "/healthz").body;

    // Mid-run.
    holder = hold_write_lock(10);
    auto second = post_events(3, 6);
    const bool reported = saw_unhealthy_while(*holder, "lock another connection holds");
    EXPECT_TRUE(reported) << "/healthz never named the lock during the mid-run lock";
    EXPECT_EQ(holder->wait(5000), 0);
    for (auto& f : second)
        EXPECT_EQ(f.get().status, 202);
    ASSERT_TRUE(wait_until([&] { return contacts_created() == 6; }, 30000))
        << read_file(dir_ / "daemon.err");
    EXPECT_EQ(count("SELECT COUNT(*) FROM outbox WHERE state IN ('pending','inflight','dead')"), 0);
    EXPECT_TRUE(
        wait_until([&] { return http(api_port_, "GET", "/healthz").status == 200; }, 20000));
    ASSERT_TRUE(d->running());
    d->signal(SIGTERM);
    EXPECT_EQ(d->wait(30000), 0);
    // Each loop logged its trouble once, not once per iteration.
    const std::string err = read_file(dir_ / "daemon.err");
    EXPECT_EQ(err.find("stopped on an error"), std::string::npos) << err;
    EXPECT_LE(count_lines(err, "dispatcher: database work failed"), 2u) << err;
}

// A fail point makes every database job of the dispatcher fail while a file exists: the loop
// backs off (logging once), /healthz says which loop is unwell, events are still accepted, and
// once the file goes the loop resumes and delivers them.
TEST_F(resilience_test, a_failing_dispatcher_database_resumes_when_the_fault_clears) {
    ASSERT_EQ(cli({"migrate"}).exit_code, 0);
    const auto flag = dir_ / "fail-dispatcher";
    write_file(flag, "");
    auto d = start_daemon({"SPEAK4_FAIL_POINTS=dispatcher.db@" + flag.string()});
    ASSERT_TRUE(wait_until([&] { return answering() || !d->running(); }, 20000));
    for (int i = 0; i < 3; ++i)
        EXPECT_EQ(http(api_port_, "POST", "/v1/events", contact_event(i), "api-secret").status,
                  202);
    http_answer h;
    EXPECT_TRUE(wait_until(
        [&] {
            h = http(api_port_, "GET", "/healthz");
            return h.status == 503 && h.body.find("dispatcher stalled") != std::string::npos;
        },
        20000))
        << h.status << " " << h.body;
    EXPECT_NE(h.body.find("fail point dispatcher.db"), std::string::npos) << h.body;
    // `status` names it, from the running daemon.
    const auto st = cli({"status", "--json"});
    EXPECT_EQ(st.exit_code, 0) << st.err;
    EXPECT_NE(st.out.find(R"("health":{"status":"unhealthy","reason":"dispatcher stalled)"),
              std::string::npos)
        << st.out;
    EXPECT_NE(cli({"status"}).out.find("health     unhealthy: dispatcher stalled"),
              std::string::npos);
    // /metrics names the loop too.
    const auto m = http(api_port_, "GET", "/metrics", "", "api-secret");
    EXPECT_NE(m.body.find("speak4_loop_stalled{loop=\"dispatcher\"} 1"), std::string::npos)
        << m.body;
    EXPECT_EQ(contacts_created(), 0);
    EXPECT_EQ(count("SELECT COUNT(*) FROM outbox WHERE state = 'pending'"), 3);

    std::filesystem::remove(flag);
    ASSERT_TRUE(wait_until([&] { return contacts_created() == 3; }, 30000))
        << read_file(dir_ / "daemon.err");
    EXPECT_TRUE(wait_until([&] { return http(api_port_, "GET", "/healthz").status == 200; }, 20000))
        << http(api_port_, "GET", "/healthz").body;
    ASSERT_TRUE(d->running());
    d->signal(SIGTERM);
    EXPECT_EQ(d->wait(30000), 0);
    const std::string err = read_file(dir_ / "daemon.err");
    EXPECT_EQ(count_lines(err, "outbox recovery failed"), 1u) << err;
}

// Corruption cannot be outlived: the process ends non-zero (systemd restarts it, and the
// restart refuses a corrupt file) instead of running with a dead loop.
TEST_F(resilience_test, a_dispatcher_database_that_cannot_recover_ends_the_process_non_zero) {
    ASSERT_EQ(cli({"migrate"}).exit_code, 0);
    auto d = start_daemon({"SPEAK4_FAIL_POINTS=dispatcher.db:corrupt"});
    const int code = d->wait(30000);
    EXPECT_EQ(code, 74) << read_file(dir_ / "daemon.err");
    EXPECT_NE(read_file(dir_ / "daemon.err").find("cannot go on"), std::string::npos);
}

// A full disk at intake: 503 with the cause, nothing half-written, and events are accepted
// (and delivered) again once space is back.
TEST_F(resilience_test, a_full_disk_at_intake_answers_503_and_resumes) {
    ASSERT_EQ(cli({"migrate"}).exit_code, 0);
    const auto flag = dir_ / "disk-full";
    write_file(flag, "");
    auto d = start_daemon({"SPEAK4_FAIL_POINTS=intake.db:full@" + flag.string()});
    ASSERT_TRUE(wait_until([&] { return answering() || !d->running(); }, 20000));
    const auto refused = http(api_port_, "POST", "/v1/events", contact_event(1), "api-secret");
    EXPECT_EQ(refused.status, 503) << refused.body;
    EXPECT_NE(refused.body.find("disk is full"), std::string::npos) << refused.body;
    const auto h = http(api_port_, "GET", "/healthz");
    EXPECT_EQ(h.status, 503);
    EXPECT_NE(h.body.find("disk is full"), std::string::npos) << h.body;
    EXPECT_EQ(count("SELECT COUNT(*) FROM inbox"), 0);
    EXPECT_EQ(count("SELECT COUNT(*) FROM outbox"), 0);

    std::filesystem::remove(flag);
    EXPECT_EQ(http(api_port_, "POST", "/v1/events", contact_event(1), "api-secret").status, 202);
    ASSERT_TRUE(wait_until([&] { return contacts_created() == 1; }, 30000))
        << read_file(dir_ / "daemon.err");
    EXPECT_TRUE(
        wait_until([&] { return http(api_port_, "GET", "/healthz").status == 200; }, 20000));
    d->signal(SIGTERM);
    EXPECT_EQ(d->wait(30000), 0);
}

// The change feed's long-poll wakes on every applied change, not only on local events: a
// contact created in GHL and pulled by the daemon answers a waiting `?wait=60` at once (the
// request would otherwise run into its 40 s receive timeout and fail), and so does the change
// a push records.
TEST_F(resilience_test, a_pulled_or_pushed_change_wakes_a_waiting_change_feed) {
    ASSERT_EQ(cli({"migrate"}).exit_code, 0);
    auto d = start_daemon();
    ASSERT_TRUE(wait_until([&] { return answering() || !d->running(); }, 20000));
    ASSERT_TRUE(wait_until(
        [&] { return count("SELECT COUNT(*) FROM sync_cursors WHERE name = 'last_pull_at'") > 0; },
        20000))
        << read_file(dir_ / "daemon.err");
    const auto seq_now = [&] { return count("SELECT COALESCE(MAX(seq), 0) FROM changes"); };

    long long since = seq_now();
    auto waiting = std::async(std::launch::async, [&] {
        return http(api_port_, "GET", "/v1/changes?since=" + std::to_string(since) + "&wait=60", "",
                    "api-secret", 40);
    });
    // Let the request reach its wait first. (Were it late, the pulled row would already be
    // there and it would be answered at once: the test would pass without showing the wake-up,
    // never fail wrongly.)
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    sim_->seed_contact({{"firstName", "Remote"}, {"email", "remote@example.com"}});
    const auto pulled = waiting.get();
    ASSERT_EQ(pulled.status, 200) << "the long-poll was not woken by the pull";
    EXPECT_NE(pulled.body.find(R"("source":"remote")"), std::string::npos) << pulled.body;

    // A push: the event's own (local) change first, then the one GHL's answer records. GHL
    // answers slowly, so the long-poll below waits for the push.
    speak4::sim::fault_config slow;
    slow.latency_ms = 1500;
    sim_->set_faults(slow);
    since = seq_now();
    EXPECT_EQ(http(api_port_, "POST", "/v1/events", contact_event(9), "api-secret").status, 202);
    ASSERT_TRUE(wait_until([&] { return seq_now() > since; }, 10000));
    const long long after_local = count("SELECT MAX(seq) FROM changes WHERE source = 'local'");
    const auto pushed =
        http(api_port_, "GET", "/v1/changes?since=" + std::to_string(after_local) + "&wait=60", "",
             "api-secret", 40);
    ASSERT_EQ(pushed.status, 200) << "the long-poll was not woken by the push";
    EXPECT_NE(pushed.body.find(R"("source":"push")"), std::string::npos) << pushed.body;
    d->signal(SIGTERM);
    EXPECT_EQ(d->wait(30000), 0);
}

// OAuth with a 20 s access-token lifetime: the refresh margin is a quarter of it (5 s), so the
// daemon refreshes about once per 15 s while it works, not before nearly every call (each
// refresh consumes GHL's single-use refresh token). The code comes on standard input.
TEST_F(resilience_test, short_lived_oauth_tokens_are_refreshed_at_most_once_per_15_seconds) {
    speak4::sim::options so;
    so.access_token_ttl_seconds = 20;
    start_sim(so, true);
    ASSERT_EQ(cli({"migrate"}).exit_code, 0);
    const std::string code = sim_->issue_auth_code();
    const auto argv = cli({"auth", "exchange", "--code", code});
    EXPECT_EQ(argv.exit_code, 64) << "the code is refused on the command line";
    EXPECT_EQ(argv.err.find(code), std::string::npos);
    const auto ex = run_cli({"--config", (dir_ / "speak4-sync.toml").string(), "auth", "exchange"},
                            code + "\n");
    ASSERT_EQ(ex.exit_code, 0) << ex.err;
    auto token_calls = [&] {
        const auto st = sim_->get_stats();
        const auto it = st.by_route.find("POST /oauth/token");
        return it == st.by_route.end() ? 0LL : it->second;
    };
    const long long after_exchange = token_calls();
    EXPECT_EQ(after_exchange, 1);

    auto d = start_daemon();
    ASSERT_TRUE(wait_until([&] { return answering() || !d->running(); }, 20000));
    // 40 s of steady work: an event every 500 ms, and a pull every second.
    const auto started = std::chrono::steady_clock::now();
    int sent = 0;
    while (std::chrono::steady_clock::now() - started < std::chrono::seconds(40)) {
        EXPECT_EQ(http(api_port_, "POST", "/v1/events", contact_event(sent), "api-secret").status,
                  202);
        ++sent;
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
    ASSERT_TRUE(wait_until([&] { return contacts_created() == sent; }, 30000))
        << read_file(dir_ / "daemon.err");
    const long long refreshes = token_calls() - after_exchange;
    // 40 s (plus the drain) at one refresh per ~15 s: 2 or 3, a 4th at most for the drain.
    EXPECT_GE(refreshes, 2);
    EXPECT_LE(refreshes, 4) << read_file(dir_ / "daemon.err");
    // Each call to /oauth/token left an audit row, without a secret in it.
    EXPECT_EQ(count("SELECT COUNT(*) FROM audit_log WHERE path = '/oauth/token'"), refreshes + 1);
    EXPECT_EQ(count("SELECT COUNT(*) FROM audit_log WHERE error LIKE '%sim-rt-%' OR "
                    "error LIKE '%sim-at-%' OR error LIKE '%" +
                    code + "%'"),
              0);
    EXPECT_EQ(read_file(dir_ / "daemon.err").find("needs_reauth"), std::string::npos);
    d->signal(SIGTERM);
    EXPECT_EQ(d->wait(30000), 0);
}

// A token without contacts.write (GHL answers 401 "The token is not authorized for this
// scope."): not mistaken for an expired token (no refresh, which would consume the single-use
// refresh token), pulls go on, the writes park (pending, not dead) and /healthz, status and
// /metrics say which operation is unavailable.
TEST_F(resilience_test, a_read_only_oauth_token_keeps_pulling_and_parks_writes_without_refreshing) {
    speak4::sim::options so;
    so.scope = "contacts.readonly locations/customFields.readonly";
    start_sim(so, true);
    ASSERT_EQ(cli({"migrate"}).exit_code, 0);
    const auto ex = run_cli({"--config", (dir_ / "speak4-sync.toml").string(), "auth", "exchange"},
                            sim_->issue_auth_code() + "\n");
    ASSERT_EQ(ex.exit_code, 0) << ex.err;
    auto token_calls = [&] {
        const auto st = sim_->get_stats();
        const auto it = st.by_route.find("POST /oauth/token");
        return it == st.by_route.end() ? 0LL : it->second;
    };
    sim_->seed_contact({{"firstName", "Remote"}, {"email", "remote1@example.com"}});
    auto d = start_daemon();
    ASSERT_TRUE(wait_until([&] { return answering() || !d->running(); }, 20000));
    EXPECT_EQ(http(api_port_, "POST", "/v1/events", contact_event(1), "api-secret").status, 202);
    http_answer h;
    EXPECT_TRUE(wait_until(
        [&] {
            h = http(api_port_, "GET", "/healthz");
            return h.status == 503 &&
                   h.body.find("not authorized for: POST /contacts/") != std::string::npos;
        },
        20000))
        << h.body;
    EXPECT_EQ(count("SELECT COUNT(*) FROM outbox WHERE state = 'pending' AND op = 'create'"), 1);
    EXPECT_EQ(count("SELECT COUNT(*) FROM outbox WHERE state = 'dead'"), 0);
    // Pulls go on: a contact made in GHL meanwhile reaches the mirror.
    sim_->seed_contact({{"firstName", "Later"}, {"email", "remote2@example.com"}});
    EXPECT_TRUE(wait_until(
        [&] { return count("SELECT COUNT(*) FROM contacts WHERE ghl_id IS NOT NULL") >= 2; },
        20000))
        << read_file(dir_ / "daemon.err");
    EXPECT_EQ(token_calls(), 1) << "no refresh for a scope refusal (only the code exchange)";
    const auto m = http(api_port_, "GET", "/metrics", "", "api-secret");
    EXPECT_NE(m.body.find(R"(speak4_part_healthy{part="scopes"} 0)"), std::string::npos) << m.body;
    EXPECT_NE(cli({"status"}).out.find("not authorized for: POST /contacts/"), std::string::npos);
    d->signal(SIGTERM);
    EXPECT_EQ(d->wait(30000), 0);
    EXPECT_EQ(read_file(dir_ / "daemon.err").find("needs_reauth"), std::string::npos);
}

// needs_reauth parks the queue: no claims while GHL refuses the grant (one log line, events stay
// pending with no attempt spent), and a new `auth exchange` (another process) is taken up by the
// running daemon by itself: the queue drains without a restart or SIGHUP.
TEST_F(resilience_test, needs_reauth_parks_the_queue_until_a_new_auth_exchange) {
    speak4::sim::options so;
    so.access_token_ttl_seconds = 4; // refreshed 1 s before expiry
    start_sim(so, true);
    ASSERT_EQ(cli({"migrate"}).exit_code, 0);
    const auto exchange = [&] {
        return run_cli({"--config", (dir_ / "speak4-sync.toml").string(), "auth", "exchange"},
                       sim_->issue_auth_code() + "\n");
    };
    ASSERT_EQ(exchange().exit_code, 0);
    sim_->set_location_active(false); // every refresh is refused for good from now on
    auto d = start_daemon();
    ASSERT_TRUE(wait_until([&] { return answering() || !d->running(); }, 20000));
    ASSERT_TRUE(wait_until(
        [&] { return read_file(dir_ / "daemon.err").find("queue parked") != std::string::npos; },
        30000))
        << read_file(dir_ / "daemon.err");
    for (int i = 0; i < 3; ++i)
        EXPECT_EQ(http(api_port_, "POST", "/v1/events", contact_event(i), "api-secret").status,
                  202);
    // Parked: nothing is claimed (a claim would show as claimed_at or an attempt).
    std::this_thread::sleep_for(std::chrono::seconds(3)); // three dispatcher turns
    EXPECT_EQ(count("SELECT COUNT(*) FROM outbox WHERE state = 'pending' AND attempts = 0 AND "
                    "claimed_at IS NULL AND last_status IS NULL"),
              3);
    EXPECT_EQ(contacts_created(), 0);
    const auto h = http(api_port_, "GET", "/healthz");
    EXPECT_EQ(h.status, 503);
    EXPECT_NE(h.body.find("needs_reauth"), std::string::npos) << h.body;

    sim_->set_location_active(true);
    ASSERT_EQ(exchange().exit_code, 0);
    ASSERT_TRUE(wait_until([&] { return contacts_created() == 3; }, 30000))
        << read_file(dir_ / "daemon.err");
    d->signal(SIGTERM);
    EXPECT_EQ(d->wait(30000), 0);
    const std::string err = read_file(dir_ / "daemon.err");
    EXPECT_EQ(count_lines(err, "queue parked"), 1u) << err;
    EXPECT_EQ(err.find("push waits for credentials"), std::string::npos) << err;
}
