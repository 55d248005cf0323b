// `dbwarden policy check|eval`: the policy engine and the analyser offline, for SREs tuning rules
// and for CI checks of policy files. Output is JSON lines written with RapidJSON.
#include "agent/policy_cli.h"

#include <simdjson.h>

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <iostream>
#include <optional>
#include <utility>  // before Boost.Asio headers (Boost 1.74)

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "policy/policy.h"
#include "userspace/api/api.h"
#include "userspace/sql/analyzer.h"

namespace dbw::agent {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitUsage = 2;

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

void EvalUsage(std::ostream& err) {
  err << "usage: dbwarden policy eval [--policy FILE]... [--target T] [--env E]\n"
         "                            [--principal-kind agent|human] [--user U]\n"
         "                            [--mode enforce|monitor] < statements\n"
         "  stdin: one SQL statement per line, or JSON lines\n"
         "  {\"sql\": ..., \"env\": ..., \"target\": ..., \"principal\": {\"kind\": ..., "
         "\"db_user\": ..., ...}}\n";
}

void String(JsonWriter* w, std::string_view s) {
  w->String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}

std::string ErrorJson(size_t line, const std::string& message) {
  rapidjson::StringBuffer buf;
  JsonWriter w(buf);
  w.StartObject();
  w.Key("line");
  w.Uint64(line);
  w.Key("error");
  String(&w, message);
  w.EndObject();
  return buf.GetString();
}

bool ParseKind(std::string_view text, policy::PrincipalKind* kind) {
  if (text == "agent") {
    *kind = policy::PrincipalKind::kAgent;
    return true;
  }
  if (text == "human") {
    *kind = policy::PrincipalKind::kHuman;
    return true;
  }
  return false;
}

bool Blank(const std::string& line) {
  return line.find_first_not_of(" \t\r") == std::string::npos;
}

}  // namespace

int PolicyCheckMain(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    err << "usage: dbwarden policy check FILE...\n";
    return kExitUsage;
  }
  int rc = kExitOk;
  for (const auto& file : args) {
    auto p = policy::LoadPolicy({file}, policy::Mode::kEnforce);
    if (p.ok()) {
      out << file << ": ok (" << (*p)->rule_count() << " rules)\n";
    } else {
      err << p.status().message() << "\n";
      rc = kExitUsage;
    }
  }
  // Files that load alone can still clash together (duplicate rule ids).
  if (rc == kExitOk && args.size() > 1) {
    auto all = policy::LoadPolicy(args, policy::Mode::kEnforce);
    if (!all.ok()) {
      err << all.status().message() << "\n";
      rc = kExitUsage;
    }
  }
  return rc;
}

int PolicyCheckMain(const std::vector<std::string>& args) {
  return PolicyCheckMain(args, std::cout, std::cerr);
}

int PolicyEvalMain(const std::vector<std::string>& args, std::istream& in, std::ostream& out,
                   std::ostream& err) {
  std::vector<std::string> files;
  policy::Target target{"default", "prod"};
  std::optional<policy::PrincipalKind> kind;
  std::string user;
  policy::Mode mode = policy::Mode::kEnforce;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h" || i + 1 == args.size()) {
      EvalUsage(err);
      return kExitUsage;
    }
    const std::string& v = args[++i];
    if (a == "--policy") {
      files.push_back(v);
    } else if (a == "--target") {
      target.name = v;
    } else if (a == "--env") {
      target.env = v;
    } else if (a == "--user") {
      user = v;
    } else if (a == "--principal-kind") {
      policy::PrincipalKind k;
      if (!ParseKind(v, &k)) {
        err << "--principal-kind must be agent or human\n";
        return kExitUsage;
      }
      kind = k;
    } else if (a == "--mode") {
      if (v == "enforce") {
        mode = policy::Mode::kEnforce;
      } else if (v == "monitor") {
        mode = policy::Mode::kMonitor;
      } else {
        err << "--mode must be enforce or monitor\n";
        return kExitUsage;
      }
    } else {
      EvalUsage(err);
      return kExitUsage;
    }
  }
  auto loaded = policy::LoadPolicy(files, mode);
  if (!loaded.ok()) {
    err << loaded.status().message() << "\n";
    return kExitUsage;
  }
  const policy::CompiledPolicy& policy = **loaded;
  sql::Analyzer analyzer;
  int rc = kExitOk;
  std::string line;
  size_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (Blank(line)) continue;
    api::EvalInput input;
    input.target = target;
    input.principal.db_user = user;
    input.principal.subject = user;
    input.kind = kind;
    if (line[line.find_first_not_of(" \t")] == '{') {
      if (Status st = api::ParseEvalInput(line, &input); !st.ok()) {
        out << ErrorJson(line_no, "line " + std::to_string(line_no) + ": " + st.message())
            << std::endl;
        rc = kExitUsage;
        continue;
      }
    } else {
      input.sql = line;
    }
    // An explicit kind wins; otherwise the policy's principals.agents decide, as in the relay.
    if (input.kind) {
      input.principal.kind = *input.kind;
    } else {
      policy.Classify(&input.principal);
    }
    auto facts = api::EvalFacts(input, &analyzer);
    policy::Decision d =
        policy.Evaluate(input.target, input.principal, *facts, std::chrono::system_clock::now());
    // Flushed per line so a caller can feed statements one at a time and read each answer.
    out << api::DecisionJson(d, input.principal.kind, *facts, input.id) << std::endl;
  }
  return rc;
}

int PolicyEvalMain(const std::vector<std::string>& args) {
  std::ios::sync_with_stdio(false);
  return PolicyEvalMain(args, std::cin, std::cout, std::cerr);
}

}  // namespace dbw::agent
