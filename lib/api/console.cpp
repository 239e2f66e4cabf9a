// GET /console/…: the embedded console. No token is needed for these files (they hold no data
// and no secret); the page asks for the API token and sends it only as a header to /v1/admin.
// See routes.hpp.

#include "api/console.hpp"

#include "api/request_util.hpp"
#include "api/routes.hpp"

namespace speak4::api {
namespace {

// No inline script or style, nothing from elsewhere, no framing, no referrer (the page's URL
// carries nothing secret, but nothing needs it either).
constexpr std::string_view page_headers =
    "Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'\r\n"
    "X-Content-Type-Options: nosniff\r\n"
    "X-Frame-Options: DENY\r\n"
    "Referrer-Policy: no-referrer\r\n";

std::string_view content_type_of(std::string_view name) {
    if (name.ends_with(".html"))
        return "text/html; charset=utf-8";
    if (name.ends_with(".css"))
        return "text/css; charset=utf-8";
    if (name.ends_with(".js"))
        return "text/javascript; charset=utf-8";
    if (name.ends_with(".svg"))
        return "image/svg+xml";
    return "application/octet-stream";
}

} // namespace

reply routes::console(const request& req) const {
    std::string_view path = target_path(req.target);
    path.remove_prefix(std::string_view("/console").size());
    if (path.empty() || path == "/")
        path = "/index.html";
    const std::string_view name = path.substr(1);
    for (const auto& f : console_files()) {
        if (f.name != name)
            continue;
        reply r;
        r.body = std::string(f.body);
        r.content_type = content_type_of(f.name);
        r.extra_headers = page_headers;
        return r;
    }
    reply r = error_reply(status::not_found, "not_found", "no such console file");
    r.extra_headers = page_headers;
    return r;
}

} // namespace speak4::api
