#pragma once
// Exit codes (sysexits.h) and the exceptions used on the control plane (configuration,
// start-up, CLI). Request handling uses result types instead.

#include <stdexcept>
#include <string>

namespace speak4 {

/// Process exit codes, as in sysexits.h.
enum class exit_code : int {
    ok = 0,
    usage = 64,       // EX_USAGE: bad command line
    data_err = 65,    // EX_DATAERR: bad input data (an invalid event)
    no_input = 66,    // EX_NOINPUT: an input file does not exist
    unavailable = 69, // EX_UNAVAILABLE: a service is unavailable
    software = 70,    // EX_SOFTWARE: internal error
    io_err = 74,      // EX_IOERR: database or file I/O failed
    temp_fail = 75,   // EX_TEMPFAIL
    config = 78,      // EX_CONFIG: bad configuration
};

/// A configuration problem. `key` is the dotted TOML key, `line` the 1-based line (0 if unknown).
class config_error : public std::runtime_error {
public:
    config_error(std::string key, int line, const std::string& what)
        : std::runtime_error(what)
        , key_(std::move(key))
        , line_(line) {}
    const std::string& key() const noexcept { return key_; }
    int line() const noexcept { return line_; }

private:
    std::string key_;
    int line_;
};

/// Bad input data. `field` is the dotted path of the offending field ("task.title").
class data_error : public std::runtime_error {
public:
    data_error(std::string field, const std::string& what)
        : std::runtime_error(what)
        , field_(std::move(field)) {}
    const std::string& field() const noexcept { return field_; }

private:
    std::string field_;
};

/// A database or file I/O failure.
class io_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// A bad command line.
class usage_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

} // namespace speak4
