// JWS compact verification: the structure, the algorithm and key, the signature, then the
// claims, in an order that never reads an unsigned payload's claims.
#include "userspace/token/jwt.h"

#include <algorithm>
#include <cmath>
#include <ctime>
#include <limits>
#include <utility>

#include <openssl/rsa.h>

#include "userspace/token/jwt_internal.h"

namespace dbw::token {

using namespace internal;  // NOLINT(google-build-using-namespace): this module's own helpers

namespace {

constexpr size_t kMaxTokenBytes = 16 * 1024;
constexpr int64_t kMaxDate = 253402300799;  // 9999-12-31T23:59:59Z

TokenFailure Fail(TokenError e, std::string message) {
  return {e, std::move(message)};
}

std::optional<Family> FamilyOfAlg(std::string_view alg) {
  if (alg == "RS256") return Family::kRsa;
  if (alg == "ES256") return Family::kEcP256;
  if (alg == "EdDSA") return Family::kEd25519;
  return std::nullopt;
}

simdjson::dom::parser& TokenParser() {
  thread_local simdjson::dom::parser parser = [] {
    simdjson::dom::parser p;
    // On failure parse() allocates for itself, at simdjson's default depth limit.
    [[maybe_unused]] simdjson::error_code ignored = p.allocate(kMaxTokenBytes, kMaxJsonDepth);
    return p;
  }();
  return parser;
}

// Parses `json` as an object without repeated member names; nullopt otherwise. The object lives
// in `parser` until its next parse.
std::optional<simdjson::dom::object> ParseObject(simdjson::dom::parser& parser,
                                                 std::string_view json) {
  simdjson::dom::element root;
  simdjson::dom::object obj;
  if (parser.parse(json.data(), json.size()).get(root) != simdjson::SUCCESS ||
      root.get_object().get(obj) != simdjson::SUCCESS || HasDuplicateMembers(root))
    return std::nullopt;
  return obj;
}

// ---- Signatures ----

// JWS ES256 signatures are r||s, 32 bytes each; OpenSSL verifies DER.
std::optional<std::string> EcdsaRawToDer(std::string_view raw) {
  EcdsaSigPtr sig(ECDSA_SIG_new());
  BnPtr r(BN_bin2bn(Bytes(raw), 32, nullptr));
  BnPtr s(BN_bin2bn(Bytes(raw) + 32, 32, nullptr));
  if (!sig || !r || !s || ECDSA_SIG_set0(sig.get(), r.get(), s.get()) != 1) return std::nullopt;
  r.release();  // owned by sig now
  s.release();
  int len = i2d_ECDSA_SIG(sig.get(), nullptr);
  if (len <= 0) return std::nullopt;
  std::string der(static_cast<size_t>(len), '\0');
  auto* p = reinterpret_cast<unsigned char*>(der.data());
  if (i2d_ECDSA_SIG(sig.get(), &p) != len) return std::nullopt;
  return der;
}

bool SignatureVerifies(Family family, EVP_PKEY* pkey, std::string_view signing_input,
                       std::string_view signature) {
  std::string der;
  const EVP_MD* md = EVP_sha256();
  switch (family) {
    case Family::kRsa:
      if (signature.size() != static_cast<size_t>(EVP_PKEY_get_size(pkey))) return false;
      break;
    case Family::kEcP256: {
      if (signature.size() != 64) return false;
      auto converted = EcdsaRawToDer(signature);
      if (!converted) return false;
      der = std::move(*converted);
      signature = der;
      break;
    }
    case Family::kEd25519:
      if (signature.size() != 64) return false;
      md = nullptr;  // EdDSA hashes internally
      break;
  }
  MdCtxPtr ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;
  if (!ctx || EVP_DigestVerifyInit(ctx.get(), &pctx, md, nullptr, pkey) != 1) return false;
  if (family == Family::kRsa && EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1)
    return false;
  return EVP_DigestVerify(ctx.get(), Bytes(signature), signature.size(), Bytes(signing_input),
                          signing_input.size()) == 1;
}

// ---- Token structure and claims ----

struct Segments {
  std::string_view signing_input;  // header '.' payload, as signed
  std::string_view header, payload, signature;
};

std::optional<Segments> Split(std::string_view token) {
  if (token.size() > kMaxTokenBytes) return std::nullopt;
  size_t first = token.find('.');
  if (first == std::string_view::npos) return std::nullopt;
  size_t second = token.find('.', first + 1);
  if (second == std::string_view::npos || token.find('.', second + 1) != std::string_view::npos)
    return std::nullopt;
  Segments s{token.substr(0, second), token.substr(0, first),
             token.substr(first + 1, second - first - 1), token.substr(second + 1)};
  if (s.header.empty() || s.payload.empty()) return std::nullopt;
  return s;
}

struct Header {
  std::string alg, kid;
  bool has_kid = false;
};

std::variant<Header, TokenFailure> ReadHeader(simdjson::dom::object h) {
  Header out;
  simdjson::dom::element e;
  if (h.at_key("crit").get(e) == simdjson::SUCCESS)
    return Fail(TokenError::kMalformed, "token header has \"crit\"; no extensions are supported");
  bool b64 = true;
  if (h.at_key("b64").get(e) == simdjson::SUCCESS && (e.get_bool().get(b64) || !b64))
    return Fail(TokenError::kMalformed, "token header has \"b64\" other than true");
  std::string_view kid, alg;
  Member kid_m = StringMember(h, "kid", &kid);
  if (kid_m == Member::kWrongType || (kid_m == Member::kString && kid.empty()))
    return Fail(TokenError::kMalformed, "token header \"kid\" is not a non-empty string");
  out.has_kid = kid_m == Member::kString;
  out.kid = std::string(kid);
  Member alg_m = StringMember(h, "alg", &alg);
  if (alg_m == Member::kAbsent) return Fail(TokenError::kAlgorithm, "token header has no \"alg\"");
  if (alg_m == Member::kWrongType)
    return Fail(TokenError::kAlgorithm, "token header \"alg\" is not a string");
  if (!FamilyOfAlg(alg))
    return Fail(TokenError::kAlgorithm,
                "algorithm " + Quote(alg) + " is not accepted (RS256, ES256 and EdDSA are)");
  out.alg = std::string(alg);
  return out;
}

// A NumericDate: an integer or a real JSON number, whole seconds rounded toward the stricter
// side (down for exp and iat, up for nbf), clamped to [0, kMaxDate] so that callers may add a
// skew without overflow. A date at or before 1970 constrains nothing that 0 does not.
bool NumericDate(simdjson::dom::element e, bool round_up, int64_t* out) {
  int64_t i;
  uint64_t u;
  double d;
  if (e.get_int64().get(i) == simdjson::SUCCESS) {
    *out = std::clamp<int64_t>(i, 0, kMaxDate);
  } else if (e.get_uint64().get(u) == simdjson::SUCCESS) {
    *out = kMaxDate;
  } else if (e.get_double().get(d) == simdjson::SUCCESS) {
    d = std::clamp(round_up ? std::ceil(d) : std::floor(d), 0.0, static_cast<double>(kMaxDate));
    *out = static_cast<int64_t>(d);
  } else {
    return false;
  }
  return true;
}

// Unix seconds as RFC 3339 UTC, for messages.
std::string TimeText(int64_t t) {
  std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  char buf[32];
  if (gmtime_r(&tt, &tm) == nullptr ||
      std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
    return std::to_string(t);
  return buf;
}

// A scalar claim as text, or nullopt for null, objects and arrays.
std::optional<std::string> ScalarText(simdjson::dom::element e) {
  std::string_view s;
  switch (e.type()) {
    case simdjson::dom::element_type::STRING:
      if (e.get_string().get(s) != simdjson::SUCCESS) return std::nullopt;
      return std::string(s);
    case simdjson::dom::element_type::INT64:
    case simdjson::dom::element_type::UINT64:
    case simdjson::dom::element_type::DOUBLE:
    case simdjson::dom::element_type::BOOL:
      return simdjson::to_string(e);
    default:
      return std::nullopt;
  }
}

void RecordClaim(std::string_view name, simdjson::dom::element value, VerifiedToken* out) {
  std::vector<std::string> texts;
  simdjson::dom::array arr;
  if (value.get_array().get(arr) == simdjson::SUCCESS) {
    for (auto v : arr) {
      auto t = ScalarText(v);
      if (!t) return;
      texts.push_back(std::move(*t));
    }
  } else {
    auto t = ScalarText(value);
    if (!t) return;
    texts.push_back(std::move(*t));
  }
  out->claims.emplace(std::string(name), std::move(texts));
}

struct Presence {
  bool iss = false, aud = false, exp = false, nbf = false;
};

// Reads the registered claims into `out` with their types checked, and every claim into `claims`.
std::optional<TokenFailure> ReadClaims(simdjson::dom::object payload, VerifiedToken* out,
                                       Presence* has) {
  for (auto kv : payload) {
    std::string_view name = kv.key, s;
    simdjson::dom::element v = kv.value;
    bool ok = true;
    if (name == "iss" || name == "sub" || name == "jti") {
      ok = v.get_string().get(s) == simdjson::SUCCESS;
      std::string& field = name == "iss" ? out->issuer : name == "sub" ? out->subject : out->jti;
      field = std::string(s);
      has->iss = has->iss || name == "iss";
    } else if (name == "aud") {
      has->aud = true;
      simdjson::dom::array arr;
      if (v.get_string().get(s) == simdjson::SUCCESS) {
        out->audiences.emplace_back(s);
      } else if (v.get_array().get(arr) == simdjson::SUCCESS) {
        for (auto a : arr) {
          ok = ok && a.get_string().get(s) == simdjson::SUCCESS;
          if (ok) out->audiences.emplace_back(s);
        }
      } else {
        ok = false;
      }
    } else if (name == "exp" || name == "iat") {
      ok = NumericDate(v, false, name == "exp" ? &out->expires_at : &out->issued_at);
      has->exp = has->exp || name == "exp";
    } else if (name == "nbf") {
      ok = NumericDate(v, true, &out->not_before);
      has->nbf = true;
    }
    if (!ok)
      return Fail(TokenError::kMalformed, "claim \"" + std::string(name) + "\" has the wrong type");
    RecordClaim(name, v, out);
  }
  return std::nullopt;
}

int64_t SaturatingAdd(int64_t a, int64_t b) {
  int64_t r;
  if (!__builtin_add_overflow(a, b, &r)) return r;
  return b > 0 ? std::numeric_limits<int64_t>::max() : std::numeric_limits<int64_t>::min();
}

std::optional<TokenFailure> CheckRules(const VerifiedToken& t, const Presence& has,
                                       const TokenRules& rules, int64_t now) {
  if (!has.iss) return Fail(TokenError::kIssuer, "token has no issuer (iss)");
  if (rules.issuer.empty() || t.issuer != rules.issuer)
    return Fail(TokenError::kIssuer, "issuer " + Quote(t.issuer) + " is not accepted");
  if (!has.aud || t.audiences.empty())
    return Fail(TokenError::kAudience, "token has no audience (aud)");
  bool aud_ok = std::any_of(t.audiences.begin(), t.audiences.end(), [&](const std::string& a) {
    return std::find(rules.audiences.begin(), rules.audiences.end(), a) != rules.audiences.end();
  });
  if (!aud_ok) {
    std::string more =
        t.audiences.size() > 1 ? " (and " + std::to_string(t.audiences.size() - 1) + " more)" : "";
    return Fail(TokenError::kAudience,
                "audience " + Quote(t.audiences[0]) + more + " is not accepted");
  }
  int64_t skew = std::max<int64_t>(rules.clock_skew_seconds, 0);
  if (!has.exp && rules.require_expiry)
    return Fail(TokenError::kExpired, "token has no expiry (exp)");
  if (has.exp && now >= SaturatingAdd(t.expires_at, skew))
    return Fail(TokenError::kExpired, "token expired at " + TimeText(t.expires_at));
  if (has.nbf && SaturatingAdd(now, skew) < t.not_before)
    return Fail(TokenError::kNotYetValid, "token not valid before " + TimeText(t.not_before));
  return std::nullopt;
}

}  // namespace

std::string_view TokenErrorName(TokenError e) {
  switch (e) {
    case TokenError::kMalformed:
      return "malformed";
    case TokenError::kAlgorithm:
      return "algorithm";
    case TokenError::kUnknownKey:
      return "unknown_key";
    case TokenError::kSignature:
      return "bad_signature";
    case TokenError::kIssuer:
      return "issuer";
    case TokenError::kAudience:
      return "audience";
    case TokenError::kExpired:
      return "expired";
    case TokenError::kNotYetValid:
      return "not_yet_valid";
  }
  return "unknown";
}

std::optional<std::string> UnverifiedIssuer(std::string_view token) {
  auto seg = Split(token);
  if (!seg) return std::nullopt;
  auto payload = Base64UrlDecode(seg->payload);
  if (!payload) return std::nullopt;
  auto obj = ParseObject(TokenParser(), *payload);
  std::string_view iss;
  if (!obj || StringMember(*obj, "iss", &iss) != Member::kString) return std::nullopt;
  return std::string(iss);
}

std::variant<VerifiedToken, TokenFailure> VerifyToken(std::string_view token, const KeySet& keys,
                                                      const TokenRules& rules, int64_t now_unix) {
  if (token.size() > kMaxTokenBytes)
    return Fail(TokenError::kMalformed, "token is longer than 16384 bytes");
  auto seg = Split(token);
  if (!seg) return Fail(TokenError::kMalformed, "token is not three base64url segments");
  auto header_json = Base64UrlDecode(seg->header);
  auto payload_json = Base64UrlDecode(seg->payload);
  auto signature = Base64UrlDecode(seg->signature);
  if (!header_json || !payload_json || !signature)
    return Fail(TokenError::kMalformed, "token is not three base64url segments");
  simdjson::dom::parser& parser = TokenParser();
  auto header_obj = ParseObject(parser, *header_json);
  if (!header_obj) return Fail(TokenError::kMalformed, "token header is not a JSON object");
  auto header = ReadHeader(*header_obj);
  if (auto* f = std::get_if<TokenFailure>(&header)) return std::move(*f);
  const Header& h = std::get<Header>(header);
  const Family family = *FamilyOfAlg(h.alg);

  // The key: by kid, or the only one that fits; of the alg's type, and of its alg if it has one.
  auto fits = [&](const KeySet::Key& k) {
    return k.family == family && (k.alg.empty() || k.alg == h.alg);
  };
  const KeySet::Key* key = nullptr;
  size_t candidates = 0;
  for (const KeySet::Key& k : keys.keys_) {
    if (!fits(k) || (h.has_kid && k.kid != h.kid)) continue;
    key = &k;
    ++candidates;
  }
  if (candidates != 1) {
    return Fail(TokenError::kUnknownKey,
                h.has_kid ? "no key with kid " + Quote(h.kid) + " for " + h.alg
                          : "no kid and " + std::to_string(candidates) + " keys for " + h.alg);
  }

  {
    ErrorQueueScope errors;
    if (!SignatureVerifies(family, key->pkey.get(), seg->signing_input, *signature))
      return Fail(TokenError::kSignature,
                  "signature does not verify with key " + Quote(key->kid) + " (" + h.alg + ")");
  }

  VerifiedToken out;
  out.alg = h.alg;
  out.kid = key->kid;
  auto payload_obj = ParseObject(parser, *payload_json);
  if (!payload_obj) return Fail(TokenError::kMalformed, "token payload is not a JSON object");
  Presence has;
  if (auto f = ReadClaims(*payload_obj, &out, &has)) return std::move(*f);
  if (auto f = CheckRules(out, has, rules, now_unix)) return std::move(*f);
  return out;
}

}  // namespace dbw::token
