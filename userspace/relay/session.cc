// Session: startup negotiation, the two-way pump, and the session's audit events.
#include "userspace/relay/session.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "userspace/common/logging.h"
#include "userspace/common/random_id.h"
#include "userspace/gate/coverage.h"
#include "userspace/identity/process_info.h"
#include "userspace/protocol/postgres/encoder.h"
#include "userspace/protocol/postgres/parse.h"
#include "userspace/relay/tls.h"

namespace dbw::relay {
namespace {

constexpr size_t kInitialBuffer = 64 * 1024;
constexpr size_t kMinReadSpace = 16 * 1024;

uint64_t MonotonicNs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

std::string EndpointText(const tcp::endpoint& ep) {
  auto addr = ep.address();
  std::string host = addr.to_string();
  if (addr.is_v6()) host = "[" + host + "]";
  return host + ":" + std::to_string(ep.port());
}

}  // namespace

Session::Session(Worker* worker, const TargetRuntime* target, tcp::socket client,
                 const SessionDeps& deps)
    : worker_(worker),
      target_(target),
      deps_(deps),
      id_(RandomHexId(8)),
      client_(std::move(client)),
      timer_(worker->context),
      state_(this),
      client_decoder_(pg::Direction::kFrontend, this, deps.options->stream_threshold),
      upstream_decoder_(pg::Direction::kBackend, this, deps.options->stream_threshold),
      gate_(&worker->analyzer),
      hold_timer_(worker->context) {
  worker_->sessions.insert(this);
  deps_.metrics->sessions_active->Add(1);
  deps_.metrics->sessions_total->Add();
}

Session::~Session() {
  worker_->sessions.erase(this);
  deps_.metrics->sessions_active->Add(-1);
  if (client_key_) deps_.cancels->Unregister(*client_key_);
}

void Session::Start() {
  boost::system::error_code ec;
  auto remote = client_.transport.socket().remote_endpoint(ec);
  if (ec) {
    Close("client gone before start");
    return;
  }
  principal_.client_addr = EndpointText(remote);
  client_.transport.socket().set_option(tcp::no_delay(true), ec);
  client_.in.resize(kInitialBuffer);
  ResolvePeer();
  ReadStartup();
}

void Session::ResolvePeer() {
  boost::system::error_code ec;
  auto remote = client_.transport.socket().remote_endpoint(ec);
  auto local = client_.transport.socket().local_endpoint(ec);
  if (ec || !remote.address().is_loopback()) {
    peer_resolved_ = true;
    return;
  }
  identity::Endpoint client{remote.address().to_string(), remote.port()};
  identity::Endpoint server{local.address().to_string(), local.port()};
  std::weak_ptr<Session> weak = weak_from_this();
  auto executor = worker_->context.get_executor();
  deps_.resolver->Resolve(client, server, [weak, executor](std::optional<identity::ProcessInfo> p) {
    asio::post(executor, [weak, p = std::move(p)]() mutable {
      auto self = weak.lock();
      if (!self || self->closed_) return;
      self->process_ = std::move(p);
      self->peer_resolved_ = true;
      self->info_.reset();  // republished with the process on the next event
      if (self->start_pending_) self->EmitSessionStart();
      if (self->startup_waiting_peer_) {
        self->startup_waiting_peer_ = false;
        self->SendStartupUpstream();
        return;
      }
      self->MaybeStartClientPump();
    });
  });
}

// ---- Startup ----

void Session::ReadStartup() {
  auto self = shared_from_this();
  auto& buf = client_.in;
  client_.transport.AsyncReadSome(
      asio::buffer(buf.data() + client_.in_len, buf.size() - client_.in_len),
      [this, self](const boost::system::error_code& ec, size_t n) {
        if (ec || closing_) {
          Close(ec ? "client closed during startup" : "closing");
          return;
        }
        client_.in_len += n;
        OnStartupData();
      });
}

void Session::OnStartupData() {
  std::span<const std::byte> in(client_.in.data(), client_.in_len);
  pg::Frame frame;
  std::string error;
  pg::ParseState st = pg::ParseFrame(pg::Direction::kFrontend, true, &in, &frame, &error);
  if (st == pg::ParseState::kNeedMoreData) {
    ReadStartup();
    return;
  }
  if (st == pg::ParseState::kInvalid) {
    Fail(audit::EventKind::kProtocolViolation, "08P01", "invalid startup packet: " + error);
    return;
  }
  pg::StartupPacket packet;
  if (!pg::ParseStartupPacket(frame.body, &packet, &error)) {
    Fail(audit::EventKind::kProtocolViolation, "08P01", "invalid startup packet: " + error);
    return;
  }
  size_t used = frame.WireSize();
  auto consume = [this, used] {
    std::memmove(client_.in.data(), client_.in.data() + used, client_.in_len - used);
    client_.in_len -= used;
  };
  switch (packet.kind) {
    case pg::StartupKind::kSslRequest:
    case pg::StartupKind::kGssEncRequest: {
      consume();
      bool accept = packet.kind == pg::StartupKind::kSslRequest && target_->server_tls &&
                    !client_.transport.tls();
      if (client_.in_len != 0) {
        // Bytes after an SSLRequest would be read as plaintext before the handshake.
        Fail(audit::EventKind::kProtocolViolation, "08P01",
             "unexpected data after encryption request");
        return;
      }
      auto self = shared_from_this();
      client_.out.assign(1, static_cast<std::byte>(accept ? 'S' : 'N'));
      client_.transport.AsyncWrite(
          asio::buffer(client_.out),
          [this, self, accept](const boost::system::error_code& ec, size_t) {
            if (ec) {
              Close("client closed during SSL negotiation");
            } else if (accept) {
              StartClientTls();
            } else {
              ReadStartup();
            }
          });
      return;
    }
    case pg::StartupKind::kCancel:
      HandleCancel(packet.cancel);
      return;
    case pg::StartupKind::kStartup:
      break;
  }
  state_.OnStartup(packet.startup);
  principal_.db_user = state_.user();
  principal_.database = state_.database();
  principal_.application_name = state_.application_name();
  startup_bytes_.assign(client_.in.begin(), client_.in.begin() + static_cast<ptrdiff_t>(used));
  consume();
  ConnectUpstream();
}

void Session::StartClientTls() {
  client_.transport.EnableTls(*target_->server_tls);
  auto self = shared_from_this();
  timer_.expires_after(deps_.options->connect_timeout);
  timer_.async_wait([this, self](const boost::system::error_code& ec) {
    if (!ec && !closed_ && !upstream_) Close("client TLS handshake timed out");
  });
  client_.transport.tls_stream()->async_handshake(
      asio::ssl::stream_base::server, [this, self](const boost::system::error_code& ec) {
        timer_.cancel();
        if (ec) {
          DBW_LOG(kInfo) << "session " << id_ << ": client TLS handshake failed: " << ec.message();
          Close("client TLS handshake failed");
          return;
        }
        info_.reset();
        principal_.tls_subject =
            PeerCertificateSubject(client_.transport.tls_stream()->native_handle());
        ReadStartup();
      });
}

void Session::HandleCancel(const pg::CancelRequest& request) {
  auto upstream = deps_.cancels->Find(request);
  if (!upstream) {
    // As PostgreSQL does: no answer either way, so a guesser learns nothing.
    DBW_LOG(kInfo) << "session " << id_ << ": cancel request with unknown key ignored";
    Close("cancel request (unknown key)");
    return;
  }
  if (upstream->on_cancel) {
    // The statement is held by the relay for approval; nothing runs on the server.
    upstream->on_cancel();
    Close("cancel request (held statement withdrawn)");
    return;
  }
  const TargetRuntime* target = nullptr;
  for (const auto& t : *deps_.targets)
    if (t->options.name == upstream->target) target = t.get();
  if (target == nullptr) {
    Close("cancel request for a removed target");
    return;
  }
  // The cancel goes over its own plain connection; the server answers nothing and closes.
  upstream_ = std::make_unique<Leg>(tcp::socket(worker_->context));
  pg::AppendCancelRequest(&upstream_->out, pg::CancelRequest{upstream->key.pid, upstream->key.key});
  auto self = shared_from_this();
  upstream_->transport.socket().async_connect(
      target->upstream, [this, self](const boost::system::error_code& ec) {
        if (ec) {
          Close("cancel: upstream unreachable");
          return;
        }
        upstream_->transport.AsyncWrite(asio::buffer(upstream_->out),
                                        [this, self](const boost::system::error_code&, size_t) {
                                          deps_.metrics->cancels_forwarded->Add();
                                          Close("cancel request forwarded");
                                        });
      });
}

void Session::ConnectUpstream() {
  upstream_ = std::make_unique<Leg>(tcp::socket(worker_->context));
  upstream_->in.resize(kInitialBuffer);
  auto self = shared_from_this();
  timer_.expires_after(deps_.options->connect_timeout);
  timer_.async_wait([this, self](const boost::system::error_code& ec) {
    if (!ec && !upstream_ready_ && !closed_) {
      boost::system::error_code ignored;
      upstream_->transport.socket().close(ignored);  // fails the pending connect/handshake
    }
  });
  upstream_->transport.socket().async_connect(
      target_->upstream, [this, self](const boost::system::error_code& ec) {
        if (closing_) return;
        if (ec) {
          timer_.cancel();
          Fail(audit::EventKind::kUpstreamError, "08006",
               "dbwarden: could not connect to upstream server of target \"" +
                   target_->options.name + "\": " + ec.message());
          return;
        }
        OnUpstreamConnected();
      });
}

void Session::OnUpstreamConnected() {
  boost::system::error_code ec;
  upstream_->transport.socket().set_option(tcp::no_delay(true), ec);
  if (target_->client_tls) {
    NegotiateUpstreamTls();
  } else {
    SendStartupUpstream();
  }
}

void Session::NegotiateUpstreamTls() {
  auto self = shared_from_this();
  upstream_->out.clear();
  pg::AppendSslRequest(&upstream_->out);
  upstream_->transport.AsyncWrite(
      asio::buffer(upstream_->out), [this, self](const boost::system::error_code& ec, size_t) {
        if (ec || closing_) {
          if (!closing_)
            Fail(audit::EventKind::kUpstreamError, "08006",
                 "dbwarden: upstream closed during SSL negotiation");
          return;
        }
        asio::async_read(
            upstream_->transport.socket(), asio::buffer(upstream_->in.data(), 1),
            [this, self](const boost::system::error_code& ec, size_t) {
              if (closing_) return;
              if (ec || upstream_->in[0] != static_cast<std::byte>('S')) {
                Fail(audit::EventKind::kUpstreamError, "08006",
                     "dbwarden: upstream server of target \"" + target_->options.name +
                         "\" does not accept TLS");
                return;
              }
              upstream_->transport.EnableTls(*target_->client_tls);
              auto* stream = upstream_->transport.tls_stream();
              const auto& o = *target_->options.upstream_tls;
              if (!o.server_name.empty()) {
                SSL_set_tlsext_host_name(stream->native_handle(), o.server_name.c_str());
                stream->set_verify_callback(asio::ssl::host_name_verification(o.server_name));
              }
              stream->async_handshake(
                  asio::ssl::stream_base::client,
                  [this, self](const boost::system::error_code& ec) {
                    if (closing_) return;
                    if (ec) {
                      Fail(audit::EventKind::kUpstreamError, "08006",
                           "dbwarden: TLS handshake with upstream server of target \"" +
                               target_->options.name + "\" failed: " + ec.message());
                      return;
                    }
                    SendStartupUpstream();
                  });
            });
      });
}

bool Session::JudgeStartup() {
  std::span<const std::byte> in(startup_bytes_);
  pg::Frame frame;
  pg::StartupPacket packet;
  std::string error;
  if (pg::ParseFrame(pg::Direction::kFrontend, true, &in, &frame, &error) != pg::ParseState::kOk ||
      !pg::ParseStartupPacket(frame.body, &packet, &error)) {
    Fail(audit::EventKind::kProtocolViolation, "08P01", "invalid startup packet: " + error);
    return false;
  }
  StatusOr<gate::StartupRequest> request = gate::ReadStartup(packet.startup);
  if (!request.ok()) {
    deps_.metrics->protocol_violations->Add();
    Fail(audit::EventKind::kProtocolViolation, "08P01", "dbwarden: " + request.status().message());
    return false;
  }
  std::shared_ptr<const policy::CompiledPolicy> policy = deps_.policy->Get();
  UpdateMasking(policy);
  for (const gate::StartupSetting& setting : request->settings) {
    std::string what = setting.from_options ? "startup option -c " + setting.name
                                            : "startup parameter \"" + setting.name + "\"";
    if (!JudgeStartupStatement(gate_.Facts(gate::SetStatementFor(setting)), what, policy))
      return false;
  }
  if (request->replication_requested) {
    auto facts = std::make_shared<sql::QueryFacts>();
    sql::StatementFacts& s = facts->statements.emplace_back();
    s.command = sql::Command::kReplication;
    s.object_kind = request->replication == "database" ? "DATABASE" : "PHYSICAL";
    s.normalized = "REPLICATION " + s.object_kind;
    if (!JudgeStartupStatement(std::move(facts), "replication connection", policy)) return false;
  }
  return true;
}

bool Session::JudgeStartupStatement(std::shared_ptr<const sql::QueryFacts> facts,
                                    const std::string& what,
                                    const std::shared_ptr<const policy::CompiledPolicy>& policy) {
  auto note = std::make_shared<DecisionNote>();
  note->facts = std::move(facts);
  note->decision =
      gate_.Decide(*policy, {target_->options.name, target_->options.env}, PolicyPrincipal(policy),
                   *note->facts, masking_.active(), std::chrono::system_clock::now());
  const policy::Decision& d = note->decision;
  bool stop = d.action == policy::Action::kDeny || d.action == policy::Action::kApprove;
  note->enforced = stop && !d.monitor;
  deps_.metrics->decisions[static_cast<int>(d.action)]->Add();
  if (stop && d.monitor) deps_.metrics->decisions_monitored->Add();
  if (d.action == policy::Action::kAllow && d.rules.empty()) return true;
  audit::Event e = NewEvent(audit::EventKind::kDecision);
  e.statement = audit::StatementInfo{note->facts, "startup", ""};
  e.decision = audit::DecisionInfo{std::shared_ptr<const policy::Decision>(note, &note->decision),
                                   note->enforced, ""};
  deps_.sink->Submit(std::move(e));
  if (!note->enforced) return true;
  // A connection cannot wait for an approval: `approve` refuses it too.
  EndWithFatal(d.sqlstate.empty() ? std::string_view("42501") : std::string_view(d.sqlstate),
               "dbwarden: " + what + " refused: " + d.reason);
  return false;
}

void Session::SendStartupUpstream() {
  if (!peer_resolved_) {  // the startup is judged with the client's process known
    startup_waiting_peer_ = true;
    return;
  }
  if (closing_ || !JudgeStartup()) return;
  auto self = shared_from_this();
  upstream_->out = std::move(startup_bytes_);
  upstream_->writing = true;
  upstream_->transport.AsyncWrite(asio::buffer(upstream_->out),
                                  [this, self](const boost::system::error_code& ec, size_t) {
                                    upstream_->writing = false;
                                    timer_.cancel();
                                    if (closing_) {
                                      FlushFatalThenClose();
                                      return;
                                    }
                                    if (ec) {
                                      Fail(audit::EventKind::kUpstreamError, "08006",
                                           "dbwarden: upstream closed during startup");
                                      return;
                                    }
                                    upstream_ready_ = true;
                                    upstream_decoder_.set_startup(false);
                                    Read(Side::kUpstream);
                                    MaybeStartClientPump();
                                  });
}

void Session::MaybeStartClientPump() {
  // The client's first message waits for the peer lookup, so every statement event carries
  // the client's process.
  if (client_pumping_ || !upstream_ready_ || !peer_resolved_ || closing_) return;
  client_pumping_ = true;
  if (client_.in_len > 0) {
    OnRead(Side::kClient, {}, 0);  // bytes that arrived with the startup packet
  } else {
    Read(Side::kClient);
  }
}

// ---- The pump ----

void Session::Read(Side side) {
  if (closing_) return;
  Leg& src = leg(side);
  if (src.in.size() - src.in_len < kMinReadSpace) src.in.resize(src.in.size() * 2);
  auto self = shared_from_this();
  src.transport.AsyncReadSome(
      asio::buffer(src.in.data() + src.in_len, src.in.size() - src.in_len),
      [this, self, side](const boost::system::error_code& ec, size_t n) { OnRead(side, ec, n); });
}

void Session::OnRead(Side side, const boost::system::error_code& ec, size_t n) {
  if (closing_) {
    FlushFatalThenClose();
    return;
  }
  if (ec) {
    if (side == Side::kClient) {
      Close(state_.phase() == pg::Phase::kTerminated ? "client sent Terminate"
            : ec == asio::error::eof                 ? "client disconnected without Terminate"
                                                     : "client connection error: " + ec.message());
    } else if (state_.phase() == pg::Phase::kTerminated) {
      Close("client sent Terminate");
    } else {
      Close(ec == asio::error::eof ? "upstream closed the connection"
                                   : "upstream connection error: " + ec.message());
    }
    return;
  }
  Leg& src = leg(side);
  Leg& dst = leg(side == Side::kClient ? Side::kUpstream : Side::kClient);
  src.in_len += n;
  (side == Side::kClient ? deps_.metrics->bytes_client_to_upstream
                         : deps_.metrics->bytes_upstream_to_client)
      ->Add(n);
  if (side == Side::kUpstream && client_.writing) {
    // A relay-made notice is being written to the client: these bytes follow it.
    upstream_deferred_ = true;
    return;
  }
  dst.out.clear();
  pg::StreamDecoder& decoder = side == Side::kClient ? client_decoder_ : upstream_decoder_;
  pg::DecodeResult r = decoder.Decode({src.in.data(), src.in_len}, &dst.out);
  if (r.error) {
    deps_.metrics->protocol_violations->Add();
    Fail(audit::EventKind::kProtocolViolation, "08P01",
         side == Side::kClient ? "dbwarden: invalid message from client: " + r.reason
                               : "dbwarden: invalid message from upstream server: " + r.reason);
    return;
  }
  if (r.consumed > 0) {
    std::memmove(src.in.data(), src.in.data() + r.consumed, src.in_len - r.consumed);
    src.in_len -= r.consumed;
  }
  if (r.need > src.in.size()) src.in.resize(r.need);
  if (closing_) {  // a handler decided to end the session
    FlushFatalThenClose();
    return;
  }
  if (dst.out.empty()) {
    if (!r.paused) Read(side);  // paused: OnCommitted resumes decoding
    return;
  }
  auto self = shared_from_this();
  dst.writing = true;
  dst.transport.AsyncWrite(
      asio::buffer(dst.out), [this, self, side](const boost::system::error_code& ec, size_t) {
        leg(side == Side::kClient ? Side::kUpstream : Side::kClient).writing = false;
        OnWritten(side, ec);
      });
}

void Session::OnWritten(Side side, const boost::system::error_code& ec) {
  if (closing_) {
    FlushFatalThenClose();
    return;
  }
  if (ec) {
    Close(side == Side::kClient ? "upstream write failed: " + ec.message()
                                : "client write failed: " + ec.message());
    return;
  }
  if (side == Side::kClient && pause_ != Pause::kNone) {
    // Waiting for an audit commit, the catalog or an approval: resume once it is there (maybe
    // it already is).
    if (pause_ == Pause::kCommitted || pause_ == Pause::kCatalogReady ||
        pause_ == Pause::kApprovalReady)
      ResumeClient();
    return;
  }
  if (side == Side::kUpstream && !client_extra_.empty()) {
    FlushClientExtra(true);
    return;
  }
  Read(side);
}

pg::MessageAction Session::OnMessage(pg::Direction dir, const pg::Frame& frame, pg::Bytes* out,
                                     std::string* reason) {
  if (dir == pg::Direction::kBackend) return OnBackendMessage(frame, out, reason);
  // The coverage matrix: every message type has a verdict in this phase; the rest is refused.
  gate::DoorVerdict door = gate::FrontendDoor(state_.phase(), frame.type);
  if (door.door == gate::Door::kRefuse) {
    *reason = std::string(door.why);
    return pg::MessageAction::kReject;
  }
  bool judged = door.door == gate::Door::kJudge && auth_proxy_ == AuthProxy::kOff;
  std::shared_ptr<DecisionNote> note;
  if (judged) {
    if (resume_note_) {
      note = std::move(resume_note_);  // judged and committed before the pause
    } else {
      UpdateMasking(deps_.policy->Get());
      if (AwaitCatalog(frame.type == pg::fe::kFunctionCall))
        return pg::MessageAction::kPause;  // OnCatalog resumes here
      note = Decide(frame, reason);
      if (!note) return pg::MessageAction::kReject;
      if (NeedsApproval(*note)) {
        AwaitApproval(std::move(note), frame);
        return pg::MessageAction::kPause;  // OnApprovalOutcome resumes here
      }
      if (target_->options.audit_before_forward && !note->enforced) {
        AwaitCommit(note);
        return pg::MessageAction::kPause;
      }
    }
  }
  if (!state_.OnFrontend(frame, MonotonicNs(), reason)) return pg::MessageAction::kReject;
  if (auth_proxy_ != AuthProxy::kOff) return OnClientPassword(frame, out, reason);
  TrackForwarded(frame, note);
  if (!note || !state_.last_request_annotatable()) return pg::MessageAction::kForward;
  bool enforced = note->enforced;
  state_.AnnotateLastRequest(std::move(note));
  if (!enforced) return pg::MessageAction::kForward;
  // The server answers this with a syntax error in the refused statement's place: its
  // ErrorResponse and ReadyForQuery (or, in the extended protocol, its skipping to Sync) come
  // in order, and an open transaction is aborted exactly as a real error would abort it.
  // RewriteRefusal turns that error into the policy's.
  static constexpr std::string_view kRefused = "dbwarden refused this statement";
  if (frame.type == pg::fe::kQuery) {
    pg::AppendQuery(out, kRefused);
  } else if (frame.type == pg::fe::kFunctionCall) {
    // A call of function OID 0, which the server answers with an error and ReadyForQuery.
    pg::AppendFunctionCall(out, 0);
  } else {
    pg::ParseMessage m;
    if (!pg::ParseParse(frame.body, &m, reason)) return pg::MessageAction::kReject;
    pg::AppendParse(out, m.name, kRefused);
  }
  return pg::MessageAction::kHandled;
}

void Session::AwaitCommit(std::shared_ptr<DecisionNote> note) {
  audit::Event e = NewEvent(audit::EventKind::kDecision);
  e.statement = audit::StatementInfo{note->facts, "simple", ""};
  e.decision = audit::DecisionInfo{std::shared_ptr<const policy::Decision>(note, &note->decision),
                                   note->enforced, note->approval_id};
  resume_note_ = std::move(note);
  pause_ = Pause::kWaitingCommit;
  std::weak_ptr<Session> weak = weak_from_this();
  auto executor = worker_->context.get_executor();
  deps_.sink->SubmitAndWait(std::move(e), [weak, executor](const Status& st, uint64_t) {
    asio::post(executor, [weak, st] {
      if (auto self = weak.lock()) self->OnCommitted(st);
    });
  });
}

void Session::OnCommitted(const Status& status) {
  if (closed_ || pause_ != Pause::kWaitingCommit) return;
  if (!status.ok()) {
    // Fail closed: a statement whose decision is not in the audit log does not run.
    deps_.metrics->audit_refusals->Add();
    DBW_LOG(kError) << "session " << id_ << ": audit log cannot commit (" << status.message()
                    << "); refusing the statement";
    if (!resume_note_->approval_id.empty() && !resume_note_->enforced && deps_.approvals)
      deps_.approvals->Unexecute(resume_note_->approval_id,
                                 "its decision could not be written to the audit log");
    resume_note_->enforced = true;
    resume_note_->audit_failure = status.message();
  }
  pause_ = Pause::kCommitted;
  if (!upstream_->writing) ResumeClient();
}

void Session::ResumeClient() {
  pause_ = Pause::kNone;
  OnRead(Side::kClient, {}, 0);  // decode what is buffered, from the paused message on
}

std::shared_ptr<DecisionNote> Session::Decide(const pg::Frame& frame, std::string* reason) {
  uint64_t start = MonotonicNs();
  auto note = std::make_shared<DecisionNote>();
  if (frame.type == pg::fe::kQuery) {
    pg::QueryMessage m;
    if (!pg::ParseQuery(frame.body, &m, reason)) return nullptr;
    note->facts = gate_.Facts(m.sql);
  } else if (frame.type == pg::fe::kParse) {
    pg::ParseMessage m;
    if (!pg::ParseParse(frame.body, &m, reason)) return nullptr;
    note->facts = gate_.Facts(m.sql);
  } else {
    pg::FunctionCallMessage m;
    if (!pg::ParseFunctionCall(frame.body, &m, reason)) return nullptr;
    note->facts = gate_.FunctionCallFacts(m.function_oid, FunctionName(m.function_oid));
  }
  std::shared_ptr<const policy::CompiledPolicy> policy = deps_.policy->Get();
  note->decision =
      gate_.Decide(*policy, {target_->options.name, target_->options.env}, PolicyPrincipal(policy),
                   *note->facts, masking_.active(), std::chrono::system_clock::now());
  const policy::Decision& d = note->decision;
  bool stop = d.action == policy::Action::kDeny || d.action == policy::Action::kApprove;
  note->enforced = stop && !d.monitor;
  deps_.metrics->decisions[static_cast<int>(d.action)]->Add();
  if (stop && d.monitor) deps_.metrics->decisions_monitored->Add();
  deps_.metrics->decision_latency->ObserveMicros((MonotonicNs() - start) / 1000);
  return note;
}

const policy::Principal& Session::PolicyPrincipal(
    const std::shared_ptr<const policy::CompiledPolicy>& policy) {
  const policy::Principal& p =
      principal_classifier_.Classified(policy, state_.application_name(), [this] {
        policy::Principal id;
        id.db_user = principal_.db_user;
        id.database = principal_.database;
        id.client_addr = principal_.client_addr;
        id.cert_subject = principal_.tls_subject;
        id.subject = id.cert_subject.empty() ? id.db_user : id.cert_subject;
        if (process_) {
          id.exe = process_->exe;
          id.unit = identity::UnitFromCgroup(process_->cgroup);
          id.container = identity::ContainerFromCgroup(process_->cgroup);
        }
        return id;
      });
  if (principal_.application_name != p.application_name ||
      principal_.kind != policy::KindName(p.kind)) {
    principal_.application_name = p.application_name;
    principal_.kind = policy::KindName(p.kind);
    info_.reset();
  }
  return p;
}

bool Session::RewriteRefusal(const pg::Frame& frame, pg::Bytes* out, std::string* reason) {
  const auto* note = dynamic_cast<const DecisionNote*>(state_.HeadNote());
  if (note == nullptr || !note->enforced) return false;
  const policy::Decision& d = note->decision;
  if (!note->audit_failure.empty()) {
    return ReplaceWithError({.severity = "ERROR",
                             .sqlstate = "58000",
                             .message = "dbwarden: the audit log cannot record this "
                                        "statement, so it was not run",
                             .detail = note->audit_failure},
                            out, reason);
  }
  if (note->refusal) {
    // An approval's answer: ticket, denied, timed out, withdrawn; it names the request.
    const approvals::Outcome& o = *note->refusal;
    return ReplaceWithError({.severity = "ERROR",
                             .sqlstate = o.sqlstate,
                             .message = o.message,
                             .detail = o.detail,
                             .hint = o.hint},
                            out, reason);
  }
  std::string rules;
  for (const auto& r : d.rules) rules += (rules.empty() ? "" : ", ") + r;
  std::string message = "dbwarden: " + d.reason;  // names the rule and says deny or approval
  return ReplaceWithError({.severity = "ERROR",
                           .sqlstate = d.sqlstate.empty() ? std::string_view("42501") : d.sqlstate,
                           .message = message,
                           .detail = rules.empty() ? "" : "policy rule(s): " + rules,
                           .hint = d.action == policy::Action::kApprove
                                       ? "an approver must approve this statement before it can run"
                                       : ""},
                          out, reason);
}

bool Session::ReplaceWithError(const pg::ErrorFields& fields, pg::Bytes* out, std::string* reason) {
  pg::Bytes replaced;
  pg::AppendErrorResponse(&replaced, fields);
  std::span<const std::byte> in(replaced);
  pg::Frame rewritten;
  if (pg::ParseFrame(pg::Direction::kBackend, false, &in, &rewritten, reason) !=
          pg::ParseState::kOk ||
      !state_.OnBackend(rewritten, MonotonicNs(), reason))
    return false;
  out->insert(out->end(), replaced.begin(), replaced.end());
  return true;
}

pg::MessageAction Session::OnAuthentication(const pg::Frame& frame, pg::Bytes* out,
                                            std::string* reason) {
  if (auth_proxy_ != AuthProxy::kOff) return OnProxiedAuthentication(frame, reason);
  if (state_.last_auth_request() != pg::AuthCode::kSasl || !client_.transport.tls())
    return pg::MessageAction::kForward;
  pg::AuthenticationMessage auth;
  std::vector<std::string_view> mechs;
  if (!pg::ParseAuthentication(frame.body, &auth, reason) ||
      !pg::ParseSaslMechanisms(auth.data, &mechs, reason))
    return pg::MessageAction::kReject;
  bool plus_offered = std::any_of(mechs.begin(), mechs.end(),
                                  [](std::string_view m) { return m.ends_with("-PLUS"); });
  bool scram_offered =
      std::find(mechs.begin(), mechs.end(), ScramClient::kMechanism) != mechs.end();
  if (plus_offered && scram_offered && upstream_->transport.tls()) {
    // A TLS client that is not offered -PLUS says so in its SCRAM header ("y"), and a server
    // that supports channel binding refuses that as a downgrade. The relay authenticates in
    // the client's place instead, with the password sent over the client's TLS leg.
    auth_proxy_ = AuthProxy::kAwaitPassword;
    pg::AppendAuthenticationRequest(out, pg::AuthCode::kCleartextPassword);
    return pg::MessageAction::kHandled;
  }
  // Channel binding would bind to the relay's certificate, which the server never sees.
  std::erase_if(mechs, [](std::string_view m) { return m.ends_with("-PLUS"); });
  pg::AppendAuthenticationSasl(out, mechs);
  return pg::MessageAction::kHandled;
}

pg::MessageAction Session::OnClientPassword(const pg::Frame& frame, pg::Bytes* out,
                                            std::string* reason) {
  if (auth_proxy_ != AuthProxy::kAwaitPassword || frame.type != pg::fe::kPassword) {
    *reason = "message sent while authentication was in progress";
    return pg::MessageAction::kReject;
  }
  std::string_view password;
  if (!pg::ParsePasswordMessage(frame.body, &password, reason)) return pg::MessageAction::kReject;
  scram_ = std::make_unique<ScramClient>(std::string(password));
  pg::AppendSaslInitialResponse(out, ScramClient::kMechanism, scram_->ClientFirst());
  auth_proxy_ = AuthProxy::kAwaitContinue;
  return pg::MessageAction::kHandled;
}

pg::MessageAction Session::OnProxiedAuthentication(const pg::Frame& frame, std::string* reason) {
  pg::AuthenticationMessage auth;
  if (!pg::ParseAuthentication(frame.body, &auth, reason)) return pg::MessageAction::kReject;
  std::string_view data(reinterpret_cast<const char*>(auth.data.data()), auth.data.size());
  if (auth_proxy_ == AuthProxy::kAwaitContinue && auth.code == pg::AuthCode::kSaslContinue) {
    auto final_message = scram_->ClientFinal(data);
    if (!final_message.ok()) {
      *reason = final_message.status().message();
      return pg::MessageAction::kReject;
    }
    pg::Bytes response;
    pg::AppendSaslResponse(&response, *final_message);
    WriteUpstreamOutOfBand(std::move(response));
    auth_proxy_ = AuthProxy::kAwaitFinal;
    return pg::MessageAction::kHandled;
  }
  if (auth_proxy_ == AuthProxy::kAwaitFinal && auth.code == pg::AuthCode::kSaslFinal) {
    if (Status st = scram_->VerifyServerFinal(data); !st.ok()) {
      *reason = st.message();
      return pg::MessageAction::kReject;
    }
    auth_proxy_ = AuthProxy::kAwaitOk;
    return pg::MessageAction::kHandled;
  }
  if (auth_proxy_ == AuthProxy::kAwaitOk && auth.code == pg::AuthCode::kOk) {
    auth_proxy_ = AuthProxy::kOff;
    scram_.reset();  // drops the password
    return pg::MessageAction::kForward;
  }
  *reason = "unexpected authentication message during SCRAM exchange";
  return pg::MessageAction::kReject;
}

void Session::WriteUpstreamOutOfBand(pg::Bytes bytes) {
  if (upstream_->writing || closing_) return;  // the exchange is strictly request/response
  oob_out_ = std::move(bytes);
  upstream_->writing = true;
  auto self = shared_from_this();
  upstream_->transport.AsyncWrite(asio::buffer(oob_out_),
                                  [this, self](const boost::system::error_code& ec, size_t) {
                                    upstream_->writing = false;
                                    if (closing_) {
                                      FlushFatalThenClose();
                                    } else if (ec) {
                                      Close("upstream write failed during authentication");
                                    }
                                  });
}

void Session::TrackForwarded(const pg::Frame& frame, const std::shared_ptr<DecisionNote>& note) {
  switch (frame.type) {
    case pg::fe::kSync:
      gate_.OnSyncPoint();
      return;
    case pg::fe::kQuery:
    case pg::fe::kParse:
    case pg::fe::kFunctionCall: {
      if (frame.type != pg::fe::kParse) gate_.OnSyncPoint();
      if (note == nullptr || note->enforced || !note->facts) return;  // replaced: runs nothing
      std::string_view parse_name;
      if (frame.type == pg::fe::kParse) parse_name = state_.last_parse_name();
      gate_.OnForwarded(note->facts, frame.type != pg::fe::kParse, parse_name);
      // SQL-level names share the server's table with protocol-level ones: what was learned
      // about a redefined name (its result description) must not be used again.
      for (const sql::StatementFacts& s : note->facts->statements) {
        if (s.command == sql::Command::kPrepare && !s.object_name.empty()) {
          state_.RedefineStatement(s.object_name, note);
        } else if (s.command == sql::Command::kDeallocate) {
          if (s.name_all) {
            state_.DropAllStatements();
          } else {
            state_.DropStatement(s.object_name);
          }
        } else if (s.command == sql::Command::kDiscard && s.object_kind == "ALL") {
          state_.DropAllStatements();
        }
      }
      return;
    }
    case pg::fe::kBind: {
      std::string_view portal, statement;
      if (!pg::ReadBindNames(frame.body, &portal, &statement)) return;
      const auto* stmt =
          dynamic_cast<const DecisionNote*>(state_.StatementNoteOf(std::string(statement)));
      gate_.OnBind(portal, stmt != nullptr ? stmt->facts : nullptr);
      return;
    }
    case pg::fe::kExecute: {
      const auto* run = dynamic_cast<const DecisionNote*>(state_.LastNote());
      if (run != nullptr && run->facts) gate_.OnExecuteForwarded(*run->facts);
      return;
    }
    case pg::fe::kClose: {
      pg::CloseMessage m;
      std::string ignored;
      if (pg::ParseClose(frame.body, &m, &ignored)) gate_.OnClose(m.kind, m.name);
      return;
    }
    default:
      return;
  }
}

std::string Session::FunctionName(uint32_t oid) const {
  if (!catalog_) return {};
  auto it = catalog_->functions.find(oid);
  return it == catalog_->functions.end() ? std::string() : it->second;
}

pg::MessageAction Session::OnBackendMessage(const pg::Frame& frame, pg::Bytes* out,
                                            std::string* reason) {
  if (frame.type == pg::be::kErrorResponse && RewriteRefusal(frame, out, reason))
    return pg::MessageAction::kHandled;
  size_t masked_at = out->size();
  bool masked = false;
  if (!MaskBackend(frame, out, reason, &masked)) return pg::MessageAction::kReject;
  if (masked && (frame.type == pg::be::kErrorResponse || frame.type == pg::be::kNoticeResponse)) {
    // The state machine (and so the audit log) sees the error as the client does: masked.
    std::span<const std::byte> bytes(out->data() + masked_at, out->size() - masked_at);
    pg::Frame masked_frame;
    if (pg::ParseFrame(pg::Direction::kBackend, false, &bytes, &masked_frame, reason) !=
            pg::ParseState::kOk ||
        !state_.OnBackend(masked_frame, MonotonicNs(), reason))
      return pg::MessageAction::kReject;
    return pg::MessageAction::kHandled;
  }
  if (frame.type == pg::be::kParseComplete) {
    // A named Parse took effect: the gate's name now means that statement only.
    const pg::Execution* x = state_.HeadExecution();
    const auto* parsed = dynamic_cast<const DecisionNote*>(state_.HeadNote());
    if (x != nullptr && x->parse_only && parsed != nullptr && !parsed->enforced)
      gate_.OnParseAnswered(x->statement_name, parsed->facts, true);
  }
  if (!state_.OnBackend(frame, MonotonicNs(), reason)) return pg::MessageAction::kReject;
  if (masked) return pg::MessageAction::kHandled;
  switch (frame.type) {
    case pg::be::kParameterStatus: {
      pg::ParameterStatusMessage m;
      if (pg::ParseParameterStatus(frame.body, &m, reason))
        gate_.OnParameterStatus(m.name, m.value);
      return pg::MessageAction::kForward;
    }
    case pg::be::kBackendKeyData: {
      // Clients get a key of the relay's; a cancel with it is checked and routed here.
      if (client_key_) deps_.cancels->Unregister(*client_key_);
      client_key_ = deps_.cancels->Register({target_->options.name, state_.backend_key()});
      pg::AppendBackendKeyData(out, *client_key_);
      return pg::MessageAction::kHandled;
    }
    case pg::be::kAuthentication:
      return OnAuthentication(frame, out, reason);
    case pg::be::kReadyForQuery:
      gate_.OnReadyForQuery(state_.transaction_status());
      if (ddl_in_tx_ && state_.transaction_status() == 'I') {
        ddl_in_tx_ = false;
        worker_->catalog.Invalidate(target_->options.name, state_.database());
      }
      if (!started_event_) {
        start_pending_ = true;
        if (peer_resolved_) EmitSessionStart();
      }
      return pg::MessageAction::kForward;
    default:
      return pg::MessageAction::kForward;
  }
}

void Session::OnStreamedMessage(pg::Direction dir, uint8_t type, uint32_t length) {
  if (dir == pg::Direction::kBackend && masking_.active()) {
    // Too large to hold whole, so it cannot be masked: fail closed.
    Fail(audit::EventKind::kUpstreamError, "54000",
         "dbwarden: a result row of " + std::to_string(length) +
             " bytes is too large to mask; the session is ended");
    return;
  }
  if (dir == pg::Direction::kBackend) {
    state_.OnBackendStreamed(type, length, MonotonicNs());
  } else {
    state_.OnFrontendStreamed(type, length, MonotonicNs());
  }
}

// ---- Audit ----

void Session::PublishInfo() {
  auto info = std::make_shared<audit::SessionInfo>();
  info->session_id = id_;
  info->target = target_->options.name;
  info->env = target_->options.env;
  info->principal = principal_;
  info->process = process_;
  info_ = std::move(info);
}

audit::Event Session::NewEvent(audit::EventKind kind) {
  if (!info_) PublishInfo();
  audit::Event e;
  e.kind = kind;
  e.ts_us = audit::NowMicros();
  e.session = info_;
  return e;
}

void Session::EmitSessionStart() {
  if (started_event_) return;
  started_event_ = true;
  start_pending_ = false;
  principal_.application_name = state_.application_name();
  PublishInfo();
  deps_.sink->Submit(NewEvent(audit::EventKind::kSessionStart));
}

void Session::OnExecutionComplete(const pg::Execution& x) {
  deps_.metrics->statements_total->Add();
  audit::Event e = NewEvent(audit::EventKind::kStatement);
  const auto* note = static_cast<const DecisionNote*>(x.note.get());
  std::shared_ptr<const sql::QueryFacts> facts;
  if (note != nullptr && note->facts && !note->enforced) {
    // Name operations take effect for the statements that completed.
    if (x.parse_only) {
      gate_.OnParseAnswered(x.statement_name, note->facts, false);  // reported: it failed
    } else {
      gate_.OnCompleted(*note->facts, x.command_tags.size());
    }
  }
  if (note != nullptr) {
    // The note outlives this call only through the event's aliasing pointers.
    auto owner = std::static_pointer_cast<const DecisionNote>(x.note);
    facts = note->facts;
    e.decision =
        audit::DecisionInfo{std::shared_ptr<const policy::Decision>(owner, &owner->decision),
                            note->enforced, note->approval_id};
  }
  e.statement = audit::StatementInfo{std::move(facts),
                                     x.fastpath   ? "fastpath"
                                     : x.extended ? "extended"
                                                  : "simple",
                                     x.statement_name};
  audit::ResultInfo r;
  if (!x.command_tags.empty()) r.command_tag = x.command_tags.back();
  r.sqlstate = x.sqlstate;
  r.message = x.error_message;
  r.duration_us = x.end_ns > x.start_ns ? (x.end_ns - x.start_ns) / 1000 : 0;
  r.rows = x.rows;
  r.bytes = x.bytes_out;
  e.result = std::move(r);
  e.masking = masking_.TakeSummary();  // also when the profile went away meanwhile
  if (e.masking && e.masking->withheld > 0)
    deps_.metrics->masking_withheld->Add(e.masking->withheld);
  if (e.statement->facts && (e.statement->facts->AllRisks() & sql::kRiskSchemaChange)) {
    worker_->catalog.Invalidate(target_->options.name, state_.database());  // DDL: re-read
    // Inside a transaction the re-read cannot see it yet: re-read again when it ends.
    if (state_.transaction_status() != 'I') ddl_in_tx_ = true;
  }
  deps_.sink->Submit(std::move(e));
}

// ---- Ending ----

void Session::Fail(audit::EventKind kind, std::string_view sqlstate, std::string message) {
  if (closing_) return;
  DBW_LOG(kInfo) << "session " << id_ << " (" << principal_.client_addr << "): " << message;
  if (kind == audit::EventKind::kUpstreamError) deps_.metrics->upstream_errors->Add();
  audit::Event e = NewEvent(kind);
  e.error_sqlstate = std::string(sqlstate);
  e.error_message = message;
  deps_.sink->Submit(std::move(e));
  EndWithFatal(sqlstate, std::move(message));
}

void Session::EndWithFatal(std::string_view sqlstate, std::string message) {
  if (closing_) return;
  fatal_.clear();
  pg::AppendErrorResponse(&fatal_, {.severity = "FATAL", .sqlstate = sqlstate, .message = message});
  end_reason_ = std::move(message);
  closing_ = true;
  if (upstream_) upstream_->transport.Close();  // aborts its pending reads
  FlushFatalThenClose();
}

void Session::Terminate(std::string_view sqlstate, std::string_view message) {
  if (closing_ || closed_) return;
  audit::Event e = NewEvent(audit::EventKind::kSessionEnd);
  fatal_.clear();
  pg::AppendErrorResponse(&fatal_, {.severity = "FATAL", .sqlstate = sqlstate, .message = message});
  end_reason_ = std::string(message);
  closing_ = true;
  if (upstream_) upstream_->transport.Close();
  FlushFatalThenClose();
}

void Session::FlushFatalThenClose() {
  if (closed_) return;
  if (client_.writing) return;  // the write's completion calls back here
  if (fatal_.empty()) {
    Close(end_reason_);
    return;
  }
  client_.out = std::move(fatal_);
  fatal_.clear();
  client_.writing = true;
  auto self = shared_from_this();
  client_.transport.AsyncWrite(asio::buffer(client_.out),
                               [this, self](const boost::system::error_code&, size_t) {
                                 client_.writing = false;
                                 Close(end_reason_);
                               });
}

void Session::Close(const std::string& reason) {
  if (closed_) return;
  closed_ = true;
  closing_ = true;
  timer_.cancel();
  if (!held_id_.empty()) {
    deps_.approvals->Detach(held_id_);  // stays pending: once approved it may be re-run
    EndHold();
  }
  // A statement an approval let through, closed before it was forwarded: it did not run, and
  // its grant stays usable.
  if ((pause_ == Pause::kWaitingCommit || pause_ == Pause::kCommitted ||
       pause_ == Pause::kApprovalReady) &&
      resume_note_ && !resume_note_->approval_id.empty() && !resume_note_->enforced &&
      deps_.approvals)
    deps_.approvals->Unexecute(resume_note_->approval_id,
                               "the client disconnected before the approved statement ran");
  state_.OnClose(MonotonicNs(), reason);
  if (started_event_ || !state_.user().empty()) {
    audit::Event e = NewEvent(audit::EventKind::kSessionEnd);
    e.detail = reason;
    deps_.sink->Submit(std::move(e));
  }
  client_.transport.Close();
  if (upstream_) upstream_->transport.Close();
}

}  // namespace dbw::relay
