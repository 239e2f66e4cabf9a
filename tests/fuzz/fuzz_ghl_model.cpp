// libFuzzer target: GHL responses as the client reads them (lib/ghl/model, error, rate_limiter).
//
// Input: one selector byte, then the response body (or, for selector 8, response header lines
// "Name: value"). The low nibble of the selector picks the parser, the high nibble a parameter
// (page limit, HTTP status):
//   0 contact envelope (GET/POST/PUT /contacts, search/duplicate)   5 appointments ("events")
//   1 POST /contacts/search page                                    6 tags
//   2 GET /contacts/ (legacy) and /contacts/business page           7 error body of a non-2xx
//   3 tasks (list and item)                                         8 response headers: rate
//   4 notes (list and item)                                           limits, Retry-After
// The body is parsed as the client does (json::parse, depth 64). None of these functions throw,
// so nothing is caught: an exception, crash, sanitizer report or broken invariant is a finding.

#include "core/json.hpp"
#include "core/time.hpp"
#include "fuzz_check.hpp"
#include "ghl/error.hpp"
#include "ghl/model.hpp"
#include "ghl/rate_limiter.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace {

using namespace speak4;
namespace bj = boost::json;

const sys_time fuzz_now = from_epoch_ms(1'767'225'600'000); // 2026-01-01T00:00:00Z

/// What the mirror does with a record's dates and raw JSON.
void touch_time(const std::optional<sys_time>& t) {
    if (t) {
        (void)format_iso8601(*t);
        (void)to_epoch_ms(*t);
    }
}

void check_contact(const ghl::contact& c) {
    FUZZ_CHECK(!c.id.empty());
    touch_time(c.date_added);
    touch_time(c.date_updated);
    for (const auto& f : c.custom_fields)
        (void)json::dump(f.value);
    (void)json::dump(c.raw);
}

template <class T, class Parse>
void envelope(const bj::object& body, std::string_view list_key, std::string_view item_key,
              Parse parse) {
    if (const auto* a = json::get_array(body, list_key))
        for (const auto& v : *a)
            if (auto item = parse(v)) {
                FUZZ_CHECK(!item->id.empty());
                (void)json::dump(item->raw);
            }
    if (item_key.empty())
        return;
    if (const auto* v = body.if_contains(item_key))
        if (auto item = parse(*v))
            FUZZ_CHECK(!item->id.empty());
}

void fuzz_body(unsigned which, unsigned param, std::string_view text) {
    auto parsed = text.empty() ? boost::system::result<bj::value, std::string>(bj::object())
                               : json::parse(text, {std::size_t{16} * 1024 * 1024, 64});
    if (!parsed || !parsed->is_object())
        return; // the client's bad_response
    const bj::object& body = parsed->get_object();
    const int limit = static_cast<int>(param) * 7; // 0, 7, ..., 105

    switch (which) {
    case 0:
        if (const auto* v = body.if_contains("contact"))
            if (auto c = ghl::parse_contact(*v))
                check_contact(*c);
        break;
    case 1: {
        const auto page = ghl::parse_search_page(body, limit);
        for (const auto& c : page.contacts)
            check_contact(c);
        FUZZ_CHECK(page.skipped >= 0);
        if (page.more) // a next page needs a cursor
            FUZZ_CHECK(!page.next_search_after.empty());
        break;
    }
    case 2: {
        const auto page = ghl::parse_list_page(body, limit);
        for (const auto& c : page.contacts)
            check_contact(c);
        if (page.more) { // continues after a non-empty page, from a cursor
            const auto* items = json::get_array(body, "contacts");
            FUZZ_CHECK(items && !items->empty());
            if (!page.contacts.empty())
                FUZZ_CHECK(page.next_start_after_id.has_value());
        }
        break;
    }
    case 3:
        envelope<ghl::task>(body, "tasks", "task", ghl::parse_task);
        if (const auto* a = json::get_array(body, "tasks"))
            for (const auto& v : *a)
                if (auto t = ghl::parse_task(v))
                    touch_time(t->due_at);
        break;
    case 4:
        envelope<ghl::note>(body, "notes", "note", ghl::parse_note);
        break;
    case 5:
        envelope<ghl::appointment>(body, "events", "", ghl::parse_appointment);
        if (const auto* a = json::get_array(body, "events"))
            for (const auto& v : *a)
                if (auto ap = ghl::parse_appointment(v)) {
                    touch_time(ap->start_at);
                    touch_time(ap->end_at);
                }
        break;
    case 6:
        (void)ghl::parse_tags(body);
        break;
    default:
        break;
    }
}

void fuzz_error(unsigned param, std::string_view text) {
    static constexpr std::array<int, 16> statuses = {400, 401, 403, 404, 408, 409, 422, 429,
                                                     500, 502, 503, 504, 200, 302, 100, 451};
    const int status = statuses[param % statuses.size()];
    const auto e = ghl::classify_status("PUT /contacts/:contactId", status, text);
    FUZZ_CHECK(e.status == status);
    // (message may be empty: a status without a reason text and a body without a message)
    FUZZ_CHECK(e.what().starts_with("PUT /contacts/:contactId: " + std::to_string(status)));
    if (e.kind == ghl::error_kind::duplicate_contact)
        FUZZ_CHECK(e.duplicate && !e.duplicate->contact_id.empty());
    if (e.kind == ghl::error_kind::permanent || e.kind == ghl::error_kind::not_found)
        FUZZ_CHECK(!e.transient());
    (void)ghl::message_from_body(text);
}

void fuzz_headers(unsigned param, std::string_view text) {
    ghl::header_list headers;
    while (!text.empty()) {
        const auto nl = text.find('\n');
        std::string_view line = text.substr(0, nl);
        text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
        if (const auto colon = line.find(':'); colon != std::string_view::npos)
            headers.emplace_back(std::string(line.substr(0, colon)),
                                 std::string(line.substr(colon + 1)));
    }
    const auto rate = ghl::parse_rate_headers(headers, fuzz_now);
    if (rate.retry_after)
        FUZZ_CHECK(rate.retry_after->count() >= 0);

    // The client's next steps: correct the bucket, then ask when the next request may go.
    manual_clock clk(fuzz_now);
    ghl::rate_limiter limiter(ghl::rate_limit_options{}, clk);
    const auto first = limiter.try_acquire("loc", fuzz_now);
    FUZZ_CHECK(!first); // a fresh bucket has a token
    const int status = (param & 1) ? 429 : 200;
    limiter.observe("loc", status, rate, fuzz_now);
    const auto next = limiter.next_allowed("loc", fuzz_now);
    FUZZ_CHECK(next >= fuzz_now);
    (void)limiter.try_acquire("loc", next);
    (void)limiter.state("loc", next);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0)
        return 0;
    const unsigned which = data[0] & 0x0F;
    const unsigned param = data[0] >> 4;
    const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
    if (which == 7)
        fuzz_error(param, text);
    else if (which == 8)
        fuzz_headers(param, text);
    else
        fuzz_body(which % 7, param, text);
    return 0;
}
