// The real speak4-sync binary as a daemon against ghl-sim over loopback: systemd readiness, a
// clean stop, token rotation on SIGHUP, and crash safety under repeated SIGKILL.
#include "ghl_sim.hpp"
#include "support/test_support.hpp"

#include <SQLiteCpp/Database.h>
#include <arpa/inet.h>
#include <atomic>
#include <csignal>
#include <gtest/gtest.h>
#include <mutex>
#include <netinet/in.h>
#include <random>
#include <sys/socket.h>
#include <sys/un.h>
#include <thread>
#include <unistd.h>

using namespace speak4::testing;
namespace bj = boost::json;

namespace {

/// A NOTIFY_SOCKET for the child, as systemd provides one to a Type=notify service. Drained by
/// a thread, as systemd does: a full datagram queue would block the daemon's sd_notify().
class notify_socket {
public:
    explicit notify_socket(const std::filesystem::path& path)
        : path_(path) {
        fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
        ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
        timeval tv{0, 100000};
        ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        reader_ = std::thread([this] {
            char buf[4096];
            while (!done_) {
                const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
                if (n > 0) {
                    std::lock_guard lock(mutex_);
                    seen_.append(buf, static_cast<std::size_t>(n)).append("\n");
                }
            }
        });
    }
    ~notify_socket() {
        done_ = true;
        reader_.join();
        ::close(fd_);
    }
    /// Every message received so far, concatenated.
    std::string poll() {
        std::lock_guard lock(mutex_);
        return seen_;
    }
    std::string env() const { return "NOTIFY_SOCKET=" + path_.string(); }

private:
    std::filesystem::path path_;
    int fd_ = -1;
    std::atomic<bool> done_{false};
    std::mutex mutex_;
    std::string seen_;
    std::thread reader_;
};

struct http_answer {
    int status = 0;
    std::string body;
};

/// One HTTP/1.1 request over a fresh loopback connection (blocking; tests only).
http_answer http(unsigned short port, const std::string& method, const std::string& target,
                 const std::string& body = "", const std::string& token = "") {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    timeval tv{10, 0};
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

class daemon_test : public ::testing::Test {
protected:
    void SetUp() override {
        speak4::sim::options so;
        so.rate_limit = false;
        so.static_tokens = {"token-one", "token-two"};
        sim_ = std::make_unique<speak4::sim::server>(so);
        sim_->start();
        api_port_ = free_port();
        write_file(dir_ / "ghl-token", "token-one\n", 0600);
        write_file(dir_ / "api-token", "api-secret\n", 0600);
        write_config();
    }

    void TearDown() override { sim_->stop(); }

    void write_config(const std::string& extra = "", const std::string& sync_extra = "") {
        write_file(dir_ / "speak4-sync.toml",
                   "[database]\npath = \"" + (dir_ / "s.db").string() +
                       "\"\n"
                       "[ghl]\nbase_url = \"" +
                       sim_->base_url() + "\"\nlocation_id = \"" + sim_->location_id() +
                       "\"\ntoken_file = \"" + (dir_ / "ghl-token").string() +
                       "\"\ntimeout_ms = 2000\n"
                       "[api]\nlisten = \"127.0.0.1:" +
                       std::to_string(api_port_) + "\"\ntoken_file = \"" +
                       (dir_ / "api-token").string() +
                       "\"\n"
                       "[retry]\nbase_ms = 10\nmax_ms = 200\nmax_attempts = 100\n"
                       "[sync]\ncoalesce_ms = 10\n" + sync_extra +
                       "[logging]\nlevel = \"warn\"\nformat = \"json\"\n" +
                       extra);
    }

    std::unique_ptr<child_process> start_daemon() {
        return std::make_unique<child_process>(
            binary_path().string(),
            std::vector<std::string>{"--config", (dir_ / "speak4-sync.toml").string(), "run"},
            dir_ / "daemon.out", dir_ / "daemon.err", std::vector<std::string>{notify_.env()});
    }

    run_result cli(std::vector<std::string> args, const std::string& in = "") {
        args.insert(args.begin(), {"--config", (dir_ / "speak4-sync.toml").string()});
        return run_cli(args, in);
    }

    long long count(const std::string& sql) {
        SQLite::Database db((dir_ / "s.db").string(), SQLite::OPEN_READONLY);
        db.setBusyTimeout(5000);
        return db.execAndGet(sql).getInt64();
    }

    std::size_t count_ready() {
        const std::string all = notify_.poll();
        std::size_t n = 0;
        for (auto p = all.find("READY=1"); p != std::string::npos; p = all.find("READY=1", p + 1))
            ++n;
        return n;
    }

    bool drained() {
        return count("SELECT COUNT(*) FROM outbox WHERE state IN ('pending','inflight')") == 0;
    }

    temp_dir dir_;
    notify_socket notify_{dir_ / "notify.sock"};
    std::unique_ptr<speak4::sim::server> sim_;
    unsigned short api_port_ = 0;
};

std::string contact_event(int i) {
    const std::string n = std::to_string(i);
    return R"({"type":"contact.created","event_id":"c-)" + n + R"(","contact":{"speak4_id":"s4-)" +
           n + R"(","firstName":"P)" + n + R"(","email":"p)" + n +
           R"(@example.com"},"notes":[{"speak4_id":"n-)" + n + R"(","body":"note )" + n +
           R"("}]})"
           "\n"
           R"({"type":"task.created","event_id":"t-)" +
           n + R"(","contact":{"speak4_id":"s4-)" + n + R"("},"task":{"speak4_id":"t-)" + n +
           R"(","title":"task )" + n +
           R"(","dueDate":"2026-12-01T15:00:00Z"}})"
           "\n"
           R"({"type":"contact.updated","event_id":"u-)" +
           n + R"(","contact":{"speak4_id":"s4-)" + n + R"(","lastName":"L)" + n +
           R"("}})"
           "\n";
}

} // namespace

TEST_F(daemon_test, starts_ready_serves_and_stops_cleanly) {
    auto d = start_daemon();
    ASSERT_TRUE(wait_until(
        [&] { return notify_.poll().find("READY=1") != std::string::npos || !d->running(); },
        20000))
        << read_file(dir_ / "daemon.err");
    ASSERT_TRUE(d->running()) << read_file(dir_ / "daemon.err");
    EXPECT_EQ(http(api_port_, "GET", "/healthz").status, 200);
    auto r = http(api_port_, "POST", "/v1/events",
                  contact_event(1).substr(0, contact_event(1).find('\n')), "api-secret");
    EXPECT_EQ(r.status, 202) << r.body;
    EXPECT_TRUE(wait_until(
        [&] {
            return drained() &&
                   count("SELECT COUNT(*) FROM contacts WHERE ghl_id IS NOT NULL") == 1;
        },
        20000));
    d->signal(SIGTERM);
    EXPECT_EQ(d->wait(20000), 0);
    EXPECT_NE(notify_.poll().find("STOPPING=1"), std::string::npos);
    EXPECT_EQ(read_file(dir_ / "daemon.err"), "") << "a clean run logs nothing at warn or above";
}

TEST_F(daemon_test, sighup_rotates_the_ghl_token_without_dropping_work) {
    write_file(dir_ / "ghl-token", "revoked-token\n", 0600);
    auto d = start_daemon();
    ASSERT_TRUE(
        wait_until([&] { return notify_.poll().find("READY=1") != std::string::npos; }, 20000));
    ASSERT_EQ(cli({"emit", "-"}, contact_event(7)).exit_code, 0);
    // GHL refuses the old token: the work waits (no attempts spent, nothing dead).
    ASSERT_TRUE(wait_until(
        [&] { return count("SELECT COUNT(*) FROM audit_log WHERE status = 401") > 0; }, 20000));
    EXPECT_EQ(count("SELECT COUNT(*) FROM outbox WHERE state = 'dead'"), 0);
    write_file(dir_ / "ghl-token", "token-two\n", 0600);
    d->signal(SIGHUP);
    ASSERT_TRUE(wait_until([&] { return drained(); }, 60000)) << read_file(dir_ / "daemon.err");
    EXPECT_EQ(count("SELECT COUNT(*) FROM outbox WHERE state = 'dead'"), 0);
    EXPECT_EQ(sim_->get_stats().creates.at("contact"), 1);
    d->signal(SIGTERM);
    EXPECT_EQ(d->wait(20000), 0);
    // Never a token in the logs or the audit log.
    const std::string err = read_file(dir_ / "daemon.err");
    EXPECT_EQ(err.find("revoked-token"), std::string::npos);
    EXPECT_EQ(err.find("token-two"), std::string::npos);
    EXPECT_EQ(
        count("SELECT COUNT(*) FROM audit_log WHERE error LIKE '%token-%' OR path LIKE '%token-%'"),
        0);
}

// DESIGN §8: kill -9 at any moment loses no accepted event and duplicates no record.
TEST_F(daemon_test, sigkill_at_random_points_loses_nothing_and_duplicates_nothing) {
    speak4::sim::fault_config slow;
    slow.latency_ms = 40; // so kills land while requests are in flight
    sim_->set_faults(slow);
    const int contacts = 90;
    const int batches = 3;
    auto emit_batch = [&](int b) {
        std::string events;
        for (int i = b * contacts / batches; i < (b + 1) * contacts / batches; ++i)
            events += contact_event(i);
        return cli({"emit", "-"}, events).exit_code;
    };
    ASSERT_EQ(emit_batch(0), 0);

    std::mt19937 rng(20261127);
    int kills = 0;
    int emitted = 1;
    for (int round = 0; round < 80 && (kills < 24 || emitted < batches); ++round) {
        auto d = start_daemon();
        std::this_thread::sleep_for(
            std::chrono::milliseconds(std::uniform_int_distribution<int>(80, 400)(rng)));
        if (emitted < batches && round % 6 == 5) {
            ASSERT_EQ(emit_batch(emitted++), 0); // more events arrive while the daemon runs
        }
        if (d->running() && !drained()) {
            d->signal(SIGKILL);
            ++kills;
        }
        d->signal(SIGKILL);
        d->wait(10000);
    }
    EXPECT_GE(kills, 20) << "kills that landed while work was pending";

    const auto ready_before = count_ready();
    auto d = start_daemon();
    ASSERT_TRUE(wait_until([&] { return count_ready() > ready_before; }, 20000));
    ASSERT_TRUE(wait_until([&] { return drained(); }, 120000))
        << cli({"queue", "list", "--limit", "20"}).out << [&] {
               auto e = read_file(dir_ / "daemon.err");
               return e.substr(e.size() > 6000 ? e.size() - 6000 : 0);
           }();
    d->signal(SIGTERM);
    EXPECT_EQ(d->wait(20000), 0);

    EXPECT_EQ(count("SELECT COUNT(*) FROM outbox WHERE state <> 'done'"), 0);
    const auto s = sim_->get_stats();
    for (const auto& [key, n] : s.creates_by_key)
        EXPECT_EQ(n, 1) << key << " was created " << n << " times";
    EXPECT_EQ(s.creates.at("contact"), contacts);
    EXPECT_EQ(s.creates.at("task"), contacts);
    EXPECT_EQ(s.creates.at("note"), contacts);
    const bj::value state = sim_->state();
    EXPECT_EQ(state.at("contacts").as_array().size(), static_cast<std::size_t>(contacts));
    for (const auto& c : state.at("contacts").as_array()) {
        const std::string first(c.at("firstName").as_string());
        EXPECT_EQ(c.at("lastName").as_string(), "L" + first.substr(1)) << "an update was lost";
    }
    EXPECT_EQ(count("SELECT COUNT(DISTINCT ghl_id) FROM contacts"), contacts);
    EXPECT_EQ(count("SELECT COUNT(DISTINCT ghl_id) FROM tasks"), contacts);
    EXPECT_EQ(count("SELECT COUNT(DISTINCT ghl_id) FROM notes"), contacts);
}

// The pull path commits each page with its cursor: SIGKILL in the middle of the initial import
// of 5,000 contacts, several times, and the import still ends with each contact exactly once.
TEST_F(daemon_test, sigkill_during_the_initial_import_resumes_without_gap_or_duplicate) {
    const int total = 5000;
    sim_->seed_contacts(total);
    speak4::sim::fault_config slow;
    slow.latency_ms = 40;
    slow.routes = {"POST /contacts/search"};
    sim_->set_faults(slow);
    write_config("[rate_limit]\nburst = 100000\nwindow_seconds = 1\n",
                 "fetch_children = \"on_demand\"\npoll_interval_seconds = 1\n");
    int kills = 0;
    for (long long at : {500LL, 1500LL, 3000LL}) {
        auto d = start_daemon();
        const bool reached = wait_until(
            [&] {
                return std::filesystem::exists(dir_ / "s.db") && count("SELECT COUNT(*) FROM contacts") >= at;
            },
            60000);
        ASSERT_TRUE(reached) << read_file(dir_ / "daemon.err");
        if (count("SELECT COUNT(*) FROM contacts") < total) {
            d->signal(SIGKILL);
            ++kills;
        }
        d->wait(10000);
    }
    EXPECT_GE(kills, 2) << "the kills must land mid-import";
    auto d = start_daemon();
    ASSERT_TRUE(wait_until(
        [&] {
            return count("SELECT COUNT(*) FROM sync_cursors WHERE name = 'last_pull_at'") == 1 &&
                   count("SELECT COUNT(*) FROM contacts") >= total;
        },
        120000))
        << read_file(dir_ / "daemon.err");
    d->signal(SIGTERM);
    EXPECT_EQ(d->wait(20000), 0);
    EXPECT_EQ(count("SELECT COUNT(*) FROM contacts"), total) << "a contact was imported twice";
    EXPECT_EQ(count("SELECT COUNT(DISTINCT ghl_id) FROM contacts"), total) << "a contact is missing";
    EXPECT_EQ(count("SELECT COUNT(*) FROM outbox WHERE op <> 'pull'"), 0) << "a pulled change echoed back";
}
