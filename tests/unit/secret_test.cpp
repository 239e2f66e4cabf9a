// read_secret_file: permissions, size, newline handling, odd file types, and no secret value in
// any message.

#include "core/secret.hpp"
#include "support/test_support.hpp"

#include <gtest/gtest.h>
#include <string>
#include <sys/stat.h>

namespace speak4 {
namespace {

namespace fs = std::filesystem;
using speak4::testing::temp_dir;
using speak4::testing::write_file;

// Expects read_secret_file to throw; returns the message after checking it names the path
// and does not contain `value`.
std::string error_of(const fs::path& path, const std::string& value = {}) {
    try {
        (void)read_secret_file(path);
        ADD_FAILURE() << "accepted " << path;
        return {};
    } catch (const std::runtime_error& e) {
        std::string what = e.what();
        EXPECT_NE(what.find(path.string()), std::string::npos) << what;
        if (!value.empty()) {
            EXPECT_EQ(what.find(value), std::string::npos) << "secret value in: " << what;
        }
        return what;
    }
}

TEST(secret, reads_a_0600_file) {
    temp_dir dir;
    write_file(dir / "s", "pit-1234", 0600);
    EXPECT_EQ(read_secret_file(dir / "s").reveal(), "pit-1234");
}

TEST(secret, owner_read_only_is_fine) {
    temp_dir dir;
    write_file(dir / "s", "pit-0400\n", 0400);
    EXPECT_EQ(read_secret_file(dir / "s").reveal(), "pit-0400");
}

TEST(secret, strips_exactly_one_trailing_newline) {
    temp_dir dir;
    const std::pair<std::string, std::string> cases[] = {
        {"tok\n", "tok"},           {"tok\r\n", "tok"},   {"tok\n\n", "tok\n"},
        {"tok\r\n\r\n", "tok\r\n"}, {"tok\r", "tok\r"},   // a lone CR is not a line end
        {"a\nb\n", "a\nb"},         {" tok \n", " tok "}, // other whitespace is part of it
    };
    for (const auto& [content, expected] : cases) {
        write_file(dir / "s", content, 0600);
        EXPECT_EQ(read_secret_file(dir / "s").reveal(), expected);
    }
}

TEST(secret, refuses_group_or_world_access) {
    temp_dir dir;
    const std::pair<unsigned, const char*> cases[] = {
        {0644, "is readable by group or others (mode 0644); chmod 600 it"},
        {0640, "is readable by group or others (mode 0640); chmod 600 it"},
        {0604, "is readable by group or others (mode 0604); chmod 600 it"},
        {0666, "is readable by group or others (mode 0666); chmod 600 it"},
        {0620, "is accessible by group or others (mode 0620); chmod 600 it"},
        {0601, "is accessible by group or others (mode 0601); chmod 600 it"},
    };
    for (const auto& [mode, message] : cases) {
        std::string name = "s"; // not "s" + to_string(): a false -Wrestrict of GCC 12 at -O3
        name += std::to_string(mode);
        const fs::path p = dir / name;
        write_file(p, "pit-do-not-print\n", mode);
        const std::string what = error_of(p, "pit-do-not-print");
        EXPECT_EQ(what, "secret file " + p.string() + " " + message);
    }
}

TEST(secret, refuses_a_missing_file) {
    temp_dir dir;
    const std::string what = error_of(dir / "missing");
    EXPECT_NE(what.find("No such file or directory"), std::string::npos) << what;
}

TEST(secret, refuses_an_empty_file) {
    temp_dir dir;
    write_file(dir / "empty", "", 0600);
    EXPECT_NE(error_of(dir / "empty").find("is empty"), std::string::npos);
    write_file(dir / "newline", "\n", 0600);
    EXPECT_NE(error_of(dir / "newline").find("is empty"), std::string::npos);
    write_file(dir / "crlf", "\r\n", 0600);
    EXPECT_NE(error_of(dir / "crlf").find("is empty"), std::string::npos);
}

TEST(secret, size_limit_is_64_kib) {
    temp_dir dir;
    const std::string at_limit(std::size_t{64} * 1024, 'x');
    write_file(dir / "ok", at_limit, 0600);
    EXPECT_EQ(read_secret_file(dir / "ok").reveal().size(), at_limit.size());

    const std::string over = "pit-huge-" + std::string(std::size_t{64} * 1024, 'y');
    write_file(dir / "big", over, 0600);
    const std::string what = error_of(dir / "big", "pit-huge-");
    EXPECT_NE(what.find("larger than 64 KiB"), std::string::npos) << what;
}

TEST(secret, refuses_a_directory) {
    temp_dir dir;
    fs::create_directory(dir / "d");
    ::chmod((dir / "d").c_str(), 0700);
    EXPECT_NE(error_of(dir / "d").find("is not a regular file"), std::string::npos);
}

TEST(secret, refuses_a_fifo_without_blocking) {
    temp_dir dir;
    ASSERT_EQ(::mkfifo((dir / "fifo").c_str(), 0600), 0);
    EXPECT_NE(error_of(dir / "fifo").find("is not a regular file"), std::string::npos);
}

TEST(secret, follows_a_symlink_to_a_good_file) {
    // systemd credentials and secret managers often hand out symlinks.
    temp_dir dir;
    write_file(dir / "real", "pit-linked\n", 0600);
    fs::create_symlink(dir / "real", dir / "link");
    EXPECT_EQ(read_secret_file(dir / "link").reveal(), "pit-linked");
}

TEST(secret, checks_the_mode_of_the_symlink_target) {
    temp_dir dir;
    write_file(dir / "real", "pit-linked-leaky\n", 0644);
    fs::create_symlink(dir / "real", dir / "link");
    EXPECT_NE(error_of(dir / "link", "pit-linked-leaky").find("(mode 0644)"), std::string::npos);
}

TEST(secret, value_type_keeps_the_value_behind_reveal) {
    const secret empty;
    EXPECT_TRUE(empty.empty());
    const secret a("x"), b("x"), c("y");
    EXPECT_FALSE(a.empty());
    EXPECT_EQ(a.reveal(), "x");
    EXPECT_TRUE(a == b);
    EXPECT_FALSE(a == c);
}

} // namespace
} // namespace speak4
