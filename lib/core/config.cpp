#include "core/config.hpp"

#include "core/error.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <functional>
#include <limits>
#include <netinet/in.h>
#include <optional>
#include <sys/stat.h>
#include <toml++/toml.h>
#include <unistd.h>
#include <utility>
#include <vector>

namespace speak4 {

std::string_view to_string(auth_mode m) {
    switch (m) {
    case auth_mode::private_token:
        return "private_token";
    case auth_mode::oauth:
        return "oauth";
    }
    return "private_token";
}

std::string_view to_string(conflict_policy p) {
    switch (p) {
    case conflict_policy::remote_wins:
        return "remote_wins";
    case conflict_policy::local_wins:
        return "local_wins";
    case conflict_policy::newest_wins:
        return "newest_wins";
    }
    return "newest_wins";
}

std::string_view to_string(list_mode m) {
    switch (m) {
    case list_mode::search:
        return "search";
    case list_mode::legacy:
        return "legacy";
    }
    return "search";
}

std::string_view to_string(sync_direction d) {
    switch (d) {
    case sync_direction::both:
        return "both";
    case sync_direction::pull:
        return "pull";
    case sync_direction::push:
        return "push";
    }
    return "both";
}

std::string_view to_string(sync_mode m) {
    return m == sync_mode::dry_run ? "dry_run" : "live";
}

std::string_view to_string(on_duplicate d) {
    return d == on_duplicate::link ? "link" : "conflict";
}

std::string_view to_string(fetch_children f) {
    switch (f) {
    case fetch_children::all:
        return "all";
    case fetch_children::on_demand:
        return "on_demand";
    }
    return "all";
}

namespace {

namespace fs = std::filesystem;

// A config file is a few KiB; anything this large is a mistake (or not a config file).
constexpr std::size_t max_config_bytes = std::size_t{1024} * 1024;

constexpr long long int_max = std::numeric_limits<int>::max();

// The GHL contact fields a Speak4 field may be mapped to (Contacts API v2 create/update body).
constexpr std::array<std::string_view, 19> ghl_contact_fields = {
    "firstName",   "lastName",   "name",    "email",       "phone",  "address1",   "city",
    "state",       "postalCode", "website", "timezone",    "source", "assignedTo", "country",
    "companyName", "gender",     "dnd",     "dateOfBirth", "tags"};

constexpr std::string_view custom_field_prefix = "customFields.";

int line_of(const toml::source_region& src) {
    return static_cast<int>(src.begin.line);
}
int line_of(const toml::node& n) {
    return line_of(n.source());
}

bool is_bare_key_char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

// A key as TOML would spell it: bare when it can be, quoted otherwise ("hot lead").
std::string key_part(std::string_view k) {
    if (!k.empty() && std::all_of(k.begin(), k.end(), is_bare_key_char))
        return std::string(k);
    std::string out = "\"";
    for (char c : k) {
        if (c == '"' || c == '\\')
            out += '\\';
        out += c;
    }
    return out + "\"";
}

std::string join_key(std::string_view prefix, std::string_view k) {
    return std::string(prefix) + "." + key_part(k);
}

bool has_space_or_control(std::string_view s) {
    return std::any_of(s.begin(), s.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return u <= 0x20 || u == 0x7f;
    });
}

// "a, b, c" from a range of names, or of (name, value) pairs.
template <class Range>
std::string join(const Range& items) {
    std::string out;
    for (const auto& item : items) {
        if (!out.empty())
            out += ", ";
        if constexpr (requires { item.first; })
            out += item.first;
        else
            out += item;
    }
    return out;
}

struct problem {
    int line;
    std::string key;
    std::string text;
};

// Walks the parsed document, converting and checking values. Problems are collected rather
// than thrown one at a time, so `check-config` can show everything that is wrong at once.
class reader {
public:
    explicit reader(std::string_view origin)
        : origin_(origin.empty() ? std::string("config") : std::string(origin)) {}

    void add(std::string key, int line, std::string text) {
        problems_.push_back({line, std::move(key), std::move(text)});
    }
    void add(std::string key, const toml::node& at, std::string text) {
        add(std::move(key), line_of(at), std::move(text));
    }

    std::string format(const problem& p) const {
        std::string out = origin_ + ":" + std::to_string(p.line) + ": ";
        if (!p.key.empty())
            out += p.key + ": ";
        return out + p.text;
    }

    [[noreturn]] void fail(std::string key, int line, std::string text) const {
        problem p{line, std::move(key), std::move(text)};
        throw config_error(p.key, p.line, format(p));
    }

    void throw_if_any() {
        if (problems_.empty())
            return;
        std::stable_sort(problems_.begin(), problems_.end(),
                         [](const problem& a, const problem& b) { return a.line < b.line; });
        std::string what;
        for (const problem& p : problems_) {
            if (!what.empty())
                what += '\n';
            what += format(p);
        }
        throw config_error(problems_.front().key, problems_.front().line, what);
    }

    std::optional<long long> integer(const toml::node& n, const std::string& key, long long min,
                                     long long max, bool bounded) {
        const auto* v = n.as_integer();
        if (!v) {
            add(key, n, "must be an integer");
            return std::nullopt;
        }
        const long long x = v->get();
        if (x >= min && x <= max)
            return x;
        if (bounded)
            add(key, n, "must be between " + std::to_string(min) + " and " + std::to_string(max));
        else if (x < min)
            add(key, n, "must be at least " + std::to_string(min));
        else
            add(key, n, "must be at most " + std::to_string(max));
        return std::nullopt;
    }

    // An int with an explicit range ("must be between 1 and 64").
    void set_range(int& out, const toml::node& n, const std::string& key, int min, int max) {
        if (auto x = integer(n, key, min, max, true))
            out = static_cast<int>(*x);
    }

    // An int with only a lower bound ("must be at least 1").
    void set_min(int& out, const toml::node& n, const std::string& key, int min) {
        if (auto x = integer(n, key, min, int_max, false))
            out = static_cast<int>(*x);
    }

    std::optional<std::string> string(const toml::node& n, const std::string& key) {
        const auto* v = n.as_string();
        if (!v) {
            add(key, n, "must be a string");
            return std::nullopt;
        }
        return v->get();
    }

    void set_bool(bool& out, const toml::node& n, const std::string& key) {
        const auto* v = n.as_boolean();
        if (!v) {
            add(key, n, "must be a boolean");
            return;
        }
        out = v->get();
    }

    const toml::table* table(const toml::node& n, const std::string& key) {
        const auto* t = n.as_table();
        if (!t)
            add(key, n, "must be a table");
        return t;
    }

    // One of a fixed set of names.
    template <class E, std::size_t N>
    void set_enum(E& out, const toml::node& n, const std::string& key,
                  const std::array<std::pair<std::string_view, E>, N>& names) {
        const auto s = string(n, key);
        if (!s)
            return;
        for (const auto& [name, value] : names)
            if (*s == name) {
                out = value;
                return;
            }
        add(key, n, "must be one of " + join(names));
    }

private:
    std::string origin_;
    std::vector<problem> problems_;
};

using key_handler = std::function<void(const toml::node&, const std::string& key)>;

// Dispatches each key of `t` to its handler; any other key is an error naming it.
void read_section(reader& r, const toml::table& t, std::string_view section,
                  const std::vector<std::pair<std::string_view, key_handler>>& keys) {
    for (const auto& [k, v] : t) {
        const std::string key = join_key(section, k.str());
        const std::string_view name = k.str();
        const auto it = std::find_if(keys.begin(), keys.end(),
                                     [name](const auto& h) { return h.first == name; });
        if (it != keys.end()) {
            it->second(v, key);
            continue;
        }
        const int line = line_of(k.source()) > 0 ? line_of(k.source()) : line_of(v);
        r.add(key, line, "unknown key (expected one of: " + join(keys) + ")");
    }
}

fs::path resolve(const fs::path& base_dir, const fs::path& p) {
    if (p.empty() || p.is_absolute() || base_dir.empty())
        return p;
    return base_dir / p;
}

bool is_ipv4(std::string_view host, in_addr* out = nullptr) {
    in_addr a{};
    const std::string h(host);
    if (::inet_pton(AF_INET, h.c_str(), &a) != 1)
        return false;
    if (out)
        *out = a;
    return true;
}

bool is_ipv6(std::string_view host, in6_addr* out = nullptr) {
    in6_addr a{};
    const std::string h(host);
    if (::inet_pton(AF_INET6, h.c_str(), &a) != 1)
        return false;
    if (out)
        *out = a;
    return true;
}

bool is_hostname(std::string_view host) {
    if (host.empty() || host.size() > 253 || host.front() == '.' || host.front() == '-')
        return false;
    return std::all_of(host.begin(), host.end(), [](char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
               c == '-' || c == '.';
    });
}

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c; };
               return lower(x) == lower(y);
           });
}

bool is_loopback(std::string_view host, bool bracketed) {
    if (bracketed) {
        in6_addr a6{};
        if (!is_ipv6(host, &a6))
            return false;
        if (IN6_IS_ADDR_LOOPBACK(&a6))
            return true;
        // ::ffff:127.x.x.x
        return IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127;
    }
    if (iequals(host, "localhost") || iequals(host, "localhost."))
        return true;
    in_addr a4{};
    return is_ipv4(host, &a4) && (ntohl(a4.s_addr) >> 24) == 127;
}

std::optional<int> parse_port(std::string_view s) {
    if (s.empty() || s.size() > 5 ||
        !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return std::nullopt;
    const int port = std::stoi(std::string(s));
    if (port < 1 || port > 65535)
        return std::nullopt;
    return port;
}

struct host_port {
    std::string_view host;
    bool bracketed = false;
    std::optional<std::string_view> port; // present when the text has ":port"
};

// Splits "host", "host:port", "[v6]" or "[v6]:port". Returns an error text on failure.
std::optional<std::string> split_host_port(std::string_view s, host_port& out) {
    if (!s.empty() && s.front() == '[') {
        const auto close = s.find(']');
        if (close == std::string_view::npos)
            return "unclosed '['";
        out.host = s.substr(1, close - 1);
        out.bracketed = true;
        if (!is_ipv6(out.host))
            return "invalid IPv6 address in brackets";
        const auto rest = s.substr(close + 1);
        if (rest.empty())
            return std::nullopt;
        if (rest.front() != ':')
            return "unexpected text after ']'";
        out.port = rest.substr(1);
        return std::nullopt;
    }
    const auto colon = s.rfind(':');
    if (colon == std::string_view::npos) {
        out.host = s;
    } else {
        out.host = s.substr(0, colon);
        out.port = s.substr(colon + 1);
        if (out.host.find(':') != std::string_view::npos)
            return "an IPv6 address must be in brackets ([::1]:8737)";
    }
    return std::nullopt;
}

// Checks ghl.base_url and drops a trailing '/', so callers can append "/contacts/...".
std::optional<std::string> check_base_url(std::string& url) {
    if (has_space_or_control(url))
        return "must not contain spaces or control characters";
    std::string_view rest = url;
    bool tls = false;
    if (rest.starts_with("https://")) {
        tls = true;
        rest.remove_prefix(8);
    } else if (rest.starts_with("http://")) {
        rest.remove_prefix(7);
    } else {
        return "must start with https:// or http://";
    }
    const auto authority = rest.substr(0, rest.find_first_of("/?#"));
    const auto tail = rest.substr(authority.size());
    if (tail.find_first_of("?#") != std::string_view::npos)
        return "must not have a query or fragment";
    if (authority.find('@') != std::string_view::npos)
        return "must not contain user info (credentials belong in secret files)";
    host_port hp;
    if (auto err = split_host_port(authority, hp))
        return "has a bad host: " + *err;
    if (hp.host.empty())
        return "has no host";
    if (!hp.bracketed && !is_hostname(hp.host))
        return "has an invalid host name";
    if (hp.port && !parse_port(*hp.port))
        return "has an invalid port (1..65535)";
    if (!tls && !is_loopback(hp.host, hp.bracketed))
        return "plain http:// is allowed only for a loopback host (127.0.0.0/8, ::1, "
               "localhost); use https://";
    while (url.size() > (tls ? 8u : 7u) + authority.size() && url.back() == '/')
        url.pop_back();
    return std::nullopt;
}

std::optional<std::string> check_listen(std::string_view s) {
    if (s.empty())
        return "must be host:port or [ipv6]:port, not empty";
    if (has_space_or_control(s))
        return "must be host:port without spaces";
    host_port hp;
    if (auto err = split_host_port(s, hp))
        return "must be host:port or [ipv6]:port: " + *err;
    if (!hp.port)
        return "must be host:port or [ipv6]:port (the port is missing)";
    if (hp.host.empty())
        return "must be host:port or [ipv6]:port (the host is missing)";
    if (!parse_port(*hp.port))
        return "port must be a number between 1 and 65535";
    if (hp.bracketed)
        return std::nullopt;
    const bool numeric = std::all_of(hp.host.begin(), hp.host.end(),
                                     [](char c) { return (c >= '0' && c <= '9') || c == '.'; });
    if (numeric ? !is_ipv4(hp.host) : !is_hostname(hp.host))
        return "has an invalid host (an IPv4 address, [IPv6] address or host name)";
    return std::nullopt;
}

} // namespace

bool is_ghl_contact_field(std::string_view name) {
    return std::find(ghl_contact_fields.begin(), ghl_contact_fields.end(), name) !=
           ghl_contact_fields.end();
}

namespace {

std::optional<std::string> check_field_target(std::string_view target) {
    if (std::find(ghl_contact_fields.begin(), ghl_contact_fields.end(), target) !=
        ghl_contact_fields.end())
        return std::nullopt;
    if (target.starts_with(custom_field_prefix)) {
        const auto id = target.substr(custom_field_prefix.size());
        if (id.empty())
            return "customFields.<id> needs the custom field's id";
        if (has_space_or_control(id))
            return "the custom field id must not contain spaces or control characters";
        return std::nullopt;
    }
    // Anything else names a custom field, resolved against the location's list at start
    // (sync/custom_fields.hpp): an unknown name refuses to start there, naming this key.
    if (target.empty())
        return "must be a GHL contact field (" + join(ghl_contact_fields) +
               "), customFields.<id or fieldKey> or a custom field's name";
    if (target.size() > 200 || std::any_of(target.begin(), target.end(), [](char c) {
            return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
        }))
        return "a custom field name must be at most 200 characters without control characters";
    return std::nullopt;
}

// Optional text: "" is the same as leaving the key out.
void set_optional_string(reader& r, std::string& out, const toml::node& n, const std::string& k) {
    if (auto s = r.string(n, k))
        out = *s;
}

void set_path(reader& r, fs::path& out, const toml::node& n, const std::string& k,
              const fs::path& base_dir) {
    if (auto s = r.string(n, k))
        out = resolve(base_dir, fs::path(*s));
}

// Secret file paths are kept as written: load_secrets() resolves them (see config.hpp).
void set_secret_path(reader& r, fs::path& out, const toml::node& n, const std::string& k) {
    if (auto s = r.string(n, k))
        out = fs::path(*s);
}

void read_database(reader& r, const toml::table& t, database_config& c, const fs::path& base) {
    read_section(r, t, "database", {{"path", [&](const toml::node& n, const std::string& k) {
                                         auto s = r.string(n, k);
                                         if (!s)
                                             return;
                                         if (s->empty())
                                             r.add(k, n, "must not be empty");
                                         else
                                             c.path = resolve(base, fs::path(*s));
                                     }}});
}

void read_ghl(reader& r, const toml::table& t, ghl_config& c, const fs::path& base) {
    static constexpr std::array<std::pair<std::string_view, auth_mode>, 2> auth_names{
        {{"private_token", auth_mode::private_token}, {"oauth", auth_mode::oauth}}};
    read_section(
        r, t, "ghl",
        {
            {"base_url",
             [&](const toml::node& n, const std::string& k) {
                 auto s = r.string(n, k);
                 if (!s)
                     return;
                 if (auto err = check_base_url(*s))
                     r.add(k, n, *err);
                 else
                     c.base_url = *s;
             }},
            {"api_version",
             [&](const toml::node& n, const std::string& k) {
                 auto s = r.string(n, k);
                 if (!s)
                     return;
                 if (s->empty() || has_space_or_control(*s))
                     r.add(k, n, "must be a non-empty version string such as \"2021-07-28\"");
                 else
                     c.api_version = *s;
             }},
            {"location_id",
             [&](const toml::node& n, const std::string& k) {
                 auto s = r.string(n, k);
                 if (!s)
                     return;
                 // It goes into URL paths and query strings unescaped.
                 if (!std::all_of(s->begin(), s->end(), is_bare_key_char))
                     r.add(k, n, "must contain only letters, digits, '-' and '_'");
                 else
                     c.location_id = *s;
             }},
            {"auth", [&](const toml::node& n,
                         const std::string& k) { r.set_enum(c.auth, n, k, auth_names); }},
            {"token_file", [&](const toml::node& n,
                               const std::string& k) { set_secret_path(r, c.token_file, n, k); }},
            {"client_id", [&](const toml::node& n,
                              const std::string& k) { set_optional_string(r, c.client_id, n, k); }},
            {"client_secret_file",
             [&](const toml::node& n, const std::string& k) {
                 set_secret_path(r, c.client_secret_file, n, k);
             }},
            {"ca_file", [&](const toml::node& n,
                            const std::string& k) { set_path(r, c.ca_file, n, k, base); }},
            {"timeout_ms",
             [&](const toml::node& n, const std::string& k) {
                 r.set_range(c.timeout_ms, n, k, 1, 600000);
             }},
            {"max_concurrency",
             [&](const toml::node& n, const std::string& k) {
                 r.set_range(c.max_concurrency, n, k, 1, 64);
             }},
        });
}

void read_rate_limit(reader& r, const toml::table& t, rate_limit_config& c) {
    read_section(
        r, t, "rate_limit",
        {
            {"burst",
             [&](const toml::node& n, const std::string& k) { r.set_min(c.burst, n, k, 1); }},
            {"window_seconds", [&](const toml::node& n,
                                   const std::string& k) { r.set_min(c.window_seconds, n, k, 1); }},
            {"daily",
             [&](const toml::node& n, const std::string& k) {
                 if (auto x = r.integer(n, k, 1, std::numeric_limits<long long>::max(), false))
                     c.daily = *x;
             }},
            {"pull_share_percent",
             [&](const toml::node& n, const std::string& k) {
                 r.set_range(c.pull_share_percent, n, k, 1, 99);
             }},
            {"push_reserve_percent",
             [&](const toml::node& n, const std::string& k) {
                 r.set_range(c.push_reserve_percent, n, k, 0, 90);
             }},
        });
}

// "24h", "90m", "1h30m", "2d", "45s" (units d, h, m, s; at least one; no sign, no spaces).
std::optional<std::chrono::seconds> parse_duration(std::string_view s) {
    if (s.empty())
        return std::nullopt;
    long long total = 0;
    std::size_t i = 0;
    while (i < s.size()) {
        long long n = 0;
        const std::size_t start = i;
        while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
            n = n * 10 + (s[i] - '0');
            if (n > 100LL * 365 * 86400)
                return std::nullopt;
            ++i;
        }
        if (i == start || i == s.size())
            return std::nullopt; // a number without a unit, or a unit without a number
        long long unit = 0;
        switch (s[i]) {
        case 'd':
            unit = 86400;
            break;
        case 'h':
            unit = 3600;
            break;
        case 'm':
            unit = 60;
            break;
        case 's':
            unit = 1;
            break;
        default:
            return std::nullopt;
        }
        ++i;
        total += n * unit;
        if (total > 100LL * 365 * 86400)
            return std::nullopt;
    }
    return std::chrono::seconds(total);
}

// Records the lines of retry.base_ms and retry.max_ms (for the max_ms >= base_ms check).
void read_retry(reader& r, const toml::table& t, retry_config& c, int& base_line, int& max_line) {
    read_section(r, t, "retry",
                 {
                     {"base_ms",
                      [&](const toml::node& n, const std::string& k) {
                          base_line = line_of(n);
                          r.set_min(c.base_ms, n, k, 1);
                      }},
                     {"max_ms",
                      [&](const toml::node& n, const std::string& k) {
                          max_line = line_of(n);
                          r.set_min(c.max_ms, n, k, 1);
                      }},
                     {"max_attempts",
                      [&](const toml::node& n, const std::string& k) {
                          r.set_range(c.max_attempts, n, k, 1, 1000);
                      }},
                     {"give_up_after",
                      [&](const toml::node& n, const std::string& k) {
                          if (n.is_integer()) {
                              if (auto x = r.integer(n, k, 1, 100LL * 365 * 86400, true))
                                  c.give_up_after = std::chrono::seconds(*x);
                              return;
                          }
                          const auto* str = n.as_string();
                          const auto d = str ? parse_duration(str->get()) : std::nullopt;
                          if (!d || d->count() < 1)
                              r.add(k, n,
                                    "must be a duration such as \"24h\", \"90m\", \"1h30m\" "
                                    "or \"2d\", or a number of seconds (at least 1)");
                          else
                              c.give_up_after = *d;
                      }},
                 });
}

void read_breaker(reader& r, const toml::table& t, breaker_config& c, int& interval_line,
                  int& max_line, int& window_line, int& min_line) {
    read_section(r, t, "breaker",
                 {
                     {"failure_percent",
                      [&](const toml::node& n, const std::string& k) {
                          r.set_range(c.failure_percent, n, k, 1, 100);
                      }},
                     {"window_requests",
                      [&](const toml::node& n, const std::string& k) {
                          window_line = line_of(n);
                          r.set_range(c.window_requests, n, k, 1, 1000);
                      }},
                     {"min_requests",
                      [&](const toml::node& n, const std::string& k) {
                          min_line = line_of(n);
                          r.set_range(c.min_requests, n, k, 1, 1000);
                      }},
                     {"window_seconds",
                      [&](const toml::node& n, const std::string& k) {
                          r.set_range(c.window_seconds, n, k, 1, 86400);
                      }},
                     {"probe_interval_ms",
                      [&](const toml::node& n, const std::string& k) {
                          interval_line = line_of(n);
                          r.set_range(c.probe_interval_ms, n, k, 1, 3600000);
                      }},
                     {"probe_max_ms",
                      [&](const toml::node& n, const std::string& k) {
                          max_line = line_of(n);
                          r.set_range(c.probe_max_ms, n, k, 1, 86400000);
                      }},
                 });
}

void read_sync(reader& r, const toml::table& t, sync_config& c) {
    static constexpr std::array<std::pair<std::string_view, conflict_policy>, 3> conflict_names{
        {{"remote_wins", conflict_policy::remote_wins},
         {"local_wins", conflict_policy::local_wins},
         {"newest_wins", conflict_policy::newest_wins}}};
    static constexpr std::array<std::pair<std::string_view, list_mode>, 2> list_names{
        {{"search", list_mode::search}, {"legacy", list_mode::legacy}}};
    static constexpr std::array<std::pair<std::string_view, fetch_children>, 2> fetch_names{
        {{"all", fetch_children::all}, {"on_demand", fetch_children::on_demand}}};
    static constexpr std::array<std::pair<std::string_view, sync_direction>, 3> direction_names{
        {{"both", sync_direction::both},
         {"pull", sync_direction::pull},
         {"push", sync_direction::push}}};
    static constexpr std::array<std::pair<std::string_view, on_duplicate>, 2> duplicate_names{
        {{"conflict", on_duplicate::conflict}, {"link", on_duplicate::link}}};
    read_section(
        r, t, "sync",
        {
            {"direction",
             [&](const toml::node& n, const std::string& k) {
                 r.set_enum(c.direction, n, k, direction_names);
             }},
            {"mode",
             [&](const toml::node& n, const std::string& k) {
                 static constexpr std::array<std::pair<std::string_view, sync_mode>, 2> names{
                     {{"live", sync_mode::live}, {"dry_run", sync_mode::dry_run}}};
                 r.set_enum(c.mode, n, k, names);
             }},
            {"entities",
             [&](const toml::node& n, const std::string& k) {
                 const auto* a = n.as_array();
                 if (!a) {
                     r.add(k, n, "must be an array of contacts, tasks, notes, appointments");
                     return;
                 }
                 entity_set e{false, false, false};
                 bool contacts = false;
                 for (const auto& item : *a) {
                     const auto* v = item.as_string();
                     const std::string name = v ? v->get() : std::string();
                     if (name == "contacts")
                         contacts = true;
                     else if (name == "tasks")
                         e.tasks = true;
                     else if (name == "notes")
                         e.notes = true;
                     else if (name == "appointments")
                         e.appointments = true;
                     else {
                         r.add(k, item,
                               "has " + (v ? "\"" + name + "\"" : std::string("a non-string")) +
                                   "; each entry must be one of contacts, tasks, notes, "
                                   "appointments");
                         return;
                     }
                 }
                 if (!contacts) {
                     r.add(k, n,
                           "must list contacts (tasks, notes and appointments belong to contacts)");
                     return;
                 }
                 c.entities = e;
             }},
            {"poll_interval_seconds",
             [&](const toml::node& n, const std::string& k) {
                 r.set_min(c.poll_interval_seconds, n, k, 1);
             }},
            {"full_sweep_hours",
             [&](const toml::node& n, const std::string& k) {
                 r.set_min(c.full_sweep_hours, n, k, 0);
             }},
            {"conflict",
             [&](const toml::node& n, const std::string& k) {
                 r.set_enum(c.conflict, n, k, conflict_names);
             }},
            {"coalesce_ms",
             [&](const toml::node& n, const std::string& k) { r.set_min(c.coalesce_ms, n, k, 0); }},
            {"index_lag_seconds",
             [&](const toml::node& n, const std::string& k) {
                 r.set_range(c.index_lag_seconds, n, k, 0, 86400);
             }},
            {"list_mode", [&](const toml::node& n,
                              const std::string& k) { r.set_enum(c.list_mode, n, k, list_names); }},
            {"fetch_children",
             [&](const toml::node& n, const std::string& k) {
                 r.set_enum(c.fetch_children, n, k, fetch_names);
             }},
            {"on_duplicate",
             [&](const toml::node& n, const std::string& k) {
                 r.set_enum(c.on_duplicate, n, k, duplicate_names);
             }},
            {"audit_retention_days",
             [&](const toml::node& n, const std::string& k) {
                 r.set_min(c.audit_retention_days, n, k, 1);
             }},
            {"inbox_retention_days",
             [&](const toml::node& n, const std::string& k) {
                 r.set_min(c.inbox_retention_days, n, k, 1);
             }},
            {"changes_retention_days",
             [&](const toml::node& n, const std::string& k) {
                 r.set_min(c.changes_retention_days, n, k, 1);
             }},
            {"conflicts_retention_days",
             [&](const toml::node& n, const std::string& k) {
                 r.set_min(c.conflicts_retention_days, n, k, 1);
             }},
        });
}

void read_api(reader& r, const toml::table& t, api_config& c) {
    read_section(
        r, t, "api",
        {
            {"listen",
             [&](const toml::node& n, const std::string& k) {
                 auto s = r.string(n, k);
                 if (!s)
                     return;
                 if (auto err = check_listen(*s))
                     r.add(k, n, *err);
                 else
                     c.listen = *s;
             }},
            {"token_file", [&](const toml::node& n,
                               const std::string& k) { set_secret_path(r, c.token_file, n, k); }},
        });
}

void read_webhooks(reader& r, const toml::table& t, webhooks_config& c, const fs::path& base) {
    read_section(r, t, "webhooks",
                 {
                     {"enabled", [&](const toml::node& n,
                                     const std::string& k) { r.set_bool(c.enabled, n, k); }},
                     {"public_key_file",
                      [&](const toml::node& n, const std::string& k) {
                          set_path(r, c.public_key_file, n, k, base);
                      }},
                     {"rsa_public_key_file",
                      [&](const toml::node& n, const std::string& k) {
                          set_path(r, c.rsa_public_key_file, n, k, base);
                      }},
                     {"max_age_seconds",
                      [&](const toml::node& n, const std::string& k) {
                          r.set_min(c.max_age_seconds, n, k, 1);
                      }},
                 });
}

void read_alerts(reader& r, const toml::table& t, alerts_config& c) {
    read_section(r, t, "alerts",
                 {
                     {"webhook_url_file",
                      [&](const toml::node& n, const std::string& k) {
                          set_secret_path(r, c.webhook_url_file, n, k);
                      }},
                     {"check_interval_seconds",
                      [&](const toml::node& n, const std::string& k) {
                          r.set_range(c.check_interval_seconds, n, k, 1, 3600);
                      }},
                     {"oldest_pending_minutes",
                      [&](const toml::node& n, const std::string& k) {
                          r.set_min(c.oldest_pending_minutes, n, k, 1);
                      }},
                     {"stale_pull_polls",
                      [&](const toml::node& n, const std::string& k) {
                          r.set_min(c.stale_pull_polls, n, k, 1);
                      }},
                     {"max_per_hour",
                      [&](const toml::node& n, const std::string& k) {
                          r.set_range(c.max_per_hour, n, k, 1, 3600);
                      }},
                 });
}

void read_logging(reader& r, const toml::table& t, logging_config& c) {
    static constexpr std::array<std::pair<std::string_view, log::format>, 2> format_names{
        {{"json", log::format::json}, {"text", log::format::text}}};
    read_section(
        r, t, "logging",
        {
            {"level",
             [&](const toml::node& n, const std::string& k) {
                 auto s = r.string(n, k);
                 if (s && !log::parse_level(*s, c.level))
                     r.add(k, n, "must be one of trace, debug, info, warn, error, critical, off");
             }},
            {"format", [&](const toml::node& n,
                           const std::string& k) { r.set_enum(c.format, n, k, format_names); }},
        });
}

void read_tag_routes(reader& r, const toml::table& t, const std::string& section,
                     std::map<std::string, std::string>& out) {
    for (const auto& [k, v] : t) {
        const std::string key = join_key(section, k.str());
        auto s = r.string(v, key);
        if (!s)
            continue;
        if (k.str().empty())
            r.add(key, v, "the tag must not be empty");
        else if (s->empty())
            r.add(key, v, "must be a non-empty workflow name");
        else
            out.emplace(std::string(k.str()), *s);
    }
}

void read_field_map(reader& r, const toml::table& t, const std::string& section,
                    std::map<std::string, std::string>& out) {
    struct use {
        std::string key;
        int line;
    };
    std::map<std::string, std::vector<use>> by_target;
    for (const auto& [k, v] : t) {
        const std::string key = join_key(section, k.str());
        auto s = r.string(v, key);
        if (!s)
            continue;
        if (k.str().empty()) {
            r.add(key, v, "the Speak4 field name must not be empty");
        } else if (auto err = check_field_target(*s)) {
            r.add(key, v, *err);
        } else {
            out.emplace(std::string(k.str()), *s);
            by_target[*s].push_back({key, line_of(v)});
        }
    }
    // Two Speak4 fields feeding one GHL field would make pushes race and pulls ambiguous.
    for (auto& [target, uses] : by_target) {
        if (uses.size() < 2)
            continue;
        std::stable_sort(uses.begin(), uses.end(),
                         [](const use& a, const use& b) { return a.line < b.line; });
        for (std::size_t i = 1; i < uses.size(); ++i)
            r.add(uses[i].key, uses[i].line,
                  target + " is already the target of " + uses.front().key);
    }
}

void read_rules(reader& r, const toml::table& t, rules_config& c) {
    read_section(r, t, "rules",
                 {
                     {"appointment_reminder_minutes",
                      [&](const toml::node& n, const std::string& k) {
                          r.set_min(c.appointment_reminder_minutes, n, k, 0);
                      }},
                     {"business_contacts",
                      [&](const toml::node& n, const std::string& k) {
                          r.set_bool(c.business_contacts, n, k);
                      }},
                     {"tag_routes",
                      [&](const toml::node& n, const std::string& k) {
                          if (const auto* tt = r.table(n, k))
                              read_tag_routes(r, *tt, k, c.tag_routes);
                      }},
                     {"field_map",
                      [&](const toml::node& n, const std::string& k) {
                          if (const auto* tt = r.table(n, k))
                              read_field_map(r, *tt, k, c.field_map);
                      }},
                 });
}

std::string errno_text(int err) {
    return std::strerror(err);
}

// Reads a whole file, bounded. Throws config_error (key "") naming the path.
std::string read_config_file(const fs::path& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        const int err = errno;
        throw config_error("", 0, path.string() + ": cannot read config file: " + errno_text(err));
    }
    struct closer {
        int fd;
        ~closer() { ::close(fd); }
    } guard{fd};
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        const int err = errno;
        throw config_error("", 0, path.string() + ": cannot read config file: " + errno_text(err));
    }
    if (!S_ISREG(st.st_mode))
        throw config_error("", 0, path.string() + ": cannot read config file: not a regular file");
    std::string text;
    char buf[16384];
    for (;;) {
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            const int err = errno;
            throw config_error("", 0,
                               path.string() + ": cannot read config file: " + errno_text(err));
        }
        if (n == 0)
            break;
        text.append(buf, static_cast<std::size_t>(n));
        if (text.size() > max_config_bytes)
            throw config_error("", 0, path.string() + ": config file is larger than 1 MiB");
    }
    return text;
}

const char* credentials_directory() {
    const char* d = std::getenv("CREDENTIALS_DIRECTORY");
    return d && *d ? d : nullptr;
}

void read_health(reader& r, const toml::table& t, health_config& c) {
    read_section(r, t, "health",
                 {
                     {"stall_after_seconds",
                      [&](const toml::node& n, const std::string& k) {
                          r.set_range(c.stall_after_seconds, n, k, 1, 86400);
                      }},
                 });
}

} // namespace

config parse_config(std::string_view toml_text, std::string_view origin,
                    const std::filesystem::path& base_dir) {
    reader r(origin);
    if (toml_text.size() > max_config_bytes)
        r.fail("", 0, "config is larger than 1 MiB");

    toml::table doc;
    try {
        doc = toml::parse(toml_text, std::string(origin));
    } catch (const toml::parse_error& e) {
        const auto& pos = e.source().begin;
        r.fail("", static_cast<int>(pos.line),
               "invalid TOML: " + std::string(e.description()) + " (column " +
                   std::to_string(pos.column) + ")");
    }

    config cfg;
    cfg.base_dir = base_dir;
    int base_ms_line = 0;
    int max_ms_line = 0;
    int probe_interval_line = 0, probe_max_line = 0, window_requests_line = 0,
        min_requests_line = 0;

    using section_reader = std::function<void(const toml::table&)>;
    const std::vector<std::pair<std::string_view, section_reader>> sections = {
        {"database", [&](const toml::table& t) { read_database(r, t, cfg.database, base_dir); }},
        {"ghl", [&](const toml::table& t) { read_ghl(r, t, cfg.ghl, base_dir); }},
        {"rate_limit", [&](const toml::table& t) { read_rate_limit(r, t, cfg.rate_limit); }},
        {"retry",
         [&](const toml::table& t) { read_retry(r, t, cfg.retry, base_ms_line, max_ms_line); }},
        {"breaker",
         [&](const toml::table& t) {
             read_breaker(r, t, cfg.breaker, probe_interval_line, probe_max_line,
                          window_requests_line, min_requests_line);
         }},
        {"health", [&](const toml::table& t) { read_health(r, t, cfg.health); }},
        {"sync", [&](const toml::table& t) { read_sync(r, t, cfg.sync); }},
        {"api", [&](const toml::table& t) { read_api(r, t, cfg.api); }},
        {"webhooks", [&](const toml::table& t) { read_webhooks(r, t, cfg.webhooks, base_dir); }},
        {"alerts", [&](const toml::table& t) { read_alerts(r, t, cfg.alerts); }},
        {"logging", [&](const toml::table& t) { read_logging(r, t, cfg.logging); }},
        {"rules", [&](const toml::table& t) { read_rules(r, t, cfg.rules); }},
    };

    for (const auto& [k, v] : doc) {
        const std::string key = key_part(k.str());
        const std::string_view name = k.str();
        const auto it = std::find_if(sections.begin(), sections.end(),
                                     [name](const auto& s) { return s.first == name; });
        if (it == sections.end()) {
            r.add(key, line_of(v),
                  std::string(v.is_table() ? "unknown section" : "unknown key") +
                      " (expected one of the sections: " + join(sections) + ")");
            continue;
        }
        if (const auto* t = r.table(v, key))
            it->second(*t);
    }

    if (cfg.retry.max_ms < cfg.retry.base_ms) {
        // Name the key the file set (max_ms if it set both), so the line points at it.
        if (max_ms_line > 0)
            r.add("retry.max_ms", max_ms_line,
                  "must be at least retry.base_ms (" + std::to_string(cfg.retry.base_ms) + ")");
        else
            r.add("retry.base_ms", base_ms_line,
                  "must be at most retry.max_ms (" + std::to_string(cfg.retry.max_ms) + ")");
    }

    if (cfg.breaker.probe_max_ms < cfg.breaker.probe_interval_ms) {
        if (probe_max_line > 0)
            r.add("breaker.probe_max_ms", probe_max_line,
                  "must be at least breaker.probe_interval_ms (" +
                      std::to_string(cfg.breaker.probe_interval_ms) + ")");
        else
            r.add("breaker.probe_interval_ms", probe_interval_line,
                  "must be at most breaker.probe_max_ms (" +
                      std::to_string(cfg.breaker.probe_max_ms) + ")");
    }
    if (cfg.breaker.min_requests > cfg.breaker.window_requests) {
        if (min_requests_line > 0)
            r.add("breaker.min_requests", min_requests_line,
                  "must be at most breaker.window_requests (" +
                      std::to_string(cfg.breaker.window_requests) + ")");
        else
            r.add("breaker.window_requests", window_requests_line,
                  "must be at least breaker.min_requests (" +
                      std::to_string(cfg.breaker.min_requests) + ")");
    }

    r.throw_if_any();
    return cfg;
}

config load_config(const std::filesystem::path& path) {
    const std::string text = read_config_file(path);
    std::error_code ec;
    fs::path abs = fs::absolute(path, ec);
    if (ec)
        abs = path;
    config cfg = parse_config(text, path.filename().string(), abs.parent_path());
    cfg.source = abs;
    return cfg;
}

std::filesystem::path resolve_secret_path(const config& cfg,
                                          const std::filesystem::path& configured,
                                          std::string_view credential) {
    const char* creds = credentials_directory();
    if (!configured.empty()) {
        if (configured.is_absolute())
            return configured;
        if (creds)
            return fs::path(creds) / configured;
        return resolve(cfg.base_dir, configured);
    }
    if (creds && !credential.empty()) {
        fs::path p = fs::path(creds) / fs::path(credential);
        std::error_code ec;
        if (fs::exists(p, ec))
            return p;
    }
    return {};
}

secrets load_secrets(const config& cfg, bool require_ghl) {
    const char* creds = credentials_directory();

    // Reads one secret; its value never reaches a message (read_secret_file names the path).
    const auto load = [&](const std::string& key, const fs::path& configured,
                          std::string_view credential, bool required,
                          std::string_view why) -> secret {
        const fs::path p = resolve_secret_path(cfg, configured, credential);
        if (p.empty()) {
            if (!required)
                return {};
            std::string msg = key + ": required " + std::string(why) +
                              ": set it, or provide the systemd credential \"" +
                              std::string(credential) + "\" ";
            msg += creds ? "in $CREDENTIALS_DIRECTORY (" + std::string(creds) + ")"
                         : "($CREDENTIALS_DIRECTORY is not set)";
            throw config_error(key, 0, msg);
        }
        try {
            return read_secret_file(p);
        } catch (const std::exception& e) {
            throw config_error(key, 0, key + ": " + e.what());
        }
    };

    secrets out;
    if (cfg.ghl.auth == auth_mode::private_token) {
        out.ghl_token = load("ghl.token_file", cfg.ghl.token_file, "ghl-token", require_ghl,
                             "when ghl.auth = \"private_token\"");
    } else {
        if (require_ghl && cfg.ghl.client_id.empty())
            throw config_error("ghl.client_id", 0,
                               "ghl.client_id: required when ghl.auth = \"oauth\"");
        out.client_secret = load("ghl.client_secret_file", cfg.ghl.client_secret_file,
                                 "ghl-client-secret", require_ghl, "when ghl.auth = \"oauth\"");
    }
    out.api_token = load("api.token_file", cfg.api.token_file, "api-token", false, "");
    out.alerts_webhook_url = load("alerts.webhook_url_file", cfg.alerts.webhook_url_file,
                                  "alerts-webhook-url", false, "");
    return out;
}

} // namespace speak4
