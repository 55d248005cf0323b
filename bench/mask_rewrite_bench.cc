// Masking by reference (userspace/sql/mask_rewrite.h): the cost per statement of a principal
// with column masking rules, over a catalog of 200 tables with one masked. Cold: a new rewriter
// (nothing remembered: the wrapper and masking expressions are built and parsed again); warm:
// the session's rewriter. Untouched: a statement that reads no masked table (parse only, sent
// unchanged); rewritten: parse, rewrite, deparse; repeated: the same text again (cached).
#include <memory>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "userspace/sql/mask_rewrite.h"

namespace {

namespace mask = dbw::sql::mask;

std::shared_ptr<const mask::Catalog> BenchCatalog() {
  auto cat = std::make_shared<mask::Catalog>();
  const std::string text = "\"pg_catalog\".\"text\"", int4 = "\"pg_catalog\".\"int4\"";
  for (int t = 0; t < 200; ++t) {
    mask::Relation r{"public", "t" + std::to_string(t), 'r', {}, "", false};
    for (int c = 0; c < 8; ++c)
      r.columns.push_back({"c" + std::to_string(c), c == 0 ? int4 : text,
                           c == 0 ? mask::ValueClass::kOther : mask::ValueClass::kText,
                           std::nullopt});
    cat->AddRelation(std::move(r));
  }
  mask::Relation customers{"public", "customers", 'r', {}, "", false};
  customers.columns = {{"id", int4, mask::ValueClass::kOther, std::nullopt},
                       {"name", text, mask::ValueClass::kText, std::nullopt},
                       {"email", text, mask::ValueClass::kText,
                        mask::ColumnMask{mask::MaskFunction::kPartial, 4, "pii"}},
                       {"ssn", text, mask::ValueClass::kText,
                        mask::ColumnMask{mask::MaskFunction::kRedact, 4, "pii"}},
                       {"password_hash", text, mask::ValueClass::kText,
                        mask::ColumnMask{mask::MaskFunction::kHash, 4, "pii"}},
                       {"note", text, mask::ValueClass::kText, std::nullopt}};
  cat->AddRelation(std::move(customers));
  // pgbench's accounts table with a rule on filler (bench/masking-rewrite-cost).
  const std::string bpchar = "\"pg_catalog\".\"bpchar\"";
  cat->AddRelation({"public",
                    "pgbench_accounts",
                    'r',
                    {{"aid", int4, mask::ValueClass::kOther, std::nullopt},
                     {"bid", int4, mask::ValueClass::kOther, std::nullopt},
                     {"abalance", int4, mask::ValueClass::kOther, std::nullopt},
                     {"filler", bpchar, mask::ValueClass::kText,
                      mask::ColumnMask{mask::MaskFunction::kRedact, 4, "bench"}}},
                    "",
                    false});
  // A SQL function over the masked table, expanded through its body where it is called.
  mask::Routine email_of{"public", "email_of", "sql", "SELECT email FROM customers WHERE id = $1",
                         false};
  email_of.args = {{'i', "integer", "i"}};
  email_of.return_type = "text";
  cat->AddRoutine(email_of);
  for (const char* f : {"count", "lower", "now", "email_of"}) cat->AddFunctionName(f);
  return cat;
}

const mask::Options kKeyed{std::string(128, 'a'), std::string(128, 'b')};

// `cold`: a new rewriter per statement. `paths`: the session's search_path as followed. Otherwise
// one rewriter, and each statement's text made unique (a literal that changes, as with pgbench's
// simple protocol) unless `repeated` (the same text again, as an application with $n parameters
// sends it: a cache hit).
void Run(benchmark::State& state, const char* sql, bool cold, bool repeated = false,
         const std::vector<dbw::sql::SearchPath>& paths = {}) {
  auto catalog = BenchCatalog();
  auto warm = std::make_unique<mask::Rewriter>(catalog, kKeyed);
  uint64_t n = 0;
  std::string text;
  for (auto _ : state) {
    if (cold) warm = std::make_unique<mask::Rewriter>(catalog, kKeyed);
    text = sql;
    if (!repeated) text += " /* " + std::to_string(n++) + " */";
    mask::Result r = warm->Rewrite(text, paths);
    benchmark::DoNotOptimize(r);
  }
}

constexpr const char* kUntouched = "SELECT c1, c2 FROM t17 WHERE c0 = 42";
constexpr const char* kPoint = "SELECT name, email FROM customers WHERE id = 42";
constexpr const char* kJoin =
    "SELECT o.c1, c.email, c.ssn FROM t3 o JOIN customers c ON c.id = o.c0 WHERE c.name LIKE "
    "'a%' ORDER BY o.c2 LIMIT 50";
constexpr const char* kUpdate =
    "UPDATE customers SET note = 'x' WHERE email = 'a@b.c' RETURNING id, email";

constexpr const char* kFunction = "SELECT id, email_of(id) FROM t5 WHERE c0 = 42";

constexpr const char* kPgbench = "SELECT abalance FROM pgbench_accounts WHERE aid = 4242";

void BM_Untouched(benchmark::State& s) {
  Run(s, kUntouched, false);
}
void BM_PgbenchSelect(benchmark::State& s) {
  Run(s, kPgbench, false);
}
void BM_PointCold(benchmark::State& s) {
  Run(s, kPoint, true);
}
void BM_PointWarm(benchmark::State& s) {
  Run(s, kPoint, false);
}
void BM_JoinWarm(benchmark::State& s) {
  Run(s, kJoin, false);
}
void BM_UpdateWarm(benchmark::State& s) {
  Run(s, kUpdate, false);
}
void BM_PointRepeated(benchmark::State& s) {
  Run(s, kPoint, false, true);
}
void BM_PointWarmWithSearchPath(benchmark::State& s) {
  Run(s, kPoint, false, false, {{"agent", "public"}});
}
void BM_FunctionExpandedWarm(benchmark::State& s) {
  Run(s, kFunction, false);
}

BENCHMARK(BM_Untouched);
BENCHMARK(BM_PgbenchSelect);
BENCHMARK(BM_PointCold);
BENCHMARK(BM_PointWarm);
BENCHMARK(BM_JoinWarm);
BENCHMARK(BM_UpdateWarm);
BENCHMARK(BM_PointRepeated);
BENCHMARK(BM_PointWarmWithSearchPath);
BENCHMARK(BM_FunctionExpandedWarm);

}  // namespace
