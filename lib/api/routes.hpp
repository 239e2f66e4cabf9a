#pragma once
// The routes of the local API and the state they share (internal to lib/api; server.cpp owns
// one). The transport (server.cpp) reads a request, asks precheck() whether it is refused before
// its body is read (shutting down, unknown route, token, method), then dispatch()es it. The
// handlers live in one file per concern: routes.cpp (the table, authentication, options),
// events.cpp (POST /v1/events and its group commit), changes.cpp (GET /v1/changes and its
// long-poll), webhooks.cpp (POST /webhooks/ghl), health_metrics.cpp (GET /healthz, /metrics),
// admin.cpp (/v1/admin/…, the console's JSON), console.cpp (the console's embedded files).
// None of them includes Beast.
//
// Threading: every member runs on the server's strand (the executor given to the constructor),
// except `dbs_`, which only database jobs touch (on the database thread, one job at a time).

#include "api/message.hpp"
#include "api/server.hpp"
#include "store/db_worker.hpp"
#include "store/statement_cache.hpp"
#include "sync/intake.hpp"
#include "sync/webhook.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/system/result.hpp>
#include <cstdint>
#include <deque>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace speak4::api {

enum class route { none, events, changes, healthz, metrics, webhook, admin, console };

/// The route of a request path (without its query).
route route_of(std::string_view path);
/// Whether the route reads a request body (POST routes); others read at most a small one and
/// ignore it.
bool takes_body(route r);
/// The method an admin path takes (admin.cpp), or nullopt for an unknown admin route (404).
std::optional<method> admin_method(std::string_view path);

/// Resets every statement of the connection that is still stepping. A SELECT that returned a
/// row and was not reset keeps its read transaction open after the job's COMMIT, pinning an old
/// snapshot: later reads on this connection would miss other connections' writes, and the next
/// BEGIN IMMEDIATE would fail with SQLITE_BUSY. Jobs run one at a time on the database thread,
/// so after a job no statement is legitimately in use.
void reset_busy_statements(SQLite::Database& db) noexcept;

/// The handlers and their shared state. See the top of this file.
class routes {
public:
    routes(const boost::asio::any_io_executor& strand, const server_options& opt,
           store::db_worker& db, metrics::daemon_metrics& m, const clock& clk);

    /// A reply when the request is refused before its body is read; nullopt to go on.
    std::optional<reply> precheck(route rt, const request& req) const;
    /// Serves a request precheck() let through.
    boost::asio::awaitable<reply> dispatch(route rt, request& req);

    /// The group-commit loop of POST /v1/events; returns once stopping and its queue is empty.
    boost::asio::awaitable<void> run_batcher();
    /// From now on requests are refused, long-polls return and the batcher ends when idle.
    void begin_stop();
    bool stopping() const { return stopping_; }
    /// Wakes the long-polls of /v1/changes (new rows in `changes`).
    void changes_committed();
    /// Finalizes the handlers' statements on the database thread (at the end of shutdown).
    boost::asio::awaitable<void> release_database();

private:
    /// An event waiting for its group commit.
    struct pending_event {
        explicit pending_event(const boost::asio::any_io_executor& ex)
            : done(ex) {}
        sync::raw_event ev;
        std::optional<sync::intake_outcome> outcome;
        boost::asio::steady_timer done; // cancelled when outcome is set
    };

    struct change_row {
        long long seq = 0;
        std::string entity;
        long long entity_id = 0;
        std::string kind;
        std::string source;
        std::string ts;
        std::optional<std::string> speak4_id;
        std::optional<std::string> ghl_id;
        std::optional<std::string> detail; ///< JSON (linked, revived): what the change joined
    };

    struct changes_page {
        std::vector<change_row> rows;
        bool more = false;
    };

    // events.cpp
    boost::asio::awaitable<reply> post_event(request& req);
    boost::asio::awaitable<void> submit(std::shared_ptr<pending_event> item);
    // changes.cpp
    boost::asio::awaitable<reply> get_changes(const request& req);
    boost::asio::awaitable<boost::system::result<changes_page, std::string>>
    query_changes(long long since, long long limit);
    // webhooks.cpp
    boost::asio::awaitable<reply> post_webhook(const request& req);
    // health_metrics.cpp
    reply healthz();
    // admin.cpp
    boost::asio::awaitable<reply> admin(const request& req);
    // console.cpp
    reply console(const request& req) const;
    boost::asio::awaitable<reply> get_metrics();

    void db_failed(const std::string& what);
    void db_ok() { db_error_.reset(); }

    /// A database job reading through our statement cache (created on first use). After a
    /// failure the cache is dropped: a statement whose step failed reports that error again on
    /// its next reset, which would fail the next job too.
    template <class F>
    auto read_job(F f) {
        return [this, f = std::move(f)](SQLite::Database& db) {
            if (!dbs_.stmts)
                dbs_.stmts = std::make_unique<store::statement_cache>(db);
            try {
                auto out = f(*dbs_.stmts);
                reset_busy_statements(db);
                return out;
            } catch (...) {
                dbs_.stmts.reset();
                reset_busy_statements(db);
                throw;
            }
        };
    }

    boost::asio::any_io_executor strand_;
    const server_options& opt_;
    store::db_worker& db_;
    metrics::daemon_metrics& m_;
    const clock& clock_;

    // On the strand.
    bool stopping_ = false;
    std::deque<std::shared_ptr<pending_event>> queue_;
    boost::asio::steady_timer batcher_wake_;
    bool batcher_running_ = false;
    std::uint64_t change_generation_ = 0;
    std::list<boost::asio::steady_timer*> change_waiters_;
    std::optional<std::string> db_error_;

    // On the database thread only.
    struct db_side {
        std::unique_ptr<sync::intake> intake;
        std::unique_ptr<store::statement_cache> stmts;
        std::unique_ptr<sync::webhook_store> webhooks;
    } dbs_;
};

} // namespace speak4::api
