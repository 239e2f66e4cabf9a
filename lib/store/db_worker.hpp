#pragma once
// SQLite work runs on its own thread so a slow disk never stalls the network thread
// (DESIGN §7). Coroutines on the network io_context `co_await worker.run(fn)`: fn runs on the
// database thread with the connection, and the coroutine resumes on its own executor.

#include "store/database.hpp"

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <exception>
#include <memory>
#include <optional>
#include <thread>
#include <type_traits>

namespace speak4::store {

/// Owns one SQLite connection and the thread that uses it.
///
/// Threading: `run` may be called from any executor; jobs run one at a time, in submission
/// order, on the worker thread. Destruction (or stop()) finishes queued jobs, then joins.
class db_worker {
public:
    /// Opens the database (on the calling thread; throws io_error) and starts the thread.
    explicit db_worker(const open_options& opt);
    ~db_worker();
    db_worker(const db_worker&) = delete;
    db_worker& operator=(const db_worker&) = delete;

    /// Runs `fn(db)` on the database thread; resumes the caller on its executor with the
    /// result, or rethrows what fn threw.
    template <class F>
    boost::asio::awaitable<std::invoke_result_t<F&, SQLite::Database&>> run(F fn) {
        using R = std::invoke_result_t<F&, SQLite::Database&>;
        using value_holder = std::conditional_t<std::is_void_v<R>, bool, std::optional<R>>;
        value_holder out{};
        std::exception_ptr failure;
        // The coroutine frame stays suspended until the handler runs, so the job may refer to
        // its locals.
        co_await boost::asio::async_initiate<const boost::asio::use_awaitable_t<>&, void()>(
            [this, &fn, &out, &failure](auto handler) {
                boost::asio::post(ctx_,
                                  [this, &fn, &out, &failure, h = std::move(handler)]() mutable {
                                      try {
                                          if constexpr (std::is_void_v<R>) {
                                              (void)out; // (clang: unused capture when void)
                                              fn(*db_);
                                          } else
                                              out.emplace(fn(*db_));
                                      } catch (...) {
                                          failure = std::current_exception();
                                      }
                                      auto ex = boost::asio::get_associated_executor(h);
                                      boost::asio::post(ex, std::move(h));
                                  });
            },
            boost::asio::use_awaitable);
        if (failure)
            std::rethrow_exception(failure);
        if constexpr (!std::is_void_v<R>)
            co_return std::move(*out);
    }

    /// Runs `fn(db)` on the database thread and blocks until done (start-up and tests only,
    /// never from the network thread).
    template <class F>
    auto run_sync(F fn) -> std::invoke_result_t<F&, SQLite::Database&>;

    /// Finishes queued jobs and joins the thread. Idempotent.
    void stop();

    /// The path of the database file.
    const std::filesystem::path& path() const { return path_; }

private:
    std::filesystem::path path_;
    std::unique_ptr<SQLite::Database> db_;
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
