// CancelRegistry.
#include "userspace/relay/cancel_registry.h"

#include <openssl/rand.h>

namespace dbw::relay {

pg::BackendKeyData CancelRegistry::Register(const Upstream& upstream) {
  pg::BackendKeyData client_key{upstream.key.pid, 0};
  std::lock_guard<std::mutex> lock(mu_);
  do {
    if (RAND_bytes(reinterpret_cast<unsigned char*>(&client_key.key), sizeof(client_key.key)) != 1)
      client_key.key ^= 0x9e3779b9u;  // RAND_bytes cannot fail once seeded; never reuse a key
  } while (entries_.count({client_key.pid, client_key.key}) != 0);
  entries_[{client_key.pid, client_key.key}] = upstream;
  return client_key;
}

void CancelRegistry::Unregister(const pg::BackendKeyData& client_key) {
  std::lock_guard<std::mutex> lock(mu_);
  entries_.erase({client_key.pid, client_key.key});
}

void CancelRegistry::SetCancelHook(const pg::BackendKeyData& client_key,
                                   std::function<void()> hook) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find({client_key.pid, client_key.key});
  if (it != entries_.end()) it->second.on_cancel = std::move(hook);
}

std::optional<CancelRegistry::Upstream> CancelRegistry::Find(const pg::CancelRequest& r) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find({r.pid, r.key});
  if (it == entries_.end()) return std::nullopt;
  return it->second;
}

size_t CancelRegistry::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return entries_.size();
}

}  // namespace dbw::relay
