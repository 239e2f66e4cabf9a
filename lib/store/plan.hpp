#pragma once
// `speak4-sync plan`: the GHL calls the waiting outbox would make, in the order the dispatcher
// claims them (outbox id), each as method, path (the GHL ids known so far; ":contactId" while
// the contact itself waits to be created) and body with every personal value masked. A dry run
// (sync.mode = "dry_run") leaves the outbox waiting; this is what going live would send. Rows
// of one entity waiting together may go out as one coalesced call.
//
// Threading: like the connection it is given.

#include <SQLiteCpp/Database.h>
#include <boost/json/object.hpp>
#include <optional>
#include <string>
#include <vector>

namespace speak4::store {

struct planned_call {
    long long outbox_id = 0;
    std::string op;     ///< create, update, …
    std::string entity; ///< contact, task, note
    std::optional<std::string> speak4_id;
    std::string method; ///< "POST"
    std::string path;   ///< "/contacts/abc/tasks" or "/contacts/:contactId/tasks"
    std::string body;   ///< JSON, values masked ("***" + length), "" for none
    bool write = true;  ///< false for a pull (a read)
};

/// Pending and in-flight rows, oldest first, at most `limit`.
std::vector<planned_call> plan(SQLite::Database& db, int limit = 1000);

/// The body with every value masked except booleans and tag names: {"email": "*** (7)"}.
std::string mask_body(const boost::json::object& set);

} // namespace speak4::store
