#include "api/webhook_verify.hpp"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

namespace speak4::api {
namespace {

// Upper bounds on what is worth decoding: an Ed25519 signature is 64 bytes, an RSA-16384 one
// 2048; anything longer is rejected before allocating.
constexpr std::size_t max_signature_b64 = 4096;
constexpr std::size_t ed25519_signature_bytes = 64;
constexpr int min_rsa_bits = 2048;

struct md_ctx_deleter {
    void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
using md_ctx_ptr = std::unique_ptr<EVP_MD_CTX, md_ctx_deleter>;

struct bio_deleter {
    void operator()(BIO* b) const { BIO_free(b); }
};

int b64_value(unsigned char c) {
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

bool verify(const public_key& key, const EVP_MD* md, std::string_view body,
            const std::string& sig) {
    md_ctx_ptr ctx(EVP_MD_CTX_new());
    if (!ctx)
        return false;
    bool ok = false;
    if (EVP_DigestVerifyInit(ctx.get(), nullptr, md, nullptr, key.get()) == 1) {
        if (md == nullptr) {
            // Ed25519 is one-shot: EVP_DigestVerify, not Update/Final.
            ok = EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig.data()),
                                  sig.size(), reinterpret_cast<const unsigned char*>(body.data()),
                                  body.size()) == 1;
        } else {
            ok =
                EVP_DigestVerifyUpdate(ctx.get(), body.data(), body.size()) == 1 &&
                EVP_DigestVerifyFinal(ctx.get(), reinterpret_cast<const unsigned char*>(sig.data()),
                                      sig.size()) == 1;
        }
    }
    // A failed verification leaves entries on this thread's OpenSSL error queue; clear them so
    // they neither pile up nor confuse the next TLS call on this thread.
    ERR_clear_error();
    return ok;
}

} // namespace

void public_key::deleter::operator()(EVP_PKEY* k) const {
    EVP_PKEY_free(k);
}

boost::system::result<public_key, std::string> public_key::from_pem(std::string_view pem) {
    using R = boost::system::result<public_key, std::string>;
    if (pem.empty() || pem.size() > std::size_t{64} * 1024)
        return R(boost::system::in_place_error, "not a PEM public key (empty or too large)");
    std::unique_ptr<BIO, bio_deleter> bio(
        BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    if (!bio)
        return R(boost::system::in_place_error, "out of memory");
    EVP_PKEY* raw = PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr);
    ERR_clear_error();
    if (!raw)
        return R(boost::system::in_place_error,
                 "not a PEM public key (expected -----BEGIN PUBLIC KEY-----)");
    public_key k;
    k.key_ = std::shared_ptr<EVP_PKEY>(raw, deleter{});
    if (EVP_PKEY_is_a(raw, "ED25519")) {
        k.type_ = kind::ed25519;
    } else if (EVP_PKEY_is_a(raw, "RSA")) {
        k.type_ = kind::rsa;
        const int bits = EVP_PKEY_get_bits(raw);
        if (bits < min_rsa_bits)
            return R(boost::system::in_place_error, "RSA key of " + std::to_string(bits) +
                                                        " bits is too small (minimum " +
                                                        std::to_string(min_rsa_bits) + ")");
    } else {
        k.type_ = kind::other;
    }
    return k;
}

std::optional<std::string> base64_decode(std::string_view text) {
    if (!text.empty() && text.back() == '\n')
        text.remove_suffix(1);
    if (!text.empty() && text.back() == '\r')
        text.remove_suffix(1);
    if (text.empty() || text.size() > max_signature_b64)
        return std::nullopt;
    std::size_t pad = 0;
    while (pad < 2 && pad < text.size() && text[text.size() - 1 - pad] == '=')
        ++pad;
    const std::string_view data = text.substr(0, text.size() - pad);
    if (pad > 0 && text.size() % 4 != 0)
        return std::nullopt;
    if (data.size() % 4 == 1)
        return std::nullopt;
    std::string out;
    out.reserve(data.size() * 3 / 4);
    unsigned acc = 0;
    int bits = 0;
    for (unsigned char c : data) {
        const int v = b64_value(c);
        if (v < 0)
            return std::nullopt;
        acc = (acc << 6) | static_cast<unsigned>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out.push_back(static_cast<char>((acc >> bits) & 0xFF));
        }
    }
    // Leftover bits must be zero (canonical encoding), so one signature has one spelling.
    if (bits > 0 && (acc & ((1u << bits) - 1)) != 0)
        return std::nullopt;
    return out;
}

bool verify_ed25519(const public_key& key, std::string_view body, std::string_view signature_b64) {
    if (key.type() != public_key::kind::ed25519 || !key.get())
        return false;
    const auto sig = base64_decode(signature_b64);
    if (!sig || sig->size() != ed25519_signature_bytes)
        return false;
    return verify(key, nullptr, body, *sig);
}

bool verify_rsa_sha256(const public_key& key, std::string_view body,
                       std::string_view signature_b64) {
    if (key.type() != public_key::kind::rsa || !key.get())
        return false;
    const auto sig = base64_decode(signature_b64);
    if (!sig || sig->empty() || static_cast<int>(sig->size()) != EVP_PKEY_get_size(key.get()))
        return false;
    return verify(key, EVP_sha256(), body, *sig);
}

signature_verdict verify_webhook_signature(const webhook_keys& keys, std::string_view body,
                                           std::optional<std::string_view> ghl_signature,
                                           std::optional<std::string_view> wh_signature) {
    // With only the RSA key configured, GHL still sends x-ghl-signature beside x-wh-signature:
    // the header there is no key for cannot decide; the one the configured key checks does.
    if (ghl_signature && !keys.ed25519 && wh_signature && keys.rsa)
        ghl_signature.reset();
    if (ghl_signature) {
        // Present (and checkable) means it decides: no fallback to the legacy header, so a
        // forged Ed25519 signature is never rescued by a legacy one.
        signature_verdict v{signature_status::ok, "x-ghl-signature"};
        const auto raw = base64_decode(*ghl_signature);
        if (!keys.ed25519)
            v.status = signature_status::no_key;
        else if (!raw || raw->size() != ed25519_signature_bytes)
            v.status = signature_status::malformed;
        else if (!verify_ed25519(*keys.ed25519, body, *ghl_signature))
            v.status = signature_status::mismatch;
        return v;
    }
    if (wh_signature) {
        signature_verdict v{signature_status::ok, "x-wh-signature"};
        const auto raw = base64_decode(*wh_signature);
        if (!keys.rsa)
            v.status = signature_status::no_key;
        else if (!raw || static_cast<int>(raw->size()) != EVP_PKEY_get_size(keys.rsa->get()))
            v.status = signature_status::malformed;
        else if (!verify_rsa_sha256(*keys.rsa, body, *wh_signature))
            v.status = signature_status::mismatch;
        return v;
    }
    return {signature_status::missing, ""};
}

std::string describe(const signature_verdict& v) {
    const std::string h = v.header;
    switch (v.status) {
    case signature_status::ok:
        return h + " verified";
    case signature_status::missing:
        return "no x-ghl-signature or x-wh-signature header";
    case signature_status::no_key:
        return h + " present but no key is configured to verify it (" +
               (h == "x-ghl-signature" ? "webhooks.public_key_file"
                                       : "webhooks.rsa_public_key_file") +
               ")";
    case signature_status::malformed:
        return h + " is not a base64 signature of the right length";
    case signature_status::mismatch:
        return h + " does not verify";
    }
    return "signature check failed";
}

} // namespace speak4::api
