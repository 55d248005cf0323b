// StoreEventSource: forwards to AuditStore. Kept in its own file so that binaries which only use
// a fake EventSource do not link the RocksDB store.
#include "userspace/api/event_source.h"

namespace dbw::api {

StatusOr<audit::QueryResult> StoreEventSource::Query(const audit::EventFilter& filter, size_t limit,
                                                     const std::string& cursor) const {
  return store_->Query(filter, limit, cursor);
}

StatusOr<std::vector<audit::StoredEvent>> StoreEventSource::ReadAfter(uint64_t after_seq,
                                                                      size_t limit) const {
  return store_->ReadAfter(after_seq, limit);
}

bool StoreEventSource::WaitForNewer(uint64_t after_seq, std::chrono::milliseconds timeout) const {
  return store_->WaitForNewer(after_seq, timeout);
}

audit::VerifyReport StoreEventSource::Verify(std::optional<uint64_t> from,
                                             std::optional<uint64_t> to,
                                             const std::vector<audit::Anchor>* anchors) const {
  return store_->Verify(from, to, anchors);
}

std::string StoreEventSource::PublicKeyPem() const {
  return store_->PublicKeyPem();
}

}  // namespace dbw::api
