#pragma once
// ghl-sim internals: the webhook signing keys (OpenSSL 3). make_test_pki() is in ghl_sim.hpp.

#include <memory>
#include <mutex>
#include <string>
#include <string_view>

namespace speak4::sim::detail {

std::string base64_encode(std::string_view bytes);

/// The simulator's webhook keys: an Ed25519 pair made at construction (cheap) and an RSA-2048
/// pair made on first use (slower; GHL's real legacy key is RSA-4096, which would cost seconds
/// under sanitizers). Thread-safe. Throws std::runtime_error naming the OpenSSL step that failed.
class webhook_signer {
public:
    webhook_signer();
    ~webhook_signer();
    webhook_signer(const webhook_signer&) = delete;
    webhook_signer& operator=(const webhook_signer&) = delete;

    std::string ed25519_public_pem() const;
    std::string rsa_public_pem() const;
    /// Base64 Ed25519 signature over `body` (x-ghl-signature).
    std::string sign_ed25519(std::string_view body) const;
    /// Base64 RSA-SHA256 PKCS#1 v1.5 signature over `body` (x-wh-signature).
    std::string sign_rsa(std::string_view body) const;

private:
    struct keys;
    std::unique_ptr<keys> keys_;
    void ensure_rsa() const;
    mutable std::mutex rsa_mutex_;
};

} // namespace speak4::sim::detail
