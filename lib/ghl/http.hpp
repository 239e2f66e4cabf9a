#pragma once
// The HTTP(S) transport under the GHL client: Boost.Beast over Asio, asynchronous (C++20
// coroutines), a keep-alive connection pool per host, a deadline on every phase, limits on
// everything read, TLS with certificate and host-name verification. Beast itself is confined
// to http.cpp; this header is cheap to include.

#include "core/config.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>
#include <chrono>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace speak4::ghl {

namespace asio = boost::asio;

/// The I/O phases of one request, each with its own deadline.
enum class io_step { resolve, connect, handshake, write, read, shutdown };
std::string_view to_string(io_step s);

/// Test-only fault injection: called before every I/O phase; a non-zero error_code makes that
/// phase fail with it (without doing the I/O). Tests use it to fail the n-th read or write.
using fault_hook = std::function<boost::system::error_code(io_step)>;

struct http_options {
    /// "https://host[:port][/prefix]"; "http://" only for a loopback host (127.0.0.0/8, ::1,
    /// localhost).
    std::string base_url = "https://services.leadconnectorhq.com";
    bool use_system_cas = true;    ///< trust the system CA store (set_default_verify_paths)
    std::filesystem::path ca_file; ///< extra trusted CA bundle (PEM), optional
    std::string ca_pem;            ///< extra trusted CA certificate(s) in memory (PEM), optional
    std::chrono::milliseconds timeout{30000};          ///< deadline of each phase
    std::size_t max_connections = 4;                   ///< concurrent requests / pooled connections
    std::size_t header_limit = std::size_t{64} * 1024; ///< response header bytes
    std::size_t body_limit = std::size_t{16} * 1024 * 1024; ///< response body bytes
    std::chrono::milliseconds idle_timeout{30000}; ///< idle pooled connections older are closed
    std::string user_agent = "speak4-sync/0.1";
    fault_hook faults; ///< tests only
};

/// The transport part of a [ghl] config (base_url, ca_file, timeout_ms, max_concurrency).
http_options http_options_from(const ghl_config& cfg);

enum class http_method { get, post, put, del };
std::string_view to_string(http_method m);

/// Response or request header fields, in order, names as sent.
using header_list = std::vector<std::pair<std::string, std::string>>;

/// The value of the first header named `name` (case-insensitive), or nullopt.
std::optional<std::string_view> find_header(const header_list& h, std::string_view name);

struct http_request {
    http_method method = http_method::get;
    std::string target;       ///< path and query, e.g. "/contacts/?locationId=x" (no prefix)
    header_list headers;      ///< besides Host, User-Agent, Content-Length
    std::string content_type; ///< set with a body
    std::string body;
};

struct http_response {
    int status = 0;
    header_list headers;
    std::string body;
    bool reused_connection = false; ///< the request went over a pooled keep-alive connection
    bool keep_alive = false;        ///< the connection stays open for the next request
};

/// Why a request got no usable response.
struct transport_error {
    io_step step = io_step::connect;
    boost::system::error_code ec;
    bool request_written = false;  ///< at least one byte of the request was written
    bool response_started = false; ///< at least one byte of a response was read
    /// A response arrived but broke the HTTP grammar or a limit (header/body size).
    bool malformed_response = false;
    /// "read: Connection reset by peer", "handshake: certificate verify failed (...)".
    std::string message() const;
};

using http_result = boost::system::result<http_response, transport_error>;

/// Counters for tests and status.
struct http_stats {
    long long connections_opened = 0;
    long long requests = 0;      ///< exchanges attempted on a connection
    long long reused = 0;        ///< of which over a pooled connection
    long long stale_retries = 0; ///< reused connections found dead and retried on a fresh one
    std::size_t idle = 0;        ///< pooled idle connections now
    std::size_t in_use = 0;      ///< requests in flight now
};

/// An HTTP/1.1 client for one origin with a keep-alive pool.
///
/// Threading: every member function must be called on the executor passed to the
/// constructor, which must not run handlers concurrently (an io_context run by one thread, or
/// a strand). Many coroutines may await send() concurrently; at most max_connections run at
/// once, the others wait in FIFO order. Operations in flight keep the pool's state alive, so
/// the object may be destroyed before the io_context.
///
/// Reuse rules: an idle connection that the peer closed (or that has unsolicited bytes) is
/// discarded before use. If writing over a reused connection fails before any byte was
/// written, the request is retried once on a fresh connection; so is a GET whose reused
/// connection closed without a byte of response. Anything else after the request was
/// written is reported with request_written = true: the caller must treat it as "outcome
/// unknown".
class http_client {
public:
    /// Throws config_error("ghl.base_url" / "ghl.ca_file") for a bad URL or CA file.
    http_client(asio::any_io_executor ex, http_options opt);
    ~http_client();
    http_client(const http_client&) = delete;
    http_client& operator=(const http_client&) = delete;

    /// Sends one request and reads its response (any status).
    asio::awaitable<http_result> send(http_request req);

    /// Closes the idle connections (TLS close_notify, bounded by the timeout) and refuses new
    /// requests. Requests in flight finish; their connections are then closed.
    asio::awaitable<void> shutdown();

    http_stats stats() const;
    const http_options& options() const;
    bool tls() const;
    const std::string& host() const;

    struct impl;

private:
    std::shared_ptr<impl> impl_;
};

/// Percent-encodes one URL component (RFC 3986 unreserved characters kept).
std::string url_encode(std::string_view s);

/// Builds an application/x-www-form-urlencoded body.
std::string form_encode(const std::vector<std::pair<std::string, std::string>>& fields);

/// True for "localhost", 127.0.0.0/8 and ::1 (with or without brackets).
bool is_loopback_host(std::string_view host);

} // namespace speak4::ghl
