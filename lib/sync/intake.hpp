#pragma once
// Event intake: a validated Speak4 event becomes its mirror change, its outbox row(s) and its
// change-feed row(s) in ONE transaction (the transactional outbox). A repeated event_id has no
// second effect.

#include "core/clock.hpp"
#include "store/statement_cache.hpp"
#include "sync/event.hpp"

#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace speak4::sync {

struct accepted {
    bool duplicate = false; // the event_id was seen before; nothing was written
    long long seq = 0;      // the change feed's last seq after the commit
    long long inbox_id = 0; // the inbox row of this event (or of its first delivery)
};

/// Why intake refused an event: `invalid` (it contradicts the mirror, e.g. an unknown contact;
/// `field` names the part) or `io` (the database failed; nothing was written).
struct intake_error {
    enum class kind { invalid, io } what = kind::invalid;
    std::string field;
    std::string message;
    bool busy = false; ///< io: another connection held the lock (nothing was written)
};

using intake_outcome = boost::system::result<accepted, intake_error>;

/// One event with its original text (kept in the inbox).
struct raw_event {
    event ev;
    std::string body;
};

/// Applies events to the mirror. Threading: one intake per connection, used from one thread.
class intake {
public:
    intake(SQLite::Database& db, const clock& clk);

    /// Applies one event in its own IMMEDIATE transaction.
    intake_outcome accept(const event& ev, std::string_view body);

    /// Applies several events in one transaction (group commit: one fsync for all). A refused
    /// event leaves no trace and the others still land (the batch is first applied without
    /// savepoints; if an event is refused, that attempt is rolled back and the batch applied
    /// again with a savepoint per event). A database failure of the batch fails every event.
    std::vector<intake_outcome> accept_batch(const std::vector<raw_event>& events);

    /// Test hook: called at named points inside the transaction ("after_inbox", "after_mirror",
    /// "after_outbox"); throwing from it aborts the event as a database failure would.
    std::function<void(std::string_view point)> fail_point;

private:
    /// The batch in one transaction, each event in its own savepoint.
    std::vector<intake_outcome> accept_one_by_one(const std::vector<raw_event>& events);

    SQLite::Database& db_;
    const clock& clock_;
    store::statement_cache stmts_;
};

} // namespace speak4::sync
