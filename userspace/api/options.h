// Options of the HTTP API server (the `api:` block of the agent's configuration).
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

namespace dbw::api {

enum class Role : uint8_t {
  kViewer = 0,
  kApprover = 1,
  kAdmin = 2
};  // each includes the ones before

struct TokenConfig {
  std::string name;  // who holds it; shown in logs, never the token
  Role role = Role::kViewer;
  std::string sha256;               // lowercase or uppercase hex SHA-256 of the token (64 digits)
  std::vector<std::string> groups;  // approver groups (a rule's approval.groups names them)
};

struct TlsOptions {
  std::string cert;       // PEM certificate chain; TLS is on when cert and key are set
  std::string key;        // PEM private key
  std::string client_ca;  // when set, clients must present a certificate signed by it
};

struct ServerOptions {
  std::string listen = "127.0.0.1:9720";  // host:port or [v6]:port; port 0 picks a free port
  TlsOptions tls;
  std::vector<TokenConfig> tokens;
  size_t io_threads = 1;      // Beast connections (parsing, routing, writing)
  size_t worker_threads = 2;  // store reads, verification, policy evaluation
  size_t header_limit = 16 * 1024;
  size_t body_limit = 64 * 1024;
  std::chrono::milliseconds read_timeout{10'000};   // a whole request, and idle keep-alive
  std::chrono::milliseconds write_timeout{30'000};  // a whole response
  // Open connections, in all and from one source address. At a limit the oldest idle
  // connection (waiting for a request) is closed to admit the new one; with none idle the new
  // one is refused. 0: unlimited.
  size_t max_connections = 256;
  size_t max_connections_per_source = 64;
  std::chrono::milliseconds stream_poll{50};  // how often a long-poll checks for new events
};

}  // namespace dbw::api
