// `dbwarden events`, `dbwarden sessions` and `dbwarden audit verify` against the HTTP API
// (base URL from --api or DBWARDEN_API, token from --token or DBWARDEN_TOKEN).
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

namespace dbw::agent {

// `events [--since 1h] [--until T] [--principal P] [--db-user U] [--database D] [--table T]
// [--action deny] [--kind K] [--session S] [--exe E] [--fingerprint F] [--source S] [--limit N]
// [--json]`: a table (seq, time, kind, principal, app, decision, result, sql) or JSON lines.
// Exit 0 on success, 1 on an API or connection error, 2 on bad arguments.
int EventsMain(const std::vector<std::string>& args);
int EventsMain(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

// `sessions [--since 1h] [--active] [--principal P] [--limit N] [--json]`, or `sessions ID`
// for one session and its events.
int SessionsMain(const std::vector<std::string>& args);
int SessionsMain(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

// `approvals [list] [--state S] [--limit N]`, `approvals show ID`, `approvals approve|deny ID
// [--comment TEXT]`: the approval requests over /v1/approvals (approve/deny need an approver
// token). Exit codes as for events.
int ApprovalsMain(const std::vector<std::string>& args);
int ApprovalsMain(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

// `audit verify --api URL [--from SEQ] [--to SEQ]` (GET /v1/audit/verify): exit 0 when the
// chain verifies, 1 when it is broken or the API failed, 2 on bad arguments.
int AuditVerifyRemoteMain(const std::vector<std::string>& args);
int AuditVerifyRemoteMain(const std::vector<std::string>& args, std::ostream& out,
                          std::ostream& err);

// GET of any http(s) URL (published anchors, for `audit verify --anchors URL`); `cacert` as for
// the API. On failure writes a clear message to `err` and returns false.
bool FetchUrl(const std::string& url, const std::string& cacert, std::string* body,
              std::ostream& err);

}  // namespace dbw::agent
