// BpfProgram: the tap's BPF object loaded into the kernel (skeleton RAII), its settings maps and
// its ring buffer. Nothing here interprets the records.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "events.h"
#include "userspace/common/status.h"

struct tap_bpf;
struct ring_buffer;

namespace dbw::tap {

struct ProgramOptions {
  uint32_t self_tgid = 0;  // the agent's own data is never captured
  uint32_t capture_bytes = 16384;
  uint64_t ring_buffer_bytes = 64ull << 20;  // rounded up to a power of two
};

class BpfProgram {
 public:
  // Called for every record, on the thread that calls Poll.
  using RecordHandler = std::function<void(std::span<const std::byte>)>;

  // Mounts tracefs and bpffs when missing, opens the skeleton, sets rodata and the ring buffer
  // size and loads (the verifier runs here). Nothing runs until Attach: fill the settings maps
  // first, so that no decision is made without them.
  static StatusOr<std::unique_ptr<BpfProgram>> Load(const ProgramOptions& options,
                                                    RecordHandler handler);
  Status Attach();
  // After changing the settings maps: every cached per-fd decision is made again.
  Status BumpGeneration();
  ~BpfProgram();
  BpfProgram(const BpfProgram&) = delete;
  BpfProgram& operator=(const BpfProgram&) = delete;

  Status AddClientPort(uint16_t port);
  Status AddServerPort(uint16_t port);
  Status AddUnixPath(const std::string& path);
  Status Watch(uint32_t tgid, uint32_t target);
  Status NotifyExit(uint32_t tgid);
  void ForgetExit(uint32_t tgid);
  // Stops capturing a connection (by its struct sock address and socket inode).
  Status Mute(uint64_t sk, uint64_t ino);

  // Waits up to timeout_ms for records and hands them to the handler; the number handled, or a
  // negative errno.
  int Poll(int timeout_ms);
  // Loss counters summed over the CPUs, indexed by enum dbw_tap_loss.
  std::array<uint64_t, DBW_LOSS_MAX> Losses() const;
  // Run time and runs of each loaded program, counted by the kernel while
  // kernel.bpf_stats_enabled is 1 (zero otherwise).
  struct ProgramStats {
    std::string name;
    uint64_t run_time_ns = 0;
    uint64_t runs = 0;
  };
  std::vector<ProgramStats> Stats() const;
  uint64_t ring_buffer_bytes() const { return ring_bytes_; }

 private:
  BpfProgram() = default;
  static int OnRecord(void* ctx, void* data, size_t size);

  tap_bpf* skel_ = nullptr;
  ring_buffer* ring_ = nullptr;
  RecordHandler handler_;
  uint64_t ring_bytes_ = 0;
};

// Mounts tracefs at /sys/kernel/tracing and bpffs at /sys/fs/bpf when they are not mounted.
Status EnsureKernelMounts();

}  // namespace dbw::tap
