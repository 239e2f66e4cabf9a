// speak4-sync: a thin main. Everything else lives in lib/ (the program) and cli.cpp (arguments).
#include "cli.hpp"

int main(int argc, char** argv) {
    return speak4::cli::main(argc, argv);
}
