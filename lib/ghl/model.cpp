#include "ghl/model.hpp"

#include "core/json.hpp"

#include <algorithm>
#include <array>

namespace speak4::ghl {

namespace {

using json::get_array;
using json::get_bool;
using json::get_int;
using json::get_object;
using json::get_string;

/// A date that GHL sends as an ISO string or (search, legacy cursors) as epoch milliseconds.
std::optional<sys_time> get_time(const bj::object& o, std::string_view key) {
    if (auto s = get_string(o, key))
        return parse_iso8601(*s);
    if (auto n = get_int(o, key); n && *n > 0)
        return from_epoch_ms(*n);
    return std::nullopt;
}

std::vector<std::string> get_strings(const bj::object& o, std::string_view key) {
    std::vector<std::string> out;
    if (const auto* a = get_array(o, key))
        for (const auto& v : *a)
            if (v.is_string())
                out.emplace_back(v.get_string());
    return out;
}

template <class T, class Parse>
std::vector<T> parse_items(const bj::object& body, std::string_view key, Parse parse, int* skipped,
                           std::size_t* raw_count = nullptr) {
    std::vector<T> out;
    const auto* arr = get_array(body, key);
    if (raw_count)
        *raw_count = arr ? arr->size() : 0;
    if (!arr)
        return out;
    out.reserve(arr->size());
    for (const auto& v : *arr) {
        if (auto item = parse(v))
            out.push_back(std::move(*item));
        else if (skipped)
            ++*skipped;
    }
    return out;
}

// The string members of contact_write and where the spec allows them.
struct string_field {
    const char* name;
    std::optional<std::string> contact_write::*member;
    bool in_create;
    bool in_update;
    bool null_in_create; // "nullable: true" in CreateContactDto
    bool null_in_update; // "nullable: true" in UpdateContactDto
};

constexpr std::array<string_field, 17> string_fields{{
    {"firstName", &contact_write::first_name, true, true, true, true},
    {"lastName", &contact_write::last_name, true, true, true, true},
    {"name", &contact_write::name, true, true, true, true},
    {"email", &contact_write::email, true, true, true, true},
    {"phone", &contact_write::phone, true, true, true, true},
    {"address1", &contact_write::address1, true, true, true, true},
    {"city", &contact_write::city, true, true, true, true},
    {"state", &contact_write::state, true, true, true, true},
    {"postalCode", &contact_write::postal_code, true, true, false, false},
    {"website", &contact_write::website, true, true, true, true},
    {"timezone", &contact_write::timezone, true, true, true, true},
    {"source", &contact_write::source, true, true, false, true},
    {"country", &contact_write::country, true, true, false, false},
    {"assignedTo", &contact_write::assigned_to, true, true, false, true},
    {"dateOfBirth", &contact_write::date_of_birth, true, true, true, true},
    {"companyName", &contact_write::company_name, true, false, true, false},
    {"gender", &contact_write::gender, true, false, false, false},
}};

bool clears(const contact_write& w, std::string_view name) {
    return std::find(w.clear.begin(), w.clear.end(), name) != w.clear.end();
}

bj::object contact_body(const contact_write& w, bool create) {
    bj::object o;
    for (const auto& f : string_fields) {
        if (!(create ? f.in_create : f.in_update))
            continue;
        if (const auto& v = w.*(f.member))
            o[f.name] = *v;
        else if ((create ? f.null_in_create : f.null_in_update) && clears(w, f.name))
            o[f.name] = nullptr;
    }
    if (w.dnd)
        o["dnd"] = *w.dnd;
    if (w.dnd_settings)
        o["dndSettings"] = *w.dnd_settings;
    if (w.inbound_dnd_settings)
        o["inboundDndSettings"] = *w.inbound_dnd_settings;
    if (w.tags) {
        bj::array tags;
        for (const auto& t : *w.tags)
            tags.emplace_back(t);
        o["tags"] = std::move(tags);
    }
    if (!w.custom_fields.empty()) {
        bj::array cf;
        for (const auto& f : w.custom_fields) {
            bj::object item;
            item["id"] = f.id;
            if (f.key)
                item["key"] = *f.key;
            item["field_value"] = f.value;
            cf.emplace_back(std::move(item));
        }
        o["customFields"] = std::move(cf);
    }
    return o;
}

void put(bj::object& o, const char* key, const std::optional<std::string>& v) {
    if (v)
        o[key] = *v;
}
void put(bj::object& o, const char* key, const std::optional<bool>& v) {
    if (v)
        o[key] = *v;
}

} // namespace

// ---------------------------------------------------------------------------------------------
// Parsing

namespace {
/// A record's id: the object's non-empty string "id"; nullopt for anything else.
std::optional<std::string> record_id(const bj::object* o) {
    if (!o)
        return std::nullopt;
    auto id = get_string(*o, "id");
    if (!id || id->empty())
        return std::nullopt;
    return id;
}
} // namespace

namespace {
/// Every member of a contact but `raw`.
std::optional<contact> contact_fields(const bj::object* o) {
    auto id = record_id(o);
    if (!id)
        return std::nullopt;
    contact c;
    c.id = std::move(*id);
    c.location_id = get_string(*o, "locationId");
    c.first_name = get_string(*o, "firstName");
    c.last_name = get_string(*o, "lastName");
    c.name = get_string(*o, "name");
    if (!c.name)
        c.name = get_string(*o, "contactName");
    c.email = get_string(*o, "email");
    c.phone = get_string(*o, "phone");
    c.company_name = get_string(*o, "companyName");
    c.address1 = get_string(*o, "address1");
    c.city = get_string(*o, "city");
    c.state = get_string(*o, "state");
    c.postal_code = get_string(*o, "postalCode");
    c.country = get_string(*o, "country");
    c.website = get_string(*o, "website");
    c.timezone = get_string(*o, "timezone");
    c.source = get_string(*o, "source");
    c.type = get_string(*o, "type");
    c.assigned_to = get_string(*o, "assignedTo");
    c.business_id = get_string(*o, "businessId");
    c.date_of_birth = get_string(*o, "dateOfBirth");
    c.dnd = get_bool(*o, "dnd");
    c.tags = get_strings(*o, "tags");
    if (const auto* cf = get_array(*o, "customFields")) {
        for (const auto& item : *cf) {
            const auto* f = item.if_object();
            if (!f)
                continue;
            auto fid = get_string(*f, "id");
            if (!fid)
                continue;
            // Read as "value"; tolerate the write-side names too.
            const bj::value* val = f->if_contains("value");
            if (!val)
                val = f->if_contains("field_value");
            if (!val)
                val = f->if_contains("fieldValue");
            c.custom_fields.push_back({std::move(*fid), val ? *val : bj::value(nullptr)});
        }
    }
    c.date_added = get_time(*o, "dateAdded");
    c.date_updated = get_time(*o, "dateUpdated");
    if (const auto* sa = get_array(*o, "searchAfter"))
        c.search_after = *sa;
    return c;
}
} // namespace

std::optional<contact> parse_contact(const bj::value& v) {
    const auto* o = v.if_object();
    auto c = contact_fields(o);
    if (c)
        c->raw = *o;
    return c;
}

std::optional<contact> parse_contact_moved(bj::value&& v) {
    auto* o = v.if_object();
    auto c = contact_fields(o);
    if (c)
        c->raw = std::move(*o); // no copy of the record (a search page holds 500 of them)
    return c;
}

std::optional<task> parse_task(const bj::value& v) {
    const auto* o = v.if_object();
    auto id = record_id(o);
    if (!id)
        return std::nullopt;
    task t;
    t.id = std::move(*id);
    t.title = get_string(*o, "title");
    t.body = get_string(*o, "body");
    t.assigned_to = get_string(*o, "assignedTo");
    t.due_date = get_string(*o, "dueDate");
    t.contact_id = get_string(*o, "contactId");
    t.completed = get_bool(*o, "completed");
    t.due_at = get_time(*o, "dueDate");
    t.raw = *o;
    return t;
}

std::optional<note> parse_note(const bj::value& v) {
    const auto* o = v.if_object();
    auto id = record_id(o);
    if (!id)
        return std::nullopt;
    note n;
    n.id = std::move(*id);
    n.body = get_string(*o, "body");
    n.user_id = get_string(*o, "userId");
    n.date_added = get_string(*o, "dateAdded");
    n.contact_id = get_string(*o, "contactId");
    n.title = get_string(*o, "title");
    n.color = get_string(*o, "color");
    n.pinned = get_bool(*o, "pinned");
    n.raw = *o;
    return n;
}

std::optional<appointment> parse_appointment(const bj::value& v) {
    const auto* o = v.if_object();
    auto id = record_id(o);
    if (!id)
        return std::nullopt;
    appointment a;
    a.id = std::move(*id);
    a.calendar_id = get_string(*o, "calendarId");
    a.status = get_string(*o, "status");
    a.title = get_string(*o, "title");
    a.assigned_user_id = get_string(*o, "assignedUserId");
    a.notes = get_string(*o, "notes");
    a.start_time = get_string(*o, "startTime");
    a.end_time = get_string(*o, "endTime");
    a.address = get_string(*o, "address");
    a.location_id = get_string(*o, "locationId");
    a.contact_id = get_string(*o, "contactId");
    a.group_id = get_string(*o, "groupId");
    a.appointment_status = get_string(*o, "appointmentStatus");
    a.date_added = get_string(*o, "dateAdded");
    a.date_updated = get_string(*o, "dateUpdated");
    a.start_at = get_time(*o, "startTime");
    a.end_at = get_time(*o, "endTime");
    a.raw = *o;
    return a;
}

std::optional<custom_field> parse_custom_field(const bj::value& v) {
    const auto* o = v.if_object();
    auto id = record_id(o);
    if (!id)
        return std::nullopt;
    custom_field f;
    f.id = std::move(*id);
    f.name = get_string(*o, "name").value_or("");
    if (f.name.empty())
        return std::nullopt;
    f.field_key = get_string(*o, "fieldKey").value_or("");
    f.data_type = get_string(*o, "dataType").value_or("");
    f.model = get_string(*o, "model").value_or("");
    if (const auto* opts = o->if_contains("picklistOptions"))
        if (const auto* a = opts->if_array())
            for (const auto& x : *a)
                if (const auto* str = x.if_string())
                    f.options.emplace_back(*str);
    return f;
}

contact_search_page parse_search_page(const bj::object& body, int page_limit) {
    bj::object copy = body;
    return parse_search_page(std::move(copy), page_limit);
}

contact_search_page parse_search_page(bj::object&& body, int page_limit) {
    contact_search_page p;
    std::size_t raw_count = 0;
    if (auto* arr = body.contains("contacts") ? body.at("contacts").if_array() : nullptr) {
        raw_count = arr->size();
        p.contacts.reserve(arr->size());
        for (auto& v : *arr) {
            if (auto item = parse_contact_moved(std::move(v)))
                p.contacts.push_back(std::move(*item));
            else
                ++p.skipped;
        }
    }
    p.total = get_int(body, "total");
    p.trace_id = get_string(body, "traceId");
    if (!p.contacts.empty())
        p.next_search_after = p.contacts.back().search_after;
    // Stop at a short page (GHL's documented end condition) or when there is no cursor.
    p.more = page_limit > 0 && raw_count >= static_cast<std::size_t>(page_limit) &&
             !p.next_search_after.empty();
    return p;
}

contact_list_page parse_list_page(const bj::object& body, int limit) {
    contact_list_page p;
    std::size_t raw_count = 0;
    p.contacts = parse_items<contact>(body, "contacts", parse_contact, &p.skipped, &raw_count);
    p.count = get_int(body, "count");
    const auto* meta = get_object(body, "meta");
    if (meta) {
        p.total = get_int(*meta, "total");
        p.next_start_after = get_int(*meta, "startAfter");
        p.next_start_after_id = get_string(*meta, "startAfterId");
        p.next_page_url = get_string(*meta, "nextPageUrl");
    }
    if (meta && meta->contains("nextPageUrl"))
        p.more = p.next_page_url && !p.next_page_url->empty();
    else
        p.more = limit > 0 && raw_count >= static_cast<std::size_t>(limit);
    if (raw_count == 0)
        p.more = false;
    // Without cursors in meta, continue after the last contact (its dateAdded and id).
    if (p.more && !p.contacts.empty()) {
        if (!p.next_start_after_id)
            p.next_start_after_id = p.contacts.back().id;
        if (!p.next_start_after && p.contacts.back().date_added)
            p.next_start_after = to_epoch_ms(*p.contacts.back().date_added);
    }
    return p;
}

std::vector<std::string> parse_tags(const bj::object& body) {
    return get_strings(body, "tags");
}

// ---------------------------------------------------------------------------------------------
// Request bodies

contact_write contact_write_from_json(const bj::object& fields, std::vector<std::string>* ignored) {
    contact_write w;
    const auto ignore = [&](std::string_view k) {
        if (ignored)
            ignored->emplace_back(k);
    };
    for (const auto& [key, value] : fields) {
        const std::string_view name = key; // (clang 14 cannot capture a structured binding)
        const auto sf = std::find_if(string_fields.begin(), string_fields.end(),
                                     [&](const string_field& f) { return name == f.name; });
        if (sf != string_fields.end()) {
            if (value.is_null())
                w.clear.emplace_back(sf->name);
            else if (value.is_string())
                w.*(sf->member) = std::string(value.get_string());
            else if (value.is_number())
                w.*(sf->member) = json::dump(value); // e.g. a phone given as a number
            else
                ignore(key);
            continue;
        }
        if (key == "dnd" && value.is_bool()) {
            w.dnd = value.get_bool();
        } else if (key == "dndSettings" && value.is_object()) {
            w.dnd_settings = value.get_object();
        } else if (key == "inboundDndSettings" && value.is_object()) {
            w.inbound_dnd_settings = value.get_object();
        } else if (key == "tags" && (value.is_array() || value.is_null())) {
            std::vector<std::string> tags;
            if (value.is_array())
                for (const auto& t : value.get_array())
                    if (t.is_string())
                        tags.emplace_back(t.get_string());
            w.tags = std::move(tags);
        } else if (key == "customFields" && value.is_object()) {
            for (const auto& [id, v] : value.get_object())
                w.custom_fields.push_back({std::string(id), std::nullopt, v});
        } else if (key == "customFields" && value.is_array()) {
            for (const auto& item : value.get_array()) {
                const auto* f = item.if_object();
                auto id = f ? get_string(*f, "id") : std::nullopt;
                if (!id)
                    continue;
                const bj::value* v = f->if_contains("field_value");
                if (!v)
                    v = f->if_contains("value");
                if (!v)
                    v = f->if_contains("fieldValue");
                w.custom_fields.push_back(
                    {std::move(*id), get_string(*f, "key"), v ? *v : bj::value(nullptr)});
            }
        } else {
            ignore(key);
        }
    }
    return w;
}

bj::object create_contact_body(const contact_write& w, std::string_view location_id) {
    bj::object o = contact_body(w, true);
    o["locationId"] = location_id;
    return o;
}

bj::object update_contact_body(const contact_write& w) {
    return contact_body(w, false);
}

bj::object update_task_body(const task_write& w) {
    bj::object o;
    put(o, "title", w.title);
    put(o, "body", w.body);
    put(o, "dueDate", w.due_date);
    put(o, "completed", w.completed);
    put(o, "assignedTo", w.assigned_to);
    return o;
}

boost::system::result<bj::object, std::string> create_task_body(const task_write& w) {
    if (!w.title || w.title->empty())
        return std::string("title is required");
    if (!w.due_date || w.due_date->empty())
        return std::string("dueDate is required");
    task_write full = w;
    if (!full.completed)
        full.completed = false; // required by CreateTaskParams; a new task is open
    return update_task_body(full);
}

bj::object update_note_body(const note_write& w) {
    bj::object o;
    put(o, "userId", w.user_id);
    put(o, "body", w.body);
    put(o, "title", w.title);
    put(o, "color", w.color);
    put(o, "pinned", w.pinned);
    return o;
}

boost::system::result<bj::object, std::string> create_note_body(const note_write& w) {
    if (!w.body)
        return std::string("body is required");
    return update_note_body(w);
}

boost::system::result<bj::object, std::string> search_body(const search_request& r,
                                                           std::string_view location_id) {
    if (r.page_limit < 1 || r.page_limit > 500)
        return std::string("pageLimit must be 1..500");
    if (r.page && r.search_after && !r.search_after->empty())
        return std::string("page and searchAfter cannot be combined");
    if (r.query && r.query->size() > 75)
        return std::string("query is longer than 75 characters");
    bj::object o;
    o["locationId"] = location_id;
    o["pageLimit"] = r.page_limit;
    if (r.page)
        o["page"] = *r.page;
    if (r.search_after && !r.search_after->empty())
        o["searchAfter"] = *r.search_after;
    if (!r.filters.empty())
        o["filters"] = r.filters;
    if (!r.sort.empty())
        o["sort"] = r.sort;
    if (r.query)
        o["query"] = *r.query;
    return o;
}

bj::object filter(std::string_view field, std::string_view op, bj::value value) {
    bj::object f;
    f["field"] = field;
    f["operator"] = op;
    if (!value.is_null())
        f["value"] = std::move(value);
    return f;
}

bj::object range_filter(std::string_view field, bj::value gte, bj::value lte) {
    bj::object range;
    if (!gte.is_null())
        range["gte"] = std::move(gte);
    if (!lte.is_null())
        range["lte"] = std::move(lte);
    return filter(field, "range", std::move(range));
}

bj::object filter_group(std::string_view group, bj::array filters) {
    bj::object g;
    g["group"] = group;
    g["filters"] = std::move(filters);
    return g;
}

bj::object sort_by(std::string_view field, bool ascending) {
    bj::object s;
    s["field"] = field;
    s["direction"] = ascending ? "asc" : "desc";
    return s;
}

} // namespace speak4::ghl
