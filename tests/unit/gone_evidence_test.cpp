// sync::says_gone (DESIGN §9): which GHL answers are evidence that a record is gone. Only a JSON
// not-found about the record itself is; a proxy's HTML 404, an unknown route or a 400 about
// another thing never is.
#include "ghl/error.hpp"
#include "sync/dispatcher.hpp"

#include <gtest/gtest.h>

using namespace speak4;

namespace {

ghl::error answer(int status, const std::string& body) {
    return ghl::classify_status("PUT /contacts/:contactId", status, body);
}

} // namespace

TEST(gone_evidence, a_not_found_naming_the_record_is_evidence) {
    const auto e =
        answer(400, R"({"statusCode":400,"message":"Contact with id abc123 not found"})");
    ASSERT_EQ(e.kind, ghl::error_kind::not_found);
    EXPECT_TRUE(sync::says_gone(e, entity_kind::contact, "abc123"));
    // The same answer about another record says nothing about this one.
    EXPECT_FALSE(sync::says_gone(e, entity_kind::contact, "zzz999"));
    // A task of a contact that is gone is gone with it.
    EXPECT_TRUE(sync::says_gone(e, entity_kind::task, "task1", "abc123"));
    const auto t =
        answer(404, R"({"statusCode":404,"message":"Task not found","error":"Not Found"})");
    EXPECT_TRUE(sync::says_gone(t, entity_kind::task, "task1", "abc123"));
}

TEST(gone_evidence, html_pages_routes_and_other_things_not_found_are_not) {
    const auto html = answer(404, "<html><body><h1>404 Not Found</h1>nginx</body></html>");
    ASSERT_EQ(html.kind, ghl::error_kind::not_found);
    EXPECT_FALSE(sync::says_gone(html, entity_kind::contact, "abc123"));
    const auto route = answer(
        404, R"({"statusCode":404,"message":"Cannot PUT /v2/contacts/abc","error":"Not Found"})");
    EXPECT_FALSE(sync::says_gone(route, entity_kind::contact, "abc123"));
    const auto user = answer(400, R"({"statusCode":400,"message":"User not found"})");
    ASSERT_EQ(user.kind, ghl::error_kind::not_found);
    EXPECT_FALSE(sync::says_gone(user, entity_kind::contact, "abc123"));
    const auto field = answer(400, R"({"statusCode":400,"message":"Custom field cf9 not found"})");
    EXPECT_FALSE(sync::says_gone(field, entity_kind::contact, "abc123"));
    const auto empty = answer(404, "");
    EXPECT_FALSE(sync::says_gone(empty, entity_kind::contact, "abc123"));
    // Not a not-found at all.
    const auto bad = answer(422, R"({"statusCode":422,"message":["email must be an email"]})");
    EXPECT_FALSE(sync::says_gone(bad, entity_kind::contact, "abc123"));
}
