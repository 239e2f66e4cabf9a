#include "store/db_worker.hpp"

namespace speak4::store {

db_worker::db_worker(const open_options& opt)
    : path_(opt.path)
    , db_(open_database(opt)) {
    work_.emplace(ctx_.get_executor());
    thread_ = std::thread([this] { ctx_.run(); });
}

db_worker::~db_worker() {
    stop();
}

void db_worker::stop() {
    if (!thread_.joinable())
        return;
    work_.reset(); // let run() return once the queued jobs are done
    thread_.join();
}

} // namespace speak4::store
