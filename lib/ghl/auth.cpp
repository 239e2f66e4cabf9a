#include "ghl/auth.hpp"

#include "core/log.hpp"

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <exception>

namespace speak4::ghl {

namespace {

constexpr const char* token_operation = "POST /oauth/token";

/// A token request refused in a way that retrying cannot fix: invalid_grant (consumed, expired
/// or revoked refresh token), "Location is not active", bad client credentials, a malformed
/// grant. 408 and 429 are answers about load, not about the grant.
bool refused_for_good(const error& e) {
    return e.status >= 400 && e.status <= 499 && e.status != 408 && e.status != 429;
}

token_set to_token_set(const token_response& r, const token_set* previous, sys_time now,
                       const oauth_options& opt) {
    token_set t;
    t.access_token = r.access_token;
    t.refresh_token =
        r.refresh_token.empty() && previous ? previous->refresh_token : r.refresh_token;
    t.expires_at = now + std::chrono::seconds{r.expires_in > 0 ? r.expires_in : 86399};
    t.obtained_at = now;
    t.scope = !r.scope.empty() ? r.scope : (previous ? previous->scope : "");
    t.user_type =
        !r.user_type.empty() ? r.user_type : (previous ? previous->user_type : opt.user_type);
    t.location_id = !r.location_id.empty() ? r.location_id
                                           : (previous ? previous->location_id : opt.location_id);
    t.company_id = !r.company_id.empty() ? r.company_id : (previous ? previous->company_id : "");
    t.user_id = !r.user_id.empty() ? r.user_id : (previous ? previous->user_id : "");
    return t;
}

} // namespace

// ---------------------------------------------------------------------------------------------
// static_token_provider

static_token_provider::static_token_provider(secret token)
    : token_(std::move(token)) {}

void static_token_provider::set_token(secret token) {
    std::lock_guard lock(mutex_);
    token_ = std::move(token);
}

asio::awaitable<result<secret>> static_token_provider::access_token() {
    secret t;
    {
        std::lock_guard lock(mutex_);
        t = token_;
    }
    if (t.empty())
        co_return error{error_kind::auth, "", "token", 0,
                        "no private integration token configured"};
    co_return t;
}

asio::awaitable<result<secret>>
static_token_provider::refresh_after_unauthorized(const secret& rejected) {
    secret t;
    {
        std::lock_guard lock(mutex_);
        t = token_;
    }
    // A private token cannot be refreshed; but it may have been replaced (SIGHUP) meanwhile.
    if (!t.empty() && !(t == rejected))
        co_return t;
    co_return error{error_kind::auth, "", "token", 401,
                    "the private integration token was rejected (check ghl.token_file and the "
                    "token's scopes)"};
}

auth_status static_token_provider::status() const {
    std::lock_guard lock(mutex_);
    auth_status s;
    s.mode = auth_mode::private_token;
    if (token_.empty()) {
        s.needs_reauth = true;
        s.reason = "no private integration token configured";
    }
    return s;
}

// ---------------------------------------------------------------------------------------------
// oauth_token_provider

oauth_options oauth_options_from(const ghl_config& cfg, secret client_secret) {
    oauth_options o;
    o.location_id = cfg.location_id;
    o.client_id = cfg.client_id;
    o.client_secret = std::move(client_secret);
    return o;
}

struct oauth_token_provider::flight {
    explicit flight(const asio::any_io_executor& ex)
        : done(ex, asio::steady_timer::time_point::max()) {}
    asio::steady_timer done; // cancelled when `outcome` is set: wakes every waiter
    std::optional<result<secret>> outcome;
};

std::shared_ptr<oauth_token_provider>
oauth_token_provider::create(asio::any_io_executor ex, oauth_options opt,
                             std::shared_ptr<oauth_token_store> store,
                             std::shared_ptr<token_endpoint> endpoint, const speak4::clock& clk) {
    return std::shared_ptr<oauth_token_provider>(new oauth_token_provider(
        std::move(ex), std::move(opt), std::move(store), std::move(endpoint), clk));
}

oauth_token_provider::oauth_token_provider(asio::any_io_executor ex, oauth_options opt,
                                           std::shared_ptr<oauth_token_store> store,
                                           std::shared_ptr<token_endpoint> endpoint,
                                           const speak4::clock& clk)
    : ex_(std::move(ex))
    , opt_(std::move(opt))
    , store_(std::move(store))
    , endpoint_(std::move(endpoint))
    , clock_(clk) {
    status_.mode = auth_mode::oauth;
}

error oauth_token_provider::make_error(error_kind kind, std::string message) const {
    error e;
    e.kind = kind;
    e.operation = token_operation;
    e.step = "token";
    e.message = std::move(message);
    return e;
}

std::chrono::milliseconds refresh_margin_for(const token_set& t, std::chrono::seconds margin) {
    // A token that lives less than the margin would always look about to expire, and every
    // call would refresh it (consuming GHL's single-use refresh token each time): the margin is
    // at most a quarter of the token's lifetime.
    const auto lifetime =
        std::chrono::duration_cast<std::chrono::milliseconds>(t.expires_at - t.obtained_at);
    return std::min<std::chrono::milliseconds>(
        margin, std::max(lifetime / 4, std::chrono::milliseconds(0)));
}

bool oauth_token_provider::fresh(sys_time now) const {
    return current_ &&
           now + refresh_margin_for(*current_, opt_.refresh_margin) < current_->expires_at;
}

void oauth_token_provider::publish_status() {
    std::lock_guard lock(status_mutex_);
    status_.mode = auth_mode::oauth;
    status_.needs_reauth = reauth_reason_.has_value();
    status_.reason = reauth_reason_.value_or("");
    status_.expires_at = current_ ? std::optional<sys_time>(current_->expires_at) : std::nullopt;
}

auth_status oauth_token_provider::status() const {
    std::lock_guard lock(status_mutex_);
    return status_;
}

void oauth_token_provider::reload() {
    if (flight_) {
        // A refresh is suspended mid-flight and will use (and save) the state: reset it once
        // the flight has landed, not under it.
        reload_pending_ = true;
        return;
    }
    reload_pending_ = false;
    loaded_ = false;
    current_.reset();
    reauth_reason_.reset();
    publish_status();
}

asio::awaitable<result<secret>> oauth_token_provider::access_token() {
    if (!reauth_reason_ && !pending_ && fresh(clock_.now()))
        co_return current_->access_token;
    co_return co_await join_flight(false);
}

asio::awaitable<result<secret>>
oauth_token_provider::refresh_after_unauthorized(const secret& rejected) {
    if (reauth_reason_)
        co_return make_error(error_kind::needs_reauth, *reauth_reason_);
    // Another caller may already have refreshed since `rejected` was handed out.
    if (current_ && !(current_->access_token == rejected) && !pending_ &&
        clock_.now() < current_->expires_at)
        co_return current_->access_token;
    // Joining a flight that started before the 401 may yield the rejected token again: then
    // force one more refresh, once.
    for (int i = 0; i < 2; ++i) {
        auto r = co_await join_flight(true);
        if (!r || !(*r == rejected))
            co_return r;
    }
    co_return make_error(error_kind::auth, "the refreshed token equals the rejected one");
}

asio::awaitable<result<secret>> oauth_token_provider::refresh_now() {
    co_return co_await join_flight(true);
}

asio::awaitable<result<secret>> oauth_token_provider::join_flight(bool force) {
    auto self = shared_from_this();
    auto f = flight_;
    if (!f) {
        f = std::make_shared<flight>(ex_);
        flight_ = f;
        // The refresh runs as its own coroutine: a caller that gives up (cancellation) must
        // not abandon the refresh the others wait for, nor a rotated token before it is saved.
        asio::co_spawn(
            ex_,
            [self, f, force]() -> asio::awaitable<void> {
                result<secret> r = self->make_error(error_kind::auth, "token refresh aborted");
                try {
                    r = co_await self->run_flight(force);
                } catch (const std::exception& ex) {
                    r = self->make_error(error_kind::auth,
                                         std::string("token refresh failed: ") + ex.what());
                }
                f->outcome = std::move(r);
                if (self->flight_ == f)
                    self->flight_.reset();
                if (self->reload_pending_ && !self->flight_)
                    self->reload();
                f->done.cancel();
            },
            asio::detached);
        // co_spawn may run the flight inline up to its first suspension, or to its end.
    }
    while (!f->outcome)
        (void)co_await f->done.async_wait(asio::as_tuple(asio::use_awaitable));
    co_return *f->outcome;
}

asio::awaitable<void> oauth_token_provider::enter_needs_reauth(std::string reason) {
    reauth_reason_ = reason;
    publish_status();
    log::error("ghl oauth needs re-authorization",
               {{"location_id", opt_.location_id}, {"reason", reason}});
    auto marked = co_await store_->mark_needs_reauth(opt_.location_id, reason);
    if (!marked)
        log::error("ghl oauth: cannot record needs_reauth",
                   {{"location_id", opt_.location_id}, {"error", marked.error()}});
}

asio::awaitable<result<secret>> oauth_token_provider::adopt(token_set next) {
    // Save BEFORE use: the refresh token in `next` is the only one GHL accepts from now on.
    pending_ = std::move(next);
    auto saved = co_await store_->save(*pending_);
    if (!saved) {
        log::error("ghl oauth: cannot save the rotated tokens; kept in memory, retried next call",
                   {{"location_id", opt_.location_id}, {"error", saved.error()}});
        co_return make_error(error_kind::auth,
                             "token store: cannot save the rotated OAuth tokens: " + saved.error());
    }
    current_ = std::move(pending_);
    pending_.reset();
    reauth_reason_.reset();
    loaded_ = true;
    publish_status();
    co_return current_->access_token;
}

asio::awaitable<result<secret>> oauth_token_provider::run_flight(bool force) {
    if (pending_) // a rotated pair whose save failed earlier: save it, never refresh again
        co_return co_await adopt(std::move(*pending_));
    if (reauth_reason_)
        co_return make_error(error_kind::needs_reauth, *reauth_reason_);

    if (!loaded_) {
        auto loaded = co_await store_->load(opt_.location_id);
        if (!loaded)
            co_return make_error(error_kind::auth, "token store: " + loaded.error());
        if (!*loaded) {
            std::string reason = "no OAuth tokens stored for location " + opt_.location_id +
                                 "; run `speak4-sync auth exchange`";
            co_await enter_needs_reauth(reason);
            co_return make_error(error_kind::needs_reauth, reason);
        }
        current_ = std::move(**loaded);
        loaded_ = true;
        publish_status();
    }

    const auto now = clock_.now();
    if (!force && fresh(now))
        co_return current_->access_token;

    token_request req;
    req.grant_type = "refresh_token";
    req.client_id = opt_.client_id;
    req.client_secret = opt_.client_secret;
    req.refresh_token = current_->refresh_token;
    req.user_type = current_->user_type.empty() ? opt_.user_type : current_->user_type;
    auto r = co_await endpoint_->request_token(std::move(req));
    if (!r) {
        const auto& e = r.error();
        if (refused_for_good(e)) {
            std::string reason = "OAuth refresh refused: " + std::to_string(e.status) +
                                 (e.message.empty() ? "" : " " + e.message);
            co_await enter_needs_reauth(reason);
            co_return make_error(error_kind::needs_reauth, reason);
        }
        // Transient (network, 5xx, 429): the current token serves while it is still valid.
        if (!force && now < current_->expires_at) {
            log::warn("ghl oauth refresh failed; using the current token until it expires",
                      {{"location_id", opt_.location_id}, {"error", e.what()}});
            co_return current_->access_token;
        }
        error out = e;
        out.message = "OAuth refresh failed: " + e.what();
        out.operation = token_operation;
        out.kind =
            e.kind == error_kind::outcome_unknown ? error_kind::outcome_unknown : error_kind::auth;
        co_return out;
    }
    co_return co_await adopt(to_token_set(*r, &*current_, clock_.now(), opt_));
}

asio::awaitable<result<token_info>> oauth_token_provider::exchange_code(secret code) {
    auto self = shared_from_this();
    if (flight_)
        (void)co_await join_flight(false);

    token_request req;
    req.grant_type = "authorization_code";
    req.client_id = opt_.client_id;
    req.client_secret = opt_.client_secret;
    req.code = std::move(code);
    req.user_type = opt_.user_type;
    req.redirect_uri = opt_.redirect_uri;
    auto r = co_await endpoint_->request_token(std::move(req));
    if (!r) {
        error e = r.error();
        e.message = "authorization code refused: " + e.message;
        co_return e;
    }
    token_set next = to_token_set(*r, nullptr, clock_.now(), opt_);
    token_info info{next.location_id, next.user_type, next.scope, next.expires_at};
    if (!opt_.location_id.empty() && next.location_id != opt_.location_id) {
        // The code is spent either way: keep its tokens under their own location.
        auto saved = co_await store_->save(next);
        co_return make_error(error_kind::permanent,
                             "the code was issued for location " + next.location_id +
                                 " but ghl.location_id is " + opt_.location_id +
                                 (saved ? " (tokens saved under that location)"
                                        : " (and saving them failed: " + saved.error() + ")"));
    }
    auto adopted = co_await adopt(std::move(next));
    if (!adopted)
        co_return adopted.error();
    co_return info;
}

} // namespace speak4::ghl
