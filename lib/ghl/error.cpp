#include "ghl/error.hpp"

#include "core/json.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <stdexcept>

namespace speak4::ghl {

namespace {

constexpr std::size_t max_kept_body = std::size_t{16} * 1024;

bool contains_icase(std::string_view hay, std::string_view needle) {
    return std::search(hay.begin(), hay.end(), needle.begin(), needle.end(), [](char a, char b) {
               return std::tolower(static_cast<unsigned char>(a)) ==
                      std::tolower(static_cast<unsigned char>(b));
           }) != hay.end();
}

std::string message_from_value(const boost::json::value& v) {
    const auto* o = v.if_object();
    if (!o)
        return {};
    if (const auto* m = o->if_contains("message")) {
        if (const auto* arr = m->if_array()) {
            std::string joined;
            for (const auto& item : *arr) {
                if (!item.is_string())
                    continue;
                if (!joined.empty())
                    joined += ", ";
                joined += item.get_string();
            }
            if (!joined.empty())
                return joined;
        } else if (m->is_string() && !m->get_string().empty()) {
            return std::string(m->get_string());
        }
    }
    for (const char* key : {"error", "detail"})
        if (auto s = json::get_string(*o, key); s && !s->empty())
            return *s;
    return {};
}

const char* reason_text(int status) {
    switch (status) {
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 422:
        return "Unprocessable Entity";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "";
    }
}

} // namespace

std::string_view to_string(error_kind k) {
    switch (k) {
    case error_kind::never_sent:
        return "never_sent";
    case error_kind::outcome_unknown:
        return "outcome_unknown";
    case error_kind::retryable:
        return "retryable";
    case error_kind::auth:
        return "auth";
    case error_kind::needs_reauth:
        return "needs_reauth";
    case error_kind::missing_scope:
        return "missing_scope";
    case error_kind::permanent:
        return "permanent";
    case error_kind::not_found:
        return "not_found";
    case error_kind::duplicate_contact:
        return "duplicate_contact";
    case error_kind::bad_response:
        return "bad_response";
    case error_kind::invalid_request:
        return "invalid_request";
    }
    return "unknown";
}

bool is_scope_refusal(std::string_view body) {
    return contains_icase(body, "not authorized for this scope");
}

std::string error::what() const {
    std::string out = operation.empty() ? std::string("GHL") : operation;
    out += ": ";
    if (status != 0)
        out += std::to_string(status);
    else
        out += step.empty() ? std::string(to_string(kind)) : step;
    if (!message.empty()) {
        out += ": ";
        out += message;
    }
    if (kind == error_kind::outcome_unknown)
        out += " (request written, outcome unknown)";
    else if (kind == error_kind::never_sent && status == 0)
        out += " (not sent)";
    return out;
}

bool error::transient() const noexcept {
    switch (kind) {
    case error_kind::never_sent:
    case error_kind::outcome_unknown:
    case error_kind::retryable:
    case error_kind::auth:
        return true;
    default:
        return false;
    }
}

bool error::may_have_been_applied() const noexcept {
    return kind == error_kind::outcome_unknown || kind == error_kind::bad_response ||
           (kind == error_kind::retryable && status >= 500);
}

void throw_exception_from_error(const error& e, const boost::source_location&) {
    throw std::runtime_error(e.what());
}

std::string message_from_body(std::string_view body) {
    auto v = json::parse(body, {.max_bytes = std::size_t{1024} * 1024, .max_depth = 32});
    if (!v)
        return {};
    return message_from_value(*v);
}

error classify_status(std::string_view operation, int status, std::string_view body,
                      std::optional<std::chrono::milliseconds> retry_after) {
    error e;
    e.operation = std::string(operation);
    e.step = "status";
    e.status = status;
    e.retry_after = retry_after;

    boost::json::value parsed;
    if (auto v = json::parse(body, {.max_bytes = std::size_t{1024} * 1024, .max_depth = 32}))
        parsed = std::move(*v);
    e.message = message_from_value(parsed);
    if (e.message.empty())
        e.message = reason_text(status);
    if (const auto* o = parsed.if_object())
        e.trace_id = json::get_string(*o, "traceId");

    if (status == 401) {
        e.kind = is_scope_refusal(body) ? error_kind::missing_scope : error_kind::auth;
    } else if (status == 408 || status == 429 || (status >= 500 && status <= 599)) {
        e.kind = error_kind::retryable;
    } else if (status >= 400 && status <= 499) {
        e.kind = error_kind::permanent;
        e.body = std::string(body.substr(0, max_kept_body));
        const auto* o = parsed.if_object();
        const auto* meta = o ? json::get_object(*o, "meta") : nullptr;
        auto dup_id = meta ? json::get_string(*meta, "contactId") : std::nullopt;
        if (status == 400 && dup_id && !dup_id->empty()) {
            e.kind = error_kind::duplicate_contact;
            e.duplicate =
                duplicate_info{*dup_id, json::get_string(*meta, "matchingField").value_or(""),
                               json::get_string(*meta, "contactName").value_or("")};
        } else if (status == 404 || (status == 400 && contains_icase(e.message, "not found"))) {
            e.kind = error_kind::not_found;
        }
    } else {
        e.kind = error_kind::bad_response;
        e.message = "unexpected status" + (e.message.empty() ? "" : " (" + e.message + ")");
    }
    return e;
}

std::optional<std::chrono::milliseconds> parse_retry_after(std::string_view value, sys_time now) {
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
        value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t'))
        value.remove_suffix(1);
    if (value.empty())
        return std::nullopt;
    if (std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        long long secs = 0;
        auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), secs);
        if (ec != std::errc{} || p != value.data() + value.size() || secs > 366LL * 86400)
            return std::nullopt;
        return std::chrono::milliseconds{secs * 1000};
    }
    // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" (the only HTTP-date form servers must send).
    if (value.size() != 29 || value[3] != ',' || value.substr(25) != " GMT")
        return std::nullopt;
    static constexpr std::array<std::string_view, 12> months = {
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    const auto mon = std::find(months.begin(), months.end(), value.substr(8, 3));
    if (mon == months.end())
        return std::nullopt;
    const std::string iso =
        std::string(value.substr(12, 4)) + "-" + (mon - months.begin() < 9 ? "0" : "") +
        std::to_string(mon - months.begin() + 1) + "-" + std::string(value.substr(5, 2)) + "T" +
        std::string(value.substr(17, 8)) + "Z";
    auto t = parse_iso8601(iso);
    if (!t)
        return std::nullopt;
    return std::max(std::chrono::milliseconds{0},
                    std::chrono::duration_cast<std::chrono::milliseconds>(*t - now));
}

} // namespace speak4::ghl
