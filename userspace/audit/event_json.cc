// JSON encoding of audit events: written straight into the caller's buffer (the audit writer's
// record), with the escaping RapidJSON's Writer uses, so the bytes are the same as before.
#include "userspace/audit/event_json.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cstring>

#include <rapidjson/encodings.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/stringbuffer.h>

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
    case EventKind::kAuditTamper:
      return "audit_tamper";
    case EventKind::kLoginFailed:
      return "login_failed";
    case EventKind::kTokenExpired:
      return "token_expired";
    case EventKind::kConnectRefused:
      return "connect_refused";
    case EventKind::kWitnessMismatch:
      return "witness_mismatch";
  }
  return "unknown";
}

int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

namespace {

char* Put2(char* out, unsigned v) {
  out[0] = static_cast<char>('0' + v / 10);
  out[1] = static_cast<char>('0' + v % 10);
  return out + 2;
}

// Writes the RFC 3339 text of ts_us at out (at most kMaxTimestamp bytes); returns its end.
constexpr size_t kMaxTimestamp = 40;
char* PutTimestamp(int64_t ts_us, char* out) {
  // Civil date from days since the epoch (H. Hinnant's algorithm): no gmtime_r/strftime, which
  // took a tenth of the audit writer's rendering time.
  int64_t secs = ts_us / 1000000;
  int64_t micros = ts_us % 1000000;
  if (micros < 0) {
    micros += 1000000;
    --secs;
  }
  int64_t days = secs / 86400;
  int64_t sod = secs % 86400;
  if (sod < 0) {
    sod += 86400;
    --days;
  }
  int64_t z = days + 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  int64_t doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  auto day = static_cast<unsigned>(doy - (153 * mp + 2) / 5 + 1);
  auto month = static_cast<unsigned>(mp < 10 ? mp + 3 : mp - 9);
  int64_t year = yoe + era * 400 + (month <= 2 ? 1 : 0);
  if (year >= 0 && year <= 9999) {
    out = Put2(out, static_cast<unsigned>(year / 100));
    out = Put2(out, static_cast<unsigned>(year % 100));
  } else {
    out = std::to_chars(out, out + 20, year).ptr;
  }
  *out++ = '-';
  out = Put2(out, month);
  *out++ = '-';
  out = Put2(out, day);
  *out++ = 'T';
  out = Put2(out, static_cast<unsigned>(sod / 3600));
  *out++ = ':';
  out = Put2(out, static_cast<unsigned>(sod / 60 % 60));
  *out++ = ':';
  out = Put2(out, static_cast<unsigned>(sod % 60));
  *out++ = '.';
  auto us = static_cast<unsigned>(micros);
  out = Put2(out, us / 10000);
  out = Put2(out, us / 100 % 100);
  out = Put2(out, us % 100);
  *out++ = 'Z';
  return out;
}

}  // namespace

std::string FormatTimestamp(int64_t ts_us) {
  char buf[kMaxTimestamp];
  return std::string(buf, PutTimestamp(ts_us, buf));
}

namespace {

// Text from the network need not be UTF-8; JSON must be. Invalid bytes become U+FFFD.
bool ValidUtf8(std::string_view s) {
  // Most SQL and names are ASCII: check 8 bytes at a time before the per-codepoint walk.
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t word;
    std::memcpy(&word, s.data() + i, 8);
    if (word & 0x8080808080808080ull) break;
  }
  while (i < s.size() && static_cast<unsigned char>(s[i]) < 0x80) ++i;
  if (i == s.size()) return true;
  rapidjson::MemoryStream in(s.data() + i, s.size() - i);
  while (in.Tell() < s.size() - i) {
    rapidjson::StringBuffer sink;
    if (!rapidjson::UTF8<>::Validate(in, sink)) return false;
  }
  return true;
}

std::string SanitizeUtf8(std::string_view s) {
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

bool NeedsSanitizing(std::string_view value) {
  return !ValidUtf8(value) || value.find('\0') != std::string_view::npos;
}

// Which bytes a JSON string escapes, and how: as RapidJSON's Writer does (backspace, tab, newline,
// form feed, carriage return, quote and backslash by their short escapes, other control bytes as
// a \u escape with upper-case hex, everything else verbatim).
constexpr std::array<char, 256> MakeEscapes() {
  std::array<char, 256> t{};
  for (int c = 0; c < 0x20; ++c) t[c] = 'u';
  t['\b'] = 'b';
  t['\t'] = 't';
  t['\n'] = 'n';
  t['\f'] = 'f';
  t['\r'] = 'r';
  t['"'] = '"';
  t['\\'] = '\\';
  return t;
}
constexpr std::array<char, 256> kEscape = MakeEscapes();

// True when no byte of s needs escaping or sanitizing (ASCII from 0x20 up, except '"' and
// '\\'), checked eight bytes at a time: almost every string of an event is.
bool Plain(std::string_view s) {
  constexpr uint64_t kOnes = 0x0101010101010101ull;
  constexpr uint64_t kHigh = 0x8080808080808080ull;
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t x;
    std::memcpy(&x, s.data() + i, 8);
    uint64_t quote = x ^ (kOnes * '"');
    uint64_t backslash = x ^ (kOnes * '\\');
    // Any byte below 0x20, equal to '"' or '\\' (a zero byte of the XORs), or with its high
    // bit set (the borrows of these subtractions only ever follow a real hit).
    uint64_t hit = ((x - kOnes * 0x20) & ~x) | ((quote - kOnes) & ~quote) |
                   ((backslash - kOnes) & ~backslash) | x;
    if (hit & kHigh) return false;
  }
  for (; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c >= 0x80 || c == '"' || c == '\\') return false;
  }
  return true;
}

// A streaming JSON writer that appends to a std::string through a raw cursor (std::string's
// push_back is an out-of-line call in libstdc++): commas between members and elements, keys
// written as given (the event's keys are fixed ASCII names), every string value sanitized (NUL
// and invalid UTF-8 become U+FFFD) and escaped. Finish() trims the string to what was written.
class JsonOut {
 public:
  explicit JsonOut(std::string* out) : out_(out) {
    size_t used = out_->size();
    out_->resize(used + 1024);
    cur_ = out_->data() + used;
    end_ = out_->data() + out_->size();
  }
  void Finish() { out_->resize(static_cast<size_t>(cur_ - out_->data())); }

  void StartObject() { Open('{'); }
  void EndObject() { Close('}'); }
  void StartArray() { Open('['); }
  void EndArray() { Close(']'); }
  void Key(std::string_view key) {
    Separate();
    Reserve(key.size() + 3);
    *cur_++ = '"';
    Copy(key);
    *cur_++ = '"';
    *cur_++ = ':';
    after_key_ = true;
  }
  // A key that comes from data (masking counts): sanitized and escaped like a value.
  void DataKey(std::string_view key) {
    String(key);
    Reserve(1);
    *cur_++ = ':';
    after_key_ = true;
  }
  void String(std::string_view s) {
    Separate();
    if (Plain(s)) {
      Reserve(s.size() + 2);
      *cur_++ = '"';
      Copy(s);
      *cur_++ = '"';
      return;
    }
    if (!NeedsSanitizing(s)) {
      Escaped(s);
      return;
    }
    Escaped(SanitizeUtf8(s));
  }
  // Fixed text known to need neither sanitizing nor escaping (enum names).
  void Name(std::string_view s) {
    Separate();
    Reserve(s.size() + 2);
    *cur_++ = '"';
    Copy(s);
    *cur_++ = '"';
  }
  template <typename T>
  void Number(T v) {
    Separate();
    Reserve(24);
    cur_ = std::to_chars(cur_, end_, v).ptr;
  }
  void Bool(bool v) {
    Separate();
    Reserve(5);
    Copy(v ? std::string_view("true") : std::string_view("false"));
  }
  void Timestamp(int64_t ts_us) {
    Separate();
    Reserve(kMaxTimestamp + 2);
    *cur_++ = '"';
    cur_ = PutTimestamp(ts_us, cur_);
    *cur_++ = '"';
  }

 private:
  void Reserve(size_t n) {
    if (static_cast<size_t>(end_ - cur_) >= n) return;
    size_t used = static_cast<size_t>(cur_ - out_->data());
    out_->resize(std::max(out_->size() * 2, used + n + 1024));
    cur_ = out_->data() + used;
    end_ = out_->data() + out_->size();
  }
  // Callers reserve first.
  void Copy(std::string_view s) {
    std::memcpy(cur_, s.data(), s.size());
    cur_ += s.size();
  }
  // The bytes that need no escape are copied in runs.
  void Escaped(std::string_view s) {
    Reserve(s.size() * 6 + 2);
    *cur_++ = '"';
    size_t run = 0;  // start of the bytes not yet copied
    for (size_t i = 0; i < s.size(); ++i) {
      char e = kEscape[static_cast<unsigned char>(s[i])];
      if (e == 0) continue;
      Copy(s.substr(run, i - run));
      run = i + 1;
      *cur_++ = '\\';
      *cur_++ = e;
      if (e == 'u') {
        static constexpr char kHex[] = "0123456789ABCDEF";
        auto c = static_cast<unsigned char>(s[i]);
        *cur_++ = '0';
        *cur_++ = '0';
        *cur_++ = kHex[c >> 4];
        *cur_++ = kHex[c & 0xf];
      }
    }
    Copy(s.substr(run));
    *cur_++ = '"';
  }
  void Separate() {
    if (after_key_) {
      after_key_ = false;
      return;
    }
    Reserve(1);
    if (count_[depth_]++ > 0) *cur_++ = ',';
  }
  void Open(char c) {
    Separate();
    Reserve(1);
    *cur_++ = c;
    ++depth_;  // events nest at most four deep
    count_[depth_] = 0;
  }
  void Close(char c) {
    --depth_;
    Reserve(1);
    *cur_++ = c;
  }

  std::string* out_;
  char* cur_;
  char* end_;
  std::array<uint32_t, 8> count_{};
  size_t depth_ = 0;
  bool after_key_ = false;
};

void Str(JsonOut& w, const char* key, std::string_view value) {
  w.Key(key);
  w.String(value);
}
void StrIfSet(JsonOut& w, const char* key, std::string_view value) {
  if (!value.empty()) Str(w, key, value);
}
void WriteNames(JsonOut& w, const char* key, const std::vector<std::string_view>& names) {
  w.Key(key);
  w.StartArray();
  for (auto n : names) w.String(n);
  w.EndArray();
}

// {"name": count, ...}; names are sanitized like every other string.
void WriteCounts(JsonOut& w, const char* key,
                 const std::vector<std::pair<std::string, uint64_t>>& counts) {
  w.Key(key);
  w.StartObject();
  for (const auto& [name, n] : counts) {
    w.DataKey(name);
    w.Number(n);
  }
  w.EndObject();
}

void WriteTables(JsonOut& w, const char* key, const sql::QueryFacts& f, bool written) {
  w.Key(key);
  w.StartArray();
  for (const auto& s : f.statements)
    for (const auto& t : written ? s.tables_written : s.tables_read) w.String(t.Qualified());
  w.EndArray();
}

void WriteStatement(JsonOut& w, const StatementInfo& st) {
  w.Key("protocol");
  w.String(st.protocol);
  StrIfSet(w, "name", st.name);
  if (!st.facts) {
    Str(w, "sql", "");
    return;
  }
  const sql::QueryFacts& f = *st.facts;
  // One text for the whole query string: its statements' normalized texts.
  if (f.statements.size() == 1) {
    Str(w, "sql", f.statements.front().normalized);
  } else {
    std::string sql_text;
    for (const auto& s : f.statements) {
      if (!sql_text.empty()) sql_text += "; ";
      sql_text += s.normalized;
    }
    Str(w, "sql", sql_text);
  }
  if (!f.statements.empty()) StrIfSet(w, "fingerprint", f.statements.front().fingerprint_hex);
  w.Key("commands");
  w.StartArray();
  for (const auto& s : f.statements) w.String(sql::CommandName(s.command));
  w.EndArray();
  WriteNames(w, "risks", sql::RiskNames(f.AllRisks()));
  WriteTables(w, "tables_read", f, false);
  WriteTables(w, "tables_written", f, true);
  // Called functions (a FunctionCall message's function among them), each once.
  std::vector<std::string_view> functions;
  for (const auto& s : f.statements)
    for (const auto& fn : s.functions)
      if (std::find(functions.begin(), functions.end(), fn) == functions.end())
        functions.push_back(fn);
  if (!functions.empty()) WriteNames(w, "functions", functions);
}

}  // namespace

const CgroupNames& NamesOfCgroup(const std::string& cgroup) {
  thread_local CgroupNames last;
  thread_local bool set = false;
  if (!set || last.cgroup != cgroup) {
    last.cgroup = cgroup;
    last.unit = identity::UnitFromCgroup(cgroup);
    last.container_id = identity::ContainerFromCgroup(cgroup);
    set = true;
  }
  return last;
}

std::string JsonText(const std::string& value) {
  return NeedsSanitizing(value) ? SanitizeUtf8(value) : value;
}

void AppendEventJson(const Event& e, std::string* out) {
  JsonOut w(out);
  w.StartObject();
  w.Key("seq");
  w.Number(e.seq);
  w.Key("ts");
  w.Timestamp(e.ts_us);
  w.Key("kind");
  w.Name(EventKindName(e.kind));
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
      StrIfSet(w, "cert_subject", p.cert_subject);
      StrIfSet(w, "cert_san", p.cert_san);
      StrIfSet(w, "cert_issuer", p.cert_issuer);
      StrIfSet(w, "auth", p.auth);
      StrIfSet(w, "subject", p.subject);
      StrIfSet(w, "issuer", p.issuer);
      StrIfSet(w, "jti", p.jti);
      if (!p.groups.empty()) {
        w.Key("groups");
        w.StartArray();
        for (const std::string& g : p.groups) w.String(g);
        w.EndArray();
      }
      StrIfSet(w, "requested_user", p.requested_user);
      StrIfSet(w, "routed_from", p.routed_from);
      w.EndObject();
    }
    if (si.process) {
      const identity::ProcessInfo& pr = *si.process;
      w.Key("process");
      w.StartObject();
      w.Key("pid");
      w.Number(pr.pid);
      w.Key("uid");
      w.Number(pr.uid);
      if (pr.ppid != 0) {
        w.Key("ppid");
        w.Number(pr.ppid);
      }
      if (pr.gid != identity::kUnknownId) {
        w.Key("gid");
        w.Number(pr.gid);
      }
      Str(w, "comm", pr.comm);
      Str(w, "exe", pr.exe);
      StrIfSet(w, "cmdline", pr.cmdline);
      Str(w, "cgroup", pr.cgroup);
      const CgroupNames& names = NamesOfCgroup(pr.cgroup);
      StrIfSet(w, "unit", names.unit);
      StrIfSet(w, "container_id", names.container_id);
      if (!pr.parents.empty()) {
        w.Key("parents");
        w.StartArray();
        for (const auto& parent : pr.parents) {
          w.StartObject();
          w.Key("pid");
          w.Number(parent.pid);
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
    w.String(policy::ActionName(d.action));
    w.Key("rules");
    w.StartArray();
    for (const auto& r : d.rules) w.String(r);
    w.EndArray();
    StrIfSet(w, "reason", d.reason);
    w.Key("mode");
    w.Name(d.monitor ? "monitor" : "enforce");
    w.Key("enforced");
    w.Bool(e.decision->enforced);
    StrIfSet(w, "approval_id", e.decision->approval_id);
    if (d.limits) {
      // The runtime limits the statement ran under (the result says if one stopped it).
      w.Key("limits");
      w.StartObject();
      if (d.limits->max_rows != 0) {
        w.Key("max_rows");
        w.Number(d.limits->max_rows);
      }
      if (d.limits->max_read_rows != 0) {
        w.Key("max_read_rows");
        w.Number(d.limits->max_read_rows);
      }
      if (d.limits->max_read_bytes != 0) {
        w.Key("max_read_bytes");
        w.Number(d.limits->max_read_bytes);
      }
      w.EndObject();
    }
    w.EndObject();
  }
  if (e.result) {
    w.Key("result");
    w.StartObject();
    StrIfSet(w, "command_tag", e.result->command_tag);
    StrIfSet(w, "sqlstate", e.result->sqlstate);
    StrIfSet(w, "message", e.result->message);
    w.Key("duration_us");
    w.Number(e.result->duration_us);
    w.Key("rows");
    w.Number(e.result->rows);
    w.Key("bytes");
    w.Number(e.result->bytes);
    w.EndObject();
  }
  if (e.masking) {
    w.Key("masking");
    w.StartObject();
    WriteCounts(w, "columns", e.masking->columns);
    WriteCounts(w, "detectors", e.masking->detectors);
    w.Key("withheld");
    w.Number(e.masking->withheld);
    if (!e.masking->rewritten.empty()) {
      w.Key("rewritten");
      w.StartArray();
      for (const std::string& c : e.masking->rewritten) w.String(c);
      w.EndArray();
    }
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
    w.Number(a.approvals);
    w.Key("required");
    w.Number(a.required);
    w.Key("rules");
    w.StartArray();
    for (const auto& r : a.rules) w.String(r);
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
  if (e.kind == EventKind::kAuditLoss || e.kind == EventKind::kTapLoss ||
      e.kind == EventKind::kWitnessMismatch) {
    w.Key("count");
    w.Number(e.count);
  }
  w.EndObject();
  w.Finish();
}

}  // namespace dbw::audit
