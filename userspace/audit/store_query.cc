// Queries over the audit store: one index's posting blocks scanned newest first and merged,
// other filters checked on the decoded event; the SIEM stream's in-order read.
#include <queue>

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
  // Scan the most selective index's posting blocks newest first. A posting p lies in
  // [since, upper): since inclusive; upper is `until` (exclusive) or the cursor's own event
  // (exclusive), whichever is lower.
  std::vector<std::pair<Index, std::string>> terms = store::FilterTerms(filter);
  Index primary = terms.empty() ? Index::kTime : terms.front().first;
  std::string prefix;
  if (!terms.empty()) {
    prefix = terms.front().second;
    prefix.push_back('\0');
  }
  const int64_t since = filter.since_us.value_or(INT64_MIN);
  store::Posting upper{INT64_MAX, UINT64_MAX};
  if (filter.until_us) upper = {*filter.until_us, 0};
  if (resume && store::Posting{resume->first, resume->second} < upper)
    upper = {resume->first, resume->second};
  if (upper.ts_us < since || (upper.ts_us == since && upper.seq == 0)) return result;
  // Blocks whose newest posting is below `since` hold nothing; a block holding a posting below
  // `upper` has its key below upper.ts + kBlockSpanUs (a block spans at most that much).
  std::string lower_key = prefix, upper_key = prefix;
  store::PutTimestamp(since, &lower_key);
  store::PutBigEndian64(0, &lower_key);
  int64_t upper_ts =
      upper.ts_us > INT64_MAX - store::kBlockSpanUs ? INT64_MAX : upper.ts_us + store::kBlockSpanUs;
  store::PutTimestamp(upper_ts, &upper_key);
  upper_key.append(8, '\xff');

  SnapshotGuard snapshot(im.db.get());
  rocksdb::Slice lower_slice(lower_key), upper_slice(upper_key);
  rocksdb::ReadOptions ro;
  ro.snapshot = snapshot.get();
  ro.iterate_lower_bound = &lower_slice;
  ro.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(im.db->NewIterator(ro, im.index_cf(primary)));
  // Blocks come in descending order of their newest posting; their ranges may overlap, so
  // postings wait in a max-heap until no unread block can hold a newer one.
  std::priority_queue<store::Posting> pending;
  std::vector<store::Posting> block;
  std::string raw;
  store::Terms event_terms;
  bool more = false;
  it->SeekToLast();
  auto next_block_max = [&](store::Posting* max) {
    return it->Valid() &&
           store::ParseIndexKeyTail(it->key().ToStringView(), &max->ts_us, &max->seq);
  };
  while (!more) {
    store::Posting block_max;
    bool have_block = next_block_max(&block_max);
    // Emit every pending posting newer than anything an unread block may hold.
    while (!pending.empty() && (!have_block || block_max < pending.top())) {
      store::Posting p = pending.top();
      pending.pop();
      Status st = im.ReadRecord(snapshot.get(), p.seq, &raw);
      if (st.code() == StatusCode::kNotFound) continue;  // cut by retention meanwhile
      DBW_RETURN_IF_ERROR(st);
      store::Record rec;
      DBW_RETURN_IF_ERROR(store::DecodeRecord(p.seq, raw, &rec));
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
      result.events.push_back(StoredEvent{p.seq, rec.ts_us, store::ServedJson(rec)});
    }
    if (more || !have_block) break;
    block.clear();
    DBW_RETURN_IF_ERROR(store::DecodeBlock(it->value().ToStringView(), &block));
    for (const store::Posting& p : block)
      if (p.ts_us >= since && p < upper) pending.push(p);
    it->Prev();
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
