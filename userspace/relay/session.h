// Session: one client connection, its upstream connection, and the pump between them.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without it

#include <boost/asio.hpp>
#include <boost/asio/steady_timer.hpp>

#include "policy/session_principal.h"
#include "userspace/audit/event.h"
#include "userspace/common/conn_limiter.h"
#include "userspace/gate/read_budget.h"
#include "userspace/gate/statement_gate.h"
#include "userspace/gate/write_budget.h"
#include "userspace/protocol/postgres/decoder.h"
#include "userspace/protocol/postgres/session.h"
#include "userspace/relay/result_masking.h"
#include "userspace/relay/scram.h"
#include "userspace/relay/server.h"
#include "userspace/relay/transport.h"
#include "userspace/sql/mask_rewrite.h"

namespace dbw::relay {

// What the relay attached to a Query or Parse when it judged it; every Execution of that
// statement carries it into its audit event.
struct DecisionNote : pg::StatementNote {
  std::shared_ptr<const sql::QueryFacts> facts;
  policy::Decision decision;
  bool enforced = false;      // replaced by a statement the server rejects (deny/approve, enforce)
  std::string audit_failure;  // set when audit-before-forward could not commit the decision
  std::string approval_id;    // approve: the request that let it run, or that refused it
  std::optional<approvals::Outcome> refusal;  // approve: the error the client gets instead
  // A Parse, or a Query's PREPAREs, refused only for risks that depend on parameter values
  // (gate::StatementGate::DecideDeferred): it runs nothing itself, and every Bind of the
  // statement is judged with its values. `param_types`: the Parse's declared parameter types.
  bool deferred = false;
  std::vector<uint32_t> param_types;
  // A judged Bind: the statement with its values, what approvers see and grants match. Empty
  // when the prepared text is not known: such a Bind cannot be held for approval (refused).
  bool bind = false;
  std::string bound_sql;
  // Masking by reference: the text sent in the statement's place, and the masked columns it
  // reads (docs/relay.md#masking-by-reference). Empty: sent as the client wrote it.
  std::string rewritten_sql;
  std::vector<std::string> masked_references;
  bool masked_in_sql = false;  // checked (and, when needed, rewritten) by masking by reference
  // What it does to the session's search_path when it runs (followed for masking by reference).
  std::vector<sql::PathEffect> path_effects;
  bool unknown_name = false;  // refused for a name the catalog did not know
};

class Session : public std::enable_shared_from_this<Session>,
                private pg::DecoderHandler,
                private pg::SessionObserver {
 public:
  Session(Worker* worker, const TargetRuntime* target, Transport client, const SessionDeps& deps);
  ~Session() override;

  // `lease`: its slot under the relay's connection limits; evictable until the session is ready.
  void Start(std::unique_ptr<ConnectionLimiter::Lease> lease = nullptr);
  // The connection limiter chose this connection, still in startup, to make room for a new
  // one: it ends with FATAL 53300. A session that became ready meanwhile stays.
  void Evict();
  // Ends the session with a FATAL ErrorResponse (shutdown past its grace period).
  void Terminate(std::string_view sqlstate, std::string_view message);

 private:
  // One direction's buffers. `in` holds unprocessed input, `out` the bytes being written.
  struct Leg {
    explicit Leg(asio::io_context& context) : transport(context) {}
    explicit Leg(Transport t) : transport(std::move(t)) {}
    Transport transport;
    pg::Bytes in;
    size_t in_len = 0;
    pg::Bytes out;
    bool writing = false;
  };
  enum class Side { kClient, kUpstream };

  // Startup: SSL negotiation, StartupMessage or CancelRequest, then the upstream connection.
  void ReadStartup();
  // Reads more client bytes before the pump runs (startup, a token), then calls `next`; on
  // EOF or an error closes the session with `closed`.
  void ReadClientThen(void (Session::*next)(), const char* closed);
  // relay.authentication_timeout: from accept until the server's first ReadyForQuery.
  void StartStartupTimer();
  void OnStartupData();
  void StartClientTls();
  void HandleCancel(const pg::CancelRequest& request);
  void ConnectUpstream();
  void OnUpstreamConnected();
  // Tells the witness of the upstream connection and starts counting what crosses it.
  void WitnessUpstream();
  void NegotiateUpstreamTls();
  void SendStartupUpstream();
  // Judges the startup packet's settings (`options`, other parameters) as the SETs they are,
  // and a replication request; false when the session was refused.
  bool JudgeStartup();
  // The startup packet held in startup_bytes_ (views into it); false: the session was failed.
  bool ParseHeldStartup(pg::StartupPacket* packet);
  bool JudgeStartupStatement(std::shared_ptr<const sql::QueryFacts> facts, const std::string& what,
                             const std::shared_ptr<const policy::CompiledPolicy>& policy);
  void ResolvePeer();
  // A unix-socket client: its process from SO_PEERCRED.
  void ResolveUnixPeer();
  // Stores a resolved process and resumes what waited for it.
  identity::PeerResolver::Callback PeerCallback();
  void MaybeStartClientPump();

  // The pump: read one side, decode, write the other side, repeat.
  void Read(Side side);
  void OnRead(Side side, const boost::system::error_code& ec, size_t n);
  void OnWritten(Side side, const boost::system::error_code& ec);

  // DecoderHandler / SessionObserver.
  pg::MessageAction OnMessage(pg::Direction dir, const pg::Frame& frame, pg::Bytes* out,
                              std::string* reason) override;
  void OnStreamedMessage(pg::Direction dir, uint8_t type, uint32_t length) override;
  void OnExecutionComplete(const pg::Execution& execution) override;
  pg::MessageAction OnBackendMessage(const pg::Frame& frame, pg::Bytes* out, std::string* reason);
  // Analyses and judges a Query or Parse (no state change). A statement that must not run is
  // later replaced by one the server rejects, so responses stay in order and a transaction
  // fails as it would have.
  std::shared_ptr<DecisionNote> Decide(const pg::FrontendMessage& message);
  // The gate's decision on note->facts for this session's principal; sets note->enforced and
  // counts it.
  // `may_defer`: a Parse or Query whose refusal depends only on parameter values is let through
  // as deferred (DecisionNote::deferred); `parse_source` gives a Parse's text as the server
  // reads it (asked for only then).
  void Judge(DecisionNote* note, const std::shared_ptr<const policy::CompiledPolicy>& policy,
             bool extended = false, bool may_defer = false,
             const std::function<std::string_view()>& parse_source = {});
  // The deferred statement a Bind binds, or null when its statement is judged already.
  const DecisionNote* DeferredStatement(std::string_view statement) const;
  // Judges a Bind of a deferred statement with its parameter values.
  std::shared_ptr<DecisionNote> DecideBind(const pg::BindMessage& bind,
                                           const DecisionNote& statement);
  // Tells the gate what a forwarded message does to server-side names and settings, and keeps
  // the state machine's statement names in step with SQL-level PREPARE/DEALLOCATE/DISCARD.
  void TrackForwarded(const pg::FrontendMessage& message,
                      const std::shared_ptr<DecisionNote>& note);
  // `facts` with the risk user_function on statements that call a user-defined VOLATILE or
  // SECURITY DEFINER function of the catalog snapshot (a copy; the cached facts stay as read).
  std::shared_ptr<const sql::QueryFacts> WithCatalogRisks(
      std::shared_ptr<const sql::QueryFacts> facts) const;
  // The qualified name of a function by OID, from the catalog snapshot; empty when unknown.
  std::string FunctionName(uint32_t oid) const;
  // audit_before_forward: the client pump pauses at the statement until its decision event
  // is committed (OnCommitted, posted from the sink's thread), then resumes decoding there.
  void AwaitCommit(std::shared_ptr<DecisionNote> note);
  void OnCommitted(const Status& status);
  void ResumeClient();
  // The server's error for a replaced statement, rewritten to say why it was refused.
  bool RewriteRefusal(const pg::Frame& frame, pg::Bytes* out, std::string* reason);
  // Appends `fields` as an ErrorResponse to *out, and lets the state machine see it.
  bool ReplaceWithError(const pg::ErrorFields& fields, pg::Bytes* out, std::string* reason);
  // The principal as `policy` classifies it (policy/session_principal.h); keeps the audit
  // principal's kind and application_name in step.
  const policy::Principal& PolicyPrincipal(
      const std::shared_ptr<const policy::CompiledPolicy>& policy);
  pg::MessageAction OnAuthentication(const pg::Frame& frame, pg::Bytes* out, std::string* reason);
  // The server refused the connection before it was ready (password, role, pg_hba, a missing
  // client certificate): a login_failed event with its SQLSTATE and message.
  void NoteLoginFailure(const pg::Frame& error);
  pg::MessageAction OnProxiedAuthentication(const pg::Frame& frame, std::string* reason);
  pg::MessageAction OnClientPassword(const pg::Frame& frame, pg::Bytes* out, std::string* reason);
  // Identity-aware access (session_auth.cc, targets[].auth): the relay verifies the client
  // (a token sent as its password, or its client certificate), binds a token to its workload,
  // picks the database role and secret it logs in with, and answers the server itself.
  void StartLogin();
  void OnTokenData();
  // `refetched`: the issuer's keys were read again for a key id the set did not have.
  void CheckToken(std::string token, bool refetched);
  // A login_failed event (detail "auth: <reason>") and FATAL 28000 with `message`.
  void RefuseLogin(std::string message, std::string reason);
  // auth.bind; false: refused.
  bool CheckWorkloadBinding();
  // auth.credentials: the role for the verified principal and the user it asked for, written
  // into the startup packet; false: refused.
  bool InjectCredential();
  pg::MessageAction OnInjectedAuthentication(const pg::Frame& frame, std::string* reason);
  // auth.token.on_expiry: terminate; true when the session was ended.
  bool EndIfTokenExpired();
  // Writes relay-made bytes to the upstream from the upstream pump (authentication only,
  // while the client waits and the client pump has nothing to send).
  void WriteUpstreamOutOfBand(pg::Bytes bytes);

  // Masking (session_masking.cc). The profile follows the principal's classification; with
  // column rules the client pump pauses at a statement until the catalog is loaded.
  void UpdateMasking(const std::shared_ptr<const policy::CompiledPolicy>& policy);
  // true: paused until OnCatalog. `need_functions`: a FunctionCall needs the catalog whether or
  // not masking does.
  bool AwaitCatalog(bool need_functions = false);
  void OnCatalog(std::shared_ptr<const CatalogSnapshot> snapshot, const Status& status);
  // Masking by reference: a Query's or Parse's text rewritten so masked columns are read masked
  // (note->rewritten_sql), or the statement refused (note->enforced) when rewriting cannot
  // reach what it reads.
  void MaskReferences(const pg::FrontendMessage& message, DecisionNote* note);
  // The message to forward in place of `frame` when its statement runs rewritten; null else.
  const pg::Frame* RewrittenFrame(const pg::FrontendMessage& message, const DecisionNote* note);
  // Masks a backend message into *out when masking applies to it; *handled says whether it did.
  bool MaskBackend(const pg::Frame& frame, pg::Bytes* out, std::string* reason, bool* handled);
  // The session's search_path at connect, for masking by reference: the server's first
  // ReadyForQuery is held while the relay asks for it (a principal with column rules only).
  // true: `ready` was held and the question sent.
  bool StartPathProbe(const pg::Frame& ready);
  // The answer's messages, which never reach the client or the state machine.
  pg::MessageAction OnPathProbe(const pg::Frame& frame, pg::Bytes* out, std::string* reason);
  // A forwarded Query or Execute whose statement changes the search_path.
  void NotePathEffects(const pg::FrontendMessage& message, const DecisionNote* note);

  // Approvals (session_approval.cc). An `approve` decision pauses the client pump at the
  // statement until the approval service answers: run it, refuse it, or hold it (a notice now,
  // the answer later). While held, a cancel withdraws the request and a client that hangs up
  // detaches it (it stays pending; once approved it may be re-run).
  bool NeedsApproval(const DecisionNote& note) const;
  void AwaitApproval(std::shared_ptr<DecisionNote> note, const pg::Frame& frame);
  void OnApprovalOutcome(const approvals::Outcome& outcome);
  void EndHold();
  void WatchClientDuringHold();
  // Relay-made bytes for the client (a notice) written between the upstream pump's writes.
  void SendToClient(const pg::Bytes& bytes);
  void FlushClientExtra(bool then_read_upstream);

  // Runtime effect limits (session_limits.cc). A statement under a row budget runs between two
  // counts of the rows its transaction changed, with the client's next messages held until it is
  // settled; a result past its read budget is cut off, its query cancelled, and its completion
  // replaced by an error.
  bool NeedsWriteWrap(const DecisionNote* note) const;
  // A Query under a row budget waits until the server has answered everything before it, so the
  // transaction status it runs in is known. true: paused.
  bool AwaitIdleForWrap(std::shared_ptr<DecisionNote>* note, uint8_t type);
  // An Execute under a row budget waits until earlier batches are answered. true: paused.
  bool AwaitBatchForWrap(const pg::FrontendMessage& message);
  // Forwards `frame` between the two counts; true when it did (the message was handled).
  bool WrapWrite(const pg::FrontendMessage& message, const pg::Frame& frame,
                 const DecisionNote* note, pg::Bytes* out);
  // Routes a backend message while a wrap runs; true when it was handled here.
  bool OnBudgetBackend(const pg::Frame& frame, pg::Bytes* out, std::string* reason,
                       pg::MessageAction* action);
  // The read budget for a result message of the head execution; true when handled here.
  bool OnReadBudget(const pg::Frame& frame, pg::Bytes* out, std::string* reason,
                    pg::MessageAction* action);
  void SendReadCancel();
  void MaybeEndLimitHold();
  void ResumeAfterLimit();
  // A ReadyForQuery went by: a Query waiting for an idle server may go now.
  void OnServerIdle();
  void SendUpstream(pg::Bytes bytes);
  void FlushLimitOut();
  // Hands a held backend message to the ordinary path.
  bool DeliverHeld(const pg::Bytes& bytes, pg::Bytes* out, std::string* reason);

  // Ending: send a FATAL to the client (after any write in flight), then close both sides.
  void Fail(audit::EventKind kind, std::string_view sqlstate, std::string message);
  // The same without an event of its own (the caller wrote one).
  void EndWithFatal(std::string_view sqlstate, std::string message);
  void FlushFatalThenClose();
  void Close(const std::string& reason);

  audit::Event NewEvent(audit::EventKind kind);
  void PublishInfo();
  void EmitSessionStart();
  Leg& leg(Side side) { return side == Side::kClient ? client_ : *upstream_; }

  Worker* worker_;
  const TargetRuntime* target_;
  SessionDeps deps_;
  std::string id_;
  Leg client_;
  std::unique_ptr<Leg> upstream_;
  asio::steady_timer timer_;
  pg::SessionState state_;
  pg::StreamDecoder client_decoder_;
  pg::StreamDecoder upstream_decoder_;
  gate::StatementGate gate_;
  pg::FrontendMessage decoded_;  // the client message being handled (capacity reused)
  std::shared_ptr<const CatalogSnapshot> catalog_;  // the last snapshot loaded (functions)
  // Masking by reference, for the catalog and profile it was built from.
  std::unique_ptr<sql::mask::Rewriter> rewriter_;
  const CatalogSnapshot* rewriter_catalog_ = nullptr;
  const policy::MaskingProfile* rewriter_profile_ = nullptr;
  pg::Bytes rewritten_bytes_;  // the rewritten message being forwarded
  sql::SearchPathTracker search_path_;
  bool path_probed_ = false;   // asked at connect (or decided not to)
  bool path_probing_ = false;  // the answer's messages are arriving
  std::optional<std::string> path_probe_value_;
  pg::Bytes path_probe_ready_;  // the server's first ReadyForQuery, held meanwhile
  pg::Frame rewritten_frame_;
  bool startup_waiting_peer_ = false;  // upstream ready; startup judged once the peer is known
  asio::steady_timer startup_timer_;   // relay.authentication_timeout
  std::unique_ptr<ConnectionLimiter::Lease> lease_;  // connection limits; idle until ready
  bool session_ready_ = false;                       // the server's first ReadyForQuery went by
  bool server_owes_ = false;  // during startup: the last bytes came from the client

  audit::Principal principal_;
  policy::SessionPrincipal principal_classifier_;
  // targets[].auth: the mapping the relay logs in with, and what the token said.
  const CredentialMapping* credential_ = nullptr;
  std::unique_ptr<PasswordLogin> injected_login_;
  std::optional<policy::PrincipalKind> token_kind_;
  std::vector<std::pair<std::string, std::vector<std::string>>> token_claims_;
  int64_t token_deadline_ = 0;  // unix seconds (exp + clock_skew); 0: the session does not end
  enum class Pause {
    kNone,
    kWaitingCommit,
    kCommitted,
    kWaitingCatalog,
    kCatalogReady,
    kWaitingApproval,
    kApprovalReady,
    kWaitingLimit,  // a runtime limit holds the client's next message
    kLimitReady
  };
  Pause pause_ = Pause::kNone;
  std::shared_ptr<DecisionNote> resume_note_;       // the paused statement's decision
  std::shared_ptr<const audit::SessionInfo> info_;  // snapshot shared by this session's events
  // The second witness: the upstream connection's key and the relay's account of it.
  std::string witness_key_;
  pg::WireTally wire_sent_{true};
  pg::WireTally wire_received_{false};
  uint64_t witness_statements_ = 0;  // statement events of Query/Execute/FunctionCall executions
  uint64_t witness_internal_ = 0;    // requests the relay made itself
  ResultMasking masking_;
  // The policy the masking profile came from (held: a later policy at the same address must not
  // pass for it).
  std::shared_ptr<const policy::CompiledPolicy> masked_policy_;
  bool ddl_in_tx_ = false;        // DDL ran in the open transaction: re-read the catalog at its end
  bool ddl_unanswered_ = false;   // DDL was sent and the server has not answered everything yet
  bool catalog_retried_ = false;  // the statement being judged made the catalog be read again
  std::string masked_app_;        // application_name it was computed with
  bool in_catalog_get_ = false;
  bool catalog_ready_now_ = false;
  bool catalog_checked_ = false;  // the paused statement's catalog load finished
  std::optional<identity::ProcessInfo> process_;
  bool peer_resolved_ = false;
  bool upstream_ready_ = false;  // startup sent upstream; the client pump may run
  bool client_pumping_ = false;
  bool started_event_ = false;
  bool start_pending_ = false;  // authenticated; waiting for the peer lookup to emit start
  pg::Bytes startup_bytes_;
  std::optional<pg::BackendKeyData> client_key_;
  // Authentication proxy: with TLS on both legs and SCRAM-SHA-256-PLUS offered upstream, the
  // relay asks the client for its password and runs SCRAM with the server itself.
  enum class AuthProxy { kOff, kAwaitPassword, kAwaitContinue, kAwaitFinal, kAwaitOk };
  AuthProxy auth_proxy_ = AuthProxy::kOff;
  std::unique_ptr<ScramClient> scram_;
  pg::Bytes oob_out_;
  std::string held_id_;  // the approval request a held statement waits on
  // The client cancelled while the approval service had not yet said the statement is held.
  bool cancel_requested_ = false;
  uint64_t hold_generation_ = 0;
  asio::steady_timer hold_timer_;   // checks that a held statement's client is still there
  pg::Bytes client_extra_;          // relay-made bytes waiting for the client leg
  pg::Bytes client_extra_out_;      // ... and those being written
  bool upstream_deferred_ = false;  // upstream bytes arrived while client_extra_ was written
  pg::Bytes fatal_;                 // FATAL ErrorResponse waiting to be written
  // Runtime limits.
  gate::WriteBudget write_budget_;
  gate::ReadBudget read_budget_;
  bool limit_hold_ = false;       // the client's next message waits (wrap or stopped read)
  bool limit_wait_idle_ = false;  // a Query under a row budget waits for the server to be idle
  bool bypass_budget_ = false;    // delivering a held message: not routed again
  bool read_completed_ = false;   // the stopped statement's completion went by
  bool read_cancel_pending_ = false;
  bool read_abort_pending_ = false;   // the failing Parse after a cut-off extended result
  pg::Bytes limit_out_;               // relay-made messages waiting for the upstream leg
  pg::Bytes limit_out_writing_;       // ... and those being written
  bool limit_resume_client_ = false;  // the client pump's write completion is owed a callback
  bool closing_ = false;
  bool closed_ = false;
  std::string end_reason_;
};

}  // namespace dbw::relay
