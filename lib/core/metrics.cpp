#include "core/metrics.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <stdexcept>

namespace speak4::metrics {
namespace {

bool valid_metric_name(std::string_view n) {
    if (n.empty())
        return false;
    for (std::size_t i = 0; i < n.size(); ++i) {
        const char c = n[i];
        const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
        const bool digit = c >= '0' && c <= '9';
        if (!(alpha || (i > 0 && digit)))
            return false;
    }
    return true;
}

bool valid_label_name(std::string_view n) {
    if (n.empty() || n.starts_with("__"))
        return false;
    for (std::size_t i = 0; i < n.size(); ++i) {
        const char c = n[i];
        const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        const bool digit = c >= '0' && c <= '9';
        if (!(alpha || (i > 0 && digit)))
            return false;
    }
    return true;
}

void check_names(const std::string& name, const std::vector<std::string>& labels, bool histogram) {
    if (!valid_metric_name(name))
        throw std::invalid_argument("metric name '" + name + "' is not valid");
    for (std::size_t i = 0; i < labels.size(); ++i) {
        if (!valid_label_name(labels[i]))
            throw std::invalid_argument("metric " + name + ": label name '" + labels[i] +
                                        "' is not valid");
        if (histogram && labels[i] == "le")
            throw std::invalid_argument("metric " + name +
                                        ": label 'le' is reserved for histograms");
        for (std::size_t j = 0; j < i; ++j)
            if (labels[j] == labels[i])
                throw std::invalid_argument("metric " + name + ": label '" + labels[i] +
                                            "' appears twice");
    }
}

void check_buckets(const std::string& name, const std::vector<double>& b) {
    for (std::size_t i = 0; i < b.size(); ++i) {
        if (!std::isfinite(b[i]))
            throw std::invalid_argument("metric " + name + ": bucket bounds must be finite");
        if (i > 0 && !(b[i - 1] < b[i]))
            throw std::invalid_argument("metric " + name + ": bucket bounds must ascend");
    }
}

const char* type_name(metric_type t) {
    switch (t) {
    case metric_type::counter:
        return "counter";
    case metric_type::gauge:
        return "gauge";
    case metric_type::histogram:
        return "histogram";
    }
    return "untyped";
}

/// `{a="x",b="y"` without the closing brace (so "le" can be appended), or "" when empty.
std::string label_prefix(const std::vector<std::string>& names,
                         const std::vector<std::string>& values) {
    std::string out;
    for (std::size_t i = 0; i < names.size() && i < values.size(); ++i) {
        out += i == 0 ? "{" : ",";
        out += names[i];
        out += "=\"";
        out += escape_label_value(values[i]);
        out += '"';
    }
    return out;
}

std::string close_labels(const std::string& prefix) {
    return prefix.empty() ? "" : prefix + "}";
}

void sample(std::string& out, const std::string& name, const std::string& labels, double v) {
    out += name;
    out += labels;
    out += ' ';
    out += format_value(v);
    out += '\n';
}

void header(std::string& out, const std::string& name, const std::string& help, metric_type t) {
    out += "# HELP ";
    out += name;
    out += ' ';
    out += escape_help(help);
    out += "\n# TYPE ";
    out += name;
    out += ' ';
    out += type_name(t);
    out += '\n';
}

} // namespace

// --- counter / histogram ---------------------------------------------------------------------

void counter::inc(double v) noexcept {
    if (v >= 0)
        value_.fetch_add(v, std::memory_order_relaxed);
}

histogram::histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds))
    , counts_(bounds_.size() + 1, 0) {}

void histogram::observe(double v) noexcept {
    // le is inclusive: an observation equal to a bound falls into that bucket.
    const auto it = std::lower_bound(bounds_.begin(), bounds_.end(), v);
    const auto idx = static_cast<std::size_t>(it - bounds_.begin());
    std::lock_guard lock(mutex_);
    ++counts_[idx];
    sum_ += v;
    ++count_;
}

histogram::snapshot histogram::snap() const {
    snapshot s;
    s.upper_bounds = bounds_;
    std::lock_guard lock(mutex_);
    s.cumulative.reserve(counts_.size());
    std::uint64_t acc = 0;
    for (auto c : counts_) {
        acc += c;
        s.cumulative.push_back(acc);
    }
    s.sum = sum_;
    s.count = count_;
    return s;
}

const std::vector<double>& default_buckets() {
    static const std::vector<double> b{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
    return b;
}

// --- family ----------------------------------------------------------------------------------

template <class T>
family<T>::family(std::string name, std::string help, std::vector<std::string> label_names,
                  std::size_t max_series, std::vector<double> buckets)
    : name_(std::move(name))
    , help_(std::move(help))
    , label_names_(std::move(label_names))
    , max_series_(max_series)
    , buckets_(std::move(buckets)) {
    detached_ = make();
}

template <class T>
std::unique_ptr<T> family<T>::make() const {
    if constexpr (std::is_same_v<T, histogram>)
        return std::make_unique<T>(buckets_);
    else
        return std::make_unique<T>();
}

template <class T>
metric_type family<T>::type() const {
    if constexpr (std::is_same_v<T, counter>)
        return metric_type::counter;
    else if constexpr (std::is_same_v<T, gauge>)
        return metric_type::gauge;
    else
        return metric_type::histogram;
}

template <class T>
T& family<T>::with(std::initializer_list<std::string_view> values) {
    std::vector<std::string> v;
    v.reserve(values.size());
    for (auto s : values)
        v.emplace_back(s);
    return with(v);
}

template <class T>
T& family<T>::with(const std::vector<std::string>& values) {
    if (values.size() != label_names_.size())
        return *detached_;
    std::lock_guard lock(mutex_);
    auto it = series_.find(values);
    if (it != series_.end())
        return *it->second;
    if (series_.size() >= max_series_)
        return *detached_;
    return *series_.emplace(values, make()).first->second;
}

template <class T>
void family<T>::for_each(
    const std::function<void(const std::vector<std::string>&, const T&)>& fn) const {
    std::lock_guard lock(mutex_);
    for (const auto& [labels, s] : series_)
        fn(labels, *s);
}

template class family<counter>;
template class family<gauge>;
template class family<histogram>;

// --- registry --------------------------------------------------------------------------------

registry::entry* registry::find_locked(const std::string& name) {
    for (auto& e : entries_) {
        const std::string& n = e->c ? e->c->name() : e->g ? e->g->name() : e->h->name();
        if (n == name)
            return e.get();
    }
    return nullptr;
}

counter_family& registry::counter(const std::string& name, const std::string& help,
                                  std::vector<std::string> label_names) {
    check_names(name, label_names, false);
    std::lock_guard lock(mutex_);
    if (auto* e = find_locked(name)) {
        if (e->type != metric_type::counter || e->c->label_names() != label_names)
            throw std::invalid_argument("metric " + name + " is already registered differently");
        return *e->c;
    }
    auto e = std::make_unique<entry>();
    e->type = metric_type::counter;
    e->c = std::make_unique<counter_family>(name, help, std::move(label_names), max_series_,
                                            std::vector<double>{});
    entries_.push_back(std::move(e));
    return *entries_.back()->c;
}

gauge_family& registry::gauge(const std::string& name, const std::string& help,
                              std::vector<std::string> label_names) {
    check_names(name, label_names, false);
    std::lock_guard lock(mutex_);
    if (auto* e = find_locked(name)) {
        if (e->type != metric_type::gauge || e->g->label_names() != label_names)
            throw std::invalid_argument("metric " + name + " is already registered differently");
        return *e->g;
    }
    auto e = std::make_unique<entry>();
    e->type = metric_type::gauge;
    e->g = std::make_unique<gauge_family>(name, help, std::move(label_names), max_series_,
                                          std::vector<double>{});
    entries_.push_back(std::move(e));
    return *entries_.back()->g;
}

histogram_family& registry::histogram(const std::string& name, const std::string& help,
                                      std::vector<double> buckets,
                                      std::vector<std::string> label_names) {
    check_names(name, label_names, true);
    check_buckets(name, buckets);
    std::lock_guard lock(mutex_);
    if (auto* e = find_locked(name)) {
        if (e->type != metric_type::histogram || e->h->label_names() != label_names)
            throw std::invalid_argument("metric " + name + " is already registered differently");
        return *e->h;
    }
    auto e = std::make_unique<entry>();
    e->type = metric_type::histogram;
    e->h = std::make_unique<histogram_family>(name, help, std::move(label_names), max_series_,
                                              std::move(buckets));
    entries_.push_back(std::move(e));
    return *entries_.back()->h;
}

void registry::on_collect(std::function<void()> hook) {
    std::lock_guard lock(mutex_);
    hooks_.push_back(std::move(hook));
}

std::string registry::render() const {
    std::vector<std::function<void()>> hooks;
    {
        std::lock_guard lock(mutex_);
        hooks = hooks_;
    }
    for (const auto& h : hooks)
        h();

    std::string out;
    std::lock_guard lock(mutex_);
    for (const auto& e : entries_) {
        switch (e->type) {
        case metric_type::counter:
        case metric_type::gauge: {
            const auto emit = [&](const auto& fam) {
                header(out, fam.name(), fam.help(), e->type);
                fam.for_each([&](const std::vector<std::string>& labels, const auto& s) {
                    sample(out, fam.name(), close_labels(label_prefix(fam.label_names(), labels)),
                           s.value());
                });
            };
            if (e->c)
                emit(*e->c);
            else
                emit(*e->g);
            break;
        }
        case metric_type::histogram: {
            const auto& fam = *e->h;
            header(out, fam.name(), fam.help(), e->type);
            fam.for_each([&](const std::vector<std::string>& labels, const class histogram& h) {
                const auto s = h.snap();
                const std::string prefix = label_prefix(fam.label_names(), labels);
                const std::string open = prefix.empty() ? "{" : prefix + ",";
                for (std::size_t i = 0; i < s.cumulative.size(); ++i) {
                    const std::string le =
                        i < s.upper_bounds.size() ? format_value(s.upper_bounds[i]) : "+Inf";
                    std::string labels = open;
                    labels += "le=\"";
                    labels += le;
                    labels += "\"}";
                    sample(out, fam.name() + "_bucket", labels,
                           static_cast<double>(s.cumulative[i]));
                }
                sample(out, fam.name() + "_sum", close_labels(prefix), s.sum);
                sample(out, fam.name() + "_count", close_labels(prefix),
                       static_cast<double>(s.count));
            });
            break;
        }
        }
    }
    return out;
}

// --- formatting ------------------------------------------------------------------------------

std::string escape_label_value(std::string_view v) {
    std::string out;
    out.reserve(v.size());
    for (char c : v) {
        if (c == '\\')
            out += "\\\\";
        else if (c == '"')
            out += "\\\"";
        else if (c == '\n')
            out += "\\n";
        else
            out += c;
    }
    return out;
}

std::string escape_help(std::string_view v) {
    std::string out;
    out.reserve(v.size());
    for (char c : v) {
        if (c == '\\')
            out += "\\\\";
        else if (c == '\n')
            out += "\\n";
        else
            out += c;
    }
    return out;
}

std::string format_value(double v) {
    if (std::isnan(v))
        return "NaN";
    if (std::isinf(v))
        return v > 0 ? "+Inf" : "-Inf";
    if (v == std::trunc(v) && std::fabs(v) < 1e15) {
        char buf[32];
        auto r = std::to_chars(buf, buf + sizeof buf, static_cast<long long>(v));
        return std::string(buf, r.ptr);
    }
    char buf[64];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    return std::string(buf, r.ptr);
}

// --- daemon_metrics --------------------------------------------------------------------------

namespace {
std::vector<double> batch_buckets() {
    return {1, 2, 4, 8, 16, 32, 64, 128, 256, 512};
}
} // namespace

daemon_metrics::daemon_metrics(registry& r)
    : reg(r)
    , events_total(
          r.counter("speak4_events_total", "Speak4 events received, by outcome.", {"outcome"}))
    , event_batches_total(r.counter("speak4_event_batches_total",
                                    "Group commits of Speak4 events (one transaction each).")
                              .get())
    , event_batch_size(
          r.histogram("speak4_event_batch_size", "Events per group commit.", batch_buckets()))
    , http_requests_total(r.counter("speak4_http_requests_total",
                                    "Requests to the local HTTP API, by route and status.",
                                    {"path", "status"}))
    , http_connections(
          r.gauge("speak4_http_connections", "Open connections to the local HTTP API.").get())
    , webhooks_total(
          r.counter("speak4_webhooks_total", "GHL webhooks received, by outcome.", {"outcome"}))
    , outbox(r.gauge("speak4_outbox", "Outbox rows by state.", {"state"}))
    , dead_letters(r.gauge("speak4_dead_letters", "Outbox rows that gave up (state dead).").get())
    , changes_last_seq(r.gauge("speak4_changes_last_seq", "Last seq of the change feed.").get())
    , ghl_requests_total(r.counter("speak4_ghl_requests_total",
                                   "Requests sent to GHL, by HTTP status (error: no answer).",
                                   {"status"}))
    , ghl_request_duration_seconds(
          r.histogram("speak4_ghl_request_duration_seconds", "Latency of requests sent to GHL.")
              .get())
    , ghl_rate_limit_remaining(
          r.gauge("speak4_ghl_rate_limit_remaining",
                  "X-RateLimit-Remaining of the last GHL response (requests left in the window).")
              .get())
    , last_pull_age_seconds(r.gauge("speak4_last_pull_age_seconds",
                                    "Seconds since the last successful incremental pull.")
                                .get())
    , poll_interval_seconds(r.gauge("speak4_poll_interval_seconds",
                                    "The configured incremental pull interval (seconds).")
                                .get())
    , oldest_pending_age_seconds(
          r.gauge("speak4_oldest_pending_age_seconds",
                  "Age of the oldest outbox row waiting to be sent (0 when none waits).")
              .get())
    , loop_up(r.gauge("speak4_loop_up", "1 while the loop runs, 0 once it ended.", {"loop"}))
    , loop_stalled(r.gauge("speak4_loop_stalled",
                           "1 while the loop has not completed an iteration within its threshold.",
                           {"loop"}))
    , part_healthy(r.gauge("speak4_part_healthy",
                           "1 when the health part (auth, breaker, database, ...) is healthy.",
                           {"part"}))
    , breaker_state(r.gauge("speak4_breaker_state",
                            "1 for the circuit breaker's current state (closed, open, half_open).",
                            {"state"}))
    , auth_needs_reauth(r.gauge("speak4_auth_needs_reauth",
                                "1 while GHL refused the OAuth grant for good (needs_reauth).")
                            .get()) {
    for (auto s : {"closed", "open", "half_open"})
        breaker_state.with({s});
    for (auto o : {"accepted", "duplicate", "invalid", "error"})
        events_total.with({o});
    for (auto s : {"pending", "inflight", "done", "dead"})
        outbox.with({s});
    event_batch_size.get();
}

} // namespace speak4::metrics
