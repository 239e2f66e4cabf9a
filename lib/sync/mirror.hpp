#pragma once
// Applying GHL records to the SQLite mirror (DESIGN §4): the write side of the pull path.
//
// Mapping. A contact's firstName/lastName/email/phone go to their columns, `tags` to the JSON
// array, `customFields` [{id, value}] to the JSON object id -> value, the other GHL contact
// fields (companyName, address1, dnd, …: `contact_other_fields`) to the `fields` object,
// businessId to business_id, dateUpdated to remote_updated_at, and the whole object as received
// to `raw`. Tasks, notes and appointments map likewise (tasks.due_date and
// appointments.start_time/end_time normalized to ISO-8601 UTC; appointments.status is
// appointmentStatus, else status).
//
// Bad input. A field of the wrong type is not stored (the mirror keeps its previous value), is
// logged, and counted in `invalid_fields`; everything else of the record is stored and `raw`
// keeps it all. Nothing a record holds makes apply throw.
//
// Conflicts (sync.conflict), decided per field. A field "has a pending local change" when an
// outbox row of the entity in state pending/inflight names it (payload "set" keys,
// "customFields.<id>" for each custom field, "tags" for tag_add/tag_remove rows, "completed"
// for complete rows). For such a field:
//   * the remote value equals the mirror's (local) value, or equals the previous remote value
//     (the last `raw`: only the local side changed it) -> no conflict, the local value stays;
//   * otherwise it is a conflict: remote_wins -> the remote value; local_wins -> the local
//     value; newest_wins -> the remote value when GHL's dateUpdated is later than the newest
//     outbox row naming the field (created_at), else the local value. Tasks and notes carry no
//     dateUpdated; the remote side of such a conflict was observed after the local change was
//     made, so newest_wins gives it to the remote value.
//   Each conflict is a `conflicts` row and a log line. When the remote value wins, the field is
//   taken out of the pending rows' payload "set" (so the push does not overwrite it); an update
//   row left with nothing to send, and pending tag rows when "tags" is lost, are settled as
//   done ("superseded by a remote change"). In-flight rows cannot be changed any more; that is
//   logged (their push may still overwrite the remote value, and the next pull then brings the
//   pushed value back).
//   Fields without a pending local change simply take the remote value.
//
// Change feed. Every change to a mirror row appends a `changes` row (source 'remote') in the
// same transaction: contact/task/note/appointment created|updated|deleted, contact 'workflow'
// (tag routes), reminder scheduled|rescheduled|removed. Nothing here writes an outbox row: a
// pulled change never echoes back to GHL.
//
// Threading: a mirror wraps one connection and is used on the database thread only. It opens
// no transaction itself: callers wrap what must be atomic (a page of contacts and its cursor)
// in one SQLite::Transaction. It captures the time at construction: make one per transaction.

#include "core/clock.hpp"
#include "core/config.hpp"
#include "core/entity.hpp"
#include "ghl/model.hpp"
#include "store/statement_cache.hpp"
#include "sync/outbox.hpp"

#include <SQLiteCpp/Database.h>
#include <array>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace speak4::sync {

/// GHL contact fields kept in contacts.fields (besides the columns, tags and customFields).
inline constexpr std::array<std::string_view, 18> contact_other_fields{
    "name",        "address1", "city",        "state",   "postalCode",       "website",
    "timezone",    "source",   "assignedTo",  "country", "companyName",      "gender",
    "dateOfBirth", "dnd",      "dndSettings", "type",    "additionalEmails", "additionalPhones"};

struct mirror_options {
    conflict_policy policy = conflict_policy::newest_wins;
    rules_config rules;
};

/// What the mirror holds for a GHL contact id.
struct known_contact {
    std::int64_t id = 0;
    std::optional<sys_time> remote_updated_at;
    bool deleted = false;
    bool has_raw = false; ///< some GHL record has been stored (false for a webhook stub)
};

/// Text apply_contact() derives from a remote contact alone (no database): what it stores in
/// `raw` and its dateUpdated as stored. prepare_contact() may run on any thread, e.g. the
/// network thread while the database thread writes another page. (Strings only: the flattened
/// fields are dozens of small allocations, and freeing them on another thread than the one that
/// made them cost more CPU than the move saved; measured with pull_bench.)
struct prepared_contact {
    std::string raw;                           ///< the record without "searchAfter"
    std::optional<std::string> remote_updated; ///< dateUpdated, ISO-8601
};

/// Prepares `c` for mirror::apply_contact.
prepared_contact prepare_contact(const ghl::contact& c);

/// How one remote contact was applied.
struct contact_result {
    std::int64_t id = 0;  ///< mirror row (0 when skipped)
    bool created = false; ///< first time this contact's data reached the mirror
    bool changed = false; ///< a mirror column changed (a changes row was written)
    bool skipped = false; ///< deleted in the mirror: left alone (never resurrected)
    bool workflow_changed = false;
    int conflicts = 0;
    int invalid_fields = 0; ///< remote fields not stored because malformed
    std::optional<std::string> business_id;
};

/// How a list of children (tasks, notes or appointments of one contact) was applied.
struct children_result {
    int created = 0;
    int updated = 0;
    int unchanged = 0;
    int deleted = 0; ///< mirror rows absent from the list, marked deleted
    int skipped = 0; ///< deleted in the mirror: left alone
    int conflicts = 0;
    int reminders = 0; ///< reminder rows scheduled, moved or removed
};

/// One conflict as recorded (also returned for tests and logs).
struct conflict_record {
    std::string entity;
    std::int64_t entity_id = 0;
    std::string field;
    std::optional<std::string> local_value;
    std::optional<std::string> remote_value;
    std::string policy;
    std::string winner; ///< "local" | "remote"
};

/// Applies GHL records to the mirror. See the top of this file.
class mirror {
public:
    mirror(SQLite::Database& db, const speak4::clock& clk, const mirror_options& opt);

    /// The mirror's contact with this GHL id, if any.
    std::optional<known_contact> find_contact(std::string_view ghl_id);

    /// When the records about to be applied were read from GHL (before the request). A field
    /// one of our own pushes wrote after that moment (or is writing now) keeps its local value:
    /// the copy predates our write. Without it, only queued writes are considered.
    void set_fetched_at(sys_time t);

    /// Applies a whole contact record (GET, or a search/list item that carries the names):
    /// inserts or updates the row, resolves conflicts, applies tag routes. A contact deleted in
    /// the mirror is skipped.
    contact_result apply_contact(const ghl::contact& c);
    /// The same, with prepare_contact(c) already done.
    contact_result apply_contact(const ghl::contact& c, prepared_contact prepared);

    /// Marks the contact with this GHL id deleted (a changes row when it was not). Returns true
    /// when it changed.
    bool mark_contact_deleted(std::string_view ghl_id);

    /// A contact marked deleted that GHL shows again (a read by id, a webhook's fetch) is live
    /// again, with a `revived` changes row (DESIGN §9); not while a delete of it from Speak4 is
    /// queued or in flight. Returns true when it changed. Call before apply_contact().
    bool revive_contact(std::string_view ghl_id);

    /// Applies the full task list of mirror contact `contact_id`. Rows with a GHL id that are
    /// absent from the list are marked deleted, unless touched at or after `listed_at` (a push
    /// that linked its GHL id while the list was in flight).
    children_result apply_tasks(std::int64_t contact_id, const std::vector<ghl::task>& tasks,
                                sys_time listed_at);
    children_result apply_notes(std::int64_t contact_id, const std::vector<ghl::note>& notes,
                                sys_time listed_at);
    /// Appointments also keep their reminders row in line (rules.appointment_reminder_minutes).
    children_result apply_appointments(std::int64_t contact_id,
                                       const std::vector<ghl::appointment>& appts,
                                       sys_time listed_at);

    /// Audit rows (one per HTTP request), and the rate-limit cursors their headers imply.
    void write_audit(const std::vector<audit_entry>& entries);

    /// sync_cursors access.
    std::optional<std::string> cursor(std::string_view name);
    void set_cursor(std::string_view name, std::string_view value);
    void erase_cursor(std::string_view name);

    /// Queues a background fetch of a contact's children (table pull_queue); `all` widens an
    /// existing entry from tasks to all. Due at once.
    void enqueue_children(std::int64_t contact_id, bool all, std::string_view reason);

    /// Conflicts recorded by this instance (in order).
    const std::vector<conflict_record>& conflicts() const { return conflicts_; }

    const std::string& now_text() const { return now_; }

private:
    std::optional<std::string> fetched_at_; ///< set_fetched_at()
    struct pending_field {
        std::string newest_created_at; ///< the newest pending row naming the field
        std::vector<std::int64_t> rows;
        /// What the rows would write, in order: a value set by a create/update/complete row,
        /// or (for "tags") the tags of a tag_add ("+") or tag_remove ("-") row. A remote value
        /// one of them explains is our own write coming back, not a remote edit.
        std::vector<std::pair<std::string, boost::json::value>> writes;
        /// A row naming the field is in flight, or reached GHL after the copy being applied
        /// was read: that copy is older than our own write, whose value stands.
        bool local_is_ahead = false;
    };
    using pending_map = std::map<std::string, pending_field>;
    using flat = std::map<std::string, boost::json::value>;

    pending_map pending_fields(entity_kind entity, std::int64_t id);
    /// Decides the merged value of every field; records conflicts and settles outbox rows.
    flat merge(entity_kind entity, std::int64_t id, const flat& local, const flat& remote,
               const std::optional<flat>& previous, const std::set<std::string>& invalid,
               std::optional<sys_time> remote_updated, int& conflicts);
    static bool is_own_write(const pending_field& p, const std::string& field,
                             const boost::json::value& remote, const std::optional<flat>& previous);
    /// Marks deleted the rows of `table` (tasks, notes, appointments) of one contact that GHL
    /// knows (a ghl_id) but no longer lists, untouched since `listed_at`; returns their ids.
    std::vector<std::int64_t> mark_unlisted(const std::string& table, std::int64_t contact_id,
                                            const std::set<std::string>& listed,
                                            sys_time listed_at);
    void drop_pending_field(entity_kind entity, const std::string& field, const pending_field& p);
    void change(std::string_view entity, std::int64_t id, std::string_view kind);
    struct child_input {
        const std::string* id;
        const boost::json::object* raw;
    };
    children_result apply_children(entity_kind entity, std::int64_t contact_id,
                                   const std::vector<child_input>& items, sys_time listed_at);

    SQLite::Database& db_;
    [[maybe_unused]] const speak4::clock& clock_;
    mirror_options opt_;
    store::statement_cache stmts_;
    sys_time now_tp_;
    std::string now_;
    std::vector<conflict_record> conflicts_;
};

} // namespace speak4::sync
