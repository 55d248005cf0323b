// Prepared statements judged with their values: substitution on the lexer's tokens (params.h),
// a Bind's values read by type and format, a Parse or PREPARE deferred only when some value could
// lift its refusal, EXECUTE judged with its arguments (also inside EXPLAIN ANALYZE and CREATE
// TABLE AS), and the bound-values corpus (tests/testdata/sql/bound_values.jsonl, written by
// adversarial.py): each statement with the values of one Bind carries exactly the risks its real
// effect calls for.
#include <simdjson.h>

#include <bit>
#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/gate/test_util.h"
#include "userspace/gate/statement_gate.h"
#include "userspace/sql/params.h"

namespace dbw::gate {
namespace {

using sql::Command;
using Values = std::vector<std::string>;

// ---- params.h ----

TEST(ParamsTest, SubstitutesParametersOutsideLiteralsAndComments) {
  EXPECT_EQ(sql::SubstituteParams("DELETE FROM t WHERE id > $1", {"5"}),
            "DELETE FROM t WHERE id > (5)");
  // In strings, quoted names, dollar quotes and comments `$1` is text.
  EXPECT_EQ(sql::SubstituteParams("SELECT '$1', \"$1\", $q$ $1 $q$, $1 -- $1\n/* $1 */", {"'a'"}),
            "SELECT '$1', \"$1\", $q$ $1 $q$, ('a') -- $1\n/* $1 */");
  // Every occurrence; unknown values ("") and parameters beyond the values stay.
  EXPECT_EQ(sql::SubstituteParams("SELECT $1 + $1, $2, $3", {"1", ""}), "SELECT (1) + (1), $2, $3");
  // `x-$1` with a negative value must not become a comment.
  EXPECT_EQ(sql::SubstituteParams("SELECT x-$1", {"-5"}), "SELECT x-(-5)");
  EXPECT_EQ(sql::SubstituteParams("SELECT '$1", {"1"}), std::nullopt);  // unterminated
}

TEST(ParamsTest, LiteralsOfBoundValues) {
  EXPECT_EQ(sql::BoundLiteral("-2147483648", false), "-2147483648");
  EXPECT_EQ(sql::BoundLiteral("+1.5e3", false), "1.5e3");
  EXPECT_EQ(sql::BoundLiteral("0195", false), "0195");
  // Not a number as PostgreSQL's lexer reads one: a string.
  EXPECT_EQ(sql::BoundLiteral(" 1", false), "' 1'");
  EXPECT_EQ(sql::BoundLiteral("1e", false), "'1e'");
  EXPECT_EQ(sql::BoundLiteral("NaN", false), "'NaN'");
  EXPECT_EQ(sql::BoundLiteral("", false), "''");
  // A string parameter keeps digits as a string; quotes are doubled, backslashes are text.
  EXPECT_EQ(sql::BoundLiteral("5", true), "'5'");
  EXPECT_EQ(sql::BoundLiteral("o'brien\\'); DROP", true), "'o''brien\\''); DROP'");
}

TEST(ParamsTest, ExecuteArguments) {
  using Args = std::optional<std::vector<std::string>>;
  EXPECT_EQ(sql::ExecuteArguments("EXECUTE p"), Args(std::vector<std::string>{}));
  EXPECT_EQ(sql::ExecuteArguments("EXECUTE p(1, 'a,b', f(2, 3), ARRAY[4,5])"),
            Args({"1", "'a,b'", "f(2, 3)", "ARRAY[4,5]"}));
  EXPECT_EQ(sql::ExecuteArguments("execute \"P\" ( -1 /* , */ ,(SELECT min(id) FROM t))"),
            Args({"-1", "(SELECT min(id) FROM t)"}));
  EXPECT_EQ(sql::ExecuteArguments("EXPLAIN (ANALYZE, COSTS off) EXECUTE p(7)"), Args({"7"}));
  EXPECT_EQ(sql::ExecuteArguments("CREATE TABLE execute AS EXECUTE execute(8) WITH NO DATA"),
            Args({"8"}));
  EXPECT_EQ(sql::ExecuteArguments("EXECUTE p(1,)"), std::nullopt);
  EXPECT_EQ(sql::ExecuteArguments("EXECUTE p(1"), std::nullopt);
  EXPECT_EQ(sql::ExecuteArguments("SELECT 1"), std::nullopt);
}

TEST(ParamsTest, PreparedText) {
  EXPECT_EQ(sql::PreparedText("PREPARE p(int, numeric(10, 2)) AS DELETE FROM t WHERE id > $1"),
            "DELETE FROM t WHERE id > $1");
  EXPECT_EQ(sql::PreparedText("prepare p as select 1"), "select 1");
  EXPECT_EQ(sql::PreparedText("PREPARE p"), std::nullopt);
}

// ---- The gate ----

using testing::Agent;
using testing::kProd;
using testing::Pack;
constexpr uint32_t kValueRisks = sql::kRiskNoWhere | sql::kRiskUnboundedSelect;

std::span<const std::byte> Bytes(const std::string& s) {
  return std::as_bytes(std::span<const char>(s.data(), s.size()));
}

class BoundTest : public ::testing::Test {
 protected:
  void SetUp() override { testing::Start(&gate_); }
  // A Parse's statement as the relay defers it: with its text as `source`.
  sql::StatementFacts Parsed(const std::string& text) {
    auto facts = gate_.Facts(text);
    EXPECT_EQ(facts->statements.size(), 1u) << text;
    sql::StatementFacts def = facts->statements.front();
    def.source = text;
    return def;
  }
  uint32_t BoundRisks(const std::string& text, const std::vector<std::optional<std::string>>& v) {
    std::vector<std::optional<std::span<const std::byte>>> params;
    for (const auto& s : v) params.push_back(s ? std::optional(Bytes(*s)) : std::nullopt);
    Values values = gate_.BindValues({}, params, {});
    return gate_.BoundFacts(Parsed(text), values)->AllRisks();
  }
  std::optional<policy::Decision> Deferred(const std::string& text, bool extended) {
    auto facts = gate_.Facts(text);
    return gate_.DecideDeferred(*pack_, kProd, Agent(), *facts, false,
                                std::chrono::system_clock::now(), extended, text);
  }
  policy::Decision Decide(const std::string& text) {
    return gate_.Decide(*pack_, kProd, Agent(), *gate_.Facts(text), false,
                        std::chrono::system_clock::now());
  }
  void Run(const std::string& text) {
    auto facts = gate_.Facts(text);
    gate_.OnSyncPoint();
    gate_.OnForwarded(facts, true, "");
    gate_.OnCompleted(*facts, facts->statements.size());
    gate_.OnReadyForQuery('I');
  }

  sql::Analyzer analyzer_;
  StatementGate gate_{&analyzer_};
  std::shared_ptr<const policy::CompiledPolicy> pack_ = Pack();
};

TEST_F(BoundTest, BindValuesByFormatAndType) {
  auto be = [](uint64_t v, size_t n) {
    std::string out(n, '\0');
    for (size_t i = 0; i < n; ++i) out[n - 1 - i] = static_cast<char>((v >> (8 * i)) & 0xff);
    return out;
  };
  const std::string i2 = be(static_cast<uint16_t>(-7), 2), i4 = be(0x80000000u, 4),
                    i8 = be(uint64_t{1} << 40, 8), f8 = be(std::bit_cast<uint64_t>(2.5), 8),
                    inf = be(std::bit_cast<uint64_t>(-1.0 / 0.0), 8), t = "o'k", b = "\x01",
                    odd = "abc", nul = std::string("a\0b", 3);
  std::vector<std::optional<std::span<const std::byte>>> params = {
      Bytes(i2), Bytes(i4), Bytes(i8),  Bytes(f8),   Bytes(inf),
      Bytes(t),  Bytes(b),  Bytes(odd), std::nullopt};
  const std::vector<uint32_t> types = {21, 23, 20, 701, 701, 25, 16, 23, 0};
  Values v = gate_.BindValues({1}, params, types);
  EXPECT_EQ(v, (Values{"-7", "-2147483648", "1099511627776", "2.5", "'-inf'", "'o''k'", "true", "",
                       "NULL"}));
  // Text format: numbers unless the type is a string type; a NUL cannot be a text value.
  v = gate_.BindValues({}, {Bytes(std::string("42")), Bytes(std::string("42")), Bytes(nul)},
                       {0, 1043, 0});
  EXPECT_EQ(v, (Values{"42", "'42'", ""}));
  // Binary without a declared type cannot be read.
  v = gate_.BindValues({1}, {Bytes(i4)}, {});
  EXPECT_EQ(v, (Values{""}));
}

TEST_F(BoundTest, NonAsciiTextWaitsForAnUnansweredEncodingChange) {
  const std::string word = "caf\xc3\xa9";
  EXPECT_EQ(gate_.BindValues({}, {Bytes(word)}, {25}), (Values{"'" + word + "'"}));
  gate_.OnSyncPoint();
  gate_.OnForwarded(gate_.Facts("SET client_encoding = 'UTF8'"), true, "");  // unanswered
  EXPECT_EQ(gate_.BindValues({}, {Bytes(word), Bytes(std::string("12"))}, {25, 0}),
            (Values{"", "12"}));
}

TEST_F(BoundTest, ValuesDecideTheRisks) {
  const std::string del = "DELETE FROM items WHERE id > $1";
  EXPECT_TRUE(Parsed(del).risks & sql::kRiskNoWhere);  // at its worst
  EXPECT_EQ(BoundRisks(del, {"995"}) & kValueRisks, 0u);
  EXPECT_NE(BoundRisks(del, {"-2147483648"}) & sql::kRiskNoWhere, 0u);
  EXPECT_NE(BoundRisks(del, {std::nullopt}) & sql::kRiskNoWhere, 0u);
  EXPECT_NE(BoundRisks(del, {"x) OR (true"}) & sql::kRiskNoWhere, 0u);
  EXPECT_EQ(BoundRisks("SELECT * FROM items LIMIT $1", {"10"}) & kValueRisks, 0u);
  EXPECT_NE(BoundRisks("SELECT * FROM items LIMIT $1", {std::nullopt}) & kValueRisks, 0u);
  // Audited as prepared: the normalized text and fingerprint of the statement.
  auto bound = gate_.BoundFacts(Parsed(del), {"995"});
  EXPECT_EQ(bound->statements.front().normalized, Parsed(del).normalized);
  EXPECT_EQ(bound->statements.front().fingerprint, Parsed(del).fingerprint);
  EXPECT_TRUE(bound->statements.front().source.empty());
  // Unknown values stay parameters: judged at their worst.
  EXPECT_NE(gate_.BoundFacts(Parsed(del), {""})->AllRisks() & sql::kRiskNoWhere, 0u);
}

TEST_F(BoundTest, DeferredOnlyWhenAValueCouldLiftTheRefusal) {
  auto d = Deferred("DELETE FROM items WHERE id > $1", true);
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->action, policy::Action::kAllow);
  ASSERT_TRUE(d->limits.has_value());
  EXPECT_EQ(d->limits->max_rows, 100u);  // the row budget still applies when it runs
  EXPECT_TRUE(Deferred("SELECT * FROM items WHERE email LIKE $1 LIMIT $2", true).has_value());
  // No value adds a WHERE, and other risks are not values' to lift.
  EXPECT_FALSE(Deferred("UPDATE items SET v = $1", true).has_value());
  EXPECT_FALSE(Deferred("DELETE FROM items WHERE id > $1 RETURNING pg_read_file($2)", true));
  EXPECT_FALSE(Deferred("DELETE FROM items", true).has_value());
  // Not a Parse: a Query's parameters are the server's error, not values to bind.
  EXPECT_FALSE(Deferred("DELETE FROM items WHERE id > $1", false).has_value());
  // A PREPARE in a Query is deferred by what it prepares; EXECUTE in the same Query is judged.
  EXPECT_TRUE(Deferred("PREPARE d(int) AS DELETE FROM items WHERE id > $1", false));
  EXPECT_FALSE(
      Deferred("PREPARE d(int) AS DELETE FROM items WHERE id > $1; "
               "EXECUTE d(-2147483648)",
               false));
  EXPECT_TRUE(Deferred("PREPARE d(int) AS DELETE FROM items WHERE id > $1; EXECUTE d(5)", false));
}

TEST_F(BoundTest, ExecuteIsJudgedWithItsArguments) {
  Run("PREPARE d(int) AS DELETE FROM items WHERE id > $1");
  EXPECT_EQ(Decide("EXECUTE d(995)").action, policy::Action::kAllow);
  for (const char* arg :
       {"-2147483648", "(SELECT min(id) - 1 FROM items)", "'-1'", "0 - 5", "NULL"}) {
    EXPECT_EQ(Decide(std::string("EXECUTE d(") + arg + ")").action, policy::Action::kDeny) << arg;
  }
  // Running inside EXPLAIN ANALYZE and CREATE TABLE AS: the statement's risks and tables.
  EXPECT_EQ(Decide("EXPLAIN ANALYZE EXECUTE d(-2147483648)").action, policy::Action::kDeny);
  auto explain = gate_.Facts("EXPLAIN ANALYZE EXECUTE d(995)");
  ASSERT_EQ(explain->statements.size(), 1u);
  EXPECT_EQ(explain->statements.front().tables_written.size(), 1u);  // the row budget attaches
  EXPECT_EQ(Decide("EXPLAIN ANALYZE EXECUTE d(995)").limits->max_rows, 100u);
  // Plain EXPLAIN only plans.
  EXPECT_EQ(Decide("EXPLAIN EXECUTE d(-2147483648)").action, policy::Action::kAllow);
  // EXECUTE of a name nobody prepared, inside EXPLAIN ANALYZE too: cannot be verified.
  EXPECT_TRUE(gate_.Facts("EXPLAIN ANALYZE EXECUTE nobody(1)")->AllRisks() &
              sql::kRiskUnverifiable);
}

TEST_F(BoundTest, ArgumentsAreEvaluatedWhateverTheStatementDoes) {
  Run("PREPARE echo(text) AS SELECT $1");
  for (const char* sql : {"EXECUTE echo(set_config('role', 'postgres', false))",
                          "EXPLAIN EXECUTE echo(set_config('role', 'postgres', false))",
                          "CREATE TABLE c AS EXECUTE echo(set_config('role', 'postgres', false))",
                          "EXPLAIN CREATE TABLE c AS EXECUTE echo(set_config('role', 'x', false))"})
    EXPECT_TRUE(gate_.Facts(sql)->AllRisks() & sql::kRiskPrivilegeChange) << sql;
  EXPECT_EQ(Decide("EXECUTE echo('hello')").action, policy::Action::kAllow);
}

TEST_F(BoundTest, ParsesThatExecuteEachOtherEndAtTheirWorst) {
  // Named Parses of `EXECUTE q($1)` and `EXECUTE p($1)`: resolving one through the other is
  // bounded, and ends at the definitions' own facts.
  for (const auto& [name, text] : std::vector<std::pair<std::string, std::string>>{
           {"p", "EXECUTE q($1)"}, {"q", "EXECUTE p($1)"}}) {
    auto facts = std::make_shared<sql::QueryFacts>(*gate_.Facts(text));
    facts->statements.front().source = text;
    gate_.OnForwarded(facts, false, name);
    gate_.OnParseAnswered(name, facts, true);
  }
  auto facts = gate_.Facts("EXECUTE p(1)");
  EXPECT_EQ(facts->statements.size(), 1u);
}

// ---- The corpus ----

struct Entry {
  int line = 0;
  std::string expect, sql;
  std::vector<std::optional<std::string>> params;
};

std::vector<Entry> LoadBound() {
  std::ifstream in(std::string(DBW_TESTDATA) + "/sql/bound_values.jsonl");
  std::vector<Entry> out;
  simdjson::dom::parser parser;
  std::string text;
  int n = 0;
  while (std::getline(in, text)) {
    ++n;
    simdjson::dom::object o;
    if (text.empty() || parser.parse(text).get(o) != simdjson::SUCCESS) continue;
    Entry e;
    e.line = n;
    std::string_view v;
    if (o["sql"].get(v) == simdjson::SUCCESS) e.sql = std::string(v);
    if (o["expect"].get(v) == simdjson::SUCCESS) e.expect = std::string(v);
    simdjson::dom::array params;
    if (o["params"].get(params) == simdjson::SUCCESS)
      for (simdjson::dom::element p : params)
        e.params.push_back(p.get_string().get(v) == simdjson::SUCCESS
                               ? std::optional<std::string>(std::string(v))
                               : std::nullopt);
    out.push_back(std::move(e));
  }
  return out;
}

TEST_F(BoundTest, TheBoundValuesCorpus) {
  std::vector<Entry> entries = LoadBound();
  ASSERT_GE(entries.size(), 200u);
  std::map<std::string, int> by_expect;
  for (const Entry& e : entries) {
    const uint32_t r = BoundRisks(e.sql, e.params);
    bool ok = false;
    if (e.expect == "mass_write") ok = r & sql::kRiskNoWhere;
    if (e.expect == "mass_read") ok = r & sql::kRiskUnboundedSelect;
    if (e.expect == "safe" || e.expect == "runtime") ok = (r & kValueRisks) == 0;
    ++by_expect[e.expect];
    std::string risks;
    for (auto name : sql::RiskNames(r)) risks += std::string(name) + " ";
    EXPECT_TRUE(ok) << "bound_values.jsonl:" << e.line << " [" << e.expect << "] " << e.sql
                    << "\n  risks: " << risks;
    // A statement that runs with some values is not refused at its Parse: deferred, or allowed.
    if (e.expect == "safe") {
      EXPECT_TRUE(Deferred(e.sql, true).has_value() || Decide(e.sql).action <= policy::Action::kLog)
          << "bound_values.jsonl:" << e.line << " " << e.sql;
    }
  }
  EXPECT_GT(by_expect["mass_write"], 50);
  EXPECT_GT(by_expect["safe"], 30);
}

}  // namespace
}  // namespace dbw::gate
