#pragma once
// The daemon (`speak4-sync run`): one context that owns every subsystem, a staged start-up
// (config, database, migrations, credentials, then listeners; READY=1 only then), SIGHUP reload
// and a two-stage shutdown that copes with a half-finished start.

#include "core/config.hpp"

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

namespace speak4::app {

struct run_options {
    std::filesystem::path config_path;
    /// Overrides applied after every (re)load of the config file, e.g. by `demo`.
    std::function<void(config&)> adjust;
    /// How long SIGTERM waits for work in flight before releasing it (it is recovered, as
    /// "outcome unknown", at the next start).
    std::chrono::milliseconds grace{10000};
    /// Called on the network thread once the daemon is ready (after READY=1), with the bound
    /// port of the local API.
    std::function<void(unsigned short api_port)> on_ready;
};

/// Everything the daemon runs, owned in one place (no globals).
///
/// Threading: construct, run() and destroy on one thread. request_stop() and request_reload()
/// may be called from any thread (signal handlers use the io_context instead).
class daemon {
public:
    explicit daemon(run_options opt);
    ~daemon();
    daemon(const daemon&) = delete;
    daemon& operator=(const daemon&) = delete;

    /// Starts, serves until SIGTERM/SIGINT (or request_stop()), and shuts down. Returns the
    /// process exit code (0 after a clean stop). Control-plane failures during start-up throw
    /// (config_error, io_error) for the CLI to map to an exit code.
    int run();

    void request_stop();
    void request_reload();

    struct context;

private:
    run_options opt_;
    std::unique_ptr<context> ctx_;
};

} // namespace speak4::app
