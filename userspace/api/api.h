// The API's routes as functions of a parsed request: authentication, role checks, parameter
// validation and the response bodies. The server (server.h) only moves bytes and threads.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "policy/policy.h"
#include "userspace/api/auth.h"
#include "userspace/api/event_source.h"
#include "userspace/api/query.h"
#include "userspace/sql/analyzer.h"
#include "userspace/approvals/service.h"

namespace dbw::api {

struct Response {
  unsigned status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};
Response JsonError(unsigned status, std::string_view message);

// What the API reads and checks; borrowed, must outlive the server.
struct ApiDeps {
  const EventSource* events = nullptr;          // required
  const policy::PolicyStore* policy = nullptr;  // POST /v1/policy/evaluate answers 503 without it
  approvals::ApprovalService* approvals = nullptr;  // /v1/approvals answers 503 without it
  // GET /readyz: each returns false (and says why) when not ready; null counts as ready.
  std::function<bool(std::string* why)> store_ready;
  std::function<bool(std::string* why)> policy_ready;
};

struct Request {
  std::string_view method;  // "GET", "POST", ...
  std::string_view target;  // "/v1/events?since=1h"
  std::string_view authorization;
  std::string_view body;
};

// What to do with a request: answer now, run `work` on a worker thread, or long-poll the stream.
struct Dispatch {
  std::optional<Response> now;
  std::function<Response()> work;
  std::optional<StreamQuery> stream;
  std::string who;  // token name, for logs
};

class Api {
 public:
  Api(ApiDeps deps, Authenticator auth) : deps_(std::move(deps)), auth_(std::move(auth)) {}

  Dispatch Route(const Request& request) const;
  // One stream response: events after q.after_seq (possibly none) and the resume cursor.
  Response StreamBatch(const StreamQuery& q) const;
  bool HasNewer(uint64_t after_seq) const;

  // Route bodies, callable directly by tests.
  Response Events(const QueryParams& params) const;
  Response Sessions(const QueryParams& params) const;
  Response Session(const std::string& id, const QueryParams& params) const;
  Response Stats(const QueryParams& params) const;
  // `anchor_lines`: the body of POST /v1/audit/verify (published anchors), else null.
  Response Verify(const QueryParams& params, const std::string* anchor_lines) const;
  Response Evaluate(std::string_view body) const;
  Response Metrics() const;
  Response Ready() const;
  // approvals.cc: the statement's literal text is shown to approvers (and admins) only.
  Response Approvals(const QueryParams& params, const Identity& who) const;
  Response Approval(const std::string& id, const Identity& who) const;
  Response ApprovalVote(const std::string& id, const Identity& who, bool approve,
                        std::string_view body) const;

 private:
  ApiDeps deps_;
  Authenticator auth_;
};

// One statement to judge, as `dbwarden policy eval` reads it from a JSON line and
// POST /v1/policy/evaluate from its body.
struct EvalInput {
  std::optional<std::string> id;
  std::string sql;
  policy::Target target;
  policy::Principal principal;
  std::optional<policy::PrincipalKind> kind;  // explicit; otherwise the policy classifies
  // Values bound to $1, $2, ... (nullopt: NULL), as a Bind or EXECUTE would supply them.
  std::optional<std::vector<std::optional<std::string>>> params;
};
// Parses {"sql":..., "env":..., "target":..., "principal":{...}, "params": [...], "id":...};
// keys present override what *in already holds (the CLI pre-fills them from its flags).
Status ParseEvalInput(std::string_view json, EvalInput* in);
// The facts a dry run judges: of in.sql, or, with params, of its statement with the values in
// place of its parameters — as the relay judges a Bind or EXECUTE of it — under the statement's
// own normalized text. `analyzer` may be null (uncached).
std::shared_ptr<const sql::QueryFacts> EvalFacts(const EvalInput& in, sql::Analyzer* analyzer);

// One decision as `dbwarden policy eval` and POST /v1/policy/evaluate print it: action, rules,
// reason, approval, monitor, principal_kind and each statement's facts (evaluate.cc).
std::string DecisionJson(const policy::Decision& d, policy::PrincipalKind kind,
                         const sql::QueryFacts& facts, const std::optional<std::string>& id);

// "POST /v1/policy/evaluate" body → the `dbwarden policy eval` JSON decision (evaluate.cc).
StatusOr<std::string> EvaluateJson(std::string_view body, const policy::CompiledPolicy& policy);

}  // namespace dbw::api
