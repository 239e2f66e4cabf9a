#pragma once
// The location's custom fields for `[rules.field_map]` by name: listing them from GHL (the
// daemon at start and on SIGHUP, `speak4-sync fields`), the SQLite cache of the last listing,
// and the resolution of the field map against them (sync/custom_fields.hpp).
//
// Threading: fetch_custom_fields() runs on the caller's io_context (awaitable); list_from_ghl()
// runs its own event loop (the CLI). The rest is synchronous on the caller's connection.

#include "core/config.hpp"
#include "ghl/client.hpp"
#include "store/custom_fields.hpp"
#include "sync/custom_fields.hpp"

#include <SQLiteCpp/Database.h>
#include <boost/asio/awaitable.hpp>
#include <boost/system/result.hpp>
#include <optional>
#include <string>
#include <vector>

namespace speak4::app {

using field_rows = std::vector<store::custom_field_row>;

/// GET /locations/:locationId/customFields?model=contact; the error names the call and GHL's
/// answer ("GET /locations/:locationId/customFields: 401: The token is not authorized for this
/// scope.").
boost::asio::awaitable<boost::system::result<field_rows, std::string>>
fetch_custom_fields(ghl::client& client);

/// The same on its own event loop, with the config's credentials (OAuth tokens from the
/// database), saving the listing in the cache. For `speak4-sync fields`. With `use_database`
/// false (a private token only: `init`, before any database exists) nothing is opened or saved.
boost::system::result<field_rows, std::string> list_from_ghl(const config& cfg, const secrets& sec,
                                                             bool use_database = true);

/// Resolves cfg.rules.field_map against `fresh` (a listing just fetched; it is saved to the
/// cache) or else the cache in `db`. Throws config_error naming the first bad key
/// ("rules.field_map.score: \"Lead Score\" names no …"); every problem is in what().
sync::resolved_fields resolve_field_map(const config& cfg, const std::optional<field_rows>& fresh,
                                        SQLite::Database& db);

} // namespace speak4::app
