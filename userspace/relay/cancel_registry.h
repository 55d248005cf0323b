// CancelRegistry: maps the cancel keys the relay hands to clients to upstream backends.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

#include "userspace/protocol/postgres/types.h"

namespace dbw::relay {

// The relay keeps the server's process id (clients compare it with NotificationResponse pids)
// and replaces only the secret key, so a cancel can be checked and routed by the relay.
class CancelRegistry {
 public:
  struct Upstream {
    std::string target;  // target name; the session's upstream address and TLS come from it
    pg::BackendKeyData key;
    // Set while the session holds a statement for approval: a cancel withdraws the request
    // instead of going to the server, where nothing runs. Called on the cancel's thread.
    std::function<void()> on_cancel;
  };

  // Returns the key data to send to the client.
  pg::BackendKeyData Register(const Upstream& upstream);
  void Unregister(const pg::BackendKeyData& client_key);
  // Sets (or, with an empty function, clears) the entry's on_cancel.
  void SetCancelHook(const pg::BackendKeyData& client_key, std::function<void()> hook);
  std::optional<Upstream> Find(const pg::CancelRequest& request) const;
  size_t size() const;

 private:
  mutable std::mutex mu_;  // guards entries_
  std::map<std::pair<uint32_t, uint32_t>, Upstream> entries_;
};

}  // namespace dbw::relay
