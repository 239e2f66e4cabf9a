#include "core/log.hpp"

#include "core/clock.hpp"

#include <atomic>
#include <boost/json/serialize.hpp>
#include <mutex>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace speak4::log {
namespace {

std::atomic<level> g_level{level::info};
std::atomic<format> g_format{format::json};

const char* name(level l) {
    switch (l) {
    case level::trace:
        return "trace";
    case level::debug:
        return "debug";
    case level::info:
        return "info";
    case level::warn:
        return "warn";
    case level::error:
        return "error";
    case level::critical:
        return "critical";
    case level::off:
        return "off";
    }
    return "info";
}

spdlog::logger& logger() {
    // spdlog does the locking and the (unbuffered) write to stderr; we hand it finished lines.
    static std::shared_ptr<spdlog::logger> l = [] {
        auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
        auto lg = std::make_shared<spdlog::logger>("speak4", sink);
        lg->set_pattern("%v");
        lg->set_level(spdlog::level::trace);
        lg->flush_on(spdlog::level::trace);
        return lg;
    }();
    return *l;
}

} // namespace

bool parse_level(std::string_view s, level& out) {
    static constexpr level all[] = {level::trace, level::debug,    level::info, level::warn,
                                    level::error, level::critical, level::off};
    for (level l : all)
        if (s == name(l)) {
            out = l;
            return true;
        }
    return false;
}

void init(level lvl, format fmt) {
    g_level = lvl;
    g_format = fmt;
    (void)logger();
}

bool enabled(level lvl) {
    return lvl != level::off && lvl >= g_level.load();
}

std::string format_line(format fmt, level lvl, std::string_view ts, std::string_view msg,
                        const boost::json::object& fields) {
    if (fmt == format::json) {
        boost::json::object o;
        o.reserve(fields.size() + 3);
        o["ts"] = ts;
        o["level"] = name(lvl);
        o["msg"] = msg;
        for (const auto& kv : fields)
            o[kv.key()] = kv.value();
        return boost::json::serialize(o);
    }
    std::string line;
    line.append(ts).append(" ").append(name(lvl)).append(" ").append(msg);
    for (const auto& kv : fields) {
        line.append(" ").append(kv.key()).append("=");
        if (kv.value().is_string())
            line.append(kv.value().get_string());
        else
            line.append(boost::json::serialize(kv.value()));
    }
    return line;
}

void write(level lvl, std::string_view msg, const boost::json::object& fields) {
    if (!enabled(lvl))
        return;
    const std::string ts = format_iso8601(system_clock::instance().now());
    logger().log(spdlog::level::info, "{}", format_line(g_format.load(), lvl, ts, msg, fields));
}

} // namespace speak4::log
