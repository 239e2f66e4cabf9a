#include "sync/intake.hpp"

#include "core/entity.hpp"
#include "core/json.hpp"
#include "store/database.hpp"
#include "sync/identity.hpp"

#include <SQLiteCpp/Exception.h>
#include <SQLiteCpp/Transaction.h>
#include <algorithm>
#include <array>
#include <boost/json/serialize.hpp>
#include <optional>
#include <sqlite3.h>
#include <stdexcept>

namespace speak4::sync {
namespace {

namespace bj = boost::json;

/// An event that contradicts the mirror. Thrown only inside intake and caught at its boundary.
struct refusal {
    std::string field;
    std::string message;
    /// An identity conflict to record in `conflicts` although the event leaves no other trace.
    struct identity_conflict {
        std::int64_t contact_id = 0;
        std::string field, local_value, remote_value;
    };
    std::optional<identity_conflict> conflict;
};

struct contact_row {
    std::int64_t id = 0;
    std::optional<std::string> speak4_id;
    std::optional<std::string> ghl_id;
    bool deleted = false;
    bj::array tags;
    bj::object custom_fields;
    bj::object fields;
};

struct child_row {
    std::int64_t id = 0;
    std::int64_t contact_id = 0;
    std::optional<std::string> ghl_id;
    bool deleted = false;
};

std::optional<std::string> opt_text(const SQLite::Column& c) {
    if (c.isNull())
        return std::nullopt;
    return c.getString();
}

bj::array parse_array(const std::string& text) {
    auto v = json::parse(text);
    return v && v->is_array() ? v->get_array() : bj::array{};
}

bj::object parse_object(const std::string& text) {
    auto v = json::parse(text);
    return v && v->is_object() ? v->get_object() : bj::object{};
}

// Standard GHL fields that have their own mirror column; the rest go to `fields`.
constexpr std::array<std::string_view, 4> contact_fields{"firstName", "lastName", "email", "phone"};
constexpr std::array<std::string_view, 4> contact_columns{"first_name", "last_name", "email",
                                                          "phone"};

/// The index of a GHL field in contact_columns, or -1 for a field kept in `fields`.
int column_index(std::string_view ghl_field) {
    for (std::size_t i = 0; i < contact_fields.size(); ++i)
        if (contact_fields[i] == ghl_field)
            return static_cast<int>(i);
    return -1;
}

class applier {
public:
    applier(store::statement_cache& s, const clock& clk,
            const std::function<void(std::string_view)>& fp)
        : s_(s)
        , now_(format_iso8601(clk.now()))
        , fail_point_(fp) {}

    accepted run(const event& ev, std::string_view body) {
        // One statement for the common case: a repeated event_id conflicts and inserts nothing,
        // and only then is its first delivery looked up.
        auto& ins = s_.get("INSERT INTO inbox(event_id, type, body, received_at) VALUES (?,?,?,?) "
                           "ON CONFLICT(event_id) DO NOTHING");
        if (ev.event_id)
            ins.bind(1, *ev.event_id);
        ins.bind(2, std::string(to_string(ev.type)));
        ins.bind(3, std::string(body));
        ins.bind(4, now_);
        if (ins.exec() == 0) {
            auto& q = s_.get("SELECT id FROM inbox WHERE event_id = ?");
            q.bind(1, *ev.event_id); // only a non-null event_id can conflict
            if (!q.executeStep())
                throw std::runtime_error("inbox: the event_id conflicted but is not there");
            return accepted{true, last_seq(), q.getColumn(0).getInt64()};
        }
        inbox_id_ = s_.db().getLastInsertRowid();
        hit("after_inbox");
        dispatch(ev);
        return accepted{false, last_seq(), inbox_id_};
    }

    /// Forget the change feed's position (after a rollback to a savepoint).
    void forget_seq() { seq_.reset(); }

private:
    void hit(std::string_view point) {
        if (fail_point_)
            fail_point_(point);
    }

    /// The change feed's last seq: read once, then followed as this applier appends to it (the
    /// transaction holds the write lock, so nobody else appends meanwhile).
    std::int64_t last_seq() {
        if (!seq_) {
            auto& q = s_.get("SELECT COALESCE(MAX(seq), 0) FROM changes");
            q.executeStep();
            seq_ = q.getColumn(0).getInt64();
            q.reset();
        }
        return *seq_;
    }

    void dispatch(const event& ev) {
        switch (ev.type) {
        case event_type::contact_created:
            contact_created(ev, false);
            break;
        case event_type::lead_created:
            contact_created(ev, true);
            break;
        case event_type::contact_updated:
            contact_updated(ev);
            break;
        case event_type::contact_deleted:
            contact_deleted(ev);
            break;
        case event_type::contact_opened:
            contact_opened(ev);
            break;
        case event_type::contact_tagged:
            contact_tags(ev, true);
            break;
        case event_type::contact_untagged:
            contact_tags(ev, false);
            break;
        case event_type::note_created:
            note_created(ev);
            break;
        case event_type::note_updated:
            note_updated(ev);
            break;
        case event_type::note_deleted:
            note_deleted(ev);
            break;
        case event_type::task_created:
            task_created(ev);
            break;
        case event_type::task_updated:
            task_updated(ev);
            break;
        case event_type::task_completed:
            task_completed(ev);
            break;
        case event_type::task_deleted:
            task_deleted(ev);
            break;
        }
    }

    // --- lookups ---------------------------------------------------------------------------

    std::optional<contact_row> find_contact_by(const char* column, const std::string& value) {
        // A Speak4 id resolves through the alias table: any of a contact's ids names it.
        const std::string where =
            std::string(column) == "speak4_id"
                ? "id = (SELECT contact_id FROM contact_aliases WHERE speak4_id = ?)"
                : std::string(column) + " = ?";
        auto& q = s_.get("SELECT id, speak4_id, ghl_id, deleted, tags, custom_fields, fields "
                         "FROM contacts WHERE " +
                         where);
        q.bind(1, value);
        if (!q.executeStep())
            return std::nullopt;
        contact_row r;
        r.id = q.getColumn(0).getInt64();
        r.speak4_id = opt_text(q.getColumn(1));
        r.ghl_id = opt_text(q.getColumn(2));
        r.deleted = q.getColumn(3).getInt() != 0;
        r.tags = parse_array(q.getColumn(4).getString());
        r.custom_fields = parse_object(q.getColumn(5).getString());
        r.fields = parse_object(q.getColumn(6).getString());
        return r;
    }

    /// The contact an event names, or nullopt. An event naming a Speak4 id together with the
    /// GHL id of a contact the mirror has says they are one person: they are linked (DESIGN §9),
    /// the Speak4 id becoming one of that contact's ids. A Speak4 id already linked to another
    /// GHL id is refused, naming both, and recorded in `conflicts`.
    std::optional<contact_row> find_contact(const entity_ref& ref) {
        std::optional<contact_row> by_s4, by_ghl;
        if (ref.speak4_id)
            by_s4 = find_contact_by("speak4_id", *ref.speak4_id);
        if (ref.ghl_id)
            by_ghl = find_contact_by("ghl_id", *ref.ghl_id);
        if (by_s4 && ref.ghl_id && by_s4->ghl_id && *by_s4->ghl_id != *ref.ghl_id) {
            refusal r{"contact.ghl_id",
                      "contact.ghl_id " + *ref.ghl_id + " does not match the GHL id " +
                          *by_s4->ghl_id + " contact.speak4_id " + *ref.speak4_id +
                          " is linked to: one Speak4 contact cannot be two GHL contacts"};
            r.conflict =
                refusal::identity_conflict{by_s4->id, "ghl_id", *ref.ghl_id, *by_s4->ghl_id};
            throw r;
        }
        if (by_s4 && by_ghl && by_s4->id != by_ghl->id) {
            if (by_ghl->deleted || by_s4->deleted)
                throw refusal{"contact.ghl_id",
                              "contact.ghl_id and contact.speak4_id name two contacts, one of "
                              "them deleted: not linked"};
            // The Speak4 contact (no GHL id yet) is the GHL one: link them.
            link_contacts(s_, by_ghl->id, by_s4->id, policy_, "local", now_);
            return find_contact_by("ghl_id", *ref.ghl_id);
        }
        if (by_s4)
            return by_s4;
        if (by_ghl && ref.speak4_id && !by_ghl->deleted) {
            // A Speak4 id new to the mirror named with a known GHL id: one more id of it.
            add_speak4_id(s_, by_ghl->id, *ref.speak4_id, "local", now_);
            by_ghl->speak4_id = by_ghl->speak4_id ? by_ghl->speak4_id : ref.speak4_id;
        }
        return by_ghl;
    }

    static std::string ref_field(const entity_ref& ref, const char* prefix) {
        return std::string(prefix) + (ref.speak4_id ? ".speak4_id" : ".ghl_id");
    }

    /// The contact an event names; refused when unknown or deleted. A contact named only by a
    /// GHL id we have not pulled yet is known to exist remotely: it gets a mirror row.
    contact_row require_contact(const entity_ref& ref, bool allow_remote_stub = true) {
        auto c = find_contact(ref);
        if (!c) {
            if (allow_remote_stub && ref.ghl_id && !ref.speak4_id)
                return insert_contact_stub(*ref.ghl_id);
            throw refusal{ref_field(ref, "contact"),
                          ref_field(ref, "contact") + " names no known contact"};
        }
        if (c->deleted)
            throw refusal{ref_field(ref, "contact"),
                          ref_field(ref, "contact") + " names a deleted contact"};
        return *c;
    }

    contact_row insert_contact_stub(const std::string& ghl_id) {
        auto& ins = s_.get("INSERT INTO contacts(ghl_id, created_at, updated_at) VALUES (?,?,?)");
        ins.bind(1, ghl_id);
        ins.bind(2, now_);
        ins.bind(3, now_);
        ins.exec();
        contact_row r;
        r.id = s_.db().getLastInsertRowid();
        r.ghl_id = ghl_id;
        return r;
    }

    std::optional<child_row> find_child(entity_kind kind, const entity_ref& ref) {
        const std::string base = "SELECT id, contact_id, ghl_id, deleted FROM " +
                                 std::string(table_of(kind)) + " WHERE ";
        auto lookup = [&](const char* column,
                          const std::string& value) -> std::optional<child_row> {
            auto& q = s_.get(base + column + " = ?");
            q.bind(1, value);
            if (!q.executeStep())
                return std::nullopt;
            return child_row{q.getColumn(0).getInt64(), q.getColumn(1).getInt64(),
                             opt_text(q.getColumn(2)), q.getColumn(3).getInt() != 0};
        };
        if (ref.speak4_id)
            if (auto r = lookup("speak4_id", *ref.speak4_id))
                return r;
        if (ref.ghl_id)
            return lookup("ghl_id", *ref.ghl_id);
        return std::nullopt;
    }

    child_row require_child(entity_kind kind, const entity_ref& ref, const contact_row& c) {
        auto r = find_child(kind, ref);
        const std::string name(to_string(kind));
        const std::string field = ref_field(ref, name.c_str());
        if (!r)
            throw refusal{field, field + " names no known " + name};
        if (r->contact_id != c.id)
            throw refusal{field, field + " belongs to another contact"};
        if (r->deleted)
            throw refusal{field, field + " names a deleted " + name};
        return *r;
    }

    // --- writes ----------------------------------------------------------------------------

    void change(entity_kind entity, std::int64_t id, const char* kind) {
        auto& ins = s_.get(
            "INSERT INTO changes(entity, entity_id, kind, source, ts) VALUES (?,?,?,'local',?)");
        ins.bind(1, std::string(to_string(entity)));
        ins.bind(2, id);
        ins.bind(3, kind);
        ins.bind(4, now_);
        ins.exec();
        seq_ = s_.db().getLastInsertRowid(); // seq is the rowid
    }

    void enqueue(const char* op, entity_kind entity, std::int64_t id, const bj::object& payload) {
        auto& ins = s_.get(
            "INSERT INTO outbox(op, entity, entity_id, state, attempts, next_attempt_at, payload, "
            "inbox_id, created_at, updated_at) VALUES (?,?,?,'pending',0,?,?,?,?,?)");
        ins.bind(1, op);
        ins.bind(2, std::string(to_string(entity)));
        ins.bind(3, id);
        ins.bind(4, now_);
        ins.bind(5, bj::serialize(payload));
        ins.bind(6, inbox_id_);
        ins.bind(7, now_);
        ins.bind(8, now_);
        ins.exec();
    }

    /// The mirror columns a change names (first_name, last_name, email, phone, in
    /// contact_columns order): unset when not named, else the text to store (NULL when the
    /// value is not a string, e.g. null to clear).
    using column_values = std::array<std::optional<std::optional<std::string>>, 4>;

    /// Applies contact field changes to `c` (tags, custom fields, other fields) and collects the
    /// column values in `cols`; returns the outbox payload ("set"). Writes nothing.
    static bj::object merge_contact_changes(contact_row& c, const contact_changes& ch,
                                            column_values& cols) {
        bj::object set;
        for (const auto& kv : ch.fields) {
            set[kv.key()] = kv.value();
            if (const int i = column_index(kv.key()); i >= 0) {
                cols[static_cast<std::size_t>(i)] =
                    kv.value().is_string()
                        ? std::optional<std::string>(std::string(kv.value().get_string()))
                        : std::nullopt;
            } else {
                c.fields[kv.key()] = kv.value();
            }
        }
        if (ch.tags) {
            bj::array tags;
            for (const auto& t : *ch.tags)
                tags.emplace_back(t);
            c.tags = tags;
            set["tags"] = std::move(tags);
        }
        if (!ch.custom_fields.empty()) {
            bj::object cf;
            for (const auto& [id, v] : ch.custom_fields) {
                cf[id] = v;
                if (v.is_null())
                    c.custom_fields.erase(id);
                else
                    c.custom_fields[id] = v;
            }
            set["customFields"] = std::move(cf);
        }
        return set;
    }

    /// Writes contact field changes to the mirror row in one UPDATE; returns the outbox payload
    /// ("set").
    bj::object write_contact_changes(contact_row& c, const contact_changes& ch) {
        column_values cols;
        bj::object set = merge_contact_changes(c, ch, cols);
        // Only the named columns are in the statement (one cached statement per combination).
        std::string sql = "UPDATE contacts SET ";
        for (std::size_t i = 0; i < cols.size(); ++i)
            if (cols[i])
                sql += std::string(contact_columns[i]) + " = ?, ";
        sql += "tags = ?, custom_fields = ?, fields = ?, updated_at = ? WHERE id = ?";
        auto& u = s_.get(sql);
        int n = 1;
        for (const auto& col : cols) {
            if (!col)
                continue;
            if (*col)
                u.bind(n, **col);
            ++n;
        }
        u.bind(n, bj::serialize(c.tags));
        u.bind(n + 1, bj::serialize(c.custom_fields));
        u.bind(n + 2, bj::serialize(c.fields));
        u.bind(n + 3, now_);
        u.bind(n + 4, c.id);
        u.exec();
        return set;
    }

    void attach_notes(const event& ev, const contact_row& c) {
        for (std::size_t i = 0; i < ev.notes.size(); ++i) {
            const auto& n = ev.notes[i];
            const std::string field = "notes[" + std::to_string(i) + "].speak4_id";
            if (find_child(entity_kind::note, n.ref))
                throw refusal{field, field + " names a note that already exists"};
            insert_note(n, c);
        }
    }

    void insert_note(const note_data& n, const contact_row& c) {
        auto& ins = s_.get(
            "INSERT INTO notes(speak4_id, ghl_id, contact_id, title, body, created_at, updated_at) "
            "VALUES (?,?,?,?,?,?,?)");
        if (n.ref.speak4_id)
            ins.bind(1, *n.ref.speak4_id);
        if (n.ref.ghl_id)
            ins.bind(2, *n.ref.ghl_id);
        ins.bind(3, c.id);
        if (n.title)
            ins.bind(4, *n.title);
        if (n.body)
            ins.bind(5, *n.body);
        ins.bind(6, now_);
        ins.bind(7, now_);
        ins.exec();
        const std::int64_t id = s_.db().getLastInsertRowid();
        hit("after_mirror");
        bj::object set;
        if (n.body)
            set["body"] = *n.body;
        if (n.title)
            set["title"] = *n.title;
        enqueue(n.ref.ghl_id ? "update" : "create", entity_kind::note, id,
                {{"set", std::move(set)}});
        hit("after_outbox");
        change(entity_kind::note, id, "created");
    }

    void contact_created(const event& ev, bool lead) {
        auto existing = find_contact(ev.contact);
        if (existing && existing->deleted)
            throw refusal{ref_field(ev.contact, "contact"),
                          ref_field(ev.contact, "contact") + " names a deleted contact"};
        contact_row c;
        const char* kind = "updated";
        bj::object set;
        if (existing) {
            c = *existing; // Speak4 re-sent a create: apply it as an update of the same contact
            set = write_contact_changes(c, ev.changes);
        } else {
            // A new row is inserted with its fields at once (no UPDATE after the INSERT).
            column_values cols;
            set = merge_contact_changes(c, ev.changes, cols);
            auto& ins = s_.get("INSERT INTO contacts(speak4_id, ghl_id, first_name, last_name, "
                               "email, phone, tags, custom_fields, fields, created_at, updated_at) "
                               "VALUES (?,?,?,?,?,?,?,?,?,?,?)");
            if (ev.contact.speak4_id)
                ins.bind(1, *ev.contact.speak4_id);
            if (ev.contact.ghl_id)
                ins.bind(2, *ev.contact.ghl_id);
            for (std::size_t i = 0; i < cols.size(); ++i)
                if (cols[i] && *cols[i])
                    ins.bind(3 + static_cast<int>(i), **cols[i]);
            ins.bind(7, bj::serialize(c.tags));
            ins.bind(8, bj::serialize(c.custom_fields));
            ins.bind(9, bj::serialize(c.fields));
            ins.bind(10, now_);
            ins.bind(11, now_);
            ins.exec();
            c.id = s_.db().getLastInsertRowid();
            c.speak4_id = ev.contact.speak4_id;
            c.ghl_id = ev.contact.ghl_id;
            kind = "created";
        }
        hit("after_mirror");
        bj::object payload{{"set", std::move(set)}};
        if (lead)
            payload["lead"] = true; // find by email/phone first, then create or update
        // A contact GHL already knows (or one Speak4 re-created) is updated, not created again.
        enqueue(existing || c.ghl_id ? "update" : "create", entity_kind::contact, c.id, payload);
        if (lead)
            enqueue("pull", entity_kind::contact, c.id, {{"children", true}});
        hit("after_outbox");
        change(entity_kind::contact, c.id, kind);
        attach_notes(ev, c);
    }

    void contact_updated(const event& ev) {
        contact_row c = require_contact(ev.contact);
        if (ev.changes.empty() && ev.notes.empty() && !ev.pull)
            throw refusal{"contact", "contact.updated names no field to change"};
        if (!ev.changes.empty()) {
            bj::object set = write_contact_changes(c, ev.changes);
            hit("after_mirror");
            enqueue("update", entity_kind::contact, c.id, {{"set", std::move(set)}});
            hit("after_outbox");
            change(entity_kind::contact, c.id, "updated");
        }
        attach_notes(ev, c);
        if (ev.pull)
            enqueue("pull", entity_kind::contact, c.id, {{"children", true}});
    }

    void contact_deleted(const event& ev) {
        contact_row c = require_contact(ev.contact, false);
        auto& u = s_.get("UPDATE contacts SET deleted = 1, updated_at = ? WHERE id = ?");
        u.bind(1, now_);
        u.bind(2, c.id);
        u.exec();
        hit("after_mirror");
        enqueue("delete", entity_kind::contact, c.id, {});
        hit("after_outbox");
        change(entity_kind::contact, c.id, "deleted");
    }

    void contact_opened(const event& ev) {
        // A contact marked deleted may be opened too: the pull it asks for reads the record by
        // id, and one GHL still shows is revived (DESIGN §9).
        auto found = find_contact(ev.contact);
        contact_row c = found && found->deleted ? *found : require_contact(ev.contact);
        enqueue("pull", entity_kind::contact, c.id, {{"children", true}});
    }

    void contact_tags(const event& ev, bool add) {
        contact_row c = require_contact(ev.contact);
        bj::array tags = c.tags;
        bj::array named;
        for (const auto& t : ev.tags) {
            named.emplace_back(t);
            auto it = std::find_if(tags.begin(), tags.end(), [&](const bj::value& v) {
                return v.is_string() && v.get_string() == t;
            });
            if (add && it == tags.end())
                tags.emplace_back(t);
            if (!add && it != tags.end())
                tags.erase(it);
        }
        auto& u = s_.get("UPDATE contacts SET tags = ?, updated_at = ? WHERE id = ?");
        u.bind(1, bj::serialize(tags));
        u.bind(2, now_);
        u.bind(3, c.id);
        u.exec();
        hit("after_mirror");
        enqueue(add ? "tag_add" : "tag_remove", entity_kind::contact, c.id,
                {{"tags", std::move(named)}});
        hit("after_outbox");
        change(entity_kind::contact, c.id, add ? "tagged" : "untagged");
    }

    void note_created(const event& ev) {
        contact_row c = require_contact(ev.contact);
        const auto& n = ev.notes.at(0);
        if (find_child(entity_kind::note, n.ref))
            throw refusal{ref_field(n.ref, "note"),
                          ref_field(n.ref, "note") + " names a note that already exists"};
        insert_note(n, c);
    }

    void note_updated(const event& ev) {
        contact_row c = require_contact(ev.contact);
        const auto& n = ev.notes.at(0);
        child_row r = require_child(entity_kind::note, n.ref, c);
        bj::object set;
        if (n.body) {
            auto& u = s_.get("UPDATE notes SET body = ? WHERE id = ?");
            u.bind(1, *n.body);
            u.bind(2, r.id);
            u.exec();
            set["body"] = *n.body;
        }
        if (n.title) {
            auto& u = s_.get("UPDATE notes SET title = ? WHERE id = ?");
            u.bind(1, *n.title);
            u.bind(2, r.id);
            u.exec();
            set["title"] = *n.title;
        }
        touch(entity_kind::note, r.id);
        hit("after_mirror");
        enqueue("update", entity_kind::note, r.id, {{"set", std::move(set)}});
        hit("after_outbox");
        change(entity_kind::note, r.id, "updated");
    }

    void note_deleted(const event& ev) {
        contact_row c = require_contact(ev.contact);
        child_row r = require_child(entity_kind::note, ev.notes.at(0).ref, c);
        mark_deleted(entity_kind::note, r.id);
        hit("after_mirror");
        enqueue("delete", entity_kind::note, r.id, {});
        hit("after_outbox");
        change(entity_kind::note, r.id, "deleted");
    }

    void touch(entity_kind kind, std::int64_t id) {
        auto& u =
            s_.get("UPDATE " + std::string(table_of(kind)) + " SET updated_at = ? WHERE id = ?");
        u.bind(1, now_);
        u.bind(2, id);
        u.exec();
    }

    void mark_deleted(entity_kind kind, std::int64_t id) {
        auto& u = s_.get("UPDATE " + std::string(table_of(kind)) +
                         " SET deleted = 1, updated_at = ? WHERE id = ?");
        u.bind(1, now_);
        u.bind(2, id);
        u.exec();
    }

    static bj::object task_set(const task_data& t) {
        bj::object set;
        if (t.title)
            set["title"] = *t.title;
        if (t.body)
            set["body"] = *t.body;
        if (t.due_date)
            set["dueDate"] = *t.due_date;
        if (t.completed)
            set["completed"] = *t.completed;
        if (t.assigned_to)
            set["assignedTo"] = *t.assigned_to;
        return set;
    }

    void write_task_fields(std::int64_t id, const task_data& t) {
        auto& u = s_.get("UPDATE tasks SET title = COALESCE(?, title), body = COALESCE(?, body), "
                         "due_date = COALESCE(?, due_date), completed = COALESCE(?, completed), "
                         "assigned_to = COALESCE(?, assigned_to), updated_at = ? WHERE id = ?");
        if (t.title)
            u.bind(1, *t.title);
        if (t.body)
            u.bind(2, *t.body);
        if (t.due_date)
            u.bind(3, *t.due_date);
        if (t.completed)
            u.bind(4, *t.completed ? 1 : 0);
        if (t.assigned_to)
            u.bind(5, *t.assigned_to);
        u.bind(6, now_);
        u.bind(7, id);
        u.exec();
    }

    void task_created(const event& ev) {
        contact_row c = require_contact(ev.contact);
        const task_data& t = *ev.task;
        if (find_child(entity_kind::task, t.ref))
            throw refusal{ref_field(t.ref, "task"),
                          ref_field(t.ref, "task") + " names a task that already exists"};
        auto& ins = s_.get("INSERT INTO tasks(speak4_id, ghl_id, contact_id, created_at, "
                           "updated_at) VALUES (?,?,?,?,?)");
        if (t.ref.speak4_id)
            ins.bind(1, *t.ref.speak4_id);
        if (t.ref.ghl_id)
            ins.bind(2, *t.ref.ghl_id);
        ins.bind(3, c.id);
        ins.bind(4, now_);
        ins.bind(5, now_);
        ins.exec();
        const std::int64_t id = s_.db().getLastInsertRowid();
        write_task_fields(id, t);
        hit("after_mirror");
        bj::object set = task_set(t);
        if (!set.contains("completed"))
            set["completed"] = false; // required by CreateTaskParams
        enqueue(t.ref.ghl_id ? "update" : "create", entity_kind::task, id,
                {{"set", std::move(set)}});
        hit("after_outbox");
        change(entity_kind::task, id, "created");
    }

    void task_updated(const event& ev) {
        contact_row c = require_contact(ev.contact);
        child_row r = require_child(entity_kind::task, ev.task->ref, c);
        write_task_fields(r.id, *ev.task);
        hit("after_mirror");
        enqueue("update", entity_kind::task, r.id, {{"set", task_set(*ev.task)}});
        hit("after_outbox");
        change(entity_kind::task, r.id, "updated");
    }

    void task_completed(const event& ev) {
        contact_row c = require_contact(ev.contact);
        child_row r = require_child(entity_kind::task, ev.task->ref, c);
        const bool done = ev.task->completed.value_or(true);
        auto& u = s_.get("UPDATE tasks SET completed = ?, updated_at = ? WHERE id = ?");
        u.bind(1, done ? 1 : 0);
        u.bind(2, now_);
        u.bind(3, r.id);
        u.exec();
        hit("after_mirror");
        enqueue("complete", entity_kind::task, r.id, {{"completed", done}});
        hit("after_outbox");
        change(entity_kind::task, r.id, "completed");
    }

    void task_deleted(const event& ev) {
        contact_row c = require_contact(ev.contact);
        child_row r = require_child(entity_kind::task, ev.task->ref, c);
        mark_deleted(entity_kind::task, r.id);
        hit("after_mirror");
        enqueue("delete", entity_kind::task, r.id, {});
        hit("after_outbox");
        change(entity_kind::task, r.id, "deleted");
    }

    store::statement_cache& s_;
    std::string now_;
    const std::function<void(std::string_view)>& fail_point_;
    std::int64_t inbox_id_ = 0;
    std::optional<std::int64_t> seq_;
    /// Links made at intake merge fields as newest_wins: both sides are what Speak4 and the
    /// last pull said, and the newer row is the better guess.
    conflict_policy policy_ = conflict_policy::newest_wins;
};

intake_error io_failure(SQLite::Database& db, const std::exception& e) {
    intake_error err{intake_error::kind::io, "", store::describe_sqlite_error(db.getFilename(), e)};
    if (const auto* se = dynamic_cast<const SQLite::Exception*>(&e))
        err.busy = se->getErrorCode() == SQLITE_BUSY || se->getErrorCode() == SQLITE_LOCKED;
    return err;
}

} // namespace

intake::intake(SQLite::Database& db, const clock& clk)
    : db_(db)
    , clock_(clk)
    , stmts_(db) {}

intake_outcome intake::accept(const event& ev, std::string_view body) {
    auto results = accept_batch({raw_event{ev, std::string(body)}});
    return std::move(results.front());
}

std::vector<intake_outcome> intake::accept_batch(const std::vector<raw_event>& events) {
    std::vector<intake_outcome> out;
    out.reserve(events.size());
    try {
        // First try: the whole batch without a savepoint per event. A savepoint costs two
        // statements per event and makes SQLite journal every page the event touches a second
        // time (the statement journal); events are seldom refused. When one is, this attempt
        // is rolled back whole and the batch runs again with a savepoint per event, so the
        // refused event leaves no trace and the others still land.
        bool refused = false;
        bool must_record = false; // a refusal with a conflict to record: one by one
        {
            SQLite::Transaction tx(db_, SQLite::TransactionBehavior::IMMEDIATE);
            applier a(stmts_, clock_, fail_point);
            for (const auto& e : events) {
                try {
                    out.emplace_back(a.run(e.ev, e.body));
                } catch (const refusal& r) {
                    refused = true;
                    must_record |= r.conflict.has_value();
                    if (events.size() == 1 && !r.conflict) // the rollback below is the event's own
                        out.emplace_back(
                            intake_error{intake_error::kind::invalid, r.field, r.message});
                    break;
                }
            }
            stmts_.reset_all();
            if (!refused)
                tx.commit();
            // else ~Transaction rolls back everything this attempt wrote.
        }
        if (refused && (events.size() > 1 || must_record))
            out = accept_one_by_one(events);
    } catch (const std::exception& e) {
        // The whole batch is rolled back by ~Transaction: nothing of any event was written.
        const intake_error err = io_failure(db_, e);
        out.assign(events.size(), intake_outcome(err));
    }
    stmts_.reset_all();
    return out;
}

std::vector<intake_outcome> intake::accept_one_by_one(const std::vector<raw_event>& events) {
    std::vector<intake_outcome> out;
    out.reserve(events.size());
    SQLite::Transaction tx(db_, SQLite::TransactionBehavior::IMMEDIATE);
    applier a(stmts_, clock_, fail_point);
    for (const auto& e : events) {
        // A savepoint per event: a refused event is rolled back alone.
        stmts_.get("SAVEPOINT event").exec();
        try {
            accepted acc = a.run(e.ev, e.body);
            stmts_.get("RELEASE event").exec();
            out.emplace_back(acc);
        } catch (const refusal& r) {
            stmts_.get("ROLLBACK TO event").exec();
            stmts_.get("RELEASE event").exec();
            a.forget_seq(); // its change rows are gone
            if (r.conflict)
                record_identity_conflict(stmts_, r.conflict->contact_id, r.conflict->field,
                                         r.conflict->local_value, r.conflict->remote_value,
                                         "refused", format_iso8601(clock_.now()));
            out.emplace_back(intake_error{intake_error::kind::invalid, r.field, r.message});
        }
    }
    stmts_.reset_all();
    tx.commit();
    return out;
}

} // namespace speak4::sync
