// The route table, authentication and method checks, and the server's options. See routes.hpp.

#include "api/routes.hpp"

#include "api/request_util.hpp"
#include "core/error.hpp"
#include "core/log.hpp"

#include <fstream>
#include <sqlite3.h>

namespace speak4::api {
namespace {

namespace net = boost::asio;

std::string read_key_file(const std::filesystem::path& path, const std::string& key) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw config_error(key, 0, key + ": cannot read " + path.string());
    std::string text;
    text.resize(std::size_t{64} * 1024 + 1);
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    text.resize(static_cast<std::size_t>(in.gcount()));
    if (text.size() > std::size_t{64} * 1024)
        throw config_error(key, 0, key + ": " + path.string() + " is larger than 64 KiB");
    return text;
}

public_key load_key(const std::filesystem::path& path, const std::string& key,
                    public_key::kind want) {
    auto k = public_key::from_pem(read_key_file(path, key));
    if (!k)
        throw config_error(key, 0, key + ": " + path.string() + ": " + k.error());
    if (k->type() != want)
        throw config_error(key, 0,
                           key + ": " + path.string() + " is not an " +
                               (want == public_key::kind::ed25519 ? "Ed25519" : "RSA") +
                               " public key");
    return *k;
}

} // namespace

// --- options ---------------------------------------------------------------------------------

server_options server_options::from_config(const config& cfg, const secrets& sec) {
    server_options o;
    if (!split_listen(cfg.api.listen))
        throw config_error("api.listen", 0,
                           "api.listen: '" + cfg.api.listen + "' is not host:port or [ipv6]:port");
    o.listen = cfg.api.listen;
    o.settings = cfg;
    o.api_token = sec.api_token;
    o.field_map = cfg.rules.field_map;
    o.webhooks_enabled = cfg.webhooks.enabled;
    o.webhook_max_age = std::chrono::seconds(cfg.webhooks.max_age_seconds);
    if (cfg.webhooks.enabled) {
        if (cfg.webhooks.public_key_file.empty() && cfg.webhooks.rsa_public_key_file.empty())
            throw config_error("webhooks.enabled", 0,
                               "webhooks.enabled: webhooks need webhooks.public_key_file (Ed25519) "
                               "or webhooks.rsa_public_key_file (RSA) to verify signatures");
        if (!cfg.webhooks.public_key_file.empty())
            o.signature_keys.ed25519 =
                load_key(cfg.webhooks.public_key_file, "webhooks.public_key_file",
                         public_key::kind::ed25519);
        if (!cfg.webhooks.rsa_public_key_file.empty())
            o.signature_keys.rsa = load_key(cfg.webhooks.rsa_public_key_file,
                                            "webhooks.rsa_public_key_file", public_key::kind::rsa);
    }
    return o;
}

// --- the table -------------------------------------------------------------------------------

route route_of(std::string_view path) {
    if (path == "/v1/events")
        return route::events;
    if (path == "/v1/changes")
        return route::changes;
    if (path == "/healthz")
        return route::healthz;
    if (path == "/metrics")
        return route::metrics;
    if (path == "/webhooks/ghl")
        return route::webhook;
    if (path.starts_with("/v1/admin/"))
        return route::admin;
    if (path == "/console" || path.starts_with("/console/"))
        return route::console;
    return route::none;
}

bool takes_body(route r) {
    return r == route::events || r == route::webhook;
}

void reset_busy_statements(SQLite::Database& db) noexcept {
    sqlite3* h = db.getHandle();
    for (sqlite3_stmt* s = sqlite3_next_stmt(h, nullptr); s; s = sqlite3_next_stmt(h, s))
        if (sqlite3_stmt_busy(s))
            sqlite3_reset(s);
}

routes::routes(const net::any_io_executor& strand, const server_options& opt, store::db_worker& db,
               metrics::daemon_metrics& m, const clock& clk)
    : strand_(strand)
    , opt_(opt)
    , db_(db)
    , m_(m)
    , clock_(clk)
    , batcher_wake_(strand) {}

std::optional<reply> routes::precheck(route rt, const request& req) const {
    if (stopping_ && rt != route::healthz) {
        if (rt == route::webhook) {
            // GHL retries a webhook only after a 429 (ghl-api.md §11); any other status loses it.
            reply r = error_reply(status::too_many_requests, "shutting_down",
                                  "the server is shutting down; retry later");
            r.retry_after = 60;
            return r;
        }
        return error_reply(status::service_unavailable, "shutting_down",
                           "the server is shutting down");
    }
    if (rt == route::none)
        return error_reply(status::not_found, "not_found",
                           "no such endpoint: " + clip(target_path(req.target)) +
                               " (try /v1/events, /v1/changes, /healthz, /metrics, /console/)");
    if (rt == route::webhook && !opt_.webhooks_enabled)
        return error_reply(status::not_found, "not_found",
                           "webhooks are disabled (webhooks.enabled = false)");

    if (rt == route::events || rt == route::changes || rt == route::admin) {
        reply r;
        if (opt_.api_token.empty()) {
            r = error_reply(status::unauthorized, "unauthorized",
                            "api.token_file is not set: the local API refuses /v1/* requests "
                            "until a token is configured");
        } else {
            const auto value = req.header("Authorization");
            const auto token = value ? bearer_token(*value) : std::nullopt;
            if (!token) {
                r = error_reply(status::unauthorized, "unauthorized",
                                "missing 'Authorization: Bearer <token>' header");
            } else if (!constant_time_equal(*token, opt_.api_token.reveal())) {
                r = error_reply(status::unauthorized, "unauthorized", "wrong bearer token");
            } else {
                r.status = status::ok;
            }
        }
        if (r.status == status::unauthorized) {
            r.www_authenticate = true;
            return r;
        }
    }

    if (rt == route::admin) {
        // Authenticated first: an unknown admin route answers 404 only to a token holder.
        const auto want = admin_method(target_path(req.target));
        if (!want)
            return error_reply(status::not_found, "not_found",
                               "no such admin endpoint: " + clip(target_path(req.target)) +
                                   " (see README: /v1/admin/overview, series, dead, audit, "
                                   "conflicts, contact, outbox/{id}/retry|drop)");
        if (req.method != *want) {
            const bool post = *want == method::post;
            reply r = error_reply(status::method_not_allowed, "method_not_allowed",
                                  "method " + clip(req.method_name, 16) + " is not allowed on " +
                                      clip(target_path(req.target)) + " (use " +
                                      (post ? "POST" : "GET") + ")");
            r.allow = post ? "POST" : "GET";
            return r;
        }
        return std::nullopt;
    }
    const bool post_route = takes_body(rt);
    if (post_route ? req.method != method::post : req.method != method::get) {
        reply r = error_reply(status::method_not_allowed, "method_not_allowed",
                              "method " + clip(req.method_name, 16) + " is not allowed on " +
                                  clip(target_path(req.target)) + " (use " +
                                  (post_route ? "POST" : "GET") + ")");
        r.allow = post_route ? "POST" : "GET";
        return r;
    }
    if (rt == route::changes || rt == route::healthz || rt == route::metrics ||
        rt == route::console) {
        return std::nullopt;
    }
    if (req.target != target_path(req.target) && rt == route::events)
        return error_reply(status::bad_request, "bad_query",
                           "/v1/events takes no query parameters");
    return std::nullopt;
}

net::awaitable<reply> routes::dispatch(route rt, request& req) {
    switch (rt) {
    case route::events:
        co_return co_await post_event(req);
    case route::changes:
        co_return co_await get_changes(req);
    case route::healthz:
        co_return healthz();
    case route::metrics:
        co_return co_await get_metrics();
    case route::webhook:
        co_return co_await post_webhook(req);
    case route::admin:
        co_return co_await admin(req);
    case route::console:
        co_return console(req);
    case route::none:
        break;
    }
    co_return error_reply(status::not_found, "not_found", "no such endpoint");
}

void routes::begin_stop() {
    stopping_ = true;
    batcher_wake_.cancel();
    for (auto* t : change_waiters_)
        t->cancel();
}

void routes::db_failed(const std::string& what) {
    if (!db_error_)
        log::error("api: database error", {{"error", what}});
    db_error_ = what;
}

net::awaitable<void> routes::release_database() {
    try {
        co_await db_.run([this](SQLite::Database&) { dbs_ = db_side{}; });
    } catch (const std::exception& e) {
        log::warn("api: releasing database statements failed", {{"error", e.what()}});
    }
}

} // namespace speak4::api
