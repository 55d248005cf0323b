// Decoding throughput of the PostgreSQL protocol module over golden captures, as the relay
// runs it: StreamDecoder + SessionState on every message of both directions.
#include <fstream>
#include <iterator>

#include <benchmark/benchmark.h>

#include "userspace/protocol/postgres/decoder.h"
#include "userspace/protocol/postgres/parse.h"
#include "userspace/protocol/postgres/session.h"
#include "userspace/protocol/postgres/wire_tally.h"

namespace {

std::vector<std::byte> Read(const std::string& name) {
  std::ifstream in(std::string(DBW_TESTDATA) + "/postgres/" + name, std::ios::binary);
  std::vector<char> raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::byte> out(raw.size());
  for (size_t i = 0; i < raw.size(); ++i) out[i] = static_cast<std::byte>(raw[i]);
  return out;
}

class Handler : public dbw::pg::DecoderHandler, public dbw::pg::SessionObserver {
 public:
  dbw::pg::SessionState state{this};
  dbw::pg::MessageAction OnMessage(dbw::pg::Direction dir, const dbw::pg::Frame& f, dbw::pg::Bytes*,
                                   std::string* reason) override {
    bool ok = dir == dbw::pg::Direction::kFrontend ? state.OnFrontend(f, 1, reason)
                                                   : state.OnBackend(f, 1, reason);
    return ok ? dbw::pg::MessageAction::kForward : dbw::pg::MessageAction::kReject;
  }
  void OnStreamedMessage(dbw::pg::Direction, uint8_t, uint32_t) override {}
  void OnExecutionComplete(const dbw::pg::Execution& e) override { ++executions; }
  size_t executions = 0;
};

// The typed part of a capture: frontend after its startup packets, backend after 'N'.
std::span<const std::byte> Typed(const std::vector<std::byte>& v, dbw::pg::Direction dir) {
  std::span<const std::byte> in(v);
  if (dir == dbw::pg::Direction::kBackend) return in.subspan(1);
  while (true) {
    dbw::pg::Frame f;
    std::string error;
    std::span<const std::byte> before = in;
    if (dbw::pg::ParseFrame(dir, true, &in, &f, &error) != dbw::pg::ParseState::kOk) return before;
    dbw::pg::StartupPacket p;
    if (!dbw::pg::ParseStartupPacket(f.body, &p, &error) ||
        p.kind == dbw::pg::StartupKind::kStartup)
      return in;
  }
}

void BM_DecodeSession(benchmark::State& state, const char* name) {
  auto fe = Read(std::string(name) + ".fe.bin");
  auto be = Read(std::string(name) + ".be.bin");
  auto tfe = Typed(fe, dbw::pg::Direction::kFrontend);
  auto tbe = Typed(be, dbw::pg::Direction::kBackend);
  dbw::pg::Bytes out;
  out.reserve(tfe.size() + tbe.size());
  for (auto _ : state) {
    Handler h;
    h.state.AssumeReady();
    dbw::pg::StreamDecoder dfe(dbw::pg::Direction::kFrontend, &h, 1 << 20);
    dbw::pg::StreamDecoder dbe(dbw::pg::Direction::kBackend, &h, 1 << 20);
    out.clear();
    dfe.Decode(tfe, &out);
    dbe.Decode(tbe, &out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * (tfe.size() + tbe.size())));
}
BENCHMARK_CAPTURE(BM_DecodeSession, pgbench_prepared, "pgbench_prepared");
BENCHMARK_CAPTURE(BM_DecodeSession, pgbench_prepared_tpcb, "pgbench_prepared_tpcb");
BENCHMARK_CAPTURE(BM_DecodeSession, psql_simple, "psql_simple");

// The witness's counter over the same captures, both directions, as the relay feeds it from
// its upstream socket: what counting costs next to decoding (BM_DecodeSession).
void BM_WireTally(benchmark::State& state, const char* name) {
  auto fe = Read(std::string(name) + ".fe.bin");
  auto be = Read(std::string(name) + ".be.bin");
  auto tbe = Typed(be, dbw::pg::Direction::kBackend);
  for (auto _ : state) {
    dbw::pg::WireTally sent(true);
    dbw::pg::WireTally received(false);
    sent.Feed(fe);
    received.Feed(tbe);
    benchmark::DoNotOptimize(sent.counts().requests + received.counts().rows);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * (fe.size() + tbe.size())));
}
BENCHMARK_CAPTURE(BM_WireTally, pgbench_prepared, "pgbench_prepared");
BENCHMARK_CAPTURE(BM_WireTally, psql_simple, "psql_simple");

}  // namespace
