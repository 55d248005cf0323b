// The receivers an exporter delivers to. Each takes events in sequence order and reports how far
// delivery is confirmed; the exporter persists that point and, after a failure, sends everything
// past it again (at-least-once; receivers de-duplicate by seq, which every format carries).
#pragma once

#include <atomic>
#include <cstdint>
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

class Transport {
 public:
  virtual ~Transport() = default;
  // Sends `batch` (in seq order) after everything sent before. Returns the highest seq whose
  // delivery is confirmed (0 while none is); a failure means everything unconfirmed is sent
  // again, after Reset.
  virtual StatusOr<uint64_t> Send(const std::vector<Message>& batch) = 0;
  // With nothing new to send: confirms what can be confirmed by waiting.
  virtual StatusOr<uint64_t> Settle() = 0;
  // Drops the connection and everything unconfirmed; the next Send starts afresh.
  virtual void Reset() = 0;
  // Events the receiver confirmed but said it rejected (OTLP partialSuccess) since the last
  // call: not sent again (the receiver would reject them again), counted by the exporter.
  virtual uint64_t TakeRejected() { return 0; }
};

// `stopping` is set when the agent shuts down: a transport waiting for a receiver gives up
// (bounded by options.timeout where giving up early would send a delivered batch again).
std::unique_ptr<Transport> MakeSyslogTransport(const ExporterOptions& o);
std::unique_ptr<Transport> MakeOtlpTransport(const ExporterOptions& o,
                                             const std::atomic<bool>* stopping);
// Whether librdkafka takes `key: value` as a producer property (config check).
Status CheckKafkaProperty(const std::string& key, const std::string& value);
// Fails when librdkafka rejects the configuration (a bad property): checked at start-up.
StatusOr<std::unique_ptr<Transport>> MakeKafkaTransport(const ExporterOptions& o,
                                                        const std::atomic<bool>* stopping);

}  // namespace dbw::exporter
