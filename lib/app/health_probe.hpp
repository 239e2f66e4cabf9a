#pragma once
// `status` asks the running daemon how it is (GET /healthz on api.listen): which loop is
// stalled or down, which part is unwell. The database alone cannot say that, and a locked
// database would not let it.

#include "core/config.hpp"

#include <boost/json/object.hpp>
#include <chrono>

namespace speak4::app {

/// The daemon's /healthz body, or {"status":"unknown","reason":…} when nothing answers on
/// api.listen within `timeout` (not running, another address). Blocking; CLI only.
boost::json::object probe_health(const config& cfg,
                                 std::chrono::milliseconds timeout = std::chrono::seconds(2));

} // namespace speak4::app
