// IntentLog: one producer thread's crash-safe log of the audit records it has been promised.
//
// Audit-before-forward used to hand every statement's record to the writer thread and wait for
// its commit: two thread wake-ups and a RocksDB write in each statement's latency. A relay
// worker instead writes the record into its own file-backed memory map and forwards at once.
// Bytes stored into a MAP_SHARED mapping are in the page cache the moment the store
// instruction retires, so they survive a crash or SIGKILL of the agent exactly as RocksDB's
// un-synced write-ahead log does (not a host crash: that is what `sync` durability is for, and
// sync events still wait for the writer's fdatasync'd group commit). The writer commits the
// same event from its queue as before and then marks the entry drained; at the next start
// the store replays every entry that its RocksDB marks (written atomically with the records)
// do not cover. On-disk format: docs/audit-store.md "Intent logs".
//
// Layout: a 4 KiB header (magic, capacity, the drained position), then a ring of `capacity`
// bytes of entries. Positions are logical (they only grow); an entry never straddles the ring's
// end (a wrap marker skips to the next lap). Entry: length (u32) | crc32c (u32, over seq and
// payload) | seq (u64) | payload, padded to 8 bytes. Seqs are 1, 2, 3... within a file.
// One thread appends; one other (the writer) advances the drained position.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "userspace/common/status.h"

namespace dbw::audit {

class IntentLog {
 public:
  static constexpr size_t kHeaderSize = 4096;
  static constexpr size_t kEntryHeader = 16;

  // Creates `path` (which must not exist) with a ring of `capacity` bytes (rounded up to 4 KiB).
  static StatusOr<std::unique_ptr<IntentLog>> Create(const std::string& path, size_t capacity);
  ~IntentLog();
  IntentLog(const IntentLog&) = delete;
  IntentLog& operator=(const IntentLog&) = delete;

  const std::string& path() const { return path_; }
  const std::string& name() const { return name_; }  // file name without ".log"

  struct Appended {
    uint64_t seq = 0;
    uint64_t end = 0;  // logical position after the entry: what Drained() is given
  };
  // Producer thread only. false (nothing written) when the ring has no room: the writer is
  // that far behind, and the caller waits for it the old way instead.
  bool Append(std::string_view payload, Appended* out);
  // Writer thread: every entry before logical position `end` is committed to the store.
  void Drained(uint64_t end);

  struct Entry {
    uint64_t seq = 0;
    std::string payload;
  };
  // The entries of the file at `path` from its drained position on, in order, stopping at the
  // first that is torn, corrupt or out of sequence (what a crash mid-append leaves). Never
  // trusts the file.
  static StatusOr<std::vector<Entry>> Recover(const std::string& path);

 private:
  IntentLog() = default;
  std::string path_;
  std::string name_;
  int fd_ = -1;
  uint8_t* map_ = nullptr;
  size_t map_size_ = 0;
  uint64_t capacity_ = 0;
  std::atomic<uint64_t>* drained_ = nullptr;  // in the header page
  uint64_t head_ = 0;                         // producer: next logical write position
  uint64_t next_seq_ = 1;                     // producer
};

// CRC-32C (Castagnoli), with SSE4.2's crc32 instruction where the CPU has it.
uint32_t Crc32c(uint32_t crc, const void* data, size_t n);

}  // namespace dbw::audit
