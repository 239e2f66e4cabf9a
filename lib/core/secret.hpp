#pragma once
// Secrets (tokens, client secrets) are held in a type that cannot be printed by accident.

#include <filesystem>
#include <string>

namespace speak4 {

/// A secret string. It has no stream operator and no implicit conversion: the only way to
/// the characters is `reveal()`, which is greppable.
class secret {
public:
    secret() = default;
    explicit secret(std::string value)
        : value_(std::move(value)) {}
    const std::string& reveal() const noexcept { return value_; }
    bool empty() const noexcept { return value_.empty(); }
    friend bool operator==(const secret&, const secret&) = default;

private:
    std::string value_;
};

/// Reads a secret from `path`: the whole file, with one trailing newline (or CRLF) stripped.
/// Refuses a file that the group or others can read ("... is readable by group or others
/// (mode 0644); chmod 600 it"), an empty file, a missing file and one over 64 KiB.
/// Throws std::runtime_error with a message naming the path.
secret read_secret_file(const std::filesystem::path& path);

} // namespace speak4
