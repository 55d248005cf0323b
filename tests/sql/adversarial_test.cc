// The adversarial corpus (tests/testdata/sql/adversarial.jsonl, written by adversarial.py: 170
// statements by attack class and their mutated variants): every mass write carries `no_where`,
// every whole-table read `unbounded_select`, every role or row-security change
// `privilege_change`, and the false-positive set none of them. And the cache property: over this
// corpus and the facts corpus, facts from a cache hit equal facts computed fresh, whatever the
// literals of the statement that filled the cache.
#include <simdjson.h>

#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "userspace/sql/analyzer.h"

namespace dbw::sql {
namespace {

struct Line {
  int number = 0;
  std::string cls, expect, sql;
};

std::vector<Line> Load(const std::string& name) {
  std::ifstream in(std::string(DBW_TESTDATA) + "/sql/" + name);
  std::vector<Line> out;
  simdjson::dom::parser parser;
  std::string text;
  int n = 0;
  while (std::getline(in, text)) {
    ++n;
    if (text.empty()) continue;
    simdjson::dom::object o;
    if (parser.parse(text).get(o) != simdjson::SUCCESS) {
      ADD_FAILURE() << name << ":" << n << " does not parse";
      continue;
    }
    Line l;
    l.number = n;
    std::string_view v;
    if (o["sql"].get(v) == simdjson::SUCCESS) l.sql = std::string(v);
    if (o["class"].get(v) == simdjson::SUCCESS) l.cls = std::string(v);
    if (o["expect"].get(v) == simdjson::SUCCESS) l.expect = std::string(v);
    out.push_back(std::move(l));
  }
  return out;
}

TEST(AdversarialCorpusTest, EveryStatementIsJudgedByItsRealEffect) {
  std::vector<Line> lines = Load("adversarial.jsonl");
  ASSERT_GE(lines.size(), 500u);
  std::map<std::string, int> missed;
  for (const Line& l : lines) {
    auto facts = AnalyzeUncached(l.sql);
    const uint32_t r = facts->AllRisks();
    const bool no_where = r & kRiskNoWhere, unbounded = r & kRiskUnboundedSelect,
               privilege = r & kRiskPrivilegeChange;
    // Text the parser rejects is denied on prod for everyone: as good as the specific risk.
    const bool unparseable = r & kRiskUnparseable;
    bool ok = true;
    if (l.expect == "mass_write") ok = no_where || unparseable;
    if (l.expect == "mass_read") ok = unbounded || unparseable;
    if (l.expect == "privilege") ok = privilege || unparseable;
    if (l.expect == "dynamic") ok = (r & kRiskDynamicSql) || unparseable;
    // runtime: the analysis rightly allows it; the row budget stops it (test_guardrail_oracle).
    if (l.expect == "safe" || l.expect == "runtime") ok = !no_where && !unbounded && !privilege;
    // grouped: unbounded by its text, with what it groups by for the relay's statistics.
    if (l.expect == "grouped")
      ok = unbounded && facts->statements.size() == 1 && facts->statements.front().grouped;
    if (!ok) ++missed[l.cls];
    std::string risks;
    for (auto n : RiskNames(r)) risks += std::string(n) + " ";
    EXPECT_TRUE(ok) << "adversarial.jsonl:" << l.number << " [" << l.cls << ", " << l.expect << "] "
                    << l.sql << "\n  risks: " << risks;
  }
  for (const auto& [cls, n] : missed) ADD_FAILURE() << cls << ": " << n << " misjudged";
}

// Replaces every number and string literal in `sql` with another value of the same kind.
std::string MutateLiterals(const std::string& sql, std::mt19937* rng) {
  static const char* kStrings[] = {"", "x", "%", "a%", "%%", "yes", "0", "/etc/passwd", ".*"};
  static const char* kNumbers[] = {"0",          "1",           "7",   "1000001", "2147483646",
                                   "2147483648", "99999999999", "1.5", "1e9",     "3"};
  std::string out;
  for (size_t i = 0; i < sql.size();) {
    char c = sql[i];
    if (c == '\'') {
      size_t j = i + 1;
      while (j < sql.size()) {
        if (sql[j] == '\'' && j + 1 < sql.size() && sql[j + 1] == '\'') {
          j += 2;
          continue;
        }
        if (sql[j] == '\'') break;
        ++j;
      }
      // E'', U&'' and dollar quotes are left alone by this simple mutator.
      bool prefixed = i > 0 && (std::isalnum(static_cast<unsigned char>(sql[i - 1])) != 0);
      if (prefixed || j >= sql.size()) {
        out.append(sql, i, j + 1 - i);
      } else {
        out += "'" + std::string(kStrings[(*rng)() % std::size(kStrings)]) + "'";
      }
      i = j + 1;
      continue;
    }
    bool word_before = i > 0 && (std::isalnum(static_cast<unsigned char>(sql[i - 1])) != 0 ||
                                 sql[i - 1] == '_' || sql[i - 1] == '$' || sql[i - 1] == '.');
    if (std::isdigit(static_cast<unsigned char>(c)) != 0 && !word_before) {
      size_t j = i;
      while (j < sql.size() &&
             (std::isalnum(static_cast<unsigned char>(sql[j])) != 0 || sql[j] == '.'))
        ++j;
      out += kNumbers[(*rng)() % std::size(kNumbers)];
      i = j;
      continue;
    }
    out.push_back(c);
    ++i;
  }
  return out;
}

std::string Summary(const QueryFacts& q) {
  std::string s;
  for (const auto& st : q.statements) {
    s += std::string(CommandName(st.command)) + "/" + st.object_kind + " risks=";
    for (auto n : RiskNames(st.risks)) s += std::string(n) + ",";
    s += " read=";
    for (const auto& t : st.tables_read) s += t.Qualified() + ",";
    s += " written=";
    for (const auto& t : st.tables_written) s += t.Qualified() + ",";
    s += " fn=";
    for (const auto& f : st.functions) s += f + ",";
    s += "; ";
  }
  return s;
}

TEST(AdversarialCorpusTest, CacheHitsEqualFreshFactsWhateverTheLiterals) {
  std::vector<std::string> statements;
  for (const auto& l : Load("adversarial.jsonl")) statements.push_back(l.sql);
  std::ifstream in(std::string(DBW_TESTDATA) + "/sql/corpus.jsonl");
  simdjson::dom::parser parser;
  std::string text;
  while (std::getline(in, text)) {
    simdjson::dom::object o;
    std::string_view sql;
    if (parser.parse(text).get(o) == simdjson::SUCCESS && o["sql"].get(sql) == simdjson::SUCCESS)
      statements.emplace_back(sql);
  }
  std::mt19937 rng(16);
  size_t hits_checked = 0;
  for (const std::string& sql : statements) {
    for (int round = 0; round < 3; ++round) {
      Analyzer cache(8);
      std::string filler = MutateLiterals(sql, &rng);
      cache.Analyze(filler);  // fills the cache under the shape, with other literals
      const uint64_t hits = cache.hits();
      auto from_cache = cache.Analyze(sql);
      if (cache.hits() > hits) ++hits_checked;
      auto fresh = AnalyzeUncached(sql);
      ASSERT_EQ(Summary(*from_cache), Summary(*fresh)) << sql << "\n  cache filled by: " << filler;
    }
  }
  EXPECT_GT(hits_checked, 300u);  // the property was exercised on real hits
}

}  // namespace
}  // namespace dbw::sql

namespace dbw::sql {
namespace {

// GROUP BY reads: unbounded by the text, and what the relay needs to lift that by statistics.
TEST(GroupedReadTest, WhatAGroupByIsMadeOf) {
  auto facts = [](const std::string& sql) { return AnalyzeUncached(sql)->statements.front(); };
  auto columns = [](const StatementFacts& s) {
    std::vector<std::string> out;
    for (const auto& g : s.group_columns) out.push_back(g.table.Qualified() + "." + g.column);
    return out;
  };
  StatementFacts s =
      facts("SELECT o.status, count(*) FROM public.orders o GROUP BY 1, ROLLUP(o.user_id), ()");
  EXPECT_TRUE(s.Has(kRiskUnboundedSelect));
  EXPECT_TRUE(s.grouped);
  EXPECT_EQ(columns(s),
            (std::vector<std::string>{"public.orders.status", "public.orders.user_id"}));
  s = facts("SELECT upper(status), avg(total) FROM orders GROUP BY upper(status), 'x'");
  EXPECT_TRUE(s.grouped);
  EXPECT_EQ(columns(s), (std::vector<std::string>{"orders.status"}));
  // Keys the analysis cannot tie to a table's column: still unbounded, nothing to lift.
  for (const char* sql :
       {"SELECT status, count(*) FROM orders o JOIN users u ON true GROUP BY status",
        "SELECT s, count(*) FROM (SELECT status s FROM orders) x GROUP BY s",
        "WITH o AS (SELECT * FROM orders) SELECT status, count(*) FROM o GROUP BY status",
        "SELECT status, count(*) FROM orders GROUP BY (SELECT 1)",
        "SELECT status, string_agg(note, ',') FROM orders GROUP BY status",
        "SELECT status, (SELECT json_agg(u) FROM users u) FROM orders GROUP BY status"}) {
    s = facts(sql);
    EXPECT_TRUE(s.Has(kRiskUnboundedSelect)) << sql;
    EXPECT_FALSE(s.grouped) << sql;
    EXPECT_TRUE(s.group_columns.empty()) << sql;
  }
  // Bounded anyway: nothing to lift.
  for (const char* sql : {"SELECT status, count(*) FROM orders GROUP BY status LIMIT 5",
                          "SELECT status, count(*) FROM orders WHERE id = 5 GROUP BY status",
                          "SELECT count(*) FROM orders"}) {
    s = facts(sql);
    EXPECT_FALSE(s.Has(kRiskUnboundedSelect)) << sql;
    EXPECT_FALSE(s.grouped) << sql;
  }
}

}  // namespace
}  // namespace dbw::sql
