// The daemon keeps secrets out of core dumps: it marks itself non-dumpable (PR_SET_DUMPABLE 0)
// before it reads a credential, and both systemd units set LimitCORE=0. The daemon runs
// in-process here, so the test can ask the kernel about this very process.
#include "app/daemon.hpp"
#include "ghl_sim.hpp"
#include "support/test_support.hpp"

#include <atomic>
#include <gtest/gtest.h>
#include <sys/prctl.h>
#include <thread>

using namespace speak4::testing;

TEST(hardening, the_daemon_is_not_dumpable_and_the_units_allow_no_core) {
    speak4::sim::options so;
    so.rate_limit = false;
    so.static_tokens = {"token-one"};
    speak4::sim::server sim(so);
    sim.start();
    temp_dir dir;
    write_file(dir / "ghl-token", "token-one\n", 0600);
    write_file(dir / "api-token", "api-secret\n", 0600);
    write_file(dir / "speak4-sync.toml",
               "[database]\npath = \"" + (dir / "s.db").string() + "\"\n[ghl]\nbase_url = \"" +
                   sim.base_url() + "\"\nlocation_id = \"" + sim.location_id() +
                   "\"\ntoken_file = \"" + (dir / "ghl-token").string() +
                   "\"\n[api]\nlisten = \"127.0.0.1:" + std::to_string(free_port()) +
                   "\"\ntoken_file = \"" + (dir / "api-token").string() +
                   "\"\n[logging]\nlevel = \"warn\"\n");
    ASSERT_EQ(::prctl(PR_GET_DUMPABLE), 1) << "the test process starts dumpable";

    std::atomic<int> dumpable_when_ready{-1};
    speak4::app::run_options opt;
    opt.config_path = dir / "speak4-sync.toml";
    opt.grace = std::chrono::milliseconds(2000);
    speak4::app::daemon* self = nullptr;
    opt.on_ready = [&](unsigned short) {
        dumpable_when_ready = ::prctl(PR_GET_DUMPABLE);
        self->request_stop();
    };
    speak4::app::daemon d(opt);
    self = &d;
    EXPECT_EQ(d.run(), 0);
    EXPECT_EQ(dumpable_when_ready.load(), 0);
    sim.stop();

    const auto units = std::filesystem::path(SPEAK4_BUILD_DIR) / "systemd";
    for (const char* name : {"speak4-sync.service", "speak4-sync@.service"})
        EXPECT_NE(read_file(units / name).find("\nLimitCORE=0\n"), std::string::npos) << name;
}
