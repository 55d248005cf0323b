// api::Server: HTTP/1.1 (keep-alive, optional TLS) on Boost.Beast. Connections live on a small
// io_context pool; store reads, verification and policy evaluation run on a worker pool, and
// stream long-polls wait on timers, so no io thread ever blocks on the audit log.
#pragma once

#include <cstdint>
#include <memory>

#include "userspace/api/api.h"
#include "userspace/api/options.h"
#include "userspace/common/status.h"

namespace dbw::api {

class Server {
 public:
  // Validates the options (listen address, token digests, TLS files). With no tokens configured
  // the API is served without authentication (viewer role) only on a loopback address; any other
  // address without tokens is refused.
  static StatusOr<std::unique_ptr<Server>> Create(const ServerOptions& options, ApiDeps deps);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and starts the threads; the port is known afterwards.
  Status Start();
  // Stops accepting, closes connections and joins the threads. Idempotent.
  void Stop();
  uint16_t port() const;
  bool tls() const;

 private:
  struct Impl;
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace dbw::api
