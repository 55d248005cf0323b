// OCSF 1.8.0 class 6005 Datastore Activity: the actor, endpoints, database and query objects,
// with every field the class does not carry in `unmapped`.
#include <string>
#include <string_view>
#include <utility>

#include "userspace/audit/event_formats_internal.h"

namespace dbw::audit::formats {
namespace {

constexpr const char* kOcsfVersion = "1.8.0";

std::string_view Basename(std::string_view path) {
  size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

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

}  // namespace

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

}  // namespace dbw::audit::formats
