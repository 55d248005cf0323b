// JSON encoding of audit events with RapidJSON's streaming writer (no DOM).
#include "userspace/audit/event_json.h"

#include <chrono>
#include <cstring>
#include <ctime>

#include <rapidjson/encodings.h>
#include <rapidjson/stream.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace dbw::audit {

const char* EventKindName(EventKind kind) {
  switch (kind) {
    case EventKind::kAgentStart:
      return "agent_start";
    case EventKind::kAgentStop:
      return "agent_stop";
    case EventKind::kSessionStart:
      return "session_start";
    case EventKind::kSessionEnd:
      return "session_end";
    case EventKind::kStatement:
      return "statement";
    case EventKind::kProtocolViolation:
      return "protocol_violation";
    case EventKind::kUpstreamError:
      return "upstream_error";
    case EventKind::kAuditLoss:
      return "audit_loss";
    case EventKind::kPolicyLoad:
      return "policy_load";
    case EventKind::kDecision:
      return "decision";
    case EventKind::kApproval:
      return "approval";
    case EventKind::kBypass:
      return "bypass";
    case EventKind::kTapLoss:
      return "tap_loss";
  }
  return "unknown";
}

int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string FormatTimestamp(int64_t ts_us) {
  std::time_t secs = static_cast<std::time_t>(ts_us / 1000000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[48];
  size_t n = std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof(buf) - n, ".%06dZ", static_cast<int>(ts_us % 1000000));
  return buf;
}

namespace {
using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

// Text from the network need not be UTF-8; JSON must be. Invalid bytes become U+FFFD.
bool ValidUtf8(const std::string& s) {
  // Most SQL and names are ASCII: check 8 bytes at a time before the per-codepoint walk.
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t word;
    std::memcpy(&word, s.data() + i, 8);
    if (word & 0x8080808080808080ull) break;
  }
  while (i < s.size() && static_cast<unsigned char>(s[i]) < 0x80) ++i;
  if (i == s.size()) return true;
  rapidjson::StringStream in(s.c_str());
  while (static_cast<size_t>(in.Tell()) < s.size()) {
    rapidjson::StringBuffer sink;
    if (!rapidjson::UTF8<>::Validate(in, sink)) return false;
  }
  return true;
}

std::string SanitizeUtf8(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80           ? 1
                 : (c >> 5) == 0x6  ? 2
                 : (c >> 4) == 0xe  ? 3
                 : (c >> 3) == 0x1e ? 4
                                    : 0;
    bool ok = len > 0 && i + len <= s.size();
    for (size_t k = 1; ok && k < len; ++k)
      ok = (static_cast<unsigned char>(s[i + k]) & 0xc0) == 0x80;
    if (ok && len > 1) ok = ValidUtf8(s.substr(i, len));
    if (!ok || s[i] == '\0') {
      out += "\xEF\xBF\xBD";
      ++i;
      continue;
    }
    out.append(s, i, len);
    i += len;
  }
  return out;
}

bool NeedsSanitizing(const std::string& value) {
  return !ValidUtf8(value) || value.find('\0') != std::string::npos;
}

void Str(Writer& w, const char* key, const std::string& value) {
  if (key != nullptr) w.Key(key);
  if (!NeedsSanitizing(value)) {
    w.String(value.data(), static_cast<rapidjson::SizeType>(value.size()));
    return;
  }
  std::string clean = SanitizeUtf8(value);
  w.String(clean.data(), static_cast<rapidjson::SizeType>(clean.size()));
}
void StrIfSet(Writer& w, const char* key, const std::string& value) {
  if (!value.empty()) Str(w, key, value);
}
void WriteNames(Writer& w, const char* key, const std::vector<std::string_view>& names) {
  w.Key(key);
  w.StartArray();
  for (auto n : names) w.String(n.data(), static_cast<rapidjson::SizeType>(n.size()));
  w.EndArray();
}

// {"name": count, ...}; names are sanitized like every other string.
void WriteCounts(Writer& w, const char* key,
                 const std::vector<std::pair<std::string, uint64_t>>& counts) {
  w.Key(key);
  w.StartObject();
  for (const auto& [name, n] : counts) {
    Str(w, nullptr, name);  // as a key: Writer::String and Key write the same bytes
    w.Uint64(n);
  }
  w.EndObject();
}

void WriteStatement(Writer& w, const StatementInfo& st) {
  w.Key("protocol");
  w.String(st.protocol);
  StrIfSet(w, "name", st.name);
  if (!st.facts) {
    Str(w, "sql", "");
    return;
  }
  const sql::QueryFacts& f = *st.facts;
  // One text for the whole query string: its statements' normalized texts.
  std::string sql_text;
  std::vector<std::string_view> commands, risks;
  std::vector<std::string> read, written;
  for (const auto& s : f.statements) {
    if (!sql_text.empty()) sql_text += "; ";
    sql_text += s.normalized;
    commands.push_back(sql::CommandName(s.command));
    for (const auto& t : s.tables_read) read.push_back(t.Qualified());
    for (const auto& t : s.tables_written) written.push_back(t.Qualified());
  }
  risks = sql::RiskNames(f.AllRisks());
  Str(w, "sql", sql_text);
  if (!f.statements.empty()) StrIfSet(w, "fingerprint", f.statements.front().fingerprint_hex);
  WriteNames(w, "commands", commands);
  WriteNames(w, "risks", risks);
  w.Key("tables_read");
  w.StartArray();
  for (const auto& t : read) Str(w, nullptr, t);
  w.EndArray();
  w.Key("tables_written");
  w.StartArray();
  for (const auto& t : written) Str(w, nullptr, t);
  w.EndArray();
}

}  // namespace

std::string JsonText(const std::string& value) {
  return NeedsSanitizing(value) ? SanitizeUtf8(value) : value;
}

void AppendEventJson(const Event& e, std::string* out) {
  thread_local rapidjson::StringBuffer buf;  // reused: one per writer thread
  buf.Clear();
  Writer w(buf);
  w.StartObject();
  w.Key("seq");
  w.Uint64(e.seq);
  Str(w, "ts", FormatTimestamp(e.ts_us));
  w.Key("kind");
  w.String(EventKindName(e.kind));
  w.Key("source");
  w.String(e.source);
  if (e.session) {
    const SessionInfo& si = *e.session;
    StrIfSet(w, "session_id", si.session_id);
    StrIfSet(w, "target", si.target);
    StrIfSet(w, "env", si.env);
    const Principal& p = si.principal;
    if (!p.db_user.empty() || !p.client_addr.empty()) {
      w.Key("principal");
      w.StartObject();
      StrIfSet(w, "kind", p.kind);
      Str(w, "db_user", p.db_user);
      Str(w, "database", p.database);
      Str(w, "application_name", p.application_name);
      Str(w, "client_addr", p.client_addr);
      StrIfSet(w, "tls_subject", p.tls_subject);
      w.EndObject();
    }
    if (si.process) {
      const identity::ProcessInfo& pr = *si.process;
      w.Key("process");
      w.StartObject();
      w.Key("pid");
      w.Int(pr.pid);
      w.Key("uid");
      w.Uint(pr.uid);
      if (pr.ppid != 0) {
        w.Key("ppid");
        w.Int(pr.ppid);
      }
      if (pr.gid != identity::kUnknownId) {
        w.Key("gid");
        w.Uint(pr.gid);
      }
      Str(w, "comm", pr.comm);
      Str(w, "exe", pr.exe);
      StrIfSet(w, "cmdline", pr.cmdline);
      Str(w, "cgroup", pr.cgroup);
      StrIfSet(w, "unit", identity::UnitFromCgroup(pr.cgroup));
      StrIfSet(w, "container_id", identity::ContainerFromCgroup(pr.cgroup));
      if (!pr.parents.empty()) {
        w.Key("parents");
        w.StartArray();
        for (const auto& parent : pr.parents) {
          w.StartObject();
          w.Key("pid");
          w.Int(parent.pid);
          Str(w, "comm", parent.comm);
          Str(w, "exe", parent.exe);
          w.EndObject();
        }
        w.EndArray();
      }
      w.EndObject();
    }
  }
  if (e.statement) {
    w.Key("statement");
    w.StartObject();
    WriteStatement(w, *e.statement);
    w.EndObject();
  }
  if (e.decision && e.decision->decision) {
    const policy::Decision& d = *e.decision->decision;
    w.Key("decision");
    w.StartObject();
    w.Key("action");
    auto action = policy::ActionName(d.action);
    w.String(action.data(), static_cast<rapidjson::SizeType>(action.size()));
    w.Key("rules");
    w.StartArray();
    for (const auto& r : d.rules) w.String(r.data(), static_cast<rapidjson::SizeType>(r.size()));
    w.EndArray();
    StrIfSet(w, "reason", d.reason);
    w.Key("mode");
    w.String(d.monitor ? "monitor" : "enforce");
    w.Key("enforced");
    w.Bool(e.decision->enforced);
    StrIfSet(w, "approval_id", e.decision->approval_id);
    w.EndObject();
  }
  if (e.result) {
    w.Key("result");
    w.StartObject();
    StrIfSet(w, "command_tag", e.result->command_tag);
    StrIfSet(w, "sqlstate", e.result->sqlstate);
    StrIfSet(w, "message", e.result->message);
    w.Key("duration_us");
    w.Uint64(e.result->duration_us);
    w.Key("rows");
    w.Uint64(e.result->rows);
    w.Key("bytes");
    w.Uint64(e.result->bytes);
    w.EndObject();
  }
  if (e.masking) {
    w.Key("masking");
    w.StartObject();
    WriteCounts(w, "columns", e.masking->columns);
    WriteCounts(w, "detectors", e.masking->detectors);
    w.Key("withheld");
    w.Uint64(e.masking->withheld);
    w.EndObject();
  }
  if (e.approval) {
    const ApprovalInfo& a = *e.approval;
    w.Key("approval");
    w.StartObject();
    Str(w, "id", a.id);
    Str(w, "step", a.step);
    StrIfSet(w, "mode", a.mode);
    StrIfSet(w, "actor", a.actor);
    StrIfSet(w, "comment", a.comment);
    w.Key("approvals");
    w.Int(a.approvals);
    w.Key("required");
    w.Int(a.required);
    w.Key("rules");
    w.StartArray();
    for (const auto& r : a.rules) Str(w, nullptr, r);
    w.EndArray();
    StrIfSet(w, "reason", a.reason);
    StrIfSet(w, "sql", a.sql);
    StrIfSet(w, "fingerprint", a.fingerprint);
    w.EndObject();
  }
  if (!e.error_sqlstate.empty() || !e.error_message.empty()) {
    w.Key("error");
    w.StartObject();
    Str(w, "sqlstate", e.error_sqlstate);
    Str(w, "message", e.error_message);
    w.EndObject();
  }
  StrIfSet(w, "detail", e.detail);
  if (e.kind == EventKind::kAuditLoss || e.kind == EventKind::kTapLoss) {
    w.Key("count");
    w.Uint64(e.count);
  }
  w.EndObject();
  out->append(buf.GetString(), buf.GetSize());
}

}  // namespace dbw::audit
