// An approval request: one statement, from one principal, on one target, waiting for (or having
// had) a person's decision. Kept in the approvals store as JSON and shown by the API as JSON.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "policy/policy.h"
#include "userspace/common/status.h"

namespace dbw::approvals {

// pending → approved → executed, or pending → denied | expired | withdrawn; an approved request
// whose grant is never used ends expired.
enum class State : uint8_t { kPending, kApproved, kDenied, kExpired, kExecuted, kWithdrawn };
std::string_view StateName(State state);
bool ParseStateName(std::string_view name, State* out);
inline bool IsFinished(State s) {
  return s != State::kPending && s != State::kApproved;
}

struct Vote {
  std::string who;  // the approver's token name
  int64_t ts_us = 0;
  bool approve = true;
  std::string comment;
};

struct Request {
  std::string id;
  State state = State::kPending;
  policy::ApprovalMode mode = policy::ApprovalMode::kHold;
  int64_t created_us = 0;
  // pending: when the request expires undecided; approved: when the grant lapses unused.
  int64_t expires_us = 0;
  int64_t decided_us = 0;
  int64_t executed_us = 0;

  // Where and who. `subject` is the verified identity (certificate subject, else the db user).
  std::string target;
  std::string env;
  std::string session_id;
  std::string subject;
  std::string db_user;
  std::string database;
  std::string application_name;
  std::string client_addr;
  std::string principal_kind;  // human | agent
  std::vector<std::string> groups;
  int32_t pid = 0;  // client process, when the relay resolved it
  std::string exe;

  // What. `sql` is the text as the client sent it, literal values included; the approver must
  // see what runs. The audit log only ever gets `normalized`.
  std::string sql;
  std::string normalized;
  std::string fingerprint;
  std::vector<std::string> commands;
  std::vector<std::string> risks;
  std::vector<std::string> tables;

  // Why, and what the rule asks for.
  std::vector<std::string> rules;
  std::string reason;
  int required = 1;  // distinct approvers
  std::vector<std::string> approver_groups;
  int64_t timeout_s = 600;
  int64_t grant_ttl_s = 3600;
  std::string sqlstate;  // ticket: the refusal's SQLSTATE

  std::vector<Vote> votes;
  // Hex SHA-256 over target, database, subject and the statement's canonical text (comments and
  // formatting removed, literal values kept): what a re-run must match to use the approval.
  std::string match_key;
  std::string
      end_detail;  // why it ended: a denial's comment, "timed out", "cancelled by the client"

  int approvals() const;
};

// Computes Request::match_key.
std::string MatchKey(std::string_view target, std::string_view database, std::string_view subject,
                     std::string_view sql);

// JSON as stored and as GET /v1/approvals/{id} returns it; `with_sql` false leaves the literal
// text out (viewers, webhooks). Strings that are not UTF-8 are made so.
std::string RequestJson(const Request& r, bool with_sql);
StatusOr<Request> ParseRequestJson(std::string_view json);

}  // namespace dbw::approvals
