// libFuzzer target: the TOML configuration (DESIGN §6) through parse_config, as load_config and
// `check-config` read it. config_error is the documented answer to a bad file and is expected;
// any other exception escapes to libFuzzer (a finding), as do crashes, sanitizer reports and the
// invariants below.

#include "core/config.hpp"
#include "core/error.hpp"
#include "fuzz_check.hpp"

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace speak4;
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    const std::filesystem::path base_dir = "/etc/speak4-sync";
    try {
        const config cfg = parse_config(text, "fuzz.toml", base_dir);
        // What the rest of the daemon relies on after a successful parse.
        FUZZ_CHECK(cfg.base_dir == base_dir);
        FUZZ_CHECK(cfg.retry.base_ms <= cfg.retry.max_ms);
        FUZZ_CHECK(cfg.database.path.empty() || cfg.database.path.is_absolute());
        FUZZ_CHECK(cfg.ghl.base_url.empty() || cfg.ghl.base_url.back() != '/');
        (void)to_string(cfg.ghl.auth);
        (void)to_string(cfg.sync.conflict);
        (void)to_string(cfg.sync.list_mode);
        (void)to_string(cfg.sync.fetch_children);
        // Parsing is a pure function of the text.
        FUZZ_CHECK(parse_config(text, "fuzz.toml", base_dir) == cfg);
    } catch (const config_error& e) {
        FUZZ_CHECK(*e.what() != '\0');
    }
    return 0;
}
