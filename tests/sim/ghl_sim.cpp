// ghl-sim: the network side. One coroutine per connection, each on its own strand; the state
// and every decision live in detail::core (sim_core.cpp), which is Beast-free.
//
// Shutdown is two-stage (as in Beast's server-flex-awaitable example): stop() closes the
// acceptor and every socket on its strand, waits (bounded) for the coroutines to finish, then
// stops the io_context and joins its threads, so it returns promptly even while "timeout"
// faults hold connections open.

#include "ghl_sim.hpp"

#include "sim_core.hpp"

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <exception>
#include <stdexcept>
#include <thread>
#include <tuple>
#include <type_traits>
#include <unordered_map>

namespace speak4::sim {

namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using namespace std::chrono_literals;

constexpr auto use_nothrow = net::as_tuple(net::use_awaitable);
constexpr std::size_t header_limit = std::size_t{16} * 1024;
constexpr auto idle_timeout = 60s; // waiting for the next request on a kept-alive connection
constexpr auto write_timeout = 30s;
constexpr auto handshake_timeout = 10s;

/// Something stop() can close: a connection or the webhook sender. close() runs on `strand`.
struct closable {
    explicit closable(net::any_io_executor ex)
        : strand(std::move(ex)) {}
    virtual ~closable() = default;
    virtual void close() = 0;
    net::any_io_executor strand;
};

template <class Stream>
struct connection final : closable {
    connection(net::any_io_executor ex, Stream s)
        : closable(ex)
        , stream(std::move(s))
        , timer(ex) {}
    void close() override {
        beast::error_code ec;
        beast::get_lowest_layer(stream).socket().close(ec);
        timer.cancel();
    }
    Stream stream;
    net::steady_timer timer;
    beast::flat_buffer buffer;
};

struct webhook_sender final : closable {
    explicit webhook_sender(const net::any_io_executor& ex)
        : closable(ex)
        , wake(ex)
        , retry(ex) {}
    void close() override {
        wake.cancel();
        retry.cancel();
        if (stream) {
            stream->close();
        }
    }
    net::steady_timer wake;  // idle: waits for work (cancelled to notify)
    net::steady_timer retry; // between 429 retries
    std::optional<beast::tcp_stream> stream;
};

struct url_parts {
    std::string host;
    std::string port;
    std::string target;
};

std::optional<url_parts> parse_http_url(std::string_view url) {
    constexpr std::string_view scheme = "http://";
    if (url.substr(0, scheme.size()) != scheme) {
        return std::nullopt;
    }
    url.remove_prefix(scheme.size());
    auto slash = url.find('/');
    std::string_view authority = url.substr(0, slash);
    url_parts p;
    p.target = slash == std::string_view::npos ? "/" : std::string(url.substr(slash));
    auto colon = authority.rfind(':');
    if (colon == std::string_view::npos) {
        p.host = std::string(authority);
        p.port = "80";
    } else {
        p.host = std::string(authority.substr(0, colon));
        p.port = std::string(authority.substr(colon + 1));
    }
    if (p.host.empty()) {
        return std::nullopt;
    }
    return p;
}

std::string nest_error(int status, const char* message, const char* error) {
    return "{\"statusCode\":" + std::to_string(status) + ",\"message\":\"" + message +
           "\",\"error\":\"" + error + "\"}";
}

} // namespace

struct server::impl {
    explicit impl(options o)
        : opt(std::move(o)) {}

    options opt;
    test_pki pki_used;
    std::unique_ptr<detail::core> core;

    // Declared before the io_context: coroutine frames destroyed with it still touch these.
    std::mutex mutex; // guards conns, next_conn, stopping, started, stopped, webhook queue
    std::condition_variable idle_cv;
    std::unordered_map<std::uint64_t, std::weak_ptr<closable>> conns;
    std::uint64_t next_conn = 0;
    int active = 0; // live coroutines
    bool started = false;
    bool stopping = false;
    std::deque<detail::webhook_delivery> webhook_queue;
    std::optional<ssl::context> tls;

    net::io_context ioc{2};
    std::optional<tcp::acceptor> acceptor;
    std::shared_ptr<webhook_sender> sender;
    std::vector<std::thread> threads;
    std::uint16_t bound_port = 0;
    std::string url;

    // --- coroutine bookkeeping ---
    struct active_guard {
        impl& self;
        explicit active_guard(impl& s)
            : self(s) {}
        ~active_guard() {
            std::lock_guard lock(self.mutex);
            if (--self.active == 0) {
                self.idle_cv.notify_all();
            }
        }
        active_guard(const active_guard&) = delete;
        active_guard& operator=(const active_guard&) = delete;
    };

    /// Counts a coroutine before it is spawned (so stop() sees it even before it runs).
    bool enter() {
        std::lock_guard lock(mutex);
        if (stopping) {
            return false;
        }
        ++active;
        return true;
    }

    void spawn(const net::any_io_executor& ex, net::awaitable<void> aw) {
        net::co_spawn(ex, std::move(aw), [](const std::exception_ptr& e) {
            if (e) {
                try {
                    std::rethrow_exception(e);
                } catch (const std::exception& ex) {
                    std::fprintf(stderr, "ghl-sim: coroutine failed: %s\n", ex.what());
                }
            }
        });
    }

    std::uint64_t add_conn(const std::shared_ptr<closable>& c) {
        std::lock_guard lock(mutex);
        auto id = ++next_conn;
        conns.emplace(id, c);
        return id;
    }

    void remove_conn(std::uint64_t id) {
        std::lock_guard lock(mutex);
        conns.erase(id);
    }

    // --- connections ---
    template <class Stream>
    net::awaitable<void> serve(std::shared_ptr<connection<Stream>> c) {
        active_guard guard(*this);
        const auto id = add_conn(c);
        {
            std::lock_guard lock(mutex);
            if (stopping) {
                // stop() may have walked the registry before we joined it.
                c->close();
            }
        }
        co_await serve_requests(*c);
        remove_conn(id);
    }

    template <class Stream>
    net::awaitable<void> serve_requests(connection<Stream>& c) {
        auto& lowest = beast::get_lowest_layer(c.stream);
        constexpr bool is_tls = !std::is_same_v<Stream, beast::tcp_stream>;
        if constexpr (is_tls) {
            lowest.expires_after(handshake_timeout);
            auto [ec] = co_await c.stream.async_handshake(ssl::stream_base::server, use_nothrow);
            if (ec) {
                co_return; // "handshake": the client rejected our certificate, or went away
            }
        }
        for (;;) {
            http::request_parser<http::string_body> parser;
            parser.header_limit(header_limit);
            parser.body_limit(opt.max_body_bytes);
            lowest.expires_after(idle_timeout);
            auto [ec, n] =
                co_await http::async_read_header(c.stream, c.buffer, parser, use_nothrow);
            (void)n;
            if (!ec && beast::iequals(parser.get()[http::field::expect], "100-continue")) {
                // curl asks before sending bodies over 1 KiB; answer instead of making it wait.
                http::response<http::empty_body> cont{http::status::continue_, 11};
                lowest.expires_after(write_timeout);
                std::tie(ec, n) = co_await http::async_write(c.stream, cont, use_nothrow);
            }
            if (!ec && !parser.is_done()) {
                lowest.expires_after(idle_timeout);
                std::tie(ec, n) =
                    co_await http::async_read(c.stream, c.buffer, parser, use_nothrow);
            }
            if (ec == http::error::body_limit || ec == http::error::header_limit) {
                const bool body = ec == http::error::body_limit;
                http::response<http::string_body> res{
                    body ? http::status::payload_too_large
                         : http::status::request_header_fields_too_large,
                    11};
                res.set(http::field::content_type, "application/json");
                res.body() = body ? nest_error(413, "request entity too large", "Payload Too Large")
                                  : nest_error(431, "request header fields too large",
                                               "Request Header Fields Too Large");
                res.keep_alive(false);
                res.prepare_payload();
                lowest.expires_after(write_timeout);
                co_await http::async_write(c.stream, res, use_nothrow);
                break;
            }
            if (ec) {
                // "read": end_of_stream (client closed), timeout, operation_aborted (stop()),
                // or a malformed request: all end the connection.
                if (ec != http::error::end_of_stream && ec != beast::error::timeout &&
                    ec != net::error::operation_aborted && ec != net::error::eof &&
                    ec != net::ssl::error::stream_truncated && ec != net::error::connection_reset &&
                    ec != net::error::bad_descriptor) {
                    http::response<http::string_body> res{http::status::bad_request, 11};
                    res.set(http::field::content_type, "application/json");
                    res.body() = nest_error(400, "malformed HTTP request", "Bad Request");
                    res.keep_alive(false);
                    res.prepare_payload();
                    lowest.expires_after(write_timeout);
                    co_await http::async_write(c.stream, res, use_nothrow);
                }
                break;
            }
            auto& req = parser.get();
            detail::http_request r;
            r.method = std::string(req.method_string());
            r.target = std::string(req.target());
            r.authorization = std::string(req[http::field::authorization]);
            if (auto it = req.find("Version"); it != req.end()) {
                r.version = std::string(it->value());
            }
            r.content_type = std::string(req[http::field::content_type]);
            r.body = std::move(req.body());
            const bool keep_alive = req.keep_alive();
            const unsigned version = req.version();

            detail::http_response res = core->handle(r);

            if (res.latency_ms > 0) {
                c.timer.expires_after(std::chrono::milliseconds(res.latency_ms));
                auto [tec] = co_await c.timer.async_wait(use_nothrow);
                if (tec) {
                    break; // "latency": cancelled by stop()
                }
            }
            if (res.act == detail::action::drop) {
                break; // close without answering
            }
            if (res.act == detail::action::reset) {
                // An abortive close: SO_LINGER 0 makes close() send RST instead of FIN.
                boost::system::error_code lec;
                lowest.socket().set_option(net::socket_base::linger(true, 0), lec);
                lowest.socket().close(lec);
                break;
            }
            if (res.act == detail::action::hold) {
                // Never answer: wait until the peer closes or stop() closes the socket.
                lowest.expires_never();
                char sink[512];
                for (;;) {
                    auto [hec, hn] =
                        co_await lowest.async_read_some(net::buffer(sink), use_nothrow);
                    (void)hn;
                    if (hec) {
                        break;
                    }
                }
                break;
            }
            http::response<http::string_body> out;
            out.version(version);
            out.result(static_cast<unsigned>(res.status));
            out.set(http::field::server, "ghl-sim");
            out.set(http::field::content_type,
                    res.content_type +
                        (res.content_type == "application/json" ? "; charset=utf-8" : ""));
            for (const auto& [name, value] : res.headers) {
                out.set(name, value);
            }
            out.keep_alive(keep_alive);
            out.body() = std::move(res.body);
            out.prepare_payload();
            lowest.expires_after(write_timeout);
            if (!res.slow) {
                auto [wec, wn] = co_await http::async_write(c.stream, out, use_nothrow);
                (void)wn;
                if (wec) {
                    break; // "write": the client went away
                }
            } else {
                // Slow body: the header at once, then the body a few bytes at a time.
                http::response_serializer<http::string_body> sr(out);
                auto [hec, hn] = co_await http::async_write_header(c.stream, sr, use_nothrow);
                (void)hn;
                if (hec) {
                    break;
                }
                const std::string& body = out.body();
                const auto chunk = static_cast<std::size_t>(res.slow_chunk_bytes);
                bool failed = false;
                for (std::size_t off = 0; off < body.size(); off += chunk) {
                    auto [bec, bn] = co_await net::async_write(
                        c.stream,
                        net::buffer(body.data() + off, std::min(chunk, body.size() - off)),
                        use_nothrow);
                    (void)bn;
                    if (bec) {
                        failed = true;
                        break;
                    }
                    if (res.slow_delay_ms > 0 && off + chunk < body.size()) {
                        c.timer.expires_after(std::chrono::milliseconds(res.slow_delay_ms));
                        auto [tec] = co_await c.timer.async_wait(use_nothrow);
                        if (tec) {
                            failed = true;
                            break;
                        }
                    }
                }
                if (failed) {
                    break;
                }
            }
            if (!keep_alive) {
                break;
            }
        }
        if constexpr (is_tls) {
            // Best effort close_notify with a short deadline; errors here are benign.
            lowest.expires_after(1s);
            co_await c.stream.async_shutdown(use_nothrow);
        } else {
            beast::error_code ec;
            lowest.socket().shutdown(tcp::socket::shutdown_send, ec);
        }
        c.close();
    }

    net::awaitable<void> accept_loop() {
        active_guard guard(*this);
        for (;;) {
            auto [ec, socket] = co_await acceptor->async_accept(net::make_strand(ioc), use_nothrow);
            if (ec) {
                if (ec == net::error::operation_aborted || !acceptor->is_open()) {
                    break; // "accept": stop() closed the acceptor
                }
                // "accept": e.g. too many open files; pause instead of spinning.
                net::steady_timer t(acceptor->get_executor(), 50ms);
                co_await t.async_wait(use_nothrow);
                continue;
            }
            if (!enter()) {
                break;
            }
            auto ex = socket.get_executor();
            if (tls) {
                using stream_t = beast::ssl_stream<beast::tcp_stream>;
                auto c = std::make_shared<connection<stream_t>>(
                    ex, stream_t(beast::tcp_stream(std::move(socket)), *tls));
                spawn(ex, serve(std::move(c)));
            } else {
                auto c = std::make_shared<connection<beast::tcp_stream>>(
                    ex, beast::tcp_stream(std::move(socket)));
                spawn(ex, serve(std::move(c)));
            }
        }
    }

    // --- webhooks ---
    void enqueue(detail::webhook_delivery d) {
        std::shared_ptr<webhook_sender> s;
        {
            std::lock_guard lock(mutex);
            if (stopping || !sender) {
                return;
            }
            webhook_queue.push_back(std::move(d));
            s = sender;
        }
        net::post(s->strand, [s] { s->wake.cancel(); });
    }

    std::optional<detail::webhook_delivery> next_webhook() {
        std::lock_guard lock(mutex);
        if (stopping || webhook_queue.empty()) {
            return std::nullopt;
        }
        auto d = std::move(webhook_queue.front());
        webhook_queue.pop_front();
        return d;
    }

    bool is_stopping() {
        std::lock_guard lock(mutex);
        return stopping;
    }

    /// One POST; returns the HTTP status, or 0 when there was no answer.
    net::awaitable<int> post_webhook(webhook_sender& s, const detail::webhook_delivery& d) {
        auto parts = parse_http_url(d.url);
        if (!parts) {
            co_return 0; // "webhook url": only http:// targets are supported
        }
        tcp::resolver resolver(s.strand);
        auto [rec, endpoints] =
            co_await resolver.async_resolve(parts->host, parts->port, use_nothrow);
        if (rec) {
            co_return 0; // "webhook resolve"
        }
        s.stream.emplace(s.strand);
        auto& stream = *s.stream;
        const auto timeout = std::chrono::milliseconds(core->webhook_timeout_ms());
        stream.expires_after(timeout);
        auto [cec, ep] = co_await stream.async_connect(endpoints, use_nothrow);
        (void)ep;
        if (cec) {
            s.stream.reset();
            co_return 0; // "webhook connect"
        }
        http::request<http::string_body> req{http::verb::post, parts->target, 11};
        req.set(http::field::host, parts->host + ":" + parts->port);
        req.set(http::field::user_agent, "ghl-sim webhooks");
        req.set(http::field::content_type, "application/json");
        req.set("x-ghl-signature", d.ghl_signature);
        if (!d.wh_signature.empty()) {
            req.set("x-wh-signature", d.wh_signature);
        }
        req.keep_alive(false);
        req.body() = d.body;
        req.prepare_payload();
        stream.expires_after(timeout);
        auto [wec, wn] = co_await http::async_write(stream, req, use_nothrow);
        (void)wn;
        if (wec) {
            s.stream.reset();
            co_return 0; // "webhook write"
        }
        beast::flat_buffer buffer;
        http::response_parser<http::string_body> parser;
        parser.header_limit(header_limit);
        parser.body_limit(std::uint64_t{64} * 1024);
        stream.expires_after(timeout);
        auto [hec, hn] = co_await http::async_read(stream, buffer, parser, use_nothrow);
        (void)hn;
        beast::error_code ignored;
        stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
        s.stream.reset();
        if (hec) {
            co_return 0; // "webhook read"
        }
        co_return static_cast<int>(parser.get().result_int());
    }

    net::awaitable<void> webhook_loop(std::shared_ptr<webhook_sender> s) {
        active_guard guard(*this);
        for (;;) {
            if (is_stopping()) {
                break;
            }
            auto d = next_webhook();
            if (!d) {
                s->wake.expires_at(net::steady_timer::time_point::max());
                co_await s->wake.async_wait(use_nothrow);
                continue;
            }
            int status = 0;
            int attempts = 0;
            const int max_retries = core->webhook_max_retries();
            for (;;) {
                ++attempts;
                status = co_await post_webhook(*s, *d);
                // GHL retries only 429s.
                if (status != 429 || attempts > max_retries || is_stopping()) {
                    break;
                }
                s->retry.expires_after(std::chrono::milliseconds(core->webhook_retry_delay_ms()));
                auto [tec] = co_await s->retry.async_wait(use_nothrow);
                if (tec) {
                    break;
                }
            }
            core->webhook_result(d->index, status, attempts);
        }
    }
};

// =============================================================================================

server::server(options opt)
    : impl_(std::make_unique<impl>(std::move(opt))) {
    impl_->core = std::make_unique<detail::core>(impl_->opt);
}

server::~server() {
    stop();
}

void server::start() {
    auto& s = *impl_;
    {
        std::lock_guard lock(s.mutex);
        if (s.started || s.acceptor) {
            throw std::logic_error("ghl-sim: start: already started");
        }
    }
    // Until `started` is set below, a throw leaves nothing running and stop() does nothing.
    if (s.opt.tls) {
        if (s.opt.pki.server_cert_pem.empty()) {
            s.opt.pki = make_test_pki({"localhost"});
        }
        s.pki_used = s.opt.pki;
        s.tls.emplace(ssl::context::tls_server);
        s.tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                           ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                           ssl::context::no_tlsv1_1);
        s.tls->use_certificate_chain(net::buffer(s.pki_used.server_cert_pem));
        s.tls->use_private_key(net::buffer(s.pki_used.server_key_pem), ssl::context::pem);
    }
    beast::error_code ec;
    auto address = net::ip::make_address(s.opt.host, ec);
    if (ec) {
        throw std::runtime_error("ghl-sim: start: bad host " + s.opt.host + ": " + ec.message());
    }
    s.acceptor.emplace(net::make_strand(s.ioc));
    tcp::endpoint ep(address, s.opt.port);
    s.acceptor->open(ep.protocol(), ec);
    if (!ec) {
        s.acceptor->set_option(net::socket_base::reuse_address(true), ec);
    }
    if (!ec) {
        s.acceptor->bind(ep, ec);
    }
    if (!ec) {
        s.acceptor->listen(net::socket_base::max_listen_connections, ec);
    }
    if (ec) {
        throw std::runtime_error("ghl-sim: start: listen on " + s.opt.host + ":" +
                                 std::to_string(s.opt.port) + ": " + ec.message());
    }
    s.bound_port = s.acceptor->local_endpoint().port();
    const std::string host = s.opt.tls && s.opt.host == "127.0.0.1" ? "localhost" : s.opt.host;
    s.url =
        std::string(s.opt.tls ? "https://" : "http://") + host + ":" + std::to_string(s.bound_port);
    s.core->set_base_url(s.url);

    s.sender = std::make_shared<webhook_sender>(net::make_strand(s.ioc));
    {
        std::lock_guard lock(s.mutex);
        s.started = true;
    }
    impl* self = &s;
    s.core->set_delivery_sink([self](detail::webhook_delivery d) { self->enqueue(std::move(d)); });

    s.enter();
    s.spawn(s.acceptor->get_executor(), s.accept_loop());
    s.enter();
    s.spawn(s.sender->strand, s.webhook_loop(s.sender));
    for (int i = 0; i < 2; ++i) {
        s.threads.emplace_back([self] {
            for (;;) {
                try {
                    self->ioc.run();
                    return;
                } catch (const std::exception& e) {
                    std::fprintf(stderr, "ghl-sim: io thread: %s\n", e.what());
                }
            }
        });
    }
}

void server::stop() {
    auto& s = *impl_;
    std::vector<std::shared_ptr<closable>> to_close;
    {
        std::lock_guard lock(s.mutex);
        if (!s.started || s.stopping) {
            return;
        }
        s.stopping = true;
        s.webhook_queue.clear();
        for (auto& kv : s.conns) {
            if (auto c = kv.second.lock()) {
                to_close.push_back(std::move(c));
            }
        }
        if (s.sender) {
            to_close.push_back(s.sender);
        }
    }
    // Stage 1: cancel everything, each on its own strand.
    impl* self = &s;
    net::post(s.acceptor->get_executor(), [self] {
        beast::error_code ec;
        self->acceptor->close(ec);
    });
    for (auto& c : to_close) {
        net::post(c->strand, [c] { c->close(); });
    }
    to_close.clear();
    // Stage 2: wait (bounded) for the coroutines to finish, then stop the loop regardless.
    {
        std::unique_lock lock(s.mutex);
        s.idle_cv.wait_for(lock, 3s, [&] { return s.active == 0; });
    }
    s.ioc.stop();
    for (auto& t : s.threads) {
        t.join();
    }
    s.threads.clear();
    s.core->set_delivery_sink(nullptr);
}

std::uint16_t server::port() const {
    return impl_->bound_port;
}
std::string server::base_url() const {
    return impl_->url;
}

std::string server::seed_custom_field(const boost::json::object& fields) {
    return impl_->core->seed_custom_field(fields);
}

std::string server::seed_contact(const boost::json::object& fields) {
    return impl_->core->seed_contact(fields);
}
std::string server::seed_task(const std::string& contact_id, const boost::json::object& fields) {
    return impl_->core->seed_task(contact_id, fields);
}
std::string server::seed_note(const std::string& contact_id, const boost::json::object& fields) {
    return impl_->core->seed_note(contact_id, fields);
}
std::string server::seed_appointment(const std::string& contact_id,
                                     const boost::json::object& fields) {
    return impl_->core->seed_appointment(contact_id, fields);
}
void server::update_contact(const std::string& id, const boost::json::object& patch) {
    impl_->core->update_contact(id, patch);
}
void server::delete_contact(const std::string& id) {
    impl_->core->delete_contact(id);
}
boost::json::value server::state() const {
    return impl_->core->state();
}
void server::set_faults(const fault_config& f) {
    impl_->core->set_faults(f);
}
stats server::get_stats() const {
    return impl_->core->get_stats();
}
std::string server::issue_auth_code() {
    return impl_->core->issue_auth_code();
}
std::vector<std::string> server::seed_contacts(std::size_t n) {
    return impl_->core->seed_contacts(n);
}
std::vector<request_record> server::requests() const {
    return impl_->core->requests();
}
std::vector<webhook_record> server::webhooks() const {
    return impl_->core->webhooks();
}
fault_config server::faults() const {
    return impl_->core->faults();
}
void server::reset() {
    impl_->core->reset();
}
void server::set_location_active(bool active) {
    impl_->core->set_location_active(active);
}
void server::set_allow_duplicates(bool allow) {
    impl_->core->set_allow_duplicates(allow);
}
void server::set_rate_limits(bool enabled, int burst, int window_ms, long long daily) {
    impl_->core->set_rate_limits(enabled, burst, window_ms, daily);
}
void server::expire_access_tokens() {
    impl_->core->expire_access_tokens();
}
void server::set_webhook_url(const std::string& url) {
    impl_->core->set_webhook_url(url);
}
std::string server::send_webhook(const boost::json::object& payload) {
    return impl_->core->send_webhook(payload);
}
std::string server::webhook_public_key_pem() const {
    return impl_->core->signer().ed25519_public_pem();
}
std::string server::webhook_rsa_public_key_pem() const {
    return impl_->core->signer().rsa_public_pem();
}
std::string server::sign_webhook(const std::string& body) const {
    return impl_->core->signer().sign_ed25519(body);
}
std::string server::sign_webhook_rsa(const std::string& body) const {
    return impl_->core->signer().sign_rsa(body);
}
test_pki server::pki() const {
    return impl_->pki_used;
}
const std::string& server::location_id() const {
    return impl_->core->location_id();
}

} // namespace speak4::sim
