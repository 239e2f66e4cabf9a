#pragma once
// The daemon's local HTTP API (DESIGN §1, §3, §7): a Beast HTTP/1.1 server on api.listen.
//
//   POST /v1/events      a Speak4 event (bearer token); 202 only after its group commit
//   GET  /v1/changes     the change feed, ?since=SEQ&limit=N&wait=SECONDS (bearer token)
//   GET  /healthz        200 {"status":"ok"} or 503 {"status":"unhealthy","reason":...}
//   GET  /metrics        Prometheus text format 0.0.4
//   POST /webhooks/ghl   GHL webhooks, authenticated by signature (when webhooks.enabled)
//   GET  /console/       the integration console (static, embedded in the binary; no token)
//   /v1/admin/...        the JSON the console reads (bearer token; README lists the routes);
//                        read-only but for POST /v1/admin/outbox/{id}/retry|drop
//
// Every error is JSON {"error":{"code":"...","message":"..."}}. Every read has a deadline and a
// size limit; the number of connections is capped; SQLite is only touched through the
// db_worker, never on the network thread.

#include "api/webhook_verify.hpp"
#include "core/clock.hpp"
#include "core/config.hpp"
#include "core/metrics.hpp"
#include "core/secret.hpp"
#include "sync/event.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/json/object.hpp>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>

namespace speak4::store {
class db_worker;
}

namespace speak4::api {

/// What GET /healthz reports, from the daemon's health callback.
struct health {
    bool ok = true;
    std::string reason; // why not ok ("needs_reauth: invalid_grant", ...)
    /// More to say (health::to_json: loops, breaker, database, auth), merged into the body.
    boost::json::object detail;
};

/// Settings of the server. from_config() fills them from the daemon's configuration; tests set
/// them directly.
struct server_options {
    std::string listen = "127.0.0.1:8737";  // host:port or [v6]:port; port 0 picks a free port
    secret api_token;                       // empty: every /v1/* request is refused (401)
    sync::field_map field_map;              // [rules.field_map], resolved (app/fields.hpp)
    sync::custom_field_types custom_fields; // the custom fields it sends to (intake type checks)

    bool webhooks_enabled = false; // else /webhooks/ghl is 404
    webhook_keys signature_keys;   // at least one key when enabled
    std::chrono::seconds webhook_max_age{300};

    std::size_t max_connections = 256;                 // beyond: answered 503 and closed
    std::size_t header_limit = std::size_t{16} * 1024; // request line + fields (431 over it)
    std::size_t body_limit = std::size_t{256} * 1024;  // POST bodies (413 over it)
    std::chrono::milliseconds idle_timeout{30'000};    // waiting for a request's header to complete
    std::chrono::milliseconds read_timeout{30'000};    // reading a body
    std::chrono::milliseconds write_timeout{30'000};   // writing a response
    std::size_t max_batch = 512;                       // events per group commit
    std::chrono::seconds max_wait{60};                 // longest long-poll of /v1/changes

    /// The daemon's settings as the console shows them (`status --json`'s auth and database,
    /// the rate budget, the poll interval). Tests may leave the defaults.
    config settings;

    /// Called (on the network thread) for GET /healthz; must be quick and thread-safe. Unset:
    /// healthy unless the server is stopping or its last database access failed.
    std::function<health()> health_check;

    /// Called (on the network thread) after events or webhooks committed new work: the daemon
    /// wakes its dispatcher, so an event is picked up when its coalescing window ends instead
    /// of at the next idle poll. Must be quick.
    std::function<void()> on_work_committed;

    /// From the configuration and the loaded secrets. Reads and parses the webhook key files when
    /// webhooks are enabled. Throws config_error naming the key on a bad listen address, an
    /// unreadable or wrong kind of key, or webhooks enabled without any key. Control plane only.
    static server_options from_config(const config& cfg, const secrets& sec);
};

/// The local HTTP API server.
///
/// Threading: all network work runs on one strand of the executor given to the constructor (the
/// daemon's single network io_context; running that io_context on several threads is safe).
/// start() and port() may be called from any thread; stop() and notify_changes() are thread-safe
/// and return at once; the io_context must keep running until stop()'s `on_stopped` ran.
///
/// Lifetime: the db_worker, the metrics and the clock must outlive the server until
/// `on_stopped` ran. If the daemon gives up earlier (stops its io_context after a grace period)
/// and destroys the server, coroutines still pending are destroyed with the io_context and touch
/// nothing but the server's own state then; database jobs they queued still run, so stop the
/// db_worker (which finishes its queue) before destroying that io_context.
class server {
public:
    server(const boost::asio::any_io_executor& executor, server_options options,
           store::db_worker& db, metrics::daemon_metrics& metrics,
           const clock& clk = system_clock::instance());
    ~server();
    server(const server&) = delete;
    server& operator=(const server&) = delete;

    /// Binds and listens (throws std::runtime_error naming the address on failure: control plane),
    /// then starts accepting and the group-commit batcher on the executor.
    void start();

    /// The bound port (useful with port 0); 0 before start().
    unsigned short port() const;

    /// Two-stage shutdown. Stops accepting at once; a request that arrives from now on is answered
    /// 503 {"error":{"code":"shutting_down"}} (webhooks 429, the one status GHL retries) and its
    /// connection closed; long-polls return at once; requests in flight finish and get
    /// "Connection: close". When none is left in flight, or after `grace`, every connection is
    /// closed. `on_stopped` runs on the server's strand once all its work, database jobs
    /// included, has finished. Idempotent (a second call's callback runs on the same completion).
    void stop(std::chrono::milliseconds grace = std::chrono::seconds(5),
              std::function<void()> on_stopped = {});

    /// True once stop() has completed.
    bool stopped() const;

    /// Tells /v1/changes long-polls that new changes were committed (other subsystems call this
    /// after committing rows to `changes`; the event batcher and webhooks call it themselves).
    void notify_changes();

    /// Replaces the field map and its custom field types (SIGHUP re-resolves them); events
    /// parsed after this use the new ones.
    void set_field_map(sync::field_map map, sync::custom_field_types types);

private:
    class impl;
    std::shared_ptr<impl> impl_;
};

} // namespace speak4::api
