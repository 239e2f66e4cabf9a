#pragma once
// Speak4 events, v1 (DESIGN §3): the model and its validation. Parsing never throws; a bad
// event yields a validation_error naming the field, and the whole event is rejected.

#include "core/config.hpp"
#include "store/custom_fields.hpp"

#include <boost/assert/source_location.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <boost/system/result.hpp>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace speak4::sync {

enum class event_type {
    contact_created,
    contact_updated,
    contact_deleted,
    contact_opened,
    contact_tagged,
    contact_untagged,
    note_created,
    note_updated,
    note_deleted,
    task_created,
    task_updated,
    task_completed,
    task_deleted,
    lead_created,
};

/// "contact.created", …
std::string_view to_string(event_type);
std::optional<event_type> parse_event_type(std::string_view);

/// Names an entity by Speak4's id and/or GHL's id; at least one is set after validation.
struct entity_ref {
    std::optional<std::string> speak4_id;
    std::optional<std::string> ghl_id;
};

/// Contact fields to change, already in GHL's names (after [rules.field_map]).
struct contact_changes {
    /// Standard GHL fields named by the event ("firstName", "email", "dnd", …) -> value
    /// (string, bool for dnd, or null to clear). Never holds "tags" or "customFields".
    boost::json::object fields;
    /// Present when the event carries `tags`: replaces the whole set.
    std::optional<std::vector<std::string>> tags;
    /// Custom field id -> value (string, number, array of strings, or null to clear).
    std::map<std::string, boost::json::value> custom_fields;

    bool empty() const { return fields.empty() && !tags && custom_fields.empty(); }
};

struct note_data {
    entity_ref ref;                  // speak4_id and/or ghl_id
    std::optional<std::string> body; // required for note.created and attached notes
    std::optional<std::string> title;
};

struct task_data {
    entity_ref ref;
    std::optional<std::string> title; // required for task.created
    std::optional<std::string> body;
    // Normalized "YYYY-MM-DDTHH:MM:SS.mmmZ"; required for task.created.
    std::optional<std::string> due_date;
    std::optional<bool> completed; // required for task.completed
    std::optional<std::string> assigned_to;
};

/// A validated event.
struct event {
    event_type type{};
    std::optional<std::string> event_id;
    entity_ref contact;            // every event names a contact
    contact_changes changes;       // contact.created/updated, lead.created
    std::vector<note_data> notes;  // attached notes (contact.*), or the one note (note.*)
    std::optional<task_data> task; // task.*
    std::vector<std::string> tags; // contact.tagged / contact.untagged
    bool pull = false;             // contact.updated with pull: true
};

/// Why an event was rejected: `field` is the dotted path ("task.title", "contact.email",
/// "notes[1].body", "" for the document itself), `message` a sentence that names it
/// ("task.title is required").
struct validation_error {
    std::string field;
    std::string message;
};

struct event_limits {
    std::size_t max_bytes = std::size_t{256} * 1024; // DESIGN §3
    std::size_t max_depth = 16;
    std::size_t max_string = std::size_t{64} * 1024; // any one string value (note bodies)
    std::size_t max_id = 128;                        // event_id, speak4_id, ghl_id
    std::size_t max_tags = 100;
    std::size_t max_tag_length = 128;
    std::size_t max_notes = 100;
    std::size_t max_custom_fields = 200;
    std::size_t max_options = 100; // entries of an array-valued (multi-select) custom field
};

/// Lets `result<event, validation_error>::value()` compile for callers that want an exception
/// (std::invalid_argument carrying the message) on the control plane; parse_event never throws.
[[noreturn]] void throw_exception_from_error(const validation_error& e,
                                             const boost::source_location& loc);

using field_map = std::map<std::string, std::string>;
/// Custom field id -> the field as GHL lists it (its type checks values at intake).
using custom_field_types = std::map<std::string, store::custom_field_row>;

/// Parses and validates one event from JSON text. `map` renames Speak4 contact fields to GHL
/// fields ("mobile" -> "phone", "lead_score" -> "customFields.<id>"). With `types`, a value for
/// a custom field it lists must suit the field's type ("contact.lead_score: maps to the custom
/// field \"Lead score\" (NUMERICAL), which takes a number").
boost::system::result<event, validation_error>
parse_event(std::string_view json_text, const field_map& map = {}, const event_limits& limits = {},
            const custom_field_types* types = nullptr);

/// Whether this deployment takes `ev` (sync.direction, sync.entities); the error names the
/// setting: "contact.created is a write to GHL, and sync.direction = \"pull\" sends none".
/// A pull request (contact.opened, contact.updated with pull) is not a write.
std::optional<validation_error> check_allowed(const event& ev, sync_direction direction,
                                              const entity_set& entities);

} // namespace speak4::sync
