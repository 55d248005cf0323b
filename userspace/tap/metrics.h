// The tap's metrics, registered once; the reader thread keeps the pointers.
#pragma once

#include <array>
#include <cstdint>

#include "events.h"
#include "userspace/common/metrics.h"

namespace dbw::tap {

struct TapMetrics {
  explicit TapMetrics(MetricsRegistry* r);
  void Gap(uint64_t bytes) {
    gaps->Add();
    gap_bytes->Add(bytes);
  }

  Counter* records;         // ring-buffer records read
  Counter* chunks;          // data chunks
  Counter* bytes;           // captured payload bytes
  Counter* gaps;            // holes in a connection's stream
  Counter* gap_bytes;       // bytes missing in them
  Counter* resyncs;         // decoder resynchronisations after a lost boundary
  Counter* decode_errors;   // messages the state machine rejected
  Counter* orphan_records;  // data of connections the tap was never told of
  Counter* sessions_total;  // sessions seen
  Gauge* sessions_active;   // sessions open now
  Counter* statements;      // statements decoded
  Counter* would_refuse;    // statements the policy would have denied or held
  Counter* bypasses;        // sessions on relay_only targets that skipped the relay
  Counter* encrypted_sessions;
  Counter* relay_connections;  // the relay's own upstream connections (ignored)
  Counter* control_failures;   // settings-map updates that failed (watch, mute, exit notice)
  Counter* processes_gone;     // connecting processes that exited before /proc was read
  // Kernel-side losses by cause (enum dbw_tap_loss), mirrored from the per-CPU counters.
  std::array<Counter*, DBW_LOSS_MAX> losses{};
};

// The metric label of each loss counter.
const char* LossCause(int index);

}  // namespace dbw::tap
