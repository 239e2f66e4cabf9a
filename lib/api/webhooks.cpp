// POST /webhooks/ghl: signature, then the checks on the verified body, then the pull it asks
// for (DESIGN §2). See routes.hpp.

#include "api/routes.hpp"
#include "core/json.hpp"
#include "core/log.hpp"

#include <boost/json/object.hpp>

namespace speak4::api {

namespace bj = boost::json;

boost::asio::awaitable<reply> routes::post_webhook(const request& req) {
    const auto verdict = verify_webhook_signature(
        opt_.signature_keys, req.body, req.header("x-ghl-signature"), req.header("x-wh-signature"));
    if (!verdict.ok()) {
        m_.webhooks_total.with({"bad_signature"}).inc();
        log::warn("webhook rejected", {{"reason", describe(verdict)}});
        co_return error_reply(status::unauthorized, "invalid_signature", describe(verdict));
    }
    const auto parsed = json::parse(req.body, {opt_.body_limit, 32});
    if (!parsed || !parsed->is_object()) {
        m_.webhooks_total.with({"invalid"}).inc();
        const std::string why =
            parsed ? "the body is not a JSON object" : "the body is not JSON: " + parsed.error();
        log::warn("webhook rejected", {{"reason", why}});
        co_return error_reply(status::bad_request, "invalid_webhook", why);
    }
    auto info = sync::check_webhook(parsed->get_object(), clock_.now(), opt_.webhook_max_age);
    if (!info) {
        const auto& err = info.error();
        const bool stale = err.what == sync::webhook_error::kind::stale;
        m_.webhooks_total.with({stale ? "stale" : "invalid"}).inc();
        log::warn("webhook rejected", {{"reason", err.message}, {"field", err.field}});
        if (stale)
            co_return error_reply(status::unauthorized, "stale_webhook", err.message, err.field);
        co_return error_reply(status::bad_request, "invalid_webhook", err.message, err.field);
    }
    boost::system::result<sync::webhook_applied, sync::webhook_error> applied =
        sync::webhook_error{sync::webhook_error::kind::io, "", "not applied"};
    try {
        applied = co_await db_.run([this, &info](SQLite::Database& db) {
            if (!dbs_.webhooks)
                dbs_.webhooks =
                    std::make_unique<sync::webhook_store>(db, clock_, opt_.webhook_max_age);
            auto out = dbs_.webhooks->apply(*info);
            reset_busy_statements(db);
            return out;
        });
    } catch (const std::exception& e) {
        applied = sync::webhook_error{sync::webhook_error::kind::io, "", e.what()};
    }
    if (!applied) {
        const auto& err = applied.error();
        if (err.what == sync::webhook_error::kind::replayed) {
            m_.webhooks_total.with({"replayed"}).inc();
            log::warn("webhook rejected", {{"reason", err.message}, {"type", info->type}});
            co_return error_reply(status::conflict, "replayed_webhook", err.message, err.field);
        }
        m_.webhooks_total.with({"error"}).inc();
        db_failed(err.message);
        // 429, not 503: GHL retries a webhook only after a 429 (ghl-api.md §11).
        reply r = error_reply(status::too_many_requests, "database_error", err.message);
        r.retry_after = 60;
        co_return r;
    }
    db_ok();
    m_.webhooks_total.with({info->contact_ghl_id.empty() ? "ignored" : "applied"}).inc();
    bj::object f{{"type", info->type}, {"webhook_id", info->webhook_id}};
    if (applied->contact_id)
        f["contact_id"] = *applied->contact_id;
    if (applied->pull_outbox_id)
        f["outbox_id"] = *applied->pull_outbox_id;
    f["coalesced"] = applied->coalesced;
    log::info("webhook", f);
    if (applied->seq > 0)
        changes_committed();
    co_return json_reply(status::ok, bj::object{{"ok", true}});
}

} // namespace speak4::api
