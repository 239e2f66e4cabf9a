// ghl-sim: the test PKI and the webhook signing keys, with OpenSSL 3 APIs.

#include "sim_crypto.hpp"

#include "ghl_sim.hpp"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdexcept>
#include <vector>

namespace speak4::sim {

namespace {

struct pkey_free {
    void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct x509_free {
    void operator()(X509* p) const { X509_free(p); }
};
struct bio_free {
    void operator()(BIO* p) const { BIO_free(p); }
};
struct md_ctx_free {
    void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
};
struct bn_free {
    void operator()(BIGNUM* p) const { BN_free(p); }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_free>;
using x509_ptr = std::unique_ptr<X509, x509_free>;
using bio_ptr = std::unique_ptr<BIO, bio_free>;

[[noreturn]] void fail(const std::string& step) {
    unsigned long e = ERR_get_error();
    char buf[256] = {0};
    if (e != 0) {
        ERR_error_string_n(e, buf, sizeof buf);
    }
    ERR_clear_error();
    throw std::runtime_error("ghl-sim: " + step + " failed" +
                             (e != 0 ? std::string(": ") + buf : ""));
}

void check(int ok, const char* step) {
    if (ok <= 0) {
        fail(step);
    }
}

std::string bio_string(BIO* bio) {
    char* data = nullptr;
    long n = BIO_get_mem_data(bio, &data);
    return std::string(data, static_cast<std::size_t>(n));
}

pkey_ptr make_ec_key() {
    pkey_ptr key(EVP_EC_gen("P-256"));
    if (!key) {
        fail("EVP_EC_gen(P-256)");
    }
    return key;
}

std::string key_pem(EVP_PKEY* key) {
    bio_ptr bio(BIO_new(BIO_s_mem()));
    check(PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr),
          "PEM_write_bio_PrivateKey");
    return bio_string(bio.get());
}

std::string public_pem(EVP_PKEY* key) {
    bio_ptr bio(BIO_new(BIO_s_mem()));
    check(PEM_write_bio_PUBKEY(bio.get(), key), "PEM_write_bio_PUBKEY");
    return bio_string(bio.get());
}

std::string cert_pem(X509* cert) {
    bio_ptr bio(BIO_new(BIO_s_mem()));
    check(PEM_write_bio_X509(bio.get(), cert), "PEM_write_bio_X509");
    return bio_string(bio.get());
}

void add_ext(X509* cert, X509* issuer, int nid, const std::string& value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
    if (ext == nullptr) {
        fail("X509V3_EXT_conf_nid(" + std::string(OBJ_nid2sn(nid)) + ")");
    }
    int ok = X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    check(ok, "X509_add_ext");
}

x509_ptr new_cert(EVP_PKEY* key, const std::string& cn) {
    x509_ptr cert(X509_new());
    if (!cert) {
        fail("X509_new");
    }
    check(X509_set_version(cert.get(), X509_VERSION_3), "X509_set_version");
    std::unique_ptr<BIGNUM, bn_free> serial(BN_new());
    check(serial ? 1 : 0, "BN_new");
    check(BN_rand(serial.get(), 64, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY), "BN_rand");
    check(BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get())) != nullptr ? 1 : 0,
          "BN_to_ASN1_INTEGER");
    check(X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600) != nullptr ? 1 : 0,
          "X509_gmtime_adj(notBefore)");
    check(X509_gmtime_adj(X509_getm_notAfter(cert.get()), 86400) != nullptr ? 1 : 0,
          "X509_gmtime_adj(notAfter)");
    check(X509_set_pubkey(cert.get(), key), "X509_set_pubkey");
    X509_NAME* name = X509_get_subject_name(cert.get());
    check(X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                                     reinterpret_cast<const unsigned char*>("speak4 ghl-sim"), -1,
                                     -1, 0),
          "X509_NAME_add_entry_by_txt(O)");
    check(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                     reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0),
          "X509_NAME_add_entry_by_txt(CN)");
    return cert;
}

} // namespace

test_pki make_test_pki(const std::vector<std::string>& dns_names) {
    pkey_ptr ca_key = make_ec_key();
    x509_ptr ca = new_cert(ca_key.get(), "ghl-sim test CA");
    check(X509_set_issuer_name(ca.get(), X509_get_subject_name(ca.get())),
          "X509_set_issuer_name(CA)");
    add_ext(ca.get(), ca.get(), NID_basic_constraints, "critical,CA:TRUE");
    add_ext(ca.get(), ca.get(), NID_key_usage, "critical,keyCertSign,cRLSign");
    add_ext(ca.get(), ca.get(), NID_subject_key_identifier, "hash");
    add_ext(ca.get(), ca.get(), NID_authority_key_identifier, "keyid:always");
    check(X509_sign(ca.get(), ca_key.get(), EVP_sha256()), "X509_sign(CA)");

    pkey_ptr key = make_ec_key();
    std::string cn = dns_names.empty() ? std::string("localhost") : dns_names.front();
    x509_ptr cert = new_cert(key.get(), cn);
    check(X509_set_issuer_name(cert.get(), X509_get_subject_name(ca.get())),
          "X509_set_issuer_name(server)");
    std::string san;
    for (const auto& d : dns_names) {
        san += "DNS:" + d + ",";
    }
    san += "IP:127.0.0.1";
    add_ext(cert.get(), ca.get(), NID_subject_alt_name, san);
    add_ext(cert.get(), ca.get(), NID_basic_constraints, "critical,CA:FALSE");
    add_ext(cert.get(), ca.get(), NID_key_usage, "critical,digitalSignature,keyAgreement");
    add_ext(cert.get(), ca.get(), NID_ext_key_usage, "serverAuth");
    add_ext(cert.get(), ca.get(), NID_subject_key_identifier, "hash");
    add_ext(cert.get(), ca.get(), NID_authority_key_identifier, "keyid:always");
    check(X509_sign(cert.get(), ca_key.get(), EVP_sha256()), "X509_sign(server)");

    return test_pki{cert_pem(ca.get()), cert_pem(cert.get()), key_pem(key.get())};
}

namespace detail {

std::string base64_encode(std::string_view bytes) {
    std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
    int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(bytes.data()),
                            static_cast<int>(bytes.size()));
    out.resize(static_cast<std::size_t>(n));
    return out;
}

struct webhook_signer::keys {
    pkey_ptr ed25519;
    pkey_ptr rsa;
    std::string ed25519_pem;
    std::string rsa_pem;
};

namespace {

std::string sign_with(EVP_PKEY* key, const EVP_MD* md, std::string_view body, const char* what) {
    std::unique_ptr<EVP_MD_CTX, md_ctx_free> ctx(EVP_MD_CTX_new());
    if (!ctx) {
        fail(std::string(what) + ": EVP_MD_CTX_new");
    }
    check(EVP_DigestSignInit(ctx.get(), nullptr, md, nullptr, key),
          (std::string(what) + ": EVP_DigestSignInit").c_str());
    std::size_t len = 0;
    const auto* data = reinterpret_cast<const unsigned char*>(body.data());
    check(EVP_DigestSign(ctx.get(), nullptr, &len, data, body.size()),
          (std::string(what) + ": EVP_DigestSign(size)").c_str());
    std::vector<unsigned char> sig(len);
    check(EVP_DigestSign(ctx.get(), sig.data(), &len, data, body.size()),
          (std::string(what) + ": EVP_DigestSign").c_str());
    return base64_encode(std::string_view(reinterpret_cast<const char*>(sig.data()), len));
}

} // namespace

webhook_signer::webhook_signer()
    : keys_(std::make_unique<keys>()) {
    keys_->ed25519.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
    if (!keys_->ed25519) {
        fail("EVP_PKEY_Q_keygen(ED25519)");
    }
    keys_->ed25519_pem = public_pem(keys_->ed25519.get());
}

webhook_signer::~webhook_signer() = default;

void webhook_signer::ensure_rsa() const {
    // Called with rsa_mutex_ held.
    if (keys_->rsa) {
        return;
    }
    keys_->rsa.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<std::size_t>(2048)));
    if (!keys_->rsa) {
        fail("EVP_PKEY_Q_keygen(RSA)");
    }
    keys_->rsa_pem = public_pem(keys_->rsa.get());
}

std::string webhook_signer::ed25519_public_pem() const {
    return keys_->ed25519_pem;
}

std::string webhook_signer::rsa_public_pem() const {
    std::lock_guard lock(rsa_mutex_);
    ensure_rsa();
    return keys_->rsa_pem;
}

std::string webhook_signer::sign_ed25519(std::string_view body) const {
    // Ed25519 is a one-shot signature: no digest.
    return sign_with(keys_->ed25519.get(), nullptr, body, "sign Ed25519");
}

std::string webhook_signer::sign_rsa(std::string_view body) const {
    std::lock_guard lock(rsa_mutex_);
    ensure_rsa();
    return sign_with(keys_->rsa.get(), EVP_sha256(), body, "sign RSA-SHA256");
}

} // namespace detail
} // namespace speak4::sim
