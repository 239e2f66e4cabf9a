#include "ghl/client.hpp"

#include "core/json.hpp"
#include "core/log.hpp"

#include <exception>

namespace speak4::ghl {

namespace {

constexpr json::parse_limits body_parse_limits(std::size_t max_bytes) {
    return json::parse_limits{max_bytes, 64};
}

/// Appends "name=value" (URL-encoded) to a query string being built.
void add_query(std::string& q, std::string_view name, std::string_view value) {
    q += q.empty() ? '?' : '&';
    q += url_encode(name);
    q += '=';
    q += url_encode(value);
}

error invalid(std::string_view operation, std::string message) {
    error e;
    e.kind = error_kind::invalid_request;
    e.operation = std::string(operation);
    e.step = "validate";
    e.message = std::move(message);
    return e;
}

error bad_body(std::string_view operation, std::string message, int status) {
    error e;
    e.kind = error_kind::bad_response;
    e.operation = std::string(operation);
    e.step = "parse";
    e.status = status;
    e.message = std::move(message);
    return e;
}

std::string op_name(http_method m, std::string_view tmpl) {
    return std::string(to_string(m)) + " " + std::string(tmpl);
}

/// Parses an item of an envelope ({"contact": {...}}); bad_response names what is missing.
template <class T, class Parse>
result<T> envelope_item(const bj::object& body, std::string_view key, Parse parse,
                        std::string_view operation) {
    const auto* v = body.if_contains(key);
    if (!v)
        return bad_body(operation, "response has no \"" + std::string(key) + "\"", 200);
    auto item = parse(*v);
    if (!item)
        return bad_body(operation,
                        "response \"" + std::string(key) + "\" is not a record with an id", 200);
    return std::move(*item);
}

template <class T, class Parse>
std::vector<T> envelope_list(const bj::object& body, std::string_view key, Parse parse) {
    std::vector<T> out;
    if (const auto* a = json::get_array(body, key))
        for (const auto& v : *a)
            if (auto item = parse(v))
                out.push_back(std::move(*item));
    return out;
}

} // namespace

/// One API operation: method, path template (for names), concrete path and query, body.
/// Callers build it as a named local, never as a braced temporary inside the co_await
/// expression: GCC 12 destroys such a temporary twice (a coroutine code-generation bug).
struct client::op {
    http_method method = http_method::get;
    std::string_view tmpl;
    std::string path;
    std::string query;
    std::optional<bj::object> body;
};

error error_from_transport(const transport_error& t, std::string_view operation) {
    error e;
    e.operation = std::string(operation);
    e.step = std::string(to_string(t.step));
    const std::string full = t.message();
    e.message = full.substr(e.step.size() + 2);
    switch (t.step) {
    case io_step::resolve:
    case io_step::connect:
    case io_step::handshake:
        e.kind = error_kind::never_sent;
        break;
    case io_step::write:
        e.kind = t.request_written ? error_kind::outcome_unknown : error_kind::never_sent;
        break;
    case io_step::read:
    case io_step::shutdown:
        e.kind = t.malformed_response ? error_kind::bad_response : error_kind::outcome_unknown;
        if (t.malformed_response)
            e.message = "malformed or oversized response: " + e.message;
        break;
    }
    return e;
}

client_options client_options_from(const ghl_config& cfg, request_observer observer) {
    client_options o;
    o.api_version = cfg.api_version;
    o.location_id = cfg.location_id;
    o.observer = std::move(observer);
    return o;
}

client::client(std::shared_ptr<http_client> http, client_options opt,
               std::shared_ptr<token_provider> tokens, std::shared_ptr<rate_limiter> limiter,
               const speak4::clock& clk)
    : http_(std::move(http))
    , opt_(std::move(opt))
    , tokens_(std::move(tokens))
    , limiter_(std::move(limiter))
    , clock_(clk) {}

void client::notify(const request_record& rec) const {
    if (!opt_.observer)
        return;
    try {
        opt_.observer(rec);
    } catch (const std::exception& ex) {
        log::warn("ghl request observer failed",
                  {{"operation", rec.operation}, {"error", ex.what()}});
    }
}

asio::awaitable<result<bj::object>> client::execute(op o) {
    const std::string operation = op_name(o.method, o.tmpl);
    auto http = http_; // calls keep their collaborators alive
    auto tokens = tokens_;
    auto limiter = limiter_;

    auto token = co_await tokens->access_token();
    if (!token) {
        error e = token.error();
        e.message = e.what();
        e.operation = operation;
        e.step = "token";
        co_return e;
    }
    const std::string body_text = o.body ? json::dump(*o.body) : std::string();

    auto breaker = opt_.breaker;
    // A request GHL saw or should have: its outcome tells the breaker whether GHL is up.
    auto report = [&](bool failure, const std::string& what) {
        if (breaker && !opt_.breaker_probe)
            breaker->record(failure, what);
    };

    for (int attempt = 1;; ++attempt) {
        if (breaker && !opt_.breaker_probe && !breaker->allow()) {
            // GHL looks down: nothing is sent (no rate token, no timeout spent) until a probe
            // says it is back. Never sent, so any caller may retry it safely.
            error e;
            e.kind = error_kind::never_sent;
            e.operation = operation;
            e.step = "breaker";
            const auto next = breaker->next_probe_at();
            e.message = "circuit breaker open (GHL looks down)" +
                        (next ? ", next probe at " + format_iso8601(*next) : std::string());
            e.retry_after = next ? std::max(std::chrono::milliseconds(0),
                                            std::chrono::duration_cast<std::chrono::milliseconds>(
                                                *next - clock_.now()))
                                 : std::chrono::milliseconds(1000);
            co_return e;
        }
        auto acquired = co_await limiter->acquire(opt_.location_id, opt_.max_rate_wait, opt_.lane);
        if (!acquired.acquired) {
            error e;
            e.kind = error_kind::never_sent;
            e.operation = operation;
            e.step = "rate_limit";
            e.message = "local rate budget exhausted until " + format_iso8601(acquired.not_before);
            e.retry_after = std::chrono::duration_cast<std::chrono::milliseconds>(
                acquired.not_before - clock_.now());
            co_return e;
        }

        http_request req;
        req.method = o.method;
        req.target = o.path + o.query;
        req.headers = {{"Authorization", "Bearer " + token->reveal()},
                       {"Version", opt_.api_version},
                       {"Accept", "application/json"}};
        if (o.body) {
            req.content_type = "application/json";
            req.body = body_text;
        }

        request_record rec;
        rec.method = std::string(to_string(o.method));
        rec.path_template = std::string(o.tmpl);
        rec.path = o.path;
        rec.operation = operation;
        rec.started_at = clock_.now();
        rec.attempt = attempt;
        const auto t0 = std::chrono::steady_clock::now();
        auto res = co_await http->send(std::move(req));
        rec.latency = std::chrono::duration_cast<std::chrono::milliseconds>(
            std::chrono::steady_clock::now() - t0);

        if (!res) {
            error e = error_from_transport(res.error(), operation);
            rec.written = res.error().request_written;
            rec.error = e.what();
            rec.kind = e.kind;
            report(true, rec.error);
            notify(rec);
            co_return e;
        }
        // GHL (or what stands in front of it) answered: down if 5xx/408, up otherwise.
        const bool server_failed = res->status >= 500 || res->status == 408;

        const auto& r = *res;
        const auto now = clock_.now();
        const auto rate = parse_rate_headers(r.headers, now);
        limiter->observe(opt_.location_id, r.status, rate, now, acquired.returns_at);
        rec.written = true;
        rec.status = r.status;
        rec.reused_connection = r.reused_connection;
        rec.rate_remaining = rate.remaining;
        rec.daily_remaining = rate.daily_remaining;
        rec.retry_after = rate.retry_after;

        // The body is parsed once, for the result and for traceId.
        auto parsed = r.body.empty()
                          ? boost::system::result<bj::value, std::string>(bj::object())
                          : json::parse(r.body, body_parse_limits(http->options().body_limit));
        if (parsed && parsed->is_object())
            rec.trace_id = json::get_string(parsed->get_object(), "traceId");
        if (!rec.trace_id)
            if (auto h = find_header(r.headers, "X-Trace-Id"))
                rec.trace_id = std::string(*h);

        // A scope refusal is not an expired token: refreshing would consume GHL's single-use
        // refresh token and get the same answer (classified below as missing_scope).
        if (r.status == 401 && attempt == 1 && !is_scope_refusal(r.body)) {
            rec.error = operation + ": 401";
            rec.kind = error_kind::auth;
            report(false, {});
            notify(rec);
            auto again = co_await tokens->refresh_after_unauthorized(*token);
            if (!again) {
                error e = again.error();
                e.message = "401, and no new token: " + e.what();
                e.operation = operation;
                e.step = "token";
                e.status = 401;
                if (e.kind != error_kind::needs_reauth)
                    e.kind = error_kind::auth;
                co_return e;
            }
            token = std::move(again);
            continue;
        }

        if (r.status < 200 || r.status > 299) {
            error e = classify_status(operation, r.status, r.body, rate.retry_after);
            if (!e.trace_id)
                e.trace_id = rec.trace_id;
            if (r.status == 429 && !e.retry_after)
                e.retry_after = std::chrono::duration_cast<std::chrono::milliseconds>(
                    limiter->next_allowed(opt_.location_id, now) - now);
            rec.error = e.what();
            rec.kind = e.kind;
            report(server_failed, rec.error);
            notify(rec);
            co_return e;
        }

        if (!parsed || !parsed->is_object()) {
            error e = bad_body(operation,
                               parsed ? std::string("response body is not a JSON object")
                                      : "response body is not JSON: " + parsed.error(),
                               r.status);
            e.trace_id = rec.trace_id;
            rec.error = e.what();
            rec.kind = e.kind;
            report(true, rec.error); // a 2xx we cannot use: a proxy's page, a truncated body
            notify(rec);
            co_return e;
        }
        report(false, {});
        notify(rec);
        co_return std::move(parsed->get_object());
    }
}

// ---------------------------------------------------------------------------------------------
// Contacts

asio::awaitable<result<contact>> client::get_contact(std::string contact_id) {
    constexpr std::string_view tmpl = "/contacts/:contactId";
    if (contact_id.empty())
        co_return invalid(op_name(http_method::get, tmpl), "contactId is empty");
    op o{http_method::get, tmpl, "/contacts/" + url_encode(contact_id)};
    auto r = co_await execute(std::move(o));
    if (!r)
        co_return r.error();
    co_return envelope_item<contact>(*r, "contact", parse_contact, op_name(http_method::get, tmpl));
}

asio::awaitable<result<contact_search_page>> client::search_contacts(search_request req) {
    constexpr std::string_view tmpl = "/contacts/search";
    auto body = search_body(req, opt_.location_id);
    if (!body)
        co_return invalid(op_name(http_method::post, tmpl), body.error());
    op o{http_method::post, tmpl, "/contacts/search", "", std::move(*body)};
    auto r = co_await execute(std::move(o));
    if (!r)
        co_return r.error();
    if (!r->contains("contacts"))
        co_return bad_body(op_name(http_method::post, tmpl), "response has no \"contacts\"", 200);
    co_return parse_search_page(std::move(*r), req.page_limit);
}

asio::awaitable<result<contact_list_page>> client::list_contacts(list_request req) {
    constexpr std::string_view tmpl = "/contacts/";
    if (req.limit && (*req.limit < 1 || *req.limit > 100))
        co_return invalid(op_name(http_method::get, tmpl), "limit must be 1..100");
    std::string q;
    add_query(q, "locationId", opt_.location_id);
    if (req.limit)
        add_query(q, "limit", std::to_string(*req.limit));
    if (req.start_after)
        add_query(q, "startAfter", std::to_string(*req.start_after));
    if (req.start_after_id)
        add_query(q, "startAfterId", *req.start_after_id);
    if (req.query)
        add_query(q, "query", *req.query);
    op o{http_method::get, tmpl, "/contacts/", q};
    auto r = co_await execute(std::move(o));
    if (!r)
        co_return r.error();
    if (!r->contains("contacts"))
        co_return bad_body(op_name(http_method::get, tmpl), "response has no \"contacts\"", 200);
    co_return parse_list_page(*r, req.limit.value_or(20));
}

asio::awaitable<result<std::optional<contact>>>
client::find_duplicate(std::optional<std::string> email, std::optional<std::string> phone) {
    constexpr std::string_view tmpl = "/contacts/search/duplicate";
    if ((!email || email->empty()) && (!phone || phone->empty()))
        co_return invalid(op_name(http_method::get, tmpl), "email or phone is required");
    std::string q;
    add_query(q, "locationId", opt_.location_id);
    if (phone && !phone->empty())
        add_query(q, "number", *phone);
    if (email && !email->empty())
        add_query(q, "email", *email);
    op o{http_method::get, tmpl, "/contacts/search/duplicate", q};
    auto r = co_await execute(std::move(o));
    if (!r)
        co_return r.error();
    const auto* v = r->if_contains("contact");
    if (!v || v->is_null())
        co_return std::optional<contact>();
    auto c = parse_contact(*v);
    if (!c)
        co_return bad_body(op_name(http_method::get, tmpl),
                           "response \"contact\" is not a record with an id", 200);
    co_return std::optional<contact>(std::move(*c));
}

asio::awaitable<result<contact_list_page>> client::business_contacts(business_request req) {
    constexpr std::string_view tmpl = "/contacts/business/:businessId";
    if (req.business_id.empty())
        co_return invalid(op_name(http_method::get, tmpl), "businessId is empty");
    std::string q;
    add_query(q, "locationId", opt_.location_id);
    if (req.limit)
        add_query(q, "limit", std::to_string(*req.limit));
    if (req.skip)
        add_query(q, "skip", std::to_string(*req.skip));
    if (req.query)
        add_query(q, "query", *req.query);
    op o{http_method::get, tmpl, "/contacts/business/" + url_encode(req.business_id), q};
    auto r = co_await execute(std::move(o));
    if (!r)
        co_return r.error();
    co_return parse_list_page(*r, req.limit.value_or(25));
}

asio::awaitable<result<contact>> client::create_contact(contact_write fields) {
    constexpr std::string_view tmpl = "/contacts/";
    op o{http_method::post, tmpl, "/contacts/", "", create_contact_body(fields, opt_.location_id)};
    auto r = co_await execute(std::move(o));
    if (!r)
        co_return r.error();
    co_return envelope_item<contact>(*r, "contact", parse_contact,
                                     op_name(http_method::post, tmpl));
}

asio::awaitable<result<contact>> client::update_contact(std::string contact_id,
                                                        contact_write fields) {
    constexpr std::string_view tmpl = "/contacts/:contactId";
    if (contact_id.empty())
        co_return invalid(op_name(http_method::put, tmpl), "contactId is empty");
    op o{http_method::put, tmpl, "/contacts/" + url_encode(contact_id), "",
         update_contact_body(fields)};
    auto r = co_await execute(std::move(o));
    if (!r)
        co_return r.error();
    co_return envelope_item<contact>(*r, "contact", parse_contact, op_name(http_method::put, tmpl));
}

asio::awaitable<result<void>> client::delete_contact(std::string contact_id) {
    constexpr std::string_view tmpl = "/contacts/:contactId";
    if (contact_id.empty())
        co_return invalid(op_name(http_method::del, tmpl), "contactId is empty");
    op o{http_method::del, tmpl, "/contacts/" + url_encode(contact_id)};
    auto r = co_await execute(std::move(o));
    if (!r)
        co_return r.error();
    co_return result<void>();
}

namespace {
bj::object tags_body(const std::vector<std::string>& tags) {
    bj::array a;
    for (const auto& t : tags)
        a.emplace_back(t);
    bj::object o;
    o["tags"] = std::move(a);
    return o;
}
} // namespace

asio::awaitable<result<std::vector<std::string>>> client::add_tags(std::string contact_id,
                                                                   std::vector<std::string> tags) {
    constexpr std::string_view tmpl = "/contacts/:contactId/tags";
    if (contact_id.empty())
        co_return invalid(op_name(http_method::post, tmpl), "contactId is empty");
    if (tags.empty())
        co_return invalid(op_name(http_method::post, tmpl), "tags is empty");
    op o{http_method::post, tmpl, "/contacts/" + url_encode(contact_id) + "/tags", "",
         tags_body(tags)};
    auto r = co_await execute(std::move(o));
    if (!r)
        co_return r.error();
    co_return parse_tags(*r);
}

asio::awaitable<result<std::vector<std::string>>>
client::remove_tags(std::string contact_id, std::vector<std::string> tags) {
    constexpr std::string_view tmpl = "/contacts/:contactId/tags";
    if (contact_id.empty())
        co_return invalid(op_name(http_method::del, tmpl), "contactId is empty");
    if (tags.empty())
        co_return invalid(op_name(http_method::del, tmpl), "tags is empty");
    op o{http_method::del, tmpl, "/contacts/" + url_encode(contact_id) + "/tags", "",
         tags_body(tags)};
    auto r = co_await execute(std::move(o));
    if (!r)
        co_return r.error();
    co_return parse_tags(*r);
}

// ---------------------------------------------------------------------------------------------
// Tasks

namespace {
std::string task_path(const std::string& contact_id, const std::string& task_id = {}) {
    std::string p = "/contacts/" + url_encode(contact_id) + "/tasks";
    if (!task_id.empty())
        p += "/" + url_encode(task_id);
    return p;
}
std::string note_path(const std::string& contact_id, const std::string& note_id = {}) {
    std::string p = "/contacts/" + url_encode(contact_id) + "/notes";
    if (!note_id.empty())
        p += "/" + url_encode(note_id);
    return p;
}
} // namespace

asio::awaitable<result<std::vector<task>>> client::list_tasks(std::string contact_id) {
    constexpr std::string_view tmpl = "/contacts/:contactId/tasks";
    if (contact_id.empty())
        co_return invalid(op_name(http_method::get, tmpl), "contactId is empty");
    op o{http_method::get, tmpl, task_path(contact_id)};
    auto r = co_await execute(std::move(o));
    if (!r)
        co_return r.error();
    co_return envelope_list<task>(*r, "tasks", parse_task);
}

asio::awaitable<result<task>> client::get_task(std::string contact_id, std::string task_id) {
    constexpr std::string_view tmpl = "/contacts/:contactId/tasks/:taskId";
    if (contact_id.empty() || task_id.empty())
        co_return invalid(op_name(http_method::get, tmpl), "contactId or taskId is empty");
    op o{http_method::get, tmpl, task_path(contact_id, task_id)};
    auto r = co_await execute(std::move(o));
    if (!r)
        co_return r.error();
    co_return envelope_item<task>(*r, "task", parse_task, op_name(http_method::get, tmpl));
}

asio::awaitable<result<task>> client::create_task(std::string contact_id, task_write fields) {
    constexpr std::string_view tmpl = "/contacts/:contactId/tasks";
    if (contact_id.empty())
        co_return invalid(op_name(http_method::post, tmpl), "contactId is empty");
    auto body = create_task_body(fields);
    if (!body)
        co_return invalid(op_name(http_method::post, tmpl), body.error());
    op o{http_method::post, tmpl, task_path(contact_id), "", std::move(*body)};
    auto r = co_await execute(std::move(o));
    if (!r)
        co_return r.error();
    co_return envelope_item<task>(*r, "task", parse_task, op_name(http_method::post, tmpl));
}

asio::awaitable<result<task>> client::update_task(std::string contact_id, std::string task_id,
                                                  task_write fields) {
    constexpr std::string_view tmpl = "/contacts/:contactId/tasks/:taskId";
    if (contact_id.empty() || task_id.empty())
        co_return invalid(op_name(http_method::put, tmpl), "contactId or taskId is empty");
    op o{http_method::put, tmpl, task_path(contact_id, task_id), "", update_task_body(fields)};
    auto r = co_await execute(std::move(o));
    if (!r)
        co_return r.error();
    co_return envelope_item<task>(*r, "task", parse_task, op_name(http_method::put, tmpl));
}

asio::awaitable<result<task>> client::complete_task(std::string contact_id, std::string task_id,
                                                    bool completed) {
    constexpr std::string_view tmpl = "/contacts/:contactId/tasks/:taskId/completed";
    if (contact_id.empty() || task_id.empty())
        co_return invalid(op_name(http_method::put, tmpl), "contactId or taskId is empty");
    bj::object body;
    body["completed"] = completed;
    op o{http_method::put, tmpl, task_path(contact_id, task_id) + "/completed", "",
         std::move(body)};
    auto r = co_await execute(std::move(o));
    if (!r)
        co_return r.error();
    co_return envelope_item<task>(*r, "task", parse_task, op_name(http_method::put, tmpl));
}

asio::awaitable<result<void>> client::delete_task(std::string contact_id, std::string task_id) {
    constexpr std::string_view tmpl = "/contacts/:contactId/tasks/:taskId";
    if (contact_id.empty() || task_id.empty())
        co_return invalid(op_name(http_method::del, tmpl), "contactId or taskId is empty");
    op o{http_method::del, tmpl, task_path(contact_id, task_id)};
    auto r = co_await execute(std::move(o));
    if (!r)
        co_return r.error();
    co_return result<void>();
}

// ---------------------------------------------------------------------------------------------
// Notes

asio::awaitable<result<std::vector<note>>> client::list_notes(std::string contact_id) {
    constexpr std::string_view tmpl = "/contacts/:contactId/notes";
    if (contact_id.empty())
        co_return invalid(op_name(http_method::get, tmpl), "contactId is empty");
    op o{http_method::get, tmpl, note_path(contact_id)};
    auto r = co_await execute(std::move(o));
    if (!r)
        co_return r.error();
    co_return envelope_list<note>(*r, "notes", parse_note);
}

asio::awaitable<result<note>> client::get_note(std::string contact_id, std::string note_id) {
    constexpr std::string_view tmpl = "/contacts/:contactId/notes/:id";
    if (contact_id.empty() || note_id.empty())
        co_return invalid(op_name(http_method::get, tmpl), "contactId or id is empty");
    op o{http_method::get, tmpl, note_path(contact_id, note_id)};
    auto r = co_await execute(std::move(o));
    if (!r)
        co_return r.error();
    co_return envelope_item<note>(*r, "note", parse_note, op_name(http_method::get, tmpl));
}

asio::awaitable<result<note>> client::create_note(std::string contact_id, note_write fields) {
    constexpr std::string_view tmpl = "/contacts/:contactId/notes";
    if (contact_id.empty())
        co_return invalid(op_name(http_method::post, tmpl), "contactId is empty");
    auto body = create_note_body(fields);
    if (!body)
        co_return invalid(op_name(http_method::post, tmpl), body.error());
    op o{http_method::post, tmpl, note_path(contact_id), "", std::move(*body)};
    auto r = co_await execute(std::move(o));
    if (!r)
        co_return r.error();
    co_return envelope_item<note>(*r, "note", parse_note, op_name(http_method::post, tmpl));
}

asio::awaitable<result<note>> client::update_note(std::string contact_id, std::string note_id,
                                                  note_write fields) {
    constexpr std::string_view tmpl = "/contacts/:contactId/notes/:id";
    if (contact_id.empty() || note_id.empty())
        co_return invalid(op_name(http_method::put, tmpl), "contactId or id is empty");
    op o{http_method::put, tmpl, note_path(contact_id, note_id), "", update_note_body(fields)};
    auto r = co_await execute(std::move(o));
    if (!r)
        co_return r.error();
    co_return envelope_item<note>(*r, "note", parse_note, op_name(http_method::put, tmpl));
}

asio::awaitable<result<void>> client::delete_note(std::string contact_id, std::string note_id) {
    constexpr std::string_view tmpl = "/contacts/:contactId/notes/:id";
    if (contact_id.empty() || note_id.empty())
        co_return invalid(op_name(http_method::del, tmpl), "contactId or id is empty");
    op o{http_method::del, tmpl, note_path(contact_id, note_id)};
    auto r = co_await execute(std::move(o));
    if (!r)
        co_return r.error();
    co_return result<void>();
}

// ---------------------------------------------------------------------------------------------
// Appointments

asio::awaitable<result<std::vector<appointment>>>
client::list_appointments(std::string contact_id) {
    constexpr std::string_view tmpl = "/contacts/:contactId/appointments";
    if (contact_id.empty())
        co_return invalid(op_name(http_method::get, tmpl), "contactId is empty");
    op o{http_method::get, tmpl, "/contacts/" + url_encode(contact_id) + "/appointments"};
    auto r = co_await execute(std::move(o));
    if (!r)
        co_return r.error();
    co_return envelope_list<appointment>(*r, "events", parse_appointment);
}

// ---------------------------------------------------------------------------------------------
// Custom fields

asio::awaitable<result<std::vector<custom_field>>> client::list_custom_fields() {
    constexpr std::string_view tmpl = "/locations/:locationId/customFields";
    if (opt_.location_id.empty())
        co_return invalid(op_name(http_method::get, tmpl), "locationId is empty");
    std::string q;
    add_query(q, "model", "contact");
    op o{http_method::get, tmpl, "/locations/" + url_encode(opt_.location_id) + "/customFields", q};
    auto r = co_await execute(std::move(o));
    if (!r)
        co_return r.error();
    if (!r->contains("customFields"))
        co_return bad_body(op_name(http_method::get, tmpl), "response has no \"customFields\"",
                           200);
    co_return envelope_list<custom_field>(*r, "customFields", parse_custom_field);
}

// ---------------------------------------------------------------------------------------------
// OAuth token endpoint

http_token_endpoint::http_token_endpoint(std::shared_ptr<http_client> http,
                                         request_observer observer, const speak4::clock& clk)
    : http_(std::move(http))
    , observer_(std::move(observer))
    , clock_(clk) {}

asio::awaitable<result<token_response>> http_token_endpoint::request_token(token_request req) {
    constexpr std::string_view operation = "POST /oauth/token";
    auto http = http_;
    std::vector<std::pair<std::string, std::string>> form = {
        {"client_id", req.client_id},
        {"client_secret", req.client_secret.reveal()},
        {"grant_type", req.grant_type},
    };
    if (!req.code.empty())
        form.emplace_back("code", req.code.reveal());
    if (!req.refresh_token.empty())
        form.emplace_back("refresh_token", req.refresh_token.reveal());
    if (!req.user_type.empty())
        form.emplace_back("user_type", req.user_type);
    if (!req.redirect_uri.empty())
        form.emplace_back("redirect_uri", req.redirect_uri);

    http_request hr;
    hr.method = http_method::post;
    hr.target = "/oauth/token";
    hr.headers = {{"Accept", "application/json"}};
    hr.content_type = "application/x-www-form-urlencoded";
    hr.body = form_encode(form);

    request_record rec;
    rec.method = "POST";
    rec.path_template = "/oauth/token";
    rec.path = "/oauth/token";
    rec.operation = std::string(operation);
    rec.started_at = clock_.now();
    const auto t0 = std::chrono::steady_clock::now();
    auto res = co_await http->send(std::move(hr));
    rec.latency = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - t0);
    const auto report = [&](const std::optional<error>& e) {
        if (e) {
            rec.error = e->what();
            rec.kind = e->kind;
        }
        if (!observer_)
            return;
        try {
            observer_(rec);
        } catch (const std::exception& ex) {
            log::warn("ghl request observer failed",
                      {{"operation", rec.operation}, {"error", ex.what()}});
        }
    };

    if (!res) {
        error e = error_from_transport(res.error(), operation);
        rec.written = res.error().request_written;
        report(e);
        co_return e;
    }
    rec.written = true;
    rec.status = res->status;
    if (res->status < 200 || res->status > 299) {
        error e = classify_status(operation, res->status, res->body,
                                  parse_rate_headers(res->headers, clock_.now()).retry_after);
        report(e);
        co_return e;
    }
    // Success bodies hold tokens: never quote them in errors or logs.
    auto parsed = json::parse(res->body, body_parse_limits(std::size_t{1024} * 1024));
    const bj::object* o = parsed && parsed->is_object() ? &parsed->get_object() : nullptr;
    auto access = o ? json::get_string(*o, "access_token") : std::nullopt;
    if (!access || access->empty()) {
        error e = bad_body(operation,
                           o ? "token response has no access_token"
                             : "token response is not a JSON object",
                           res->status);
        report(e);
        co_return e;
    }
    token_response out;
    out.access_token = secret(std::move(*access));
    out.refresh_token = secret(json::get_string(*o, "refresh_token").value_or(""));
    out.expires_in = json::get_int(*o, "expires_in").value_or(0);
    out.scope = json::get_string(*o, "scope").value_or("");
    out.user_type = json::get_string(*o, "userType").value_or("");
    out.location_id = json::get_string(*o, "locationId").value_or("");
    out.company_id = json::get_string(*o, "companyId").value_or("");
    out.user_id = json::get_string(*o, "userId").value_or("");
    rec.trace_id = json::get_string(*o, "traceId");
    report(std::nullopt);
    co_return out;
}

} // namespace speak4::ghl
