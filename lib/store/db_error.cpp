#include "store/db_error.hpp"

#include "store/database.hpp"

#include <SQLiteCpp/Exception.h>
#include <cstdlib>
#include <mutex>
#include <sqlite3.h>
#include <vector>

namespace speak4::store {

std::string_view to_string(db_errc k) {
    switch (k) {
    case db_errc::busy:
        return "busy";
    case db_errc::full:
        return "full";
    case db_errc::corrupt:
        return "corrupt";
    case db_errc::read_only:
        return "read_only";
    case db_errc::other:
        return "other";
    }
    return "other";
}

db_error classify(const std::filesystem::path& path, const std::exception& e) {
    if (const auto* de = dynamic_cast<const db_exception*>(&e))
        return {de->kind(), de->what()};
    db_error out{db_errc::other, describe_sqlite_error(path, e)};
    if (const auto* se = dynamic_cast<const SQLite::Exception*>(&e)) {
        switch (se->getErrorCode()) {
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
            out.kind = db_errc::busy;
            break;
        case SQLITE_FULL:
            out.kind = db_errc::full;
            break;
        case SQLITE_CORRUPT:
        case SQLITE_NOTADB:
            out.kind = db_errc::corrupt;
            break;
        case SQLITE_READONLY:
        case SQLITE_CANTOPEN:
        case SQLITE_PERM:
            out.kind = db_errc::read_only;
            break;
        default:
            break;
        }
    }
    return out;
}

namespace {

struct fail_point {
    std::string name;
    int code = SQLITE_IOERR;
    long long remaining = -1; // -1: unlimited
    std::filesystem::path file;
};

std::vector<fail_point> parse_fail_points(const char* env) {
    std::vector<fail_point> out;
    if (!env)
        return out;
    const std::string s(env);
    std::size_t pos = 0;
    while (pos <= s.size()) {
        auto end = s.find(',', pos);
        if (end == std::string::npos)
            end = s.size();
        std::string item = s.substr(pos, end - pos);
        pos = end + 1;
        if (item.empty())
            continue;
        fail_point fp;
        if (const auto at = item.find('@'); at != std::string::npos) {
            fp.file = item.substr(at + 1);
            item.resize(at);
        } else if (const auto eq = item.find('='); eq != std::string::npos) {
            fp.remaining = std::strtoll(item.c_str() + eq + 1, nullptr, 10);
            item.resize(eq);
        }
        if (const auto colon = item.find(':'); colon != std::string::npos) {
            const std::string kind = item.substr(colon + 1);
            item.resize(colon);
            if (kind == "full")
                fp.code = SQLITE_FULL;
            else if (kind == "busy")
                fp.code = SQLITE_BUSY;
            else if (kind == "corrupt")
                fp.code = SQLITE_CORRUPT;
        }
        fp.name = std::move(item);
        out.push_back(std::move(fp));
    }
    return out;
}

} // namespace

void check_fail_point(std::string_view name) {
    static std::mutex mutex;
    static std::vector<fail_point> points = parse_fail_points(std::getenv("SPEAK4_FAIL_POINTS"));
    std::lock_guard lock(mutex);
    for (auto& fp : points) {
        if (fp.name != name)
            continue;
        if (!fp.file.empty()) {
            std::error_code ec;
            if (!std::filesystem::exists(fp.file, ec))
                continue;
        } else if (fp.remaining == 0) {
            continue;
        } else if (fp.remaining > 0) {
            --fp.remaining;
        }
        throw SQLite::Exception("fail point " + fp.name, fp.code);
    }
}

} // namespace speak4::store
