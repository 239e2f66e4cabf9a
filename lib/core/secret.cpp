#include "core/secret.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <stdexcept>
#include <sys/stat.h>
#include <unistd.h>

namespace speak4 {

namespace {

constexpr std::size_t max_secret_bytes = std::size_t{64} * 1024;

[[noreturn]] void fail(const std::filesystem::path& path, const std::string& problem) {
    throw std::runtime_error("secret file " + path.string() + problem);
}

[[noreturn]] void fail_errno(const std::filesystem::path& path, int err) {
    fail(path, std::string(": ") + std::strerror(err));
}

} // namespace

secret read_secret_file(const std::filesystem::path& path) {
    // Open first and check the descriptor, not the name, so the file we check is the file we
    // read. O_NONBLOCK keeps a FIFO planted at the path from blocking the open; it has no
    // effect on a regular file.
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        fail_errno(path, errno);
    struct closer {
        int fd;
        ~closer() { ::close(fd); }
    } guard{fd};

    struct stat st {};
    if (::fstat(fd, &st) != 0)
        fail_errno(path, errno);
    if (!S_ISREG(st.st_mode))
        fail(path, " is not a regular file");
    if ((st.st_mode & 077) != 0) {
        char mode[8];
        std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
        fail(path, std::string(" is ") + ((st.st_mode & 044) != 0 ? "readable" : "accessible") +
                       " by group or others (mode " + mode + "); chmod 600 it");
    }
    if (static_cast<std::size_t>(st.st_size) > max_secret_bytes)
        fail(path, " is larger than 64 KiB");

    // Read at most one byte past the limit, in case the file grew since fstat.
    std::string v;
    char buf[4096];
    for (;;) {
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            fail_errno(path, errno);
        }
        if (n == 0)
            break;
        v.append(buf, static_cast<std::size_t>(n));
        if (v.size() > max_secret_bytes)
            fail(path, " is larger than 64 KiB");
    }

    // One trailing "\n" or "\r\n" (what editors and `echo` add), nothing else.
    if (!v.empty() && v.back() == '\n') {
        v.pop_back();
        if (!v.empty() && v.back() == '\r')
            v.pop_back();
    }
    if (v.empty())
        fail(path, " is empty");
    return secret(std::move(v));
}

} // namespace speak4
