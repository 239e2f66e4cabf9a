#pragma once
// ISO-8601 timestamps as GHL writes them: UTC with milliseconds ("2021-07-02T05:18:26.704Z").

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace speak4 {

using sys_time = std::chrono::sys_time<std::chrono::milliseconds>;

/// Formats as "YYYY-MM-DDTHH:MM:SS.mmmZ".
std::string format_iso8601(sys_time t);

/// Parses ISO-8601 date-times: "YYYY-MM-DD", "YYYY-MM-DDTHH:MM[:SS[.fff]]" followed by "Z",
/// "+HH:MM", "-HH:MM" or nothing (taken as UTC), and GHL's appointment form
/// "YYYY-MM-DD HH:MM:SS". Returns nullopt for anything else, including impossible dates.
std::optional<sys_time> parse_iso8601(std::string_view text);

/// Milliseconds since the Unix epoch.
inline long long to_epoch_ms(sys_time t) {
    return t.time_since_epoch().count();
}
inline sys_time from_epoch_ms(long long ms) {
    return sys_time{std::chrono::milliseconds{ms}};
}

} // namespace speak4
