// ArcSight CEF: the header (version, signature, name, severity) and the extensions, each value
// escaped so one event stays one record.
#include <string>
#include <string_view>

#include "userspace/audit/event_formats_internal.h"

namespace dbw::audit::formats {
namespace {

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

}  // namespace

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

}  // namespace dbw::audit::formats
