#include "sync/webhook.hpp"

#include "core/json.hpp"
#include "core/time.hpp"

#include <SQLiteCpp/Transaction.h>
#include <boost/json/serialize.hpp>

namespace speak4::sync {
namespace {

namespace bj = boost::json;

constexpr std::size_t max_id = 256;
constexpr std::size_t max_type = 64;

using check_result = boost::system::result<webhook_info, webhook_error>;

check_result invalid(std::string field, std::string message) {
    return check_result(
        boost::system::in_place_error,
        webhook_error{webhook_error::kind::invalid, std::move(field), std::move(message)});
}

/// A required, non-empty, bounded string field.
std::optional<std::string> id_field(const bj::object& o, std::string_view key) {
    auto s = json::get_string(o, key);
    if (!s || s->empty() || s->size() > max_id)
        return std::nullopt;
    return s;
}

enum class scope { none, contact, task_or_note, appointment };

scope scope_of(std::string_view type) {
    if (type.starts_with("Contact"))
        return scope::contact;
    if (type.starts_with("Task") || type.starts_with("Note"))
        return scope::task_or_note;
    if (type.starts_with("Appointment"))
        return scope::appointment;
    return scope::none;
}

} // namespace

check_result check_webhook(const bj::object& body, sys_time now, std::chrono::seconds max_age) {
    webhook_info info;
    auto id = id_field(body, "webhookId");
    if (!id)
        return invalid("webhookId",
                       "webhookId is required (a non-empty string of at most 256 characters)");
    info.webhook_id = std::move(*id);

    auto type = json::get_string(body, "type");
    if (!type || type->empty() || type->size() > max_type)
        return invalid("type", "type is required (a non-empty string of at most 64 characters)");
    info.type = std::move(*type);

    const auto ts_text = json::get_string(body, "timestamp");
    if (!ts_text)
        return invalid("timestamp", "timestamp is required (ISO-8601)");
    const auto ts = parse_iso8601(*ts_text);
    if (!ts)
        return invalid("timestamp", "timestamp is not an ISO-8601 date-time");
    info.timestamp = *ts;
    const auto age = now - *ts;
    if (age > max_age || -age > max_age)
        return check_result(boost::system::in_place_error,
                            webhook_error{webhook_error::kind::stale, "timestamp",
                                          "timestamp " + *ts_text + " is more than " +
                                              std::to_string(max_age.count()) +
                                              " seconds from now"});

    switch (scope_of(info.type)) {
    case scope::none:
        break;
    case scope::contact: {
        auto c = id_field(body, "id");
        if (!c)
            return invalid("id", info.type + " needs the contact id in 'id'");
        info.contact_ghl_id = std::move(*c);
        break;
    }
    case scope::task_or_note: {
        auto c = id_field(body, "contactId");
        if (!c)
            return invalid("contactId", info.type + " needs 'contactId'");
        info.contact_ghl_id = std::move(*c);
        break;
    }
    case scope::appointment: {
        const bj::object* a = json::get_object(body, "appointment");
        auto c = a ? id_field(*a, "contactId") : std::nullopt;
        if (!c)
            return invalid("appointment.contactId", info.type + " needs 'appointment.contactId'");
        info.contact_ghl_id = std::move(*c);
        break;
    }
    }
    return info;
}

webhook_store::webhook_store(SQLite::Database& db, const clock& clk, std::chrono::seconds max_age)
    : db_(db)
    , clock_(clk)
    , max_age_(max_age)
    , stmts_(std::in_place, db) {}

boost::system::result<webhook_applied, webhook_error>
webhook_store::apply(const webhook_info& info) {
    using R = boost::system::result<webhook_applied, webhook_error>;
    try {
        const std::string now = format_iso8601(clock_.now());
        SQLite::Transaction tx(db_, SQLite::TransactionBehavior::IMMEDIATE);
        {
            auto& q = stmts_->get("SELECT 1 FROM webhook_seen WHERE webhook_id = ?");
            q.bind(1, info.webhook_id);
            const bool seen = q.executeStep();
            q.reset(); // a statement left stepping would pin this connection's read snapshot
            if (seen)
                return R(boost::system::in_place_error,
                         webhook_error{webhook_error::kind::replayed, "webhookId",
                                       "webhook " + info.webhook_id + " was already received"});
        }
        {
            auto& ins =
                stmts_->get("INSERT INTO webhook_seen(webhook_id, received_at) VALUES (?, ?)");
            ins.bind(1, info.webhook_id);
            ins.bind(2, now);
            ins.exec();
        }
        webhook_applied out = act(info, now);
        tx.commit();
        return out;
    } catch (const std::exception& e) {
        // ~Transaction rolled back: nothing of this webhook is stored.
        stmts_.emplace(db_);
        return R(boost::system::in_place_error,
                 webhook_error{webhook_error::kind::io, "",
                               std::string("database error applying webhook: ") + e.what()});
    }
}

webhook_applied webhook_store::act(const webhook_info& info, const std::string& now) {
    webhook_applied out;
    if (last_prune_ == std::nullopt || clock_.now() - *last_prune_ >= max_age_)
        prune();
    if (info.contact_ghl_id.empty())
        return out;

    std::int64_t contact_id = 0;
    bool deleted = false;
    {
        auto& q = stmts_->get("SELECT id, deleted FROM contacts WHERE ghl_id = ?");
        q.bind(1, info.contact_ghl_id);
        if (q.executeStep()) {
            contact_id = q.getColumn(0).getInt64();
            deleted = q.getColumn(1).getInt() != 0;
        }
        q.reset();
    }
    const bool is_delete = info.type == "ContactDelete";
    if (contact_id == 0) {
        if (is_delete)
            return out; // nothing mirrored, nothing to delete or pull
        auto& ins =
            stmts_->get("INSERT INTO contacts(ghl_id, created_at, updated_at) VALUES (?, ?, ?)");
        ins.bind(1, info.contact_ghl_id);
        ins.bind(2, now);
        ins.bind(3, now);
        ins.exec();
        contact_id = db_.getLastInsertRowid();
        out.stub_created = true;
    }
    out.contact_id = contact_id;

    if (is_delete && !deleted) {
        auto& upd = stmts_->get("UPDATE contacts SET deleted = 1, updated_at = ? WHERE id = ?");
        upd.bind(1, now);
        upd.bind(2, contact_id);
        upd.exec();
        auto& ch = stmts_->get("INSERT INTO changes(entity, entity_id, kind, source, ts) "
                               "VALUES ('contact', ?, 'deleted', 'remote', ?)");
        ch.bind(1, contact_id);
        ch.bind(2, now);
        ch.exec();
        out.contact_deleted = true;
        out.seq = db_.getLastInsertRowid();
    }

    {
        auto& q = stmts_->get("SELECT id FROM outbox WHERE op = 'pull' AND entity = 'contact' "
                              "AND entity_id = ? AND state = 'pending' ORDER BY id LIMIT 1");
        q.bind(1, contact_id);
        if (q.executeStep()) {
            out.pull_outbox_id = q.getColumn(0).getInt64();
            out.coalesced = true;
        }
        q.reset();
        if (out.coalesced)
            return out;
    }
    bj::object payload{{"children", true}, {"reason", "webhook"}, {"webhook_type", info.type}};
    auto& ins = stmts_->get(
        "INSERT INTO outbox(op, entity, entity_id, state, next_attempt_at, payload, created_at, "
        "updated_at) VALUES ('pull', 'contact', ?, 'pending', ?, ?, ?, ?)");
    ins.bind(1, contact_id);
    ins.bind(2, now);
    ins.bind(3, bj::serialize(payload));
    ins.bind(4, now);
    ins.bind(5, now);
    ins.exec();
    out.pull_outbox_id = db_.getLastInsertRowid();
    return out;
}

long long webhook_store::prune() {
    const sys_time now = clock_.now();
    last_prune_ = now;
    const sys_time cutoff = now - 2 * max_age_ - std::chrono::seconds(60);
    auto& del = stmts_->get("DELETE FROM webhook_seen WHERE received_at < ?");
    del.bind(1, format_iso8601(cutoff));
    return del.exec();
}

} // namespace speak4::sync
