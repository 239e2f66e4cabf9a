#pragma once
// The integration console's files (lib/api/console/), embedded at build time by
// cmake/embed_files.cmake and served under /console/ (console.cpp).
//
// Threading: immutable after first use (a function-local static).

#include <string_view>
#include <vector>

namespace speak4::api {

struct embedded_file {
    std::string_view name; ///< relative to lib/api/console/, e.g. "console.js"
    std::string_view body;
};

/// Every file of the console (generated).
const std::vector<embedded_file>& console_files();

} // namespace speak4::api
