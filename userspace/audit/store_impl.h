// AuditStore::Impl: the RocksDB handles, the writer thread's state and the producer queue.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include "userspace/audit/intent_log.h"
#include "userspace/audit/store.h"
#include "userspace/audit/store_codec.h"
#include "userspace/audit/store_signing.h"
#include "userspace/common/metrics.h"

namespace dbw::audit {

// An event as queued: the writer renders it (JSON with its seq, index terms), hashes and writes
// it, so producers (the relay's workers) only pay for the queue.
struct QueuedEvent {
  Event event;  // ts_us already stamped
  bool sync = false;
  EventSink::CommitCallback done;  // may be empty
  // Rendered by the producer (the intent path) or read back from an intent log (recovery):
  // ts_us (8 bytes, native order) | the event's JSON with "seq":0. Empty: the writer renders.
  std::string rendered;
  bool recovered = false;  // `event` is empty but for ts_us: index terms come from the JSON
  // The intent log entry that holds this event (intent_name null: none). The commit records
  // intent_seq under meta "intent/<name>" in the same write, and then marks the log drained up
  // to intent_end (live logs only).
  IntentLog* intent = nullptr;
  const std::string* intent_name = nullptr;
  uint64_t intent_seq = 0;
  uint64_t intent_end = 0;
};

struct AuditStore::Impl {
  ~Impl();
  Status OpenDb(bool read_only);
  Status LoadHead();

  // Writer thread.
  void Run();
  // Commits a batch taken from the queue (with an audit_loss event first when lost_now > 0).
  // `unwritten_now` of them could not be written, for `reason`.
  void CommitQueued(std::deque<QueuedEvent>* batch, uint64_t lost_now, uint64_t unwritten_now,
                    const std::string& reason);
  using Batch = std::deque<QueuedEvent>;
  // Writes [first, last) as one RocksDB write; on failure fails their callbacks and counts the
  // others as lost (the next batch reports them).
  void CommitBatch(Batch::iterator first, Batch::iterator last);
  // Tells every waiter of [first, last) that the batch failed; events nobody waits for are
  // counted as lost (the next batch's audit_loss event reports them).
  void FailBatch(Batch::iterator first, Batch::iterator last, const std::string& message);
  Status AddCheckpoint(rocksdb::WriteBatch* wb, uint64_t seq, const store::Hash& hash,
                       store::Checkpoint* out);
  void MaybeTimedCheckpoint(bool force);
  void RunRetention();
  // Removes the postings with seq <= last_seq from the blocks of `values` (retention).
  Status PruneBlocks(rocksdb::WriteBatch* wb,
                     const std::set<std::pair<store::Index, std::string>>& values,
                     int64_t newest_cut_ts, uint64_t last_seq);
  // Writes `postings` (one index value's postings of a batch) as posting blocks.
  void PutBlocks(rocksdb::WriteBatch* wb, store::Index index, std::string_view value,
                 std::vector<store::Posting>* postings);

  rocksdb::ColumnFamilyHandle* index_cf(store::Index i) const {
    return indexes[static_cast<size_t>(i)];
  }
  // Anchors (store_anchors.cc): the anchor file, opened at Open; each checkpoint the writer
  // commits is appended to it; the check at Open against its newest line.
  Status OpenAnchorFile();
  // `retention`: the anchor of a retention cut (published so that verify can tell a real cut
  // from a store whose oldest events were deleted and a checkpoint moved into its place).
  void PublishAnchor(const store::Checkpoint& cp, bool retention = false);
  void CheckIntegrityAtOpen();
  int anchor_fd = -1;
  bool anchor_torn = false;       // the file ends without '\n' (a crash or a short write)
  std::string integrity_problem;  // set once at Open; "" when the check passed
  Gauge* m_anchor_seq = nullptr;
  Counter* m_anchor_failures = nullptr;
  Gauge* m_tamper = nullptr;
  // RocksDB's memory that grows with writes (memtables until they are flushed; table readers),
  // sampled by the writer at most once a second: what the agent's RSS growth under load is.
  Gauge* m_memtable_bytes = nullptr;
  Gauge* m_table_reader_bytes = nullptr;
  std::chrono::steady_clock::time_point next_memory_sample{};
  void SampleMemory();

  // Intent logs (store_intent.cc). The calling thread's log, created on its first use; null
  // when the path is off, the thread limit is reached or the file cannot be made.
  IntentLog* ThreadIntentLog();
  // At Open, before the writer starts: commits every entry of the intent logs left by an
  // earlier run that the store's marks do not cover, then removes those logs.
  void RecoverIntents();
  // At close, after the writer stopped: removes this run's logs when all they hold is
  // committed (else they are left for the next start to replay).
  void CloseIntentLogs();
  uint64_t store_id = 0;  // tells this store's thread-local log from another's
  std::string intent_dir;
  std::string intent_run;  // this run's log names start with it
  std::mutex intent_mu;    // guards intent_logs
  std::vector<std::unique_ptr<IntentLog>> intent_logs;
  // Producers may take the intent path: false while events of intent logs wait in `retry`
  // (the store could not write them), so that no statement runs ahead of what it cannot write.
  std::atomic<bool> intent_ok{true};
  // Writer thread: intent events of batches that failed. They already ran; they are written
  // first once the store can write again, or replayed from their logs at the next start.
  std::deque<QueuedEvent> retry;
  Counter* m_intent_appends = nullptr;
  Counter* m_intent_full = nullptr;
  Counter* m_intent_replayed = nullptr;

  // Reads the record stored at seq under `snapshot`; kNotFound when absent.
  Status ReadRecord(const rocksdb::Snapshot* snapshot, uint64_t seq, std::string* raw) const;

  StoreOptions options;
  bool read_only = false;
  std::unique_ptr<rocksdb::DB> db;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;  // owned; destroyed before db
  rocksdb::ColumnFamilyHandle* meta = nullptr;
  rocksdb::ColumnFamilyHandle* events = nullptr;
  rocksdb::ColumnFamilyHandle* checkpoints = nullptr;
  std::array<rocksdb::ColumnFamilyHandle*, store::kIndexCount> indexes{};
  std::unique_ptr<store::SigningKey> key;  // writer only
  std::string public_pem;

  // Writer thread only (set before it starts).
  uint64_t next_seq = 1;
  store::Hash head_hash{};
  uint64_t last_checkpoint_seq = 0;
  std::chrono::steady_clock::time_point last_checkpoint_time;
  std::chrono::steady_clock::time_point next_retention;
  store::Sha256 sha;
  rocksdb::WriteBatch write_batch;  // reused by every commit
  std::string record_buffer;
  std::string block_buffer;  // PutBlocks' encoded block, reused
  std::vector<std::pair<store::Index, std::string>> term_buffer;
  // One batch's postings: of every event (kTime), and of each index value.
  std::vector<store::Posting> time_postings;
  std::array<std::unordered_map<std::string, std::vector<store::Posting>>, store::kIndexCount>
      term_postings;
  // One batch's newest entry per intent log.
  struct IntentMark {
    const std::string* name = nullptr;
    IntentLog* log = nullptr;  // null for a replayed log
    uint64_t seq = 0;
    uint64_t end = 0;
  };
  std::vector<IntentMark> intent_marks;
  void NoteIntent(const QueuedEvent& q) {
    for (IntentMark& m : intent_marks)
      if (m.name == q.intent_name) {
        m.seq = std::max(m.seq, q.intent_seq);
        m.end = std::max(m.end, q.intent_end);
        return;
      }
    intent_marks.push_back({q.intent_name, q.intent, q.intent_seq, q.intent_end});
  }

  std::mutex mu;  // guards queue, lost, lost_unwritten, lost_reason, submitted, done, stop, ...
  std::condition_variable cv;
  std::condition_variable flushed_cv;
  std::deque<QueuedEvent> queue;
  uint64_t lost = 0;
  // Of `lost`, those the store could not write (its reason), as opposed to a full queue: the
  // audit_loss event names the real cause.
  uint64_t lost_unwritten = 0;
  std::string lost_reason;
  uint64_t submitted = 0;
  uint64_t done = 0;
  bool stop = false;
  bool flush_requested = false;
  bool wake = false;
  std::thread thread;

  std::atomic<uint64_t> head_seq{0};
  std::atomic<uint64_t> written{0};
  std::atomic<uint64_t> dropped{0};
  std::atomic<uint64_t> commit_failures{0};
  // When the store may not write (writer thread only). RocksDB 7.8 as Debian builds it aborts
  // the process when a log write hits a full disk, and cannot reuse a log after any write error.
  // So the store writes nothing while the file system has less than kReserveBytes free, and
  // resumes by itself when space returns (free space is checked at most every
  // kSpaceCheckEvery while there is enough, to keep a statvfs off each commit); after a failed
  // write it writes nothing until the agent restarts. Blocked batches fail at once: statements
  // that wait for their event are refused.
  static constexpr uint64_t kReserveBytes = 256ull << 20;
  static constexpr std::chrono::milliseconds kSpaceCheckEvery{100};
  std::string write_error;  // the failed write
  bool low_space = false;
  // Any thread: the store cannot write now (set and cleared by the writer with each batch;
  // Flush and shutdown stop waiting for what it cannot write).
  std::atomic<bool> blocked{false};
  std::atomic<bool> write_failed{false};  // StopWriting happened: only a restart helps
  std::chrono::steady_clock::time_point next_space_check{};
  // Why nothing may be written now; "" when writing is fine.
  std::string WriteBlocked();
  // After a failed RocksDB write: logs it and blocks writing (see above).
  void StopWriting(const rocksdb::Status& s, std::string_view what);
  mutable std::mutex head_mu;  // pairs with head_cv for WaitForNewer
  mutable std::condition_variable head_cv;

  Counter* m_written = nullptr;
  Counter* m_dropped = nullptr;
  Counter* m_failures = nullptr;
  Gauge* m_queue_depth = nullptr;
  Gauge* m_head_seq = nullptr;
  Gauge* m_write_stopped = nullptr;
  Histogram* m_commit = nullptr;
};

// AuditStore::Verify's body (store_verify.cc), also run by the check at Open.
VerifyReport VerifyChain(const AuditStore::Impl& im, std::optional<uint64_t> from,
                         std::optional<uint64_t> to, const std::vector<Anchor>* anchors);

// Meta keys (default column family).
inline constexpr char kMetaHead[] = "head";             // seq(8) | hash(32)
inline constexpr char kMetaAnchor[] = "anchor";         // a signed checkpoint of the last cut event
inline constexpr char kMetaPubkey[] = "pubkey";         // raw public key currently signing
inline constexpr char kMetaKeyPrefix[] = "key/";        // key/<raw public key>: every key ever used
inline constexpr char kMetaIntentPrefix[] = "intent/";  // intent/<log name>: seq(8) committed

}  // namespace dbw::audit
