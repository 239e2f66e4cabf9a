#pragma once
// One blocking HTTP/1.1 request over a fresh loopback connection ("Connection: close"), for e2e
// tests that talk to the daemon's local API. Tests only.

#include <arpa/inet.h>
#include <cstdlib>
#include <netinet/in.h>
#include <string>
#include <sys/socket.h>
#include <unistd.h>

namespace speak4::testing {

struct local_answer {
    int status = 0; ///< 0: no connection or no answer
    std::string body;
};

inline local_answer local_request(unsigned short port, const std::string& method,
                                  const std::string& target, const std::string& body = "",
                                  const std::string& bearer = "") {
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
    if (!bearer.empty())
        req += "Authorization: Bearer " + bearer + "\r\n";
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
    local_answer r;
    if (resp.size() > 12)
        r.status = std::atoi(resp.substr(9, 3).c_str());
    if (auto p = resp.find("\r\n\r\n"); p != std::string::npos)
        r.body = resp.substr(p + 4);
    return r;
}

} // namespace speak4::testing
