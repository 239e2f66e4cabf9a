// The only translation unit of lib/ghl that uses Beast (compile time): the connection pool, the
// phases of a request with their deadlines, TLS setup and verification.

#include "ghl/http.hpp"

#include "core/error.hpp"
#include "core/log.hpp"

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cctype>
#include <cerrno>
#include <deque>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

namespace speak4::ghl {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;
using boost::system::error_code;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

struct parsed_url {
    bool tls = true;
    std::string host; // without brackets
    std::string port;
    std::string prefix;      // "" or "/something" (no trailing slash)
    std::string host_header; // host[:port], brackets for IPv6
};

bool is_ip_literal(const std::string& host) {
    error_code ec;
    (void)asio::ip::make_address(host, ec);
    return !ec;
}

parsed_url parse_base_url(const std::string& url) {
    const auto fail = [&](const std::string& why) {
        return config_error("ghl.base_url", 0, "ghl.base_url: " + why + " (got \"" + url + "\")");
    };
    parsed_url out;
    std::string_view rest = url;
    if (rest.starts_with("https://")) {
        out.tls = true;
        rest.remove_prefix(8);
    } else if (rest.starts_with("http://")) {
        out.tls = false;
        rest.remove_prefix(7);
    } else {
        throw fail("must start with https:// (or http:// for a loopback host)");
    }
    const auto slash = rest.find('/');
    std::string_view authority = rest.substr(0, slash);
    std::string_view path = slash == std::string_view::npos ? "" : rest.substr(slash);
    if (path.find_first_of("?#") != std::string_view::npos)
        throw fail("must not have a query or fragment");
    if (authority.find('@') != std::string_view::npos)
        throw fail("must not contain credentials");
    std::string_view port;
    if (authority.starts_with("[")) {
        const auto close = authority.find(']');
        if (close == std::string_view::npos)
            throw fail("unterminated IPv6 address");
        out.host = std::string(authority.substr(1, close - 1));
        std::string_view after = authority.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':')
                throw fail("bad port");
            port = after.substr(1);
        }
    } else {
        const auto colon = authority.rfind(':');
        out.host = std::string(authority.substr(0, colon));
        if (colon != std::string_view::npos)
            port = authority.substr(colon + 1);
    }
    if (out.host.empty())
        throw fail("has no host");
    if (!port.empty()) {
        if (port.size() > 5 ||
            !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
            std::stoi(std::string(port)) > 65535 || std::stoi(std::string(port)) == 0)
            throw fail("bad port");
        out.port = std::string(port);
    } else {
        out.port = out.tls ? "443" : "80";
    }
    if (!out.tls && !is_loopback_host(out.host))
        throw fail("plain http:// is allowed only for a loopback host; use https://");
    while (path.ends_with('/'))
        path.remove_suffix(1);
    out.prefix = std::string(path);
    const bool v6 = out.host.find(':') != std::string::npos;
    out.host_header = v6 ? "[" + out.host + "]" : out.host;
    if (!port.empty() && port != (out.tls ? "443" : "80"))
        out.host_header += ":" + out.port;
    return out;
}

bhttp::verb to_verb(http_method m) {
    switch (m) {
    case http_method::get:
        return bhttp::verb::get;
    case http_method::post:
        return bhttp::verb::post;
    case http_method::put:
        return bhttp::verb::put;
    case http_method::del:
        return bhttp::verb::delete_;
    }
    return bhttp::verb::get;
}

bool has_control_chars(std::string_view s) {
    return std::any_of(s.begin(), s.end(),
                       [](char c) { return c == '\r' || c == '\n' || c == '\0'; });
}

/// One pooled connection: a plain or a TLS stream over a tcp_stream (which carries the
/// deadlines), plus the read buffer that belongs to it.
struct connection {
    std::optional<beast::tcp_stream> plain;
    std::optional<beast::ssl_stream<beast::tcp_stream>> secure;
    beast::flat_buffer buffer;
    std::chrono::steady_clock::time_point idle_since;

    beast::tcp_stream& lowest() { return secure ? beast::get_lowest_layer(*secure) : *plain; }
};

using connection_ptr = std::unique_ptr<connection>;

void close_now(connection& c) {
    error_code ignored;
    auto& sock = c.lowest().socket();
    if (sock.is_open()) {
        sock.shutdown(tcp::socket::shutdown_both, ignored);
        sock.close(ignored);
    }
}

/// True if an idle connection still looks usable: the peer has not closed it and has sent
/// nothing unsolicited (an HTTP server sends nothing between responses; a TLS close_notify or a
/// FIN means it is going away).
bool looks_alive(connection& c) {
    auto& sock = c.lowest().socket();
    if (!sock.is_open() || c.buffer.size() != 0)
        return false;
    char byte = 0;
    const auto n = ::recv(sock.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n >= 0)
        return false; // 0: orderly close by the peer; > 0: unexpected bytes
    return errno == EAGAIN || errno == EWOULDBLOCK;
}

/// A coroutine waiting for a pool slot; `granted` is set by the releaser before it wakes it.
struct slot_waiter {
    explicit slot_waiter(const asio::any_io_executor& ex)
        : timer(ex, asio::steady_timer::time_point::max()) {}
    asio::steady_timer timer;
    bool granted = false;
};

} // namespace

std::string_view to_string(io_step s) {
    switch (s) {
    case io_step::resolve:
        return "resolve";
    case io_step::connect:
        return "connect";
    case io_step::handshake:
        return "handshake";
    case io_step::write:
        return "write";
    case io_step::read:
        return "read";
    case io_step::shutdown:
        return "shutdown";
    }
    return "io";
}

std::string_view to_string(http_method m) {
    switch (m) {
    case http_method::get:
        return "GET";
    case http_method::post:
        return "POST";
    case http_method::put:
        return "PUT";
    case http_method::del:
        return "DELETE";
    }
    return "GET";
}

std::string transport_error::message() const {
    std::string m = std::string(to_string(step)) + ": ";
    if (ec == beast::error::timeout)
        m += "timed out";
    else
        m += ec.message();
    return m;
}

std::optional<std::string_view> find_header(const header_list& h, std::string_view name) {
    for (const auto& [k, v] : h)
        if (k.size() == name.size() &&
            std::equal(k.begin(), k.end(), name.begin(), [](char a, char b) {
                return std::tolower(static_cast<unsigned char>(a)) ==
                       std::tolower(static_cast<unsigned char>(b));
            }))
            return std::string_view(v);
    return std::nullopt;
}

bool is_loopback_host(std::string_view host) {
    if (host.starts_with('[') && host.ends_with(']'))
        host = host.substr(1, host.size() - 2);
    std::string lower(host);
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (lower == "localhost" || lower == "localhost.")
        return true;
    error_code ec;
    const auto addr = asio::ip::make_address(lower, ec);
    return !ec && addr.is_loopback();
}

std::string url_encode(std::string_view s) {
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    out.reserve(s.size());
    for (const char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
            out += ch;
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 0xF];
        }
    }
    return out;
}

std::string form_encode(const std::vector<std::pair<std::string, std::string>>& fields) {
    std::string out;
    for (const auto& [k, v] : fields) {
        if (!out.empty())
            out += '&';
        out += url_encode(k);
        out += '=';
        out += url_encode(v);
    }
    return out;
}

http_options http_options_from(const ghl_config& cfg) {
    http_options o;
    o.base_url = cfg.base_url;
    o.ca_file = cfg.ca_file;
    o.timeout = std::chrono::milliseconds{cfg.timeout_ms};
    o.max_connections = static_cast<std::size_t>(std::max(1, cfg.max_concurrency));
    return o;
}

struct http_client::impl {
    impl(asio::any_io_executor e, http_options o)
        : ex(std::move(e))
        , opt(std::move(o))
        , url(parse_base_url(opt.base_url))
        , ctx(ssl::context::tls_client) {
        if (opt.max_connections == 0)
            opt.max_connections = 1;
        if (!url.tls)
            return;
        ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                        ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
        ctx.set_verify_mode(ssl::verify_peer);
        error_code ec;
        if (opt.use_system_cas) {
            ctx.set_default_verify_paths(ec);
            if (ec)
                throw config_error("ghl.ca_file", 0,
                                   "ghl: cannot load the system CA store: " + ec.message());
        }
        if (!opt.ca_file.empty()) {
            ctx.load_verify_file(opt.ca_file.string(), ec);
            if (ec)
                throw config_error("ghl.ca_file", 0,
                                   "ghl.ca_file: cannot load " + opt.ca_file.string() + ": " +
                                       ec.message());
        }
        if (!opt.ca_pem.empty()) {
            ctx.add_certificate_authority(asio::buffer(opt.ca_pem), ec);
            if (ec)
                throw config_error("ghl.ca_file", 0, "ghl: bad CA certificate: " + ec.message());
        }
    }

    error_code fault(io_step s) const { return opt.faults ? opt.faults(s) : error_code{}; }

    // --- pool slots (a FIFO semaphore of max_connections) ---

    void prune_waiters() {
        while (!waiters.empty() && waiters.front().expired())
            waiters.pop_front();
    }

    asio::awaitable<bool> acquire_slot() {
        prune_waiters();
        if (in_use < opt.max_connections && waiters.empty()) {
            ++in_use;
            co_return true;
        }
        auto w = std::make_shared<slot_waiter>(ex);
        waiters.push_back(w);
        // The releaser sets `granted` and cancels the timer; a wake-up without `granted` is
        // our own cancellation.
        (void)co_await w->timer.async_wait(use_tuple);
        co_return w->granted;
    }

    void release_slot() {
        while (!waiters.empty()) {
            auto w = waiters.front().lock();
            waiters.pop_front();
            if (w && !w->granted) {
                w->granted = true; // the slot passes on; in_use stays
                w->timer.cancel();
                return;
            }
        }
        if (in_use > 0)
            --in_use;
    }

    // --- idle connections ---

    connection_ptr take_idle() {
        const auto now = std::chrono::steady_clock::now();
        while (!idle.empty()) {
            auto c = std::move(idle.back());
            idle.pop_back();
            if (now - c->idle_since < opt.idle_timeout && looks_alive(*c))
                return c;
            close_now(*c);
        }
        return nullptr;
    }

    void put_idle(connection_ptr c) {
        if (closed) {
            close_now(*c);
            return;
        }
        c->idle_since = std::chrono::steady_clock::now();
        idle.push_back(std::move(c));
        while (idle.size() > opt.max_connections) {
            close_now(*idle.front());
            idle.erase(idle.begin());
        }
    }

    // --- phases ---

    asio::awaitable<boost::system::result<connection_ptr, transport_error>> open() {
        using namespace asio::experimental::awaitable_operators;
        if (auto ec = fault(io_step::resolve))
            co_return transport_error{io_step::resolve, ec};
        tcp::resolver resolver(ex);
        asio::steady_timer deadline(ex, opt.timeout);
        // The resolver has no deadline of its own: race it against a timer.
        auto raced = co_await (resolver.async_resolve(url.host, url.port, use_tuple) ||
                               deadline.async_wait(use_tuple));
        if (raced.index() == 1)
            co_return transport_error{io_step::resolve, beast::error::timeout};
        auto [rec, endpoints] = std::get<0>(std::move(raced));
        if (rec)
            co_return transport_error{io_step::resolve, rec};

        auto c = std::make_unique<connection>();
        if (url.tls)
            c->secure.emplace(ex, ctx);
        else
            c->plain.emplace(ex);
        auto& low = c->lowest();

        if (auto ec = fault(io_step::connect))
            co_return transport_error{io_step::connect, ec};
        low.expires_after(opt.timeout);
        auto [cec, ep] = co_await low.async_connect(endpoints, use_tuple);
        if (cec)
            co_return transport_error{io_step::connect, cec};
        ++counters.connections_opened;
        (void)ep;

        if (url.tls) {
            auto& s = *c->secure;
            // SNI (not allowed for IP literals), then certificate chain + host-name checks.
            if (!is_ip_literal(url.host) &&
                !SSL_set_tlsext_host_name(s.native_handle(), url.host.c_str())) {
                co_return transport_error{io_step::handshake,
                                          error_code(static_cast<int>(::ERR_get_error()),
                                                     asio::error::get_ssl_category())};
            }
            s.set_verify_mode(ssl::verify_peer);
            s.set_verify_callback(ssl::host_name_verification(url.host));
            if (auto ec = fault(io_step::handshake))
                co_return transport_error{io_step::handshake, ec};
            low.expires_after(opt.timeout);
            auto [hec] = co_await s.async_handshake(ssl::stream_base::client, use_tuple);
            if (hec)
                co_return transport_error{io_step::handshake, hec};
        }
        low.expires_never();
        co_return c;
    }

    template <class Stream>
    asio::awaitable<http_result> exchange_on(Stream& s, connection& c,
                                             const bhttp::request<bhttp::string_body>& req) {
        auto& low = beast::get_lowest_layer(s);
        ++counters.requests;

        if (auto ec = fault(io_step::write))
            co_return transport_error{io_step::write, ec, false};
        low.expires_after(opt.timeout);
        auto [wec, written] = co_await bhttp::async_write(s, req, use_tuple);
        if (wec)
            co_return transport_error{io_step::write, wec, written > 0};

        if (auto ec = fault(io_step::read))
            co_return transport_error{io_step::read, ec, true};
        bhttp::response_parser<bhttp::string_body> parser;
        parser.header_limit(static_cast<std::uint32_t>(opt.header_limit));
        parser.body_limit(opt.body_limit);
        low.expires_after(opt.timeout);
        auto [rec, got] = co_await bhttp::async_read(s, c.buffer, parser, use_tuple);
        if (rec) {
            transport_error e{io_step::read, rec, true, got > 0 || c.buffer.size() > 0};
            // Errors of the HTTP grammar and the size limits mean a response came but cannot
            // be used; end_of_stream / partial_message are the connection going away.
            static const auto& http_category =
                bhttp::make_error_code(bhttp::error::bad_version).category();
            e.malformed_response = rec.category() == http_category &&
                                   rec != bhttp::error::end_of_stream &&
                                   rec != bhttp::error::partial_message;
            if (e.malformed_response)
                e.response_started = true;
            co_return e;
        }
        low.expires_never();

        auto& res = parser.get();
        http_response out;
        out.status = static_cast<int>(res.result_int());
        for (const auto& f : res)
            out.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
        out.body = std::move(res.body());
        out.keep_alive = res.keep_alive() && !res.need_eof() && c.buffer.size() == 0;
        co_return out;
    }

    asio::awaitable<http_result> exchange(connection& c,
                                          const bhttp::request<bhttp::string_body>& req) {
        if (c.secure)
            co_return co_await exchange_on(*c.secure, c, req);
        co_return co_await exchange_on(*c.plain, c, req);
    }

    bhttp::request<bhttp::string_body> build(const http_request& r) const {
        bhttp::request<bhttp::string_body> req{to_verb(r.method), url.prefix + r.target, 11};
        req.set(bhttp::field::host, url.host_header);
        req.set(bhttp::field::user_agent, opt.user_agent);
        for (const auto& [k, v] : r.headers)
            req.set(k, v);
        if (!r.content_type.empty())
            req.set(bhttp::field::content_type, r.content_type);
        req.body() = r.body;
        req.keep_alive(true);
        req.prepare_payload();
        return req;
    }

    static asio::awaitable<void> graceful_close(std::shared_ptr<impl> st, connection_ptr c) {
        if (c->secure && !st->fault(io_step::shutdown)) {
            auto& low = c->lowest();
            low.expires_after(
                std::min<std::chrono::milliseconds>(st->opt.timeout, std::chrono::seconds{5}));
            auto [ec] = co_await c->secure->async_shutdown(use_tuple);
            // ssl::error::stream_truncated: the server closed TCP without answering our
            // close_notify. Every response on this connection was complete and framed by
            // Content-Length or chunked encoding (the parser finished it), so no data can
            // have been cut off by an attacker: benign, as in the Beast examples. eof and a
            // timeout at this point are equally harmless: we are only saying goodbye.
            if (ec && ec != ssl::error::stream_truncated && ec != asio::error::eof &&
                ec != beast::error::timeout)
                log::debug("ghl tls shutdown", {{"step", "shutdown"}, {"error", ec.message()}});
        }
        close_now(*c);
    }

    asio::any_io_executor ex;
    http_options opt;
    parsed_url url;
    ssl::context ctx;
    std::vector<connection_ptr> idle;
    std::size_t in_use = 0;
    std::deque<std::weak_ptr<slot_waiter>> waiters;
    http_stats counters;
    bool closed = false;
};

namespace {

struct slot_guard {
    std::shared_ptr<http_client::impl> st;
    ~slot_guard() {
        if (st)
            st->release_slot();
    }
};

} // namespace

http_client::http_client(asio::any_io_executor ex, http_options opt)
    : impl_(std::make_shared<impl>(std::move(ex), std::move(opt))) {}

http_client::~http_client() {
    if (!impl_)
        return;
    impl_->closed = true;
    for (auto& c : impl_->idle)
        close_now(*c);
    impl_->idle.clear();
}

asio::awaitable<http_result> http_client::send(http_request req) {
    auto st = impl_; // operations keep the pool alive
    if (st->closed)
        co_return transport_error{io_step::connect, asio::error::shut_down};
    for (const auto& [k, v] : req.headers)
        if (has_control_chars(k) || has_control_chars(v))
            co_return transport_error{io_step::write, asio::error::invalid_argument};
    if (has_control_chars(req.target) || has_control_chars(req.content_type))
        co_return transport_error{io_step::write, asio::error::invalid_argument};

    if (!co_await st->acquire_slot())
        co_return transport_error{io_step::connect, asio::error::operation_aborted};
    slot_guard guard{st};
    if (st->closed)
        co_return transport_error{io_step::connect, asio::error::shut_down};

    const auto breq = st->build(req);
    for (int attempt = 0;; ++attempt) {
        // A retry after a stale connection always opens a fresh one: the other idle ones are
        // likely just as dead (e.g. the server restarted).
        connection_ptr conn = attempt == 0 ? st->take_idle() : nullptr;
        const bool reused = conn != nullptr;
        if (!conn) {
            auto opened = co_await st->open();
            if (!opened)
                co_return opened.error();
            conn = std::move(*opened);
        } else {
            ++st->counters.reused;
        }

        auto r = co_await st->exchange(*conn, breq);
        if (r) {
            r->reused_connection = reused;
            if (r->keep_alive && !st->closed)
                st->put_idle(std::move(conn));
            else
                asio::co_spawn(st->ex, impl::graceful_close(st, std::move(conn)), asio::detached);
            co_return r;
        }
        close_now(*conn);
        const auto& e = r.error();
        const bool closed_by_peer =
            e.ec == asio::error::eof || e.ec == bhttp::error::end_of_stream ||
            e.ec == asio::error::connection_reset || e.ec == asio::error::broken_pipe ||
            e.ec == ssl::error::stream_truncated;
        const bool stale =
            reused && attempt == 0 &&
            (!e.request_written || (req.method == http_method::get && e.step == io_step::read &&
                                    !e.response_started && closed_by_peer));
        if (stale) {
            ++st->counters.stale_retries;
            log::debug("ghl stale keep-alive connection, retrying on a fresh one",
                       {{"step", std::string(to_string(e.step))}, {"error", e.ec.message()}});
            continue;
        }
        co_return r;
    }
}

asio::awaitable<void> http_client::shutdown() {
    auto st = impl_;
    st->closed = true;
    auto conns = std::move(st->idle);
    st->idle.clear();
    for (auto& c : conns)
        co_await impl::graceful_close(st, std::move(c));
}

http_stats http_client::stats() const {
    http_stats s = impl_->counters;
    s.idle = impl_->idle.size();
    s.in_use = impl_->in_use;
    return s;
}

const http_options& http_client::options() const {
    return impl_->opt;
}
bool http_client::tls() const {
    return impl_->url.tls;
}
const std::string& http_client::host() const {
    return impl_->url.host;
}

} // namespace speak4::ghl
