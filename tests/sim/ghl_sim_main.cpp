// ghl-sim: the GHL simulator as a standalone program (see ghl_sim.hpp and README.md).
//
//   ghl-sim [--port N] [--host ADDR] [--tls --ca-out FILE] [--seed-contacts N] [--location ID]
//           [--token TOK]... [--client-id ID] [--client-secret S] [--burst N] [--window-ms N]
//           [--daily N] [--no-rate-limit] [--retry-after] [--allow-duplicates]
//           [--webhook-url URL] [--seed N]
//
// Prints "listening on URL" and runs until SIGINT or SIGTERM, then exits 0.

#include "ghl_sim.hpp"

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <pthread.h>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

void usage() {
    std::cerr << "usage: ghl-sim [--port N] [--host ADDR] [--tls] [--ca-out FILE]\n"
                 "               [--seed-contacts N] [--location ID] [--token TOK]...\n"
                 "               [--client-id ID] [--client-secret S] [--burst N]\n"
                 "               [--window-ms N] [--daily N] [--no-rate-limit] [--retry-after]\n"
                 "               [--allow-duplicates] [--webhook-url URL] [--seed N]\n";
}

long long to_number(const std::string& flag, const std::string& value) {
    try {
        std::size_t used = 0;
        long long n = std::stoll(value, &used);
        if (used != value.size()) {
            throw std::invalid_argument(value);
        }
        return n;
    } catch (const std::exception&) {
        throw std::invalid_argument(flag + ": not a number: " + value);
    }
}

} // namespace

int main(int argc, char** argv) {
    speak4::sim::options opt;
    std::string ca_out;
    long long seed_contacts = 0;
    bool token_given = false;
    try {
        std::vector<std::string> args(argv + 1, argv + argc);
        for (std::size_t i = 0; i < args.size(); ++i) {
            const std::string& a = args[i];
            auto value = [&]() -> std::string {
                if (i + 1 >= args.size()) {
                    throw std::invalid_argument(a + ": missing value");
                }
                return args[++i];
            };
            if (a == "--port") {
                auto n = to_number(a, value());
                if (n < 0 || n > 65535) {
                    throw std::invalid_argument("--port: out of range");
                }
                opt.port = static_cast<std::uint16_t>(n);
            } else if (a == "--host") {
                opt.host = value();
            } else if (a == "--tls") {
                opt.tls = true;
            } else if (a == "--ca-out") {
                ca_out = value();
            } else if (a == "--seed-contacts") {
                seed_contacts = to_number(a, value());
            } else if (a == "--location") {
                opt.location_id = value();
            } else if (a == "--token") {
                if (!token_given) {
                    opt.static_tokens.clear();
                    token_given = true;
                }
                opt.static_tokens.push_back(value());
            } else if (a == "--client-id") {
                opt.client_id = value();
            } else if (a == "--client-secret") {
                opt.client_secret = value();
            } else if (a == "--burst") {
                opt.burst = static_cast<int>(to_number(a, value()));
            } else if (a == "--window-ms") {
                opt.window_ms = static_cast<int>(to_number(a, value()));
            } else if (a == "--daily") {
                opt.daily = to_number(a, value());
            } else if (a == "--no-rate-limit") {
                opt.rate_limit = false;
            } else if (a == "--retry-after") {
                opt.send_retry_after = true;
            } else if (a == "--allow-duplicates") {
                opt.allow_duplicates = true;
            } else if (a == "--webhook-url") {
                opt.webhook_url = value();
            } else if (a == "--seed") {
                opt.seed = static_cast<std::uint32_t>(to_number(a, value()));
            } else if (a == "--help" || a == "-h") {
                usage();
                return 0;
            } else {
                throw std::invalid_argument("unknown argument " + a);
            }
        }
        if (!ca_out.empty() && !opt.tls) {
            throw std::invalid_argument("--ca-out needs --tls");
        }
    } catch (const std::exception& e) {
        std::cerr << "ghl-sim: " << e.what() << "\n";
        usage();
        return 64; // EX_USAGE
    }

    // Block the signals before any thread starts, then wait for them synchronously. A shell
    // starts background jobs with SIGINT ignored; an ignored signal never becomes pending, so
    // restore the default first.
    std::signal(SIGINT, SIG_DFL);
    std::signal(SIGTERM, SIG_DFL);
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);

    try {
        speak4::sim::server sim(opt);
        sim.start();
        if (!ca_out.empty()) {
            std::ofstream out(ca_out, std::ios::trunc);
            out << sim.pki().ca_cert_pem;
            if (!out.flush()) {
                throw std::runtime_error("--ca-out: cannot write " + ca_out);
            }
        }
        if (seed_contacts > 0) {
            sim.seed_contacts(static_cast<std::size_t>(seed_contacts));
        }
        std::cout << "listening on " << sim.base_url() << std::endl;
        int sig = 0;
        sigwait(&signals, &sig);
        sim.stop();
    } catch (const std::exception& e) {
        std::cerr << "ghl-sim: " << e.what() << "\n";
        return 70; // EX_SOFTWARE
    }
    return 0;
}
