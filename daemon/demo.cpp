#include "demo.hpp"

#include "app/daemon.hpp"
#include "core/json.hpp"
#include "core/time.hpp"
#include "ghl_sim.hpp"
#include "store/database.hpp"

#include <SQLiteCpp/Statement.h>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json/serialize.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <future>
#include <sys/stat.h>
#include <thread>

namespace speak4::app {
namespace {

namespace bj = boost::json;
using namespace std::chrono_literals;

void write_file(const std::filesystem::path& p, const std::string& content, unsigned mode) {
    std::ofstream(p, std::ios::trunc) << content;
    ::chmod(p.c_str(), mode);
}

/// The Speak4 side of the script: what a CRM would send while a user works.
const char* const speak4_events[] = {
    R"({"type":"contact.created","event_id":"demo-1","contact":{"speak4_id":"s4-ada","firstName":"Ada","lastName":"Lovelace","email":"ada@example.com","phone":"+15551234567","tags":["vip"]},"notes":[{"speak4_id":"n-ada-1","body":"Called, wants a demo"}]})",
    R"({"type":"task.created","event_id":"demo-2","contact":{"speak4_id":"s4-ada"},"task":{"speak4_id":"t-ada-1","title":"Send demo link","dueDate":"2026-12-01T15:00:00Z"}})",
    R"({"type":"contact.updated","event_id":"demo-3","contact":{"speak4_id":"s4-ada","mobile":"+15557654321"}})",
    R"({"type":"lead.created","event_id":"demo-4","contact":{"speak4_id":"s4-grace","firstName":"Grace","lastName":"Hopper","email":"grace@example.com"}})",
    R"({"type":"task.completed","event_id":"demo-5","contact":{"speak4_id":"s4-ada"},"task":{"speak4_id":"t-ada-1","completed":true}})",
};

long long scalar(SQLite::Database& db, const std::string& sql) {
    return db.execAndGet(sql).getInt64();
}

/// Waits until `pred` holds, reading the mirror (the daemon writes it from its own thread).
bool wait_for(const std::filesystem::path& db_path,
              const std::function<bool(SQLite::Database&)>& pred, std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
        try {
            SQLite::Database db(db_path.string(), SQLite::OPEN_READONLY);
            db.setBusyTimeout(2000);
            if (pred(db))
                return true;
        } catch (const std::exception&) {
        }
        std::this_thread::sleep_for(100ms);
    }
    return false;
}

/// POSTs one event to the daemon's API (the way Speak4 does) and returns "STATUS BODY".
std::string post_event(unsigned short port, const std::string& token, const std::string& body) {
    namespace beast = boost::beast;
    namespace http = beast::http;
    try {
        boost::asio::io_context io;
        beast::tcp_stream stream(io);
        stream.expires_after(10s);
        stream.connect(
            boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), port));
        http::request<http::string_body> req(http::verb::post, "/v1/events", 11);
        req.set(http::field::host, "127.0.0.1");
        req.set(http::field::authorization, "Bearer " + token);
        req.set(http::field::content_type, "application/json");
        req.body() = body;
        req.prepare_payload();
        http::write(stream, req);
        beast::flat_buffer buf;
        http::response<http::string_body> res;
        http::read(stream, buf, res);
        beast::error_code ec;
        stream.socket().shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
        return std::to_string(res.result_int()) + " " + res.body();
    } catch (const std::exception& e) {
        return std::string("failed: ") + e.what();
    }
}

} // namespace

int run_demo(const demo_options& opt) {
    const auto dir = std::filesystem::absolute(opt.dir);
    std::filesystem::create_directories(dir);
    const auto db_path = dir / "speak4-sync.db";
    for (const char* f : {"speak4-sync.db", "speak4-sync.db-wal", "speak4-sync.db-shm"})
        std::filesystem::remove(dir / f);
    auto say = [&](const std::string& s) {
        std::printf("%s\n", s.c_str());
        std::fflush(stdout);
    };

    // The GHL side: the bundled simulator on loopback, with a few records of its own.
    sim::options so;
    so.static_tokens = {"demo-private-token"};
    sim::server ghl(so);
    ghl.start();
    const auto now = std::chrono::system_clock::now();
    const std::string bo = ghl.seed_contact({{"firstName", "Bo"},
                                             {"lastName", "Diddley"},
                                             {"email", "bo@example.com"},
                                             {"tags", bj::array{"vip"}}});
    ghl.seed_contact(
        {{"firstName", "Carol"}, {"lastName", "Shaw"}, {"email", "carol@example.com"}});
    ghl.seed_contact({{"firstName", "Dan"}, {"lastName", "Bricklin"}, {"phone", "+15550001111"}});
    ghl.seed_task(bo, {{"title", "Call back about pricing"},
                       {"dueDate", "2026-12-02T10:00:00.000Z"},
                       {"completed", false}});
    ghl.seed_note(bo, {{"body", "Met at the trade show"}});
    const auto start = std::chrono::floor<std::chrono::seconds>(now + 3h);
    const std::string start_s =
        format_iso8601(std::chrono::time_point_cast<std::chrono::milliseconds>(start));
    ghl.seed_appointment(
        bo,
        {{"title", "Product demo"},
         {"startTime", start_s},
         {"endTime",
          format_iso8601(std::chrono::time_point_cast<std::chrono::milliseconds>(start + 30min))},
         {"appointmentStatus", "confirmed"}});
    say("GHL simulator      " + ghl.base_url() +
        " (3 contacts incl. Bo with a task, a note and an appointment)");

    // The daemon, configured for the simulator.
    write_file(dir / "ghl-token", "demo-private-token\n", 0600);
    write_file(dir / "api-token", "demo-api-token\n", 0600);
    const std::string toml =
        "# Written by `speak4-sync demo`.\n[database]\npath = \"" + db_path.string() +
        "\"\n[ghl]\nbase_url = \"" + ghl.base_url() + "\"\nlocation_id = \"" + ghl.location_id() +
        "\"\ntoken_file = \"" + (dir / "ghl-token").string() +
        "\"\n[api]\nlisten = \"127.0.0.1:" + std::to_string(opt.api_port) + "\"\ntoken_file = \"" +
        (dir / "api-token").string() +
        "\"\n[sync]\npoll_interval_seconds = 1\ncoalesce_ms = 50\n"
        "[rules]\nappointment_reminder_minutes = 60\n[rules.tag_routes]\nvip = "
        "\"priority-callback\"\n"
        "[rules.field_map]\nmobile = \"phone\"\n[logging]\nlevel = \"warn\"\nformat = \"text\"\n";
    write_file(dir / "demo.toml", toml, 0644);
    say("config             " + (dir / "demo.toml").string());

    run_options ro;
    ro.config_path = dir / "demo.toml";
    std::promise<unsigned short> ready;
    ro.on_ready = [&ready](unsigned short port) { ready.set_value(port); };
    daemon d(ro);
    int daemon_exit = -1;
    std::thread runner([&] {
        try {
            daemon_exit = d.run();
        } catch (const std::exception& e) {
            std::fprintf(stderr, "demo: the daemon failed to start: %s\n", e.what());
            daemon_exit = 70;
            try {
                ready.set_value(0);
            } catch (...) {
            }
        }
    });
    const unsigned short port = ready.get_future().get();
    if (port == 0) {
        runner.join();
        ghl.stop();
        return daemon_exit;
    }
    say("daemon             ready, local API on 127.0.0.1:" + std::to_string(port));

    bool ok = true;
    auto step = [&](bool passed, const std::string& what) {
        say(std::string(passed ? "  ok   " : "  FAIL ") + what);
        ok = ok && passed;
    };

    // 1. The initial pull imports what GHL already has; rules run on it.
    step(wait_for(
             db_path,
             [](SQLite::Database& db) { return scalar(db, "SELECT COUNT(*) FROM contacts") >= 3; },
             20s),
         "initial pull imported GHL's contacts into the mirror");
    step(wait_for(
             db_path,
             [](SQLite::Database& db) {
                 return scalar(db, "SELECT COUNT(*) FROM tasks") >= 1 &&
                        scalar(db, "SELECT COUNT(*) FROM reminders") >= 1;
             },
             20s),
         "Bo's task, note and appointment followed; a reminder is set 60 min before the "
         "appointment");
    step(wait_for(
             db_path,
             [](SQLite::Database& db) {
                 return scalar(
                            db,
                            "SELECT COUNT(*) FROM contacts WHERE workflow = 'priority-callback'") >=
                        1;
             },
             5s),
         "tag route: Bo's \"vip\" tag put him in workflow priority-callback");

    // 2. Speak4 events, pushed to GHL.
    for (const char* ev : speak4_events)
        say("  POST /v1/events   " + post_event(port, "demo-api-token", ev));
    step(wait_for(
             db_path,
             [](SQLite::Database& db) {
                 return scalar(
                            db,
                            "SELECT COUNT(*) FROM outbox WHERE state IN ('pending','inflight')") ==
                            0 &&
                        scalar(db, "SELECT COUNT(*) FROM contacts WHERE speak4_id = 's4-ada' AND "
                                   "ghl_id IS NOT NULL") == 1;
             },
             20s),
         "Speak4's events were pushed: Ada created in GHL with her note and task, the lead matched "
         "or created");
    {
        const bj::value state = ghl.state();
        bool ada_phone = false;
        for (const auto& c : state.at("contacts").as_array())
            if (c.as_object().contains("email") && c.at("email") == "ada@example.com")
                ada_phone = c.as_object().contains("phone") && c.at("phone") == "+15557654321";
        step(ada_phone, "GHL has Ada's new phone (Speak4's \"mobile\" mapped to GHL's phone)");
    }

    // 3. Someone edits a contact in GHL: the change comes back into the mirror.
    ghl.update_contact(bo, {{"lastName", "Diddley-Bates"}, {"tags", bj::array{"vip", "hot"}}});
    step(wait_for(
             db_path,
             [&](SQLite::Database& db) {
                 SQLite::Statement q(db, "SELECT COUNT(*) FROM contacts WHERE ghl_id = ? AND "
                                         "last_name = 'Diddley-Bates'");
                 q.bind(1, bo);
                 return q.executeStep() && q.getColumn(0).getInt() == 1;
             },
             20s),
         "a remote edit in GHL (Bo's last name) was pulled into the mirror");

    // Summary from the mirror.
    {
        SQLite::Database db(db_path.string(), SQLite::OPEN_READONLY);
        say("");
        say("mirror             " + std::to_string(scalar(db, "SELECT COUNT(*) FROM contacts")) +
            " contacts, " + std::to_string(scalar(db, "SELECT COUNT(*) FROM tasks")) + " tasks, " +
            std::to_string(scalar(db, "SELECT COUNT(*) FROM notes")) + " notes, " +
            std::to_string(scalar(db, "SELECT COUNT(*) FROM appointments")) + " appointment(s), " +
            std::to_string(scalar(db, "SELECT COUNT(*) FROM reminders")) + " reminder(s)");
        say("outbox             " +
            std::to_string(scalar(db, "SELECT COUNT(*) FROM outbox WHERE state = 'done'")) +
            " done, " +
            std::to_string(scalar(db, "SELECT COUNT(*) FROM outbox WHERE state = 'dead'")) +
            " dead");
        say("audit              " + std::to_string(scalar(db, "SELECT COUNT(*) FROM audit_log")) +
            " GHL API calls recorded");
        say("change feed        " + std::to_string(scalar(db, "SELECT COUNT(*) FROM changes")) +
            " changes");
    }
    d.request_stop();
    runner.join();
    ghl.stop();
    say("");
    say("database           " + db_path.string());
    say("look around        sqlite3 -header -column " + db_path.string() +
        " 'SELECT id, first_name, last_name, email, ghl_id, workflow FROM contacts'");
    say("                   speak4-sync --config " + (dir / "demo.toml").string() + " audit");
    say(ok && daemon_exit == 0 ? "demo finished: every step passed"
                               : "demo finished with failures");
    return ok && daemon_exit == 0 ? 0 : 70;
}

} // namespace speak4::app
