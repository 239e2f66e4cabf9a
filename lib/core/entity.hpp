#pragma once
// The kinds of record Speak4 and GHL exchange through the outbox (DESIGN §4): a type, not a
// string compared in a dozen places. The SQL text values stay 'contact' | 'task' | 'note'
// (outbox.entity, changes.entity, conflicts.entity); to_string() and parse_entity_kind() are the
// only translation between the two.

#include <optional>
#include <string_view>

namespace speak4 {

enum class entity_kind { contact, task, note };

/// "contact", "task", "note": the value stored in outbox.entity and changes.entity.
constexpr std::string_view to_string(entity_kind k) noexcept {
    switch (k) {
    case entity_kind::contact:
        return "contact";
    case entity_kind::task:
        return "task";
    case entity_kind::note:
        return "note";
    }
    return "contact";
}

/// The inverse of to_string(); nullopt for any other text.
constexpr std::optional<entity_kind> parse_entity_kind(std::string_view s) noexcept {
    if (s == "contact")
        return entity_kind::contact;
    if (s == "task")
        return entity_kind::task;
    if (s == "note")
        return entity_kind::note;
    return std::nullopt;
}

/// The mirror table of a kind: "contacts", "tasks", "notes".
constexpr std::string_view table_of(entity_kind k) noexcept {
    switch (k) {
    case entity_kind::contact:
        return "contacts";
    case entity_kind::task:
        return "tasks";
    case entity_kind::note:
        return "notes";
    }
    return "contacts";
}

} // namespace speak4
