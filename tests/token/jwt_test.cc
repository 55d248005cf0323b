// JWT verification: tokens signed here with keys made here (RSA 2048, P-256, Ed25519), the
// attacks on JWS verifiers (alg none, HMAC with the public key, key confusion, parser
// differentials) and the JWKS rules.
#include "userspace/token/jwt.h"

#include <algorithm>
#include <memory>
#include <string>
#include <variant>

#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "tests/token/b64url.h"

namespace dbw::token {
namespace {

constexpr int64_t kNow = 1'700'000'000;
constexpr int64_t kMaxDate = 253'402'300'799;  // 9999-12-31T23:59:59Z

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;

using dbw::token::testing::B64;

std::string FromB64(std::string_view in) {
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int v = std::string_view("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
                .find(c);
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return out;
}

std::string BnBytes(const EVP_PKEY* k, const char* name, int pad = 0) {
  BIGNUM* bn = nullptr;
  EXPECT_EQ(EVP_PKEY_get_bn_param(k, name, &bn), 1);
  std::string out(pad > 0 ? pad : BN_num_bytes(bn), '\0');
  if (pad > 0)
    BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(out.data()), pad);
  else
    BN_bn2bin(bn, reinterpret_cast<unsigned char*>(out.data()));
  BN_free(bn);
  return out;
}

std::string RsaJwk(const EVP_PKEY* k, std::string_view kid, std::string_view extra = "") {
  return R"({"kty":"RSA","kid":")" + std::string(kid) + R"(","n":")" +
         B64(BnBytes(k, OSSL_PKEY_PARAM_RSA_N)) + R"(","e":")" +
         B64(BnBytes(k, OSSL_PKEY_PARAM_RSA_E)) + "\"" + std::string(extra) + "}";
}

std::string EcJwk(const EVP_PKEY* k, std::string_view kid, std::string_view extra = "") {
  return R"({"kty":"EC","crv":"P-256","kid":")" + std::string(kid) + R"(","x":")" +
         B64(BnBytes(k, OSSL_PKEY_PARAM_EC_PUB_X, 32)) + R"(","y":")" +
         B64(BnBytes(k, OSSL_PKEY_PARAM_EC_PUB_Y, 32)) + "\"" + std::string(extra) + "}";
}

std::string EdJwk(const EVP_PKEY* k, std::string_view kid, std::string_view extra = "") {
  unsigned char raw[32];
  size_t len = sizeof(raw);
  EXPECT_EQ(EVP_PKEY_get_raw_public_key(k, raw, &len), 1);
  std::string kid_member = kid.empty() ? "" : R"("kid":")" + std::string(kid) + "\",";
  return R"({"kty":"OKP","crv":"Ed25519",)" + kid_member + R"("x":")" +
         B64(std::string_view(reinterpret_cast<char*>(raw), len)) + "\"" + std::string(extra) + "}";
}

std::string Jwks(std::initializer_list<std::string> keys) {
  std::string out = R"({"keys":[)";
  for (const std::string& k : keys) out += (out.back() == '[' ? "" : ",") + k;
  return out + "]}";
}

std::string RawSign(EVP_PKEY* k, const EVP_MD* md, std::string_view data) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  size_t len = 0;
  EXPECT_EQ(EVP_DigestSignInit(ctx, nullptr, md, nullptr, k), 1);
  EXPECT_EQ(EVP_DigestSign(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(data.data()),
                           data.size()),
            1);
  std::string sig(len, '\0');
  EXPECT_EQ(EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len,
                           reinterpret_cast<const unsigned char*>(data.data()), data.size()),
            1);
  sig.resize(len);
  EVP_MD_CTX_free(ctx);
  return sig;
}

std::string DerToRaw(const std::string& der) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  ECDSA_SIG* sig = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size()));
  EXPECT_NE(sig, nullptr);
  std::string raw(64, '\0');
  BN_bn2binpad(ECDSA_SIG_get0_r(sig), reinterpret_cast<unsigned char*>(raw.data()), 32);
  BN_bn2binpad(ECDSA_SIG_get0_s(sig), reinterpret_cast<unsigned char*>(raw.data()) + 32, 32);
  ECDSA_SIG_free(sig);
  return raw;
}

// The JWS signature of `input` under `alg` ("RS256", "ES256", "EdDSA"; "ES256-DER" for the
// wrong, DER, form).
std::string Signature(EVP_PKEY* k, std::string_view alg, std::string_view input) {
  if (alg == "EdDSA") return RawSign(k, nullptr, input);
  std::string sig = RawSign(k, EVP_sha256(), input);
  return alg == "ES256" ? DerToRaw(sig) : sig;
}

std::string Token(std::string_view header, std::string_view payload, EVP_PKEY* k,
                  std::string_view alg) {
  std::string input = B64(header) + "." + B64(payload);
  return input + "." + B64(Signature(k, alg, input));
}

std::string Hmac(std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  size_t len = 0;
  EXPECT_NE(EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, key.data(), key.size(),
                      reinterpret_cast<const unsigned char*>(data.data()), data.size(), out,
                      sizeof(out), &len),
            nullptr);
  return std::string(reinterpret_cast<char*>(out), len);
}

std::string Claims(std::string_view extra = "") {
  return R"({"iss":"https://idp.example","sub":"alice","aud":"dbwarden","jti":"j-1","iat":)" +
         std::to_string(kNow - 10) + R"(,"nbf":)" + std::to_string(kNow - 10) + R"(,"exp":)" +
         std::to_string(kNow + 300) + std::string(extra) + "}";
}

std::string Header(std::string_view alg, std::string_view kid) {
  return R"({"alg":")" + std::string(alg) + R"(","typ":"JWT","kid":")" + std::string(kid) + "\"}";
}

TokenRules Rules() {
  TokenRules r;
  r.issuer = "https://idp.example";
  r.audiences = {"other", "dbwarden"};
  return r;
}

class JwtTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    rsa_.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048}));
    ec_.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
    ec2_.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
    ed_.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
    ASSERT_TRUE(rsa_ && ec_ && ec2_ && ed_);
    auto set = KeySet::Parse(Jwks({RsaJwk(rsa_.get(), "rsa-1", R"(,"use":"sig","alg":"RS256")"),
                                   EcJwk(ec_.get(), "ec-1"), EdJwk(ed_.get(), "ed-1")}));
    ASSERT_TRUE(set.ok()) << set.status().ToString();
    keys_ = new std::shared_ptr<const KeySet>(*set);
  }
  static void TearDownTestSuite() {
    rsa_.reset();
    ec_.reset();
    ec2_.reset();
    ed_.reset();
    delete keys_;
  }

  static std::variant<VerifiedToken, TokenFailure> Verify(std::string_view token,
                                                          const TokenRules& rules = Rules(),
                                                          int64_t now = kNow) {
    return VerifyToken(token, **keys_, rules, now);
  }

  static inline Pkey rsa_, ec_, ec2_, ed_;
  static inline std::shared_ptr<const KeySet>* keys_ = nullptr;
};

#define EXPECT_FAILS(result, err)                                                    \
  do {                                                                               \
    auto r_ = (result);                                                              \
    ASSERT_TRUE(std::holds_alternative<TokenFailure>(r_)) << "expected " #err;       \
    EXPECT_EQ(TokenErrorName(std::get<TokenFailure>(r_).error), TokenErrorName(err)) \
        << std::get<TokenFailure>(r_).message;                                       \
  } while (0)

#define EXPECT_VERIFIES(result)                                          \
  do {                                                                   \
    auto r_ = (result);                                                  \
    if (auto* f_ = std::get_if<TokenFailure>(&r_))                       \
      ADD_FAILURE() << TokenErrorName(f_->error) << ": " << f_->message; \
  } while (0)

TokenFailure FailureOf(const std::variant<VerifiedToken, TokenFailure>& r) {
  EXPECT_TRUE(std::holds_alternative<TokenFailure>(r));
  return std::holds_alternative<TokenFailure>(r) ? std::get<TokenFailure>(r) : TokenFailure{};
}

TEST_F(JwtTest, ValidTokensOfEachAlgorithm) {
  struct Case {
    EVP_PKEY* key;
    const char* alg;
    const char* kid;
  } cases[] = {
      {rsa_.get(), "RS256", "rsa-1"}, {ec_.get(), "ES256", "ec-1"}, {ed_.get(), "EdDSA", "ed-1"}};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.alg);
    auto r = Verify(Token(Header(c.alg, c.kid), Claims(), c.key, c.alg));
    ASSERT_TRUE(std::holds_alternative<VerifiedToken>(r)) << FailureOf(r).message;
    const VerifiedToken& t = std::get<VerifiedToken>(r);
    EXPECT_EQ(t.alg, c.alg);
    EXPECT_EQ(t.kid, c.kid);
    EXPECT_EQ(t.issuer, "https://idp.example");
    EXPECT_EQ(t.subject, "alice");
    EXPECT_EQ(t.jti, "j-1");
    EXPECT_EQ(t.audiences, std::vector<std::string>{"dbwarden"});
    EXPECT_EQ(t.issued_at, kNow - 10);
    EXPECT_EQ(t.not_before, kNow - 10);
    EXPECT_EQ(t.expires_at, kNow + 300);
  }
}

TEST_F(JwtTest, ExpiryAndNotBeforeWithSkewBothWays) {
  auto with = [&](std::string claims, int64_t now) {
    return Verify(Token(Header("ES256", "ec-1"), claims, ec_.get(), "ES256"), Rules(), now);
  };
  std::string exp =
      R"({"iss":"https://idp.example","aud":"dbwarden","exp":)" + std::to_string(kNow) + "}";
  EXPECT_VERIFIES(with(exp, kNow - 1));
  EXPECT_VERIFIES(with(exp, kNow + 59));                     // within skew after exp
  EXPECT_FAILS(with(exp, kNow + 60), TokenError::kExpired);  // now >= exp + skew
  EXPECT_FAILS(with(exp, kNow + 3600), TokenError::kExpired);
  std::string nbf = R"({"iss":"https://idp.example","aud":"dbwarden","exp":)" +
                    std::to_string(kNow + 9999) + R"(,"nbf":)" + std::to_string(kNow) + "}";
  EXPECT_VERIFIES(with(nbf, kNow - 60));  // within skew before nbf
  EXPECT_FAILS(with(nbf, kNow - 61), TokenError::kNotYetValid);
  EXPECT_FAILS(with(nbf, kNow - 3600), TokenError::kNotYetValid);
  // Real numbers round toward the stricter side.
  std::string real =
      R"({"iss":"https://idp.example","aud":"dbwarden","exp":)" + std::to_string(kNow) + ".9}";
  EXPECT_FAILS(with(real, kNow + 60), TokenError::kExpired);
  // Far-future values are clamped to the end of year 9999, so callers can add to them.
  for (const char* far : {"9223372036854775807", "18446744073709551615", "1e300", "253402300800"}) {
    auto r = with(R"({"iss":"https://idp.example","aud":"dbwarden","exp":)" + std::string(far) +
                      R"(,"nbf":)" + far + "}",
                  kNow);
    EXPECT_EQ(FailureOf(r).error, TokenError::kNotYetValid) << far;
    r = with(R"({"iss":"https://idp.example","aud":"dbwarden","exp":)" + std::string(far) + "}",
             kNow);
    ASSERT_TRUE(std::holds_alternative<VerifiedToken>(r)) << far;
    EXPECT_EQ(std::get<VerifiedToken>(r).expires_at, kMaxDate);
  }
  EXPECT_FAILS(with(R"({"iss":"https://idp.example","aud":"dbwarden","exp":-1e300})", kNow),
               TokenError::kExpired);
}

TEST_F(JwtTest, TimeMessagesAreUtc) {
  std::string payload = R"({"iss":"https://idp.example","aud":"dbwarden","exp":1700000000})";
  auto f = FailureOf(
      Verify(Token(Header("EdDSA", "ed-1"), payload, ed_.get(), "EdDSA"), Rules(), kNow + 60));
  EXPECT_EQ(f.message, "token expired at 2023-11-14T22:13:20Z");
  payload = R"({"iss":"https://idp.example","aud":"dbwarden","exp":1800000000,"nbf":1700000100})";
  f = FailureOf(Verify(Token(Header("EdDSA", "ed-1"), payload, ed_.get(), "EdDSA")));
  EXPECT_EQ(f.message, "token not valid before 2023-11-14T22:15:00Z");
}

TEST_F(JwtTest, ExpiryRequiredUnlessTheRulesSayOtherwise) {
  std::string token =
      Token(Header("EdDSA", "ed-1"), R"({"iss":"https://idp.example","aud":"dbwarden"})", ed_.get(),
            "EdDSA");
  auto f = FailureOf(Verify(token));
  EXPECT_EQ(f.error, TokenError::kExpired);
  EXPECT_EQ(f.message, "token has no expiry (exp)");
  TokenRules rules = Rules();
  rules.require_expiry = false;
  EXPECT_VERIFIES(Verify(token, rules));
}

TEST_F(JwtTest, DateClaimsMustBeNumbers) {
  for (const char* claim :
       {R"("exp":"1700000300")", R"("nbf":true)", R"("iat":null)", R"("exp":[1700000300])"}) {
    SCOPED_TRACE(claim);
    std::string payload =
        R"({"iss":"https://idp.example","aud":"dbwarden",)" + std::string(claim) + "}";
    EXPECT_FAILS(Verify(Token(Header("EdDSA", "ed-1"), payload, ed_.get(), "EdDSA")),
                 TokenError::kMalformed);
  }
}

TEST_F(JwtTest, Issuer) {
  auto with = [&](std::string payload) {
    return Verify(Token(Header("EdDSA", "ed-1"), payload, ed_.get(), "EdDSA"));
  };
  auto f = FailureOf(with(R"({"iss":"https://evil.example","aud":"dbwarden","exp":1800000000})"));
  EXPECT_EQ(f.error, TokenError::kIssuer);
  EXPECT_EQ(f.message, R"(issuer "https://evil.example" is not accepted)");
  EXPECT_FAILS(with(R"({"iss":"https://idp.example/","aud":"dbwarden","exp":1800000000})"),
               TokenError::kIssuer);
  EXPECT_FAILS(with(R"({"aud":"dbwarden","exp":1800000000})"), TokenError::kIssuer);
  EXPECT_FAILS(with(R"({"iss":["https://idp.example"],"aud":"dbwarden","exp":1800000000})"),
               TokenError::kMalformed);
  EXPECT_FAILS(with(R"({"iss":"https://idp.example","sub":7,"aud":"dbwarden","exp":1800000000})"),
               TokenError::kMalformed);
  TokenRules no_issuer = Rules();
  no_issuer.issuer.clear();
  EXPECT_FAILS(Verify(Token(Header("EdDSA", "ed-1"),
                            R"({"iss":"","aud":"dbwarden","exp":1800000000})", ed_.get(), "EdDSA"),
                      no_issuer),
               TokenError::kIssuer);
}

TEST_F(JwtTest, Audience) {
  auto with = [&](std::string aud, const TokenRules& rules = Rules()) {
    std::string payload = R"({"iss":"https://idp.example","exp":1800000000)" + aud + "}";
    return Verify(Token(Header("ES256", "ec-1"), payload, ec_.get(), "ES256"), rules);
  };
  EXPECT_FAILS(with(R"(,"aud":"someone-else")"), TokenError::kAudience);
  EXPECT_FAILS(with(R"(,"aud":"DBWARDEN")"), TokenError::kAudience);
  EXPECT_FAILS(with(""), TokenError::kAudience);
  EXPECT_FAILS(with(R"(,"aud":[])"), TokenError::kAudience);
  EXPECT_FAILS(with(R"(,"aud":["a","b"])"), TokenError::kAudience);
  EXPECT_FAILS(with(R"(,"aud":["a",1])"), TokenError::kMalformed);
  EXPECT_FAILS(with(R"(,"aud":{"dbwarden":true})"), TokenError::kMalformed);
  auto r = with(R"(,"aud":["a","dbwarden","b"])");
  ASSERT_TRUE(std::holds_alternative<VerifiedToken>(r)) << FailureOf(r).message;
  EXPECT_EQ(std::get<VerifiedToken>(r).audiences, (std::vector<std::string>{"a", "dbwarden", "b"}));
  // No audience configured accepts nothing: a token minted for any service would do otherwise.
  TokenRules none = Rules();
  none.audiences.clear();
  EXPECT_FAILS(with(R"(,"aud":"dbwarden")", none), TokenError::kAudience);
}

TEST_F(JwtTest, ChecksRunInOrder) {
  // Wrong issuer, wrong audience and expired: the issuer is reported.
  std::string payload = R"({"iss":"x","aud":"y","exp":1})";
  EXPECT_FAILS(Verify(Token(Header("EdDSA", "ed-1"), payload, ed_.get(), "EdDSA")),
               TokenError::kIssuer);
  // Bad signature beats every claim problem, even a payload that is not JSON.
  std::string token = Token(Header("EdDSA", "ed-1"), "not json", ec_.get(), "ES256");
  EXPECT_FAILS(Verify(token), TokenError::kSignature);
}

TEST_F(JwtTest, TamperedPayloadOrSignature) {
  std::string token = Token(Header("RS256", "rsa-1"), Claims(), rsa_.get(), "RS256");
  EXPECT_VERIFIES(Verify(token));
  size_t dot1 = token.find('.'), dot2 = token.rfind('.');
  std::string payload = FromB64(token.substr(dot1 + 1, dot2 - dot1 - 1));
  payload[payload.find("alice")] = 'A';
  std::string forged = token.substr(0, dot1 + 1) + B64(payload) + token.substr(dot2);
  EXPECT_FAILS(Verify(forged), TokenError::kSignature);
  for (const char* alg : {"RS256", "ES256", "EdDSA"}) {
    SCOPED_TRACE(alg);
    EVP_PKEY* k = std::string_view(alg) == "RS256"   ? rsa_.get()
                  : std::string_view(alg) == "ES256" ? ec_.get()
                                                     : ed_.get();
    std::string kid = std::string_view(alg) == "RS256"   ? "rsa-1"
                      : std::string_view(alg) == "ES256" ? "ec-1"
                                                         : "ed-1";
    std::string input = B64(Header(alg, kid)) + "." + B64(Claims());
    std::string sig = Signature(k, alg, input);
    EXPECT_VERIFIES(Verify(input + "." + B64(sig)));
    for (size_t i : {size_t{0}, sig.size() / 2, sig.size() - 1}) {
      std::string bad = sig;
      bad[i] ^= 0x01;
      EXPECT_FAILS(Verify(input + "." + B64(bad)), TokenError::kSignature);
    }
    EXPECT_FAILS(Verify(input + "." + B64(sig.substr(1))), TokenError::kSignature);
    EXPECT_FAILS(Verify(input + "." + B64(sig + '\0')), TokenError::kSignature);
    EXPECT_FAILS(Verify(input + "."), TokenError::kSignature);
  }
}

TEST_F(JwtTest, Es256SignatureInDerFormIsRefused) {
  std::string input = B64(Header("ES256", "ec-1")) + "." + B64(Claims());
  std::string der = RawSign(ec_.get(), EVP_sha256(), input);
  ASSERT_NE(der.size(), 64u);
  auto f = FailureOf(Verify(input + "." + B64(der)));
  EXPECT_EQ(f.error, TokenError::kSignature);
  // r or s of zero, and r||s of all ones, do not verify either.
  EXPECT_FAILS(Verify(input + "." + B64(std::string(64, '\0'))), TokenError::kSignature);
  EXPECT_FAILS(Verify(input + "." + B64(std::string(64, '\xff'))), TokenError::kSignature);
}

TEST_F(JwtTest, KeyChoice) {
  auto f = FailureOf(Verify(Token(Header("ES256", "nope"), Claims(), ec_.get(), "ES256")));
  EXPECT_EQ(f.error, TokenError::kUnknownKey);
  EXPECT_EQ(f.message, R"(no key with kid "nope" for ES256)");
  // A kid of another key type: key confusion is refused before any signature check.
  EXPECT_FAILS(Verify(Token(Header("ES256", "rsa-1"), Claims(), ec_.get(), "ES256")),
               TokenError::kUnknownKey);
  EXPECT_FAILS(Verify(Token(Header("EdDSA", "ec-1"), Claims(), ed_.get(), "EdDSA")),
               TokenError::kUnknownKey);
  // No kid: the one key of the alg's type (the set also holds an RSA and an Ed25519 key).
  auto r = Verify(Token(R"({"alg":"ES256"})", Claims(), ec_.get(), "ES256"));
  ASSERT_TRUE(std::holds_alternative<VerifiedToken>(r)) << FailureOf(r).message;
  EXPECT_EQ(std::get<VerifiedToken>(r).kid, "ec-1");
  // No kid and two keys of the type: refused, even though one of them would verify.
  auto two = KeySet::Parse(Jwks({EcJwk(ec_.get(), "a"), EcJwk(ec2_.get(), "b")}));
  ASSERT_TRUE(two.ok());
  auto f2 =
      VerifyToken(Token(R"({"alg":"ES256"})", Claims(), ec_.get(), "ES256"), **two, Rules(), kNow);
  EXPECT_EQ(FailureOf(f2).error, TokenError::kUnknownKey);
  EXPECT_EQ(FailureOf(f2).message, "no kid and 2 keys for ES256");
  // Keys without kid are found when the token has none, never by kid.
  auto anonymous = KeySet::Parse(Jwks({EdJwk(ed_.get(), "")}));
  ASSERT_TRUE(anonymous.ok());
  EXPECT_EQ(anonymous->get()->kids(), std::vector<std::string>{""});
  EXPECT_VERIFIES(VerifyToken(Token(R"({"alg":"EdDSA"})", Claims(), ed_.get(), "EdDSA"),
                              **anonymous, Rules(), kNow));
  EXPECT_FAILS(VerifyToken(Token(Header("EdDSA", "x"), Claims(), ed_.get(), "EdDSA"), **anonymous,
                           Rules(), kNow),
               TokenError::kUnknownKey);
  EXPECT_FAILS(Verify(Token(R"({"alg":"EdDSA","kid":""})", Claims(), ed_.get(), "EdDSA")),
               TokenError::kMalformed);
  EXPECT_FAILS(Verify(Token(R"({"alg":"EdDSA","kid":7})", Claims(), ed_.get(), "EdDSA")),
               TokenError::kMalformed);
}

TEST_F(JwtTest, AlgNoneInEveryCase) {
  std::string payload = B64(Claims());
  for (const char* alg : {"none", "None", "NONE", "nOnE"}) {
    SCOPED_TRACE(alg);
    std::string header = B64(R"({"alg":")" + std::string(alg) + R"("})");
    auto f = FailureOf(Verify(header + "." + payload + "."));
    EXPECT_EQ(f.error, TokenError::kAlgorithm);
    EXPECT_NE(f.message.find("algorithm \"" + std::string(alg) + "\" is not accepted"),
              std::string::npos)
        << f.message;
    EXPECT_FAILS(Verify(header + "." + payload + "." + B64("sig")), TokenError::kAlgorithm);
    // With the kid of a real key, too.
    std::string with_kid = B64(R"({"alg":")" + std::string(alg) + R"(","kid":"ec-1"})");
    EXPECT_FAILS(Verify(with_kid + "." + payload + "."), TokenError::kAlgorithm);
  }
  EXPECT_FAILS(Verify(B64(R"({"typ":"JWT"})") + "." + payload + "."), TokenError::kAlgorithm);
  EXPECT_FAILS(Verify(B64(R"({"alg":null})") + "." + payload + "."), TokenError::kAlgorithm);
  EXPECT_FAILS(Verify(B64(R"({"alg":["ES256"]})") + "." + payload + "."), TokenError::kAlgorithm);
  EXPECT_FAILS(Verify(B64(R"({"alg":""})") + "." + payload + "."), TokenError::kAlgorithm);
}

TEST_F(JwtTest, OtherAlgorithmsAreRefused) {
  for (const char* alg :
       {"HS256", "HS384", "HS512", "PS256", "RS384", "RS512", "ES384", "ES512", "ES256K", "Ed25519",
        "rs256", "RS256 ", R"(EdDSA\u0000)", R"(\u0045dDSA!)"}) {
    SCOPED_TRACE(alg);
    std::string input = B64(Header(alg, "rsa-1")) + "." + B64(Claims());
    EXPECT_FAILS(Verify(input + "." + B64(std::string(256, 'x'))), TokenError::kAlgorithm);
  }
}

TEST_F(JwtTest, Hs256WithThePublicKeyAsSecret) {
  BIO* bio = BIO_new(BIO_s_mem());
  ASSERT_EQ(PEM_write_bio_PUBKEY(bio, rsa_.get()), 1);
  char* pem_data = nullptr;
  long pem_len = BIO_get_mem_data(bio, &pem_data);
  std::string pem(pem_data, static_cast<size_t>(pem_len));
  BIO_free(bio);
  std::string n = BnBytes(rsa_.get(), OSSL_PKEY_PARAM_RSA_N);
  std::string jwk = RsaJwk(rsa_.get(), "rsa-1");
  for (const std::string& secret : {pem, n, jwk}) {
    for (const char* header : {R"({"alg":"HS256","kid":"rsa-1"})", R"({"alg":"HS256"})"}) {
      std::string input = B64(header) + "." + B64(Claims());
      auto f = FailureOf(Verify(input + "." + B64(Hmac(secret, input))));
      EXPECT_EQ(f.error, TokenError::kAlgorithm);
      EXPECT_EQ(f.message, R"(algorithm "HS256" is not accepted (RS256, ES256 and EdDSA are))");
    }
  }
}

TEST_F(JwtTest, KeyAlgMustFitTheToken) {
  // The JWK says RS384 (unsupported) or names another family's alg: it is never used.
  auto set = KeySet::Parse(Jwks({RsaJwk(rsa_.get(), "r384", R"(,"alg":"RS384")"),
                                 RsaJwk(rsa_.get(), "rsa-es", R"(,"alg":"ES256")"),
                                 EcJwk(ec_.get(), "ec-eddsa", R"(,"alg":"EdDSA")"),
                                 EcJwk(ec_.get(), "ec-ok", R"(,"alg":"ES256")")}));
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  EXPECT_EQ(set->get()->size(), 1u);
  EXPECT_EQ(set->get()->skipped(), 3u);
  for (const char* kid : {"r384", "rsa-es"}) {
    EXPECT_FAILS(VerifyToken(Token(Header("RS256", kid), Claims(), rsa_.get(), "RS256"), **set,
                             Rules(), kNow),
                 TokenError::kUnknownKey);
  }
  EXPECT_FAILS(VerifyToken(Token(Header("ES256", "ec-eddsa"), Claims(), ec_.get(), "ES256"), **set,
                           Rules(), kNow),
               TokenError::kUnknownKey);
  EXPECT_VERIFIES(VerifyToken(Token(Header("ES256", "ec-ok"), Claims(), ec_.get(), "ES256"), **set,
                              Rules(), kNow));
}

TEST_F(JwtTest, EmbeddedKeysInTheHeaderAreIgnored) {
  // An attacker's own key in "jwk" (or a "jku"/"x5u" pointing at one) must not be trusted.
  Pkey mine(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  std::string header = R"({"alg":"ES256","kid":"ec-1","jwk":)" + EcJwk(mine.get(), "ec-1") +
                       R"(,"jku":"https://evil.example/jwks"})";
  EXPECT_FAILS(Verify(Token(header, Claims(), mine.get(), "ES256")), TokenError::kSignature);
}

TEST_F(JwtTest, StrictBase64Url) {
  std::string token = Token(Header("EdDSA", "ed-1"), Claims(), ed_.get(), "EdDSA");
  EXPECT_VERIFIES(Verify(token));
  size_t dot1 = token.find('.'), dot2 = token.rfind('.');
  std::string h = token.substr(0, dot1), p = token.substr(dot1 + 1, dot2 - dot1 - 1),
              s = token.substr(dot2 + 1);
  auto join = [](std::string a, std::string b, std::string c) { return a + "." + b + "." + c; };
  // Ed25519 signatures are 64 bytes: 86 characters, one padding '=' in standard base64.
  EXPECT_FAILS(Verify(join(h, p, s + "=")), TokenError::kMalformed);
  EXPECT_FAILS(Verify(join(h, p, s + "==")), TokenError::kMalformed);
  EXPECT_FAILS(Verify(join(h + " ", p, s)), TokenError::kMalformed);
  EXPECT_FAILS(Verify(join(h, p + "\n", s)), TokenError::kMalformed);
  EXPECT_FAILS(Verify(" " + token), TokenError::kMalformed);
  EXPECT_FAILS(Verify(token + "\r\n"), TokenError::kMalformed);
  std::string plus = s;
  std::replace(plus.begin(), plus.end(), '-', '+');
  std::replace(plus.begin(), plus.end(), '_', '/');
  if (plus != s) EXPECT_FAILS(Verify(join(h, p, plus)), TokenError::kMalformed);
  // Non-canonical: the unused low bits of the last character set. 86 characters leave 4 bits.
  std::string loose = s;
  static const std::string kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  loose.back() = kAlphabet[kAlphabet.find(loose.back()) | 1];
  ASSERT_NE(loose, s);
  EXPECT_FAILS(Verify(join(h, p, loose)), TokenError::kMalformed);
  // A length that no byte string has (86 + 3 characters).
  EXPECT_FAILS(Verify(join(h, p, s + "AAA")), TokenError::kMalformed);
}

TEST_F(JwtTest, SegmentsAndSize) {
  std::string token = Token(Header("EdDSA", "ed-1"), Claims(), ed_.get(), "EdDSA");
  size_t dot1 = token.find('.'), dot2 = token.rfind('.');
  EXPECT_FAILS(Verify(token.substr(0, dot2)), TokenError::kMalformed);
  EXPECT_FAILS(Verify(token + ".e30"), TokenError::kMalformed);
  EXPECT_FAILS(Verify(token + "."), TokenError::kMalformed);
  EXPECT_FAILS(Verify(token.substr(dot1)), TokenError::kMalformed);  // no header
  EXPECT_FAILS(Verify(token.substr(0, dot1 + 1) + token.substr(dot2)), TokenError::kMalformed);
  EXPECT_FAILS(Verify(""), TokenError::kMalformed);
  EXPECT_FAILS(Verify(".."), TokenError::kMalformed);
  EXPECT_FAILS(Verify("abc"), TokenError::kMalformed);
  // Oversized, though otherwise valid.
  std::string big = Claims(R"(,"pad":")" + std::string(13000, 'x') + "\"");
  std::string big_token = Token(Header("EdDSA", "ed-1"), big, ed_.get(), "EdDSA");
  ASSERT_GT(big_token.size(), 16384u);
  auto f = FailureOf(Verify(big_token));
  EXPECT_EQ(f.error, TokenError::kMalformed);
  EXPECT_EQ(f.message, "token is longer than 16384 bytes");
  std::string fits = Claims(R"(,"pad":")" + std::string(11000, 'x') + "\"");
  EXPECT_VERIFIES(Verify(Token(Header("EdDSA", "ed-1"), fits, ed_.get(), "EdDSA")));
}

TEST_F(JwtTest, HeaderAndPayloadMustBeStrictJsonObjects) {
  auto with = [&](std::string header, std::string payload) {
    return Verify(Token(header, payload, ed_.get(), "EdDSA"));
  };
  const std::string h = Header("EdDSA", "ed-1");
  // Duplicate members: one reader takes the first, another the last.
  EXPECT_FAILS(with(R"({"alg":"EdDSA","kid":"ed-1","alg":"none"})", Claims()),
               TokenError::kMalformed);
  EXPECT_FAILS(with(R"({"alg":"EdDSA","kid":"ed-1","al\u0067":"none"})", Claims()),
               TokenError::kMalformed);
  EXPECT_FAILS(with(h, Claims(R"(,"sub":"root")")), TokenError::kMalformed);
  EXPECT_FAILS(with(h, Claims(R"(,"iss":"https://idp.example")")), TokenError::kMalformed);
  EXPECT_FAILS(with(h, Claims(R"(,"x":{"a":1,"a":2})")), TokenError::kMalformed);
  // Extensions this verifier does not implement.
  EXPECT_FAILS(with(R"({"alg":"EdDSA","kid":"ed-1","crit":["exp"],"exp":1})", Claims()),
               TokenError::kMalformed);
  EXPECT_FAILS(with(R"({"alg":"EdDSA","kid":"ed-1","crit":[]})", Claims()), TokenError::kMalformed);
  EXPECT_FAILS(with(R"({"alg":"EdDSA","kid":"ed-1","b64":false})", Claims()),
               TokenError::kMalformed);
  EXPECT_FAILS(with(R"({"alg":"EdDSA","kid":"ed-1","b64":"false"})", Claims()),
               TokenError::kMalformed);
  // Not objects, not JSON, trailing bytes, bad UTF-8.
  EXPECT_FAILS(with(R"(["EdDSA"])", Claims()), TokenError::kMalformed);
  EXPECT_FAILS(with(h, R"(["iss"])"), TokenError::kMalformed);
  EXPECT_FAILS(with(h, "\"x\""), TokenError::kMalformed);
  EXPECT_FAILS(with(h, Claims() + "{}"), TokenError::kMalformed);
  EXPECT_FAILS(with(h + "x", Claims()), TokenError::kMalformed);
  EXPECT_FAILS(with(h, Claims(",\"name\":\"\xff\"")), TokenError::kMalformed);
  EXPECT_FAILS(with(h, Claims(R"(,"name":"\ud800")")), TokenError::kMalformed);
  // Deep nesting is refused, not recursed into.
  EXPECT_FAILS(with(h, Claims(R"(,"deep":)" + std::string(100, '[') + std::string(100, ']'))),
               TokenError::kMalformed);
  // Whitespace inside the JSON is fine.
  EXPECT_VERIFIES(with(" {\"alg\" : \"EdDSA\" ,\n\"kid\":\"ed-1\"} ", " " + Claims() + "\n"));
}

TEST_F(JwtTest, ClaimsMap) {
  std::string payload = Claims(
      R"(,"groups":["dba","ops"],"level":3,"ratio":1.5,"big":18446744073709551615,"neg":-2,)"
      R"("admin":true,"off":false,"email":"a@example.com","nested":{"a":1},"mixed":[1,"a",true],)"
      R"("objs":[{"a":1}],"arrs":[[1]],"nul":null,"with_null":[1,null],"none":[])");
  auto r = Verify(Token(Header("ES256", "ec-1"), payload, ec_.get(), "ES256"));
  ASSERT_TRUE(std::holds_alternative<VerifiedToken>(r)) << FailureOf(r).message;
  const auto& c = std::get<VerifiedToken>(r).claims;
  using V = std::vector<std::string>;
  EXPECT_EQ(c.at("groups"), (V{"dba", "ops"}));
  EXPECT_EQ(c.at("level"), V{"3"});
  EXPECT_EQ(c.at("ratio"), V{"1.5"});
  EXPECT_EQ(c.at("big"), V{"18446744073709551615"});
  EXPECT_EQ(c.at("neg"), V{"-2"});
  EXPECT_EQ(c.at("admin"), V{"true"});
  EXPECT_EQ(c.at("off"), V{"false"});
  EXPECT_EQ(c.at("email"), V{"a@example.com"});
  EXPECT_EQ(c.at("mixed"), (V{"1", "a", "true"}));
  EXPECT_EQ(c.at("none"), V{});
  EXPECT_EQ(c.at("sub"), V{"alice"});
  EXPECT_EQ(c.at("aud"), V{"dbwarden"});
  EXPECT_EQ(c.at("exp"), V{std::to_string(kNow + 300)});
  for (const char* skipped : {"nested", "objs", "arrs", "nul", "with_null"})
    EXPECT_EQ(c.count(skipped), 0u) << skipped;
  EXPECT_TRUE(c.find(std::string_view("groups")) != c.end());  // heterogeneous lookup
}

TEST_F(JwtTest, MessagesQuoteSafely) {
  std::string header = R"({"alg":"ES256","kid":"k\n\u0001\"\\)" + std::string(100, 'z') + "\"}";
  std::string token = Token(header, Claims(), ec_.get(), "ES256");
  auto f = FailureOf(Verify(token));
  EXPECT_EQ(f.error, TokenError::kUnknownKey);
  // 64 bytes of the kid (5 escaped, then 59 of the 'z's), then "...".
  EXPECT_EQ(f.message,
            R"(no key with kid "k\x0a\x01\"\\)" + std::string(59, 'z') + R"("... for ES256)");
  EXPECT_EQ(f.message.find('\n'), std::string::npos);
  EXPECT_EQ(f.message.find(std::string(60, 'z')), std::string::npos);
  // No message ever holds the token, or any segment of it.
  std::string good = Token(Header("EdDSA", "ed-1"), Claims(), ed_.get(), "EdDSA");
  std::string sig = good.substr(good.rfind('.') + 1);
  for (const std::string& t :
       {good.substr(0, good.rfind('.') + 1) + sig.substr(0, 85) + "B", good + ".x", good}) {
    auto r = Verify(t, Rules(), kNow + 100000);
    ASSERT_TRUE(std::holds_alternative<TokenFailure>(r));
    const std::string& m = std::get<TokenFailure>(r).message;
    EXPECT_EQ(m.find(sig.substr(0, 16)), std::string::npos) << m;
    EXPECT_EQ(m.find(good.substr(0, 16)), std::string::npos) << m;
  }
}

TEST_F(JwtTest, ErrorNames) {
  EXPECT_EQ(TokenErrorName(TokenError::kMalformed), "malformed");
  EXPECT_EQ(TokenErrorName(TokenError::kAlgorithm), "algorithm");
  EXPECT_EQ(TokenErrorName(TokenError::kUnknownKey), "unknown_key");
  EXPECT_EQ(TokenErrorName(TokenError::kSignature), "bad_signature");
  EXPECT_EQ(TokenErrorName(TokenError::kIssuer), "issuer");
  EXPECT_EQ(TokenErrorName(TokenError::kAudience), "audience");
  EXPECT_EQ(TokenErrorName(TokenError::kExpired), "expired");
  EXPECT_EQ(TokenErrorName(TokenError::kNotYetValid), "not_yet_valid");
}

TEST_F(JwtTest, UnverifiedIssuer) {
  std::string token = Token(Header("EdDSA", "ed-1"), Claims(), ed_.get(), "EdDSA");
  EXPECT_EQ(UnverifiedIssuer(token), "https://idp.example");
  // Read before any signature check: a forged token still names its issuer.
  EXPECT_EQ(UnverifiedIssuer(B64(R"({"alg":"none"})") + "." + B64(R"({"iss":"x"})") + "."), "x");
  EXPECT_EQ(UnverifiedIssuer("garbage"), std::nullopt);
  EXPECT_EQ(UnverifiedIssuer("a.b.c.d"), std::nullopt);
  EXPECT_EQ(UnverifiedIssuer("e30." + B64(R"({"iss":1})") + ".x"), std::nullopt);
  EXPECT_EQ(UnverifiedIssuer("e30." + B64(R"({"iss":"a","iss":"b"})") + ".x"), std::nullopt);
  EXPECT_EQ(UnverifiedIssuer("e30." + B64(R"({"iss":"a"})") + "=.x"), std::nullopt);
}

// RFC 8037 appendix A.4: its payload is not JSON, so the signature verifies and the token is
// then malformed; with one bit changed it is a bad signature.
TEST_F(JwtTest, Rfc8037Ed25519Vector) {
  auto set = KeySet::Parse(
      R"({"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]})");
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  const std::string token =
      "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-"
      "09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";
  auto f = FailureOf(VerifyToken(token, **set, Rules(), kNow));
  EXPECT_EQ(f.error, TokenError::kMalformed);
  EXPECT_EQ(f.message, "token payload is not a JSON object");
  std::string flipped = token;
  flipped[token.rfind('.') + 1] = 'i';
  EXPECT_FAILS(VerifyToken(flipped, **set, Rules(), kNow), TokenError::kSignature);
}

// ---- JWKS ----

TEST_F(JwtTest, JwksSkipsWhatItCannotUse) {
  Pkey rsa1024(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{1024}));
  Pkey p384(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-384"));
  ASSERT_TRUE(rsa1024 && p384);
  std::string p384_jwk = R"({"kty":"EC","crv":"P-384","kid":"p384","x":")" +
                         B64(BnBytes(p384.get(), OSSL_PKEY_PARAM_EC_PUB_X, 48)) + R"(","y":")" +
                         B64(BnBytes(p384.get(), OSSL_PKEY_PARAM_EC_PUB_Y, 48)) + "\"}";
  auto set = KeySet::Parse(Jwks({
      R"({"kty":"oct","kid":"hmac","k":"c2VjcmV0"})",
      RsaJwk(rsa1024.get(), "rsa-1024"),
      RsaJwk(rsa_.get(), "rsa-enc", R"(,"use":"enc")"),
      RsaJwk(rsa_.get(), "rsa-ps", R"(,"alg":"PS256")"),
      RsaJwk(rsa_.get(), "rsa-ops", R"(,"key_ops":["encrypt","wrapKey"])"),
      p384_jwk,
      R"({"kty":"OKP","crv":"X25519","kid":"x25519","x":"AAAA"})",
      R"({"kty":"OKP","crv":"Ed448","kid":"ed448","x":"AAAA"})",
      R"({"kid":"no-kty"})",
      R"({"kty":"RSA-HSM","kid":"odd"})",
      EcJwk(ec_.get(), "ec-1", R"(,"use":"sig","key_ops":["verify"])"),
      RsaJwk(rsa_.get(), "rsa-1"),
      EdJwk(ed_.get(), "ed-1", R"(,"alg":"EdDSA","d":"ignored-private-part-is-not-read")"),
  }));
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  EXPECT_EQ(set->get()->size(), 3u);
  EXPECT_EQ(set->get()->skipped(), 10u);
  EXPECT_EQ(set->get()->kids(), (std::vector<std::string>{"ec-1", "rsa-1", "ed-1"}));
  // The 1024-bit key is not used even when named.
  EXPECT_FAILS(VerifyToken(Token(Header("RS256", "rsa-1024"), Claims(), rsa1024.get(), "RS256"),
                           **set, Rules(), kNow),
               TokenError::kUnknownKey);
}

TEST_F(JwtTest, JwksEmptyUsableSetIsAllowed) {
  for (const char* json : {R"({"keys":[]})", R"({"keys":[{"kty":"oct","k":"AA"}],"other":1})"}) {
    auto set = KeySet::Parse(json);
    ASSERT_TRUE(set.ok()) << json;
    EXPECT_EQ(set->get()->size(), 0u);
    EXPECT_FAILS(VerifyToken(Token(Header("EdDSA", "ed-1"), Claims(), ed_.get(), "EdDSA"), **set,
                             Rules(), kNow),
                 TokenError::kUnknownKey);
  }
}

TEST_F(JwtTest, JwksErrors) {
  auto error_of = [](std::string json) {
    auto set = KeySet::Parse(json);
    EXPECT_FALSE(set.ok()) << json;
    return set.ok() ? std::string() : set.status().message();
  };
  EXPECT_EQ(error_of("not json"), "JWKS is not a JSON object");
  EXPECT_EQ(error_of("[]"), "JWKS is not a JSON object");
  EXPECT_EQ(error_of("{}"), R"(JWKS has no "keys" array)");
  EXPECT_EQ(error_of(R"({"keys":{}})"), R"(JWKS has no "keys" array)");
  EXPECT_EQ(error_of(R"({"keys":[],"keys":[]})"), "JWKS repeats a member name");
  std::string ec = EcJwk(ec_.get(), "ec-1");
  EXPECT_EQ(error_of(Jwks({ec, "7"})), "JWKS key 1: not a JSON object");
  EXPECT_EQ(error_of(Jwks({ec, R"({"kty":"RSA","kid":"r","e":"AQAB"})"})), R"(JWKS key 1: no "n")");
  EXPECT_EQ(error_of(Jwks({ec, R"({"kty":"RSA","kid":"r","n":"a+b/","e":"AQAB"})"})),
            R"(JWKS key 1: "n" is not base64url)");
  EXPECT_EQ(error_of(Jwks({ec, ec, ec})), R"(JWKS key 1: kid "ec-1" is used by an earlier key)");
  EXPECT_EQ(error_of(Jwks({R"({"kty":"EC","kid":"e"})"})), R"(JWKS key 0: no "crv")");
  EXPECT_EQ(error_of(Jwks({R"({"kty":"OKP","crv":"Ed25519","x":"AAAA"})"})),
            R"(JWKS key 0: "x" must be 32 bytes)");
  EXPECT_EQ(error_of(Jwks({R"({"kty":"OKP","crv":"Ed25519","kid":5,"x":"AAAA"})"})),
            R"(JWKS key 0: "kid" is not a string)");
  EXPECT_EQ(error_of(Jwks({RsaJwk(rsa_.get(), "r", R"(,"use":1)")})),
            R"(JWKS key 0: "use" is not a string)");
  EXPECT_EQ(error_of(Jwks({RsaJwk(rsa_.get(), "r", R"(,"key_ops":"verify")")})),
            R"(JWKS key 0: "key_ops" is not an array)");
  // A point that is not on P-256: x and y of the real key with y changed.
  std::string x = B64(BnBytes(ec_.get(), OSSL_PKEY_PARAM_EC_PUB_X, 32));
  std::string y = BnBytes(ec_.get(), OSSL_PKEY_PARAM_EC_PUB_Y, 32);
  y[31] ^= 1;
  EXPECT_EQ(
      error_of(Jwks({R"({"kty":"EC","crv":"P-256","x":")" + x + R"(","y":")" + B64(y) + "\"}"})),
      "JWKS key 0: (x, y) is not a valid P-256 public key");
  // Coordinates of the wrong size (a compressed-looking 33-byte x, a short y).
  EXPECT_EQ(error_of(Jwks({R"({"kty":"EC","crv":"P-256","x":")" + B64(std::string(33, '\1')) +
                           R"(","y":")" + B64(y) + "\"}"})),
            R"(JWKS key 0: "x" and "y" must be 32 bytes)");
  // RSA modulus even, exponent even or 1.
  std::string n = BnBytes(rsa_.get(), OSSL_PKEY_PARAM_RSA_N);
  std::string even = n;
  even.back() &= '\xfe';
  EXPECT_EQ(error_of(Jwks({R"({"kty":"RSA","n":")" + B64(even) + R"(","e":"AQAB"})"})),
            R"(JWKS key 0: "n" is not an odd modulus)");
  EXPECT_EQ(error_of(Jwks({R"({"kty":"RSA","n":")" + B64(n) + R"(","e":"AQ"})"})),
            R"(JWKS key 0: "e" is not an odd exponent above 1)");
  EXPECT_EQ(error_of(Jwks({R"({"kty":"RSA","n":")" + B64(n) + R"(","e":"Ag"})"})),
            R"(JWKS key 0: "e" is not an odd exponent above 1)");
}

TEST_F(JwtTest, JwksDuplicateKidOnlyAmongUsableKeys) {
  // An "enc" key may share its kid with the signing key (it is skipped first).
  auto set =
      KeySet::Parse(Jwks({RsaJwk(rsa_.get(), "k", R"(,"use":"enc")"), EcJwk(ec_.get(), "k")}));
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  EXPECT_EQ(set->get()->kids(), std::vector<std::string>{"k"});
  // Two usable keys of different types with one kid are still ambiguous.
  EXPECT_FALSE(KeySet::Parse(Jwks({RsaJwk(rsa_.get(), "k"), EcJwk(ec_.get(), "k")})).ok());
}

TEST_F(JwtTest, JwksRsaWithLeadingZeroIsAccepted) {
  std::string n = BnBytes(rsa_.get(), OSSL_PKEY_PARAM_RSA_N);
  std::string jwk =
      R"({"kty":"RSA","kid":"z","n":")" + B64(std::string(1, '\0') + n) + R"(","e":"AAEAAQ"})";
  auto set = KeySet::Parse(Jwks({jwk}));
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  EXPECT_VERIFIES(VerifyToken(Token(Header("RS256", "z"), Claims(), rsa_.get(), "RS256"), **set,
                              Rules(), kNow));
}

}  // namespace
}  // namespace dbw::token
