// EventSource: what the API reads from the audit log. AuditStore implements it through
// StoreEventSource; tests use an in-memory fake.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "userspace/audit/store.h"

namespace dbw::api {

class EventSource {
 public:
  virtual ~EventSource() = default;
  // Newest first; `cursor` is the opaque next_cursor of a previous page (empty: from the newest).
  virtual StatusOr<audit::QueryResult> Query(const audit::EventFilter& filter, size_t limit,
                                             const std::string& cursor) const = 0;
  // seq > after_seq, in sequence order, at most `limit`.
  virtual StatusOr<std::vector<audit::StoredEvent>> ReadAfter(uint64_t after_seq,
                                                              size_t limit) const = 0;
  virtual bool WaitForNewer(uint64_t after_seq, std::chrono::milliseconds timeout) const = 0;
  // `anchors`: published checkpoints to compare the store with (null: none).
  virtual audit::VerifyReport Verify(std::optional<uint64_t> from, std::optional<uint64_t> to,
                                     const std::vector<audit::Anchor>* anchors) const = 0;
  virtual std::string PublicKeyPem() const = 0;
};

// Borrows the store, which must outlive it.
class StoreEventSource final : public EventSource {
 public:
  explicit StoreEventSource(const audit::AuditStore* store) : store_(store) {}
  StatusOr<audit::QueryResult> Query(const audit::EventFilter& filter, size_t limit,
                                     const std::string& cursor) const override;
  StatusOr<std::vector<audit::StoredEvent>> ReadAfter(uint64_t after_seq,
                                                      size_t limit) const override;
  bool WaitForNewer(uint64_t after_seq, std::chrono::milliseconds timeout) const override;
  audit::VerifyReport Verify(std::optional<uint64_t> from, std::optional<uint64_t> to,
                             const std::vector<audit::Anchor>* anchors) const override;
  std::string PublicKeyPem() const override;

 private:
  const audit::AuditStore* store_;
};

}  // namespace dbw::api
