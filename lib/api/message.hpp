#pragma once
// A request and a response of the local API as the route handlers see them, without Beast: the
// transport (server.cpp, the one Beast translation unit of the server) parses the wire format,
// fills a `request`, and writes the `reply` a handler returns. Handlers therefore compile
// without Beast's headers.
//
// Threading: plain values; a request is used by the one coroutine that serves it.

#include <boost/json/value.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace speak4::api {

/// The HTTP statuses the API answers with (the transport knows their reason phrases).
enum class status : unsigned {
    ok = 200,
    accepted = 202,
    bad_request = 400,
    unauthorized = 401,
    not_found = 404,
    method_not_allowed = 405,
    conflict = 409,
    payload_too_large = 413,
    unprocessable_entity = 422,
    too_many_requests = 429,
    request_header_fields_too_large = 431,
    internal_server_error = 500,
    service_unavailable = 503,
};

enum class method { get, post, other };

/// Looks up a request header by name (case-insensitive); implemented by the transport.
class header_lookup {
public:
    virtual std::optional<std::string_view> get(std::string_view name) const = 0;

protected:
    ~header_lookup() = default;
};

/// A request whose header (and body, when the route takes one) has been read.
struct request {
    api::method method = method::other;
    std::string_view method_name; ///< as sent ("GET", "PATCH", …), for messages
    std::string_view target;      ///< path and query as sent
    std::string body;             ///< empty for routes that take none
    const header_lookup* headers = nullptr;

    std::optional<std::string_view> header(std::string_view name) const {
        return headers ? headers->get(name) : std::nullopt;
    }
};

/// A response before the transport formats it.
struct reply {
    api::status status = status::ok;
    std::string body;
    std::string_view content_type = "application/json";
    bool close = false;
    std::string_view allow;         // 405: the methods the route takes
    bool www_authenticate = false;  // 401 on /v1/*
    int retry_after = 0;            // seconds; 0 = no header
    std::string_view extra_headers; // raw "Name: value\r\n" lines (the console's policies)
};

/// A JSON reply with this status.
reply json_reply(status s, const boost::json::value& v);

/// An error reply: {"error":{"code":CODE,"message":MESSAGE[,"field":FIELD]}}.
reply error_reply(status s, std::string_view code, std::string_view message,
                  std::string_view field = {});

/// A shortened copy for messages and logs, control characters replaced (the rest of a 16 KiB
/// target adds nothing).
std::string clip(std::string_view s, std::size_t n = 200);

} // namespace speak4::api
