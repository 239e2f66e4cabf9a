#pragma once
// SQLite work runs on its own thread so a slow disk never stalls the network thread
// (DESIGN §7). Coroutines on the network io_context `co_await worker.try_run(fn)`: fn runs on the
// database thread with the connection, and the coroutine resumes on its own executor with a
// db_result: the value, or the kind of failure (busy, full, corrupt, read-only, other).
//
// A job that finds the database locked by another connection (an operator's `sqlite3`, a
// backup) waits busy_timeout inside SQLite, then is run again after a backoff until
// busy_retry_ms has passed; only then does it fail with `busy`. Jobs must therefore be safe to
// run again after a failure (each job's writes are one RAII transaction, rolled back on throw).

#include "store/database.hpp"
#include "store/db_error.hpp"

#include <atomic>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <thread>
#include <type_traits>

namespace speak4::store {

/// What the database thread is doing, read without a job (for /healthz and the watchdog).
struct db_activity {
    std::size_t queued = 0; ///< jobs submitted and not finished
    /// How long the current job has been running, if one is.
    std::optional<std::chrono::milliseconds> job_running;
    bool lock_wait = false; ///< the current job found the database locked and is retrying
    /// Time since the thread last finished a job or an attempt at one.
    std::chrono::milliseconds since_progress{0};
};

/// Owns one SQLite connection and the thread that uses it.
///
/// Threading: `run`/`try_run` may be called from any executor; jobs run one at a time, in
/// submission order, on the worker thread. `activity` is thread-safe. Destruction (or stop())
/// finishes queued jobs, then joins.
class db_worker {
public:
    /// Opens the database (on the calling thread; throws io_error) and starts the thread.
    explicit db_worker(const open_options& opt);
    ~db_worker();
    db_worker(const db_worker&) = delete;
    db_worker& operator=(const db_worker&) = delete;

    /// Runs `fn(db)` on the database thread (again, while the database is locked, see the top
    /// of this file); resumes the caller on its executor with the value or the failure.
    template <class F>
    boost::asio::awaitable<db_result<std::invoke_result_t<F&, SQLite::Database&>>> try_run(F fn) {
        std::exception_ptr thrown;
        co_return co_await execute(fn, thrown);
    }

    /// try_run for callers that still use exceptions: rethrows what fn threw last.
    template <class F>
    boost::asio::awaitable<std::invoke_result_t<F&, SQLite::Database&>> run(F fn) {
        std::exception_ptr thrown;
        auto r = co_await execute(fn, thrown);
        if (!r) {
            if (thrown)
                std::rethrow_exception(thrown);
            throw db_exception(std::move(r.error()));
        }
        if constexpr (!std::is_void_v<std::invoke_result_t<F&, SQLite::Database&>>)
            co_return std::move(*r);
    }

    /// Runs `fn(db)` on the database thread and blocks until done (start-up and tests only,
    /// never from the network thread). Rethrows what fn threw; no retries.
    template <class F>
    auto run_sync(F fn) -> std::invoke_result_t<F&, SQLite::Database&>;

    /// Called on the database thread when a job fails with a kind that cannot be outlived
    /// (`corrupt`); the daemon ends the process. Set before the first job.
    void set_on_fatal(std::function<void(const db_error&)> f) { on_fatal_ = std::move(f); }

    /// Called on the database thread after a job that changed rows (sqlite3_total_changes
    /// moved): the change feed's long-polls wake on pulls and pushes too, not only on local
    /// events. Must be cheap and thread-safe. Set before the first job.
    void set_on_write(std::function<void()> f) { on_write_ = std::move(f); }

    db_activity activity() const;

    /// Finishes queued jobs and joins the thread. Idempotent.
    void stop();

    /// The path of the database file.
    const std::filesystem::path& path() const { return path_; }

private:
    template <class F>
    boost::asio::awaitable<db_result<std::invoke_result_t<F&, SQLite::Database&>>>
    execute(F& fn, std::exception_ptr& thrown) {
        using R = std::invoke_result_t<F&, SQLite::Database&>;
        using value_holder = std::conditional_t<std::is_void_v<R>, bool, std::optional<R>>;
        value_holder out{};
        std::optional<db_error> failure;
        queued_.fetch_add(1);
        // The coroutine frame stays suspended until the handler runs, so the job may refer to
        // its locals.
        co_await boost::asio::async_initiate<const boost::asio::use_awaitable_t<>&, void()>(
            [this, &fn, &out, &failure, &thrown](auto handler) {
                boost::asio::post(
                    ctx_, [this, &fn, &out, &failure, &thrown, h = std::move(handler)]() mutable {
                        failure = attempt(
                            [&] {
                                if constexpr (std::is_void_v<R>) {
                                    (void)out; // (clang: unused capture when void)
                                    fn(*db_);
                                } else
                                    out.emplace(fn(*db_));
                            },
                            thrown);
                        queued_.fetch_sub(1);
                        auto ex = boost::asio::get_associated_executor(h);
                        boost::asio::post(ex, std::move(h));
                    });
            },
            boost::asio::use_awaitable);
        if (failure)
            co_return std::move(*failure);
        if constexpr (std::is_void_v<R>)
            co_return db_result<void>();
        else
            co_return std::move(*out);
    }

    /// Runs `job` on the database thread with the busy retries; the failure, if it failed
    /// (and what it threw last in `thrown`).
    std::optional<db_error> attempt(const std::function<void()>& job, std::exception_ptr& thrown);
    void progress();

    using steady = std::chrono::steady_clock;
    std::filesystem::path path_;
    std::chrono::milliseconds busy_retry_;
    std::unique_ptr<SQLite::Database> db_;
    std::function<void(const db_error&)> on_fatal_;
    std::function<void()> on_write_;
    long long total_changes_ = 0; ///< database thread only
    std::atomic<std::size_t> queued_{0};
    std::atomic<steady::rep> job_started_{0}; // 0: no job running
    std::atomic<steady::rep> last_progress_{0};
    std::atomic<bool> lock_wait_{false};
    boost::asio::io_context ctx_;
    std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
    std::thread thread_;
};

} // namespace speak4::store

#include <future>

template <class F>
auto speak4::store::db_worker::run_sync(F fn) -> std::invoke_result_t<F&, SQLite::Database&> {
    using R = std::invoke_result_t<F&, SQLite::Database&>;
    std::packaged_task<R()> task([&] { return fn(*db_); });
    auto fut = task.get_future();
    boost::asio::post(ctx_, [&task] { task(); });
    return fut.get();
}
