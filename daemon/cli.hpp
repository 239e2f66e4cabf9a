#pragma once

namespace speak4::cli {

/// Parses the command line, runs the command, and maps the outcome to a sysexits code.
int main(int argc, char** argv);

} // namespace speak4::cli
