#include "core/clock.hpp"

namespace speak4 {

sys_time system_clock::now() const {
    return std::chrono::time_point_cast<std::chrono::milliseconds>(
        std::chrono::system_clock::now());
}

const system_clock& system_clock::instance() {
    static const system_clock c;
    return c;
}

} // namespace speak4
