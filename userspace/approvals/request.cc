// Request: names, the match key and the JSON form (RapidJSON out, simdjson in).
#include "userspace/approvals/request.h"

#include <simdjson.h>

#include <openssl/evp.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "userspace/audit/event_json.h"
#include "userspace/sql/shape.h"

namespace dbw::approvals {
namespace {

constexpr std::string_view kStateNames[] = {"pending", "approved", "denied",
                                            "expired", "executed", "withdrawn"};

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

void Str(Writer& w, const char* key, const std::string& value) {
  if (key != nullptr) w.Key(key);
  std::string clean = audit::JsonText(value);
  w.String(clean.data(), static_cast<rapidjson::SizeType>(clean.size()));
}
void Strings(Writer& w, const char* key, const std::vector<std::string>& values) {
  w.Key(key);
  w.StartArray();
  for (const auto& v : values) Str(w, nullptr, v);
  w.EndArray();
}
void Int(Writer& w, const char* key, int64_t v) {
  w.Key(key);
  w.Int64(v);
}
void Time(Writer& w, const char* key, int64_t us) {
  w.Key(key);
  if (us == 0) {
    w.Null();
  } else {
    std::string t = audit::FormatTimestamp(us);
    w.String(t.data(), static_cast<rapidjson::SizeType>(t.size()));
  }
}

using simdjson::dom::element;

Status Bad(std::string_view what) {
  return Status(StatusCode::kDataLoss, "approval request record: " + std::string(what));
}

std::string GetStr(element obj, std::string_view key) {
  std::string_view v;
  if (obj[key].get_string().get(v) != simdjson::SUCCESS) return {};
  return std::string(v);
}
int64_t GetInt(element obj, std::string_view key, int64_t fallback = 0) {
  int64_t v;
  if (obj[key].get_int64().get(v) != simdjson::SUCCESS) return fallback;
  return v;
}
std::vector<std::string> GetStrings(element obj, std::string_view key) {
  std::vector<std::string> out;
  simdjson::dom::array a;
  if (obj[key].get_array().get(a) != simdjson::SUCCESS) return out;
  for (element e : a) {
    std::string_view v;
    if (e.get_string().get(v) == simdjson::SUCCESS) out.emplace_back(v);
  }
  return out;
}

}  // namespace

std::string_view StateName(State state) {
  return kStateNames[static_cast<int>(state)];
}

bool ParseStateName(std::string_view name, State* out) {
  for (size_t i = 0; i < std::size(kStateNames); ++i) {
    if (kStateNames[i] == name) {
      *out = static_cast<State>(i);
      return true;
    }
  }
  return false;
}

int Request::approvals() const {
  int n = 0;
  for (const auto& v : votes) n += v.approve ? 1 : 0;
  return n;
}

std::string MatchKey(std::string_view target, std::string_view database, std::string_view subject,
                     std::string_view sql) {
  std::string canonical = sql::CanonicalText(sql);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  // Length-prefixed fields: no two different tuples hash the same bytes.
  for (std::string_view part : {target, database, subject, std::string_view(canonical)}) {
    uint64_t n = part.size();
    EVP_DigestUpdate(ctx, &n, sizeof(n));
    EVP_DigestUpdate(ctx, part.data(), part.size());
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx, digest, &len);
  EVP_MD_CTX_free(ctx);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned i = 0; i < len; ++i) {
    hex += kHex[digest[i] >> 4];
    hex += kHex[digest[i] & 0xf];
  }
  return hex;
}

std::string RequestJson(const Request& r, bool with_sql) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  w.StartObject();
  Str(w, "id", r.id);
  Str(w, "state", std::string(StateName(r.state)));
  Str(w, "mode", r.mode == policy::ApprovalMode::kHold ? "hold" : "ticket");
  Time(w, "created", r.created_us);
  Time(w, "expires", r.expires_us);
  Time(w, "decided", r.decided_us);
  Time(w, "executed", r.executed_us);
  Int(w, "created_us", r.created_us);
  Int(w, "expires_us", r.expires_us);
  Int(w, "decided_us", r.decided_us);
  Int(w, "executed_us", r.executed_us);
  Str(w, "target", r.target);
  Str(w, "env", r.env);
  Str(w, "session_id", r.session_id);
  w.Key("principal");
  w.StartObject();
  Str(w, "subject", r.subject);
  Str(w, "kind", r.principal_kind);
  Str(w, "db_user", r.db_user);
  Str(w, "database", r.database);
  Str(w, "application_name", r.application_name);
  Str(w, "client_addr", r.client_addr);
  Strings(w, "groups", r.groups);
  w.EndObject();
  w.Key("process");
  w.StartObject();
  Int(w, "pid", r.pid);
  Str(w, "exe", r.exe);
  w.EndObject();
  w.Key("statement");
  w.StartObject();
  if (with_sql) Str(w, "sql", r.sql);
  Str(w, "normalized", r.normalized);
  Str(w, "fingerprint", r.fingerprint);
  Strings(w, "commands", r.commands);
  Strings(w, "risks", r.risks);
  Strings(w, "tables", r.tables);
  w.EndObject();
  Strings(w, "rules", r.rules);
  Str(w, "reason", r.reason);
  Int(w, "required", r.required);
  Int(w, "approvals", r.approvals());
  Strings(w, "approver_groups", r.approver_groups);
  Int(w, "timeout_s", r.timeout_s);
  Int(w, "grant_ttl_s", r.grant_ttl_s);
  Str(w, "sqlstate", r.sqlstate);
  w.Key("votes");
  w.StartArray();
  for (const auto& v : r.votes) {
    w.StartObject();
    Str(w, "who", v.who);
    Time(w, "at", v.ts_us);
    Int(w, "at_us", v.ts_us);
    Str(w, "decision", v.approve ? "approve" : "deny");
    Str(w, "comment", v.comment);
    w.EndObject();
  }
  w.EndArray();
  Str(w, "match_key", r.match_key);
  Str(w, "end_detail", r.end_detail);
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize());
}

StatusOr<Request> ParseRequestJson(std::string_view json) {
  simdjson::dom::parser parser;
  simdjson::padded_string padded(json);
  element doc;
  if (parser.parse(padded).get(doc) != simdjson::SUCCESS || !doc.is_object())
    return Bad("not a JSON object");
  Request r;
  r.id = GetStr(doc, "id");
  if (r.id.empty()) return Bad("no id");
  if (!ParseStateName(GetStr(doc, "state"), &r.state)) return Bad("bad state");
  std::string mode = GetStr(doc, "mode");
  if (mode != "hold" && mode != "ticket") return Bad("bad mode");
  r.mode = mode == "hold" ? policy::ApprovalMode::kHold : policy::ApprovalMode::kTicket;
  r.created_us = GetInt(doc, "created_us");
  r.expires_us = GetInt(doc, "expires_us");
  r.decided_us = GetInt(doc, "decided_us");
  r.executed_us = GetInt(doc, "executed_us");
  r.target = GetStr(doc, "target");
  r.env = GetStr(doc, "env");
  r.session_id = GetStr(doc, "session_id");
  element p;
  if (doc["principal"].get(p) == simdjson::SUCCESS && p.is_object()) {
    r.subject = GetStr(p, "subject");
    r.principal_kind = GetStr(p, "kind");
    r.db_user = GetStr(p, "db_user");
    r.database = GetStr(p, "database");
    r.application_name = GetStr(p, "application_name");
    r.client_addr = GetStr(p, "client_addr");
    r.groups = GetStrings(p, "groups");
  }
  element proc;
  if (doc["process"].get(proc) == simdjson::SUCCESS && proc.is_object()) {
    r.pid = static_cast<int32_t>(GetInt(proc, "pid"));
    r.exe = GetStr(proc, "exe");
  }
  element st;
  if (doc["statement"].get(st) == simdjson::SUCCESS && st.is_object()) {
    r.sql = GetStr(st, "sql");
    r.normalized = GetStr(st, "normalized");
    r.fingerprint = GetStr(st, "fingerprint");
    r.commands = GetStrings(st, "commands");
    r.risks = GetStrings(st, "risks");
    r.tables = GetStrings(st, "tables");
  }
  r.rules = GetStrings(doc, "rules");
  r.reason = GetStr(doc, "reason");
  r.required = static_cast<int>(GetInt(doc, "required", 1));
  r.approver_groups = GetStrings(doc, "approver_groups");
  r.timeout_s = GetInt(doc, "timeout_s", 600);
  r.grant_ttl_s = GetInt(doc, "grant_ttl_s", 3600);
  r.sqlstate = GetStr(doc, "sqlstate");
  simdjson::dom::array votes;
  if (doc["votes"].get_array().get(votes) == simdjson::SUCCESS) {
    for (element v : votes) {
      Vote vote;
      vote.who = GetStr(v, "who");
      vote.ts_us = GetInt(v, "at_us");
      vote.approve = GetStr(v, "decision") != "deny";
      vote.comment = GetStr(v, "comment");
      r.votes.push_back(std::move(vote));
    }
  }
  r.match_key = GetStr(doc, "match_key");
  r.end_detail = GetStr(doc, "end_detail");
  if (r.required < 1 || r.match_key.size() != 64) return Bad("bad required count or match key");
  return r;
}

}  // namespace dbw::approvals
