// A blocking stream connection to a receiver, plain TCP or TLS (OpenSSL), where every call is
// bounded by a deadline: the exporters' threads talk to one receiver at a time and must never
// hang on one that stopped answering.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "userspace/common/status.h"
#include "userspace/export/options.h"

struct ssl_ctx_st;
struct ssl_st;

namespace dbw::exporter {

using Clock = std::chrono::steady_clock;

// This host's name (gethostname), empty when it has none.
std::string LocalHostName();

class Connection {
 public:
  // Resolves host, connects, and with tls.enabled completes a verified TLS handshake.
  static StatusOr<std::unique_ptr<Connection>> Open(const std::string& host,
                                                    const std::string& port, const TlsOptions& tls,
                                                    std::chrono::milliseconds timeout);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  Status WriteAll(std::string_view data, Clock::time_point deadline);
  // Appends what arrives to *out, waiting until the deadline for at least one byte. The
  // receiver closing the connection is kUnavailable.
  Status ReadSome(std::string* out, Clock::time_point deadline);
  // Bytes written to the socket on this connection (with TLS: records, handshake included), the
  // unit Unacknowledged() counts in.
  [[nodiscard]] uint64_t BytesWritten() const;
  // Bytes written that the receiver's TCP stack has not acknowledged yet (SIOCOUTQ).
  [[nodiscard]] StatusOr<int> Unacknowledged() const;
  // Without waiting: whether the receiver still holds the connection open. Anything it sent
  // (TLS session tickets) is read and discarded; a close or reset is false.
  bool Alive();
  // Whether a read found the receiver's end of the stream: it closed the connection in order
  // (FIN, after TLS's close_notify), rather than resetting it.
  [[nodiscard]] bool closed() const { return closed_; }

 private:
  Connection() = default;
  Status Wait(short events, Clock::time_point deadline, const char* what);
  Status Handshake(const TlsOptions& tls, const std::string& host, Clock::time_point deadline);

  int fd_ = -1;
  ssl_ctx_st* ctx_ = nullptr;
  ssl_st* ssl_ = nullptr;
  std::string peer_;        // host:port, for messages
  bool timed_out_ = false;  // the last Wait ran out of time (rather than failing)
  uint64_t written_ = 0;    // plain TCP: bytes sent
  bool closed_ = false;
};

}  // namespace dbw::exporter
