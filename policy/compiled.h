// The compiled policy: rules and agent matchers in the form the evaluator runs, built once by the
// loader and never changed afterwards (a reload builds a new one).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "policy/glob.h"
#include "policy/masking.h"
#include "policy/policy.h"

namespace dbw::policy {

// Identity keys; every non-empty list must have a match (AND), any entry of a list will do (OR).
struct PrincipalMatcher {
  std::optional<PrincipalKind> kind;
  std::vector<Glob> subject, groups, db_user, database, application_name, client_addr, cert_subject,
      cert_san, cert_issuer, issuer, exe, unit, container;
  // claims: {name: [globs]}: the token has the claim and one of its values matches one glob.
  std::vector<std::pair<std::string, std::vector<Glob>>> claims;
  bool Matches(const Principal& p) const;
};

struct StatementMatcher {
  uint64_t commands = 0;  // bit (1 << sql::Command); 0 = any command
  uint32_t risks = 0;     // any of these risk bits; 0 = no risk condition
  std::vector<Glob> object_kinds;
  std::vector<QualifiedGlob> tables, tables_read, tables_written, functions;
  bool QuickMatches(const sql::StatementFacts& s) const;  // commands and risks only
  bool Matches(const sql::StatementFacts& s) const;       // the rest
};

struct TimeWindow {
  bool present = false;
  uint8_t days = 0x7f;  // bit 0 = Sunday ... bit 6 = Saturday
  int start_minute = 0;
  int end_minute = 24 * 60;  // exclusive; start > end means the window runs past midnight
  int offset_seconds = 0;    // east of UTC
  bool Matches(std::chrono::system_clock::time_point now) const;
};

struct Matcher {
  std::vector<Glob> target, env;
  PrincipalMatcher principal;
  StatementMatcher statement;
  TimeWindow time;
  bool Matches(const Target& target, const Principal& principal, const sql::StatementFacts& s,
               std::chrono::system_clock::time_point now) const;
};

struct Rule {
  std::string id;
  std::string description;
  std::string message;
  std::string sqlstate;  // deny only; "42501" unless the rule says otherwise
  std::string file;
  int line = 0;
  int priority = 0;
  Action action = Action::kAllow;
  Matcher match;
  std::vector<Matcher> exclude;  // `match.not`: any one of them excludes the statement
  std::optional<ApprovalSpec> approval;
  // action: limit. Such a rule decides nothing; it bounds what an allowed statement does.
  std::optional<EffectLimits> limits;
  std::string reason;  // precomputed: "denied by rule ID: MESSAGE"
  bool Matches(const Target& target, const Principal& principal, const sql::StatementFacts& s,
               std::chrono::system_clock::time_point now) const;
};

// A `masking` entry: which principals on which targets it covers, and what it masks.
struct MaskingRule {
  std::string id;
  std::string file;
  int line = 0;
  std::vector<Glob> target, env;
  PrincipalMatcher principal;            // empty: every principal
  std::vector<PrincipalMatcher> except;  // any one exempts the principal
  std::vector<ColumnGlob> columns;
  std::vector<Glob> result_columns;
  std::vector<masking::DetectorRule> detectors;  // built-in and custom, each with `mask`
  masking::MaskSpec mask;                        // rule_id = id
  bool Applies(const Target& target, const Principal& principal) const;
};

struct PolicyData {
  std::vector<Rule> rules;
  std::vector<PrincipalMatcher> agents;  // principals.agents entries, any one makes an agent
  // principals.groups: group name -> matchers, any one puts a principal in the group.
  std::vector<std::pair<std::string, std::vector<PrincipalMatcher>>> groups;
  std::vector<MaskingRule> masking;
  std::string source;
  Mode mode = Mode::kEnforce;
};

std::shared_ptr<const CompiledPolicy> MakeCompiledPolicy(PolicyData data);

}  // namespace dbw::policy
