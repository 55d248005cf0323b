// Session: the wiring — start, the two-way pump, the pauses (audit commit, catalog, approval),
// backend messages, the session's audit events and its end. Startup and authentication are in
// session_startup.cc, the gate glue in session_gate.cc.
#include "userspace/relay/session.h"

#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <sstream>

#include "userspace/common/logging.h"
#include "userspace/common/random_id.h"
#include "userspace/gate/coverage.h"
#include "userspace/identity/process_info.h"
#include "userspace/protocol/postgres/encoder.h"
#include "userspace/protocol/postgres/parse.h"
#include "userspace/relay/session_internal.h"
#include "userspace/relay/tls.h"

namespace dbw::relay {
namespace {

std::string EndpointText(const tcp::endpoint& ep) {
  auto addr = ep.address();
  std::string host = addr.to_string();
  if (addr.is_v6()) host = "[" + host + "]";
  return host + ":" + std::to_string(ep.port());
}

}  // namespace

Session::Session(Worker* worker, const TargetRuntime* target, Transport client,
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
      startup_timer_(worker->context),
      hold_timer_(worker->context),
      write_budget_(RandomHexId(8)) {
  worker_->sessions.insert(this);
  deps_.metrics->sessions_active->Add(1);
  deps_.metrics->sessions_total->Add();
}

Session::~Session() {
  worker_->sessions.erase(this);
  deps_.metrics->sessions_active->Add(-1);
  if (client_key_) deps_.cancels->Unregister(*client_key_);
}

void Session::Start(std::unique_ptr<ConnectionLimiter::Lease> lease) {
  lease_ = std::move(lease);
  if (lease_) lease_->SetIdle(true);  // evictable until the server's first ReadyForQuery
  boost::system::error_code ec;
  auto remote = client_.transport.socket().remote_endpoint(ec);
  if (ec) {
    Close("client gone before start");
    return;
  }
  principal_.client_addr =
      client_.transport.is_unix() ? std::string("[local]") : EndpointText(TcpEndpoint(remote));
  client_.transport.socket().set_option(tcp::no_delay(true), ec);
  client_.in.resize(kInitialBuffer);
  // Nothing before authentication needs more than a SASL message; lifted when the session is
  // ready.
  client_decoder_.set_max_message(kMaxMessageBeforeLogin);
  StartStartupTimer();
  ResolvePeer();
  ReadStartup();
}

void Session::Evict() {
  if (closed_ || closing_ || session_ready_) return;
  Fail(audit::EventKind::kProtocolViolation, "53300",
       "dbwarden: connection closed before it finished startup, to admit a new one: "
       "the relay's connection limit (relay.max_connections or "
       "relay.max_connections_per_source) was reached");
}

void Session::StartStartupTimer() {
  auto self = shared_from_this();
  startup_timer_.expires_after(deps_.options->authentication_timeout);
  startup_timer_.async_wait([this, self](const boost::system::error_code& ec) {
    if (ec || closed_ || closing_ || session_ready_) return;
    deps_.metrics->startup_timeouts->Add();
    const auto seconds = std::chrono::duration_cast<std::chrono::duration<double>>(
                             deps_.options->authentication_timeout)
                             .count();
    std::ostringstream limit;
    limit << seconds << "s (relay.authentication_timeout)";
    // Whose turn it was names the cause: a server that never answers is the upstream's fault.
    if (server_owes_ || state_.phase() == pg::Phase::kInitializing) {
      Fail(audit::EventKind::kUpstreamError, "08006",
           "dbwarden: the upstream server of target \"" + target_->options.name +
               "\" did not complete the connection's startup within " + limit.str());
    } else {
      Fail(
          audit::EventKind::kProtocolViolation, "08P01",
          "dbwarden: the client did not complete startup and authentication within " + limit.str());
    }
  });
}

void Session::ResolvePeer() {
  if (client_.transport.is_unix()) {
    ResolveUnixPeer();
    return;
  }
  boost::system::error_code ec;
  auto remote = TcpEndpoint(client_.transport.socket().remote_endpoint(ec));
  auto local = TcpEndpoint(client_.transport.socket().local_endpoint(ec));
  if (ec) {
    peer_resolved_ = true;
    return;
  }
  identity::Endpoint client{remote.address().to_string(), remote.port()};
  identity::Endpoint server{local.address().to_string(), local.port()};
  int32_t likely = 0;
  if (deps_.route_lookup) {
    if (std::optional<identity::RouteOrigin> origin = deps_.route_lookup(client, 0)) {
      principal_.routed_from = origin->original;
      likely = static_cast<int32_t>(origin->tgid);
    }
  }
  // A routed client is local whatever address the relay listens on.
  if (!remote.address().is_loopback() && likely == 0) {
    peer_resolved_ = true;
    return;
  }
  deps_.resolver->Resolve(client, server, PeerCallback(), likely);
}

void Session::ResolveUnixPeer() {
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (::getsockopt(client_.transport.socket().native_handle(), SOL_SOCKET, SO_PEERCRED, &cred,
                   &len) != 0 ||
      cred.pid <= 0) {
    peer_resolved_ = true;
    return;
  }
  if (deps_.route_lookup) {
    if (std::optional<identity::RouteOrigin> origin = deps_.route_lookup({}, cred.pid))
      principal_.routed_from = origin->original;
  }
  deps_.resolver->ResolvePid(cred.pid, PeerCallback());
}

identity::PeerResolver::Callback Session::PeerCallback() {
  std::weak_ptr<Session> weak = weak_from_this();
  auto executor = worker_->context.get_executor();
  return [weak, executor](std::optional<identity::ProcessInfo> p) {
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
  };
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
      // The server dropped a session its client still uses (a restart, a crash, a terminated
      // backend): a kept-upstream failure like any other.
      deps_.metrics->upstream_errors->Add();
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
  // A message larger than the buffer is not allocated ahead from its declared length: Read()
  // doubles the buffer as bytes arrive, so memory follows what was received.
  // During startup, whose turn it is: the side that was just sent a whole message owes one.
  if (!session_ready_ && !dst.out.empty()) server_owes_ = side == Side::kClient;
  if (closing_) {  // a handler decided to end the session
    FlushFatalThenClose();
    return;
  }
  if (dst.out.empty()) {
    if (!r.paused) Read(side);  // paused: OnCommitted resumes decoding
    return;
  }
  if (side == Side::kClient && dst.writing) {
    // A relay-made write (a row budget's) is still in flight: these bytes follow it, and its
    // completion carries on for the client pump.
    limit_out_.insert(limit_out_.end(), dst.out.begin(), dst.out.end());
    dst.out.clear();
    limit_resume_client_ = true;
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
  if (side == Side::kClient && !limit_out_.empty()) {
    // Relay-made messages for the server (a row budget's COMMIT or ROLLBACK) queued behind this
    // write go first; their completion comes back here.
    limit_resume_client_ = true;
    FlushLimitOut();
    return;
  }
  if (side == Side::kClient && pause_ != Pause::kNone) {
    // Waiting for an audit commit, the catalog, an approval or a runtime limit: resume once it
    // is there (maybe it already is).
    if (pause_ == Pause::kCommitted || pause_ == Pause::kCatalogReady ||
        pause_ == Pause::kApprovalReady || pause_ == Pause::kLimitReady)
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
  if (token_deadline_ != 0 && EndIfTokenExpired()) return pg::MessageAction::kHandled;
  if (limit_hold_) {
    // A statement under a runtime limit is being settled: this message waits for it.
    pause_ = Pause::kWaitingLimit;
    return pg::MessageAction::kPause;
  }
  // The coverage matrix: every message type has a verdict in this phase; the rest is refused.
  gate::DoorVerdict door = gate::FrontendDoor(state_.phase(), frame.type);
  if (door.door == gate::Door::kRefuse) {
    *reason = std::string(door.why);
    return pg::MessageAction::kReject;
  }
  // Decoded once; every later step reads this value (its views point into the frame).
  if (!pg::ParseFrontend(frame, &decoded_, reason)) return pg::MessageAction::kReject;
  const pg::FrontendMessage& message = decoded_;
  bool judged = door.door == gate::Door::kJudge && auth_proxy_ == AuthProxy::kOff;
  // A Bind of a statement whose judgement waits for its parameter values is judged with them.
  const DecisionNote* deferred = nullptr;
  if (!judged && frame.type == pg::fe::kBind && auth_proxy_ == AuthProxy::kOff) {
    deferred = DeferredStatement(message.bind.statement);
    judged = deferred != nullptr;
  }
  std::shared_ptr<DecisionNote> note;
  if (judged) {
    if (resume_note_) {
      note = std::move(resume_note_);  // judged and committed before the pause
    } else {
      UpdateMasking(deps_.policy->Get());
      // The catalog classifies the functions an agent calls (sql::kRiskUserFunction).
      const bool functions =
          frame.type == pg::fe::kFunctionCall ||
          PolicyPrincipal(deps_.policy->Get()).kind == policy::PrincipalKind::kAgent;
      if (AwaitCatalog(functions)) return pg::MessageAction::kPause;  // OnCatalog resumes here
      note = deferred != nullptr ? DecideBind(message.bind, *deferred) : Decide(message);
      if (!note) return pg::MessageAction::kReject;
      if (note->unknown_name && !catalog_retried_) {
        // It names something created since the catalog was read (by another session, or a
        // direct connection): read it again, then judge the statement once more.
        catalog_retried_ = true;
        worker_->catalog.Invalidate(target_->options.name, state_.database());
        if (AwaitCatalog(true)) return pg::MessageAction::kPause;  // resumes from the top
        note = deferred != nullptr ? DecideBind(message.bind, *deferred) : Decide(message);
      }
      catalog_retried_ = false;
      if (NeedsApproval(*note)) {
        AwaitApproval(std::move(note), frame);
        return pg::MessageAction::kPause;  // OnApprovalOutcome resumes here
      }
      if (target_->options.audit_before_forward && !note->enforced) {
        AwaitCommit(note);
        return pg::MessageAction::kPause;
      }
    }
    if (AwaitIdleForWrap(&note, frame.type)) return pg::MessageAction::kPause;
  }
  // Masking by reference: the server gets the rewritten statement, and so does every later step
  // (the protocol state, a runtime limit's wrapping).
  const pg::Frame* forward = &frame;
  if (const pg::Frame* rewritten = RewrittenFrame(message, note.get())) {
    forward = rewritten;
    if (!pg::ParseFrontend(*forward, &decoded_, reason)) return pg::MessageAction::kReject;
  }
  auto pass = [&] {
    if (forward == &frame) return pg::MessageAction::kForward;
    pg::AppendFrame(out, *forward);
    return pg::MessageAction::kHandled;
  };
  if (AwaitBatchForWrap(message)) return pg::MessageAction::kPause;
  if (!state_.OnFrontendMessage(message, MonotonicNs(), reason)) return pg::MessageAction::kReject;
  if (auth_proxy_ != AuthProxy::kOff) return OnClientPassword(frame, out, reason);
  if (frame.type == pg::fe::kExecute && !state_.skipping()) {
    const auto* run = static_cast<const DecisionNote*>(state_.LastNote());
    if (run != nullptr && run->deferred) {
      // Its Bind was never judged with the values: the relay's view is wrong, so nothing runs.
      Fail(audit::EventKind::kProtocolViolation, "08P01",
           "dbwarden: an Execute of a portal whose parameter values were not judged");
      return pg::MessageAction::kHandled;
    }
  }
  TrackForwarded(message, note);
  NotePathEffects(message, note.get());
  if (note && !note->enforced && note->facts &&
      (note->facts->AllRisks() & sql::kRiskSchemaChange) != 0)
    ddl_unanswered_ = true;
  if (frame.type == pg::fe::kExecute &&
      WrapWrite(message, frame, static_cast<const DecisionNote*>(state_.LastNote()), out))
    return pg::MessageAction::kHandled;
  if (!note) return pass();
  bool enforced = note->enforced;
  const DecisionNote* annotated = note.get();
  if (state_.last_request_annotatable()) {
    state_.AnnotateLastRequest(std::move(note));
  } else if (!enforced) {
    // The state machine expects the server to skip this message (after an extended-protocol
    // error): nothing of it runs, so there is nothing to wrap.
    return pass();
  }
  // A refused statement is replaced even when the server should skip it: should the relay's
  // view of the protocol ever be wrong, the server still runs nothing of it.
  if (!enforced) {
    return frame.type == pg::fe::kQuery && WrapWrite(message, *forward, annotated, out)
               ? pg::MessageAction::kHandled
               : pass();
  }
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
  } else if (frame.type == pg::fe::kBind) {
    // Rejected before anything is bound or evaluated; the server then skips to Sync.
    pg::AppendRejectedBind(out, message.bind.portal, message.bind.statement);
  } else {
    pg::AppendParse(out, message.parse.name, kRefused);
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

pg::MessageAction Session::OnBackendMessage(const pg::Frame& frame, pg::Bytes* out,
                                            std::string* reason) {
  if (!session_ready_ && !path_probing_ && frame.type == pg::be::kErrorResponse)
    NoteLoginFailure(frame);
  if (path_probing_) return OnPathProbe(frame, out, reason);
  if (frame.type == pg::be::kReadyForQuery && !path_probed_ && StartPathProbe(frame))
    return pg::MessageAction::kHandled;
  pg::MessageAction limited;
  if (OnBudgetBackend(frame, out, reason, &limited)) return limited;
  if (frame.type == pg::be::kErrorResponse && RewriteRefusal(frame, out, reason))
    return pg::MessageAction::kHandled;
  if (OnReadBudget(frame, out, reason, &limited)) return limited;
  if (frame.type == pg::be::kParameterStatus && masking_.active()) {
    // `SET application_name = <a masked value>` would echo it back, and into the audit log.
    pg::ParameterStatusMessage m;
    if (!pg::ParseParameterStatus(frame.body, &m, reason)) return pg::MessageAction::kReject;
    std::string value(m.value);
    if (m.name == "application_name" && masking_.MaskSetting(&value)) {
      pg::Bytes bytes;
      pg::AppendParameterStatus(&bytes, m.name, value);
      std::span<const std::byte> in(bytes);
      pg::Frame masked_frame;
      if (pg::ParseFrame(pg::Direction::kBackend, false, &in, &masked_frame, reason) !=
              pg::ParseState::kOk ||
          !state_.OnBackend(masked_frame, MonotonicNs(), reason))
        return pg::MessageAction::kReject;
      out->insert(out->end(), bytes.begin(), bytes.end());
      return pg::MessageAction::kHandled;
    }
  }
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
      search_path_.OnReady(static_cast<char>(state_.transaction_status()),
                           state_.pending_requests() == 0);
      OnServerIdle();
      if (ddl_unanswered_ && state_.pending_sync_points() == 0) ddl_unanswered_ = false;
      if (ddl_in_tx_ && state_.transaction_status() == 'I') {
        ddl_in_tx_ = false;
        worker_->catalog.Invalidate(target_->options.name, state_.database());
      }
      if (!session_ready_) {
        session_ready_ = true;
        startup_timer_.cancel();
        // Evicted just before the server's ReadyForQuery: the slot is gone, so the session goes
        // too rather than live on uncounted.
        if (lease_ && !lease_->SetIdle(false)) {
          Fail(audit::EventKind::kProtocolViolation, "53300",
               "dbwarden: connection closed as it finished startup, to admit a new one: the "
               "relay's connection limit (relay.max_connections or "
               "relay.max_connections_per_source) was reached");
          return pg::MessageAction::kHandled;
        }
        client_decoder_.set_max_message(0);  // the types' own limits from here on
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
  if (dir == pg::Direction::kBackend && type == pg::be::kDataRow) {
    // Too large to hold, so it cannot be dropped: past a read budget the session ends.
    const auto* note = dynamic_cast<const DecisionNote*>(state_.HeadNote());
    if (note != nullptr && !note->enforced && !note->decision.monitor && note->decision.limits) {
      const policy::EffectLimits& l = *note->decision.limits;
      const pg::ResultSource src = state_.HeadResultSource();
      const uint64_t source = src.kind == pg::ResultSource::Kind::kPortal ? src.portal_serial : 0;
      if ((l.max_read_rows != 0 || l.max_read_bytes != 0) &&
          read_budget_.OnRow(source, l.max_read_rows, l.max_read_bytes, 1 + uint64_t{length}) !=
              gate::ReadBudget::Verdict::kPass) {
        deps_.metrics->limit_read_stops->Add();
        Fail(audit::EventKind::kUpstreamError, "54000",
             "dbwarden: a result row of " + std::to_string(length) +
                 " bytes passes the read budget of rule " +
                 (l.max_read_bytes != 0 ? l.read_bytes_rule : l.read_rows_rule) +
                 " and is too large to hold back; the session is ended");
        return;
      }
    }
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
  // The name a client gave itself is text it chose: what a detector matches stays out of the
  // audit log (startup parameter or SET, as the server reports it).
  if (masking_.active()) masking_.MaskSetting(&info->principal.application_name);
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
  UpdateMasking(deps_.policy->Get());  // so the session's first event is masked as it should be
  PublishInfo();
  deps_.sink->Submit(NewEvent(audit::EventKind::kSessionStart));
}

void Session::OnExecutionComplete(const pg::Execution& x) {
  deps_.metrics->statements_total->Add();
  for (const std::string& tag : x.command_tags) search_path_.OnCommandTag(tag);
  if (!x.parse_only && !x.bind_only) {
    search_path_.OnCompleted(x.note.get(), x.sqlstate.empty());
    ++witness_statements_;  // a Query, Execute or FunctionCall the server ran
  }
  audit::Event e = NewEvent(audit::EventKind::kStatement);
  const auto* note = static_cast<const DecisionNote*>(x.note.get());
  std::shared_ptr<const sql::QueryFacts> facts;
  if (note != nullptr && note->facts && !note->enforced) {
    // Name operations take effect for the statements that completed.
    if (x.parse_only) {
      gate_.OnParseAnswered(x.statement_name, note->facts, false);  // reported: it failed
    } else if (!x.bind_only) {
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
  if (note != nullptr && !note->masked_references.empty() && !note->rewritten_sql.empty()) {
    if (!e.masking) e.masking.emplace();
    e.masking->rewritten = note->masked_references;
  }
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
  startup_timer_.cancel();
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
  const bool clean = state_.phase() == pg::Phase::kTerminated && state_.pending_requests() == 0;
  state_.OnClose(MonotonicNs(), reason);  // unfinished executions become statement events
  if (!witness_key_.empty()) {
    witness::RelayAccount account;
    account.sent = wire_sent_.counts();
    account.received = wire_received_.counts();
    account.statements = witness_statements_;
    account.skipped = state_.skipped_requests();
    account.internal = witness_internal_;
    account.clean = clean;
    if (!info_) PublishInfo();
    deps_.witness->RelayClosed(witness_key_, info_, account);
  }
  if (started_event_ || !state_.user().empty()) {
    audit::Event e = NewEvent(audit::EventKind::kSessionEnd);
    e.detail = reason;
    deps_.sink->Submit(std::move(e));
  }
  client_.transport.Close();
  if (upstream_) upstream_->transport.Close();
}

}  // namespace dbw::relay
