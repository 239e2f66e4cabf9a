// Custom fields by name: the field map resolved against a location's listing (by name,
// fieldKey or id; unknown and ambiguous names refused naming the key), the values checked
// against the field's type at intake, and the SQLite cache of the listing.
#include "store/custom_fields.hpp"
#include "store/database.hpp"
#include "store/migrations.hpp"
#include "support/test_support.hpp"
#include "sync/custom_fields.hpp"
#include "sync/event.hpp"

#include <gtest/gtest.h>

namespace speak4::sync {
namespace {

using store::custom_field_row;

std::vector<custom_field_row> listing() {
    return {
        {"aaaaaaaaaaaaaaaaaaa1", "Lead score", "contact.lead_score", "NUMERICAL", "contact", {}},
        {"aaaaaaaaaaaaaaaaaaa2",
         "Favourite colour",
         "contact.favourite_colour",
         "SINGLE_OPTIONS",
         "contact",
         {"red", "blue"}},
        {"aaaaaaaaaaaaaaaaaaa3", "Region", "contact.region", "TEXT", "contact", {}},
        {"aaaaaaaaaaaaaaaaaaa4", "Region", "contact.region_2", "TEXT", "contact", {}},
        {"aaaaaaaaaaaaaaaaaaa5", "Renewal", "contact.renewal", "DATE", "contact", {}},
        {"aaaaaaaaaaaaaaaaaaa6",
         "Interests",
         "contact.interests",
         "MULTIPLE_OPTIONS",
         "contact",
         {"golf", "tennis"}},
        {"bbbbbbbbbbbbbbbbbbb1",
         "Deal size",
         "opportunity.deal_size",
         "NUMERICAL",
         "opportunity",
         {}},
    };
}

TEST(CustomFieldMap, ResolvesNamesFieldKeysAndIds) {
    const auto l = listing();
    const field_map raw{{"score", "Lead score"},
                        {"colour", "customFields.contact.favourite_colour"},
                        {"renewal", "customFields.renewal"},
                        {"interests", "customFields.aaaaaaaaaaaaaaaaaaa6"},
                        {"mobile", "phone"}};
    EXPECT_TRUE(needs_listing(raw));
    const auto r = resolve_fields(raw, &l);
    ASSERT_TRUE(r) << r.error();
    EXPECT_EQ(r->map.at("score"), "customFields.aaaaaaaaaaaaaaaaaaa1");
    EXPECT_EQ(r->map.at("colour"), "customFields.aaaaaaaaaaaaaaaaaaa2");
    EXPECT_EQ(r->map.at("renewal"), "customFields.aaaaaaaaaaaaaaaaaaa5");
    EXPECT_EQ(r->map.at("interests"), "customFields.aaaaaaaaaaaaaaaaaaa6");
    EXPECT_EQ(r->map.at("mobile"), "phone");
    EXPECT_EQ(r->custom.size(), 4u);
    EXPECT_EQ(r->custom.at("aaaaaaaaaaaaaaaaaaa1").data_type, "NUMERICAL");
}

TEST(CustomFieldMap, UnknownAmbiguousAndOtherModelsAreRefusedNamingTheKey) {
    const auto l = listing();
    const auto r = resolve_fields({{"a_score", "Lead Score"},
                                   {"b_region", "Region"},
                                   {"c_deal", "Deal size"},
                                   {"d_key", "customFields.contact.nope"}},
                                  &l);
    ASSERT_FALSE(r);
    const std::string& e = r.error();
    EXPECT_NE(e.find("rules.field_map.a_score: \"Lead Score\" is neither a GHL contact field nor "
                     "the name of a contact custom field of the location (did you mean \"Lead "
                     "score\" (aaaaaaaaaaaaaaaaaaa1)?)"),
              std::string::npos)
        << e;
    EXPECT_NE(e.find("rules.field_map.b_region: \"Region\" is ambiguous: 2 custom fields have "
                     "that name (\"Region\" (aaaaaaaaaaaaaaaaaaa3), \"Region\" "
                     "(aaaaaaaaaaaaaaaaaaa4)); use customFields.<id>"),
              std::string::npos)
        << e;
    EXPECT_NE(e.find("rules.field_map.c_deal: \"Deal size\" is neither"), std::string::npos)
        << "an opportunity field is not a contact field: " << e;
    EXPECT_NE(e.find("rules.field_map.d_key: \"customFields.contact.nope\" names no contact "
                     "custom field"),
              std::string::npos)
        << e;
    EXPECT_EQ(std::count(e.begin(), e.end(), '\n'), 3) << "one line per problem";
}

TEST(CustomFieldMap, WithoutAListingOnlyIdsWork) {
    const auto ok = resolve_fields({{"score", "customFields.aaaaaaaaaaaaaaaaaaa1"}}, nullptr);
    ASSERT_TRUE(ok);
    EXPECT_EQ(ok->map.at("score"), "customFields.aaaaaaaaaaaaaaaaaaa1");
    EXPECT_TRUE(ok->custom.empty()) << "no type known, no type check";
    EXPECT_FALSE(needs_listing({{"score", "customFields.aaaaaaaaaaaaaaaaaaa1"}}));
    EXPECT_TRUE(uses_custom_fields({{"score", "customFields.aaaaaaaaaaaaaaaaaaa1"}}));
    EXPECT_FALSE(uses_custom_fields({{"mobile", "phone"}}));
    const auto bad = resolve_fields({{"score", "Lead score"}}, nullptr);
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().find("rules.field_map.score: \"Lead score\""), std::string::npos);
    EXPECT_NE(bad.error().find("could not be listed"), std::string::npos) << bad.error();
}

class CustomFieldIntake : public ::testing::Test {
protected:
    void SetUp() override {
        const auto l = listing();
        auto r = resolve_fields({{"score", "Lead score"},
                                 {"colour", "Favourite colour"},
                                 {"renewal", "Renewal"},
                                 {"interests", "Interests"},
                                 {"region", "customFields.contact.region"}},
                                &l);
        ASSERT_TRUE(r) << r.error();
        fields_ = std::move(*r);
    }
    /// The error message for a contact.updated setting `json_fields`, "" when accepted.
    std::string refusal(const std::string& json_fields) {
        const std::string text =
            R"({"type":"contact.updated","contact":{"speak4_id":"s4-1",)" + json_fields + "}}";
        auto ev = parse_event(text, fields_.map, {}, &fields_.custom);
        return ev ? std::string() : ev.error().field + ": " + ev.error().message;
    }
    resolved_fields fields_;
};

TEST_F(CustomFieldIntake, ValuesThatSuitTheTypeGoToTheFieldsId) {
    const std::string text =
        R"({"type":"contact.updated","contact":{"speak4_id":"s4-1","score":42,"colour":"red",)"
        R"("renewal":"2027-01-31","interests":["golf"],"region":"North"}})";
    auto ev = parse_event(text, fields_.map, {}, &fields_.custom);
    ASSERT_TRUE(ev) << ev.error().message;
    const auto& cf = ev->changes.custom_fields;
    EXPECT_EQ(cf.at("aaaaaaaaaaaaaaaaaaa1").as_int64(), 42);
    EXPECT_EQ(cf.at("aaaaaaaaaaaaaaaaaaa2").as_string(), "red");
    EXPECT_EQ(cf.at("aaaaaaaaaaaaaaaaaaa5").as_string(), "2027-01-31");
    EXPECT_TRUE(cf.at("aaaaaaaaaaaaaaaaaaa6").is_array());
    EXPECT_EQ(refusal(R"("score":"17.5")"), "") << "a number as text";
    EXPECT_EQ(refusal(R"("score":null)"), "") << "null clears any field";
}

TEST_F(CustomFieldIntake, AValueOfTheWrongTypeIsRefusedNamingBoth) {
    EXPECT_EQ(refusal(R"("score":"lots")"),
              "contact.score: contact.score maps to the custom field \"Lead score\" (NUMERICAL), "
              "which takes a number");
    EXPECT_NE(refusal(R"("colour":"green")").find("has no option \"green\""), std::string::npos);
    EXPECT_NE(refusal(R"("colour":["red"])").find("takes one of its options as a string"),
              std::string::npos);
    EXPECT_NE(refusal(R"("renewal":"next week")").find("takes a date (YYYY-MM-DD)"),
              std::string::npos);
    EXPECT_NE(refusal(R"("interests":["chess"])").find("has no option \"chess\""),
              std::string::npos);
    EXPECT_NE(refusal(R"("region":7.5)").find("(TEXT), which takes a string"), std::string::npos);
}

TEST(CustomFieldCache, RoundTripsAndRemembersAnEmptyListing) {
    testing::temp_dir dir;
    auto db = store::open_database({dir.path() / "s.db"});
    store::migrate(*db);
    EXPECT_FALSE(store::load_custom_fields(*db)) << "never listed";
    store::save_custom_fields(*db, listing(), "2026-12-03T10:00:00.000Z");
    auto c = store::load_custom_fields(*db);
    ASSERT_TRUE(c);
    EXPECT_EQ(c->fields, listing());
    EXPECT_EQ(c->fetched_at, "2026-12-03T10:00:00.000Z");
    store::save_custom_fields(*db, {}, "2026-12-03T11:00:00.000Z");
    c = store::load_custom_fields(*db);
    ASSERT_TRUE(c);
    EXPECT_TRUE(c->fields.empty());
    EXPECT_EQ(c->fetched_at, "2026-12-03T11:00:00.000Z");
}

} // namespace
} // namespace speak4::sync
