#include "sync/mirror.hpp"

#include "core/json.hpp"
#include "core/log.hpp"
#include "sync/rules.hpp"

#include <SQLiteCpp/Statement.h>
#include <algorithm>
#include <boost/json/serialize.hpp>
#include <boost/json/serializer.hpp>

namespace speak4::sync {
namespace {

namespace bj = boost::json;

constexpr std::string_view custom_prefix = "customFields.";

std::optional<std::string> opt_text(const SQLite::Column& c) {
    if (c.isNull())
        return std::nullopt;
    return c.getString();
}

bj::value text_or_null(const SQLite::Column& c) {
    if (c.isNull())
        return nullptr;
    return bj::value(c.getString());
}

bj::object parse_object(const std::string& text) {
    auto v = json::parse(text, {16 * 1024 * 1024, 64});
    return v && v->is_object() ? std::move(v->get_object()) : bj::object{};
}

bj::array parse_array(const std::string& text) {
    auto v = json::parse(text, {16 * 1024 * 1024, 64});
    return v && v->is_array() ? std::move(v->get_array()) : bj::array{};
}

bool is_custom(std::string_view field) {
    return field.substr(0, custom_prefix.size()) == custom_prefix;
}

/// The text a conflicts row keeps for a value: strings as they are, NULL for null, JSON else.
std::optional<std::string> value_text(const bj::value& v) {
    if (v.is_null())
        return std::nullopt;
    if (v.is_string())
        return std::string(v.get_string());
    return bj::serialize(v);
}

std::string_view kind_of(const bj::value& v) {
    switch (v.kind()) {
    case bj::kind::null:
        return "null";
    case bj::kind::bool_:
        return "bool";
    case bj::kind::int64:
    case bj::kind::uint64:
    case bj::kind::double_:
        return "number";
    case bj::kind::string:
        return "string";
    case bj::kind::array:
        return "array";
    case bj::kind::object:
        return "object";
    }
    return "unknown";
}

/// A flattened record: field name -> value, every known field present (null when absent).
struct flat_record {
    std::map<std::string, bj::value> values;
    std::set<std::string> invalid;
};

enum class want { string, boolean, object, array, any };

/// Reads field `name` of `o` expecting `w`; a missing or null field is null, a wrong-typed
/// one is recorded as invalid.
void read_field(const bj::object& o, std::string_view name, want w, flat_record& out) {
    const bj::value* v = o.if_contains(name);
    const std::string key(name);
    if (!v || v->is_null()) {
        out.values[key] = nullptr;
        return;
    }
    bool ok = false;
    switch (w) {
    case want::string:
        ok = v->is_string();
        break;
    case want::boolean:
        ok = v->is_bool();
        break;
    case want::object:
        ok = v->is_object();
        break;
    case want::array:
        ok = v->is_array();
        break;
    case want::any:
        ok = true;
        break;
    }
    if (ok)
        out.values[key] = *v;
    else
        out.invalid.insert(key);
}

want contact_field_type(std::string_view name) {
    if (name == "dnd")
        return want::boolean;
    if (name == "dndSettings")
        return want::object;
    if (name == "additionalEmails" || name == "additionalPhones")
        return want::array;
    return want::string;
}

/// A remote contact object, flattened: the columns, "tags", "customFields.<id>" per custom
/// field, the other fields, and "businessId".
flat_record flatten_remote_contact(const bj::object& o) {
    flat_record r;
    for (std::string_view name : {"firstName", "lastName", "email", "phone", "businessId"})
        read_field(o, name, want::string, r);
    for (std::string_view name : contact_other_fields)
        read_field(o, name, contact_field_type(name), r);

    const bj::value* tags = o.if_contains("tags");
    if (!tags || tags->is_null()) {
        r.values["tags"] = bj::array{};
    } else if (!tags->is_array()) {
        r.invalid.insert("tags");
    } else {
        bj::array out;
        for (const auto& t : tags->get_array()) {
            if (t.is_string())
                out.push_back(t);
            else
                r.invalid.insert("tags[]"); // the valid tags are still stored
        }
        r.values["tags"] = std::move(out);
    }

    const bj::value* cf = o.if_contains("customFields");
    if (cf && !cf->is_null()) {
        if (!cf->is_array()) {
            r.invalid.insert("customFields");
        } else {
            for (const auto& item : cf->get_array()) {
                const auto* f = item.if_object();
                const auto* id = f ? f->if_contains("id") : nullptr;
                if (!id || !id->is_string() || id->get_string().empty()) {
                    r.invalid.insert("customFields[]");
                    continue;
                }
                // GHL reads back "value"; tolerate the write-side names too.
                const bj::value* val = f->if_contains("value");
                if (!val)
                    val = f->if_contains("field_value");
                if (!val)
                    val = f->if_contains("fieldValue");
                r.values[std::string(custom_prefix) + std::string(id->get_string())] =
                    val ? *val : bj::value(nullptr);
            }
        }
    }
    return r;
}

bool same(const std::map<std::string, bj::value>& a, const std::map<std::string, bj::value>& b) {
    // Absent and null are the same thing.
    auto non_null = [](const std::map<std::string, bj::value>& m) {
        std::map<std::string, const bj::value*> out;
        for (const auto& [k, v] : m)
            if (!v.is_null())
                out.emplace(k, &v);
        return out;
    };
    const auto x = non_null(a);
    const auto y = non_null(b);
    if (x.size() != y.size())
        return false;
    for (auto i = x.begin(), j = y.begin(); i != x.end(); ++i, ++j)
        if (i->first != j->first || *i->second != *j->second)
            return false;
    return true;
}

const bj::value& get_or_null(const std::map<std::string, bj::value>& m, const std::string& k) {
    static const bj::value null_value;
    auto it = m.find(k);
    return it == m.end() ? null_value : it->second;
}

std::optional<std::string> as_text(const bj::value& v) {
    if (v.is_string())
        return std::string(v.get_string());
    return std::nullopt;
}

std::vector<std::string> strings_of(const bj::value& v) {
    std::vector<std::string> out;
    if (const auto* a = v.if_array())
        for (const auto& t : *a)
            if (t.is_string())
                out.emplace_back(t.get_string());
    return out;
}

/// "2026-12-01T15:00:00.000Z" for anything parse_iso8601 reads; other strings as they are.
bj::value normalized_time(const bj::value& v) {
    if (!v.is_string())
        return v;
    if (auto t = parse_iso8601(v.get_string()))
        return bj::value(format_iso8601(*t));
    return v;
}

/// The record as stored in `raw`: without "searchAfter" (a search cursor, not part of the
/// record). Byte for byte what serializing a copy after copy.erase("searchAfter") gave (the
/// members in order, except that object::erase moves the last member into the erased one's
/// place), without copying the record.
std::string serialize_without_cursor(const bj::object& raw) {
    const auto cursor = raw.find("searchAfter");
    if (cursor == raw.end())
        return bj::serialize(raw);
    const auto last = raw.end() - 1;
    if (cursor == last) {
        // The usual case (GHL sends the cursor last): the whole record's text minus its last
        // member, which is `"searchAfter":<cursor>` and the comma before it.
        std::string out = bj::serialize(raw);
        const std::string member = "\"searchAfter\":" + bj::serialize(cursor->value()) + "}";
        if (out.size() > member.size() &&
            out.compare(out.size() - member.size(), member.size(), member) == 0) {
            out.resize(out.size() - member.size());
            if (out.back() == ',')
                out.pop_back();
            out += '}';
            return out;
        }
    }
    std::string out = "{";
    bj::serializer sr;
    char buf[4096];
    auto append = [&] {
        while (!sr.done()) {
            const auto part = sr.read(buf, sizeof buf);
            out.append(part.data(), part.size());
        }
    };
    for (auto it = raw.begin(); it != last; ++it) { // `last` goes in the cursor's place
        const auto& kv = it == cursor ? *last : *it;
        if (out.size() > 1)
            out += ',';
        sr.reset(kv.key());
        append();
        out += ':';
        sr.reset(&kv.value());
        append();
    }
    out += '}';
    return out;
}

void log_invalid(std::string_view entity, std::string_view ghl_id,
                 const std::set<std::string>& invalid, const bj::object& raw) {
    if (invalid.empty())
        return;
    bj::array fields;
    bj::array kinds;
    for (const auto& f : invalid) {
        fields.emplace_back(f);
        const std::string base =
            f.size() > 2 && f.substr(f.size() - 2) == "[]" ? f.substr(0, f.size() - 2) : f;
        const auto* v = raw.if_contains(base);
        kinds.emplace_back(v ? kind_of(*v) : "missing");
    }
    log::warn("remote record has malformed fields; stored the rest",
              {{"entity", std::string(entity)},
               {"ghl_id", std::string(ghl_id)},
               {"fields", fields},
               {"kinds", kinds}});
}

int count_invalid(const std::set<std::string>& invalid) {
    return static_cast<int>(invalid.size());
}

} // namespace

mirror::mirror(SQLite::Database& db, const speak4::clock& clk, const mirror_options& opt)
    : db_(db)
    , clock_(clk)
    , opt_(opt)
    , stmts_(db)
    , now_tp_(clk.now())
    , now_(format_iso8601(now_tp_)) {}

void mirror::change(std::string_view entity, std::int64_t id, std::string_view kind) {
    auto& c = stmts_.get(
        "INSERT INTO changes(entity, entity_id, kind, source, ts) VALUES (?,?,?,'remote',?)");
    c.bind(1, std::string(entity));
    c.bind(2, id);
    c.bind(3, std::string(kind));
    c.bind(4, now_);
    c.exec();
}

std::optional<known_contact> mirror::find_contact(std::string_view ghl_id) {
    auto& q = stmts_.get(
        "SELECT id, remote_updated_at, deleted, raw IS NOT NULL FROM contacts WHERE ghl_id = ?");
    q.bind(1, std::string(ghl_id));
    if (!q.executeStep())
        return std::nullopt;
    known_contact k;
    k.id = q.getColumn(0).getInt64();
    if (auto t = opt_text(q.getColumn(1)))
        k.remote_updated_at = parse_iso8601(*t);
    k.deleted = q.getColumn(2).getInt() != 0;
    k.has_raw = q.getColumn(3).getInt() != 0;
    return k;
}

// --- conflicts ---------------------------------------------------------------------------------

void mirror::set_fetched_at(sys_time t) {
    fetched_at_ = format_iso8601(t);
}

mirror::pending_map mirror::pending_fields(entity_kind entity, std::int64_t id) {
    pending_map out;
    // Rows done since the copy was read count only if they reached GHL (a row settled by a
    // conflict or skipped without a call has attempts = 0).
    auto& q = stmts_.get(
        "SELECT id, op, payload, created_at, state FROM outbox WHERE entity = ?1 "
        "AND entity_id = ?2 AND (state IN ('pending', 'inflight') OR (state = 'done' "
        "AND attempts > 0 AND ?3 IS NOT NULL AND updated_at >= ?3)) "
        "AND op IN ('create', 'update', 'tag_add', 'tag_remove', 'complete') ORDER BY id");
    q.bind(1, std::string(to_string(entity)));
    q.bind(2, id);
    if (fetched_at_)
        q.bind(3, *fetched_at_);
    else
        q.bind(3);
    bool ahead = false;
    auto note = [&](const std::string& field, std::int64_t row, const std::string& created,
                    const char* how = "=", const bj::value* value = nullptr) {
        auto& p = out[field];
        p.local_is_ahead |= ahead;
        p.rows.push_back(row);
        p.newest_created_at = std::max(p.newest_created_at, created);
        if (value)
            p.writes.emplace_back(how, *value);
    };
    while (q.executeStep()) {
        const std::int64_t row = q.getColumn(0).getInt64();
        const std::string op = q.getColumn(1).getString();
        const std::string created = q.getColumn(3).getString();
        ahead = q.getColumn(4).getString() != "pending";
        const bj::object payload = parse_object(q.getColumn(2).getString());
        if (op == "tag_add" || op == "tag_remove") {
            note("tags", row, created, op == "tag_add" ? "+" : "-", payload.if_contains("tags"));
            continue;
        }
        if (op == "complete") {
            note("completed", row, created, "=", payload.if_contains("completed"));
            continue;
        }
        const auto* set = payload.if_contains("set");
        if (!set || !set->is_object())
            continue;
        for (const auto& kv : set->get_object()) {
            if (kv.key() == "customFields") {
                if (const auto* cf = kv.value().if_object()) {
                    for (const auto& c : *cf)
                        note(std::string(custom_prefix) + std::string(c.key()), row, created);
                } else if (const auto* arr = kv.value().if_array()) {
                    for (const auto& c : *arr)
                        if (const auto* o = c.if_object())
                            if (auto fid = json::get_string(*o, "id"))
                                note(std::string(custom_prefix) + *fid, row, created);
                }
                continue;
            }
            note(std::string(kv.key()), row, created, "=", &kv.value());
        }
    }
    return out;
}

namespace {

std::vector<std::string> tag_set(const bj::value& v) {
    std::vector<std::string> out;
    if (const auto* a = v.if_array())
        for (const auto& t : *a)
            if (t.is_string())
                out.emplace_back(t.get_string());
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

} // namespace

bool mirror::is_own_write(const pending_field& p, const std::string& field, const bj::value& remote,
                          const std::optional<flat>& previous) {
    if (field != "tags") {
        return std::any_of(p.writes.begin(), p.writes.end(),
                           [&](const auto& w) { return w.first == "=" && w.second == remote; });
    }
    // Tags: GHL's set after some prefix of our queued tag writes, applied to the set it had.
    const std::vector<std::string> want = tag_set(remote);
    std::vector<std::string> state =
        previous ? tag_set(get_or_null(*previous, "tags")) : std::vector<std::string>{};
    for (const auto& [how, value] : p.writes) {
        std::vector<std::string> tags = tag_set(value);
        std::vector<std::string> next;
        if (how == "+")
            std::set_union(state.begin(), state.end(), tags.begin(), tags.end(),
                           std::back_inserter(next));
        else if (how == "-")
            std::set_difference(state.begin(), state.end(), tags.begin(), tags.end(),
                                std::back_inserter(next));
        else
            next = std::move(tags);
        state = std::move(next);
        if (state == want)
            return true;
    }
    return false;
}

void mirror::drop_pending_field(entity_kind entity, const std::string& field,
                                const pending_field& p) {
    for (const std::int64_t row : p.rows) {
        auto& q = stmts_.get("SELECT op, state, payload FROM outbox WHERE id = ?");
        q.bind(1, row);
        if (!q.executeStep())
            continue;
        const std::string op = q.getColumn(0).getString();
        const std::string state = q.getColumn(1).getString();
        bj::object payload = parse_object(q.getColumn(2).getString());
        q.reset();
        if (state != "pending") {
            // Already claimed by the dispatcher: its request is built. If it lands after GHL's
            // change, GHL ends up with the local value and the next pull brings that back.
            log::warn(
                "remote won a conflict but the local change is already in flight",
                {{"entity", std::string(to_string(entity))}, {"field", field}, {"outbox_id", row}});
            continue;
        }
        bool settle = false;
        if (op == "tag_add" || op == "tag_remove" || op == "complete") {
            settle = true; // the whole row is about this one field
        } else if (auto* set = payload.if_contains("set"); set && set->is_object()) {
            auto& s = set->get_object();
            if (is_custom(field)) {
                const std::string id = field.substr(custom_prefix.size());
                if (auto* cf = s.if_contains("customFields")) {
                    if (auto* obj = cf->if_object()) {
                        obj->erase(id);
                        if (obj->empty())
                            s.erase("customFields");
                    } else if (auto* arr = cf->if_array()) {
                        bj::array kept;
                        for (auto& c : *arr) {
                            const auto* o = c.if_object();
                            if (!(o && json::get_string(*o, "id") == id))
                                kept.push_back(c);
                        }
                        if (kept.empty())
                            s.erase("customFields");
                        else
                            *cf = std::move(kept);
                    }
                }
            } else {
                s.erase(field);
            }
            // An update with nothing left to send is done; a create must still create.
            settle = op == "update" && s.empty();
        }
        if (settle) {
            auto& u = stmts_.get(
                "UPDATE outbox SET state = 'done', last_error = ?, updated_at = ? WHERE id = ?");
            u.bind(1, "superseded by a remote change (conflict on " + field + ")");
            u.bind(2, now_);
            u.bind(3, row);
            u.exec();
        } else {
            auto& u = stmts_.get("UPDATE outbox SET payload = ?, updated_at = ? WHERE id = ?");
            u.bind(1, bj::serialize(payload));
            u.bind(2, now_);
            u.bind(3, row);
            u.exec();
        }
    }
}

mirror::flat mirror::merge(entity_kind entity, std::int64_t id, const flat& local,
                           const flat& remote, const std::optional<flat>& previous,
                           const std::set<std::string>& invalid,
                           std::optional<sys_time> remote_updated, int& conflicts) {
    const pending_map pending = pending_fields(entity, id);
    std::set<std::string> keys;
    for (const auto& kv : local)
        keys.insert(kv.first);
    for (const auto& kv : remote)
        keys.insert(kv.first);

    flat out;
    for (const auto& k : keys) {
        const bj::value& l = get_or_null(local, k);
        const bool bad = invalid.count(k) || (is_custom(k) && invalid.count("customFields"));
        if (bad) {
            out[k] = l; // keep what we had rather than store a malformed value
            continue;
        }
        const bj::value& r = get_or_null(remote, k);
        const auto p = pending.find(k);
        if (p == pending.end() || r == l) {
            out[k] = r;
            continue;
        }
        if (previous && get_or_null(*previous, k) == r) {
            out[k] = l; // only the local side changed this field since the last pull
            continue;
        }
        if (p->second.local_is_ahead) {
            // Our write is in flight or landed after this copy was read: the copy is stale.
            out[k] = l;
            continue;
        }
        if (is_own_write(p->second, k, r, previous)) {
            // GHL shows what one of our queued writes sets (an attempt whose outcome we never
            // heard, or one a pull overtook): our own change coming back, not a remote edit.
            // The rows behind it still carry the newer local value.
            out[k] = l;
            continue;
        }
        // Both sides changed the field: the policy decides.
        bool remote_wins = false;
        switch (opt_.policy) {
        case conflict_policy::remote_wins:
            remote_wins = true;
            break;
        case conflict_policy::local_wins:
            remote_wins = false;
            break;
        case conflict_policy::newest_wins: {
            const auto local_at = parse_iso8601(p->second.newest_created_at);
            remote_wins = !remote_updated || !local_at || *remote_updated > *local_at;
            break;
        }
        }
        conflict_record c{std::string(to_string(entity)),
                          id,
                          k,
                          value_text(l),
                          value_text(r),
                          std::string(to_string(opt_.policy)),
                          remote_wins ? "remote" : "local"};
        auto& ins = stmts_.get(
            "INSERT INTO conflicts(entity, entity_id, field, local_value, remote_value, policy, "
            "winner, ts) VALUES (?,?,?,?,?,?,?,?)");
        ins.bind(1, c.entity);
        ins.bind(2, c.entity_id);
        ins.bind(3, c.field);
        if (c.local_value)
            ins.bind(4, *c.local_value);
        if (c.remote_value)
            ins.bind(5, *c.remote_value);
        ins.bind(6, c.policy);
        ins.bind(7, c.winner);
        ins.bind(8, now_);
        ins.exec();
        log::info("conflict", {{"entity", c.entity},
                               {"entity_id", c.entity_id},
                               {"field", c.field},
                               {"policy", c.policy},
                               {"winner", c.winner}});
        conflicts_.push_back(std::move(c));
        ++conflicts;
        if (remote_wins) {
            out[k] = r;
            drop_pending_field(entity, k, p->second);
        } else {
            out[k] = l;
        }
    }
    return out;
}

// --- contacts ----------------------------------------------------------------------------------

prepared_contact prepare_contact(const ghl::contact& c) {
    prepared_contact p;
    p.raw = serialize_without_cursor(c.raw);
    if (c.date_updated)
        p.remote_updated = format_iso8601(*c.date_updated);
    return p;
}

contact_result mirror::apply_contact(const ghl::contact& c) {
    return apply_contact(c, prepare_contact(c));
}

contact_result mirror::apply_contact(const ghl::contact& c, prepared_contact prepared) {
    contact_result res;
    flat_record remote = flatten_remote_contact(c.raw);
    // The parsed id is authoritative (parse_contact guarantees it); the rest comes from raw.
    log_invalid("contact", c.id, remote.invalid, c.raw);
    res.invalid_fields = count_invalid(remote.invalid);
    remote.invalid.erase("tags[]");
    remote.invalid.erase("customFields[]");

    auto& q = stmts_.get(
        "SELECT id, speak4_id, deleted, first_name, last_name, email, phone, tags, custom_fields, "
        "fields, business_id, workflow, raw FROM contacts WHERE ghl_id = ?");
    q.bind(1, c.id);
    std::optional<std::int64_t> row_id;
    bool deleted = false;
    bool fresh = true; // no GHL data stored yet (new row, or a webhook's stub)
    flat local;
    bj::object extra_fields; // keys of `fields` we do not manage: kept as they are
    std::optional<std::string> workflow;
    std::optional<flat> previous;
    if (q.executeStep()) {
        row_id = q.getColumn(0).getInt64();
        deleted = q.getColumn(2).getInt() != 0;
        fresh = q.getColumn(12).isNull() && q.getColumn(1).isNull();
        local["firstName"] = text_or_null(q.getColumn(3));
        local["lastName"] = text_or_null(q.getColumn(4));
        local["email"] = text_or_null(q.getColumn(5));
        local["phone"] = text_or_null(q.getColumn(6));
        local["tags"] = parse_array(q.getColumn(7).getString());
        for (const auto& kv : parse_object(q.getColumn(8).getString()))
            local[std::string(custom_prefix) + std::string(kv.key())] = kv.value();
        for (const auto& kv : parse_object(q.getColumn(9).getString())) {
            const bool managed = std::find(contact_other_fields.begin(), contact_other_fields.end(),
                                           kv.key()) != contact_other_fields.end();
            if (managed)
                local[std::string(kv.key())] = kv.value();
            else
                extra_fields[kv.key()] = kv.value();
        }
        local["businessId"] = text_or_null(q.getColumn(10));
        workflow = opt_text(q.getColumn(11));
        if (auto raw = opt_text(q.getColumn(12)))
            previous = flatten_remote_contact(parse_object(*raw)).values;
    }
    q.reset();

    if (row_id && deleted) {
        // Deleted here (by Speak4 or an earlier remote delete): a pulled copy must not bring it
        // back; a pending delete push will remove it from GHL.
        res.id = *row_id;
        res.skipped = true;
        return res;
    }

    // A new contact takes the remote values as they are (moved: `remote.values` is not read
    // again).
    flat merged = row_id ? merge(entity_kind::contact, *row_id, local, remote.values, previous,
                                 remote.invalid, c.date_updated, res.conflicts)
                         : std::move(remote.values);
    if (!row_id) {
        // Nothing local to keep for malformed fields of a new contact: they stay empty.
        for (const auto& f : remote.invalid)
            merged.erase(f);
    }

    // Back to columns.
    bj::array tags = merged["tags"].is_array() ? merged["tags"].get_array() : bj::array{};
    bj::object custom_fields;
    bj::object fields = extra_fields;
    for (const auto& [k, v] : merged) {
        if (v.is_null())
            continue;
        if (is_custom(k))
            custom_fields[k.substr(custom_prefix.size())] = v;
        else if (std::find(contact_other_fields.begin(), contact_other_fields.end(), k) !=
                 contact_other_fields.end())
            fields[k] = v;
    }
    const bool changed = !row_id || fresh || !same(local, merged);
    const std::optional<std::string>& remote_updated = prepared.remote_updated;
    const std::string& raw = prepared.raw;

    // The ten mirror columns an insert and an update both write, bound from position `first`:
    // first_name, last_name, email, phone, tags, custom_fields, fields, business_id,
    // remote_updated_at, raw.
    auto bind_columns = [&](SQLite::Statement& st, int first) {
        static constexpr const char* names[] = {"firstName", "lastName", "email", "phone"};
        for (int i = 0; i < 4; ++i)
            if (auto t = as_text(merged[names[i]]))
                st.bind(first + i, *t);
        st.bind(first + 4, bj::serialize(tags));
        st.bind(first + 5, bj::serialize(custom_fields));
        st.bind(first + 6, bj::serialize(fields));
        if (auto b = as_text(merged["businessId"]))
            st.bind(first + 7, *b);
        if (remote_updated)
            st.bind(first + 8, *remote_updated);
        st.bind(first + 9, raw);
    };
    if (!row_id) {
        auto& ins =
            stmts_.get("INSERT INTO contacts(ghl_id, first_name, last_name, email, phone, tags, "
                       "custom_fields, "
                       "fields, business_id, remote_updated_at, raw, created_at, updated_at) "
                       "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)");
        ins.bind(1, c.id);
        bind_columns(ins, 2);
        ins.bind(12, now_);
        ins.bind(13, now_);
        ins.exec();
        row_id = db_.getLastInsertRowid();
    } else {
        auto& u = stmts_.get("UPDATE contacts SET first_name = ?, last_name = ?, email = ?, phone "
                             "= ?, tags = ?, custom_fields = ?, "
                             "fields = ?, business_id = ?, remote_updated_at = COALESCE(?, "
                             "remote_updated_at), raw = ?, "
                             "updated_at = CASE WHEN ? THEN ? ELSE updated_at END WHERE id = ?");
        bind_columns(u, 1);
        u.bind(11, changed ? 1 : 0);
        u.bind(12, now_);
        u.bind(13, *row_id);
        u.exec();
    }
    res.id = *row_id;
    res.created = fresh;
    res.changed = changed;
    res.business_id = as_text(merged["businessId"]);
    if (changed)
        change("contact", res.id, fresh ? "created" : "updated");

    // Tag routes: the workflow follows the tags as they are now.
    const auto route = route_for_tags(opt_.rules, strings_of(merged["tags"]));
    if (route != workflow) {
        auto& w = stmts_.get("UPDATE contacts SET workflow = ?, updated_at = ? WHERE id = ?");
        if (route)
            w.bind(1, *route);
        w.bind(2, now_);
        w.bind(3, res.id);
        w.exec();
        change("contact", res.id, "workflow");
        res.workflow_changed = true;
        log::info("workflow", {{"contact_id", res.id},
                               {"ghl_id", c.id},
                               {"workflow", route ? bj::value(*route) : bj::value(nullptr)}});
    }
    return res;
}

bool mirror::mark_contact_deleted(std::string_view ghl_id) {
    auto& q = stmts_.get("SELECT id FROM contacts WHERE ghl_id = ? AND deleted = 0");
    q.bind(1, std::string(ghl_id));
    if (!q.executeStep())
        return false;
    const std::int64_t id = q.getColumn(0).getInt64();
    q.reset();
    auto& u = stmts_.get("UPDATE contacts SET deleted = 1, updated_at = ? WHERE id = ?");
    u.bind(1, now_);
    u.bind(2, id);
    u.exec();
    change("contact", id, "deleted");
    // Its background child fetch has nothing left to fetch.
    auto& d = stmts_.get("DELETE FROM pull_queue WHERE contact_id = ?");
    d.bind(1, id);
    d.exec();
    return true;
}

bool mirror::revive_contact(std::string_view ghl_id) {
    // Not while Speak4's own delete of it is on its way: GHL shows it only until that lands.
    auto& q = stmts_.get(
        "SELECT c.id FROM contacts c WHERE c.ghl_id = ? AND c.deleted = 1 AND NOT EXISTS ("
        "SELECT 1 FROM outbox o WHERE o.entity = 'contact' AND o.entity_id = c.id AND "
        "o.op = 'delete' AND o.state IN ('pending', 'inflight'))");
    q.bind(1, std::string(ghl_id));
    if (!q.executeStep())
        return false;
    const std::int64_t id = q.getColumn(0).getInt64();
    q.reset();
    auto& u = stmts_.get("UPDATE contacts SET deleted = 0, updated_at = ? WHERE id = ?");
    u.bind(1, now_);
    u.bind(2, id);
    u.exec();
    change("contact", id, "revived");
    log::info("contact revived: GHL shows it again", {{"contact_id", id}, {"ghl_id", ghl_id}});
    return true;
}

// --- tasks and notes ---------------------------------------------------------------------------

namespace {

/// Describes one child table for the shared apply loop.
struct child_spec {
    entity_kind entity; // task | note
    const char* table;  // "tasks" | "notes"
    // GHL field -> column, and the expected type.
    std::vector<std::tuple<std::string, std::string, want>> fields;
};

const child_spec task_spec{entity_kind::task,
                           "tasks",
                           {{"title", "title", want::string},
                            {"body", "body", want::string},
                            {"dueDate", "due_date", want::string},
                            {"completed", "completed", want::boolean},
                            {"assignedTo", "assigned_to", want::string}}};

const child_spec note_spec{
    entity_kind::note, "notes", {{"body", "body", want::string}, {"title", "title", want::string}}};

flat_record flatten_remote_child(const child_spec& spec, const bj::object& o) {
    flat_record r;
    for (const auto& [name, column, type] : spec.fields) {
        read_field(o, name, type, r);
        if (name == "dueDate")
            r.values[name] = normalized_time(r.values[name]);
    }
    // GHL omits `completed` on some task payloads; absent means not completed.
    if (spec.entity == entity_kind::task && r.values["completed"].is_null() &&
        !r.invalid.count("completed"))
        r.values["completed"] = false;
    return r;
}

} // namespace

children_result mirror::apply_tasks(std::int64_t contact_id, const std::vector<ghl::task>& tasks,
                                    sys_time listed_at) {
    std::vector<child_input> items;
    items.reserve(tasks.size());
    for (const auto& t : tasks)
        items.push_back({&t.id, &t.raw});
    return apply_children(entity_kind::task, contact_id, items, listed_at);
}

children_result mirror::apply_notes(std::int64_t contact_id, const std::vector<ghl::note>& notes,
                                    sys_time listed_at) {
    std::vector<child_input> items;
    items.reserve(notes.size());
    for (const auto& n : notes)
        items.push_back({&n.id, &n.raw});
    return apply_children(entity_kind::note, contact_id, items, listed_at);
}

children_result mirror::apply_children(entity_kind entity, std::int64_t contact_id,
                                       const std::vector<child_input>& items, sys_time listed_at) {
    const child_spec& spec = entity == entity_kind::task ? task_spec : note_spec;
    children_result res;
    const std::string table = spec.table;
    std::string columns;
    for (const auto& f : spec.fields)
        columns += ", " + std::get<1>(f);

    std::set<std::string> seen;
    for (const auto& item : items) {
        const std::string& ghl_id = *item.id;
        const bj::object& raw_obj = *item.raw;
        if (!seen.insert(ghl_id).second)
            continue; // listed twice: once is enough
        flat_record remote = flatten_remote_child(spec, raw_obj);
        log_invalid(to_string(spec.entity), ghl_id, remote.invalid, raw_obj);

        auto& q = stmts_.get("SELECT id, deleted, raw" + columns + " FROM " + table +
                             " WHERE ghl_id = ?");
        q.bind(1, ghl_id);
        std::optional<std::int64_t> row_id;
        bool deleted = false;
        flat local;
        std::optional<flat> previous;
        if (q.executeStep()) {
            row_id = q.getColumn(0).getInt64();
            deleted = q.getColumn(1).getInt() != 0;
            if (auto r = opt_text(q.getColumn(2)))
                previous = flatten_remote_child(spec, parse_object(*r)).values;
            int col = 3;
            for (const auto& [name, column, type] : spec.fields) {
                const auto c = q.getColumn(col++);
                if (type == want::boolean)
                    local[name] = c.isNull() ? bj::value(nullptr) : bj::value(c.getInt() != 0);
                else
                    local[name] = text_or_null(c);
            }
        }
        q.reset();
        if (row_id && deleted) {
            ++res.skipped; // deleted here; a pending delete push removes it from GHL
            continue;
        }
        flat merged;
        if (row_id) {
            merged = merge(spec.entity, *row_id, local, remote.values, previous, remote.invalid,
                           std::nullopt, res.conflicts);
        } else {
            merged = remote.values;
            for (const auto& f : remote.invalid)
                merged.erase(f);
        }
        const bool changed = !row_id || !same(local, merged);

        std::string sql;
        if (!row_id) {
            sql = "INSERT INTO " + table + "(ghl_id, contact_id, raw, created_at, updated_at" +
                  columns + ") VALUES (?,?,?,?,?";
            for (std::size_t i = 0; i < spec.fields.size(); ++i)
                sql += ",?";
            sql += ")";
        } else {
            sql = "UPDATE " + table +
                  " SET ghl_id = ?, contact_id = ?, raw = ?, created_at = COALESCE(?, created_at), "
                  "updated_at = CASE WHEN ? IS NULL THEN updated_at ELSE ? END";
            for (const auto& f : spec.fields)
                sql += ", " + std::get<1>(f) + " = ?";
            sql += " WHERE id = ?";
        }
        auto& w = stmts_.get(sql);
        int i = 1;
        w.bind(i++, ghl_id);
        w.bind(i++, contact_id);
        w.bind(i++, bj::serialize(raw_obj));
        if (!row_id) {
            w.bind(i++, now_);
            w.bind(i++, now_);
        } else {
            ++i; // created_at stays
            if (changed) {
                w.bind(i, now_);
                w.bind(i + 1, now_);
            }
            i += 2;
        }
        for (const auto& [name, column, type] : spec.fields) {
            const bj::value& v = merged[name];
            if (v.is_bool())
                w.bind(i, v.get_bool() ? 1 : 0);
            else if (v.is_string())
                w.bind(i, std::string(v.get_string()));
            else if (type == want::boolean)
                w.bind(i, 0); // completed is NOT NULL
            ++i;
        }
        if (row_id)
            w.bind(i++, *row_id);
        w.exec();
        if (!row_id) {
            row_id = db_.getLastInsertRowid();
            ++res.created;
            change(to_string(spec.entity), *row_id, "created");
        } else if (changed) {
            ++res.updated;
            change(to_string(spec.entity), *row_id, "updated");
        } else {
            ++res.unchanged;
        }
    }

    // Removed remotely.
    for (const auto id : mark_unlisted(table, contact_id, seen, listed_at)) {
        change(to_string(spec.entity), id, "deleted");
        ++res.deleted;
    }
    return res;
}

// --- appointments ------------------------------------------------------------------------------

children_result mirror::apply_appointments(std::int64_t contact_id,
                                           const std::vector<ghl::appointment>& appts,
                                           sys_time listed_at) {
    children_result res;
    std::set<std::string> seen;
    const int minutes = opt_.rules.appointment_reminder_minutes;
    for (const auto& a : appts) {
        if (!seen.insert(a.id).second)
            continue;
        flat_record f;
        for (std::string_view name :
             {"title", "startTime", "endTime", "status", "appointmentStatus"})
            read_field(a.raw, name, want::string, f);
        log_invalid("appointment", a.id, f.invalid, a.raw);
        const auto status = a.appointment_status ? a.appointment_status : a.status;
        const bool cancelled =
            (a.appointment_status && is_cancelled_status(*a.appointment_status)) ||
            (a.status && is_cancelled_status(*a.status));
        auto iso = [](const std::optional<std::string>& text,
                      const std::optional<sys_time>& t) -> std::optional<std::string> {
            if (t)
                return format_iso8601(*t);
            return text; // not a time we can read: kept as GHL sent it (raw has it too)
        };
        const auto start = iso(a.start_time, a.start_at);
        const auto end = iso(a.end_time, a.end_at);
        if (a.start_time && !a.start_at)
            log::warn("appointment start time not understood; no reminder",
                      {{"ghl_id", a.id}, {"startTime", *a.start_time}});

        auto& q = stmts_.get(
            "SELECT id, title, start_time, end_time, status, deleted, contact_id FROM appointments "
            "WHERE ghl_id = ?");
        q.bind(1, a.id);
        std::optional<std::int64_t> row_id;
        bool changed = true;
        if (q.executeStep()) {
            row_id = q.getColumn(0).getInt64();
            changed = opt_text(q.getColumn(1)) != a.title || opt_text(q.getColumn(2)) != start ||
                      opt_text(q.getColumn(3)) != end || opt_text(q.getColumn(4)) != status ||
                      q.getColumn(5).getInt() != 0 || q.getColumn(6).getInt64() != contact_id;
        }
        q.reset();
        auto& w = row_id
                      ? stmts_.get("UPDATE appointments SET contact_id = ?, title = ?, start_time "
                                   "= ?, end_time = ?, "
                                   "status = ?, deleted = 0, raw = ?, updated_at = ? WHERE id = ?")
                      : stmts_.get("INSERT INTO appointments(contact_id, title, start_time, "
                                   "end_time, status, raw, "
                                   "updated_at, ghl_id) VALUES (?,?,?,?,?,?,?,?)");
        w.bind(1, contact_id);
        if (a.title)
            w.bind(2, *a.title);
        if (start)
            w.bind(3, *start);
        if (end)
            w.bind(4, *end);
        if (status)
            w.bind(5, *status);
        w.bind(6, bj::serialize(a.raw));
        w.bind(7, now_);
        if (row_id)
            w.bind(8, *row_id);
        else
            w.bind(8, a.id);
        w.exec();
        if (!row_id) {
            row_id = db_.getLastInsertRowid();
            ++res.created;
            change("appointment", *row_id, "created");
        } else if (changed) {
            ++res.updated;
            change("appointment", *row_id, "updated");
        } else {
            ++res.unchanged;
        }
        const auto remind_at = reminder_time(a.start_at, cancelled, minutes, now_tp_);
        if (sync_reminder(db_, *row_id, remind_at, now_tp_) != reminder_change::none)
            ++res.reminders;
    }

    for (const auto id : mark_unlisted("appointments", contact_id, seen, listed_at)) {
        change("appointment", id, "deleted");
        ++res.deleted;
        if (sync_reminder(db_, id, std::nullopt, now_tp_) != reminder_change::none)
            ++res.reminders;
    }
    return res;
}

// --- bookkeeping -------------------------------------------------------------------------------

std::vector<std::int64_t> mirror::mark_unlisted(const std::string& table, std::int64_t contact_id,
                                                const std::set<std::string>& listed,
                                                sys_time listed_at) {
    // Known to GHL (a ghl_id) but no longer listed. A row touched since the list was requested
    // may have just been linked by a push; the next pull settles it.
    auto& gone = stmts_.get("SELECT id, ghl_id FROM " + table +
                            " WHERE contact_id = ? AND deleted = 0 AND ghl_id IS NOT NULL "
                            "AND updated_at < ?");
    gone.bind(1, contact_id);
    gone.bind(2, format_iso8601(listed_at));
    std::vector<std::int64_t> removed;
    while (gone.executeStep())
        if (!listed.count(gone.getColumn(1).getString()))
            removed.push_back(gone.getColumn(0).getInt64());
    gone.reset();
    for (const auto id : removed) {
        auto& u = stmts_.get("UPDATE " + table + " SET deleted = 1, updated_at = ? WHERE id = ?");
        u.bind(1, now_);
        u.bind(2, id);
        u.exec();
    }
    return removed;
}

void mirror::write_audit(const std::vector<audit_entry>& entries) {
    write_audit_rows(stmts_, entries, now_);
}

std::optional<std::string> mirror::cursor(std::string_view name) {
    auto& q = stmts_.get("SELECT value FROM sync_cursors WHERE name = ?");
    q.bind(1, std::string(name));
    if (!q.executeStep())
        return std::nullopt;
    std::string v = q.getColumn(0).getString();
    q.reset();
    return v;
}

void mirror::set_cursor(std::string_view name, std::string_view value) {
    auto& c = stmts_.get(
        "INSERT INTO sync_cursors(name, value, updated_at) VALUES (?,?,?) "
        "ON CONFLICT(name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at");
    c.bind(1, std::string(name));
    c.bind(2, std::string(value));
    c.bind(3, now_);
    c.exec();
}

void mirror::erase_cursor(std::string_view name) {
    auto& d = stmts_.get("DELETE FROM sync_cursors WHERE name = ?");
    d.bind(1, std::string(name));
    d.exec();
}

void mirror::enqueue_children(std::int64_t contact_id, bool all, std::string_view reason) {
    auto& ins =
        stmts_.get("INSERT INTO pull_queue(contact_id, what, reason, next_attempt_at, created_at) "
                   "VALUES (?,?,?,?,?) ON CONFLICT(contact_id) DO UPDATE SET "
                   "what = CASE WHEN excluded.what = 'all' THEN 'all' ELSE pull_queue.what END, "
                   "next_attempt_at = MIN(pull_queue.next_attempt_at, excluded.next_attempt_at)");
    ins.bind(1, contact_id);
    ins.bind(2, all ? "all" : "tasks");
    ins.bind(3, std::string(reason));
    ins.bind(4, now_);
    ins.bind(5, now_);
    ins.exec();
}

} // namespace speak4::sync
