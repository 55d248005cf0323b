// PassiveSession over captured golden vectors: the statements a real client ran become statement
// events with source "tap", whole or in small chunks, across a gap in a result, and for a
// session picked up mid-way.
#include "userspace/tap/passive_session.h"

#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/audit/collecting_sink.h"
#include "userspace/common/metrics.h"
#include "userspace/protocol/postgres/parse.h"
#include "userspace/tap/metrics.h"

namespace dbw::tap {
namespace {

std::vector<std::byte> ReadVector(const std::string& name) {
  std::ifstream in(std::string(DBW_TESTDATA) + "/postgres/" + name, std::ios::binary);
  std::vector<char> raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::byte> out(raw.size());
  for (size_t i = 0; i < raw.size(); ++i) out[i] = static_cast<std::byte>(raw[i]);
  return out;
}

// One text per query string: its statements' normalized texts, as the audit JSON writes them.
std::string Normalized(const sql::QueryFacts& f) {
  std::string text;
  for (const auto& s : f.statements) text += (text.empty() ? "" : "; ") + s.normalized;
  return text;
}

class CollectingSink : public audit::CollectingSink {
 public:
  std::vector<std::string> Statements() const {
    std::vector<std::string> out;
    for (const auto& e : events)
      if (e.kind == audit::EventKind::kStatement) out.push_back(Normalized(*e.statement->facts));
    return out;
  }
};

// The SQL of every Query of a frontend vector (startup packets skipped), normalized as the
// analyzer does, and the offset of each Query.
struct Queries {
  std::vector<std::string> sql;
  std::vector<size_t> offsets;
};

Queries QueriesOf(const std::vector<std::byte>& fe, sql::Analyzer* analyzer) {
  Queries q;
  std::span<const std::byte> in(fe);
  bool startup = true;
  while (!in.empty()) {
    size_t offset = fe.size() - in.size();
    pg::Frame f;
    std::string error;
    if (pg::ParseFrame(pg::Direction::kFrontend, startup, &in, &f, &error) != pg::ParseState::kOk)
      break;
    if (startup) {
      pg::StartupPacket p;
      if (pg::ParseStartupPacket(f.body, &p, &error) && p.kind == pg::StartupKind::kStartup)
        startup = false;
      continue;
    }
    if (f.type == pg::fe::kQuery) {
      pg::QueryMessage m;
      if (pg::ParseQuery(f.body, &m, &error)) {
        q.sql.push_back(Normalized(*analyzer->Analyze(m.sql)));
        q.offsets.push_back(offset);
      }
    }
  }
  return q;
}

class PassiveSessionTest : public ::testing::Test {
 protected:
  PassiveSessionTest() : metrics_(&registry_), policy_(nullptr) {
    auto loaded = policy::LoadPolicy({}, policy::Mode::kEnforce);
    EXPECT_TRUE(loaded.ok());
    if (loaded.ok()) policy_.Set(*loaded);
  }

  std::unique_ptr<PassiveSession> NewSession() {
    SessionIdentity id;
    id.session_id = "0123456789abcdef";
    id.target = "orders";
    id.env = "prod";
    id.transport = "tcp";
    id.client_addr = "127.0.0.1:40000";
    return std::make_unique<PassiveSession>(SessionContext{&sink_, &policy_, &analyzer_, &metrics_},
                                            id, 1 << 20);
  }

  // Feeds both directions in `chunk`-byte pieces, the frontend first (requests precede their
  // responses; the state machine pairs them in order), from position `from` of the frontend.
  void Feed(PassiveSession* s, const std::vector<std::byte>& fe, const std::vector<std::byte>& be,
            size_t chunk, size_t fe_from = 0, size_t be_from = 0,
            std::pair<size_t, size_t> be_hole = {0, 0}) {
    for (size_t at = fe_from; at < fe.size(); at += chunk)
      s->Add(true, at, std::span(fe).subspan(at, std::min(chunk, fe.size() - at)), 1000 + at);
    for (size_t at = be_from; at < be.size(); at += chunk) {
      size_t n = std::min(chunk, be.size() - at);
      if (at + n > be_hole.first && at < be_hole.second) continue;  // lost in the ring buffer
      s->Add(false, at, std::span(be).subspan(at, n), 2000000 + at);
    }
    s->Close(9000000, "connection closed");
  }

  MetricsRegistry registry_;
  TapMetrics metrics_;
  policy::PolicyStore policy_;
  sql::Analyzer analyzer_;
  CollectingSink sink_;
};

TEST_F(PassiveSessionTest, PsqlSessionWholeAndInChunks) {
  auto fe = ReadVector("psql_simple.fe.bin");
  auto be = ReadVector("psql_simple.be.bin");
  Queries want = QueriesOf(fe, &analyzer_);
  ASSERT_GE(want.sql.size(), 3u);
  for (size_t chunk : {fe.size() + be.size(), size_t{4096}, size_t{7}, size_t{1}}) {
    SCOPED_TRACE("chunk " + std::to_string(chunk));
    sink_.events.clear();
    auto s = NewSession();
    Feed(s.get(), fe, be, chunk);
    EXPECT_EQ(sink_.Statements(), want.sql);
    ASSERT_FALSE(sink_.events.empty());
    const audit::Event& start = sink_.events.front();
    EXPECT_EQ(start.kind, audit::EventKind::kSessionStart);
    EXPECT_STREQ(start.source, "tap");
    EXPECT_EQ(start.session->principal.db_user, "dbw");
    EXPECT_EQ(start.session->principal.database, "dbw");
    EXPECT_EQ(sink_.events.back().kind, audit::EventKind::kSessionEnd);
    for (const auto& e : sink_.events) {
      if (e.kind != audit::EventKind::kStatement) continue;
      ASSERT_TRUE(e.decision.has_value());
      EXPECT_TRUE(e.decision->decision->monitor);  // the tap only judges
      EXPECT_FALSE(e.decision->enforced);
    }
  }
  EXPECT_EQ(metrics_.decode_errors->value(), 0u);
}

TEST_F(PassiveSessionTest, ExtendedProtocolFromPsycopg2AndJdbc) {
  for (const char* name : {"psycopg2_session", "jdbc_session", "pgbench_extended"}) {
    SCOPED_TRACE(name);
    auto fe = ReadVector(std::string(name) + ".fe.bin");
    auto be = ReadVector(std::string(name) + ".be.bin");
    sink_.events.clear();
    auto s = NewSession();
    Feed(s.get(), fe, be, 13);
    std::vector<std::string> stmts = sink_.Statements();
    EXPECT_FALSE(stmts.empty());
    for (const auto& e : sink_.events) {
      if (e.kind == audit::EventKind::kStatement) {
        EXPECT_TRUE(e.result.has_value());
      }
    }
  }
  EXPECT_EQ(metrics_.decode_errors->value(), 0u);
}

TEST_F(PassiveSessionTest, GapInTheResultsKeepsLaterStatements) {
  auto fe = ReadVector("psql_simple.fe.bin");
  auto be = ReadVector("psql_simple.be.bin");
  Queries want = QueriesOf(fe, &analyzer_);
  // Lose 40 bytes in the middle of the backend stream: whatever message they cut, the statements
  // after the next resynchronisation are still reported, and none is invented.
  size_t mid = be.size() / 2 / 20 * 20;  // two whole 20-byte chunks
  auto s = NewSession();
  Feed(s.get(), fe, be, 20, 0, 0, {mid, mid + 40});
  std::vector<std::string> got = sink_.Statements();
  EXPECT_EQ(got.size(), want.sql.size());
  EXPECT_EQ(got.back(), want.sql.back());
  EXPECT_GE(metrics_.gaps->value(), 1u);
  EXPECT_EQ(metrics_.gap_bytes->value(), 40u);
}

TEST_F(PassiveSessionTest, PickedUpMidSessionStartsAtTheNextQuery) {
  auto fe = ReadVector("psql_simple.fe.bin");
  auto be = ReadVector("psql_simple.be.bin");
  Queries want = QueriesOf(fe, &analyzer_);
  ASSERT_GE(want.sql.size(), 3u);
  // The capture starts two queries from the end, in both directions at a message boundary of
  // the frontend and somewhere in the backend: only the queries seen whole are reported.
  size_t from = want.offsets[want.sql.size() - 2];
  auto s = NewSession();
  Feed(s.get(), fe, be, 4096, from, be.size() - 64);
  std::vector<std::string> got = sink_.Statements();
  ASSERT_FALSE(got.empty());
  ASSERT_LE(got.size(), 2u);
  // Whatever was reported is a real query of the session, in order, ending with the last.
  EXPECT_EQ(got.back(), want.sql.back());
  EXPECT_EQ(sink_.events.front().kind, audit::EventKind::kSessionStart);
}

}  // namespace
}  // namespace dbw::tap
