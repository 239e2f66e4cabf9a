#pragma once
// `speak4-sync demo`: the whole loop against the bundled GHL simulator, no credentials needed.

#include <filesystem>

namespace speak4::app {

struct demo_options {
    std::filesystem::path dir = "demo-data"; ///< config, tokens and the database go here
    unsigned short api_port = 18737;         ///< the daemon's local API (loopback)
};

/// Starts ghl-sim in-process with sample records, runs the daemon against it through a short
/// scripted session (initial pull, Speak4 events pushed, a remote edit pulled, a reminder and a
/// tag route), prints each step and where the database is. Returns 0 when every step passed.
int run_demo(const demo_options& opt);

} // namespace speak4::app
