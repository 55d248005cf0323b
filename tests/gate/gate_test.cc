// The statement gate without sockets: the coverage matrix for every message type and phase, the
// startup packet's settings, reading text as the server will (standard_conforming_strings,
// client encodings, a change still in flight), every server-side name operation, FunctionCall
// and replication verdicts.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>

#include <gtest/gtest.h>

#include "policy/loader.h"
#include "tests/gate/test_util.h"
#include "tests/policy/test_util.h"
#include "userspace/gate/coverage.h"
#include "userspace/gate/statement_gate.h"
#include "userspace/sql/encoding.h"

namespace dbw::gate {
namespace {

using policy::Action;
using sql::Command;

using testing::Agent;
using testing::Human;
using testing::kDev;
using testing::kProd;
using testing::Pack;

std::vector<Command> Commands(const sql::QueryFacts& f) {
  std::vector<Command> out;
  for (const auto& s : f.statements) out.push_back(s.command);
  return out;
}

bool Unverifiable(const sql::QueryFacts& f) {
  return f.AllRisks() & sql::kRiskUnverifiable;
}

class GateTest : public ::testing::Test {
 protected:
  void SetUp() override { testing::Start(&gate_); }
  // A Query forwarded and answered: the server ran `succeeded` of its statements.
  std::shared_ptr<const sql::QueryFacts> RunQuery(std::string_view sql, size_t succeeded = 99,
                                                  uint8_t tx = 'I') {
    auto facts = gate_.Facts(sql);
    SendQuery(facts);
    Answer(*facts, succeeded, tx);
    return facts;
  }
  void SendQuery(const std::shared_ptr<const sql::QueryFacts>& facts) {
    gate_.OnSyncPoint();
    gate_.OnForwarded(facts, true, "");
  }
  void Answer(const sql::QueryFacts& facts, size_t succeeded, uint8_t tx = 'I') {
    gate_.OnCompleted(facts, std::min(succeeded, facts.statements.size()));
    gate_.OnReadyForQuery(tx);
  }
  policy::Decision Decide(const sql::QueryFacts& facts, const policy::Principal& who,
                          bool masked = false, const policy::Target& target = kProd) {
    return gate_.Decide(*pack_, target, who, facts, masked, std::chrono::system_clock::now());
  }

  sql::Analyzer analyzer_;
  StatementGate gate_{&analyzer_};
  std::shared_ptr<const policy::CompiledPolicy> pack_ = Pack();
};

// ---- The coverage matrix ----

TEST(CoverageTest, EveryFrontendTypeHasAVerdictInEveryPhase) {
  const std::string all = "BCdcfDEHFPpQSX";
  for (pg::Phase phase : {pg::Phase::kReady, pg::Phase::kInitializing, pg::Phase::kCopyIn,
                          pg::Phase::kCopyOut, pg::Phase::kCopyBoth}) {
    for (char t : all) {
      DoorVerdict v = FrontendDoor(phase, static_cast<uint8_t>(t));
      Door expected = t == 'Q' || t == 'P' || t == 'F' ? Door::kJudge
                      : t == 'B' || t == 'E'           ? Door::kTrack
                      : t == 'p'                       ? Door::kRefuse
                                                       : Door::kPass;
      EXPECT_EQ(v.door, expected) << "type " << t << " phase " << pg::PhaseName(phase);
    }
  }
  // Everything not on the list is refused, in every phase.
  for (int t = 0; t < 256; ++t) {
    if (all.find(static_cast<char>(t)) != std::string::npos) continue;
    EXPECT_EQ(FrontendDoor(pg::Phase::kReady, static_cast<uint8_t>(t)).door, Door::kRefuse) << t;
  }
}

TEST(CoverageTest, AuthenticationAcceptsOnlyItsAnswers) {
  EXPECT_EQ(FrontendDoor(pg::Phase::kAuthenticating, 'p').door, Door::kPass);
  EXPECT_EQ(FrontendDoor(pg::Phase::kAuthenticating, 'X').door, Door::kPass);
  for (char t : std::string("QPFBESDCHdcf")) {
    DoorVerdict v = FrontendDoor(pg::Phase::kAuthenticating, static_cast<uint8_t>(t));
    EXPECT_EQ(v.door, Door::kRefuse) << t;
    EXPECT_FALSE(v.why.empty());
  }
  EXPECT_EQ(FrontendDoor(pg::Phase::kTerminated, 'Q').door, Door::kRefuse);
  EXPECT_EQ(FrontendDoor(pg::Phase::kStartup, 'Q').door, Door::kRefuse);
}

// ---- The startup packet ----

pg::StartupMessage Startup(std::vector<std::pair<std::string_view, std::string_view>> params) {
  pg::StartupMessage m;
  m.protocol = pg::kProtocolV3;
  m.params = std::move(params);
  return m;
}

TEST(StartupTest, ParametersAndOptionsAreSettings) {
  auto r = ReadStartup(Startup({{"user", "u"},
                                {"database", "d"},
                                {"application_name", "psql"},
                                {"ROLE", "admin"},
                                {"_pq_.something", "x"},
                                {"options",
                                 "-c search_path=a,b  -cwork_mem=64MB --geqo-seed=0.5 "
                                 "-c application_name=two\\ words"}}));
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->settings.size(), 6u);
  EXPECT_EQ(r->settings[0].name, "application_name");
  EXPECT_EQ(r->settings[1].name, "role");  // folded, as the server folds setting names
  EXPECT_EQ(r->settings[1].value, "admin");
  EXPECT_EQ(r->settings[2].name, "search_path");
  EXPECT_EQ(r->settings[2].value, "a,b");
  EXPECT_TRUE(r->settings[2].from_options);
  EXPECT_EQ(r->settings[3].name, "work_mem");
  EXPECT_EQ(r->settings[4].name, "geqo_seed");   // dashes are underscores in long options
  EXPECT_EQ(r->settings[5].value, "two words");  // an escaped space does not split
  EXPECT_FALSE(r->replication_requested);
}

TEST(StartupTest, OtherSwitchesAndBadSettingsAreRefused) {
  for (std::string_view opts : {"-P", "-c", "-c role", "--role", "-f s", "-D /tmp", "role=x"}) {
    auto r = ReadStartup(Startup({{"user", "u"}, {"options", opts}}));
    EXPECT_FALSE(r.ok()) << opts;
  }
}

TEST(StartupTest, Replication) {
  for (std::string_view v : {"true", "database", "on", "1", "yes"}) {
    auto r = ReadStartup(Startup({{"user", "u"}, {"replication", v}}));
    ASSERT_TRUE(r.ok());
    EXPECT_TRUE(r->replication_requested) << v;
  }
  for (std::string_view v : {"false", "off", "0", "no", "OFF"}) {
    auto r = ReadStartup(Startup({{"user", "u"}, {"replication", v}}));
    ASSERT_TRUE(r.ok());
    EXPECT_FALSE(r->replication_requested) << v;
  }
}

TEST_F(GateTest, StartupSettingsAreJudgedAsTheirSet) {
  // Quoting survives hostile names and values: the SET reads back as exactly one statement.
  auto role = gate_.Facts(SetStatementFor({"role", "x'; DROP TABLE t; --", false}));
  ASSERT_EQ(Commands(*role), std::vector<Command>{Command::kRole});
  EXPECT_TRUE(role->AllRisks() & sql::kRiskPrivilegeChange);
  EXPECT_EQ(Decide(*role, Agent()).action, Action::kDeny);
  auto odd = gate_.Facts(SetStatementFor({"a\"b", "v", false}));
  ASSERT_EQ(Commands(*odd), std::vector<Command>{Command::kSet});
  auto scs = gate_.Facts(SetStatementFor({"standard_conforming_strings", "off", false}));
  EXPECT_TRUE(scs->AllRisks() & sql::kRiskLexerChange);
  // A search_path startup option is the search_path_change fact (no rule of the default pack
  // stops it: drivers set it at connect).
  auto path = gate_.Facts(SetStatementFor({"search_path", "public", true}));
  EXPECT_TRUE(path->AllRisks() & sql::kRiskSearchPathChange);
  EXPECT_EQ(Decide(*path, Agent()).action, Action::kAllow);
  auto path_upper = gate_.Facts(SetStatementFor({"SEARCH_PATH", "evil", false}));
  EXPECT_TRUE(path_upper->AllRisks() & sql::kRiskSearchPathChange);
}

// ---- Reading text as the server will ----

constexpr std::string_view kBackslashTrick = "SELECT 'x\\''; DELETE FROM t; --'";

TEST_F(GateTest, StandardConformingStringsOffIsReadAsTheServerReadsIt) {
  auto on = gate_.Facts(kBackslashTrick);
  EXPECT_EQ(Commands(*on), std::vector<Command>{Command::kSelect});
  gate_.OnParameterStatus("standard_conforming_strings", "off");
  auto off = gate_.Facts(kBackslashTrick);
  ASSERT_EQ(Commands(*off), (std::vector<Command>{Command::kSelect, Command::kDelete}));
  EXPECT_TRUE(off->AllRisks() & sql::kRiskNoWhere);
  policy::Decision d = Decide(*off, Agent());
  EXPECT_EQ(d.action, Action::kDeny);
  EXPECT_EQ(d.rules.front(), "prod-no-where-agent");
  // Not taken from, nor put into, the shape cache.
  EXPECT_EQ(Commands(*gate_.Facts(kBackslashTrick)), Commands(*off));
  gate_.OnParameterStatus("standard_conforming_strings", "on");
  EXPECT_EQ(Commands(*gate_.Facts(kBackslashTrick)), std::vector<Command>{Command::kSelect});
}

TEST_F(GateTest, ASettingChangeInFlightMakesAmbiguousTextUnverifiable) {
  auto set = gate_.Facts("SET standard_conforming_strings = off");
  SendQuery(set);
  EXPECT_TRUE(gate_.lexing_uncertain());
  auto pipelined = gate_.Facts(kBackslashTrick);
  EXPECT_TRUE(Unverifiable(*pipelined));
  policy::Decision d = Decide(*pipelined, Human(), false, kDev);  // even where no rule applies
  EXPECT_EQ(d.action, Action::kDeny);
  EXPECT_EQ(d.rules.front(), kGateRule);
  EXPECT_NE(d.reason.find("standard_conforming_strings"), std::string::npos);
  // Text that reads the same either way is not held up.
  EXPECT_FALSE(Unverifiable(*gate_.Facts("SELECT 'C:\\temp' FROM t WHERE id = 1")));
  EXPECT_FALSE(Unverifiable(*gate_.Facts("SELECT 1")));
  // The answer: the server reports the new value before ReadyForQuery.
  gate_.OnParameterStatus("standard_conforming_strings", "off");
  Answer(*set, 1);
  EXPECT_FALSE(gate_.lexing_uncertain());
  auto later = gate_.Facts(kBackslashTrick);
  EXPECT_FALSE(Unverifiable(*later));
  EXPECT_EQ(Commands(*later), (std::vector<Command>{Command::kSelect, Command::kDelete}));
}

TEST_F(GateTest, ExtendedProtocolWindowLastsUntilTheNextSync) {
  auto set = gate_.Facts("SELECT set_config('standard_conforming_strings', 'off', false)");
  gate_.OnForwarded(set, /*simple=*/false, "");
  EXPECT_TRUE(gate_.lexing_uncertain());
  gate_.OnSyncPoint();  // the Sync after it
  EXPECT_TRUE(Unverifiable(*gate_.Facts(kBackslashTrick)));
  gate_.OnReadyForQuery('I');
  EXPECT_FALSE(gate_.lexing_uncertain());
}

TEST_F(GateTest, PlainReadsDoNotOpenTheWindow) {
  auto read = gate_.Facts("SELECT a FROM t WHERE id = 1");
  SendQuery(read);
  EXPECT_FALSE(gate_.lexing_uncertain());
  auto write = gate_.Facts("UPDATE t SET a = 1 WHERE id = 1");  // a trigger may call set_config
  SendQuery(write);
  EXPECT_TRUE(gate_.lexing_uncertain());
}

constexpr std::string_view kSjisTrick = "SELECT E'\x95\\'; DELETE FROM t; --'";

TEST_F(GateTest, ClientOnlyEncodingsAreReadAfterConversion) {
  // As UTF-8 bytes, 0x95 is not a character: the server would refuse the text, and so does the
  // parser (no DELETE is read into it).
  EXPECT_EQ(Commands(*gate_.Facts(kSjisTrick)), std::vector<Command>{Command::kUnparseable});
  // In SJIS, 0x95 0x5C is one character: the server sees E'<char>' and then a DELETE.
  gate_.OnParameterStatus("client_encoding", "SJIS");
  auto sjis = gate_.Facts(kSjisTrick);
  ASSERT_EQ(Commands(*sjis), (std::vector<Command>{Command::kSelect, Command::kDelete}));
  EXPECT_EQ(Decide(*sjis, Agent()).rules.front(), "prod-no-where-agent");
  // Characters whose second byte is a backslash: BIG5's 0xA4 0x5C, GB18030's 0x81 0x5C.
  for (auto [enc, lead] : {std::pair{"BIG5", "\xa4"}, std::pair{"GB18030", "\x81"}}) {
    gate_.OnParameterStatus("client_encoding", enc);
    std::string text = std::string("SELECT E'") + lead + "\\'; DELETE FROM t; --'";
    EXPECT_EQ(Commands(*gate_.Facts(text)),
              (std::vector<Command>{Command::kSelect, Command::kDelete}))
        << enc;
  }
  // UHC has no such character: the bytes are refused (the server refuses them too).
  gate_.OnParameterStatus("client_encoding", "UHC");
  EXPECT_TRUE(Unverifiable(*gate_.Facts(kSjisTrick)));
}

TEST_F(GateTest, BytesInvalidInTheEncodingAreUnverifiable) {
  gate_.OnParameterStatus("client_encoding", "SJIS");
  auto cut = gate_.Facts("SELECT '\x81");  // a lead byte with nothing after it
  EXPECT_TRUE(Unverifiable(*cut));
  EXPECT_NE(cut->unverifiable.find("SJIS"), std::string::npos);
  gate_.OnParameterStatus("client_encoding", "MULE_INTERNAL");
  EXPECT_TRUE(Unverifiable(*gate_.Facts("SELECT '\x81\xa0'")));
  EXPECT_FALSE(Unverifiable(*gate_.Facts("SELECT 'ascii only'")));
}

TEST_F(GateTest, SingleByteEncodingsNameTablesInUtf8) {
  gate_.OnParameterStatus("client_encoding", "LATIN1");
  auto f = gate_.Facts("DELETE FROM caf\xe9 WHERE id = 1");
  ASSERT_EQ(f->statements.size(), 1u);
  ASSERT_EQ(f->statements[0].tables_written.size(), 1u);
  EXPECT_EQ(f->statements[0].tables_written[0].name, "caf\xc3\xa9");
}

TEST_F(GateTest, AnEncodingChangeInFlightMakesSwallowableTextUnverifiable) {
  // UTF-8 "中" is E4 B8 AD. As UTF-8 the backslash after it escapes the quote: one SELECT. Read
  // as BIG5, AD 5C is one character and the quote ends the string: a DELETE follows.
  const std::string text = "SELECT E'\xe4\xb8\xad\\'; DELETE FROM t; --'";
  EXPECT_EQ(Commands(*gate_.Facts(text)), std::vector<Command>{Command::kSelect});
  SendQuery(gate_.Facts("SET client_encoding TO 'BIG5'"));
  auto f = gate_.Facts(text);
  EXPECT_TRUE(Unverifiable(*f));
  EXPECT_NE(f->unverifiable.find("client_encoding"), std::string::npos);
  auto same = gate_.Facts("SELECT '\xe4\xb8\xad\xe4\xb8\xad' FROM t WHERE id = 1");
  EXPECT_FALSE(Unverifiable(*same)) << same->unverifiable;
}

// ---- Server-side names ----

TEST_F(GateTest, ExecuteIsJudgedAsWhatItRuns) {
  RunQuery("PREPARE wipe AS DELETE FROM t");
  auto exec = gate_.Facts("EXECUTE wipe");
  ASSERT_EQ(exec->statements.size(), 1u);
  ASSERT_TRUE(exec->statements[0].prepared);
  EXPECT_EQ(exec->statements[0].prepared->command, Command::kDelete);
  policy::Decision d = Decide(*exec, Agent());
  EXPECT_EQ(d.action, Action::kDeny);
  EXPECT_EQ(d.rules.front(), "prod-no-where-agent");
  RunQuery("PREPARE one AS SELECT 1");
  EXPECT_EQ(Decide(*gate_.Facts("EXECUTE one"), Agent()).action, Action::kAllow);
}

TEST_F(GateTest, ExecuteOfAnUnknownNameIsUnverifiable) {
  auto exec = gate_.Facts("EXECUTE sneaky");
  EXPECT_TRUE(Unverifiable(*exec));
  EXPECT_NE(exec->unverifiable.find("did not see prepared"), std::string::npos);
  policy::Decision d = Decide(*exec, Human(), false, kDev);
  EXPECT_EQ(d.action, Action::kDeny);
  EXPECT_EQ(d.rules.front(), kGateRule);
  // Monitor mode records what it would have done.
  auto monitor = Pack(policy::Mode::kMonitor);
  policy::Decision m =
      gate_.Decide(*monitor, kDev, Human(), *exec, false, std::chrono::system_clock::now());
  EXPECT_EQ(m.action, Action::kDeny);
  EXPECT_TRUE(m.monitor);
}

TEST_F(GateTest, NamesDefinedEarlierInTheSameTextResolve) {
  auto f = gate_.Facts("PREPARE q AS DELETE FROM t; EXECUTE q");
  EXPECT_FALSE(Unverifiable(*f));
  EXPECT_EQ(Decide(*f, Agent()).rules.front(), "prod-no-where-agent");
  auto c = gate_.Facts("BEGIN; DECLARE c CURSOR FOR SELECT * FROM t; FETCH ALL c");
  EXPECT_FALSE(Unverifiable(*c));
}

TEST_F(GateTest, ARedefinitionNotYetAnsweredIsJudgedAsEitherDefinition) {
  RunQuery("PREPARE p AS SELECT 1");
  auto redefine = gate_.Facts("DEALLOCATE p; PREPARE p AS DELETE FROM t");
  SendQuery(redefine);
  auto pending = gate_.Facts("EXECUTE p");
  EXPECT_EQ(pending->statements.size(), 2u);  // one per possible definition
  EXPECT_EQ(Decide(*pending, Agent()).action, Action::kDeny);
  // The server ran both statements: p is the DELETE only.
  Answer(*redefine, 2);
  auto after = gate_.Facts("EXECUTE p");
  ASSERT_EQ(after->statements.size(), 1u);
  EXPECT_EQ(after->statements[0].prepared->command, Command::kDelete);
}

TEST_F(GateTest, AFailedRedefinitionKeepsTheOldDefinition) {
  RunQuery("PREPARE p AS SELECT 1");
  RunQuery("PREPARE p AS DELETE FROM t", /*succeeded=*/0);  // "already exists"
  auto after = gate_.Facts("EXECUTE p");
  ASSERT_EQ(after->statements.size(), 1u);
  EXPECT_EQ(after->statements[0].prepared->command, Command::kSelect);
}

TEST_F(GateTest, DeallocateAndDiscardForgetNames) {
  RunQuery("PREPARE a AS SELECT 1");
  RunQuery("PREPARE b AS SELECT 2");
  RunQuery("DEALLOCATE a");
  EXPECT_TRUE(Unverifiable(*gate_.Facts("EXECUTE a")));
  EXPECT_FALSE(Unverifiable(*gate_.Facts("EXECUTE b")));
  RunQuery("DEALLOCATE ALL");
  EXPECT_TRUE(Unverifiable(*gate_.Facts("EXECUTE b")));
  RunQuery("PREPARE c AS SELECT 3");
  RunQuery("BEGIN; DECLARE k CURSOR WITH HOLD FOR SELECT 1; COMMIT");
  RunQuery("DISCARD ALL");
  EXPECT_EQ(gate_.known_statements(), 0u);
  EXPECT_EQ(gate_.known_cursors(), 0u);
}

TEST_F(GateTest, CursorsLiveUntilTheirTransactionEnds) {
  RunQuery("BEGIN", 1, 'T');
  RunQuery("DECLARE c CURSOR FOR SELECT * FROM t", 1, 'T');
  RunQuery("DECLARE h CURSOR WITH HOLD FOR SELECT * FROM t WHERE id = 1", 1, 'T');
  auto fetch = gate_.Facts("FETCH ALL c");
  EXPECT_FALSE(Unverifiable(*fetch));
  EXPECT_EQ(Decide(*fetch, Agent()).rules.front(), "prod-unbounded-select-agent");
  EXPECT_FALSE(Unverifiable(*gate_.Facts("MOVE 5 IN c")));
  RunQuery("COMMIT", 1, 'I');
  EXPECT_TRUE(Unverifiable(*gate_.Facts("FETCH ALL c")));
  EXPECT_FALSE(Unverifiable(*gate_.Facts("FETCH ALL h")));
  EXPECT_FALSE(Unverifiable(*gate_.Facts("MOVE 5 IN nowhere")));  // moves return no rows
  RunQuery("CLOSE ALL");
  EXPECT_TRUE(Unverifiable(*gate_.Facts("FETCH ALL h")));
}

TEST_F(GateTest, BinaryCursorsAreNoted) {
  auto f = gate_.Facts("DECLARE b BINARY CURSOR WITH HOLD FOR SELECT 1");
  ASSERT_EQ(f->statements.size(), 1u);
  EXPECT_TRUE(f->statements[0].cursor_binary);
  EXPECT_TRUE(f->statements[0].cursor_hold);
  EXPECT_EQ(f->statements[0].object_name, "b");
}

TEST_F(GateTest, ProtocolLevelNamesAreSqlNamesToo) {
  auto parsed = gate_.Facts("DELETE FROM t");
  gate_.OnForwarded(parsed, /*simple=*/false, "s1");
  auto exec = gate_.Facts("EXECUTE s1");
  EXPECT_FALSE(Unverifiable(*exec));
  EXPECT_EQ(Decide(*exec, Agent()).rules.front(), "prod-no-where-agent");
  gate_.OnParseAnswered("s1", parsed, /*ok=*/false);
  EXPECT_TRUE(Unverifiable(*gate_.Facts("EXECUTE s1")));
  // A bound portal can be fetched from like a cursor; Close drops it.
  gate_.OnBind("p1", gate_.Facts("SELECT * FROM t"));
  EXPECT_FALSE(Unverifiable(*gate_.Facts("FETCH ALL p1")));
  gate_.OnClose('P', "p1");
  EXPECT_TRUE(Unverifiable(*gate_.Facts("FETCH ALL p1")));
  gate_.OnBind("p2", nullptr);  // a statement the gate does not know
  EXPECT_TRUE(Unverifiable(*gate_.Facts("FETCH ALL p2")));
  gate_.OnForwarded(gate_.Facts("SELECT 1"), false, "s2");
  gate_.OnClose('S', "s2");
  EXPECT_TRUE(Unverifiable(*gate_.Facts("EXECUTE s2")));
}

// ---- FunctionCall and replication ----

TEST_F(GateTest, FunctionCallIsJudgedAsItsFunction) {
  auto file = gate_.FunctionCallFacts(2624, "pg_catalog.pg_read_file");
  ASSERT_EQ(file->statements.size(), 1u);
  EXPECT_EQ(file->statements[0].command, Command::kFastpath);
  EXPECT_EQ(file->statements[0].functions, std::vector<std::string>{"pg_catalog.pg_read_file"});
  EXPECT_EQ(Decide(*file, Human()).rules.front(), "prod-server-file-access");
  auto upper = gate_.FunctionCallFacts(871, "pg_catalog.upper");
  EXPECT_EQ(Decide(*upper, Agent()).rules.front(), "prod-fastpath-agent");
  EXPECT_EQ(Decide(*upper, Human()).action, Action::kAllow);
  EXPECT_EQ(Decide(*upper, Human(), /*masked=*/false, kDev).action, Action::kAllow);
  policy::Decision masked = Decide(*upper, Human(), /*masked=*/true, kDev);
  EXPECT_EQ(masked.action, Action::kDeny);
  EXPECT_EQ(masked.rules.front(), kGateRule);
  auto unknown = gate_.FunctionCallFacts(3999999999u, "");
  EXPECT_TRUE(Unverifiable(*unknown));
  EXPECT_EQ(Decide(*unknown, Human(), false, kDev).rules.front(), kGateRule);
  // Arguments are unknown values: set_config through a FunctionCall may set the role.
  auto set = gate_.FunctionCallFacts(2078, "pg_catalog.set_config", 3);
  EXPECT_TRUE(set->AllRisks() & sql::kRiskPrivilegeChange);
  EXPECT_TRUE(set->AllRisks() & sql::kRiskLexerChange);
  EXPECT_EQ(Decide(*set, Agent()).rules.front(), "prod-privilege-agent");
  // A hostile function name cannot turn into other SQL.
  auto odd = gate_.FunctionCallFacts(1, "s\"; DROP TABLE t; --.f");
  EXPECT_EQ(Commands(*odd), std::vector<Command>{Command::kFastpath});
}

sql::QueryFacts ReplicationFacts() {
  sql::QueryFacts q;
  q.statements.emplace_back().command = Command::kReplication;
  return q;
}

TEST_F(GateTest, ReplicationNeedsARuleThatAllowsIt) {
  policy::Decision d = Decide(ReplicationFacts(), Human(), false, kDev);
  EXPECT_EQ(d.action, Action::kDeny);
  EXPECT_EQ(d.rules.front(), kGateRule);
  auto allowing = policy::testing::MustLoad(R"(version: 1
rules:
  - id: allow-replication
    match: {statement: {commands: [REPLICATION]}}
    action: allow
)");
  policy::Decision ok = gate_.Decide(*allowing, kDev, Human(), ReplicationFacts(), false,
                                     std::chrono::system_clock::now());
  EXPECT_EQ(ok.action, Action::kAllow);
  EXPECT_EQ(ok.rules.front(), "allow-replication");
}

TEST(EncodingTest, PostgresCharacterBoundaries) {
  // SJIS half-width kana (0xA1-0xDF) are one byte; other high bytes lead two.
  auto kana = sql::ToServerText("\xb1'", "SJIS");
  ASSERT_TRUE(kana.ok());
  EXPECT_EQ(kana->back(), '\'');
  // GB18030: a digit second byte makes a four-byte character.
  auto four = sql::ToServerText("\x81\x30\x81\x30'", "GB18030");
  ASSERT_TRUE(four.ok());
  EXPECT_EQ(four->back(), '\'');
  EXPECT_TRUE(sql::ReadsAsIs("plain", "SJIS"));
  EXPECT_TRUE(sql::ReadsAsIs("\xff", "SQL_ASCII"));
  EXPECT_TRUE(sql::IsClientOnlyEncoding("BIG5"));
  EXPECT_FALSE(sql::IsClientOnlyEncoding("EUC_JP"));
}

}  // namespace
}  // namespace dbw::gate

namespace dbw::gate {
namespace {

// Under a row budget the gate refuses what the relay cannot count; the rest carries the limits.
TEST_F(GateTest, WhatARowBudgetCannotCountIsRefused) {
  auto budget = policy::LoadPolicyTexts(
      {{"budget.yaml",
        "version: 1\nrules:\n"
        "  - {id: b, action: limit, limits: {max_rows: 10, max_read_rows: 5}, match: {}}\n"}},
      policy::Mode::kEnforce, "test");
  ASSERT_TRUE(budget.ok()) << budget.status().message();
  auto decide = [&](std::string_view sql, bool extended = false) {
    return gate_.Decide(**budget, kProd, Agent(), *gate_.Facts(sql), false,
                        std::chrono::system_clock::now(), extended);
  };
  for (std::string_view sql : {"BEGIN; DELETE FROM t WHERE id = 1; COMMIT", "COPY t FROM STDIN",
                               "TRUNCATE t", "DROP TABLE t", "DELETE FROM t WHERE id = 1; SELECT (",
                               "UPDATE t SET x = 1 WHERE id = 1; ROLLBACK"}) {
    policy::Decision d = decide(sql);
    EXPECT_EQ(d.action, Action::kDeny) << sql;
    EXPECT_EQ(d.rules, std::vector<std::string>{std::string(kGateRule)}) << sql;
    EXPECT_NE(d.reason.find("row budget of rule b"), std::string::npos) << d.reason;
  }
  // CALL and DO only in the extended protocol (a procedure may COMMIT before the count).
  EXPECT_EQ(decide("CALL p()", true).action, Action::kDeny);
  EXPECT_EQ(decide("CALL p()").action, Action::kAllow);
  ASSERT_TRUE(decide("CALL p()").limits);
  // Transaction control alone: nothing to count, the read limit stays.
  policy::Decision begin = decide("BEGIN");
  EXPECT_EQ(begin.action, Action::kAllow);
  ASSERT_TRUE(begin.limits);
  EXPECT_EQ(begin.limits->max_rows, 0u);
  EXPECT_EQ(begin.limits->max_read_rows, 5u);
  policy::Decision upd = decide("UPDATE t SET x = 1 WHERE id = 1");
  ASSERT_TRUE(upd.limits);
  EXPECT_EQ(upd.limits->max_rows, 10u);

  // A read budget alone: a write after another statement of the Query would run unseen.
  auto reads = policy::LoadPolicyTexts(
      {{"reads.yaml",
        "version: 1\nrules:\n"
        "  - {id: r, action: limit, limits: {max_read_rows: 5}, match: {}}\n"}},
      policy::Mode::kEnforce, "test");
  ASSERT_TRUE(reads.ok());
  auto read_decide = [&](std::string_view sql) {
    return gate_.Decide(**reads, kProd, Agent(), *gate_.Facts(sql), false,
                        std::chrono::system_clock::now());
  };
  policy::Decision split = read_decide("SELECT * FROM t WHERE id > 0; DELETE FROM t WHERE id = 1");
  EXPECT_EQ(split.action, Action::kDeny);
  EXPECT_NE(split.reason.find("read budget of rule r"), std::string::npos) << split.reason;
  EXPECT_EQ(read_decide("SELECT 1; SELECT count(*) FROM t").action, Action::kAllow);
  EXPECT_EQ(read_decide("DELETE FROM t WHERE id = 1; SELECT 1").action, Action::kAllow);
}

}  // namespace
}  // namespace dbw::gate
