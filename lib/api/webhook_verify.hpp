#pragma once
// GHL webhook signatures (ghl-api.md §11), verified over the exact received bytes:
//   x-ghl-signature: base64 Ed25519 signature (preferred);
//   x-wh-signature:  base64 RSA-SHA256 PKCS#1 v1.5 signature (legacy, deprecated by GHL).
// When x-ghl-signature is present and an Ed25519 key is configured it must verify: there is no
// fallback to the legacy header, so a forged Ed25519 header cannot be "rescued" by a legacy one.
// With only the RSA key configured, a request carrying both headers (as GHL sends them) is
// verified by x-wh-signature.
//
// Pure functions over bytes (no I/O, no exceptions) so a fuzzer can drive them.

#include <boost/system/result.hpp>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

typedef struct evp_pkey_st EVP_PKEY;

namespace speak4::api {

/// A public key parsed from PEM ("-----BEGIN PUBLIC KEY-----", SubjectPublicKeyInfo).
/// Threading: immutable after construction; verification from several threads is safe.
class public_key {
public:
    enum class kind { ed25519, rsa, other };

    /// Parses a PEM public key. The error says why ("not a PEM public key", "RSA key of 1024
    /// bits is too small").
    static boost::system::result<public_key, std::string> from_pem(std::string_view pem);

    kind type() const { return type_; }
    EVP_PKEY* get() const { return key_.get(); }

private:
    struct deleter {
        void operator()(EVP_PKEY* k) const;
    };
    std::shared_ptr<EVP_PKEY> key_;
    kind type_ = kind::other;
};

/// Strict base64 (RFC 4648, standard alphabet, padding optional, no whitespace inside; one
/// trailing newline tolerated). nullopt when malformed.
std::optional<std::string> base64_decode(std::string_view text);

/// True when `signature_b64` is a valid Ed25519 signature of `body` under `key` (an Ed25519 key).
bool verify_ed25519(const public_key& key, std::string_view body, std::string_view signature_b64);

/// True when `signature_b64` is a valid RSA-SHA256 PKCS#1 v1.5 signature of `body` under `key`
/// (an RSA key).
bool verify_rsa_sha256(const public_key& key, std::string_view body,
                       std::string_view signature_b64);

/// The configured keys; either may be missing.
struct webhook_keys {
    std::optional<public_key> ed25519; // webhooks.public_key_file
    std::optional<public_key> rsa;     // webhooks.rsa_public_key_file
};

enum class signature_status {
    ok,        // verified
    missing,   // neither header present
    no_key,    // the header present has no configured key to check it with
    malformed, // not base64, or the wrong length
    mismatch,  // does not verify
};

struct signature_verdict {
    signature_status status = signature_status::missing;
    const char* header = ""; // the header that decided ("x-ghl-signature", "x-wh-signature")
    bool ok() const { return status == signature_status::ok; }
};

/// Checks a webhook's signature headers (nullopt = header absent) against the raw body.
signature_verdict verify_webhook_signature(const webhook_keys& keys, std::string_view body,
                                           std::optional<std::string_view> ghl_signature,
                                           std::optional<std::string_view> wh_signature);

/// A sentence for logs and the 401 body ("x-ghl-signature does not verify").
std::string describe(const signature_verdict& v);

} // namespace speak4::api
