// TapMetrics registration.
#include "userspace/tap/metrics.h"

#include <string>

namespace dbw::tap {

const char* LossCause(int index) {
  switch (index) {
    case DBW_LOSS_RINGBUF_DATA:
      return "ringbuf_full_chunks";
    case DBW_LOSS_RINGBUF_DATA_BYTES:
      return "ringbuf_full_bytes";
    case DBW_LOSS_RINGBUF_CONTROL:
      return "ringbuf_full_control";
    case DBW_LOSS_TRUNCATED_WRITES:
      return "truncated_syscalls";
    case DBW_LOSS_TRUNCATED_BYTES:
      return "truncated_bytes";
    case DBW_LOSS_READ_FAULTS:
      return "user_read_faults";
  }
  return "unknown";
}

TapMetrics::TapMetrics(MetricsRegistry* r)
    : records(r->GetCounter("dbwarden_tap_records_total", "Ring-buffer records read by the tap")),
      chunks(r->GetCounter("dbwarden_tap_chunks_total", "Captured data chunks")),
      bytes(r->GetCounter("dbwarden_tap_bytes_total", "Captured payload bytes")),
      gaps(r->GetCounter("dbwarden_tap_gaps_total", "Holes in tapped streams (lost or truncated)")),
      gap_bytes(r->GetCounter("dbwarden_tap_gap_bytes_total", "Bytes missing in tapped streams")),
      resyncs(r->GetCounter("dbwarden_tap_decoder_resyncs_total",
                            "Decoder resynchronisations after a lost message boundary")),
      decode_errors(r->GetCounter("dbwarden_tap_decode_errors_total",
                                  "Tapped messages the protocol state machine rejected")),
      orphan_records(r->GetCounter("dbwarden_tap_orphan_records_total",
                                   "Data records of connections the tap was not told of")),
      sessions_total(r->GetCounter("dbwarden_tap_sessions_total", "Sessions seen by the tap")),
      sessions_active(r->GetGauge("dbwarden_tap_sessions_active", "Tapped sessions open now")),
      statements(r->GetCounter("dbwarden_tap_statements_total", "Statements decoded by the tap")),
      would_refuse(r->GetCounter("dbwarden_tap_would_refuse_total",
                                 "Tapped statements the policy would have denied or held")),
      bypasses(r->GetCounter("dbwarden_tap_bypass_total",
                             "Sessions on relay_only targets that did not come through the relay")),
      encrypted_sessions(r->GetCounter("dbwarden_tap_encrypted_sessions_total",
                                       "Tapped sessions that switched to TLS or GSS encryption")),
      relay_connections(r->GetCounter("dbwarden_tap_relay_connections_total",
                                      "The relay's own upstream connections, recognised and "
                                      "ignored by the tap")),
      control_failures(r->GetCounter("dbwarden_tap_control_failures_total",
                                     "Tap settings-map updates that failed (watch, mute, exit "
                                     "notice): sessions may be missed")),
      processes_gone(r->GetCounter("dbwarden_tap_processes_gone_total",
                                   "Connecting processes that had exited before the tap read "
                                   "/proc: described from what the kernel recorded at connect() "
                                   "(no command line)")) {
  for (int i = 0; i < DBW_LOSS_MAX; ++i)
    losses[i] = r->GetCounter("dbwarden_tap_losses_total",
                              "Captured data the tap lost, by cause (kernel counters)",
                              std::string("cause=\"") + LossCause(i) + "\"");
}

}  // namespace dbw::tap
