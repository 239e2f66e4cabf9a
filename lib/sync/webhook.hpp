#pragma once
// GHL webhooks (ghl-api.md §11, DESIGN §2): after the signature is verified (lib/api), a webhook
// is checked for freshness, deduplicated on webhookId and turned into a targeted pull of the
// affected contact, all in ONE transaction.
//
// What each event does:
//   Contact* (id), Task*/Note* (contactId), Appointment* (appointment.contactId): an outbox row
//     op='pull', entity='contact' for the mirror contact (a stub contacts row is created for an
//     unknown ghl id), payload {"children":true,"reason":"webhook","webhook_type":TYPE}, unless a
//     pending pull for that contact already exists (coalesced).
//   ContactDelete: additionally marks a known contact deleted = 1 with a change-feed row
//     (entity 'contact', kind 'deleted', source 'remote'); an unknown one is left alone.
//   anything else (INSTALL, Opportunity*, ...): recorded as seen, nothing else.

#include "core/clock.hpp"
#include "store/statement_cache.hpp"

#include <boost/json/object.hpp>
#include <boost/system/result.hpp>
#include <chrono>
#include <optional>
#include <string>

namespace speak4::sync {

/// A webhook body that passed the checks that need no database.
struct webhook_info {
    std::string webhook_id;
    std::string type;
    sys_time timestamp;
    /// The GHL contact id the event is about; empty for event types that need no action.
    std::string contact_ghl_id;
};

/// Why a webhook was refused: `invalid` (missing or malformed field, named by `field`), `stale`
/// (timestamp outside +-max_age), `replayed` (webhookId already seen), `io` (database failure).
struct webhook_error {
    enum class kind { invalid, stale, replayed, io } what = kind::invalid;
    std::string field;
    std::string message;
};

/// Parses and checks a webhook body: `webhookId`, `type` and `timestamp` are required; the
/// timestamp must be within `max_age` of `now` either way; contact-scoped events must name their
/// contact. Pure: no database, no exceptions.
boost::system::result<webhook_info, webhook_error>
check_webhook(const boost::json::object& body, sys_time now, std::chrono::seconds max_age);

/// What apply() did.
struct webhook_applied {
    std::optional<long long> contact_id; // the mirror contact pulled (created as a stub if new)
    bool stub_created = false;
    std::optional<long long> pull_outbox_id; // the pull row (new, or the pending one it joined)
    bool coalesced = false;                  // an existing pending pull was reused
    bool contact_deleted = false;            // ContactDelete marked the contact deleted
    long long seq = 0;                       // last change-feed seq written (0: none)
};

/// Applies webhooks to the mirror. Threading: one instance per connection, used from the thread
/// that owns the connection (the db_worker thread).
class webhook_store {
public:
    /// `max_age` is webhooks.max_age_seconds: webhook_seen rows older than twice that (plus a
    /// minute) are pruned, at most once per `max_age`.
    webhook_store(SQLite::Database& db, const clock& clk, std::chrono::seconds max_age);

    /// In one IMMEDIATE transaction: refuses a seen webhookId (kind replayed), records it, and
    /// acts as described at the top of this file. Never throws; a database failure is kind io
    /// with nothing written.
    boost::system::result<webhook_applied, webhook_error> apply(const webhook_info& info);

    /// Deletes webhook_seen rows received before `now - 2 * max_age - 60 s`; returns how many.
    /// A replay of such a webhook is already refused as stale: its timestamp was at most max_age
    /// ahead of its receipt, so it is now more than max_age old.
    long long prune();

private:
    webhook_applied act(const webhook_info& info, const std::string& now);

    SQLite::Database& db_;
    const clock& clock_;
    std::chrono::seconds max_age_;
    // Re-created after a failure: a statement whose step failed reports that error again on its
    // next reset, which would fail the next webhook too.
    std::optional<store::statement_cache> stmts_;
    std::optional<sys_time> last_prune_;
};

} // namespace speak4::sync
