#pragma once

#include <string>

namespace speak4::cli {

/// Parses the command line, runs the command, and maps the outcome to a sysexits code.
int main(int argc, char** argv);

/// `check-config [--online]` on the file at `config_path` (also run by `init`); the exit code.
/// Throws config_error for a config that does not parse or whose secrets cannot be read.
int check_config(const std::string& config_path, bool online);

} // namespace speak4::cli
