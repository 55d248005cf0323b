// The audit event: one record per session start/end, statement, violation, approval step and
// agent lifecycle.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "policy/policy.h"
#include "userspace/identity/process_info.h"
#include "userspace/sql/facts.h"

namespace dbw::audit {

enum class EventKind : uint8_t {
  kAgentStart,
  kAgentStop,
  kSessionStart,
  kSessionEnd,
  kStatement,
  kProtocolViolation,
  kUpstreamError,
  kAuditLoss,
  kDecision,     // a statement judged, committed before it is forwarded (audit_before_forward)
  kPolicyLoad,   // a policy was loaded, or a reload was rejected (detail says which)
  kApproval,     // a step of an approval request (approval.step says which)
  kBypass,       // the tap saw a session on a relay_only target that did not come through the relay
  kTapLoss,      // the tap lost or truncated captured bytes (count and detail say how many, why)
  kAuditTamper,  // at start the audit store contradicted its published anchor or its own chain
  kLoginFailed,  // a connection refused before it was ready: by the server (wrong password, no
                 // such role, pg_hba) or by the relay (TLS required, a token refused);
                 // error_* say why
  kTokenExpired,     // a session ended because the token it logged in with expired
  kConnectRefused,   // the kernel failed a connect() to a relay_only: refuse (or unreachable
                     // enforce) target's server; the session names the process
  kWitnessMismatch,  // the server's side of a relayed connection, seen by the tap, disagrees
                     // with the relay's account of it (detail says how)
};
const char* EventKindName(EventKind kind);

struct Principal {
  std::string kind;  // "human" | "agent", as the running policy classified the session
  std::string db_user;
  std::string database;
  std::string application_name;
  std::string client_addr;   // "127.0.0.1:54321"
  std::string cert_subject;  // verified client certificate subject (RFC 2253), when presented
  std::string cert_san;      // its URI SAN (SPIFFE ID), when it has one
  std::string cert_issuer;   // its issuer's subject
  // Identity-aware access (targets[].auth): how the relay verified who this is ("token" or
  // "certificate"; empty when the server's own login decided), the verified subject, and for
  // a token its issuer, id (jti) and groups; never the token itself.
  std::string auth;
  std::string subject;
  std::string issuer;
  std::string jti;
  std::vector<std::string> groups;
  // The database user the client asked for, when the relay logged in as a mapped role.
  std::string requested_user;
  // relay_only: enforce: the address the client connected to before the kernel routed the
  // connection to the relay ("127.0.0.1:5432"); empty for a client that connected to the relay.
  std::string routed_from;
};

// What every event of one session shares. Sessions publish a new immutable snapshot when
// something changes (identity resolved, application_name set), so events never copy it.
struct SessionInfo {
  std::string session_id;
  std::string target;
  std::string env;
  Principal principal;
  std::optional<identity::ProcessInfo> process;
};

// The statement as audited: normalized text and facts, never the literal values.
struct StatementInfo {
  std::shared_ptr<const sql::QueryFacts> facts;  // null when the statement was never judged
  const char* protocol = "simple";               // "simple" | "extended"
  std::string name;                              // prepared statement name (extended)
};

struct DecisionInfo {
  std::shared_ptr<const policy::Decision> decision;
  bool enforced = false;    // the relay stopped the statement (deny/approve in enforce mode)
  std::string approval_id;  // the approval request that let an `approve` statement run
};

// One step of an approval request. The statement appears as its normalized text: literal values
// stay in the approvals store, out of the audit log.
struct ApprovalInfo {
  std::string id;
  std::string step;   // requested | vote | approved | denied | expired | executed | withdrawn |
                      // webhook_failed | not_executed
  std::string mode;   // hold | ticket
  std::string actor;  // who took the step: an approver's token name, the principal, or "agent"
  std::string comment;
  int approvals = 0;  // distinct approvals so far
  int required = 0;   // approvals the rule requires
  std::vector<std::string> rules;
  std::string reason;
  std::string sql;  // normalized text
  std::string fingerprint;
};

// What masking did to one statement's result: counts only, never values.
struct MaskingInfo {
  std::vector<std::pair<std::string, uint64_t>> columns;    // "schema.table.column" or result name
  std::vector<std::pair<std::string, uint64_t>> detectors;  // detector name -> values it hit
  uint64_t withheld = 0;  // values withheld because masking could not be applied (fail closed)
  // Masked columns the statement read through masking by reference ("schema.table.column",
  // "schema.view.*" for an expanded view): it ran rewritten.
  std::vector<std::string> rewritten;
};

struct ResultInfo {
  std::string command_tag;  // last CommandComplete tag
  std::string sqlstate;     // set when the statement failed
  std::string message;      // error message when it failed
  uint64_t duration_us = 0;
  uint64_t rows = 0;
  uint64_t bytes = 0;
};

struct Event {
  uint64_t seq = 0;   // assigned by the sink, strictly increasing
  int64_t ts_us = 0;  // wall clock, microseconds since the epoch
  EventKind kind = EventKind::kStatement;
  const char* source = "relay";                // "relay" | "tap" | "agent"
  std::shared_ptr<const SessionInfo> session;  // null for agent events
  std::optional<StatementInfo> statement;
  std::optional<ResultInfo> result;
  std::optional<DecisionInfo> decision;
  std::optional<MaskingInfo> masking;
  std::optional<ApprovalInfo> approval;
  std::string error_sqlstate;  // protocol violations and upstream errors
  std::string error_message;
  std::string detail;  // free text for agent/loss events
  uint64_t count = 0;  // audit_loss: events lost; tap_loss: records or bytes lost
};

int64_t NowMicros();

}  // namespace dbw::audit
