#pragma once
// Where the client's bearer token comes from: a Private Integration Token (static, replaceable
// on SIGHUP) or OAuth 2.0 with GHL's single-use rotating refresh tokens (ghl-api.md §8).
//
// OAuth rules (DESIGN §8):
//  * the access token is refreshed `refresh_margin` before it expires, and once after a 401;
//  * only one refresh per location runs at a time: concurrent callers await the same one;
//  * the rotated pair is saved durably through oauth_token_store BEFORE the new access token
//    is handed to anyone; if the save fails the pair is kept in memory (unused) and the save is
//    retried on the next call, never a second refresh with the consumed token;
//  * a refusal for good (invalid_grant, "Location is not active", bad client credentials)
//    puts the provider in the needs_reauth state: no retry loop, calls fail with
//    error_kind::needs_reauth and the store is told (mark_needs_reauth) so `status` shows it.
//
// Crash between the refresh response and the store commit: GHL has already consumed the old
// refresh token, but only the old one is on disk. After the restart the provider refreshes
// with it, GHL answers 400 "Invalid grant: refresh token is invalid", and the provider goes to
// needs_reauth: the queue parks, `status` shows auth.state = "needs_reauth", and the operator
// runs `speak4-sync auth exchange`. Nothing is lost silently (events wait in the
// outbox), and the situation is surfaced instead of retried. The same happens when a refresh
// request's outcome is unknown (written, no answer): GHL may have rotated the token.

#include "core/clock.hpp"
#include "core/config.hpp"
#include "core/secret.hpp"
#include "ghl/error.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/system/result.hpp>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

namespace speak4::ghl {

namespace asio = boost::asio;

/// What `status` prints about authentication.
struct auth_status {
    auth_mode mode = auth_mode::private_token;
    bool needs_reauth = false;
    std::string reason;                 ///< why re-authorization is needed (no secrets)
    std::optional<sys_time> expires_at; ///< OAuth access token expiry
};

/// Source of bearer tokens for the client.
///
/// Threading: implementations in this library must be used from one executor that does not
/// run handlers concurrently (the client's); status() may be called from any thread.
class token_provider {
public:
    virtual ~token_provider() = default;
    /// A token to send now (refreshing first when it is about to expire).
    virtual asio::awaitable<result<secret>> access_token() = 0;
    /// GHL answered 401 to `rejected`: returns a token worth one retry (a newer one if someone
    /// already refreshed, else after a refresh), or an error when there is none.
    virtual asio::awaitable<result<secret>> refresh_after_unauthorized(const secret& rejected) = 0;
    virtual auth_status status() const = 0;
};

/// A Private Integration Token. set_token() replaces it at runtime (SIGHUP reload).
/// Threading: fully thread-safe.
class static_token_provider final : public token_provider {
public:
    explicit static_token_provider(secret token);
    void set_token(secret token);
    asio::awaitable<result<secret>> access_token() override;
    asio::awaitable<result<secret>> refresh_after_unauthorized(const secret& rejected) override;
    auth_status status() const override;

private:
    mutable std::mutex mutex_;
    secret token_;
};

/// An OAuth token pair as stored (table oauth_tokens).
struct token_set {
    std::string location_id;
    std::string company_id;
    std::string user_id;
    std::string user_type = "Location"; ///< "Location" | "Company"
    std::string scope;
    secret access_token;
    secret refresh_token;
    sys_time expires_at; ///< of the access token
    sys_time obtained_at;
};

template <class T>
using store_result = boost::system::result<T, std::string>;

/// Durable storage of OAuth tokens, implemented outside lib/ghl (SQLite, `oauth_tokens`).
/// Methods are awaitables so an implementation can run its disk work on its own thread (e.g.
/// co_await a co_spawn onto the database strand with use_awaitable: the caller resumes on
/// its own executor); a synchronous body ending in co_return is fine too.
/// Threading: called only from the provider's executor, one call at a time per location.
class oauth_token_store {
public:
    virtual ~oauth_token_store() = default;
    /// The stored pair for `location_id`, nullopt when there is none.
    virtual asio::awaitable<store_result<std::optional<token_set>>>
    load(std::string location_id) = 0;
    /// Stores the pair (replacing the old one) and clears any needs_reauth mark. Must be
    /// durable (committed) before it returns success: the refresh token in it is the only one
    /// GHL will accept from now on.
    virtual asio::awaitable<store_result<void>> save(token_set tokens) = 0;
    /// Records that the location needs re-authorization, with a reason for `status`.
    virtual asio::awaitable<store_result<void>> mark_needs_reauth(std::string location_id,
                                                                  std::string reason) = 0;
};

/// POST /oauth/token form fields (secrets stay in `secret`).
struct token_request {
    std::string grant_type; ///< "authorization_code" | "refresh_token"
    std::string client_id;
    secret client_secret;
    secret code;           ///< authorization_code grant
    secret refresh_token;  ///< refresh_token grant
    std::string user_type; ///< "Location" | "Company" (optional)
    std::string redirect_uri;
};

/// The 200 answer of POST /oauth/token.
struct token_response {
    secret access_token;
    secret refresh_token;
    long long expires_in = 0; ///< seconds
    std::string scope, user_type, location_id, company_id, user_id;
};

/// Sends token requests (the client's http_token_endpoint, or a fake in tests).
class token_endpoint {
public:
    virtual ~token_endpoint() = default;
    virtual asio::awaitable<result<token_response>> request_token(token_request req) = 0;
};

struct oauth_options {
    std::string location_id;
    std::string client_id;
    secret client_secret;
    std::string user_type = "Location";
    std::string redirect_uri; ///< sent with the code exchange if set
    /// Refresh this long before expiry, at most a quarter of the token's lifetime.
    std::chrono::seconds refresh_margin{300};
};

/// The margin actually used for `t`: min(margin, a quarter of the token's lifetime).
std::chrono::milliseconds refresh_margin_for(const token_set& t, std::chrono::seconds margin);

/// From [ghl] (location_id, client_id) and the loaded client secret.
oauth_options oauth_options_from(const ghl_config& cfg, secret client_secret);

/// What exchange_code() obtained (no secrets).
struct token_info {
    std::string location_id;
    std::string user_type;
    std::string scope;
    sys_time expires_at;
};

/// OAuth token provider for one location.
///
/// Threading: create() with the executor the client runs on; every member except status()
/// must be called on that executor (single-threaded, or a strand). status() is thread-safe.
/// Refreshes run as their own coroutine on that executor, so a cancelled caller does not
/// cancel the refresh others are waiting for. One provider per location per process.
class oauth_token_provider final : public token_provider,
                                   public std::enable_shared_from_this<oauth_token_provider> {
public:
    static std::shared_ptr<oauth_token_provider>
    create(asio::any_io_executor ex, oauth_options opt, std::shared_ptr<oauth_token_store> store,
           std::shared_ptr<token_endpoint> endpoint,
           const speak4::clock& clk = system_clock::instance());

    asio::awaitable<result<secret>> access_token() override;
    asio::awaitable<result<secret>> refresh_after_unauthorized(const secret& rejected) override;
    auth_status status() const override;

    /// `speak4-sync auth exchange`: trades an authorization code for a token pair,
    /// saves it, and leaves needs_reauth. A code for another location than configured is
    /// saved under its own location and reported as an error.
    asio::awaitable<result<token_info>> exchange_code(secret code);

    /// Refreshes now, even if the token is fresh (single-flight like the others).
    asio::awaitable<result<secret>> refresh_now();

    /// Forgets the in-memory state so the next call reloads from the store (after another
    /// process ran `auth exchange`); clears needs_reauth.
    void reload();

private:
    oauth_token_provider(asio::any_io_executor ex, oauth_options opt,
                         std::shared_ptr<oauth_token_store> store,
                         std::shared_ptr<token_endpoint> endpoint, const speak4::clock& clk);

    struct flight;
    asio::awaitable<result<secret>> join_flight(bool force);
    asio::awaitable<result<secret>> run_flight(bool force);
    asio::awaitable<result<secret>> adopt(token_set next);
    asio::awaitable<void> enter_needs_reauth(std::string reason);
    bool fresh(sys_time now) const;
    void publish_status();
    error make_error(error_kind kind, std::string message) const;

    asio::any_io_executor ex_;
    oauth_options opt_;
    std::shared_ptr<oauth_token_store> store_;
    std::shared_ptr<token_endpoint> endpoint_;
    const speak4::clock& clock_;

    bool loaded_ = false;
    std::optional<token_set> current_;
    std::optional<token_set> pending_; ///< refreshed but not yet saved: never handed out
    std::optional<std::string> reauth_reason_;
    std::shared_ptr<flight> flight_;
    bool reload_pending_ = false; ///< reload() came during a flight: applied when it lands

    mutable std::mutex status_mutex_;
    auth_status status_;
};

} // namespace speak4::ghl
