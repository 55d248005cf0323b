// Result masking throughput (MB/s of DataRow bodies per core) over a stream of mixed rows:
// names, emails, cards, free text and numbers, ~100 rows of 10 columns. Variants: nothing to
// mask (baseline copy), column rules only, all detectors on (with and without column rules),
// and all detectors on rows that hold nothing sensitive.
#include <random>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "userspace/common/byte_reader.h"
#include "userspace/masking/row_masker.h"

namespace {

using dbw::masking::ColumnPlan;
using dbw::masking::Detector;
using dbw::masking::DetectorRule;
using dbw::masking::DetectorSet;
using dbw::masking::Function;
using dbw::masking::MaskSpec;
using dbw::masking::ResultPlan;

constexpr int kRows = 100;
constexpr uint32_t kText = 25, kInt8 = 20, kNumeric = 1700, kTimestamp = 1114;

// id, name, email, card, phone, notes, amount, created, status, comment
const std::vector<uint32_t> kOids = {kInt8, kText,    kText,      kText, kText,
                                     kText, kNumeric, kTimestamp, kText, kText};

std::string Body(const std::vector<std::string>& values) {
  std::string b;
  b.push_back(static_cast<char>(values.size() >> 8));
  b.push_back(static_cast<char>(values.size()));
  for (const std::string& v : values) {
    auto n = static_cast<uint32_t>(v.size());
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<char>(n >> s));
    b += v;
  }
  return b;
}

// Deterministic rows (fixed seed). `sensitive` false: the same shapes without PII or secrets.
std::vector<std::string> MakeRows(bool sensitive) {
  std::mt19937 rng(42);
  const char* first[] = {"Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Heidi"};
  const char* last[] = {"Smith", "Jones", "Garcia", "Miller", "Davis", "Martinez", "Lopez"};
  const char* cards[] = {"4111111111111111", "5500 0055 5555 5559", "378282246310005",
                         "6011-1111-1111-1117"};
  const char* notes[] = {
      "Customer asked about the invoice for last month and wants a call back",
      "Shipped via ground, tracking number 1Z999AA10123456784, delivered to front desk",
      "Prefers email contact; do not call before 9am. Account reviewed on 2024-01-15",
      "Escalated to tier 2 after three failed password resets from the mobile app",
  };
  const char* statuses[] = {"active", "pending", "closed", "suspended"};
  std::vector<std::string> rows;
  for (int i = 0; i < kRows; ++i) {
    std::string f = first[rng() % 8], l = last[rng() % 7];
    std::string name = f + " " + l;
    std::string email = sensitive ? f + "." + l + std::to_string(i) + "@example.com"
                                  : "user-" + std::to_string(100000 + i);
    std::string card = sensitive ? cards[rng() % 4] : "ORD-" + std::to_string(rng() % 1000000);
    std::string phone = sensitive ? "+1 555 " + std::to_string(100 + rng() % 900) + " " +
                                        std::to_string(1000 + rng() % 9000)
                                  : "ext " + std::to_string(rng() % 1000);
    std::string note = notes[rng() % 4];
    std::string comment = sensitive && i % 5 == 0
                              ? "contact " + f + "@example.org re: card " + cards[i % 4]
                              : "no comment, ticket #" + std::to_string(rng() % 100000);
    rows.push_back(Body({std::to_string(1000000 + i), name, email, card, phone, note,
                         std::to_string(rng() % 100000) + "." + std::to_string(rng() % 100),
                         "2024-01-" + std::to_string(10 + i % 18) + " 10:20:30.123456",
                         statuses[i % 4], comment}));
  }
  return rows;
}

std::shared_ptr<const DetectorSet> AllDetectors() {
  std::vector<DetectorRule> rules;
  for (size_t i = 0; i < dbw::masking::kBuiltinDetectorCount; ++i) {
    DetectorRule r;
    r.detector = static_cast<Detector>(i);
    r.mask.function = dbw::masking::IsSecret(r.detector) ? Function::kRedact : Function::kPartial;
    rules.push_back(r);
  }
  return *DetectorSet::Compile(std::move(rules));
}

ResultPlan Plan(bool rules, const DetectorSet* detectors, Function function = Function::kPartial) {
  ResultPlan plan;
  for (uint32_t oid : kOids) {
    ColumnPlan c;
    c.type_oid = oid;
    plan.columns.push_back(c);
  }
  if (rules) {
    MaskSpec partial;
    partial.function = function;
    MaskSpec redact;
    plan.columns[2].rule = partial;  // email
    plan.columns[3].rule = partial;  // card
    plan.columns[4].rule = redact;   // phone
  }
  plan.detectors = detectors;
  plan.hmac = [](std::string_view) { return std::array<uint8_t, 32>{}; };
  return plan;
}

void Run(benchmark::State& state, const ResultPlan& plan, const std::vector<std::string>& rows) {
  std::string out;
  dbw::masking::MaskStats stats;
  size_t bytes = 0;
  for (const std::string& r : rows) bytes += r.size();
  for (auto _ : state) {
    for (const std::string& r : rows) {
      out.clear();
      dbw::Status st = dbw::masking::MaskDataRow(plan, dbw::AsBytes(r), &out, &stats);
      if (!st.ok()) state.SkipWithError(st.message().c_str());
      benchmark::DoNotOptimize(out.data());
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes));
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * rows.size()));
  state.counters["row_bytes"] = static_cast<double>(bytes) / static_cast<double>(rows.size());
}

void BM_NothingToMask(benchmark::State& state) {
  static const auto rows = MakeRows(true);
  Run(state, Plan(false, nullptr), rows);
}
BENCHMARK(BM_NothingToMask);

void BM_ColumnRulesOnly(benchmark::State& state) {
  static const auto rows = MakeRows(true);
  Run(state, Plan(true, nullptr), rows);
}
BENCHMARK(BM_ColumnRulesOnly);

// The same columns with the fixed marker: no per-value work beyond copying.
void BM_ColumnRulesRedactOnly(benchmark::State& state) {
  static const auto rows = MakeRows(true);
  Run(state, Plan(true, nullptr, Function::kRedact), rows);
}
BENCHMARK(BM_ColumnRulesRedactOnly);

void BM_AllDetectors(benchmark::State& state) {
  static const auto rows = MakeRows(true);
  static const auto detectors = AllDetectors();
  Run(state, Plan(false, detectors.get()), rows);
}
BENCHMARK(BM_AllDetectors);

void BM_AllDetectorsAndRules(benchmark::State& state) {
  static const auto rows = MakeRows(true);
  static const auto detectors = AllDetectors();
  Run(state, Plan(true, detectors.get()), rows);
}
BENCHMARK(BM_AllDetectorsAndRules);

void BM_AllDetectorsCleanRows(benchmark::State& state) {
  static const auto rows = MakeRows(false);
  static const auto detectors = AllDetectors();
  Run(state, Plan(false, detectors.get()), rows);
}
BENCHMARK(BM_AllDetectorsCleanRows);

// The detectors alone on one row's values: the per-call cost against the per-byte cost.
void BM_ScanOnly(benchmark::State& state) {
  static const auto detectors = AllDetectors();
  std::string value(static_cast<size_t>(state.range(0)), 'a');
  for (size_t i = 0; i < value.size(); i += 12) value[i] = ' ';
  std::vector<std::string_view> values = {value};
  std::vector<dbw::masking::Match> matches;
  for (auto _ : state) {
    matches.clear();
    dbw::Status st = detectors->Scan(values, &matches);
    benchmark::DoNotOptimize(st);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * value.size()));
}
BENCHMARK(BM_ScanOnly)->Arg(16)->Arg(256)->Arg(4096)->Arg(65536);

}  // namespace
