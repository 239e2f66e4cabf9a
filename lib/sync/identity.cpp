#include "sync/identity.hpp"

#include "core/json.hpp"
#include "core/log.hpp"

#include <SQLiteCpp/Statement.h>
#include <algorithm>
#include <array>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <stdexcept>

namespace speak4::sync {
namespace {

namespace bj = boost::json;

struct contact_fields {
    std::optional<std::string> speak4_id, ghl_id;
    std::array<std::optional<std::string>, 4> columns; // first_name, last_name, email, phone
    bj::array tags;
    bj::object custom_fields, fields;
    std::string updated_at;
};

constexpr std::array<const char*, 4> column_names{"first_name", "last_name", "email", "phone"};

std::optional<std::string> opt_text(const SQLite::Column& c) {
    if (c.isNull())
        return std::nullopt;
    return c.getString();
}

contact_fields read_contact(store::statement_cache& s, std::int64_t id) {
    auto& q = s.get("SELECT speak4_id, ghl_id, first_name, last_name, email, phone, tags, "
                    "custom_fields, fields, updated_at FROM contacts WHERE id = ?");
    q.bind(1, id);
    if (!q.executeStep())
        throw std::runtime_error("link: no contact row " + std::to_string(id));
    contact_fields c;
    c.speak4_id = opt_text(q.getColumn(0));
    c.ghl_id = opt_text(q.getColumn(1));
    for (std::size_t i = 0; i < c.columns.size(); ++i)
        c.columns[i] = opt_text(q.getColumn(static_cast<int>(2 + i)));
    if (auto v = json::parse(q.getColumn(6).getString()); v && v->is_array())
        c.tags = v->get_array();
    if (auto v = json::parse(q.getColumn(7).getString()); v && v->is_object())
        c.custom_fields = v->get_object();
    if (auto v = json::parse(q.getColumn(8).getString()); v && v->is_object())
        c.fields = v->get_object();
    c.updated_at = q.getColumn(9).getString();
    q.reset();
    return c;
}

std::string text_of(const bj::value& v) {
    return v.is_string() ? std::string(v.get_string()) : bj::serialize(v);
}

void change(store::statement_cache& s, std::int64_t id, std::string_view kind,
            std::string_view source, const bj::object& detail, const std::string& now) {
    auto& c = s.get("INSERT INTO changes(entity, entity_id, kind, source, ts, detail) "
                    "VALUES ('contact',?,?,?,?,?)");
    c.bind(1, id);
    c.bind(2, std::string(kind));
    c.bind(3, std::string(source));
    c.bind(4, now);
    c.bind(5, bj::serialize(detail));
    c.exec();
}

bj::array to_array(const std::vector<std::string>& v) {
    bj::array a;
    for (const auto& x : v)
        a.emplace_back(x);
    return a;
}

} // namespace

std::optional<std::int64_t> contact_of_speak4_id(store::statement_cache& s,
                                                 const std::string& speak4_id) {
    auto& q = s.get("SELECT contact_id FROM contact_aliases WHERE speak4_id = ?");
    q.bind(1, speak4_id);
    std::optional<std::int64_t> id;
    if (q.executeStep())
        id = q.getColumn(0).getInt64();
    q.reset();
    return id;
}

std::vector<std::string> speak4_ids_of(store::statement_cache& s, std::int64_t id) {
    std::vector<std::string> out;
    auto& q = s.get("SELECT a.speak4_id FROM contact_aliases a JOIN contacts c ON c.id = "
                    "a.contact_id WHERE a.contact_id = ? "
                    "ORDER BY a.speak4_id IS NOT c.speak4_id, a.created_at, a.speak4_id");
    q.bind(1, id);
    while (q.executeStep())
        out.push_back(q.getColumn(0).getString());
    q.reset();
    return out;
}

void record_identity_conflict(store::statement_cache& s, std::int64_t contact_id,
                              const std::string& field, const std::string& local_value,
                              const std::string& remote_value, const std::string& policy,
                              const std::string& now) {
    auto& ins = s.get("INSERT INTO conflicts(entity, entity_id, field, local_value, remote_value, "
                      "policy, winner, ts) VALUES ('contact',?,?,?,?,?,'remote',?)");
    ins.bind(1, contact_id);
    ins.bind(2, field);
    ins.bind(3, local_value);
    ins.bind(4, remote_value);
    ins.bind(5, policy);
    ins.bind(6, now);
    ins.exec();
    log::warn("identity conflict", {{"contact_id", contact_id},
                                    {"field", field},
                                    {"local", local_value},
                                    {"remote", remote_value}});
}

void add_speak4_id(store::statement_cache& s, std::int64_t id, const std::string& speak4_id,
                   std::string_view source, const std::string& now) {
    if (contact_of_speak4_id(s, speak4_id))
        return;
    auto& first = s.get("UPDATE contacts SET speak4_id = ?, updated_at = ? WHERE id = ? AND "
                        "speak4_id IS NULL");
    first.bind(1, speak4_id);
    first.bind(2, now);
    first.bind(3, id);
    if (first.exec() == 0) { // not the first: an alias only (the trigger adds the first)
        auto& a =
            s.get("INSERT INTO contact_aliases(speak4_id, contact_id, created_at) VALUES (?,?,?)");
        a.bind(1, speak4_id);
        a.bind(2, id);
        a.bind(3, now);
        a.exec();
    }
    const auto ids = speak4_ids_of(s, id);
    change(s, id, "linked", source,
           {{"speak4_ids", to_array(ids)}, {"added", speak4_id}, {"merged_id", nullptr}}, now);
    log::info("contact linked", {{"contact_id", id}, {"speak4_id", speak4_id}});
}

link_result link_contacts(store::statement_cache& s, std::int64_t into, std::int64_t from,
                          conflict_policy policy, std::string_view source, const std::string& now) {
    if (into == from)
        throw std::logic_error("link: a contact cannot be linked to itself");
    contact_fields a = read_contact(s, into); // the GHL record's row ("remote")
    contact_fields b = read_contact(s, from); // the Speak4 contact learning it ("local")
    if (b.ghl_id)
        throw std::logic_error("link: the merged contact has its own GHL id");
    const std::vector<std::string> from_ids = speak4_ids_of(s, from);
    link_result res;
    res.survivor = into;
    res.merged = from;

    const bool newer_local = b.updated_at > a.updated_at;
    const bool local_wins = policy == conflict_policy::local_wins ||
                            (policy == conflict_policy::newest_wins && newer_local);
    auto conflict = [&](const std::string& field, const std::string& local,
                        const std::string& remote) {
        auto& ins =
            s.get("INSERT INTO conflicts(entity, entity_id, field, local_value, remote_value, "
                  "policy, winner, ts) VALUES ('contact',?,?,?,?,?,?,?)");
        ins.bind(1, into);
        ins.bind(2, field);
        ins.bind(3, local);
        ins.bind(4, remote);
        ins.bind(5, std::string(to_string(policy)));
        ins.bind(6, local_wins ? "local" : "remote");
        ins.bind(7, now);
        ins.exec();
        ++res.conflicts;
    };
    // Columns: a value only one side has is kept; two different values are a conflict.
    for (std::size_t i = 0; i < a.columns.size(); ++i) {
        auto& have = a.columns[i];
        const auto& other = b.columns[i];
        if (!other)
            continue;
        if (!have) {
            have = other;
        } else if (*have != *other) {
            conflict(column_names[i], *other, *have);
            if (local_wins)
                have = other;
        }
    }
    // Tags: the union (a tag is not a value one side can lose).
    for (const auto& t : b.tags)
        if (std::find(a.tags.begin(), a.tags.end(), t) == a.tags.end())
            a.tags.push_back(t);
    auto merge_object = [&](bj::object& have, const bj::object& other, const std::string& prefix) {
        for (const auto& kv : other) {
            auto* mine = have.if_contains(kv.key());
            if (!mine || mine->is_null()) {
                have[kv.key()] = kv.value();
            } else if (*mine != kv.value()) {
                conflict(prefix + std::string(kv.key()), text_of(kv.value()), text_of(*mine));
                if (local_wins)
                    *mine = kv.value();
            }
        }
    };
    merge_object(a.custom_fields, b.custom_fields, "customFields.");
    merge_object(a.fields, b.fields, "");

    // Everything of `from` moves over: children, queued work, its own merged rows, its ids.
    for (const char* child : {"tasks", "notes", "appointments"}) {
        auto& m =
            s.get(std::string("UPDATE ") + child + " SET contact_id = ? WHERE contact_id = ?");
        m.bind(1, into);
        m.bind(2, from);
        m.exec();
    }
    {
        auto& q = s.get("UPDATE OR IGNORE pull_queue SET contact_id = ? WHERE contact_id = ?");
        q.bind(1, into);
        q.bind(2, from);
        q.exec();
        auto& qd = s.get("DELETE FROM pull_queue WHERE contact_id = ?");
        qd.bind(1, from);
        qd.exec();
        auto& mo =
            s.get("UPDATE outbox SET entity_id = ? WHERE entity = 'contact' AND entity_id = ?");
        mo.bind(1, into);
        mo.bind(2, from);
        mo.exec();
        auto& mm = s.get("UPDATE contacts SET merged_into = ? WHERE merged_into = ?");
        mm.bind(1, into);
        mm.bind(2, from);
        mm.exec();
        auto& al = s.get("UPDATE contact_aliases SET contact_id = ? WHERE contact_id = ?");
        al.bind(1, into);
        al.bind(2, from);
        al.exec();
    }
    // The merged row stays, pointing at the survivor. Its first Speak4 id becomes the
    // survivor's first when that has none (a contact imported from GHL).
    const bool move_first = !a.speak4_id && b.speak4_id;
    {
        auto& m = s.get(std::string("UPDATE contacts SET merged_into = ?, updated_at = ?") +
                        (move_first ? ", speak4_id = NULL" : "") + " WHERE id = ?");
        m.bind(1, into);
        m.bind(2, now);
        m.bind(3, from);
        m.exec();
    }
    {
        auto& u = s.get("UPDATE contacts SET speak4_id = COALESCE(speak4_id, ?), first_name = ?, "
                        "last_name = ?, email = ?, phone = ?, tags = ?, custom_fields = ?, "
                        "fields = ?, deleted = 0, updated_at = ? WHERE id = ?");
        if (move_first)
            u.bind(1, *b.speak4_id);
        for (std::size_t i = 0; i < a.columns.size(); ++i)
            if (a.columns[i])
                u.bind(static_cast<int>(2 + i), *a.columns[i]);
        u.bind(6, bj::serialize(a.tags));
        u.bind(7, bj::serialize(a.custom_fields));
        u.bind(8, bj::serialize(a.fields));
        u.bind(9, now);
        u.bind(10, into);
        u.exec();
    }
    res.speak4_ids = speak4_ids_of(s, into);
    change(s, into, "linked", source,
           {{"speak4_ids", to_array(res.speak4_ids)},
            {"linked_speak4_ids", to_array(from_ids)},
            {"merged_id", from},
            {"ghl_id", a.ghl_id ? bj::value(*a.ghl_id) : bj::value(nullptr)}},
           now);
    log::info("contacts linked", {{"contact_id", into},
                                  {"merged_id", from},
                                  {"speak4_ids", to_array(res.speak4_ids)},
                                  {"conflicts", res.conflicts}});
    return res;
}

} // namespace speak4::sync
