// libFuzzer target: POST /webhooks/ghl as the server handles it: the signature headers checked
// against the raw body (lib/api/webhook_verify), then a verified body parsed and checked for the
// fields, freshness and contact a webhook needs (sync::check_webhook).
//
// Input: one flags byte, then "<x-ghl-signature>\n<x-wh-signature>\n<body>".
//   bit 0 / 1  the x-ghl-signature / x-wh-signature header is present
//   bit 2 / 3  its value is replaced by a real Ed25519 / RSA-SHA256 signature of the body, so
//              mutated bodies still get past the signature check
//   bit 4 / 5  no Ed25519 / RSA key is configured
//   bit 6      the body is changed after signing (one bit flipped): must not verify
//   bit 7      instead, the rest is a PEM public key for public_key::from_pem (the key files)
// The Ed25519 key is fixed (a 32-byte seed, also in make_corpus.py, which signs the corpus's
// webhooks with it), the RSA key is generated at start-up. Nothing here throws, so nothing
// is caught: an exception, crash, sanitizer report or broken invariant is a finding.

#include "api/webhook_verify.hpp"
#include "core/json.hpp"
#include "core/time.hpp"
#include "fuzz_check.hpp"
#include "sync/webhook.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <string>
#include <string_view>

namespace {

using namespace speak4;

// The Ed25519 private key of the fuzz corpus (a test key, never used anywhere else).
constexpr unsigned char ed25519_seed[32] = {'s', 'p', 'e', 'a', 'k', '4', '-', 's', 'y', 'n', 'c',
                                            '-', 'f', 'u', 'z', 'z', '-', 'w', 'e', 'b', 'h', 'o',
                                            'o', 'k', '-', 't', 'e', 's', 't', 'k', 'e', 'y'};

const sys_time fuzz_now = from_epoch_ms(1'767'225'600'000); // 2026-01-01T00:00:00Z
constexpr std::chrono::seconds max_age{300};

struct pkey_deleter {
    void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_deleter>;

std::string public_pem(EVP_PKEY* key) {
    BIO* bio = BIO_new(BIO_s_mem());
    FUZZ_CHECK(bio && PEM_write_bio_PUBKEY(bio, key) == 1);
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio, &data);
    std::string pem(data, static_cast<std::size_t>(n));
    BIO_free(bio);
    return pem;
}

std::string base64(std::string_view raw) {
    std::string out(4 * ((raw.size() + 2) / 3) + 1, '\0');
    const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                  reinterpret_cast<const unsigned char*>(raw.data()),
                                  static_cast<int>(raw.size()));
    out.resize(static_cast<std::size_t>(n));
    return out;
}

/// Base64 signature of `body`: Ed25519 for an Ed25519 key, else RSA-SHA256 PKCS#1 v1.5.
std::string sign(EVP_PKEY* key, std::string_view body) {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    const EVP_MD* md = EVP_PKEY_is_a(key, "ED25519") ? nullptr : EVP_sha256();
    const auto* in = reinterpret_cast<const unsigned char*>(body.data());
    std::size_t len = 0;
    FUZZ_CHECK(ctx && EVP_DigestSignInit(ctx, nullptr, md, nullptr, key) == 1);
    FUZZ_CHECK(EVP_DigestSign(ctx, nullptr, &len, in, body.size()) == 1);
    std::string sig(len, '\0');
    FUZZ_CHECK(EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len, in,
                              body.size()) == 1);
    EVP_MD_CTX_free(ctx);
    sig.resize(len);
    return base64(sig);
}

struct fixture {
    pkey_ptr ed25519;
    pkey_ptr rsa;
    api::webhook_keys keys;

    fixture() {
        ed25519.reset(EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, ed25519_seed,
                                                   sizeof ed25519_seed));
        rsa.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", std::size_t{2048}));
        FUZZ_CHECK(ed25519 && rsa);
        auto ek = api::public_key::from_pem(public_pem(ed25519.get()));
        auto rk = api::public_key::from_pem(public_pem(rsa.get()));
        FUZZ_CHECK(ek && ek->type() == api::public_key::kind::ed25519);
        FUZZ_CHECK(rk && rk->type() == api::public_key::kind::rsa);
        keys.ed25519 = *ek;
        keys.rsa = *rk;
    }
};

const fixture& keys() {
    static const fixture f;
    return f;
}

std::string_view next_line(std::string_view& rest) {
    const auto nl = rest.find('\n');
    const std::string_view line = rest.substr(0, nl);
    rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
    return line;
}

/// base64_decode accepts one spelling per byte string: re-encoding gives the input back
/// (padding and the one tolerated line ending aside).
void check_base64(std::string_view text) {
    const auto raw = api::base64_decode(text);
    if (!raw)
        return;
    if (text.ends_with('\n'))
        text.remove_suffix(1);
    if (text.ends_with('\r'))
        text.remove_suffix(1);
    while (text.ends_with('='))
        text.remove_suffix(1);
    std::string again = base64(*raw);
    while (again.ends_with('='))
        again.pop_back();
    FUZZ_CHECK(again == text);
}

void check_body(std::string_view body) {
    const auto parsed = json::parse(body, {std::size_t{256} * 1024, 32});
    if (!parsed || !parsed->is_object())
        return;
    const auto info = sync::check_webhook(parsed->get_object(), fuzz_now, max_age);
    if (!info) {
        FUZZ_CHECK(!info.error().message.empty());
        return;
    }
    FUZZ_CHECK(!info->webhook_id.empty() && !info->type.empty());
    const auto age = fuzz_now - info->timestamp;
    FUZZ_CHECK(age <= max_age && -age <= max_age);
}

void fuzz_pem(std::string_view text) {
    auto k = api::public_key::from_pem(text);
    if (!k) {
        FUZZ_CHECK(!k.error().empty());
        return;
    }
    FUZZ_CHECK(k->get() != nullptr);
    // Whatever the key, a made-up signature does not verify.
    (void)api::verify_ed25519(*k, "{}", std::string(86, 'A') + "==");
    (void)api::verify_rsa_sha256(*k, "{}", "AAAA");
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0)
        return 0;
    const unsigned flags = data[0];
    std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
    if (flags & 0x80) {
        fuzz_pem(rest);
        return 0;
    }
    const fixture& f = keys();

    std::string ghl_value(next_line(rest));
    std::string wh_value(next_line(rest));
    const std::string_view body = rest;
    check_base64(ghl_value);
    check_base64(wh_value);

    const bool has_ghl = flags & 0x01, has_wh = flags & 0x02;
    const bool sign_ghl = has_ghl && (flags & 0x04), sign_wh = has_wh && (flags & 0x08);
    if (sign_ghl)
        ghl_value = sign(f.ed25519.get(), body);
    if (sign_wh)
        wh_value = sign(f.rsa.get(), body);

    api::webhook_keys keys;
    if (!(flags & 0x10))
        keys.ed25519 = f.keys.ed25519;
    if (!(flags & 0x20))
        keys.rsa = f.keys.rsa;

    std::string received(body);
    const bool tampered = (flags & 0x40) && !received.empty();
    if (tampered)
        received[received.size() / 2] = static_cast<char>(received[received.size() / 2] ^ 1);

    const auto verdict = api::verify_webhook_signature(
        keys, received, has_ghl ? std::optional<std::string_view>(ghl_value) : std::nullopt,
        has_wh ? std::optional<std::string_view>(wh_value) : std::nullopt);
    FUZZ_CHECK(!api::describe(verdict).empty());

    // x-ghl-signature decides when present, unless only the RSA key is configured and
    // x-wh-signature is there too; our own signature of the received body verifies, of a
    // changed body does not.
    const bool rsa_decides = has_ghl && !keys.ed25519 && has_wh && keys.rsa;
    if (has_ghl && !rsa_decides) {
        FUZZ_CHECK(std::string_view(verdict.header) == "x-ghl-signature");
        if (sign_ghl && keys.ed25519)
            FUZZ_CHECK(tampered ? verdict.status == api::signature_status::mismatch : verdict.ok());
    } else if (has_wh) { // alone, or beside an x-ghl-signature no configured key checks
        FUZZ_CHECK(std::string_view(verdict.header) == "x-wh-signature");
        if (sign_wh && keys.rsa)
            FUZZ_CHECK(tampered ? verdict.status == api::signature_status::mismatch : verdict.ok());
    } else {
        FUZZ_CHECK(verdict.status == api::signature_status::missing);
    }
    // A key of the other kind never verifies.
    if (has_ghl)
        FUZZ_CHECK(!api::verify_rsa_sha256(*f.keys.ed25519, received, ghl_value));
    if (has_wh)
        FUZZ_CHECK(!api::verify_ed25519(*f.keys.rsa, received, wh_value));

    if (verdict.ok())
        check_body(received);
    return 0;
}
