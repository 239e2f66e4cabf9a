// lib/core metrics: the registry, its series and the Prometheus text format 0.0.4, checked by a
// small validating parser of that format.

#include "core/metrics.hpp"

#include <cmath>
#include <gtest/gtest.h>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using namespace speak4::metrics;

namespace {

struct sample {
    std::string name;
    std::map<std::string, std::string> labels;
    double value = 0;
};

struct parsed_text {
    std::vector<std::string> problems;
    std::vector<sample> samples;
    std::map<std::string, std::string> types; // family -> type
    std::map<std::string, std::string> help;  // family -> unescaped help
};

bool valid_name(const std::string& n) {
    static const std::regex re("[a-zA-Z_:][a-zA-Z0-9_:]*");
    return std::regex_match(n, re);
}

std::optional<double> parse_value(const std::string& s) {
    if (s == "+Inf" || s == "Inf")
        return INFINITY;
    if (s == "-Inf")
        return -INFINITY;
    if (s == "NaN")
        return NAN;
    try {
        std::size_t pos = 0;
        const double v = std::stod(s, &pos);
        if (pos != s.size())
            return std::nullopt;
        return v;
    } catch (...) {
        return std::nullopt;
    }
}

/// The family a sample belongs to, given the families declared so far.
std::string family_of(const std::string& name, const std::map<std::string, std::string>& types) {
    if (types.count(name))
        return name;
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
        const std::string s = suffix;
        if (name.size() > s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0) {
            std::string base = name.substr(0, name.size() - s.size());
            const auto it = types.find(base);
            if (it != types.end() && (it->second == "histogram" || it->second == "summary"))
                return base;
        }
    }
    return name;
}

/// Parses and validates Prometheus text exposition format 0.0.4.
parsed_text parse_prometheus(const std::string& text) {
    parsed_text out;
    std::set<std::string> finished; // families whose group of lines has ended
    std::string current;            // family of the previous line
    std::istringstream in(text);
    std::string line;
    int lineno = 0;
    const auto problem = [&](const std::string& p) {
        out.problems.push_back("line " + std::to_string(lineno) + ": " + p + ": " + line);
    };
    const auto enter = [&](const std::string& fam) {
        if (fam != current) {
            if (finished.count(fam))
                problem("lines of " + fam + " are not contiguous");
            if (!current.empty())
                finished.insert(current);
            current = fam;
        }
    };
    if (!text.empty() && text.back() != '\n')
        out.problems.push_back("the text does not end with a newline");
    while (std::getline(in, line)) {
        ++lineno;
        if (line.empty())
            continue;
        if (line[0] == '#') {
            std::istringstream ls(line);
            std::string hash, kw, name;
            ls >> hash >> kw >> name;
            if (kw == "TYPE") {
                std::string type, extra;
                ls >> type >> extra;
                if (!valid_name(name))
                    problem("bad metric name");
                static const std::set<std::string> types{"counter", "gauge", "histogram", "summary",
                                                         "untyped"};
                if (!types.count(type) || !extra.empty())
                    problem("bad TYPE line");
                if (out.types.count(name))
                    problem("second TYPE for " + name);
                enter(name);
                out.types[name] = type;
            } else if (kw == "HELP") {
                if (!valid_name(name))
                    problem("bad metric name");
                if (out.help.count(name))
                    problem("second HELP for " + name);
                if (out.types.count(name))
                    problem("HELP after TYPE is allowed but we always write it first");
                enter(name);
                const auto start = line.find(name) + name.size();
                std::string h = start < line.size() ? line.substr(start + 1) : "";
                std::string unescaped;
                for (std::size_t i = 0; i < h.size(); ++i) {
                    if (h[i] == '\\' && i + 1 < h.size()) {
                        const char n = h[++i];
                        if (n == 'n')
                            unescaped += '\n';
                        else if (n == '\\')
                            unescaped += '\\';
                        else
                            problem("bad escape in HELP");
                    } else {
                        unescaped += h[i];
                    }
                }
                out.help[name] = unescaped;
            }
            continue;
        }
        sample s;
        std::size_t i = 0;
        while (i < line.size() && line[i] != '{' && line[i] != ' ')
            ++i;
        s.name = line.substr(0, i);
        if (!valid_name(s.name))
            problem("bad metric name");
        if (i < line.size() && line[i] == '{') {
            ++i;
            while (i < line.size() && line[i] != '}') {
                std::size_t eq = line.find('=', i);
                if (eq == std::string::npos) {
                    problem("label without '='");
                    break;
                }
                const std::string lname = line.substr(i, eq - i);
                static const std::regex label_re("[a-zA-Z_][a-zA-Z0-9_]*");
                if (!std::regex_match(lname, label_re))
                    problem("bad label name '" + lname + "'");
                i = eq + 1;
                if (i >= line.size() || line[i] != '"') {
                    problem("label value not quoted");
                    break;
                }
                ++i;
                std::string v;
                bool closed = false;
                while (i < line.size()) {
                    const char c = line[i++];
                    if (c == '\\') {
                        if (i >= line.size()) {
                            problem("dangling backslash");
                            break;
                        }
                        const char n = line[i++];
                        if (n == 'n')
                            v += '\n';
                        else if (n == '\\')
                            v += '\\';
                        else if (n == '"')
                            v += '"';
                        else
                            problem("bad escape in label value");
                    } else if (c == '"') {
                        closed = true;
                        break;
                    } else {
                        v += c;
                    }
                }
                if (!closed) {
                    problem("unterminated label value");
                    break;
                }
                if (s.labels.count(lname))
                    problem("label " + lname + " twice");
                s.labels[lname] = v;
                if (i < line.size() && line[i] == ',')
                    ++i;
            }
            if (i >= line.size() || line[i] != '}') {
                problem("labels not closed");
                continue;
            }
            ++i;
        }
        if (i >= line.size() || line[i] != ' ') {
            problem("no value");
            continue;
        }
        std::istringstream rest(line.substr(i + 1));
        std::string value, ts, extra;
        rest >> value >> ts >> extra;
        const auto v = parse_value(value);
        if (!v)
            problem("bad value");
        if (!ts.empty() && !parse_value(ts))
            problem("bad timestamp");
        if (!extra.empty())
            problem("trailing text");
        s.value = v.value_or(0);
        const std::string fam = family_of(s.name, out.types);
        if (!out.types.count(fam))
            problem("sample of " + s.name + " without a TYPE line before it");
        enter(fam);
        out.samples.push_back(std::move(s));
    }

    // Histograms: per label set, buckets ascend, are cumulative, end with +Inf == _count.
    for (const auto& [fam, type] : out.types) {
        if (type != "histogram")
            continue;
        std::map<std::map<std::string, std::string>, std::vector<std::pair<double, double>>>
            buckets;
        std::map<std::map<std::string, std::string>, double> counts;
        std::set<std::map<std::string, std::string>> sums;
        for (const auto& s : out.samples) {
            auto labels = s.labels;
            if (s.name == fam + "_bucket") {
                const auto le = labels.find("le");
                if (le == labels.end()) {
                    out.problems.push_back(fam + ": bucket without le");
                    continue;
                }
                const auto bound = parse_value(le->second);
                if (!bound)
                    out.problems.push_back(fam + ": bad le " + le->second);
                labels.erase(le);
                buckets[labels].emplace_back(bound.value_or(NAN), s.value);
            } else if (s.name == fam + "_count") {
                counts[labels] = s.value;
            } else if (s.name == fam + "_sum") {
                sums.insert(labels);
            }
        }
        for (const auto& [labels, bs] : buckets) {
            for (std::size_t i = 1; i < bs.size(); ++i) {
                if (!(bs[i - 1].first < bs[i].first))
                    out.problems.push_back(fam + ": le not ascending");
                if (bs[i - 1].second > bs[i].second)
                    out.problems.push_back(fam + ": buckets not cumulative");
            }
            if (bs.empty() || !std::isinf(bs.back().first))
                out.problems.push_back(fam + ": last bucket is not le=\"+Inf\"");
            else if (!counts.count(labels) || counts[labels] != bs.back().second)
                out.problems.push_back(fam + ": +Inf bucket differs from _count");
            if (!sums.count(labels))
                out.problems.push_back(fam + ": no _sum");
        }
        for (const auto& [labels, c] : counts)
            if (!buckets.count(labels))
                out.problems.push_back(fam + ": _count without buckets");
    }
    return out;
}

std::string join(const std::vector<std::string>& v) {
    std::string out;
    for (const auto& s : v)
        out += s + "\n";
    return out;
}

const sample* find(const parsed_text& p, const std::string& name,
                   const std::map<std::string, std::string>& labels = {}) {
    for (const auto& s : p.samples)
        if (s.name == name && s.labels == labels)
            return &s;
    return nullptr;
}

} // namespace

TEST(metrics_validator, catches_bad_text) {
    // The validator must itself reject what it is meant to catch.
    EXPECT_FALSE(parse_prometheus("x 1\n").problems.empty()) << "no TYPE";
    EXPECT_FALSE(parse_prometheus("# TYPE x counter\n9x 1\n").problems.empty());
    EXPECT_FALSE(parse_prometheus("# TYPE x counter\nx{a=\"b} 1\n").problems.empty());
    EXPECT_FALSE(parse_prometheus("# TYPE x counter\nx{a=\"b\"} one\n").problems.empty());
    EXPECT_FALSE(
        parse_prometheus("# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\n"
                         "h_sum 1\nh_count 1\n")
            .problems.empty())
        << "not cumulative";
    EXPECT_FALSE(parse_prometheus("# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n")
                     .problems.empty())
        << "no +Inf";
    EXPECT_FALSE(
        parse_prometheus("# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 1\n")
            .problems.empty())
        << "+Inf != count";
    EXPECT_FALSE(
        parse_prometheus("# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\na 2\n").problems.empty())
        << "interleaved";
    EXPECT_TRUE(
        parse_prometheus("# HELP a x\n# TYPE a gauge\na{l=\"q\\\"\"} 1\n").problems.empty());
}

TEST(metrics, counter_gauge_histogram_values) {
    registry r;
    auto& c = r.counter("c_total", "a counter").get();
    c.inc();
    c.inc(2.5);
    c.inc(-7); // ignored: counters only go up
    EXPECT_DOUBLE_EQ(c.value(), 3.5);

    auto& g = r.gauge("g", "a gauge").get();
    g.set(10);
    g.inc(2);
    g.dec(5);
    EXPECT_DOUBLE_EQ(g.value(), 7);

    auto& h = r.histogram("h_seconds", "a histogram", {0.1, 1, 10}).get();
    for (double v : {0.05, 0.1, 0.5, 1.0, 5.0, 50.0})
        h.observe(v);
    const auto s = h.snap();
    ASSERT_EQ(s.cumulative.size(), 4u);
    EXPECT_EQ(s.cumulative[0], 2u) << "le is inclusive: 0.1 falls into le=0.1";
    EXPECT_EQ(s.cumulative[1], 4u);
    EXPECT_EQ(s.cumulative[2], 5u);
    EXPECT_EQ(s.cumulative[3], 6u);
    EXPECT_EQ(s.count, 6u);
    EXPECT_DOUBLE_EQ(s.sum, 56.65);

    const std::string text = r.render();
    const auto p = parse_prometheus(text);
    EXPECT_TRUE(p.problems.empty()) << join(p.problems) << text;
    EXPECT_EQ(p.types.at("c_total"), "counter");
    EXPECT_EQ(p.types.at("g"), "gauge");
    EXPECT_EQ(p.types.at("h_seconds"), "histogram");
    EXPECT_EQ(find(p, "c_total")->value, 3.5);
    EXPECT_EQ(find(p, "h_seconds_bucket", {{"le", "0.1"}})->value, 2);
    EXPECT_EQ(find(p, "h_seconds_bucket", {{"le", "+Inf"}})->value, 6);
    EXPECT_EQ(find(p, "h_seconds_count")->value, 6);
    EXPECT_NE(text.find("# HELP c_total a counter\n# TYPE c_total counter\nc_total 3.5\n"),
              std::string::npos)
        << text;
}

TEST(metrics, labels_are_escaped_and_round_trip) {
    registry r;
    auto& f =
        r.counter("req_total", "Requests.\nSecond line with a \\ backslash.", {"path", "status"});
    f.with({"/a\"b\\c\nd", "200"}).inc(4);
    f.with({"/plain", "404"}).inc();
    const std::string text = r.render();
    EXPECT_NE(text.find(R"(req_total{path="/a\"b\\c\nd",status="200"} 4)"), std::string::npos)
        << text;
    EXPECT_NE(text.find(R"(# HELP req_total Requests.\nSecond line with a \\ backslash.)"),
              std::string::npos)
        << text;
    const auto p = parse_prometheus(text);
    ASSERT_TRUE(p.problems.empty()) << join(p.problems) << text;
    const auto* s = find(p, "req_total", {{"path", "/a\"b\\c\nd"}, {"status", "200"}});
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->value, 4);
    EXPECT_EQ(p.help.at("req_total"), "Requests.\nSecond line with a \\ backslash.");
}

TEST(metrics, histogram_with_labels_renders_le_last_label) {
    registry r;
    auto& f = r.histogram("lat_seconds", "latency", {0.5, 1}, {"route"});
    f.with({"x"}).observe(0.7);
    f.with({"y"}).observe(3);
    const std::string text = r.render();
    EXPECT_NE(text.find(R"(lat_seconds_bucket{route="x",le="1"} 1)"), std::string::npos) << text;
    EXPECT_NE(text.find(R"(lat_seconds_sum{route="y"} 3)"), std::string::npos) << text;
    const auto p = parse_prometheus(text);
    EXPECT_TRUE(p.problems.empty()) << join(p.problems) << text;
}

TEST(metrics, registration_rules) {
    registry r;
    auto& a = r.counter("x_total", "x", {"a"});
    EXPECT_EQ(&a, &r.counter("x_total", "x again", {"a"}))
        << "same name, type and labels: same family";
    EXPECT_THROW(r.gauge("x_total", "x"), std::invalid_argument);
    EXPECT_THROW(r.counter("x_total", "x", {"b"}), std::invalid_argument);
    EXPECT_THROW(r.counter("9bad", "x"), std::invalid_argument);
    EXPECT_THROW(r.counter("bad-name", "x"), std::invalid_argument);
    EXPECT_THROW(r.counter("", "x"), std::invalid_argument);
    EXPECT_THROW(r.counter("ok", "x", {"__reserved"}), std::invalid_argument);
    EXPECT_THROW(r.counter("ok", "x", {"a", "a"}), std::invalid_argument);
    EXPECT_THROW(r.counter("ok", "x", {"bad-label"}), std::invalid_argument);
    EXPECT_THROW(r.histogram("h", "x", {1, 2}, {"le"}), std::invalid_argument);
    EXPECT_THROW(r.histogram("h", "x", {2, 1}), std::invalid_argument);
    EXPECT_THROW(r.histogram("h", "x", {1, INFINITY}), std::invalid_argument);
    EXPECT_NO_THROW(r.gauge("ns:sub_metric", "colons are allowed in names"));
}

TEST(metrics, series_are_bounded_and_bad_label_counts_are_not_rendered) {
    registry r(3);
    auto& f = r.counter("c_total", "c", {"k"});
    for (int i = 0; i < 10; ++i) {
        std::string v = "v"; // not "v" + to_string(): a false -Wrestrict of GCC 12 at -O3
        v += std::to_string(i);
        f.with({v}).inc();
    }
    f.with({"too", "many"}).inc(100); // wrong number of values: detached, not rendered
    f.with(std::vector<std::string>{}).inc(100);
    const auto p = parse_prometheus(r.render());
    EXPECT_TRUE(p.problems.empty()) << join(p.problems);
    EXPECT_EQ(p.samples.size(), 3u) << "only max_series series are kept";
    for (const auto& s : p.samples)
        EXPECT_EQ(s.value, 1);
    // Existing series keep working past the cap.
    f.with({"v0"}).inc();
    EXPECT_EQ(f.with({"v0"}).value(), 2);
}

TEST(metrics, collect_hooks_run_before_render) {
    registry r;
    auto& g = r.gauge("age_seconds", "age").get();
    int calls = 0;
    r.on_collect([&] {
        ++calls;
        g.set(42);
    });
    const auto p = parse_prometheus(r.render());
    EXPECT_EQ(calls, 1);
    EXPECT_EQ(find(p, "age_seconds")->value, 42);
}

TEST(metrics, values_format) {
    EXPECT_EQ(format_value(0), "0");
    EXPECT_EQ(format_value(-3), "-3");
    EXPECT_EQ(format_value(1e6), "1000000");
    EXPECT_EQ(format_value(0.25), "0.25");
    EXPECT_EQ(format_value(INFINITY), "+Inf");
    EXPECT_EQ(format_value(-INFINITY), "-Inf");
    EXPECT_EQ(format_value(NAN), "NaN");
    EXPECT_EQ(parse_value(format_value(0.1)).value(), 0.1);
    EXPECT_EQ(parse_value(format_value(1e300)).value(), 1e300);
    EXPECT_EQ(escape_label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    EXPECT_EQ(escape_help("a\\b\nc\"d"), "a\\\\b\\nc\"d");
}

TEST(metrics, concurrent_recording_and_rendering) {
    registry r;
    auto& c = r.counter("hits_total", "hits", {"worker"});
    auto& h = r.histogram("obs", "observations", {1, 2, 3}).get();
    constexpr int threads = 8;
    constexpr int per_thread = 5000;
    std::atomic<bool> done{false};
    std::vector<std::string> problems;
    std::thread renderer([&] {
        while (!done.load()) {
            const auto p = parse_prometheus(r.render());
            if (!p.problems.empty()) {
                problems = p.problems;
                return;
            }
        }
    });
    std::vector<std::thread> workers;
    workers.reserve(threads);
    for (int t = 0; t < threads; ++t)
        workers.emplace_back([&, t] {
            // Built with append, not "w" + to_string(): GCC 12 at -O3 warns falsely
            // (-Wrestrict) about the operator+ form, which -Werror turns into a build failure.
            std::string label = "w";
            label += std::to_string(t % 4);
            for (int i = 0; i < per_thread; ++i) {
                c.with({label}).inc();
                h.observe(i % 4);
            }
        });
    for (auto& w : workers)
        w.join();
    done = true;
    renderer.join();
    EXPECT_TRUE(problems.empty()) << join(problems);
    double total = 0;
    c.for_each([&](const std::vector<std::string>&, const counter& s) { total += s.value(); });
    EXPECT_EQ(total, threads * per_thread);
    EXPECT_EQ(h.snap().count, static_cast<std::uint64_t>(threads * per_thread));
}

TEST(metrics, daemon_metrics_render_every_required_name) {
    registry r;
    daemon_metrics m(r);
    m.http_requests_total.with({"/v1/events", "202"}).inc();
    m.ghl_requests_total.with({"200"}).inc();
    m.ghl_request_duration_seconds.observe(0.2);
    m.ghl_rate_limit_remaining.set(97);
    m.last_pull_age_seconds.set(12);
    const std::string text = r.render();
    const auto p = parse_prometheus(text);
    ASSERT_TRUE(p.problems.empty()) << join(p.problems) << text;
    for (const char* name :
         {"speak4_events_total", "speak4_http_requests_total", "speak4_outbox",
          "speak4_dead_letters", "speak4_ghl_requests_total", "speak4_ghl_request_duration_seconds",
          "speak4_ghl_rate_limit_remaining", "speak4_last_pull_age_seconds"})
        EXPECT_TRUE(p.types.count(name)) << name << " is not registered\n" << text;
    for (const char* outcome : {"accepted", "duplicate", "invalid", "error"})
        EXPECT_NE(find(p, "speak4_events_total", {{"outcome", outcome}}), nullptr) << outcome;
    for (const char* state : {"pending", "inflight", "done", "dead"})
        EXPECT_NE(find(p, "speak4_outbox", {{"state", state}}), nullptr) << state;
    EXPECT_EQ(p.types.at("speak4_ghl_request_duration_seconds"), "histogram");
    EXPECT_EQ(find(p, "speak4_ghl_request_duration_seconds_count")->value, 1);
    EXPECT_EQ(find(p, "speak4_ghl_rate_limit_remaining")->value, 97);
    // Registering twice (e.g. a second subsystem asking for the same set) is harmless.
    daemon_metrics again(r);
    EXPECT_EQ(&again.events_total, &m.events_total);
}
