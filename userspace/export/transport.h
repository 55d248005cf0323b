// The receivers an exporter delivers to. Each takes events in sequence order and reports how far
// delivery is confirmed; the exporter persists that point and, after a failure, sends everything
// past it again (at-least-once; receivers de-duplicate by seq, which every format carries).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "userspace/common/status.h"
#include "userspace/export/options.h"

namespace dbw::exporter {

// One event as an exporter sends it.
struct Message {
  uint64_t seq = 0;
  int64_t ts_us = 0;
  std::string kind;        // the event's kind (syslog MSGID, OTLP event name)
  std::string session_id;  // the Kafka key and a syslog SD parameter; empty for agent events
  int severity = 5;        // syslog severity: 2 critical, 4 warning, 5 notice
  std::string body;        // the event in the exporter's format
};

// Events a receiver took but will never keep (too large for it, refused as malformed): not sent
// again, since it would refuse them again; the exporter counts them and records an audit_loss.
struct Rejected {
  uint64_t count = 0;
  uint64_t first = 0;  // seq range
  uint64_t last = 0;
  std::string why;
  void Add(uint64_t seq, const std::string& reason) {
    if (count++ == 0) first = seq;
    last = seq;
    if (why.empty()) why = reason;
  }
};

class Transport {
 public:
  virtual ~Transport() = default;
  // Sends `batch` (in seq order) after everything sent before. Returns the highest seq whose
  // delivery is confirmed (0 while none is). On failure, confirmed() says how far delivery got;
  // everything after it is sent again, after Reset. kResourceExhausted: the receiver refused
  // the batch as too large (or could not parse it); the exporter retries in smaller batches.
  virtual StatusOr<uint64_t> Send(const std::vector<Message>& batch) = 0;
  // With nothing new to send: confirms what can be confirmed by waiting. `final` (the exporter
  // is stopping): waits for everything sent, so a restart need not send it again.
  virtual StatusOr<uint64_t> Settle(bool final) = 0;
  // Drops the connection and everything unconfirmed; the next Send starts afresh.
  virtual void Reset() = 0;
  // The highest seq confirmed so far.
  [[nodiscard]] virtual uint64_t confirmed() const = 0;
  // Events rejected since the last call.
  virtual Rejected TakeRejected() { return {}; }
  // Called (on the exporter's thread) while a Send waits on the receiver for a long time, as
  // Kafka does through a broker outage: `stalled` once nothing progressed for `timeout`. Keeps
  // the exporter's lag and up metrics current while it waits.
  void SetWaitHook(std::function<void(bool stalled)> hook) { wait_hook_ = std::move(hook); }

 protected:
  std::function<void(bool)> wait_hook_;
};

std::unique_ptr<Transport> MakeSyslogTransport(const ExporterOptions& o);
// `stopping` is set when the agent shuts down: a transport waiting for a receiver gives up
// within options.timeout.
std::unique_ptr<Transport> MakeOtlpTransport(const ExporterOptions& o,
                                             const std::atomic<bool>* stopping);
// Whether librdkafka takes `key: value` as a producer property (config check).
Status CheckKafkaProperty(const std::string& key, const std::string& value);
// Fails when librdkafka rejects the configuration (a bad property): checked at start-up.
StatusOr<std::unique_ptr<Transport>> MakeKafkaTransport(const ExporterOptions& o,
                                                        const std::atomic<bool>* stopping);

}  // namespace dbw::exporter
