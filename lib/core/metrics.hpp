#pragma once
// Metrics: a small registry of counters, gauges and histograms, rendered in the Prometheus text
// exposition format 0.0.4 (served by GET /metrics). No globals: the daemon's context owns one
// registry and hands it to the subsystems that record into it.

#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace speak4::metrics {

/// A monotonically increasing value. Threading: every member is thread-safe and lock-free.
class counter {
public:
    /// Adds `v` (ignored unless v >= 0: a counter never goes down).
    void inc(double v = 1.0) noexcept;
    double value() const noexcept { return value_.load(std::memory_order_relaxed); }

private:
    std::atomic<double> value_{0.0};
};

/// A value that goes up and down. Threading: every member is thread-safe and lock-free.
class gauge {
public:
    void set(double v) noexcept { value_.store(v, std::memory_order_relaxed); }
    void inc(double v = 1.0) noexcept { value_.fetch_add(v, std::memory_order_relaxed); }
    void dec(double v = 1.0) noexcept { value_.fetch_sub(v, std::memory_order_relaxed); }
    double value() const noexcept { return value_.load(std::memory_order_relaxed); }

private:
    std::atomic<double> value_{0.0};
};

/// Observations counted into fixed buckets (upper bounds, ascending; +Inf is implicit).
/// Threading: every member is thread-safe (a mutex keeps _count, _sum and the buckets
/// consistent with each other in a snapshot).
class histogram {
public:
    explicit histogram(std::vector<double> upper_bounds);

    void observe(double v) noexcept;

    struct snapshot {
        std::vector<double> upper_bounds;      // without +Inf
        std::vector<std::uint64_t> cumulative; // one per bound, then one for +Inf
        double sum = 0;
        std::uint64_t count = 0;
    };
    snapshot snap() const;

private:
    std::vector<double> bounds_;
    mutable std::mutex mutex_;
    std::vector<std::uint64_t> counts_; // per bucket, not cumulative; last is +Inf
    double sum_ = 0;
    std::uint64_t count_ = 0;
};

/// The default latency buckets, in seconds.
const std::vector<double>& default_buckets();

enum class metric_type { counter, gauge, histogram };

/// One metric name with its label names and its series (one per distinct label values).
/// Threading: thread-safe; references returned by with()/get() stay valid for the family's
/// lifetime, so hot paths may keep them.
template <class T>
class family {
public:
    /// The series for these label values, in the order of label_names(). Creating a series past
    /// max_series, or passing the wrong number of values, yields a detached series that is never
    /// rendered (a bug or a cardinality explosion must not crash or grow memory without bound).
    T& with(std::initializer_list<std::string_view> values);
    T& with(const std::vector<std::string>& values);
    /// The single series of a family without labels.
    T& get() { return with(std::vector<std::string>{}); }

    const std::string& name() const { return name_; }
    const std::string& help() const { return help_; }
    const std::vector<std::string>& label_names() const { return label_names_; }
    metric_type type() const;

    /// Calls `fn(label_values, series)` for each series, ordered by label values.
    void for_each(const std::function<void(const std::vector<std::string>&, const T&)>& fn) const;

    // Used by registry.
    family(std::string name, std::string help, std::vector<std::string> label_names,
           std::size_t max_series, std::vector<double> buckets);

private:
    std::unique_ptr<T> make() const;

    std::string name_;
    std::string help_;
    std::vector<std::string> label_names_;
    std::size_t max_series_;
    std::vector<double> buckets_; // histograms only
    mutable std::mutex mutex_;
    std::map<std::vector<std::string>, std::unique_ptr<T>> series_;
    std::unique_ptr<T> detached_;
};

using counter_family = family<counter>;
using gauge_family = family<gauge>;
using histogram_family = family<histogram>;

/// The registry: owns the families and renders them.
/// Threading: registration, recording and render() may run concurrently from any thread.
/// Registration (and its exceptions) belongs on the control plane (start-up).
class registry {
public:
    explicit registry(std::size_t max_series_per_family = 1000)
        : max_series_(max_series_per_family) {}
    registry(const registry&) = delete;
    registry& operator=(const registry&) = delete;

    /// Registers a family, or returns the one already registered under `name` if it has the same
    /// type and label names. Throws std::invalid_argument for an invalid metric or label name
    /// (names match [a-zA-Z_:][a-zA-Z0-9_:]*, labels [a-zA-Z_][a-zA-Z0-9_]* and not "__"-prefixed;
    /// "le" is reserved for histograms) or for a name registered with another type or labels.
    counter_family& counter(const std::string& name, const std::string& help,
                            std::vector<std::string> label_names = {});
    gauge_family& gauge(const std::string& name, const std::string& help,
                        std::vector<std::string> label_names = {});
    /// `buckets`: ascending finite upper bounds (+Inf is added).
    histogram_family& histogram(const std::string& name, const std::string& help,
                                std::vector<double> buckets = default_buckets(),
                                std::vector<std::string> label_names = {});

    /// Adds a hook run at the start of each render(), e.g. to refresh a gauge computed from the
    /// clock. Hooks run on the rendering thread, must be quick and must not call render().
    void on_collect(std::function<void()> hook);

    /// The whole registry in the text exposition format 0.0.4 (Content-Type
    /// "text/plain; version=0.0.4; charset=utf-8"): "# HELP", "# TYPE", then the samples, in
    /// registration order.
    std::string render() const;

private:
    struct entry {
        metric_type type = metric_type::counter;
        std::unique_ptr<counter_family> c;
        std::unique_ptr<gauge_family> g;
        std::unique_ptr<histogram_family> h;
    };
    entry* find_locked(const std::string& name);

    std::size_t max_series_;
    mutable std::mutex mutex_;
    std::vector<std::unique_ptr<entry>> entries_;
    std::vector<std::function<void()>> hooks_;
};

/// The content type of registry::render()'s output.
inline constexpr std::string_view content_type = "text/plain; version=0.0.4; charset=utf-8";

/// Escapes a label value ('\' '"' and newline) as the text format requires.
std::string escape_label_value(std::string_view v);
/// Escapes HELP text ('\' and newline).
std::string escape_help(std::string_view v);
/// Formats a sample value: integers without exponent, "+Inf", "-Inf", "NaN", else the shortest
/// round-trip form.
std::string format_value(double v);

/// The metrics every subsystem of the daemon records into, registered once at start-up.
/// Families with fixed label values have every series created up front so they render as 0.
/// Threading: as registry.
struct daemon_metrics {
    explicit daemon_metrics(registry& r);

    registry& reg;
    /// speak4_events_total{outcome="accepted|duplicate|invalid|error"}: Speak4 events in.
    counter_family& events_total;
    /// speak4_event_batches_total: group commits of the local API (one transaction each).
    counter& event_batches_total;
    /// speak4_event_batch_size: events per group commit.
    histogram_family& event_batch_size;
    /// speak4_http_requests_total{path,status}: requests to the local API.
    counter_family& http_requests_total;
    /// speak4_http_connections: open connections to the local API.
    gauge& http_connections;
    /// speak4_webhooks_total{outcome}: GHL webhooks received.
    counter_family& webhooks_total;
    /// speak4_outbox{state="pending|inflight|done|dead"}: refreshed at scrape time.
    gauge_family& outbox;
    /// speak4_dead_letters: outbox rows in state dead (refreshed at scrape time).
    gauge& dead_letters;
    /// speak4_changes_last_seq: the change feed's last seq (refreshed at scrape time).
    gauge& changes_last_seq;
    /// speak4_ghl_requests_total{status}: requests sent to GHL ("error" when none answered).
    counter_family& ghl_requests_total;
    /// speak4_ghl_request_duration_seconds: latency of requests sent to GHL.
    histogram& ghl_request_duration_seconds;
    /// speak4_ghl_rate_limit_remaining: X-RateLimit-Remaining of the last GHL response.
    gauge& ghl_rate_limit_remaining;
    /// speak4_last_pull_age_seconds: seconds since the last successful incremental pull.
    gauge& last_pull_age_seconds;

    // What the alert rules (conf/prometheus/speak4-sync-alerts.yml) need.
    /// speak4_poll_interval_seconds: sync.poll_interval_seconds (so a rule can say "N polls").
    gauge& poll_interval_seconds;
    /// speak4_oldest_pending_age_seconds: age of the oldest outbox row waiting to be sent
    /// (pending or in flight); 0 when none waits. Refreshed at scrape time.
    gauge& oldest_pending_age_seconds;
    /// speak4_loop_up{loop}: 1 while the loop runs (starting, running, backing off), 0 once it
    /// ended. From the health registry (health::monitor) at scrape time.
    gauge_family& loop_up;
    /// speak4_loop_stalled{loop}: 1 while the loop has not completed an iteration within its
    /// stall threshold.
    gauge_family& loop_stalled;
    /// speak4_part_healthy{part}: 1 when a health part (auth, breaker, database, …) is healthy.
    gauge_family& part_healthy;
    /// speak4_breaker_state{state="closed|open|half_open"}: 1 for the circuit breaker's current
    /// state (the health part "breaker"); all 0 while no breaker reports.
    gauge_family& breaker_state;
    /// speak4_auth_needs_reauth: 1 while GHL refused the OAuth grant for good.
    gauge& auth_needs_reauth;
};

} // namespace speak4::metrics
