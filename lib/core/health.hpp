#pragma once
// What is unwell, in one place: the daemon's loops (dispatcher, reconciler, intake, webhooks,
// pruner, …) and its other parts (circuit breaker, database, auth). `/healthz`, `status --json`
// (through the daemon's periodic snapshot) and `/metrics` all render this one registry, so the
// three never disagree about which part is unwell.
//
// A loop is healthy while it is running and has completed an iteration (idle or busy) within its
// `stall_after`: a loop blocked on a database lock, or failing every iteration, stops beating
// and is reported stalled once that lasts longer than its threshold; a loop whose coroutine
// ended is down. Failures alone do not make a loop unhealthy at once (a busy database for a
// second is ordinary); their persistence does.
//
// Threading: every member is thread-safe (one mutex); reports are cheap (no allocation beyond
// the names and messages stored).

#include "core/clock.hpp"
#include "core/metrics.hpp"

#include <boost/json/object.hpp>
#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace speak4::health {

enum class loop_state {
    starting,    ///< registered, no iteration completed yet
    running,     ///< the last iteration completed
    backing_off, ///< the last iteration failed; the loop retries by itself
    stopped,     ///< ended on request (shutdown)
    down,        ///< ended on its own: it will not come back
};
std::string_view to_string(loop_state s);

/// A part that is not a loop (the circuit breaker, the database, auth): its own state name
/// ("closed", "open", "busy", "needs_reauth", …), whether that is healthy, why, and details
/// rendered beside them.
struct part {
    std::string state = "ok";
    bool healthy = true;
    std::string reason;
    boost::json::object detail;
};

/// One loop as evaluated at a moment.
struct loop_view {
    std::string name;
    loop_state state = loop_state::starting;
    bool healthy = true;
    bool stalled = false; ///< no completed iteration for longer than stall_after
    sys_time since;       ///< when it entered `state`
    std::optional<sys_time> last_beat;
    std::chrono::milliseconds stall_after{0};
    std::string error; ///< the last failure (backing_off, down)
};

/// Everything at a moment.
struct report {
    bool ok = true;
    std::string reason; ///< the first unhealthy thing, e.g. "dispatcher stalled for 42 s: …"
    std::vector<loop_view> loops;
    std::map<std::string, part> parts;
};

/// The registry. See the top of this file.
class monitor {
public:
    explicit monitor(const speak4::clock& clk = system_clock::instance());

    /// Registers (or restarts) a loop; it must beat at least every `stall_after`.
    void loop_started(std::string_view name, std::chrono::milliseconds stall_after);
    /// The loop completed an iteration (idle or busy).
    void beat(std::string_view name);
    /// The loop's iteration failed; it backs off and retries by itself.
    void loop_failed(std::string_view name, std::string error);
    /// The loop ended: `down` with the reason (unhealthy), or stopped on request (reason empty).
    void loop_ended(std::string_view name, std::string reason, bool requested);

    /// Sets or replaces a part's state.
    void set_part(std::string_view name, part p);
    void clear_part(std::string_view name);

    report evaluate() const;
    report evaluate(sys_time now) const;

    const speak4::clock& clock() const { return clock_; }

private:
    struct loop_rec {
        loop_state state = loop_state::starting;
        sys_time since;
        std::optional<sys_time> last_beat;
        std::chrono::milliseconds stall_after{0};
        std::string error;
    };

    const speak4::clock& clock_;
    mutable std::mutex mutex_;
    std::map<std::string, loop_rec, std::less<>> loops_;
    std::map<std::string, part, std::less<>> parts_;
};

/// {"status":"ok"|"unhealthy","reason":…,"loops":{NAME:{"state","since","last_beat_at",
/// "stalled","error"}}, PART:{"state","reason",…detail}} (parts by name at the top level).
boost::json::object to_json(const report& r);

/// Sets the health gauges of `m` (speak4_loop_up, speak4_loop_stalled, speak4_part_healthy,
/// speak4_breaker_state, speak4_auth_needs_reauth) from a report, so /metrics and the alert rules
/// say what /healthz says.
void export_metrics(const report& r, metrics::daemon_metrics& m);

} // namespace speak4::health
