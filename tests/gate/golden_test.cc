// Real clients through the gate: the frontend streams captured from psql, pgbench, psycopg2,
// libpq (binary), pgJDBC and node-postgres (tests/testdata/postgres) replayed message by message,
// with the server's settings and ReadyForQuery statuses from the matching backend streams. Every
// message has a verdict other than refuse, every statement reads the same as the plain analyzer
// reads it (nothing unverifiable: the names these clients use are tracked), and the decisions
// under an allowing, a denying and a masking policy are the policy's own.
#include <chrono>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "policy/loader.h"
#include "tests/policy/test_util.h"
#include "userspace/gate/coverage.h"
#include "userspace/gate/statement_gate.h"
#include "userspace/protocol/postgres/parse.h"

namespace dbw::gate {
namespace {

std::vector<std::byte> ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::vector<std::byte> out(bytes.size());
  for (size_t i = 0; i < bytes.size(); ++i) out[i] = static_cast<std::byte>(bytes[i]);
  return out;
}

struct Frames {
  std::vector<pg::Frame> startup;  // untyped packets (SSLRequest, StartupMessage)
  std::vector<pg::Frame> typed;
};

Frames Split(const std::vector<std::byte>& bytes, pg::Direction dir) {
  Frames out;
  std::span<const std::byte> in(bytes);
  std::string error;
  if (dir == pg::Direction::kBackend && !in.empty() && in[0] == std::byte{'N'})
    in = in.subspan(1);  // the answer to SSLRequest
  bool startup = dir == pg::Direction::kFrontend;
  while (!in.empty()) {
    pg::Frame f;
    EXPECT_EQ(pg::ParseFrame(dir, startup, &in, &f, &error), pg::ParseState::kOk) << error;
    if (startup) {
      out.startup.push_back(f);
      pg::StartupPacket p;
      EXPECT_TRUE(pg::ParseStartupPacket(f.body, &p, &error)) << error;
      startup = p.kind != pg::StartupKind::kStartup;  // typed frames follow the StartupMessage
    } else {
      out.typed.push_back(f);
    }
  }
  return out;
}

class GoldenGateTest : public ::testing::TestWithParam<const char*> {};

TEST_P(GoldenGateTest, RealClientsPassTheGateUnchanged) {
  const std::string base = std::string(DBW_TESTDATA) + "/postgres/" + GetParam();
  const std::vector<std::byte> fe_bytes = ReadFile(base + ".fe.bin");
  const std::vector<std::byte> be_bytes = ReadFile(base + ".be.bin");
  Frames fe = Split(fe_bytes, pg::Direction::kFrontend);  // views into the bytes above
  Frames be = Split(be_bytes, pg::Direction::kBackend);
  ASSERT_FALSE(fe.startup.empty());
  ASSERT_FALSE(be.typed.empty());

  // Startup: every parameter is a setting judged as its SET; these clients' are all allowed.
  pg::StartupPacket packet;
  std::string error;
  ASSERT_TRUE(pg::ParseStartupPacket(fe.startup.back().body, &packet, &error)) << error;
  auto request = ReadStartup(packet.startup);
  ASSERT_TRUE(request.ok()) << request.status().message();
  EXPECT_FALSE(request->replication_requested);

  const policy::Target prod{"main", "prod"};
  policy::Principal agent;
  agent.kind = policy::PrincipalKind::kAgent;
  agent.db_user = agent.subject = "dbw";
  auto pack = *policy::LoadPolicy({}, policy::Mode::kEnforce);
  auto deny_all = policy::testing::MustLoad(R"(version: 1
rules:
  - id: deny-everything
    match: {}
    action: deny
)");
  sql::Analyzer analyzer, plain;
  StatementGate gate(&analyzer);
  for (const StartupSetting& s : request->settings) {
    auto facts = gate.Facts(SetStatementFor(s));
    EXPECT_EQ(
        gate.Decide(*pack, prod, agent, *facts, false, std::chrono::system_clock::now()).action,
        policy::Action::kAllow)
        << s.name;
  }

  // The server's side: settings, then one ReadyForQuery status per answered request.
  std::vector<uint8_t> ready;
  for (const pg::Frame& f : be.typed) {
    if (f.type == pg::be::kParameterStatus && ready.empty()) {
      pg::ParameterStatusMessage m;
      ASSERT_TRUE(pg::ParseParameterStatus(f.body, &m, &error));
      gate.OnParameterStatus(m.name, m.value);
    } else if (f.type == pg::be::kReadyForQuery) {
      pg::ReadyForQueryMessage m;
      ASSERT_TRUE(pg::ParseReadyForQuery(f.body, &m, &error));
      ready.push_back(m.status);
    }
  }
  ASSERT_FALSE(ready.empty());
  gate.OnReadyForQuery(ready[0]);
  size_t next_ready = 1;

  size_t judged = 0;
  bool authenticating = true;
  std::vector<std::shared_ptr<const sql::QueryFacts>> batch;  // answered by the next Sync
  for (const pg::Frame& f : fe.typed) {
    if (f.type != pg::fe::kPassword) authenticating = false;
    pg::Phase phase = authenticating ? pg::Phase::kAuthenticating : pg::Phase::kReady;
    DoorVerdict door = FrontendDoor(phase, f.type);
    ASSERT_NE(door.door, Door::kRefuse) << "type " << f.type << ": " << door.why;
    std::string_view text;
    std::string parse_name;
    if (f.type == pg::fe::kQuery) {
      pg::QueryMessage m;
      ASSERT_TRUE(pg::ParseQuery(f.body, &m, &error));
      text = m.sql;
    } else if (f.type == pg::fe::kParse) {
      pg::ParseMessage m;
      ASSERT_TRUE(pg::ParseParse(f.body, &m, &error));
      text = m.sql;
      parse_name = std::string(m.name);
    }
    if (door.door == Door::kJudge) {
      ++judged;
      auto facts = gate.Facts(text);
      auto reference = plain.Analyze(text);
      EXPECT_FALSE(facts->AllRisks() & sql::kRiskUnverifiable)
          << text << ": " << facts->unverifiable;
      ASSERT_GE(facts->statements.size(), reference->statements.size()) << text;
      for (size_t i = 0; i < reference->statements.size(); ++i)
        EXPECT_EQ(facts->statements[i].command, reference->statements[i].command) << text;
      auto now = std::chrono::system_clock::now();
      for (bool masked : {false, true}) {
        policy::Decision d = gate.Decide(*pack, prod, agent, *facts, masked, now);
        policy::Decision p = pack->Evaluate(prod, agent, *facts, now);
        bool copy_in = false;
        for (const auto& s : facts->statements)
          copy_in |= s.command == sql::Command::kCopy && (s.risks & sql::kRiskWrite);
        if (copy_in) {
          // COPY FROM cannot run under the pack's row budget for agents: the gate says so.
          EXPECT_EQ(d.rules, std::vector<std::string>{std::string(kGateRule)}) << text;
          EXPECT_NE(d.reason.find("row budget"), std::string::npos) << d.reason;
          continue;
        }
        EXPECT_EQ(d.action, p.action) << text;
        EXPECT_EQ(d.rules, p.rules) << text;
        if (!facts->statements.empty()) {  // an empty query runs nothing: no rule to match
          EXPECT_EQ(gate.Decide(*deny_all, prod, agent, *facts, masked, now).rules,
                    std::vector<std::string>{"deny-everything"})
              << text;
        }
      }
      bool simple = f.type == pg::fe::kQuery;
      if (simple) gate.OnSyncPoint();
      gate.OnForwarded(facts, simple, parse_name);
      if (simple) {
        gate.OnCompleted(*facts, facts->statements.size());
        ASSERT_LT(next_ready, ready.size());
        gate.OnReadyForQuery(ready[next_ready++]);
      } else {
        if (!parse_name.empty()) gate.OnParseAnswered(parse_name, facts, true);
        batch.push_back(facts);
      }
    } else if (f.type == pg::fe::kBind) {
      pg::FrontendMessage m;
      ASSERT_TRUE(pg::ParseFrontend(f, &m, &error)) << error;
      gate.OnBind(m.bind.portal, nullptr);
    } else if (f.type == pg::fe::kSync) {
      gate.OnSyncPoint();
      for (const auto& facts : batch) gate.OnCompleted(*facts, facts->statements.size());
      batch.clear();
      ASSERT_LT(next_ready, ready.size());
      gate.OnReadyForQuery(ready[next_ready++]);
    }
  }
  EXPECT_GT(judged, 0u);
  EXPECT_EQ(next_ready, ready.size()) << "every ReadyForQuery matched a request";
}

INSTANTIATE_TEST_SUITE_P(Vectors, GoldenGateTest,
                         ::testing::Values("psql_simple", "psql_scram", "psql_md5",
                                           "pgbench_simple", "pgbench_extended", "pgbench_prepared",
                                           "pgbench_prepared_tpcb", "psycopg2_session",
                                           "libpq_binary", "jdbc_session", "node_session",
                                           "cancel_session"));

}  // namespace
}  // namespace dbw::gate
