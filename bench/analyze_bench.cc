// Statement analysis hot paths: the shape key, a cold (uncached) analysis, and a cache hit, for
// pgbench's SELECT and UPDATE and a three-way join.
#include <string>

#include <benchmark/benchmark.h>

#include "userspace/sql/analyzer.h"

namespace {

constexpr const char* kPgbenchSelect = "SELECT abalance FROM pgbench_accounts WHERE aid = 83876;";
constexpr const char* kPgbenchUpdate =
    "UPDATE pgbench_accounts SET abalance = abalance + -4416 WHERE aid = 38519;";
constexpr const char* kJoin =
    "SELECT a.aid, a.abalance, b.bbalance, t.tbalance FROM pgbench_accounts a "
    "JOIN pgbench_branches b ON b.bid = a.bid JOIN pgbench_tellers t ON t.bid = b.bid "
    "WHERE a.aid = 1234 AND t.tid = 7 ORDER BY a.aid LIMIT 10";

const char* Statement(int i) {
  return i == 0 ? kPgbenchSelect : i == 1 ? kPgbenchUpdate : kJoin;
}

void BM_ShapeKey(benchmark::State& state) {
  const std::string sql = Statement(static_cast<int>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(dbw::sql::ShapeKey(sql));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * sql.size()));
}

void BM_AnalyzeCold(benchmark::State& state) {
  const std::string sql = Statement(static_cast<int>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(dbw::sql::AnalyzeUncached(sql));
}

void BM_AnalyzeCacheHit(benchmark::State& state) {
  const std::string sql = Statement(static_cast<int>(state.range(0)));
  dbw::sql::Analyzer analyzer;
  benchmark::DoNotOptimize(analyzer.Analyze(sql));
  for (auto _ : state) benchmark::DoNotOptimize(analyzer.Analyze(sql));
  if (analyzer.misses() != 1) state.SkipWithError("expected cache hits");
}

}  // namespace

// Arg: 0 = pgbench SELECT, 1 = pgbench UPDATE, 2 = three-way join.
BENCHMARK(BM_ShapeKey)->DenseRange(0, 2);
BENCHMARK(BM_AnalyzeCold)->DenseRange(0, 2);
BENCHMARK(BM_AnalyzeCacheHit)->DenseRange(0, 2);
