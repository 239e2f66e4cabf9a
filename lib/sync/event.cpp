#include "sync/event.hpp"

#include "core/json.hpp"
#include "core/time.hpp"

#include <algorithm>
#include <array>
#include <boost/throw_exception.hpp>
#include <charconv>
#include <chrono>
#include <stdexcept>
#include <utility>

namespace speak4::sync {
namespace {

namespace bj = boost::json;
using maybe_error = std::optional<validation_error>;

constexpr std::array<std::pair<event_type, std::string_view>, 14> type_names{{
    {event_type::contact_created, "contact.created"},
    {event_type::contact_updated, "contact.updated"},
    {event_type::contact_deleted, "contact.deleted"},
    {event_type::contact_opened, "contact.opened"},
    {event_type::contact_tagged, "contact.tagged"},
    {event_type::contact_untagged, "contact.untagged"},
    {event_type::note_created, "note.created"},
    {event_type::note_updated, "note.updated"},
    {event_type::note_deleted, "note.deleted"},
    {event_type::task_created, "task.created"},
    {event_type::task_updated, "task.updated"},
    {event_type::task_completed, "task.completed"},
    {event_type::task_deleted, "task.deleted"},
    {event_type::lead_created, "lead.created"},
}};

// Lengths in characters (UTF-8 code points) for values that have a natural size; everything
// else is bounded by event_limits::max_string.
constexpr std::size_t max_name = 256;
constexpr std::size_t max_title = 512;
constexpr std::size_t max_email = 254; // RFC 5321 path limit
constexpr std::size_t max_local_part = 64;

// Keys the event wrote end up in error fields, messages and log lines: a hostile key must not
// flood them or smuggle control characters into them.
constexpr std::size_t max_shown_key = 64;

std::string_view view(const bj::string& s) {
    return {s.data(), s.size()};
}
// Object keys come as bj::string_view; without this overload they would bind to the one above
// through a temporary bj::string and dangle.
std::string_view view(bj::string_view s) {
    return {s.data(), s.size()};
}

std::string shown(std::string_view key) {
    std::size_t n = key.size();
    const bool cut = n > max_shown_key;
    if (cut) {
        n = max_shown_key;
        while (n > 0 && (static_cast<unsigned char>(key[n]) & 0xC0) == 0x80)
            --n; // do not split a UTF-8 sequence
    }
    std::string out;
    out.reserve(n + 3);
    for (std::size_t i = 0; i < n; ++i) {
        const auto c = static_cast<unsigned char>(key[i]);
        out += (c < 0x20 || c == 0x7f) ? '?' : key[i];
    }
    if (cut)
        out += "...";
    return out;
}

std::string child(std::string_view parent, std::string_view key) {
    std::string out(parent);
    out += '.';
    out += shown(key);
    return out;
}

std::string indexed(std::string_view parent, std::size_t i) {
    std::string out(parent);
    out += '[';
    out += std::to_string(i);
    out += ']';
    return out;
}

/// {field, "<field> <tail>"}; the document itself is called "event".
validation_error fail(std::string field, std::string_view tail) {
    std::string message = field.empty() ? std::string("event") : field;
    message += ' ';
    message += tail;
    return {std::move(field), std::move(message)};
}

std::string type_name(event_type t) {
    return std::string(to_string(t));
}

std::size_t char_count(std::string_view s) {
    return static_cast<std::size_t>(std::count_if(
        s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

bool is_control(unsigned char c, bool multiline) {
    if (multiline && (c == '\n' || c == '\r' || c == '\t'))
        return false;
    return c < 0x20 || c == 0x7f;
}

struct text_rules {
    std::size_t max_chars;
    bool allow_empty = true;
    bool multiline = false; // allows \n, \r and \t (note and task bodies)
};

maybe_error check_text(const std::string& path, std::string_view s, text_rules rules) {
    if (s.empty()) {
        if (rules.allow_empty)
            return std::nullopt;
        return fail(path, "must not be empty");
    }
    if (char_count(s) > rules.max_chars)
        return fail(path, "is longer than " + std::to_string(rules.max_chars) + " characters");
    for (const char c : s)
        if (is_control(static_cast<unsigned char>(c), rules.multiline))
            return fail(path, "contains a control character");
    return std::nullopt;
}

maybe_error read_text(const std::string& path, const bj::value& v, text_rules rules,
                      std::string& out) {
    const auto* s = v.if_string();
    if (!s)
        return fail(path, "must be a string");
    if (auto e = check_text(path, view(*s), rules))
        return e;
    out.assign(view(*s));
    return std::nullopt;
}

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}
bool is_alpha(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

bool is_email(std::string_view s) {
    if (s.size() > max_email)
        return false;
    const auto at = s.find('@');
    if (at == std::string_view::npos || at == 0 || s.rfind('@') != at || at > max_local_part)
        return false;
    for (const char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (u <= 0x20 || u == 0x7f)
            return false;
    }
    const std::string_view domain = s.substr(at + 1);
    return !domain.empty() && domain.find('.') != std::string_view::npos && domain.front() != '.' &&
           domain.back() != '.' && domain.find("..") == std::string_view::npos;
}

// Digits with an optional leading '+' and the usual separators, as GHL accepts them
// ("+1 888-888-8888", "(555) 123.4567").
bool is_phone(std::string_view s) {
    std::size_t i = 0;
    if (!s.empty() && s[0] == '+')
        i = 1;
    std::size_t digits = 0;
    for (; i < s.size(); ++i) {
        const char c = s[i];
        if (is_digit(c))
            ++digits;
        else if (c != ' ' && c != '-' && c != '.' && c != '(' && c != ')')
            return false;
    }
    return digits >= 7 && digits <= 20;
}

bool is_country(std::string_view s) {
    return s.size() == 2 && is_alpha(s[0]) && is_alpha(s[1]);
}

std::optional<unsigned> number_at(std::string_view s, std::size_t pos, std::size_t n) {
    unsigned v = 0;
    for (std::size_t i = pos; i < pos + n; ++i) {
        if (i >= s.size() || !is_digit(s[i]))
            return std::nullopt;
        v = v * 10 + static_cast<unsigned>(s[i] - '0');
    }
    return v;
}

// GHL's dateOfBirth formats (ghl-api.md §2.1): YYYY?MM?DD or MM?DD?YYYY with one separator out
// of "-/._" used twice.
bool is_birth_date(std::string_view s) {
    if (s.size() != 10)
        return false;
    const auto separator = [](char c) { return c == '-' || c == '/' || c == '.' || c == '_'; };
    std::optional<unsigned> y, m, d;
    if (separator(s[4]) && s[7] == s[4]) {
        y = number_at(s, 0, 4);
        m = number_at(s, 5, 2);
        d = number_at(s, 8, 2);
    } else if (separator(s[2]) && s[5] == s[2]) {
        m = number_at(s, 0, 2);
        d = number_at(s, 3, 2);
        y = number_at(s, 6, 4);
    } else {
        return false;
    }
    if (!y || !m || !d)
        return false;
    const std::chrono::year_month_day ymd{std::chrono::year{static_cast<int>(*y)},
                                          std::chrono::month{*m}, std::chrono::day{*d}};
    return ymd.ok();
}

enum class field_kind { text, email, phone, country, date, flag };

struct field_spec {
    std::string_view name;
    field_kind kind;
    std::size_t max_chars;
};

// GHL's contact write fields (ghl-api.md §2.1) that an event may set; tags and customFields
// are handled apart.
constexpr std::array<field_spec, 18> contact_fields{{
    {"firstName", field_kind::text, max_name},
    {"lastName", field_kind::text, max_name},
    {"name", field_kind::text, max_name},
    {"email", field_kind::email, max_email},
    {"phone", field_kind::phone, 40},
    {"address1", field_kind::text, 512},
    {"city", field_kind::text, max_name},
    {"state", field_kind::text, max_name},
    {"postalCode", field_kind::text, 32},
    {"website", field_kind::text, 2048},
    {"timezone", field_kind::text, 64},
    {"source", field_kind::text, max_name},
    {"assignedTo", field_kind::text, 128},
    {"country", field_kind::country, 2},
    {"companyName", field_kind::text, max_name},
    {"gender", field_kind::text, 32},
    {"dateOfBirth", field_kind::date, 10},
    {"dnd", field_kind::flag, 0},
}};

const field_spec* find_contact_field(std::string_view name) {
    for (const auto& f : contact_fields)
        if (f.name == name)
            return &f;
    return nullptr;
}

bool has_contact_fields(event_type t) {
    return t == event_type::contact_created || t == event_type::contact_updated ||
           t == event_type::lead_created;
}

bool needs_speak4_id(event_type t) {
    return t == event_type::contact_created || t == event_type::lead_created;
}

bool is_note_type(event_type t) {
    return t == event_type::note_created || t == event_type::note_updated ||
           t == event_type::note_deleted;
}

bool is_task_type(event_type t) {
    return t == event_type::task_created || t == event_type::task_updated ||
           t == event_type::task_completed || t == event_type::task_deleted;
}

bool is_tagging_type(event_type t) {
    return t == event_type::contact_tagged || t == event_type::contact_untagged;
}

/// Whether top-level `key` (besides type, event_id and contact) belongs to events of type `t`.
bool top_key_allowed(std::string_view key, event_type t) {
    if (key == "notes")
        return t == event_type::contact_created || t == event_type::contact_updated;
    if (key == "pull")
        return t == event_type::contact_updated;
    if (key == "note")
        return is_note_type(t);
    if (key == "task")
        return is_task_type(t);
    if (key == "tags")
        return is_tagging_type(t);
    return false;
}

bool is_top_key(std::string_view key) {
    return key == "notes" || key == "pull" || key == "note" || key == "task" || key == "tags";
}

bool all_digits(std::string_view s) {
    return !s.empty() &&
           std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

/// "2026-12-03" or an ISO-8601 date-time starting with one.
bool looks_like_date(std::string_view s) {
    return s.size() >= 10 && all_digits(s.substr(0, 4)) && s[4] == '-' &&
           all_digits(s.substr(5, 2)) && s[7] == '-' && all_digits(s.substr(8, 2)) &&
           (s.size() == 10 || s[10] == 'T' || s[10] == ' ');
}

bool is_number_text(std::string_view s) {
    if (s.empty())
        return false;
    double d = 0;
    const auto r = std::from_chars(s.data(), s.data() + s.size(), d);
    return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

/// Why `v` does not suit the custom field's type (GHL's dataType), or nullopt. null always
/// suits (it clears the field); types this does not know are not checked.
std::optional<std::string> custom_type_mismatch(const store::custom_field_row& f,
                                                const bj::value& v) {
    if (v.is_null())
        return std::nullopt;
    const std::string& t = f.data_type;
    const auto in_options = [&f](std::string_view s) {
        return f.options.empty() ||
               std::find(f.options.begin(), f.options.end(), s) != f.options.end();
    };
    if (t == "NUMERICAL" || t == "MONETORY") {
        if (v.is_number() || (v.is_string() && is_number_text(view(v.get_string()))))
            return std::nullopt;
        return "takes a number";
    }
    if (t == "TEXT" || t == "LARGE_TEXT" || t == "PHONE" || t == "EMAIL") {
        if (v.is_string())
            return std::nullopt;
        return "takes a string";
    }
    if (t == "DATE") {
        if (v.is_string() && looks_like_date(view(v.get_string())))
            return std::nullopt;
        return "takes a date (YYYY-MM-DD)";
    }
    if (t == "SINGLE_OPTIONS" || t == "RADIO") {
        if (!v.is_string())
            return "takes one of its options as a string";
        if (!in_options(view(v.get_string())))
            return "has no option \"" + shown(view(v.get_string())) + "\"";
        return std::nullopt;
    }
    if (t == "MULTIPLE_OPTIONS" || t == "CHECKBOX") {
        const auto* a = v.if_array();
        if (!a)
            return "takes an array of its options";
        for (const auto& x : *a)
            if (!x.is_string() || !in_options(view(x.get_string())))
                return "has no option " + (x.is_string() ? "\"" + shown(view(x.get_string())) + "\""
                                                         : std::string("that is not a string"));
        return std::nullopt;
    }
    return std::nullopt;
}

class event_parser {
public:
    event_parser(const field_map& map, const event_limits& limits, const custom_field_types* types)
        : map_(map)
        , limits_(limits)
        , types_(types) {}

    maybe_error run(const bj::object& doc, event& out);

private:
    maybe_error read_id(const std::string& path, const bj::value& v,
                        std::optional<std::string>& out) const;
    maybe_error parse_contact(const bj::value* v, event& out);
    maybe_error apply_contact_field(std::string_view key, const bj::value& v,
                                    contact_changes& changes);
    maybe_error check_contact_value(const std::string& path, const field_spec& spec,
                                    const bj::value& v) const;
    maybe_error check_custom_value(const std::string& path, const bj::value& v) const;
    maybe_error set_custom_field(const std::string& path, std::string_view id, const bj::value& v,
                                 contact_changes& changes);
    maybe_error claim(std::string target, const std::string& path);
    maybe_error parse_tags(const std::string& path, const bj::value& v, bool allow_empty,
                           std::vector<std::string>& out) const;
    maybe_error parse_attached_notes(const bj::value& v, std::vector<note_data>& out) const;
    maybe_error parse_note(const bj::value* v, event_type t, note_data& out) const;
    maybe_error parse_task(const bj::value* v, event_type t, task_data& out) const;

    text_rules id_rules() const { return {limits_.max_id, false, false}; }
    text_rules body_rules() const { return {limits_.max_string, false, true}; }
    text_rules title_rules() const {
        return {std::min(max_title, limits_.max_string), true, false};
    }

    const field_map& map_;
    const event_limits& limits_;
    const custom_field_types* types_;
    // GHL field (or "customFields.<id>", "tags") -> the event's path that set it, so two keys
    // that the field map sends to one field are an error instead of a silent overwrite.
    std::map<std::string, std::string> claimed_;
};

maybe_error event_parser::run(const bj::object& doc, event& out) {
    const bj::value* type_value = doc.if_contains("type");
    if (!type_value)
        return fail("type", "is required");
    const auto* type_string = type_value->if_string();
    if (!type_string)
        return fail("type", "must be a string");
    const auto type = parse_event_type(view(*type_string));
    if (!type)
        return fail("type", "\"" + shown(view(*type_string)) + "\" is not a known event type");
    out.type = *type;

    for (const auto& kv : doc) {
        const std::string_view key = view(kv.key());
        if (key == "type" || key == "event_id" || key == "contact" ||
            top_key_allowed(key, out.type))
            continue;
        if (is_top_key(key))
            return fail(shown(key), "is not a known field for " + type_name(out.type));
        return fail(shown(key), "is not a known field");
    }

    if (const auto* id = doc.if_contains("event_id")) {
        std::string s;
        if (auto e = read_text("event_id", *id, id_rules(), s))
            return e;
        out.event_id = std::move(s);
    }

    if (auto e = parse_contact(doc.if_contains("contact"), out))
        return e;

    if (const auto* notes = doc.if_contains("notes"))
        if (auto e = parse_attached_notes(*notes, out.notes))
            return e;

    if (const auto* pull = doc.if_contains("pull")) {
        if (!pull->is_bool())
            return fail("pull", "must be true or false");
        out.pull = pull->get_bool();
    }

    if (is_note_type(out.type)) {
        note_data note;
        if (auto e = parse_note(doc.if_contains("note"), out.type, note))
            return e;
        out.notes.push_back(std::move(note));
    } else if (is_task_type(out.type)) {
        task_data task;
        if (auto e = parse_task(doc.if_contains("task"), out.type, task))
            return e;
        out.task = std::move(task);
    } else if (is_tagging_type(out.type)) {
        const auto* tags = doc.if_contains("tags");
        if (!tags)
            return fail("tags", "is required");
        if (auto e = parse_tags("tags", *tags, false, out.tags))
            return e;
    }

    if (out.type == event_type::contact_updated && out.changes.empty() && out.notes.empty() &&
        !out.pull)
        return fail("contact", "has nothing to change: name a field, attach notes or set "
                               "pull: true");
    return std::nullopt;
}

maybe_error event_parser::read_id(const std::string& path, const bj::value& v,
                                  std::optional<std::string>& out) const {
    std::string s;
    if (auto e = read_text(path, v, id_rules(), s))
        return e;
    out = std::move(s);
    return std::nullopt;
}

maybe_error event_parser::parse_contact(const bj::value* v, event& out) {
    if (!v)
        return fail("contact", "is required");
    const auto* contact = v->if_object();
    if (!contact)
        return fail("contact", "must be an object");
    claimed_.clear();
    for (const auto& kv : *contact) {
        const std::string_view key = view(kv.key());
        if (key == "speak4_id") {
            if (auto e = read_id("contact.speak4_id", kv.value(), out.contact.speak4_id))
                return e;
        } else if (key == "ghl_id") {
            if (auto e = read_id("contact.ghl_id", kv.value(), out.contact.ghl_id))
                return e;
        } else if (has_contact_fields(out.type)) {
            if (auto e = apply_contact_field(key, kv.value(), out.changes))
                return e;
        } else {
            return fail(child("contact", key), "is not a known field for " + type_name(out.type));
        }
    }
    if (needs_speak4_id(out.type) && !out.contact.speak4_id)
        return fail("contact.speak4_id", "is required");
    if (!out.contact.speak4_id && !out.contact.ghl_id)
        return fail("contact", "needs speak4_id or ghl_id");
    if (out.changes.custom_fields.size() > limits_.max_custom_fields)
        return fail("contact.customFields",
                    "has more than " + std::to_string(limits_.max_custom_fields) + " fields");
    if (out.type == event_type::lead_created) {
        const auto set = [&](std::string_view name) {
            const auto* f = out.changes.fields.if_contains(name);
            return f && f->is_string();
        };
        if (!set("email") && !set("phone"))
            return validation_error{"contact.email",
                                    "lead.created needs contact.email or contact.phone"};
    }
    return std::nullopt;
}

maybe_error event_parser::apply_contact_field(std::string_view key, const bj::value& v,
                                              contact_changes& changes) {
    const std::string path = child("contact", key);
    std::string_view target = key;
    if (const auto it = map_.find(std::string(key)); it != map_.end())
        target = it->second;

    constexpr std::string_view custom_prefix = "customFields.";
    if (target.starts_with(custom_prefix)) {
        const std::string_view id = target.substr(custom_prefix.size());
        if (check_text(path, id, id_rules()))
            return fail(path, "maps to " + shown(target) + ", which is not a valid custom field");
        return set_custom_field(path, id, v, changes);
    }
    if (target == "customFields") {
        const auto* fields = v.if_object();
        if (!fields)
            return fail(path, "must be an object of custom field ids to values");
        if (fields->size() > limits_.max_custom_fields)
            return fail(path,
                        "has more than " + std::to_string(limits_.max_custom_fields) + " fields");
        for (const auto& kv : *fields) {
            const std::string_view id = view(kv.key());
            const std::string item = child(path, id);
            if (check_text(item, id, id_rules()))
                return fail(item, "is not a valid custom field id");
            if (auto e = set_custom_field(item, id, kv.value(), changes))
                return e;
        }
        return std::nullopt;
    }
    if (target == "tags") {
        std::vector<std::string> tags;
        if (auto e = parse_tags(path, v, true, tags))
            return e;
        if (auto e = claim("tags", path))
            return e;
        changes.tags = std::move(tags);
        return std::nullopt;
    }
    const field_spec* spec = find_contact_field(target);
    if (!spec) {
        if (target != key)
            return fail(path, "maps to " + shown(target) + ", which is not a known contact field");
        return fail(path, "is not a known contact field");
    }
    if (auto e = check_contact_value(path, *spec, v))
        return e;
    if (auto e = claim(std::string(target), path))
        return e;
    changes.fields[target] = v;
    return std::nullopt;
}

maybe_error event_parser::check_contact_value(const std::string& path, const field_spec& spec,
                                              const bj::value& v) const {
    if (spec.kind == field_kind::flag) {
        if (!v.is_bool())
            return fail(path, "must be true or false");
        return std::nullopt;
    }
    if (v.is_null())
        return std::nullopt; // clears the field
    const auto* s = v.if_string();
    if (!s)
        return fail(path, "must be a string");
    const std::string_view text = view(*s);
    switch (spec.kind) {
    case field_kind::email:
        if (!is_email(text))
            return fail(path, "is not an email");
        return std::nullopt;
    case field_kind::phone:
        if (!is_phone(text))
            return fail(path, "is not a phone number");
        return std::nullopt;
    case field_kind::country:
        if (!is_country(text))
            return fail(path, "is not a 2-letter country code");
        return std::nullopt;
    case field_kind::date:
        if (!is_birth_date(text))
            return fail(path, "is not a date (YYYY-MM-DD)");
        return std::nullopt;
    case field_kind::text:
    case field_kind::flag:
        break;
    }
    return check_text(path, text, {std::min(spec.max_chars, limits_.max_string), true, false});
}

maybe_error event_parser::check_custom_value(const std::string& path, const bj::value& v) const {
    if (v.is_null() || v.is_number())
        return std::nullopt;
    if (const auto* s = v.if_string())
        return check_text(path, view(*s), {limits_.max_string, true, true});
    if (const auto* options = v.if_array()) {
        if (options->size() > limits_.max_options)
            return fail(path, "has more than " + std::to_string(limits_.max_options) + " values");
        for (std::size_t i = 0; i < options->size(); ++i) {
            const std::string item = indexed(path, i);
            const auto* s = (*options)[i].if_string();
            if (!s)
                return fail(item, "must be a string");
            if (auto e = check_text(item, view(*s), {limits_.max_string, true, false}))
                return e;
        }
        return std::nullopt;
    }
    return fail(path, "must be a string, number, array of strings or null");
}

maybe_error event_parser::set_custom_field(const std::string& path, std::string_view id,
                                           const bj::value& v, contact_changes& changes) {
    if (auto e = check_custom_value(path, v))
        return e;
    if (types_)
        if (const auto it = types_->find(std::string(id)); it != types_->end())
            if (auto why = custom_type_mismatch(it->second, v))
                return fail(path, "maps to the custom field \"" + shown(it->second.name) + "\" (" +
                                      it->second.data_type + "), which " + *why);
    std::string key(id);
    if (auto e = claim("customFields." + key, path))
        return e;
    changes.custom_fields[std::move(key)] = v;
    return std::nullopt;
}

maybe_error event_parser::claim(std::string target, const std::string& path) {
    const auto [it, inserted] = claimed_.emplace(std::move(target), path);
    if (!inserted)
        return fail(path, "sets the same field as " + it->second);
    return std::nullopt;
}

maybe_error event_parser::parse_tags(const std::string& path, const bj::value& v, bool allow_empty,
                                     std::vector<std::string>& out) const {
    const auto* tags = v.if_array();
    if (!tags)
        return fail(path, "must be an array of strings");
    if (tags->empty() && !allow_empty)
        return fail(path, "must not be empty");
    if (tags->size() > limits_.max_tags)
        return fail(path, "has more than " + std::to_string(limits_.max_tags) + " tags");
    out.clear();
    for (std::size_t i = 0; i < tags->size(); ++i) {
        std::string tag;
        if (auto e = read_text(indexed(path, i), (*tags)[i], {limits_.max_tag_length, false, false},
                               tag))
            return e;
        if (std::find(out.begin(), out.end(), tag) == out.end())
            out.push_back(std::move(tag));
    }
    return std::nullopt;
}

maybe_error event_parser::parse_attached_notes(const bj::value& v,
                                               std::vector<note_data>& out) const {
    const auto* notes = v.if_array();
    if (!notes)
        return fail("notes", "must be an array");
    if (notes->size() > limits_.max_notes)
        return fail("notes", "has more than " + std::to_string(limits_.max_notes) + " notes");
    for (std::size_t i = 0; i < notes->size(); ++i) {
        const std::string path = indexed("notes", i);
        const auto* entry = (*notes)[i].if_object();
        if (!entry)
            return fail(path, "must be an object");
        note_data note;
        for (const auto& kv : *entry) {
            const std::string_view key = view(kv.key());
            const std::string item = child(path, key);
            maybe_error e;
            if (key == "speak4_id") {
                e = read_id(item, kv.value(), note.ref.speak4_id);
            } else if (key == "body") {
                std::string s;
                e = read_text(item, kv.value(), body_rules(), s);
                note.body = std::move(s);
            } else if (key == "title") {
                std::string s;
                e = read_text(item, kv.value(), title_rules(), s);
                note.title = std::move(s);
            } else {
                e = fail(item, "is not a known note field");
            }
            if (e)
                return e;
        }
        if (!note.ref.speak4_id)
            return fail(path + ".speak4_id", "is required");
        if (!note.body)
            return fail(path + ".body", "is required");
        for (std::size_t j = 0; j < out.size(); ++j)
            if (out[j].ref.speak4_id == note.ref.speak4_id)
                return fail(path + ".speak4_id", "repeats " + indexed("notes", j) + ".speak4_id");
        out.push_back(std::move(note));
    }
    return std::nullopt;
}

maybe_error event_parser::parse_note(const bj::value* v, event_type t, note_data& out) const {
    if (!v)
        return fail("note", "is required");
    const auto* note = v->if_object();
    if (!note)
        return fail("note", "must be an object");
    for (const auto& kv : *note) {
        const std::string_view key = view(kv.key());
        const std::string path = child("note", key);
        maybe_error e;
        if (key == "speak4_id") {
            e = read_id(path, kv.value(), out.ref.speak4_id);
        } else if (key == "ghl_id") {
            e = read_id(path, kv.value(), out.ref.ghl_id);
        } else if ((key == "body" || key == "title") && t == event_type::note_deleted) {
            e = fail(path, "is not a known field for " + type_name(t));
        } else if (key == "body") {
            std::string s;
            e = read_text(path, kv.value(), body_rules(), s);
            out.body = std::move(s);
        } else if (key == "title") {
            std::string s;
            e = read_text(path, kv.value(), title_rules(), s);
            out.title = std::move(s);
        } else {
            e = fail(path, "is not a known note field");
        }
        if (e)
            return e;
    }
    if (t == event_type::note_created) {
        if (!out.ref.speak4_id)
            return fail("note.speak4_id", "is required");
        if (!out.body)
            return fail("note.body", "is required");
        return std::nullopt;
    }
    if (!out.ref.speak4_id && !out.ref.ghl_id)
        return fail("note", "needs speak4_id or ghl_id");
    if (t == event_type::note_updated && !out.body && !out.title)
        return validation_error{"note.body", "note.updated needs note.body or note.title"};
    return std::nullopt;
}

maybe_error event_parser::parse_task(const bj::value* v, event_type t, task_data& out) const {
    if (!v)
        return fail("task", "is required");
    const auto* task = v->if_object();
    if (!task)
        return fail("task", "must be an object");
    for (const auto& kv : *task) {
        const std::string_view key = view(kv.key());
        const std::string path = child("task", key);
        const bool field = key == "title" || key == "body" || key == "dueDate" ||
                           key == "completed" || key == "assignedTo";
        maybe_error e;
        if (key == "speak4_id") {
            e = read_id(path, kv.value(), out.ref.speak4_id);
        } else if (key == "ghl_id") {
            e = read_id(path, kv.value(), out.ref.ghl_id);
        } else if (!field) {
            e = fail(path, "is not a known task field");
        } else if (t == event_type::task_deleted ||
                   (t == event_type::task_completed && key != "completed")) {
            e = fail(path, "is not a known field for " + type_name(t));
        } else if (key == "title") {
            std::string s;
            e = read_text(path, kv.value(), {std::min(max_title, limits_.max_string), false, false},
                          s);
            out.title = std::move(s);
        } else if (key == "body") {
            std::string s;
            e = read_text(path, kv.value(), {limits_.max_string, true, true}, s);
            out.body = std::move(s);
        } else if (key == "dueDate") {
            const auto* s = kv.value().if_string();
            if (!s)
                return fail(path, "must be a string");
            const auto when = parse_iso8601(view(*s));
            if (!when)
                return fail(path, "is not ISO-8601");
            out.due_date = format_iso8601(*when);
        } else if (key == "completed") {
            if (!kv.value().is_bool())
                return fail(path, "must be true or false");
            out.completed = kv.value().get_bool();
        } else { // assignedTo: a GHL user id
            std::string s;
            e = read_text(path, kv.value(), id_rules(), s);
            out.assigned_to = std::move(s);
        }
        if (e)
            return e;
    }
    if (t == event_type::task_created) {
        if (!out.ref.speak4_id)
            return fail("task.speak4_id", "is required");
        if (!out.title)
            return fail("task.title", "is required");
        if (!out.due_date)
            return fail("task.dueDate", "is required");
        return std::nullopt;
    }
    if (!out.ref.speak4_id && !out.ref.ghl_id)
        return fail("task", "needs speak4_id or ghl_id");
    if (t == event_type::task_completed && !out.completed)
        return fail("task.completed", "is required");
    if (t == event_type::task_updated && !out.title && !out.body && !out.due_date &&
        !out.completed && !out.assigned_to)
        return fail("task", "has nothing to change: name title, body, dueDate, completed or "
                            "assignedTo");
    return std::nullopt;
}

} // namespace

std::string_view to_string(event_type t) {
    for (const auto& [type, name] : type_names)
        if (type == t)
            return name;
    return "unknown";
}

std::optional<event_type> parse_event_type(std::string_view name) {
    for (const auto& [type, n] : type_names)
        if (n == name)
            return type;
    return std::nullopt;
}

void throw_exception_from_error(const validation_error& e, const boost::source_location& loc) {
    boost::throw_with_location(std::invalid_argument(e.message), loc);
}

boost::system::result<event, validation_error> parse_event(std::string_view json_text,
                                                           const field_map& map,
                                                           const event_limits& limits,
                                                           const custom_field_types* types) {
    // Checked here as well as in json::parse so the message names the limit the way the HTTP
    // layer's 413 does.
    if (json_text.size() > limits.max_bytes)
        return fail("", "is larger than " + std::to_string(limits.max_bytes) + " bytes");
    auto doc = speak4::json::parse(json_text, {limits.max_bytes, limits.max_depth});
    if (!doc) {
        const std::string& why = doc.error();
        if (why.starts_with("nesting"))
            return fail("", "has " + why);
        return fail("", "is " + why);
    }
    const auto* object = doc->if_object();
    if (!object)
        return fail("", "must be a JSON object");
    event out;
    event_parser parser(map, limits, types);
    if (auto e = parser.run(*object, out))
        return std::move(*e);
    return out;
}

} // namespace speak4::sync

namespace speak4::sync {

std::optional<validation_error> check_allowed(const event& ev, sync_direction direction,
                                              const entity_set& entities) {
    const std::string type(to_string(ev.type));
    const bool pull_request = ev.type == event_type::contact_opened ||
                              (ev.type == event_type::contact_updated && ev.pull &&
                               ev.changes.empty() && ev.notes.empty());
    if (direction == sync_direction::pull && !pull_request)
        return validation_error{"type", type + " is a write to GHL, and sync.direction = "
                                               "\"pull\" sends none (GHL -> Speak4 only)"};
    if (direction == sync_direction::push && pull_request)
        return validation_error{"type", type + " asks for a pull from GHL, and sync.direction "
                                               "= \"push\" pulls nothing (Speak4 -> GHL only)"};
    const bool task_event =
        ev.type == event_type::task_created || ev.type == event_type::task_updated ||
        ev.type == event_type::task_completed || ev.type == event_type::task_deleted;
    if (task_event && !entities.tasks)
        return validation_error{"type", type + " is refused: sync.entities does not list tasks"};
    const bool note_event = ev.type == event_type::note_created ||
                            ev.type == event_type::note_updated ||
                            ev.type == event_type::note_deleted;
    if (note_event && !entities.notes)
        return validation_error{"type", type + " is refused: sync.entities does not list notes"};
    if (!note_event && !ev.notes.empty() && !entities.notes)
        return validation_error{"notes", "notes are refused: sync.entities does not list notes"};
    return std::nullopt;
}

} // namespace speak4::sync
