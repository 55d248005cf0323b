// Queries over the audit store: one index range scan newest first, other filters checked on
// the decoded event; the SIEM stream's in-order read.
#include <rocksdb/db.h>

#include "userspace/audit/store.h"
#include "userspace/audit/store_impl.h"

namespace dbw::audit {
namespace {

using store::Index;

// Releases a RocksDB snapshot on every return path.
class SnapshotGuard {
 public:
  explicit SnapshotGuard(rocksdb::DB* db) : db_(db), snapshot_(db->GetSnapshot()) {}
  ~SnapshotGuard() { db_->ReleaseSnapshot(snapshot_); }
  const rocksdb::Snapshot* get() const { return snapshot_; }

 private:
  rocksdb::DB* db_;
  const rocksdb::Snapshot* snapshot_;
};

}  // namespace

StatusOr<QueryResult> AuditStore::Query(const EventFilter& filter, size_t limit,
                                        const std::string& cursor) const {
  const Impl& im = *impl_;
  QueryResult result;
  if (limit == 0) return result;
  uint64_t filter_hash = store::FilterHash(filter);
  std::optional<std::pair<int64_t, uint64_t>> resume;
  if (!cursor.empty()) {
    int64_t ts = 0;
    uint64_t seq = 0;
    DBW_RETURN_IF_ERROR(store::DecodeCursor(cursor, filter_hash, &ts, &seq));
    resume.emplace(ts, seq);
  }
  // Scan the most selective index; since/until bound it, the cursor bounds it from above.
  std::vector<std::pair<Index, std::string>> terms = store::FilterTerms(filter);
  Index primary = terms.empty() ? Index::kTime : terms.front().first;
  std::string prefix;
  if (!terms.empty()) {
    prefix = terms.front().second;
    prefix.push_back('\0');
  }
  std::string lower = prefix, upper = prefix;
  store::PutTimestamp(filter.since_us.value_or(INT64_MIN), &lower);
  store::PutBigEndian64(0, &lower);
  if (resume) {
    store::PutTimestamp(resume->first, &upper);
    store::PutBigEndian64(resume->second, &upper);  // exclusive: the cursor's own event is done
  } else if (filter.until_us) {
    store::PutTimestamp(*filter.until_us, &upper);
    store::PutBigEndian64(0, &upper);
  } else {
    upper.append(16, '\xff');
  }
  if (resume && filter.until_us) {
    std::string until = prefix;
    store::PutTimestamp(*filter.until_us, &until);
    store::PutBigEndian64(0, &until);
    if (until < upper) upper = until;
  }
  if (upper <= lower) return result;

  SnapshotGuard snapshot(im.db.get());
  rocksdb::Slice lower_slice(lower), upper_slice(upper);
  rocksdb::ReadOptions ro;
  ro.snapshot = snapshot.get();
  ro.iterate_lower_bound = &lower_slice;
  ro.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(im.db->NewIterator(ro, im.index_cf(primary)));
  std::string raw;
  store::Terms event_terms;
  bool more = false;
  for (it->SeekToLast(); it->Valid(); it->Prev()) {
    int64_t ts = 0;
    uint64_t seq = 0;
    if (!store::ParseIndexKeyTail(it->key().ToStringView(), &ts, &seq)) continue;
    Status st = im.ReadRecord(snapshot.get(), seq, &raw);
    if (st.code() == StatusCode::kNotFound) continue;  // an index entry without its event
    DBW_RETURN_IF_ERROR(st);
    store::Record rec;
    DBW_RETURN_IF_ERROR(store::DecodeRecord(seq, raw, &rec));
    if (terms.size() > 1) {
      DBW_RETURN_IF_ERROR(store::ExtractTerms(rec.canonical, &event_terms));
      bool match = true;
      for (size_t i = 1; i < terms.size() && match; ++i)
        match = event_terms.Has(terms[i].first, terms[i].second);
      if (!match) continue;
    }
    if (result.events.size() == limit) {
      more = true;  // one more match exists: the cursor will find it
      break;
    }
    result.events.push_back(StoredEvent{seq, rec.ts_us, store::ServedJson(rec)});
  }
  if (!it->status().ok()) return Unavailable("index scan failed: " + it->status().ToString());
  if (more) {
    const StoredEvent& last = result.events.back();
    result.next_cursor = store::EncodeCursor(filter_hash, last.ts_us, last.seq);
  }
  return result;
}

StatusOr<std::vector<StoredEvent>> AuditStore::ReadAfter(uint64_t after_seq, size_t limit) const {
  const Impl& im = *impl_;
  std::vector<StoredEvent> out;
  if (limit == 0 || after_seq == UINT64_MAX) return out;
  rocksdb::ReadOptions ro;
  std::unique_ptr<rocksdb::Iterator> it(im.db->NewIterator(ro, im.events));
  for (it->Seek(store::SeqKey(after_seq + 1)); it->Valid() && out.size() < limit; it->Next()) {
    if (it->key().size() != 8) continue;
    uint64_t seq = store::GetBigEndian64(it->key().data());
    store::Record rec;
    DBW_RETURN_IF_ERROR(store::DecodeRecord(seq, it->value().ToStringView(), &rec));
    out.push_back(StoredEvent{seq, rec.ts_us, store::ServedJson(rec)});
  }
  if (!it->status().ok()) return Unavailable("event scan failed: " + it->status().ToString());
  return out;
}

}  // namespace dbw::audit
