// Elastic Common Schema 8.17: the event, user, process, source, TLS and db fields, with every
// field ECS does not carry under `dbwarden`.
#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "userspace/audit/event_formats_internal.h"

namespace dbw::audit::formats {
namespace {

constexpr const char* kEcsVersion = "8.17.0";

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

}  // namespace

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

}  // namespace dbw::audit::formats
