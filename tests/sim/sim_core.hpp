#pragma once
// ghl-sim internals: everything except the network. `core` turns one HTTP request into one
// answer (or a decision to drop or hold the connection) and owns all simulated state; the Beast
// server in ghl_sim.cpp only moves bytes. Keeping Beast out of this file keeps builds fast.

#include "ghl_sim.hpp"
#include "sim_crypto.hpp"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace speak4::sim::detail {

namespace bj = boost::json;

struct http_request {
    std::string method;        // "GET"
    std::string target;        // "/contacts/?locationId=…"
    std::string authorization; // Authorization header
    std::optional<std::string> version;
    std::string content_type;
    std::string body;
};

/// What the connection does with the answer.
enum class action {
    respond, // write the response
    drop,    // close the connection without answering
    hold,    // never answer; keep the connection until the peer closes or the server stops
    reset,   // reset the connection (RST) without answering
};

struct http_response {
    int status = 200;
    std::string content_type = "application/json";
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;
    action act = action::respond;
    int latency_ms = 0;
    bool slow = false;
    int slow_chunk_bytes = 16;
    int slow_delay_ms = 10;
};

/// A signed webhook ready to deliver; `index` identifies its record for webhook_result().
struct webhook_delivery {
    std::size_t index = 0;
    std::string url;
    std::string body;
    std::string ghl_signature;
    std::string wh_signature;
};

class core {
public:
    explicit core(options opt);
    core(const core&) = delete;
    core& operator=(const core&) = delete;

    /// Handles one request; thread-safe.
    http_response handle(const http_request& req);

    /// Called (with the core's lock held: must only enqueue) for each webhook to deliver.
    void set_delivery_sink(std::function<void(webhook_delivery)> sink);
    void set_base_url(std::string url);
    /// Records the outcome of a delivery.
    void webhook_result(std::size_t index, int status, int attempts);
    int webhook_timeout_ms() const;
    int webhook_retry_delay_ms() const;
    int webhook_max_retries() const;

    // Admin (the public server methods forward here).
    std::string seed_contact(const bj::object& fields);
    std::string seed_task(const std::string& contact_id, const bj::object& fields);
    std::string seed_note(const std::string& contact_id, const bj::object& fields);
    std::string seed_appointment(const std::string& contact_id, const bj::object& fields);
    /// A custom field (CustomFieldSchema names: name, dataType, fieldKey, model,
    /// picklistOptions); id, fieldKey ("contact.<name>") and model ("contact") are defaulted.
    std::string seed_custom_field(const bj::object& fields);
    void update_contact(const std::string& id, const bj::object& patch);
    void delete_contact(const std::string& id);
    bj::value state() const;
    void set_faults(const fault_config& f);
    fault_config faults() const;
    stats get_stats() const;
    std::string issue_auth_code();
    std::vector<std::string> seed_contacts(std::size_t n);
    std::vector<request_record> requests() const;
    std::vector<webhook_record> webhooks() const;
    void reset();
    void set_location_active(bool active);
    void set_allow_duplicates(bool allow);
    void set_rate_limits(bool enabled, int burst, int window_ms, long long daily);
    void expire_access_tokens();
    void set_webhook_url(const std::string& url);
    std::string send_webhook(const bj::object& payload);
    const webhook_signer& signer() const { return signer_; }
    const std::string& location_id() const { return opt_.location_id; }

    // Public so the .cpp's free helpers can name them.
    struct contact_rec {
        std::string id;
        bj::object f; // stored fields, GHL names; customFields as [{id, value}]
        long long added = 0;
        long long updated = 0;
        std::string first_lc; // lower-cased firstName/lastName, kept for the name indexes
        std::string last_lc;
    };
    /// Orders contact pointers by (Member, id); also compares with a (key, id) probe.
    template <class Key, Key contact_rec::*Member>
    struct index_less {
        using is_transparent = void;
        using probe = std::pair<Key, std::string_view>;
        static const Key& key(const contact_rec* c) { return c->*Member; }
        static bool less(const Key& ka, std::string_view ia, const Key& kb, std::string_view ib) {
            if (ka < kb) {
                return true;
            }
            if (kb < ka) {
                return false;
            }
            return ia < ib;
        }
        bool operator()(const contact_rec* a, const contact_rec* b) const {
            return less(a->*Member, a->id, b->*Member, b->id);
        }
        bool operator()(const contact_rec* a, const probe& b) const {
            return less(a->*Member, a->id, b.first, b.second);
        }
        bool operator()(const probe& a, const contact_rec* b) const {
            return less(a.first, a.second, b->*Member, b->id);
        }
    };
    // Indexes hold pointers into contacts_ (std::map nodes never move).
    using updated_index =
        std::set<const contact_rec*, index_less<long long, &contact_rec::updated>>;
    using added_index = std::set<const contact_rec*, index_less<long long, &contact_rec::added>>;
    using first_index =
        std::set<const contact_rec*, index_less<std::string, &contact_rec::first_lc>>;
    using last_index = std::set<const contact_rec*, index_less<std::string, &contact_rec::last_lc>>;
    using lookup_index = std::unordered_map<std::string, std::vector<const contact_rec*>>;

    struct child_rec {
        std::string id;
        std::string contact_id;
        bj::object f;
        long long added = 0;
        long long updated = 0;
    };

    struct route;
    struct search_query;

private:
    using lock_t = std::unique_lock<std::mutex>;

    // Request pipeline (all with mutex_ held).
    http_response dispatch(const http_request& req, request_record& rec);
    http_response handle_admin(const http_request& req, const std::string& path);
    http_response handle_api(const route& r, const http_request& req,
                             const std::map<std::string, std::string>& query);
    http_response oauth_token(const http_request& req);
    std::optional<http_response> check_auth(const http_request& req);
    bool is_static_token(const http_request& req) const;
    std::optional<http_response>
    check_rate_limit(std::vector<std::pair<std::string, std::string>>& headers, bool consume);
    std::string draw_fault(const std::string& route);

    // Contacts.
    http_response contact_get(const std::string& id);
    http_response contact_create(const bj::object& body);
    http_response contact_update(const std::string& id, const bj::object& body);
    http_response contact_delete(const std::string& id);
    http_response contact_upsert(const bj::object& body);
    http_response contact_list(const std::map<std::string, std::string>& query);
    http_response contact_search(const bj::object& body);
    http_response contact_duplicate(const std::map<std::string, std::string>& query);
    http_response contact_business(const std::string& business_id,
                                   const std::map<std::string, std::string>& query);
    http_response tags_change(const std::string& id, const bj::object& body, bool add);
    http_response tasks_list(const std::string& contact_id);
    http_response task_create(const std::string& contact_id, const bj::object& body);
    http_response task_get(const std::string& contact_id, const std::string& task_id);
    http_response task_update(const std::string& contact_id, const std::string& task_id,
                              const bj::object& body, bool completed_only);
    http_response task_delete(const std::string& contact_id, const std::string& task_id);
    http_response notes_list(const std::string& contact_id);
    http_response note_create(const std::string& contact_id, const bj::object& body);
    http_response note_get(const std::string& contact_id, const std::string& note_id);
    http_response note_update(const std::string& contact_id, const std::string& note_id,
                              const bj::object& body);
    http_response note_delete(const std::string& contact_id, const std::string& note_id);
    http_response appointments_list(const std::string& contact_id);
    http_response custom_fields_list(const std::string& location_id,
                                     const std::map<std::string, std::string>& query);

    // State helpers.
    contact_rec* find_contact(const std::string& id);
    std::string new_id();
    std::string new_trace_id();
    std::string new_token(const char* prefix);
    long long now_ms() const;
    long long steady_ms() const;
    long long next_update(long long previous) const;
    void index_add(contact_rec& c);
    void index_remove(const contact_rec& c);
    contact_rec& insert_contact(contact_rec c);
    void apply_contact_fields(contact_rec& c, const bj::object& body, bool* tags_changed);
    void erase_contact(const std::string& id);
    std::optional<std::pair<std::string, std::string>>
    find_duplicate(const bj::object& body, const std::string& self) const;
    bj::object render_contact(const contact_rec& c, bool with_name = true) const;
    bj::object render_task(const child_rec& t) const;
    bj::object render_note(const child_rec& n) const;
    bj::object render_appointment(const child_rec& a) const;
    http_response contact_not_found(const std::string& id) const;
    http_response child_not_found(const char* what, const std::string& id) const;
    void count_create(const std::string& entity, const std::string& key);
    void bump_version() { ++version_; }

    // The lagging search index (fault_config::search_lag_ms).
    void index_schedule(const contact_rec& c);
    void index_schedule_erase(const std::string& id);
    void index_catch_up();
    void index_configure(int lag_ms, int jitter_ms);
    void index_clear();
    std::optional<http_response> draw_outage();

    // Webhooks.
    void emit(const std::string& type, bj::object payload);
    bj::object contact_event(const contact_rec& c) const;
    bj::object child_event(const child_rec& r, bool task) const;
    std::string publish(bj::object payload);

    options opt_;
    webhook_signer signer_;
    mutable std::mutex mutex_;
    std::function<void(webhook_delivery)> sink_;
    std::string base_url_;

    std::mt19937_64 id_rng_;
    std::mt19937_64 token_rng_;
    std::mt19937 fault_rng_;
    std::size_t seeded_ = 0; // seed_contacts() numbering

    std::map<std::string, contact_rec> contacts_;
    std::vector<bj::object> custom_fields_; // GET /locations/:locationId/customFields
    updated_index by_updated_;
    added_index by_added_;
    first_index by_first_;
    last_index by_last_;
    lookup_index by_email_; // lower-cased email
    lookup_index by_phone_; // digits only
    std::map<std::string, child_rec> tasks_;
    std::map<std::string, child_rec> notes_;
    std::map<std::string, child_rec> appointments_;
    std::unordered_map<std::string, std::vector<std::string>> tasks_of_;
    std::unordered_map<std::string, std::vector<std::string>> notes_of_;
    std::unordered_map<std::string, std::vector<std::string>> appointments_of_;
    unsigned long long version_ = 0;
    std::unordered_map<std::string, std::pair<unsigned long long, long long>> total_cache_;

    // OAuth.
    std::unordered_set<std::string> auth_codes_;
    std::unordered_set<std::string> refresh_tokens_;
    std::unordered_map<std::string, long long> access_tokens_; // -> expiry, steady ms
    bool location_active_ = true;

    // Rate limits (fixed windows, steady ms).
    long long window_start_ = -1;
    long long window_count_ = 0;
    long long day_start_ = -1;
    long long day_count_ = 0;

    // Search index while it lags: a copy of each contact as last indexed, with its own ordered
    // indexes, and the changes waiting to be indexed (by when they become searchable). An entry
    // is applied only if it is newer (its seq) than what the index holds for that contact.
    struct index_event {
        std::string id;
        std::optional<contact_rec> snapshot; // nullopt: the contact was deleted
        unsigned long long seq = 0;
    };
    bool lagging_ = false;
    std::map<std::string, contact_rec> indexed_;
    updated_index idx_updated_;
    added_index idx_added_;
    first_index idx_first_;
    last_index idx_last_;
    std::multimap<long long, index_event> index_pending_; // steady ms -> change
    std::unordered_map<std::string, unsigned long long> index_seq_;
    unsigned long long index_next_seq_ = 0;
    unsigned long long index_version_ = 0;
    std::mt19937 lag_rng_;
    long long outage_started_ = -1; // steady ms when the current outage was set

    fault_config faults_;
    long long fault_eligible_ = 0;
    long long fault_injected_ = 0;

    stats stats_;
    std::deque<request_record> log_;
    std::vector<webhook_record> webhooks_;
};

} // namespace speak4::sim::detail
