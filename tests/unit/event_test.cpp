// Speak4 events (DESIGN §3): every way an event can be wrong, and what a good one parses into.

#include "sync/event.hpp"

#include <algorithm>
#include <boost/json/serialize.hpp>
#include <fstream>
#include <gtest/gtest.h>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace speak4::sync {
namespace {

namespace bj = boost::json;

constexpr const char* custom_id = "Jx8aX2kWq0oHvZ3uLw1d";

/// The field map of conf/speak4-sync.toml, plus one entry that maps to nothing GHL knows.
const field_map& test_map() {
    static const field_map map{{"mobile", "phone"},
                               {"lead_score", std::string("customFields.") + custom_id},
                               {"fax", "faxNumber"},
                               {"labels", "tags"}};
    return map;
}

std::string describe(const boost::system::result<event, validation_error>& r) {
    if (r)
        return "parsed";
    return "field=\"" + r.error().field + "\" message=\"" + r.error().message + "\"";
}

event parse_ok(std::string_view text, const field_map& map = test_map()) {
    auto r = parse_event(text, map);
    EXPECT_TRUE(r.has_value()) << describe(r) << "\n  event: " << text;
    if (!r)
        return {};
    return std::move(*r);
}

std::string repeat(std::string_view s, std::size_t n) {
    std::string out;
    out.reserve(s.size() * n);
    for (std::size_t i = 0; i < n; ++i)
        out += s;
    return out;
}

std::string tag_list(std::size_t n) {
    std::string out;
    for (std::size_t i = 0; i < n; ++i)
        out += (i ? ",\"t" : "\"t") + std::to_string(i) + "\"";
    return out;
}

std::string note_list(std::size_t n) {
    std::string out;
    for (std::size_t i = 0; i < n; ++i)
        out += (i ? "," : "") + std::string(R"({"speak4_id":"n-)") + std::to_string(i) +
               R"(","body":"b"})";
    return out;
}

// ---------------------------------------------------------------------------------------------
// Bad events: each names the exact field and says why.

struct bad_case {
    std::string name;
    std::string json;
    std::string field;
    std::string message; // a substring of the message
};

std::ostream& operator<<(std::ostream& os, const bad_case& c) {
    return os << c.name;
}

std::vector<bad_case> bad_cases() {
    const std::string oversize = R"({"type":"contact.updated","contact":{"speak4_id":"s4-1",)"
                                 R"("firstName":")" +
                                 std::string(256 * 1024, 'a') + R"("}})";
    const std::string too_deep =
        R"({"type":"contact.updated","contact":{"speak4_id":"s4-1","customFields":{"x":)" +
        repeat("[", 20) + repeat("]", 20) + "}}}";
    const std::string id129(129, 'i');
    const std::string name300(300, 'n');
    const std::string tag129(129, 't');

    return {
        // The document.
        {"not_json", R"({"type":)", "", "event is not valid JSON at offset"},
        {"empty_text", "", "", "event is not valid JSON"},
        {"trailing_garbage", R"({"type":"contact.opened","contact":{"speak4_id":"s4-1"}} x)", "",
         "extra data after the value"},
        {"two_documents",
         R"({"type":"contact.opened","contact":{"speak4_id":"s4-1"}}{"type":"contact.opened"})", "",
         "event is not valid JSON"},
        {"invalid_utf8", "{\"type\":\"contact.opened\",\"contact\":{\"speak4_id\":\"\xff\"}}", "",
         "event is not valid JSON"},
        {"array_document", R"([{"type":"contact.opened"}])", "", "event must be a JSON object"},
        {"string_document", R"("contact.opened")", "", "event must be a JSON object"},
        {"null_document", "null", "", "event must be a JSON object"},
        {"oversize", oversize, "", "event is larger than 262144 bytes"},
        {"too_deep", too_deep, "", "nesting deeper than 16"},

        // type and the top-level keys.
        {"missing_type", R"({"contact":{"speak4_id":"s4-1"}})", "type", "type is required"},
        {"type_not_string", R"({"type":7,"contact":{"speak4_id":"s4-1"}})", "type",
         "type must be a string"},
        {"unknown_type", R"({"type":"contact.create","contact":{"speak4_id":"s4-1"}})", "type",
         "is not a known event type"},
        {"unknown_top_key", R"({"type":"contact.opened","contact":{"speak4_id":"s4-1"},"foo":1})",
         "foo", "foo is not a known field"},
        {"task_in_contact_created",
         R"({"type":"contact.created","contact":{"speak4_id":"s4-1"},"task":{}})", "task",
         "task is not a known field for contact.created"},
        {"notes_in_contact_deleted",
         R"({"type":"contact.deleted","contact":{"speak4_id":"s4-1"},"notes":[]})", "notes",
         "notes is not a known field for contact.deleted"},
        {"tags_in_task_created",
         R"({"type":"task.created","contact":{"speak4_id":"s4-1"},"tags":["a"],)"
         R"("task":{"speak4_id":"t-1","title":"x","dueDate":"2026-12-01"}})",
         "tags", "tags is not a known field for task.created"},
        {"pull_in_contact_created",
         R"({"type":"contact.created","contact":{"speak4_id":"s4-1"},"pull":true})", "pull",
         "pull is not a known field for contact.created"},
        {"pull_not_bool", R"({"type":"contact.updated","contact":{"speak4_id":"s4-1"},"pull":1})",
         "pull", "pull must be true or false"},
        {"event_id_empty",
         R"({"type":"contact.opened","event_id":"","contact":{"speak4_id":"s4-1"}})", "event_id",
         "event_id must not be empty"},
        {"event_id_number",
         R"({"type":"contact.opened","event_id":42,"contact":{"speak4_id":"s4-1"}})", "event_id",
         "event_id must be a string"},
        {"event_id_too_long",
         R"({"type":"contact.opened","event_id":")" + id129 + R"(","contact":{"speak4_id":"s"}})",
         "event_id", "event_id is longer than 128 characters"},

        // contact: presence and ids.
        {"contact_missing", R"({"type":"contact.deleted"})", "contact", "contact is required"},
        {"contact_not_object", R"({"type":"contact.deleted","contact":"s4-1"})", "contact",
         "contact must be an object"},
        {"contact_without_ids", R"({"type":"contact.opened","contact":{}})", "contact",
         "contact needs speak4_id or ghl_id"},
        {"created_without_speak4_id",
         R"({"type":"contact.created","contact":{"ghl_id":"abc","firstName":"Ada"}})",
         "contact.speak4_id", "contact.speak4_id is required"},
        {"speak4_id_number", R"({"type":"contact.opened","contact":{"speak4_id":42}})",
         "contact.speak4_id", "contact.speak4_id must be a string"},
        {"speak4_id_empty", R"({"type":"contact.opened","contact":{"speak4_id":""}})",
         "contact.speak4_id", "contact.speak4_id must not be empty"},
        {"ghl_id_null", R"({"type":"contact.opened","contact":{"ghl_id":null}})", "contact.ghl_id",
         "contact.ghl_id must be a string"},
        {"ghl_id_control_char", R"({"type":"contact.opened","contact":{"ghl_id":"ab\u0001c"}})",
         "contact.ghl_id", "contains a control character"},
        {"ghl_id_too_long", R"({"type":"contact.opened","contact":{"ghl_id":")" + id129 + R"("}})",
         "contact.ghl_id", "longer than 128 characters"},

        // contact fields.
        {"unknown_contact_field",
         R"({"type":"contact.created","contact":{"speak4_id":"s4-1","foo":"bar"}})", "contact.foo",
         "contact.foo is not a known contact field"},
        {"field_in_contact_deleted",
         R"({"type":"contact.deleted","contact":{"speak4_id":"s4-1","firstName":"Ada"}})",
         "contact.firstName", "contact.firstName is not a known field for contact.deleted"},
        {"field_in_contact_tagged",
         R"({"type":"contact.tagged","contact":{"speak4_id":"s4-1","tags":["a"]},"tags":["b"]})",
         "contact.tags", "contact.tags is not a known field for contact.tagged"},
        {"field_in_task_contact",
         R"({"type":"task.deleted","contact":{"speak4_id":"s4-1","email":"a@b.co"},)"
         R"("task":{"speak4_id":"t-1"}})",
         "contact.email", "contact.email is not a known field for task.deleted"},
        {"first_name_number",
         R"({"type":"contact.updated","contact":{"speak4_id":"s4-1","firstName":1}})",
         "contact.firstName", "contact.firstName must be a string"},
        {"first_name_too_long",
         R"({"type":"contact.updated","contact":{"speak4_id":"s4-1","firstName":")" + name300 +
             R"("}})",
         "contact.firstName", "contact.firstName is longer than 256 characters"},
        {"last_name_newline",
         R"({"type":"contact.updated","contact":{"speak4_id":"s4-1","lastName":"a\nb"}})",
         "contact.lastName", "contains a control character"},
        {"email_without_dot",
         R"({"type":"contact.updated","contact":{"speak4_id":"s4-1","email":"ada@example"}})",
         "contact.email", "contact.email is not an email"},
        {"email_two_at",
         R"({"type":"contact.updated","contact":{"speak4_id":"s4-1","email":"a@b@example.com"}})",
         "contact.email", "contact.email is not an email"},
        {"email_space",
         R"({"type":"contact.updated","contact":{"speak4_id":"s4-1","email":"ada l@example.com"}})",
         "contact.email", "contact.email is not an email"},
        {"email_empty_local",
         R"({"type":"contact.updated","contact":{"speak4_id":"s4-1","email":"@example.com"}})",
         "contact.email", "contact.email is not an email"},
        {"email_number", R"({"type":"contact.updated","contact":{"speak4_id":"s4-1","email":5}})",
         "contact.email", "contact.email must be a string"},
        {"phone_words",
         R"({"type":"contact.updated","contact":{"speak4_id":"s4-1","phone":"call me"}})",
         "contact.phone", "contact.phone is not a phone number"},
        {"phone_too_short",
         R"({"type":"contact.updated","contact":{"speak4_id":"s4-1","phone":"12345"}})",
         "contact.phone", "contact.phone is not a phone number"},
        {"phone_too_long",
         R"({"type":"contact.updated","contact":{"speak4_id":"s4-1","phone":"+123456789012345678901"}})",
         "contact.phone", "contact.phone is not a phone number"},
        {"phone_number_type",
         R"({"type":"contact.updated","contact":{"speak4_id":"s4-1","phone":15551234567}})",
         "contact.phone", "contact.phone must be a string"},
        {"country_three_letters",
         R"({"type":"contact.updated","contact":{"speak4_id":"s4-1","country":"USA"}})",
         "contact.country", "contact.country is not a 2-letter country code"},
        {"date_of_birth_month_13",
         R"({"type":"contact.updated","contact":{"speak4_id":"s4-1","dateOfBirth":"1815-13-10"}})",
         "contact.dateOfBirth", "contact.dateOfBirth is not a date"},
        {"date_of_birth_words",
         R"({"type":"contact.updated","contact":{"speak4_id":"s4-1","dateOfBirth":"10 Dec 1815"}})",
         "contact.dateOfBirth", "contact.dateOfBirth is not a date"},
        {"date_of_birth_mixed_separators",
         R"({"type":"contact.updated","contact":{"speak4_id":"s4-1","dateOfBirth":"1815-12/10"}})",
         "contact.dateOfBirth", "contact.dateOfBirth is not a date"},
        {"dnd_string", R"({"type":"contact.updated","contact":{"speak4_id":"s4-1","dnd":"yes"}})",
         "contact.dnd", "contact.dnd must be true or false"},
        {"contact_tags_string",
         R"({"type":"contact.updated","contact":{"speak4_id":"s4-1","tags":"vip"}})",
         "contact.tags", "contact.tags must be an array"},
        {"contact_tag_empty",
         R"({"type":"contact.updated","contact":{"speak4_id":"s4-1","tags":["vip",""]}})",
         "contact.tags[1]", "contact.tags[1] must not be empty"},
        {"contact_tag_number",
         R"({"type":"contact.updated","contact":{"speak4_id":"s4-1","tags":[1]}})",
         "contact.tags[0]", "contact.tags[0] must be a string"},
        {"contact_too_many_tags",
         R"({"type":"contact.updated","contact":{"speak4_id":"s4-1","tags":[)" + tag_list(101) +
             "]}}",
         "contact.tags", "contact.tags has more than 100 tags"},
        {"custom_fields_array",
         R"({"type":"contact.updated","contact":{"speak4_id":"s4-1","customFields":["a"]}})",
         "contact.customFields", "contact.customFields must be an object"},
        {"custom_field_bool",
         R"({"type":"contact.updated","contact":{"speak4_id":"s4-1","customFields":{"abc":true}}})",
         "contact.customFields.abc",
         "contact.customFields.abc must be a string, number, array of strings or null"},
        {"custom_field_object",
         R"({"type":"contact.updated","contact":{"speak4_id":"s4-1","customFields":{"abc":{}}}})",
         "contact.customFields.abc", "must be a string, number, array of strings or null"},
        {"custom_field_array_of_numbers",
         R"({"type":"contact.updated","contact":{"speak4_id":"s4-1","customFields":{"abc":["a",1]}}})",
         "contact.customFields.abc[1]", "contact.customFields.abc[1] must be a string"},
        {"custom_field_empty_id",
         R"({"type":"contact.updated","contact":{"speak4_id":"s4-1","customFields":{"":"x"}}})",
         "contact.customFields.", "is not a valid custom field id"},
        {"contact_updated_nothing", R"({"type":"contact.updated","contact":{"speak4_id":"s4-1"}})",
         "contact", "contact has nothing to change"},

        // field_map.
        {"mapped_phone_bad",
         R"({"type":"contact.updated","contact":{"speak4_id":"s4-1","mobile":"abc"}})",
         "contact.mobile", "contact.mobile is not a phone number"},
        {"mapped_conflict",
         R"({"type":"contact.updated","contact":{"speak4_id":"s4-1","phone":"+15551234567",)"
         R"("mobile":"+15557654321"}})",
         "contact.mobile", "contact.mobile sets the same field as contact.phone"},
        {"mapped_custom_conflict",
         R"({"type":"contact.updated","contact":{"speak4_id":"s4-1","lead_score":5,)"
         R"("customFields":{"Jx8aX2kWq0oHvZ3uLw1d":"6"}}})",
         "contact.customFields.Jx8aX2kWq0oHvZ3uLw1d", "sets the same field as contact.lead_score"},
        {"mapped_custom_bool",
         R"({"type":"contact.updated","contact":{"speak4_id":"s4-1","lead_score":true}})",
         "contact.lead_score", "contact.lead_score must be a string, number"},
        {"mapped_to_unknown_field",
         R"({"type":"contact.updated","contact":{"speak4_id":"s4-1","fax":"123"}})", "contact.fax",
         "contact.fax maps to faxNumber, which is not a known contact field"},

        // lead.created.
        {"lead_without_email_or_phone",
         R"({"type":"lead.created","contact":{"speak4_id":"s4-3","firstName":"Kat"}})",
         "contact.email", "lead.created needs contact.email or contact.phone"},
        {"lead_with_null_email",
         R"({"type":"lead.created","contact":{"speak4_id":"s4-3","email":null}})", "contact.email",
         "lead.created needs contact.email or contact.phone"},
        {"lead_without_speak4_id", R"({"type":"lead.created","contact":{"email":"k@example.com"}})",
         "contact.speak4_id", "contact.speak4_id is required"},
        {"lead_bad_email",
         R"({"type":"lead.created","contact":{"speak4_id":"s4-3","email":"katherine"}})",
         "contact.email", "contact.email is not an email"},

        // Attached notes.
        {"notes_not_array",
         R"({"type":"contact.created","contact":{"speak4_id":"s4-1"},"notes":{"body":"x"}})",
         "notes", "notes must be an array"},
        {"notes_entry_not_object",
         R"({"type":"contact.created","contact":{"speak4_id":"s4-1"},"notes":["x"]})", "notes[0]",
         "notes[0] must be an object"},
        {"notes_entry_without_body",
         R"({"type":"contact.created","contact":{"speak4_id":"s4-1"},)"
         R"("notes":[{"speak4_id":"n-1","body":"a"},{"speak4_id":"n-2"}]})",
         "notes[1].body", "notes[1].body is required"},
        {"notes_entry_without_speak4_id",
         R"({"type":"contact.updated","contact":{"speak4_id":"s4-1"},"notes":[{"body":"a"}]})",
         "notes[0].speak4_id", "notes[0].speak4_id is required"},
        {"notes_entry_empty_body",
         R"({"type":"contact.created","contact":{"speak4_id":"s4-1"},)"
         R"("notes":[{"speak4_id":"n-1","body":""}]})",
         "notes[0].body", "notes[0].body must not be empty"},
        {"notes_entry_unknown_field",
         R"({"type":"contact.created","contact":{"speak4_id":"s4-1"},)"
         R"("notes":[{"speak4_id":"n-1","body":"a","color":"#FFAA00"}]})",
         "notes[0].color", "notes[0].color is not a known note field"},
        {"notes_entry_repeated_id",
         R"({"type":"contact.created","contact":{"speak4_id":"s4-1"},)"
         R"("notes":[{"speak4_id":"n-1","body":"a"},{"speak4_id":"n-1","body":"b"}]})",
         "notes[1].speak4_id", "notes[1].speak4_id repeats notes[0].speak4_id"},
        {"too_many_notes",
         R"({"type":"contact.created","contact":{"speak4_id":"s4-1"},"notes":[)" + note_list(101) +
             "]}",
         "notes", "notes has more than 100 notes"},

        // note.*
        {"note_created_without_note", R"({"type":"note.created","contact":{"speak4_id":"s4-1"}})",
         "note", "note is required"},
        {"note_not_object",
         R"({"type":"note.created","contact":{"speak4_id":"s4-1"},"note":"Called"})", "note",
         "note must be an object"},
        {"note_created_without_body",
         R"({"type":"note.created","contact":{"speak4_id":"s4-1"},"note":{"speak4_id":"n-1"}})",
         "note.body", "note.body is required"},
        {"note_created_without_speak4_id",
         R"({"type":"note.created","contact":{"speak4_id":"s4-1"},"note":{"body":"x"}})",
         "note.speak4_id", "note.speak4_id is required"},
        {"note_body_number",
         R"({"type":"note.created","contact":{"speak4_id":"s4-1"},)"
         R"("note":{"speak4_id":"n-1","body":3}})",
         "note.body", "note.body must be a string"},
        {"note_updated_nothing",
         R"({"type":"note.updated","contact":{"speak4_id":"s4-1"},"note":{"speak4_id":"n-1"}})",
         "note.body", "note.updated needs note.body or note.title"},
        {"note_updated_without_ids",
         R"({"type":"note.updated","contact":{"speak4_id":"s4-1"},"note":{"body":"x"}})", "note",
         "note needs speak4_id or ghl_id"},
        {"note_deleted_with_body",
         R"({"type":"note.deleted","contact":{"speak4_id":"s4-1"},)"
         R"("note":{"speak4_id":"n-1","body":"x"}})",
         "note.body", "note.body is not a known field for note.deleted"},
        {"note_unknown_field",
         R"({"type":"note.updated","contact":{"speak4_id":"s4-1"},)"
         R"("note":{"speak4_id":"n-1","pinned":true}})",
         "note.pinned", "note.pinned is not a known note field"},

        // task.*
        {"task_created_without_task", R"({"type":"task.created","contact":{"speak4_id":"s4-1"}})",
         "task", "task is required"},
        {"task_not_object", R"({"type":"task.updated","contact":{"speak4_id":"s4-1"},"task":[]})",
         "task", "task must be an object"},
        {"task_created_without_title",
         R"({"type":"task.created","contact":{"speak4_id":"s4-1"},)"
         R"("task":{"speak4_id":"t-1","dueDate":"2026-12-01T15:00:00Z"}})",
         "task.title", "task.title is required"},
        {"task_created_without_due_date",
         R"({"type":"task.created","contact":{"speak4_id":"s4-1"},)"
         R"("task":{"speak4_id":"t-1","title":"Call"}})",
         "task.dueDate", "task.dueDate is required"},
        {"task_created_without_speak4_id",
         R"({"type":"task.created","contact":{"speak4_id":"s4-1"},)"
         R"("task":{"title":"Call","dueDate":"2026-12-01"}})",
         "task.speak4_id", "task.speak4_id is required"},
        {"task_created_empty_title",
         R"({"type":"task.created","contact":{"speak4_id":"s4-1"},)"
         R"("task":{"speak4_id":"t-1","title":"","dueDate":"2026-12-01"}})",
         "task.title", "task.title must not be empty"},
        {"task_due_date_words",
         R"({"type":"task.created","contact":{"speak4_id":"s4-1"},)"
         R"("task":{"speak4_id":"t-1","title":"Call","dueDate":"next tuesday"}})",
         "task.dueDate", "task.dueDate is not ISO-8601"},
        {"task_due_date_impossible",
         R"({"type":"task.updated","contact":{"speak4_id":"s4-1"},)"
         R"("task":{"speak4_id":"t-1","dueDate":"2026-02-30T10:00:00Z"}})",
         "task.dueDate", "task.dueDate is not ISO-8601"},
        {"task_due_date_number",
         R"({"type":"task.updated","contact":{"speak4_id":"s4-1"},)"
         R"("task":{"speak4_id":"t-1","dueDate":1764601200000}})",
         "task.dueDate", "task.dueDate must be a string"},
        {"task_completed_string",
         R"({"type":"task.updated","contact":{"speak4_id":"s4-1"},)"
         R"("task":{"speak4_id":"t-1","completed":"true"}})",
         "task.completed", "task.completed must be true or false"},
        {"task_unknown_field",
         R"({"type":"task.updated","contact":{"speak4_id":"s4-1"},)"
         R"("task":{"speak4_id":"t-1","priority":1}})",
         "task.priority", "task.priority is not a known task field"},
        {"task_updated_nothing",
         R"({"type":"task.updated","contact":{"speak4_id":"s4-1"},"task":{"ghl_id":"g-1"}})",
         "task", "task has nothing to change"},
        {"task_updated_without_ids",
         R"({"type":"task.updated","contact":{"speak4_id":"s4-1"},"task":{"title":"x"}})", "task",
         "task needs speak4_id or ghl_id"},
        {"task_completed_without_flag",
         R"({"type":"task.completed","contact":{"speak4_id":"s4-1"},"task":{"speak4_id":"t-1"}})",
         "task.completed", "task.completed is required"},
        {"task_completed_with_title",
         R"({"type":"task.completed","contact":{"speak4_id":"s4-1"},)"
         R"("task":{"speak4_id":"t-1","completed":true,"title":"x"}})",
         "task.title", "task.title is not a known field for task.completed"},
        {"task_deleted_with_title",
         R"({"type":"task.deleted","contact":{"speak4_id":"s4-1"},)"
         R"("task":{"speak4_id":"t-1","title":"x"}})",
         "task.title", "task.title is not a known field for task.deleted"},
        {"task_deleted_without_ids",
         R"({"type":"task.deleted","contact":{"speak4_id":"s4-1"},"task":{}})", "task",
         "task needs speak4_id or ghl_id"},

        // contact.tagged / contact.untagged.
        {"tagged_without_tags", R"({"type":"contact.tagged","contact":{"speak4_id":"s4-1"}})",
         "tags", "tags is required"},
        {"tagged_empty_tags",
         R"({"type":"contact.tagged","contact":{"speak4_id":"s4-1"},"tags":[]})", "tags",
         "tags must not be empty"},
        {"untagged_tags_string",
         R"({"type":"contact.untagged","contact":{"speak4_id":"s4-1"},"tags":"vip"})", "tags",
         "tags must be an array"},
        {"tagged_too_many_tags",
         R"({"type":"contact.tagged","contact":{"speak4_id":"s4-1"},"tags":[)" + tag_list(101) +
             "]}",
         "tags", "tags has more than 100 tags"},
        {"tagged_tag_too_long",
         R"({"type":"contact.tagged","contact":{"speak4_id":"s4-1"},"tags":[")" + tag129 + R"("]})",
         "tags[0]", "tags[0] is longer than 128 characters"},
        {"untagged_tag_null",
         R"({"type":"contact.untagged","contact":{"speak4_id":"s4-1"},"tags":["a",null]})",
         "tags[1]", "tags[1] must be a string"},
    };
}

class bad_event : public ::testing::TestWithParam<bad_case> {};

TEST_P(bad_event, is_rejected_naming_the_field) {
    const bad_case& c = GetParam();
    const auto r = parse_event(c.json, test_map());
    ASSERT_FALSE(r.has_value()) << "accepted: " << c.json.substr(0, 300);
    EXPECT_EQ(r.error().field, c.field) << describe(r);
    EXPECT_NE(r.error().message.find(c.message), std::string::npos) << describe(r);
    // Every message names its field, so a log line or a 400 body alone says what is wrong.
    if (c.field.empty())
        EXPECT_EQ(r.error().message.rfind("event ", 0), 0u) << describe(r);
    else
        EXPECT_NE(r.error().message.find(c.field), std::string::npos) << describe(r);
}

INSTANTIATE_TEST_SUITE_P(table, bad_event, ::testing::ValuesIn(bad_cases()),
                         [](const ::testing::TestParamInfo<bad_case>& info) {
                             return info.param.name;
                         });

TEST(event_table, covers_enough_cases_and_every_type) {
    const auto cases = bad_cases();
    EXPECT_GE(cases.size(), 40u);
    for (const auto type :
         {"contact.created", "contact.updated", "contact.deleted", "contact.opened",
          "contact.tagged", "contact.untagged", "note.created", "note.updated", "note.deleted",
          "task.created", "task.updated", "task.completed", "task.deleted", "lead.created"}) {
        const std::string needle = std::string("\"type\":\"") + type + "\"";
        bool found = false;
        for (const auto& c : cases)
            found = found || c.json.find(needle) != std::string::npos;
        EXPECT_TRUE(found) << "no bad event of type " << type;
    }
}

// ---------------------------------------------------------------------------------------------
// Limits and hostile input.

TEST(event_limits, are_configurable) {
    event_limits limits;
    limits.max_tags = 2;
    const auto r = parse_event(
        R"({"type":"contact.tagged","contact":{"speak4_id":"s4-1"},"tags":["a","b","c"]})", {},
        limits);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().field, "tags");
    EXPECT_EQ(r.error().message, "tags has more than 2 tags");

    limits = {};
    limits.max_bytes = 64;
    const auto big = parse_event(
        R"({"type":"contact.opened","contact":{"speak4_id":"s4-1"},"event_id":"e-1234567890"})", {},
        limits);
    ASSERT_FALSE(big);
    EXPECT_EQ(big.error().message, "event is larger than 64 bytes");
}

TEST(event_limits, exactly_max_bytes_is_accepted) {
    std::string text = R"({"type":"contact.opened","contact":{"speak4_id":"s4-1"}})";
    text += std::string(256 * 1024 - text.size(), ' ');
    EXPECT_TRUE(parse_event(text).has_value());
    text += ' ';
    EXPECT_FALSE(parse_event(text).has_value());
}

TEST(event_limits, depth_sixteen_is_accepted) {
    // The document itself, contact, customFields and 13 arrays: 16 levels.
    const std::string text =
        R"({"type":"contact.updated","contact":{"speak4_id":"s4-1","customFields":{"x":)" +
        repeat("[", 13) + repeat("]", 13) + "}}}";
    const auto r = parse_event(text);
    // Nested arrays are not a valid custom field value, but the depth itself is fine.
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().field, "contact.customFields.x[0]");
}

TEST(event_limits, hostile_keys_are_shortened_in_messages) {
    const std::string key = "\\u0001" + std::string(1000, 'k');
    const auto r = parse_event(R"({"type":"contact.opened","contact":{"speak4_id":"s4-1"},")" +
                               key + R"(":1})");
    ASSERT_FALSE(r);
    EXPECT_LT(r.error().field.size(), 100u);
    EXPECT_EQ(r.error().field.find('\x01'), std::string::npos);
    EXPECT_NE(r.error().message.find("is not a known field"), std::string::npos);
}

TEST(event_robustness, every_prefix_and_byte_flip_is_handled_without_throwing) {
    const std::string good =
        R"({"type":"contact.created","event_id":"e-1","contact":{"speak4_id":"s4-1",)"
        R"("firstName":"Ada","email":"ada@example.com","phone":"+15551234567","tags":["vip"],)"
        R"("customFields":{"abc":["x","y"]}},"notes":[{"speak4_id":"n-1","body":"hi"}]})";
    ASSERT_TRUE(parse_event(good).has_value());
    for (std::size_t n = 0; n < good.size(); ++n) {
        const auto r = parse_event(std::string_view(good).substr(0, n));
        EXPECT_FALSE(r.has_value()) << n;
    }
    std::mt19937 rng(20261201); // fixed seed: reproducible
    for (int i = 0; i < 5000; ++i) {
        std::string text = good;
        const auto flips = 1 + rng() % 3;
        for (unsigned f = 0; f < flips; ++f)
            text[rng() % text.size()] = static_cast<char>(rng() % 256);
        const auto r = parse_event(text); // must not throw or crash; either outcome is fine
        if (!r) {
            EXPECT_FALSE(r.error().message.empty());
            EXPECT_LE(r.error().message.size(), 512u);
        }
    }
}

TEST(event_result, value_throws_for_control_plane_callers) {
    EXPECT_THROW((void)parse_event("nope").value(), std::invalid_argument);
}

// ---------------------------------------------------------------------------------------------
// Good events of every type.

TEST(event_type_names, round_trip) {
    for (int i = 0; i <= static_cast<int>(event_type::lead_created); ++i) {
        const auto t = static_cast<event_type>(i);
        const auto back = parse_event_type(to_string(t));
        ASSERT_TRUE(back) << to_string(t);
        EXPECT_EQ(*back, t);
    }
    EXPECT_FALSE(parse_event_type("contact"));
    EXPECT_FALSE(parse_event_type("Contact.Created"));
}

TEST(good_event, contact_created) {
    const auto e = parse_ok(R"({"type":"contact.created","event_id":"e-123",
        "contact":{"speak4_id":"s4-42","firstName":"Ada","lastName":"Lovelace",
                   "email":"ada@example.com","phone":"+1 (555) 123-4567","tags":["vip"],
                   "dnd":false,"country":"GB","dateOfBirth":"1815-12-10",
                   "customFields":{"Jx8aX2kWq0oHvZ3uLw1d":"87","multi":["a","b"],"num":42.5,
                                   "gone":null}},
        "notes":[{"speak4_id":"n-1","body":"Called, wants a demo"},
                 {"speak4_id":"n-2","body":"Line one\nline two","title":"Follow-up"}]})");
    EXPECT_EQ(e.type, event_type::contact_created);
    EXPECT_EQ(e.event_id, "e-123");
    EXPECT_EQ(e.contact.speak4_id, "s4-42");
    EXPECT_FALSE(e.contact.ghl_id);
    EXPECT_EQ(e.changes.fields.size(), 7u);
    EXPECT_EQ(e.changes.fields.at("firstName"), "Ada");
    EXPECT_EQ(e.changes.fields.at("lastName"), "Lovelace");
    EXPECT_EQ(e.changes.fields.at("email"), "ada@example.com");
    EXPECT_EQ(e.changes.fields.at("phone"), "+1 (555) 123-4567");
    EXPECT_EQ(e.changes.fields.at("dnd"), false);
    EXPECT_EQ(e.changes.fields.at("country"), "GB");
    EXPECT_EQ(e.changes.fields.at("dateOfBirth"), "1815-12-10");
    EXPECT_FALSE(e.changes.fields.contains("tags"));
    EXPECT_FALSE(e.changes.fields.contains("customFields"));
    ASSERT_TRUE(e.changes.tags);
    EXPECT_EQ(*e.changes.tags, std::vector<std::string>{"vip"});
    ASSERT_EQ(e.changes.custom_fields.size(), 4u);
    EXPECT_EQ(e.changes.custom_fields.at(custom_id), "87");
    EXPECT_EQ(bj::serialize(e.changes.custom_fields.at("multi")), R"(["a","b"])");
    EXPECT_EQ(e.changes.custom_fields.at("num"), 42.5);
    EXPECT_TRUE(e.changes.custom_fields.at("gone").is_null());
    ASSERT_EQ(e.notes.size(), 2u);
    EXPECT_EQ(e.notes[0].ref.speak4_id, "n-1");
    EXPECT_EQ(e.notes[0].body, "Called, wants a demo");
    EXPECT_FALSE(e.notes[0].title);
    EXPECT_EQ(e.notes[1].body, "Line one\nline two");
    EXPECT_EQ(e.notes[1].title, "Follow-up");
    EXPECT_FALSE(e.task);
    EXPECT_TRUE(e.tags.empty());
    EXPECT_FALSE(e.pull);
}

TEST(good_event, contact_created_with_only_an_id) {
    const auto e = parse_ok(R"({"type":"contact.created","contact":{"speak4_id":"s4-1"}})");
    EXPECT_TRUE(e.changes.empty());
    EXPECT_FALSE(e.event_id);
}

TEST(good_event, contact_updated_clears_and_replaces) {
    const auto e = parse_ok(R"({"type":"contact.updated",
        "contact":{"ghl_id":"ocQHyuzHvysMo5N5VsXc","email":null,"tags":[],"dnd":true,
                   "dateOfBirth":"12/10/1815"},
        "pull":true})");
    EXPECT_EQ(e.type, event_type::contact_updated);
    EXPECT_FALSE(e.contact.speak4_id);
    EXPECT_EQ(e.contact.ghl_id, "ocQHyuzHvysMo5N5VsXc");
    EXPECT_TRUE(e.changes.fields.at("email").is_null());
    EXPECT_EQ(e.changes.fields.at("dnd"), true);
    EXPECT_EQ(e.changes.fields.at("dateOfBirth"), "12/10/1815");
    ASSERT_TRUE(e.changes.tags);
    EXPECT_TRUE(e.changes.tags->empty()); // an empty array clears every tag
    EXPECT_TRUE(e.pull);
}

TEST(good_event, contact_updated_pull_only) {
    const auto e =
        parse_ok(R"({"type":"contact.updated","contact":{"speak4_id":"s4-1"},"pull":true})");
    EXPECT_TRUE(e.pull);
    EXPECT_TRUE(e.changes.empty());
}

TEST(good_event, contact_updated_notes_only) {
    const auto e = parse_ok(R"({"type":"contact.updated","contact":{"speak4_id":"s4-1"},
        "notes":[{"speak4_id":"n-9","body":"b"}],"pull":false})");
    EXPECT_FALSE(e.pull);
    ASSERT_EQ(e.notes.size(), 1u);
    EXPECT_EQ(e.notes[0].ref.speak4_id, "n-9");
}

TEST(good_event, contact_deleted) {
    const auto e = parse_ok(
        R"({"type":"contact.deleted","event_id":"d-1","contact":{"speak4_id":"s4-1","ghl_id":"g1"}})");
    EXPECT_EQ(e.type, event_type::contact_deleted);
    EXPECT_EQ(e.contact.speak4_id, "s4-1");
    EXPECT_EQ(e.contact.ghl_id, "g1");
    EXPECT_TRUE(e.changes.empty());
}

TEST(good_event, contact_opened) {
    const auto e = parse_ok(R"({"type":"contact.opened","contact":{"ghl_id":"g1"}})");
    EXPECT_EQ(e.type, event_type::contact_opened);
    EXPECT_EQ(e.contact.ghl_id, "g1");
}

TEST(good_event, contact_tagged_dedups_in_order) {
    const auto e = parse_ok(R"({"type":"contact.tagged","contact":{"speak4_id":"s4-2"},
        "tags":["vip","speaker","vip","Speaker","speaker"]})");
    EXPECT_EQ(e.type, event_type::contact_tagged);
    EXPECT_EQ(e.tags, (std::vector<std::string>{"vip", "speaker", "Speaker"}));
    EXPECT_FALSE(e.changes.tags);
}

TEST(good_event, contact_untagged) {
    const auto e =
        parse_ok(R"({"type":"contact.untagged","contact":{"speak4_id":"s4-2"},"tags":["vip"]})");
    EXPECT_EQ(e.type, event_type::contact_untagged);
    EXPECT_EQ(e.tags, std::vector<std::string>{"vip"});
}

TEST(good_event, contact_tags_dedup) {
    const auto e = parse_ok(
        R"({"type":"contact.updated","contact":{"speak4_id":"s4-1","tags":["b","a","b","a"]}})");
    ASSERT_TRUE(e.changes.tags);
    EXPECT_EQ(*e.changes.tags, (std::vector<std::string>{"b", "a"}));
}

TEST(good_event, note_created) {
    const auto e = parse_ok(R"({"type":"note.created","contact":{"speak4_id":"s4-2"},
        "note":{"speak4_id":"n-2","body":"Met at the conference","title":"Conf"}})");
    EXPECT_EQ(e.type, event_type::note_created);
    ASSERT_EQ(e.notes.size(), 1u);
    EXPECT_EQ(e.notes[0].ref.speak4_id, "n-2");
    EXPECT_EQ(e.notes[0].body, "Met at the conference");
    EXPECT_EQ(e.notes[0].title, "Conf");
}

TEST(good_event, note_updated) {
    const auto e = parse_ok(R"({"type":"note.updated","contact":{"speak4_id":"s4-2"},
        "note":{"ghl_id":"gn-1","title":"Renamed"}})");
    EXPECT_EQ(e.type, event_type::note_updated);
    ASSERT_EQ(e.notes.size(), 1u);
    EXPECT_EQ(e.notes[0].ref.ghl_id, "gn-1");
    EXPECT_FALSE(e.notes[0].body);
    EXPECT_EQ(e.notes[0].title, "Renamed");
}

TEST(good_event, note_deleted) {
    const auto e = parse_ok(
        R"({"type":"note.deleted","contact":{"speak4_id":"s4-2"},"note":{"speak4_id":"n-2"}})");
    EXPECT_EQ(e.type, event_type::note_deleted);
    ASSERT_EQ(e.notes.size(), 1u);
    EXPECT_EQ(e.notes[0].ref.speak4_id, "n-2");
    EXPECT_FALSE(e.notes[0].body);
}

TEST(good_event, task_created_normalizes_due_date) {
    const auto e = parse_ok(R"({"type":"task.created","contact":{"speak4_id":"s4-1"},
        "task":{"speak4_id":"t-9","title":"Send demo link","body":"…",
                "dueDate":"2026-12-01T16:00:00+01:00","completed":false,"assignedTo":"u-1"}})");
    EXPECT_EQ(e.type, event_type::task_created);
    ASSERT_TRUE(e.task);
    EXPECT_EQ(e.task->ref.speak4_id, "t-9");
    EXPECT_EQ(e.task->title, "Send demo link");
    EXPECT_EQ(e.task->body, "…");
    EXPECT_EQ(e.task->due_date, "2026-12-01T15:00:00.000Z");
    EXPECT_EQ(e.task->completed, false);
    EXPECT_EQ(e.task->assigned_to, "u-1");
    EXPECT_TRUE(e.notes.empty());
}

TEST(good_event, due_date_forms) {
    const std::pair<const char*, const char*> forms[] = {
        {"2026-12-01T15:00:00Z", "2026-12-01T15:00:00.000Z"},
        {"2026-12-01T15:00:00.250Z", "2026-12-01T15:00:00.250Z"},
        {"2026-12-01T10:00:00-05:00", "2026-12-01T15:00:00.000Z"},
        {"2026-12-01", "2026-12-01T00:00:00.000Z"},
    };
    for (const auto& [in, out] : forms) {
        const auto e = parse_ok(std::string(R"({"type":"task.updated","contact":{"speak4_id":"c"},)"
                                            R"("task":{"speak4_id":"t","dueDate":")") +
                                in + "\"}}");
        ASSERT_TRUE(e.task) << in;
        EXPECT_EQ(e.task->due_date, out) << in;
    }
}

TEST(good_event, task_updated) {
    const auto e = parse_ok(R"({"type":"task.updated","contact":{"ghl_id":"g1"},
        "task":{"ghl_id":"gt-1","title":"Call back"}})");
    EXPECT_EQ(e.type, event_type::task_updated);
    ASSERT_TRUE(e.task);
    EXPECT_EQ(e.task->ref.ghl_id, "gt-1");
    EXPECT_EQ(e.task->title, "Call back");
    EXPECT_FALSE(e.task->due_date);
    EXPECT_FALSE(e.task->completed);
}

TEST(good_event, task_completed) {
    const auto e = parse_ok(R"({"type":"task.completed","contact":{"speak4_id":"s4-1"},
        "task":{"speak4_id":"t-1","completed":false}})");
    EXPECT_EQ(e.type, event_type::task_completed);
    ASSERT_TRUE(e.task);
    EXPECT_EQ(e.task->completed, false); // reopening is a completed: false
}

TEST(good_event, task_deleted) {
    const auto e = parse_ok(
        R"({"type":"task.deleted","contact":{"speak4_id":"s4-1"},"task":{"speak4_id":"t-1"}})");
    EXPECT_EQ(e.type, event_type::task_deleted);
    ASSERT_TRUE(e.task);
    EXPECT_EQ(e.task->ref.speak4_id, "t-1");
    EXPECT_FALSE(e.task->title);
}

TEST(good_event, lead_created) {
    const auto e = parse_ok(R"({"type":"lead.created","event_id":"l-1",
        "contact":{"speak4_id":"s4-3","email":"katherine@example.com","source":"web"}})");
    EXPECT_EQ(e.type, event_type::lead_created);
    EXPECT_EQ(e.contact.speak4_id, "s4-3");
    EXPECT_EQ(e.changes.fields.at("email"), "katherine@example.com");
    EXPECT_EQ(e.changes.fields.at("source"), "web");
}

TEST(good_event, lead_created_with_phone_only) {
    const auto e = parse_ok(
        R"({"type":"lead.created","contact":{"speak4_id":"s4-4","phone":"555-123-4567"}})");
    EXPECT_EQ(e.changes.fields.at("phone"), "555-123-4567");
}

TEST(good_event, field_map_renames) {
    const auto e = parse_ok(R"({"type":"contact.updated",
        "contact":{"speak4_id":"s4-1","mobile":"+15551234567","lead_score":87,
                   "labels":["x","x","y"]}})");
    EXPECT_FALSE(e.changes.fields.contains("mobile"));
    EXPECT_EQ(e.changes.fields.at("phone"), "+15551234567");
    EXPECT_FALSE(e.changes.fields.contains("lead_score"));
    ASSERT_EQ(e.changes.custom_fields.size(), 1u);
    EXPECT_EQ(e.changes.custom_fields.at(custom_id), 87);
    ASSERT_TRUE(e.changes.tags);
    EXPECT_EQ(*e.changes.tags, (std::vector<std::string>{"x", "y"}));
}

TEST(good_event, field_map_counts_for_lead_created) {
    const auto e = parse_ok(
        R"({"type":"lead.created","contact":{"speak4_id":"s4-5","mobile":"+4915112345678"}})");
    EXPECT_EQ(e.changes.fields.at("phone"), "+4915112345678");
}

TEST(good_event, without_a_field_map_speak4_names_are_unknown) {
    const auto r = parse_event(
        R"({"type":"contact.updated","contact":{"speak4_id":"s4-1","mobile":"+15551234567"}})");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().field, "contact.mobile");
    EXPECT_EQ(r.error().message, "contact.mobile is not a known contact field");
}

TEST(good_event, every_ghl_contact_field_is_accepted) {
    const auto e = parse_ok(R"({"type":"contact.updated","contact":{"speak4_id":"s4-1",
        "firstName":"A","lastName":"B","name":"A B","email":"a.b+tag@mail.example.org",
        "phone":"+49 (151) 123.456-78","address1":"1 Main St","city":"Springfield","state":"IL",
        "postalCode":"62701","website":"https://example.com","timezone":"America/Chicago",
        "source":"import","assignedTo":"u-1","country":"us","companyName":"ACME",
        "gender":"female","dateOfBirth":"1990_01_31","dnd":false}})");
    EXPECT_EQ(e.changes.fields.size(), 18u);
}

TEST(good_event, unicode_is_counted_in_characters) {
    std::string name;
    for (int i = 0; i < 256; ++i)
        name += "é"; // 2 bytes each, 256 characters: at the limit
    const auto e =
        parse_ok(R"({"type":"contact.updated","contact":{"speak4_id":"s4-1","firstName":")" + name +
                 R"("}})");
    EXPECT_EQ(e.changes.fields.at("firstName"), bj::value(name));
}

TEST(sample_events, every_line_parses) {
    std::ifstream in(std::string(SPEAK4_SOURCE_DIR) + "/conf/sample-events.jsonl");
    ASSERT_TRUE(in) << "conf/sample-events.jsonl is missing";
    std::string line;
    std::vector<std::string> ids;
    std::vector<event_type> types;
    int n = 0;
    while (std::getline(in, line)) {
        ++n;
        if (line.empty())
            continue;
        const auto r = parse_event(line, test_map());
        ASSERT_TRUE(r.has_value()) << "line " << n << ": " << describe(r);
        ASSERT_TRUE(r->event_id) << "line " << n << " has no event_id";
        EXPECT_EQ(std::find(ids.begin(), ids.end(), *r->event_id), ids.end())
            << "line " << n << " repeats event_id " << *r->event_id;
        ids.push_back(*r->event_id);
        types.push_back(r->type);
        // Also without a field map: the samples use GHL's names only.
        EXPECT_TRUE(parse_event(line).has_value()) << "line " << n;
    }
    EXPECT_GE(ids.size(), 8u);
    for (const auto t :
         {event_type::contact_created, event_type::task_created, event_type::contact_updated,
          event_type::contact_tagged, event_type::note_created, event_type::task_completed,
          event_type::lead_created})
        EXPECT_NE(std::find(types.begin(), types.end(), t), types.end()) << to_string(t);
}

} // namespace
} // namespace speak4::sync
