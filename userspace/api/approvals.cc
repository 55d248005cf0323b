// /v1/approvals: list and show requests, and the approve/deny votes.
#include <simdjson.h>

#include <charconv>

#include "userspace/api/api.h"
#include "userspace/api/json_util.h"

namespace dbw::api {
namespace {

constexpr size_t kDefaultLimit = 100;
constexpr size_t kMaxLimit = 1000;

// The stored JSON with what only the running service knows: whether a session waits on it.
std::string RequestView(const approvals::ApprovalService& service, const approvals::Request& r,
                        bool with_sql) {
  std::string json = approvals::RequestJson(r, with_sql);
  json.pop_back();  // the closing brace
  json += service.Waiting(r.id) ? ",\"waiting\":true}" : ",\"waiting\":false}";
  return json;
}

Response Json(unsigned status, std::string body) {
  Response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

unsigned VoteErrorHttp(const Status& s) {
  switch (s.code()) {
    case StatusCode::kNotFound:
      return 404;
    case StatusCode::kFailedPrecondition:
      return 409;
    case StatusCode::kPermissionDenied:
      return 403;
    default:
      return StatusHttp(s);
  }
}

}  // namespace

Response Api::Approvals(const QueryParams& params, const Identity& who) const {
  if (deps_.approvals == nullptr) return JsonError(503, "approvals are not enabled");
  if (Status s = params.OnlyKeys({"state", "limit"}); !s.ok()) return JsonError(400, s.message());
  std::optional<approvals::State> state = approvals::State::kPending;
  auto state_param = params.Single("state");
  if (!state_param.ok()) return JsonError(400, state_param.status().message());
  if (*state_param && **state_param == "all") {
    state.reset();
  } else if (*state_param) {
    approvals::State s;
    if (!approvals::ParseStateName(**state_param, &s))
      return JsonError(400,
                       "\"state\" must be pending, approved, denied, expired, executed, "
                       "withdrawn or all");
    state = s;
  }
  size_t limit = kDefaultLimit;
  auto limit_param = params.Single("limit");
  if (!limit_param.ok()) return JsonError(400, limit_param.status().message());
  if (*limit_param) {
    size_t n = 0;
    auto [p, ec] =
        std::from_chars((*limit_param)->data(), (*limit_param)->data() + (*limit_param)->size(), n);
    if (ec != std::errc() || p != (*limit_param)->data() + (*limit_param)->size() || n == 0 ||
        n > kMaxLimit)
      return JsonError(400, "\"limit\" must be a number from 1 to 1000");
    limit = n;
  }
  const bool with_sql = RoleAllows(who.role, Role::kApprover);
  rapidjson::StringBuffer buf;
  JsonWriter w(buf);
  w.StartObject();
  w.Key("approvals");
  w.StartArray();
  for (const auto& r : deps_.approvals->List(state, limit)) {
    std::string json = RequestView(*deps_.approvals, r, with_sql);
    JsonRaw(&w, json, rapidjson::kObjectType);
  }
  w.EndArray();
  w.EndObject();
  return Json(200, std::string(buf.GetString(), buf.GetSize()));
}

Response Api::Approval(const std::string& id, const Identity& who) const {
  if (deps_.approvals == nullptr) return JsonError(503, "approvals are not enabled");
  auto r = deps_.approvals->Get(id);
  if (!r) return JsonError(404, "no approval request " + id);
  return Json(200, RequestView(*deps_.approvals, *r, RoleAllows(who.role, Role::kApprover)));
}

Response Api::ApprovalVote(const std::string& id, const Identity& who, bool approve,
                           std::string_view body) const {
  if (deps_.approvals == nullptr) return JsonError(503, "approvals are not enabled");
  std::string comment;
  size_t start = body.find_first_not_of(" \t\r\n");
  if (start != std::string_view::npos) {
    simdjson::dom::parser parser;
    simdjson::padded_string padded(body);
    simdjson::dom::element doc;
    if (parser.parse(padded).get(doc) != simdjson::SUCCESS || !doc.is_object())
      return JsonError(400, "the body must be a JSON object like {\"comment\": \"...\"}");
    for (auto field : simdjson::dom::object(doc)) {
      if (field.key != "comment")
        return JsonError(400, "unknown key \"" + std::string(field.key) + "\" (only \"comment\")");
      std::string_view c;
      if (field.value.get_string().get(c) != simdjson::SUCCESS)
        return JsonError(400, "\"comment\" must be a string");
      comment = std::string(c);
    }
  }
  if (comment.size() > 4096) return JsonError(400, "\"comment\" is longer than 4096 bytes");
  auto r = deps_.approvals->Vote(id, approvals::Approver{who.name, who.groups}, approve, comment);
  if (!r.ok()) return JsonError(VoteErrorHttp(r.status()), r.status().message());
  return Json(200, RequestView(*deps_.approvals, *r, true));
}

}  // namespace dbw::api
