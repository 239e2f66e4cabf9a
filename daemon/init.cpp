#include "init.hpp"

#include "app/fields.hpp"
#include "app/online_check.hpp"
#include "core/config.hpp"
#include "core/error.hpp"
#include "sync/custom_fields.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <sstream>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

namespace speak4::cli {

namespace fs = std::filesystem;

const char* const init_help =
    R"(usage: speak4-sync init [--config PATH] [--force] [--non-interactive] [options]

Guided first setup: asks for the GHL location id, the auth mode and its secrets, the database
the local API address, what syncs and which way, and the field mapping (chosen from the location's own custom
fields); writes a commented config (PATH, default /etc/speak4-sync/speak4-sync.toml) and the
secret files beside it (mode 0600; the systemd unit loads them as credentials), then checks the
result offline and online (`check-config --online`) and prints the next steps. Secrets are
never echoed. An existing config is not overwritten without --force.

options (each answers one question; --non-interactive asks nothing and needs the required ones):
  --location-id ID           the GHL sub-account (location) id            (required)
  --auth private_token|oauth                                              (default private_token)
  --token-file FILE          a file holding the private integration token (else it is asked,
                             hidden, and saved as ghl-token beside the config)
  --client-id ID             OAuth app client id                          (oauth: required)
  --client-secret-file FILE  OAuth app client secret                      (else asked, hidden)
  --database PATH            default /var/lib/speak4-sync/speak4-sync.db
  --listen HOST:PORT         the local API, default 127.0.0.1:8737
  --base-url URL             GHL's API, default https://services.leadconnectorhq.com
  --direction both|pull|push sync.direction                               (default both)
  --entities LIST            sync.entities, e.g. "contacts,tasks"         (default all)
  --map SPEAK4_FIELD=GHL     a field mapping: a GHL field, a custom field's name, or
                             customFields.<id|fieldKey>; repeatable
  --no-online                skip asking GHL (the online check and the custom field list)
)";

namespace {

struct init_error : std::runtime_error {
    init_error(int c, const std::string& m)
        : std::runtime_error(m)
        , code(c) {}
    int code;
};

[[noreturn]] void fail(int code, const std::string& msg) {
    throw init_error(code, msg);
}

/// TOML basic string.
std::string q(std::string_view s) {
    std::string out = "\"";
    for (const char c : s) {
        if (c == '"' || c == '\\')
            out += '\\';
        out += c;
    }
    return out + '"';
}

/// Checks one value the way the config parser will, so a bad answer is refused at once with
/// the parser's own words (and the key): "ghl.base_url: plain http:// is allowed only …".
std::optional<std::string> check_with_parser(const std::string& section, const std::string& key,
                                             const std::string& value) {
    try {
        parse_config("[" + section + "]\n" + key + " = " + q(value) + "\n", "init", "/");
    } catch (const config_error& e) {
        std::string m = e.what();
        if (const auto p = m.find(section + "." + key); p != std::string::npos)
            m = m.substr(p);
        return m;
    }
    return std::nullopt;
}

struct settings {
    std::string location_id;
    std::string auth = "private_token";
    std::optional<std::string> token_file; // an existing file, as given
    std::string client_id;
    std::optional<std::string> client_secret_file;
    std::string database = "/var/lib/speak4-sync/speak4-sync.db";
    std::string listen = "127.0.0.1:8737";
    std::string base_url = "https://services.leadconnectorhq.com";
    std::string direction = "both";
    std::string entities = "contacts, tasks, notes, appointments";
    std::vector<std::pair<std::string, std::string>> field_map;
    bool online = true;
    bool force = false;
    bool interactive = true;
    // Which of the above came as flags (not asked again).
    std::map<std::string, bool> given;
};

class prompter {
public:
    /// Asks until `check` accepts (it returns the reason otherwise); "" takes `def`.
    std::string ask(const std::string& question, const std::string& def,
                    const std::function<std::optional<std::string>(const std::string&)>& check) {
        for (;;) {
            std::printf("%s%s: ", question.c_str(), def.empty() ? "" : (" [" + def + "]").c_str());
            std::fflush(stdout);
            std::string line;
            if (!std::getline(std::cin, line))
                fail(64, "init: the input ended before \"" + question + "\" was answered");
            if (!line.empty() && line.back() == '\r')
                line.pop_back();
            if (line.empty())
                line = def;
            if (auto why = check(line)) {
                std::printf("  %s; try again\n", why->c_str());
                continue;
            }
            return line;
        }
    }

    /// A secret: echo off on a terminal; never printed back.
    secret ask_secret(const std::string& question) {
        for (;;) {
            std::printf("%s (input hidden): ", question.c_str());
            std::fflush(stdout);
            termios old{};
            const bool tty = ::isatty(0) && ::tcgetattr(0, &old) == 0;
            if (tty) {
                termios quiet = old;
                quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
                ::tcsetattr(0, TCSANOW, &quiet);
            }
            std::string line;
            const bool got = static_cast<bool>(std::getline(std::cin, line));
            if (tty) {
                ::tcsetattr(0, TCSANOW, &old);
                std::printf("\n");
            }
            if (!got)
                fail(64, "init: the input ended before \"" + question + "\" was answered");
            if (!line.empty() && line.back() == '\r')
                line.pop_back();
            if (line.empty() || line.find_first_of(" \t") != std::string::npos) {
                std::printf("  must be non-empty, without spaces; try again\n");
                continue;
            }
            return secret(std::move(line));
        }
    }
};

/// Writes `content` to `path` with mode 0600 (also when it existed), never through a symlink.
void write_secret(const fs::path& path, const secret& value) {
    const int fd =
        ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        fail(74, "init: cannot write " + path.string() + ": " + std::strerror(errno));
    ::fchmod(fd, 0600);
    const std::string text = value.reveal() + "\n";
    const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
    ::close(fd);
    if (!ok)
        fail(74, "init: cannot write " + path.string());
}

secret random_token() {
    std::ifstream in("/dev/urandom", std::ios::binary);
    unsigned char b[24];
    if (!in.read(reinterpret_cast<char*>(b), sizeof b))
        fail(74, "init: cannot read /dev/urandom");
    static const char* hex = "0123456789abcdef";
    std::string out;
    for (const unsigned char c : b) {
        out += hex[c >> 4];
        out += hex[c & 15];
    }
    return secret(out);
}

settings parse_flags(const std::vector<std::string>& args) {
    settings s;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        const auto value = [&]() -> std::string {
            if (i + 1 >= args.size())
                fail(64, "init: " + a + " needs a value");
            return args[++i];
        };
        if (a == "--force")
            s.force = true;
        else if (a == "--non-interactive")
            s.interactive = false;
        else if (a == "--no-online")
            s.online = false;
        else if (a == "--location-id")
            s.location_id = value(), s.given["location_id"] = true;
        else if (a == "--auth")
            s.auth = value(), s.given["auth"] = true;
        else if (a == "--token-file")
            s.token_file = value();
        else if (a == "--client-id")
            s.client_id = value(), s.given["client_id"] = true;
        else if (a == "--client-secret-file")
            s.client_secret_file = value();
        else if (a == "--database")
            s.database = value(), s.given["database"] = true;
        else if (a == "--listen")
            s.listen = value(), s.given["listen"] = true;
        else if (a == "--base-url")
            s.base_url = value(), s.given["base_url"] = true;
        else if (a == "--direction")
            s.direction = value(), s.given["direction"] = true;
        else if (a == "--entities")
            s.entities = value(), s.given["entities"] = true;
        else if (a == "--map") {
            const std::string m = value();
            const auto eq = m.find('=');
            if (eq == std::string::npos || eq == 0 || eq + 1 == m.size())
                fail(64, "init: --map takes SPEAK4_FIELD=GHL_FIELD, not \"" + m + "\"");
            s.field_map.emplace_back(m.substr(0, eq), m.substr(eq + 1));
            s.given["map"] = true;
        } else
            fail(64, "init: unknown option " + a + " (see speak4-sync init --help)");
    }
    return s;
}

std::optional<std::string> check_location(const std::string& v) {
    if (v.empty())
        return "the location id is required (GHL: Settings > Business Profile, or the URL "
               "/location/<id>/…)";
    for (const char c : v)
        if (!std::isalnum(static_cast<unsigned char>(c)))
            return "a location id has only letters and digits";
    return std::nullopt;
}

std::optional<std::string> check_auth(const std::string& v) {
    if (v != "private_token" && v != "oauth")
        return "answer private_token or oauth";
    return std::nullopt;
}

/// "contacts, tasks" -> ["contacts", "tasks"] as TOML.
std::string entity_array(const std::string& list) {
    std::string out = "[";
    std::size_t pos = 0;
    while (pos <= list.size()) {
        auto end = list.find(',', pos);
        if (end == std::string::npos)
            end = list.size();
        std::string item = list.substr(pos, end - pos);
        const auto b = item.find_first_not_of(" \t");
        const auto e = item.find_last_not_of(" \t");
        item = b == std::string::npos ? std::string() : item.substr(b, e - b + 1);
        if (!item.empty())
            out += (out.size() > 1 ? ", " : "") + q(item);
        pos = end + 1;
    }
    return out + "]";
}

/// The parser's verdict on sync.entities = [list].
std::optional<std::string> check_entities(const std::string& list) {
    try {
        parse_config("[sync]\nentities = " + entity_array(list) + "\n", "init", "/");
    } catch (const config_error& e) {
        std::string m = e.what();
        if (const auto p = m.find("sync.entities"); p != std::string::npos)
            m = m.substr(p);
        return m;
    }
    return std::nullopt;
}

std::string config_text(const settings& s, const fs::path& secrets_dir, const fs::path& cfg_dir,
                        const std::vector<std::pair<std::string, std::string>>& map) {
    // Secret files beside the config are named relatively: the systemd unit's LoadCredential=
    // hands them over in $CREDENTIALS_DIRECTORY under the same names; run by hand they resolve
    // against the config's directory.
    const auto secret_ref = [&](const fs::path& p) {
        return p.parent_path() == cfg_dir ? p.filename().string() : p.string();
    };
    std::ostringstream t;
    t << "# speak4-sync configuration, written by `speak4-sync init`. Every key and its default:\n"
         "# conf/speak4-sync.toml in the source tree. Check it with\n"
         "#   speak4-sync check-config --online\n\n";
    t << "[database]\n# The SQLite mirror (inspect it with sqlite3; see README).\npath = "
      << q(s.database) << "\n\n";
    t << "[ghl]\nbase_url = " << q(s.base_url) << "\n# The GHL sub-account this daemon syncs.\n"
      << "location_id = " << q(s.location_id) << "\nauth = " << q(s.auth) << "\n";
    if (s.auth == "private_token") {
        const fs::path tf = s.token_file ? fs::absolute(*s.token_file) : secrets_dir / "ghl-token";
        t << "# The private integration token (a secret file, mode 0600).\ntoken_file = "
          << q(secret_ref(tf)) << "\n";
    } else {
        const fs::path sf = s.client_secret_file ? fs::absolute(*s.client_secret_file)
                                                 : secrets_dir / "ghl-client-secret";
        t << "client_id = " << q(s.client_id)
          << "\n# The OAuth app's client secret (a secret file, mode 0600). The tokens live in "
             "the database\n# after `speak4-sync auth exchange`.\nclient_secret_file = "
          << q(secret_ref(sf)) << "\n";
    }
    t << "\n[sync]\n# \"both\", \"pull\" (GHL -> Speak4 only; a read-only token is enough) or "
         "\"push\".\ndirection = "
      << q(s.direction)
      << "\n# What syncs besides contacts (children not listed are never fetched).\n"
         "entities = "
      << entity_array(s.entities) << "\n";
    t << "\n[api]\n# The local API (events in, changes out, /console/). Keep it on loopback.\n"
      << "listen = " << q(s.listen) << "\n# Its bearer token (generated; a secret file).\n"
      << "token_file = " << q(secret_ref(secrets_dir / "api-token")) << "\n";
    t << "\n[rules.field_map]\n# Speak4 field -> GHL field, a custom field's name, or "
         "customFields.<id|fieldKey>\n# (`speak4-sync fields` lists the location's custom "
         "fields).\n";
    for (const auto& [from, to] : map)
        t << q(from) << " = " << q(to) << "\n";
    return t.str();
}

} // namespace

int check_config(const std::string& config_path, bool online);

int run_init(const std::optional<std::string>& config_path, const std::vector<std::string>& args) {
    try {
        settings s = parse_flags(args);
        const fs::path cfg_path =
            fs::absolute(config_path.value_or("/etc/speak4-sync/speak4-sync.toml"));
        const fs::path cfg_dir = cfg_path.parent_path();
        const fs::path secrets_dir = cfg_dir;
        std::error_code ec;
        if (fs::exists(cfg_path, ec) && !s.force)
            fail(73, "init: " + cfg_path.string() +
                         " exists; keep it, or run init --force to replace it");
        prompter p;
        const bool ask = s.interactive;
        if (ask)
            std::printf("speak4-sync init: writes %s (Enter takes the [default])\n",
                        cfg_path.c_str());

        // The location and how to reach GHL.
        if (ask && !s.given["location_id"])
            s.location_id = p.ask("GHL location id", s.location_id, check_location);
        else if (auto why = check_location(s.location_id))
            fail(64, "init: --location-id: " + *why);
        // base_url is not asked (GHL has one API host); --base-url is for other hosts.
        if (auto why = check_with_parser("ghl", "base_url", s.base_url))
            fail(64, "init: --base-url: " + *why);
        if (ask && !s.given["auth"])
            s.auth = p.ask("auth mode (private_token or oauth)", s.auth, check_auth);
        else if (auto why = check_auth(s.auth))
            fail(64, "init: --auth: " + *why);

        // Secrets: asked hidden unless a file is given; written beside the config.
        std::optional<secret> token, client_secret;
        if (s.auth == "private_token") {
            if (!s.token_file) {
                if (!ask)
                    fail(64, "init: --token-file is required with --non-interactive "
                             "(a file holding the private integration token, mode 0600)");
                token = p.ask_secret("private integration token (GHL: Settings > Private "
                                     "Integrations; scopes contacts.readonly, contacts.write, "
                                     "locations/customFields.readonly)");
            }
        } else {
            if (ask && !s.given["client_id"])
                s.client_id = p.ask("OAuth client id", s.client_id, [](const std::string& v) {
                    return v.empty() ? std::optional<std::string>("required") : std::nullopt;
                });
            else if (s.client_id.empty())
                fail(64, "init: --client-id is required with --auth oauth");
            if (!s.client_secret_file) {
                if (!ask)
                    fail(64, "init: --client-secret-file is required with --non-interactive");
                client_secret = p.ask_secret("OAuth client secret");
            }
        }

        // Where the data goes.
        if (ask && !s.given["database"])
            s.database = p.ask("database file", s.database, [](const std::string& v) {
                return check_with_parser("database", "path", v);
            });
        else if (auto why = check_with_parser("database", "path", s.database))
            fail(64, "init: --database: " + *why);
        if (ask && !s.given["listen"])
            s.listen = p.ask("local API address", s.listen, [](const std::string& v) {
                return check_with_parser("api", "listen", v);
            });
        else if (auto why = check_with_parser("api", "listen", s.listen))
            fail(64, "init: --listen: " + *why);
        if (ask && !s.given["direction"])
            s.direction = p.ask(
                "sync direction: both, pull (GHL -> Speak4 only) or push", s.direction,
                [](const std::string& v) { return check_with_parser("sync", "direction", v); });
        else if (auto why = check_with_parser("sync", "direction", s.direction))
            fail(64, "init: --direction: " + *why);
        if (ask && !s.given["entities"])
            s.entities = p.ask("what syncs (contacts and any of tasks, notes, appointments)",
                               s.entities, check_entities);
        else if (auto why = check_entities(s.entities))
            fail(64, "init: --entities: " + *why);

        // The field mapping, from the location's own custom fields when GHL can tell us.
        std::vector<store::custom_field_row> fields;
        bool have_fields = false;
        if (s.online && s.auth == "private_token") {
            config probe;
            probe.ghl.location_id = s.location_id;
            probe.ghl.base_url = s.base_url;
            secrets sec;
            sec.ghl_token = token ? *token : read_secret_file(*s.token_file);
            auto r = app::list_from_ghl(probe, sec, false);
            if (r) {
                fields = std::move(*r);
                have_fields = true;
            } else {
                std::printf("note: could not list the location's custom fields: %s\n",
                            r.error().c_str());
            }
        }
        std::vector<std::pair<std::string, std::string>> map;
        const auto check_target = [&](const std::string& to) -> std::optional<std::string> {
            auto r = sync::resolve_fields({{"x", to}}, have_fields ? &fields : nullptr);
            if (r)
                return std::nullopt;
            std::string m = r.error();
            if (const auto p0 = m.find(": "); p0 != std::string::npos)
                m = m.substr(p0 + 2);
            return m;
        };
        for (const auto& [from, to] : s.field_map) {
            if (auto why = check_target(to))
                fail(78, "init: --map " + from + "=" + to + ": " + *why);
            map.emplace_back(from, to);
        }
        if (ask && !s.given["map"]) {
            if (have_fields) {
                std::printf("the location's contact custom fields:\n");
                for (std::size_t i = 0; i < fields.size(); ++i)
                    std::printf("  %2zu  %-28s %-16s %s\n", i + 1, fields[i].name.c_str(),
                                fields[i].data_type.c_str(), fields[i].field_key.c_str());
            }
            std::printf("map Speak4 fields to GHL ones, one a line as SPEAK4_FIELD = GHL_FIELD "
                        "(a standard field such as phone, a number from the list, or a name);\n"
                        "an empty line when done\n");
            for (;;) {
                const std::string line = p.ask("mapping", "", [&](const std::string& v) {
                    if (v.empty())
                        return std::optional<std::string>();
                    const auto eq = v.find('=');
                    if (eq == std::string::npos)
                        return std::optional<std::string>("write SPEAK4_FIELD = GHL_FIELD");
                    return std::optional<std::string>();
                });
                if (line.empty())
                    break;
                const auto eq = line.find('=');
                const auto trim = [](std::string v) {
                    const auto b = v.find_first_not_of(" \t");
                    const auto e = v.find_last_not_of(" \t");
                    return b == std::string::npos ? std::string() : v.substr(b, e - b + 1);
                };
                const std::string from = trim(line.substr(0, eq));
                std::string to = trim(line.substr(eq + 1));
                if (have_fields && !to.empty() && std::all_of(to.begin(), to.end(), [](char c) {
                        return std::isdigit(static_cast<unsigned char>(c));
                    })) {
                    const std::size_t n = std::stoul(to);
                    if (n >= 1 && n <= fields.size())
                        to = fields[n - 1].name;
                }
                if (from.empty()) {
                    std::printf("  the Speak4 field name is missing; try again\n");
                    continue;
                }
                if (auto why = check_target(to)) {
                    std::printf("  %s; try again\n", why->c_str());
                    continue;
                }
                map.emplace_back(from, to);
            }
        }

        // Write: secrets first (0600), then the config, then check what was written.
        fs::create_directories(secrets_dir, ec);
        if (token)
            write_secret(secrets_dir / "ghl-token", *token);
        if (client_secret)
            write_secret(secrets_dir / "ghl-client-secret", *client_secret);
        const fs::path api_token = secrets_dir / "api-token";
        if (!fs::exists(api_token, ec) || s.force)
            write_secret(api_token, random_token());
        {
            const std::string text = config_text(s, secrets_dir, cfg_dir, map);
            const fs::path tmp = cfg_path.string() + ".tmp";
            std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
            out << text;
            out.close();
            if (!out)
                fail(74, "init: cannot write " + tmp.string());
            fs::permissions(tmp, fs::perms::owner_read | fs::perms::owner_write |
                                     fs::perms::group_read | fs::perms::others_read);
            fs::rename(tmp, cfg_path);
        }
        std::printf("wrote %s and the secret files beside it (mode 0600: ", cfg_path.c_str());
        std::printf("%s%sapi-token)\n", token ? "ghl-token, " : "",
                    client_secret ? "ghl-client-secret, " : "");

        const bool oauth = s.auth == "oauth";
        const int rc = check_config(cfg_path.string(), s.online && !oauth);
        if (rc != 0)
            return rc;
        std::printf("\nnext steps:\n");
        if (oauth)
            std::printf("  speak4-sync --config %s auth exchange   (paste the code from the app's "
                        "install redirect on standard input, or --code-file FILE)\n",
                        cfg_path.c_str());
        std::printf("  sudo systemctl enable --now speak4-sync        # the unit reads "
                    "/etc/speak4-sync/speak4-sync.toml\n"
                    "  speak4-sync --config %s status\n"
                    "  console: http://%s/console/ (the API token is in %s)\n",
                    cfg_path.c_str(), s.listen.c_str(), api_token.c_str());
        return 0;
    } catch (const init_error& e) {
        std::fprintf(stderr, "%s\n", e.what());
        return e.code;
    } catch (const config_error& e) {
        std::fprintf(stderr, "init: %s\n", e.what());
        return static_cast<int>(exit_code::config);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "init: %s\n", e.what());
        return static_cast<int>(exit_code::io_err);
    }
}

} // namespace speak4::cli
