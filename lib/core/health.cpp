#include "core/health.hpp"

#include <boost/json/value.hpp>

namespace speak4::health {

std::string_view to_string(loop_state s) {
    switch (s) {
    case loop_state::starting:
        return "starting";
    case loop_state::running:
        return "running";
    case loop_state::backing_off:
        return "backing_off";
    case loop_state::stopped:
        return "stopped";
    case loop_state::down:
        return "down";
    }
    return "down";
}

monitor::monitor(const speak4::clock& clk)
    : clock_(clk) {}

void monitor::loop_started(std::string_view name, std::chrono::milliseconds stall_after) {
    const auto now = clock_.now();
    std::lock_guard lock(mutex_);
    auto& l = loops_[std::string(name)];
    l = loop_rec{};
    l.since = now;
    l.stall_after = stall_after;
}

void monitor::beat(std::string_view name) {
    const auto now = clock_.now();
    std::lock_guard lock(mutex_);
    const auto it = loops_.find(name);
    if (it == loops_.end())
        return;
    auto& l = it->second;
    if (l.state == loop_state::stopped || l.state == loop_state::down)
        return;
    if (l.state != loop_state::running)
        l.since = now;
    l.state = loop_state::running;
    l.last_beat = now;
    l.error.clear();
}

void monitor::loop_failed(std::string_view name, std::string error) {
    const auto now = clock_.now();
    std::lock_guard lock(mutex_);
    const auto it = loops_.find(name);
    if (it == loops_.end())
        return;
    auto& l = it->second;
    if (l.state == loop_state::stopped || l.state == loop_state::down)
        return;
    if (l.state != loop_state::backing_off)
        l.since = now;
    l.state = loop_state::backing_off;
    l.error = std::move(error);
}

void monitor::loop_ended(std::string_view name, std::string reason, bool requested) {
    const auto now = clock_.now();
    std::lock_guard lock(mutex_);
    auto& l = loops_[std::string(name)];
    l.state = requested ? loop_state::stopped : loop_state::down;
    l.since = now;
    l.error = std::move(reason);
}

void monitor::set_part(std::string_view name, part p) {
    std::lock_guard lock(mutex_);
    parts_[std::string(name)] = std::move(p);
}

void monitor::clear_part(std::string_view name) {
    std::lock_guard lock(mutex_);
    if (const auto it = parts_.find(name); it != parts_.end())
        parts_.erase(it);
}

report monitor::evaluate() const {
    return evaluate(clock_.now());
}

report monitor::evaluate(sys_time now) const {
    report r;
    std::lock_guard lock(mutex_);
    const auto fail = [&r](std::string why) {
        if (r.ok)
            r.reason = std::move(why);
        r.ok = false;
    };
    for (const auto& [name, l] : loops_) {
        loop_view v;
        v.name = name;
        v.state = l.state;
        v.since = l.since;
        v.last_beat = l.last_beat;
        v.stall_after = l.stall_after;
        v.error = l.error;
        // Time without a completed iteration: since the last beat, or since the loop started.
        const sys_time reference = l.last_beat ? *l.last_beat : l.since;
        const bool alive = l.state != loop_state::stopped && l.state != loop_state::down;
        v.stalled = alive && l.stall_after.count() > 0 && now - reference > l.stall_after;
        v.healthy = l.state != loop_state::down && !v.stalled;
        if (l.state == loop_state::down) {
            fail(name + " is down" + (l.error.empty() ? std::string() : ": " + l.error));
        } else if (v.stalled) {
            const auto secs =
                std::chrono::duration_cast<std::chrono::seconds>(now - reference).count();
            fail(name + " stalled for " + std::to_string(secs) + " s" +
                 (l.error.empty() ? std::string() : ": " + l.error));
        }
        r.loops.push_back(std::move(v));
    }
    for (const auto& [name, p] : parts_) {
        if (!p.healthy)
            fail(name + " " + p.state + (p.reason.empty() ? std::string() : ": " + p.reason));
        r.parts.emplace(name, p);
    }
    return r;
}

boost::json::object to_json(const report& r) {
    namespace bj = boost::json;
    bj::object out;
    out["status"] = r.ok ? "ok" : "unhealthy";
    if (!r.ok)
        out["reason"] = r.reason;
    bj::object loops;
    for (const auto& l : r.loops) {
        bj::object o;
        o["state"] = to_string(l.state);
        o["healthy"] = l.healthy;
        o["stalled"] = l.stalled;
        o["since"] = format_iso8601(l.since);
        o["last_beat_at"] = l.last_beat ? bj::value(format_iso8601(*l.last_beat)) : nullptr;
        o["error"] = l.error.empty() ? bj::value(nullptr) : bj::value(l.error);
        loops[l.name] = std::move(o);
    }
    out["loops"] = std::move(loops);
    for (const auto& [name, p] : r.parts) {
        bj::object o = p.detail;
        o["state"] = p.state;
        o["healthy"] = p.healthy;
        o["reason"] = p.reason.empty() ? bj::value(nullptr) : bj::value(p.reason);
        out[name] = std::move(o);
    }
    return out;
}

void export_metrics(const report& r, metrics::daemon_metrics& m) {
    for (const auto& l : r.loops) {
        const bool up = l.state != loop_state::stopped && l.state != loop_state::down;
        m.loop_up.with({l.name}).set(up ? 1 : 0);
        m.loop_stalled.with({l.name}).set(l.stalled ? 1 : 0);
    }
    for (const auto& [name, p] : r.parts)
        m.part_healthy.with({name}).set(p.healthy ? 1 : 0);
    const auto breaker = r.parts.find("breaker");
    for (auto s : {"closed", "open", "half_open"})
        m.breaker_state.with({s}).set(breaker != r.parts.end() && breaker->second.state == s ? 1
                                                                                             : 0);
    const auto auth = r.parts.find("auth");
    m.auth_needs_reauth.set(auth != r.parts.end() && auth->second.state == "needs_reauth" ? 1 : 0);
}

} // namespace speak4::health
