// The local HTTP API. Modelled on Beast's advanced server-flex-awaitable example: one coroutine
// per connection, a deadline on the stream before every phase, header and body limits on every
// read, and a two-stage shutdown (stop accepting and let requests in flight finish, then close).
//
// All state of the server lives on one strand; SQLite work goes through the db_worker, whose
// jobs run on the database thread while the coroutine waiting for them is suspended.

#include "api/server.hpp"

#include "api/request_util.hpp"
#include "core/error.hpp"
#include "core/json.hpp"
#include "core/log.hpp"
#include "store/db_worker.hpp"
#include "store/statement_cache.hpp"
#include "sync/intake.hpp"
#include "sync/webhook.hpp"

#include <SQLiteCpp/Statement.h>
#include <array>
#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <cmath>
#include <deque>
#include <fstream>
#include <limits>
#include <list>
#include <map>
#include <sqlite3.h>

namespace speak4::api {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace bj = boost::json;
using tcp = net::ip::tcp;
using boost::system::error_code;
using steady = std::chrono::steady_clock;
using request = http::request<http::string_body>;

constexpr auto use_aw = net::use_awaitable;

// GET requests have no use for a body; one is read (and ignored) up to this size.
constexpr std::size_t small_body_limit = std::size_t{16} * 1024;
// Connections over max_connections are answered by at most this many small coroutines at once;
// beyond that they are closed without a word.
constexpr std::size_t max_rejecting = 64;
// What a closing connection still reads and discards (see linger_close).
constexpr std::size_t linger_bytes = std::size_t{1024} * 1024;
constexpr std::chrono::seconds linger_time{1};
constexpr long long max_changes_limit = 1000;
constexpr long long default_changes_limit = 100;

/// A response before it becomes a Beast message.
struct reply {
    http::status status = http::status::ok;
    std::string body;
    std::string_view content_type = "application/json";
    bool close = false;
    std::string_view allow;        // 405: the methods the route takes
    bool www_authenticate = false; // 401 on /v1/*
    int retry_after = 0;           // seconds; 0 = no header
};

reply json_reply(http::status s, const bj::value& v) {
    reply r;
    r.status = s;
    r.body = bj::serialize(v);
    return r;
}

reply error_reply(http::status s, std::string_view code, std::string_view message,
                  std::string_view field = {}) {
    reply r;
    r.status = s;
    r.body = error_body(code, message, field);
    return r;
}

enum class route { none, events, changes, healthz, metrics, webhook };

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
    return route::none;
}

bool takes_body(route r) {
    return r == route::events || r == route::webhook;
}

/// A shortened copy for messages and logs (the rest of a 16 KiB target adds nothing).
std::string clip(std::string_view s, std::size_t n = 200) {
    std::string out(s.substr(0, n));
    for (char& c : out)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
            c = '?';
    if (s.size() > n)
        out += "...";
    return out;
}

/// A failure of the transport rather than of the request: nothing to answer, just close.
bool is_transport_error(const error_code& ec) {
    return ec.category() == boost::system::system_category() ||
           ec.category() == net::error::get_misc_category() ||
           ec.category() == net::error::get_netdb_category() ||
           ec == net::error::operation_aborted || ec == http::error::end_of_stream ||
           ec == http::error::partial_message;
}

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

struct change_row {
    long long seq = 0;
    std::string entity;
    long long entity_id = 0;
    std::string kind;
    std::string source;
    std::string ts;
    std::optional<std::string> speak4_id;
    std::optional<std::string> ghl_id;
};

struct changes_page {
    std::vector<change_row> rows;
    bool more = false;
};

struct scrape_values {
    std::map<std::string, long long> outbox;
    long long last_seq = 0;
};

/// Resets every statement of the connection that is still stepping. A SELECT that returned a
/// row and was not reset keeps its read transaction open after the job's COMMIT, pinning an old
/// snapshot: later reads on this connection would miss other connections' writes, and the next
/// BEGIN IMMEDIATE would fail with SQLITE_BUSY. Jobs run one at a time on the database thread,
/// so after a job no statement is legitimately in use.
void reset_busy_statements(SQLite::Database& db) noexcept {
    sqlite3* h = db.getHandle();
    for (sqlite3_stmt* s = sqlite3_next_stmt(h, nullptr); s; s = sqlite3_next_stmt(h, s))
        if (sqlite3_stmt_busy(s))
            sqlite3_reset(s);
}

bj::value opt_json(const std::optional<std::string>& s) {
    return s ? bj::value(*s) : bj::value(nullptr);
}

} // namespace

// --- options ---------------------------------------------------------------------------------

server_options server_options::from_config(const config& cfg, const secrets& sec) {
    server_options o;
    if (!split_listen(cfg.api.listen))
        throw config_error("api.listen", 0,
                           "api.listen: '" + cfg.api.listen + "' is not host:port or [ipv6]:port");
    o.listen = cfg.api.listen;
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

// --- the server ------------------------------------------------------------------------------

class server::impl : public std::enable_shared_from_this<impl> {
public:
    impl(const net::any_io_executor& ex, server_options opt, store::db_worker& db,
         metrics::daemon_metrics& m, const clock& clk)
        : strand_(net::make_strand(ex))
        , opt_(std::move(opt))
        , db_(db)
        , m_(m)
        , clock_(clk)
        , acceptor_(strand_)
        , state_changed_(strand_)
        , batcher_wake_(strand_) {}

    void start();
    void stop(std::chrono::milliseconds grace, std::function<void()> on_stopped);
    const net::any_io_executor& strand() const { return strand_; }
    void notify_changes() {
        net::post(strand_, [self = shared_from_this()] { self->changes_committed(); });
    }

    std::atomic<unsigned short> port_{0};
    std::atomic<bool> stopped_{false};
    // Set when the server object is destroyed before stop() completed (the daemon gave up on the
    // grace period and stopped its io_context): coroutine frames destroyed later, with the
    // io_context, must not touch the metrics or timers, which may be gone by then.
    std::atomic<bool> orphaned_{false};

private:
    /// One accepted connection. Owned by its coroutine (through task_guard) and listed in
    /// connections_ so shutdown can close it.
    struct connection {
        explicit connection(tcp::socket s)
            : stream(std::move(s)) {}
        beast::tcp_stream stream;
        std::uint64_t id = 0;
        bool busy = false;     // between a complete request header and the end of its response
        bool rejected = false; // over max_connections: answered 503 and closed
    };

    /// Counts a coroutine (and registers its connection) from the moment it is spawned until its
    /// frame is destroyed, so shutdown knows when all work is done. Passed by value as a
    /// coroutine parameter: it lives in the frame.
    class task_guard {
    public:
        explicit task_guard(std::shared_ptr<impl> s, std::shared_ptr<connection> c = nullptr)
            : self_(std::move(s))
            , conn_(std::move(c)) {
            ++self_->coroutines_;
            if (conn_) {
                conn_->id = ++self_->next_connection_id_;
                self_->connections_.emplace(conn_->id, conn_);
                if (!conn_->rejected)
                    ++self_->sessions_;
                self_->m_.http_connections.inc();
            }
        }
        task_guard(task_guard&& o) noexcept
            : self_(std::move(o.self_))
            , conn_(std::move(o.conn_)) {}
        task_guard& operator=(task_guard&&) = delete;
        ~task_guard() {
            if (!self_)
                return;
            if (self_->orphaned_) {
                if (conn_)
                    self_->connections_.erase(conn_->id);
                return;
            }
            if (conn_) {
                if (conn_->busy)
                    --self_->busy_;
                if (!conn_->rejected)
                    --self_->sessions_;
                self_->connections_.erase(conn_->id);
                self_->m_.http_connections.dec();
            }
            --self_->coroutines_;
            if (self_->stopping_)
                self_->state_changed_.cancel();
        }
        connection& conn() { return *conn_; }

    private:
        std::shared_ptr<impl> self_;
        std::shared_ptr<connection> conn_;
    };

    /// An event waiting for its group commit.
    struct pending_event {
        explicit pending_event(const net::any_io_executor& ex)
            : done(ex) {}
        sync::raw_event ev;
        std::optional<sync::intake_outcome> outcome;
        net::steady_timer done; // cancelled when outcome is set
    };

    void spawn(net::awaitable<void> aw, const char* what);
    net::awaitable<void> accept_loop(task_guard g);
    net::awaitable<void> session(task_guard g);
    net::awaitable<void> reject(task_guard g);
    net::awaitable<bool> serve_one(connection& c, beast::flat_buffer& buffer);
    net::awaitable<bool> write_reply(connection& c, unsigned version, const reply& r,
                                     std::optional<std::chrono::milliseconds> timeout = {});
    net::awaitable<void> linger_close(connection& c);
    void set_busy(connection& c, bool busy);
    void finish_log(const request* req, std::string_view path, const reply& r,
                    steady::time_point t0);

    std::optional<reply> precheck(route rt, const request& req);
    net::awaitable<reply> dispatch(route rt, request& req);
    net::awaitable<reply> post_event(request& req);
    net::awaitable<reply> get_changes(const request& req);
    net::awaitable<reply> get_metrics();
    net::awaitable<reply> post_webhook(const request& req);
    reply healthz();

    net::awaitable<void> submit(std::shared_ptr<pending_event> item);
    net::awaitable<void> batcher(task_guard g);
    net::awaitable<boost::system::result<changes_page, std::string>> query_changes(long long since,
                                                                                   long long limit);
    void changes_committed();
    void db_failed(const std::string& what);

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
    void db_ok() { db_error_.reset(); }

    net::awaitable<void> shutdown(std::shared_ptr<impl> self, std::chrono::milliseconds grace);

    net::any_io_executor strand_;
    server_options opt_;
    store::db_worker& db_;
    metrics::daemon_metrics& m_;
    const clock& clock_;
    tcp::acceptor acceptor_;

    // Everything below is touched only on strand_ ...
    bool started_ = false;
    bool stopping_ = false;
    std::size_t coroutines_ = 0;
    std::size_t sessions_ = 0;
    std::size_t busy_ = 0;
    std::size_t rejecting_ = 0;
    std::uint64_t next_connection_id_ = 0;
    std::map<std::uint64_t, std::shared_ptr<connection>> connections_;
    net::steady_timer state_changed_; // the shutdown sequence waits on it; cancelled on changes
    std::vector<std::function<void()>> on_stopped_;

    std::deque<std::shared_ptr<pending_event>> queue_;
    net::steady_timer batcher_wake_;
    bool batcher_running_ = false;

    std::uint64_t change_generation_ = 0;
    std::list<net::steady_timer*> change_waiters_;
    std::optional<std::string> db_error_;

    // ... except these, which only database jobs touch (on the database thread, one at a time).
    struct db_side {
        std::unique_ptr<sync::intake> intake;
        std::unique_ptr<store::statement_cache> stmts;
        std::unique_ptr<sync::webhook_store> webhooks;
    } dbs_;
};

void server::impl::spawn(net::awaitable<void> aw, const char* what) {
    net::co_spawn(strand_, std::move(aw), [what](const std::exception_ptr& e) {
        if (!e)
            return;
        // Request handling does not throw; reaching this is a bug, reported, not fatal: the
        // connection is gone and the server keeps serving.
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& ex) {
            log::error("api: task failed", {{"task", what}, {"error", ex.what()}});
        } catch (...) {
            log::error("api: task failed", {{"task", what}, {"error", "unknown exception"}});
        }
    });
}

void server::impl::start() {
    if (started_)
        throw std::logic_error("api server started twice");
    const auto hp = split_listen(opt_.listen);
    if (!hp)
        throw std::runtime_error("api.listen: '" + opt_.listen + "' is not host:port");
    error_code ec;
    tcp::endpoint ep;
    const auto addr = net::ip::make_address(hp->first == "localhost" ? "127.0.0.1" : hp->first, ec);
    if (!ec) {
        ep = tcp::endpoint(addr, hp->second);
    } else {
        tcp::resolver resolver(strand_);
        const auto results = resolver.resolve(hp->first, std::to_string(hp->second), ec);
        if (ec || results.empty())
            throw std::runtime_error("api.listen: cannot resolve " + hp->first + ": " +
                                     (ec ? ec.message() : "no address"));
        ep = results.begin()->endpoint();
    }
    const auto fail = [&](const char* step) {
        throw std::runtime_error("api.listen " + opt_.listen + ": " + step + ": " + ec.message());
    };
    acceptor_.open(ep.protocol(), ec);
    if (ec)
        fail("open");
    acceptor_.set_option(net::socket_base::reuse_address(true), ec);
    if (ec)
        fail("set SO_REUSEADDR");
    acceptor_.bind(ep, ec);
    if (ec)
        fail("bind");
    acceptor_.listen(net::socket_base::max_listen_connections, ec);
    if (ec)
        fail("listen");
    port_ = acceptor_.local_endpoint(ec).port();
    started_ = true;
    log::info("api listening", {{"address", ep.address().to_string()}, {"port", port_.load()}});
    // The tasks are spawned from the strand, which owns all state they touch.
    net::post(strand_, [self = shared_from_this()] {
        if (self->stopping_)
            return;
        self->batcher_running_ = true;
        self->spawn(self->batcher(task_guard(self)), "batcher");
        self->spawn(self->accept_loop(task_guard(self)), "accept");
    });
}

// --- connections -----------------------------------------------------------------------------

net::awaitable<void> server::impl::accept_loop(task_guard g) {
    for (;;) {
        error_code ec;
        tcp::socket sock = co_await acceptor_.async_accept(net::redirect_error(use_aw, ec));
        if (stopping_ || !acceptor_.is_open()) {
            sock.close(ec);
            break;
        }
        if (ec) {
            // EMFILE, ENFILE, ENOBUFS...: back off instead of spinning on the error.
            log::warn("api: accept failed", {{"error", ec.message()}});
            net::steady_timer t(strand_);
            t.expires_after(std::chrono::milliseconds(100));
            co_await t.async_wait(net::redirect_error(use_aw, ec));
            continue;
        }
        sock.set_option(tcp::no_delay(true), ec);
        auto conn = std::make_shared<connection>(std::move(sock));
        if (sessions_ >= opt_.max_connections) {
            if (rejecting_ >= max_rejecting) {
                conn->stream.close();
                continue;
            }
            conn->rejected = true;
            spawn(reject(task_guard(shared_from_this(), conn)), "reject");
            continue;
        }
        spawn(session(task_guard(shared_from_this(), conn)), "session");
    }
    (void)g;
}

net::awaitable<void> server::impl::reject(task_guard g) {
    ++rejecting_;
    connection& c = g.conn();
    reply r = error_reply(http::status::service_unavailable, "too_many_connections",
                          "the server already has " + std::to_string(opt_.max_connections) +
                              " connections open; retry later");
    r.close = true;
    r.retry_after = 1;
    // Answered without reading the request: it may not even have arrived.
    co_await write_reply(c, 11, r, std::chrono::seconds(2));
    co_await linger_close(c);
    --rejecting_;
}

net::awaitable<void> server::impl::session(task_guard g) {
    connection& c = g.conn();
    // Holds at most one header plus what one read brings in; bodies go into the parser's string.
    beast::flat_buffer buffer(opt_.header_limit + std::size_t{64} * 1024);
    while (co_await serve_one(c, buffer)) {
    }
}

void server::impl::set_busy(connection& c, bool busy) {
    if (c.busy == busy)
        return;
    c.busy = busy;
    if (busy) {
        ++busy_;
    } else {
        --busy_;
        if (stopping_)
            state_changed_.cancel();
    }
}

net::awaitable<bool> server::impl::serve_one(connection& c, beast::flat_buffer& buffer) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(opt_.header_limit));
    // No body limit while reading the header: Beast would refuse an over-long Content-Length
    // before we know the route. The route's limit is set below, before the body is read.
    parser.body_limit(boost::none);

    error_code ec;
    c.stream.expires_after(opt_.idle_timeout);
    co_await http::async_read_header(c.stream, buffer, parser, net::redirect_error(use_aw, ec));
    const auto t0 = steady::now();
    if (ec) {
        reply r;
        if (ec == beast::error::timeout || is_transport_error(ec)) {
            // Idle or too slow (tcp_stream has closed the socket on the timeout, so there is no
            // way to send a 408), closed by the peer, reset, or closed by our shutdown.
            co_return false;
        } else if (ec == http::error::header_limit) {
            r = error_reply(http::status::request_header_fields_too_large, "headers_too_large",
                            "the request header is larger than " +
                                std::to_string(opt_.header_limit) + " bytes");
        } else {
            r = error_reply(http::status::bad_request, "bad_request",
                            "malformed HTTP request: " + ec.message());
        }
        // The stream is not at a message boundary any more: answer and close.
        set_busy(c, true);
        r.close = true;
        co_await write_reply(c, 11, r);
        finish_log(nullptr, "", r, t0);
        set_busy(c, false);
        co_await linger_close(c);
        co_return false;
    }

    set_busy(c, true);
    request& req = parser.get();
    const std::string_view path = target_path(req.target());
    const route rt = route_of(path);
    const bool has_body = parser.chunked() || parser.content_length().value_or(0) > 0;

    std::optional<reply> early = precheck(rt, req);
    bool body_unread = has_body;
    if (!early && has_body) {
        const std::size_t limit = takes_body(rt) ? opt_.body_limit : small_body_limit;
        if (parser.content_length() && *parser.content_length() > limit) {
            early =
                error_reply(http::status::payload_too_large, "body_too_large",
                            "the request body is larger than " + std::to_string(limit) + " bytes");
        } else {
            parser.body_limit(limit);
            if (beast::iequals(req[http::field::expect], "100-continue")) {
                http::response<http::empty_body> cont{http::status::continue_, req.version()};
                c.stream.expires_after(opt_.write_timeout);
                co_await http::async_write(c.stream, cont, net::redirect_error(use_aw, ec));
                if (ec) {
                    set_busy(c, false);
                    co_return false;
                }
            }
            c.stream.expires_after(opt_.read_timeout);
            co_await http::async_read(c.stream, buffer, parser, net::redirect_error(use_aw, ec));
            if (ec == http::error::body_limit) {
                early = error_reply(http::status::payload_too_large, "body_too_large",
                                    "the request body is larger than " + std::to_string(limit) +
                                        " bytes");
            } else if (ec == beast::error::timeout || (ec && is_transport_error(ec))) {
                // Too slow (the socket is already closed by the timeout) or gone.
                set_busy(c, false);
                co_return false;
            } else if (ec) {
                early = error_reply(http::status::bad_request, "bad_request",
                                    "malformed HTTP request body: " + ec.message());
            } else {
                body_unread = false;
            }
        }
    }

    reply r;
    if (early)
        r = std::move(*early);
    else
        r = co_await dispatch(rt, req);
    // Unread body bytes would be taken for the next request: close instead.
    if ((early && body_unread) || !req.keep_alive() || stopping_)
        r.close = true;
    const bool written = co_await write_reply(c, req.version() == 10 ? 10 : 11, r);
    finish_log(&req, path, r, t0);
    set_busy(c, false);
    if (!written)
        co_return false;
    if (r.close) {
        co_await linger_close(c);
        co_return false;
    }
    co_return true;
}

net::awaitable<bool> server::impl::write_reply(connection& c, unsigned version, const reply& r,
                                               std::optional<std::chrono::milliseconds> timeout) {
    // The response is formatted here and written as one buffer: Beast's serializer and its
    // composed write operations cost about as much as the rest of a small request's handling
    // (callgrind, intake_bench). The same header fields as a Beast response with these fields,
    // keep_alive() and prepare_payload() would carry, in the same order.
    std::string out;
    out.reserve(192 + r.body.size());
    out += version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ";
    out += std::to_string(static_cast<unsigned>(r.status));
    out += ' ';
    const auto reason = http::obsolete_reason(r.status);
    out.append(reason.data(), reason.size());
    out += "\r\nServer: speak4-sync\r\nContent-Type: ";
    out.append(r.content_type.data(), r.content_type.size());
    out += "\r\nCache-Control: no-store\r\n";
    if (!r.allow.empty()) {
        out += "Allow: ";
        out.append(r.allow.data(), r.allow.size());
        out += "\r\n";
    }
    if (r.www_authenticate)
        out += "WWW-Authenticate: Bearer\r\n";
    if (r.retry_after > 0)
        out += "Retry-After: " + std::to_string(r.retry_after) + "\r\n";
    // HTTP/1.1 keeps the connection unless told "close"; HTTP/1.0 closes it unless told
    // "keep-alive".
    if (version == 10 && !r.close)
        out += "Connection: keep-alive\r\n";
    else if (version != 10 && r.close)
        out += "Connection: close\r\n";
    out += "Content-Length: " + std::to_string(r.body.size()) + "\r\n\r\n";
    out += r.body;
    error_code ec;
    c.stream.expires_after(timeout.value_or(opt_.write_timeout));
    co_await net::async_write(c.stream, net::buffer(out), net::redirect_error(use_aw, ec));
    co_return !ec;
}

net::awaitable<void> server::impl::linger_close(connection& c) {
    // Closing a socket with unread input makes the kernel send a reset, which can destroy our
    // response before the client reads it (e.g. a 413 sent while the body is still arriving).
    // So: half-close, then read and discard for a bounded time and size, then close.
    error_code ec;
    c.stream.socket().shutdown(tcp::socket::shutdown_send, ec);
    std::array<char, 4096> scratch{};
    std::size_t total = 0;
    c.stream.expires_after(linger_time);
    while (!ec && total < linger_bytes && c.stream.socket().is_open()) {
        total += co_await c.stream.async_read_some(net::buffer(scratch),
                                                   net::redirect_error(use_aw, ec));
    }
    c.stream.close();
}

void server::impl::finish_log(const request* req, std::string_view path, const reply& r,
                              steady::time_point t0) {
    const int status = static_cast<int>(r.status);
    m_.http_requests_total.with({route_label(path), std::to_string(status)}).inc();
    if (!log::enabled(log::level::debug))
        return;
    const auto ms = std::chrono::duration<double, std::milli>(steady::now() - t0).count();
    // Never the query, headers or body: the path and the outcome only.
    log::debug("http", {{"method", req ? clip(req->method_string(), 16) : std::string("-")},
                        {"path", req ? clip(path) : std::string("-")},
                        {"status", status},
                        {"ms", std::round(ms * 10) / 10}});
}

// --- routing ---------------------------------------------------------------------------------

std::optional<reply> server::impl::precheck(route rt, const request& req) {
    if (stopping_ && rt != route::healthz) {
        if (rt == route::webhook) {
            // GHL retries a webhook only after a 429 (ghl-api.md §11); any other status loses it.
            reply r = error_reply(http::status::too_many_requests, "shutting_down",
                                  "the server is shutting down; retry later");
            r.retry_after = 60;
            return r;
        }
        return error_reply(http::status::service_unavailable, "shutting_down",
                           "the server is shutting down");
    }
    if (rt == route::none)
        return error_reply(http::status::not_found, "not_found",
                           "no such endpoint: " + clip(target_path(req.target())) +
                               " (try /v1/events, /v1/changes, /healthz, /metrics)");
    if (rt == route::webhook && !opt_.webhooks_enabled)
        return error_reply(http::status::not_found, "not_found",
                           "webhooks are disabled (webhooks.enabled = false)");

    if (rt == route::events || rt == route::changes) {
        reply r;
        if (opt_.api_token.empty()) {
            r = error_reply(http::status::unauthorized, "unauthorized",
                            "api.token_file is not set: the local API refuses /v1/* requests "
                            "until a token is configured");
        } else {
            const auto it = req.find(http::field::authorization);
            const auto token =
                it == req.end() ? std::nullopt : bearer_token(std::string_view(it->value()));
            if (!token) {
                r = error_reply(http::status::unauthorized, "unauthorized",
                                "missing 'Authorization: Bearer <token>' header");
            } else if (!constant_time_equal(*token, opt_.api_token.reveal())) {
                r = error_reply(http::status::unauthorized, "unauthorized", "wrong bearer token");
            } else {
                r.status = http::status::ok;
            }
        }
        if (r.status == http::status::unauthorized) {
            r.www_authenticate = true;
            return r;
        }
    }

    const auto method = req.method();
    const bool post_route = takes_body(rt);
    if (post_route ? method != http::verb::post : method != http::verb::get) {
        reply r = error_reply(http::status::method_not_allowed, "method_not_allowed",
                              "method " + clip(req.method_string(), 16) + " is not allowed on " +
                                  clip(target_path(req.target())) + " (use " +
                                  (post_route ? "POST" : "GET") + ")");
        r.allow = post_route ? "POST" : "GET";
        return r;
    }
    if (rt == route::changes || rt == route::healthz || rt == route::metrics) {
        return std::nullopt;
    }
    if (req.target() != target_path(req.target()) && rt == route::events)
        return error_reply(http::status::bad_request, "bad_query",
                           "/v1/events takes no query parameters");
    return std::nullopt;
}

net::awaitable<reply> server::impl::dispatch(route rt, request& req) {
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
    case route::none:
        break;
    }
    co_return error_reply(http::status::not_found, "not_found", "no such endpoint");
}

// --- POST /v1/events -------------------------------------------------------------------------

net::awaitable<reply> server::impl::post_event(request& req) {
    auto ev = sync::parse_event(req.body(), opt_.field_map);
    if (!ev) {
        m_.events_total.with({"invalid"}).inc();
        // The one trace a rejected event leaves (DESIGN §3): never its body.
        log::error("event rejected", {{"field", ev.error().field}, {"error", ev.error().message}});
        co_return error_reply(http::status::bad_request, "invalid_event", ev.error().message,
                              ev.error().field);
    }
    const std::optional<std::string> event_id = ev->event_id;
    const std::string type(sync::to_string(ev->type));
    auto item = std::make_shared<pending_event>(strand_);
    item->ev.ev = std::move(*ev);
    item->ev.body = std::move(req.body());
    co_await submit(item);
    sync::intake_outcome out = std::move(*item->outcome);
    if (!out) {
        const auto& err = out.error();
        bj::object f{{"type", type}, {"field", err.field}, {"error", err.message}};
        if (event_id)
            f["event_id"] = *event_id;
        if (err.what == sync::intake_error::kind::io) {
            m_.events_total.with({"error"}).inc();
            log::error("event not stored: database error", f);
            reply r = error_reply(http::status::service_unavailable, "database_error",
                                  "the event was not stored: " + err.message);
            r.retry_after = 1;
            co_return r;
        }
        m_.events_total.with({"invalid"}).inc();
        log::error("event rejected", f);
        co_return error_reply(http::status::bad_request, "invalid_event", err.message, err.field);
    }
    if (out->duplicate) {
        m_.events_total.with({"duplicate"}).inc();
        co_return json_reply(http::status::ok, bj::object{{"accepted", true}, {"duplicate", true}});
    }
    m_.events_total.with({"accepted"}).inc();
    if (log::enabled(log::level::debug)) {
        bj::object f{{"type", type}, {"seq", out->seq}, {"inbox_id", out->inbox_id}};
        if (event_id)
            f["event_id"] = *event_id;
        log::debug("event accepted", f);
    }
    co_return json_reply(http::status::accepted, bj::object{{"accepted", true}, {"seq", out->seq}});
}

net::awaitable<void> server::impl::submit(std::shared_ptr<pending_event> item) {
    if (!batcher_running_) {
        item->outcome =
            sync::intake_error{sync::intake_error::kind::io, "", "the server is shutting down"};
        co_return;
    }
    item->done.expires_at(steady::time_point::max());
    queue_.push_back(item);
    batcher_wake_.cancel();
    while (!item->outcome) {
        error_code ec;
        co_await item->done.async_wait(net::redirect_error(use_aw, ec));
    }
}

net::awaitable<void> server::impl::batcher(task_guard g) {
    // Group commit: while one batch is being committed, new events queue up and go together in
    // the next one — one transaction and one fsync for all of them.
    for (;;) {
        if (queue_.empty()) {
            if (stopping_)
                break;
            error_code ec;
            batcher_wake_.expires_at(steady::time_point::max());
            co_await batcher_wake_.async_wait(net::redirect_error(use_aw, ec));
            continue;
        }
        std::vector<std::shared_ptr<pending_event>> batch;
        std::vector<sync::raw_event> events;
        while (!queue_.empty() && batch.size() < opt_.max_batch) {
            batch.push_back(std::move(queue_.front()));
            queue_.pop_front();
            events.push_back(std::move(batch.back()->ev));
        }
        std::vector<sync::intake_outcome> outcomes;
        std::string failure;
        try {
            outcomes = co_await db_.run([this, &events](SQLite::Database& db) {
                if (!dbs_.intake)
                    dbs_.intake = std::make_unique<sync::intake>(db, clock_);
                auto out = dbs_.intake->accept_batch(events);
                reset_busy_statements(db);
                // After a database failure start afresh: a statement whose step failed reports
                // that error again on its next reset.
                for (const auto& o : out)
                    if (!o && o.error().what == sync::intake_error::kind::io) {
                        dbs_.intake.reset();
                        break;
                    }
                return out;
            });
        } catch (const std::exception& e) {
            failure = e.what();
        }
        if (outcomes.size() != batch.size()) {
            if (failure.empty())
                failure = "intake returned " + std::to_string(outcomes.size()) + " outcomes for " +
                          std::to_string(batch.size()) + " events";
            outcomes.assign(batch.size(), sync::intake_outcome(sync::intake_error{
                                              sync::intake_error::kind::io, "", failure}));
        }
        m_.event_batches_total.inc();
        m_.event_batch_size.get().observe(static_cast<double>(batch.size()));
        bool changed = false;
        bool io_failed = false;
        for (std::size_t i = 0; i < batch.size(); ++i) {
            if (outcomes[i] && !outcomes[i]->duplicate)
                changed = true;
            if (!outcomes[i] && outcomes[i].error().what == sync::intake_error::kind::io) {
                io_failed = true;
                failure = outcomes[i].error().message;
            }
            batch[i]->outcome = std::move(outcomes[i]);
            batch[i]->done.cancel();
        }
        if (io_failed)
            db_failed(failure);
        else
            db_ok();
        if (changed)
            changes_committed();
    }
    batcher_running_ = false;
    (void)g;
}

// --- GET /v1/changes -------------------------------------------------------------------------

net::awaitable<reply> server::impl::get_changes(const request& req) {
    const auto params = parse_query(req.target());
    if (!params)
        co_return error_reply(http::status::bad_request, "bad_query", params.error());
    long long since = 0;
    long long limit = default_changes_limit;
    long long wait = 0;
    bool seen_since = false, seen_limit = false, seen_wait = false;
    for (const auto& p : *params) {
        const auto once = [&](bool& seen) {
            const bool dup = seen;
            seen = true;
            return !dup;
        };
        if (p.name == "since") {
            if (!once(seen_since))
                co_return error_reply(http::status::bad_request, "bad_query",
                                      "since is given twice", "since");
            const auto v = parse_non_negative(p.value, std::numeric_limits<long long>::max());
            if (!v)
                co_return error_reply(http::status::bad_request, "bad_query",
                                      "since must be a non-negative integer (a change seq)",
                                      "since");
            since = *v;
        } else if (p.name == "limit") {
            if (!once(seen_limit))
                co_return error_reply(http::status::bad_request, "bad_query",
                                      "limit is given twice", "limit");
            const auto v = parse_non_negative(p.value, max_changes_limit);
            if (!v || *v == 0)
                co_return error_reply(http::status::bad_request, "bad_query",
                                      "limit must be an integer from 1 to " +
                                          std::to_string(max_changes_limit),
                                      "limit");
            limit = *v;
        } else if (p.name == "wait") {
            if (!once(seen_wait))
                co_return error_reply(http::status::bad_request, "bad_query", "wait is given twice",
                                      "wait");
            const auto v = parse_non_negative(p.value, opt_.max_wait.count());
            if (!v)
                co_return error_reply(http::status::bad_request, "bad_query",
                                      "wait must be an integer number of seconds from 0 to " +
                                          std::to_string(opt_.max_wait.count()),
                                      "wait");
            wait = *v;
        } else {
            co_return error_reply(http::status::bad_request, "bad_query",
                                  "unknown query parameter '" + clip(p.name, 64) +
                                      "' (expected since, limit, wait)",
                                  clip(p.name, 64));
        }
    }

    const auto deadline = steady::now() + std::chrono::seconds(wait);
    for (;;) {
        const std::uint64_t generation = change_generation_;
        auto page = co_await query_changes(since, limit);
        if (!page) {
            reply r =
                error_reply(http::status::service_unavailable, "database_error", page.error());
            r.retry_after = 1;
            co_return r;
        }
        if (!page->rows.empty() || wait == 0 || stopping_ || steady::now() >= deadline) {
            bj::array rows;
            rows.reserve(page->rows.size());
            for (const auto& c : page->rows)
                rows.push_back(bj::object{{"seq", c.seq},
                                          {"entity", c.entity},
                                          {"entity_id", c.entity_id},
                                          {"kind", c.kind},
                                          {"source", c.source},
                                          {"ts", c.ts},
                                          {"speak4_id", opt_json(c.speak4_id)},
                                          {"ghl_id", opt_json(c.ghl_id)}});
            const long long last = page->rows.empty() ? since : page->rows.back().seq;
            co_return json_reply(
                http::status::ok,
                bj::object{{"changes", std::move(rows)}, {"last_seq", last}, {"more", page->more}});
        }
        if (generation != change_generation_)
            continue; // committed while we were querying: look again
        // Long-poll: a timer on the strand, no thread and no database connection held. It is
        // cancelled by changes_committed() (or by stop()), or expires at the deadline.
        net::steady_timer timer(strand_);
        timer.expires_at(deadline);
        change_waiters_.push_back(&timer);
        const auto self = std::prev(change_waiters_.end());
        error_code ec;
        co_await timer.async_wait(net::redirect_error(use_aw, ec));
        change_waiters_.erase(self);
    }
}

net::awaitable<boost::system::result<changes_page, std::string>>
server::impl::query_changes(long long since, long long limit) {
    using R = boost::system::result<changes_page, std::string>;
    try {
        changes_page page = co_await db_.run(read_job([since, limit](store::statement_cache& st) {
            auto& q = st.get(
                "SELECT c.seq, c.entity, c.entity_id, c.kind, c.source, c.ts, "
                "  CASE c.entity WHEN 'contact' THEN ct.speak4_id WHEN 'task' THEN t.speak4_id "
                "    WHEN 'note' THEN n.speak4_id END, "
                "  CASE c.entity WHEN 'contact' THEN ct.ghl_id WHEN 'task' THEN t.ghl_id "
                "    WHEN 'note' THEN n.ghl_id WHEN 'appointment' THEN a.ghl_id END "
                "FROM changes c "
                "LEFT JOIN contacts ct ON c.entity = 'contact' AND ct.id = c.entity_id "
                "LEFT JOIN tasks t ON c.entity = 'task' AND t.id = c.entity_id "
                "LEFT JOIN notes n ON c.entity = 'note' AND n.id = c.entity_id "
                "LEFT JOIN appointments a ON c.entity = 'appointment' AND a.id = c.entity_id "
                "WHERE c.seq > ? ORDER BY c.seq LIMIT ?");
            q.bind(1, static_cast<std::int64_t>(since));
            q.bind(2, static_cast<std::int64_t>(limit + 1)); // one more: is there a next page?
            changes_page out;
            while (q.executeStep()) {
                if (static_cast<long long>(out.rows.size()) == limit) {
                    out.more = true;
                    break;
                }
                change_row r;
                r.seq = q.getColumn(0).getInt64();
                r.entity = q.getColumn(1).getString();
                r.entity_id = q.getColumn(2).getInt64();
                r.kind = q.getColumn(3).getString();
                r.source = q.getColumn(4).getString();
                r.ts = q.getColumn(5).getString();
                if (!q.getColumn(6).isNull())
                    r.speak4_id = q.getColumn(6).getString();
                if (!q.getColumn(7).isNull())
                    r.ghl_id = q.getColumn(7).getString();
                out.rows.push_back(std::move(r));
            }
            q.reset();
            return out;
        }));
        db_ok();
        co_return page;
    } catch (const std::exception& e) {
        db_failed(e.what());
        co_return R(boost::system::in_place_error,
                    std::string("reading the change feed failed: ") + e.what());
    }
}

void server::impl::changes_committed() {
    ++change_generation_;
    for (auto* t : change_waiters_)
        t->cancel();
}

void server::impl::db_failed(const std::string& what) {
    if (!db_error_)
        log::error("api: database error", {{"error", what}});
    db_error_ = what;
}

// --- GET /healthz, GET /metrics --------------------------------------------------------------

reply server::impl::healthz() {
    if (stopping_) {
        reply r;
        r.status = http::status::service_unavailable;
        r.body = bj::serialize(
            bj::object{{"status", "unhealthy"},
                       {"reason", "shutting down"},
                       {"error", bj::object{{"code", "shutting_down"},
                                            {"message", "the server is shutting down"}}}});
        return r;
    }
    health h;
    if (opt_.health_check) {
        try {
            h = opt_.health_check();
        } catch (const std::exception& e) {
            h = {false, std::string("health check failed: ") + e.what(), {}};
        }
    }
    if (db_error_ && h.ok) {
        h.ok = false;
        h.reason = "database error: " + *db_error_;
    }
    bj::object body = std::move(h.detail);
    body["status"] = h.ok ? "ok" : "unhealthy";
    if (h.ok)
        body.erase("reason");
    else
        body["reason"] = h.reason.empty() ? std::string("unhealthy") : h.reason;
    return json_reply(h.ok ? http::status::ok : http::status::service_unavailable, body);
}

net::awaitable<reply> server::impl::get_metrics() {
    // Gauges that live in the database are read at scrape time, through the database thread.
    try {
        const scrape_values v = co_await db_.run(read_job([](store::statement_cache& st) {
            scrape_values out;
            auto& q = st.get("SELECT state, COUNT(*) FROM outbox GROUP BY state");
            while (q.executeStep())
                out.outbox[q.getColumn(0).getString()] = q.getColumn(1).getInt64();
            q.reset();
            auto& s = st.get("SELECT COALESCE(MAX(seq), 0) FROM changes");
            if (s.executeStep())
                out.last_seq = s.getColumn(0).getInt64();
            s.reset();
            return out;
        }));
        for (auto state : {"pending", "inflight", "done", "dead"}) {
            const auto it = v.outbox.find(state);
            m_.outbox.with({state}).set(it == v.outbox.end() ? 0.0
                                                             : static_cast<double>(it->second));
        }
        const auto dead = v.outbox.find("dead");
        m_.dead_letters.set(dead == v.outbox.end() ? 0.0 : static_cast<double>(dead->second));
        m_.changes_last_seq.set(static_cast<double>(v.last_seq));
        db_ok();
    } catch (const std::exception& e) {
        // Render what we have: a scrape must not fail because one gauge could not be refreshed.
        db_failed(e.what());
    }
    reply r;
    r.content_type = metrics::content_type;
    r.body = m_.reg.render();
    co_return r;
}

// --- POST /webhooks/ghl ----------------------------------------------------------------------

net::awaitable<reply> server::impl::post_webhook(const request& req) {
    const auto header = [&](std::string_view name) -> std::optional<std::string_view> {
        const auto it = req.find(name);
        if (it == req.end())
            return std::nullopt;
        return std::string_view(it->value());
    };
    const auto verdict = verify_webhook_signature(
        opt_.signature_keys, req.body(), header("x-ghl-signature"), header("x-wh-signature"));
    if (!verdict.ok()) {
        m_.webhooks_total.with({"bad_signature"}).inc();
        log::warn("webhook rejected", {{"reason", describe(verdict)}});
        co_return error_reply(http::status::unauthorized, "invalid_signature", describe(verdict));
    }
    const auto parsed = json::parse(req.body(), {opt_.body_limit, 32});
    if (!parsed || !parsed->is_object()) {
        m_.webhooks_total.with({"invalid"}).inc();
        const std::string why =
            parsed ? "the body is not a JSON object" : "the body is not JSON: " + parsed.error();
        log::warn("webhook rejected", {{"reason", why}});
        co_return error_reply(http::status::bad_request, "invalid_webhook", why);
    }
    auto info = sync::check_webhook(parsed->get_object(), clock_.now(), opt_.webhook_max_age);
    if (!info) {
        const auto& err = info.error();
        const bool stale = err.what == sync::webhook_error::kind::stale;
        m_.webhooks_total.with({stale ? "stale" : "invalid"}).inc();
        log::warn("webhook rejected", {{"reason", err.message}, {"field", err.field}});
        if (stale)
            co_return error_reply(http::status::unauthorized, "stale_webhook", err.message,
                                  err.field);
        co_return error_reply(http::status::bad_request, "invalid_webhook", err.message, err.field);
    }
    boost::system::result<sync::webhook_applied, sync::webhook_error> applied =
        sync::webhook_error{sync::webhook_error::kind::io, "", "not applied"};
    try {
        applied = co_await db_.run([this, &info](SQLite::Database& db) {
            if (!dbs_.webhooks)
                dbs_.webhooks =
                    std::make_unique<sync::webhook_store>(db, clock_, opt_.webhook_max_age);
            auto out = dbs_.webhooks->apply(*info);
            reset_busy_statements(db);
            return out;
        });
    } catch (const std::exception& e) {
        applied = sync::webhook_error{sync::webhook_error::kind::io, "", e.what()};
    }
    if (!applied) {
        const auto& err = applied.error();
        if (err.what == sync::webhook_error::kind::replayed) {
            m_.webhooks_total.with({"replayed"}).inc();
            log::warn("webhook rejected", {{"reason", err.message}, {"type", info->type}});
            co_return error_reply(http::status::conflict, "replayed_webhook", err.message,
                                  err.field);
        }
        m_.webhooks_total.with({"error"}).inc();
        db_failed(err.message);
        // 429, not 503: GHL retries a webhook only after a 429 (ghl-api.md §11).
        reply r = error_reply(http::status::too_many_requests, "database_error", err.message);
        r.retry_after = 60;
        co_return r;
    }
    db_ok();
    m_.webhooks_total.with({info->contact_ghl_id.empty() ? "ignored" : "applied"}).inc();
    bj::object f{{"type", info->type}, {"webhook_id", info->webhook_id}};
    if (applied->contact_id)
        f["contact_id"] = *applied->contact_id;
    if (applied->pull_outbox_id)
        f["outbox_id"] = *applied->pull_outbox_id;
    f["coalesced"] = applied->coalesced;
    log::info("webhook", f);
    if (applied->seq > 0)
        changes_committed();
    co_return json_reply(http::status::ok, bj::object{{"ok", true}});
}

// --- shutdown --------------------------------------------------------------------------------

void server::impl::stop(std::chrono::milliseconds grace, std::function<void()> on_stopped) {
    if (on_stopped) {
        if (stopped_) {
            on_stopped();
            return;
        }
        on_stopped_.push_back(std::move(on_stopped));
    }
    if (stopping_)
        return;
    stopping_ = true;
    log::info("api stopping", {{"grace_ms", static_cast<long long>(grace.count())},
                               {"in_flight", static_cast<long long>(busy_)}});
    error_code ec;
    acceptor_.close(ec);
    batcher_wake_.cancel();
    for (auto* t : change_waiters_)
        t->cancel();
    net::co_spawn(strand_, shutdown(shared_from_this(), grace), [](const std::exception_ptr& e) {
        if (e)
            log::error("api: shutdown failed");
    });
}

net::awaitable<void> server::impl::shutdown(std::shared_ptr<impl> self,
                                            std::chrono::milliseconds grace) {
    // Stage 1: requests in flight finish (their responses say Connection: close).
    const auto deadline = steady::now() + grace;
    while (busy_ > 0 && steady::now() < deadline) {
        error_code ec;
        state_changed_.expires_at(deadline);
        co_await state_changed_.async_wait(net::redirect_error(use_aw, ec));
    }
    if (busy_ > 0)
        log::warn("api: grace period over, closing connections with requests in flight",
                  {{"in_flight", static_cast<long long>(busy_)}});
    // Stage 2: close every connection; coroutines waiting on the database finish their job and
    // then find their socket closed.
    for (auto& [id, c] : connections_) {
        error_code ec;
        c->stream.socket().shutdown(tcp::socket::shutdown_both, ec);
        c->stream.close();
    }
    while (coroutines_ > 0) {
        error_code ec;
        state_changed_.expires_at(steady::time_point::max());
        co_await state_changed_.async_wait(net::redirect_error(use_aw, ec));
    }
    // The statements of our database-side objects are finalized on the database thread.
    try {
        co_await db_.run([this](SQLite::Database&) { dbs_ = db_side{}; });
    } catch (const std::exception& e) {
        log::warn("api: releasing database statements failed", {{"error", e.what()}});
    }
    stopped_ = true;
    log::info("api stopped");
    (void)self; // kept the server's state alive until here
    auto callbacks = std::move(on_stopped_);
    for (auto& cb : callbacks)
        cb();
}

// --- server ----------------------------------------------------------------------------------

server::server(const boost::asio::any_io_executor& executor, server_options options,
               store::db_worker& db, metrics::daemon_metrics& metrics, const clock& clk)
    : impl_(std::make_shared<impl>(executor, std::move(options), db, metrics, clk)) {}

server::~server() {
    if (!impl_->stopped_)
        impl_->orphaned_ = true;
}

void server::start() {
    impl_->start();
}

unsigned short server::port() const {
    return impl_->port_.load();
}

void server::stop(std::chrono::milliseconds grace, std::function<void()> on_stopped) {
    boost::asio::post(impl_->strand(), [self = impl_, grace, cb = std::move(on_stopped)]() mutable {
        self->stop(grace, std::move(cb));
    });
}

bool server::stopped() const {
    return impl_->stopped_.load();
}

void server::notify_changes() {
    impl_->notify_changes();
}

} // namespace speak4::api
