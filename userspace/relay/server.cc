// RelayServer: listeners, workers, and the drain on shutdown.
#include "userspace/relay/server.h"

#include <sys/socket.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <future>
#include <sstream>

#include "userspace/common/logging.h"
#include "userspace/common/thread_name.h"
#include "userspace/protocol/postgres/encoder.h"
#include "userspace/relay/session.h"
#include "userspace/relay/tls.h"

namespace dbw::relay {

std::string WitnessKey(StreamSocket& socket, bool unix_socket) {
  if (unix_socket) {
    struct stat st {};
    if (::fstat(socket.native_handle(), &st) != 0) return "";
    return witness::UnixKey(st.st_ino);
  }
  boost::system::error_code ec;
  const tcp::endpoint local = TcpEndpoint(socket.local_endpoint(ec));
  if (ec) return "";
  return witness::TcpKey(local.address().to_string(), local.port());
}

RelayServer::RelayServer(RelayOptions options, audit::EventSink* sink,
                         identity::PeerResolver* resolver, const policy::PolicyStore* policy,
                         masking::MaskingKey mask_key, approvals::ApprovalService* approvals)
    : options_(std::move(options)),
      limiter_(ConnectionLimiter::Create(
          {options_.max_connections, options_.max_connections_per_source})) {
  auto& m = MetricsRegistry::Global();
  metrics_ = RelayMetrics{
      m.GetGauge("dbwarden_relay_sessions_active", "Client sessions open on the relay"),
      m.GetCounter("dbwarden_relay_sessions_total", "Client sessions accepted by the relay"),
      m.GetCounter("dbwarden_relay_statements_total", "Statements relayed"),
      m.GetCounter("dbwarden_relay_protocol_violations_total",
                   "Sessions ended because of malformed protocol bytes"),
      m.GetCounter("dbwarden_relay_upstream_errors_total",
                   "Sessions that could not reach or keep their upstream server"),
      m.GetCounter("dbwarden_relay_cancels_forwarded_total", "Cancel requests routed upstream"),
      m.GetCounter("dbwarden_relay_bytes_total", "Bytes relayed", "direction=\"to_upstream\""),
      m.GetCounter("dbwarden_relay_bytes_total", "Bytes relayed", "direction=\"to_client\""),
      {},
      m.GetCounter("dbwarden_decisions_monitored_total",
                   "Deny/approve decisions let through because the policy is in monitor mode"),
      m.GetCounter(
          "dbwarden_audit_refusals_total",
          "Statements refused because their decision could not be committed to the audit log"),
      m.GetHistogram("dbwarden_decision_duration_seconds",
                     "Time to analyse a statement and judge it against policy"),
      m.GetCounter("dbwarden_masking_messages_total",
                   "Result rows, COPY lines and error texts that went through masking"),
      m.GetCounter("dbwarden_masking_withheld_total",
                   "Values withheld because masking could not be applied (fail closed)"),
      m.GetCounter("dbwarden_masking_rewrites_total",
                   "Statements sent rewritten so masked columns are read masked (masking by "
                   "reference)"),
      m.GetCounter("dbwarden_masking_refusals_total",
                   "Statements refused because masking by reference cannot reach what they read"),
      m.GetCounter("dbwarden_masking_catalog_failures_total",
                   "Catalog loads for masking that failed (table columns then withheld)"),
      m.GetGauge("dbwarden_relay_statements_held",
                 "Statements held by the relay while they wait for approval"),
      m.GetCounter("dbwarden_relay_startup_timeouts_total",
                   "Connections ended because startup and authentication did not finish within "
                   "relay.authentication_timeout"),
      m.GetCounter("dbwarden_relay_accept_errors_total",
                   "Failed accepts on the relay's listeners (out of file descriptors: backed off)"),
      m.GetCounter("dbwarden_relay_connections_evicted_total",
                   "Connections still in startup closed to admit a new one (relay.max_connections "
                   "or relay.max_connections_per_source reached)"),
      m.GetCounter("dbwarden_relay_connections_refused_total",
                   "Connections refused at a limit when none was still in startup",
                   "limit=\"total\""),
      m.GetCounter("dbwarden_relay_connections_refused_total",
                   "Connections refused at a limit when none was still in startup",
                   "limit=\"per_source\""),
      m.GetCounter("dbwarden_limit_wrapped_total",
                   "Statements run between two counts of the rows their transaction changed "
                   "(a max_rows limit applied)"),
      m.GetCounter("dbwarden_limit_stops_total", "Statements stopped by a runtime limit",
                   "limit=\"max_rows\""),
      m.GetCounter("dbwarden_limit_stops_total", "Statements stopped by a runtime limit",
                   "limit=\"read\""),
      m.GetCounter("dbwarden_decisions_deferred_total",
                   "Prepared statements whose judgement waits for their parameter values (a "
                   "Parse or PREPARE refused only for no_where or unbounded_select)"),
      m.GetCounter("dbwarden_relay_login_failures_total",
                   "Connections refused before they were ready: by the server (password, role, "
                   "pg_hba) or by the relay (TLS required, a token or principal refused)"),
      m.GetCounter("dbwarden_relay_token_logins_total", "Token logins, by result",
                   "result=\"accepted\""),
      m.GetCounter("dbwarden_relay_token_logins_total", "Token logins, by result",
                   "result=\"refused\""),
  };
  const char* limit_help = "Configured connection limits of the relay (0: unlimited)";
  m.GetGauge("dbwarden_relay_connection_limit", limit_help, "scope=\"total\"")
      ->Set(static_cast<int64_t>(options_.max_connections));
  m.GetGauge("dbwarden_relay_connection_limit", limit_help, "scope=\"per_source\"")
      ->Set(static_cast<int64_t>(options_.max_connections_per_source));
  for (auto a : {policy::Action::kAllow, policy::Action::kLog, policy::Action::kApprove,
                 policy::Action::kDeny}) {
    metrics_.decisions[static_cast<int>(a)] =
        m.GetCounter("dbwarden_decisions_total", "Statements judged by the relay, by decision",
                     "action=\"" + std::string(policy::ActionName(a)) + "\"");
  }
  deps_ = SessionDeps{sink,      resolver, &cancels_,           &options_, &metrics_,
                      &targets_, policy,   std::move(mask_key), approvals};
}

RelayServer::~RelayServer() {
  Shutdown();
}

Status RelayServer::Start() {
  boost::system::error_code ec;
  for (const TargetOptions& t : options_.targets) {
    auto rt = std::make_unique<TargetRuntime>();
    rt->options = t;
    if (!t.upstream_unix.empty()) {
      rt->upstream = asio::local::stream_protocol::endpoint(t.upstream_unix);
      rt->upstream_is_unix = true;
      rt->upstream_text = "unix:" + t.upstream_unix;
    } else {
      auto up = asio::ip::make_address(t.upstream_host, ec);
      if (ec)
        return InvalidArgument("target " + t.name + ": bad upstream address " + t.upstream_host);
      const tcp::endpoint tcp_upstream(up, t.upstream_port);
      rt->upstream = tcp_upstream;
      std::ostringstream text;
      text << tcp_upstream;
      rt->upstream_text = text.str();
    }
    if (t.tls) {
      auto ctx = MakeServerContext(*t.tls);
      if (!ctx.ok()) return InvalidArgument("target " + t.name + ": " + ctx.status().message());
      rt->server_tls = std::move(*ctx);
    }
    if (t.upstream_tls) {
      auto ctx = MakeClientContext(*t.upstream_tls, nullptr);
      if (!ctx.ok()) return InvalidArgument("target " + t.name + ": " + ctx.status().message());
      rt->client_tls = std::move(*ctx);
      for (const UpstreamClientCert& c : t.upstream_tls->client_certs) {
        auto with_cert = MakeClientContext(*t.upstream_tls, &c);
        if (!with_cert.ok())
          return InvalidArgument("target " + t.name + ": " + with_cert.status().message());
        rt->client_tls_by_identity.emplace_back(c, std::move(*with_cert));
      }
    }
    if (t.auth && t.auth->token) {
      for (const TokenIssuerOptions& issuer : t.auth->token->issuers) {
        rt->jwks.push_back(std::make_unique<JwksSource>(issuer));
        rt->jwks.back()->Start();
      }
    }
    auto addr = asio::ip::make_address(t.listen_host, ec);
    if (ec) return InvalidArgument("target " + t.name + ": bad listen address " + t.listen_host);
    tcp::endpoint listen(addr, t.listen_port);
    auto acceptor = std::make_unique<tcp::acceptor>(accept_context_);
    acceptor->open(listen.protocol(), ec);
    if (!ec) acceptor->set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) acceptor->bind(listen, ec);
    if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return Unavailable("target " + t.name + ": cannot listen on " + t.listen_host + ":" +
                         std::to_string(t.listen_port) + ": " + ec.message());
    }
    targets_.push_back(std::move(rt));
    Listener l;
    l.target = targets_.size() - 1;
    l.inet = std::move(acceptor);
    acceptors_.push_back(std::move(l));
    if (!t.listen_unix.empty()) DBW_RETURN_IF_ERROR(ListenUnix(t));
  }
  // The relay shares the host with PostgreSQL: by default it takes half the cores, which on
  // a 2-core host measured more throughput than one worker per core (docs/performance.md).
  int n = options_.workers > 0
              ? options_.workers
              : static_cast<int>(std::max(1u, std::thread::hardware_concurrency() / 2));
  for (int i = 0; i < n; ++i) workers_.push_back(std::make_unique<Worker>());
  for (size_t i = 0; i < workers_.size(); ++i) {
    Worker* worker = workers_[i].get();
    worker->catalog.set_witness(deps_.witness);
    worker->thread = std::thread([worker, i] {
      SetThreadName("dbw-relay-" + std::to_string(i));
      auto guard = asio::make_work_guard(worker->context);
      worker->context.run();
    });
  }
  for (size_t i = 0; i < acceptors_.size(); ++i) Accept(i);
  accept_thread_ = std::thread([this] {
    SetThreadName("dbw-accept");
    accept_context_.run();
  });
  started_ = true;
  for (const auto& t : targets_) {
    DBW_LOG(kInfo) << "target " << t->options.name << " (" << t->options.env << "): listening on "
                   << t->options.listen_host << ":" << t->options.listen_port
                   << (t->options.listen_unix.empty() ? "" : " and " + t->options.listen_unix)
                   << ", upstream " << t->upstream_text;
  }
  return Status::Ok();
}

Status RelayServer::ListenUnix(const TargetOptions& t) {
  const std::string& path = t.listen_unix;
  auto fail = [&](const std::string& why) {
    return Unavailable("target " + t.name + ": cannot listen on " + path + ": " + why);
  };
  std::error_code fs_ec;
  std::filesystem::path dir = std::filesystem::path(path).parent_path();
  if (!std::filesystem::exists(dir, fs_ec)) {
    std::filesystem::create_directories(dir, fs_ec);
    if (fs_ec) return fail(fs_ec.message());
    ::chmod(dir.c_str(), 0755);
  }
  boost::system::error_code ec;
  asio::local::stream_protocol::endpoint endpoint(path);
  // A socket file left by an earlier run is replaced; one something still listens on is not.
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) return fail("the path exists and is not a socket");
    asio::local::stream_protocol::socket probe(accept_context_);
    probe.connect(endpoint, ec);
    if (!ec) return fail("another process listens there");
    ::unlink(path.c_str());
  }
  auto acceptor = std::make_unique<asio::local::stream_protocol::acceptor>(accept_context_);
  acceptor->open(endpoint.protocol(), ec);
  if (!ec) acceptor->bind(endpoint, ec);
  // Like PostgreSQL's default unix_socket_permissions: who may connect is the server's
  // authentication's business (and the policy's), not the file mode's.
  if (!ec && ::chmod(path.c_str(), 0777) != 0) ec.assign(errno, boost::system::system_category());
  if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return fail(ec.message());
  Listener l;
  l.target = targets_.size() - 1;
  l.local = std::move(acceptor);
  l.unix_path = path;
  acceptors_.push_back(std::move(l));
  return Status::Ok();
}

void RelayServer::Accept(size_t listener) {
  Worker* worker = workers_[next_worker_++ % workers_.size()].get();
  Listener& l = acceptors_[listener];
  const TargetRuntime* target = targets_[l.target].get();
  auto on_error = [this, listener](const boost::system::error_code& ec) {
    metrics_.accept_errors->Add();
    if (ec == asio::error::no_descriptors || ec.value() == ENFILE || ec.value() == ENOBUFS ||
        ec.value() == ENOMEM) {
      // Out of descriptors or memory: retrying at once spins a core and floods the log.
      // Wait (100 ms, doubling to 1 s while it lasts), and log once a second at most.
      BackOff(listener, ec);
      return;
    }
    DBW_LOG(kWarning) << "accept failed: " << ec.message();
    Accept(listener);
  };
  if (l.inet) {
    l.inet->async_accept(
        worker->context, [this, listener, worker, target, on_error](
                             const boost::system::error_code& ec, tcp::socket socket) {
          if (ec == asio::error::operation_aborted) return;  // shutting down
          if (ec) return on_error(ec);
          accept_backoff_ = kFirstAcceptBackoff;
          boost::system::error_code peer_ec;
          const std::string source = socket.remote_endpoint(peer_ec).address().to_string();
          if (!peer_ec) Admit(worker, target, Transport(std::move(socket)), source);
          Accept(listener);
        });
    return;
  }
  l.local->async_accept(worker->context, [this, listener, worker, target, on_error](
                                             const boost::system::error_code& ec,
                                             asio::local::stream_protocol::socket socket) {
    if (ec == asio::error::operation_aborted) return;
    if (ec) return on_error(ec);
    accept_backoff_ = kFirstAcceptBackoff;
    // Unix clients are counted per user: they share no address.
    ucred cred{};
    socklen_t len = sizeof(cred);
    if (::getsockopt(socket.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
      Admit(worker, target, Transport(std::move(socket)), "uid:" + std::to_string(cred.uid));
    Accept(listener);
  });
}

void RelayServer::Admit(Worker* worker, const TargetRuntime* target, Transport socket,
                        const std::string& source) {
  // The session is created on its worker, after this; eviction is posted there too, so it
  // finds the session (or nothing, once it ended) in order.
  auto slot = std::make_shared<std::weak_ptr<Session>>();
  ConnectionLimiter::Verdict verdict;
  auto lease = limiter_->Admit(
      source,
      [worker, slot] {
        asio::post(worker->context, [slot] {
          if (auto session = slot->lock()) session->Evict();
        });
      },
      &verdict);
  if (!lease) {
    const bool per_source = verdict == ConnectionLimiter::Verdict::kRefusedPerSource;
    (per_source ? metrics_.refused_per_source : metrics_.refused_total)->Add();
    RefuseConnection(std::move(socket), per_source);
    return;
  }
  if (verdict == ConnectionLimiter::Verdict::kEvicted) metrics_.connections_evicted->Add();
  asio::post(worker->context, [this, worker, target, slot, lease = std::move(lease),
                               s = std::move(socket)]() mutable {
    auto session = std::make_shared<Session>(worker, target, std::move(s), deps_);
    *slot = session;
    session->Start(std::move(lease));
  });
}

namespace {

// A refused connection answered the way PostgreSQL answers at max_connections: SSLRequest and
// GSSENCRequest get 'N', the startup packet gets the FATAL, and the connection closes once the
// client has read it (within a second: a client that sends nothing gets the FATAL then). The
// client's bytes are read, never kept: closing with unread input would reset the connection
// before the client read the error.
class Refusal : public std::enable_shared_from_this<Refusal> {
 public:
  Refusal(Transport transport, pg::Bytes fatal)
      : transport_(std::move(transport)),
        socket_(transport_.socket()),
        timer_(socket_.get_executor()),
        fatal_(std::move(fatal)) {}

  void Start() {
    timer_.expires_after(std::chrono::seconds(1));
    timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (ec) return;
      if (self->writing_) {
        self->fatal_pending_ = true;  // after the 'N' in flight: one write at a time
      } else {
        self->SendFatal();
      }
    });
    Read();
  }

 private:
  void Read() {
    socket_.async_read_some(
        asio::buffer(buffer_),
        [self = shared_from_this()](const boost::system::error_code& ec, size_t n) {
          if (ec) return self->Close();
          self->OnData(n);
        });
  }

  void OnData(size_t n) {
    if (fatal_sent_) return Read();  // draining until the client closes
    // The packet header: length (4) and code (4), the first 8 bytes of what is pending.
    for (size_t i = 0; i < n && header_len_ < header_.size(); ++i)
      header_[header_len_++] = buffer_[i];
    if (header_len_ < header_.size()) return Read();
    const uint32_t code = (uint32_t{header_[4]} << 24) | (uint32_t{header_[5]} << 16) |
                          (uint32_t{header_[6]} << 8) | uint32_t{header_[7]};
    if ((code == pg::kSslRequestCode || code == pg::kGssEncRequestCode) && ++negotiations_ <= 2) {
      header_len_ = 0;  // the next packet follows the answer
      static const char kNo = 'N';
      writing_ = true;
      asio::async_write(socket_, asio::buffer(&kNo, 1),
                        [self = shared_from_this()](const boost::system::error_code& ec, size_t) {
                          self->writing_ = false;
                          if (ec) return self->Close();
                          if (self->fatal_pending_) self->SendFatal();
                          self->Read();
                        });
      return;
    }
    SendFatal();
    Read();
  }

  void SendFatal() {
    if (fatal_sent_) return;
    fatal_sent_ = true;
    writing_ = true;
    asio::async_write(
        socket_, asio::buffer(fatal_),
        [self = shared_from_this()](const boost::system::error_code& ec, size_t) {
          self->writing_ = false;
          boost::system::error_code ignored;
          if (!ec) self->socket_.shutdown(StreamSocket::shutdown_send, ignored);
          self->timer_.expires_after(std::chrono::seconds(1));
          self->timer_.async_wait([self](const boost::system::error_code&) { self->Close(); });
        });
  }

  void Close() {
    boost::system::error_code ignored;
    timer_.cancel();
    socket_.close(ignored);
  }

  Transport transport_;
  StreamSocket& socket_;
  asio::steady_timer timer_;
  pg::Bytes fatal_;
  std::array<uint8_t, 512> buffer_{};
  std::array<uint8_t, 8> header_{};
  size_t header_len_ = 0;
  int negotiations_ = 0;
  bool fatal_sent_ = false;
  bool writing_ = false;        // an async_write is in flight
  bool fatal_pending_ = false;  // the timer fired during the 'N' write
};

}  // namespace

void RelayServer::RefuseConnection(Transport socket, bool per_source) {
  std::string message = per_source
                            ? "sorry, too many connections from this address: "
                              "relay.max_connections_per_source (" +
                                  std::to_string(options_.max_connections_per_source) + ") reached"
                            : "sorry, too many clients already: relay.max_connections (" +
                                  std::to_string(options_.max_connections) + ") reached";
  pg::Bytes fatal;
  pg::AppendErrorResponse(&fatal, {.severity = "FATAL", .sqlstate = "53300", .message = message});
  // On the socket's executor (its worker), like any session.
  auto executor = socket.socket().get_executor();
  asio::post(executor, [s = std::move(socket), fatal = std::move(fatal)]() mutable {
    std::make_shared<Refusal>(std::move(s), std::move(fatal))->Start();
  });
  auto now = std::chrono::steady_clock::now();
  if (now - last_refusal_log_ >= std::chrono::seconds(1)) {
    DBW_LOG(kWarning) << "relay: refused a connection: " << message << " ("
                      << metrics_.refused_total->value() + metrics_.refused_per_source->value()
                      << " refused so far)";
    last_refusal_log_ = now;
  }
}

void RelayServer::BackOff(size_t listener, const boost::system::error_code& ec) {
  auto now = std::chrono::steady_clock::now();
  if (now - last_accept_log_ >= std::chrono::seconds(1)) {
    DBW_LOG(kWarning) << "accept failed on target \""
                      << targets_[acceptors_[listener].target]->options.name
                      << "\": " << ec.message() << " (" << metrics_.accept_errors->value()
                      << " failed accepts so far); retrying in " << accept_backoff_.count()
                      << " ms";
    last_accept_log_ = now;
  }
  auto timer = std::make_shared<asio::steady_timer>(accept_context_, accept_backoff_);
  accept_backoff_ = std::min(accept_backoff_ * 2, std::chrono::milliseconds(1000));
  timer->async_wait([this, timer, listener](const boost::system::error_code& wait_ec) {
    if (wait_ec == asio::error::operation_aborted || !acceptors_[listener].is_open()) return;
    Accept(listener);
  });
}

size_t RelayServer::active_sessions() const {
  int64_t n = metrics_.sessions_active->value();
  return n > 0 ? static_cast<size_t>(n) : 0;
}

void RelayServer::Shutdown() {
  if (!started_) return;
  started_ = false;
  asio::post(accept_context_, [this] {
    for (auto& a : acceptors_) {
      boost::system::error_code ec;
      if (a.inet) a.inet->close(ec);
      if (a.local) {
        a.local->close(ec);
        ::unlink(a.unix_path.c_str());
      }
    }
  });
  accept_thread_.join();

  auto deadline = std::chrono::steady_clock::now() + options_.shutdown_grace;
  if (active_sessions() > 0) {
    DBW_LOG(kInfo) << "draining " << active_sessions() << " session(s) for up to "
                   << options_.shutdown_grace.count() << " ms";
  }
  while (active_sessions() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (auto& w : workers_) {
    std::promise<void> done;
    asio::post(w->context, [worker = w.get(), &done] {
      // Copy: Terminate may end sessions synchronously and edit the set.
      std::vector<Session*> open(worker->sessions.begin(), worker->sessions.end());
      for (Session* s : open)
        s->Terminate("57P01", "terminating connection because dbwarden is shutting down");
      done.set_value();
    });
    done.get_future().wait();
  }
  // Give the FATAL messages a moment to be written, then stop.
  auto hard = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (active_sessions() > 0 && std::chrono::steady_clock::now() < hard) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  // Peer lookups still queued, and key-set reads that sessions wait for, would post to the
  // workers below once they are gone.
  if (deps_.resolver != nullptr) deps_.resolver->Stop();
  for (auto& t : targets_)
    for (auto& source : t->jwks) source->Stop();
  for (auto& w : workers_) w->context.stop();
  for (auto& w : workers_) w->thread.join();
  workers_.clear();
}

}  // namespace dbw::relay
