// The PostgreSQL session state machine shared by the relay and the passive tap: phase,
// transaction status, named statements and portals, and which response answers which request.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "userspace/protocol/postgres/types.h"

namespace dbw::pg {

enum class Phase {
  kStartup,         // waiting for the StartupMessage
  kAuthenticating,  // StartupMessage sent, no AuthenticationOk yet
  kInitializing,    // AuthenticationOk seen, waiting for the first ReadyForQuery
  kReady,           // ReadyForQuery seen; requests may be in flight
  kCopyIn,
  kCopyOut,
  kCopyBoth,
  kTerminated,
};
const char* PhaseName(Phase phase);

// Whatever the relay attached when it judged a statement (its facts and decision). Opaque to
// the protocol module; carried from Query/Parse to every Execution of that statement.
struct StatementNote {
  virtual ~StatementNote() = default;
};

// One executed statement: a simple Query message, or an extended-protocol Execute traced back
// through its portal to the Parse that created the statement.
struct Execution {
  std::shared_ptr<const std::string> sql;  // shared with the statement map; never null
  bool extended = false;
  std::string statement_name;  // extended protocol only
  std::string portal;          // extended protocol only
  uint64_t start_ns = 0;
  uint64_t end_ns = 0;
  uint64_t rows = 0;       // DataRow messages, or the tag's count when larger (COPY, DML)
  uint64_t bytes_out = 0;  // backend bytes attributed to this execution
  std::vector<std::string> command_tags;  // one per statement of a simple Query
  std::string sqlstate;                   // set when the execution failed
  std::string error_message;
  bool suspended = false;     // PortalSuspended: row limit reached, portal still open
  bool parse_only = false;    // a Parse (reported only when the server rejects it)
  bool bind_only = false;     // a judged Bind (reported only when the server rejects it)
  bool fastpath = false;      // a FunctionCall message
  uint32_t function_oid = 0;  // fastpath: the function it called
  std::shared_ptr<const StatementNote> note;
};

// Where the rows of the next backend messages come from, so a consumer (result masking) can
// key what a RowDescription tells it: a simple Query, or a prepared statement / bound portal,
// each identified by a serial that changes whenever its name is reused (Parse, Bind).
struct ResultSource {
  enum class Kind : uint8_t { kNone, kQuery, kStatement, kPortal };
  Kind kind = Kind::kNone;
  uint64_t statement_serial = 0;  // kStatement; kPortal: the statement it was bound from
  uint64_t portal_serial = 0;     // kPortal
  // kPortal: the Bind's result format codes; null when every column is text.
  std::shared_ptr<const std::vector<int16_t>> result_formats;
};

class SessionObserver {
 public:
  virtual ~SessionObserver() = default;
  virtual void OnExecutionComplete(const Execution& execution) = 0;
};

class SessionState {
 public:
  explicit SessionState(SessionObserver* observer) : observer_(observer) {}

  // For a connection picked up after its startup (the passive tap): treat it as ready.
  void AssumeReady() { phase_ = Phase::kReady; }
  // A parsed StartupMessage (not SSLRequest/CancelRequest).
  void OnStartup(const StartupMessage& message);
  // Whole messages. Return false with *error when the body is malformed.
  bool OnFrontend(const Frame& frame, uint64_t now_ns, std::string* error);
  // The same for a message its caller already decoded (ParseFrontend) and validated.
  bool OnFrontendMessage(const FrontendMessage& message, uint64_t now_ns, std::string* error);
  bool OnBackend(const Frame& frame, uint64_t now_ns, std::string* error);
  // Messages passed through without buffering their bodies (DataRow, CopyData).
  void OnBackendStreamed(uint8_t type, uint32_t length, uint64_t now_ns);
  void OnFrontendStreamed(uint8_t type, uint32_t length, uint64_t now_ns);
  // The connection ended; unfinished executions are reported with `reason` as their error.
  void OnClose(uint64_t now_ns, const std::string& reason);

  Phase phase() const { return phase_; }
  uint8_t transaction_status() const { return tx_status_; }
  AuthCode last_auth_request() const { return last_auth_; }
  const std::string& user() const { return user_; }
  const std::string& database() const { return database_; }
  const std::string& application_name() const { return application_name_; }
  const BackendKeyData& backend_key() const { return backend_key_; }
  // Requests sent but not yet answered; the relay uses the number of pending Syncs/Queries
  // to order the responses it synthesises.
  size_t pending_requests() const { return pending_.size(); }
  // Pending requests answered by a ReadyForQuery (Query, Sync, FunctionCall): batch boundaries.
  size_t pending_sync_points() const;
  // The request after the head is a Sync: an error at the head skips nothing else.
  bool sync_follows_head() const;
  // The note of the statement bound to `portal` (what an Execute of it would run); null if none.
  const StatementNote* PortalNote(const std::string& portal) const;
  size_t prepared_statements() const { return statements_.size(); }
  // True when the message just passed to OnFrontend was a Query, Parse, Bind or FunctionCall
  // that the server will act on (not one it skips after an extended-protocol error).
  bool last_request_annotatable() const { return annotatable_; }
  // Attaches `note` to that request: a Query's or Parse's (and so every Execution that runs
  // it), a Bind's (its portal's: what an Execute of the portal runs; the Bind is then reported
  // as an Execution when the server rejects it).
  void AnnotateLastRequest(std::shared_ptr<const StatementNote> note);
  // The server skips messages up to the next Sync (after an extended-protocol error).
  bool skipping() const { return discard_until_sync_; }
  // Query, Execute and FunctionCall messages the server skipped that way (never reported as
  // executions).
  uint64_t skipped_requests() const { return skipped_requests_; }
  // The note of the request the next backend message answers, or null.
  const StatementNote* HeadNote() const;
  // The execution the next backend message answers (a Query, Parse, Execute or FunctionCall).
  const Execution* HeadExecution() const;
  // The note of the request just passed to OnFrontend (an Execute's: its portal's statement).
  const StatementNote* LastNote() const;
  // The note a named (or unnamed) prepared statement carries; null when unknown.
  const StatementNote* StatementNoteOf(const std::string& name) const;
  // SQL-level PREPARE / DEALLOCATE / DISCARD changed what a statement name means on the server:
  // later Binds of it must not reuse what was learned about the old one (a new serial).
  void RedefineStatement(const std::string& name, std::shared_ptr<const StatementNote> note);
  void DropStatement(const std::string& name);
  void DropAllStatements();
  // What the request the next backend message answers returns rows of.
  ResultSource HeadResultSource() const;

 private:
  enum class Request : uint8_t {
    kQuery,
    kParse,
    kBind,
    kDescribe,
    kExecute,
    kClose,
    kSync,
    kFunctionCall
  };
  struct Pending {
    Request kind;
    std::unique_ptr<Execution> execution;  // kQuery, kExecute, and kParse (reported if it fails)
    std::shared_ptr<const StatementNote> note;  // kQuery, kParse, and an annotated kBind
    ResultSource source;                        // kDescribe and kExecute
  };
  struct Prepared {
    std::shared_ptr<const std::string> sql;
    std::shared_ptr<const StatementNote> note;
    uint64_t serial = 0;            // statements: set by Parse; portals: set by Bind
    uint64_t statement_serial = 0;  // portals: their statement's
    std::shared_ptr<const std::vector<int16_t>> result_formats;  // portals
    uint64_t bound_at = 0;  // portals: sync points sent before their Bind
  };
  ResultSource PortalSource(const std::string& portal) const;

  bool HandleFrontendBody(const FrontendMessage& message, uint64_t now_ns, std::string* error);
  bool HandleBackendBody(const Frame& frame, uint64_t now_ns, std::string* error);
  void OnError(std::string_view sqlstate, std::string_view message, uint64_t now_ns);
  void Complete(Pending* p, uint64_t now_ns);
  Execution* CurrentExecution();
  void PopFront();           // drops the head request; its execution (if any) is not reported
  void Recycle(Pending* p);  // returns p's execution to the spare pool
  void Push(Request kind, std::unique_ptr<Execution> execution = nullptr);
  // Executions are recycled: a statement-per-transaction workload would otherwise allocate
  // and free one (with its strings and tag vector) per statement.
  std::unique_ptr<Execution> NewExecution();

  SessionObserver* observer_;
  Phase phase_ = Phase::kStartup;
  uint8_t tx_status_ = 'I';
  AuthCode last_auth_ = AuthCode::kOk;
  std::string user_;
  std::string database_;
  std::string application_name_;
  BackendKeyData backend_key_;
  bool discard_until_sync_ = false;
  uint64_t skipped_requests_ = 0;
  bool annotatable_ = false;  // the server skips messages after an extended-protocol error
  std::deque<Pending> pending_;
  std::vector<std::unique_ptr<Execution>> spare_;
  std::unordered_map<std::string, Prepared> statements_;
  std::unordered_map<std::string, Prepared> portals_;
  std::string last_parse_name_;
  std::string last_bind_portal_;
  uint64_t last_bind_ns_ = 0;
  uint64_t serial_ = 0;  // last serial handed to a Parse or Bind
  // Sync points (Query, Sync, FunctionCall) sent, and answered by a ReadyForQuery: a transaction
  // that ends drops the portals bound before its sync point, not those a pipelining client has
  // already bound for the next one.
  uint64_t sync_points_sent_ = 0;
  uint64_t sync_points_answered_ = 0;
  std::unordered_map<std::string, std::string> portal_statement_;
  FrontendMessage scratch_;  // OnFrontend's decoded message (capacity reused)
};

}  // namespace dbw::pg
