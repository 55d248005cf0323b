// JWT (JWS compact) verification against a JWKS: RS256, ES256 and EdDSA only, strict parsing.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "userspace/common/status.h"

namespace dbw::token {

enum class TokenError {
  kMalformed,
  kAlgorithm,
  kUnknownKey,
  kSignature,
  kIssuer,
  kAudience,
  kExpired,
  kNotYetValid,
};

// "malformed", "algorithm", "unknown_key", "bad_signature", "issuer", "audience", "expired",
// "not_yet_valid".
std::string_view TokenErrorName(TokenError e);

struct TokenFailure {
  TokenError error;
  // For the client and the audit log: never contains the token or a signature; values quoted
  // from the token (kid, alg, iss, aud) are truncated to 64 bytes and non-printable bytes escaped.
  std::string message;
};

struct VerifiedToken {
  std::string alg, kid;
  std::string issuer, subject, jti;
  std::vector<std::string> audiences;
  // Unix seconds, 0 when absent; clamped to 0 .. 253402300799 (9999-12-31T23:59:59Z), so adding
  // a skew cannot overflow.
  int64_t issued_at = 0, not_before = 0, expires_at = 0;
  // Every top-level claim whose value is a string, number, boolean, or an array of those, as
  // strings (integers as their JSON text, other numbers in shortest round-trip form, booleans
  // "true"/"false"); a scalar gives a one-element vector. Nested objects, null, and arrays
  // holding anything else are skipped.
  std::map<std::string, std::vector<std::string>, std::less<>> claims;
};

struct TokenRules;

// An immutable parsed JWKS ({"keys":[...]}) holding OpenSSL public keys.
class KeySet {
 public:
  // Keys with unsupported kty/crv, "use" other than "sig", "key_ops" without "verify", RSA under
  // 2048 or over 8192 bits, or "alg" outside the supported set for their type are skipped
  // (counted in skipped()). A key that claims a supported type but is malformed (bad base64url,
  // bad point, missing member) is an error naming its index and reason. Not JSON / no "keys"
  // array → error. Duplicate kid among usable keys → error. An empty usable set is allowed.
  static StatusOr<std::shared_ptr<const KeySet>> Parse(std::string_view jwks_json);

  KeySet(const KeySet&) = delete;
  KeySet& operator=(const KeySet&) = delete;
  ~KeySet();

  size_t size() const;
  size_t skipped() const { return skipped_; }
  std::vector<std::string> kids() const;  // in file order; "" for keys without kid

 private:
  struct Key;  // kid, family, alg and the OpenSSL key; defined in jwt.cc
  KeySet();

  std::vector<Key> keys_;  // usable keys, in file order
  size_t skipped_ = 0;

  friend std::variant<VerifiedToken, TokenFailure> VerifyToken(std::string_view token,
                                                               const KeySet& keys,
                                                               const TokenRules& rules,
                                                               int64_t now_unix);
};

struct TokenRules {
  std::string issuer;                  // "iss" must equal this exactly (required)
  std::vector<std::string> audiences;  // "aud" (string or array of strings) must contain one;
                                       // an empty list accepts no token (fails closed)
  int64_t clock_skew_seconds = 60;     // negative counts as 0
  bool require_expiry = true;          // "exp" required
};

// Reads the unverified payload's "iss" to choose which issuer's rules apply; nullopt if
// unreadable. The result is a hint only: VerifyToken checks "iss" again after the signature.
std::optional<std::string> UnverifiedIssuer(std::string_view token);

// Checks, in order: structure (size, segments, base64url, header JSON) → alg → key → signature
// → payload JSON and claim types → iss → aud → exp/nbf. The payload is parsed only once its
// signature is good.
std::variant<VerifiedToken, TokenFailure> VerifyToken(std::string_view token, const KeySet& keys,
                                                      const TokenRules& rules, int64_t now_unix);

}  // namespace dbw::token
