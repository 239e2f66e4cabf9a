// libFuzzer target: Speak4 events (DESIGN §3) through parse_event, as POST /v1/events and
// `speak4-sync emit` hand them over, with a field map like the example config's; an accepted
// event is then turned into the GHL request bodies the dispatcher would send.
//
// parse_event promises never to throw, so no exception is caught here: any exception, crash,
// sanitizer report or broken invariant below is a finding.

#include "fuzz_check.hpp"
#include "ghl/model.hpp"
#include "sync/event.hpp"

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace {

using namespace speak4;

const sync::field_map& fuzz_field_map() {
    static const sync::field_map map = {
        {"mobile", "phone"},
        {"given_name", "firstName"},
        {"lead_score", "customFields.Jx8aX2kWq0oHvZ3uLw1d"},
        {"segment", "customFields.Qp3mN8vR2sT6uW1yZ4aB"},
    };
    return map;
}

void check_accepted(const sync::event& e) {
    FUZZ_CHECK(sync::parse_event_type(sync::to_string(e.type)) == e.type);
    // Every event names its contact.
    FUZZ_CHECK(e.contact.speak4_id || e.contact.ghl_id);
    FUZZ_CHECK(!e.changes.fields.contains("tags") && !e.changes.fields.contains("customFields"));

    // What the dispatcher builds from the accepted changes.
    std::vector<std::string> ignored;
    const auto w = ghl::contact_write_from_json(e.changes.fields, &ignored);
    (void)ghl::create_contact_body(w, "fuzz-location");
    (void)ghl::update_contact_body(w);

    if (e.task) {
        const auto& t = *e.task;
        FUZZ_CHECK(t.ref.speak4_id || t.ref.ghl_id);
        if (t.due_date) {
            // Normalized to GHL's form, and stable when read again.
            const auto when = parse_iso8601(*t.due_date);
            FUZZ_CHECK(when.has_value());
            FUZZ_CHECK(format_iso8601(*when) == *t.due_date);
        }
        const ghl::task_write tw{t.title, t.body, t.due_date, t.assigned_to, t.completed};
        const auto created = ghl::create_task_body(tw);
        if (e.type == sync::event_type::task_created)
            FUZZ_CHECK(created.has_value()); // validation demanded title and dueDate
        (void)ghl::update_task_body(tw);
    }
    for (const auto& n : e.notes) {
        FUZZ_CHECK(n.ref.speak4_id || n.ref.ghl_id);
        ghl::note_write nw;
        nw.body = n.body;
        nw.title = n.title;
        const auto created = ghl::create_note_body(nw);
        if (e.type == sync::event_type::note_created)
            FUZZ_CHECK(created.has_value());
        (void)ghl::update_note_body(nw);
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    const auto parsed = sync::parse_event(text, fuzz_field_map());
    if (parsed) {
        check_accepted(*parsed);
    } else {
        // A rejection names a field (possibly "" for the document) in a non-empty sentence.
        FUZZ_CHECK(!parsed.error().message.empty());
    }
    return 0;
}
