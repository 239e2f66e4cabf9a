#pragma once
// Boost.JSON helpers: bounded parsing and small accessors that tolerate missing and null fields.

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <boost/system/result.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace speak4::json {

namespace bj = boost::json;

struct parse_limits {
    std::size_t max_bytes = std::size_t{256} * 1024;
    std::size_t max_depth = 32;
};

/// Parses `text` within `limits`. On failure returns a message that says why
/// ("not valid JSON at offset 12: syntax error", "nesting deeper than 32").
boost::system::result<bj::value, std::string> parse(std::string_view text,
                                                    parse_limits limits = {});

/// Serializes compactly.
std::string dump(const bj::value& v);

/// The string at `key`, or nullopt when missing, null or not a string.
std::optional<std::string> get_string(const bj::object& o, std::string_view key);
/// The integer at `key` (accepting integral doubles), or nullopt.
std::optional<long long> get_int(const bj::object& o, std::string_view key);
/// The bool at `key`, or nullopt.
std::optional<bool> get_bool(const bj::object& o, std::string_view key);
/// The object at `key`, or nullptr.
const bj::object* get_object(const bj::object& o, std::string_view key);
/// The array at `key`, or nullptr.
const bj::array* get_array(const bj::object& o, std::string_view key);

} // namespace speak4::json
