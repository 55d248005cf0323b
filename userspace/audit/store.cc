// AuditStore: open/close, the producer queue and the group-commit writer thread.
#include "userspace/audit/store.h"

#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include <rocksdb/options.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/write_batch.h>

#include "userspace/audit/event_json.h"
#include "userspace/audit/store_impl.h"
#include "userspace/common/logging.h"
#include "userspace/common/thread_name.h"

namespace dbw::audit {
namespace {

using store::Hash;
using store::Index;

constexpr size_t kWakeThreshold = 256;
constexpr std::chrono::milliseconds kMaxDelay{20};
// Events per RocksDB write: large enough for group commit (a sync write covers them all), small
// enough that the write's buffers stay in cache and are reused.
constexpr size_t kMaxWriteEvents = 8192;
// Index values whose posting lists the writer keeps allocated between batches, per index.
constexpr size_t kMaxRetainedValues = 4096;

// Memtable insert hints. Every key of a column family shares one insertion point when its
// keys arrive in order (events by seq, the time index by ts|seq); an index
// key value|0x00|ts|seq arrives in order within its value, so the prefix is value|0x00.
// Without hints each insert walks the skip list from the top: ~13 cache-missing walks per
// event, which dominated the writer's CPU.
class WholeKeyOrderedPrefix : public rocksdb::SliceTransform {
 public:
  const char* Name() const override { return "dbwarden.ordered"; }
  rocksdb::Slice Transform(const rocksdb::Slice& key) const override { return {key.data(), 0}; }
  bool InDomain(const rocksdb::Slice&) const override { return true; }
};
class IndexValuePrefix : public rocksdb::SliceTransform {
 public:
  const char* Name() const override { return "dbwarden.index_value"; }
  rocksdb::Slice Transform(const rocksdb::Slice& key) const override {
    const void* nul = std::memchr(key.data(), 0, key.size());
    return {key.data(), static_cast<size_t>(static_cast<const char*>(nul) - key.data()) + 1};
  }
  bool InDomain(const rocksdb::Slice& key) const override {
    return std::memchr(key.data(), 0, key.size()) != nullptr;
  }
};

bool IsReadCommand(sql::Command c) {
  switch (c) {
    case sql::Command::kSelect:
    case sql::Command::kShow:
    case sql::Command::kExplain:
    case sql::Command::kFetch:
    case sql::Command::kDeclareCursor:
    case sql::Command::kClosePortal:
    case sql::Command::kSet:
    case sql::Command::kReset:
    case sql::Command::kTransaction:
    case sql::Command::kPrepare:
    case sql::Command::kDeallocate:
    case sql::Command::kDiscard:
    case sql::Command::kListen:
    case sql::Command::kUnlisten:
      return true;
    default:
      return false;
  }
}

QueuedEvent LossEvent(uint64_t lost, uint64_t unwritten, const std::string& reason) {
  QueuedEvent q;
  q.event.kind = EventKind::kAuditLoss;
  q.event.source = "agent";
  q.event.count = lost;
  if (unwritten == 0) {
    q.event.detail = "audit queue full; events dropped";
  } else if (unwritten == lost) {
    q.event.detail = "the audit store could not write them: " + reason;
  } else {
    q.event.detail = std::to_string(lost - unwritten) +
                     " dropped because the audit queue was "
                     "full, " +
                     std::to_string(unwritten) + " because the store could not " +
                     "write them: " + reason;
  }
  q.event.ts_us = NowMicros();
  return q;
}

}  // namespace

bool NeedsSync(const Event& event) {
  if (!event.statement) return false;
  const auto& facts = event.statement->facts;
  if (!facts) return true;  // never judged: it may have changed anything
  constexpr uint32_t kChanging = sql::kRiskWrite | sql::kRiskSchemaChange |
                                 sql::kRiskPrivilegeChange | sql::kRiskDestructive |
                                 sql::kRiskDataModifyingCte;
  if (facts->AllRisks() & kChanging) return true;
  if (facts->statements.empty()) return facts->unparseable;
  for (const auto& s : facts->statements)
    if (!IsReadCommand(s.command)) return true;
  return false;
}

AuditStore::Impl::~Impl() {
  if (anchor_fd >= 0) ::close(anchor_fd);
  if (db) {
    for (auto* h : handles) db->DestroyColumnFamilyHandle(h).PermitUncheckedError();
    db->Close().PermitUncheckedError();
  }
}

Status AuditStore::Impl::OpenDb(bool ro) {
  read_only = ro;
  rocksdb::DBOptions db_options;
  db_options.create_if_missing = !ro;
  db_options.create_missing_column_families = !ro;
  db_options.max_background_jobs = 4;
  // Every table file is opened once and kept (RocksDB's default, relied on): a read-only open
  // (`audit verify --state-dir` while the agent runs) keeps reading a file that the agent's
  // compaction deletes afterwards, through its descriptor.
  db_options.max_open_files = -1;
  // One writer thread: the insert hints below only apply to non-concurrent memtable writes.
  db_options.allow_concurrent_memtable_write = false;
  rocksdb::ColumnFamilyOptions cf_options;
  cf_options.write_buffer_size = 64 << 20;
  rocksdb::ColumnFamilyOptions ordered = cf_options;
  ordered.memtable_insert_with_hint_prefix_extractor = std::make_shared<WholeKeyOrderedPrefix>();
  rocksdb::ColumnFamilyOptions by_value = cf_options;
  by_value.memtable_insert_with_hint_prefix_extractor = std::make_shared<IndexValuePrefix>();
  std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
  cfs.emplace_back(rocksdb::kDefaultColumnFamilyName, cf_options);
  cfs.emplace_back("events", ordered);
  // No hints for checkpoints: retention cuts them with DeleteRange, and RocksDB 7.8 shares a
  // column family's hints between its point and range-deletion memtables (an assertion fails).
  cfs.emplace_back("checkpoints", cf_options);
  for (size_t i = 0; i < store::kIndexCount; ++i)
    cfs.emplace_back(store::IndexCfName(static_cast<Index>(i)),
                     static_cast<Index>(i) == Index::kTime ? ordered : by_value);
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s =
      ro ? rocksdb::DB::OpenForReadOnly(db_options, options.dir, cfs, &handles, &raw)
         : rocksdb::DB::Open(db_options, options.dir, cfs, &handles, &raw);
  if (!s.ok()) return Unavailable("cannot open audit store " + options.dir + ": " + s.ToString());
  db.reset(raw);
  meta = handles[0];
  events = handles[1];
  checkpoints = handles[2];
  for (size_t i = 0; i < store::kIndexCount; ++i) indexes[i] = handles[3 + i];
  return Status::Ok();
}

Status AuditStore::Impl::LoadHead() {
  std::string v;
  rocksdb::Status s = db->Get(rocksdb::ReadOptions(), meta, kMetaHead, &v);
  if (s.IsNotFound()) return Status::Ok();  // empty store: the chain starts at zeros
  if (!s.ok()) return Unavailable("cannot read the chain head: " + s.ToString());
  if (v.size() != 40) return DataLoss("malformed chain head");
  uint64_t seq = store::GetBigEndian64(v.data());
  std::memcpy(head_hash.data(), v.data() + 8, 32);
  next_seq = seq + 1;
  head_seq.store(seq);
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), checkpoints));
  it->SeekToLast();
  if (it->Valid() && it->key().size() == 8)
    last_checkpoint_seq = store::GetBigEndian64(it->key().data());
  return Status::Ok();
}

StatusOr<std::unique_ptr<AuditStore>> AuditStore::Open(const StoreOptions& options) {
  std::error_code ec;
  std::filesystem::create_directories(options.dir, ec);
  if (ec) return Unavailable("cannot create " + options.dir + ": " + ec.message());
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  if (impl->options.queue_capacity == 0) impl->options.queue_capacity = 1;
  std::string key_path = options.signing_key_path.empty() ? options.dir + "/signing-key.pem"
                                                          : options.signing_key_path;
  auto key = store::SigningKey::LoadOrCreate(key_path);
  if (!key.ok()) return key.status();
  impl->key = std::move(*key);
  impl->public_pem = impl->key->public_pem();
  DBW_RETURN_IF_ERROR(impl->OpenDb(false));
  DBW_RETURN_IF_ERROR(impl->LoadHead());
  // Record the signing key so Verify (also read-only, without the private key) knows it.
  rocksdb::WriteBatch wb;
  wb.Put(impl->meta, kMetaPubkey, impl->key->public_raw());
  wb.Put(impl->meta, std::string(kMetaKeyPrefix) + impl->key->public_raw(), "");
  rocksdb::WriteOptions wo;
  wo.sync = true;
  rocksdb::Status s = impl->db->Write(wo, &wb);
  if (!s.ok()) return Unavailable("cannot record the signing key: " + s.ToString());

  auto& m = MetricsRegistry::Global();
  impl->m_written = m.GetCounter("dbwarden_audit_events_written_total", "Audit events written");
  impl->m_dropped = m.GetCounter("dbwarden_audit_events_dropped_total",
                                 "Audit events dropped because the queue was full");
  impl->m_failures = m.GetCounter("dbwarden_audit_commit_failures_total",
                                  "Audit batches the store could not commit");
  impl->m_queue_depth =
      m.GetGauge("dbwarden_audit_queue_depth", "Audit events waiting to be written");
  impl->m_head_seq =
      m.GetGauge("dbwarden_audit_chain_head_seq", "Sequence number of the chain head");
  impl->m_write_stopped =
      m.GetGauge("dbwarden_audit_store_write_stopped",
                 "1 while the audit store writes nothing (less than 256 MiB free, or a failed "
                 "write until restart): statements that must be audited first are refused");
  impl->m_write_stopped->Set(0);
  impl->m_commit = m.GetHistogram("dbwarden_audit_commit_duration_seconds",
                                  "Time to commit one audit batch to RocksDB");
  impl->m_head_seq->Set(static_cast<int64_t>(impl->head_seq.load()));
  impl->m_anchor_seq = m.GetGauge("dbwarden_audit_anchor_seq",
                                  "Sequence number of the last checkpoint published to "
                                  "audit.anchor_file");
  impl->m_anchor_failures =
      m.GetCounter("dbwarden_audit_anchor_failures_total",
                   "Checkpoints that could not be appended to audit.anchor_file");
  impl->m_tamper = m.GetGauge(
      "dbwarden_audit_tamper_detected",
      "1 when the audit store failed its start-up check (rolled back behind its published "
      "anchor, or its chain broken): /readyz is 503");
  impl->m_memtable_bytes = m.GetGauge(
      "dbwarden_audit_memtable_bytes",
      "Bytes in the audit store's RocksDB memtables (all column families), flushed to disk "
      "at 64 MiB per column family");
  impl->m_table_reader_bytes = m.GetGauge("dbwarden_audit_table_reader_bytes",
                                          "Bytes held by the audit store's open table readers");
  impl->m_intent_appends = m.GetCounter(
      "dbwarden_audit_intent_appends_total",
      "Audit records written to a relay worker's intent log (audit-before-forward without "
      "waiting for the writer)");
  impl->m_intent_full = m.GetCounter(
      "dbwarden_audit_intent_log_full_total",
      "Audit-before-forward events that waited for the writer because their intent log was "
      "full");
  impl->m_intent_replayed =
      m.GetCounter("dbwarden_audit_intent_replayed_total",
                   "Audit records replayed at start from intent logs of an earlier run");
  DBW_RETURN_IF_ERROR(impl->OpenAnchorFile());
  // Before retention: what is checked is the store as found.
  impl->CheckIntegrityAtOpen();
  impl->last_checkpoint_time = std::chrono::steady_clock::now();
  impl->RecoverIntents();
  impl->RunRetention();
  impl->next_retention = std::chrono::steady_clock::now() + options.retention_check_every;
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] { raw->Run(); });
  auto store = std::unique_ptr<AuditStore>(new AuditStore(std::move(impl)));
  if (!raw->integrity_problem.empty()) {
    Event e;
    e.kind = EventKind::kAuditTamper;
    e.source = "agent";
    e.detail = raw->integrity_problem;
    store->Submit(std::move(e));
  }
  return store;
}

StatusOr<std::unique_ptr<AuditStore>> AuditStore::OpenReadOnly(const std::string& dir) {
  auto impl = std::make_unique<Impl>();
  impl->options.dir = dir;
  // The running agent may replace the MANIFEST or delete a file between the reads an open
  // makes: such an open fails, and the next one sees the new state.
  Status opened;
  for (int attempt = 0; attempt < 5; ++attempt) {
    if (attempt > 0) {
      impl = std::make_unique<Impl>();
      impl->options.dir = dir;
      std::this_thread::sleep_for(std::chrono::milliseconds(50 * attempt));
    }
    opened = impl->OpenDb(true);
    if (opened.ok() || !std::filesystem::exists(dir + "/CURRENT")) break;
  }
  DBW_RETURN_IF_ERROR(opened);
  DBW_RETURN_IF_ERROR(impl->LoadHead());
  std::string raw_key;
  if (impl->db->Get(rocksdb::ReadOptions(), impl->meta, kMetaPubkey, &raw_key).ok())
    impl->public_pem = store::PublicPemFromRaw(raw_key);
  return std::unique_ptr<AuditStore>(new AuditStore(std::move(impl)));
}

AuditStore::AuditStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

AuditStore::~AuditStore() {
  if (impl_->thread.joinable()) {
    {
      std::lock_guard<std::mutex> lock(impl_->mu);
      impl_->stop = true;
    }
    impl_->cv.notify_all();
    impl_->thread.join();
    impl_->CloseIntentLogs();
  }
}

void AuditStore::Submit(Event event) {
  Impl& im = *impl_;
  if (im.read_only) {
    im.dropped.fetch_add(1);
    return;
  }
  bool sync = im.options.durability == Durability::kSync ||
              (im.options.durability == Durability::kAuto && NeedsSync(event));
  QueuedEvent q;
  if (event.ts_us == 0) event.ts_us = NowMicros();  // when it happened, not when written
  q.event = std::move(event);
  q.sync = sync;
  {
    std::lock_guard<std::mutex> lock(im.mu);
    if (im.queue.size() >= im.options.queue_capacity) {
      ++im.lost;
      im.dropped.fetch_add(1);
      im.m_dropped->Add();
      return;
    }
    im.queue.push_back(std::move(q));
    ++im.submitted;
    im.m_queue_depth->Set(static_cast<int64_t>(im.queue.size()));
    // Waking the writer per event would cost a futex call per statement; it wakes every
    // kMaxDelay anyway, and at once for a sync event or a large backlog.
    if (!sync && im.queue.size() < kWakeThreshold) return;
    im.wake = true;
  }
  im.cv.notify_one();
}

void AuditStore::SubmitAndWait(Event event, CommitCallback done) {
  Impl& im = *impl_;
  if (im.read_only) {
    done(FailedPrecondition("the audit store is open read-only"), 0);
    return;
  }
  bool sync = im.options.durability == Durability::kSync ||
              (im.options.durability == Durability::kAuto && NeedsSync(event));
  QueuedEvent q;
  if (event.ts_us == 0) event.ts_us = NowMicros();
  // The intent path: only while the store writes (blocked is refreshed by the writer at least
  // every kMaxDelay, idle or not), so that a store that cannot write refuses statements as
  // before. An event logged just before it stopped is kept and written once it can, or
  // replayed at the next start: its intent log entry is as durable as an async commit.
  if (!sync && im.intent_ok.load(std::memory_order_relaxed) && !im.blocked.load() &&
      !im.write_failed.load()) {
    if (IntentLog* log = im.ThreadIntentLog(); log != nullptr) {
      event.seq = 0;
      q.rendered.resize(sizeof(event.ts_us));
      std::memcpy(q.rendered.data(), &event.ts_us, sizeof(event.ts_us));
      AppendEventJson(event, &q.rendered);
      IntentLog::Appended at;
      if (log->Append(q.rendered, &at)) {
        q.event = std::move(event);
        q.intent = log;
        q.intent_name = &log->name();
        q.intent_seq = at.seq;
        q.intent_end = at.end;
        im.m_intent_appends->Add();
        bool notify = false;
        {
          // Not refused for a full queue: it already is in its log, and the ring bounds how
          // many such events wait.
          std::lock_guard<std::mutex> lock(im.mu);
          im.queue.push_back(std::move(q));
          ++im.submitted;
          im.m_queue_depth->Set(static_cast<int64_t>(im.queue.size()));
          if (im.queue.size() >= kWakeThreshold) notify = im.wake = true;
        }
        if (notify) im.cv.notify_one();
        done(Status::Ok(), 0);
        return;
      }
      im.m_intent_full->Add();  // the writer is a ring behind: wait for it as before
      q.rendered.clear();
    }
  }
  q.event = std::move(event);
  q.sync = sync;
  q.done = std::move(done);
  {
    std::unique_lock<std::mutex> lock(im.mu);
    if (im.queue.size() >= im.options.queue_capacity) {
      lock.unlock();
      q.done(ResourceExhausted("audit queue full"), 0);
      return;
    }
    im.queue.push_back(std::move(q));
    ++im.submitted;
    im.m_queue_depth->Set(static_cast<int64_t>(im.queue.size()));
    im.wake = true;
  }
  im.cv.notify_one();
}

void AuditStore::Flush() {
  Impl& im = *impl_;
  if (im.read_only) return;
  std::unique_lock<std::mutex> lock(im.mu);
  uint64_t target = im.submitted;
  im.flush_requested = true;
  im.cv.notify_one();
  // Not for what the store cannot write now: those are counted in `lost` and reported by the
  // first audit_loss event written after writing resumes.
  im.flushed_cv.wait(lock,
                     [&] { return im.done >= target && (im.lost == 0 || im.blocked.load()); });
}

bool AuditStore::WaitForNewer(uint64_t after_seq, std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lock(impl_->head_mu);
  return impl_->head_cv.wait_for(lock, timeout, [&] { return impl_->head_seq.load() > after_seq; });
}

StoreStats AuditStore::Stats() const {
  StoreStats s;
  s.head_seq = impl_->head_seq.load();
  s.events_written = impl_->written.load();
  s.dropped = impl_->dropped.load();
  s.commit_failures = impl_->commit_failures.load();
  std::lock_guard<std::mutex> lock(impl_->mu);
  s.queue_depth = impl_->queue.size();
  return s;
}

std::string AuditStore::PublicKeyPem() const {
  return impl_->public_pem;
}

void AuditStore::Impl::CommitQueued(Batch* batch, uint64_t lost_now, uint64_t unwritten_now,
                                    const std::string& reason) {
  if (lost_now > 0) batch->push_front(LossEvent(lost_now, unwritten_now, reason));
  // Committed in slices of kMaxWriteEvents: a bounded WriteBatch, reused, stays in cache
  // (one write of a whole backlog grew a buffer of tens of MB through fresh pages).
  for (size_t begin = 0; begin < batch->size(); begin += kMaxWriteEvents) {
    size_t end = std::min(batch->size(), begin + kMaxWriteEvents);
    CommitBatch(batch->begin() + static_cast<ptrdiff_t>(begin),
                batch->begin() + static_cast<ptrdiff_t>(end));
  }
}

void AuditStore::Impl::Run() {
  SetThreadName("dbw-audit");
  Batch batch;
  while (true) {
    uint64_t lost_now = 0, unwritten_now = 0;
    std::string lost_reason_now;
    bool stopping = false;
    {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait_for(lock, kMaxDelay, [this] { return stop || flush_requested || wake; });
      flush_requested = false;
      wake = false;
      stopping = stop;
      batch.swap(queue);
      lost_now = lost;
      unwritten_now = lost_unwritten;
      lost_reason_now.swap(lost_reason);
      lost = lost_unwritten = 0;
      m_queue_depth->Set(0);
    }
    size_t taken = batch.size();  // the audit_loss event CommitQueued adds is not a submission
    // Intent events a failed batch kept go first: the chain keeps their order.
    if (!retry.empty() && (taken > 0 || lost_now > 0 || WriteBlocked().empty())) {
      while (!retry.empty()) {
        batch.push_front(std::move(retry.back()));
        retry.pop_back();
      }
    }
    CommitQueued(&batch, lost_now, unwritten_now, lost_reason_now);
    if (batch.empty())
      blocked.store(!WriteBlocked().empty());  // also while idle: see SubmitAndWait
    if (retry.empty()) intent_ok.store(true);
    MaybeTimedCheckpoint(stopping);
    if (std::chrono::steady_clock::now() >= next_retention) {
      RunRetention();
      next_retention = std::chrono::steady_clock::now() + options.retention_check_every;
    }
    {
      std::lock_guard<std::mutex> lock(mu);
      done += taken;
    }
    flushed_cv.notify_all();
    batch.clear();
    if (stopping) {
      std::lock_guard<std::mutex> lock(mu);
      if (queue.empty() && lost == 0 && retry.empty()) return;
      if (blocked.load()) {
        // Shutting down while the store cannot write: waiting would never end. What could not
        // be written is said where it can still be read: the log (the journal). Intent events
        // stay in their logs and are replayed at the next start.
        DBW_LOG(kError) << "audit store: stopping with " << lost + queue.size()
                        << " events that could not be written (" << lost_reason << ")"
                        << (retry.empty() ? ""
                                          : "; " + std::to_string(retry.size()) +
                                                " are kept in intent logs for the next start");
        return;
      }
    }
  }
}

Status AuditStore::Impl::AddCheckpoint(rocksdb::WriteBatch* wb, uint64_t seq, const Hash& hash,
                                       store::Checkpoint* out) {
  store::Checkpoint& cp = *out;
  cp.seq = seq;
  cp.hash = hash;
  cp.ts_us = NowMicros();
  cp.public_raw = key->public_raw();
  DBW_RETURN_IF_ERROR(key->Sign(store::CheckpointMessage(seq, hash), &cp.signature));
  rocksdb::Status s = wb->Put(checkpoints, store::SeqKey(seq), store::EncodeCheckpoint(cp));
  if (!s.ok()) return Internal("cannot add checkpoint: " + s.ToString());
  return Status::Ok();
}

void AuditStore::Impl::MaybeTimedCheckpoint(bool force) {
  if (!WriteBlocked().empty()) return;
  uint64_t head = next_seq - 1;
  if (head == last_checkpoint_seq) return;
  if (!force && std::chrono::steady_clock::now() - last_checkpoint_time < options.checkpoint_every)
    return;
  rocksdb::WriteBatch wb;
  store::Checkpoint cp;
  Status st = AddCheckpoint(&wb, head, head_hash, &cp);
  rocksdb::WriteOptions wo;
  wo.sync = true;
  rocksdb::Status s = st.ok() ? db->Write(wo, &wb) : rocksdb::Status::Aborted(st.message());
  if (!s.ok()) {
    if (st.ok())
      StopWriting(s, "audit checkpoint");
    else
      DBW_LOG(kError) << "audit checkpoint failed: " << s.ToString();
    return;
  }
  last_checkpoint_seq = head;
  last_checkpoint_time = std::chrono::steady_clock::now();
  PublishAnchor(cp);
}

void AuditStore::Impl::FailBatch(Batch::iterator first, Batch::iterator last,
                                 const std::string& message) {
  commit_failures.fetch_add(1);
  m_failures->Add();
  Status err = Unavailable("audit commit failed: " + message);
  uint64_t unreported = 0;
  for (auto it = first; it != last; ++it) {
    if (it->intent_name != nullptr) {
      // Already ran (or, replayed, ran before a crash): kept, and written first once the
      // store can write; its log keeps it too until then.
      intent_ok.store(false);
      retry.push_back(std::move(*it));
      continue;
    }
    if (it->done)
      it->done(err, 0);
    else if (it->event.kind == EventKind::kAuditLoss)
      unreported += it->event.count;  // the report of earlier drops: they stay unreported
    else
      ++unreported;
  }
  // Events nobody waits for are reported as lost by the next batch's audit_loss event.
  std::lock_guard<std::mutex> lock(mu);
  lost += unreported;
  lost_unwritten += unreported;
  lost_reason = message;
  dropped.fetch_add(unreported);
  m_dropped->Add(unreported);
}

std::string AuditStore::Impl::WriteBlocked() {
  if (!write_error.empty())
    return "the store stopped writing after a failed write (" + write_error +
           "); restart dbwarden once the cause is fixed";
  auto now = std::chrono::steady_clock::now();
  if (!low_space && now < next_space_check) return "";
  next_space_check = now + kSpaceCheckEvery;
  struct statvfs fs {};
  bool low = ::statvfs(options.dir.c_str(), &fs) == 0 &&  // unknown: let RocksDB try
             static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize < kReserveBytes;
  if (low != low_space) {
    low_space = low;
    m_write_stopped->Set(low ? 1 : 0);
    if (low)
      DBW_LOG(kError) << "audit store: less than " << (kReserveBytes >> 20) << " MiB free under "
                      << options.dir << "; nothing is written (statements that must be audited "
                      << "first are refused) until space is freed";
    else
      DBW_LOG(kWarning) << "audit store: space freed under " << options.dir << "; writing again";
  }
  return low ? "less than " + std::to_string(kReserveBytes >> 20) + " MiB free under " + options.dir
             : "";
}

void AuditStore::Impl::SampleMemory() {
  auto now = std::chrono::steady_clock::now();
  if (now < next_memory_sample) return;
  next_memory_sample = now + std::chrono::seconds(1);
  uint64_t v = 0;
  if (db->GetAggregatedIntProperty(rocksdb::DB::Properties::kCurSizeAllMemTables, &v))
    m_memtable_bytes->Set(static_cast<int64_t>(v));
  if (db->GetAggregatedIntProperty(rocksdb::DB::Properties::kEstimateTableReadersMem, &v))
    m_table_reader_bytes->Set(static_cast<int64_t>(v));
}

Status AuditStore::Integrity() const {
  if (impl_->integrity_problem.empty()) return Status::Ok();
  return FailedPrecondition(impl_->integrity_problem);
}

Status AuditStore::Writable() const {
  const Impl& im = *impl_;
  if (im.read_only) return FailedPrecondition("the audit store is open read-only");
  if (im.write_failed.load())
    return Unavailable(
        "the audit store stopped writing after a failed write; restart dbwarden "
        "once the cause is fixed");
  // Now, not as of the last batch: an idle store that got its space back is writable.
  struct statvfs fs {};
  if (::statvfs(im.options.dir.c_str(), &fs) == 0 &&
      static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize < Impl::kReserveBytes)
    return Unavailable("less than " + std::to_string(Impl::kReserveBytes >> 20) +
                       " MiB free under " + im.options.dir + ": the audit log writes nothing");
  return Status::Ok();
}

void AuditStore::Impl::StopWriting(const rocksdb::Status& s, std::string_view what) {
  write_error = s.ToString();
  write_failed.store(true);
  m_write_stopped->Set(1);
  DBW_LOG(kError) << what << " failed: " << write_error
                  << "; the audit store writes nothing more until dbwarden restarts: "
                     "statements that must be audited first are refused";
}

void AuditStore::Impl::CommitBatch(Batch::iterator first, Batch::iterator last) {
  if (std::string why = WriteBlocked(); !why.empty()) {
    blocked.store(true);
    FailBatch(first, last, why);
    return;
  }
  blocked.store(false);
  auto start = std::chrono::steady_clock::now();
  rocksdb::WriteBatch& wb = write_batch;
  wb.Clear();  // keeps its buffer
  uint64_t seq = next_seq;
  Hash prev = head_hash;
  bool sync = false;
  std::string& record = record_buffer;
  std::vector<std::pair<Index, std::string>>& terms = term_buffer;
  Status st;
  // One posting block per index value per batch instead of one key per event and value: a
  // batch of N events writes N records plus one key per distinct value.
  // The per-value lists live across batches (cleared, not freed): values recur.
  time_postings.clear();
  intent_marks.clear();
  for (auto& values : term_postings) {
    if (values.size() > kMaxRetainedValues) values.clear();
    for (auto& [value, postings] : values) postings.clear();
  }
  // Per index, the posting list the previous term went to (the map's nodes do not move).
  std::array<std::pair<const std::string, std::vector<store::Posting>>*, store::kIndexCount>
      last_term{};
  for (auto it = first; it != last; ++it) {
    QueuedEvent& q = *it;
    // Rendered here, on the writer thread, so the relay's workers do not pay for it.
    // The record is built in place: header with a zero hash, the JSON, then the hash over it.
    q.event.seq = seq;
    record.clear();
    store::EncodeRecord(q.event.ts_us, prev, Hash{}, {}, &record);
    if (q.rendered.empty()) {
      AppendEventJson(q.event, &record);
    } else {
      // The producer's JSON with its "seq":0 replaced by the seq assigned here.
      static constexpr std::string_view kSeqZero = "{\"seq\":0";
      std::string_view json = std::string_view(q.rendered).substr(sizeof(int64_t));
      if (json.substr(0, kSeqZero.size()) != kSeqZero) {
        st = DataLoss("an intent log record does not start with its seq");
        break;
      }
      record.append("{\"seq\":").append(std::to_string(seq));
      record.append(json.substr(kSeqZero.size()));
    }
    Hash hash;
    st = sha.Chain(prev, std::string_view(record).substr(store::kRecordHeader), &hash);
    if (!st.ok()) break;
    std::memcpy(record.data() + store::kRecordHeader - hash.size(), hash.data(), hash.size());
    wb.Put(events, store::SeqKey(seq), record).PermitUncheckedError();
    store::Posting posting{q.event.ts_us, seq};
    time_postings.push_back(posting);
    // Equal to ExtractTerms over the stored JSON (what Query checks on decoded events).
    if (q.recovered) {
      store::Terms parsed;
      st = store::ExtractTerms(std::string_view(record).substr(store::kRecordHeader), &parsed);
      if (!st.ok()) break;
      terms = std::move(parsed.values);
    } else {
      store::EventTerms(q.event, &terms);
    }
    if (q.intent_name != nullptr) NoteIntent(q);
    for (auto& [index, value] : terms) {
      // Consecutive events mostly repeat a value (the same user, target, kind): compared
      // with the last one of its index before it is hashed.
      auto*& hit = last_term[static_cast<size_t>(index)];
      if (hit == nullptr || hit->first != value)
        hit = &*term_postings[static_cast<size_t>(index)].try_emplace(std::move(value)).first;
      hit->second.push_back(posting);
    }
    sync |= q.sync;
    prev = hash;
    ++seq;
  }
  if (st.ok()) {
    PutBlocks(&wb, Index::kTime, {}, &time_postings);
    for (size_t i = 0; i < store::kIndexCount; ++i)
      for (auto& [value, postings] : term_postings[i])
        if (!postings.empty()) PutBlocks(&wb, static_cast<Index>(i), value, &postings);
  }
  for (const IntentMark& m : intent_marks) {
    std::string value;
    store::PutBigEndian64(m.seq, &value);
    wb.Put(meta, std::string(kMetaIntentPrefix) + *m.name, value).PermitUncheckedError();
  }
  uint64_t head = seq - 1;
  std::string head_value = store::SeqKey(head);
  head_value.append(reinterpret_cast<const char*>(prev.data()), prev.size());
  wb.Put(meta, kMetaHead, head_value).PermitUncheckedError();
  bool checkpoint = st.ok() && head - last_checkpoint_seq >= options.checkpoint_every_events;
  store::Checkpoint cp;
  if (checkpoint) st = AddCheckpoint(&wb, head, prev, &cp);
  rocksdb::WriteOptions wo;
  // A checkpoint is published once written: it must be durable first, or a host crash could
  // leave the store behind its own published anchor (a false rollback alarm).
  wo.sync = sync || (checkpoint && anchor_fd >= 0);
  rocksdb::Status s = st.ok() ? db->Write(wo, &wb) : rocksdb::Status::Aborted(st.message());
  m_commit->ObserveMicros(
      static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                std::chrono::steady_clock::now() - start)
                                .count()));
  if (!s.ok()) {
    if (st.ok())
      StopWriting(s, "audit commit");  // RocksDB itself failed (an I/O error)
    else
      DBW_LOG(kError) << "audit commit failed: " << s.ToString();
    FailBatch(first, last, s.ToString());
    return;
  }
  for (const IntentMark& m : intent_marks)
    if (m.log != nullptr) m.log->Drained(m.end);
  uint64_t first_seq = next_seq;
  next_seq = seq;
  head_hash = prev;
  if (checkpoint) {
    last_checkpoint_seq = head;
    last_checkpoint_time = std::chrono::steady_clock::now();
    PublishAnchor(cp);
  }
  SampleMemory();
  auto count = static_cast<uint64_t>(last - first);
  written.fetch_add(count);
  m_written->Add(count);
  m_head_seq->Set(static_cast<int64_t>(head));
  {
    std::lock_guard<std::mutex> lock(head_mu);
    head_seq.store(head);
  }
  head_cv.notify_all();
  uint64_t i = first_seq;
  for (auto it = first; it != last; ++it) {
    if (it->done) it->done(Status::Ok(), i);
    ++i;
  }
}

void AuditStore::Impl::PutBlocks(rocksdb::WriteBatch* wb, Index index, std::string_view value,
                                 std::vector<store::Posting>* postings) {
  // Submission order is nearly ts order; sort only when it is not.
  if (!std::is_sorted(postings->begin(), postings->end()))
    std::sort(postings->begin(), postings->end());
  std::string& bytes = block_buffer;
  store::ForEachBlock(*postings, [&](size_t begin, size_t end) {
    std::span<const store::Posting> block(postings->data() + begin, end - begin);
    bytes.clear();
    store::EncodeBlock(block, &bytes);
    const store::Posting& last = block.back();
    wb->Put(index_cf(index), store::IndexKey(index, value, last.ts_us, last.seq), bytes)
        .PermitUncheckedError();
  });
}

Status AuditStore::Impl::ReadRecord(const rocksdb::Snapshot* snapshot, uint64_t seq,
                                    std::string* raw) const {
  rocksdb::ReadOptions ro;
  ro.snapshot = snapshot;
  rocksdb::Status s = db->Get(ro, events, store::SeqKey(seq), raw);
  if (s.IsNotFound()) return NotFound("no event " + std::to_string(seq));
  if (!s.ok()) return Unavailable("cannot read event " + std::to_string(seq) + ": " + s.ToString());
  return Status::Ok();
}

}  // namespace dbw::audit
