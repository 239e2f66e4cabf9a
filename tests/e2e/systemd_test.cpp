// The systemd units as built: hardened enough that `systemd-analyze security` rates them 2.0 or
// better, and shaped for Type=notify with credentials.
#include "support/test_support.hpp"

#include <cstdlib>
#include <gtest/gtest.h>
#include <regex>

using namespace speak4::testing;

namespace {

std::string find_analyze() {
    for (const char* p : {"/usr/bin/systemd-analyze", "/bin/systemd-analyze"})
        if (std::filesystem::exists(p))
            return p;
    return "";
}

/// The "Overall exposure level" systemd-analyze gives `unit_file` (copied as `name`).
double exposure(const std::string& analyze, const std::filesystem::path& unit_file,
                const std::string& name) {
    temp_dir dir;
    std::filesystem::copy_file(unit_file, dir / name);
    auto r =
        run_program(analyze, {"security", "--offline=true", "--no-pager", (dir / name).string()});
    std::smatch m;
    const std::string all = r.out + r.err;
    if (!std::regex_search(all, m, std::regex(R"(Overall exposure level for [^:]+: ([0-9.]+))")))
        ADD_FAILURE() << "no exposure level in: " << all.substr(0, 2000);
    return m.empty() ? 99.0 : std::stod(m[1]);
}

} // namespace

TEST(systemd_units, are_hardened_to_2_or_better) {
    const std::string analyze = find_analyze();
    if (analyze.empty()) {
        // CI installs it (scripts/install-deps --test): there a missing tool is a failure.
        if (std::getenv("CI"))
            FAIL() << "systemd-analyze is missing: scripts/install-deps --test installs systemd";
        GTEST_SKIP() << "systemd-analyze is not installed on this machine";
    }
    const std::filesystem::path units = std::filesystem::path(SPEAK4_BUILD_DIR) / "systemd";
    EXPECT_LE(exposure(analyze, units / "speak4-sync.service", "speak4-sync.service"), 2.0);
    EXPECT_LE(exposure(analyze, units / "speak4-sync@.service", "speak4-sync@acme.service"), 2.0);
}

TEST(systemd_units, run_the_daemon_as_a_notify_service_with_credentials) {
    const std::filesystem::path units = std::filesystem::path(SPEAK4_BUILD_DIR) / "systemd";
    for (const char* name : {"speak4-sync.service", "speak4-sync@.service"}) {
        const std::string u = read_file(units / name);
        SCOPED_TRACE(name);
        for (const char* line :
             {"Type=notify", "WatchdogSec=", "Restart=on-failure", "DynamicUser=yes",
              "StateDirectory=speak4-sync", "ConfigurationDirectory=speak4-sync", "LimitCORE=0",
              "LoadCredential=ghl-token:", "ProtectSystem=strict", "ExecReload=/bin/kill -HUP"})
            EXPECT_NE(u.find(line), std::string::npos) << line;
        EXPECT_NE(u.find(" run\n"), std::string::npos);
    }
    EXPECT_NE(
        read_file(units / "speak4-sync@.service").find("--config /etc/speak4-sync/%i.toml run"),
        std::string::npos);
}
