#include "core/time.hpp"

#include <cstdio>

namespace speak4 {
namespace {

bool digits(std::string_view s, std::size_t pos, std::size_t n, int& out) {
    if (pos + n > s.size())
        return false;
    int v = 0;
    for (std::size_t i = pos; i < pos + n; ++i) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    out = v;
    return true;
}

} // namespace

std::string format_iso8601(sys_time t) {
    using namespace std::chrono;
    const auto day = floor<days>(t);
    const year_month_day ymd{day};
    const hh_mm_ss<milliseconds> tod{t - day};
    char buf[40];
    std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02d.%03dZ",
                  static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                  static_cast<unsigned>(ymd.day()), static_cast<int>(tod.hours().count()),
                  static_cast<int>(tod.minutes().count()), static_cast<int>(tod.seconds().count()),
                  static_cast<int>(tod.subseconds().count()));
    return buf;
}

std::optional<sys_time> parse_iso8601(std::string_view s) {
    using namespace std::chrono;
    int y = 0, mo = 0, d = 0;
    if (!digits(s, 0, 4, y) || s.size() < 10 || s[4] != '-' || !digits(s, 5, 2, mo) ||
        s[7] != '-' || !digits(s, 8, 2, d))
        return std::nullopt;
    const year_month_day ymd{year{y}, month{static_cast<unsigned>(mo)},
                             day{static_cast<unsigned>(d)}};
    if (!ymd.ok())
        return std::nullopt;
    sys_time t = time_point_cast<milliseconds>(sys_days{ymd});
    if (s.size() == 10)
        return t;
    if (s[10] != 'T' && s[10] != ' ')
        return std::nullopt;
    int hh = 0, mm = 0, ss = 0;
    if (!digits(s, 11, 2, hh) || s.size() < 16 || s[13] != ':' || !digits(s, 14, 2, mm))
        return std::nullopt;
    std::size_t pos = 16;
    if (pos < s.size() && s[pos] == ':') {
        if (!digits(s, pos + 1, 2, ss))
            return std::nullopt;
        pos += 3;
        if (pos < s.size() && (s[pos] == '.' || s[pos] == ',')) {
            ++pos;
            int ms = 0, n = 0;
            while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
                if (n < 3)
                    ms = ms * 10 + (s[pos] - '0');
                ++n;
                ++pos;
            }
            if (n == 0 || n > 9)
                return std::nullopt;
            for (int i = n; i < 3; ++i)
                ms *= 10;
            t += milliseconds{ms};
        }
    }
    if (hh > 23 || mm > 59 || ss > 60)
        return std::nullopt;
    t += hours{hh} + minutes{mm} + seconds{ss};
    if (pos == s.size())
        return t; // no offset: taken as UTC
    if (s[pos] == 'Z' && pos + 1 == s.size())
        return t;
    if (s[pos] == '+' || s[pos] == '-') {
        int oh = 0, om = 0;
        if (!digits(s, pos + 1, 2, oh))
            return std::nullopt;
        std::size_t p = pos + 3;
        if (p < s.size() && s[p] == ':')
            ++p;
        if (!digits(s, p, 2, om) || p + 2 != s.size() || oh > 23 || om > 59)
            return std::nullopt;
        const auto off = hours{oh} + minutes{om};
        return s[pos] == '+' ? t - off : t + off;
    }
    return std::nullopt;
}

} // namespace speak4
