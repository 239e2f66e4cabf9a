#pragma once
// Structured logging: every line is an event with fields. In "json" format one JSON object a
// line ({"ts":…,"level":"info","msg":"push","outbox_id":12}); in "text" format
// "ts level msg key=value …". Secrets have no way in: `secret` cannot be passed as a field.

#include <boost/json/object.hpp>
#include <string>
#include <string_view>

namespace speak4::log {

enum class level { trace, debug, info, warn, error, critical, off };
enum class format { json, text };

/// Parses "trace|debug|info|warn|error|critical|off"; nullopt-like false on failure.
bool parse_level(std::string_view s, level& out);

/// Sets up the process logger (stderr). Safe to call again (reload).
void init(level lvl, format fmt);

/// True when `lvl` would be written.
bool enabled(level lvl);

/// Writes one event. `fields` are added after ts/level/msg.
void write(level lvl, std::string_view msg, const boost::json::object& fields = {});

inline void trace(std::string_view m, const boost::json::object& f = {}) {
    write(level::trace, m, f);
}
inline void debug(std::string_view m, const boost::json::object& f = {}) {
    write(level::debug, m, f);
}
inline void info(std::string_view m, const boost::json::object& f = {}) {
    write(level::info, m, f);
}
inline void warn(std::string_view m, const boost::json::object& f = {}) {
    write(level::warn, m, f);
}
inline void error(std::string_view m, const boost::json::object& f = {}) {
    write(level::error, m, f);
}

/// Formats one event as a line without writing it (used by tests and by `write`).
std::string format_line(format fmt, level lvl, std::string_view ts, std::string_view msg,
                        const boost::json::object& fields);

} // namespace speak4::log
