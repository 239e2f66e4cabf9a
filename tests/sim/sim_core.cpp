// ghl-sim core: routing, state, validation, OAuth, rate limits and fault decisions.
// Shapes and statuses follow ../shared/ghl-api.md and the official OpenAPI spec; behaviour the
// spec leaves open is chosen here and documented in tests/sim/README.md.

#include "sim_core.hpp"

#include "core/json.hpp"
#include "core/time.hpp"

#include <algorithm>
#include <boost/json/serialize.hpp>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>
#include <stdexcept>
#include <tuple>

namespace speak4::sim::detail {

namespace {

constexpr const char* api_version = "2021-07-28";
constexpr long long day_ms = 86'400'000;
// Greater than every id (ids are alphanumeric); char_traits<char> compares as unsigned char.
const std::string max_id(1, '\xff');

// ---------------------------------------------------------------------------------------------
// Small helpers.

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& ch : out) {
        ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    }
    return out;
}

std::string digits_of(std::string_view s) {
    std::string out;
    for (char ch : s) {
        if (ch >= '0' && ch <= '9') {
            out += ch;
        }
    }
    return out;
}

std::string str_of(const bj::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    return v != nullptr && v->is_string() ? std::string(v->get_string()) : std::string();
}

std::optional<long long> as_ll(const bj::value& v) {
    if (v.is_int64()) {
        return v.get_int64();
    }
    if (v.is_uint64() && v.get_uint64() <= static_cast<std::uint64_t>(INT64_MAX)) {
        return static_cast<long long>(v.get_uint64());
    }
    if (v.is_double() && std::isfinite(v.get_double()) && std::abs(v.get_double()) < 9e18) {
        return static_cast<long long>(std::floor(v.get_double()));
    }
    return std::nullopt;
}

/// A date given as epoch ms (number or digit string) or an ISO-8601 string.
std::optional<long long> as_date_ms(const bj::value& v) {
    if (auto n = as_ll(v)) {
        return n;
    }
    if (v.is_string()) {
        std::string_view s = v.get_string();
        if (!s.empty() && s.size() <= 15 &&
            std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
            long long n = 0;
            std::from_chars(s.data(), s.data() + s.size(), n);
            return n;
        }
        if (auto t = parse_iso8601(s)) {
            return to_epoch_ms(*t);
        }
    }
    return std::nullopt;
}

std::optional<long long> parse_ll(std::string_view s) {
    long long n = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
    if (ec != std::errc() || p != s.data() + s.size() || s.empty()) {
        return std::nullopt;
    }
    return n;
}

std::string iso(long long ms) {
    return format_iso8601(from_epoch_ms(ms));
}

/// GHL's appointment form, "YYYY-MM-DD HH:MM:SS" (UTC here).
std::string appointment_time(long long ms) {
    std::string s = iso(ms).substr(0, 19);
    s[10] = ' ';
    return s;
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

std::string url_decode(std::string_view s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '+') {
            out += ' ';
        } else if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 &&
                   hex_value(s[i + 2]) >= 0) {
            out += static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
            i += 2;
        } else {
            out += s[i];
        }
    }
    return out;
}

std::string url_encode(std::string_view s) {
    static const char* hex = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : s) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return out;
}

std::map<std::string, std::string> parse_form(std::string_view s) {
    std::map<std::string, std::string> out;
    while (!s.empty()) {
        auto amp = s.find('&');
        std::string_view part = s.substr(0, amp);
        s = amp == std::string_view::npos ? std::string_view() : s.substr(amp + 1);
        if (part.empty()) {
            continue;
        }
        auto eq = part.find('=');
        std::string key = url_decode(part.substr(0, eq));
        std::string value =
            eq == std::string_view::npos ? std::string() : url_decode(part.substr(eq + 1));
        out.emplace(std::move(key), std::move(value));
    }
    return out;
}

std::string dump(const bj::value& v) {
    return bj::serialize(v);
}

http_response json_response(int status, const bj::object& body) {
    http_response r;
    r.status = status;
    r.body = dump(body);
    return r;
}

http_response error_response(int status, const std::string& message, const char* error = nullptr) {
    bj::object o{{"statusCode", status}, {"message", message}};
    if (error != nullptr) {
        o["error"] = error;
    }
    return json_response(status, o);
}

http_response unprocessable(const std::vector<std::string>& messages) {
    bj::array arr;
    for (const auto& m : messages) {
        arr.emplace_back(m);
    }
    return json_response(422, bj::object{{"statusCode", 422},
                                         {"message", std::move(arr)},
                                         {"error", "Unprocessable Entity"}});
}

http_response unauthorized() {
    return error_response(401, "Invalid token: access token is invalid", "Unauthorized");
}

/// The scope a route needs, as the specs' `security` lists it ("" when none).
std::string required_scope(const std::string& method, const std::string& tmpl) {
    if (tmpl.find("/customFields") != std::string::npos)
        return method == "GET" ? "locations/customFields.readonly" : "locations/customFields.write";
    if (tmpl.find(" /contacts") == std::string::npos)
        return "";
    if (method == "GET" || tmpl == "POST /contacts/search")
        return "contacts.readonly";
    return "contacts.write";
}

bool has_scope(const std::string& scopes, const std::string& wanted) {
    std::size_t pos = 0;
    while (pos <= scopes.size()) {
        auto end = scopes.find(' ', pos);
        if (end == std::string::npos)
            end = scopes.size();
        if (scopes.compare(pos, end - pos, wanted) == 0)
            return true;
        pos = end + 1;
    }
    return false;
}

http_response forbidden_location() {
    return error_response(403, "The token does not have access to this location.", "Forbidden");
}

http_response admin_error(int status, const std::string& what) {
    return json_response(status, bj::object{{"error", what}});
}

// ---------------------------------------------------------------------------------------------
// DTO validation, class-validator style: every problem becomes one message.

using string_set = std::set<std::string, std::less<>>;

const string_set contact_string_fields = {
    "firstName",   "lastName", "name",        "email",      "phone",   "address1",
    "city",        "state",    "website",     "timezone",   "source",  "assignedTo",
    "companyName", "gender",   "dateOfBirth", "postalCode", "country", "locationId"};
const string_set not_nullable = {"postalCode", "country", "locationId"};
const string_set create_fields = {"firstName",  "lastName",     "name",        "email",
                                  "locationId", "gender",       "phone",       "address1",
                                  "city",       "state",        "postalCode",  "website",
                                  "timezone",   "dnd",          "dndSettings", "inboundDndSettings",
                                  "tags",       "customFields", "source",      "dateOfBirth",
                                  "country",    "companyName",  "assignedTo"};
const string_set update_fields = {"firstName",   "lastName",
                                  "name",        "email",
                                  "phone",       "address1",
                                  "city",        "state",
                                  "postalCode",  "website",
                                  "timezone",    "dnd",
                                  "dndSettings", "inboundDndSettings",
                                  "tags",        "customFields",
                                  "source",      "dateOfBirth",
                                  "country",     "assignedTo"};
const string_set dnd_channels = {"Call", "Email", "SMS", "WhatsApp", "GMB", "FB"};

enum class dto { create, update, upsert };

void check_unknown(const bj::object& body, const string_set& allowed, const std::string& prefix,
                   std::vector<std::string>& errors) {
    for (const auto& kv : body) {
        if (allowed.find(std::string_view(kv.key())) == allowed.end()) {
            errors.push_back(prefix + "property " + std::string(kv.key()) + " should not exist");
        }
    }
}

void check_string_array(const bj::object& body, const char* key, std::vector<std::string>& errors) {
    const auto* v = body.if_contains(key);
    if (v == nullptr) {
        return;
    }
    if (!v->is_array()) {
        errors.push_back(std::string(key) + " must be an array");
        return;
    }
    for (const auto& e : v->get_array()) {
        if (!e.is_string()) {
            errors.push_back(std::string("each value in ") + key + " must be a string");
            return;
        }
    }
}

/// Parses GHL's dateOfBirth forms (YYYY/MM/DD, MM/DD/YYYY, and '-', '.', '_' variants, or ISO).
std::optional<long long> parse_birth_date(std::string_view s) {
    if (s.size() == 10) {
        char sep = s[4] == '/' || s[4] == '-' || s[4] == '.' || s[4] == '_' ? s[4] : s[2];
        std::string norm;
        if (s[4] == sep && s[7] == sep) { // YYYY?MM?DD
            norm = std::string(s.substr(0, 4)) + "-" + std::string(s.substr(5, 2)) + "-" +
                   std::string(s.substr(8, 2));
        } else if (s[2] == sep && s[5] == sep) { // MM?DD?YYYY
            norm = std::string(s.substr(6, 4)) + "-" + std::string(s.substr(0, 2)) + "-" +
                   std::string(s.substr(3, 2));
        }
        if (!norm.empty()) {
            if (auto t = parse_iso8601(norm)) {
                return to_epoch_ms(*t);
            }
            return std::nullopt;
        }
    }
    if (auto t = parse_iso8601(s)) {
        return to_epoch_ms(*t);
    }
    return std::nullopt;
}

std::vector<std::string> validate_contact(const bj::object& body, dto kind) {
    std::vector<std::string> errors;
    string_set allowed = kind == dto::update ? update_fields : create_fields;
    if (kind == dto::upsert) {
        allowed.insert("createNewIfDuplicateAllowed");
    }
    check_unknown(body, allowed, "", errors);
    if (kind != dto::update) {
        const auto* loc = body.if_contains("locationId");
        if (loc == nullptr || loc->is_null() || (loc->is_string() && loc->get_string().empty())) {
            errors.emplace_back("locationId should not be empty");
        }
    }
    for (const auto& kv : body) {
        std::string key(kv.key());
        const bj::value& v = kv.value();
        if (allowed.find(key) == allowed.end()) {
            continue;
        }
        if (contact_string_fields.count(key) != 0) {
            if (v.is_null() && not_nullable.count(key) == 0) {
                continue;
            }
            if (!v.is_string()) {
                errors.push_back(key + " must be a string");
                continue;
            }
            if (key == "email" && !v.get_string().empty() &&
                std::string_view(v.get_string()).find('@') == std::string_view::npos) {
                errors.emplace_back("email must be an email");
            }
            if (key == "dateOfBirth" && !v.get_string().empty() &&
                !parse_birth_date(v.get_string())) {
                errors.emplace_back("dateOfBirth must be a valid date");
            }
        } else if (key == "dnd" || key == "createNewIfDuplicateAllowed") {
            if (!v.is_bool()) {
                errors.push_back(key + " must be a boolean value");
            }
        } else if (key == "tags") {
            check_string_array(body, "tags", errors);
        } else if (key == "customFields") {
            if (!v.is_array()) {
                errors.emplace_back("customFields must be an array");
                continue;
            }
            std::size_t i = 0;
            for (const auto& item : v.get_array()) {
                std::string prefix = "customFields." + std::to_string(i++) + ".";
                if (!item.is_object()) {
                    errors.push_back(prefix + "each value in customFields must be an object");
                    continue;
                }
                const auto& o = item.get_object();
                // `value` is accepted as an alias of `field_value` (many clients send it).
                check_unknown(o, {"id", "key", "field_value", "value"}, prefix, errors);
                const auto* id = o.if_contains("id");
                if (id == nullptr || !id->is_string() || id->get_string().empty()) {
                    errors.push_back(prefix + "id should not be empty");
                }
                const auto* k = o.if_contains("key");
                if (k != nullptr && !k->is_string()) {
                    errors.push_back(prefix + "key must be a string");
                }
            }
        } else if (key == "dndSettings") {
            if (!v.is_object()) {
                errors.emplace_back("dndSettings must be an object");
                continue;
            }
            check_unknown(v.get_object(), dnd_channels, "dndSettings.", errors);
            for (const auto& ch : v.get_object()) {
                std::string prefix = "dndSettings." + std::string(ch.key()) + ".";
                if (!ch.value().is_object()) {
                    errors.push_back(prefix.substr(0, prefix.size() - 1) + " must be an object");
                    continue;
                }
                const auto& o = ch.value().get_object();
                check_unknown(o, {"status", "message", "code"}, prefix, errors);
                auto st = str_of(o, "status");
                if (st != "active" && st != "inactive" && st != "permanent") {
                    errors.push_back(prefix + "status must be one of the following values: active, "
                                              "inactive, permanent");
                }
            }
        } else if (key == "inboundDndSettings") {
            if (!v.is_object()) {
                errors.emplace_back("inboundDndSettings must be an object");
                continue;
            }
            check_unknown(v.get_object(), {"all"}, "inboundDndSettings.", errors);
            if (const auto* all = v.get_object().if_contains("all")) {
                if (!all->is_object()) {
                    errors.emplace_back("inboundDndSettings.all must be an object");
                } else {
                    check_unknown(all->get_object(), {"status", "message"},
                                  "inboundDndSettings.all.", errors);
                    auto st = str_of(all->get_object(), "status");
                    if (st != "active" && st != "inactive") {
                        errors.emplace_back("inboundDndSettings.all.status must be one of the "
                                            "following values: active, inactive");
                    }
                }
            }
        }
    }
    return errors;
}

std::vector<std::string> validate_task(const bj::object& body, bool create) {
    std::vector<std::string> errors;
    check_unknown(body, {"title", "body", "dueDate", "completed", "assignedTo"}, "", errors);
    auto need = [&](const char* key) {
        const auto* v = body.if_contains(key);
        if (create && (v == nullptr || v->is_null())) {
            errors.push_back(std::string(key) + " should not be empty");
            return static_cast<const bj::value*>(nullptr);
        }
        return v;
    };
    if (const auto* v = need("title"); v != nullptr && !v->is_string()) {
        errors.emplace_back("title must be a string");
    }
    if (const auto* v = need("dueDate"); v != nullptr) {
        if (!v->is_string() || !parse_iso8601(v->get_string())) {
            errors.emplace_back("dueDate must be a valid ISO 8601 date string");
        }
    }
    if (const auto* v = need("completed"); v != nullptr && !v->is_bool()) {
        errors.emplace_back("completed must be a boolean value");
    }
    for (const char* key : {"body", "assignedTo"}) {
        const auto* v = body.if_contains(key);
        if (v != nullptr && !v->is_string() && !v->is_null()) {
            errors.push_back(std::string(key) + " must be a string");
        }
    }
    return errors;
}

std::vector<std::string> validate_note(const bj::object& body, bool create) {
    std::vector<std::string> errors;
    check_unknown(body, {"userId", "body", "title", "color", "pinned"}, "", errors);
    const auto* b = body.if_contains("body");
    if (create && (b == nullptr || b->is_null())) {
        errors.emplace_back("body should not be empty");
    } else if (b != nullptr && !b->is_string()) {
        errors.emplace_back("body must be a string");
    }
    for (const char* key : {"userId", "title", "color"}) {
        const auto* v = body.if_contains(key);
        if (v != nullptr && !v->is_string()) {
            errors.push_back(std::string(key) + " must be a string");
        }
    }
    if (const auto* v = body.if_contains("pinned"); v != nullptr && !v->is_bool()) {
        errors.emplace_back("pinned must be a boolean value");
    }
    return errors;
}

std::vector<std::string> check_query(const std::map<std::string, std::string>& query,
                                     const string_set& allowed, bool location_required) {
    std::vector<std::string> errors;
    for (const auto& kv : query) {
        if (allowed.find(kv.first) == allowed.end()) {
            errors.push_back("property " + kv.first + " should not exist");
        }
    }
    if (location_required) {
        auto it = query.find("locationId");
        if (it == query.end() || it->second.empty()) {
            errors.emplace_back("locationId should not be empty");
        }
    }
    return errors;
}

// ---------------------------------------------------------------------------------------------
// Routing.

enum class route_id {
    unknown,
    oauth_token,
    contact_get,
    contact_put,
    contact_delete,
    contact_create,
    contact_upsert,
    contact_list,
    contact_search,
    contact_duplicate,
    contact_business,
    tags_add,
    tags_remove,
    tasks_list,
    task_create,
    task_get,
    task_put,
    task_delete,
    task_completed,
    notes_list,
    note_create,
    note_get,
    note_put,
    note_delete,
    appointments_list,
    custom_fields_list,
};

std::vector<std::string> split_path(std::string_view path) {
    std::vector<std::string> out;
    std::size_t i = 0;
    while (i < path.size()) {
        while (i < path.size() && path[i] == '/') {
            ++i;
        }
        std::size_t j = path.find('/', i);
        if (j == std::string_view::npos) {
            j = path.size();
        }
        if (j > i) {
            out.push_back(url_decode(path.substr(i, j - i)));
        }
        i = j;
    }
    return out;
}

std::string format_trace_id(std::mt19937_64& rng) {
    static const char* hex = "0123456789abcdef";
    std::string s;
    for (int i = 0; i < 32; ++i) {
        if (i == 8 || i == 12 || i == 16 || i == 20) {
            s += '-';
        }
        s += hex[rng() % 16];
    }
    return s;
}

} // namespace

struct core::route {
    route_id id = route_id::unknown;
    std::string tmpl;
    std::string contact_id;
    std::string sub_id;
};

namespace {

core::route match_route(const std::string& method, const std::vector<std::string>& seg) {
    core::route r;
    auto set = [&](route_id id, std::string tmpl) {
        r.id = id;
        r.tmpl = method + " " + std::move(tmpl);
    };
    const std::size_t n = seg.size();
    if (n == 2 && seg[0] == "oauth" && seg[1] == "token" && method == "POST") {
        set(route_id::oauth_token, "/oauth/token");
    } else if (n == 3 && seg[0] == "locations" && seg[2] == "customFields" && method == "GET") {
        set(route_id::custom_fields_list, "/locations/:locationId/customFields");
        r.sub_id = seg[1];
    } else if (n >= 1 && seg[0] == "contacts") {
        if (n == 1) {
            if (method == "GET") {
                set(route_id::contact_list, "/contacts/");
            } else if (method == "POST") {
                set(route_id::contact_create, "/contacts/");
            }
        } else if (n == 2 && seg[1] == "upsert" && method == "POST") {
            set(route_id::contact_upsert, "/contacts/upsert");
        } else if (n == 2 && seg[1] == "search" && method == "POST") {
            set(route_id::contact_search, "/contacts/search");
        } else if (n == 3 && seg[1] == "search" && seg[2] == "duplicate" && method == "GET") {
            set(route_id::contact_duplicate, "/contacts/search/duplicate");
        } else if (n == 3 && seg[1] == "business" && method == "GET") {
            set(route_id::contact_business, "/contacts/business/:businessId");
            r.sub_id = seg[2];
        } else {
            if (n >= 2) {
                r.contact_id = seg[1];
            }
            if (n == 2) {
                if (method == "GET") {
                    set(route_id::contact_get, "/contacts/:contactId");
                } else if (method == "PUT") {
                    set(route_id::contact_put, "/contacts/:contactId");
                } else if (method == "DELETE") {
                    set(route_id::contact_delete, "/contacts/:contactId");
                }
            } else if (n == 3 && seg[2] == "tags") {
                if (method == "POST") {
                    set(route_id::tags_add, "/contacts/:contactId/tags");
                } else if (method == "DELETE") {
                    set(route_id::tags_remove, "/contacts/:contactId/tags");
                }
            } else if (n == 3 && seg[2] == "tasks") {
                if (method == "GET") {
                    set(route_id::tasks_list, "/contacts/:contactId/tasks");
                } else if (method == "POST") {
                    set(route_id::task_create, "/contacts/:contactId/tasks");
                }
            } else if (n == 4 && seg[2] == "tasks") {
                r.sub_id = seg[3];
                if (method == "GET") {
                    set(route_id::task_get, "/contacts/:contactId/tasks/:taskId");
                } else if (method == "PUT") {
                    set(route_id::task_put, "/contacts/:contactId/tasks/:taskId");
                } else if (method == "DELETE") {
                    set(route_id::task_delete, "/contacts/:contactId/tasks/:taskId");
                }
            } else if (n == 5 && seg[2] == "tasks" && seg[4] == "completed" && method == "PUT") {
                r.sub_id = seg[3];
                set(route_id::task_completed, "/contacts/:contactId/tasks/:taskId/completed");
            } else if (n == 3 && seg[2] == "notes") {
                if (method == "GET") {
                    set(route_id::notes_list, "/contacts/:contactId/notes");
                } else if (method == "POST") {
                    set(route_id::note_create, "/contacts/:contactId/notes");
                }
            } else if (n == 4 && seg[2] == "notes") {
                r.sub_id = seg[3];
                if (method == "GET") {
                    set(route_id::note_get, "/contacts/:contactId/notes/:id");
                } else if (method == "PUT") {
                    set(route_id::note_put, "/contacts/:contactId/notes/:id");
                } else if (method == "DELETE") {
                    set(route_id::note_delete, "/contacts/:contactId/notes/:id");
                }
            } else if (n == 3 && seg[2] == "appointments" && method == "GET") {
                set(route_id::appointments_list, "/contacts/:contactId/appointments");
            }
        }
    }
    if (r.id == route_id::unknown) {
        r.tmpl = method + " (unknown)";
    }
    return r;
}

/// `fields` without the keys the simulator owns (bj::object::erase would reorder the rest).
bj::object without_meta(const bj::object& fields) {
    bj::object out;
    for (const auto& kv : fields) {
        if (kv.key() != "id" && kv.key() != "dateAdded" && kv.key() != "dateUpdated" &&
            kv.key() != "locationId") {
            out[kv.key()] = kv.value();
        }
    }
    return out;
}

bool route_has_json_body(route_id id) {
    switch (id) {
    case route_id::contact_put:
    case route_id::contact_create:
    case route_id::contact_upsert:
    case route_id::contact_search:
    case route_id::tags_add:
    case route_id::tags_remove:
    case route_id::task_create:
    case route_id::task_put:
    case route_id::task_completed:
    case route_id::note_create:
    case route_id::note_put:
        return true;
    default:
        return false;
    }
}

// ---------------------------------------------------------------------------------------------
// Search: filters compiled once per request, then evaluated per contact.

struct cfilter {
    enum kind_t { all_of, any_of, leaf } kind = leaf;
    std::vector<cfilter> kids;
    std::string field;
    std::string op;
    bj::value value;
    std::optional<long long> gte, lte, gt, lt; // range, numeric (dates as epoch ms)
};

bool is_date_field(std::string_view f) {
    return f == "dateAdded" || f == "dateUpdated";
}

const string_set operators = {"eq",     "not_eq",     "contains", "not_contains",
                              "exists", "not_exists", "range"};

std::optional<cfilter> compile_filter(const bj::value& v, const std::string& path,
                                      std::vector<std::string>& errors) {
    if (!v.is_object()) {
        errors.push_back(path + " must be an object");
        return std::nullopt;
    }
    const auto& o = v.get_object();
    cfilter f;
    if (const auto* g = o.if_contains("group")) {
        check_unknown(o, {"group", "filters"}, path + ".", errors);
        if (!g->is_string() || (g->get_string() != "AND" && g->get_string() != "OR")) {
            errors.push_back(path + ".group must be one of the following values: AND, OR");
            return std::nullopt;
        }
        f.kind = g->get_string() == "AND" ? cfilter::all_of : cfilter::any_of;
        const auto* kids = o.if_contains("filters");
        if (kids == nullptr || !kids->is_array()) {
            errors.push_back(path + ".filters must be an array");
            return std::nullopt;
        }
        std::size_t i = 0;
        for (const auto& k : kids->get_array()) {
            if (auto c = compile_filter(k, path + ".filters." + std::to_string(i++), errors)) {
                f.kids.push_back(std::move(*c));
            }
        }
        return f;
    }
    check_unknown(o, {"field", "operator", "value"}, path + ".", errors);
    f.field = str_of(o, "field");
    f.op = str_of(o, "operator");
    if (f.field.empty()) {
        errors.push_back(path + ".field should not be empty");
        return std::nullopt;
    }
    if (operators.count(f.op) == 0) {
        errors.push_back(path + ".operator must be one of the following values: eq, not_eq, "
                                "contains, not_contains, exists, not_exists, range");
        return std::nullopt;
    }
    const auto* value = o.if_contains("value");
    if (f.op == "exists" || f.op == "not_exists") {
        return f;
    }
    if (value == nullptr) {
        errors.push_back(path + ".value should not be empty");
        return std::nullopt;
    }
    if (value->is_string() && value->get_string().size() > 75) {
        errors.push_back(path + ".value must be shorter than or equal to 75 characters");
        return std::nullopt;
    }
    f.value = *value;
    if (f.op == "range") {
        if (!value->is_object() || value->get_object().empty()) {
            errors.push_back(path + ".value must be an object with gte, lte, gt or lt");
            return std::nullopt;
        }
        check_unknown(value->get_object(), {"gte", "lte", "gt", "lt"}, path + ".value.", errors);
        for (const auto& kv : value->get_object()) {
            auto ms = is_date_field(f.field) ? as_date_ms(kv.value()) : as_ll(kv.value());
            if (!ms) {
                errors.push_back(path + ".value." + std::string(kv.key()) +
                                 (is_date_field(f.field) ? " must be a date (ISO-8601 or epoch ms)"
                                                         : " must be a number"));
                continue;
            }
            if (kv.key() == "gte") {
                f.gte = ms;
            } else if (kv.key() == "lte") {
                f.lte = ms;
            } else if (kv.key() == "gt") {
                f.gt = ms;
            } else if (kv.key() == "lt") {
                f.lt = ms;
            }
        }
    } else if (is_date_field(f.field) && (f.op == "eq" || f.op == "not_eq")) {
        auto ms = as_date_ms(*value);
        if (!ms) {
            errors.push_back(path + ".value must be a date (ISO-8601 or epoch ms)");
            return std::nullopt;
        }
        f.value = *ms;
    }
    return f;
}

const bj::value* custom_field(const bj::object& f, std::string_view id) {
    const auto* cfs = json::get_array(f, "customFields");
    if (cfs == nullptr) {
        return nullptr;
    }
    for (const auto& cf : *cfs) {
        if (cf.is_object() && str_of(cf.get_object(), "id") == id) {
            return cf.get_object().if_contains("value");
        }
    }
    return nullptr;
}

std::string full_name(const bj::object& f) {
    std::string first = str_of(f, "firstName");
    std::string last = str_of(f, "lastName");
    if (!first.empty() || !last.empty()) {
        return first.empty() ? last : last.empty() ? first : first + " " + last;
    }
    return str_of(f, "name");
}

/// The value a filter compares against (dates as epoch ms, case-folded names and email,
/// phone as digits).
bj::value field_of(const core::contact_rec& c, const std::string& field,
                   const std::string& location) {
    if (field == "id") {
        return bj::value(c.id);
    }
    if (field == "locationId") {
        return bj::value(location);
    }
    if (field == "dateAdded") {
        return bj::value(c.added);
    }
    if (field == "dateUpdated") {
        return bj::value(c.updated);
    }
    if (field == "firstNameLowerCase") {
        return bj::value(lower(str_of(c.f, "firstName")));
    }
    if (field == "lastNameLowerCase") {
        return bj::value(lower(str_of(c.f, "lastName")));
    }
    if (field == "fullNameLowerCase") {
        return bj::value(lower(full_name(c.f)));
    }
    if (field == "email" || field == "emailLowerCase") {
        return bj::value(lower(str_of(c.f, "email")));
    }
    if (field == "phone") {
        return bj::value(digits_of(str_of(c.f, "phone")));
    }
    for (const char* prefix : {"customFields.", "customField."}) {
        std::string_view p(prefix);
        if (field.size() > p.size() && field.compare(0, p.size(), p) == 0) {
            const auto* v = custom_field(c.f, std::string_view(field).substr(p.size()));
            return v != nullptr ? *v : bj::value();
        }
    }
    // Dotted paths into stored objects ("dndSettings.Email.status").
    const bj::value* cur = nullptr;
    const bj::object* obj = &c.f;
    std::string_view rest = field;
    while (obj != nullptr) {
        auto dot = rest.find('.');
        cur = obj->if_contains(rest.substr(0, dot));
        if (cur == nullptr || dot == std::string_view::npos) {
            break;
        }
        rest = rest.substr(dot + 1);
        obj = cur->if_object();
        cur = nullptr;
    }
    return cur != nullptr ? *cur : bj::value();
}

bool scalar_eq(const bj::value& a, const bj::value& b, bool phone) {
    if (a.is_string() && b.is_string()) {
        if (phone) {
            return digits_of(a.get_string()) == digits_of(b.get_string());
        }
        return lower(a.get_string()) == lower(b.get_string());
    }
    auto na = as_ll(a);
    auto nb = as_ll(b);
    if (na && nb) {
        return *na == *nb;
    }
    if (a.is_bool() && b.is_bool()) {
        return a.get_bool() == b.get_bool();
    }
    if (a.is_string() && b.is_bool()) {
        return a.get_string() == (b.get_bool() ? "true" : "false");
    }
    return false;
}

bool value_eq(const bj::value& field, const bj::value& want, bool phone) {
    if (field.is_array()) {
        for (const auto& e : field.get_array()) {
            if (want.is_array()) {
                for (const auto& w : want.get_array()) {
                    if (scalar_eq(e, w, phone)) {
                        return true;
                    }
                }
            } else if (scalar_eq(e, want, phone)) {
                return true;
            }
        }
        return false;
    }
    if (want.is_array()) {
        for (const auto& w : want.get_array()) {
            if (scalar_eq(field, w, phone)) {
                return true;
            }
        }
        return false;
    }
    return scalar_eq(field, want, phone);
}

bool value_contains(const bj::value& field, const bj::value& want, bool phone) {
    if (field.is_array()) {
        // For arrays (tags) "contains" means one element equals the value.
        return value_eq(field, want, phone);
    }
    if (field.is_string() && want.is_string()) {
        if (phone) {
            return digits_of(field.get_string()).find(digits_of(want.get_string())) !=
                   std::string::npos;
        }
        return lower(field.get_string()).find(lower(want.get_string())) != std::string::npos;
    }
    return false;
}

bool present(const bj::value& v) {
    if (v.is_null()) {
        return false;
    }
    if (v.is_string()) {
        return !v.get_string().empty();
    }
    if (v.is_array()) {
        return !v.get_array().empty();
    }
    return true;
}

bool matches(const core::contact_rec& c, const cfilter& f, const std::string& location) {
    if (f.kind == cfilter::all_of) {
        return std::all_of(f.kids.begin(), f.kids.end(),
                           [&](const cfilter& k) { return matches(c, k, location); });
    }
    if (f.kind == cfilter::any_of) {
        return f.kids.empty() || std::any_of(f.kids.begin(), f.kids.end(), [&](const cfilter& k) {
                   return matches(c, k, location);
               });
    }
    bj::value v = field_of(c, f.field, location);
    const bool phone = f.field == "phone";
    if (f.op == "eq") {
        return value_eq(v, f.value, phone);
    }
    if (f.op == "not_eq") {
        return !value_eq(v, f.value, phone);
    }
    if (f.op == "contains") {
        return value_contains(v, f.value, phone);
    }
    if (f.op == "not_contains") {
        return !value_contains(v, f.value, phone);
    }
    if (f.op == "exists") {
        return present(v);
    }
    if (f.op == "not_exists") {
        return !present(v);
    }
    // range
    auto n = as_ll(v);
    if (!n) {
        return false;
    }
    return (!f.gte || *n >= *f.gte) && (!f.lte || *n <= *f.lte) && (!f.gt || *n > *f.gt) &&
           (!f.lt || *n < *f.lt);
}

bool query_matches(const core::contact_rec& c, const std::string& q) {
    if (q.empty()) {
        return true;
    }
    for (const char* key : {"firstName", "lastName", "name", "email", "companyName"}) {
        if (lower(str_of(c.f, key)).find(q) != std::string::npos) {
            return true;
        }
    }
    std::string d = digits_of(q);
    return !d.empty() && digits_of(str_of(c.f, "phone")).find(d) != std::string::npos;
}

/// Inclusive bounds on `field` implied by top-level (ANDed) range/eq filters.
void bounds_for(const std::vector<cfilter>& top, std::string_view field,
                std::optional<long long>& lo, std::optional<long long>& hi) {
    for (const auto& f : top) {
        if (f.kind != cfilter::leaf || f.field != field) {
            continue;
        }
        auto raise = [&](long long v) { lo = lo ? std::max(*lo, v) : v; };
        auto cap = [&](long long v) { hi = hi ? std::min(*hi, v) : v; };
        if (f.op == "range") {
            if (f.gte) {
                raise(*f.gte);
            }
            if (f.gt) {
                raise(*f.gt + 1);
            }
            if (f.lte) {
                cap(*f.lte);
            }
            if (f.lt) {
                cap(*f.lt - 1);
            }
        } else if (f.op == "eq") {
            if (auto v = as_ll(f.value)) {
                raise(*v);
                cap(*v);
            }
        }
    }
}

/// Visits index entries in order (asc or desc), strictly after `after` when given and within
/// [lo, hi] when given, until `visit` returns false.
template <class K, class Set, class F>
void scan_index(const Set& idx, bool desc, const std::optional<std::pair<K, std::string>>& after,
                const std::optional<K>& lo, const std::optional<K>& hi, F&& visit) {
    using cmp = typename Set::key_compare;
    using probe = std::pair<K, std::string_view>;
    const auto less = idx.key_comp();
    if (!desc) {
        auto it = lo ? idx.lower_bound(probe{*lo, std::string_view()}) : idx.begin();
        if (after) {
            auto it2 = idx.upper_bound(probe{after->first, after->second});
            if (it2 == idx.end() || (it != idx.end() && less(*it, *it2))) {
                it = it2;
            }
        }
        for (; it != idx.end(); ++it) {
            if (hi && cmp::key(*it) > *hi) {
                break;
            }
            if (!visit(**it)) {
                break;
            }
        }
        return;
    }
    auto end = hi ? idx.upper_bound(probe{*hi, max_id}) : idx.end();
    if (after) {
        // Entries strictly before `after` end at end2; keep the earlier of the two ends.
        auto end2 = idx.lower_bound(probe{after->first, after->second});
        if (end2 != idx.end() && (end == idx.end() || less(*end2, *end))) {
            end = end2;
        }
    }
    while (end != idx.begin()) {
        --end;
        if (lo && cmp::key(*end) < *lo) {
            break;
        }
        if (!visit(**end)) {
            break;
        }
    }
}

} // namespace

struct core::search_query {
    std::vector<cfilter> filters;
    std::string q;
};

// =============================================================================================
// core

core::core(options opt)
    : opt_(std::move(opt))
    , id_rng_(opt_.seed)
    , token_rng_(opt_.seed ^ 0x5eed5eedULL)
    , fault_rng_(opt_.seed)
    , lag_rng_(opt_.seed ^ 0x1a9U) {}

void core::set_delivery_sink(std::function<void(webhook_delivery)> sink) {
    lock_t lock(mutex_);
    sink_ = std::move(sink);
}

void core::set_base_url(std::string url) {
    lock_t lock(mutex_);
    base_url_ = std::move(url);
}

int core::webhook_timeout_ms() const {
    lock_t lock(mutex_);
    return opt_.webhook_timeout_ms;
}
int core::webhook_retry_delay_ms() const {
    lock_t lock(mutex_);
    return opt_.webhook_retry_delay_ms;
}
int core::webhook_max_retries() const {
    lock_t lock(mutex_);
    return opt_.webhook_max_retries;
}

long long core::now_ms() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

long long core::steady_ms() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

long long core::next_update(long long previous) const {
    return std::max(now_ms(), previous + 1);
}

std::string core::new_id() {
    static const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    for (;;) {
        std::string id(20, ' ');
        for (auto& ch : id) {
            ch = alphabet[id_rng_() % 62];
        }
        if (contacts_.count(id) == 0 && tasks_.count(id) == 0 && notes_.count(id) == 0 &&
            appointments_.count(id) == 0) {
            return id;
        }
    }
}

std::string core::new_trace_id() {
    return format_trace_id(token_rng_);
}

std::string core::new_token(const char* prefix) {
    static const char* alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
    std::string t(prefix);
    for (int i = 0; i < 40; ++i) {
        t += alphabet[token_rng_() % 36];
    }
    return t;
}

// ---------------------------------------------------------------------------------------------
// Contact storage and indexes.

core::contact_rec* core::find_contact(const std::string& id) {
    auto it = contacts_.find(id);
    return it == contacts_.end() ? nullptr : &it->second;
}

// index_remove() must run before any change to the indexed fields, index_add() after.
void core::index_add(contact_rec& c) {
    c.first_lc = lower(str_of(c.f, "firstName"));
    c.last_lc = lower(str_of(c.f, "lastName"));
    by_updated_.insert(&c);
    by_added_.insert(&c);
    by_first_.insert(&c);
    by_last_.insert(&c);
    auto email = lower(str_of(c.f, "email"));
    if (!email.empty()) {
        by_email_[email].push_back(&c);
    }
    auto phone = digits_of(str_of(c.f, "phone"));
    if (!phone.empty()) {
        by_phone_[phone].push_back(&c);
    }
    if (lagging_) {
        index_schedule(c);
    }
}

void core::index_remove(const contact_rec& c) {
    by_updated_.erase(&c);
    by_added_.erase(&c);
    by_first_.erase(&c);
    by_last_.erase(&c);
    auto drop = [&](lookup_index& idx, const std::string& key) {
        auto it = idx.find(key);
        if (it != idx.end()) {
            auto& v = it->second;
            v.erase(std::remove(v.begin(), v.end(), &c), v.end());
            if (v.empty()) {
                idx.erase(it);
            }
        }
    };
    drop(by_email_, lower(str_of(c.f, "email")));
    drop(by_phone_, digits_of(str_of(c.f, "phone")));
}

// ---------------------------------------------------------------------------------------------
// The lagging search index. Every change (index_add) and delete schedules an index entry that
// becomes searchable after the lag; searches first apply what is due, then read the copy.

void core::index_schedule(const contact_rec& c) {
    std::uniform_int_distribution<int> jitter(0, std::max(0, faults_.search_lag_jitter_ms));
    const long long at = steady_ms() + std::max(0, faults_.search_lag_ms) + jitter(lag_rng_);
    index_pending_.emplace(at, index_event{c.id, c, ++index_next_seq_});
}

void core::index_schedule_erase(const std::string& id) {
    std::uniform_int_distribution<int> jitter(0, std::max(0, faults_.search_lag_jitter_ms));
    const long long at = steady_ms() + std::max(0, faults_.search_lag_ms) + jitter(lag_rng_);
    index_pending_.emplace(at, index_event{id, std::nullopt, ++index_next_seq_});
}

void core::index_catch_up() {
    const long long now = steady_ms();
    while (!index_pending_.empty() && index_pending_.begin()->first <= now) {
        index_event ev = std::move(index_pending_.begin()->second);
        index_pending_.erase(index_pending_.begin());
        auto& seq = index_seq_[ev.id];
        if (ev.seq <= seq) {
            continue; // an older change indexed after a newer one: the index keeps the newer
        }
        seq = ev.seq;
        ++index_version_;
        if (auto it = indexed_.find(ev.id); it != indexed_.end()) {
            idx_updated_.erase(&it->second);
            idx_added_.erase(&it->second);
            idx_first_.erase(&it->second);
            idx_last_.erase(&it->second);
            if (!ev.snapshot) {
                indexed_.erase(it);
                continue;
            }
            it->second = std::move(*ev.snapshot);
            idx_updated_.insert(&it->second);
            idx_added_.insert(&it->second);
            idx_first_.insert(&it->second);
            idx_last_.insert(&it->second);
        } else if (ev.snapshot) {
            auto& rec = indexed_.emplace(ev.id, std::move(*ev.snapshot)).first->second;
            idx_updated_.insert(&rec);
            idx_added_.insert(&rec);
            idx_first_.insert(&rec);
            idx_last_.insert(&rec);
        }
    }
}

void core::index_clear() {
    lagging_ = false;
    idx_updated_.clear();
    idx_added_.clear();
    idx_first_.clear();
    idx_last_.clear();
    indexed_.clear();
    index_pending_.clear();
    index_seq_.clear();
    ++index_version_;
}

void core::index_configure(int lag_ms, int jitter_ms) {
    if (lag_ms <= 0 && jitter_ms <= 0) {
        index_clear(); // searches read the live data again: everything is indexed at once
        return;
    }
    if (lagging_) {
        return; // changes already waiting keep their times; new ones use the new lag
    }
    // The index starts as what is there now.
    lagging_ = true;
    for (const auto& [id, c] : contacts_) {
        auto& rec = indexed_.emplace(id, c).first->second;
        idx_updated_.insert(&rec);
        idx_added_.insert(&rec);
        idx_first_.insert(&rec);
        idx_last_.insert(&rec);
        index_seq_[id] = ++index_next_seq_;
    }
    ++index_version_;
}

core::contact_rec& core::insert_contact(contact_rec c) {
    bump_version();
    auto [it, inserted] = contacts_.emplace(c.id, std::move(c));
    (void)inserted;
    index_add(it->second);
    return it->second;
}

void core::erase_contact(const std::string& id) {
    auto it = contacts_.find(id);
    if (it == contacts_.end()) {
        return;
    }
    bump_version();
    index_remove(it->second);
    const std::string gone = id; // `id` may name the record's own member
    contacts_.erase(it);
    if (lagging_) {
        index_schedule_erase(gone);
    }
    // Sub-resources go with the contact.
    for (const auto& pair :
         {std::make_pair(&tasks_of_, &tasks_), std::make_pair(&notes_of_, &notes_),
          std::make_pair(&appointments_of_, &appointments_)}) {
        auto kids = pair.first->find(gone);
        if (kids != pair.first->end()) {
            for (const auto& k : kids->second) {
                pair.second->erase(k);
            }
            pair.first->erase(kids);
        }
    }
}

/// Applies a (validated) write body to `c`: null clears a field, tags replace the set,
/// customFields merge by id and are stored as {id, value}.
void core::apply_contact_fields(contact_rec& c, const bj::object& body, bool* tags_changed) {
    for (const auto& kv : body) {
        std::string key(kv.key());
        const bj::value& v = kv.value();
        if (key == "locationId" || key == "createNewIfDuplicateAllowed" || key == "id") {
            continue;
        }
        if (key == "tags") {
            bj::array tags;
            std::set<std::string> seen;
            if (v.is_array()) {
                for (const auto& t : v.get_array()) {
                    if (t.is_string() && !t.get_string().empty() &&
                        seen.insert(std::string(t.get_string())).second) {
                        tags.emplace_back(t.get_string());
                    }
                }
            }
            const auto* old = json::get_array(c.f, "tags");
            if (tags_changed != nullptr && (old == nullptr ? !tags.empty() : *old != tags)) {
                *tags_changed = true;
            }
            c.f["tags"] = std::move(tags);
            continue;
        }
        if (key == "customFields") {
            bj::array merged;
            if (const auto* old = json::get_array(c.f, "customFields")) {
                merged = *old;
            }
            if (v.is_array()) {
                for (const auto& item : v.get_array()) {
                    if (!item.is_object()) {
                        continue;
                    }
                    const auto& o = item.get_object();
                    std::string id = str_of(o, "id");
                    const bj::value* val = o.if_contains("field_value");
                    if (val == nullptr) {
                        val = o.if_contains("value");
                    }
                    bj::value value = val != nullptr ? *val : bj::value();
                    auto it = std::find_if(merged.begin(), merged.end(), [&](const bj::value& e) {
                        return e.is_object() && str_of(e.get_object(), "id") == id;
                    });
                    if (value.is_null()) {
                        if (it != merged.end()) {
                            merged.erase(it);
                        }
                    } else if (it != merged.end()) {
                        it->get_object()["value"] = value;
                    } else {
                        merged.emplace_back(bj::object{{"id", id}, {"value", value}});
                    }
                }
            }
            c.f["customFields"] = std::move(merged);
            continue;
        }
        if (v.is_null()) {
            c.f.erase(key);
            continue;
        }
        if (key == "dateOfBirth" && v.is_string()) {
            if (v.get_string().empty()) {
                c.f.erase(key);
            } else if (auto ms = parse_birth_date(v.get_string())) {
                c.f[key] = iso(*ms);
            }
            continue;
        }
        c.f[key] = v;
    }
}

std::optional<std::pair<std::string, std::string>>
core::find_duplicate(const bj::object& body, const std::string& self) const {
    auto pick = [&](const lookup_index& idx, const std::string& key) -> std::optional<std::string> {
        if (key.empty()) {
            return std::nullopt;
        }
        auto it = idx.find(key);
        if (it == idx.end()) {
            return std::nullopt;
        }
        // The oldest matching contact wins.
        const contact_rec* best = nullptr;
        for (const auto* c : it->second) {
            if (c->id != self &&
                (best == nullptr || std::tie(c->added, c->id) < std::tie(best->added, best->id))) {
                best = c;
            }
        }
        if (best == nullptr) {
            return std::nullopt;
        }
        return best->id;
    };
    if (auto id = pick(by_email_, lower(str_of(body, "email")))) {
        return std::make_pair(*id, std::string("email"));
    }
    if (auto id = pick(by_phone_, digits_of(str_of(body, "phone")))) {
        return std::make_pair(*id, std::string("phone"));
    }
    return std::nullopt;
}

bj::object core::render_contact(const contact_rec& c, bool with_name) const {
    bj::object o;
    o["id"] = c.id;
    o["locationId"] = opt_.location_id;
    std::string name = full_name(c.f);
    if (!name.empty() && with_name) {
        o["name"] = name;
    }
    for (const auto& kv : c.f) {
        if (kv.key() != "name") {
            o[kv.key()] = kv.value();
        }
    }
    if (c.f.contains("firstName")) {
        o["firstNameLowerCase"] = lower(str_of(c.f, "firstName"));
    }
    if (c.f.contains("lastName")) {
        o["lastNameLowerCase"] = lower(str_of(c.f, "lastName"));
    }
    if (!name.empty()) {
        o["fullNameLowerCase"] = lower(name);
    }
    if (c.f.contains("email")) {
        o["emailLowerCase"] = lower(str_of(c.f, "email"));
    }
    if (!o.contains("type")) {
        o["type"] = "lead";
    }
    if (!o.contains("dnd")) {
        o["dnd"] = false;
    }
    if (!o.contains("tags")) {
        o["tags"] = bj::array();
    }
    if (!o.contains("customFields")) {
        o["customFields"] = bj::array();
    }
    o["dateAdded"] = iso(c.added);
    o["dateUpdated"] = iso(c.updated);
    return o;
}

bj::object core::render_task(const child_rec& t) const {
    bj::object o;
    o["id"] = t.id;
    for (const char* key : {"title", "body", "assignedTo", "dueDate", "completed"}) {
        if (const auto* v = t.f.if_contains(key)) {
            o[key] = *v;
        }
    }
    if (!o.contains("completed")) {
        o["completed"] = false;
    }
    o["contactId"] = t.contact_id;
    return o;
}

bj::object core::render_note(const child_rec& n) const {
    bj::object o;
    o["id"] = n.id;
    o["body"] = str_of(n.f, "body");
    for (const char* key : {"userId", "title", "color", "pinned"}) {
        if (const auto* v = n.f.if_contains(key)) {
            o[key] = *v;
        }
    }
    o["dateAdded"] = iso(n.added);
    o["contactId"] = n.contact_id;
    return o;
}

bj::object core::render_appointment(const child_rec& a) const {
    bj::object o;
    o["id"] = a.id;
    for (const auto& kv : a.f) {
        o[kv.key()] = kv.value();
    }
    o["locationId"] = opt_.location_id;
    o["contactId"] = a.contact_id;
    o["dateAdded"] = appointment_time(a.added);
    o["dateUpdated"] = appointment_time(a.updated);
    return o;
}

http_response core::contact_not_found(const std::string& id) const {
    return error_response(400, "Contact with id " + id + " not found");
}

http_response core::child_not_found(const char* what, const std::string& id) const {
    const int status = opt_.subresource_not_found_status;
    return error_response(status, std::string(what) + " with id " + id + " not found",
                          status == 404 ? "Not Found" : nullptr);
}

void core::count_create(const std::string& entity, const std::string& key) {
    ++stats_.creates[entity];
    ++stats_.creates_by_key[entity + " " + key];
}

// ---------------------------------------------------------------------------------------------
// Webhooks.

bj::object core::contact_event(const contact_rec& c) const {
    bj::object o;
    o["locationId"] = opt_.location_id;
    o["id"] = c.id;
    for (const char* key :
         {"address1", "city", "state", "companyName", "country", "source", "dateOfBirth", "dnd",
          "email", "firstName", "lastName", "phone", "postalCode", "website", "assignedTo"}) {
        if (const auto* v = c.f.if_contains(key)) {
            o[key] = *v;
        }
    }
    std::string name = full_name(c.f);
    if (!name.empty()) {
        o["name"] = name;
    }
    const auto* tags = json::get_array(c.f, "tags");
    o["tags"] = tags != nullptr ? *tags : bj::array();
    const auto* cfs = json::get_array(c.f, "customFields");
    o["customFields"] = cfs != nullptr ? *cfs : bj::array();
    o["attachments"] = bj::array();
    o["dateAdded"] = iso(c.added);
    return o;
}

bj::object core::child_event(const child_rec& r, bool task) const {
    bj::object o;
    o["locationId"] = opt_.location_id;
    o["id"] = r.id;
    o["contactId"] = r.contact_id;
    o["body"] = str_of(r.f, "body");
    if (task) {
        o["title"] = str_of(r.f, "title");
        o["assignedTo"] = str_of(r.f, "assignedTo");
        o["dueDate"] = str_of(r.f, "dueDate");
    }
    o["dateAdded"] = iso(r.added);
    return o;
}

void core::emit(const std::string& type, bj::object payload) {
    // Events are produced only while a webhook target is configured: signing every seeded
    // contact would make large seeds slow for nothing.
    if (opt_.webhook_url.empty()) {
        return;
    }
    bj::object o;
    o["type"] = type;
    for (auto& kv : payload) {
        o[kv.key()] = std::move(kv.value());
    }
    publish(std::move(o));
}

std::string core::publish(bj::object payload) {
    if (!payload.contains("locationId")) {
        payload["locationId"] = opt_.location_id;
    }
    if (!payload.contains("timestamp")) {
        payload["timestamp"] = iso(now_ms());
    }
    if (!payload.contains("webhookId")) {
        payload["webhookId"] = new_trace_id();
    }
    webhook_record rec;
    rec.type = str_of(payload, "type");
    rec.webhook_id = str_of(payload, "webhookId");
    rec.body = dump(payload);
    rec.ghl_signature = signer_.sign_ed25519(rec.body);
    if (opt_.webhook_rsa_signature) {
        rec.wh_signature = signer_.sign_rsa(rec.body);
    }
    if (webhooks_.size() >= 100000) {
        webhooks_.erase(webhooks_.begin(), webhooks_.begin() + 50000);
    }
    webhooks_.push_back(rec);
    if (!opt_.webhook_url.empty() && sink_) {
        sink_(webhook_delivery{webhooks_.size() - 1, opt_.webhook_url, rec.body, rec.ghl_signature,
                               rec.wh_signature});
    }
    return rec.body;
}

void core::webhook_result(std::size_t index, int status, int attempts) {
    lock_t lock(mutex_);
    if (index < webhooks_.size()) {
        webhooks_[index].status = status;
        webhooks_[index].attempts = attempts;
    }
    if (status >= 200 && status < 300) {
        ++stats_.webhooks_sent;
    } else {
        ++stats_.webhooks_failed;
    }
}

// ---------------------------------------------------------------------------------------------
// Request pipeline.

http_response core::handle(const http_request& req) {
    std::string_view target = req.target;
    std::string path(target.substr(0, target.find('?')));
    if (path == "/_sim" || path.rfind("/_sim/", 0) == 0) {
        // Admin: no auth, no rate limits, no faults, not counted. Takes the lock itself.
        return handle_admin(req, path);
    }
    lock_t lock(mutex_);
    ++stats_.requests;
    request_record rec;
    rec.method = req.method;
    rec.target = req.target;
    rec.body = req.body.substr(0, std::size_t{64} * 1024);
    http_response res = dispatch(req, rec);
    rec.status = res.act == action::respond ? res.status : 0;
    if (res.act == action::respond) {
        ++stats_.by_status[res.status];
    }
    if (opt_.max_request_log > 0) {
        if (log_.size() >= opt_.max_request_log) {
            log_.pop_front();
        }
        log_.push_back(std::move(rec));
    }
    return res;
}

bool core::is_static_token(const http_request& req) const {
    std::string_view auth = req.authorization;
    if (auth.size() < 8)
        return false;
    std::string token(auth.substr(7));
    while (!token.empty() && token.front() == ' ')
        token.erase(0, 1);
    return std::find(opt_.static_tokens.begin(), opt_.static_tokens.end(), token) !=
           opt_.static_tokens.end();
}

std::optional<http_response> core::check_auth(const http_request& req) {
    std::string_view auth = req.authorization;
    if (auth.size() < 8 || lower(auth.substr(0, 7)) != "bearer ") {
        return unauthorized();
    }
    std::string token(auth.substr(7));
    while (!token.empty() && token.front() == ' ') {
        token.erase(0, 1);
    }
    if (std::find(opt_.static_tokens.begin(), opt_.static_tokens.end(), token) !=
        opt_.static_tokens.end()) {
        return std::nullopt;
    }
    auto it = access_tokens_.find(token);
    if (it != access_tokens_.end() && it->second > steady_ms()) {
        return std::nullopt;
    }
    return unauthorized();
}

std::optional<http_response>
core::check_rate_limit(std::vector<std::pair<std::string, std::string>>& headers, bool consume) {
    const long long now = steady_ms();
    if (window_start_ < 0 || now - window_start_ >= opt_.window_ms) {
        window_start_ = now;
        window_count_ = 0;
    }
    if (day_start_ < 0 || now - day_start_ >= day_ms) {
        day_start_ = now;
        day_count_ = 0;
    }
    bool limited = false;
    long long wait_ms = 0;
    if (opt_.rate_limit && consume) {
        if (day_count_ >= opt_.daily) {
            limited = true;
            wait_ms = day_start_ + day_ms - now;
        } else if (window_count_ >= opt_.burst) {
            limited = true;
            wait_ms = window_start_ + opt_.window_ms - now;
        } else {
            ++window_count_;
            ++day_count_;
        }
    }
    // With rate limiting off the headers are left out too: advertising a limit that is not
    // enforced would make a well-behaved client throttle itself to it.
    if (opt_.rate_limit) {
        headers.emplace_back("X-RateLimit-Limit-Daily", std::to_string(opt_.daily));
        headers.emplace_back("X-RateLimit-Daily-Remaining",
                             std::to_string(std::max(0LL, opt_.daily - day_count_)));
        headers.emplace_back("X-RateLimit-Interval-Milliseconds", std::to_string(opt_.window_ms));
        headers.emplace_back("X-RateLimit-Max", std::to_string(opt_.burst));
        headers.emplace_back(
            "X-RateLimit-Remaining",
            std::to_string(std::max(0LL, static_cast<long long>(opt_.burst) - window_count_)));
    }
    if (!limited) {
        return std::nullopt;
    }
    ++stats_.rate_limited;
    http_response r = error_response(429, "Too many requests");
    if (opt_.send_retry_after) {
        r.headers.emplace_back("Retry-After",
                               std::to_string(std::max(1LL, (wait_ms + 999) / 1000)));
    }
    return r;
}

std::optional<http_response> core::draw_outage() {
    if (faults_.outage.empty() || outage_started_ < 0) {
        return std::nullopt;
    }
    if (faults_.outage_ms > 0 && steady_ms() - outage_started_ >= faults_.outage_ms) {
        return std::nullopt; // over
    }
    std::string mode = faults_.outage;
    if (mode == "mixed") {
        static const char* modes[] = {"503", "reset", "hang"};
        mode = modes[fault_rng_() % 3];
    }
    http_response res;
    if (mode == "reset") {
        res.act = action::reset;
    } else if (mode == "hang") {
        res.act = action::hold;
    } else {
        // What the load balancer in front of the API sends: HTML, no rate-limit headers.
        res.status = 503;
        res.content_type = "text/html";
        res.body = "<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>";
    }
    ++stats_.outage_requests;
    ++stats_.faults["outage_" + mode];
    return res;
}

std::string core::draw_fault(const std::string& route) {
    const auto& f = faults_;
    if (!f.routes.empty() && std::find(f.routes.begin(), f.routes.end(), route) == f.routes.end()) {
        return {};
    }
    ++fault_eligible_;
    if (fault_eligible_ <= f.skip_first) {
        return {};
    }
    if (f.max_faults >= 0 && fault_injected_ >= f.max_faults) {
        return {};
    }
    std::uniform_real_distribution<double> u(0.0, 1.0);
    auto hit = [&](double rate) { return rate > 0 && (rate >= 1 || u(fault_rng_) < rate); };
    const std::pair<double, const char*> order[] = {{f.drop_before_apply_rate, "drop_before"},
                                                    {f.error_rate, "error"},
                                                    {f.timeout_rate, "timeout"},
                                                    {f.drop_after_apply_rate, "drop_after"},
                                                    {f.malformed_rate, "malformed"},
                                                    {f.slow_body_rate, "slow"}};
    for (const auto& [rate, name] : order) {
        if (hit(rate)) {
            ++fault_injected_;
            ++stats_.faults[name];
            return name;
        }
    }
    return {};
}

http_response core::dispatch(const http_request& req, request_record& rec) {
    std::string_view target = req.target;
    auto qpos = target.find('?');
    std::string path(target.substr(0, qpos));
    auto query =
        parse_form(qpos == std::string_view::npos ? std::string_view() : target.substr(qpos + 1));
    route r = match_route(req.method, split_path(path));
    rec.route = r.tmpl;
    ++stats_.by_route[r.tmpl];
    if (auto down = draw_outage()) {
        // In front of everything (routing, auth, limits): nothing is applied or counted.
        const char* names[] = {"outage_503", "outage_reset", "outage_hang"};
        rec.fault = down->act == action::reset  ? names[1]
                    : down->act == action::hold ? names[2]
                                                : names[0];
        return *down;
    }
    if (r.id == route_id::unknown) {
        return error_response(404, "Cannot " + req.method + " " + path, "Not Found");
    }
    std::vector<std::pair<std::string, std::string>> rl_headers;
    if (r.id != route_id::oauth_token) {
        // Requests refused before the limiter (401, bad Version) carry the headers but do not
        // count against the limits.
        std::optional<http_response> refused = check_auth(req);
        if (!refused) {
            // OAuth tokens have opt_.scope; a private token its own scopes, or all of them.
            std::optional<std::string> scopes;
            if (!is_static_token(req)) {
                scopes = opt_.scope;
            } else {
                std::string token(std::string_view(req.authorization).substr(7));
                while (!token.empty() && token.front() == ' ') {
                    token.erase(0, 1);
                }
                if (auto it = opt_.static_token_scopes.find(token);
                    it != opt_.static_token_scopes.end()) {
                    scopes = it->second;
                }
            }
            const std::string wanted = required_scope(req.method, r.tmpl);
            if (scopes && !wanted.empty() && !has_scope(*scopes, wanted))
                refused = error_response(401, "The token is not authorized for this scope.",
                                         "Unauthorized");
        }
        if (!refused && opt_.require_version && req.version.value_or("") != api_version) {
            refused = error_response(
                400, "Version header is missing or invalid (expected 2021-07-28)", "Bad Request");
        }
        if (refused) {
            check_rate_limit(refused->headers, false);
            return *refused;
        }
        if (auto e = check_rate_limit(rl_headers, true)) {
            rec.fault = "rate_limited";
            e->headers.insert(e->headers.begin(), rl_headers.begin(), rl_headers.end());
            return *e;
        }
    }
    if (!faults_.reject_body_containing.empty() && r.id != route_id::oauth_token &&
        (req.method == "POST" || req.method == "PUT") &&
        req.body.find(faults_.reject_body_containing) != std::string::npos) {
        rec.fault = "rejected";
        http_response res = unprocessable({"the request was rejected by the simulator"});
        res.headers.insert(res.headers.begin(), rl_headers.begin(), rl_headers.end());
        return res;
    }
    auto listed = [&](const std::vector<std::string>& routes) {
        return std::find(routes.begin(), routes.end(), r.tmpl) != routes.end();
    };
    if (listed(faults_.html_404_routes)) {
        rec.fault = "html_404";
        http_response res;
        res.status = 404;
        res.content_type = "text/html";
        res.body = "<html><head><title>404 Not Found</title></head><body><center><h1>404 Not "
                   "Found</h1></center><hr><center>nginx</center></body></html>";
        res.headers.insert(res.headers.begin(), rl_headers.begin(), rl_headers.end());
        return res;
    }
    if (listed(faults_.user_not_found_routes)) {
        rec.fault = "user_not_found";
        http_response res = error_response(400, "User not found", "Bad Request");
        res.headers.insert(res.headers.begin(), rl_headers.begin(), rl_headers.end());
        return res;
    }
    const bool eligible =
        faults_.routes.empty() ||
        std::find(faults_.routes.begin(), faults_.routes.end(), r.tmpl) != faults_.routes.end();
    std::string fault = draw_fault(r.tmpl);
    rec.fault = fault;
    http_response res;
    if (fault == "drop_before") {
        res.act = action::drop;
    } else if (fault == "timeout") {
        res.act = action::hold;
    } else if (fault == "error") {
        const auto& statuses = faults_.error_statuses;
        int status = statuses.empty() ? 500 : statuses[fault_rng_() % statuses.size()];
        if (status == 401) {
            res = unauthorized();
        } else if (status == 429) {
            res = error_response(429, "Too many requests");
            res.headers.emplace_back("Retry-After", "1");
            ++stats_.injected_429;
        } else if (status == 502 || status == 503 || status == 504) {
            // What a proxy in front of the API sends: HTML, not JSON.
            res.status = status;
            res.content_type = "text/html";
            res.body =
                "<html><body><h1>" + std::to_string(status) + " Gateway error</h1></body></html>";
        } else if (status == 422) {
            res = unprocessable({"Unprocessable Entity"});
        } else {
            res = error_response(status, status >= 500 ? "Internal server error" : "Bad Request");
        }
    } else {
        res = r.id == route_id::oauth_token ? oauth_token(req) : handle_api(r, req, query);
        if (fault == "drop_after") {
            res.act = action::drop;
        } else if (fault == "malformed") {
            // Cut the body in half: never valid JSON.
            res.body = res.body.substr(0, std::max<std::size_t>(1, res.body.size() / 2));
            if (res.body == "{" || res.body.empty()) {
                res.body = "{\"contact\":";
            }
        } else if (fault == "slow") {
            res.slow = true;
            res.slow_chunk_bytes = std::max(1, faults_.slow_body_chunk_bytes);
            res.slow_delay_ms = std::max(0, faults_.slow_body_delay_ms);
        }
    }
    if (eligible) {
        res.latency_ms = faults_.latency_ms;
    }
    res.headers.insert(res.headers.begin(), rl_headers.begin(), rl_headers.end());
    return res;
}

http_response core::handle_api(const route& r, const http_request& req,
                               const std::map<std::string, std::string>& query) {
    bj::object body;
    if (route_has_json_body(r.id)) {
        std::string_view text = req.body;
        auto first = text.find_first_not_of(" \t\r\n");
        if (first != std::string_view::npos) {
            if (lower(req.content_type).find("application/json") == std::string::npos) {
                return error_response(400, "Content-Type must be application/json", "Bad Request");
            }
            auto parsed = json::parse(text, {opt_.max_body_bytes, 32});
            if (!parsed) {
                return error_response(400, "Unexpected token in JSON: " + parsed.error(),
                                      "Bad Request");
            }
            if (!parsed->is_object()) {
                return error_response(400, "The request body must be a JSON object", "Bad Request");
            }
            body = std::move(parsed->get_object());
        }
    }
    const std::string& cid = r.contact_id;
    const std::string& sid = r.sub_id;
    switch (r.id) {
    case route_id::contact_get:
        return contact_get(cid);
    case route_id::contact_put:
        return contact_update(cid, body);
    case route_id::contact_delete:
        return contact_delete(cid);
    case route_id::contact_create:
        return contact_create(body);
    case route_id::contact_upsert:
        return contact_upsert(body);
    case route_id::contact_list:
        return contact_list(query);
    case route_id::contact_search:
        return contact_search(body);
    case route_id::contact_duplicate:
        return contact_duplicate(query);
    case route_id::contact_business:
        return contact_business(sid, query);
    case route_id::tags_add:
        return tags_change(cid, body, true);
    case route_id::tags_remove:
        return tags_change(cid, body, false);
    case route_id::tasks_list:
        return tasks_list(cid);
    case route_id::task_create:
        return task_create(cid, body);
    case route_id::task_get:
        return task_get(cid, sid);
    case route_id::task_put:
        return task_update(cid, sid, body, false);
    case route_id::task_delete:
        return task_delete(cid, sid);
    case route_id::task_completed:
        return task_update(cid, sid, body, true);
    case route_id::notes_list:
        return notes_list(cid);
    case route_id::note_create:
        return note_create(cid, body);
    case route_id::note_get:
        return note_get(cid, sid);
    case route_id::note_put:
        return note_update(cid, sid, body);
    case route_id::note_delete:
        return note_delete(cid, sid);
    case route_id::appointments_list:
        return appointments_list(cid);
    case route_id::custom_fields_list:
        return custom_fields_list(sid, query);
    case route_id::oauth_token:
    case route_id::unknown:
        break;
    }
    return error_response(404, "Cannot " + req.method + " " + req.target, "Not Found");
}

// ---------------------------------------------------------------------------------------------
// OAuth.

http_response core::oauth_token(const http_request& req) {
    if (lower(req.content_type).find("application/x-www-form-urlencoded") == std::string::npos) {
        return error_response(400, "Content-Type must be application/x-www-form-urlencoded",
                              "Bad Request");
    }
    auto form = parse_form(req.body);
    auto get = [&](const char* k) {
        auto it = form.find(k);
        return it == form.end() ? std::string() : it->second;
    };
    const std::string grant = get("grant_type");
    if (get("client_id").empty()) {
        return error_response(400, "Missing parameter: clientId");
    }
    if (get("client_secret").empty()) {
        return error_response(400, "Missing parameter: clientSecret");
    }
    if (grant.empty()) {
        return error_response(400, "Missing parameter: grantType");
    }
    if (get("client_id") != opt_.client_id || get("client_secret") != opt_.client_secret) {
        return error_response(401, "Invalid client: client credentials are invalid",
                              "Unauthorized");
    }
    if (grant != "authorization_code" && grant != "refresh_token") {
        return error_response(400, "Invalid parameter: grantType");
    }
    const std::string user_type = get("user_type");
    if (!user_type.empty() && user_type != "Location" && user_type != "Company") {
        return error_response(400, "Invalid parameter: userType");
    }
    if (grant == "authorization_code") {
        const std::string code = get("code");
        if (code.empty()) {
            return error_response(400, "Missing parameter: code");
        }
        if (auth_codes_.count(code) == 0) {
            return error_response(400, "Invalid grant: authorization code is invalid");
        }
        if (!location_active_) {
            return error_response(400, "Location is not active");
        }
        auth_codes_.erase(code);
    } else {
        const std::string token = get("refresh_token");
        if (token.empty()) {
            return error_response(400, "Missing parameter: refreshToken");
        }
        if (refresh_tokens_.count(token) == 0) {
            return error_response(400, "Invalid grant: refresh token is invalid");
        }
        if (!location_active_) {
            // The same refresh token works again once the location is reactivated.
            return error_response(400, "Location is not active");
        }
        refresh_tokens_.erase(token);
    }
    std::string access = new_token("sim-at-");
    std::string refresh = new_token("sim-rt-");
    access_tokens_[access] =
        steady_ms() + static_cast<long long>(opt_.access_token_ttl_seconds) * 1000;
    refresh_tokens_.insert(refresh);
    return json_response(200,
                         bj::object{{"access_token", access},
                                    {"token_type", "Bearer"},
                                    {"expires_in", opt_.access_token_ttl_seconds},
                                    {"refresh_token", refresh},
                                    {"scope", opt_.scope},
                                    {"userType", "Location"},
                                    {"locationId", opt_.location_id},
                                    {"companyId", opt_.company_id},
                                    {"approvedLocations", bj::array{bj::value(opt_.location_id)}},
                                    {"userId", opt_.user_id},
                                    {"isBulkInstallation", false}});
}

// ---------------------------------------------------------------------------------------------
// Contacts.

http_response core::contact_get(const std::string& id) {
    const auto* c = find_contact(id);
    if (c == nullptr) {
        return contact_not_found(id);
    }
    return json_response(200,
                         bj::object{{"contact", render_contact(*c)}, {"traceId", new_trace_id()}});
}

http_response core::contact_create(const bj::object& body) {
    auto errors = validate_contact(body, dto::create);
    if (!errors.empty()) {
        return unprocessable(errors);
    }
    if (str_of(body, "locationId") != opt_.location_id) {
        return forbidden_location();
    }
    if (!opt_.allow_duplicates) {
        if (auto dup = find_duplicate(body, std::string())) {
            const auto& existing = contacts_.at(dup->first);
            std::string name = full_name(existing.f);
            bj::object meta{{"contactId", existing.id},
                            {"contactName", name.empty() ? bj::value() : bj::value(name)},
                            {"matchingField", dup->second}};
            return json_response(
                400, bj::object{{"statusCode", 400},
                                {"message", "This location does not allow duplicated contacts."},
                                {"meta", std::move(meta)}});
        }
    }
    contact_rec c;
    c.id = new_id();
    c.added = now_ms();
    c.updated = c.added;
    apply_contact_fields(c, body, nullptr);
    auto& stored = insert_contact(std::move(c));
    std::string email = lower(str_of(stored.f, "email"));
    std::string phone = digits_of(str_of(stored.f, "phone"));
    count_create("contact", !email.empty()   ? "email:" + email
                            : !phone.empty() ? "phone:" + phone
                                             : "id:" + stored.id);
    if (opt_.webhooks_on_api_writes) {
        emit("ContactCreate", contact_event(stored));
    }
    // CreatedContact: the Contact schema without `name`, plus `deleted`.
    bj::object out = render_contact(stored, false);
    out["deleted"] = false;
    return json_response(201, bj::object{{"contact", std::move(out)}, {"traceId", new_trace_id()}});
}

http_response core::contact_update(const std::string& id, const bj::object& body) {
    auto errors = validate_contact(body, dto::update);
    if (!errors.empty()) {
        return unprocessable(errors);
    }
    auto* c = find_contact(id);
    if (c == nullptr) {
        return contact_not_found(id);
    }
    if (!opt_.allow_duplicates && (body.contains("email") || body.contains("phone"))) {
        bj::object probe;
        if (body.contains("email")) {
            probe["email"] = body.at("email");
        }
        if (body.contains("phone")) {
            probe["phone"] = body.at("phone");
        }
        if (auto dup = find_duplicate(probe, id)) {
            const auto& existing = contacts_.at(dup->first);
            std::string name = full_name(existing.f);
            return json_response(
                400, bj::object{{"statusCode", 400},
                                {"message", "This location does not allow duplicated contacts."},
                                {"meta", bj::object{{"contactId", existing.id},
                                                    {"contactName",
                                                     name.empty() ? bj::value() : bj::value(name)},
                                                    {"matchingField", dup->second}}}});
        }
    }
    index_remove(*c);
    bool tags_changed = false;
    apply_contact_fields(*c, body, &tags_changed);
    c->updated = next_update(c->updated);
    index_add(*c);
    bump_version();
    if (opt_.webhooks_on_api_writes) {
        emit("ContactUpdate", contact_event(*c));
        if (tags_changed) {
            emit("ContactTagUpdate", contact_event(*c));
        }
    }
    return json_response(200, bj::object{{"succeded", true},
                                         {"contact", render_contact(*c)},
                                         {"traceId", new_trace_id()}});
}

http_response core::contact_delete(const std::string& id) {
    auto* c = find_contact(id);
    if (c == nullptr) {
        return contact_not_found(id);
    }
    bj::object event = contact_event(*c);
    erase_contact(id);
    if (opt_.webhooks_on_api_writes) {
        emit("ContactDelete", std::move(event));
    }
    return json_response(200, bj::object{{"succeded", true}, {"traceId", new_trace_id()}});
}

http_response core::contact_upsert(const bj::object& body) {
    auto errors = validate_contact(body, dto::upsert);
    if (!errors.empty()) {
        return unprocessable(errors);
    }
    if (str_of(body, "locationId") != opt_.location_id) {
        return forbidden_location();
    }
    const bool always_create = opt_.allow_duplicates &&
                               json::get_bool(body, "createNewIfDuplicateAllowed").value_or(false);
    std::optional<std::pair<std::string, std::string>> match;
    if (!always_create) {
        match = find_duplicate(body, std::string());
    }
    if (match) {
        auto& c = contacts_.at(match->first);
        index_remove(c);
        bool tags_changed = false;
        apply_contact_fields(c, body, &tags_changed);
        c.updated = next_update(c.updated);
        index_add(c);
        bump_version();
        if (opt_.webhooks_on_api_writes) {
            emit("ContactUpdate", contact_event(c));
            if (tags_changed) {
                emit("ContactTagUpdate", contact_event(c));
            }
        }
        return json_response(200, bj::object{{"new", false},
                                             {"contact", render_contact(c)},
                                             {"traceId", new_trace_id()}});
    }
    contact_rec c;
    c.id = new_id();
    c.added = now_ms();
    c.updated = c.added;
    apply_contact_fields(c, body, nullptr);
    auto& stored = insert_contact(std::move(c));
    std::string email = lower(str_of(stored.f, "email"));
    std::string phone = digits_of(str_of(stored.f, "phone"));
    count_create("contact", !email.empty()   ? "email:" + email
                            : !phone.empty() ? "phone:" + phone
                                             : "id:" + stored.id);
    if (opt_.webhooks_on_api_writes) {
        emit("ContactCreate", contact_event(stored));
    }
    return json_response(200, bj::object{{"new", true},
                                         {"contact", render_contact(stored)},
                                         {"traceId", new_trace_id()}});
}

http_response core::contact_list(const std::map<std::string, std::string>& query) {
    auto errors =
        check_query(query, {"locationId", "query", "limit", "startAfterId", "startAfter"}, true);
    long long limit = 20;
    std::optional<long long> start_after;
    if (auto it = query.find("limit"); it != query.end()) {
        auto n = parse_ll(it->second);
        if (!n) {
            errors.emplace_back("limit must be a number conforming to the specified constraints");
        } else if (*n > 100) {
            errors.emplace_back("limit must not be greater than 100");
        } else if (*n < 1) {
            errors.emplace_back("limit must not be less than 1");
        } else {
            limit = *n;
        }
    }
    if (auto it = query.find("startAfter"); it != query.end() && !it->second.empty()) {
        start_after = parse_ll(it->second);
        if (!start_after) {
            errors.emplace_back(
                "startAfter must be a number conforming to the specified constraints");
        }
    }
    if (!errors.empty()) {
        return unprocessable(errors);
    }
    if (query.at("locationId") != opt_.location_id) {
        return forbidden_location();
    }
    std::string q;
    if (auto it = query.find("query"); it != query.end()) {
        q = lower(it->second);
    }
    std::optional<std::pair<long long, std::string>> after;
    std::string start_after_id;
    if (auto it = query.find("startAfterId"); it != query.end()) {
        start_after_id = it->second;
    }
    if (start_after) {
        after = std::make_pair(*start_after, start_after_id.empty() ? max_id : start_after_id);
    } else if (!start_after_id.empty()) {
        if (const auto* c = find_contact(start_after_id)) {
            after = std::make_pair(c->added, c->id);
        }
    }
    // Ordered by dateAdded, then id; the cursor is the last item's (dateAdded, id).
    std::vector<const contact_rec*> page;
    bool has_next = false;
    long long before = 0; // matching items before the cursor, for currentPage
    if (after) {
        const std::pair<long long, std::string_view> cursor{after->first, after->second};
        for (auto it = by_added_.begin();
             it != by_added_.end() && !by_added_.key_comp()(cursor, *it); ++it) {
            if (query_matches(**it, q)) {
                ++before;
            }
        }
    }
    scan_index<long long>(by_added_, false, after, std::nullopt, std::nullopt,
                          [&](const contact_rec& c) {
                              if (!query_matches(c, q)) {
                                  return true;
                              }
                              if (static_cast<long long>(page.size()) == limit) {
                                  has_next = true;
                                  return false;
                              }
                              page.push_back(&c);
                              return true;
                          });
    long long total = 0;
    if (q.empty()) {
        total = static_cast<long long>(contacts_.size());
    } else {
        for (const auto& kv : contacts_) {
            total += query_matches(kv.second, q) ? 1 : 0;
        }
    }
    bj::array contacts;
    for (const auto* c : page) {
        bj::object o = render_contact(*c);
        if (o.contains("name")) {
            o["contactName"] = o["name"];
        }
        contacts.emplace_back(std::move(o));
    }
    const long long current = before / limit + 1;
    bj::object meta;
    meta["total"] = total;
    if (has_next) {
        std::string url = base_url_ + "/contacts/?locationId=" + url_encode(opt_.location_id) +
                          "&startAfter=" + std::to_string(page.back()->added) +
                          "&startAfterId=" + url_encode(page.back()->id);
        if (limit != 20) {
            url += "&limit=" + std::to_string(limit);
        }
        if (!q.empty()) {
            url += "&query=" + url_encode(query.at("query"));
        }
        meta["nextPageUrl"] = url;
    } else {
        meta["nextPageUrl"] = nullptr;
    }
    meta["startAfterId"] = page.empty() ? bj::value() : bj::value(page.back()->id);
    meta["startAfter"] = page.empty() ? bj::value() : bj::value(page.back()->added);
    meta["currentPage"] = current;
    meta["nextPage"] = has_next ? bj::value(current + 1) : bj::value();
    meta["prevPage"] = current > 1 ? bj::value(current - 1) : bj::value();
    const auto count = static_cast<long long>(contacts.size());
    return json_response(200, bj::object{{"contacts", std::move(contacts)},
                                         {"count", count},
                                         {"meta", std::move(meta)},
                                         {"traceId", new_trace_id()}});
}

http_response core::contact_search(const bj::object& body) {
    std::vector<std::string> errors;
    check_unknown(body,
                  {"locationId", "page", "pageLimit", "searchAfter", "filters", "sort", "query"},
                  "", errors);
    const auto* loc = body.if_contains("locationId");
    if (loc == nullptr || !loc->is_string() || loc->get_string().empty()) {
        errors.emplace_back("locationId should not be empty");
    }
    long long limit = 0;
    if (const auto* pl = body.if_contains("pageLimit"); pl == nullptr || pl->is_null()) {
        errors.emplace_back("pageLimit should not be empty");
    } else if (auto n = as_ll(*pl); !n) {
        errors.emplace_back("pageLimit must be a number conforming to the specified constraints");
    } else if (*n > 500) {
        errors.emplace_back("pageLimit must not be greater than 500");
    } else if (*n < 1) {
        errors.emplace_back("pageLimit must not be less than 1");
    } else {
        limit = *n;
    }
    long long page = 1;
    const auto* page_v = body.if_contains("page");
    const auto* after_v = body.if_contains("searchAfter");
    if (page_v != nullptr && after_v != nullptr) {
        errors.emplace_back("page and searchAfter cannot be used together");
    }
    if (page_v != nullptr) {
        auto n = as_ll(*page_v);
        if (!n || *n < 1) {
            errors.emplace_back("page must not be less than 1");
        } else {
            page = *n;
        }
    }
    std::string q;
    if (const auto* qv = body.if_contains("query"); qv != nullptr && !qv->is_null()) {
        if (!qv->is_string()) {
            errors.emplace_back("query must be a string");
        } else if (qv->get_string().size() > 75) {
            errors.emplace_back("query must be shorter than or equal to 75 characters");
        } else {
            q = lower(qv->get_string());
        }
    }
    search_query sq;
    sq.q = q;
    if (const auto* fv = body.if_contains("filters"); fv != nullptr && !fv->is_null()) {
        if (!fv->is_array()) {
            errors.emplace_back("filters must be an array");
        } else {
            std::size_t i = 0;
            for (const auto& f : fv->get_array()) {
                if (auto c = compile_filter(f, "filters." + std::to_string(i++), errors)) {
                    sq.filters.push_back(std::move(*c));
                }
            }
        }
    }
    struct sort_spec {
        std::string field;
        bool desc = false;
    };
    std::vector<sort_spec> sorts;
    if (const auto* sv = body.if_contains("sort"); sv != nullptr && !sv->is_null()) {
        if (!sv->is_array()) {
            errors.emplace_back("sort must be an array");
        } else {
            std::size_t i = 0;
            for (const auto& s : sv->get_array()) {
                std::string prefix = "sort." + std::to_string(i++) + ".";
                if (!s.is_object()) {
                    errors.push_back(prefix.substr(0, prefix.size() - 1) + " must be an object");
                    continue;
                }
                check_unknown(s.get_object(), {"field", "direction"}, prefix, errors);
                sort_spec spec{str_of(s.get_object(), "field"), false};
                std::string dir = str_of(s.get_object(), "direction");
                if (spec.field != "dateAdded" && spec.field != "dateUpdated" &&
                    spec.field != "firstNameLowerCase" && spec.field != "lastNameLowerCase") {
                    errors.push_back(prefix +
                                     "field must be one of the following values: dateAdded, "
                                     "dateUpdated, firstNameLowerCase, lastNameLowerCase");
                }
                if (dir != "asc" && dir != "desc") {
                    errors.push_back(prefix +
                                     "direction must be one of the following values: asc, desc");
                }
                spec.desc = dir == "desc";
                sorts.push_back(spec);
            }
        }
    }
    if (sorts.empty()) {
        sorts.push_back({"dateAdded", true}); // newest first, as GHL's UI lists them
    }
    // The cursor: one value per sort field, then the id.
    std::vector<bj::value> cursor;
    if (after_v != nullptr && !after_v->is_null()) {
        bool ok = after_v->is_array() && after_v->get_array().size() == sorts.size() + 1 &&
                  after_v->get_array().back().is_string();
        if (ok) {
            for (std::size_t i = 0; i < sorts.size(); ++i) {
                const auto& v = after_v->get_array()[i];
                if (is_date_field(sorts[i].field)) {
                    auto ms = as_date_ms(v);
                    ok = ok && ms.has_value();
                    cursor.emplace_back(ms.value_or(0));
                } else {
                    ok = ok && v.is_string();
                    cursor.emplace_back(v.is_string() ? v : bj::value(""));
                }
            }
            cursor.emplace_back(after_v->get_array().back());
        }
        if (!ok) {
            errors.push_back("searchAfter must be an array of " + std::to_string(sorts.size() + 1) +
                             " values: the sort value(s) and the id from the last contact");
        }
    }
    if (errors.empty() && (page - 1) * limit + limit > 10000) {
        errors.emplace_back("page * pageLimit must not exceed 10000; use searchAfter to go deeper");
    }
    if (!errors.empty()) {
        return unprocessable(errors);
    }
    if (loc->get_string() != opt_.location_id) {
        return forbidden_location();
    }

    // What the search reads: the live records, or the lagging index's copies of them.
    if (lagging_) {
        index_catch_up();
    }
    const auto& v_contacts = lagging_ ? indexed_ : contacts_;
    const auto& v_updated = lagging_ ? idx_updated_ : by_updated_;
    const auto& v_added = lagging_ ? idx_added_ : by_added_;
    const auto& v_first = lagging_ ? idx_first_ : by_first_;
    const auto& v_last = lagging_ ? idx_last_ : by_last_;
    const unsigned long long v_version = lagging_ ? index_version_ : version_;

    auto match = [&](const contact_rec& c) {
        for (const auto& f : sq.filters) {
            if (!matches(c, f, opt_.location_id)) {
                return false;
            }
        }
        return query_matches(c, sq.q);
    };
    auto sort_value = [&](const contact_rec& c, const std::string& field) -> bj::value {
        if (field == "dateAdded") {
            return bj::value(c.added);
        }
        if (field == "dateUpdated") {
            return bj::value(c.updated);
        }
        return field_of(c, field, opt_.location_id);
    };

    // total: cached per (filters, query) and data version, so paging stays O(page).
    long long total = 0;
    if (sq.filters.empty() && sq.q.empty()) {
        total = static_cast<long long>(v_contacts.size());
    } else {
        std::string key = std::string(lagging_ ? "index|" : "live|") +
                          dump(body.contains("filters") ? body.at("filters") : bj::value()) + "|" +
                          sq.q;
        auto it = total_cache_.find(key);
        if (it != total_cache_.end() && it->second.first == v_version) {
            total = it->second.second;
        } else {
            std::optional<long long> lo;
            std::optional<long long> hi;
            bounds_for(sq.filters, "dateUpdated", lo, hi);
            if (lo || hi) {
                scan_index<long long>(v_updated, false, std::nullopt, lo, hi,
                                      [&](const contact_rec& c) {
                                          total += match(c) ? 1 : 0;
                                          return true;
                                      });
            } else {
                for (const auto& kv : v_contacts) {
                    total += match(kv.second) ? 1 : 0;
                }
            }
            if (total_cache_.size() > 64) {
                total_cache_.clear();
            }
            total_cache_[key] = {v_version, total};
        }
    }

    long long skip = cursor.empty() ? (page - 1) * limit : 0;
    std::vector<const contact_rec*> found;
    auto collect = [&](const contact_rec& c) {
        if (!match(c)) {
            return true;
        }
        if (skip > 0) {
            --skip;
            return true;
        }
        found.push_back(&c);
        return static_cast<long long>(found.size()) < limit;
    };
    if (sorts.size() == 1) {
        const auto& s = sorts.front();
        if (is_date_field(s.field)) {
            std::optional<long long> lo;
            std::optional<long long> hi;
            bounds_for(sq.filters, s.field, lo, hi);
            std::optional<std::pair<long long, std::string>> after;
            if (!cursor.empty()) {
                after = std::make_pair(*as_ll(cursor[0]), std::string(cursor[1].get_string()));
            }
            if (s.field == "dateUpdated") {
                scan_index<long long>(v_updated, s.desc, after, lo, hi, collect);
            } else {
                scan_index<long long>(v_added, s.desc, after, lo, hi, collect);
            }
        } else {
            std::optional<std::pair<std::string, std::string>> after;
            if (!cursor.empty()) {
                after = std::make_pair(std::string(cursor[0].get_string()),
                                       std::string(cursor[1].get_string()));
            }
            if (s.field == "firstNameLowerCase") {
                scan_index<std::string>(v_first, s.desc, after, std::nullopt, std::nullopt,
                                        collect);
            } else {
                scan_index<std::string>(v_last, s.desc, after, std::nullopt, std::nullopt, collect);
            }
        }
    } else {
        // Several sort fields: sort the matches (rare; O(n log n)).
        std::vector<std::pair<std::vector<bj::value>, const contact_rec*>> all;
        for (const auto& kv : v_contacts) {
            if (!match(kv.second)) {
                continue;
            }
            std::vector<bj::value> key;
            key.reserve(sorts.size() + 1);
            for (const auto& s : sorts) {
                key.push_back(sort_value(kv.second, s.field));
            }
            key.emplace_back(kv.second.id);
            all.emplace_back(std::move(key), &kv.second);
        }
        auto less = [&](const std::vector<bj::value>& a, const std::vector<bj::value>& b) {
            for (std::size_t i = 0; i < a.size(); ++i) {
                const bool desc = i < sorts.size() && sorts[i].desc;
                int cmp = 0;
                if (a[i].is_string()) {
                    auto x = std::string_view(a[i].get_string());
                    auto y =
                        b[i].is_string() ? std::string_view(b[i].get_string()) : std::string_view();
                    cmp = x < y ? -1 : y < x ? 1 : 0;
                } else {
                    auto x = as_ll(a[i]).value_or(0);
                    auto y = as_ll(b[i]).value_or(0);
                    cmp = x < y ? -1 : y < x ? 1 : 0;
                }
                if (cmp != 0) {
                    return desc ? cmp > 0 : cmp < 0;
                }
            }
            return false;
        };
        std::sort(all.begin(), all.end(),
                  [&](const auto& a, const auto& b) { return less(a.first, b.first); });
        for (const auto& [key, c] : all) {
            if (!cursor.empty() && !less(cursor, key)) {
                continue;
            }
            if (skip > 0) {
                --skip;
                continue;
            }
            found.push_back(c);
            if (static_cast<long long>(found.size()) >= limit) {
                break;
            }
        }
    }

    bj::array contacts;
    for (const auto* c : found) {
        const auto& hides = faults_.search_hides;
        if (std::find(hides.begin(), hides.end(), c->id) != hides.end()) {
            continue;
        }
        bj::object o = render_contact(*c);
        bj::array sa;
        for (const auto& s : sorts) {
            sa.push_back(sort_value(*c, s.field));
        }
        sa.emplace_back(c->id);
        o["searchAfter"] = std::move(sa);
        contacts.emplace_back(std::move(o));
    }
    return json_response(200, bj::object{{"contacts", std::move(contacts)},
                                         {"total", total},
                                         {"traceId", new_trace_id()}});
}

http_response core::contact_duplicate(const std::map<std::string, std::string>& query) {
    auto errors = check_query(query, {"locationId", "number", "email"}, true);
    if (!errors.empty()) {
        return unprocessable(errors);
    }
    if (query.at("locationId") != opt_.location_id) {
        return forbidden_location();
    }
    bj::object probe;
    if (auto it = query.find("email"); it != query.end()) {
        probe["email"] = it->second;
    }
    if (auto it = query.find("number"); it != query.end()) {
        probe["phone"] = it->second;
    }
    auto dup = find_duplicate(probe, std::string());
    bj::value contact;
    if (dup) {
        contact = render_contact(contacts_.at(dup->first));
    }
    return json_response(200,
                         bj::object{{"contact", std::move(contact)}, {"traceId", new_trace_id()}});
}

http_response core::contact_business(const std::string& business_id,
                                     const std::map<std::string, std::string>& query) {
    auto errors = check_query(query, {"locationId", "limit", "skip", "query"}, true);
    long long limit = 25;
    long long skip = 0;
    if (auto it = query.find("limit"); it != query.end()) {
        auto n = parse_ll(it->second);
        if (!n || *n < 1) {
            errors.emplace_back("limit must be a number string");
        } else {
            limit = *n;
        }
    }
    if (auto it = query.find("skip"); it != query.end()) {
        auto n = parse_ll(it->second);
        if (!n || *n < 0) {
            errors.emplace_back("skip must be a number string");
        } else {
            skip = *n;
        }
    }
    if (!errors.empty()) {
        return unprocessable(errors);
    }
    if (query.at("locationId") != opt_.location_id) {
        return forbidden_location();
    }
    std::string q;
    if (auto it = query.find("query"); it != query.end()) {
        q = lower(it->second);
    }
    bj::array contacts;
    long long count = 0;
    for (const auto* cp : by_added_) {
        const auto& c = *cp;
        if (str_of(c.f, "businessId") != business_id || !query_matches(c, q)) {
            continue;
        }
        if (count >= skip && count < skip + limit) {
            contacts.emplace_back(render_contact(c));
        }
        ++count;
    }
    return json_response(200, bj::object{{"contacts", std::move(contacts)},
                                         {"count", count},
                                         {"traceId", new_trace_id()}});
}

http_response core::tags_change(const std::string& id, const bj::object& body, bool add) {
    std::vector<std::string> errors;
    check_unknown(body, {"tags"}, "", errors);
    const auto* tags = body.if_contains("tags");
    if (tags == nullptr || tags->is_null()) {
        errors.emplace_back("tags should not be empty");
    } else {
        check_string_array(body, "tags", errors);
    }
    if (!errors.empty()) {
        return unprocessable(errors);
    }
    auto* c = find_contact(id);
    if (c == nullptr) {
        return contact_not_found(id);
    }
    bj::array current;
    if (const auto* old = json::get_array(c->f, "tags")) {
        current = *old;
    }
    bool changed = false;
    for (const auto& t : tags->get_array()) {
        auto it = std::find(current.begin(), current.end(), t);
        if (add && it == current.end() && !t.get_string().empty()) {
            current.push_back(t);
            changed = true;
        } else if (!add && it != current.end()) {
            current.erase(it);
            changed = true;
        }
    }
    index_remove(*c);
    c->f["tags"] = current;
    c->updated = next_update(c->updated);
    index_add(*c);
    bump_version();
    if (changed && opt_.webhooks_on_api_writes) {
        emit("ContactTagUpdate", contact_event(*c));
    }
    return json_response(add ? 201 : 200,
                         bj::object{{"tags", std::move(current)}, {"traceId", new_trace_id()}});
}

// ---------------------------------------------------------------------------------------------
// Tasks, notes, appointments.

http_response core::tasks_list(const std::string& contact_id) {
    if (find_contact(contact_id) == nullptr) {
        return contact_not_found(contact_id);
    }
    bj::array out;
    if (auto it = tasks_of_.find(contact_id); it != tasks_of_.end()) {
        for (const auto& id : it->second) {
            out.emplace_back(render_task(tasks_.at(id)));
        }
    }
    return json_response(200, bj::object{{"tasks", std::move(out)}, {"traceId", new_trace_id()}});
}

namespace {

/// Normalizes an ISO date-time to GHL's form (UTC with milliseconds).
bj::value normalize_due(const bj::value& v) {
    if (v.is_string()) {
        if (auto t = parse_iso8601(v.get_string())) {
            return bj::value(format_iso8601(*t));
        }
    }
    return v;
}

} // namespace

http_response core::task_create(const std::string& contact_id, const bj::object& body) {
    auto errors = validate_task(body, true);
    if (!errors.empty()) {
        return unprocessable(errors);
    }
    if (find_contact(contact_id) == nullptr) {
        return contact_not_found(contact_id);
    }
    child_rec t;
    t.id = new_id();
    t.contact_id = contact_id;
    t.added = now_ms();
    t.updated = t.added;
    for (const auto& kv : body) {
        if (!kv.value().is_null()) {
            t.f[kv.key()] = kv.key() == "dueDate" ? normalize_due(kv.value()) : kv.value();
        }
    }
    count_create("task", contact_id + " " + str_of(t.f, "title"));
    tasks_of_[contact_id].push_back(t.id);
    auto& stored = tasks_.emplace(t.id, std::move(t)).first->second;
    bump_version();
    if (opt_.webhooks_on_api_writes) {
        emit("TaskCreate", child_event(stored, true));
    }
    return json_response(201,
                         bj::object{{"task", render_task(stored)}, {"traceId", new_trace_id()}});
}

http_response core::task_get(const std::string& contact_id, const std::string& task_id) {
    if (find_contact(contact_id) == nullptr) {
        return contact_not_found(contact_id);
    }
    auto it = tasks_.find(task_id);
    if (it == tasks_.end() || it->second.contact_id != contact_id) {
        return child_not_found("Task", task_id);
    }
    return json_response(
        200, bj::object{{"task", render_task(it->second)}, {"traceId", new_trace_id()}});
}

http_response core::task_update(const std::string& contact_id, const std::string& task_id,
                                const bj::object& body, bool completed_only) {
    std::vector<std::string> errors;
    if (completed_only) {
        check_unknown(body, {"completed"}, "", errors);
        const auto* v = body.if_contains("completed");
        if (v == nullptr || v->is_null()) {
            errors.emplace_back("completed should not be empty");
        } else if (!v->is_bool()) {
            errors.emplace_back("completed must be a boolean value");
        }
    } else {
        errors = validate_task(body, false);
    }
    if (!errors.empty()) {
        return unprocessable(errors);
    }
    if (find_contact(contact_id) == nullptr) {
        return contact_not_found(contact_id);
    }
    auto it = tasks_.find(task_id);
    if (it == tasks_.end() || it->second.contact_id != contact_id) {
        return child_not_found("Task", task_id);
    }
    auto& t = it->second;
    const bool was_completed = json::get_bool(t.f, "completed").value_or(false);
    for (const auto& kv : body) {
        if (kv.value().is_null()) {
            t.f.erase(kv.key());
        } else {
            t.f[kv.key()] = kv.key() == "dueDate" ? normalize_due(kv.value()) : kv.value();
        }
    }
    t.updated = next_update(t.updated);
    bump_version();
    if (!was_completed && json::get_bool(t.f, "completed").value_or(false) &&
        opt_.webhooks_on_api_writes) {
        emit("TaskComplete", child_event(t, true));
    }
    return json_response(200, bj::object{{"task", render_task(t)}, {"traceId", new_trace_id()}});
}

http_response core::task_delete(const std::string& contact_id, const std::string& task_id) {
    if (find_contact(contact_id) == nullptr) {
        return contact_not_found(contact_id);
    }
    auto it = tasks_.find(task_id);
    if (it == tasks_.end() || it->second.contact_id != contact_id) {
        return child_not_found("Task", task_id);
    }
    bj::object event = child_event(it->second, true);
    auto& list = tasks_of_[contact_id];
    list.erase(std::remove(list.begin(), list.end(), task_id), list.end());
    tasks_.erase(it);
    bump_version();
    if (opt_.webhooks_on_api_writes) {
        emit("TaskDelete", std::move(event));
    }
    return json_response(200, bj::object{{"succeded", true}, {"traceId", new_trace_id()}});
}

http_response core::notes_list(const std::string& contact_id) {
    if (find_contact(contact_id) == nullptr) {
        return contact_not_found(contact_id);
    }
    bj::array out;
    if (auto it = notes_of_.find(contact_id); it != notes_of_.end()) {
        for (const auto& id : it->second) {
            out.emplace_back(render_note(notes_.at(id)));
        }
    }
    return json_response(200, bj::object{{"notes", std::move(out)}, {"traceId", new_trace_id()}});
}

http_response core::note_create(const std::string& contact_id, const bj::object& body) {
    auto errors = validate_note(body, true);
    if (!errors.empty()) {
        return unprocessable(errors);
    }
    if (find_contact(contact_id) == nullptr) {
        return contact_not_found(contact_id);
    }
    child_rec n;
    n.id = new_id();
    n.contact_id = contact_id;
    n.added = now_ms();
    n.updated = n.added;
    n.f = body;
    count_create("note", contact_id + " " + str_of(n.f, "body"));
    notes_of_[contact_id].push_back(n.id);
    auto& stored = notes_.emplace(n.id, std::move(n)).first->second;
    bump_version();
    if (opt_.webhooks_on_api_writes) {
        emit("NoteCreate", child_event(stored, false));
    }
    return json_response(201,
                         bj::object{{"note", render_note(stored)}, {"traceId", new_trace_id()}});
}

http_response core::note_get(const std::string& contact_id, const std::string& note_id) {
    if (find_contact(contact_id) == nullptr) {
        return contact_not_found(contact_id);
    }
    auto it = notes_.find(note_id);
    if (it == notes_.end() || it->second.contact_id != contact_id) {
        return child_not_found("Note", note_id);
    }
    return json_response(
        200, bj::object{{"note", render_note(it->second)}, {"traceId", new_trace_id()}});
}

http_response core::note_update(const std::string& contact_id, const std::string& note_id,
                                const bj::object& body) {
    auto errors = validate_note(body, false);
    if (!errors.empty()) {
        return unprocessable(errors);
    }
    if (find_contact(contact_id) == nullptr) {
        return contact_not_found(contact_id);
    }
    auto it = notes_.find(note_id);
    if (it == notes_.end() || it->second.contact_id != contact_id) {
        return child_not_found("Note", note_id);
    }
    auto& n = it->second;
    for (const auto& kv : body) {
        if (kv.value().is_null()) {
            n.f.erase(kv.key());
        } else {
            n.f[kv.key()] = kv.value();
        }
    }
    n.updated = next_update(n.updated);
    bump_version();
    if (opt_.webhooks_on_api_writes) {
        emit("NoteUpdate", child_event(n, false));
    }
    return json_response(200, bj::object{{"note", render_note(n)}, {"traceId", new_trace_id()}});
}

http_response core::note_delete(const std::string& contact_id, const std::string& note_id) {
    if (find_contact(contact_id) == nullptr) {
        return contact_not_found(contact_id);
    }
    auto it = notes_.find(note_id);
    if (it == notes_.end() || it->second.contact_id != contact_id) {
        return child_not_found("Note", note_id);
    }
    bj::object event = child_event(it->second, false);
    auto& list = notes_of_[contact_id];
    list.erase(std::remove(list.begin(), list.end(), note_id), list.end());
    notes_.erase(it);
    bump_version();
    if (opt_.webhooks_on_api_writes) {
        emit("NoteDelete", std::move(event));
    }
    return json_response(200, bj::object{{"succeded", true}, {"traceId", new_trace_id()}});
}

http_response core::appointments_list(const std::string& contact_id) {
    if (find_contact(contact_id) == nullptr) {
        return contact_not_found(contact_id);
    }
    bj::array out;
    if (auto it = appointments_of_.find(contact_id); it != appointments_of_.end()) {
        for (const auto& id : it->second) {
            out.emplace_back(render_appointment(appointments_.at(id)));
        }
    }
    return json_response(200, bj::object{{"events", std::move(out)}, {"traceId", new_trace_id()}});
}

http_response core::custom_fields_list(const std::string& location_id,
                                       const std::map<std::string, std::string>& query) {
    // As GHL: another location's fields are not this token's business; `model` filters
    // ("contact" | "opportunity" | "all"; GHL's default is all).
    if (location_id != opt_.location_id) {
        return error_response(403, "The token does not have access to this location.", "Forbidden");
    }
    std::string model = "all";
    if (auto it = query.find("model"); it != query.end()) {
        model = it->second;
    }
    if (model != "contact" && model != "opportunity" && model != "all") {
        return error_response(422, "model must be one of the following values: contact, "
                                   "opportunity, all");
    }
    bj::array out;
    for (const auto& f : custom_fields_) {
        if (model == "all" || str_of(f, "model") == model) {
            out.emplace_back(f);
        }
    }
    return json_response(200, bj::object{{"customFields", std::move(out)}});
}

// ---------------------------------------------------------------------------------------------
// Admin, C++ side. Control plane: invalid input throws.

std::string core::seed_custom_field(const bj::object& fields) {
    lock_t lock(mutex_);
    bj::object f;
    f["id"] = new_id();
    f["name"] = "Field";
    f["dataType"] = "TEXT";
    f["model"] = "contact";
    f["position"] = static_cast<std::int64_t>(custom_fields_.size()) * 50;
    f["placeholder"] = "";
    for (const auto& kv : fields) {
        f[kv.key()] = kv.value();
    }
    if (!f.contains("fieldKey")) {
        std::string key;
        for (char c : str_of(f, "name")) {
            key += std::isalnum(static_cast<unsigned char>(c))
                       ? static_cast<char>(std::tolower(static_cast<unsigned char>(c)))
                       : '_';
        }
        f["fieldKey"] = str_of(f, "model") + "." + key;
    }
    f["locationId"] = opt_.location_id;
    const std::string id = str_of(f, "id");
    custom_fields_.push_back(std::move(f));
    return id;
}

std::string core::seed_contact(const bj::object& fields) {
    lock_t lock(mutex_);
    contact_rec c;
    c.id = str_of(fields, "id");
    if (c.id.empty()) {
        c.id = new_id();
    } else if (contacts_.count(c.id) != 0) {
        throw std::invalid_argument("seed_contact: id " + c.id + " already exists");
    }
    const long long now = now_ms();
    c.added = now;
    c.updated = now;
    if (const auto* v = fields.if_contains("dateAdded")) {
        c.added = as_date_ms(*v).value_or(now);
        c.updated = c.added;
    }
    if (const auto* v = fields.if_contains("dateUpdated")) {
        c.updated = as_date_ms(*v).value_or(now);
    }
    apply_contact_fields(c, without_meta(fields), nullptr);
    auto& stored = insert_contact(std::move(c));
    emit("ContactCreate", contact_event(stored));
    return stored.id;
}

std::vector<std::string> core::seed_contacts(std::size_t n) {
    lock_t lock(mutex_);
    std::vector<std::string> ids;
    ids.reserve(n);
    // Distinct timestamps in the past, one ms apart, so the order is deterministic.
    const long long base = now_ms() - static_cast<long long>(n) - 1;
    for (std::size_t i = 0; i < n; ++i) {
        const std::size_t k = ++seeded_;
        contact_rec c;
        c.id = new_id();
        c.added = base + static_cast<long long>(i);
        c.updated = c.added;
        char phone[32];
        std::snprintf(phone, sizeof phone, "+1555%07zu", k % 10000000);
        c.f["firstName"] = "First" + std::to_string(k);
        c.f["lastName"] = "Last" + std::to_string(k);
        c.f["email"] = "contact" + std::to_string(k) + "@example.com";
        c.f["phone"] = phone;
        c.f["source"] = "ghl-sim seed";
        c.f["tags"] = bj::array{bj::value("seed"), bj::value(k % 2 == 0 ? "even" : "odd")};
        ids.push_back(c.id);
        insert_contact(std::move(c));
    }
    return ids;
}

std::string core::seed_task(const std::string& contact_id, const bj::object& fields) {
    lock_t lock(mutex_);
    if (find_contact(contact_id) == nullptr) {
        throw std::invalid_argument("seed_task: no contact " + contact_id);
    }
    child_rec t;
    t.id = new_id();
    t.contact_id = contact_id;
    t.added = now_ms();
    t.updated = t.added;
    t.f["title"] = "Task";
    t.f["completed"] = false;
    t.f["dueDate"] = iso(t.added + day_ms);
    for (const auto& kv : fields) {
        if (kv.key() != "id" && kv.key() != "contactId") {
            t.f[kv.key()] = kv.key() == "dueDate" ? normalize_due(kv.value()) : kv.value();
        }
    }
    tasks_of_[contact_id].push_back(t.id);
    auto& stored = tasks_.emplace(t.id, std::move(t)).first->second;
    bump_version();
    emit("TaskCreate", child_event(stored, true));
    return stored.id;
}

std::string core::seed_note(const std::string& contact_id, const bj::object& fields) {
    lock_t lock(mutex_);
    if (find_contact(contact_id) == nullptr) {
        throw std::invalid_argument("seed_note: no contact " + contact_id);
    }
    child_rec n;
    n.id = new_id();
    n.contact_id = contact_id;
    n.added = now_ms();
    n.updated = n.added;
    n.f["body"] = "Note";
    for (const auto& kv : fields) {
        if (kv.key() == "dateAdded") {
            n.added = as_date_ms(kv.value()).value_or(n.added);
        } else if (kv.key() != "id" && kv.key() != "contactId") {
            n.f[kv.key()] = kv.value();
        }
    }
    notes_of_[contact_id].push_back(n.id);
    auto& stored = notes_.emplace(n.id, std::move(n)).first->second;
    bump_version();
    emit("NoteCreate", child_event(stored, false));
    return stored.id;
}

std::string core::seed_appointment(const std::string& contact_id, const bj::object& fields) {
    lock_t lock(mutex_);
    if (find_contact(contact_id) == nullptr) {
        throw std::invalid_argument("seed_appointment: no contact " + contact_id);
    }
    child_rec a;
    a.id = new_id();
    a.contact_id = contact_id;
    a.added = now_ms();
    a.updated = a.added;
    long long start = a.added + day_ms;
    long long end = start + 30LL * 60 * 1000;
    if (const auto* v = fields.if_contains("startTime")) {
        start = as_date_ms(*v).value_or(start);
        end = start + 30LL * 60 * 1000;
    }
    if (const auto* v = fields.if_contains("endTime")) {
        end = as_date_ms(*v).value_or(end);
    }
    a.f["calendarId"] = "simCalendar000000001";
    a.f["status"] = "booked";
    a.f["title"] = "Appointment";
    a.f["appointmentStatus"] = "booked";
    a.f["users"] = bj::array();
    a.f["assignedResources"] = bj::array();
    for (const auto& kv : fields) {
        if (kv.key() != "id" && kv.key() != "contactId" && kv.key() != "locationId") {
            a.f[kv.key()] = kv.value();
        }
    }
    a.f["startTime"] = appointment_time(start);
    a.f["endTime"] = appointment_time(end);
    appointments_of_[contact_id].push_back(a.id);
    auto& stored = appointments_.emplace(a.id, std::move(a)).first->second;
    bump_version();
    bj::object appt = render_appointment(stored);
    // Webhooks carry ISO times with an offset, unlike the API.
    appt["startTime"] = iso(start);
    appt["endTime"] = iso(end);
    appt["dateAdded"] = iso(stored.added);
    appt["dateUpdated"] = iso(stored.updated);
    emit("AppointmentCreate", bj::object{{"appointment", std::move(appt)}});
    return stored.id;
}

void core::update_contact(const std::string& id, const bj::object& patch) {
    lock_t lock(mutex_);
    auto* c = find_contact(id);
    if (c == nullptr) {
        throw std::invalid_argument("update_contact: no contact " + id);
    }
    index_remove(*c);
    std::optional<long long> explicit_updated;
    if (const auto* v = patch.if_contains("dateUpdated")) {
        explicit_updated = as_date_ms(*v);
    }
    bool tags_changed = false;
    apply_contact_fields(*c, without_meta(patch), &tags_changed);
    c->updated = explicit_updated ? *explicit_updated : next_update(c->updated);
    index_add(*c);
    bump_version();
    emit("ContactUpdate", contact_event(*c));
    if (tags_changed) {
        emit("ContactTagUpdate", contact_event(*c));
    }
}

void core::delete_contact(const std::string& id) {
    lock_t lock(mutex_);
    auto* c = find_contact(id);
    if (c == nullptr) {
        throw std::invalid_argument("delete_contact: no contact " + id);
    }
    bj::object event = contact_event(*c);
    erase_contact(id);
    emit("ContactDelete", std::move(event));
}

bj::value core::state() const {
    lock_t lock(mutex_);
    bj::array contacts;
    contacts.reserve(contacts_.size());
    for (const auto& kv : contacts_) {
        contacts.emplace_back(render_contact(kv.second));
    }
    bj::array tasks;
    for (const auto& kv : tasks_) {
        tasks.emplace_back(render_task(kv.second));
    }
    bj::array notes;
    for (const auto& kv : notes_) {
        notes.emplace_back(render_note(kv.second));
    }
    bj::array appts;
    for (const auto& kv : appointments_) {
        appts.emplace_back(render_appointment(kv.second));
    }
    return bj::object{{"contacts", std::move(contacts)},
                      {"tasks", std::move(tasks)},
                      {"notes", std::move(notes)},
                      {"appointments", std::move(appts)},
                      {"locationId", opt_.location_id},
                      {"locationActive", location_active_},
                      {"allowDuplicates", opt_.allow_duplicates}};
}

void core::set_faults(const fault_config& f) {
    lock_t lock(mutex_);
    faults_ = f;
    fault_eligible_ = 0;
    fault_injected_ = 0;
    outage_started_ = f.outage.empty() ? -1 : steady_ms();
    index_configure(f.search_lag_ms, f.search_lag_jitter_ms);
}

fault_config core::faults() const {
    lock_t lock(mutex_);
    return faults_;
}

stats core::get_stats() const {
    lock_t lock(mutex_);
    return stats_;
}

std::string core::issue_auth_code() {
    lock_t lock(mutex_);
    std::string code = new_token("sim-code-");
    auth_codes_.insert(code);
    return code;
}

std::vector<request_record> core::requests() const {
    lock_t lock(mutex_);
    return {log_.begin(), log_.end()};
}

std::vector<webhook_record> core::webhooks() const {
    lock_t lock(mutex_);
    return webhooks_;
}

void core::reset() {
    lock_t lock(mutex_);
    contacts_.clear();
    by_updated_.clear();
    by_added_.clear();
    by_first_.clear();
    by_last_.clear();
    by_email_.clear();
    by_phone_.clear();
    tasks_.clear();
    notes_.clear();
    appointments_.clear();
    tasks_of_.clear();
    notes_of_.clear();
    appointments_of_.clear();
    total_cache_.clear();
    bump_version();
    stats_ = stats{};
    log_.clear();
    webhooks_.clear();
    faults_ = fault_config{};
    fault_eligible_ = 0;
    fault_injected_ = 0;
    outage_started_ = -1;
    index_clear();
    window_start_ = -1;
    window_count_ = 0;
    day_start_ = -1;
    day_count_ = 0;
}

void core::set_location_active(bool active) {
    lock_t lock(mutex_);
    location_active_ = active;
}

void core::set_allow_duplicates(bool allow) {
    lock_t lock(mutex_);
    opt_.allow_duplicates = allow;
}

void core::set_rate_limits(bool enabled, int burst, int window_ms, long long daily) {
    lock_t lock(mutex_);
    opt_.rate_limit = enabled;
    opt_.burst = burst;
    opt_.window_ms = window_ms;
    opt_.daily = daily;
    window_start_ = -1;
    window_count_ = 0;
    day_start_ = -1;
    day_count_ = 0;
}

void core::expire_access_tokens() {
    lock_t lock(mutex_);
    for (auto& kv : access_tokens_) {
        kv.second = 0;
    }
}

void core::set_webhook_url(const std::string& url) {
    lock_t lock(mutex_);
    opt_.webhook_url = url;
}

std::string core::send_webhook(const bj::object& payload) {
    lock_t lock(mutex_);
    return publish(payload);
}

// ---------------------------------------------------------------------------------------------
// Admin over HTTP.

namespace {

bj::object faults_to_json(const fault_config& f) {
    bj::array statuses;
    for (int s : f.error_statuses) {
        statuses.emplace_back(s);
    }
    auto strings = [](const std::vector<std::string>& v) {
        bj::array a;
        for (const auto& s : v) {
            a.emplace_back(s);
        }
        return a;
    };
    bj::array routes = strings(f.routes);
    return bj::object{{"error_rate", f.error_rate},
                      {"error_statuses", std::move(statuses)},
                      {"drop_after_apply_rate", f.drop_after_apply_rate},
                      {"drop_before_apply_rate", f.drop_before_apply_rate},
                      {"malformed_rate", f.malformed_rate},
                      {"timeout_rate", f.timeout_rate},
                      {"latency_ms", f.latency_ms},
                      {"slow_body_rate", f.slow_body_rate},
                      {"routes", std::move(routes)},
                      {"skip_first", f.skip_first},
                      {"max_faults", f.max_faults},
                      {"slow_body_chunk_bytes", f.slow_body_chunk_bytes},
                      {"slow_body_delay_ms", f.slow_body_delay_ms},
                      {"reject_body_containing", f.reject_body_containing},
                      {"search_lag_ms", f.search_lag_ms},
                      {"search_lag_jitter_ms", f.search_lag_jitter_ms},
                      {"outage", f.outage},
                      {"outage_ms", f.outage_ms},
                      {"html_404_routes", strings(f.html_404_routes)},
                      {"user_not_found_routes", strings(f.user_not_found_routes)}};
}

std::optional<fault_config> faults_from_json(const bj::object& o, std::string& error) {
    fault_config f;
    for (const auto& kv : o) {
        std::string_view k = kv.key();
        const bj::value& v = kv.value();
        auto num = [&]() -> std::optional<double> {
            if (v.is_double()) {
                return v.get_double();
            }
            if (auto n = as_ll(v)) {
                return static_cast<double>(*n);
            }
            error = std::string(k) + " must be a number";
            return std::nullopt;
        };
        if (k == "reject_body_containing" || k == "outage") {
            if (!v.is_string()) {
                error = std::string(k) + " must be a string";
                return std::nullopt;
            }
            if (k == "outage") {
                f.outage = std::string(v.get_string());
                if (f.outage != "" && f.outage != "503" && f.outage != "reset" &&
                    f.outage != "hang" && f.outage != "mixed") {
                    error = "outage must be one of \"\", \"503\", \"reset\", \"hang\", \"mixed\"";
                    return std::nullopt;
                }
            } else {
                f.reject_body_containing = std::string(v.get_string());
            }
            continue;
        }
        if (k == "error_statuses" || k == "routes" || k == "html_404_routes" ||
            k == "user_not_found_routes") {
            if (!v.is_array()) {
                error = std::string(k) + " must be an array";
                return std::nullopt;
            }
            if (k == "error_statuses") {
                f.error_statuses.clear();
            }
            for (const auto& e : v.get_array()) {
                if (k == "routes" && e.is_string()) {
                    f.routes.emplace_back(e.get_string());
                } else if (k == "html_404_routes" && e.is_string()) {
                    f.html_404_routes.emplace_back(e.get_string());
                } else if (k == "user_not_found_routes" && e.is_string()) {
                    f.user_not_found_routes.emplace_back(e.get_string());
                } else if (k == "error_statuses" && as_ll(e)) {
                    f.error_statuses.push_back(static_cast<int>(*as_ll(e)));
                } else {
                    error = std::string(k) + " has an invalid element";
                    return std::nullopt;
                }
            }
            continue;
        }
        auto n = num();
        if (!n) {
            return std::nullopt;
        }
        if (k == "error_rate") {
            f.error_rate = *n;
        } else if (k == "drop_after_apply_rate") {
            f.drop_after_apply_rate = *n;
        } else if (k == "drop_before_apply_rate") {
            f.drop_before_apply_rate = *n;
        } else if (k == "malformed_rate") {
            f.malformed_rate = *n;
        } else if (k == "timeout_rate") {
            f.timeout_rate = *n;
        } else if (k == "latency_ms") {
            f.latency_ms = static_cast<int>(*n);
        } else if (k == "slow_body_rate") {
            f.slow_body_rate = *n;
        } else if (k == "skip_first") {
            f.skip_first = static_cast<long long>(*n);
        } else if (k == "max_faults") {
            f.max_faults = static_cast<long long>(*n);
        } else if (k == "slow_body_chunk_bytes") {
            f.slow_body_chunk_bytes = static_cast<int>(*n);
        } else if (k == "slow_body_delay_ms") {
            f.slow_body_delay_ms = static_cast<int>(*n);
        } else if (k == "search_lag_ms") {
            f.search_lag_ms = static_cast<int>(*n);
        } else if (k == "search_lag_jitter_ms") {
            f.search_lag_jitter_ms = static_cast<int>(*n);
        } else if (k == "outage_ms") {
            f.outage_ms = static_cast<long long>(*n);
        } else {
            error = "unknown fault setting " + std::string(k);
            return std::nullopt;
        }
    }
    return f;
}

bj::object stats_to_json(const stats& s) {
    bj::object by_route;
    for (const auto& kv : s.by_route) {
        by_route[kv.first] = kv.second;
    }
    bj::object by_status;
    for (const auto& kv : s.by_status) {
        by_status[std::to_string(kv.first)] = kv.second;
    }
    auto to_obj = [](const std::map<std::string, long long>& m) {
        bj::object o;
        for (const auto& kv : m) {
            o[kv.first] = kv.second;
        }
        return o;
    };
    return bj::object{{"requests", s.requests},
                      {"rate_limited", s.rate_limited},
                      {"by_route", std::move(by_route)},
                      {"by_status", std::move(by_status)},
                      {"creates", to_obj(s.creates)},
                      {"creates_by_key", to_obj(s.creates_by_key)},
                      {"faults", to_obj(s.faults)},
                      {"webhooks_sent", s.webhooks_sent},
                      {"webhooks_failed", s.webhooks_failed},
                      {"injected_429", s.injected_429},
                      {"outage_requests", s.outage_requests}};
}

} // namespace

http_response core::handle_admin(const http_request& req, const std::string& path) {
    bj::object body;
    if (!req.body.empty()) {
        auto parsed = json::parse(req.body, {opt_.max_body_bytes, 32});
        if (!parsed || !parsed->is_object()) {
            return admin_error(400, "admin: body must be a JSON object");
        }
        body = std::move(parsed->get_object());
    }
    auto seg = split_path(path);
    const std::string& m = req.method;
    const std::size_t n = seg.size();
    // Called without the lock: the public admin methods take it themselves.
    try {
        if (n == 2 && seg[1] == "customFields" && m == "POST") {
            return json_response(201, bj::object{{"id", seed_custom_field(body)}});
        }
        if (n == 2 && seg[1] == "contacts" && m == "POST") {
            std::string id = seed_contact(body);
            lock_t lock(mutex_);
            return json_response(
                201, bj::object{{"id", id}, {"contact", render_contact(contacts_.at(id))}});
        }
        if (n == 3 && seg[1] == "contacts" &&
            (m == "PATCH" || m == "PUT")) { // PUT: same, for clients without PATCH
            update_contact(seg[2], body);
            lock_t lock(mutex_);
            return json_response(200,
                                 bj::object{{"contact", render_contact(contacts_.at(seg[2]))}});
        }
        if (n == 3 && seg[1] == "contacts" && m == "DELETE") {
            delete_contact(seg[2]);
            return json_response(200, bj::object{{"deleted", true}});
        }
        if (n == 4 && seg[1] == "contacts" && m == "POST") {
            std::string id;
            if (seg[3] == "tasks") {
                id = seed_task(seg[2], body);
            } else if (seg[3] == "notes") {
                id = seed_note(seg[2], body);
            } else if (seg[3] == "appointments") {
                id = seed_appointment(seg[2], body);
            } else {
                return admin_error(404, "admin: unknown route " + m + " " + path);
            }
            return json_response(201, bj::object{{"id", id}});
        }
        if (n == 2 && seg[1] == "state" && m == "GET") {
            http_response r;
            r.body = dump(state());
            return r;
        }
        if (n == 2 && seg[1] == "stats" && m == "GET") {
            return json_response(200, stats_to_json(get_stats()));
        }
        if (n == 2 && seg[1] == "requests" && m == "GET") {
            bj::array out;
            for (const auto& r : requests()) {
                out.emplace_back(bj::object{{"method", r.method},
                                            {"route", r.route},
                                            {"target", r.target},
                                            {"status", r.status},
                                            {"fault", r.fault},
                                            {"body", r.body}});
            }
            return json_response(200, bj::object{{"requests", std::move(out)}});
        }
        if (n == 2 && seg[1] == "webhooks" && m == "GET") {
            bj::array out;
            for (const auto& w : webhooks()) {
                out.emplace_back(bj::object{{"type", w.type},
                                            {"webhookId", w.webhook_id},
                                            {"body", w.body},
                                            {"x-ghl-signature", w.ghl_signature},
                                            {"x-wh-signature", w.wh_signature},
                                            {"status", w.status},
                                            {"attempts", w.attempts}});
            }
            return json_response(200, bj::object{{"webhooks", std::move(out)},
                                                 {"publicKey", signer_.ed25519_public_pem()}});
        }
        if (n == 3 && seg[1] == "webhooks" && seg[2] == "send" && m == "POST") {
            return json_response(200, bj::object{{"body", send_webhook(body)}});
        }
        if (n == 2 && seg[1] == "faults" && (m == "PUT" || m == "POST")) {
            std::string error;
            auto f = faults_from_json(body, error);
            if (!f) {
                return admin_error(400, "admin: faults: " + error);
            }
            set_faults(*f);
            return json_response(200, faults_to_json(*f));
        }
        if (n == 2 && seg[1] == "faults" && m == "GET") {
            return json_response(200, faults_to_json(faults()));
        }
        if (n == 3 && seg[1] == "oauth" && seg[2] == "code" && m == "POST") {
            return json_response(201, bj::object{{"code", issue_auth_code()}});
        }
        if (n == 3 && seg[1] == "oauth" && seg[2] == "expire" && m == "POST") {
            expire_access_tokens();
            return json_response(200, bj::object{{"expired", true}});
        }
        if (n == 3 && seg[1] == "location" && seg[2] == "active" && m == "POST") {
            auto active = json::get_bool(body, "active");
            if (!active) {
                return admin_error(400, "admin: location/active: body {\"active\": bool} required");
            }
            set_location_active(*active);
            return json_response(200, bj::object{{"active", *active}});
        }
        if (n == 2 && seg[1] == "bulk_seed" && m == "POST") {
            auto count = json::get_int(body, "count");
            if (!count || *count < 0 || *count > 10'000'000) {
                return admin_error(400, "admin: bulk_seed: body {\"count\": N} required");
            }
            auto ids = seed_contacts(static_cast<std::size_t>(*count));
            return json_response(
                201, bj::object{{"count", *count},
                                {"firstId", ids.empty() ? bj::value() : bj::value(ids.front())},
                                {"lastId", ids.empty() ? bj::value() : bj::value(ids.back())}});
        }
        if (n == 2 && seg[1] == "reset" && m == "POST") {
            reset();
            return json_response(200, bj::object{{"reset", true}});
        }
        if (n == 2 && seg[1] == "settings" && (m == "PUT" || m == "POST")) {
            lock_t lock(mutex_);
            for (const auto& kv : body) {
                std::string_view k = kv.key();
                const bj::value& v = kv.value();
                if (k == "allow_duplicates" && v.is_bool()) {
                    opt_.allow_duplicates = v.get_bool();
                } else if (k == "rate_limit" && v.is_bool()) {
                    opt_.rate_limit = v.get_bool();
                } else if (k == "send_retry_after" && v.is_bool()) {
                    opt_.send_retry_after = v.get_bool();
                } else if (k == "require_version" && v.is_bool()) {
                    opt_.require_version = v.get_bool();
                } else if (k == "burst" && as_ll(v)) {
                    opt_.burst = static_cast<int>(*as_ll(v));
                } else if (k == "window_ms" && as_ll(v)) {
                    opt_.window_ms = static_cast<int>(*as_ll(v));
                } else if (k == "daily" && as_ll(v)) {
                    opt_.daily = *as_ll(v);
                } else if (k == "access_token_ttl_seconds" && as_ll(v)) {
                    opt_.access_token_ttl_seconds = static_cast<int>(*as_ll(v));
                } else if (k == "webhook_url" && v.is_string()) {
                    opt_.webhook_url = std::string(v.get_string());
                } else {
                    return admin_error(400,
                                       "admin: settings: unknown or mistyped " + std::string(k));
                }
            }
            return json_response(200, bj::object{{"ok", true}});
        }
    } catch (const std::exception& e) {
        return admin_error(404, e.what());
    }
    return admin_error(404, "admin: unknown route " + m + " " + path);
}

} // namespace speak4::sim::detail
