#pragma once
// ghl-sim: an in-process emulation of the GHL Contacts API v2 (see ../shared/ghl-api.md) over
// HTTP or HTTPS on loopback, with fault injection and an admin interface. Used by integration
// and e2e tests, by the `ghl-sim` binary, and by `speak4-sync demo`.
//
// Threading: the server runs its own io_context thread(s); every public method is thread-safe.
//
// NOTE FOR IMPLEMENTERS: the declarations below are a contract other code already uses
// (the GHL client's tests, demo). Extend freely; do not rename or remove.

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace speak4::sim {

/// A throw-away PKI generated at run time: a CA and a server certificate signed by it.
struct test_pki {
    std::string ca_cert_pem;
    std::string server_cert_pem;
    std::string server_key_pem;
};

/// Generates a fresh CA and a server certificate for `dns_names` (SAN DNS) plus IP 127.0.0.1.
test_pki make_test_pki(const std::vector<std::string>& dns_names = {"localhost"});

/// Injected faults; rates are probabilities in [0, 1] drawn per request (seeded).
struct fault_config {
    double error_rate = 0; // answer with one of `error_statuses` without applying
    std::vector<int> error_statuses = {500};
    double drop_after_apply_rate = 0;  // apply the write, then close the connection unanswered
    double drop_before_apply_rate = 0; // close the connection without applying
    double malformed_rate = 0;         // answer 200/201 with a body that is not JSON
    double timeout_rate = 0;           // read the request and never answer (until closed)
    int latency_ms = 0;                // added before every answer
    double slow_body_rate = 0;         // send the body a few bytes at a time

    // Additions (not part of the original contract):
    /// Route templates the faults apply to ("PUT /contacts/:contactId", "POST /oauth/token");
    /// empty: every non-admin route.
    std::vector<std::string> routes;
    long long skip_first = 0;       // let the first N eligible requests through untouched
    long long max_faults = -1;      // stop injecting after this many faults (-1: never)
    int slow_body_chunk_bytes = 16; // slow bodies: bytes per write
    int slow_body_delay_ms = 10;    // slow bodies: pause between writes
    /// A permanent error on demand: every API write (POST/PUT) whose body contains this string
    /// is answered 422 without being applied, every time (empty: off). Not counted in `faults`.
    std::string reject_body_containing;

    /// Search index lag, as GHL's (eventually consistent) search index has it: a contact's change
    /// appears in POST /contacts/search results only `search_lag_ms` + a uniform draw of up to
    /// `search_lag_jitter_ms` after it was made, so changes are indexed out of order (a later
    /// change of one contact may become searchable before an earlier change of another). One
    /// contact's index entry never goes back to an older version. 0 and 0: searches see every
    /// change at once. Reads by id, the duplicate lookup and the legacy listing are not lagged.
    int search_lag_ms = 0;
    int search_lag_jitter_ms = 0;

    /// An outage of the whole API (a load balancer in front of it): every request, OAuth and API
    /// alike, is refused before auth and rate limits, so nothing is applied or counted against
    /// the limits. "503": an HTML 503; "reset": the connection is reset (RST) unanswered;
    /// "hang": never answered until the client gives up; "mixed": one of the three per request,
    /// drawn from the fault generator. "" (default): no outage. It lasts `outage_ms` from the
    /// moment it is set (0: until set again); `skip_first`, `max_faults` and `routes` do not
    /// apply. Counted in `stats.faults` ("outage_503", "outage_reset", "outage_hang") and
    /// `stats.outage_requests`.
    std::string outage;
    long long outage_ms = 0;
    /// Answers that are not "the record is gone" although they look like it (DESIGN §9), each
    /// for the route templates listed ("PUT /contacts/:contactId"), after auth and limits,
    /// without applying anything, every time (not drawn, not counted in `faults`):
    /// an HTML 404 page, as a proxy or a wrong base_url path answers ...
    std::vector<std::string> html_404_routes;
    /// ... and GHL's 400 {"message":"User not found"} (an assignedTo naming no user).
    std::vector<std::string> user_not_found_routes;
    /// Contact ids POST /contacts/search leaves out of its results while its `total` still counts
    /// them (a partial index): a listing that is incomplete and disagrees with `total`.
    std::vector<std::string> search_hides;
};

struct options {
    std::string host = "127.0.0.1";
    std::uint16_t port = 0; // 0: pick a free port
    bool tls = false;
    test_pki pki; // used when tls
    std::string location_id = "simLocation000000001";
    std::vector<std::string> static_tokens = {"sim-private-token"}; // accepted bearer tokens (PIT)
    std::string client_id = "sim-client-id";
    std::string client_secret = "sim-client-secret";
    int access_token_ttl_seconds = 86399;
    bool rate_limit = true;
    int burst = 100; // per location, per window
    int window_ms = 10000;
    long long daily = 200000;
    bool send_retry_after = false; // add Retry-After to 429s
    bool allow_duplicates = false; // location setting "Allow Duplicate Contact"
    std::uint32_t seed = 1;

    // Additions (not part of the original contract):
    bool require_version = true; // 400 unless `Version: 2021-07-28`
    std::string company_id = "simCompany0000000001";
    std::string user_id = "simUser0000000000001";
    /// The scopes an OAuth access token gets. Each route needs the scope its spec's `security`
    /// lists (contacts.readonly for reads and POST /contacts/search, contacts.write for other
    /// writes, locations/customFields.readonly for GET /locations/:id/customFields); a token
    /// without it gets GHL's 401 "The token is not authorized for this scope.". Private tokens
    /// (static_tokens) have every scope.
    std::string scope = "contacts.readonly contacts.write locations/customFields.readonly";
    /// Private integration tokens are created with chosen scopes too: a static token named here
    /// has only these (space-separated); one not named has every scope.
    std::map<std::string, std::string> static_token_scopes;
    /// Status for an unknown task or note id (the contact itself answers GHL's 400
    /// "Contact with id X not found"); the spec documents neither, clients must treat both as gone.
    int subresource_not_found_status = 404;
    std::size_t max_body_bytes = std::size_t{1024} * 1024;
    std::size_t max_request_log = 200000; // requests() keeps at most this many (oldest dropped)
    /// Webhook target ("http://127.0.0.1:PORT/webhooks/ghl"); empty: events are only recorded.
    std::string webhook_url;
    bool webhooks_on_api_writes = true; // GHL also fires events for changes made over the API
    bool webhook_rsa_signature = true;  // also send the legacy x-wh-signature (RSA-SHA256)
    int webhook_retry_delay_ms = 1000;  // GHL retries only 429s, ~10 min apart; shortened here
    int webhook_max_retries = 6;
    int webhook_timeout_ms = 5000;
};

/// One request as the simulator saw it (for tests that assert what a client sent).
struct request_record {
    std::string method;
    std::string route;  // route template, "PUT /contacts/:contactId"
    std::string target; // path and query as sent
    int status = 0;     // 0: no answer (dropped or held)
    std::string fault;  // "", "error", "drop_before", "drop_after", "timeout",
                        // "malformed", "slow", "rate_limited", "rejected", "outage_503",
                        // "outage_reset", "outage_hang", "html_404", "user_not_found"
    std::string body;   // request body (first 64 KiB)
};

/// One webhook the simulator produced (and delivered, when a target is configured).
struct webhook_record {
    std::string type; // "ContactCreate", …
    std::string webhook_id;
    std::string body;          // exact bytes signed and sent
    std::string ghl_signature; // x-ghl-signature (base64 Ed25519)
    std::string wh_signature;  // x-wh-signature (base64 RSA-SHA256), may be empty
    int status = -1;           // last HTTP status; 0: connection failed; -1: not sent
    int attempts = 0;
};

/// Counters of what the simulator saw.
struct stats {
    long long requests = 0; // every request received
    /// 429s the simulator's own rate limit sent: what a client caused by exceeding the limits.
    /// Injected faults never count here (an injected 429 counts in `injected_429` and in
    /// `faults["error"]`), so a test can assert "0 429s caused" beside a fault rate.
    long long rate_limited = 0;
    std::map<std::string, long long> by_route; // "POST /contacts/" -> n (route templates)

    // Additions (not part of the original contract):
    std::map<int, long long> by_status; // 201 -> n (answered requests)
    /// Entities created over the API: "contact", "task", "note" -> n (admin seeding not counted).
    std::map<std::string, long long> creates;
    /// API creations by natural key, to assert "created exactly once":
    /// "contact email:<lowercased>" (or "contact phone:<digits>", "contact id:<id>"),
    /// "task <contactId> <title>", "note <contactId> <body>".
    std::map<std::string, long long> creates_by_key;
    std::map<std::string, long long> faults; // "error", "drop_after", … -> n
    long long webhooks_sent = 0;             // delivered with a 2xx
    long long webhooks_failed = 0;           // gave up (non-2xx, no connection)
    long long injected_429 = 0;              // 429s injected as faults (error_statuses)
    long long outage_requests = 0;           // requests refused by an outage
};

class server {
public:
    explicit server(options opt);
    ~server();
    server(const server&) = delete;
    server& operator=(const server&) = delete;

    void start(); // binds and starts serving; returns when listening
    void stop();  // idempotent
    std::uint16_t port() const;
    std::string base_url() const; // "http://127.0.0.1:PORT" or "https://localhost:PORT"

    // --- admin (also reachable over HTTP under /_sim/) ---
    /// Adds a contact (GHL field names); returns its id. dateAdded/dateUpdated set to now.
    std::string seed_contact(const boost::json::object& fields);
    std::string seed_task(const std::string& contact_id, const boost::json::object& fields);
    std::string seed_note(const std::string& contact_id, const boost::json::object& fields);
    std::string seed_appointment(const std::string& contact_id, const boost::json::object& fields);
    /// Adds a custom field of the location (name, dataType, fieldKey, model, picklistOptions);
    /// returns its id. Also POST /_sim/customFields.
    std::string seed_custom_field(const boost::json::object& fields);
    /// Changes a contact "remotely" (as a GHL user would); bumps dateUpdated.
    void update_contact(const std::string& id, const boost::json::object& patch);
    void delete_contact(const std::string& id);
    /// Everything the simulator holds: {"contacts":[…],"tasks":[…],"notes":[…],"appointments":[…]}.
    boost::json::value state() const;
    void set_faults(const fault_config& f);
    stats get_stats() const;
    /// An authorization code for the OAuth code exchange.
    std::string issue_auth_code();

    // --- additions (not part of the original contract) ---
    /// Creates `n` contacts fast (deterministic names, unique emails and phones, distinct
    /// dateAdded/dateUpdated in the past); returns their ids. Also POST /_sim/bulk_seed.
    std::vector<std::string> seed_contacts(std::size_t n);
    std::vector<request_record> requests() const;
    std::vector<webhook_record> webhooks() const;
    fault_config faults() const;
    /// Clears contacts, tasks, notes, appointments, stats, the request log, faults and rate-limit
    /// counters; OAuth grants and settings stay.
    void reset();
    /// "Location is not active": token grants fail with 400 until reactivated.
    void set_location_active(bool active);
    void set_allow_duplicates(bool allow);
    void set_rate_limits(bool enabled, int burst, int window_ms, long long daily);
    /// Makes every OAuth access token issued so far expired (API calls with them get 401).
    void expire_access_tokens();
    /// Starts (or, with "", stops) delivering webhooks to `url`.
    void set_webhook_url(const std::string& url);
    /// Signs `payload` (adding timestamp/webhookId/locationId when missing) and records and
    /// delivers it like an event, e.g. to replay an old webhook. Returns the exact body.
    std::string send_webhook(const boost::json::object& payload);
    /// The test Ed25519 key (x-ghl-signature) and legacy RSA key (x-wh-signature), PEM SPKI.
    std::string webhook_public_key_pem() const;
    std::string webhook_rsa_public_key_pem() const;
    /// Base64 signatures over `body`, as the simulator sends them.
    std::string sign_webhook(const std::string& body) const;
    std::string sign_webhook_rsa(const std::string& body) const;
    /// The PKI in use (generated at start() when tls and none was given).
    test_pki pki() const;
    const std::string& location_id() const;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

} // namespace speak4::sim
