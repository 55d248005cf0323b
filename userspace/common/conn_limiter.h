// ConnectionLimiter: admission of inbound connections under a total and a per-source limit,
// shared by the relay's listeners and the HTTP API. A connection holds a Lease for its life.
// When a limit is reached, the oldest connection marked idle (no request in progress: waiting
// for its first request, or between keep-alive requests) is evicted to make room; when none is
// idle, the new connection is refused. So idle connections, however many a client opens,
// cannot keep a working one out, and one source cannot take every slot.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

namespace dbw {

class ConnectionLimiter : public std::enable_shared_from_this<ConnectionLimiter> {
 public:
  struct Limits {
    size_t total = 0;       // 0: unlimited
    size_t per_source = 0;  // 0: unlimited
  };
  enum class Verdict : uint8_t { kAdmitted, kEvicted, kRefusedTotal, kRefusedPerSource };

  class Lease {
   public:
    ~Lease();
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    // An idle connection may be evicted to admit another (the evict callback runs once, on the
    // thread that admits the newcomer; it must only post the close to the connection's own
    // executor). Busy connections are never evicted. False when this lease was evicted already
    // (its close is on its way): the connection must not start new work.
    bool SetIdle(bool idle);

   private:
    friend class ConnectionLimiter;
    Lease() = default;
    std::shared_ptr<ConnectionLimiter> owner_;
    std::string source_;
    std::function<void()> evict_;
    std::list<Lease*>::iterator pos_;  // in owner_->idle_ while idle
    bool idle_ = false;
    bool released_ = false;  // evicted: no longer counted
  };

  static std::shared_ptr<ConnectionLimiter> Create(Limits limits);

  // Admits a connection from `source` (an address without port), evicting an idle one when a
  // limit is reached. Returns null when refused; `verdict` says what happened.
  std::unique_ptr<Lease> Admit(const std::string& source, std::function<void()> evict,
                               Verdict* verdict);

  size_t open() const;
  size_t open_from(const std::string& source) const;
  const Limits& limits() const { return limits_; }

 private:
  explicit ConnectionLimiter(Limits limits) : limits_(limits) {}
  // Removes `lease` from the counts (mu_ held).
  void ReleaseLocked(Lease* lease);
  // The oldest idle lease, of `source` when not empty (mu_ held); null when there is none.
  Lease* OldestIdleLocked(const std::string* source);

  const Limits limits_;
  mutable std::mutex mu_;
  size_t open_ = 0;
  std::unordered_map<std::string, size_t> per_source_;
  std::list<Lease*> idle_;  // oldest first
};

}  // namespace dbw
