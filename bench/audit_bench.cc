// Audit store: append throughput (async; sync with group commit from many in-flight
// producers) with every index on, and one-hour one-filter query latency over a large store.
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <thread>

#include <benchmark/benchmark.h>

#include "userspace/audit/event_formats.h"
#include "userspace/audit/event_json.h"
#include "userspace/audit/store.h"
#include "userspace/audit/store_codec.h"

namespace dbw::audit {
namespace {

namespace fs = std::filesystem;
constexpr int64_t kBase = 1'700'000'000'000'000;

Event MakeEvent(std::mt19937_64& rng, int64_t ts) {
  static const char* kUsers[] = {"alice", "bob", "carol", "dave", "erin", "app"};
  Event e;
  e.ts_us = ts;
  e.kind = EventKind::kStatement;
  auto info = std::make_shared<SessionInfo>();
  info->session_id = "s" + std::to_string(rng() % 10000);
  info->target = "pg";
  info->env = "prod";
  info->principal.db_user = kUsers[rng() % 6];
  info->principal.database = "orders";
  info->principal.client_addr = "127.0.0.1:5000";
  info->process = identity::ProcessInfo{.pid = 42,
                                        .uid = 1000,
                                        .comm = "psql",
                                        .exe = "/usr/bin/psql",
                                        .cgroup = "/system.slice/app.service"};
  e.session = info;
  auto facts = std::make_shared<sql::QueryFacts>();
  sql::StatementFacts st;
  st.command = sql::Command::kSelect;
  st.normalized = "SELECT * FROM orders WHERE id = $1";
  st.fingerprint_hex = "fp" + std::to_string(rng() % 200);
  st.tables_read.push_back({"public", "orders"});
  facts->statements.push_back(st);
  e.statement = StatementInfo{facts, "simple", ""};
  auto d = std::make_shared<policy::Decision>();
  d->action = policy::Action::kAllow;
  e.decision = DecisionInfo{d, false};
  e.result = ResultInfo{"SELECT 1", "", "", 100, 1, 64};
  return e;
}

std::string Dir(const char* name) {
  return (fs::temp_directory_path() / (std::string("dbw-bench-") + name)).string();
}

// A fresh store in the temp dir with every index on; null (and the benchmark skipped) when it
// cannot be opened.
std::unique_ptr<AuditStore> OpenStore(benchmark::State& state, const std::string& dir,
                                      Durability durability, bool fresh = true) {
  if (fresh) fs::remove_all(dir);
  StoreOptions o;
  o.dir = dir;
  o.durability = durability;
  o.retention = std::chrono::seconds(0);
  o.queue_capacity = 1 << 20;
  auto store = AuditStore::Open(o);
  if (!store.ok()) {
    state.SkipWithError(store.status().ToString().c_str());
    return nullptr;
  }
  return std::move(*store);
}

// The writer's per-event work outside RocksDB: the canonical JSON, and the index terms.
void BM_RenderEvent(benchmark::State& state) {
  std::mt19937_64 rng(3);
  Event e = MakeEvent(rng, kBase);
  e.seq = 123456789;
  std::string out;
  for (auto _ : state) {
    out.clear();
    AppendEventJson(e, &out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * out.size()));
}
BENCHMARK(BM_RenderEvent);

// The exporters' per-event work before their receiver: the stored event rendered in each format
// (0 native, 1 OCSF, 2 ECS, 3 CEF).
void BM_ExportRender(benchmark::State& state) {
  const auto format = static_cast<EventFormat>(state.range(0));
  std::mt19937_64 rng(5);
  Event e = MakeEvent(rng, kBase);
  e.seq = 123456789;
  std::string stored;
  AppendEventJson(e, &stored);
  stored.pop_back();  // as the store serves it: with the chain's hashes
  stored +=
      ",\"prev_hash\":\"" + std::string(64, 'a') + "\",\"hash\":\"" + std::string(64, 'b') + "\"}";
  size_t bytes = 0;
  for (auto _ : state) {
    auto out = RenderEvent(format, stored);
    if (!out.ok()) {
      state.SkipWithError(out.status().message().c_str());
      return;
    }
    bytes += out->size();
    benchmark::DoNotOptimize(out->data());
  }
  state.SetLabel(EventFormatName(format));
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
}
BENCHMARK(BM_ExportRender)->DenseRange(0, 3);

// An exporter's read of the log: events back in seq order, 500 at a time, from a store that has
// just written them (memtable and L0, as a keeping-up exporter reads).
void BM_ReadAfter(benchmark::State& state) {
  auto store = OpenStore(state, Dir("read-after"), Durability::kAsync);
  if (!store) return;
  std::mt19937_64 rng(6);
  constexpr int kEvents = 20000;
  for (int i = 0; i < kEvents; ++i) store->Submit(MakeEvent(rng, kBase + i));
  store->Flush();
  int64_t read = 0;
  for (auto _ : state) {
    uint64_t after = 0;
    while (true) {
      auto batch = store->ReadAfter(after, 500);
      if (!batch.ok() || batch->empty()) break;
      after = batch->back().seq;
      read += static_cast<int64_t>(batch->size());
    }
  }
  state.SetItemsProcessed(read);
}
BENCHMARK(BM_ReadAfter)->Iterations(5)->Unit(benchmark::kMillisecond);

void BM_EventTerms(benchmark::State& state) {
  std::mt19937_64 rng(4);
  Event e = MakeEvent(rng, kBase);
  std::vector<std::pair<store::Index, std::string>> terms;
  for (auto _ : state) {
    store::EventTerms(e, &terms);
    benchmark::DoNotOptimize(terms.data());
  }
}
BENCHMARK(BM_EventTerms);

void BM_AppendAsync(benchmark::State& state) {
  std::string dir = Dir("async");
  auto store = OpenStore(state, dir, Durability::kAsync);
  if (!store) return;
  std::mt19937_64 rng(1);
  std::vector<Event> events;
  for (int i = 0; i < 100000; ++i) events.push_back(MakeEvent(rng, kBase + i));
  for (auto _ : state) {
    // Stamped at submission, as the relay's events are: each index receives its keys in
    // time order (a fixed ts would make every iteration insert into the middle of the last).
    for (const Event& e : events) {
      Event copy = e;
      copy.ts_us = 0;
      store->Submit(std::move(copy));
    }
    store->Flush();
  }
  state.counters["events/s"] = benchmark::Counter(
      static_cast<double>(state.iterations() * events.size()), benchmark::Counter::kIsRate);
  state.counters["dropped"] = static_cast<double>(store->Stats().dropped);
  store.reset();
  fs::remove_all(dir);
}
BENCHMARK(BM_AppendAsync)->Iterations(5)->Unit(benchmark::kMillisecond)->UseRealTime();

// Audit-before-forward of reads: SubmitAndWait from one producer thread, acknowledged from its
// intent log (the producer renders and logs each record; the writer commits them). `intent`
// 0 turns the log off, so each event waits for the writer's commit as before (one in flight,
// as one relay session's statements are).
void BM_AppendAndWait(benchmark::State& state) {
  const bool intent = state.range(0) != 0;
  std::string dir = Dir(intent ? "intent" : "wait");
  fs::remove_all(dir);
  StoreOptions o;
  o.dir = dir;
  o.durability = Durability::kAsync;
  o.retention = std::chrono::seconds(0);
  o.intent_log_bytes = intent ? 64u << 20 : 0;
  auto opened = AuditStore::Open(o);
  if (!opened.ok()) {
    state.SkipWithError(opened.status().ToString().c_str());
    return;
  }
  auto store = std::move(*opened);
  std::mt19937_64 rng(4);
  std::vector<Event> events;
  for (int i = 0; i < (intent ? 50000 : 5000); ++i) events.push_back(MakeEvent(rng, kBase + i));
  std::atomic<uint64_t> failures{0};
  for (auto _ : state) {
    for (const Event& e : events) {
      Event copy = e;
      copy.ts_us = 0;
      std::atomic<bool> done{false};
      store->SubmitAndWait(std::move(copy), [&](const Status& s, uint64_t) {
        if (!s.ok()) failures.fetch_add(1);
        done.store(true);
        done.notify_one();
      });
      done.wait(false);
    }
    store->Flush();
  }
  state.counters["events/s"] = benchmark::Counter(
      static_cast<double>(state.iterations() * events.size()), benchmark::Counter::kIsRate);
  state.counters["failures"] = static_cast<double>(failures.load());
  store.reset();
  fs::remove_all(dir);
}
BENCHMARK(BM_AppendAndWait)
    ->Arg(1)
    ->Arg(0)
    ->Iterations(3)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// Sync: `producers` threads, each keeping `window` events in flight (like many relay sessions
// each waiting for audit-before-forward), so the writer forms large fsynced batches.
void BM_AppendSync(benchmark::State& state) {
  const int producers = static_cast<int>(state.range(0));
  const int window = static_cast<int>(state.range(1));
  std::string dir = Dir("sync");
  auto store = OpenStore(state, dir, Durability::kSync);
  if (!store) return;
  constexpr int kPerProducer = 20000;
  std::mt19937_64 rng(2);
  std::vector<Event> events;
  for (int i = 0; i < 1000; ++i) events.push_back(MakeEvent(rng, kBase + i));
  std::atomic<uint64_t> failures{0};
  for (auto _ : state) {
    std::vector<std::thread> threads;
    for (int p = 0; p < producers; ++p) {
      threads.emplace_back([&, p] {
        std::atomic<int> in_flight{0};
        for (int i = 0; i < kPerProducer; ++i) {
          int n = in_flight.load();
          while (n >= window) {
            in_flight.wait(n);
            n = in_flight.load();
          }
          in_flight.fetch_add(1);
          Event e = events[(p * 7 + i) % events.size()];
          e.ts_us = 0;
          store->SubmitAndWait(std::move(e), [&](const Status& s, uint64_t) {
            if (!s.ok()) failures.fetch_add(1);
            in_flight.fetch_sub(1);
            in_flight.notify_one();
          });
        }
        int n = in_flight.load();
        while (n > 0) {
          in_flight.wait(n);
          n = in_flight.load();
        }
      });
    }
    for (auto& t : threads) t.join();
  }
  state.counters["events/s"] =
      benchmark::Counter(static_cast<double>(state.iterations() * producers * kPerProducer),
                         benchmark::Counter::kIsRate);
  state.counters["failures"] = static_cast<double>(failures.load());
  store.reset();
  fs::remove_all(dir);
}
BENCHMARK(BM_AppendSync)
    ->Args({1, 1})
    ->Args({4, 64})
    ->Args({8, 256})
    ->Iterations(2)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// DBW_BENCH_QUERY_EVENTS events (default 1M; the figure is 10M) over ~10 days; a
// random one-hour window with a db_user filter, first page of 50.
void BM_QueryOneHourOneFilter(benchmark::State& state) {
  static const std::string dir = Dir("query");
  const char* env_events = std::getenv("DBW_BENCH_QUERY_EVENTS");
  const int kEvents = env_events != nullptr ? std::atoi(env_events) : 1'000'000;
  constexpr int64_t kSpan = 10LL * 86400 * 1000000;
  static bool filled = false;
  if (!filled) {
    auto store = OpenStore(state, dir, Durability::kAsync);
    if (!store) return;
    std::mt19937_64 rng(3);
    for (int i = 0; i < kEvents; ++i) {
      store->Submit(MakeEvent(rng, kBase + static_cast<int64_t>(i) * (kSpan / kEvents)));
      if (i % 100000 == 99999) store->Flush();  // stay below the queue's capacity
    }
    store->Flush();
    if (store->Stats().dropped != 0) {
      state.SkipWithError("events dropped while filling");
      return;
    }
    filled = true;
  }
  auto store = OpenStore(state, dir, Durability::kAsync, /*fresh=*/false);
  if (!store) return;
  std::mt19937_64 rng(4);
  std::vector<double> us;
  size_t returned = 0;
  for (auto _ : state) {
    EventFilter f;
    f.db_user = "bob";
    f.since_us =
        kBase + static_cast<int64_t>(rng() % static_cast<uint64_t>(kSpan - 3600'000'000LL));
    f.until_us = *f.since_us + 3600'000'000LL;
    auto start = std::chrono::steady_clock::now();
    auto r = store->Query(f, 50, "");
    us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start)
                     .count());
    if (!r.ok()) {
      state.SkipWithError(r.status().ToString().c_str());
      break;
    }
    returned += r->events.size();
  }
  std::sort(us.begin(), us.end());
  if (!us.empty()) {
    state.counters["p50_us"] = us[us.size() / 2];
    state.counters["p99_us"] = us[std::min(us.size() - 1, us.size() * 99 / 100)];
    state.counters["rows"] = static_cast<double>(returned) / static_cast<double>(us.size());
  }
}
BENCHMARK(BM_QueryOneHourOneFilter)->Iterations(2000)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace dbw::audit
