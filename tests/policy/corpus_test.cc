// The SQL corpus (tests/testdata/sql/corpus.jsonl, written with the analyser) under the default
// pack: every statement analysed with dbw::sql::Analyzer must get the recorded decision for an
// agent and for a human on a prod target, and be allowed on staging.
#include <simdjson.h>

#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "policy/policy.h"
#include "userspace/sql/analyzer.h"

namespace dbw::policy {
namespace {

// The corpus records a decision as "deny", or as {"action": "deny", ...}.
bool ExpectedAction(simdjson::dom::object obj, const char* key, std::string* out) {
  simdjson::dom::element v;
  if (obj[key].get(v) != simdjson::SUCCESS) return false;
  std::string_view s;
  if (v.get_string().get(s) == simdjson::SUCCESS ||
      v["action"].get_string().get(s) == simdjson::SUCCESS) {
    *out = std::string(s);
    return true;
  }
  return false;
}

TEST(PolicyCorpusTest, DefaultPackDecisions) {
  const std::string path = std::string(DBW_TESTDATA) + "/sql/corpus.jsonl";
  std::ifstream in(path);
  ASSERT_TRUE(in) << "cannot open " << path;
  auto loaded = LoadPolicy({}, Mode::kEnforce);
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  const CompiledPolicy& policy = **loaded;

  Principal agent, human;
  agent.kind = PrincipalKind::kAgent;
  agent.db_user = agent.subject = "svc_ai";
  human.kind = PrincipalKind::kHuman;
  human.db_user = human.subject = "alice";
  const Target prod{"orders", "prod"};
  const Target staging{"orders", "staging"};
  const auto now = std::chrono::system_clock::now();

  sql::Analyzer analyzer;
  simdjson::dom::parser parser;
  std::string line;
  size_t line_no = 0, checked = 0, failures = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    simdjson::dom::object obj;
    ASSERT_EQ(parser.parse(line).get(obj), simdjson::SUCCESS) << path << ":" << line_no;
    std::string_view sql_text;
    ASSERT_EQ(obj["sql"].get_string().get(sql_text), simdjson::SUCCESS) << path << ":" << line_no;
    std::string want_agent, want_human;
    ASSERT_TRUE(ExpectedAction(obj, "agent", &want_agent)) << path << ":" << line_no;
    ASSERT_TRUE(ExpectedAction(obj, "human", &want_human)) << path << ":" << line_no;
    const std::string sql(sql_text);

    auto facts = analyzer.Analyze(sql);
    Decision a = policy.Evaluate(prod, agent, *facts, now);
    Decision h = policy.Evaluate(prod, human, *facts, now);
    bool ok = ActionName(a.action) == want_agent && ActionName(h.action) == want_human;
    EXPECT_TRUE(ok) << path << ":" << line_no << ": " << sql << "\n  agent: want " << want_agent
                    << ", got " << ActionName(a.action) << " (" << a.reason << ")\n  human: want "
                    << want_human << ", got " << ActionName(h.action) << " (" << h.reason << ")";
    failures += !ok;
    for (const Principal* p : {&agent, &human}) {
      Decision s = policy.Evaluate(staging, *p, *facts, now);
      EXPECT_EQ(s.action, Action::kAllow) << path << ":" << line_no << " on staging: " << sql;
      EXPECT_TRUE(s.rules.empty());
    }
    ++checked;
  }
  EXPECT_GE(checked, 200u) << "the corpus should hold at least 200 statements";
  std::printf("corpus: %zu statements, %zu mismatches\n", checked, failures);
}

}  // namespace
}  // namespace dbw::policy
