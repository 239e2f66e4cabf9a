#include "support/test_support.hpp"

#include <arpa/inet.h>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <netinet/in.h>
#include <poll.h>
#include <random>
#include <signal.h>
#include <sstream>
#include <stdexcept>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace speak4::testing {

temp_dir::temp_dir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/speak4-test-XXXXXX";
    if (!::mkdtemp(tmpl.data()))
        throw std::runtime_error("mkdtemp failed: " + std::string(std::strerror(errno)));
    path_ = tmpl;
}

temp_dir::~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
}

void write_file(const std::filesystem::path& path, const std::string& content, unsigned mode) {
    {
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        if (!out)
            throw std::runtime_error("cannot write " + path.string());
        out << content;
    }
    ::chmod(path.c_str(), mode);
}

std::string read_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw std::runtime_error("cannot read " + path.string());
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

run_result run_program(const std::string& program, const std::vector<std::string>& args,
                       const std::string& stdin_text, int timeout_seconds) {
    int in_pipe[2], out_pipe[2], err_pipe[2];
    if (::pipe2(in_pipe, O_CLOEXEC) || ::pipe2(out_pipe, O_CLOEXEC) || ::pipe2(err_pipe, O_CLOEXEC))
        throw std::runtime_error("pipe failed");
    const pid_t pid = ::fork();
    if (pid < 0)
        throw std::runtime_error("fork failed");
    if (pid == 0) {
        ::dup2(in_pipe[0], 0);
        ::dup2(out_pipe[1], 1);
        ::dup2(err_pipe[1], 2);
        std::vector<char*> argv;
        argv.push_back(const_cast<char*>(program.c_str()));
        for (const auto& a : args)
            argv.push_back(const_cast<char*>(a.c_str()));
        argv.push_back(nullptr);
        ::execv(program.c_str(), argv.data());
        ::_exit(127);
    }
    ::close(in_pipe[0]);
    ::close(out_pipe[1]);
    ::close(err_pipe[1]);
    ::signal(SIGPIPE, SIG_IGN);
    run_result r;
    std::size_t written = 0;
    if (stdin_text.empty()) {
        ::close(in_pipe[1]);
        in_pipe[1] = -1;
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_seconds);
    bool out_open = true, err_open = true;
    while (out_open || err_open) {
        pollfd fds[3];
        int n = 0;
        int out_i = -1, err_i = -1, in_i = -1;
        if (out_open) {
            fds[n] = {out_pipe[0], POLLIN, 0};
            out_i = n++;
        }
        if (err_open) {
            fds[n] = {err_pipe[0], POLLIN, 0};
            err_i = n++;
        }
        if (in_pipe[1] >= 0) {
            fds[n] = {in_pipe[1], POLLOUT, 0};
            in_i = n++;
        }
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            ::kill(pid, SIGKILL);
            r.err += "\n[test_support: timed out after " + std::to_string(timeout_seconds) + "s]";
            break;
        }
        if (::poll(fds, n, static_cast<int>(left.count())) < 0 && errno != EINTR)
            break;
        char buf[65536];
        auto drain = [&](int idx, int fd, std::string& dst, bool& open) {
            if (idx < 0 || !(fds[idx].revents & (POLLIN | POLLHUP | POLLERR)))
                return;
            const ssize_t k = ::read(fd, buf, sizeof buf);
            if (k <= 0)
                open = false;
            else
                dst.append(buf, static_cast<std::size_t>(k));
        };
        drain(out_i, out_pipe[0], r.out, out_open);
        drain(err_i, err_pipe[0], r.err, err_open);
        if (in_i >= 0 && (fds[in_i].revents & (POLLOUT | POLLERR | POLLHUP))) {
            const ssize_t k =
                ::write(in_pipe[1], stdin_text.data() + written, stdin_text.size() - written);
            if (k > 0)
                written += static_cast<std::size_t>(k);
            if (k <= 0 || written == stdin_text.size()) {
                ::close(in_pipe[1]);
                in_pipe[1] = -1;
            }
        }
    }
    if (in_pipe[1] >= 0)
        ::close(in_pipe[1]);
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return r;
}

child_process::child_process(const std::string& program, const std::vector<std::string>& args,
                             const std::filesystem::path& out_file,
                             const std::filesystem::path& err_file,
                             const std::vector<std::string>& extra_env) {
    const pid_t pid = ::fork();
    if (pid < 0)
        throw std::runtime_error("fork failed");
    if (pid == 0) {
        const int in = ::open("/dev/null", O_RDONLY);
        const int out = ::open(out_file.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
        const int err = ::open(err_file.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
        ::dup2(in, 0);
        ::dup2(out, 1);
        ::dup2(err, 2);
        for (const auto& e : extra_env)
            ::putenv(const_cast<char*>(e.c_str()));
        std::vector<char*> argv;
        argv.push_back(const_cast<char*>(program.c_str()));
        for (const auto& a : args)
            argv.push_back(const_cast<char*>(a.c_str()));
        argv.push_back(nullptr);
        ::execv(program.c_str(), argv.data());
        ::_exit(127);
    }
    pid_ = pid;
}

child_process::~child_process() {
    if (!reaped_ && pid_ > 0) {
        ::kill(pid_, SIGKILL);
        wait(10000);
    }
}

void child_process::signal(int sig) {
    if (!reaped_ && pid_ > 0)
        ::kill(pid_, sig);
}

bool child_process::running() {
    if (reaped_)
        return false;
    int st = 0;
    const pid_t r = ::waitpid(pid_, &st, WNOHANG);
    if (r == pid_) {
        reaped_ = true;
        status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        return false;
    }
    return true;
}

int child_process::wait(int timeout_ms) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (running()) {
        if (std::chrono::steady_clock::now() >= deadline)
            return -1;
        ::usleep(5000);
    }
    return status_;
}

unsigned short free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    ::close(fd);
    return ntohs(a.sin_port);
}

bool wait_until(const std::function<bool()>& pred, int timeout_ms) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
        if (pred())
            return true;
        if (std::chrono::steady_clock::now() >= deadline)
            return false;
        ::usleep(20000);
    }
}

std::filesystem::path binary_path() {
    return SPEAK4_BINARY;
}
std::filesystem::path source_dir() {
    return SPEAK4_SOURCE_DIR;
}
std::filesystem::path shared_dir() {
    return SPEAK4_SHARED_DIR;
}

run_result run_cli(const std::vector<std::string>& args, const std::string& stdin_text,
                   int timeout_seconds) {
    return run_program(binary_path().string(), args, stdin_text, timeout_seconds);
}

} // namespace speak4::testing
