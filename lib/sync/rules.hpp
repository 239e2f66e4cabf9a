#pragma once
// The no-code rules of DESIGN §6 [rules] that act on pulled data: tag routes (a GHL tag maps a
// contact to a Speak4 workflow, contacts.workflow) and appointment reminders (a reminders row
// at start_time - rules.appointment_reminder_minutes). Business contacts are a fetch rule and
// live in the reconciler.
//
// Everything here is synchronous SQLite work for the database thread; the functions that write
// do so inside the caller's transaction unless they say otherwise, and every mirror change they
// make appends a `changes` row (source 'remote': the rules act on pulled data).

#include "core/config.hpp"
#include "core/time.hpp"

#include <SQLiteCpp/Database.h>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace speak4::sync {

/// The workflow a contact with `tags` is routed to: the route of the first entry of
/// rules.tag_routes (in the order the config holds them: TOML tables are unordered, so that is
/// ascending tag order) that the contact carries, or nullopt when none matches. Tags compare
/// case-insensitively, as GHL stores tags lower-cased whatever case they were sent in.
std::optional<std::string> route_for_tags(const rules_config& rules,
                                          const std::vector<std::string>& tags);

/// True for the appointment statuses that mean the appointment will not take place
/// ("cancelled", "canceled", "invalid"; case-insensitive).
bool is_cancelled_status(std::string_view status);

/// When an appointment starting at `start` should be reminded of: `minutes` before it. None
/// when the appointment is cancelled, has no (parseable) start, or has already started by
/// `now` (a reminder for a past appointment helps nobody). A remind time already past while the
/// start is still ahead is kept: the reminder fires at the next check.
std::optional<sys_time> reminder_time(std::optional<sys_time> start, bool cancelled, int minutes,
                                      sys_time now);

/// What sync_reminder() did to an appointment's reminders row.
enum class reminder_change { none, scheduled, rescheduled, removed };
std::string_view to_string(reminder_change c);

/// Brings the reminders row of appointment `appointment_id` (mirror id) in line with
/// `remind_at`: inserts it, moves it (an appointment that moved; a fired reminder is re-armed
/// when its new time is still ahead), or deletes it when `remind_at` is none and it has not
/// fired (cancelled or deleted appointments; a fired reminder stays as history). Appends a
/// changes row (entity 'reminder', kind scheduled|rescheduled|removed) for each change. Runs in
/// the caller's transaction.
reminder_change sync_reminder(SQLite::Database& db, std::int64_t appointment_id,
                              std::optional<sys_time> remind_at, sys_time now);

/// Marks up to `limit` due reminders (remind_at <= now, not fired) fired, each with a changes
/// row (entity 'reminder', entity_id the reminder's id, kind 'reminder_fired', source
/// 'remote'), in ONE transaction of its own. Returns how many fired. Throws SQLite::Exception on
/// a database failure (nothing fired).
int fire_due_reminders(SQLite::Database& db, sys_time now, int limit = 1000);

/// When the earliest unfired reminder is due (nullopt: none).
std::optional<sys_time> next_reminder_due(SQLite::Database& db);

} // namespace speak4::sync
