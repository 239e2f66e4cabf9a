#pragma once
// Shared helpers for tests: temporary directories, running the real binary, reading files.

#include <filesystem>
#include <string>
#include <vector>

namespace speak4::testing {

/// A fresh directory under $TMPDIR, removed on destruction.
class temp_dir {
public:
    temp_dir();
    ~temp_dir();
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    const std::filesystem::path& path() const { return path_; }
    std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

private:
    std::filesystem::path path_;
};

/// Writes `content` to `path` with `mode` (e.g. 0600).
void write_file(const std::filesystem::path& path, const std::string& content, unsigned mode = 0644);
std::string read_file(const std::filesystem::path& path);

struct run_result {
    int exit_code = -1;
    std::string out;
    std::string err;
};

/// Runs the speak4-sync binary with `args`, feeding `stdin_text`, with a timeout.
run_result run_cli(const std::vector<std::string>& args, const std::string& stdin_text = "",
                   int timeout_seconds = 60);

/// Runs any program.
run_result run_program(const std::string& program, const std::vector<std::string>& args,
                       const std::string& stdin_text = "", int timeout_seconds = 60);

/// Path of the built speak4-sync binary, the source tree, and ../shared.
std::filesystem::path binary_path();
std::filesystem::path source_dir();
std::filesystem::path shared_dir();

} // namespace speak4::testing
