// JWKS documents into OpenSSL 3 public keys (RSA, EC P-256, Ed25519), and the strict
// base64url and JSON helpers the token checks share.
#include <algorithm>
#include <set>
#include <utility>

#include <openssl/core_names.h>
#include <openssl/rsa.h>

#include "userspace/token/jwt_internal.h"

namespace dbw::token {
namespace internal {
namespace {

constexpr size_t kMaxJwksBytes = 1024 * 1024;

int Base64UrlValue(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

}  // namespace

// RFC 7515 base64url: no padding, no whitespace, and the unused low bits of the last character
// zero, so each byte string has exactly one encoding.
std::optional<std::string> Base64UrlDecode(std::string_view in) {
  if (in.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(in.size() / 4 * 3 + 2);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int v = Base64UrlValue(c);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
    acc &= (1u << bits) - 1;
  }
  if (acc != 0) return std::nullopt;
  return out;
}

// A value from the token or JWKS as it may appear in a message: quoted, at most 64 bytes of it,
// every byte outside printable ASCII (and the quote and backslash) escaped.
std::string Quote(std::string_view v) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  for (unsigned char c : v.substr(0, kMaxQuoted)) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    }
  }
  out += v.size() > kMaxQuoted ? "\"..." : "\"";
  return out;
}

// Whether any object in the tree repeats a member name: two readers of the same JSON could
// otherwise disagree on which value counts.
bool HasDuplicateMembers(simdjson::dom::element e) {
  simdjson::dom::object obj;
  simdjson::dom::array arr;
  if (e.get_object().get(obj) == simdjson::SUCCESS) {
    std::vector<std::string_view> names;
    for (auto kv : obj) {
      names.push_back(kv.key);
      if (HasDuplicateMembers(kv.value)) return true;
    }
    std::sort(names.begin(), names.end());
    return std::adjacent_find(names.begin(), names.end()) != names.end();
  }
  if (e.get_array().get(arr) == simdjson::SUCCESS) {
    for (auto v : arr)
      if (HasDuplicateMembers(v)) return true;
  }
  return false;
}

Member StringMember(simdjson::dom::object obj, std::string_view name, std::string_view* out) {
  simdjson::dom::element e;
  if (obj.at_key(name).get(e) != simdjson::SUCCESS) return Member::kAbsent;
  return e.get_string().get(*out) == simdjson::SUCCESS ? Member::kString : Member::kWrongType;
}

}  // namespace internal

using namespace internal;  // NOLINT(google-build-using-namespace): this module's own helpers

namespace {

std::string_view AlgOfFamily(Family f) {
  switch (f) {
    case Family::kRsa:
      return "RS256";
    case Family::kEcP256:
      return "ES256";
    case Family::kEd25519:
      return "EdDSA";
  }
  return "";
}

// ---- JWKS ----

struct ParsedJwk {
  bool skipped = false;
  std::string error;  // non-empty: the key is malformed
  std::string kid;
  Family family = Family::kRsa;
  std::string alg;
  PkeyPtr pkey;
};

ParsedJwk JwkError(std::string reason) {
  ParsedJwk r;
  r.error = std::move(reason);
  return r;
}

ParsedJwk JwkSkipped() {
  ParsedJwk r;
  r.skipped = true;
  return r;
}

// A base64url member decoded; an error names the member.
std::optional<std::string> Base64Member(simdjson::dom::object jwk, std::string_view name,
                                        std::string* error) {
  std::string_view text;
  Member m = StringMember(jwk, name, &text);
  if (m == Member::kAbsent) {
    *error = "no \"" + std::string(name) + "\"";
    return std::nullopt;
  }
  std::optional<std::string> bytes;
  if (m == Member::kString) bytes = Base64UrlDecode(text);
  if (!bytes) *error = "\"" + std::string(name) + "\" is not base64url";
  return bytes;
}

PkeyPtr FromData(const char* type, OSSL_PARAM_BLD* bld) {
  ParamPtr params(OSSL_PARAM_BLD_to_param(bld));
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  EVP_PKEY* raw = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) != 1)
    return nullptr;
  return PkeyPtr(raw);
}

std::string_view StripLeadingZeros(std::string_view s) {
  while (!s.empty() && s.front() == '\0') s.remove_prefix(1);
  return s;
}

// RSA: "n" of 2048 to 8192 bits (others skipped) and an odd "e" above 1 of at most 64 bits.
ParsedJwk RsaKey(simdjson::dom::object jwk) {
  std::string error;
  auto n = Base64Member(jwk, "n", &error);
  if (!n) return JwkError(error);
  auto e = Base64Member(jwk, "e", &error);
  if (!e) return JwkError(error);
  std::string_view nv = StripLeadingZeros(*n), ev = StripLeadingZeros(*e);
  if (nv.empty() || (nv.back() & 1) == 0) return JwkError("\"n\" is not an odd modulus");
  if (ev.empty() || ev.size() > 8 || (ev.back() & 1) == 0 || (ev.size() == 1 && ev[0] == 1))
    return JwkError("\"e\" is not an odd exponent above 1");
  size_t bits = nv.size() * 8;
  for (unsigned char top = nv[0]; (top & 0x80) == 0; top <<= 1) --bits;
  if (bits < 2048 || bits > 8192) return JwkSkipped();
  BnPtr bn_n(BN_bin2bn(Bytes(nv), static_cast<int>(nv.size()), nullptr));
  BnPtr bn_e(BN_bin2bn(Bytes(ev), static_cast<int>(ev.size()), nullptr));
  ParamBldPtr bld(OSSL_PARAM_BLD_new());
  if (!bn_n || !bn_e || !bld ||
      !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get()) ||
      !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get()))
    return JwkError("cannot build the RSA key");
  ParsedJwk r;
  r.pkey = FromData("RSA", bld.get());
  if (!r.pkey) return JwkError("OpenSSL refused the RSA key");
  return r;
}

// EC P-256: "x" and "y" of exactly 32 bytes each, a point on the curve of the right order.
ParsedJwk EcKey(simdjson::dom::object jwk) {
  std::string error;
  auto x = Base64Member(jwk, "x", &error);
  if (!x) return JwkError(error);
  auto y = Base64Member(jwk, "y", &error);
  if (!y) return JwkError(error);
  if (x->size() != 32 || y->size() != 32) return JwkError("\"x\" and \"y\" must be 32 bytes");
  std::string point = "\x04" + *x + *y;
  ParamBldPtr bld(OSSL_PARAM_BLD_new());
  if (!bld ||
      !OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) ||
      !OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                        point.size()))
    return JwkError("cannot build the EC key");
  ParsedJwk r;
  r.pkey = FromData("EC", bld.get());
  PkeyCtxPtr check(r.pkey ? EVP_PKEY_CTX_new_from_pkey(nullptr, r.pkey.get(), nullptr) : nullptr);
  if (!check || EVP_PKEY_public_check(check.get()) != 1)
    return JwkError("(x, y) is not a valid P-256 public key");
  return r;
}

// Ed25519: "x" of exactly 32 bytes.
ParsedJwk Ed25519Key(simdjson::dom::object jwk) {
  std::string error;
  auto x = Base64Member(jwk, "x", &error);
  if (!x) return JwkError(error);
  if (x->size() != 32) return JwkError("\"x\" must be 32 bytes");
  ParsedJwk r;
  r.pkey.reset(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, Bytes(*x), x->size()));
  if (!r.pkey) return JwkError("OpenSSL refused the Ed25519 key");
  return r;
}

// The key type a JWK claims, from "kty" and "crv"; nullopt (skipped) for the unsupported ones.
std::optional<Family> JwkFamily(simdjson::dom::object jwk, std::string* error) {
  std::string_view kty, crv;
  if (StringMember(jwk, "kty", &kty) != Member::kString) return std::nullopt;
  if (kty == "RSA") return Family::kRsa;
  if (kty != "EC" && kty != "OKP") return std::nullopt;
  Member m = StringMember(jwk, "crv", &crv);
  if (m != Member::kString) {
    *error = m == Member::kAbsent ? "no \"crv\"" : "\"crv\" is not a string";
    return std::nullopt;
  }
  if (kty == "EC" && crv == "P-256") return Family::kEcP256;
  if (kty == "OKP" && crv == "Ed25519") return Family::kEd25519;
  return std::nullopt;
}

// Whether "use" and "key_ops" allow verifying signatures; an error when they are mistyped.
bool JwkForSignatures(simdjson::dom::object jwk, std::string* error) {
  std::string_view use;
  Member m = StringMember(jwk, "use", &use);
  if (m == Member::kWrongType) *error = "\"use\" is not a string";
  if (m != Member::kAbsent && use != "sig") return false;
  simdjson::dom::element ops;
  if (jwk.at_key("key_ops").get(ops) != simdjson::SUCCESS) return true;
  simdjson::dom::array arr;
  if (ops.get_array().get(arr) != simdjson::SUCCESS) {
    *error = "\"key_ops\" is not an array";
    return false;
  }
  bool verify = false;
  for (auto op : arr) {
    std::string_view s;
    if (op.get_string().get(s) != simdjson::SUCCESS) {
      *error = "\"key_ops\" holds a non-string";
      return false;
    }
    verify = verify || s == "verify";
  }
  return verify;
}

ParsedJwk ParseJwk(simdjson::dom::element e) {
  simdjson::dom::object jwk;
  if (e.get_object().get(jwk) != simdjson::SUCCESS) return JwkError("not a JSON object");
  std::string error;
  std::optional<Family> family = JwkFamily(jwk, &error);
  if (!error.empty()) return JwkError(error);
  if (!family) return JwkSkipped();
  std::string_view kid, alg;
  Member kid_m = StringMember(jwk, "kid", &kid);
  Member alg_m = StringMember(jwk, "alg", &alg);
  if (kid_m == Member::kWrongType) return JwkError("\"kid\" is not a string");
  if (alg_m == Member::kWrongType) return JwkError("\"alg\" is not a string");
  bool for_signatures = JwkForSignatures(jwk, &error);
  if (!error.empty()) return JwkError(error);
  if (!for_signatures) return JwkSkipped();
  if (alg_m == Member::kString && alg != AlgOfFamily(*family)) return JwkSkipped();
  ParsedJwk r = *family == Family::kRsa      ? RsaKey(jwk)
                : *family == Family::kEcP256 ? EcKey(jwk)
                                             : Ed25519Key(jwk);
  r.family = *family;
  r.kid = std::string(kid);
  r.alg = std::string(alg);
  return r;
}

}  // namespace

KeySet::KeySet() = default;
KeySet::~KeySet() = default;

size_t KeySet::size() const {
  return keys_.size();
}

std::vector<std::string> KeySet::kids() const {
  std::vector<std::string> out;
  for (const Key& k : keys_) out.push_back(k.kid);
  return out;
}

StatusOr<std::shared_ptr<const KeySet>> KeySet::Parse(std::string_view jwks_json) {
  if (jwks_json.size() > kMaxJwksBytes) return InvalidArgument("JWKS is larger than 1 MiB");
  ErrorQueueScope errors;
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  simdjson::dom::object top;
  simdjson::dom::array keys;
  if (parser.parse(jwks_json.data(), jwks_json.size()).get(root) != simdjson::SUCCESS ||
      root.get_object().get(top) != simdjson::SUCCESS)
    return InvalidArgument("JWKS is not a JSON object");
  if (HasDuplicateMembers(root)) return InvalidArgument("JWKS repeats a member name");
  if (top.at_key("keys").get_array().get(keys) != simdjson::SUCCESS)
    return InvalidArgument("JWKS has no \"keys\" array");
  std::shared_ptr<KeySet> set(new KeySet());
  std::set<std::string, std::less<>> kids;
  size_t index = 0;
  for (simdjson::dom::element e : keys) {
    ParsedJwk k = ParseJwk(e);
    if (!k.error.empty())
      return InvalidArgument("JWKS key " + std::to_string(index) + ": " + k.error);
    ++index;
    if (k.skipped) {
      ++set->skipped_;
      continue;
    }
    if (!k.kid.empty() && !kids.insert(k.kid).second)
      return InvalidArgument("JWKS key " + std::to_string(index - 1) + ": kid " + Quote(k.kid) +
                             " is used by an earlier key");
    set->keys_.push_back(Key{std::move(k.kid), k.family, std::move(k.alg), std::move(k.pkey)});
  }
  return std::shared_ptr<const KeySet>(std::move(set));
}

}  // namespace dbw::token
