// Renders a stored audit event (native JSON) as OCSF 1.8 Datastore Activity, ECS 8.17 or CEF:
// the native event is parsed once (simdjson), the mapped fields are read through an accessor that
// remembers which ones a format carried exactly, and everything else goes to the format's
// catch-all (OCSF `unmapped`, ECS `dbwarden`), so no field is lost. Tables: docs/export.md.
#include "userspace/audit/event_formats.h"

#include <simdjson.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <optional>
#include <vector>

#include <rapidjson/document.h>
#include <rapidjson/pointer.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#ifndef DBWARDEN_VERSION
#define DBWARDEN_VERSION "0.0.0"
#endif

namespace dbw::audit {
namespace {

using simdjson::dom::element;
using simdjson::dom::element_type;
using Alloc = rapidjson::Document::AllocatorType;

constexpr const char* kOcsfVersion = "1.8.0";
constexpr const char* kEcsVersion = "8.17.0";

rapidjson::Value JsonStr(std::string_view s, Alloc& a) {
  return {s.data(), static_cast<rapidjson::SizeType>(s.size()), a};
}

// A copy of a parsed value as a RapidJSON value.
rapidjson::Value Copy(element e, Alloc& a) {
  simdjson::dom::object obj;
  simdjson::dom::array arr;
  std::string_view s;
  int64_t i = 0;
  uint64_t u = 0;
  double x = 0;
  bool b = false;
  if (e.get_object().get(obj) == simdjson::SUCCESS) {
    rapidjson::Value out(rapidjson::kObjectType);
    for (auto field : obj) out.AddMember(JsonStr(field.key, a), Copy(field.value, a), a);
    return out;
  }
  if (e.get_array().get(arr) == simdjson::SUCCESS) {
    rapidjson::Value out(rapidjson::kArrayType);
    for (element item : arr) out.PushBack(Copy(item, a), a);
    return out;
  }
  if (e.get_string().get(s) == simdjson::SUCCESS) return JsonStr(s, a);
  if (e.type() == element_type::INT64 && e.get_int64().get(i) == simdjson::SUCCESS)
    return rapidjson::Value(i);
  if (e.type() == element_type::UINT64 && e.get_uint64().get(u) == simdjson::SUCCESS)
    return rapidjson::Value(u);
  if (e.get_double().get(x) == simdjson::SUCCESS) return rapidjson::Value(x);
  if (e.get_bool().get(b) == simdjson::SUCCESS) return rapidjson::Value(b);
  return {};  // null
}

// The native event. Peek reads a field; Take reads one a format carries exactly, so Rest()
// leaves it out. Paths are dotted ("principal.db_user"): native keys at the levels formats map
// never contain dots, and a key that does is never treated as taken.
class Native {
 public:
  Status Parse(std::string_view json) {
    thread_local simdjson::dom::parser parser;
    if (parser.parse(json.data(), json.size()).get(root_) != simdjson::SUCCESS ||
        root_.type() != element_type::OBJECT) {
      return InvalidArgument("the event is not a JSON object");
    }
    auto seq = Uint("seq");
    if (!seq) return InvalidArgument("the event has no numeric \"seq\"");
    seq_ = *seq;
    return Status::Ok();
  }

  uint64_t Seq() const { return seq_; }

  std::optional<element> At(std::string_view path) const {
    element cur = root_;
    while (true) {
      size_t dot = path.find('.');
      simdjson::dom::object obj;
      if (cur.get_object().get(obj) != simdjson::SUCCESS) return std::nullopt;
      if (obj.at_key(path.substr(0, dot)).get(cur) != simdjson::SUCCESS) return std::nullopt;
      if (dot == std::string_view::npos) return cur;
      path.remove_prefix(dot + 1);
    }
  }
  std::string_view Str(std::string_view path) const {
    auto e = At(path);
    std::string_view s;
    if (!e || e->get_string().get(s) != simdjson::SUCCESS) return {};
    return s;
  }
  std::optional<uint64_t> Uint(std::string_view path) const {
    auto e = At(path);
    uint64_t v = 0;
    if (!e || e->get_uint64().get(v) != simdjson::SUCCESS) return std::nullopt;
    return v;
  }
  bool True(std::string_view path) const {
    auto e = At(path);
    bool v = false;
    return e && e->get_bool().get(v) == simdjson::SUCCESS && v;
  }
  std::vector<std::string_view> Strings(std::string_view path) const {
    std::vector<std::string_view> out;
    auto e = At(path);
    simdjson::dom::array arr;
    if (!e || e->get_array().get(arr) != simdjson::SUCCESS) return out;
    for (element item : arr) {
      std::string_view s;
      if (item.get_string().get(s) == simdjson::SUCCESS) out.push_back(s);
    }
    return out;
  }

  void Take(std::string_view path) { taken_.emplace_back(path); }
  std::string_view TakeStr(std::string_view path) {
    std::string_view s = Str(path);
    if (!s.empty()) Take(path);
    return s;
  }
  std::optional<uint64_t> TakeUint(std::string_view path) {
    auto v = Uint(path);
    if (v) Take(path);
    return v;
  }

  // Every field not taken, nested as in the native event; objects left empty are dropped.
  rapidjson::Value Rest(Alloc& a) const {
    std::string path;
    simdjson::dom::object obj;
    if (root_.get_object().get(obj) != simdjson::SUCCESS) return {};
    return RestOf(obj, &path, a);
  }

 private:
  bool Taken(std::string_view path) const {
    for (const auto& t : taken_)
      if (t == path) return true;
    return false;
  }
  bool TakenBelow(std::string_view path) const {
    for (const auto& t : taken_)
      if (t.size() > path.size() && t.starts_with(path) && t[path.size()] == '.') return true;
    return false;
  }
  rapidjson::Value RestOf(simdjson::dom::object obj, std::string* path, Alloc& a) const {
    rapidjson::Value out(rapidjson::kObjectType);
    for (auto field : obj) {
      size_t len = path->size();
      if (len > 0) *path += '.';
      *path += field.key;
      const bool plain = field.key.find('.') == std::string_view::npos;
      if (plain && Taken(*path)) {
        // carried by the format
      } else if (simdjson::dom::object sub_obj;
                 plain && TakenBelow(*path) &&
                 field.value.get_object().get(sub_obj) == simdjson::SUCCESS) {
        rapidjson::Value sub = RestOf(sub_obj, path, a);
        if (!sub.ObjectEmpty()) out.AddMember(JsonStr(field.key, a), sub, a);
      } else {
        out.AddMember(JsonStr(field.key, a), Copy(field.value, a), a);
      }
      path->resize(len);
    }
    return out;
  }

  element root_;
  uint64_t seq_ = 0;
  std::vector<std::string> taken_;
};

// ---- What every format derives the same way ----

enum class Outcome : uint8_t { kUnknown, kSuccess, kFailure };
const char* OutcomeName(Outcome o) {
  return o == Outcome::kSuccess ? "success" : o == Outcome::kFailure ? "failure" : "unknown";
}

// OCSF 1.8 datastore_activity activity_id (events/application/datastore_activity.json).
struct Activity {
  int id;
  const char* caption;
  int rank;  // of several statements in one query, the highest rank names the activity
};
constexpr Activity kActUnknown{0, "Unknown", 0}, kActQuery{4, "Query", 1}, kActRead{1, "Read", 2},
    kActWrite{5, "Write", 3}, kActUpdate{2, "Update", 4}, kActCreate{6, "Create", 5},
    kActDelete{7, "Delete", 6}, kActConnect{3, "Connect", 0}, kActOther{99, "Other", 0};

Activity ActivityOf(std::string_view command, bool writes) {
  auto is = [&](std::initializer_list<std::string_view> names) {
    for (auto n : names)
      if (command == n) return true;
    return false;
  };
  if (is({"DELETE", "DROP", "TRUNCATE"})) return kActDelete;
  if (is({"CREATE"})) return kActCreate;
  if (is({"UPDATE", "MERGE", "ALTER", "GRANT", "REVOKE", "ROLE", "COMMENT"})) return kActUpdate;
  if (is({"INSERT"}) || (command == "COPY" && writes)) return kActWrite;
  if (is({"SELECT", "SHOW", "FETCH", "COPY"})) return kActRead;
  if (is({"UNKNOWN", "UNPARSEABLE"})) return kActUnknown;
  return kActQuery;
}

// OCSF disposition_id (dictionary.json) and security_control action_id, with the verb the
// event's name uses.
struct Disposition {
  int id;
  const char* caption;
  int action_id;
  const char* action;
  const char* verb;
};
constexpr Disposition kAllowed{1, "Allowed", 1, "Allowed", "allowed"},
    kBlocked{2, "Blocked", 2, "Denied", "blocked"},
    kApproved{8, "Approved", 1, "Allowed", "approved"},
    kDetected{15, "Detected", 3, "Observed", "flagged (monitor mode)"},
    kLogged{17, "Logged", 3, "Observed", "logged"};

constexpr std::array<const char*, 6> kSeverityCaption = {"Unknown", "Informational", "Low",
                                                         "Medium",  "High",          "Critical"};
constexpr std::array<int, 6> kCefSeverity = {0, 1, 3, 5, 8, 10};

struct Facts {
  std::string_view kind;
  std::optional<int64_t> ts_us;
  std::string_view primary;  // the command that named the activity ("" when none)
  Activity activity = kActOther;
  Outcome outcome = Outcome::kUnknown;
  int severity = 1;  // OCSF severity_id, 1 (Informational) to 5 (Critical)
  std::optional<Disposition> disposition;
  std::string other_action;  // a decision action this version does not know
  std::string name;          // "DROP blocked", "session_start"
  std::string signature;     // "statement:DROP", "approval:requested", "bypass"
  std::string message;       // name, and the reason or error when there is one
};

// "2026-05-01T12:00:00.123456Z" (event_json's form; fewer fraction digits are accepted).
std::optional<int64_t> ParseTs(std::string_view s) {
  auto num = [&](size_t at, size_t n) -> std::optional<int64_t> {
    int64_t v = 0;
    if (at + n > s.size()) return std::nullopt;
    auto [p, ec] = std::from_chars(s.data() + at, s.data() + at + n, v);
    if (ec != std::errc() || p != s.data() + at + n || v < 0) return std::nullopt;
    return v;
  };
  if (s.size() < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' ||
      s.back() != 'Z')
    return std::nullopt;
  auto y = num(0, 4), mo = num(5, 2), d = num(8, 2), h = num(11, 2), mi = num(14, 2),
       sec = num(17, 2);
  if (!y || !mo || !d || !h || !mi || !sec || *mo < 1 || *mo > 12 || *d < 1 || *d > 31)
    return std::nullopt;
  int64_t frac = 0;
  if (s.size() > 20) {
    size_t digits = s.size() - 21;
    if (s[19] != '.' || digits < 1 || digits > 6) return std::nullopt;
    auto f = num(20, digits);
    if (!f) return std::nullopt;
    frac = *f;
    for (size_t i = digits; i < 6; ++i) frac *= 10;
  }
  // Days from civil (H. Hinnant), as event_json writes the inverse.
  int64_t yy = *y - (*mo <= 2 ? 1 : 0);
  int64_t era = yy / 400;
  int64_t yoe = yy - era * 400;
  int64_t doy = (153 * (*mo + (*mo > 2 ? -3 : 9)) + 2) / 5 + *d - 1;
  int64_t days = era * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719468;
  return ((days * 86400 + *h * 3600 + *mi * 60 + *sec) * 1000000) + frac;
}

bool StatementLike(std::string_view kind) {
  return kind == "statement" || kind == "decision";
}

void DeriveDisposition(const Native& ev, Facts* f) {
  if (!ev.At("decision")) return;
  std::string_view action = ev.Str("decision.action");
  const bool enforced = ev.True("decision.enforced");
  if (action == "allow") {
    f->disposition = kAllowed;
  } else if (action == "log") {
    f->disposition = kLogged;
  } else if (action == "deny") {
    f->disposition = enforced ? kBlocked : kDetected;
  } else if (action == "approve") {
    f->disposition = enforced                                 ? kBlocked
                     : ev.Str("decision.approval_id").empty() ? kDetected
                                                              : kApproved;
  } else {
    f->other_action = std::string(action);
  }
}

Outcome DeriveOutcome(const Native& ev, std::string_view kind) {
  if (ev.At("error")) return Outcome::kFailure;
  for (std::string_view k :
       {"login_failed", "connect_refused", "protocol_violation", "upstream_error"})
    if (kind == k) return Outcome::kFailure;
  if (StatementLike(kind)) {
    if (ev.True("decision.enforced") || !ev.Str("result.sqlstate").empty())
      return Outcome::kFailure;
    return ev.At("result") ? Outcome::kSuccess : Outcome::kUnknown;
  }
  return kind == "session_start" ? Outcome::kSuccess : Outcome::kUnknown;
}

int DeriveSeverity(const Native& ev, const Facts& f) {
  auto kind_is = [&](std::initializer_list<std::string_view> kinds) {
    for (auto k : kinds)
      if (f.kind == k) return true;
    return false;
  };
  if (kind_is({"audit_loss", "audit_tamper"})) return 5;
  if (kind_is({"bypass", "witness_mismatch"})) return 4;
  const bool deny = ev.Str("decision.action") == "deny";
  if (f.disposition && f.disposition->id == kBlocked.id) return deny ? 4 : 3;
  if ((f.disposition && f.disposition->id == kDetected.id) ||
      ev.Str("decision.action") == "approve")
    return 3;
  if (kind_is({"protocol_violation", "login_failed", "connect_refused", "tap_loss",
               "upstream_error", "token_expired"}) ||
      (f.kind == "policy_load" && ev.At("error")))
    return 3;
  if ((f.disposition && f.disposition->id == kLogged.id) || f.outcome == Outcome::kFailure)
    return 2;
  return 1;
}

Facts Derive(const Native& ev) {
  Facts f;
  f.kind = ev.Str("kind");
  f.ts_us = ParseTs(ev.Str("ts"));
  if (StatementLike(f.kind)) {
    const bool writes = !ev.Strings("statement.tables_written").empty();
    bool any = false;
    for (std::string_view c : ev.Strings("statement.commands")) {
      Activity a = ActivityOf(c, writes);
      if (!any || a.rank > f.activity.rank) {
        f.activity = a;
        f.primary = c;
        any = true;
      }
    }
    if (!any) f.activity = kActUnknown;
  } else if (f.kind == "session_start" || f.kind == "login_failed") {
    f.activity = kActConnect;
  }
  DeriveDisposition(ev, &f);
  f.outcome = DeriveOutcome(ev, f.kind);
  f.severity = DeriveSeverity(ev, f);

  std::string kind = f.kind.empty() ? std::string("event") : std::string(f.kind);
  if (StatementLike(f.kind)) {
    std::string subject = f.primary.empty() ? std::string("statement") : std::string(f.primary);
    const char* verb = f.outcome == Outcome::kFailure   ? "failed"
                       : f.outcome == Outcome::kSuccess ? "completed"
                                                        : "judged";
    const bool stopped =
        f.disposition && (f.disposition->id == kBlocked.id || f.disposition->id == kDetected.id);
    if (f.disposition && (stopped || f.outcome != Outcome::kFailure)) verb = f.disposition->verb;
    f.name = subject + " " + (f.other_action.empty() ? verb : f.other_action);
    f.signature = kind + (f.primary.empty() ? "" : ":" + std::string(f.primary));
  } else if (f.kind == "approval" && !ev.Str("approval.step").empty()) {
    f.name = "approval " + std::string(ev.Str("approval.step"));
    f.signature = "approval:" + std::string(ev.Str("approval.step"));
  } else {
    f.name = kind;
    f.signature = kind;
  }
  // The name, and why: the error of a statement that failed (not one the relay stopped),
  // else the rule's reason, else the detail.
  static constexpr std::array<const char*, 4> kReasonFirst = {"decision.reason", "error.message",
                                                              "result.message", "detail"};
  static constexpr std::array<const char*, 4> kErrorFirst = {"error.message", "result.message",
                                                             "decision.reason", "detail"};
  const bool stopped = f.disposition && f.disposition->id == kBlocked.id;
  f.message = f.name;
  for (std::string_view why :
       f.outcome == Outcome::kFailure && !stopped ? kErrorFirst : kReasonFirst) {
    if (!ev.Str(why).empty()) {
      f.message += ": ";
      f.message += ev.Str(why);
      break;
    }
  }
  return f;
}

// "127.0.0.1:54321" or "[::1]:5432": an address and port; anything else ("[local]") is not.
struct HostPort {
  std::string_view ip;
  uint64_t port = 0;
};
std::optional<HostPort> SplitAddr(std::string_view addr) {
  size_t colon = addr.rfind(':');
  if (colon == std::string_view::npos || colon + 1 == addr.size()) return std::nullopt;
  HostPort hp;
  std::string_view port = addr.substr(colon + 1);
  auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), hp.port);
  if (ec != std::errc() || p != port.data() + port.size() || hp.port > 65535) return std::nullopt;
  hp.ip = addr.substr(0, colon);
  bool v6 = hp.ip.size() > 2 && hp.ip.front() == '[' && hp.ip.back() == ']';
  if (v6) hp.ip = hp.ip.substr(1, hp.ip.size() - 2);
  if (hp.ip.empty()) return std::nullopt;
  for (char c : hp.ip) {
    bool ok = v6 ? (std::isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.')
                 : ((c >= '0' && c <= '9') || c == '.');
    if (!ok) return std::nullopt;
  }
  return hp;
}

std::string_view Basename(std::string_view path) {
  size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

// A JSON document written by JSON-Pointer paths, members in the order they were first set.
class Doc {
 public:
  Doc() { d_.SetObject(); }
  Alloc& Allocator() { return d_.GetAllocator(); }
  void Set(const char* pointer, rapidjson::Value v) { rapidjson::Pointer(pointer).Set(d_, v); }
  void Str(const char* pointer, std::string_view s) { Set(pointer, JsonStr(s, Allocator())); }
  void StrIf(const char* pointer, std::string_view s) {
    if (!s.empty()) Str(pointer, s);
  }
  template <typename T>
  void Num(const char* pointer, T v) {
    Set(pointer, rapidjson::Value(v));
  }
  rapidjson::Value Strings(const std::vector<std::string_view>& items) {
    rapidjson::Value out(rapidjson::kArrayType);
    for (auto s : items) out.PushBack(JsonStr(s, Allocator()), Allocator());
    return out;
  }
  std::string Finish() {
    rapidjson::StringBuffer buf;
    rapidjson::Writer<rapidjson::StringBuffer> w(buf);
    d_.Accept(w);
    return {buf.GetString(), buf.GetSize()};
  }

 private:
  rapidjson::Document d_;
};

// The first table the statement wrote, else the first it read.
std::string_view FirstTable(const Native& ev) {
  for (const char* key : {"statement.tables_written", "statement.tables_read"}) {
    auto tables = ev.Strings(key);
    if (!tables.empty()) return tables.front();
  }
  return {};
}

// ---- OCSF 1.8.0, class 6005 Datastore Activity ----

void OcsfActor(Native& ev, Doc& d) {
  d.StrIf("/actor/app_name", ev.TakeStr("principal.application_name"));
  d.StrIf("/actor/user/name", ev.TakeStr("principal.db_user"));
  d.StrIf("/actor/user/uid", ev.TakeStr("principal.subject"));
  d.StrIf("/actor/user/credential_uid", ev.TakeStr("principal.jti"));
  std::string_view kind = ev.Str("principal.kind");
  if (kind == "human") {
    d.Num("/actor/user/type_id", 1);
    d.Str("/actor/user/type", "User");
  } else if (!kind.empty()) {
    d.Num("/actor/user/type_id", 99);
    d.Str("/actor/user/type", ev.TakeStr("principal.kind"));
  }
  auto groups = ev.Strings("principal.groups");
  if (!groups.empty()) {
    rapidjson::Value list(rapidjson::kArrayType);
    for (auto g : groups) {
      rapidjson::Value group(rapidjson::kObjectType);
      group.AddMember("name", JsonStr(g, d.Allocator()), d.Allocator());
      list.PushBack(group, d.Allocator());
    }
    d.Set("/actor/user/groups", std::move(list));
    simdjson::dom::array all;
    if (ev.At("principal.groups")->get_array().get(all) == simdjson::SUCCESS &&
        all.size() == groups.size())
      ev.Take("principal.groups");  // every member was a string: carried whole
  }
  if (auto pid = ev.TakeUint("process.pid")) d.Num("/actor/process/pid", *pid);
  d.StrIf("/actor/process/name", ev.TakeStr("process.comm"));
  d.StrIf("/actor/process/cmd_line", ev.TakeStr("process.cmdline"));
  if (std::string_view exe = ev.TakeStr("process.exe"); !exe.empty()) {
    d.Str("/actor/process/file/name", Basename(exe));
    d.Str("/actor/process/file/path", exe);
    d.Num("/actor/process/file/type_id", 1);
    d.Str("/actor/process/file/type", "Regular File");
  }
  if (auto ppid = ev.TakeUint("process.ppid")) d.Num("/actor/process/parent_process/pid", *ppid);
  if (auto uid = ev.TakeUint("process.uid")) d.Str("/actor/process/user/uid", std::to_string(*uid));
  if (!ev.At("principal") && !ev.At("process")) d.Str("/actor/app_name", "dbwarden");
}

std::string RenderOcsf(Native& ev, const Facts& f) {
  Doc d;
  d.Num("/class_uid", 6005);
  d.Str("/class_name", "Datastore Activity");
  d.Num("/category_uid", 6);
  d.Str("/category_name", "Application Activity");
  d.Num("/activity_id", f.activity.id);
  std::string activity_name =
      f.activity.id == kActOther.id && !f.kind.empty() ? std::string(f.kind) : f.activity.caption;
  d.Str("/activity_name", activity_name);
  d.Num("/type_uid", 6005 * 100 + f.activity.id);
  d.Str("/type_name", "Datastore Activity: " + activity_name);
  if (f.ts_us) d.Num("/time", *f.ts_us / 1000);
  d.Num("/severity_id", f.severity);
  d.Str("/severity", kSeverityCaption[f.severity]);
  const int status_id = f.outcome == Outcome::kSuccess ? 1 : f.outcome == Outcome::kFailure ? 2 : 0;
  d.Num("/status_id", status_id);
  d.Str("/status", status_id == 1 ? "Success" : status_id == 2 ? "Failure" : "Unknown");
  const bool result_failed = !ev.Str("result.sqlstate").empty();
  const char* code = result_failed ? "result.sqlstate" : "error.sqlstate";
  const char* detail = result_failed ? "result.message" : "error.message";
  d.StrIf("/status_code", ev.TakeStr(code));
  d.StrIf("/status_detail", ev.TakeStr(detail));
  d.Str("/message", f.message);
  if (auto us = ev.Uint("result.duration_us")) d.Num("/duration", *us / 1000);
  if (f.disposition) {
    d.Num("/disposition_id", f.disposition->id);
    d.Str("/disposition", f.disposition->caption);
    d.Num("/action_id", f.disposition->action_id);
    d.Str("/action", f.disposition->action);
  } else if (!f.other_action.empty()) {
    d.Num("/disposition_id", 99);
    d.Str("/disposition", f.other_action);
  }
  d.Str("/metadata/version", kOcsfVersion);
  d.Str("/metadata/product/name", "dbwarden");
  d.Str("/metadata/product/vendor_name", "dbwarden");
  d.Str("/metadata/product/version", DBWARDEN_VERSION);
  d.Str("/metadata/log_name", "audit");
  d.StrIf("/metadata/uid", ev.TakeStr("hash"));
  d.Num("/metadata/sequence", *ev.TakeUint("seq"));
  d.StrIf("/metadata/original_time", ev.TakeStr("ts"));
  d.StrIf("/metadata/correlation_uid", ev.TakeStr("session_id"));
  if (std::string_view env = ev.TakeStr("env"); !env.empty()) {
    rapidjson::Value tags(rapidjson::kArrayType), tag(rapidjson::kObjectType);
    tag.AddMember("name", "env", d.Allocator());
    tag.AddMember("value", JsonStr(env, d.Allocator()), d.Allocator());
    tags.PushBack(tag, d.Allocator());
    d.Set("/metadata/tags", std::move(tags));
  }
  OcsfActor(ev, d);
  if (std::string_view addr = ev.TakeStr("principal.client_addr"); !addr.empty()) {
    if (auto hp = SplitAddr(addr)) {
      d.Str("/src_endpoint/ip", hp->ip);
      d.Num("/src_endpoint/port", hp->port);
    } else {
      d.Str("/src_endpoint/name", addr);
    }
  }
  d.StrIf("/dst_endpoint/name", ev.TakeStr("target"));
  if (std::string_view db = ev.TakeStr("principal.database"); !db.empty()) {
    d.Str("/database/name", db);
    d.Num("/database/type_id", 1);
    d.Str("/database/type", "Relational");
  }
  d.StrIf("/table/name", FirstTable(ev));
  const char* sql = ev.At("statement.sql") ? "statement.sql" : "approval.sql";
  const char* fp = ev.At("statement.sql") ? "statement.fingerprint" : "approval.fingerprint";
  if (ev.At(sql)) {
    d.Str("/query_info/query_string", ev.Str(sql));
    ev.Take(sql);
    d.StrIf("/query_info/uid", ev.TakeStr(fp));
    if (auto bytes = ev.TakeUint("result.bytes")) d.Num("/query_info/bytes", *bytes);
  }
  d.Set("/unmapped", ev.Rest(d.Allocator()));
  return d.Finish();
}

// ---- Elastic Common Schema 8.17 ----

void EcsEvent(Native& ev, const Facts& f, Doc& d) {
  d.Str("/event/kind", "event");
  std::vector<std::string_view> category = {"database"}, type;
  if (StatementLike(f.kind)) {
    switch (f.activity.id) {
      case kActRead.id:
        type.emplace_back("access");
        break;
      case kActWrite.id:
      case kActUpdate.id:
        type.emplace_back("change");
        break;
      case kActCreate.id:
        type.emplace_back("creation");
        break;
      case kActDelete.id:
        type.emplace_back("deletion");
        break;
      default:
        type.emplace_back("info");
    }
    if (f.disposition) type.emplace_back(f.disposition->action_id == 2 ? "denied" : "allowed");
  } else if (f.kind == "session_start" || f.kind == "session_end" || f.kind == "token_expired") {
    category.emplace_back("session");
    type.emplace_back(f.kind == "session_start" ? "start" : "end");
  } else if (f.kind == "login_failed") {
    category.emplace_back("authentication");
    type.emplace_back("start");
  } else {
    type.emplace_back("info");
  }
  if (f.outcome == Outcome::kFailure && StatementLike(f.kind) && type.back() != "denied")
    type.emplace_back("error");
  d.Set("/event/category", d.Strings(category));
  d.Set("/event/type", d.Strings(type));
  d.Str("/event/action", f.signature);
  d.Str("/event/outcome", OutcomeName(f.outcome));
  d.Num("/event/sequence", *ev.TakeUint("seq"));
  d.StrIf("/event/id", ev.TakeStr("hash"));
  d.Str("/event/provider", "dbwarden");
  d.Str("/event/dataset", "dbwarden.audit");
  d.Num("/event/severity", kCefSeverity[f.severity]);
  auto us = ev.Uint("result.duration_us");
  if (us && *us <= UINT64_MAX / 1000) {
    d.Num("/event/duration", *us * 1000);
    ev.Take("result.duration_us");
  }
  d.StrIf("/event/reason", ev.TakeStr("decision.reason"));
}

std::string RenderEcs(Native& ev, const Facts& f) {
  Doc d;
  d.StrIf("/@timestamp", ev.TakeStr("ts"));
  d.Str("/message", f.message);
  d.Str("/ecs/version", kEcsVersion);
  EcsEvent(ev, f, d);
  d.StrIf("/user/name", ev.TakeStr("principal.db_user"));
  d.StrIf("/user/id", ev.TakeStr("principal.subject"));
  std::vector<std::string_view> related;
  for (const char* key : {"principal.db_user", "principal.requested_user", "principal.subject"}) {
    std::string_view u = ev.Str(key);
    if (!u.empty() && std::find(related.begin(), related.end(), u) == related.end())
      related.push_back(u);
  }
  if (!related.empty()) d.Set("/related/user", d.Strings(related));
  if (auto pid = ev.TakeUint("process.pid")) d.Num("/process/pid", *pid);
  d.StrIf("/process/name", ev.TakeStr("process.comm"));
  d.StrIf("/process/executable", ev.TakeStr("process.exe"));
  d.StrIf("/process/command_line", ev.TakeStr("process.cmdline"));
  if (auto ppid = ev.TakeUint("process.ppid")) d.Num("/process/parent/pid", *ppid);
  if (auto uid = ev.TakeUint("process.uid")) d.Str("/process/user/id", std::to_string(*uid));
  if (auto gid = ev.TakeUint("process.gid")) d.Str("/process/group/id", std::to_string(*gid));
  d.StrIf("/container/id", ev.TakeStr("process.container_id"));
  if (std::string_view addr = ev.TakeStr("principal.client_addr"); !addr.empty()) {
    d.Str("/source/address", addr);
    if (auto hp = SplitAddr(addr)) {
      d.Str("/source/ip", hp->ip);
      d.Num("/source/port", hp->port);
    }
  }
  d.StrIf("/tls/client/subject", ev.TakeStr("principal.cert_subject"));
  d.StrIf("/tls/client/issuer", ev.TakeStr("principal.cert_issuer"));
  // Not ECS: the OpenTelemetry database conventions ECS is converging with.
  if (ev.At("statement") || !ev.Str("principal.database").empty())
    d.Str("/db/system/name", "postgresql");
  d.StrIf("/db/namespace", ev.TakeStr("principal.database"));
  d.StrIf("/db/query/text", ev.TakeStr("statement.sql"));
  d.StrIf("/db/operation/name", f.primary);
  d.StrIf("/db/collection/name", FirstTable(ev));
  d.StrIf("/db/response/status_code", ev.TakeStr("result.sqlstate"));
  if (ev.At("decision.rules")) {
    d.Set("/rule/id", Copy(*ev.At("decision.rules"), d.Allocator()));
    ev.Take("decision.rules");
  }
  d.StrIf("/labels/target", ev.TakeStr("target"));
  d.StrIf("/labels/env", ev.TakeStr("env"));
  if (ev.At("error")) {
    d.StrIf("/error/code", ev.TakeStr("error.sqlstate"));
    d.StrIf("/error/message", ev.TakeStr("error.message"));
  } else {
    d.StrIf("/error/message", ev.TakeStr("result.message"));
  }
  d.Set("/dbwarden", ev.Rest(d.Allocator()));
  return d.Finish();
}

// ---- ArcSight CEF ----

// Header fields: '\' and '|' escaped; line breaks (which would end the record) become spaces.
void CefHeader(std::string* out, std::string_view s) {
  for (char c : s) {
    if (c == '\\' || c == '|') out->push_back('\\');
    out->push_back(c == '\n' || c == '\r' ? ' ' : c);
  }
  out->push_back('|');
}

// One extension: ` key=value`, value with '\', '=' and line breaks escaped; other control bytes
// (which CEF cannot carry) become spaces.
void CefExt(std::string* out, std::string_view key, std::string_view value) {
  if (value.empty()) return;
  if (out->back() != '|') out->push_back(' ');
  out->append(key);
  out->push_back('=');
  for (char c : value) {
    switch (c) {
      case '\\':
      case '=':
        out->push_back('\\');
        out->push_back(c);
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      default:
        out->push_back(static_cast<unsigned char>(c) < 0x20 && c != '\t' ? ' ' : c);
    }
  }
}

void CefLabeled(std::string* out, std::string_view key, std::string_view label,
                std::string_view value) {
  if (value.empty()) return;
  CefExt(out, key, value);
  CefExt(out, std::string(key) + "Label", label);
}

std::string RenderCef(const Native& ev, const Facts& f) {
  std::string out = "CEF:0|dbwarden|dbwarden|";
  CefHeader(&out, DBWARDEN_VERSION);
  CefHeader(&out, f.signature);
  CefHeader(&out, f.name);
  out += std::to_string(kCefSeverity[f.severity]);
  out += '|';
  if (f.ts_us) CefExt(&out, "rt", std::to_string(*f.ts_us / 1000));
  CefExt(&out, "cat", f.kind);
  CefExt(&out, "act", ev.Str("decision.action"));
  CefExt(&out, "outcome", OutcomeName(f.outcome));
  CefExt(&out, "reason", ev.Str("decision.reason"));
  std::string_view msg = ev.Str("error.message");
  for (const char* key : {"result.message", "detail"})
    if (msg.empty()) msg = ev.Str(key);
  CefExt(&out, "msg", msg);
  CefExt(&out, "suser", ev.Str("principal.db_user"));
  CefExt(&out, "suid", ev.Str("principal.subject"));
  if (auto pid = ev.Uint("process.pid")) CefExt(&out, "spid", std::to_string(*pid));
  CefExt(&out, "sproc", ev.Str("process.comm"));
  if (auto hp = SplitAddr(ev.Str("principal.client_addr"))) {
    if (hp->ip.find(':') == std::string_view::npos) {
      CefExt(&out, "src", hp->ip);
    } else {
      CefLabeled(&out, "c6a2", "Source IPv6 Address", hp->ip);
    }
    CefExt(&out, "spt", std::to_string(hp->port));
  }
  CefExt(&out, "requestClientApplication", ev.Str("principal.application_name"));
  CefExt(&out, "destinationServiceName", ev.Str("principal.database"));
  if (auto bytes = ev.Uint("result.bytes")) CefExt(&out, "out", std::to_string(*bytes));
  CefExt(&out, "externalId", std::to_string(ev.Seq()));
  CefLabeled(&out, "cs1", "target", ev.Str("target"));
  CefLabeled(&out, "cs2", "env", ev.Str("env"));
  CefLabeled(&out, "cs3", "session_id", ev.Str("session_id"));
  std::string_view sql = ev.Str("statement.sql");
  CefLabeled(&out, "cs4", "sql", sql.empty() ? ev.Str("approval.sql") : sql);
  std::string rules;
  for (std::string_view r : ev.Strings("decision.rules")) {
    if (!rules.empty()) rules += ',';
    rules += r;
  }
  CefLabeled(&out, "cs5", "rules", rules);
  CefLabeled(&out, "cs6", "hash", ev.Str("hash"));
  CefLabeled(&out, "cn1", "seq", std::to_string(ev.Seq()));
  if (auto rows = ev.Uint("result.rows")) {
    CefLabeled(&out, "cn2", "rows", std::to_string(*rows));
  } else if (auto count = ev.Uint("count")) {
    CefLabeled(&out, "cn2", "count", std::to_string(*count));
  }
  if (auto us = ev.Uint("result.duration_us")) {
    CefLabeled(&out, "cn3", "duration_us", std::to_string(*us));
  }
  return out;
}

}  // namespace

StatusOr<EventFormat> ParseEventFormat(std::string_view name) {
  for (EventFormat f :
       {EventFormat::kNative, EventFormat::kOcsf, EventFormat::kEcs, EventFormat::kCef}) {
    if (name == EventFormatName(f)) return f;
  }
  return InvalidArgument("\"format\" must be native, ocsf, ecs or cef");
}

const char* EventFormatName(EventFormat format) {
  switch (format) {
    case EventFormat::kNative:
      return "native";
    case EventFormat::kOcsf:
      return "ocsf";
    case EventFormat::kEcs:
      return "ecs";
    case EventFormat::kCef:
      return "cef";
  }
  return "native";
}

StatusOr<std::string> RenderEvent(EventFormat format, std::string_view native_json) {
  if (format == EventFormat::kNative) return std::string(native_json);
  Native ev;
  DBW_RETURN_IF_ERROR(ev.Parse(native_json));
  const Facts facts = Derive(ev);
  switch (format) {
    case EventFormat::kOcsf:
      return RenderOcsf(ev, facts);
    case EventFormat::kEcs:
      return RenderEcs(ev, facts);
    case EventFormat::kCef:
      return RenderCef(ev, facts);
    case EventFormat::kNative:
      break;
  }
  return std::string(native_json);
}

}  // namespace dbw::audit
