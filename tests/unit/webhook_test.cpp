// GHL webhooks: signature verification (lib/api/webhook_verify) with keys made here by OpenSSL,
// and what a verified webhook does to the mirror (lib/sync/webhook).

#include "api/webhook_verify.hpp"
#include "core/clock.hpp"
#include "core/time.hpp"
#include "store/database.hpp"
#include "store/migrations.hpp"
#include "support/test_support.hpp"
#include "sync/webhook.hpp"

#include <SQLiteCpp/Statement.h>
#include <boost/json/parse.hpp>
#include <gtest/gtest.h>
#include <memory>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdexcept>
#include <string>

using namespace speak4;
using speak4::testing::temp_dir;

namespace {

namespace bj = boost::json;

struct pkey_deleter {
    void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_deleter>;

/// A key pair made by OpenSSL for the test.
class test_key {
public:
    static test_key ed25519() { return test_key(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519")); }
    static test_key rsa(std::size_t bits = 2048) {
        return test_key(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", bits));
    }

    std::string public_pem() const {
        BIO* bio = BIO_new(BIO_s_mem());
        if (!bio || PEM_write_bio_PUBKEY(bio, key_.get()) != 1)
            throw std::runtime_error("PEM_write_bio_PUBKEY failed");
        char* data = nullptr;
        const long n = BIO_get_mem_data(bio, &data);
        std::string pem(data, static_cast<std::size_t>(n));
        BIO_free(bio);
        return pem;
    }

    api::public_key public_key() const {
        auto k = api::public_key::from_pem(public_pem());
        if (!k)
            throw std::runtime_error(k.error());
        return *k;
    }

    /// Raw signature: Ed25519 when the key is Ed25519, else RSA-SHA256 PKCS#1 v1.5.
    std::string sign_raw(std::string_view body) const {
        EVP_MD_CTX* ctx = EVP_MD_CTX_new();
        const EVP_MD* md = EVP_PKEY_is_a(key_.get(), "ED25519") ? nullptr : EVP_sha256();
        std::size_t len = 0;
        std::string sig;
        const auto* data = reinterpret_cast<const unsigned char*>(body.data());
        if (EVP_DigestSignInit(ctx, nullptr, md, nullptr, key_.get()) != 1 ||
            EVP_DigestSign(ctx, nullptr, &len, data, body.size()) != 1) {
            EVP_MD_CTX_free(ctx);
            throw std::runtime_error("EVP_DigestSign failed");
        }
        sig.resize(len);
        if (EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len, data,
                           body.size()) != 1) {
            EVP_MD_CTX_free(ctx);
            throw std::runtime_error("EVP_DigestSign failed");
        }
        EVP_MD_CTX_free(ctx);
        sig.resize(len);
        return sig;
    }
    std::string sign(std::string_view body) const { return b64(sign_raw(body)); }

    static std::string b64(std::string_view raw) {
        std::string out(4 * ((raw.size() + 2) / 3) + 1, '\0');
        const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                      reinterpret_cast<const unsigned char*>(raw.data()),
                                      static_cast<int>(raw.size()));
        out.resize(static_cast<std::size_t>(n));
        return out;
    }

private:
    explicit test_key(EVP_PKEY* k)
        : key_(k) {
        if (!key_)
            throw std::runtime_error("EVP_PKEY_Q_keygen failed");
    }
    pkey_ptr key_;
};

/// RSA key generation is slow under sanitizers: make the pairs once.
const test_key& ed_key() {
    static const test_key k = test_key::ed25519();
    return k;
}
const test_key& other_ed_key() {
    static const test_key k = test_key::ed25519();
    return k;
}
const test_key& rsa_key() {
    static const test_key k = test_key::rsa();
    return k;
}

const std::string body =
    R"({"type":"ContactUpdate","locationId":"loc","id":"c-1","webhookId":"w-1",)"
    R"("timestamp":"2025-06-15T15:06:40.000Z"})";

std::string flip_char(std::string s) {
    // Change a character in the middle, so the decoded bytes differ but stay canonical base64
    // of the same length (the last character may carry padding bits).
    const std::size_t i = s.size() / 2;
    s[i] = s[i] == 'A' ? 'B' : 'A';
    return s;
}

} // namespace

// --- verification ----------------------------------------------------------------------------

TEST(webhook_verify, base64_is_strict) {
    EXPECT_EQ(api::base64_decode("Zm9v").value(), "foo");
    EXPECT_EQ(api::base64_decode("Zm8=").value(), "fo");
    EXPECT_EQ(api::base64_decode("Zg==").value(), "f");
    EXPECT_EQ(api::base64_decode("Zg").value(), "f") << "padding is optional";
    EXPECT_EQ(api::base64_decode("Zm9v\n").value(), "foo") << "one trailing newline is tolerated";
    EXPECT_FALSE(api::base64_decode(""));
    EXPECT_FALSE(api::base64_decode("Zm9v!"));
    EXPECT_FALSE(api::base64_decode("Zm 9v"));
    EXPECT_FALSE(api::base64_decode("Z"));
    EXPECT_FALSE(api::base64_decode("Zh==")) << "non-zero padding bits: not canonical";
    EXPECT_FALSE(api::base64_decode("Zg=")) << "bad padding";
    EXPECT_FALSE(api::base64_decode("Zm9v-_")) << "URL alphabet is not GHL's";
    EXPECT_FALSE(api::base64_decode(std::string(5000, 'A'))) << "over the size bound";
}

TEST(webhook_verify, keys_parse_from_pem) {
    EXPECT_EQ(ed_key().public_key().type(), api::public_key::kind::ed25519);
    EXPECT_EQ(rsa_key().public_key().type(), api::public_key::kind::rsa);
    EXPECT_FALSE(api::public_key::from_pem("not a key"));
    EXPECT_FALSE(api::public_key::from_pem(""));
    EXPECT_FALSE(
        api::public_key::from_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"));
    const auto small = api::public_key::from_pem(test_key::rsa(1024).public_pem());
    ASSERT_FALSE(small);
    EXPECT_NE(small.error().find("too small"), std::string::npos) << small.error();
    // GHL's published Ed25519 key (ghl-api.md §11) parses.
    const auto ghl = api::public_key::from_pem(
        "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAi2HR1srL4o18O8BRa7gVJY7G7bupbN3H9AwJrHCDiOg=\n"
        "-----END PUBLIC KEY-----\n");
    ASSERT_TRUE(ghl) << ghl.error();
    EXPECT_EQ(ghl->type(), api::public_key::kind::ed25519);
}

TEST(webhook_verify, ed25519) {
    const auto key = ed_key().public_key();
    const std::string sig = ed_key().sign(body);
    EXPECT_TRUE(api::verify_ed25519(key, body, sig));
    EXPECT_FALSE(api::verify_ed25519(key, body, flip_char(sig))) << "bad signature";
    EXPECT_FALSE(api::verify_ed25519(key, body + " ", sig)) << "tampered body";
    EXPECT_FALSE(api::verify_ed25519(key, body.substr(1), sig)) << "tampered body";
    EXPECT_FALSE(api::verify_ed25519(other_ed_key().public_key(), body, sig)) << "wrong key";
    EXPECT_FALSE(api::verify_ed25519(key, body, "%%%not base64%%%")) << "bad base64";
    EXPECT_FALSE(api::verify_ed25519(key, body, test_key::b64("short"))) << "wrong length";
    EXPECT_FALSE(api::verify_ed25519(key, body, "")) << "empty";
    EXPECT_FALSE(api::verify_ed25519(rsa_key().public_key(), body, sig)) << "RSA key";
    EXPECT_TRUE(api::verify_ed25519(key, "", ed_key().sign(""))) << "empty body signs fine";
}

TEST(webhook_verify, legacy_rsa_sha256) {
    const auto key = rsa_key().public_key();
    const std::string sig = rsa_key().sign(body);
    EXPECT_TRUE(api::verify_rsa_sha256(key, body, sig));
    EXPECT_FALSE(api::verify_rsa_sha256(key, body, flip_char(sig)));
    EXPECT_FALSE(api::verify_rsa_sha256(key, body + "x", sig));
    EXPECT_FALSE(api::verify_rsa_sha256(key, body, "###"));
    EXPECT_FALSE(api::verify_rsa_sha256(ed_key().public_key(), body, sig)) << "Ed25519 key";
    EXPECT_FALSE(api::verify_rsa_sha256(test_key::rsa().public_key(), body, sig)) << "wrong key";
}

TEST(webhook_verify, header_selection_has_no_fallback) {
    api::webhook_keys keys{ed_key().public_key(), rsa_key().public_key()};
    const std::string ed = ed_key().sign(body);
    const std::string rsa = rsa_key().sign(body);
    using st = api::signature_status;

    auto v = api::verify_webhook_signature(keys, body, ed, std::nullopt);
    EXPECT_EQ(v.status, st::ok);
    EXPECT_STREQ(v.header, "x-ghl-signature");
    EXPECT_EQ(api::verify_webhook_signature(keys, body, std::nullopt, rsa).status, st::ok);
    EXPECT_EQ(api::verify_webhook_signature(keys, body, ed, rsa).status, st::ok);
    // A present x-ghl-signature decides, even when the legacy one would verify.
    v = api::verify_webhook_signature(keys, body, flip_char(ed), rsa);
    EXPECT_EQ(v.status, st::mismatch);
    EXPECT_EQ(api::describe(v), "x-ghl-signature does not verify");
    EXPECT_EQ(api::verify_webhook_signature(keys, body, "garbage", rsa).status, st::malformed);
    EXPECT_EQ(api::verify_webhook_signature(keys, body, std::nullopt, std::nullopt).status,
              st::missing);
    EXPECT_EQ(api::verify_webhook_signature(keys, body, std::nullopt, flip_char(rsa)).status,
              st::mismatch);
    // Only the RSA key configured: a request signed both ways (as GHL sends them) is verified
    // with the configured key; the Ed25519 header alone cannot be checked and is refused.
    api::webhook_keys rsa_only{std::nullopt, rsa_key().public_key()};
    v = api::verify_webhook_signature(rsa_only, body, ed, rsa);
    EXPECT_EQ(v.status, st::ok);
    EXPECT_STREQ(v.header, "x-wh-signature");
    EXPECT_EQ(api::verify_webhook_signature(rsa_only, body, ed, flip_char(rsa)).status,
              st::mismatch);
    EXPECT_EQ(api::verify_webhook_signature(rsa_only, body, flip_char(ed), rsa).status, st::ok)
        << "the header no key checks cannot refuse the request either";
    v = api::verify_webhook_signature(rsa_only, body, ed, std::nullopt);
    EXPECT_EQ(v.status, st::no_key);
    EXPECT_NE(api::describe(v).find("webhooks.public_key_file"), std::string::npos);
    EXPECT_EQ(api::verify_webhook_signature(rsa_only, body, std::nullopt, rsa).status, st::ok);
    api::webhook_keys ed_only{ed_key().public_key(), std::nullopt};
    EXPECT_EQ(api::verify_webhook_signature(ed_only, body, std::nullopt, rsa).status, st::no_key);
}

// --- check_webhook ---------------------------------------------------------------------------

namespace {

const sys_time now_ts = *parse_iso8601("2025-06-15T15:06:40.000Z");

bj::object obj(std::string_view text) {
    return bj::parse(text).as_object();
}

} // namespace

TEST(webhook_check, required_fields_and_freshness) {
    const auto ok = sync::check_webhook(
        obj(R"({"type":"ContactUpdate","id":"c-1","webhookId":"w-1","timestamp":"2025-06-15T15:04:00Z"})"),
        now_ts, std::chrono::seconds(300));
    ASSERT_TRUE(ok) << ok.error().message;
    EXPECT_EQ(ok->webhook_id, "w-1");
    EXPECT_EQ(ok->type, "ContactUpdate");
    EXPECT_EQ(ok->contact_ghl_id, "c-1");

    const auto err = [&](std::string_view text) {
        auto r = sync::check_webhook(obj(text), now_ts, std::chrono::seconds(300));
        EXPECT_FALSE(r) << text;
        return r ? sync::webhook_error{} : r.error();
    };
    using k = sync::webhook_error::kind;
    auto e = err(R"({"type":"ContactUpdate","id":"c","timestamp":"2025-06-15T15:06:40Z"})");
    EXPECT_EQ(e.field, "webhookId");
    EXPECT_EQ(e.what, k::invalid);
    e = err(
        R"({"type":"ContactUpdate","id":"c","webhookId":"","timestamp":"2025-06-15T15:06:40Z"})");
    EXPECT_EQ(e.field, "webhookId");
    e = err(R"({"id":"c","webhookId":"w","timestamp":"2025-06-15T15:06:40Z"})");
    EXPECT_EQ(e.field, "type");
    e = err(R"({"type":"ContactUpdate","id":"c","webhookId":"w"})");
    EXPECT_EQ(e.field, "timestamp");
    e = err(R"({"type":"ContactUpdate","id":"c","webhookId":"w","timestamp":"yesterday"})");
    EXPECT_EQ(e.field, "timestamp");
    EXPECT_EQ(e.what, k::invalid);
    e = err(
        R"({"type":"ContactUpdate","id":"c","webhookId":"w","timestamp":"2025-06-15T15:01:39Z"})");
    EXPECT_EQ(e.what, k::stale) << "301 s old";
    e = err(
        R"({"type":"ContactUpdate","id":"c","webhookId":"w","timestamp":"2025-06-15T15:11:41Z"})");
    EXPECT_EQ(e.what, k::stale) << "301 s in the future";
    EXPECT_TRUE(sync::check_webhook(
        obj(R"({"type":"X","webhookId":"w","timestamp":"2025-06-15T15:01:40Z"})"), now_ts,
        std::chrono::seconds(300)))
        << "exactly max_age old is still fresh";
}

TEST(webhook_check, contact_id_per_event_family) {
    const auto contact_of = [&](std::string_view text) {
        auto r = sync::check_webhook(obj(text), now_ts, std::chrono::seconds(300));
        return r ? r->contact_ghl_id : "error:" + r.error().field;
    };
    const std::string ts = R"("webhookId":"w","timestamp":"2025-06-15T15:06:40Z")";
    EXPECT_EQ(contact_of(R"({"type":"ContactCreate","id":"c1",)" + ts + "}"), "c1");
    EXPECT_EQ(contact_of(R"({"type":"ContactDelete","id":"c1",)" + ts + "}"), "c1");
    EXPECT_EQ(contact_of(R"({"type":"ContactTagUpdate","id":"c1",)" + ts + "}"), "c1");
    EXPECT_EQ(contact_of(R"({"type":"TaskCreate","id":"t1","contactId":"c2",)" + ts + "}"), "c2");
    EXPECT_EQ(contact_of(R"({"type":"NoteDelete","id":"n1","contactId":"c3",)" + ts + "}"), "c3");
    EXPECT_EQ(
        contact_of(R"({"type":"AppointmentUpdate","appointment":{"id":"a","contactId":"c4"},)" +
                   ts + "}"),
        "c4");
    EXPECT_EQ(contact_of(R"({"type":"INSTALL","appId":"x",)" + ts + "}"), "");
    EXPECT_EQ(contact_of(R"({"type":"OpportunityCreate","id":"o1","contactId":"c5",)" + ts + "}"),
              "");
    EXPECT_EQ(contact_of(R"({"type":"TaskCreate","id":"t1",)" + ts + "}"), "error:contactId");
    EXPECT_EQ(contact_of(R"({"type":"ContactUpdate",)" + ts + "}"), "error:id");
    EXPECT_EQ(contact_of(R"({"type":"AppointmentCreate","appointment":{},)" + ts + "}"),
              "error:appointment.contactId");
    EXPECT_EQ(contact_of(R"({"type":"AppointmentCreate","appointment":7,)" + ts + "}"),
              "error:appointment.contactId");
    EXPECT_EQ(contact_of(R"({"type":"ContactUpdate","id":12,)" + ts + "}"), "error:id");
}

// --- webhook_store ---------------------------------------------------------------------------

namespace {

class webhook_store_test : public ::testing::Test {
protected:
    void SetUp() override {
        db_ = store::open_database({dir_ / "w.db"});
        store::migrate(*db_);
        clock_.set(now_ts);
        store_ = std::make_unique<sync::webhook_store>(*db_, clock_, std::chrono::seconds(300));
    }

    sync::webhook_info info(std::string id, std::string type, std::string contact) {
        return {std::move(id), std::move(type), clock_.now(), std::move(contact)};
    }

    long long count(const std::string& sql) { return db_->execAndGet(sql).getInt64(); }
    std::string text(const std::string& sql) { return db_->execAndGet(sql).getString(); }

    temp_dir dir_;
    manual_clock clock_;
    std::unique_ptr<SQLite::Database> db_;
    std::unique_ptr<sync::webhook_store> store_;
};

} // namespace

TEST_F(webhook_store_test, unknown_contact_gets_a_stub_and_a_pull) {
    auto r = store_->apply(info("w-1", "ContactCreate", "ghl-1"));
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_TRUE(r->stub_created);
    EXPECT_FALSE(r->coalesced);
    ASSERT_TRUE(r->contact_id && r->pull_outbox_id);
    EXPECT_EQ(count("SELECT COUNT(*) FROM contacts WHERE ghl_id = 'ghl-1' AND speak4_id IS NULL "
                    "AND deleted = 0"),
              1);
    EXPECT_EQ(count("SELECT COUNT(*) FROM outbox WHERE op = 'pull' AND entity = 'contact' AND "
                    "state = 'pending' AND entity_id = " +
                    std::to_string(*r->contact_id)),
              1);
    const auto payload = bj::parse(text("SELECT payload FROM outbox")).as_object();
    EXPECT_EQ(payload.at("children"), true);
    EXPECT_EQ(payload.at("reason"), "webhook");
    EXPECT_EQ(payload.at("webhook_type"), "ContactCreate");
    EXPECT_EQ(count("SELECT COUNT(*) FROM webhook_seen WHERE webhook_id = 'w-1'"), 1);
    EXPECT_EQ(count("SELECT COUNT(*) FROM changes"), 0);
}

TEST_F(webhook_store_test, pending_pulls_coalesce_and_known_contacts_are_reused) {
    db_->exec("INSERT INTO contacts(id, speak4_id, ghl_id, created_at, updated_at) "
              "VALUES (7, 's4-7', 'ghl-7', 'x', 'x')");
    auto a = store_->apply(info("w-1", "TaskCreate", "ghl-7"));
    auto b = store_->apply(info("w-2", "NoteCreate", "ghl-7"));
    ASSERT_TRUE(a && b);
    EXPECT_EQ(a->contact_id, 7);
    EXPECT_FALSE(a->stub_created);
    EXPECT_TRUE(b->coalesced);
    EXPECT_EQ(a->pull_outbox_id, b->pull_outbox_id);
    EXPECT_EQ(count("SELECT COUNT(*) FROM outbox"), 1);
    EXPECT_EQ(count("SELECT COUNT(*) FROM contacts"), 1);
    // Once the pull is in flight, a new webhook needs a new pull.
    db_->exec("UPDATE outbox SET state = 'inflight'");
    auto c = store_->apply(info("w-3", "AppointmentCreate", "ghl-7"));
    ASSERT_TRUE(c);
    EXPECT_FALSE(c->coalesced);
    EXPECT_EQ(count("SELECT COUNT(*) FROM outbox WHERE state = 'pending'"), 1);
    EXPECT_EQ(count("SELECT COUNT(*) FROM webhook_seen"), 3);
}

TEST_F(webhook_store_test, contact_delete_marks_deleted_with_a_change) {
    db_->exec(
        "INSERT INTO contacts(id, ghl_id, created_at, updated_at) VALUES (3, 'ghl-3', 'x', 'x')");
    auto r = store_->apply(info("w-1", "ContactDelete", "ghl-3"));
    ASSERT_TRUE(r);
    EXPECT_TRUE(r->contact_deleted);
    EXPECT_GT(r->seq, 0);
    EXPECT_EQ(count("SELECT deleted FROM contacts WHERE id = 3"), 1);
    EXPECT_EQ(count("SELECT COUNT(*) FROM changes WHERE entity = 'contact' AND entity_id = 3 AND "
                    "kind = 'deleted' AND source = 'remote'"),
              1);
    EXPECT_EQ(count("SELECT COUNT(*) FROM outbox WHERE op = 'pull'"), 1);
    // A second delete of the same contact adds no second change.
    auto again = store_->apply(info("w-2", "ContactDelete", "ghl-3"));
    ASSERT_TRUE(again);
    EXPECT_FALSE(again->contact_deleted);
    EXPECT_EQ(count("SELECT COUNT(*) FROM changes"), 1);
    // Deleting a contact the mirror never had creates nothing.
    auto unknown = store_->apply(info("w-3", "ContactDelete", "ghl-unknown"));
    ASSERT_TRUE(unknown);
    EXPECT_FALSE(unknown->contact_id);
    EXPECT_EQ(count("SELECT COUNT(*) FROM contacts"), 1);
    EXPECT_EQ(count("SELECT COUNT(*) FROM webhook_seen"), 3);
}

TEST_F(webhook_store_test, unknown_types_are_only_recorded) {
    auto r = store_->apply(info("w-1", "INSTALL", ""));
    ASSERT_TRUE(r);
    EXPECT_FALSE(r->contact_id);
    EXPECT_EQ(count("SELECT COUNT(*) FROM webhook_seen"), 1);
    EXPECT_EQ(count("SELECT COUNT(*) FROM outbox") + count("SELECT COUNT(*) FROM contacts"), 0);
}

TEST_F(webhook_store_test, replays_are_refused_and_change_nothing) {
    ASSERT_TRUE(store_->apply(info("w-1", "ContactUpdate", "ghl-1")));
    db_->exec("UPDATE outbox SET state = 'done'"); // so a second apply would enqueue again
    auto r = store_->apply(info("w-1", "ContactUpdate", "ghl-1"));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().what, sync::webhook_error::kind::replayed);
    EXPECT_EQ(count("SELECT COUNT(*) FROM outbox"), 1);
    EXPECT_EQ(count("SELECT COUNT(*) FROM webhook_seen"), 1);
}

TEST_F(webhook_store_test, a_failing_transaction_stores_nothing) {
    // Break the outbox insert: the whole webhook must roll back, its id included.
    db_->exec("CREATE TRIGGER no_pull BEFORE INSERT ON outbox BEGIN SELECT RAISE(ABORT, 'disk on "
              "fire'); END");
    auto r = store_->apply(info("w-1", "ContactUpdate", "ghl-1"));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().what, sync::webhook_error::kind::io);
    EXPECT_NE(r.error().message.find("disk on fire"), std::string::npos);
    EXPECT_EQ(count("SELECT COUNT(*) FROM webhook_seen"), 0);
    EXPECT_EQ(count("SELECT COUNT(*) FROM contacts"), 0);
    db_->exec("DROP TRIGGER no_pull");
    EXPECT_EQ(
        count("SELECT COUNT(*) FROM sqlite_master WHERE type = 'trigger' AND name = 'no_pull'"), 0);
    EXPECT_EQ(count("SELECT COUNT(*) FROM webhook_seen"), 0);
    auto retry = store_->apply(info("w-1", "ContactUpdate", "ghl-1"));
    EXPECT_TRUE(retry) << "GHL's retry then works: " << (retry ? "" : retry.error().message);
}

TEST_F(webhook_store_test, old_seen_rows_are_pruned) {
    ASSERT_TRUE(store_->apply(info("w-old", "INSTALL", "")));
    clock_.advance(std::chrono::seconds(2 * 300 + 61));
    ASSERT_TRUE(store_->apply(info("w-new", "INSTALL", "")));
    EXPECT_EQ(count("SELECT COUNT(*) FROM webhook_seen WHERE webhook_id = 'w-old'"), 0);
    EXPECT_EQ(count("SELECT COUNT(*) FROM webhook_seen WHERE webhook_id = 'w-new'"), 1);
    // Within 2 x max_age a row is kept (a replay could still be fresh).
    clock_.advance(std::chrono::seconds(400));
    ASSERT_TRUE(store_->apply(info("w-3", "INSTALL", "")));
    EXPECT_EQ(count("SELECT COUNT(*) FROM webhook_seen WHERE webhook_id = 'w-new'"), 1);
}
