// The Analyzer's cache: hits for literal-only variants, misses for new shapes, no caching of
// literal-sensitive or unparseable facts, LRU eviction at capacity.
#include <string>

#include <gtest/gtest.h>

#include "userspace/sql/analyzer.h"

namespace dbw::sql {
namespace {

TEST(AnalyzerCacheTest, LiteralVariantsHit) {
  Analyzer a(16);
  auto f1 = a.Analyze("SELECT abalance FROM pgbench_accounts WHERE aid = 1;");
  auto f2 = a.Analyze("SELECT abalance FROM pgbench_accounts WHERE aid = 99999;");
  EXPECT_EQ(a.misses(), 1u);
  EXPECT_EQ(a.hits(), 1u);
  EXPECT_EQ(f1.get(), f2.get());  // the same cached facts
  ASSERT_EQ(f2->statements.size(), 1u);
  EXPECT_EQ(f2->statements[0].command, Command::kSelect);
  EXPECT_EQ(f2->statements[0].normalized, "SELECT abalance FROM pgbench_accounts WHERE aid = $1;");
}

TEST(AnalyzerCacheTest, DifferentShapesMiss) {
  Analyzer a(16);
  a.Analyze("DELETE FROM t WHERE id = 1");
  auto d = a.Analyze("DELETE FROM t");
  EXPECT_EQ(a.misses(), 2u);
  EXPECT_TRUE(d->statements[0].Has(kRiskNoWhere));
  auto e = a.Analyze("DELETE FROM t WHERE id = 2");
  EXPECT_EQ(a.hits(), 1u);
  EXPECT_FALSE(e->statements[0].Has(kRiskNoWhere));
}

TEST(AnalyzerCacheTest, LiteralSensitiveFactsAreNotCached) {
  Analyzer a(16);
  auto t = a.Analyze("DELETE FROM t WHERE 1 = 1");
  EXPECT_TRUE(t->literal_sensitive);
  EXPECT_TRUE(t->statements[0].Has(kRiskNoWhere));
  auto f = a.Analyze("DELETE FROM t WHERE 1 = 0");  // same shape, other answer
  EXPECT_FALSE(f->statements[0].Has(kRiskNoWhere));
  auto t2 = a.Analyze("DELETE FROM t WHERE 2 = 2");
  EXPECT_TRUE(t2->statements[0].Has(kRiskNoWhere));
  EXPECT_EQ(a.hits(), 0u);
  EXPECT_EQ(a.size(), 0u);
}

TEST(AnalyzerCacheTest, UnparseableIsNotCached) {
  Analyzer a(16);
  auto u = a.Analyze("SELEC 'secret'");
  EXPECT_TRUE(u->unparseable);
  EXPECT_EQ(u->statements[0].command, Command::kUnparseable);
  EXPECT_EQ(u->statements[0].normalized.find("secret"), std::string::npos);
  EXPECT_EQ(a.size(), 0u);
}

TEST(AnalyzerCacheTest, UnterminatedTextNeverHitsACompleteShape) {
  // Once the complete statement is cached, its unterminated twin must still be analysed (and
  // fail closed as unparseable), never answered with the cached facts.
  const std::pair<const char*, const char*> cases[] = {
      {"SELECT 'x'", "SELECT 'unterminated"}, {"SELECT $$a$$", "SELECT $$never closed"},
      {"SELECT E'a'", "SELECT E'b\\'"},       {"SELECT 1 /* c */", "SELECT 1 /* open"},
      {"SELECT \"t\"", "SELECT \"t"},         {"SELECT $q$a$q$", "SELECT $q$a"},
  };
  for (const auto& [complete, open] : cases) {
    Analyzer a(16);
    EXPECT_FALSE(a.Analyze(complete)->unparseable) << complete;
    auto f = a.Analyze(open);
    EXPECT_EQ(a.hits(), 0u) << open;
    EXPECT_TRUE(f->unparseable) << open;
    EXPECT_NE(ShapeKey(complete), ShapeKey(open)) << open;
  }
}

TEST(AnalyzerCacheTest, UnterminatedQuotedNameDoesNotLeakLiteralsIntoNormalizedText) {
  Analyzer a(16);
  auto f = a.Analyze("SELECT \"x FROM t WHERE pw = 'hunter2'");
  ASSERT_TRUE(f->unparseable);
  ASSERT_EQ(f->statements.size(), 1u);
  EXPECT_EQ(f->statements[0].normalized.find("hunter2"), std::string::npos)
      << f->statements[0].normalized;
}

TEST(AnalyzerCacheTest, EvictsLeastRecentlyUsed) {
  Analyzer a(2);
  a.Analyze("SELECT 1 FROM a WHERE x = 1");
  a.Analyze("SELECT 1 FROM b WHERE x = 1");
  a.Analyze("SELECT 1 FROM a WHERE x = 2");  // hit: a is now most recent
  a.Analyze("SELECT 1 FROM c WHERE x = 1");  // evicts b
  EXPECT_EQ(a.size(), 2u);
  EXPECT_EQ(a.hits(), 1u);
  a.Analyze("SELECT 1 FROM a WHERE x = 3");  // still cached
  EXPECT_EQ(a.hits(), 2u);
  a.Analyze("SELECT 1 FROM b WHERE x = 3");  // was evicted
  EXPECT_EQ(a.hits(), 2u);
  EXPECT_EQ(a.misses(), 4u);
}

TEST(AnalyzerCacheTest, ZeroCapacityNeverCaches) {
  Analyzer a(0);
  a.Analyze("SELECT 1");
  a.Analyze("SELECT 2");
  EXPECT_EQ(a.hits(), 0u);
  EXPECT_EQ(a.size(), 0u);
}

TEST(AnalyzerTest, NulByteIsUnparseable) {
  auto f = AnalyzeUncached(std::string_view("SELECT 1;\0DROP TABLE t", 22));
  EXPECT_TRUE(f->unparseable);
  EXPECT_TRUE(f->statements[0].Has(kRiskUnparseable));
}

TEST(AnalyzerTest, MultiStatementNormalizesEachStatement) {
  auto f = AnalyzeUncached("SELECT 'a' FROM t WHERE id = 5; /* x */ DELETE FROM t WHERE id = 6");
  ASSERT_EQ(f->statements.size(), 2u);
  EXPECT_EQ(f->statements[0].normalized, "SELECT $1 FROM t WHERE id = $2");
  EXPECT_EQ(f->statements[1].normalized, "DELETE FROM t WHERE id = $1");
  EXPECT_NE(f->statements[0].fingerprint, f->statements[1].fingerprint);
  EXPECT_EQ(f->statements[0].fingerprint_hex.size(), 16u);
}

TEST(AnalyzerTest, PrepareCarriesTheInnerStatement) {
  auto f = AnalyzeUncached("PREPARE wipe AS DELETE FROM t");
  ASSERT_EQ(f->statements.size(), 1u);
  const auto& s = f->statements[0];
  EXPECT_EQ(s.command, Command::kPrepare);
  EXPECT_EQ(s.prepare_name, "wipe");
  ASSERT_NE(s.prepared, nullptr);
  EXPECT_EQ(s.prepared->command, Command::kDelete);
  EXPECT_TRUE(s.prepared->Has(kRiskNoWhere));
  EXPECT_TRUE(s.Has(kRiskNoWhere));
}

TEST(AnalyzerTest, DeepNestingFailsClosed) {
  std::string deep = "SELECT " + std::string(5000, '(') + "1" + std::string(5000, ')');
  auto f = AnalyzeUncached(deep);
  ASSERT_EQ(f->statements.size(), 1u);  // either analysed or unparseable; never a crash
}

// COPY's output options: masking splits COPY rows by them, so they must be read, and never
// taken from a cached statement that differed only in the delimiter literal.
TEST(AnalyzerTest, CopyOutputOptions) {
  auto facts = [](std::string_view sql) { return AnalyzeUncached(sql)->statements.at(0); };
  StatementFacts plain = facts("COPY t TO STDOUT");
  EXPECT_FALSE(plain.copy_csv);
  EXPECT_EQ(plain.copy_delimiter, '\t');
  EXPECT_FALSE(plain.copy_header);

  StatementFacts csv = facts("COPY t (a, b) TO STDOUT (FORMAT csv, HEADER)");
  EXPECT_TRUE(csv.copy_csv);
  EXPECT_EQ(csv.copy_delimiter, ',');
  EXPECT_EQ(csv.copy_quote, '"');
  EXPECT_EQ(csv.copy_escape, '"');
  EXPECT_TRUE(csv.copy_header);

  StatementFacts old = facts(R"(COPY t TO STDOUT WITH CSV DELIMITER ';' QUOTE '''' ESCAPE '\')");
  EXPECT_TRUE(old.copy_csv);
  EXPECT_EQ(old.copy_delimiter, ';');
  EXPECT_EQ(old.copy_quote, '\'');
  EXPECT_EQ(old.copy_escape, '\\');

  EXPECT_EQ(facts("COPY t TO STDOUT (DELIMITER '|')").copy_delimiter, '|');
  EXPECT_FALSE(facts("COPY t TO STDOUT (FORMAT csv, HEADER false)").copy_header);
  EXPECT_FALSE(facts("COPY t TO STDOUT (FORMAT csv, HEADER 0)").copy_header);
  EXPECT_TRUE(facts("COPY t TO STDOUT (FORMAT csv, HEADER 1)").copy_header);
  EXPECT_TRUE(facts("COPY t TO STDOUT (FORMAT text, HEADER match)").copy_header);

  Analyzer cache(16);
  EXPECT_EQ(cache.Analyze("COPY t TO STDOUT (DELIMITER '|')")->statements.at(0).copy_delimiter,
            '|');
  EXPECT_EQ(cache.Analyze("COPY t TO STDOUT (DELIMITER ',')")->statements.at(0).copy_delimiter,
            ',');
}

TEST(NamesTest, RoundTrip) {
  Command c;
  ASSERT_TRUE(ParseCommandName("delete", &c));
  EXPECT_EQ(c, Command::kDelete);
  EXPECT_EQ(CommandName(Command::kRole), "ROLE");
  Risk r;
  ASSERT_TRUE(ParseRiskName("no_where", &r));
  EXPECT_EQ(r, kRiskNoWhere);
  EXPECT_FALSE(ParseRiskName("nope", &r));
  EXPECT_EQ(RiskNames(kRiskWrite | kRiskNoWhere).size(), 2u);
}

}  // namespace
}  // namespace dbw::sql
