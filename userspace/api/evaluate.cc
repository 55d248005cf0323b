// POST /v1/policy/evaluate: the running policy's decision for one statement, in the output
// shape of `dbwarden policy eval` (agent/policy_cli.cc). A dry run: nothing is audited or held.
#include <simdjson.h>

#include <array>
#include <cinttypes>
#include <cstdio>

#include "userspace/api/api.h"
#include "userspace/api/json_util.h"
#include "userspace/sql/analyzer.h"
#include "userspace/sql/params.h"

namespace dbw::api {
namespace {

Status GetString(simdjson::dom::element v, std::string_view key, std::string* out) {
  std::string_view s;
  if (v.get_string().get(s) != simdjson::SUCCESS) {
    return InvalidArgument("\"" + std::string(key) + "\" must be a string");
  }
  *out = std::string(s);
  return Status::Ok();
}

Status ParsePrincipal(simdjson::dom::element value, EvalInput* in) {
  simdjson::dom::object obj;
  if (value.get_object().get(obj) != simdjson::SUCCESS) {
    return InvalidArgument("\"principal\" must be an object");
  }
  policy::Principal& p = in->principal;
  for (auto field : obj) {
    std::string_view k = field.key;
    if (k == "kind") {
      std::string kind;
      DBW_RETURN_IF_ERROR(GetString(field.value, k, &kind));
      if (kind != "agent" && kind != "human") {
        return InvalidArgument("principal.kind must be \"agent\" or \"human\"");
      }
      in->kind = kind == "agent" ? policy::PrincipalKind::kAgent : policy::PrincipalKind::kHuman;
      continue;
    }
    if (k == "groups") {
      simdjson::dom::array groups;
      if (field.value.get_array().get(groups) != simdjson::SUCCESS) {
        return InvalidArgument("principal.groups must be a list of strings");
      }
      p.groups.clear();
      for (auto g : groups) {
        std::string_view s;
        if (g.get_string().get(s) != simdjson::SUCCESS) {
          return InvalidArgument("principal.groups must be a list of strings");
        }
        p.groups.emplace_back(s);
      }
      continue;
    }
    if (k == "claims") {
      simdjson::dom::object claims;
      if (field.value.get_object().get(claims) != simdjson::SUCCESS)
        return InvalidArgument("principal.claims must be an object of strings or string lists");
      p.claims.clear();
      for (auto claim : claims) {
        std::vector<std::string> values;
        std::string_view one;
        simdjson::dom::array many;
        if (claim.value.get_string().get(one) == simdjson::SUCCESS) {
          values.emplace_back(one);
        } else if (claim.value.get_array().get(many) == simdjson::SUCCESS) {
          for (auto v : many) {
            if (v.get_string().get(one) != simdjson::SUCCESS)
              return InvalidArgument("principal.claims values must be strings");
            values.emplace_back(one);
          }
        } else {
          return InvalidArgument("principal.claims values must be strings or string lists");
        }
        p.claims.emplace_back(std::string(claim.key), std::move(values));
      }
      continue;
    }
    std::string* target = nullptr;
    if (k == "subject") target = &p.subject;
    if (k == "issuer") target = &p.issuer;
    if (k == "db_user") target = &p.db_user;
    if (k == "database") target = &p.database;
    if (k == "application_name") target = &p.application_name;
    if (k == "client_addr") target = &p.client_addr;
    if (k == "cert_subject") target = &p.cert_subject;
    if (k == "cert_san") target = &p.cert_san;
    if (k == "cert_issuer") target = &p.cert_issuer;
    if (k == "exe") target = &p.exe;
    if (k == "unit") target = &p.unit;
    if (k == "container") target = &p.container;
    if (target == nullptr)
      return InvalidArgument("unknown principal key \"" + std::string(k) + "\"");
    DBW_RETURN_IF_ERROR(GetString(field.value, k, target));
  }
  if (p.subject.empty()) p.subject = p.db_user;  // as in the relay and `policy eval`
  return Status::Ok();
}

}  // namespace

Status ParseEvalInput(std::string_view body, EvalInput* in) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  simdjson::padded_string padded(body);
  if (auto e = parser.parse(padded).get(doc); e != simdjson::SUCCESS) {
    return InvalidArgument(std::string("invalid JSON: ") + simdjson::error_message(e));
  }
  simdjson::dom::object obj;
  if (doc.get_object().get(obj) != simdjson::SUCCESS) {
    return InvalidArgument("the input must be a JSON object");
  }
  bool have_sql = false;
  for (auto field : obj) {
    std::string_view k = field.key;
    if (k == "sql") {
      DBW_RETURN_IF_ERROR(GetString(field.value, k, &in->sql));
      have_sql = true;
    } else if (k == "env") {
      DBW_RETURN_IF_ERROR(GetString(field.value, k, &in->target.env));
    } else if (k == "target") {
      DBW_RETURN_IF_ERROR(GetString(field.value, k, &in->target.name));
    } else if (k == "id") {
      std::string id;
      DBW_RETURN_IF_ERROR(GetString(field.value, k, &id));
      in->id = std::move(id);
    } else if (k == "principal") {
      DBW_RETURN_IF_ERROR(ParsePrincipal(field.value, in));
    } else if (k == "params") {
      simdjson::dom::array values;
      if (field.value.get_array().get(values) != simdjson::SUCCESS)
        return InvalidArgument("\"params\" must be an array of strings, numbers or nulls");
      in->params.emplace();
      for (simdjson::dom::element v : values) {
        std::string_view text;
        int64_t i = 0;
        double d = 0;
        if (v.is_null()) {
          in->params->emplace_back(std::nullopt);
        } else if (v.get_string().get(text) == simdjson::SUCCESS) {
          in->params->emplace_back(std::string(text));
        } else if (v.get_int64().get(i) == simdjson::SUCCESS) {
          in->params->emplace_back(std::to_string(i));
        } else if (v.get_double().get(d) == simdjson::SUCCESS) {
          std::array<char, 32> buf{};
          std::snprintf(buf.data(), buf.size(), "%.17g", d);
          in->params->emplace_back(std::string(buf.data()));
        } else {
          return InvalidArgument("\"params\" must be an array of strings, numbers or nulls");
        }
      }
    } else {
      return InvalidArgument("unknown key \"" + std::string(k) +
                             "\" (expected sql, env, target, principal, params, id)");
    }
  }
  if (!have_sql) return InvalidArgument("missing \"sql\"");
  return Status::Ok();
}

std::shared_ptr<const sql::QueryFacts> EvalFacts(const EvalInput& in, sql::Analyzer* analyzer) {
  auto analyze = [analyzer](std::string_view text) {
    return analyzer != nullptr ? analyzer->Analyze(text) : sql::AnalyzeUncached(text);
  };
  std::shared_ptr<const sql::QueryFacts> facts = analyze(in.sql);
  if (!in.params || facts->unparseable || facts->statements.size() != 1 || facts->max_param == 0)
    return facts;
  // Values are read as the relay reads a Bind's text values of unspecified type.
  std::vector<std::string> values;
  for (const auto& p : *in.params) values.push_back(p ? sql::BoundLiteral(*p, false) : "NULL");
  std::optional<std::string> text = sql::SubstituteParams(in.sql, values);
  if (!text) return facts;
  std::shared_ptr<const sql::QueryFacts> bound = analyze(*text);
  if (bound->unparseable || bound->statements.size() != 1) return facts;
  auto out = std::make_shared<sql::QueryFacts>(*bound);
  sql::StatementFacts& s = out->statements.front();
  const sql::StatementFacts& prepared = facts->statements.front();
  s.normalized = prepared.normalized;
  s.fingerprint = prepared.fingerprint;
  s.fingerprint_hex = prepared.fingerprint_hex;
  return out;
}

namespace {

void Strings(JsonWriter* w, const char* key, const std::vector<std::string>& values) {
  w->Key(key);
  w->StartArray();
  for (const auto& v : values) JsonString(w, v);
  w->EndArray();
}

void Tables(JsonWriter* w, const char* key, const std::vector<sql::TableRef>& tables) {
  w->Key(key);
  w->StartArray();
  for (const auto& t : tables) JsonString(w, t.Qualified());
  w->EndArray();
}

void WriteFacts(JsonWriter* w, const sql::StatementFacts& s) {
  w->StartObject();
  JsonKeyString(w, "command", sql::CommandName(s.command));
  JsonKeyString(w, "object_kind", s.object_kind);
  w->Key("risks");
  w->StartArray();
  for (std::string_view r : sql::RiskNames(s.risks)) JsonString(w, r);
  w->EndArray();
  Tables(w, "tables_read", s.tables_read);
  Tables(w, "tables_written", s.tables_written);
  Strings(w, "functions", s.functions);
  JsonKeyString(w, "normalized", s.normalized);
  if (!s.fingerprint_hex.empty()) {
    JsonKeyString(w, "fingerprint", s.fingerprint_hex);
  } else {
    char hex[17];
    std::snprintf(hex, sizeof(hex), "%016" PRIx64, s.fingerprint);
    JsonKeyString(w, "fingerprint", hex);
  }
  if (s.grouped) {
    // The relay lifts unbounded_select when the target's statistics show few groups by these.
    w->Key("grouped_by");
    w->StartArray();
    for (const auto& g : s.group_columns) JsonString(w, g.table.Qualified() + "." + g.column);
    w->EndArray();
  }
  if (s.prepared) {
    JsonKeyString(w, "prepare_name", s.prepare_name);
    w->Key("prepared");
    WriteFacts(w, *s.prepared);
  }
  if (!s.error.empty()) JsonKeyString(w, "error", s.error);
  w->EndObject();
}

}  // namespace

std::string DecisionJson(const policy::Decision& d, policy::PrincipalKind kind,
                         const sql::QueryFacts& facts, const std::optional<std::string>& id) {
  rapidjson::StringBuffer buf;
  JsonWriter w(buf);
  w.StartObject();
  if (id) JsonKeyString(&w, "id", *id);
  JsonKeyString(&w, "action", policy::ActionName(d.action));
  Strings(&w, "rules", d.rules);
  JsonKeyString(&w, "reason", d.reason);
  if (!d.sqlstate.empty()) JsonKeyString(&w, "sqlstate", d.sqlstate);
  if (d.approval) {
    w.Key("approval");
    w.StartObject();
    JsonKeyString(&w, "mode", d.approval->mode == policy::ApprovalMode::kHold ? "hold" : "ticket");
    w.Key("timeout_s");
    w.Int64(d.approval->timeout.count());
    w.Key("grant_ttl_s");
    w.Int64(d.approval->grant_ttl.count());
    w.Key("approvers");
    w.Int(d.approval->approvers);
    Strings(&w, "groups", d.approval->approver_groups);
    w.EndObject();
  }
  if (d.limits) {
    w.Key("limits");
    w.StartObject();
    auto limit = [&w](const char* key, uint64_t v, const std::string& rule) {
      if (v == 0) return;
      w.Key(key);
      w.StartObject();
      w.Key("value");
      w.Uint64(v);
      JsonKeyString(&w, "rule", rule);
      w.EndObject();
    };
    limit("max_rows", d.limits->max_rows, d.limits->write_rule);
    limit("max_read_rows", d.limits->max_read_rows, d.limits->read_rows_rule);
    limit("max_read_bytes", d.limits->max_read_bytes, d.limits->read_bytes_rule);
    w.EndObject();
  }
  w.Key("monitor");
  w.Bool(d.monitor);
  JsonKeyString(&w, "principal_kind", kind == policy::PrincipalKind::kAgent ? "agent" : "human");
  if (facts.unparseable) JsonKeyString(&w, "error", facts.error);
  w.Key("statements");
  w.StartArray();
  for (const auto& s : facts.statements) WriteFacts(&w, s);
  w.EndArray();
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize());
}

StatusOr<std::string> EvaluateJson(std::string_view body, const policy::CompiledPolicy& policy) {
  EvalInput in;
  in.target = {"default", "prod"};
  DBW_RETURN_IF_ERROR(ParseEvalInput(body, &in));
  if (in.kind) {
    in.principal.kind = *in.kind;
  } else {
    policy.Classify(&in.principal);
  }
  // Uncached: worker threads share no analyzer, and a dry run is not a hot path.
  auto facts = EvalFacts(in, nullptr);
  policy::Decision d =
      policy.Evaluate(in.target, in.principal, *facts, std::chrono::system_clock::now());
  return DecisionJson(d, in.principal.kind, *facts, in.id);
}

Response Api::Evaluate(std::string_view body) const {
  if (deps_.policy == nullptr) return JsonError(503, "no policy is loaded");
  auto policy = deps_.policy->Get();
  if (!policy) return JsonError(503, "no policy is loaded");
  auto out = EvaluateJson(body, *policy);
  if (!out.ok()) return JsonError(400, out.status().message());
  Response r;
  r.body = std::move(*out);
  return r;
}

}  // namespace dbw::api
