#pragma once
// Custom fields by name: `[rules.field_map]` targets may be a GHL contact field, "tags",
// "customFields.<id>", "customFields.<fieldKey>" (with or without the "contact." prefix) or a
// custom field's name. resolve_fields() turns them into GHL ids against the location's listing
// (GET /locations/:locationId/customFields, or the SQLite cache of it), refusing unknown and
// ambiguous names; check_custom_value() checks an event's value against the field's type at
// intake.
//
// Threading: pure functions.

#include "store/custom_fields.hpp"
#include "sync/event.hpp"

#include <boost/json/value.hpp>
#include <boost/system/result.hpp>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace speak4::sync {

/// Every target a GHL contact field, "tags" or "customFields.<id>"; the custom fields the map
/// sends to, by id, with their types for intake checks.
struct resolved_fields {
    field_map map;
    custom_field_types custom;
};

/// True when a target names a custom field by name or fieldKey (GHL's listing is needed).
bool needs_listing(const field_map& raw);
/// True when a target is a custom field in any form (the listing gives its type).
bool uses_custom_fields(const field_map& raw);

/// Resolves `raw` (`listing` null: GHL's list is not available, so only GHL fields and
/// customFields.<id> work). The error lists every problem, one a line, each naming its key:
///   rules.field_map.score: "Lead Score" names no custom field of the location (its custom
///   fields: "Lead score", "Budget"; `speak4-sync fields` lists them)
boost::system::result<resolved_fields, std::string>
resolve_fields(const field_map& raw, const std::vector<store::custom_field_row>* listing);

} // namespace speak4::sync
