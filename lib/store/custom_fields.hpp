#pragma once
// The cache of the location's contact custom fields (table `custom_fields`, migration 0006):
// what GHL last listed, so a field map naming fields by name or fieldKey resolves at an offline
// start and in offline CLI commands.
//
// Threading: like the connection they are given (the database thread, or a CLI's own).

#include <SQLiteCpp/Database.h>
#include <optional>
#include <string>
#include <vector>

namespace speak4::store {

/// One custom field as GHL describes it (CustomFieldSchema).
struct custom_field_row {
    std::string id;
    std::string name;
    std::string field_key; ///< "contact.lead_score"
    std::string data_type; ///< "NUMERICAL", "TEXT", "SINGLE_OPTIONS", …
    std::string model = "contact";
    std::vector<std::string> options; ///< picklist option values
    bool operator==(const custom_field_row&) const = default;
};

struct custom_field_cache {
    std::vector<custom_field_row> fields; ///< in GHL's order
    std::string fetched_at;
};

/// Replaces the cache with `fields` (one transaction).
void save_custom_fields(SQLite::Database& db, const std::vector<custom_field_row>& fields,
                        const std::string& fetched_at);

/// The cache, or nullopt when GHL was never listed.
std::optional<custom_field_cache> load_custom_fields(SQLite::Database& db);

} // namespace speak4::store
