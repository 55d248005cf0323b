// RelayServer: listeners for every target and the worker threads that run sessions.
#pragma once

#include <atomic>
#include <memory>
#include <thread>
#include <unordered_set>
#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without it
#include <vector>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>

#include "policy/policy.h"
#include "userspace/approvals/service.h"
#include "userspace/audit/sink.h"
#include "userspace/common/conn_limiter.h"
#include "userspace/common/metrics.h"
#include "userspace/common/status.h"
#include "userspace/identity/peer_process.h"
#include "userspace/masking/mask.h"
#include "userspace/relay/cancel_registry.h"
#include "userspace/relay/catalog.h"
#include "userspace/relay/jwks.h"
#include "userspace/relay/options.h"
#include "userspace/relay/transport.h"
#include "userspace/sql/analyzer.h"
#include "userspace/witness/witness.h"

namespace dbw::relay {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

class Session;

// A target with what its sessions share: resolved upstream endpoint and TLS contexts.
struct TargetRuntime {
  TargetOptions options;
  StreamEndpoint upstream;  // TCP, or the server's unix socket (upstream: unix:/path)
  bool upstream_is_unix = false;
  std::string upstream_text;                       // for logs: host:port or unix:/path
  std::unique_ptr<asio::ssl::context> server_tls;  // client leg, when tls is configured
  std::unique_ptr<asio::ssl::context> client_tls;  // upstream leg, when upstream_tls is set
  // Upstream leg for a client whose verified certificate is mapped (upstream_tls.client_certs):
  // presents the mapped certificate.
  std::vector<std::pair<UpstreamClientCert, std::unique_ptr<asio::ssl::context>>>
      client_tls_by_identity;
  // auth.token: each issuer's keys, in the order of options.auth->token->issuers.
  std::vector<std::unique_ptr<JwksSource>> jwks;
};

struct RelayMetrics {
  Gauge* sessions_active;
  Counter* sessions_total;
  Counter* statements_total;
  Counter* protocol_violations;
  Counter* upstream_errors;
  Counter* cancels_forwarded;
  Counter* bytes_client_to_upstream;
  Counter* bytes_upstream_to_client;
  // Decisions by action, and the time to analyse and judge a statement.
  Counter* decisions[4];         // indexed by policy::Action
  Counter* decisions_monitored;  // deny/approve decisions let through in monitor mode
  Counter* audit_refusals;       // statements refused because their audit event failed
  Histogram* decision_latency;
  Counter* masked_messages;           // rows, copy lines and errors that went through masking
  Counter* masking_withheld;          // values withheld because masking could not be applied
  Counter* masking_rewrites;          // statements sent rewritten (masking by reference)
  Counter* masking_refusals;          // statements refused because masking cannot reach them
  Counter* masking_catalog_failures;  // catalog loads that failed (columns then withheld)
  Gauge* held;                        // statements waiting for approval right now
  Counter* startup_timeouts;          // connections that did not finish startup in time
  Counter* accept_errors;             // failed accepts (EMFILE/ENFILE back off, see Accept)
  Counter* connections_evicted;       // connections in startup closed to admit another
  Counter* refused_total;             // refused: relay.max_connections, none evictable
  Counter* refused_per_source;        // refused: relay.max_connections_per_source
  // Runtime effect limits: statements run under a row budget, and statements stopped by one.
  Counter* limit_wraps;       // statements run between two row counts
  Counter* limit_rows_stops;  // undone: more rows changed than the budget
  Counter* limit_read_stops;  // results cut off by the read budget
  // Parses and PREPAREs refused only for risks that depend on parameter values: judged at Bind
  // (or EXECUTE) with the values.
  Counter* decisions_deferred;
  Counter* login_failures;  // connections refused before ready (server or relay)
  Counter* token_logins;    // tokens accepted (targets[].auth.token)
  Counter* token_refusals;  // logins refused on a token target
};

// One thread and its io_context. Sessions never leave the worker they start on, so the
// session set is touched only by this worker's thread.
struct Worker {
  // Declared first so it is destroyed last: destroying the context destroys the handlers
  // that still own sessions, and a session's destructor removes itself from this set.
  std::unordered_set<Session*> sessions;
  // libpg_query keeps per-thread state, and the digest cache needs no lock when it is the
  // worker's own.
  sql::Analyzer analyzer;
  asio::io_context context{1};
  CatalogCache catalog{context};  // masking: this worker's sessions share it
  std::thread thread;
};

// How the witness names a connected upstream socket (witness::TcpKey / UnixKey); "" when its
// address cannot be read.
std::string WitnessKey(StreamSocket& socket, bool unix_socket);

// What a session needs from the server; outlives every session.
struct SessionDeps {
  audit::EventSink* sink;
  identity::PeerResolver* resolver;
  CancelRegistry* cancels;
  const RelayOptions* options;
  RelayMetrics* metrics;
  const std::vector<std::unique_ptr<TargetRuntime>>* targets;
  const policy::PolicyStore* policy;
  masking::MaskingKey mask_key;  // the masking key (masking `hash`, in results and in SQL)
  // Approval requests for `approve` decisions; null: such statements are refused outright.
  approvals::ApprovalService* approvals = nullptr;
  // Where a client the kernel routed here was connecting (relay_only: enforce); empty: none.
  identity::RouteLookup route_lookup;
  // Where each session's account of its upstream connection goes (the tap's second witness);
  // null: not reconciled.
  witness::Witness* witness = nullptr;
};

class RelayServer {
 public:
  // `mask_key`: the masking key, for the masking function `hash`.
  // `approvals`: where `approve` decisions become requests (null: they are refused).
  RelayServer(RelayOptions options, audit::EventSink* sink, identity::PeerResolver* resolver,
              const policy::PolicyStore* policy, masking::MaskingKey mask_key = {},
              approvals::ApprovalService* approvals = nullptr);
  ~RelayServer();

  // Binds every listener and starts the workers. Fails without side effects when a listener
  // cannot be bound or a TLS file cannot be loaded.
  Status Start();
  // Before Start: asks `lookup` at each accepted connection whether the kernel routed it here.
  void SetRouteLookup(identity::RouteLookup lookup) { deps_.route_lookup = std::move(lookup); }
  // Before Start: reports each upstream connection to `witness` (it outlives the server).
  void SetWitness(witness::Witness* witness) { deps_.witness = witness; }
  // Stops accepting, lets sessions finish for up to shutdown_grace, then ends the rest with
  // a FATAL 57P01 and joins the workers.
  void Shutdown();
  size_t active_sessions() const;

 private:
  void Accept(size_t listener);  // index into acceptors_
  // An accept failed for lack of descriptors or memory: accept again after a pause.
  void BackOff(size_t listener, const boost::system::error_code& ec);
  // Admits an accepted connection under the connection limits (evicting one still in startup
  // when a limit is reached) and starts its session on `worker`, or refuses it.
  // `source`: what the per-source limit counts by (the client's address; for a unix socket its
  // uid).
  void Admit(Worker* worker, const TargetRuntime* target, Transport socket,
             const std::string& source);
  void RefuseConnection(Transport socket, bool per_source);
  Status ListenUnix(const TargetOptions& t);
  static constexpr std::chrono::milliseconds kFirstAcceptBackoff{100};

  RelayOptions options_;
  std::shared_ptr<ConnectionLimiter> limiter_;
  SessionDeps deps_;
  RelayMetrics metrics_;
  CancelRegistry cancels_;
  std::vector<std::unique_ptr<TargetRuntime>> targets_;
  std::vector<std::unique_ptr<Worker>> workers_;
  asio::io_context accept_context_{1};
  // One listener per target and, for a target with listen_unix, a second one.
  struct Listener {
    size_t target = 0;
    std::unique_ptr<tcp::acceptor> inet;
    std::unique_ptr<asio::local::stream_protocol::acceptor> local;
    std::string unix_path;  // removed at Shutdown
    bool is_open() const { return inet ? inet->is_open() : local->is_open(); }
  };
  std::vector<Listener> acceptors_;
  std::thread accept_thread_;
  std::atomic<size_t> next_worker_{0};
  // Accept back-off; touched only on the accept thread.
  std::chrono::milliseconds accept_backoff_ = kFirstAcceptBackoff;
  std::chrono::steady_clock::time_point last_accept_log_{};
  std::chrono::steady_clock::time_point last_refusal_log_{};
  bool started_ = false;
};

}  // namespace dbw::relay
