// Chain verification (hashes, seq continuity, signed checkpoints, the retention anchor) and the
// retention pass that cuts old events behind a signed anchor.
#include <algorithm>
#include <map>
#include <set>

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include "userspace/audit/event_json.h"
#include "userspace/audit/store.h"
#include "userspace/audit/store_impl.h"
#include "userspace/common/logging.h"

namespace dbw::audit {
namespace {

using store::Hash;
using store::Index;

struct ChainState {
  uint64_t head_seq = 0;
  Hash head_hash{};
  std::optional<store::Checkpoint> anchor;
  std::map<uint64_t, store::Checkpoint> checkpoints;
  bool bad_checkpoint_record = false;
  uint64_t bad_checkpoint_seq = 0;
};

void Fail(VerifyReport* r, uint64_t seq, std::string why) {
  r->ok = false;
  r->first_bad_seq = seq;
  r->problem = std::move(why);
}

bool KnownKey(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* meta, const std::string& raw) {
  std::string v;
  return db->Get(rocksdb::ReadOptions(), meta, std::string(kMetaKeyPrefix) + raw, &v).ok();
}

// Why a checkpoint (or anchor) is not trustworthy, or "" when it is.
std::string CheckSignature(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* meta,
                           const store::Checkpoint& cp) {
  if (!KnownKey(db, meta, cp.public_raw)) return "signed by a key this store never used";
  if (!store::VerifySignature(cp.public_raw, store::CheckpointMessage(cp.seq, cp.hash),
                              cp.signature))
    return "signature does not verify";
  return {};
}

}  // namespace

VerifyReport AuditStore::Verify(std::optional<uint64_t> from, std::optional<uint64_t> to,
                                const std::vector<Anchor>* anchors) const {
  return VerifyChain(*impl_, from, to, anchors);
}

namespace {

// Compares the store, under `ro`'s snapshot, with published anchors: each must verify, and the
// store must hold its seq with its hash. `claimed`: the tail the store claims; `base`: the last
// seq cut by retention.
void CheckAnchors(const AuditStore::Impl& im, const rocksdb::ReadOptions& ro,
                  const std::vector<Anchor>& anchors, const ChainState& cs, uint64_t claimed,
                  VerifyReport* r) {
  const uint64_t base = cs.anchor ? cs.anchor->seq : 0;
  // The furthest retention cut the anchors record: events below the store's base may only be
  // missing because of one (a store whose oldest events were deleted and an old checkpoint
  // copied into its retention anchor looks the same otherwise).
  uint64_t published_cut = 0;
  for (const Anchor& a : anchors)
    if (a.retention) published_cut = std::max(published_cut, a.seq);
  std::string v;
  for (const Anchor& a : anchors) {
    if (a.retention) continue;
    const std::string which =
        "the anchor" + (a.line ? " on line " + std::to_string(a.line) : std::string()) + " (seq " +
        std::to_string(a.seq) + ", published " + FormatTimestamp(a.ts_us) + ")";
    Hash hash{};
    std::memcpy(hash.data(), a.hash.data(), std::min(a.hash.size(), hash.size()));
    if (a.hash.size() != hash.size() ||
        !store::VerifySignature(a.public_key, store::CheckpointMessage(a.seq, hash), a.signature)) {
      Fail(r, a.seq, which + ": its signature does not verify");
      return;
    }
    if (a.seq < base) {
      if (published_cut < base) {
        Fail(r, a.seq,
             which + " is below the store's retention anchor (seq " + std::to_string(base) +
                 "), but no published retention cut reaches it: events were deleted from the "
                 "start of the chain");
        return;
      }
      ++r->anchors_before_retention;  // cut by retention: nothing left to compare
      continue;
    }
    if (a.seq == base && base > 0) {
      if (cs.anchor->hash != hash) {
        Fail(r, a.seq, which + ": the retention anchor's hash differs: the chain was rewritten");
        return;
      }
    } else if (a.seq > claimed) {
      Fail(r, a.seq,
           "the store ends at seq " + std::to_string(claimed) + " but " + which +
               " vouches for seq " + std::to_string(a.seq) +
               ": events were removed from the tail (rolled back)");
      return;
    } else {
      store::Record rec;
      rocksdb::Status got = im.db->Get(ro, im.events, store::SeqKey(a.seq), &v);
      if (!got.ok()) {
        Fail(r, a.seq,
             got.IsNotFound() ? "event missing: " + which + " vouches for it"
                              : "read failed: " + got.ToString());
        return;
      }
      if (!store::DecodeRecord(a.seq, v, &rec).ok() || rec.hash != hash) {
        Fail(r, a.seq,
             "the event differs from " + which +
                 ": the chain was rewritten after it was "
                 "published");
        return;
      }
    }
    if (!KnownKey(im.db.get(), im.meta, a.public_key)) {
      Fail(r, a.seq, which + " is signed by a key this store never used");
      return;
    }
    ++r->anchors_checked;
  }
}

}  // namespace

VerifyReport VerifyChain(const AuditStore::Impl& im, std::optional<uint64_t> from,
                         std::optional<uint64_t> to, const std::vector<Anchor>* anchors) {
  VerifyReport r;
  rocksdb::ReadOptions ro;
  const rocksdb::Snapshot* snap = im.db->GetSnapshot();
  ro.snapshot = snap;
  ChainState cs;
  std::string v;
  if (im.db->Get(ro, im.meta, kMetaHead, &v).ok() && v.size() == 40) {
    cs.head_seq = store::GetBigEndian64(v.data());
    std::memcpy(cs.head_hash.data(), v.data() + 8, 32);
  }
  if (im.db->Get(ro, im.meta, kMetaAnchor, &v).ok()) {
    store::Checkpoint a;
    if (!store::DecodeCheckpoint(v, &a).ok()) {
      im.db->ReleaseSnapshot(snap);
      Fail(&r, 0, "the retention anchor is malformed");
      return r;
    }
    cs.anchor = a;
  }
  uint64_t base = cs.anchor ? cs.anchor->seq : 0;  // events up to base were cut by retention
  {
    std::unique_ptr<rocksdb::Iterator> it(im.db->NewIterator(ro, im.checkpoints));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      store::Checkpoint cp;
      uint64_t key_seq = it->key().size() == 8 ? store::GetBigEndian64(it->key().data()) : 0;
      if (!store::DecodeCheckpoint(it->value().ToStringView(), &cp).ok() || cp.seq != key_seq) {
        if (!cs.bad_checkpoint_record) cs.bad_checkpoint_seq = key_seq;
        cs.bad_checkpoint_record = true;
        continue;
      }
      cs.checkpoints.emplace(cp.seq, std::move(cp));
    }
  }
  // The tail the store claims: the head, and anything a signed checkpoint vouches for.
  uint64_t claimed = std::max(cs.head_seq, base);
  if (!cs.checkpoints.empty()) claimed = std::max(claimed, cs.checkpoints.rbegin()->first);
  uint64_t first = std::max(from.value_or(base + 1), base + 1);
  uint64_t last = std::min(to.value_or(claimed), claimed);
  r.first_seq = first;
  r.last_seq = last;
  if (cs.bad_checkpoint_record && cs.bad_checkpoint_seq >= first && cs.bad_checkpoint_seq <= last) {
    im.db->ReleaseSnapshot(snap);
    Fail(&r, cs.bad_checkpoint_seq, "malformed checkpoint record");
    return r;
  }
  std::optional<Hash> prev;
  if (first == 1) {
    prev = Hash{};
  } else if (cs.anchor && first == base + 1) {
    std::string why = CheckSignature(im.db.get(), im.meta, *cs.anchor);
    if (!why.empty()) {
      im.db->ReleaseSnapshot(snap);
      Fail(&r, first, "retention anchor: " + why);
      return r;
    }
    prev = cs.anchor->hash;
  } else if (im.db->Get(ro, im.events, store::SeqKey(first - 1), &v).ok()) {
    store::Record before;
    if (store::DecodeRecord(first - 1, v, &before).ok()) prev = before.hash;
  }

  uint64_t expected = first;
  std::string upper = store::SeqKey(last + 1);
  rocksdb::Slice upper_slice(upper);
  ro.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(im.db->NewIterator(ro, im.events));
  store::Sha256 sha;
  store::Terms terms;
  for (it->Seek(store::SeqKey(first)); it->Valid() && r.ok && last >= first; it->Next()) {
    uint64_t seq = it->key().size() == 8 ? store::GetBigEndian64(it->key().data()) : 0;
    if (seq != expected) {
      Fail(&r, expected, "event missing (the next stored event is " + std::to_string(seq) + ")");
      break;
    }
    store::Record rec;
    if (!store::DecodeRecord(seq, it->value().ToStringView(), &rec).ok() ||
        !store::ExtractTerms(rec.canonical, &terms).ok()) {
      Fail(&r, seq, "event record is malformed");
      break;
    }
    if (terms.seq != seq) {
      Fail(&r, seq,
           "event stored under the wrong sequence number (it says " + std::to_string(terms.seq) +
               ")");
      break;
    }
    if (terms.ts != FormatTimestamp(rec.ts_us)) {
      Fail(&r, seq, "stored timestamp does not match the event");
      break;
    }
    if (prev && rec.prev_hash != *prev) {
      Fail(&r, seq, "prev_hash does not match the previous event's hash");
      break;
    }
    Hash computed;
    if (!sha.Chain(rec.prev_hash, rec.canonical, &computed).ok() || computed != rec.hash) {
      Fail(&r, seq, "hash mismatch: the event was altered");
      break;
    }
    if (auto cp = cs.checkpoints.find(seq); cp != cs.checkpoints.end()) {
      std::string why = CheckSignature(im.db.get(), im.meta, cp->second);
      if (why.empty() && cp->second.hash != rec.hash) why = "hash differs from the chain";
      if (!why.empty()) {
        Fail(&r, seq, "checkpoint: " + why);
        break;
      }
      ++r.checkpoints_verified;
    }
    if (seq == cs.head_seq && rec.hash != cs.head_hash) {
      Fail(&r, seq, "the stored chain head's hash differs from the chain");
      break;
    }
    prev = rec.hash;
    ++r.checked;
    ++expected;
  }
  if (r.ok && !it->status().ok()) Fail(&r, expected, "read failed: " + it->status().ToString());
  if (r.ok && expected <= last)
    Fail(&r, expected,
         "event missing: the chain ends at " + std::to_string(expected - 1) +
             " but the head or a checkpoint says " + std::to_string(last) + " exists");
  it.reset();
  if (r.ok && anchors != nullptr) CheckAnchors(im, ro, *anchors, cs, claimed, &r);
  im.db->ReleaseSnapshot(snap);
  return r;
}

Status AuditStore::Impl::PruneBlocks(rocksdb::WriteBatch* wb,
                                     const std::set<std::pair<Index, std::string>>& values,
                                     int64_t newest_cut_ts, uint64_t last_seq) {
  // A block holding a cut posting (ts <= newest_cut_ts) has its key below
  // newest_cut_ts + kBlockSpanUs. Cut postings are exactly those with seq <= last_seq (the cut
  // is a prefix of the sequence); a block keeps its other postings under its new newest one.
  std::vector<store::Posting> block, kept;
  std::string bytes;
  for (const auto& [index, value] : values) {
    std::string lower = index == Index::kTime ? std::string() : value + '\0';  // this value's keys
    std::string upper = lower;
    store::PutTimestamp(newest_cut_ts + store::kBlockSpanUs + 1, &upper);
    rocksdb::Slice lower_slice(lower), upper_slice(upper);
    rocksdb::ReadOptions ro;
    ro.iterate_lower_bound = &lower_slice;
    ro.iterate_upper_bound = &upper_slice;
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro, index_cf(index)));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      block.clear();
      if (!store::DecodeBlock(it->value().ToStringView(), &block).ok()) continue;
      kept.clear();
      for (const store::Posting& p : block)
        if (p.seq > last_seq) kept.push_back(p);
      if (kept.size() == block.size()) continue;
      wb->Delete(index_cf(index), it->key()).PermitUncheckedError();
      if (kept.empty()) continue;
      bytes.clear();
      store::EncodeBlock(kept, &bytes);
      wb->Put(index_cf(index), store::IndexKey(index, value, kept.back().ts_us, kept.back().seq),
              bytes)
          .PermitUncheckedError();
    }
    if (!it->status().ok()) return Unavailable("index scan failed: " + it->status().ToString());
  }
  return Status::Ok();
}

void AuditStore::Impl::RunRetention() {
  if (options.retention.count() <= 0 || read_only || !WriteBlocked().empty()) return;
  const int64_t cutoff = NowMicros() - static_cast<int64_t>(options.retention.count()) * 1000000;
  constexpr size_t kPerBatch = 10000;
  store::Terms terms;
  while (true) {
    rocksdb::WriteBatch wb;
    size_t n = 0;
    uint64_t last_seq = 0;
    Hash last_hash{};
    int64_t newest_cut_ts = INT64_MIN;
    // Index values of the cut events: only their posting blocks can hold cut postings.
    std::set<std::pair<Index, std::string>> values;
    values.emplace(Index::kTime, std::string());
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), events));
    // Only a prefix of the chain is cut, so what stays is one unbroken chain from the anchor.
    for (it->SeekToFirst(); it->Valid() && n < kPerBatch; it->Next()) {
      if (it->key().size() != 8) break;
      uint64_t seq = store::GetBigEndian64(it->key().data());
      store::Record rec;
      if (!store::DecodeRecord(seq, it->value().ToStringView(), &rec).ok()) break;
      if (rec.ts_us >= cutoff) break;
      wb.Delete(events, it->key()).PermitUncheckedError();
      if (store::ExtractTerms(rec.canonical, &terms).ok())
        for (auto& term : terms.values) values.insert(std::move(term));
      newest_cut_ts = std::max(newest_cut_ts, rec.ts_us);
      last_seq = seq;
      last_hash = rec.hash;
      ++n;
    }
    if (n > 0) {
      Status st = PruneBlocks(&wb, values, newest_cut_ts, last_seq);
      if (!st.ok()) {
        DBW_LOG(kError) << "audit retention pass failed: " << st.message();
        return;
      }
    }
    if (!it->status().ok() || n == 0) return;
    it.reset();
    store::Checkpoint anchor;
    anchor.seq = last_seq;
    anchor.hash = last_hash;
    anchor.ts_us = NowMicros();
    anchor.public_raw = key->public_raw();
    if (!key->Sign(store::CheckpointMessage(last_seq, last_hash), &anchor.signature).ok()) return;
    wb.Put(meta, kMetaAnchor, store::EncodeCheckpoint(anchor)).PermitUncheckedError();
    wb.DeleteRange(checkpoints, store::SeqKey(0), store::SeqKey(last_seq + 1))
        .PermitUncheckedError();
    rocksdb::WriteOptions wo;
    wo.sync = true;
    rocksdb::Status s = db->Write(wo, &wb);
    if (!s.ok()) {
      StopWriting(s, "audit retention pass");
      return;
    }
    PublishAnchor(anchor, /*retention=*/true);
    DBW_LOG(kInfo) << "audit retention: removed " << n << " events up to seq " << last_seq;
  }
}

}  // namespace dbw::audit
