#pragma once
// The clock is injected everywhere time matters (backoff, rate limits, token expiry) so tests
// never sleep.

#include "core/time.hpp"

#include <atomic>

namespace speak4 {

/// Wall-clock source. Implementations are thread-safe.
class clock {
public:
    virtual ~clock() = default;
    virtual sys_time now() const = 0;
};

/// The real system clock.
class system_clock final : public clock {
public:
    sys_time now() const override;
    static const system_clock& instance();
};

/// A clock that only moves when told to. Thread-safe.
class manual_clock final : public clock {
public:
    explicit manual_clock(sys_time start = from_epoch_ms(1'750'000'000'000))
        : now_(to_epoch_ms(start)) {}
    sys_time now() const override { return from_epoch_ms(now_.load()); }
    void advance(std::chrono::milliseconds d) { now_ += d.count(); }
    void set(sys_time t) { now_ = to_epoch_ms(t); }

private:
    std::atomic<long long> now_;
};

} // namespace speak4
