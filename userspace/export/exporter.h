// Audit exporters: each reads the audit log from its persisted cursor, in sequence order, and
// delivers to one receiver (syslog, Kafka, OTLP/HTTP) in one format. The log itself is the
// buffer: a slow or absent receiver delays export and never the relay, and nothing is skipped,
// because the cursor moves only past what the receiver confirmed (docs/export.md#exporters).
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "userspace/audit/store.h"
#include "userspace/common/metrics.h"
#include "userspace/common/status.h"
#include "userspace/export/options.h"
#include "userspace/export/transport.h"

namespace dbw::exporter {

// What a receiver is sent for one stored event: seq, kind, session and severity from its native
// JSON, and the body in `format`.
StatusOr<Message> MakeMessage(const audit::StoredEvent& event, audit::EventFormat format);

// Builds the exporter's transport; `stopping` is the exporter's stop flag.
using TransportFactory = std::function<StatusOr<std::unique_ptr<Transport>>(
    const ExporterOptions& options, const std::atomic<bool>* stopping)>;
// The transport options.kind names.
TransportFactory DefaultTransport();

class Exporter {
 public:
  // `log` is read and, for exporter problems (events retention removed before they were
  // exported, records a receiver rejected), written to; it must outlive the exporter.
  Exporter(ExporterOptions options, const std::string& state_dir, audit::AuditStore* log,
           MetricsRegistry* metrics, TransportFactory transport = DefaultTransport());
  ~Exporter();
  Exporter(const Exporter&) = delete;
  Exporter& operator=(const Exporter&) = delete;

  // Builds the transport, reads the cursor (or places it per options.start) and starts the
  // exporter's thread.
  Status Start();
  // Confirms what it can (a syslog receiver: up to syslog_confirm_after), saves the cursor and
  // stops. What is not confirmed is sent again by the next start.
  void Stop();
  // Stop in two halves, so several exporters stop together.
  void RequestStop();
  void Join();

  // The last seq the receiver confirmed (the persisted cursor).
  uint64_t confirmed() const { return confirmed_.load(); }

 private:
  void Run();
  void Advance(uint64_t confirmed);
  // Counts and logs a failure, resets the transport and backs off; returns the seq to read
  // after (the confirmed point: everything past it is sent again).
  uint64_t Fail(const Status& st, uint64_t sent);
  void Sleep(std::chrono::milliseconds d);
  Status SaveCursor(uint64_t seq) const;
  void UpdateLag();
  void Report(std::string detail, uint64_t count);

  const ExporterOptions o_;
  const std::string cursor_path_;
  audit::AuditStore* log_;
  TransportFactory factory_;
  std::unique_ptr<Transport> transport_;
  std::atomic<uint64_t> confirmed_{0};
  bool fresh_ = false;         // no cursor file: a retention gap before the first event is expected
  uint64_t gap_reported_ = 0;  // retention gaps through this seq were reported
  uint64_t unreadable_reported_ = 0;  // the last unreadable record reported
  std::chrono::milliseconds backoff_;
  std::string last_failure_;
  std::chrono::steady_clock::time_point lag_checked_{};

  std::atomic<bool> stopping_{false};
  std::mutex mu_;  // guards nothing but the wait below
  std::condition_variable wake_;
  std::thread thread_;

  Counter* exported_;
  Counter* failures_;
  Counter* resent_;
  Counter* skipped_;
  Counter* rejected_;
  Gauge* lag_events_;
  Gauge* lag_seconds_;
  Gauge* up_;
};

// The exporters of the `export:` section, started and stopped together.
class ExportService {
 public:
  // Builds every exporter (a Kafka property librdkafka rejects fails here) and starts them.
  static StatusOr<std::unique_ptr<ExportService>> Start(const std::vector<ExporterOptions>& all,
                                                        const std::string& state_dir,
                                                        audit::AuditStore* log,
                                                        MetricsRegistry* metrics);
  ~ExportService();
  void Stop();

 private:
  ExportService() = default;
  std::vector<std::unique_ptr<Exporter>> exporters_;
};

}  // namespace dbw::exporter
