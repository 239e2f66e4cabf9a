#pragma once
// Errors of the GHL client. Every error names the operation by its path template
// ("PUT /contacts/:contactId: 429: Too Many Requests") and says how far the request got, so
// callers can tell "never sent" (safe to retry) from "outcome unknown" (a create must be
// looked up before it is retried, DESIGN §8).

#include "core/time.hpp"

#include <boost/assert/source_location.hpp>
#include <boost/system/result.hpp>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace speak4::ghl {

/// What kind of failure an error is; decides what the caller does next.
enum class error_kind {
    /// Failed before any byte of the request was written (resolve, connect, TLS handshake, a
    /// failed write of nothing, client shut down, local rate budget exhausted): GHL never saw
    /// it, a retry is always safe.
    never_sent,
    /// The request was written (at least in part) and no complete response came (timeout,
    /// reset, EOF): GHL may or may not have applied it.
    outcome_unknown,
    /// GHL answered "try again later": 429, 5xx, 408. `retry_after` is set when known.
    retryable,
    /// 401 even after one token refresh, or no token can be had right now.
    auth,
    /// 401 "The token is not authorized for this scope.": the grant lacks the scope this
    /// operation needs. Not an expired token: no refresh (that would consume GHL's single-use
    /// refresh token for nothing); the operation is unavailable until the app is re-authorized
    /// with the scope.
    missing_scope,
    /// The OAuth grant was refused for good (invalid_grant, location not active, no tokens
    /// stored): an operator must re-authorize (`speak4-sync auth exchange`).
    needs_reauth,
    /// Any other 4xx; `body` holds the response body.
    permanent,
    /// 404, or GHL's 400 "Contact with id X not found": the record is gone.
    not_found,
    /// 400 "This location does not allow duplicated contacts." with meta.contactId.
    duplicate_contact,
    /// A response that cannot be used: malformed HTTP or JSON, over the header or body limit,
    /// a 2xx body missing what the operation needs. GHL did see the request.
    bad_response,
    /// Refused locally before sending (a required field missing, an empty id): a caller bug.
    invalid_request,
};

std::string_view to_string(error_kind k);

/// GHL's 401 body for a token without the scope the route needs ("The token is not authorized
/// for this scope.").
bool is_scope_refusal(std::string_view body);

/// The existing contact named by a duplicate-contact 400 (`meta`).
struct duplicate_info {
    std::string contact_id;
    std::string matching_field; // "email" or "phone" (as GHL says)
    std::string contact_name;
};

/// One failed operation. Copyable, never holds a token or secret.
struct error {
    error_kind kind = error_kind::permanent;
    /// "PUT /contacts/:contactId" (method and path template; no ids, no query).
    std::string operation;
    /// The step that failed: resolve, connect, handshake, write, read, status (a non-2xx
    /// answer), parse (an unusable body), token, rate_limit, validate.
    std::string step;
    int status = 0;      ///< HTTP status, 0 when no response was read
    std::string message; ///< detail, e.g. GHL's message or the socket error
    std::string body;    ///< response body of 4xx answers (bounded), else empty
    std::optional<std::chrono::milliseconds> retry_after;
    std::optional<std::string> trace_id;
    std::optional<duplicate_info> duplicate;

    /// "PUT /contacts/:contactId: 429: Too Many Requests",
    /// "POST /contacts/: read: Connection reset by peer (request written, outcome unknown)".
    std::string what() const;
    /// True when retrying later may succeed (never_sent, outcome_unknown, retryable, auth).
    bool transient() const noexcept;
    /// True when GHL may have applied the request (outcome_unknown, bad_response, 5xx).
    bool may_have_been_applied() const noexcept;
};

/// Throws std::runtime_error(e.what()); lets boost::system::result<T, error>::value() work.
[[noreturn]] void throw_exception_from_error(const error& e, const boost::source_location& loc);

/// The result of every client call.
template <class T>
using result = boost::system::result<T, error>;

/// The most useful message in a GHL error body, as the official SDK picks it: an array
/// `message` joined with ", ", else `message`, else `error`, else `detail`; "" when none.
std::string message_from_body(std::string_view body);

/// Classifies a non-2xx response (the body as received). Pure; unit-tested as a table.
///   401 -> auth; 408, 429, 5xx -> retryable; 404 and 400 "... not found" -> not_found;
///   400 with meta.contactId -> duplicate_contact; other 4xx -> permanent; anything else
///   (1xx, 3xx) -> bad_response.
error classify_status(std::string_view operation, int status, std::string_view body,
                      std::optional<std::chrono::milliseconds> retry_after = std::nullopt);

/// Parses a Retry-After value: delta-seconds ("30") or an HTTP-date
/// ("Wed, 21 Oct 2015 07:28:00 GMT", relative to `now`, never negative). nullopt if invalid.
std::optional<std::chrono::milliseconds> parse_retry_after(std::string_view value, sys_time now);

} // namespace speak4::ghl
