#include "app/health_probe.hpp"

#include <arpa/inet.h>
#include <boost/json/parse.hpp>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace speak4::app {

boost::json::object probe_health(const config& cfg, std::chrono::milliseconds timeout) {
    const std::string& listen = cfg.api.listen;
    const auto colon = listen.rfind(':');
    std::string host = colon == std::string::npos ? "127.0.0.1" : listen.substr(0, colon);
    const int port = colon == std::string::npos ? 0 : std::atoi(listen.c_str() + colon + 1);
    // A wildcard or named loopback listener is reached over 127.0.0.1.
    if (host.empty() || host == "0.0.0.0" || host == "localhost" || host == "*")
        host = "127.0.0.1";
    const auto unknown = [&](const std::string& why) {
        return boost::json::object{
            {"status", "unknown"},
            {"reason", "no answer from the daemon on " + listen + ": " + why}};
    };
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    if (port <= 0 || port > 65535 || ::inet_pton(AF_INET, host.c_str(), &a.sin_addr) != 1)
        return unknown("not an IPv4 address");
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return unknown("socket failed");
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(timeout).count();
    timeval tv{static_cast<time_t>(us / 1000000), static_cast<suseconds_t>(us % 1000000)};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        ::close(fd);
        return unknown("not running?");
    }
    const std::string req =
        "GET /healthz HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n\r\n";
    (void)::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
    std::string resp;
    char buf[4096];
    while (resp.size() < 1 << 20) {
        const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0)
            break;
        resp.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    const auto body = resp.find("\r\n\r\n");
    if (body == std::string::npos)
        return unknown("no HTTP answer");
    boost::system::error_code ec;
    auto v = boost::json::parse(std::string_view(resp).substr(body + 4), ec);
    if (ec || !v.is_object())
        return unknown("not a health document");
    return std::move(v.as_object());
}

} // namespace speak4::app
