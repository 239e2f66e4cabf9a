#include "store/db_worker.hpp"

#include <algorithm>
#include <sqlite3.h>

namespace speak4::store {

db_worker::db_worker(const open_options& opt)
    : path_(opt.path)
    , busy_retry_(opt.busy_retry_ms)
    , db_(open_database(opt)) {
    last_progress_ = steady::now().time_since_epoch().count();
    work_.emplace(ctx_.get_executor());
    thread_ = std::thread([this] { ctx_.run(); });
}

db_worker::~db_worker() {
    stop();
}

void db_worker::progress() {
    last_progress_ = steady::now().time_since_epoch().count();
}

std::optional<db_error> db_worker::attempt(const std::function<void()>& job,
                                           std::exception_ptr& thrown) {
    const auto started = steady::now();
    job_started_ = started.time_since_epoch().count();
    auto backoff = std::chrono::milliseconds(50);
    std::optional<db_error> failure;
    for (;;) {
        try {
            job();
            failure.reset();
            thrown = nullptr;
        } catch (const std::exception& e) {
            failure = classify(path_, e);
            thrown = std::current_exception();
        } catch (...) {
            thrown = std::current_exception();
            failure = db_error{db_errc::other, "database " + path_.string() + ": unknown error"};
        }
        progress();
        // Another connection holds the lock: wait it out (busy_timeout already waited inside
        // SQLite), backing off, up to busy_retry. The thread only waits; no other job could
        // take the lock either, and keeping the order keeps each caller's writes in order.
        if (failure && failure->kind == db_errc::busy && steady::now() - started < busy_retry_) {
            lock_wait_ = true;
            std::this_thread::sleep_for(backoff);
            backoff = std::min(backoff * 2, std::chrono::milliseconds(1000));
            continue;
        }
        break;
    }
    lock_wait_ = false;
    job_started_ = 0;
    if (on_write_) {
        const long long total = sqlite3_total_changes64(db_->getHandle());
        if (total != total_changes_) {
            total_changes_ = total;
            if (!failure)
                on_write_();
        }
    }
    if (failure && failure->kind == db_errc::corrupt && on_fatal_)
        on_fatal_(*failure);
    return failure;
}

db_activity db_worker::activity() const {
    const auto now = steady::now();
    db_activity a;
    a.queued = queued_.load();
    if (const auto started = job_started_.load(); started != 0)
        a.job_running = std::chrono::duration_cast<std::chrono::milliseconds>(
            now - steady::time_point(steady::duration(started)));
    a.lock_wait = lock_wait_.load();
    a.since_progress = std::chrono::duration_cast<std::chrono::milliseconds>(
        now - steady::time_point(steady::duration(last_progress_.load())));
    return a;
}

void db_worker::stop() {
    if (!thread_.joinable())
        return;
    work_.reset(); // let run() return once the queued jobs are done
    thread_.join();
}

} // namespace speak4::store
