// The second witness, unit by unit: WireTally's counts from bytes split anywhere, the comparison
// of the two accounts, and the pairing of halves that arrive in either order.
#include "userspace/witness/witness.h"

#include <vector>

#include <gtest/gtest.h>

#include "tests/audit/collecting_sink.h"
#include "userspace/protocol/postgres/encoder.h"
#include "userspace/protocol/postgres/types.h"
#include "userspace/protocol/postgres/wire_tally.h"

namespace dbw::witness {
namespace {

pg::Bytes Frontend() {
  pg::Bytes b;
  pg::StartupMessage sm;
  sm.protocol = pg::kProtocolV3;
  sm.params = {{"user", "app"}, {"database", "appdb"}};
  pg::AppendStartupMessage(&b, sm);
  pg::AppendQuery(&b, "SELECT 1");
  pg::AppendParse(&b, "", "SELECT $1");
  pg::AppendBind(&b, "", "");
  pg::AppendExecute(&b, "");
  pg::AppendSync(&b);
  pg::AppendFunctionCall(&b, 42);
  pg::AppendTerminate(&b);
  return b;
}

pg::Bytes Backend(int rows) {
  pg::Bytes b;
  pg::AppendReadyForQuery(&b, 'I');
  const std::byte v[] = {std::byte{'7'}};
  std::vector<std::optional<std::span<const std::byte>>> values{std::span<const std::byte>(v)};
  for (int i = 0; i < rows; ++i) pg::AppendDataRow(&b, values);
  pg::AppendCommandComplete(&b, "SELECT 3");
  pg::AppendReadyForQuery(&b, 'I');
  return b;
}

TEST(WireTally, CountsTheSameWhereverTheBytesAreSplit) {
  const pg::Bytes fe = Frontend();
  const pg::Bytes be = Backend(3);
  for (size_t cut = 0; cut <= fe.size(); ++cut) {
    pg::WireTally t(true);
    t.Feed({fe.data(), cut});
    t.Feed({fe.data() + cut, fe.size() - cut});
    EXPECT_EQ(t.counts().bytes, fe.size());
    EXPECT_EQ(t.counts().requests, 3u) << "cut at " << cut;  // Query, Execute, FunctionCall
    EXPECT_EQ(t.counts().messages, 8u) << "cut at " << cut;
    EXPECT_EQ(t.counts().first_code, pg::kProtocolV3);
    EXPECT_TRUE(t.counts().framed);
  }
  // Twice back to back: the second stream's untyped first packet is not expected again, so a
  // frontend stream is whole only from its start; a backend one simply counts double.
  pg::WireTally twice(false);
  twice.Feed(be);
  twice.Feed(be);
  EXPECT_EQ(twice.counts().rows, 6u);
  EXPECT_EQ(twice.counts().messages, 12u);
  pg::WireTally bytewise(false);
  for (std::byte b : be) bytewise.Feed({&b, 1});
  EXPECT_EQ(bytewise.counts().rows, 3u);
  EXPECT_EQ(bytewise.counts().requests, 0u);
  EXPECT_EQ(bytewise.counts().messages, 6u);
}

TEST(WireTally, MissingBytesStopTheFramesNotTheByteCount) {
  const pg::Bytes fe = Frontend();
  pg::WireTally t(true);
  t.Feed({fe.data(), 30});
  t.Skip(10);
  t.Feed({fe.data() + 40, fe.size() - 40});
  EXPECT_FALSE(t.counts().framed);
  EXPECT_EQ(t.counts().bytes, fe.size());
  EXPECT_LT(t.counts().requests, 3u);
}

TEST(WireTally, DesyncStopsFramesAndAddsNoBytes) {
  const pg::Bytes fe = Frontend();
  pg::WireTally t(true);
  t.Feed({fe.data(), 20});
  t.Desync();
  t.Feed({fe.data() + 20, fe.size() - 20});
  EXPECT_FALSE(t.counts().framed);
  EXPECT_EQ(t.counts().bytes, fe.size());  // a lower bound never inflated by the resync
  EXPECT_EQ(t.counts().requests, 0u);
}

TEST(WireTally, AShortLengthEndsFraming) {
  const std::byte bad[] = {std::byte{'Q'}, std::byte{0}, std::byte{0}, std::byte{0}, std::byte{2}};
  pg::WireTally t(true);
  pg::Bytes fe;
  pg::StartupMessage sm;
  sm.protocol = pg::kProtocolV3;
  pg::AppendStartupMessage(&fe, sm);
  t.Feed(fe);
  t.Feed(bad);
  EXPECT_FALSE(t.counts().framed);
  EXPECT_EQ(t.counts().requests, 0u);
}

TEST(WireTally, CancelAndSslRequestsAreNamed) {
  pg::Bytes cancel;
  pg::AppendCancelRequest(&cancel, {1, 2});
  pg::WireTally c(true);
  c.Feed(cancel);
  EXPECT_EQ(c.counts().first_code, pg::kCancelRequestCode);
  pg::Bytes ssl;
  pg::AppendSslRequest(&ssl);
  pg::WireTally s(true);
  s.Feed(ssl);
  EXPECT_EQ(s.counts().first_code, pg::kSslRequestCode);
}

TEST(WireTally, RequestsAmongWholeFrames) {
  pg::Bytes b;
  pg::AppendQuery(&b, "SAVEPOINT a");
  pg::AppendParse(&b, "", "SELECT 1");
  pg::AppendExecute(&b, "");
  EXPECT_EQ(pg::WireTally::Requests(b), 2u);
  EXPECT_EQ(pg::WireTally::Requests({}), 0u);
}

RelayAccount Relay(uint64_t requests, uint64_t bytes, uint64_t rows, uint64_t statements) {
  RelayAccount r;
  r.sent.requests = requests;
  r.sent.bytes = bytes;
  r.received.rows = rows;
  r.received.bytes = 1000;
  r.statements = statements;
  r.clean = true;
  return r;
}

ServerAccount Server(uint64_t requests, uint64_t bytes, uint64_t rows) {
  ServerAccount s;
  s.received.requests = requests;
  s.received.bytes = bytes;
  s.sent.rows = rows;
  s.sent.bytes = 1000;
  return s;
}

TEST(Disagreements, EqualAccountsAgree) {
  EXPECT_TRUE(Disagreements(Relay(10, 500, 30, 10), Server(10, 500, 30)).empty());
  RelayAccount r = Relay(12, 500, 30, 8);
  r.skipped = 1;
  r.internal = 3;  // one of them skipped too: accounted for more than the server received
  r.clean = false;
  EXPECT_TRUE(Disagreements(r, Server(12, 500, 30)).empty());
}

TEST(Disagreements, AnUnauditedRequestIsReported) {
  // Injected on the socket: more requests and bytes at the server than the relay sent.
  auto why = Disagreements(Relay(10, 500, 30, 10), Server(11, 530, 31));
  ASSERT_GE(why.size(), 3u);
  EXPECT_NE(why[0].find("the server received 11 requests"), std::string::npos) << why[0];
  EXPECT_NE(why[0].find("accounts for 10"), std::string::npos) << why[0];
  // Forwarded without its statement event: the wire agrees, the audit log does not.
  why = Disagreements(Relay(10, 500, 30, 9), Server(10, 500, 30));
  ASSERT_EQ(why.size(), 1u);
  EXPECT_NE(why[0].find("accounts for 9"), std::string::npos) << why[0];
}

TEST(Disagreements, TheRelayCannotReadWhatTheServerNeverSent) {
  auto why = Disagreements(Relay(10, 500, 31, 10), Server(10, 500, 30));
  ASSERT_EQ(why.size(), 1u);
  EXPECT_NE(why[0].find("the relay received 31 rows"), std::string::npos) << why[0];
  ServerAccount partial = Server(10, 500, 30);
  partial.sent.framed = false;  // the tap lost some of what the server wrote: not comparable
  EXPECT_TRUE(Disagreements(Relay(10, 500, 31, 10), partial).empty());
  partial = Server(10, 500, 30);
  partial.complete = false;  // the agent stopped watching
  EXPECT_TRUE(Disagreements(Relay(10, 500, 31, 10), partial).empty());
}

TEST(Disagreements, OnlyACleanEndDemandsEquality) {
  RelayAccount r = Relay(10, 500, 30, 10);
  ServerAccount s = Server(9, 480, 30);  // the last request never reached the server
  EXPECT_EQ(Disagreements(r, s).size(), 3u);
  r.clean = false;
  EXPECT_TRUE(Disagreements(r, s).empty());
}

class WitnessTest : public ::testing::Test {
 protected:
  uint64_t Result(const std::string& r) {
    std::string text = metrics_.RenderPrometheus();
    std::string key = "dbwarden_witness_connections_total{result=\"" + r + "\"} ";
    size_t at = text.find(key);
    return at == std::string::npos ? 0 : std::stoull(text.substr(at + key.size()));
  }
  std::shared_ptr<audit::SessionInfo> Info(const std::string& id) {
    auto i = std::make_shared<audit::SessionInfo>();
    i->session_id = id;
    return i;
  }
  audit::CollectingSink sink_;
  MetricsRegistry metrics_;
  Witness w_{&sink_, &metrics_};
};

TEST_F(WitnessTest, HalvesPairInEitherOrder) {
  w_.Watching();
  w_.RelayOpened("tcp:127.0.0.1:1000", Info("a"));
  w_.RelayClosed("tcp:127.0.0.1:1000", Info("a"), Relay(5, 100, 2, 5));
  EXPECT_EQ(w_.pending(), 1u);
  w_.ServerClosed("tcp:127.0.0.1:1000", Server(5, 100, 2));
  w_.RelayOpened("tcp:127.0.0.1:1001", Info("b"));
  w_.ServerClosed("tcp:127.0.0.1:1001", Server(6, 100, 2));
  w_.RelayClosed("tcp:127.0.0.1:1001", Info("b"), Relay(5, 100, 2, 5));
  EXPECT_EQ(w_.pending(), 0u);
  EXPECT_EQ(Result("match"), 1u);
  EXPECT_EQ(Result("mismatch"), 1u);
  ASSERT_EQ(sink_.events.size(), 1u);
  const audit::Event& e = sink_.events[0];
  EXPECT_EQ(e.kind, audit::EventKind::kWitnessMismatch);
  EXPECT_EQ(e.session->session_id, "b");
  EXPECT_EQ(e.count, 1u);
  EXPECT_NE(e.detail.find("tcp:127.0.0.1:1001"), std::string::npos) << e.detail;
}

TEST_F(WitnessTest, AConnectionNoSessionClaimsIsReportedAfterTheWait) {
  w_.Watching();
  w_.ServerClosed("tcp:127.0.0.1:2000", Server(3, 90, 0));
  w_.Tick(std::chrono::steady_clock::now() + Witness::kWait - std::chrono::seconds(1));
  EXPECT_TRUE(sink_.events.empty());
  w_.Tick(std::chrono::steady_clock::now() + Witness::kWait + std::chrono::seconds(1));
  EXPECT_EQ(Result("unclaimed"), 1u);
  ASSERT_EQ(sink_.events.size(), 1u);
  EXPECT_EQ(sink_.events[0].count, 3u);
  EXPECT_EQ(w_.pending(), 0u);
}

TEST_F(WitnessTest, ServerSideFirstIsClaimedByALateRelayOpen) {
  w_.Watching();
  w_.ServerClosed("unix:77", Server(0, 40, 0));
  w_.RelayOpened("unix:77", Info("late"));
  // Claimed: it now waits for the relay's end however long, not the unclaimed timeout.
  w_.Tick(std::chrono::steady_clock::now() + Witness::kWait * 2);
  EXPECT_TRUE(sink_.events.empty());
  w_.RelayClosed("unix:77", Info("late"), Relay(0, 40, 0, 0));
  EXPECT_EQ(Result("match"), 1u);
}

TEST_F(WitnessTest, InternalCancelUnwitnessedAndUnwatched) {
  w_.RelayOpened("tcp:127.0.0.1:3000", Info("before-the-tap"));
  w_.Watching();
  w_.RelayInternal("tcp:127.0.0.1:3001");
  w_.ServerClosed("tcp:127.0.0.1:3001", Server(7, 900, 100));
  EXPECT_EQ(Result("internal"), 1u);
  ServerAccount cancel;
  cancel.received.first_code = pg::kCancelRequestCode;
  w_.ServerClosed("tcp:127.0.0.1:3002", cancel);
  EXPECT_EQ(Result("cancel"), 1u);
  w_.RelayClosed("tcp:127.0.0.1:3000", Info("before-the-tap"), Relay(5, 100, 2, 4));
  w_.ServerClosed("tcp:127.0.0.1:3000", Server(5, 100, 2));
  EXPECT_EQ(Result("unwitnessed"), 1u);  // opened before the tap watched: not compared
  w_.RelayOpened("tcp:127.0.0.1:3003", Info("never-seen"));
  w_.RelayClosed("tcp:127.0.0.1:3003", Info("never-seen"), Relay(5, 100, 2, 5));
  w_.Tick(std::chrono::steady_clock::now() + Witness::kWait + std::chrono::seconds(1));
  EXPECT_EQ(Result("unwitnessed"), 2u);
  EXPECT_TRUE(sink_.events.empty());
  EXPECT_EQ(w_.pending(), 0u);
  w_.Off();
  w_.RelayOpened("tcp:127.0.0.1:3004", Info("off"));
  EXPECT_EQ(w_.pending(), 0u);
}

}  // namespace
}  // namespace dbw::witness
