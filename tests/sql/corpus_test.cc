// Runs tests/testdata/sql/corpus.jsonl through the analyzer and checks each line's expected
// facts: commands, object kind, the exact risk set, tables and functions (when given), and that
// no literal survives in the normalized text. Decisions ("agent"/"human") are policy's to check.
#include <simdjson.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "userspace/sql/analyzer.h"
#include "userspace/sql/shape.h"

namespace dbw::sql {
namespace {

struct Case {
  int line = 0;
  std::string sql;
  std::string json;
};

std::vector<Case> LoadCorpus() {
  std::ifstream in(std::string(DBW_TESTDATA) + "/sql/corpus.jsonl");
  std::vector<Case> out;
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.empty()) continue;
    out.push_back(Case{n, {}, line});
  }
  return out;
}

std::set<std::string> Strings(simdjson::dom::array a) {
  std::set<std::string> out;
  for (auto e : a) {
    std::string_view s;
    if (e.get_string().get(s) == simdjson::SUCCESS) out.emplace(s);
  }
  return out;
}

std::string Join(const std::set<std::string>& s) {
  std::string out;
  for (const auto& x : s) out += (out.empty() ? "" : ",") + x;
  return "[" + out + "]";
}

void CheckFacts(const QueryFacts& q, simdjson::dom::object e, const std::string& where) {
  std::vector<std::string> commands;
  for (const auto& s : q.statements) commands.emplace_back(CommandName(s.command));
  simdjson::dom::array arr;
  std::string_view str;
  if (e["commands"].get(arr) == simdjson::SUCCESS) {
    std::vector<std::string> want;
    for (auto c : arr) want.emplace_back(std::string_view(c.get_string().value_unsafe()));
    EXPECT_EQ(commands, want) << where;
  }
  if (e["command"].get(str) == simdjson::SUCCESS) {
    ASSERT_FALSE(q.statements.empty()) << where;
    EXPECT_EQ(CommandName(q.statements[0].command), str) << where;
  }
  if (e["object_kind"].get(str) == simdjson::SUCCESS && !q.statements.empty()) {
    EXPECT_EQ(q.statements[0].object_kind, str) << where;
  }

  std::set<std::string> risks, read, written, functions;
  for (auto r : RiskNames(q.AllRisks())) risks.emplace(r);
  for (const auto& s : q.statements) {
    for (const auto& t : s.tables_read) read.insert(t.Qualified());
    for (const auto& t : s.tables_written) written.insert(t.Qualified());
    functions.insert(s.functions.begin(), s.functions.end());
  }
  ASSERT_EQ(e["risks"].get(arr), simdjson::SUCCESS) << where;
  EXPECT_EQ(Join(risks), Join(Strings(arr))) << where;
  if (e["tables_read"].get(arr) == simdjson::SUCCESS) {
    EXPECT_EQ(Join(read), Join(Strings(arr))) << where;
  }
  if (e["tables_written"].get(arr) == simdjson::SUCCESS) {
    EXPECT_EQ(Join(written), Join(Strings(arr))) << where;
  }
  if (e["functions"].get(arr) == simdjson::SUCCESS) {
    EXPECT_EQ(Join(functions), Join(Strings(arr))) << where;
  }

  // The audit log keeps `normalized`: no literal may survive in it.
  for (const auto& s : q.statements) {
    if (e["secret"].get(str) == simdjson::SUCCESS) {
      EXPECT_EQ(s.normalized.find(str), std::string::npos)
          << where << " normalized=" << s.normalized;
    }
    if (s.command != Command::kUnparseable) {
      EXPECT_EQ(ScrubLiterals(s.normalized, ScrubStyle::kParams, 1000), s.normalized)
          << where << " literal left in: " << s.normalized;
      EXPECT_FALSE(s.fingerprint_hex.empty()) << where;
    }
  }
}

TEST(CorpusTest, EveryLineMatches) {
  std::vector<Case> cases = LoadCorpus();
  ASSERT_GE(cases.size(), 220u);
  simdjson::dom::parser parser;
  Analyzer cached(64);  // small: exercises eviction while the corpus runs twice
  for (int pass = 0; pass < 2; ++pass) {
    for (const auto& c : cases) {
      simdjson::dom::object e;
      ASSERT_EQ(parser.parse(c.json).get(e), simdjson::SUCCESS) << "line " << c.line;
      std::string_view sql;
      ASSERT_EQ(e["sql"].get(sql), simdjson::SUCCESS) << "line " << c.line;
      std::string_view d;
      ASSERT_EQ(e["agent"].get(d), simdjson::SUCCESS) << "line " << c.line;
      ASSERT_EQ(e["human"].get(d), simdjson::SUCCESS) << "line " << c.line;
      std::ostringstream where;
      where << "corpus line " << c.line << ": " << sql;
      auto uncached = AnalyzeUncached(sql);
      if (pass == 0) CheckFacts(*uncached, e, where.str());
      // The cache must answer exactly what a fresh analysis does.
      auto hit = cached.Analyze(sql);
      CheckFacts(*hit, e, where.str() + " (cached)");
    }
  }
  EXPECT_GT(cached.hits(), 0u);
}

}  // namespace
}  // namespace dbw::sql
