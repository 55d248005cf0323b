// Relay settings, filled from the agent's configuration.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "policy/glob.h"

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

// One issuer whose tokens a target accepts as passwords (targets[].auth.token.issuers[]).
struct TokenIssuerOptions {
  std::string issuer;                  // "iss", exactly
  std::vector<std::string> audiences;  // "aud" must name one
  std::string jwks_file;               // the issuer's keys, from a file ...
  std::string jwks_url;                // ... or fetched over HTTPS
  std::string jwks_ca;                 // PEM bundle that signs jwks_url's server (empty: system)
  std::chrono::seconds jwks_refresh{300};
  std::string subject_claim = "sub";
  std::string groups_claim = "groups";
  std::string kind;        // "agent" | "human" | "": every token of this issuer is that kind
  std::string kind_claim;  // a claim whose value ("agent" or "human") is the kind
};

// targets[].auth.token: a client logs in with a JWT as its password, over TLS.
struct TokenLoginOptions {
  std::vector<TokenIssuerOptions> issuers;
  std::chrono::seconds clock_skew{60};
  bool end_at_expiry = true;  // on_expiry: terminate (the default) | continue
};

// targets[].auth.credentials[]: which database role a verified principal logs in as, and the
// secret the relay logs in with. Every `match` key given must match.
struct CredentialMapping {
  std::vector<policy::Glob> subject, issuer, groups, cert_san;
  std::string kind;  // "agent" | "human" | "": any
  std::string role;
  std::vector<policy::Glob> users;  // database users a client may ask for (default: the role)
  std::string password;             // from password_file or a systemd credential; empty: none
  std::string secret_source;        // where the password came from, for messages
};

// targets[].auth.bind[]: a token subject usable only from these workloads, as the kernel sees
// the client process of a local connection. Any one of unit/exe/cgroup matching is enough.
struct WorkloadBinding {
  std::vector<policy::Glob> subject;
  std::vector<policy::Glob> unit, exe, cgroup;
};

struct AuthOptions {
  std::optional<TokenLoginOptions> token;
  std::vector<CredentialMapping> credentials;
  std::vector<WorkloadBinding> bind;
};

struct TargetOptions {
  std::string name;
  std::string env;
  std::string listen_host;
  uint16_t listen_port = 0;
  // A unix socket the relay also listens on for this target ("/run/dbwarden/prod/.s.PGSQL.5432";
  // empty: none): where relay_only: enforce sends clients of the server's own unix socket.
  std::string listen_unix;
  std::string upstream_host;  // numeric address (resolved when the config is loaded)
  // The server's port; with upstream_unix, the one its socket's name (.s.PGSQL.<port>) carries.
  uint16_t upstream_port = 0;
  // upstream: unix:/path/.s.PGSQL.<port> — the server's own unix socket (upstream_host empty).
  std::string upstream_unix;
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
  // Identity-aware access (targets[].auth): token logins and injected database credentials.
  std::optional<AuthOptions> auth;
  // Read by the tap: sessions on this target's server that skip the relay are bypasses.
  bool relay_only = false;
  // relay_only: enforce | refuse — the kernel routes local connect()s to this target's server
  // to the relay's listener, or fails them (docs/routing.md); relay_only is then true as well.
  enum class Route : uint8_t { kNone, kEnforce, kRefuse };
  Route route = Route::kNone;
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
