// The local HTTP API. Modelled on Beast's advanced server-flex-awaitable example: one coroutine
// per connection, a deadline on the stream before every phase, header and body limits on every
// read, and a two-stage shutdown (stop accepting and let requests in flight finish, then close).
//
// All state of the server lives on one strand; SQLite work goes through the db_worker, whose
// jobs run on the database thread while the coroutine waiting for them is suspended. This file is
// the transport (connections, parsing, limits, writing, shutdown) and the one translation unit of
// the server that includes Beast; the routes and their handlers are in routes.hpp.

#include "api/server.hpp"

#include "api/request_util.hpp"
#include "api/routes.hpp"
#include "core/log.hpp"

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
#include <cmath>
#include <map>

namespace speak4::api {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace bj = boost::json;
using tcp = net::ip::tcp;
using boost::system::error_code;
using steady = std::chrono::steady_clock;

constexpr auto use_aw = net::use_awaitable;

// GET requests have no use for a body; one is read (and ignored) up to this size.
constexpr std::size_t small_body_limit = std::size_t{16} * 1024;
// Connections over max_connections are answered by at most this many small coroutines at once;
// beyond that they are closed without a word.
constexpr std::size_t max_rejecting = 64;
// What a closing connection still reads and discards (see linger_close).
constexpr std::size_t linger_bytes = std::size_t{1024} * 1024;
constexpr std::chrono::seconds linger_time{1};

using beast_request = http::request<http::string_body>;

/// A failure of the transport rather than of the request: nothing to answer, just close.
bool is_transport_error(const error_code& ec) {
    return ec.category() == boost::system::system_category() ||
           ec.category() == net::error::get_misc_category() ||
           ec.category() == net::error::get_netdb_category() ||
           ec == net::error::operation_aborted || ec == http::error::end_of_stream ||
           ec == http::error::partial_message;
}

/// The handlers' view of a Beast request's header fields.
class beast_headers final : public header_lookup {
public:
    explicit beast_headers(const beast_request& req)
        : req_(req) {}
    std::optional<std::string_view> get(std::string_view name) const override {
        const auto it = req_.find(name);
        if (it == req_.end())
            return std::nullopt;
        return std::string_view(it->value());
    }

private:
    const beast_request& req_;
};

api::method method_of(http::verb v) {
    switch (v) {
    case http::verb::get:
        return api::method::get;
    case http::verb::post:
        return api::method::post;
    default:
        return api::method::other;
    }
}

} // namespace

// --- the server ------------------------------------------------------------------------------

class server::impl : public std::enable_shared_from_this<impl> {
public:
    impl(const net::any_io_executor& ex, server_options opt, store::db_worker& db,
         metrics::daemon_metrics& m, const clock& clk)
        : strand_(net::make_strand(ex))
        , opt_(std::move(opt))
        , m_(m)
        , acceptor_(strand_)
        , state_changed_(strand_)
        , routes_(strand_, opt_, db, m, clk) {}

    void start();
    void stop(std::chrono::milliseconds grace, std::function<void()> on_stopped);
    const net::any_io_executor& strand() const { return strand_; }
    void notify_changes() {
        net::post(strand_, [self = shared_from_this()] { self->routes_.changes_committed(); });
    }
    void set_field_map(sync::field_map map, sync::custom_field_types types) {
        // routes_ reads opt_ on the strand: replace it there.
        net::post(strand_, [self = shared_from_this(), map = std::move(map),
                            types = std::move(types)]() mutable {
            self->opt_.field_map = std::move(map);
            self->opt_.custom_fields = std::move(types);
        });
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

    void spawn(net::awaitable<void> aw, const char* what);
    net::awaitable<void> accept_loop(task_guard g);
    net::awaitable<void> session(task_guard g);
    net::awaitable<void> reject(task_guard g);
    net::awaitable<bool> serve_one(connection& c, beast::flat_buffer& buffer);
    net::awaitable<bool> write_reply(connection& c, unsigned version, const reply& r,
                                     std::optional<std::chrono::milliseconds> timeout = {});
    net::awaitable<void> linger_close(connection& c);
    void set_busy(connection& c, bool busy);
    void finish_log(const beast_request* req, std::string_view path, const reply& r,
                    steady::time_point t0);

    net::awaitable<void> batcher(task_guard g);

    net::awaitable<void> shutdown(std::shared_ptr<impl> self, std::chrono::milliseconds grace);

    net::any_io_executor strand_;
    server_options opt_;
    metrics::daemon_metrics& m_;
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

    routes routes_; // the handlers and their state (also on strand_)
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
        self->spawn(self->batcher(task_guard(self)), "batcher");
        self->spawn(self->accept_loop(task_guard(self)), "accept");
    });
}

net::awaitable<void> server::impl::batcher(task_guard g) {
    co_await routes_.run_batcher();
    (void)g;
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
    reply r = error_reply(status::service_unavailable, "too_many_connections",
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
            r = error_reply(status::request_header_fields_too_large, "headers_too_large",
                            "the request header is larger than " +
                                std::to_string(opt_.header_limit) + " bytes");
        } else {
            r = error_reply(status::bad_request, "bad_request",
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
    beast_request& req = parser.get();
    const beast_headers headers(req);
    request view;
    view.method = method_of(req.method());
    view.method_name = std::string_view(req.method_string());
    view.target = std::string_view(req.target());
    view.headers = &headers;
    const std::string_view path = target_path(view.target);
    const route rt = route_of(path);
    const bool has_body = parser.chunked() || parser.content_length().value_or(0) > 0;

    std::optional<reply> early = routes_.precheck(rt, view);
    bool body_unread = has_body;
    if (!early && has_body) {
        const std::size_t limit = takes_body(rt) ? opt_.body_limit : small_body_limit;
        if (parser.content_length() && *parser.content_length() > limit) {
            early =
                error_reply(status::payload_too_large, "body_too_large",
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
                early = error_reply(status::payload_too_large, "body_too_large",
                                    "the request body is larger than " + std::to_string(limit) +
                                        " bytes");
            } else if (ec == beast::error::timeout || (ec && is_transport_error(ec))) {
                // Too slow (the socket is already closed by the timeout) or gone.
                set_busy(c, false);
                co_return false;
            } else if (ec) {
                early = error_reply(status::bad_request, "bad_request",
                                    "malformed HTTP request body: " + ec.message());
            } else {
                body_unread = false;
            }
        }
    }

    reply r;
    if (early) {
        r = std::move(*early);
    } else {
        if (takes_body(rt))
            view.body = std::move(req.body());
        r = co_await routes_.dispatch(rt, view);
    }
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
    const auto reason = http::obsolete_reason(static_cast<http::status>(r.status));
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
    out.append(r.extra_headers.data(), r.extra_headers.size());
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

void server::impl::finish_log(const beast_request* req, std::string_view path, const reply& r,
                              steady::time_point t0) {
    const int code = static_cast<int>(r.status);
    m_.http_requests_total.with({route_label(path), std::to_string(code)}).inc();
    if (!log::enabled(log::level::debug))
        return;
    const auto ms = std::chrono::duration<double, std::milli>(steady::now() - t0).count();
    // Never the query, headers or body: the path and the outcome only.
    log::debug("http", {{"method", req ? clip(req->method_string(), 16) : std::string("-")},
                        {"path", req ? clip(path) : std::string("-")},
                        {"status", code},
                        {"ms", std::round(ms * 10) / 10}});
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
    routes_.begin_stop();
    log::info("api stopping", {{"grace_ms", static_cast<long long>(grace.count())},
                               {"in_flight", static_cast<long long>(busy_)}});
    error_code ec;
    acceptor_.close(ec);
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
    co_await routes_.release_database();
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

void server::set_field_map(sync::field_map map, sync::custom_field_types types) {
    impl_->set_field_map(std::move(map), std::move(types));
}

} // namespace speak4::api
