#pragma once
// `speak4-sync check-config --online`: one cheap authenticated call per scope the configuration
// needs, so a token that lacks one is found before going live, and the location's rate-limit
// budget as GHL reports it.
//
//   contacts.readonly                GET /contacts/?limit=1
//   contacts.write (not with sync.direction = "pull")
//                                    PUT /contacts/<an id that cannot exist>: GHL checks the
//                                    scope first, so 401 means the scope is missing and a 4xx
//                                    about the id means it is there; nothing is written
//   locations/customFields.readonly  GET /locations/:locationId/customFields (only when
//                                    [rules.field_map] names custom fields)
//
// Threading: runs its own event loop on the calling thread.

#include "core/config.hpp"

#include <optional>
#include <string>
#include <vector>

namespace speak4::app {

struct scope_check {
    std::string scope;     ///< "contacts.write"
    std::string needed_by; ///< "pushes (Speak4 → GHL)"
    std::string probe;     ///< "PUT /contacts/:contactId"
    enum class state { granted, missing, unknown } result = state::unknown;
    std::string detail; ///< GHL's answer or the transport error
};

struct online_report {
    std::vector<scope_check> checks;
    std::optional<long long> rate_remaining;  ///< X-RateLimit-Remaining of the last answer
    std::optional<long long> daily_remaining; ///< X-RateLimit-Daily-Remaining
    bool ok() const;                          ///< every needed scope granted
};

online_report check_online(const config& cfg, const secrets& sec);

} // namespace speak4::app
