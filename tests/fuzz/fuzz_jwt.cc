// libFuzzer target: bearer tokens and JWKS documents. The first byte picks the mode ('0', '1',
// '2' in the seeds): 0 parses the rest as a JWKS; 1 verifies the rest as a token against a fixed
// JWKS; 2 signs the rest (header JSON '\n' payload JSON, or a payload alone under a fixed header)
// with the Ed25519 key below and verifies it, so the claim checks behind the signature are
// fuzzed too. Nothing may crash; a verified token must satisfy the rules; a failure's message
// must be printable ASCII and must not hold the token.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <variant>

#include <openssl/evp.h>

#include "tests/token/b64url.h"
#include "userspace/token/jwt.h"

namespace {

using dbw::token::KeySet;
using dbw::token::TokenFailure;
using dbw::token::TokenRules;
using dbw::token::VerifiedToken;

constexpr int64_t kNow = 1'700'000'000;

// Public keys generated once for this target (openssl genpkey): an RSA 2048, a P-256 and an
// Ed25519 key; the Ed25519 one's private half is kEdSeed.
constexpr std::string_view kJwks = R"({"keys":[
 {"kty":"RSA","kid":"rsa","use":"sig","alg":"RS256","e":"AQAB","n":"4fz84rD7Yy8pQgSR_GNrRVr8kyTWSb8UxxZXfyHy9F-8cleWhoa60AFv9iwcp0szpzejkTtlbksR0uAw4Lh4cJlR1ilnZjgn3FLszs99z7TKm8cYr5dxkJ2bzZk6D-6ScgYgnSLxbA0oLCYruWO0REPVwqlZLCIKID6g1-pHsb-TMEdsTdDub4ljloCpfHAHlInVNgWKMlC9OwuKJ6gh6zrzD6OrvQH2RCna97EVTFVPYqJoXUvFZ-p-eo9jAvC72e8vj3YOKCC2d_dWC4zGMeKeEub9OcM_Wa1KkwkrUTbJe2w2umfSJHHJYdv1NQ7C16vbNLYwgcXiggttpME2Tw"},
 {"kty":"EC","crv":"P-256","kid":"ec","x":"KHHicUF-mJofPG20MgtcWKvj92qIWu7VnO0pPbgp8qU","y":"AFgIzEEpU4CRVUq-OZMKf09h7kCHEaxw6EDwXCh_1qc"},
 {"kty":"OKP","crv":"Ed25519","kid":"ed","x":"qaeCc0MdbLuchzg-awjr8Rh_itdmfvppX4t44cIaR3M"},
 {"kty":"oct","kid":"hmac","k":"c2VjcmV0"}
]})";

constexpr unsigned char kEdSeed[32] = {
    0xd4, 0xa4, 0x36, 0xd6, 0xbc, 0x91, 0x7d, 0x42, 0x5f, 0xaa, 0xc9, 0xa3, 0x31, 0x38, 0x37, 0x1d,
    0x27, 0xf0, 0x5d, 0xed, 0xbe, 0x82, 0x20, 0x2b, 0xf0, 0x19, 0x8e, 0x06, 0x0f, 0xb8, 0xec, 0xf3};

const KeySet& Keys() {
  static const std::shared_ptr<const KeySet> keys = [] {
    auto parsed = KeySet::Parse(kJwks);
    if (!parsed.ok() || (*parsed)->size() != 3) __builtin_trap();
    return *parsed;
  }();
  return *keys;
}

EVP_PKEY* SigningKey() {
  static EVP_PKEY* key =
      EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, kEdSeed, sizeof(kEdSeed));
  return key;
}

const TokenRules& Rules() {
  static const TokenRules rules = [] {
    TokenRules r;
    r.issuer = "https://idp.example";
    r.audiences = {"dbwarden", "other"};
    return r;
  }();
  return rules;
}

using dbw::token::testing::B64;

std::string SignEd25519(std::string_view input) {
  unsigned char sig[64];
  size_t len = sizeof(sig);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  bool ok = ctx && EVP_DigestSignInit(ctx, nullptr, nullptr, nullptr, SigningKey()) == 1 &&
            EVP_DigestSign(ctx, sig, &len, reinterpret_cast<const unsigned char*>(input.data()),
                           input.size()) == 1;
  EVP_MD_CTX_free(ctx);
  if (!ok) __builtin_trap();
  return std::string(reinterpret_cast<char*>(sig), len);
}

void CheckResult(std::string_view token, const std::variant<VerifiedToken, TokenFailure>& r) {
  if (const auto* f = std::get_if<TokenFailure>(&r)) {
    if (f->message.empty()) __builtin_trap();
    for (unsigned char c : f->message)
      if (c < 0x20 || c >= 0x7f) __builtin_trap();
    // Only for token-shaped input: fixed message text can contain a short dotless input.
    bool token_shaped = std::count(token.begin(), token.end(), '.') == 2 && token.size() >= 24;
    if (token_shaped && f->message.find(token) != std::string::npos) __builtin_trap();
    return;
  }
  const VerifiedToken& t = std::get<VerifiedToken>(r);
  const TokenRules& rules = Rules();
  if (t.issuer != rules.issuer || t.expires_at <= kNow - rules.clock_skew_seconds) __builtin_trap();
  bool aud = false;
  for (const std::string& a : t.audiences) aud = aud || a == "dbwarden" || a == "other";
  if (!aud || (t.alg != "RS256" && t.alg != "ES256" && t.alg != "EdDSA")) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 3) {
    case 0: {
      auto set = KeySet::Parse(rest);
      if (set.ok() && (*set)->kids().size() != (*set)->size()) __builtin_trap();
      break;
    }
    case 1: {
      // The issuer comes out of the payload, so it is shorter than the token.
      auto issuer = dbw::token::UnverifiedIssuer(rest);
      if (issuer && issuer->size() >= rest.size()) __builtin_trap();
      CheckResult(rest, dbw::token::VerifyToken(rest, Keys(), Rules(), kNow));
      break;
    }
    case 2: {
      size_t nl = rest.find('\n');
      std::string header = nl == std::string_view::npos ? R"({"alg":"EdDSA","kid":"ed"})"
                                                        : std::string(rest.substr(0, nl));
      std::string_view payload = nl == std::string_view::npos ? rest : rest.substr(nl + 1);
      std::string input = B64(header) + "." + B64(payload);
      std::string token = input + "." + B64(SignEd25519(input));
      CheckResult(token, dbw::token::VerifyToken(token, Keys(), Rules(), kNow));
      break;
    }
  }
  return 0;
}
