// lib/sync rules: tag routes, reminder times, keeping reminder rows in line with their
// appointment, and firing due reminders with change-feed rows.
#include "core/clock.hpp"
#include "store/database.hpp"
#include "store/migrations.hpp"
#include "support/test_support.hpp"
#include "sync/rules.hpp"

#include <SQLiteCpp/Statement.h>
#include <gtest/gtest.h>

using namespace speak4;
using namespace std::chrono_literals;
using speak4::testing::temp_dir;

TEST(tag_routes, first_route_in_config_order_wins) {
    rules_config r;
    r.tag_routes = {{"vip", "priority-callback"}, {"lead", "nurture"}, {"zz-last", "last"}};
    // std::map order: "lead" < "vip" < "zz-last".
    EXPECT_EQ(sync::route_for_tags(r, {"vip", "lead"}), "nurture");
    EXPECT_EQ(sync::route_for_tags(r, {"vip"}), "priority-callback");
    EXPECT_EQ(sync::route_for_tags(r, {"other", "zz-last"}), "last");
}

TEST(tag_routes, match_ignores_case_and_none_gives_nothing) {
    rules_config r;
    r.tag_routes = {{"vip", "priority-callback"}};
    EXPECT_EQ(sync::route_for_tags(r, {"VIP"}), "priority-callback");
    EXPECT_EQ(sync::route_for_tags(r, {"vipx", "v"}), std::nullopt);
    EXPECT_EQ(sync::route_for_tags(r, {}), std::nullopt);
    EXPECT_EQ(sync::route_for_tags(rules_config{}, {"vip"}), std::nullopt);
}

TEST(reminders, time_is_start_minus_minutes) {
    const sys_time now = from_epoch_ms(1'750'000'000'000);
    const sys_time start = now + 3h;
    EXPECT_EQ(sync::reminder_time(start, false, 60, now), start - 60min);
    EXPECT_EQ(sync::reminder_time(start, false, 0, now), start);
    // Remind time already past, appointment still ahead: kept (fires at the next check).
    EXPECT_EQ(sync::reminder_time(now + 10min, false, 60, now), now - 50min);
    // Cancelled, no start, or already started: none.
    EXPECT_EQ(sync::reminder_time(start, true, 60, now), std::nullopt);
    EXPECT_EQ(sync::reminder_time(std::nullopt, false, 60, now), std::nullopt);
    EXPECT_EQ(sync::reminder_time(now - 1min, false, 60, now), std::nullopt);
}

TEST(reminders, cancelled_statuses) {
    EXPECT_TRUE(sync::is_cancelled_status("cancelled"));
    EXPECT_TRUE(sync::is_cancelled_status("Canceled"));
    EXPECT_TRUE(sync::is_cancelled_status("invalid"));
    EXPECT_FALSE(sync::is_cancelled_status("booked"));
    EXPECT_FALSE(sync::is_cancelled_status("confirmed"));
    EXPECT_FALSE(sync::is_cancelled_status(""));
}

namespace {

class reminder_rows : public ::testing::Test {
protected:
    void SetUp() override {
        db_ = store::open_database({dir_ / "s.db"});
        store::migrate(*db_);
        const std::string now = format_iso8601(clock_.now());
        db_->exec("INSERT INTO contacts(id, ghl_id, created_at, updated_at) VALUES (1, 'c1', '" +
                  now + "', '" + now + "')");
        for (int i = 1; i <= 3; ++i)
            db_->exec("INSERT INTO appointments(id, ghl_id, contact_id, updated_at) VALUES (" +
                      std::to_string(i) + ", 'a" + std::to_string(i) + "', 1, '" + now + "')");
    }

    long long count(const std::string& sql) { return db_->execAndGet(sql).getInt64(); }
    std::string text(const std::string& sql) { return db_->execAndGet(sql).getString(); }

    temp_dir dir_;
    manual_clock clock_;
    std::unique_ptr<SQLite::Database> db_;
};

} // namespace

TEST_F(reminder_rows, scheduled_moved_and_removed_with_change_rows) {
    const sys_time now = clock_.now();
    EXPECT_EQ(sync::sync_reminder(*db_, 1, now + 2h, now), sync::reminder_change::scheduled);
    EXPECT_EQ(text("SELECT remind_at FROM reminders WHERE appointment_id = 1"),
              format_iso8601(now + 2h));
    // Same time again: nothing.
    EXPECT_EQ(sync::sync_reminder(*db_, 1, now + 2h, now), sync::reminder_change::none);
    // The appointment moved.
    EXPECT_EQ(sync::sync_reminder(*db_, 1, now + 5h, now), sync::reminder_change::rescheduled);
    EXPECT_EQ(text("SELECT remind_at FROM reminders WHERE appointment_id = 1"),
              format_iso8601(now + 5h));
    EXPECT_EQ(count("SELECT COUNT(*) FROM reminders"), 1);
    // Cancelled: the unfired reminder goes.
    EXPECT_EQ(sync::sync_reminder(*db_, 1, std::nullopt, now), sync::reminder_change::removed);
    EXPECT_EQ(count("SELECT COUNT(*) FROM reminders"), 0);
    EXPECT_EQ(count("SELECT COUNT(*) FROM changes WHERE entity = 'reminder' AND source = 'remote'"),
              3);
    EXPECT_EQ(text("SELECT group_concat(kind, ',') FROM (SELECT kind FROM changes ORDER BY seq)"),
              "scheduled,rescheduled,removed");
}

TEST_F(reminder_rows, due_reminders_fire_once_with_a_change_row) {
    const sys_time now = clock_.now();
    sync::sync_reminder(*db_, 1, now + 10min, now);
    sync::sync_reminder(*db_, 2, now + 20min, now);
    sync::sync_reminder(*db_, 3, now + 2h, now);
    EXPECT_EQ(sync::next_reminder_due(*db_), now + 10min);

    EXPECT_EQ(sync::fire_due_reminders(*db_, now + 5min), 0);
    EXPECT_EQ(sync::fire_due_reminders(*db_, now + 20min), 2); // remind_at <= now fires
    EXPECT_EQ(count("SELECT COUNT(*) FROM reminders WHERE fired = 1 AND fired_at IS NOT NULL"), 2);
    EXPECT_EQ(
        count("SELECT COUNT(*) FROM changes WHERE entity = 'reminder' AND kind = 'reminder_fired'"),
        2);
    EXPECT_EQ(count("SELECT COUNT(*) FROM changes c JOIN reminders r ON r.id = c.entity_id "
                    "WHERE c.kind = 'reminder_fired' AND r.appointment_id IN (1, 2)"),
              2);
    EXPECT_EQ(sync::next_reminder_due(*db_), now + 2h);
    // Not again.
    EXPECT_EQ(sync::fire_due_reminders(*db_, now + 30min), 0);
    EXPECT_EQ(sync::fire_due_reminders(*db_, now + 3h), 1);
    EXPECT_EQ(sync::next_reminder_due(*db_), std::nullopt);
}

TEST_F(reminder_rows, a_fired_reminder_is_rearmed_only_when_its_new_time_is_ahead) {
    const sys_time now = clock_.now();
    sync::sync_reminder(*db_, 1, now + 10min, now);
    ASSERT_EQ(sync::fire_due_reminders(*db_, now + 10min), 1);
    const sys_time later = now + 15min;
    // Moved to tomorrow: fires again then.
    EXPECT_EQ(sync::sync_reminder(*db_, 1, later + 24h, later), sync::reminder_change::rescheduled);
    EXPECT_EQ(count("SELECT fired FROM reminders WHERE appointment_id = 1"), 0);
    ASSERT_EQ(sync::fire_due_reminders(*db_, later + 24h), 1);
    // Moved by a minute into the past: stays fired (no second reminder for the same meeting).
    EXPECT_EQ(sync::sync_reminder(*db_, 1, later + 24h - 1min, later + 24h),
              sync::reminder_change::rescheduled);
    EXPECT_EQ(count("SELECT fired FROM reminders WHERE appointment_id = 1"), 1);
    // A fired reminder of a cancelled appointment stays as history.
    EXPECT_EQ(sync::sync_reminder(*db_, 1, std::nullopt, later + 25h), sync::reminder_change::none);
    EXPECT_EQ(count("SELECT COUNT(*) FROM reminders"), 1);
}
