#pragma once
// A loopback HTTP receiver for tests of outgoing webhooks (alerts): binds 127.0.0.1:0, answers
// every request with the next scripted status (200 once the script is used up) and
// "Connection: close", and records what it received. Blocking sockets on one thread; tests only.

#include <arpa/inet.h>
#include <atomic>
#include <cctype>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <netinet/in.h>
#include <poll.h>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace speak4::testing {

class webhook_receiver {
public:
    struct request {
        std::string method;
        std::string target;
        std::string head; ///< request line and header fields, as received
        std::string body;
    };

    explicit webhook_receiver(std::deque<int> script = {})
        : script_(std::move(script)) {
        fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        const int one = 1;
        ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = 0;
        ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
        socklen_t len = sizeof a;
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
        port_ = ntohs(a.sin_port);
        ::listen(fd_, 16);
        thread_ = std::thread([this] { serve(); });
    }
    ~webhook_receiver() {
        done_ = true;
        thread_.join();
        ::close(fd_);
    }
    webhook_receiver(const webhook_receiver&) = delete;
    webhook_receiver& operator=(const webhook_receiver&) = delete;

    unsigned short port() const { return port_; }
    std::string url(const std::string& path) const {
        return "http://127.0.0.1:" + std::to_string(port_) + path;
    }
    std::vector<request> received() {
        std::lock_guard lock(mutex_);
        return received_;
    }

private:
    void serve() {
        while (!done_) {
            pollfd p{fd_, POLLIN, 0};
            if (::poll(&p, 1, 50) <= 0)
                continue;
            const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
            if (c < 0)
                continue;
            timeval tv{5, 0};
            ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
            handle(c);
            ::close(c);
        }
    }

    void handle(int c) {
        std::string data;
        char buf[4096];
        std::size_t end = std::string::npos;
        std::size_t length = 0;
        for (;;) {
            if (end == std::string::npos && (end = data.find("\r\n\r\n")) != std::string::npos) {
                std::string lower = data.substr(0, end);
                for (auto& ch : lower)
                    ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
                if (auto p = lower.find("content-length:"); p != std::string::npos)
                    length = std::strtoul(lower.c_str() + p + 15, nullptr, 10);
            }
            if (end != std::string::npos && data.size() >= end + 4 + length)
                break;
            const ssize_t n = ::recv(c, buf, sizeof buf, 0);
            if (n <= 0)
                return;
            data.append(buf, static_cast<std::size_t>(n));
        }
        request r;
        r.head = data.substr(0, end);
        r.body = data.substr(end + 4, length);
        const auto sp1 = r.head.find(' ');
        const auto sp2 = r.head.find(' ', sp1 + 1);
        r.method = r.head.substr(0, sp1);
        r.target = r.head.substr(sp1 + 1, sp2 - sp1 - 1);
        int status = 200;
        {
            std::lock_guard lock(mutex_);
            received_.push_back(r);
            if (!script_.empty()) {
                status = script_.front();
                script_.pop_front();
            }
        }
        const std::string body = status < 300 ? "ok" : "error";
        const std::string resp =
            "HTTP/1.1 " + std::to_string(status) +
            " X\r\nContent-Type: text/plain\r\nContent-Length: " + std::to_string(body.size()) +
            "\r\nConnection: close\r\n\r\n" + body;
        (void)::send(c, resp.data(), resp.size(), MSG_NOSIGNAL);
    }

    int fd_ = -1;
    unsigned short port_ = 0;
    std::atomic<bool> done_{false};
    std::mutex mutex_;
    std::deque<int> script_;
    std::vector<request> received_;
    std::thread thread_;
};

} // namespace speak4::testing
