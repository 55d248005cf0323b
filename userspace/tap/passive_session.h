// PassiveSession: one database connection seen by the tap. Two MessageStreams (one per
// direction) feed the shared protocol state machine; executions become audit statement events
// judged by the policy in monitor mode.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "policy/policy.h"
#include "policy/session_principal.h"
#include "userspace/audit/event.h"
#include "userspace/audit/sink.h"
#include "userspace/gate/statement_gate.h"
#include "userspace/identity/process_info.h"
#include "userspace/protocol/postgres/session.h"
#include "userspace/sql/analyzer.h"
#include "userspace/tap/stream.h"

namespace dbw::tap {

struct TapMetrics;

// What a session needs from the engine; all of it outlives the session.
struct SessionContext {
  audit::EventSink* sink = nullptr;
  const policy::PolicyStore* policy = nullptr;
  sql::Analyzer* analyzer = nullptr;
  TapMetrics* metrics = nullptr;
};

struct SessionIdentity {
  std::string session_id;
  std::string target;  // "" when the server is not one of the targets
  std::string env;
  bool relay_only = false;
  std::string client_addr;  // "127.0.0.1:54321" or "unix:/var/run/postgresql/.s.PGSQL.5432"
  std::string transport;    // "tcp" | "unix"
  int32_t server_pid = 0;   // the backend serving it, for server-side captures
  std::optional<identity::ProcessInfo> client;  // the client process, when on this host
};

class PassiveSession : public pg::SessionObserver {
 public:
  PassiveSession(SessionContext ctx, SessionIdentity identity, uint32_t max_body);
  ~PassiveSession() override;

  // Bytes of one direction at their stream position. `frontend`: client -> server bytes.
  void Add(bool frontend, uint64_t pos, std::span<const std::byte> data, uint64_t now_ns);
  // The kernel announced the connection again with its positions starting over: both streams
  // resynchronise on the next whole message, the session goes on.
  void Rebase();
  // The connection ended (close, or its process exited).
  void Close(uint64_t now_ns, const std::string& reason);
  // Stops decoding (encrypted, or not wanted); Close still ends it in the log.
  bool decoding() const { return decoding_; }
  const SessionIdentity& identity() const { return identity_; }

  void OnExecutionComplete(const pg::Execution& execution) override;

 private:
  class FrontendSink;
  class BackendSink;
  friend class FrontendSink;
  friend class BackendSink;

  void Begin(bool fresh);
  void NewStreams();
  void OnStartupPacket(std::span<const std::byte> packet);
  void OnFrontendMessage(const pg::Frame& frame);
  void OnBackendMessage(const pg::Frame& frame);
  void Started();
  void PublishInfo();
  audit::Event NewEvent(audit::EventKind kind);
  const policy::Principal& PolicyPrincipal(
      const std::shared_ptr<const policy::CompiledPolicy>& policy);
  void FillFromBackendTitle();

  SessionContext ctx_;
  SessionIdentity identity_;
  std::unique_ptr<FrontendSink> fe_sink_;
  std::unique_ptr<BackendSink> be_sink_;
  std::unique_ptr<MessageStream> fe_;
  std::unique_ptr<MessageStream> be_;
  pg::SessionState state_;
  // Reads statements with the session's settings and names, as the relay's gate does.
  gate::StatementGate gate_;
  uint32_t max_body_;
  audit::Principal principal_;
  std::shared_ptr<const audit::SessionInfo> info_;
  policy::SessionPrincipal principal_classifier_;  // classified as the relay classifies
  uint64_t now_ns_ = 0;
  std::vector<std::byte> head_;  // the first frontend bytes, while fewer than 8
  bool seen_frontend_ = false;
  bool seen_backend_ = false;
  bool picked_up_ = false;  // seen mid-way: its startup was before the capture
  bool started_ = false;
  bool decoding_ = true;
  bool closed_ = false;
  bool bypass_ = false;
  std::string end_note_;
};

}  // namespace dbw::tap
