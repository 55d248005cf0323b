// Bearer-token authentication and roles: tokens are configured as hex SHA-256 digests and
// compared in constant time; a role includes every weaker role.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "userspace/api/options.h"
#include "userspace/common/status.h"

namespace dbw::api {

bool ParseRole(std::string_view name, Role* out);
const char* RoleName(Role role);
inline bool RoleAllows(Role have, Role need) {
  return static_cast<int>(have) >= static_cast<int>(need);
}

// Hex SHA-256 of `token` (lowercase); what goes in the configuration.
std::string TokenSha256Hex(std::string_view token);

struct Identity {
  std::string name;
  Role role = Role::kViewer;
  std::vector<std::string> groups;
};

class Authenticator {
 public:
  // Fails on a digest that is not 64 hex digits or a duplicate name.
  // With no tokens every request is refused (kMissing / kInvalid).
  static StatusOr<Authenticator> Create(const std::vector<TokenConfig>& tokens);

  enum class Result { kOk, kMissing, kInvalid };
  // `authorization` is the header value ("Bearer <token>"), empty when absent.
  Result Authenticate(std::string_view authorization, Identity* who) const;

 private:
  struct Entry {
    std::string name;
    Role role;
    std::array<unsigned char, 32> digest;
    std::vector<std::string> groups;
  };
  std::vector<Entry> entries_;
};

}  // namespace dbw::api
