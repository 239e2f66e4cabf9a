#pragma once
// Small pure helpers of the local HTTP API: query strings, bearer tokens, error bodies, the
// listen address. No I/O, no exceptions, no Beast: a fuzzer can drive them directly.

#include <boost/system/result.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace speak4::api {

/// A query parameter as received, percent-decoded.
struct query_param {
    std::string name;
    std::string value;
};

/// The path of a request target ("/v1/changes?since=3" -> "/v1/changes").
std::string_view target_path(std::string_view target);

/// Parses the query of a request target ("?a=1&b=x%20y"): at most `max_params` parameters, each
/// percent-decoded ('+' is a space). The error names the problem ("bad percent-encoding in
/// 'since'", "more than 16 query parameters").
boost::system::result<std::vector<query_param>, std::string>
parse_query(std::string_view target, std::size_t max_params = 16);

/// A non-negative decimal integer without sign, spaces or leading '+', at most `max`.
std::optional<long long> parse_non_negative(std::string_view s, long long max);

/// The token of an "Authorization: Bearer <token>" header value (scheme case-insensitive);
/// nullopt for another scheme or an empty token.
std::optional<std::string_view> bearer_token(std::string_view authorization);

/// Compares two strings in time that depends only on the length of `given` (never on where they
/// differ, and never on `expected`'s contents), so a token cannot be guessed byte by byte.
bool constant_time_equal(std::string_view given, std::string_view expected);

/// {"error":{"code":CODE,"message":MESSAGE[,"field":FIELD]}} (field left out when empty).
std::string error_body(std::string_view code, std::string_view message,
                       std::string_view field = {});

/// Splits "host:port" / "[v6]:port" (port 0 allowed: pick a free one). nullopt if malformed.
std::optional<std::pair<std::string, unsigned short>> split_listen(std::string_view listen);

/// The label of a path for metrics: one of the API's routes, or "other" (so a client cannot
/// create unbounded label values).
std::string_view route_label(std::string_view path);

} // namespace speak4::api
