#pragma once
// The typed GHL Contacts API v2 client: one awaitable call per endpoint of DESIGN §1, each
// returning result<T> (ghl/error.hpp). Every call: takes a token (token_provider), waits for
// the location's rate budget (rate_limiter), sends over the pooled transport (http_client),
// feeds the rate-limit headers back, retries once after a 401 with a refreshed token, and
// reports each HTTP request to an optional observer (for audit_log rows).
//
// Wiring (the daemon's context does this once):
//
//   auto http = std::make_shared<ghl::http_client>(ex, ghl::http_options_from(cfg.ghl));
//   auto limiter =
//   std::make_shared<ghl::rate_limiter>(ghl::rate_limit_options_from(cfg.rate_limit));
//   std::shared_ptr<ghl::token_provider> tokens =
//       cfg.ghl.auth == auth_mode::oauth
//           ? ghl::oauth_token_provider::create(ex, ghl::oauth_options_from(cfg.ghl,
//           secrets.client_secret),
//                                               store,
//                                               std::make_shared<ghl::http_token_endpoint>(http,
//                                               observer))
//           : std::make_shared<ghl::static_token_provider>(secrets.ghl_token);
//   ghl::client client(http, ghl::client_options_from(cfg.ghl, observer), tokens, limiter);
//   auto c = co_await client.get_contact(id);   // result<ghl::contact>

#include "core/clock.hpp"
#include "core/config.hpp"
#include "ghl/auth.hpp"
#include "ghl/breaker.hpp"
#include "ghl/error.hpp"
#include "ghl/http.hpp"
#include "ghl/model.hpp"
#include "ghl/rate_limiter.hpp"

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace speak4::ghl {

/// One HTTP request that was attempted (the observer's argument). Never holds a token.
struct request_record {
    std::string method;        ///< "PUT"
    std::string path_template; ///< "/contacts/:contactId"
    std::string path;          ///< "/contacts/abc123" (no query string: it may hold an email)
    std::string operation;     ///< "PUT /contacts/:contactId"
    sys_time started_at;
    int status = 0; ///< 0: no response
    std::chrono::milliseconds latency{0};
    int attempt = 1;      ///< 2 for the retry after a 401 and a token refresh
    bool written = false; ///< at least one byte of the request was written
    bool reused_connection = false;
    std::optional<long long> rate_remaining;  ///< X-RateLimit-Remaining
    std::optional<long long> daily_remaining; ///< X-RateLimit-Daily-Remaining
    std::optional<std::chrono::milliseconds> retry_after;
    std::optional<std::string> trace_id; ///< from the body (or X-Trace-Id / traceId header)
    std::string error;                   ///< "" for a usable 2xx, else error::what()
    std::optional<error_kind> kind;
};

/// Called once for each HTTP request attempt (including connects that failed, written =
/// false), on the client's executor, after the outcome is known. Exceptions are caught and
/// logged.
using request_observer = std::function<void(const request_record&)>;

struct client_options {
    std::string api_version = "2021-07-28"; ///< `Version` header
    std::string location_id;                ///< locationId in bodies/queries; rate-limit key
    /// Longest wait for the local rate budget; beyond it a call fails at once (never_sent,
    /// step rate_limit, retry_after set) so the caller can schedule it instead.
    std::chrono::milliseconds max_rate_wait{std::chrono::minutes{5}};
    request_observer observer;
    /// The rate limiter's lane for this client's requests (pushes, or the pull path's reads).
    ghl::lane lane = ghl::lane::push;
    /// The circuit breaker every request consults (none: no breaker). While it is not closed a
    /// request fails at once without being sent (never_sent, step "breaker", retry_after until
    /// the next probe); each outcome of a request sent is reported to it.
    std::shared_ptr<ghl::breaker> breaker;
    /// This client sends the breaker's probes: it passes an open breaker and reports nothing
    /// (the probe loop records the probe's outcome itself).
    bool breaker_probe = false;
};

client_options client_options_from(const ghl_config& cfg, request_observer observer = {});

/// The GHL client for one location.
///
/// Threading: all calls must be made on the http_client's executor (single-threaded or a
/// strand); any number of calls may be in flight concurrently (bounded by the pool). The
/// client holds shared_ptrs to its collaborators and may be destroyed once no call is running.
class client {
public:
    client(std::shared_ptr<http_client> http, client_options opt,
           std::shared_ptr<token_provider> tokens, std::shared_ptr<rate_limiter> limiter,
           const speak4::clock& clk = system_clock::instance());

    void set_observer(request_observer obs) { opt_.observer = std::move(obs); }

    /// A copy of this client (same pool, tokens and rate limiter) reporting to `obs`: cheap,
    /// meant for one call, e.g. to tag the audit rows of one outbox entry:
    ///   auto tagged = cli.with_observer([&](const request_record& r) { audit(r, outbox_id); });
    ///   auto res = co_await tagged.update_contact(id, fields);
    /// The copy must outlive the call (keep it in a local, not a temporary).
    client with_observer(request_observer obs) const {
        client c(*this);
        c.opt_.observer = std::move(obs);
        return c;
    }

    // --- contacts ---
    /// GET /contacts/:contactId -> {"contact": …}
    asio::awaitable<result<contact>> get_contact(std::string contact_id);
    /// POST /contacts/search (locationId added).
    asio::awaitable<result<contact_search_page>> search_contacts(search_request req);
    /// GET /contacts/ (deprecated legacy listing; pass back next_start_after and its id).
    asio::awaitable<result<contact_list_page>> list_contacts(list_request req);
    /// GET /contacts/search/duplicate?locationId&email&number; nullopt when none matches.
    asio::awaitable<result<std::optional<contact>>>
    find_duplicate(std::optional<std::string> email, std::optional<std::string> phone);
    /// GET /contacts/business/:businessId
    asio::awaitable<result<contact_list_page>> business_contacts(business_request req);
    /// POST /contacts/ (201). A duplicate gives error_kind::duplicate_contact with its id.
    asio::awaitable<result<contact>> create_contact(contact_write fields);
    /// PUT /contacts/:contactId (UpdateContactDto: no locationId).
    asio::awaitable<result<contact>> update_contact(std::string contact_id, contact_write fields);
    /// DELETE /contacts/:contactId
    asio::awaitable<result<void>> delete_contact(std::string contact_id);
    /// POST /contacts/:contactId/tags (201) -> the tags GHL returns.
    asio::awaitable<result<std::vector<std::string>>> add_tags(std::string contact_id,
                                                               std::vector<std::string> tags);
    /// DELETE /contacts/:contactId/tags with a JSON body.
    asio::awaitable<result<std::vector<std::string>>> remove_tags(std::string contact_id,
                                                                  std::vector<std::string> tags);

    // --- tasks ---
    asio::awaitable<result<std::vector<task>>> list_tasks(std::string contact_id);
    asio::awaitable<result<task>> get_task(std::string contact_id, std::string task_id);
    /// POST /contacts/:contactId/tasks (201); title and due_date required.
    asio::awaitable<result<task>> create_task(std::string contact_id, task_write fields);
    asio::awaitable<result<task>> update_task(std::string contact_id, std::string task_id,
                                              task_write fields);
    /// PUT /contacts/:contactId/tasks/:taskId/completed {"completed": …}
    asio::awaitable<result<task>> complete_task(std::string contact_id, std::string task_id,
                                                bool completed = true);
    asio::awaitable<result<void>> delete_task(std::string contact_id, std::string task_id);

    // --- notes (path parameter `id`) ---
    asio::awaitable<result<std::vector<note>>> list_notes(std::string contact_id);
    asio::awaitable<result<note>> get_note(std::string contact_id, std::string note_id);
    /// POST /contacts/:contactId/notes (201); body required.
    asio::awaitable<result<note>> create_note(std::string contact_id, note_write fields);
    asio::awaitable<result<note>> update_note(std::string contact_id, std::string note_id,
                                              note_write fields);
    asio::awaitable<result<void>> delete_note(std::string contact_id, std::string note_id);

    // --- appointments ---
    /// GET /contacts/:contactId/appointments -> {"events": […]}
    asio::awaitable<result<std::vector<appointment>>> list_appointments(std::string contact_id);

    /// GET /locations/:locationId/customFields?model=contact (scope
    /// locations/customFields.readonly): the location's contact custom fields.
    asio::awaitable<result<std::vector<custom_field>>> list_custom_fields();

    const client_options& options() const { return opt_; }
    token_provider& tokens() { return *tokens_; }
    rate_limiter& limiter() { return *limiter_; }
    http_client& transport() { return *http_; }

    struct op;

private:
    asio::awaitable<result<bj::object>> execute(op o);
    void notify(const request_record& rec) const;

    std::shared_ptr<http_client> http_;
    client_options opt_;
    std::shared_ptr<token_provider> tokens_;
    std::shared_ptr<rate_limiter> limiter_;
    const speak4::clock& clock_;
};

/// POST /oauth/token over the shared transport (form-encoded; no Authorization and no Version
/// header; not counted against the location's rate budget). Response bodies are never kept in
/// errors or logs: they hold tokens.
/// Threading: as http_client.
class http_token_endpoint final : public token_endpoint {
public:
    explicit http_token_endpoint(std::shared_ptr<http_client> http, request_observer observer = {},
                                 const speak4::clock& clk = system_clock::instance());
    asio::awaitable<result<token_response>> request_token(token_request req) override;

private:
    std::shared_ptr<http_client> http_;
    request_observer observer_;
    const speak4::clock& clock_;
};

/// Maps a transport failure to an error of `operation` (never_sent, outcome_unknown or
/// bad_response). Exposed for tests.
error error_from_transport(const transport_error& t, std::string_view operation);

} // namespace speak4::ghl
