#pragma once
// Shared helpers for tests: temporary directories, running the real binary, reading files.

#include <filesystem>
#include <functional>
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
void write_file(const std::filesystem::path& path, const std::string& content,
                unsigned mode = 0644);
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

/// A child process with stdout and stderr going to files; killed (SIGKILL) on destruction if
/// still running.
class child_process {
public:
    child_process(const std::string& program, const std::vector<std::string>& args,
                  const std::filesystem::path& out_file, const std::filesystem::path& err_file,
                  const std::vector<std::string>& extra_env = {});
    ~child_process();
    child_process(const child_process&) = delete;
    child_process& operator=(const child_process&) = delete;

    int pid() const { return pid_; }
    void signal(int sig);
    /// Waits for exit up to `timeout_ms`; returns the exit code (128 + signal when killed), or
    /// -1 on timeout.
    int wait(int timeout_ms);
    bool running();

private:
    int pid_ = -1;
    int status_ = -1;
    bool reaped_ = false;
};

/// A TCP port on 127.0.0.1 that was free a moment ago.
unsigned short free_port();

/// Polls `pred` every 20 ms until it is true or `timeout_ms` passes; returns its last value.
bool wait_until(const std::function<bool()>& pred, int timeout_ms);

/// Path of the built speak4-sync binary, the source tree, and ../shared.
std::filesystem::path binary_path();
std::filesystem::path source_dir();
std::filesystem::path shared_dir();

} // namespace speak4::testing
