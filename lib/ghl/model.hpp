#pragma once
// GHL records <-> JSON (Boost.JSON). Parsing is tolerant: unknown fields are ignored, null and
// wrong-typed fields read as absent, and every record keeps the raw JSON object for the mirror.
// Request bodies contain only the fields the spec's DTOs list (the live API rejects others:
// "property X should not exist").

#include "core/time.hpp"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <boost/system/result.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace speak4::ghl {

namespace bj = boost::json;

// ---------------------------------------------------------------------------------------------
// Records read from GHL

/// A custom field as GHL returns it: {"id": ..., "value": ...}.
struct custom_field_value {
    std::string id;
    bj::value value; ///< string, number, array or object, as sent
};

/// A contact (GET/PUT envelope, create, search and list items; all fields optional but id).
struct contact {
    std::string id;
    std::optional<std::string> location_id, first_name, last_name, name, email, phone, company_name,
        address1, city, state, postal_code, country, website, timezone, source, type, assigned_to,
        business_id, date_of_birth;
    std::optional<bool> dnd;
    std::vector<std::string> tags;
    std::vector<custom_field_value> custom_fields;
    std::optional<sys_time> date_added, date_updated;
    bj::array search_after; ///< search results only: the cursor after this contact
    bj::object raw;         ///< the whole object as received
};

struct task {
    std::string id;
    std::optional<std::string> title, body, assigned_to, due_date, contact_id;
    std::optional<bool> completed;
    std::optional<sys_time> due_at; ///< due_date parsed
    bj::object raw;
};

struct note {
    std::string id;
    std::optional<std::string> body, user_id, date_added, contact_id, title, color;
    std::optional<bool> pinned;
    bj::object raw;
};

struct appointment {
    std::string id;
    std::optional<std::string> calendar_id, status, title, assigned_user_id, notes, start_time,
        end_time, address, location_id, contact_id, group_id, appointment_status, date_added,
        date_updated;
    std::optional<sys_time> start_at,
        end_at; ///< start_time / end_time parsed (ISO or "Y-m-d H:M:S")
    bj::object raw;
};

/// A location's custom field (GET /locations/:locationId/customFields, CustomFieldSchema).
struct custom_field {
    std::string id;
    std::string name;
    std::string field_key; ///< "contact.favourite_colour"
    std::string data_type; ///< TEXT, LARGE_TEXT, NUMERICAL, PHONE, MONETORY, CHECKBOX,
                           ///< SINGLE_OPTIONS, MULTIPLE_OPTIONS, DATE, TEXTBOX_LIST, FILE_UPLOAD…
    std::string model;     ///< "contact" | "opportunity"
    std::vector<std::string> options; ///< picklistOptions (the option values)
};

/// One page of POST /contacts/search.
struct contact_search_page {
    std::vector<contact> contacts;
    std::optional<long long> total;
    std::optional<std::string> trace_id;
    bj::array next_search_after; ///< the last contact's searchAfter (empty: none)
    bool more = false;           ///< a full page came back: ask for the next one
    int skipped = 0;             ///< items dropped for lacking an id
};

/// One page of GET /contacts/ (legacy) or GET /contacts/business/:businessId.
struct contact_list_page {
    std::vector<contact> contacts;
    std::optional<long long> count;
    std::optional<long long> total;                 ///< meta.total
    std::optional<long long> next_start_after;      ///< meta.startAfter
    std::optional<std::string> next_start_after_id; ///< meta.startAfterId
    std::optional<std::string> next_page_url;       ///< meta.nextPageUrl
    bool more = false; ///< legacy: a next page exists (nextPageUrl, else a full page)
    int skipped = 0;
};

// Parsers: nullopt when the value is not an object or has no string id.
std::optional<contact> parse_contact(const bj::value& v);
/// The same, moving the object into `raw` instead of copying it.
std::optional<contact> parse_contact_moved(bj::value&& v);
std::optional<task> parse_task(const bj::value& v);
std::optional<note> parse_note(const bj::value& v);
std::optional<appointment> parse_appointment(const bj::value& v);
/// A custom field; nullopt without an id or a name.
std::optional<custom_field> parse_custom_field(const bj::value& v);

/// Envelope {"contacts":[…],"total":n,"traceId":…}; `page_limit` decides `more`.
contact_search_page parse_search_page(const bj::object& body, int page_limit);
/// The same, moving each item into its contact's `raw` (`body` is left with moved-from items).
contact_search_page parse_search_page(bj::object&& body, int page_limit);
/// Envelope {"contacts":[…],"count":n,"meta":{…}}; `limit` decides `more` without meta.
contact_list_page parse_list_page(const bj::object& body, int limit);
/// The strings of body["tags"].
std::vector<std::string> parse_tags(const bj::object& body);

// ---------------------------------------------------------------------------------------------
// Requests to GHL

/// A custom field to write: {"id": ..., "key"?: ..., "field_value": ...}.
struct custom_field_input {
    std::string id;
    std::optional<std::string> key;
    bj::value value; ///< string, number, string array or file map
};

/// Contact fields to write. Unset members are not sent; names in `clear` are sent as null
/// (only where the DTO allows null). company_name and gender exist only in CreateContactDto
/// and are left out of updates; locationId is never in an update body.
struct contact_write {
    std::optional<std::string> first_name, last_name, name, email, phone, address1, city, state,
        postal_code, website, timezone, source, country, assigned_to, date_of_birth, company_name,
        gender;
    std::optional<bool> dnd;
    std::optional<std::vector<std::string>> tags; ///< replaces all tags
    std::optional<bj::object> dnd_settings, inbound_dnd_settings;
    std::vector<custom_field_input> custom_fields;
    std::vector<std::string> clear; ///< GHL field names to send as null, e.g. "email"
};

/// Reads a contact_write from GHL-named fields ({"firstName":…, "customFields": {id: value} or
/// [{id, value|field_value}]}); a null value means clear. Names no DTO knows go to `ignored`.
contact_write contact_write_from_json(const bj::object& fields,
                                      std::vector<std::string>* ignored = nullptr);

/// CreateContactDto body (locationId added).
bj::object create_contact_body(const contact_write& w, std::string_view location_id);
/// UpdateContactDto body (no locationId, no companyName/gender).
bj::object update_contact_body(const contact_write& w);

struct task_write {
    std::optional<std::string> title, body, due_date, assigned_to;
    std::optional<bool> completed;
};
/// CreateTaskParams: title, dueDate and completed are required (error names the missing one).
boost::system::result<bj::object, std::string> create_task_body(const task_write& w);
/// UpdateTaskBody: every field optional.
bj::object update_task_body(const task_write& w);

struct note_write {
    std::optional<std::string> body, user_id, title, color;
    std::optional<bool> pinned;
};
/// NotesDTO: body is required.
boost::system::result<bj::object, std::string> create_note_body(const note_write& w);
/// UpdateNoteDTO: every field optional.
bj::object update_note_body(const note_write& w);

/// POST /contacts/search body (documented fields only; page and searchAfter exclude each other).
struct search_request {
    int page_limit = 100; ///< 1..500
    std::optional<int> page;
    std::optional<bj::array> search_after;
    bj::array filters; ///< see filter() / range_filter() / filter_group()
    bj::array sort;    ///< see sort_by()
    std::optional<std::string> query;
};
boost::system::result<bj::object, std::string> search_body(const search_request& r,
                                                           std::string_view location_id);

/// {"field":F,"operator":OP,"value":V}; `value` omitted when null (exists / not_exists).
bj::object filter(std::string_view field, std::string_view op, bj::value value = nullptr);
/// {"field":F,"operator":"range","value":{"gte":…,"lte":…}} (each bound optional).
bj::object range_filter(std::string_view field, bj::value gte, bj::value lte = nullptr);
/// {"group":"AND"|"OR","filters":[…]}
bj::object filter_group(std::string_view group, bj::array filters);
/// {"field":F,"direction":"asc"|"desc"}
bj::object sort_by(std::string_view field, bool ascending = true);

/// GET /contacts/ (legacy) query parameters.
struct list_request {
    std::optional<int> limit;                  ///< 1..100 (GHL default 20)
    std::optional<long long> start_after;      ///< meta.startAfter of the previous page
    std::optional<std::string> start_after_id; ///< meta.startAfterId of the previous page
    std::optional<std::string> query;
};

/// GET /contacts/business/:businessId query parameters.
struct business_request {
    std::string business_id;
    std::optional<int> limit;
    std::optional<int> skip;
    std::optional<std::string> query;
};

} // namespace speak4::ghl
