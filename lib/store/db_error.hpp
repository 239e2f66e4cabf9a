#pragma once
// The data plane's one error channel for database work: what kind of failure, and the message
// naming the database and the cause. The kind decides what a caller does: wait (busy), refuse
// new work and wait for space (full, read-only), or end the process (corrupt).

#include <boost/system/result.hpp>
#include <exception>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>

namespace speak4::store {

enum class db_errc {
    busy,      ///< SQLITE_BUSY / SQLITE_LOCKED: another connection holds the lock (transient)
    full,      ///< SQLITE_FULL: the disk (or the quota) is full; resumes when space is freed
    corrupt,   ///< SQLITE_CORRUPT / SQLITE_NOTADB: cannot be outlived
    read_only, ///< SQLITE_READONLY / SQLITE_CANTOPEN / SQLITE_PERM: permissions or a r/o mount
    other,     ///< anything else (I/O errors, constraint violations in a job, a bug)
};
std::string_view to_string(db_errc k);

/// A failed database job.
struct db_error {
    db_errc kind = db_errc::other;
    std::string message;
};

/// The result of a database job.
template <class T>
using db_result = boost::system::result<T, db_error>;

/// Classifies an exception thrown by database work (SQLite::Exception by its code; anything
/// else is `other`), with a message naming the database.
db_error classify(const std::filesystem::path& path, const std::exception& e);

/// What `db_worker::run` throws, for callers that still use exceptions: carries the kind.
class db_exception : public std::runtime_error {
public:
    explicit db_exception(db_error e)
        : std::runtime_error(e.message)
        , kind_(e.kind) {}
    db_errc kind() const noexcept { return kind_; }

private:
    db_errc kind_;
};

/// Fail points for tests of the real binary (env SPEAK4_FAIL_POINTS, read once): a
/// comma-separated list of `NAME[:KIND][=COUNT|@FILE]`. KIND is io (default), full, busy or
/// corrupt; `=COUNT` fails the first COUNT hits only, `@FILE` fails while FILE exists, neither
/// fails every hit. `check` throws a SQLite::Exception of that kind when NAME is active. Points:
/// `dispatcher.db` (every database job of the dispatcher), `intake.db` (every intake batch).
void check_fail_point(std::string_view name);

} // namespace speak4::store
