#include "store/plan.hpp"

#include <SQLiteCpp/Statement.h>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

namespace speak4::store {

namespace bj = boost::json;

namespace {

bj::value masked(const bj::value& v) {
    if (v.is_bool() || v.is_null())
        return v;
    // Appended step by step: GCC 12 -O3 warns (-Wrestrict, a false positive) on "x" + s + "y".
    std::string out;
    if (const auto* s = v.if_string()) {
        out = "*** (";
        out += std::to_string(s->size());
        out += ")";
        return bj::value(out);
    }
    if (const auto* a = v.if_array()) {
        out = "[";
        out += std::to_string(a->size());
        out += " values]";
        return bj::value(out);
    }
    if (v.is_object())
        return bj::value("{…}");
    return bj::value("***"); // numbers: custom field values may be personal too
}

} // namespace

std::string mask_body(const bj::object& set) {
    bj::object out;
    for (const auto& kv : set)
        out[kv.key()] = kv.key() == "tags" ? kv.value() : masked(kv.value());
    return bj::serialize(out);
}

std::vector<planned_call> plan(SQLite::Database& db, int limit) {
    SQLite::Statement q(db, R"(
        SELECT o.id, o.op, o.entity, o.payload,
               CASE o.entity WHEN 'contact' THEN c.speak4_id WHEN 'task' THEN t.speak4_id
                             ELSE n.speak4_id END,
               CASE o.entity WHEN 'contact' THEN c.ghl_id ELSE pc.ghl_id END,
               CASE o.entity WHEN 'task' THEN t.ghl_id WHEN 'note' THEN n.ghl_id END
        FROM outbox o
        LEFT JOIN contacts c ON o.entity = 'contact' AND c.id = o.entity_id
        LEFT JOIN tasks t ON o.entity = 'task' AND t.id = o.entity_id
        LEFT JOIN notes n ON o.entity = 'note' AND n.id = o.entity_id
        LEFT JOIN contacts pc ON pc.id = COALESCE(t.contact_id, n.contact_id)
        WHERE o.state IN ('pending', 'inflight')
        ORDER BY o.id LIMIT ?1)");
    q.bind(1, limit);
    std::vector<planned_call> out;
    while (q.executeStep()) {
        planned_call p;
        p.outbox_id = q.getColumn(0).getInt64();
        p.op = q.getColumn(1).getString();
        p.entity = q.getColumn(2).getString();
        boost::system::error_code ec;
        const bj::value payload = bj::parse(q.getColumn(3).getString(), ec);
        if (!q.getColumn(4).isNull())
            p.speak4_id = q.getColumn(4).getString();
        const std::string contact =
            q.getColumn(5).isNull() ? ":contactId" : q.getColumn(5).getString();
        const std::string child = q.getColumn(6).isNull() ? (p.entity == "task" ? ":taskId" : ":id")
                                                          : q.getColumn(6).getString();
        const bj::object* obj = !ec && payload.is_object() ? &payload.get_object() : nullptr;
        const bj::object* set = nullptr;
        if (obj)
            if (const auto* s = obj->if_contains("set"))
                set = s->if_object();
        const std::string base = "/contacts/" + contact;
        if (p.entity == "contact") {
            if (p.op == "create") {
                // A create of a contact GHL already has (a linked one) is an update.
                p.method = contact == ":contactId" ? "POST" : "PUT";
                p.path = contact == ":contactId" ? "/contacts/" : base;
            } else if (p.op == "update") {
                p.method = "PUT";
                p.path = base;
            } else if (p.op == "delete") {
                p.method = "DELETE";
                p.path = base;
            } else if (p.op == "tag_add" || p.op == "tag_remove") {
                p.method = p.op == "tag_add" ? "POST" : "DELETE";
                p.path = base + "/tags";
                if (obj)
                    p.body = bj::serialize(*obj);
            } else if (p.op == "pull") {
                p.method = "GET";
                p.path = base;
                p.write = false;
            }
        } else {
            const std::string kids = base + (p.entity == "task" ? "/tasks" : "/notes");
            if (p.op == "create") {
                p.method = "POST";
                p.path = kids;
            } else if (p.op == "update" || p.op == "complete") {
                p.method = "PUT";
                p.path = kids + "/" + child + (p.op == "complete" ? "/completed" : "");
            } else if (p.op == "delete") {
                p.method = "DELETE";
                p.path = kids + "/" + child;
            }
        }
        if (p.body.empty() && set)
            p.body = mask_body(*set);
        out.push_back(std::move(p));
    }
    return out;
}

} // namespace speak4::store
