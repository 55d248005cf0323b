// Renders a stored audit event (native JSON) as OCSF 1.8 Datastore Activity, ECS 8.17 or CEF:
// the native event is parsed once (simdjson), the mapped fields are read through an accessor that
// remembers which ones a format carried exactly, and everything else goes to the format's
// catch-all (OCSF `unmapped`, ECS `dbwarden`), so no field is lost. Tables: docs/export.md.
// This file holds what the formats share and the entry points; each format has its own file
// (event_formats_ocsf.cc, event_formats_ecs.cc, event_formats_cef.cc).
#include "userspace/audit/event_formats.h"

#include <array>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "userspace/audit/event_formats_internal.h"

namespace dbw::audit::formats {

rapidjson::Value JsonStr(std::string_view s, Alloc& a) {
  return {s.data(), static_cast<rapidjson::SizeType>(s.size()), a};
}

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

Status Native::Parse(std::string_view json) {
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

std::optional<element> Native::At(std::string_view path) const {
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

std::string_view Native::Str(std::string_view path) const {
  auto e = At(path);
  std::string_view s;
  if (!e || e->get_string().get(s) != simdjson::SUCCESS) return {};
  return s;
}

std::optional<uint64_t> Native::Uint(std::string_view path) const {
  auto e = At(path);
  uint64_t v = 0;
  if (!e || e->get_uint64().get(v) != simdjson::SUCCESS) return std::nullopt;
  return v;
}

bool Native::True(std::string_view path) const {
  auto e = At(path);
  bool v = false;
  return e && e->get_bool().get(v) == simdjson::SUCCESS && v;
}

std::vector<std::string_view> Native::Strings(std::string_view path) const {
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

std::string_view Native::TakeStr(std::string_view path) {
  std::string_view s = Str(path);
  if (!s.empty()) Take(path);
  return s;
}

std::optional<uint64_t> Native::TakeUint(std::string_view path) {
  auto v = Uint(path);
  if (v) Take(path);
  return v;
}

rapidjson::Value Native::Rest(Alloc& a) const {
  std::string path;
  simdjson::dom::object obj;
  if (root_.get_object().get(obj) != simdjson::SUCCESS) return {};
  return RestOf(obj, &path, a);
}

void Native::Take(std::string_view path) {
  taken_.emplace(path);
  for (size_t dot = path.find('.'); dot != std::string_view::npos; dot = path.find('.', dot + 1))
    below_.emplace(path.substr(0, dot));
}

bool Native::Taken(std::string_view path) const {
  return taken_.find(path) != taken_.end();
}

bool Native::TakenBelow(std::string_view path) const {
  return below_.find(path) != below_.end();
}

rapidjson::Value Native::RestOf(simdjson::dom::object obj, std::string* path, Alloc& a) const {
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

const char* OutcomeName(Outcome o) {
  return o == Outcome::kSuccess ? "success" : o == Outcome::kFailure ? "failure" : "unknown";
}

namespace {

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

}  // namespace

bool StatementLike(std::string_view kind) {
  return kind == "statement" || kind == "decision";
}

namespace {

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

}  // namespace

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

std::string_view FirstTable(const Native& ev) {
  for (const char* key : {"statement.tables_written", "statement.tables_read"}) {
    auto tables = ev.Strings(key);
    if (!tables.empty()) return tables.front();
  }
  return {};
}

}  // namespace dbw::audit::formats

namespace dbw::audit {

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
  formats::Native ev;
  DBW_RETURN_IF_ERROR(ev.Parse(native_json));
  const formats::Facts facts = formats::Derive(ev);
  switch (format) {
    case EventFormat::kOcsf:
      return formats::RenderOcsf(ev, facts);
    case EventFormat::kEcs:
      return formats::RenderEcs(ev, facts);
    case EventFormat::kCef:
      return formats::RenderCef(ev, facts);
    case EventFormat::kNative:
      break;
  }
  return std::string(native_json);
}

}  // namespace dbw::audit
