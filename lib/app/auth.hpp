#pragma once
// `speak4-sync auth exchange`: trades an OAuth authorization code for GHL's token
// pair and commits it to the database (oauth_tokens), without a running daemon.

#include "core/config.hpp"
#include "ghl/auth.hpp"
#include "ghl/client.hpp"
#include "store/db_worker.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/system/result.hpp>

namespace speak4::app {

/// Runs the exchange on its own event loop. Returns what was obtained, or the error
/// ("POST /oauth/token: 400: Invalid grant: ..."). Throws config_error for a config that cannot
/// do OAuth (auth is not "oauth", client_id or the client secret missing).
boost::system::result<ghl::token_info, std::string>
exchange_code(const config& cfg, const secrets& sec, const secret& code);

/// An observer for the token endpoint: each POST /oauth/token attempt becomes an audit_log row
/// (method, path, status, latency, error: never a code or token), written through `db` on
/// `ex`; `also` (metrics) sees the record too.
ghl::request_observer token_audit(boost::asio::any_io_executor ex, store::db_worker& db,
                                  ghl::request_observer also = {});

} // namespace speak4::app
