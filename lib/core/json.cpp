#include "core/json.hpp"

#include <boost/json/serialize.hpp>
#include <boost/json/stream_parser.hpp>

namespace speak4::json {

namespace {
boost::system::result<bj::value, std::string> failure(std::string msg) {
    return {boost::system::in_place_error, std::move(msg)};
}
} // namespace

boost::system::result<bj::value, std::string> parse(std::string_view text, parse_limits limits) {
    if (text.size() > limits.max_bytes)
        return failure("larger than " + std::to_string(limits.max_bytes) + " bytes");
    bj::parse_options opt;
    opt.max_depth = limits.max_depth;
    bj::stream_parser p(bj::storage_ptr(), opt);
    boost::system::error_code ec;
    const std::size_t n = p.write_some(text.data(), text.size(), ec);
    if (!ec && n < text.size()) {
        // Only whitespace may follow the value.
        for (std::size_t i = n; i < text.size(); ++i)
            if (text[i] != ' ' && text[i] != '\n' && text[i] != '\r' && text[i] != '\t')
                return failure("not valid JSON at offset " + std::to_string(i) +
                               ": extra data after the value");
    }
    if (!ec)
        p.finish(ec);
    if (ec) {
        if (ec == bj::error::too_deep)
            return failure("nesting deeper than " + std::to_string(limits.max_depth));
        return failure("not valid JSON at offset " + std::to_string(n) + ": " + ec.message());
    }
    return p.release();
}

std::string dump(const bj::value& v) {
    return bj::serialize(v);
}

std::optional<std::string> get_string(const bj::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    if (!v || !v->is_string())
        return std::nullopt;
    return std::string(v->get_string());
}

std::optional<long long> get_int(const bj::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    if (!v)
        return std::nullopt;
    if (v->is_int64())
        return v->get_int64();
    if (v->is_uint64() && v->get_uint64() <= static_cast<std::uint64_t>(INT64_MAX))
        return static_cast<long long>(v->get_uint64());
    if (v->is_double()) {
        const double d = v->get_double();
        // Range first: converting a double outside long long's range is undefined behaviour
        // (found by fuzz_ghl_model: a "dateAdded" of 7e75).
        if (d >= -0x1p63 && d < 0x1p63 && d == static_cast<double>(static_cast<long long>(d)))
            return static_cast<long long>(d);
    }
    return std::nullopt;
}

std::optional<bool> get_bool(const bj::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    if (!v || !v->is_bool())
        return std::nullopt;
    return v->get_bool();
}

const bj::object* get_object(const bj::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    return v ? v->if_object() : nullptr;
}

const bj::array* get_array(const bj::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    return v ? v->if_array() : nullptr;
}

} // namespace speak4::json
