// The command line (DESIGN §5): parse arguments, load the config, hand off to lib/, map the
// outcome to a sysexits code. Exceptions from the control plane are caught once, here.

#include "cli.hpp"

#include "app/auth.hpp"
#include "app/daemon.hpp"
#include "app/fields.hpp"
#include "app/health_probe.hpp"
#include "app/online_check.hpp"
#include "core/config.hpp"
#include "core/error.hpp"
#include "core/json.hpp"
#include "core/log.hpp"
#include "demo.hpp"
#include "init.hpp"
#include "store/database.hpp"
#include "store/inspect.hpp"
#include "store/migrations.hpp"
#include "store/plan.hpp"
#include "sync/event.hpp"
#include "sync/intake.hpp"
#include "sync/reconciler.hpp"

#include <SQLiteCpp/Exception.h>
#include <boost/json/serialize.hpp>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace speak4::cli {
namespace {

namespace bj = boost::json;

constexpr const char* default_config_path = "/etc/speak4-sync/speak4-sync.toml";

/// The parsed command line: global options, the command, and the rest.
struct invocation {
    std::optional<std::string> config_path;
    std::string command;
    std::vector<std::string> args;
    /// The database a command opened, so a SQLite failure can name it.
    mutable std::filesystem::path db_path;
};

const char* const usage_text = R"(usage: speak4-sync [--config PATH] COMMAND [options]

Keeps Speak4 contacts, tasks and notes in two-way sync with HighLevel (GHL).

commands:
  init                 guided first setup: writes the config and secret files
  run                  the daemon (foreground; systemd Type=notify)
  demo [--dir DIR] [--port N]
                       the whole loop against the bundled GHL simulator
  migrate              apply database migrations, print the schema version
  check-config [--online]
                       validate the config and credentials; --online: and the
                       token's scopes and rate budget, asking GHL
  emit FILE|-          validate and durably enqueue one event or JSON lines
  status [--json]      queue depth, dead letters, cursors, last pull, auth
  queue list|retry ID|retry --dead|drop ID
                       inspect and repair the outbox
  audit [--since T] [--limit N] [--json]
                       recent GHL API calls
  resync [--contact GHL_ID | --full [--allow-deletes]]
                       schedule a pull of one contact, or of everything
  auth exchange | auth status
                       OAuth code exchange; token state
  fields [--json]      the location's custom fields (id, name, fieldKey, type)
  plan [--json] [--limit N]
                       the GHL calls the waiting outbox would make (dry run)

global options:
  --config PATH        config file (default /etc/speak4-sync/speak4-sync.toml);
                       also accepted after the command
  -h, --help           this text; COMMAND --help for a command's own
  --version            print the version

exit codes: 0 ok, 64 usage, 65 bad data, 69 unavailable, 74 I/O, 78 config
)";

const std::map<std::string, std::string>& command_help() {
    static const std::map<std::string, std::string> h = {
        {"run", R"(usage: speak4-sync run [--config PATH]

Runs the daemon in the foreground: pushes the outbox to GHL, serves the local API (events,
changes, health, metrics, webhooks) on api.listen, and logs to standard error. Starts in
stages (config, database, migrations, credentials, listeners) and tells systemd READY=1 only
then. SIGTERM or SIGINT stops intake and finishes the work in flight (exit 0); SIGHUP reloads
the config and credentials (token rotation) without dropping work.
)"},
        {"demo", R"(usage: speak4-sync demo [--dir DIR] [--port N]

Runs the whole loop on this machine, no credentials needed: starts the bundled GHL simulator
on loopback with sample contacts, a task, a note and an appointment; runs the daemon against
it (local API on 127.0.0.1:N, default 18737); pushes Speak4 events, changes a record on the
GHL side and pulls it back; prints each step and where the database is (DIR, default
demo-data/, recreated).
)"},
        {"migrate", R"(usage: speak4-sync migrate [--config PATH]

Creates the database if needed and applies every migration it lacks, each with its version
bump in one transaction. Prints the schema version. Refuses a database written by a newer
speak4-sync (exit 74).
)"},
        {"check-config", R"(usage: speak4-sync check-config [--config PATH] [--online]

Parses the config (unknown keys and bad values are errors naming the key and line) and reads
the credentials it names (secret files must not be readable by group or others). Prints
"ok" or what is wrong (exit 78).

--online also asks GHL, with one cheap call per scope the configuration needs, whether the
token has it (contacts.readonly: GET /contacts/?limit=1; contacts.write: a PUT of a contact id
that cannot exist, which GHL refuses after checking the scope, so nothing is written;
locations/customFields.readonly when [rules.field_map] names custom fields), and prints the
location's rate-limit budget. A missing scope exits 78 naming it; GHL unreachable exits 69.
)"},
        {"init", init_help},
        {"plan", R"(usage: speak4-sync plan [--config PATH] [--json] [--limit N]

The GHL calls the waiting outbox would make, in the order they go out: outbox id, method, path
(:contactId while the contact itself is still to be created) and body, every personal value
masked (a 12-character string shows as *** (12)). With sync.mode = "dry_run" nothing is sent;
set "live" and reload (SIGHUP) to send exactly these. Rows of one record waiting together may
go out as one coalesced call.
)"},
        {"fields", R"(usage: speak4-sync fields [--config PATH] [--json]

Lists the location's contact custom fields from GHL (GET /locations/:locationId/customFields,
scope locations/customFields.readonly): id, name, fieldKey, type, and the Speak4 field
[rules.field_map] maps to each. [rules.field_map] may name a custom field by its name
(lead_score = "Lead score"), customFields.<fieldKey> or customFields.<id>. The listing is saved
in the database, so the daemon and `emit` resolve names when GHL cannot be reached.
)"},
        {"emit", R"(usage: speak4-sync emit [--config PATH] FILE|-

Validates and durably enqueues Speak4 events from FILE (or standard input with -): either one
JSON event, or JSON lines (one event per line). Works while the daemon is stopped. Each event
is accepted or rejected whole; a repeated event_id is accepted once.

exit: 0 every event accepted (repeats included), 65 an event was rejected (nothing of it was
written; the others were), 74 database error.
)"},
        {"resync",
         R"(usage: speak4-sync resync [--config PATH] --contact GHL_ID | --full [--allow-deletes]

--contact  pull that contact (and its tasks, notes, appointments) at the daemon's next turn
--full     make the next incremental pull a full one: every contact is re-read, then deleted
           contacts are swept
--allow-deletes
           (with --full) that sweep may mark deleted more than the 10% of the mirror a sweep
           deletes by itself; a listing that disagrees with GHL's total still deletes nothing
Works while the daemon is stopped: the request is stored and carried out when it runs.
)"},
        {"auth",
         R"(usage: speak4-sync auth exchange [--code-file FILE]   (the code on standard input)
       speak4-sync auth status [--json]

exchange  trades an OAuth authorization code (from the marketplace redirect) for GHL's token
          pair and stores it in the database; clears needs_reauth (ghl.auth = "oauth"). The
          code is read from standard input, or from FILE: never from the command line, where
          ps and the shell history would show it
status    the auth mode, its state (ok or needs_reauth, with the reason) and token expiry
)"},
        {"status", R"(usage: speak4-sync status [--config PATH] [--json]

Queue depth by state, dead letters, cursors, last pull, rate-limit budget and auth state.
)"},
        {"queue", R"(usage: speak4-sync queue list [--state S] [--limit N] [--json]
       speak4-sync queue retry ID | retry --dead
       speak4-sync queue drop ID

list   outbox rows, newest first (S: pending, inflight, done, dead; N defaults to 50)
retry  make a dead (or waiting) row due now, attempts reset; --dead revives every dead row
drop   delete a row that is not in flight (its change is then never pushed)
)"},
        {"audit", R"(usage: speak4-sync audit [--since T] [--limit N] [--json]

Recent API calls to GHL, newest first: time, method, path, status, latency, attempt, outbox
row, rate-limit remaining, traceId, error. T is ISO-8601 ("2026-11-27T10:00:00Z") or an age
("90s", "15m", "2h", "7d"); N defaults to 50.
)"},
    };
    return h;
}

// --- small helpers -----------------------------------------------------------------------

[[noreturn]] void usage(const std::string& msg) {
    throw usage_error(msg);
}

long long parse_count(const std::string& flag, const std::string& v, long long min, long long max) {
    long long n = 0;
    const auto* end = v.data() + v.size();
    auto [p, ec] = std::from_chars(v.data(), end, n);
    if (ec != std::errc{} || p != end || n < min || n > max)
        usage(flag + " must be a whole number from " + std::to_string(min) + " to " +
              std::to_string(max));
    return n;
}

std::string now_iso() {
    return format_iso8601(system_clock::instance().now());
}

/// "2h" -> now - 2h; an ISO-8601 time as is (normalized).
std::string parse_since(const std::string& v) {
    if (auto t = parse_iso8601(v))
        return format_iso8601(*t);
    if (v.size() >= 2) {
        const char unit = v.back();
        long long n = 0;
        const auto* end = v.data() + v.size() - 1;
        auto [p, ec] = std::from_chars(v.data(), end, n);
        long long mult = unit == 's'   ? 1
                         : unit == 'm' ? 60
                         : unit == 'h' ? 3600
                         : unit == 'd' ? 86400
                                       : 0;
        if (ec == std::errc{} && p == end && mult && n >= 0 && n < 100LL * 365 * 86400 / mult)
            return format_iso8601(system_clock::instance().now() - std::chrono::seconds(n * mult));
    }
    usage("--since must be an ISO-8601 time or an age like 15m, 2h, 7d");
}

config load(const invocation& inv) {
    const std::string path = inv.config_path.value_or(default_config_path);
    config cfg = load_config(path);
    log::init(cfg.logging.level, cfg.logging.format);
    return cfg;
}

std::unique_ptr<SQLite::Database> open_db(const invocation& inv, const config& cfg) {
    inv.db_path = cfg.database.path;
    auto db = store::open_database({cfg.database.path, true});
    store::migrate(*db);
    return db;
}

// --- commands ----------------------------------------------------------------------------

int cmd_migrate(const invocation& inv) {
    if (!inv.args.empty())
        usage("migrate takes no arguments");
    const config cfg = load(inv);
    inv.db_path = cfg.database.path;
    auto db = store::open_database({cfg.database.path, true});
    const auto r = store::migrate(*db);
    if (r.from == r.to)
        std::printf("schema version %d (up to date) in %s\n", r.to, cfg.database.path.c_str());
    else
        std::printf("schema version %d -> %d in %s\n", r.from, r.to, cfg.database.path.c_str());
    return 0;
}

int cmd_check_config(const invocation& inv) {
    bool online = false;
    for (const auto& a : inv.args) {
        if (a == "--online")
            online = true;
        else
            usage("check-config: unknown option " + a + " (it takes --online)");
    }
    return check_config(inv.config_path.value_or(default_config_path), online);
}

} // namespace

int check_config(const std::string& config_path, bool online) {
    config cfg = load_config(config_path);
    log::init(cfg.logging.level, cfg.logging.format);
    const secrets sec = load_secrets(cfg, true);
    std::vector<std::string> problems;
    if (cfg.ghl.location_id.empty())
        problems.push_back(
            "ghl.location_id: is required to sync (set it to the GHL sub-account id)");
    if (cfg.webhooks.enabled && cfg.webhooks.public_key_file.empty() &&
        cfg.webhooks.rsa_public_key_file.empty())
        problems.push_back(
            "webhooks.public_key_file: webhooks are enabled but no public key is configured");
    if (sec.api_token.empty())
        std::printf("note: no api.token_file: the local API will refuse /v1/* requests\n");
    for (const auto& p : problems)
        std::fprintf(stderr, "%s: %s\n", cfg.source.c_str(), p.c_str());
    if (!problems.empty())
        return static_cast<int>(exit_code::config);
    std::printf("ok: %s (auth %s, location %s, database %s)\n", cfg.source.c_str(),
                std::string(to_string(cfg.ghl.auth)).c_str(), cfg.ghl.location_id.c_str(),
                cfg.database.path.c_str());
    if (!online)
        return 0;

    const auto report = app::check_online(cfg, sec);
    bool missing = false;
    for (const auto& c : report.checks) {
        using st = app::scope_check::state;
        const char* verdict = c.result == st::granted   ? "granted"
                              : c.result == st::missing ? "MISSING"
                                                        : "not verified";
        std::printf("scope %-32s %-13s for %s (%s: %s)\n", c.scope.c_str(), verdict,
                    c.needed_by.c_str(), c.probe.c_str(), c.detail.c_str());
        if (c.result == st::missing) {
            missing = true;
            std::fprintf(stderr, "%s: the token lacks %s, needed for %s\n", cfg.source.c_str(),
                         c.scope.c_str(), c.needed_by.c_str());
        }
    }
    if (report.rate_remaining || report.daily_remaining)
        std::printf("rate limit: %s left in the current window, %s left today\n",
                    report.rate_remaining ? std::to_string(*report.rate_remaining).c_str() : "?",
                    report.daily_remaining ? std::to_string(*report.daily_remaining).c_str() : "?");
    if (missing)
        return static_cast<int>(exit_code::config);
    if (!report.ok()) {
        std::fprintf(stderr,
                     "check-config: GHL could not be asked about every scope (see above)\n");
        return static_cast<int>(exit_code::unavailable);
    }
    std::printf("ok: the token has every scope this configuration needs\n");
    return 0;
}

namespace {

/// Reads FILE or stdin whole.
std::string read_input(const std::string& name) {
    if (name == "-") {
        std::ostringstream ss;
        ss << std::cin.rdbuf();
        return ss.str();
    }
    std::ifstream in(name, std::ios::binary);
    if (!in)
        throw std::system_error(errno, std::generic_category(), "emit: cannot read " + name);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

int cmd_emit(const invocation& inv) {
    if (inv.args.size() != 1)
        usage("emit takes one argument: FILE or - for standard input");
    const config cfg = load(inv);
    std::string text;
    try {
        text = read_input(inv.args[0]);
    } catch (const std::system_error& e) {
        std::fprintf(stderr, "%s\n", e.what());
        return static_cast<int>(exit_code::no_input);
    }

    // One JSON document (possibly pretty-printed), or JSON lines.
    struct line_event {
        std::size_t line;
        std::string body;
    };
    std::vector<line_event> inputs;
    if (auto whole = json::parse(text); whole && whole->is_object()) {
        inputs.push_back({0, text});
    } else {
        std::size_t line_no = 0, pos = 0;
        while (pos <= text.size()) {
            const std::size_t nl = text.find('\n', pos);
            std::string line =
                text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
            ++line_no;
            if (line.find_first_not_of(" \t\r") != std::string::npos)
                inputs.push_back({line_no, std::move(line)});
            if (nl == std::string::npos)
                break;
            pos = nl + 1;
        }
    }
    if (inputs.empty()) {
        std::fprintf(stderr, "emit: %s holds no event\n",
                     inputs.empty() && inv.args[0] == "-" ? "standard input" : inv.args[0].c_str());
        return static_cast<int>(exit_code::data_err);
    }

    auto where = [](const line_event& le) {
        return le.line ? "line " + std::to_string(le.line) + ": " : std::string();
    };
    auto db = open_db(inv, cfg);
    // Custom fields named in the field map resolve from the last listing the daemon (or
    // `fields`) cached; types check values as the daemon's intake does.
    const sync::resolved_fields fields = app::resolve_field_map(cfg, std::nullopt, *db);
    sync::intake in(*db, system_clock::instance());
    std::size_t accepted = 0, duplicates = 0, rejected = 0;
    long long seq = 0;
    bool io_failed = false;
    // Valid events are committed in batches: one transaction (one fsync) per batch.
    constexpr std::size_t batch_size = 500;
    std::vector<sync::raw_event> batch;
    std::vector<const line_event*> batch_src;
    auto flush = [&] {
        if (batch.empty())
            return;
        auto results = in.accept_batch(batch);
        for (std::size_t i = 0; i < results.size(); ++i) {
            if (results[i]) {
                ++accepted;
                duplicates += results[i]->duplicate ? 1 : 0;
                seq = std::max(seq, results[i]->seq);
            } else if (results[i].error().what == sync::intake_error::kind::io) {
                io_failed = true;
                std::fprintf(stderr, "emit: %s%s\n", where(*batch_src[i]).c_str(),
                             results[i].error().message.c_str());
            } else {
                ++rejected;
                std::fprintf(stderr, "emit: %srejected: %s\n", where(*batch_src[i]).c_str(),
                             results[i].error().message.c_str());
                log::warn("event rejected", {{"field", results[i].error().field},
                                             {"error", results[i].error().message}});
            }
        }
        batch.clear();
        batch_src.clear();
    };
    for (const auto& le : inputs) {
        auto ev = sync::parse_event(le.body, fields.map, {}, &fields.custom);
        if (ev)
            if (auto refused = sync::check_allowed(*ev, cfg.sync.direction, cfg.sync.entities)) {
                ++rejected;
                std::fprintf(stderr, "emit: %srefused: %s\n", where(le).c_str(),
                             refused->message.c_str());
                continue;
            }
        if (!ev) {
            ++rejected;
            std::fprintf(stderr, "emit: %srejected: %s\n", where(le).c_str(),
                         ev.error().message.c_str());
            log::warn("event rejected",
                      {{"field", ev.error().field}, {"error", ev.error().message}});
            continue;
        }
        batch.push_back({std::move(*ev), le.body});
        batch_src.push_back(&le);
        if (batch.size() >= batch_size)
            flush();
    }
    flush();
    if (io_failed)
        return static_cast<int>(exit_code::io_err);
    std::printf("accepted %zu event%s", accepted, accepted == 1 ? "" : "s");
    if (duplicates)
        std::printf(" (%zu already accepted before)", duplicates);
    if (rejected)
        std::printf(", rejected %zu", rejected);
    std::printf("; change feed at seq %lld\n", seq);
    return rejected ? static_cast<int>(exit_code::data_err) : 0;
}

using store::auth_view;
using store::read_auth;

int cmd_status_auth(const invocation& inv, const config& cfg) {
    bool as_json = false;
    for (const auto& a : inv.args) {
        if (a == "--json")
            as_json = true;
        else
            usage("auth status: unknown option " + a);
    }
    auto db = open_db(inv, cfg);
    const auth_view v = read_auth(cfg, store::read_status(*db));
    if (as_json) {
        bj::object o{{"mode", to_string(cfg.ghl.auth)},
                     {"state", v.state},
                     {"expires_at", v.expires_at ? bj::value(*v.expires_at) : bj::value(nullptr)},
                     {"location_id", cfg.ghl.location_id}};
        if (v.reason)
            o["reason"] = *v.reason;
        std::printf("%s\n", bj::serialize(o).c_str());
    } else {
        std::printf("mode      %s\nlocation  %s\nstate     %s\n",
                    std::string(to_string(cfg.ghl.auth)).c_str(), cfg.ghl.location_id.c_str(),
                    v.state.c_str());
        if (v.expires_at)
            std::printf("expires   %s\n", v.expires_at->c_str());
        if (v.reason)
            std::printf("reason    %s\n", v.reason->c_str());
    }
    return v.state == "ok" ? 0 : static_cast<int>(exit_code::unavailable);
}

int cmd_status(const invocation& inv) {
    bool as_json = false;
    for (const auto& a : inv.args) {
        if (a == "--json")
            as_json = true;
        else
            usage("status: unknown option " + a);
    }
    const config cfg = load(inv);
    auto db = open_db(inv, cfg);
    const auto s = store::read_status(*db);

    const auth_view auth = read_auth(cfg, s);
    const std::string& auth_state = auth.state;
    const std::optional<std::string>& expires_at = auth.expires_at;
    const std::optional<std::string>& auth_reason = auth.reason;
    auto cursor_int = [&](const char* name) -> std::optional<long long> {
        auto it = s.cursors.find(name);
        if (it == s.cursors.end())
            return std::nullopt;
        long long v = 0;
        auto [p, ec] = std::from_chars(it->second.data(), it->second.data() + it->second.size(), v);
        if (ec != std::errc{})
            return std::nullopt;
        return v;
    };
    const auto rl_remaining = cursor_int("rate_limit.remaining");
    const auto rl_daily = cursor_int("rate_limit.daily_remaining");

    // The running daemon's own view: which loop is stalled or down, which part is unwell.
    const bj::object health = app::probe_health(cfg);
    if (as_json) {
        bj::object out = store::status_json(cfg, s);
        out["health"] = health;
        std::printf("%s\n", bj::serialize(out).c_str());
        return 0;
    }
    {
        const auto* st = health.if_contains("status");
        const auto* why = health.if_contains("reason");
        std::printf("health     %s%s%s\n", st && st->is_string() ? st->as_string().c_str() : "?",
                    why && why->is_string() ? ": " : "",
                    why && why->is_string() ? why->as_string().c_str() : "");
    }
    std::printf("database   %s (schema v%d)\n", cfg.database.path.c_str(), s.schema_version);
    if (cfg.sync.mode == sync_mode::dry_run || cfg.sync.direction != sync_direction::both)
        std::printf("sync       %s, %s%s\n", std::string(to_string(cfg.sync.mode)).c_str(),
                    std::string(to_string(cfg.sync.direction)).c_str(),
                    cfg.sync.mode == sync_mode::dry_run
                        ? " (no write is sent: `speak4-sync plan` lists what would be)"
                        : "");
    std::printf("queue      pending %lld  inflight %lld  done %lld  dead %lld\n", s.queue.pending,
                s.queue.inflight, s.queue.done, s.queue.dead);
    if (s.queue.dead)
        std::printf("           %lld dead letter%s: `speak4-sync queue list --state dead`\n",
                    s.queue.dead, s.queue.dead == 1 ? "" : "s");
    std::printf("mirror     contacts %lld  tasks %lld  notes %lld\n", s.contacts, s.tasks, s.notes);
    std::printf("changes    seq %lld\n", s.changes_seq);
    std::printf("last pull  %s\n", s.last_pull_at ? s.last_pull_at->c_str() : "never");
    if (s.cursors.empty())
        std::printf("cursors    (none)\n");
    for (const auto& [k, v] : s.cursors)
        std::printf("cursor     %s = %s\n", k.c_str(), v.c_str());
    std::printf("rate limit %s remaining in window, %s today\n",
                rl_remaining ? std::to_string(*rl_remaining).c_str() : "unknown",
                rl_daily ? std::to_string(*rl_daily).c_str() : "unknown");
    std::printf("auth       %s: %s%s%s\n", std::string(to_string(cfg.ghl.auth)).c_str(),
                auth_state.c_str(), expires_at ? (", expires " + *expires_at).c_str() : "",
                auth_reason ? (" (" + *auth_reason + ")").c_str() : "");
    return 0;
}

void print_outbox_json(const std::vector<store::outbox_row>& rows) {
    for (const auto& r : rows) {
        bj::object o{{"id", r.id},
                     {"op", r.op},
                     {"entity", r.entity},
                     {"entity_id", r.entity_id},
                     {"state", r.state},
                     {"attempts", r.attempts},
                     {"next_attempt_at", r.next_attempt_at},
                     {"last_error", r.last_error ? bj::value(*r.last_error) : bj::value(nullptr)},
                     {"created_at", r.created_at}};
        if (auto p = json::parse(r.payload))
            o["payload"] = std::move(*p);
        std::printf("%s\n", bj::serialize(o).c_str());
    }
}

int cmd_queue(const invocation& inv) {
    if (inv.args.empty())
        usage("queue needs a subcommand: list, retry ID, retry --dead, drop ID");
    const std::string& sub = inv.args[0];
    const config cfg = load(inv);
    auto db = open_db(inv, cfg);
    if (sub == "list") {
        std::optional<std::string> state;
        int limit = 50;
        bool as_json = false;
        for (std::size_t i = 1; i < inv.args.size(); ++i) {
            const auto& a = inv.args[i];
            if (a == "--json")
                as_json = true;
            else if (a == "--state" && i + 1 < inv.args.size()) {
                state = inv.args[++i];
                if (*state != "pending" && *state != "inflight" && *state != "done" &&
                    *state != "dead")
                    usage("--state must be pending, inflight, done or dead");
            } else if (a == "--limit" && i + 1 < inv.args.size())
                limit = static_cast<int>(parse_count("--limit", inv.args[++i], 1, 100000));
            else
                usage("queue list: unknown option " + a);
        }
        const auto rows = store::list_outbox(*db, state, limit);
        if (as_json) {
            print_outbox_json(rows);
            return 0;
        }
        if (rows.empty()) {
            std::printf("outbox is empty%s\n", state ? (" (state " + *state + ")").c_str() : "");
            return 0;
        }
        std::printf("%-8s %-10s %-8s %-9s %-9s %-8s %-24s %s\n", "ID", "OP", "ENTITY", "ENTITY_ID",
                    "STATE", "ATTEMPTS", "NEXT_ATTEMPT_AT", "LAST_ERROR");
        for (const auto& r : rows)
            std::printf("%-8lld %-10s %-8s %-9lld %-9s %-8d %-24s %s\n", r.id, r.op.c_str(),
                        r.entity.c_str(), r.entity_id, r.state.c_str(), r.attempts,
                        r.next_attempt_at.c_str(), r.last_error ? r.last_error->c_str() : "");
        return 0;
    }
    if (sub == "retry") {
        if (inv.args.size() != 2)
            usage("queue retry takes one ID or --dead");
        if (inv.args[1] == "--dead") {
            const long long n = store::retry_dead(*db, now_iso());
            std::printf("revived %lld dead row%s\n", n, n == 1 ? "" : "s");
            return 0;
        }
        const long long id = parse_count("ID", inv.args[1], 1, INT64_MAX);
        if (!store::retry_outbox(*db, id, now_iso())) {
            std::fprintf(stderr, "queue retry: no dead or pending outbox row %lld\n", id);
            return static_cast<int>(exit_code::data_err);
        }
        std::printf("outbox row %lld is due now\n", id);
        return 0;
    }
    if (sub == "drop") {
        if (inv.args.size() != 2)
            usage("queue drop takes one ID");
        const long long id = parse_count("ID", inv.args[1], 1, INT64_MAX);
        if (!store::drop_outbox(*db, id)) {
            std::fprintf(stderr, "queue drop: no outbox row %lld that is not in flight\n", id);
            return static_cast<int>(exit_code::data_err);
        }
        std::printf("dropped outbox row %lld\n", id);
        return 0;
    }
    usage("queue: unknown subcommand " + sub + " (list, retry, drop)");
}

int cmd_audit(const invocation& inv) {
    std::optional<std::string> since;
    int limit = 50;
    bool as_json = false;
    for (std::size_t i = 0; i < inv.args.size(); ++i) {
        const auto& a = inv.args[i];
        if (a == "--json")
            as_json = true;
        else if (a == "--since" && i + 1 < inv.args.size())
            since = parse_since(inv.args[++i]);
        else if (a == "--limit" && i + 1 < inv.args.size())
            limit = static_cast<int>(parse_count("--limit", inv.args[++i], 1, 1000000));
        else
            usage("audit: unknown option " + a);
    }
    const config cfg = load(inv);
    auto db = open_db(inv, cfg);
    const auto rows = store::list_audit(*db, since, limit);
    auto opt_num = [](const auto& o) { return o ? bj::value(*o) : bj::value(nullptr); };
    if (as_json) {
        for (const auto& r : rows) {
            bj::object o{{"id", r.id},
                         {"ts", r.ts},
                         {"method", r.method},
                         {"path", r.path},
                         {"status", opt_num(r.status)},
                         {"latency_ms", opt_num(r.latency_ms)},
                         {"attempt", opt_num(r.attempt)},
                         {"outbox_id", opt_num(r.outbox_id)},
                         {"error", opt_num(r.error)},
                         {"rate_limit_remaining", opt_num(r.rate_limit_remaining)},
                         {"trace_id", opt_num(r.trace_id)}};
            std::printf("%s\n", bj::serialize(o).c_str());
        }
        return 0;
    }
    if (rows.empty()) {
        std::printf("no API calls recorded%s\n", since ? (" since " + *since).c_str() : "");
        return 0;
    }
    auto num = [](const auto& o) { return o ? std::to_string(*o) : std::string("-"); };
    std::printf("%-24s %-6s %-40s %-6s %-7s %-7s %-7s %s\n", "TS", "METHOD", "PATH", "STATUS", "MS",
                "ATTEMPT", "OUTBOX", "ERROR");
    for (const auto& r : rows)
        std::printf("%-24s %-6s %-40s %-6s %-7s %-7s %-7s %s\n", r.ts.c_str(), r.method.c_str(),
                    r.path.c_str(), num(r.status).c_str(), num(r.latency_ms).c_str(),
                    num(r.attempt).c_str(), num(r.outbox_id).c_str(),
                    r.error ? r.error->c_str() : "");
    return 0;
}

int cmd_run(const invocation& inv) {
    if (!inv.args.empty())
        usage("run takes no arguments");
    app::run_options opt;
    opt.config_path = inv.config_path.value_or(default_config_path);
    app::daemon d(std::move(opt));
    try {
        return d.run();
    } catch (const config_error&) {
        throw;
    } catch (const io_error&) {
        throw;
    } catch (const SQLite::Exception&) {
        throw;
    } catch (const std::exception& e) {
        // Listeners that cannot bind, and the like: the service cannot be offered.
        std::fprintf(stderr, "speak4-sync: cannot start: %s\n", e.what());
        return static_cast<int>(exit_code::unavailable);
    }
}

int cmd_demo(const invocation& inv) {
    app::demo_options opt;
    for (std::size_t i = 0; i < inv.args.size(); ++i) {
        if (inv.args[i] == "--dir" && i + 1 < inv.args.size())
            opt.dir = inv.args[++i];
        else if (inv.args[i] == "--port" && i + 1 < inv.args.size())
            opt.api_port =
                static_cast<unsigned short>(parse_count("--port", inv.args[++i], 1, 65535));
        else
            usage("demo: unknown option " + inv.args[i]);
    }
    return app::run_demo(opt);
}

int cmd_resync(const invocation& inv) {
    std::optional<std::string> contact;
    bool full = false;
    bool allow_deletes = false;
    for (std::size_t i = 0; i < inv.args.size(); ++i) {
        if (inv.args[i] == "--full")
            full = true;
        else if (inv.args[i] == "--allow-deletes")
            allow_deletes = true;
        else if (inv.args[i] == "--contact" && i + 1 < inv.args.size())
            contact = inv.args[++i];
        else
            usage("resync: unknown option " + inv.args[i]);
    }
    if (full == contact.has_value())
        usage("resync takes --contact GHL_ID or --full");
    if (allow_deletes && !full)
        usage("resync: --allow-deletes goes with --full");
    const config cfg = load(inv);
    auto db = open_db(inv, cfg);
    if (full) {
        sync::request_full_resync(*db, system_clock::instance().now(), allow_deletes);
        std::printf("full resync scheduled: the next pull re-reads every contact%s\n",
                    allow_deletes ? "; its sweep may delete more than 10% of the mirror" : "");
        return 0;
    }
    // A pull of one contact is what contact.opened asks for: reuse intake (stub row, coalescing).
    const std::string text = bj::serialize(
        bj::object{{"type", "contact.opened"}, {"contact", bj::object{{"ghl_id", *contact}}}});
    auto ev = sync::parse_event(text);
    if (!ev) {
        std::fprintf(stderr, "resync: --contact: %s\n", ev.error().message.c_str());
        return static_cast<int>(exit_code::data_err);
    }
    sync::intake in(*db, system_clock::instance());
    auto r = in.accept(*ev, text);
    if (!r) {
        std::fprintf(stderr, "resync: %s\n", r.error().message.c_str());
        return static_cast<int>(r.error().what == sync::intake_error::kind::io
                                    ? exit_code::io_err
                                    : exit_code::data_err);
    }
    std::printf("pull of contact %s scheduled\n", contact->c_str());
    return 0;
}

int cmd_auth(const invocation& inv) {
    if (inv.args.empty())
        usage("auth needs a subcommand: exchange (the code on standard input), or status");
    const config cfg = load(inv);
    if (inv.args[0] == "exchange") {
        std::string code;
        if (inv.args.size() == 3 && inv.args[1] == "--code-file") {
            std::ifstream in(inv.args[2]);
            if (!in)
                throw io_error("auth exchange: cannot read " + inv.args[2]);
            std::getline(in, code);
        } else if (inv.args.size() == 1 || (inv.args.size() == 2 && inv.args[1] == "-")) {
            std::getline(std::cin, code);
        } else if (inv.args.size() >= 2 && inv.args[1] == "--code") {
            usage("auth exchange: the code is not taken on the command line (ps and the shell "
                  "history would show it): pipe it on standard input, or use --code-file FILE");
        } else {
            usage("auth exchange takes the code on standard input, or --code-file FILE");
        }
        while (!code.empty() && std::isspace(static_cast<unsigned char>(code.back())))
            code.pop_back();
        while (!code.empty() && std::isspace(static_cast<unsigned char>(code.front())))
            code.erase(code.begin());
        if (code.empty())
            usage("auth exchange: no code given (expected one line on standard input or in the "
                  "file)");
        const secrets sec = load_secrets(cfg, true);
        auto r = app::exchange_code(cfg, sec, secret(std::move(code)));
        if (!r) {
            std::fprintf(stderr, "auth exchange: %s\n", r.error().c_str());
            return static_cast<int>(exit_code::unavailable);
        }
        std::printf("authorized location %s (%s), scope \"%s\"; access token valid until %s\n",
                    r->location_id.c_str(), r->user_type.c_str(), r->scope.c_str(),
                    format_iso8601(r->expires_at).c_str());
        std::printf("a running daemon waiting for re-authorization takes them up by itself within "
                    "seconds; otherwise on SIGHUP (systemctl reload speak4-sync)\n");
        return 0;
    }
    if (inv.args[0] == "status") {
        invocation st = inv;
        st.args.assign(inv.args.begin() + 1, inv.args.end());
        return cmd_status_auth(st, cfg);
    }
    usage("auth: unknown subcommand " + inv.args[0]);
}

int cmd_fields(const invocation& inv) {
    bool as_json = false;
    for (const auto& a : inv.args) {
        if (a == "--json")
            as_json = true;
        else
            usage("fields: unknown option " + a);
    }
    const config cfg = load(inv);
    const secrets sec = load_secrets(cfg, true);
    auto r = app::list_from_ghl(cfg, sec);
    if (!r) {
        std::fprintf(stderr, "fields: %s\n", r.error().c_str());
        return static_cast<int>(exit_code::unavailable);
    }
    // Which Speak4 field the config maps to each (resolved against this very listing).
    std::map<std::string, std::string> mapped_from;
    if (auto res = sync::resolve_fields(cfg.rules.field_map, &*r))
        for (const auto& [from, to] : res->map)
            if (to.starts_with("customFields."))
                mapped_from[to.substr(13)] = from;
    if (as_json) {
        bj::array out;
        for (const auto& f : *r) {
            bj::array opts;
            for (const auto& o : f.options)
                opts.emplace_back(o);
            bj::object o{{"id", f.id},
                         {"name", f.name},
                         {"fieldKey", f.field_key},
                         {"dataType", f.data_type},
                         {"options", std::move(opts)}};
            if (auto it = mapped_from.find(f.id); it != mapped_from.end())
                o["mapped_from"] = it->second;
            out.emplace_back(std::move(o));
        }
        std::printf("%s\n", bj::serialize(bj::object{{"customFields", std::move(out)}}).c_str());
        return 0;
    }
    std::printf("%-22s %-28s %-36s %-16s %s\n", "ID", "NAME", "FIELDKEY", "TYPE", "MAPPED FROM");
    for (const auto& f : *r) {
        const auto it = mapped_from.find(f.id);
        std::printf("%-22s %-28s %-36s %-16s %s\n", f.id.c_str(), f.name.c_str(),
                    f.field_key.c_str(), f.data_type.c_str(),
                    it == mapped_from.end() ? "" : it->second.c_str());
    }
    std::printf("%zu custom field%s; map one with [rules.field_map] SPEAK4_FIELD = \"NAME\" "
                "(or \"customFields.ID\" / \"customFields.FIELDKEY\")\n",
                r->size(), r->size() == 1 ? "" : "s");
    return 0;
}

int cmd_plan(const invocation& inv) {
    bool as_json = false;
    long long limit = 1000;
    for (std::size_t i = 0; i < inv.args.size(); ++i) {
        if (inv.args[i] == "--json")
            as_json = true;
        else if (inv.args[i] == "--limit" && i + 1 < inv.args.size())
            limit = parse_count("--limit", inv.args[++i], 1, 100000);
        else
            usage("plan: unknown option " + inv.args[i]);
    }
    const config cfg = load(inv);
    auto db = open_db(inv, cfg);
    const auto calls = store::plan(*db, static_cast<int>(limit));
    if (as_json) {
        bj::array out;
        for (const auto& c : calls)
            out.emplace_back(bj::object{
                {"outbox_id", c.outbox_id},
                {"op", c.op},
                {"entity", c.entity},
                {"speak4_id", c.speak4_id ? bj::value(*c.speak4_id) : bj::value(nullptr)},
                {"method", c.method},
                {"path", c.path},
                {"body", c.body},
                {"write", c.write}});
        std::printf("%s\n", bj::serialize(bj::object{{"mode", to_string(cfg.sync.mode)},
                                                     {"calls", std::move(out)}})
                                .c_str());
        return 0;
    }
    std::printf("mode %s: %zu call%s waiting in the outbox, in the order they go out%s\n",
                std::string(to_string(cfg.sync.mode)).c_str(), calls.size(),
                calls.size() == 1 ? "" : "s",
                cfg.sync.mode == sync_mode::dry_run ? " once sync.mode = \"live\"" : "");
    for (const auto& c : calls)
        std::printf("%6lld  %-6s %-44s %s%s\n", c.outbox_id, c.method.c_str(), c.path.c_str(),
                    c.body.c_str(), c.speak4_id ? ("  (" + *c.speak4_id + ")").c_str() : "");
    return 0;
}

int cmd_init(const invocation& inv) {
    return run_init(inv.config_path, inv.args);
}

using command_fn = int (*)(const invocation&);

const std::map<std::string, command_fn>& commands() {
    static const std::map<std::string, command_fn> c = {
        {"migrate", cmd_migrate}, {"check-config", cmd_check_config},
        {"emit", cmd_emit},       {"status", cmd_status},
        {"queue", cmd_queue},     {"audit", cmd_audit},
        {"run", cmd_run},         {"resync", cmd_resync},
        {"auth", cmd_auth},       {"demo", cmd_demo},
        {"fields", cmd_fields},   {"init", cmd_init},
        {"plan", cmd_plan},
    };
    return c;
}

} // namespace

int main(int argc, char** argv) {
    invocation inv;
    bool help = false;
    try {
        for (int i = 1; i < argc; ++i) {
            const std::string a = argv[i];
            if (a == "--config") {
                if (i + 1 >= argc)
                    usage("--config needs a path");
                inv.config_path = argv[++i];
            } else if (a.rfind("--config=", 0) == 0) {
                inv.config_path = a.substr(9);
            } else if (a == "-h" || a == "--help") {
                help = true;
            } else if (a == "--version" && inv.command.empty()) {
                std::printf("speak4-sync %s\n", SPEAK4_VERSION);
                return 0;
            } else if (inv.command.empty()) {
                inv.command = a;
            } else {
                inv.args.push_back(a);
            }
        }
        if (inv.command.empty()) {
            std::fputs(usage_text, help ? stdout : stderr);
            return help ? 0 : static_cast<int>(exit_code::usage);
        }
        const auto& cmds = commands();
        const auto it = cmds.find(inv.command);
        if (it == cmds.end())
            usage("unknown command '" + inv.command + "'");
        if (help) {
            std::fputs(command_help().at(inv.command).c_str(), stdout);
            return 0;
        }
        return it->second(inv);
    } catch (const usage_error& e) {
        std::fprintf(stderr, "speak4-sync: %s\n", e.what());
        std::fprintf(stderr, "run 'speak4-sync --help' for usage\n");
        return static_cast<int>(exit_code::usage);
    } catch (const config_error& e) {
        std::fprintf(stderr, "speak4-sync: config: %s\n", e.what());
        return static_cast<int>(exit_code::config);
    } catch (const io_error& e) {
        std::fprintf(stderr, "speak4-sync: %s\n", e.what());
        return static_cast<int>(exit_code::io_err);
    } catch (const SQLite::Exception& e) {
        std::fprintf(stderr, "speak4-sync: %s\n",
                     store::describe_sqlite_error(inv.db_path, e).c_str());
        return static_cast<int>(exit_code::io_err);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "speak4-sync: %s\n", e.what());
        return static_cast<int>(exit_code::software);
    }
}

} // namespace speak4::cli
