// AuditStore: the tamper-evident audit log in RocksDB — events keyed by sequence number,
// secondary indexes for every API filter, a SHA-256 hash chain with Ed25519-signed
// checkpoints, group commit on one writer thread, and retention. Knows nothing of Asio.
//
// CONTRACT between the store (userspace/audit/store*.cc) and the HTTP API (userspace/api):
// the API only uses what is declared here.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "userspace/audit/event.h"
#include "userspace/audit/sink.h"
#include "userspace/common/status.h"

namespace dbw::audit {

enum class Durability : uint8_t {
  kAuto,   // sync for statements that change data, schema or privileges; async for the rest
  kSync,   // the batch is fsynced before producers are told it is committed
  kAsync,  // written to the WAL without fsync (survives an agent crash, not a host crash)
};

struct StoreOptions {
  std::string dir;  // <state_dir>/audit
  Durability durability = Durability::kAuto;
  std::chrono::seconds retention{90 * 24 * 3600};  // 0 = keep forever
  std::string signing_key_path;                    // Ed25519 PEM private key; generated if absent
  size_t queue_capacity = 1 << 16;                 // events waiting for the writer
  uint64_t checkpoint_every_events = 10000;
  std::chrono::seconds checkpoint_every{60};
  // How often the writer runs the retention pass (also once at Open). Added by the store.
  std::chrono::seconds retention_check_every{300};
  // Where each signed checkpoint is published as one JSON line (an Anchor), appended and
  // fdatasync'd; empty: not published. At Open the store is checked against the newest line: a
  // store that ends before it or contradicts it was rolled back (Integrity()).
  std::string anchor_file;
  // Ring size of each producer thread's intent log (<dir>/intent): audit-before-forward of an
  // event that needs no fsync writes the record there and goes on instead of waiting for the
  // writer (intent_log.h). 0: every such event waits for the writer's commit.
  size_t intent_log_bytes = 8u << 20;
};

// A published checkpoint: one line of an anchor file. An outside copy of these lines is what
// makes a rollback (events removed from the tail, or the chain recomputed after an edit)
// detectable: `audit verify --anchors`.
struct Anchor {
  uint64_t seq = 0;
  std::string hash;        // chain hash at seq, 32 raw bytes
  int64_t ts_us = 0;       // when it was signed
  std::string public_key;  // raw Ed25519 public key, 32 bytes
  std::string signature;   // Ed25519 over the checkpoint message, 64 bytes
  size_t line = 0;         // 1-based line it was read from (0: not read from a file)
  // A retention cut (type "dbwarden-audit-retention"): events up to seq were deleted by
  // retention, and seq's hash is the anchor the rest of the chain starts from.
  bool retention = false;
};
// One anchor line, without the trailing newline:
// {"type":"dbwarden-audit-anchor","seq":N,"hash":HEX,"ts":RFC3339,"public_key":HEX,"signature":HEX}
std::string FormatAnchor(const Anchor& anchor);
// The anchors of an anchor file's text; any line that does not parse is an error naming
// origin:line. `torn_tail_ok`: a last line without '\n' is ignored (the agent's own file after
// a crash mid-append); otherwise (a copy given to verify) it is read like any other line.
StatusOr<std::vector<Anchor>> ParseAnchors(std::string_view text, const std::string& origin,
                                           bool torn_tail_ok = false);

// Filters of GET /v1/events; every one set is answered by an index range scan.
struct EventFilter {
  std::optional<int64_t> since_us;  // ts >= since
  std::optional<int64_t> until_us;  // ts < until
  std::string principal;            // principal subject (cert_subject, else db_user)
  std::string db_user;
  std::string database;
  std::string table;        // schema-qualified as audited ("public.t" or "t")
  std::string action;       // decision action: allow | log | approve | deny
  std::string kind;         // event kind name
  std::string session;      // session_id
  std::string exe;          // process exe or systemd unit
  std::string fingerprint;  // statement fingerprint (hex)
  std::string source;       // relay | tap | agent
};

struct StoredEvent {
  uint64_t seq = 0;
  int64_t ts_us = 0;
  std::string json;  // the event as the API serves it: AppendEventJson + "prev_hash"/"hash"
};

struct QueryResult {
  std::vector<StoredEvent> events;  // newest first
  std::string next_cursor;          // opaque; empty when there is nothing more
};

struct VerifyReport {
  bool ok = true;
  uint64_t first_seq = 0;  // range actually checked
  uint64_t last_seq = 0;
  uint64_t checked = 0;
  uint64_t checkpoints_verified = 0;
  std::optional<uint64_t> first_bad_seq;  // first broken or missing sequence number
  std::string problem;                    // what is wrong at first_bad_seq
  uint64_t anchors_checked = 0;           // anchors compared with the store
  uint64_t anchors_before_retention = 0;  // anchors of events retention cut (not comparable)
};

struct StoreStats {
  uint64_t head_seq = 0;
  uint64_t events_written = 0;
  uint64_t queue_depth = 0;
  uint64_t dropped = 0;  // must stay 0
  uint64_t commit_failures = 0;
};

class AuditStore : public EventSink {
 public:
  // Opens (creating if needed) for writing; starts the writer thread. Continues the sequence and
  // the chain of what is already there.
  static StatusOr<std::unique_ptr<AuditStore>> Open(const StoreOptions& options);
  // Read-only view (dbwarden audit verify --state-dir, also while the agent runs).
  static StatusOr<std::unique_ptr<AuditStore>> OpenReadOnly(const std::string& dir);
  ~AuditStore() override;

  // EventSink: enqueue at the event's durability level; never blocks, never drops silently.
  void Submit(Event event) override;
  // Enqueue and call `done` (on the writer thread) once the event is committed at its
  // durability level, with the error if the store could not commit (the relay then refuses
  // the statement: audit-before-forward fails closed). A full queue calls `done` at once with
  // kResourceExhausted. An event that needs no fsync is written to the calling thread's intent
  // log instead, which is as durable as the commit would be, and `done` is called at once, on
  // the calling thread, with seq 0 (the writer assigns it later).
  void SubmitAndWait(Event event, CommitCallback done) override;  // CommitCallback: sink.h
  // Blocks until everything submitted before the call is committed, or could not be: while the
  // store cannot write (disk nearly full, a failed write) it returns at once, and what it could
  // not write is reported by an audit_loss event once writing resumes (or logged at shutdown).
  void Flush();
  // Whether the store can write now (checked afresh: free space, a failed write). /readyz.
  [[nodiscard]] Status Writable() const;

  StatusOr<QueryResult> Query(const EventFilter& filter, size_t limit,
                              const std::string& cursor) const;
  // Events with seq > after_seq in sequence order (for the SIEM stream); at most `limit`.
  StatusOr<std::vector<StoredEvent>> ReadAfter(uint64_t after_seq, size_t limit) const;
  // Waits up to `timeout` for the head to pass `after_seq`; true when it did.
  bool WaitForNewer(uint64_t after_seq, std::chrono::milliseconds timeout) const;
  // Checks the chain (seq continuity, hashes, signed checkpoints, the head) over [from, to],
  // and, given `anchors` (published checkpoints from an outside copy), that the store reaches
  // every anchored seq with the anchored hash: a store rolled back or rewritten after an anchor
  // fails, whatever its own checkpoints say.
  VerifyReport Verify(std::optional<uint64_t> from, std::optional<uint64_t> to,
                      const std::vector<Anchor>* anchors = nullptr) const;
  // Whether the store passed the check at Open: against the newest line of its anchor file
  // (not rolled back) and the chain from there (or from its last checkpoint) to its head.
  // /readyz is 503 while it is not ok; the agent keeps recording.
  [[nodiscard]] Status Integrity() const;
  StoreStats Stats() const;
  std::string PublicKeyPem() const;  // Ed25519 public key for auditors

  struct Impl;  // store_impl.h

 private:
  explicit AuditStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Which durability an event gets under kAuto.
bool NeedsSync(const Event& event);

}  // namespace dbw::audit
