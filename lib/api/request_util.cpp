#include "api/request_util.hpp"

#include "api/message.hpp"

#include <array>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <charconv>

namespace speak4::api {
namespace {

int hex_value(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

std::optional<std::string> percent_decode(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        const char c = s[i];
        if (c == '+') {
            out += ' ';
        } else if (c == '%') {
            if (i + 2 >= s.size())
                return std::nullopt;
            const int hi = hex_value(s[i + 1]);
            const int lo = hex_value(s[i + 2]);
            if (hi < 0 || lo < 0)
                return std::nullopt;
            out += static_cast<char>(hi * 16 + lo);
            i += 2;
        } else {
            out += c;
        }
    }
    return out;
}

char lower(char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

} // namespace

std::string_view target_path(std::string_view target) {
    const auto q = target.find('?');
    return q == std::string_view::npos ? target : target.substr(0, q);
}

boost::system::result<std::vector<query_param>, std::string> parse_query(std::string_view target,
                                                                         std::size_t max_params) {
    using R = boost::system::result<std::vector<query_param>, std::string>;
    std::vector<query_param> out;
    const auto q = target.find('?');
    if (q == std::string_view::npos)
        return out;
    std::string_view rest = target.substr(q + 1);
    // A fragment never reaches a server, but be tolerant of one.
    if (const auto h = rest.find('#'); h != std::string_view::npos)
        rest = rest.substr(0, h);
    while (!rest.empty()) {
        const auto amp = rest.find('&');
        const std::string_view part = rest.substr(0, amp);
        rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
        if (part.empty())
            continue;
        if (out.size() >= max_params)
            return R(boost::system::in_place_error,
                     "more than " + std::to_string(max_params) + " query parameters");
        const auto eq = part.find('=');
        const std::string_view raw_name = part.substr(0, eq);
        const std::string_view raw_value =
            eq == std::string_view::npos ? std::string_view{} : part.substr(eq + 1);
        auto name = percent_decode(raw_name);
        if (!name)
            return R(boost::system::in_place_error,
                     "bad percent-encoding in a query parameter name");
        auto value = percent_decode(raw_value);
        if (!value)
            return R(boost::system::in_place_error, "bad percent-encoding in '" + *name + "'");
        out.push_back({std::move(*name), std::move(*value)});
    }
    return out;
}

std::optional<long long> parse_non_negative(std::string_view s, long long max) {
    if (s.empty() || s.size() > 19)
        return std::nullopt;
    long long v = 0;
    const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
    if (r.ec != std::errc{} || r.ptr != s.data() + s.size() || v < 0 || v > max)
        return std::nullopt;
    return v;
}

std::optional<std::string_view> bearer_token(std::string_view authorization) {
    constexpr std::string_view scheme = "bearer";
    if (authorization.size() <= scheme.size() || authorization[scheme.size()] != ' ')
        return std::nullopt;
    for (std::size_t i = 0; i < scheme.size(); ++i)
        if (lower(authorization[i]) != scheme[i])
            return std::nullopt;
    std::string_view token = authorization.substr(scheme.size() + 1);
    while (!token.empty() && token.front() == ' ')
        token.remove_prefix(1);
    while (!token.empty() && (token.back() == ' ' || token.back() == '\t'))
        token.remove_suffix(1);
    if (token.empty())
        return std::nullopt;
    return token;
}

bool constant_time_equal(std::string_view given, std::string_view expected) {
    // Loop over `given` only; index into `expected` modulo its length so the memory access
    // pattern does not depend on where (or whether) the strings differ.
    unsigned diff = given.size() == expected.size() ? 0u : 1u;
    if (expected.empty())
        return false;
    for (std::size_t i = 0; i < given.size(); ++i)
        diff |= static_cast<unsigned>(static_cast<unsigned char>(given[i]) ^
                                      static_cast<unsigned char>(expected[i % expected.size()]));
    return diff == 0;
}

std::string error_body(std::string_view code, std::string_view message, std::string_view field) {
    boost::json::object err{{"code", code}, {"message", message}};
    if (!field.empty())
        err["field"] = field;
    return boost::json::serialize(boost::json::object{{"error", std::move(err)}});
}

std::optional<std::pair<std::string, unsigned short>> split_listen(std::string_view listen) {
    std::string host;
    std::string_view port;
    if (listen.starts_with('[')) {
        const auto close = listen.find(']');
        if (close == std::string_view::npos || close + 1 >= listen.size() ||
            listen[close + 1] != ':')
            return std::nullopt;
        host = std::string(listen.substr(1, close - 1));
        port = listen.substr(close + 2);
    } else {
        const auto colon = listen.rfind(':');
        if (colon == std::string_view::npos)
            return std::nullopt;
        host = std::string(listen.substr(0, colon));
        port = listen.substr(colon + 1);
        if (host.find(':') != std::string::npos)
            return std::nullopt; // IPv6 must be bracketed
    }
    if (host.empty())
        return std::nullopt;
    const auto p = parse_non_negative(port, 65535);
    if (!p)
        return std::nullopt;
    return std::pair{std::move(host), static_cast<unsigned short>(*p)};
}

std::string_view route_label(std::string_view path) {
    static constexpr std::array<std::string_view, 5> routes{"/v1/events", "/v1/changes", "/healthz",
                                                            "/metrics", "/webhooks/ghl"};
    for (auto r : routes)
        if (path == r)
            return r;
    if (path.starts_with("/v1/admin/"))
        return "/v1/admin";
    if (path == "/console" || path.starts_with("/console/"))
        return "/console";
    return "other";
}

reply json_reply(status s, const boost::json::value& v) {
    reply r;
    r.status = s;
    r.body = boost::json::serialize(v);
    return r;
}

reply error_reply(status s, std::string_view code, std::string_view message,
                  std::string_view field) {
    reply r;
    r.status = s;
    r.body = error_body(code, message, field);
    return r;
}

std::string clip(std::string_view s, std::size_t n) {
    std::string out(s.substr(0, n));
    for (char& c : out)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
            c = '?';
    if (s.size() > n)
        out += "...";
    return out;
}

} // namespace speak4::api
