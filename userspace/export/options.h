// What an audit exporter is configured with (the `export:` section, docs/export.md#exporters).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "userspace/audit/event_formats.h"

namespace dbw::exporter {

enum class Kind : uint8_t { kSyslog, kKafka, kOtlp };
const char* KindName(Kind kind);

// Where a new exporter (no cursor file yet) starts: the oldest event the log still holds, or
// the next one written.
enum class Start : uint8_t { kBeginning, kEnd };

// TLS to the receiver: the CA that vouches for it (empty: the system's), a client certificate
// when the receiver asks for one, and the name to verify (empty: the host it connects to).
struct TlsOptions {
  bool enabled = false;
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  std::string server_name;
};

struct ExporterOptions {
  std::string name;  // unique; names the cursor file <state_dir>/export/<name>.cursor
  Kind kind = Kind::kSyslog;
  audit::EventFormat format = audit::EventFormat::kNative;
  Start start = Start::kBeginning;
  size_t batch = 500;                         // events read from the log and sent per round
  std::chrono::milliseconds timeout{10'000};  // connect, handshake, one send or response
  std::chrono::milliseconds backoff{500};     // after the first failure; doubled each time
  std::chrono::milliseconds max_backoff{30'000};
  // syslog (RFC 5424 over TCP, octet-counting framing) and OTLP/HTTP.
  std::string host;
  std::string port;
  TlsOptions tls;
  // syslog: a sent event counts as delivered once the receiver's TCP stack acknowledged it and
  // the connection stayed up for this long after (TCP syslog has no acknowledgement of its own).
  std::chrono::milliseconds syslog_confirm_after{1000};
  int syslog_facility = 13;  // log audit
  std::string syslog_app_name = "dbwarden";
  // OTLP/HTTP: POST to http(s)://host:port<path> (path default /v1/logs).
  std::string otlp_path = "/v1/logs";
  std::vector<std::pair<std::string, std::string>> headers;  // OTLP request headers
  // Kafka: bootstrap servers, topic, and librdkafka properties passed through as they are
  // (security.protocol, sasl.*, ssl.*); the exporter sets the idempotent producer itself.
  std::string brokers;
  std::string topic;
  std::vector<std::pair<std::string, std::string>> kafka_properties;
};

}  // namespace dbw::exporter
