// GHL JSON <-> model: tolerant parsing (unknown, null and wrong-typed fields), the raw object
// kept, the error classification table, duplicate-contact meta, and request bodies that hold
// only the fields of the spec's DTOs (checked against ../shared/ghl-openapi at test time).

#include "core/error.hpp"
#include "core/json.hpp"
#include "ghl/client.hpp"
#include "ghl/error.hpp"
#include "ghl/model.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <fstream>
#include <gtest/gtest.h>
#include <set>
#include <sstream>

using namespace speak4;
using namespace speak4::ghl;
using namespace std::chrono_literals;

namespace {

bj::object obj(std::string_view text) {
    return boost::json::parse(text).as_object();
}

/// The property names of a schema in the official spec.
std::set<std::string> dto_fields(const std::string& schema) {
    static const bj::value spec = [] {
        std::ifstream in(std::string(SPEAK4_SHARED_DIR) + "/ghl-openapi/apps/contacts.json");
        std::stringstream ss;
        ss << in.rdbuf();
        return boost::json::parse(ss.str());
    }();
    std::set<std::string> out;
    const auto& props = spec.at("components").at("schemas").at(schema).at("properties").as_object();
    for (const auto& [k, v] : props)
        out.emplace(k);
    return out;
}

std::set<std::string> keys(const bj::object& o) {
    std::set<std::string> out;
    for (const auto& [k, v] : o)
        out.emplace(k);
    return out;
}

::testing::AssertionResult only_dto_fields(const bj::object& body, const std::string& schema) {
    const auto allowed = dto_fields(schema);
    for (const auto& k : keys(body))
        if (!allowed.count(k))
            return ::testing::AssertionFailure() << k << " is not a field of " << schema;
    return ::testing::AssertionSuccess();
}

} // namespace

// ---------------------------------------------------------------------------------------------
// Parsing

TEST(GhlModel, ContactToleratesUnknownNullAndWrongTypedFields) {
    const auto v = boost::json::parse(R"({
        "id": "ocQHyuzHvysMo5N5VsXc", "locationId": "loc1",
        "firstName": "Ada", "lastName": null, "email": 42, "phone": ["+1"],
        "dnd": "yes", "tags": ["vip", 7, null, "lead"],
        "customFields": [{"id": "cf1", "value": "87"}, {"id": "cf2", "value": ["a","b"]},
                         {"value": "no id"}, "junk", {"id": "cf3", "field_value": 3}],
        "dateAdded": "2021-07-02T05:18:26.704Z", "dateUpdated": 1736471515514,
        "brandNewField": {"nested": true}, "additionalEmails": []
    })");
    auto c = parse_contact(v);
    ASSERT_TRUE(c);
    EXPECT_EQ(c->id, "ocQHyuzHvysMo5N5VsXc");
    EXPECT_EQ(c->location_id, "loc1");
    EXPECT_EQ(c->first_name, "Ada");
    EXPECT_FALSE(c->last_name); // null
    EXPECT_FALSE(c->email);     // wrong type
    EXPECT_FALSE(c->phone);
    EXPECT_FALSE(c->dnd);
    EXPECT_EQ(c->tags, (std::vector<std::string>{"vip", "lead"}));
    ASSERT_EQ(c->custom_fields.size(), 3u);
    EXPECT_EQ(c->custom_fields[0].id, "cf1");
    EXPECT_EQ(c->custom_fields[0].value, bj::value("87"));
    EXPECT_TRUE(c->custom_fields[1].value.is_array());
    EXPECT_EQ(c->custom_fields[2].value, bj::value(3));
    ASSERT_TRUE(c->date_added);
    EXPECT_EQ(format_iso8601(*c->date_added), "2021-07-02T05:18:26.704Z");
    ASSERT_TRUE(c->date_updated);
    EXPECT_EQ(to_epoch_ms(*c->date_updated), 1736471515514);
    // The raw object is kept whole, unknown fields included.
    EXPECT_EQ(bj::value(c->raw), v);
    EXPECT_TRUE(c->raw.contains("brandNewField"));
}

TEST(GhlModel, RecordsWithoutIdAreRejected) {
    EXPECT_FALSE(parse_contact(boost::json::parse(R"({"firstName":"x"})")));
    EXPECT_FALSE(parse_contact(boost::json::parse(R"({"id":""})")));
    EXPECT_FALSE(parse_contact(boost::json::parse(R"({"id":5})")));
    EXPECT_FALSE(parse_contact(boost::json::parse(R"([1,2])")));
    EXPECT_FALSE(parse_task(boost::json::parse("null")));
    EXPECT_FALSE(parse_note(boost::json::parse(R"({"body":"x"})")));
    EXPECT_FALSE(parse_appointment(boost::json::parse(R"("id")")));
}

TEST(GhlModel, TaskNoteAppointment) {
    auto t = parse_task(boost::json::parse(
        R"({"id":"t1","title":"Call","body":null,"dueDate":"2020-10-25T11:00:00Z","completed":true,"contactId":"c1","x":1})"));
    ASSERT_TRUE(t);
    EXPECT_EQ(t->title, "Call");
    EXPECT_FALSE(t->body);
    EXPECT_EQ(t->due_date, "2020-10-25T11:00:00Z");
    ASSERT_TRUE(t->due_at);
    EXPECT_EQ(format_iso8601(*t->due_at), "2020-10-25T11:00:00.000Z");
    EXPECT_EQ(t->completed, true);
    EXPECT_TRUE(t->raw.contains("x"));

    auto n = parse_note(boost::json::parse(
        R"({"id":"n1","body":"hello","userId":"u","pinned":"no","color":"#FFAA00"})"));
    ASSERT_TRUE(n);
    EXPECT_EQ(n->body, "hello");
    EXPECT_FALSE(n->pinned);
    EXPECT_EQ(n->color, "#FFAA00");

    auto a = parse_appointment(boost::json::parse(
        R"({"id":"a1","title":"Demo","startTime":"2021-07-16 11:00:00","endTime":"2023-09-25T16:00:00+05:30","appointmentStatus":"booked","users":["u1"]})"));
    ASSERT_TRUE(a);
    EXPECT_EQ(a->start_time, "2021-07-16 11:00:00");
    ASSERT_TRUE(a->start_at);
    EXPECT_EQ(format_iso8601(*a->start_at), "2021-07-16T11:00:00.000Z");
    ASSERT_TRUE(a->end_at);
    EXPECT_EQ(format_iso8601(*a->end_at), "2023-09-25T10:30:00.000Z");
    EXPECT_EQ(a->appointment_status, "booked");
}

TEST(GhlModel, SearchPage) {
    auto body = obj(R"({"contacts":[
        {"id":"a","searchAfter":[1736471515514,"a"]},
        {"nope":1},
        {"id":"b","searchAfter":[1736471515999,"b"]}],
        "total":57,"traceId":"tr-1"})");
    auto p = parse_search_page(body, 3);
    ASSERT_EQ(p.contacts.size(), 2u);
    EXPECT_EQ(p.skipped, 1);
    EXPECT_EQ(p.total, 57);
    EXPECT_EQ(p.trace_id, "tr-1");
    EXPECT_EQ(bj::value(p.next_search_after), boost::json::parse(R"([1736471515999,"b"])"));
    EXPECT_TRUE(p.more);                           // a full page (3 items came, one was unusable)
    EXPECT_FALSE(parse_search_page(body, 4).more); // a short page ends the walk
    EXPECT_FALSE(parse_search_page(obj(R"({"contacts":[]})"), 10).more);
}

TEST(GhlModel, SearchPageMovedFromTheBodyEqualsTheCopy) {
    // The client hands its parsed body over (parse_search_page(object&&)): every contact must
    // come out exactly as from the copying parser, raw included, member order and all.
    const auto body = obj(R"({"contacts":[
        {"id":"a","firstName":"Ada","tags":["x","y"],"customFields":[{"id":"cf","value":[1,"2"]}],
         "dnd":false,"dateUpdated":"2026-01-02T03:04:05.678Z","searchAfter":[1736471515514,"a"],
         "extra":{"nested":[null,true,1.5]}},
        "not an object",
        {"id":"","searchAfter":[1,""]},
        {"id":"b","email":"b@x.io","searchAfter":[1736471515999,"b"],"zLast":"z"}],
        "total":4,"traceId":"tr-2"})");
    const auto copied = parse_search_page(body, 4);
    bj::object moved_from = body;
    const auto moved = parse_search_page(std::move(moved_from), 4);
    ASSERT_EQ(moved.contacts.size(), 2u);
    ASSERT_EQ(copied.contacts.size(), moved.contacts.size());
    for (std::size_t i = 0; i < moved.contacts.size(); ++i) {
        const auto& c = copied.contacts[i];
        const auto& m = moved.contacts[i];
        EXPECT_EQ(m.id, c.id);
        EXPECT_EQ(m.first_name, c.first_name);
        EXPECT_EQ(m.email, c.email);
        EXPECT_EQ(m.tags, c.tags);
        ASSERT_EQ(m.custom_fields.size(), c.custom_fields.size());
        EXPECT_EQ(m.dnd, c.dnd);
        EXPECT_EQ(m.date_updated, c.date_updated);
        EXPECT_EQ(bj::value(m.search_after), bj::value(c.search_after));
        EXPECT_EQ(bj::serialize(m.raw), bj::serialize(c.raw)); // same members in the same order
        EXPECT_EQ(bj::serialize(m.raw),
                  bj::serialize(body.at("contacts").at(i == 0 ? 0 : 3).as_object()));
    }
    EXPECT_EQ(moved.skipped, 2);
    EXPECT_EQ(copied.skipped, 2);
    EXPECT_EQ(moved.total, 4);
    EXPECT_EQ(moved.trace_id, "tr-2");
    EXPECT_EQ(bj::value(moved.next_search_after), bj::value(copied.next_search_after));
    EXPECT_TRUE(moved.more);
    EXPECT_EQ(moved.more, copied.more);
}

TEST(GhlModel, LegacyListPage) {
    auto p = parse_list_page(obj(R"({"contacts":[{"id":"a"},{"id":"b"}],"count":2,
        "meta":{"total":50,"nextPageUrl":"http://x/contacts/?startAfter=1&startAfterId=b",
                "startAfterId":"b","startAfter":1631087949919,"currentPage":1,"nextPage":2,"prevPage":null}})"),
                             2);
    EXPECT_TRUE(p.more);
    EXPECT_EQ(p.total, 50);
    EXPECT_EQ(p.next_start_after, 1631087949919);
    EXPECT_EQ(p.next_start_after_id, "b");

    // nextPageUrl null ends it, even on a full page.
    p = parse_list_page(obj(R"({"contacts":[{"id":"a"}],"meta":{"nextPageUrl":null}})"), 1);
    EXPECT_FALSE(p.more);

    // Without meta: a full page means more; the cursor comes from the last contact.
    p = parse_list_page(
        obj(R"({"contacts":[{"id":"a"},{"id":"b","dateAdded":"2021-09-08T08:19:09.919Z"}],"count":2})"),
        2);
    EXPECT_TRUE(p.more);
    EXPECT_EQ(p.next_start_after_id, "b");
    EXPECT_EQ(p.next_start_after, 1631089149919);
}

TEST(GhlModel, Tags) {
    EXPECT_EQ(parse_tags(obj(R"({"tags":["a",1,"b"]})")), (std::vector<std::string>{"a", "b"}));
    EXPECT_TRUE(parse_tags(obj(R"({"tags":null})")).empty());
}

// ---------------------------------------------------------------------------------------------
// Error classification

TEST(GhlModel, ClassificationTable) {
    struct row {
        int status;
        const char* body;
        error_kind kind;
        const char* message;
    };
    const row rows[] = {
        {401,
         R"({"statusCode":401,"message":"Invalid token: access token is invalid","error":"Unauthorized"})",
         error_kind::auth, "Invalid token: access token is invalid"},
        {429, R"({"statusCode":429,"message":"Too many requests"})", error_kind::retryable,
         "Too many requests"},
        {429, "", error_kind::retryable, "Too Many Requests"},
        {500, "<html>oops</html>", error_kind::retryable, "Internal Server Error"},
        {502, "", error_kind::retryable, "Bad Gateway"},
        {503, R"({"detail":"maintenance"})", error_kind::retryable, "maintenance"},
        {408, "", error_kind::retryable, "Request Timeout"},
        {400, R"({"statusCode":400,"message":"Bad Request"})", error_kind::permanent,
         "Bad Request"},
        {422,
         R"({"statusCode":422,"message":["property locationId should not exist","email must be an email"],"error":"Unprocessable Entity"})",
         error_kind::permanent, "property locationId should not exist, email must be an email"},
        {403, R"({"error":"Forbidden"})", error_kind::permanent, "Forbidden"},
        {404, "", error_kind::not_found, "Not Found"},
        {400, R"({"statusCode":400,"message":"Contact with id abc not found"})",
         error_kind::not_found, "Contact with id abc not found"},
        {400,
         R"({"statusCode":400,"message":"This location does not allow duplicated contacts.","meta":{"contactId":"dup123","contactName":"Ada L","matchingField":"email"}})",
         error_kind::duplicate_contact, "This location does not allow duplicated contacts."},
        {400,
         R"({"statusCode":400,"message":"This location does not allow duplicated contacts.","meta":{}})",
         error_kind::permanent, "This location does not allow duplicated contacts."},
        {302, "", error_kind::bad_response, "unexpected status"},
    };
    for (const auto& r : rows) {
        SCOPED_TRACE(std::to_string(r.status) + " " + r.body);
        auto e = classify_status("PUT /contacts/:contactId", r.status, r.body);
        EXPECT_EQ(e.kind, r.kind);
        EXPECT_EQ(e.status, r.status);
        EXPECT_EQ(e.message, r.message);
        EXPECT_EQ(e.operation, "PUT /contacts/:contactId");
        EXPECT_EQ(e.what().rfind("PUT /contacts/:contactId: " + std::to_string(r.status), 0), 0u)
            << e.what();
        // 4xx bodies are kept for the dead-letter queue; others are not.
        EXPECT_EQ(!e.body.empty(), r.status >= 400 && r.status < 500 && r.status != 401 &&
                                       r.status != 408 && r.status != 429 && *r.body != '\0');
    }
}

TEST(GhlModel, ErrorTextNamesOperationAndStatus) {
    auto e = classify_status("PUT /contacts/:contactId", 429, "", 30s);
    EXPECT_EQ(e.what(), "PUT /contacts/:contactId: 429: Too Many Requests");
    EXPECT_EQ(e.retry_after, std::optional(std::chrono::milliseconds(30s)));
    EXPECT_TRUE(e.transient());
    EXPECT_FALSE(e.may_have_been_applied());
    EXPECT_TRUE(classify_status("x", 500, "").may_have_been_applied());
    EXPECT_FALSE(classify_status("x", 400, "").transient());
}

TEST(GhlModel, DuplicateContactMeta) {
    auto e = classify_status(
        "POST /contacts/", 400,
        R"({"statusCode":400,"message":"This location does not allow duplicated contacts.","meta":{"contactId":"dup123","contactName":"Ada L","matchingField":"phone"},"traceId":"t-9"})");
    ASSERT_EQ(e.kind, error_kind::duplicate_contact);
    ASSERT_TRUE(e.duplicate);
    EXPECT_EQ(e.duplicate->contact_id, "dup123");
    EXPECT_EQ(e.duplicate->matching_field, "phone");
    EXPECT_EQ(e.duplicate->contact_name, "Ada L");
    EXPECT_EQ(e.trace_id, "t-9");
}

TEST(GhlModel, TransportErrorsKeepNeverSentApartFromOutcomeUnknown) {
    using boost::asio::error::connection_refused;
    using boost::asio::error::connection_reset;
    const auto op = "POST /contacts/";
    struct row {
        transport_error t;
        error_kind kind = error_kind::never_sent;
        const char* what = "";
    };
    const row rows[] = {
        {{io_step::resolve, boost::asio::error::host_not_found},
         error_kind::never_sent,
         "POST /contacts/: resolve: "},
        {{io_step::connect, connection_refused},
         error_kind::never_sent,
         "POST /contacts/: connect: "},
        {{io_step::handshake, connection_reset},
         error_kind::never_sent,
         "POST /contacts/: handshake: "},
        {{io_step::write, connection_reset, false},
         error_kind::never_sent,
         "POST /contacts/: write: "},
        {{io_step::write, connection_reset, true},
         error_kind::outcome_unknown,
         "POST /contacts/: write: "},
        {{io_step::read, connection_reset, true},
         error_kind::outcome_unknown,
         "POST /contacts/: read: "},
        {{io_step::read, boost::asio::error::eof, true, true, true},
         error_kind::bad_response,
         "POST /contacts/: read: malformed"},
    };
    for (const auto& r : rows) {
        auto e = error_from_transport(r.t, op);
        EXPECT_EQ(e.kind, r.kind) << e.what();
        EXPECT_EQ(e.what().rfind(r.what, 0), 0u) << e.what();
        EXPECT_EQ(e.step, std::string(to_string(r.t.step)));
    }
    auto unknown = error_from_transport({io_step::read, connection_reset, true}, op);
    EXPECT_NE(unknown.what().find("outcome unknown"), std::string::npos);
    EXPECT_TRUE(unknown.may_have_been_applied());
    auto never = error_from_transport({io_step::connect, connection_refused}, op);
    EXPECT_NE(never.what().find("not sent"), std::string::npos);
    EXPECT_FALSE(never.may_have_been_applied());
}

TEST(GhlModel, MessageFromBodyLikeTheSdk) {
    EXPECT_EQ(message_from_body(R"({"message":["a","b"]})"), "a, b");
    EXPECT_EQ(message_from_body(R"({"message":"m","error":"e"})"), "m");
    EXPECT_EQ(message_from_body(R"({"error":"e","detail":"d"})"), "e");
    EXPECT_EQ(message_from_body(R"({"detail":"d"})"), "d");
    EXPECT_EQ(message_from_body("not json"), "");
}

TEST(GhlModel, RetryAfterValues) {
    const auto now = *parse_iso8601("2015-10-21T07:27:00Z");
    EXPECT_EQ(parse_retry_after("30", now), std::optional(std::chrono::milliseconds(30s)));
    EXPECT_EQ(parse_retry_after(" 0 ", now), std::optional(std::chrono::milliseconds(0)));
    EXPECT_EQ(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
              std::optional(std::chrono::milliseconds(60s)));
    EXPECT_EQ(parse_retry_after("Wed, 21 Oct 2015 07:20:00 GMT", now),
              std::optional(std::chrono::milliseconds(0))); // in the past
    EXPECT_FALSE(parse_retry_after("soon", now));
    EXPECT_FALSE(parse_retry_after("-5", now));
    EXPECT_FALSE(parse_retry_after("", now));
}

// ---------------------------------------------------------------------------------------------
// Request bodies

TEST(GhlModel, CreateContactBodyHasOnlyCreateContactDtoFields) {
    contact_write w;
    w.first_name = "Ada";
    w.email = "ada@example.com";
    w.phone = "+15551234567";
    w.company_name = "Analytical";
    w.gender = "female";
    w.country = "GB";
    w.dnd = false;
    w.tags = std::vector<std::string>{"vip"};
    w.custom_fields.push_back({"Jx8aX2kWq0oHvZ3uLw1d", std::nullopt, "87"});
    w.dnd_settings = obj(R"({"Email":{"status":"active"}})");
    w.clear = {"lastName", "country", "notAField"};
    auto b = create_contact_body(w, "loc1");
    EXPECT_TRUE(only_dto_fields(b, "CreateContactDto"));
    EXPECT_EQ(b.at("locationId"), "loc1");
    EXPECT_EQ(b.at("companyName"), "Analytical");
    EXPECT_TRUE(b.at("lastName").is_null()); // nullable in the DTO: cleared
    EXPECT_EQ(b.at("country"), "GB");        // a value wins over clear
    EXPECT_EQ(bj::value(b.at("customFields")),
              boost::json::parse(R"([{"id":"Jx8aX2kWq0oHvZ3uLw1d","field_value":"87"}])"));
    for (const auto& f : b.at("customFields").as_array())
        EXPECT_TRUE(only_dto_fields(f.as_object(), "TextField"));
}

TEST(GhlModel, UpdateContactBodyHasNoLocationId) {
    contact_write w;
    w.first_name = "Ada";
    w.company_name = "dropped"; // not in UpdateContactDto
    w.gender = "dropped";
    w.source = "speak4";
    w.clear = {"email", "postalCode", "assignedTo", "companyName"};
    auto b = update_contact_body(w);
    EXPECT_TRUE(only_dto_fields(b, "UpdateContactDto"));
    EXPECT_FALSE(b.contains("locationId"));
    EXPECT_FALSE(b.contains("companyName"));
    EXPECT_FALSE(b.contains("gender"));
    EXPECT_FALSE(b.contains("postalCode")); // not nullable: clear is ignored
    EXPECT_TRUE(b.at("email").is_null());
    EXPECT_TRUE(b.at("assignedTo").is_null());
    EXPECT_EQ(keys(b), (std::set<std::string>{"firstName", "source", "email", "assignedTo"}));
}

TEST(GhlModel, ContactWriteFromGhlNamedJson) {
    std::vector<std::string> ignored;
    auto w = contact_write_from_json(obj(R"({"firstName":"Ada","email":null,"phone":15551234567,
        "tags":["a","b"],"dnd":true,"customFields":{"cf1":"87","cf2":["x"]},
        "speak4_id":"s4-42","locationId":"evil","dndSettings":{"SMS":{"status":"inactive"}}})"),
                                     &ignored);
    EXPECT_EQ(w.first_name, "Ada");
    EXPECT_EQ(w.clear, (std::vector<std::string>{"email"}));
    EXPECT_EQ(w.phone, "15551234567");
    EXPECT_EQ(w.tags, (std::vector<std::string>{"a", "b"}));
    EXPECT_EQ(w.dnd, true);
    ASSERT_EQ(w.custom_fields.size(), 2u);
    EXPECT_EQ(w.custom_fields[0].id, "cf1");
    EXPECT_EQ(w.custom_fields[1].value, boost::json::parse(R"(["x"])"));
    EXPECT_EQ(std::set<std::string>(ignored.begin(), ignored.end()),
              (std::set<std::string>{"speak4_id", "locationId"}));
    auto b = update_contact_body(w);
    EXPECT_TRUE(only_dto_fields(b, "UpdateContactDto"));
    EXPECT_FALSE(b.contains("locationId"));

    // The array form of customFields, with either value name.
    w = contact_write_from_json(obj(
        R"({"customFields":[{"id":"a","field_value":1},{"id":"b","value":"v","key":"k"},{"x":1}]})"));
    ASSERT_EQ(w.custom_fields.size(), 2u);
    EXPECT_EQ(w.custom_fields[0].value, bj::value(1));
    EXPECT_EQ(w.custom_fields[1].key, "k");
}

TEST(GhlModel, TaskBodies) {
    task_write w;
    w.title = "Send demo link";
    auto missing = create_task_body(w);
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error(), "dueDate is required");
    w.due_date = "2026-12-01T15:00:00Z";
    w.assigned_to = "u1";
    auto b = create_task_body(w);
    ASSERT_TRUE(b);
    EXPECT_TRUE(only_dto_fields(*b, "CreateTaskParams"));
    EXPECT_EQ(b->at("completed"), false); // required by the DTO
    task_write u;
    u.completed = true;
    auto ub = update_task_body(u);
    EXPECT_TRUE(only_dto_fields(ub, "UpdateTaskBody"));
    EXPECT_EQ(keys(ub), (std::set<std::string>{"completed"}));
    bj::object status;
    status["completed"] = true;
    EXPECT_TRUE(only_dto_fields(status, "UpdateTaskStatusParams"));
}

TEST(GhlModel, NoteBodies) {
    note_write w;
    EXPECT_FALSE(create_note_body(w));
    w.body = "Called, wants a demo";
    w.title = "Call";
    w.pinned = true;
    auto b = create_note_body(w);
    ASSERT_TRUE(b);
    EXPECT_TRUE(only_dto_fields(*b, "NotesDTO"));
    EXPECT_TRUE(only_dto_fields(update_note_body(w), "UpdateNoteDTO"));
    bj::object tags;
    tags["tags"] = bj::array{"a"};
    EXPECT_TRUE(only_dto_fields(tags, "TagsDTO"));
}

TEST(GhlModel, SearchBody) {
    search_request r;
    r.page_limit = 100;
    r.filters.emplace_back(range_filter("dateUpdated", "2026-01-01T00:00:00.000Z"));
    r.filters.emplace_back(
        filter_group("OR", {filter("email", "exists"), filter("phone", "eq", "+1")}));
    r.sort.emplace_back(sort_by("dateUpdated"));
    r.search_after = boost::json::parse(R"([1736471515514,"VU1SPQwBqbfa1z9MyaDl"])").as_array();
    auto b = search_body(r, "loc1");
    ASSERT_TRUE(b);
    EXPECT_EQ(bj::value(*b), boost::json::parse(R"({"locationId":"loc1","pageLimit":100,
        "searchAfter":[1736471515514,"VU1SPQwBqbfa1z9MyaDl"],
        "filters":[{"field":"dateUpdated","operator":"range","value":{"gte":"2026-01-01T00:00:00.000Z"}},
                   {"group":"OR","filters":[{"field":"email","operator":"exists"},
                                            {"field":"phone","operator":"eq","value":"+1"}]}],
        "sort":[{"field":"dateUpdated","direction":"asc"}]})"));
    r.page = 2;
    EXPECT_FALSE(search_body(r, "loc1"));
    r.search_after.reset();
    EXPECT_TRUE(search_body(r, "loc1"));
    r.page_limit = 501;
    EXPECT_FALSE(search_body(r, "loc1"));
}

TEST(GhlModel, UrlAndFormEncoding) {
    EXPECT_EQ(url_encode("+1 555-123"), "%2B1%20555-123");
    EXPECT_EQ(url_encode("ada+x@example.com"), "ada%2Bx%40example.com");
    EXPECT_EQ(url_encode("a/b?c&d=e"), "a%2Fb%3Fc%26d%3De");
    EXPECT_EQ(form_encode({{"grant_type", "refresh_token"}, {"refresh_token", "a+b/c="}}),
              "grant_type=refresh_token&refresh_token=a%2Bb%2Fc%3D");
}

TEST(GhlModel, LoopbackHosts) {
    EXPECT_TRUE(is_loopback_host("localhost"));
    EXPECT_TRUE(is_loopback_host("127.0.0.1"));
    EXPECT_TRUE(is_loopback_host("127.8.9.10"));
    EXPECT_TRUE(is_loopback_host("[::1]"));
    EXPECT_FALSE(is_loopback_host("10.0.0.1"));
    EXPECT_FALSE(is_loopback_host("localhost.example.com"));
    EXPECT_FALSE(is_loopback_host("services.leadconnectorhq.com"));
}

TEST(GhlModel, PlainHttpOnlyForLoopback) {
    boost::asio::io_context io;
    auto make = [&](std::string url) {
        http_options o;
        o.base_url = std::move(url);
        o.use_system_cas = false;
        http_client c(io.get_executor(), o);
        return c.tls();
    };
    EXPECT_FALSE(make("http://127.0.0.1:8080"));
    EXPECT_FALSE(make("http://localhost:1/prefix/"));
    EXPECT_TRUE(make("https://services.leadconnectorhq.com"));
    EXPECT_THROW(make("http://services.leadconnectorhq.com"), config_error);
    EXPECT_THROW(make("ftp://x"), config_error);
    EXPECT_THROW(make("https://"), config_error);
    EXPECT_THROW(make("https://host:99999"), config_error);
    EXPECT_THROW(make("https://user:pw@host"), config_error);
}

// Regression (fuzz_ghl_model; input in tests/fuzz/regressions/fuzz_ghl_model/): a number out of
// long long's range where GHL sends epoch milliseconds was converted anyway, which is undefined
// behaviour. It reads as absent, like any other unusable value.
TEST(GhlModel, NumbersOutOfIntegerRangeReadAsAbsent) {
    const auto c = parse_contact(boost::json::parse(R"({"id":"c","dateAdded":7e75,
                                                        "dateUpdated":-1e19})"));
    ASSERT_TRUE(c);
    EXPECT_FALSE(c->date_added);
    EXPECT_FALSE(c->date_updated);
    const auto o = obj(R"({"two63":9223372036854775808.0,"below":9223372036854774784.0,
                           "min":-9223372036854775808.0,"frac":1.5,"whole":1736471515514.0})");
    EXPECT_FALSE(json::get_int(o, "two63"));
    EXPECT_EQ(json::get_int(o, "below"), 9223372036854774784LL);
    EXPECT_EQ(json::get_int(o, "min"), -9223372036854775807LL - 1);
    EXPECT_FALSE(json::get_int(o, "frac"));
    EXPECT_EQ(json::get_int(o, "whole"), 1736471515514LL);
}
