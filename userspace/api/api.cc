// Routing, authentication and the event, stream, verify, metrics and health routes.
#include "userspace/api/api.h"

#include <algorithm>

#include "userspace/api/json_util.h"
#include "userspace/audit/event_formats.h"
#include "userspace/common/metrics.h"

namespace dbw::api {
namespace {

Response Json(unsigned status, std::string body) {
  Response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

std::string EventsJson(const std::vector<std::string>& events, const std::string& next) {
  rapidjson::StringBuffer buf;
  JsonWriter w(buf);
  w.StartObject();
  w.Key("events");
  w.StartArray();
  for (const auto& e : events) JsonRaw(&w, e, rapidjson::kObjectType);
  w.EndArray();
  JsonKeyString(&w, "next_cursor", next);
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize());
}

// The events in `format`, in order. An event the store served that does not render is a
// server error naming its seq: it would otherwise vanish from the export.
StatusOr<std::vector<std::string>> Render(const std::vector<audit::StoredEvent>& events,
                                          audit::EventFormat format) {
  std::vector<std::string> out;
  out.reserve(events.size());
  for (const auto& e : events) {
    auto r = audit::RenderEvent(format, e.json);
    if (!r.ok()) {
      return Internal("event " + std::to_string(e.seq) + " does not render as " +
                      audit::EventFormatName(format) + ": " + r.status().message());
    }
    out.push_back(std::move(*r));
  }
  return out;
}

// CEF is a line format: text/plain, one event a line.
constexpr const char* kCefContentType = "text/plain; charset=utf-8";

}  // namespace

Response JsonError(unsigned status, std::string_view message) {
  rapidjson::StringBuffer buf;
  JsonWriter w(buf);
  w.StartObject();
  JsonKeyString(&w, "error", message);
  w.EndObject();
  return Json(status, std::string(buf.GetString(), buf.GetSize()));
}

Dispatch Api::Route(const Request& req) const {
  Dispatch d;
  auto target = SplitTarget(req.target);
  if (!target.ok()) {
    d.now = JsonError(400, target.status().message());
    return d;
  }
  const std::string& path = target->path;
  const bool get = req.method == "GET" || req.method == "HEAD";
  auto wrong_method = [&](const char* allow) {
    Response r = JsonError(405, "method not allowed");
    r.headers.emplace_back("Allow", allow);
    return r;
  };
  if (path == "/healthz" || path == "/readyz") {
    if (!get) {
      d.now = wrong_method("GET, HEAD");
    } else if (path == "/healthz") {
      d.now = Json(200, "{\"status\":\"ok\"}");
    } else {
      d.now = Ready();
    }
    return d;
  }
  // Known routes: the method they take and the role they need.
  struct RouteInfo {
    const char* method;
    Role role;
  };
  std::optional<RouteInfo> route;
  std::string session_id;
  constexpr std::string_view kSessionPrefix = "/v1/sessions/";
  constexpr std::string_view kApprovalPrefix = "/v1/approvals/";
  std::string approval_id, approval_verb;
  if (path == "/v1/events" || path == "/v1/events/stream" || path == "/v1/sessions" ||
      path == "/v1/stats" || path == "/v1/audit/verify" || path == "/v1/audit/public-key" ||
      path == "/metrics") {
    route = RouteInfo{"GET", Role::kViewer};
  } else if (path.size() > kSessionPrefix.size() && path.starts_with(kSessionPrefix) &&
             path.find('/', kSessionPrefix.size()) == std::string::npos) {
    route = RouteInfo{"GET", Role::kViewer};
    session_id = path.substr(kSessionPrefix.size());
  } else if (path == "/v1/policy/evaluate") {
    route = RouteInfo{"POST", Role::kViewer};  // a dry run: nothing changes
  } else if (path == "/v1/approvals") {
    route = RouteInfo{"GET", Role::kViewer};
  } else if (path.starts_with(kApprovalPrefix) && path.size() > kApprovalPrefix.size()) {
    // /v1/approvals/{id}, /v1/approvals/{id}/approve, /v1/approvals/{id}/deny
    std::string rest = path.substr(kApprovalPrefix.size());
    size_t slash = rest.find('/');
    approval_id = rest.substr(0, slash);
    if (slash == std::string::npos) {
      route = RouteInfo{"GET", Role::kViewer};
    } else if (rest.substr(slash) == "/approve" || rest.substr(slash) == "/deny") {
      approval_verb = rest.substr(slash + 1);
      route = RouteInfo{"POST", Role::kApprover};
    }
    if (approval_id.empty()) route.reset();
  }
  if (!route) {
    d.now = JsonError(404, "no such route: " + path);
    return d;
  }
  Identity who;
  switch (auth_.Authenticate(req.authorization, &who)) {
    case Authenticator::Result::kOk:
      break;
    case Authenticator::Result::kMissing:
    case Authenticator::Result::kInvalid: {
      Response r = JsonError(
          401, req.authorization.empty() ? "bearer token required" : "invalid bearer token");
      r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"dbwarden\"");
      d.now = std::move(r);
      return d;
    }
  }
  d.who = who.name;
  if (!RoleAllows(who.role, route->role)) {
    d.now = JsonError(403, std::string("role ") + RoleName(who.role) + " may not use " + path +
                               " (needs " + RoleName(route->role) + ")");
    return d;
  }
  const bool is_get = std::string_view(route->method) == "GET";
  // POST /v1/audit/verify: the same check, against the published anchors in the body.
  const bool verify_post = path == "/v1/audit/verify" && req.method == "POST";
  if (!verify_post && ((is_get && !get) || (!is_get && req.method != route->method))) {
    d.now = wrong_method(is_get ? "GET, HEAD" : route->method);
    return d;
  }
  auto params = ParseQueryString(target->query);
  if (!params.ok()) {
    d.now = JsonError(400, params.status().message());
    return d;
  }
  if (path == "/v1/events/stream") {
    auto q = ParseStreamQuery(*params);
    if (!q.ok()) {
      d.now = JsonError(400, q.status().message());
    } else {
      d.stream = *q;
    }
    return d;
  }
  if (path == "/v1/policy/evaluate") {
    std::string body(req.body);
    d.work = [this, body = std::move(body)] { return Evaluate(body); };
    return d;
  }
  if (path == "/v1/approvals" || !approval_id.empty()) {
    if (!approval_verb.empty()) {
      std::string body(req.body);
      d.work = [this, approval_id, who, body = std::move(body),
                approve = approval_verb == "approve"] {
        return ApprovalVote(approval_id, who, approve, body);
      };
    } else if (!approval_id.empty()) {
      d.work = [this, approval_id, who] { return Approval(approval_id, who); };
    } else {
      d.work = [this, p = std::move(*params), who] { return Approvals(p, who); };
    }
    return d;
  }
  QueryParams p = std::move(*params);
  if (path == "/v1/events") {
    d.work = [this, p] { return Events(p); };
  } else if (path == "/v1/sessions") {
    d.work = [this, p] { return Sessions(p); };
  } else if (!session_id.empty()) {
    d.work = [this, p, session_id] { return Session(session_id, p); };
  } else if (path == "/v1/stats") {
    d.work = [this, p] { return Stats(p); };
  } else if (path == "/v1/audit/verify") {
    std::string body = verify_post ? std::string(req.body) : std::string();
    d.work = [this, p, verify_post, body = std::move(body)] {
      return Verify(p, verify_post ? &body : nullptr);
    };
  } else if (path == "/v1/audit/public-key") {
    d.work = [this] {
      Response r;
      r.content_type = "application/x-pem-file";
      r.body = deps_.events->PublicKeyPem();
      return r;
    };
  } else {
    d.work = [this] { return Metrics(); };
  }
  return d;
}

Response Api::Events(const QueryParams& params) const {
  auto q = ParseEventsQuery(params, audit::NowMicros());
  if (!q.ok()) return JsonError(400, q.status().message());
  auto result = deps_.events->Query(q->filter, q->limit, q->cursor);
  if (!result.ok()) return JsonError(StatusHttp(result.status()), result.status().message());
  std::vector<std::string> rendered;
  if (q->format == audit::EventFormat::kNative) {
    // The default answer stays byte for byte what the store serves.
    for (auto& e : result->events) rendered.push_back(std::move(e.json));
  } else {
    auto r = Render(result->events, q->format);
    if (!r.ok()) return JsonError(500, r.status().message());
    rendered = std::move(*r);
  }
  if (q->format != audit::EventFormat::kCef) {
    return Json(200, EventsJson(rendered, result->next_cursor));
  }
  Response resp;
  resp.content_type = kCefContentType;
  for (const auto& line : rendered) {
    resp.body += line;
    resp.body += '\n';
  }
  resp.headers.emplace_back("X-Dbwarden-Cursor", result->next_cursor);
  return resp;
}

bool Api::HasNewer(uint64_t after_seq) const {
  return deps_.events->WaitForNewer(after_seq, std::chrono::milliseconds(0));
}

Response Api::StreamBatch(const StreamQuery& q) const {
  auto events = deps_.events->ReadAfter(q.after_seq, q.limit);
  if (!events.ok()) return JsonError(StatusHttp(events.status()), events.status().message());
  Response r;
  r.content_type = q.format == audit::EventFormat::kCef ? kCefContentType : "application/x-ndjson";
  uint64_t last = q.after_seq;
  for (const auto& e : *events) {
    // The store answers in sequence order; anything at or before the cursor would duplicate.
    if (e.seq <= last) continue;
    if (q.format == audit::EventFormat::kNative) {
      r.body += e.json;
    } else {
      auto line = audit::RenderEvent(q.format, e.json);
      if (!line.ok()) {
        // Stop before it: the cursor resumes here, and the error names the event.
        if (last == q.after_seq) {
          return JsonError(500, "event " + std::to_string(e.seq) + " does not render as " +
                                    audit::EventFormatName(q.format) + ": " +
                                    line.status().message());
        }
        break;
      }
      r.body += *line;
    }
    r.body += '\n';
    last = e.seq;
  }
  r.headers.emplace_back("X-Dbwarden-Cursor", EncodeStreamCursor(last));
  r.headers.emplace_back("Cache-Control", "no-store");
  return r;
}

Response Api::Verify(const QueryParams& params, const std::string* anchor_lines) const {
  if (Status s = params.OnlyKeys({"from", "to"}); !s.ok()) return JsonError(400, s.message());
  std::optional<uint64_t> range[2];
  const char* keys[2] = {"from", "to"};
  for (int i = 0; i < 2; ++i) {
    auto v = params.Single(keys[i]);
    if (!v.ok()) return JsonError(400, v.status().message());
    if (!*v) continue;
    auto seq = ParseSeq(keys[i], **v);
    if (!seq.ok()) return JsonError(400, seq.status().message());
    range[i] = *seq;
  }
  if (range[0] && range[1] && *range[0] > *range[1]) {
    return JsonError(400, "\"from\" must not be after \"to\"");
  }
  std::optional<std::vector<audit::Anchor>> anchors;
  if (anchor_lines != nullptr) {
    auto parsed = audit::ParseAnchors(*anchor_lines, "request body");
    if (!parsed.ok()) return JsonError(400, parsed.status().message());
    if (parsed->empty())
      return JsonError(400,
                       "the request body holds no anchors (one JSON line each, "
                       "as published to audit.anchor_file)");
    anchors = std::move(*parsed);
  }
  const audit::VerifyReport rep =
      deps_.events->Verify(range[0], range[1], anchors ? &*anchors : nullptr);
  rapidjson::StringBuffer buf;
  JsonWriter w(buf);
  w.StartObject();
  w.Key("ok");
  w.Bool(rep.ok);
  w.Key("first_seq");
  w.Uint64(rep.first_seq);
  w.Key("last_seq");
  w.Uint64(rep.last_seq);
  w.Key("checked");
  w.Uint64(rep.checked);
  w.Key("checkpoints_verified");
  w.Uint64(rep.checkpoints_verified);
  if (anchors) {
    w.Key("anchors_checked");
    w.Uint64(rep.anchors_checked);
    w.Key("anchors_before_retention");
    w.Uint64(rep.anchors_before_retention);
  }
  w.Key("first_bad_seq");
  if (rep.first_bad_seq) {
    w.Uint64(*rep.first_bad_seq);
  } else {
    w.Null();
  }
  JsonKeyString(&w, "problem", rep.problem);
  w.EndObject();
  return Json(200, std::string(buf.GetString(), buf.GetSize()));
}

Response Api::Metrics() const {
  Response r;
  r.content_type = "text/plain; version=0.0.4";
  // The store registers its own families (dbwarden_audit_*): each metric has one name.
  r.body = MetricsRegistry::Global().RenderPrometheus();
  return r;
}

Response Api::Ready() const {
  std::vector<std::string> reasons;
  for (const auto* check : {&deps_.store_ready, &deps_.policy_ready}) {
    std::string why;
    if (*check && !(*check)(&why)) reasons.push_back(why.empty() ? "not ready" : why);
  }
  rapidjson::StringBuffer buf;
  JsonWriter w(buf);
  w.StartObject();
  w.Key("ready");
  w.Bool(reasons.empty());
  if (!reasons.empty()) {
    w.Key("reasons");
    w.StartArray();
    for (const auto& r : reasons) JsonString(&w, r);
    w.EndArray();
  }
  w.EndObject();
  return Json(reasons.empty() ? 200 : 503, std::string(buf.GetString(), buf.GetSize()));
}

}  // namespace dbw::api
