// Token digests and constant-time comparison with OpenSSL.
#include "userspace/api/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

namespace dbw::api {
namespace {

std::array<unsigned char, 32> Sha256(std::string_view data) {
  std::array<unsigned char, 32> out{};
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), out.data(), &len, EVP_sha256(), nullptr);
  return out;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool ParseHexDigest(std::string_view hex, std::array<unsigned char, 32>* out) {
  if (hex.size() != 64) return false;
  for (size_t i = 0; i < 32; ++i) {
    int hi = HexValue(hex[2 * i]);
    int lo = HexValue(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    (*out)[i] = static_cast<unsigned char>(hi * 16 + lo);
  }
  return true;
}

}  // namespace

bool ParseRole(std::string_view name, Role* out) {
  if (name == "viewer")
    *out = Role::kViewer;
  else if (name == "approver")
    *out = Role::kApprover;
  else if (name == "admin")
    *out = Role::kAdmin;
  else
    return false;
  return true;
}

const char* RoleName(Role role) {
  switch (role) {
    case Role::kViewer:
      return "viewer";
    case Role::kApprover:
      return "approver";
    case Role::kAdmin:
      return "admin";
  }
  return "viewer";
}

std::string TokenSha256Hex(std::string_view token) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char b : Sha256(token)) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
  return out;
}

StatusOr<Authenticator> Authenticator::Create(const std::vector<TokenConfig>& tokens) {
  Authenticator a;
  for (const TokenConfig& t : tokens) {
    Entry e{t.name, t.role, {}, t.groups};
    if (!ParseHexDigest(t.sha256, &e.digest)) {
      return InvalidArgument("api token \"" + t.name + "\": sha256 must be 64 hex digits");
    }
    for (const Entry& other : a.entries_) {
      if (other.name == t.name) return InvalidArgument("api token name \"" + t.name + "\" repeats");
    }
    a.entries_.push_back(std::move(e));
  }
  return a;
}

Authenticator::Result Authenticator::Authenticate(std::string_view authorization,
                                                  Identity* who) const {
  if (authorization.empty()) return Result::kMissing;
  constexpr std::string_view kScheme = "bearer ";
  if (authorization.size() <= kScheme.size()) return Result::kInvalid;
  for (size_t i = 0; i < kScheme.size(); ++i) {
    char c = authorization[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != kScheme[i]) return Result::kInvalid;
  }
  std::string_view token = authorization.substr(kScheme.size());
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  while (!token.empty() && token.back() == ' ') token.remove_suffix(1);
  if (token.empty()) return Result::kInvalid;
  const auto digest = Sha256(token);
  // Every entry is compared so the time taken does not say which one matched.
  const Entry* match = nullptr;
  for (const Entry& e : entries_) {
    if (CRYPTO_memcmp(e.digest.data(), digest.data(), digest.size()) == 0) match = &e;
  }
  if (match == nullptr) return Result::kInvalid;
  *who = Identity{match->name, match->role, match->groups};
  return Result::kOk;
}

}  // namespace dbw::api
