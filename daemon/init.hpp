#pragma once
// `speak4-sync init`: the guided first setup. Asks (or takes as flags, with
// --non-interactive) the location id, the auth mode and its secrets, where the secrets go, the
// database and the local API address, and the field mapping chosen from the location's own
// custom fields; writes a commented TOML and the secret files (mode 0600), checks the result
// offline and online (check-config --online), and prints the next steps. It never echoes a
// secret and refuses to overwrite an existing config without --force.

#include <optional>
#include <string>
#include <vector>

namespace speak4::cli {

/// Runs `init`; `config_path` is --config (default /etc/speak4-sync/speak4-sync.toml). Returns
/// the exit code (0, 64 for bad flags, 73 for a config that exists without --force, 78 when the
/// check refuses the result, 69 when GHL could not be asked).
int run_init(const std::optional<std::string>& config_path, const std::vector<std::string>& args);

/// `init --help`.
extern const char* const init_help;

} // namespace speak4::cli
