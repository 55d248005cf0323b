// Relay settings, filled from the agent's configuration.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace dbw::relay {

struct TlsServerOptions {
  std::string cert;       // PEM certificate chain presented to clients
  std::string key;        // PEM private key
  std::string client_ca;  // optional: request and verify client certificates
};

// A certificate the relay presents upstream, only for a client that proved the same identity
// to the relay: its verified certificate has this subject (RFC 2253, as audited) or this URI
// SAN (a SPIFFE ID), and, when `issuer` is set, was issued by that CA.
struct UpstreamClientCert {
  std::string subject;
  std::string uri_san;
  std::string issuer;
  std::string cert;  // PEM chain
  std::string key;
  // Whether a verified client certificate with these facts is the one this maps.
  bool Matches(const std::string& cert_subject, const std::string& cert_san,
               const std::string& cert_issuer) const {
    if (cert_subject.empty()) return false;  // no verified certificate
    if (!issuer.empty() && issuer != cert_issuer) return false;
    return subject.empty() ? !uri_san.empty() && uri_san == cert_san : subject == cert_subject;
  }
};

struct TlsClientOptions {
  std::string ca;  // PEM CA bundle that must sign the upstream's certificate
  std::vector<UpstreamClientCert> client_certs;
  std::string server_name;  // optional: verify this host name and send it as SNI
};

// How the relay logs in for its own catalog reads (masking resolves result columns to tables).
struct CatalogLogin {
  std::string user;      // empty: the session's own db user
  std::string password;  // read from targets[].catalog.password_file; empty: none
};

struct TargetOptions {
  std::string name;
  std::string env;
  std::string listen_host;
  uint16_t listen_port = 0;
  std::string upstream_host;  // numeric address (resolved when the config is loaded)
  uint16_t upstream_port = 0;
  std::optional<TlsServerOptions> tls;
  std::optional<TlsClientOptions> upstream_tls;
  // Refuse clients that are not on TLS (tls.require; default on with upstream_tls, where a
  // plaintext client would otherwise pass the server's hostssl rules on the relay's TLS leg).
  bool tls_required = false;
  // tls.client_identity: uri_san — a verified certificate's URI SAN (SPIFFE ID) is the
  // principal's subject; else its subject is.
  bool identity_from_uri_san = false;
  // Forward a statement only after its decision event is committed to the audit log; a
  // statement whose event cannot be committed is refused. Default: on for env prod.
  bool audit_before_forward = false;
  CatalogLogin catalog_login;
  // Read by the tap: sessions on this target's server that skip the relay are bypasses.
  bool relay_only = false;
};

struct RelayOptions {
  int workers = 0;  // 0: one per core
  std::chrono::milliseconds shutdown_grace{30000};
  std::chrono::milliseconds connect_timeout{10000};
  // From accept until the session is ready (startup, TLS, authentication, the server's first
  // ReadyForQuery): a client that stalls, or a server that never answers, is cut off then.
  // PostgreSQL's authentication_timeout has the same default.
  std::chrono::milliseconds authentication_timeout{60000};
  // Client connections open on all listeners, and from one source address (0: unlimited). At
  // a limit the oldest connection that has not finished startup is closed (FATAL 53300) to
  // admit the new one; when every connection is past startup the new one gets FATAL 53300.
  size_t max_connections = 4096;
  size_t max_connections_per_source = 512;
  // DataRow/CopyData messages larger than this stream through instead of being buffered.
  size_t stream_threshold = 1 << 20;
  std::vector<TargetOptions> targets;
};

}  // namespace dbw::relay
