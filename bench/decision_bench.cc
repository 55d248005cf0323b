// The relay's per-statement hot path: analyse (digest-cache hit) and judge against the
// default pack, as a Query or Parse from pgbench/an ORM pays it. Target: <= 2 us together.
// BM_BindJudged: what a Bind of a deferred statement (a range bound by parameters) adds, read
// against BM_CacheHitAndDecision of the same run.
#include <chrono>

#include <benchmark/benchmark.h>

#include "policy/policy.h"
#include "userspace/gate/statement_gate.h"
#include "userspace/sql/analyzer.h"

namespace {

const char* const kStatements[] = {
    "SELECT abalance FROM pgbench_accounts WHERE aid = 48213;",
    "UPDATE pgbench_accounts SET abalance = abalance + -4213 WHERE aid = 12;",
    "SELECT o.id, c.email, sum(i.price) FROM orders o JOIN customers c ON c.id = o.customer_id "
    "JOIN items i ON i.order_id = o.id WHERE o.id = 42 GROUP BY o.id, c.email",
};

std::shared_ptr<const dbw::policy::CompiledPolicy> DefaultPack() {
  static auto policy = *dbw::policy::LoadPolicy({}, dbw::policy::Mode::kEnforce);
  return policy;
}

// pgbench as application_name ai-bot, classified by the pack (an AI agent).
dbw::policy::Principal ClassifiedAgent(const dbw::policy::CompiledPolicy& policy) {
  dbw::policy::Principal principal;
  principal.application_name = "ai-bot";
  policy.Classify(&principal);
  return principal;
}

void BM_Evaluate(benchmark::State& state) {
  auto policy = DefaultPack();
  dbw::sql::Analyzer analyzer(64);
  auto facts = analyzer.Analyze(kStatements[state.range(0)]);
  dbw::policy::Principal principal;
  principal.db_user = "app";
  principal.application_name = "ai-bot";
  principal.kind =
      state.range(1) ? dbw::policy::PrincipalKind::kAgent : dbw::policy::PrincipalKind::kHuman;
  dbw::policy::Target target{"orders", "prod"};
  auto now = std::chrono::system_clock::now();
  for (auto _ : state) {
    auto d = policy->Evaluate(target, principal, *facts, now);
    benchmark::DoNotOptimize(d);
  }
}
BENCHMARK(BM_Evaluate)->ArgsProduct({{0, 1, 2}, {0, 1}});

// Cache hit + decision, with a different literal each time as real traffic has.
void BM_CacheHitAndDecision(benchmark::State& state) {
  auto policy = DefaultPack();
  dbw::sql::Analyzer analyzer(64);
  std::string base = kStatements[state.range(0)];
  std::string variants[2] = {base, base};
  auto pos = variants[1].find("42");
  if (pos == std::string::npos) pos = variants[1].find('1');
  variants[1][pos] = '7';
  const dbw::policy::Principal principal = ClassifiedAgent(*policy);
  const dbw::policy::Target target{"orders", "prod"};
  auto now = std::chrono::system_clock::now();
  size_t i = 0;
  for (auto _ : state) {
    auto facts = analyzer.Analyze(variants[i++ & 1]);
    auto d = policy->Evaluate(target, principal, *facts, now);
    benchmark::DoNotOptimize(d);
  }
  state.counters["hit_ratio"] = static_cast<double>(analyzer.hits()) /
                                static_cast<double>(analyzer.hits() + analyzer.misses());
}
BENCHMARK(BM_CacheHitAndDecision)->DenseRange(0, 2);

// A Bind of `UPDATE ... WHERE aid >= $2 AND aid < $3` (deferred at its Parse): the values read,
// substituted and analysed (a cache hit after the first), and the decision, for an AI agent.
void BM_BindJudged(benchmark::State& state) {
  auto policy = DefaultPack();
  dbw::sql::Analyzer analyzer(64);
  dbw::gate::StatementGate gate(&analyzer);
  gate.OnParameterStatus("standard_conforming_strings", "on");
  gate.OnReadyForQuery('I');
  const std::string text =
      "UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid >= $2 AND aid < $3";
  dbw::sql::StatementFacts def = gate.Facts(text)->statements.front();
  def.source = text;
  const std::string values[2][3] = {{"-4213", "48213", "48214"}, {"17", "12", "13"}};
  const dbw::policy::Principal principal = ClassifiedAgent(*policy);
  const dbw::policy::Target target{"orders", "prod"};
  auto now = std::chrono::system_clock::now();
  size_t i = 0;
  for (auto _ : state) {
    const auto& v = values[i++ & 1];
    std::vector<std::optional<std::span<const std::byte>>> params;
    for (const std::string& x : v)
      params.emplace_back(std::as_bytes(std::span(x.data(), x.size())));
    auto facts = gate.BoundFacts(def, gate.BindValues({}, params, {}));
    auto d = gate.Decide(*policy, target, principal, *facts, false, now, true);
    benchmark::DoNotOptimize(d);
  }
}
BENCHMARK(BM_BindJudged);

}  // namespace
