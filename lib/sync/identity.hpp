#pragma once
// One person, several Speak4 ids (DESIGN §9). Every path that learns that two mirror contacts
// are one GHL contact links them here: the row that holds the GHL id survives and gets
// everything of the other (its Speak4 ids, tasks, notes, appointments, queued work); the other
// row is kept, pointing at the survivor (`merged_into`), never deleted, so every Speak4 id keeps
// resolving and every `changes` row still names a record. Field values merge by the conflict
// policy, each loser a `conflicts` row; a `linked` change names both sides.
//
// Threading: database thread only, inside the caller's transaction.

#include "core/config.hpp"
#include "store/statement_cache.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace speak4::sync {

/// What link_contacts() did.
struct link_result {
    std::int64_t survivor = 0;
    std::int64_t merged = 0;
    std::vector<std::string> speak4_ids; ///< every Speak4 id of the survivor afterwards
    int conflicts = 0;
};

/// Links contact row `from` into contact row `into` (see the top of this file). `from` must
/// carry no GHL id (the caller refuses two GHL ids for one person). In a field both rows hold
/// with different values, the policy decides: `into` is the remote side (the GHL record), `from`
/// the local one (the Speak4 contact learning it is that record); newest_wins compares the rows'
/// updated_at. `source` goes to the change row ('local' | 'push' | 'remote').
link_result link_contacts(store::statement_cache& s, std::int64_t into, std::int64_t from,
                          conflict_policy policy, std::string_view source, const std::string& now);

/// Adds `speak4_id` as another Speak4 id of contact `id` (the first one goes to
/// contacts.speak4_id), with a `linked` change row. No-op when it already is one of them.
void add_speak4_id(store::statement_cache& s, std::int64_t id, const std::string& speak4_id,
                   std::string_view source, const std::string& now);

/// The live contact row a Speak4 id names (through the alias table), if any.
std::optional<std::int64_t> contact_of_speak4_id(store::statement_cache& s,
                                                 const std::string& speak4_id);

/// Every Speak4 id of contact `id`, the first (contacts.speak4_id) first.
std::vector<std::string> speak4_ids_of(store::statement_cache& s, std::int64_t id);

/// A `conflicts` row about identities (field "speak4_id" or "ghl_id"): nothing merged, an
/// operator decides. winner "remote": the mirror keeps what it had.
void record_identity_conflict(store::statement_cache& s, std::int64_t contact_id,
                              const std::string& field, const std::string& local_value,
                              const std::string& remote_value, const std::string& policy,
                              const std::string& now);

} // namespace speak4::sync
