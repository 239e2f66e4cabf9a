#include "sync/intake.hpp"

#include "core/json.hpp"
#include "store/database.hpp"

#include <SQLiteCpp/Exception.h>
#include <SQLiteCpp/Transaction.h>
#include <algorithm>
#include <boost/json/serialize.hpp>
#include <optional>

namespace speak4::sync {
namespace {

namespace bj = boost::json;

/// An event that contradicts the mirror. Thrown only inside intake and caught at its boundary.
struct refusal {
    std::string field;
    std::string message;
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
const char* column_for(std::string_view ghl_field) {
    if (ghl_field == "firstName")
        return "first_name";
    if (ghl_field == "lastName")
        return "last_name";
    if (ghl_field == "email")
        return "email";
    if (ghl_field == "phone")
        return "phone";
    return nullptr;
}

class applier {
public:
    applier(store::statement_cache& s, const clock& clk,
            const std::function<void(std::string_view)>& fp)
        : s_(s)
        , now_(format_iso8601(clk.now()))
        , fail_point_(fp) {}

    accepted run(const event& ev, std::string_view body) {
        if (ev.event_id) {
            auto& q = s_.get("SELECT id FROM inbox WHERE event_id = ?");
            q.bind(1, *ev.event_id);
            if (q.executeStep())
                return accepted{true, last_seq(), q.getColumn(0).getInt64()};
        }
        auto& ins = s_.get("INSERT INTO inbox(event_id, type, body, received_at) VALUES (?,?,?,?)");
        if (ev.event_id)
            ins.bind(1, *ev.event_id);
        ins.bind(2, std::string(to_string(ev.type)));
        ins.bind(3, std::string(body));
        ins.bind(4, now_);
        ins.exec();
        inbox_id_ = s_.db().getLastInsertRowid();
        hit("after_inbox");
        dispatch(ev);
        return accepted{false, last_seq(), inbox_id_};
    }

private:
    void hit(std::string_view point) {
        if (fail_point_)
            fail_point_(point);
    }

    std::int64_t last_seq() {
        auto& q = s_.get("SELECT COALESCE(MAX(seq), 0) FROM changes");
        q.executeStep();
        return q.getColumn(0).getInt64();
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
        auto& q =
            s_.get(std::string("SELECT id, speak4_id, ghl_id, deleted, tags, custom_fields, fields "
                               "FROM contacts WHERE ") +
                   column + " = ?");
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

    /// The contact an event names, or nullopt. Both ids given must agree.
    std::optional<contact_row> find_contact(const entity_ref& ref) {
        std::optional<contact_row> by_s4, by_ghl;
        if (ref.speak4_id)
            by_s4 = find_contact_by("speak4_id", *ref.speak4_id);
        if (ref.ghl_id)
            by_ghl = find_contact_by("ghl_id", *ref.ghl_id);
        if (by_s4 && by_ghl && by_s4->id != by_ghl->id)
            throw refusal{"contact.ghl_id",
                          "contact.ghl_id belongs to another contact than contact.speak4_id"};
        if (by_s4 && ref.ghl_id && by_s4->ghl_id && *by_s4->ghl_id != *ref.ghl_id)
            throw refusal{"contact.ghl_id",
                          "contact.ghl_id does not match the contact's known ghl_id"};
        if (by_s4)
            return by_s4;
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
        // Learn a speak4_id given alongside a known ghl_id.
        if (ref.speak4_id && !c->speak4_id) {
            auto& u = s_.get("UPDATE contacts SET speak4_id = ?, updated_at = ? WHERE id = ?");
            u.bind(1, *ref.speak4_id);
            u.bind(2, now_);
            u.bind(3, c->id);
            u.exec();
            c->speak4_id = ref.speak4_id;
        }
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

    std::optional<child_row> find_child(const char* table, const entity_ref& ref) {
        const std::string base =
            std::string("SELECT id, contact_id, ghl_id, deleted FROM ") + table + " WHERE ";
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

    child_row require_child(const char* table, const char* name, const entity_ref& ref,
                            const contact_row& c) {
        auto r = find_child(table, ref);
        const std::string field = ref_field(ref, name);
        if (!r)
            throw refusal{field, field + " names no known " + name};
        if (r->contact_id != c.id)
            throw refusal{field, field + " belongs to another contact"};
        if (r->deleted)
            throw refusal{field, field + " names a deleted " + name};
        return *r;
    }

    // --- writes ----------------------------------------------------------------------------

    void change(const char* entity, std::int64_t id, const char* kind) {
        auto& ins = s_.get(
            "INSERT INTO changes(entity, entity_id, kind, source, ts) VALUES (?,?,?,'local',?)");
        ins.bind(1, entity);
        ins.bind(2, id);
        ins.bind(3, kind);
        ins.bind(4, now_);
        ins.exec();
    }

    void enqueue(const char* op, const char* entity, std::int64_t id, const bj::object& payload) {
        auto& ins = s_.get(
            "INSERT INTO outbox(op, entity, entity_id, state, attempts, next_attempt_at, payload, "
            "inbox_id, created_at, updated_at) VALUES (?,?,?,'pending',0,?,?,?,?,?)");
        ins.bind(1, op);
        ins.bind(2, entity);
        ins.bind(3, id);
        ins.bind(4, now_);
        ins.bind(5, bj::serialize(payload));
        ins.bind(6, inbox_id_);
        ins.bind(7, now_);
        ins.bind(8, now_);
        ins.exec();
    }

    /// Writes contact field changes to the mirror row; returns the outbox payload ("set").
    bj::object write_contact_changes(contact_row& c, const contact_changes& ch) {
        bj::object set;
        for (const auto& kv : ch.fields) {
            set[kv.key()] = kv.value();
            if (const char* col = column_for(kv.key())) {
                auto& u = s_.get(std::string("UPDATE contacts SET ") + col + " = ? WHERE id = ?");
                if (kv.value().is_string())
                    u.bind(1, std::string(kv.value().get_string()));
                u.bind(2, c.id);
                u.exec();
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
        auto& u = s_.get("UPDATE contacts SET tags = ?, custom_fields = ?, fields = ?, updated_at "
                         "= ? WHERE id = ?");
        u.bind(1, bj::serialize(c.tags));
        u.bind(2, bj::serialize(c.custom_fields));
        u.bind(3, bj::serialize(c.fields));
        u.bind(4, now_);
        u.bind(5, c.id);
        u.exec();
        return set;
    }

    void attach_notes(const event& ev, const contact_row& c) {
        for (std::size_t i = 0; i < ev.notes.size(); ++i) {
            const auto& n = ev.notes[i];
            const std::string field = "notes[" + std::to_string(i) + "].speak4_id";
            if (find_child("notes", n.ref))
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
        enqueue(n.ref.ghl_id ? "update" : "create", "note", id, {{"set", std::move(set)}});
        hit("after_outbox");
        change("note", id, "created");
    }

    void contact_created(const event& ev, bool lead) {
        auto existing = find_contact(ev.contact);
        if (existing && existing->deleted)
            throw refusal{ref_field(ev.contact, "contact"),
                          ref_field(ev.contact, "contact") + " names a deleted contact"};
        contact_row c;
        const char* kind = "updated";
        if (existing) {
            c = *existing; // Speak4 re-sent a create: apply it as an update of the same contact
        } else {
            auto& ins = s_.get(
                "INSERT INTO contacts(speak4_id, ghl_id, created_at, updated_at) VALUES (?,?,?,?)");
            if (ev.contact.speak4_id)
                ins.bind(1, *ev.contact.speak4_id);
            if (ev.contact.ghl_id)
                ins.bind(2, *ev.contact.ghl_id);
            ins.bind(3, now_);
            ins.bind(4, now_);
            ins.exec();
            c.id = s_.db().getLastInsertRowid();
            c.speak4_id = ev.contact.speak4_id;
            c.ghl_id = ev.contact.ghl_id;
            kind = "created";
        }
        bj::object set = write_contact_changes(c, ev.changes);
        hit("after_mirror");
        bj::object payload{{"set", std::move(set)}};
        if (lead)
            payload["lead"] = true; // find by email/phone first, then create or update
        // A contact GHL already knows (or one Speak4 re-created) is updated, not created again.
        enqueue(existing || c.ghl_id ? "update" : "create", "contact", c.id, payload);
        if (lead)
            enqueue("pull", "contact", c.id, {{"children", true}});
        hit("after_outbox");
        change("contact", c.id, kind);
        attach_notes(ev, c);
    }

    void contact_updated(const event& ev) {
        contact_row c = require_contact(ev.contact);
        if (ev.changes.empty() && ev.notes.empty() && !ev.pull)
            throw refusal{"contact", "contact.updated names no field to change"};
        if (!ev.changes.empty()) {
            bj::object set = write_contact_changes(c, ev.changes);
            hit("after_mirror");
            enqueue("update", "contact", c.id, {{"set", std::move(set)}});
            hit("after_outbox");
            change("contact", c.id, "updated");
        }
        attach_notes(ev, c);
        if (ev.pull)
            enqueue("pull", "contact", c.id, {{"children", true}});
    }

    void contact_deleted(const event& ev) {
        contact_row c = require_contact(ev.contact, false);
        auto& u = s_.get("UPDATE contacts SET deleted = 1, updated_at = ? WHERE id = ?");
        u.bind(1, now_);
        u.bind(2, c.id);
        u.exec();
        hit("after_mirror");
        enqueue("delete", "contact", c.id, {});
        hit("after_outbox");
        change("contact", c.id, "deleted");
    }

    void contact_opened(const event& ev) {
        contact_row c = require_contact(ev.contact);
        enqueue("pull", "contact", c.id, {{"children", true}});
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
        enqueue(add ? "tag_add" : "tag_remove", "contact", c.id, {{"tags", std::move(named)}});
        hit("after_outbox");
        change("contact", c.id, add ? "tagged" : "untagged");
    }

    void note_created(const event& ev) {
        contact_row c = require_contact(ev.contact);
        const auto& n = ev.notes.at(0);
        if (find_child("notes", n.ref))
            throw refusal{ref_field(n.ref, "note"),
                          ref_field(n.ref, "note") + " names a note that already exists"};
        insert_note(n, c);
    }

    void note_updated(const event& ev) {
        contact_row c = require_contact(ev.contact);
        const auto& n = ev.notes.at(0);
        child_row r = require_child("notes", "note", n.ref, c);
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
        touch("notes", r.id);
        hit("after_mirror");
        enqueue("update", "note", r.id, {{"set", std::move(set)}});
        hit("after_outbox");
        change("note", r.id, "updated");
    }

    void note_deleted(const event& ev) {
        contact_row c = require_contact(ev.contact);
        child_row r = require_child("notes", "note", ev.notes.at(0).ref, c);
        mark_deleted("notes", r.id);
        hit("after_mirror");
        enqueue("delete", "note", r.id, {});
        hit("after_outbox");
        change("note", r.id, "deleted");
    }

    void touch(const char* table, std::int64_t id) {
        auto& u = s_.get(std::string("UPDATE ") + table + " SET updated_at = ? WHERE id = ?");
        u.bind(1, now_);
        u.bind(2, id);
        u.exec();
    }

    void mark_deleted(const char* table, std::int64_t id) {
        auto& u = s_.get(std::string("UPDATE ") + table +
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
        if (find_child("tasks", t.ref))
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
        enqueue(t.ref.ghl_id ? "update" : "create", "task", id, {{"set", std::move(set)}});
        hit("after_outbox");
        change("task", id, "created");
    }

    void task_updated(const event& ev) {
        contact_row c = require_contact(ev.contact);
        child_row r = require_child("tasks", "task", ev.task->ref, c);
        write_task_fields(r.id, *ev.task);
        hit("after_mirror");
        enqueue("update", "task", r.id, {{"set", task_set(*ev.task)}});
        hit("after_outbox");
        change("task", r.id, "updated");
    }

    void task_completed(const event& ev) {
        contact_row c = require_contact(ev.contact);
        child_row r = require_child("tasks", "task", ev.task->ref, c);
        const bool done = ev.task->completed.value_or(true);
        auto& u = s_.get("UPDATE tasks SET completed = ?, updated_at = ? WHERE id = ?");
        u.bind(1, done ? 1 : 0);
        u.bind(2, now_);
        u.bind(3, r.id);
        u.exec();
        hit("after_mirror");
        enqueue("complete", "task", r.id, {{"completed", done}});
        hit("after_outbox");
        change("task", r.id, "completed");
    }

    void task_deleted(const event& ev) {
        contact_row c = require_contact(ev.contact);
        child_row r = require_child("tasks", "task", ev.task->ref, c);
        mark_deleted("tasks", r.id);
        hit("after_mirror");
        enqueue("delete", "task", r.id, {});
        hit("after_outbox");
        change("task", r.id, "deleted");
    }

    store::statement_cache& s_;
    std::string now_;
    const std::function<void(std::string_view)>& fail_point_;
    std::int64_t inbox_id_ = 0;
};

intake_error io_failure(SQLite::Database& db, const std::exception& e) {
    return intake_error{intake_error::kind::io, "",
                        store::describe_sqlite_error(db.getFilename(), e)};
}

} // namespace

intake::intake(SQLite::Database& db, const clock& clk)
    : db_(db)
    , clock_(clk)
    , stmts_(db) {}

accepted intake::apply(const event& ev, std::string_view body) {
    applier a(stmts_, clock_, fail_point);
    return a.run(ev, body);
}

intake_outcome intake::accept(const event& ev, std::string_view body) {
    auto results = accept_batch({raw_event{ev, std::string(body)}});
    return std::move(results.front());
}

std::vector<intake_outcome> intake::accept_batch(const std::vector<raw_event>& events) {
    std::vector<intake_outcome> out;
    out.reserve(events.size());
    try {
        SQLite::Transaction tx(db_, SQLite::TransactionBehavior::IMMEDIATE);
        for (const auto& e : events) {
            // A savepoint per event: a refused event is rolled back alone.
            db_.exec("SAVEPOINT event");
            try {
                accepted a = apply(e.ev, e.body);
                db_.exec("RELEASE event");
                out.emplace_back(a);
            } catch (const refusal& r) {
                db_.exec("ROLLBACK TO event");
                db_.exec("RELEASE event");
                out.emplace_back(intake_error{intake_error::kind::invalid, r.field, r.message});
            }
        }
        tx.commit();
    } catch (const std::exception& e) {
        // The whole batch is rolled back by ~Transaction: nothing of any event was written.
        const intake_error err = io_failure(db_, e);
        out.assign(events.size(), intake_outcome(err));
    }
    stmts_.reset_all();
    return out;
}

} // namespace speak4::sync
