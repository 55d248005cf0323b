// Shared by jwt.cc and jwks.cc: key families, OpenSSL handles, strict base64url and JSON
// helpers, and the key a KeySet holds. Not part of the module's interface.
#pragma once

#include <simdjson.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include "userspace/token/jwt.h"

namespace dbw::token {
namespace internal {

// The three signature schemes, each bound to one key type: a key is never used for another.
enum class Family { kRsa, kEcP256, kEd25519 };

constexpr size_t kMaxJsonDepth = 32;
constexpr size_t kMaxQuoted = 64;

template <typename T, void (*F)(T*)>
struct Deleter {
  void operator()(T* p) const { F(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, Deleter<EVP_PKEY_CTX, EVP_PKEY_CTX_free>>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, Deleter<EVP_MD_CTX, EVP_MD_CTX_free>>;
using BnPtr = std::unique_ptr<BIGNUM, Deleter<BIGNUM, BN_free>>;
using ParamBldPtr = std::unique_ptr<OSSL_PARAM_BLD, Deleter<OSSL_PARAM_BLD, OSSL_PARAM_BLD_free>>;
using ParamPtr = std::unique_ptr<OSSL_PARAM, Deleter<OSSL_PARAM, OSSL_PARAM_free>>;
using EcdsaSigPtr = std::unique_ptr<ECDSA_SIG, Deleter<ECDSA_SIG, ECDSA_SIG_free>>;

// Drops the OpenSSL errors raised in a scope: a failed check here must not leave entries that a
// TLS call on the same thread would later read as its own.
class ErrorQueueScope {
 public:
  ErrorQueueScope() { ERR_set_mark(); }
  ~ErrorQueueScope() { ERR_pop_to_mark(); }
};

inline const unsigned char* Bytes(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

// RFC 7515 base64url: no padding, no whitespace, and the unused low bits of the last character
// zero, so each byte string has exactly one encoding.
std::optional<std::string> Base64UrlDecode(std::string_view in);

// A value from the token or JWKS as it may appear in a message: quoted, at most 64 bytes of it,
// every byte outside printable ASCII (and the quote and backslash) escaped.
std::string Quote(std::string_view v);

// Whether any object in the tree repeats a member name: two readers of the same JSON could
// otherwise disagree on which value counts.
bool HasDuplicateMembers(simdjson::dom::element e);

enum class Member { kAbsent, kString, kWrongType };
Member StringMember(simdjson::dom::object obj, std::string_view name, std::string_view* out);

}  // namespace internal

struct KeySet::Key {
  std::string kid;  // "" when the JWK has none
  internal::Family family;
  std::string alg;  // the JWK's "alg", "" when absent
  internal::PkeyPtr pkey;
};

}  // namespace dbw::token
