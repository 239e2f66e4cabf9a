#include "sync/rules.hpp"

#include "core/log.hpp"

#include <SQLiteCpp/Statement.h>
#include <SQLiteCpp/Transaction.h>
#include <algorithm>
#include <cctype>

namespace speak4::sync {
namespace {

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() &&
           std::equal(a.begin(), a.end(), b.begin(), [](unsigned char x, unsigned char y) {
               return std::tolower(x) == std::tolower(y);
           });
}

void reminder_change_row(SQLite::Database& db, std::int64_t reminder_id, std::string_view kind,
                         const std::string& ts) {
    SQLite::Statement c(db, "INSERT INTO changes(entity, entity_id, kind, source, ts) VALUES "
                            "('reminder', ?, ?, 'remote', ?)");
    c.bind(1, reminder_id);
    c.bind(2, std::string(kind));
    c.bind(3, ts);
    c.exec();
}

} // namespace

std::optional<std::string> route_for_tags(const rules_config& rules,
                                          const std::vector<std::string>& tags) {
    for (const auto& [tag, workflow] : rules.tag_routes) {
        const std::string_view route = tag; // (clang 14 cannot capture a structured binding)
        if (std::any_of(tags.begin(), tags.end(),
                        [&](const std::string& t) { return iequals(t, route); }))
            return workflow;
    }
    return std::nullopt;
}

bool is_cancelled_status(std::string_view status) {
    return iequals(status, "cancelled") || iequals(status, "canceled") ||
           iequals(status, "invalid");
}

std::optional<sys_time> reminder_time(std::optional<sys_time> start, bool cancelled, int minutes,
                                      sys_time now) {
    if (cancelled || !start || *start <= now)
        return std::nullopt;
    return *start - std::chrono::minutes(minutes);
}

std::string_view to_string(reminder_change c) {
    switch (c) {
    case reminder_change::none:
        return "none";
    case reminder_change::scheduled:
        return "scheduled";
    case reminder_change::rescheduled:
        return "rescheduled";
    case reminder_change::removed:
        return "removed";
    }
    return "none";
}

reminder_change sync_reminder(SQLite::Database& db, std::int64_t appointment_id,
                              std::optional<sys_time> remind_at, sys_time now) {
    const std::string now_s = format_iso8601(now);
    SQLite::Statement q(db, "SELECT id, remind_at, fired FROM reminders WHERE appointment_id = ?");
    q.bind(1, appointment_id);
    std::optional<std::int64_t> id;
    std::string current;
    bool fired = false;
    if (q.executeStep()) {
        id = q.getColumn(0).getInt64();
        current = q.getColumn(1).getString();
        fired = q.getColumn(2).getInt() != 0;
    }
    q.reset();

    if (!remind_at) {
        // A fired reminder is history and stays; an unfired one would fire for nothing.
        if (!id || fired)
            return reminder_change::none;
        SQLite::Statement d(db, "DELETE FROM reminders WHERE id = ?");
        d.bind(1, *id);
        d.exec();
        reminder_change_row(db, *id, "removed", now_s);
        return reminder_change::removed;
    }

    const std::string at = format_iso8601(*remind_at);
    if (!id) {
        SQLite::Statement ins(
            db, "INSERT INTO reminders(appointment_id, remind_at, fired) VALUES (?, ?, 0)");
        ins.bind(1, appointment_id);
        ins.bind(2, at);
        ins.exec();
        reminder_change_row(db, db.getLastInsertRowid(), "scheduled", now_s);
        return reminder_change::scheduled;
    }
    if (current == at)
        return reminder_change::none;
    // The appointment moved. A reminder that already fired is re-armed only if its new time is
    // still ahead; otherwise it would fire a second time for the same appointment right away.
    const bool rearm = fired && *remind_at > now;
    SQLite::Statement u(
        db, "UPDATE reminders SET remind_at = ?, fired = CASE WHEN ? THEN 0 ELSE fired END, "
            "fired_at = CASE WHEN ? THEN NULL ELSE fired_at END WHERE id = ?");
    u.bind(1, at);
    u.bind(2, rearm ? 1 : 0);
    u.bind(3, rearm ? 1 : 0);
    u.bind(4, *id);
    u.exec();
    reminder_change_row(db, *id, "rescheduled", now_s);
    return reminder_change::rescheduled;
}

int fire_due_reminders(SQLite::Database& db, sys_time now, int limit) {
    const std::string now_s = format_iso8601(now);
    SQLite::Transaction tx(db, SQLite::TransactionBehavior::IMMEDIATE);
    SQLite::Statement q(
        db, "SELECT r.id, r.appointment_id, r.remind_at FROM reminders r "
            "WHERE r.fired = 0 AND r.remind_at <= ? ORDER BY r.remind_at, r.id LIMIT ?");
    q.bind(1, now_s);
    q.bind(2, limit);
    std::vector<std::pair<std::int64_t, std::int64_t>> due;
    while (q.executeStep())
        due.emplace_back(q.getColumn(0).getInt64(), q.getColumn(1).getInt64());
    SQLite::Statement u(db, "UPDATE reminders SET fired = 1, fired_at = ? WHERE id = ?");
    for (const auto& [id, appointment] : due) {
        u.reset();
        u.bind(1, now_s);
        u.bind(2, id);
        u.exec();
        reminder_change_row(db, id, "reminder_fired", now_s);
    }
    tx.commit();
    for (const auto& [id, appointment] : due)
        log::info("reminder fired", {{"reminder_id", id}, {"appointment_id", appointment}});
    return static_cast<int>(due.size());
}

std::optional<sys_time> next_reminder_due(SQLite::Database& db) {
    SQLite::Statement q(db, "SELECT MIN(remind_at) FROM reminders WHERE fired = 0");
    if (!q.executeStep() || q.getColumn(0).isNull())
        return std::nullopt;
    return parse_iso8601(q.getColumn(0).getString());
}

} // namespace speak4::sync
