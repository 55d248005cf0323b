#include "userspace/common/conn_limiter.h"

#include <utility>

namespace dbw {

std::shared_ptr<ConnectionLimiter> ConnectionLimiter::Create(Limits limits) {
  return std::shared_ptr<ConnectionLimiter>(new ConnectionLimiter(limits));
}

ConnectionLimiter::Lease::~Lease() {
  if (!owner_) return;
  std::lock_guard<std::mutex> lock(owner_->mu_);
  if (!released_) owner_->ReleaseLocked(this);
}

bool ConnectionLimiter::Lease::SetIdle(bool idle) {
  std::lock_guard<std::mutex> lock(owner_->mu_);
  if (released_) return false;
  if (idle == idle_) return true;
  idle_ = idle;
  if (idle) {
    pos_ = owner_->idle_.insert(owner_->idle_.end(), this);
  } else {
    owner_->idle_.erase(pos_);
  }
  return true;
}

void ConnectionLimiter::ReleaseLocked(Lease* lease) {
  lease->released_ = true;
  if (lease->idle_) {
    idle_.erase(lease->pos_);
    lease->idle_ = false;
  }
  --open_;
  auto it = per_source_.find(lease->source_);
  if (it != per_source_.end() && --it->second == 0) per_source_.erase(it);
}

ConnectionLimiter::Lease* ConnectionLimiter::OldestIdleLocked(const std::string* source) {
  for (Lease* l : idle_)
    if (source == nullptr || l->source_ == *source) return l;
  return nullptr;
}

std::unique_ptr<ConnectionLimiter::Lease> ConnectionLimiter::Admit(const std::string& source,
                                                                   std::function<void()> evict,
                                                                   Verdict* verdict) {
  std::function<void()> evicted;
  std::unique_ptr<Lease> lease;
  {
    std::lock_guard<std::mutex> lock(mu_);
    *verdict = Verdict::kAdmitted;
    auto it = per_source_.find(source);
    const size_t from_source = it == per_source_.end() ? 0 : it->second;
    Lease* victim = nullptr;
    if (limits_.per_source != 0 && from_source >= limits_.per_source) {
      // The source is at its own limit: only its own idle connections make room.
      victim = OldestIdleLocked(&source);
      if (victim == nullptr) {
        *verdict = Verdict::kRefusedPerSource;
        return nullptr;
      }
    } else if (limits_.total != 0 && open_ >= limits_.total) {
      victim = OldestIdleLocked(nullptr);
      if (victim == nullptr) {
        *verdict = Verdict::kRefusedTotal;
        return nullptr;
      }
    }
    if (victim != nullptr) {
      evicted = std::move(victim->evict_);
      ReleaseLocked(victim);
      *verdict = Verdict::kEvicted;
    }
    lease.reset(new Lease());
    lease->owner_ = shared_from_this();
    lease->source_ = source;
    lease->evict_ = std::move(evict);
    ++open_;
    ++per_source_[source];
  }
  if (evicted) evicted();
  return lease;
}

size_t ConnectionLimiter::open() const {
  std::lock_guard<std::mutex> lock(mu_);
  return open_;
}

size_t ConnectionLimiter::open_from(const std::string& source) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = per_source_.find(source);
  return it == per_source_.end() ? 0 : it->second;
}

}  // namespace dbw
