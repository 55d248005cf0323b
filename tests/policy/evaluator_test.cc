// Evaluation: every matcher key, priority and strictest-wins, multi-statement queries, PREPARE,
// unparseable input, monitor mode, time windows and table globs.
#include <gtest/gtest.h>

#include "tests/policy/test_util.h"

namespace dbw::policy {
namespace {

using namespace testing;  // NOLINT: test helpers
using sql::Command;

// One rule with `match` (YAML flow mapping text) and action deny: does it match?
bool Hits(const std::string& match, const Target& t, const Principal& p, const sql::QueryFacts& q,
          std::chrono::system_clock::time_point now = Noon()) {
  auto policy =
      MustLoad("version: 1\nrules:\n  - id: r\n    action: deny\n    match: " + match + "\n");
  if (policy == nullptr) return false;
  Decision d = policy->Evaluate(t, p, q, now);
  return d.action == Action::kDeny;
}

TEST(EvaluatorTest, NoRuleMeansAllowWithNoRules) {
  auto p = MustLoad("version: 1\nrules:\n  - {id: r, action: deny, match: {env: [prod]}}\n");
  Decision d = p->Evaluate(Staging(), Human(), Query({Stmt(Command::kDrop)}), Noon());
  EXPECT_EQ(d.action, Action::kAllow);
  EXPECT_TRUE(d.rules.empty());
  EXPECT_EQ(d.reason, "no rule matched");
  EXPECT_FALSE(d.monitor);
}

TEST(EvaluatorTest, TargetAndEnv) {
  auto q = Query({Stmt(Command::kSelect)});
  EXPECT_TRUE(Hits("{target: [\"ord*\"]}", Prod("orders"), Human(), q));
  EXPECT_FALSE(Hits("{target: [\"ord*\"]}", Prod("billing"), Human(), q));
  EXPECT_TRUE(Hits("{env: [prod, \"prod-*\"]}", Target{"x", "prod-eu"}, Human(), q));
  EXPECT_FALSE(Hits("{env: prod}", Staging(), Human(), q));
  EXPECT_FALSE(Hits("{env: [prod], target: [billing]}", Prod("orders"), Human(), q));
}

TEST(EvaluatorTest, EveryPrincipalKey) {
  auto q = Query({Stmt(Command::kSelect)});
  Principal p = Human("alice");
  p.subject = "CN=alice,O=corp";
  p.groups = {"eng", "dba"};
  p.database = "shop";
  p.application_name = "psql";
  p.client_addr = "10.0.0.7";
  p.cert_subject = "CN=alice";
  p.exe = "/usr/bin/psql";
  p.unit = "session-3.scope";
  p.container = "abc123";
  const std::pair<std::string, std::string> keys[] = {{"kind", "human"},
                                                      {"subject", "\"CN=alice,*\""},
                                                      {"groups", "[dba]"},
                                                      {"db_user", "\"ali?e\""},
                                                      {"database", "shop"},
                                                      {"application_name", "psql"},
                                                      {"client_addr", "\"10.0.*\""},
                                                      {"cert_subject", "\"CN=alice\""},
                                                      {"exe", "/usr/bin/*"},
                                                      {"unit", "\"session-*.scope\""},
                                                      {"container", "\"abc*\""}};
  for (const auto& [key, value] : keys) {
    EXPECT_TRUE(Hits("{principal: {" + key + ": " + value + "}}", Prod(), p, q)) << key;
    EXPECT_FALSE(Hits("{principal: {" + key + ": " + value + "}}", Prod(), Agent("bot"), q)) << key;
  }
  // All keys must hold (AND); list entries are alternatives (OR).
  EXPECT_TRUE(Hits("{principal: {db_user: [bob, alice], groups: [ops, eng]}}", Prod(), p, q));
  EXPECT_FALSE(Hits("{principal: {db_user: alice, groups: [ops]}}", Prod(), p, q));
}

TEST(EvaluatorTest, ClassifyAgents) {
  auto policy = MustLoad(
      "version: 1\n"
      "principals:\n"
      "  agents:\n"
      "    - application_name: [\"langchain*\", \"ai-*\"]\n"
      "    - db_user: [\"svc_ai_*\"]\n"
      "    - exe: [\"/opt/agents/*\"]\n"
      "    - unit: [\"ai-*.service\"]\n"
      "    - cert_subject: [\"CN=agent-*\"]\n"
      "    - {db_user: app, application_name: \"*-bot\"}\n");
  auto kind = [&](auto set) {
    Principal p;
    p.kind = PrincipalKind::kAgent;  // Classify overwrites whatever was there
    set(p);
    policy->Classify(&p);
    return p.kind;
  };
  EXPECT_EQ(kind([](Principal& p) { p.application_name = "langchain-sql"; }),
            PrincipalKind::kAgent);
  EXPECT_EQ(kind([](Principal& p) { p.db_user = "svc_ai_reporting"; }), PrincipalKind::kAgent);
  EXPECT_EQ(kind([](Principal& p) { p.exe = "/opt/agents/claude"; }), PrincipalKind::kAgent);
  EXPECT_EQ(kind([](Principal& p) { p.unit = "ai-helper.service"; }), PrincipalKind::kAgent);
  EXPECT_EQ(kind([](Principal& p) { p.cert_subject = "CN=agent-7"; }), PrincipalKind::kAgent);
  EXPECT_EQ(kind([](Principal& p) {
              p.db_user = "app";
              p.application_name = "x-bot";
            }),
            PrincipalKind::kAgent);
  EXPECT_EQ(kind([](Principal& p) { p.db_user = "app"; }), PrincipalKind::kHuman);
  EXPECT_EQ(kind([](Principal& p) {
              p.db_user = "alice";
              p.application_name = "psql";
            }),
            PrincipalKind::kHuman);
}

TEST(EvaluatorTest, StatementKeys) {
  auto del =
      Stmt(Command::kDelete, sql::kRiskNoWhere | sql::kRiskWrite, {}, {{"billing", "invoices"}});
  auto q = Query({del});
  EXPECT_TRUE(Hits("{statement: {commands: [delete, UPDATE]}}", Prod(), Human(), q));
  EXPECT_FALSE(Hits("{statement: {commands: [UPDATE]}}", Prod(), Human(), q));
  EXPECT_TRUE(Hits("{statement: {risks: [unbounded_select, no_where]}}", Prod(), Human(), q));
  EXPECT_FALSE(Hits("{statement: {risks: [dynamic_sql]}}", Prod(), Human(), q));
  EXPECT_TRUE(Hits("{statement: {tables: [\"billing.*\"]}}", Prod(), Human(), q));
  EXPECT_TRUE(Hits("{statement: {tables_written: [invoices]}}", Prod(), Human(), q));
  EXPECT_FALSE(Hits("{statement: {tables_read: [invoices]}}", Prod(), Human(), q));
  EXPECT_FALSE(Hits("{statement: {tables: [\"public.*\"]}}", Prod(), Human(), q));
  EXPECT_FALSE(Hits("{statement: {commands: [DELETE], tables: [orders]}}", Prod(), Human(), q));

  auto drop =
      Stmt(Command::kDrop, sql::kRiskDestructive | sql::kRiskSchemaChange, {}, {{"", "orders"}});
  drop.object_kind = "TABLE";
  EXPECT_TRUE(Hits("{statement: {object_kinds: [table, VIEW]}}", Prod(), Human(), Query({drop})));
  EXPECT_FALSE(Hits("{statement: {object_kinds: [INDEX]}}", Prod(), Human(), Query({drop})));
  EXPECT_TRUE(Hits("{statement: {tables: [\"public.ord*\"]}}", Prod(), Human(), Query({drop})));

  auto sel = Stmt(Command::kSelect, sql::kRiskServerFileAccess);
  sel.functions = {"pg_catalog.pg_read_file", "now"};
  EXPECT_TRUE(Hits("{statement: {functions: [pg_read_file]}}", Prod(), Human(), Query({sel})));
  EXPECT_TRUE(Hits("{statement: {functions: [\"pg_read_*\"]}}", Prod(), Human(), Query({sel})));
  EXPECT_TRUE(Hits("{statement: {functions: [NOW]}}", Prod(), Human(), Query({sel})));
  EXPECT_FALSE(Hits("{statement: {functions: [\"dblink*\"]}}", Prod(), Human(), Query({sel})));
}

TEST(EvaluatorTest, NotExcludes) {
  auto q = Query({Stmt(Command::kDrop)});
  Principal dba = Human("bob");
  dba.groups = {"dba"};
  const std::string m = "{statement: {commands: [DROP]}, not: {principal: {groups: [dba]}}}";
  EXPECT_TRUE(Hits(m, Prod(), Human(), q));
  EXPECT_FALSE(Hits(m, Prod(), dba, q));
  // A list of exclusions: any one excludes.
  const std::string l =
      "{statement: {commands: [DROP]}, not: [{env: dev}, {principal: {db_user: bob}}]}";
  EXPECT_TRUE(Hits(l, Prod(), Human(), q));
  EXPECT_FALSE(Hits(l, Target{"x", "dev"}, Human(), q));
  EXPECT_FALSE(Hits(l, Prod(), dba, q));
}

TEST(EvaluatorTest, PriorityThenStrictness) {
  auto p = MustLoad(
      "version: 1\n"
      "rules:\n"
      "  - {id: log-drop, action: log, match: {statement: {commands: [DROP]}}}\n"
      "  - {id: deny-drop, action: deny, message: no drops, match: {statement: {commands: "
      "[DROP]}}}\n"
      "  - {id: approve-drop, action: approve, match: {statement: {commands: [DROP]}}}\n"
      "  - id: dba-drop\n"
      "    priority: 10\n"
      "    action: approve\n"
      "    message: DBAs may drop with approval\n"
      "    approval: {mode: ticket, timeout: 5m, approvers: 2, groups: [dba-leads], grant_ttl: "
      "2h}\n"
      "    match: {statement: {commands: [DROP]}, principal: {groups: [dba]}}\n"
      "  - {id: deny-drop-2, action: deny, sqlstate: 42P01, match: {statement: {commands: "
      "[DROP]}}}\n");
  auto q = Query({Stmt(Command::kDrop)});
  Decision d = p->Evaluate(Prod(), Human(), q, Noon());
  EXPECT_EQ(d.action, Action::kDeny);
  EXPECT_EQ(d.rules, (std::vector<std::string>{"deny-drop", "deny-drop-2"}));
  EXPECT_EQ(d.reason, "denied by rule deny-drop: no drops; denied by rule deny-drop-2");
  EXPECT_EQ(d.sqlstate, "42501");
  EXPECT_FALSE(d.approval.has_value());

  Principal dba = Human("bob");
  dba.groups = {"dba"};
  d = p->Evaluate(Prod(), dba, q, Noon());
  EXPECT_EQ(d.action, Action::kApprove);
  EXPECT_EQ(d.rules, std::vector<std::string>{"dba-drop"});
  EXPECT_EQ(d.reason, "approval required by rule dba-drop: DBAs may drop with approval");
  ASSERT_TRUE(d.approval.has_value());
  EXPECT_EQ(d.approval->mode, ApprovalMode::kTicket);
  EXPECT_EQ(d.approval->timeout, std::chrono::minutes(5));
  EXPECT_EQ(d.approval->grant_ttl, std::chrono::hours(2));
  EXPECT_EQ(d.approval->approvers, 2);
  EXPECT_EQ(d.approval->approver_groups, std::vector<std::string>{"dba-leads"});
  EXPECT_TRUE(d.sqlstate.empty());
}

TEST(EvaluatorTest, HigherPriorityAllowWins) {
  auto p = MustLoad(
      "version: 1\n"
      "rules:\n"
      "  - {id: no-truncate, action: deny, match: {statement: {commands: [TRUNCATE]}}}\n"
      "  - {id: scratch, priority: 5, action: allow, description: scratch tables are disposable,\n"
      "     match: {statement: {tables: [\"scratch.*\"]}}}\n");
  Decision d = p->Evaluate(Prod(), Human(),
                           Query({Stmt(Command::kTruncate, 0, {}, {{"scratch", "t"}})}), Noon());
  EXPECT_EQ(d.action, Action::kAllow);
  EXPECT_EQ(d.rules, std::vector<std::string>{"scratch"});
  EXPECT_EQ(d.reason, "allowed by rule scratch: scratch tables are disposable");
  d = p->Evaluate(Prod(), Human(), Query({Stmt(Command::kTruncate, 0, {}, {{"", "t"}})}), Noon());
  EXPECT_EQ(d.action, Action::kDeny);
  EXPECT_EQ(d.sqlstate, "42501");
}

TEST(EvaluatorTest, MultiStatementStrictestWins) {
  auto p = MustLoad(
      "version: 1\n"
      "rules:\n"
      "  - {id: log-select, action: log, match: {statement: {commands: [SELECT]}}}\n"
      "  - {id: approve-alter, action: approve, match: {statement: {commands: [ALTER]}}}\n"
      "  - {id: deny-drop, action: deny, sqlstate: 42P17, match: {statement: {commands: [DROP]}}}\n"
      "  - {id: deny-truncate, action: deny, match: {statement: {commands: [TRUNCATE]}}}\n");
  Decision d = p->Evaluate(
      Prod(), Human(),
      Query({Stmt(Command::kSelect), Stmt(Command::kAlter), Stmt(Command::kSelect)}), Noon());
  EXPECT_EQ(d.action, Action::kApprove);
  EXPECT_EQ(d.rules, std::vector<std::string>{"approve-alter"});
  d = p->Evaluate(Prod(), Human(),
                  Query({Stmt(Command::kTruncate), Stmt(Command::kAlter), Stmt(Command::kDrop),
                         Stmt(Command::kTruncate)}),
                  Noon());
  EXPECT_EQ(d.action, Action::kDeny);
  EXPECT_EQ(d.rules, (std::vector<std::string>{"deny-drop", "deny-truncate"}));  // file order
  EXPECT_EQ(d.sqlstate, "42P17");
  d = p->Evaluate(Prod(), Human(), Query({Stmt(Command::kInsert), Stmt(Command::kSelect)}), Noon());
  EXPECT_EQ(d.action, Action::kLog);
  EXPECT_EQ(d.rules, std::vector<std::string>{"log-select"});
  d = p->Evaluate(Prod(), Human(), Query({}), Noon());
  EXPECT_EQ(d.action, Action::kAllow);
}

TEST(EvaluatorTest, PrepareIsJudgedByItsStatement) {
  auto p = MustLoad(
      "version: 1\n"
      "rules:\n"
      "  - {id: no-where, action: deny, match: {statement: {commands: [DELETE], risks: [no_where],"
      " tables: [orders]}}}\n"
      "  - {id: prepares, action: log, match: {statement: {commands: [PREPARE]}}}\n");
  auto inner = std::make_shared<sql::StatementFacts>(
      Stmt(Command::kDelete, sql::kRiskNoWhere, {}, {{"", "orders"}}));
  auto prep = Stmt(Command::kPrepare);
  prep.prepare_name = "p1";
  prep.prepared = inner;
  Decision d = p->Evaluate(Prod(), Human(), Query({prep}), Noon());
  EXPECT_EQ(d.action, Action::kDeny);
  EXPECT_EQ(d.rules, std::vector<std::string>{"no-where"});
  // Without inner facts the PREPARE itself is judged.
  d = p->Evaluate(Prod(), Human(), Query({Stmt(Command::kPrepare)}), Noon());
  EXPECT_EQ(d.action, Action::kLog);
}

TEST(EvaluatorTest, UnparseableFailsClosed) {
  auto by_command = MustLoad(
      "version: 1\nrules:\n  - {id: u, action: deny, match: {statement: {commands: "
      "[UNPARSEABLE]}}}\n");
  auto by_risk = MustLoad(
      "version: 1\nrules:\n  - {id: u, action: deny, match: {statement: {risks: "
      "[unparseable]}}}\n");
  sql::QueryFacts bare;  // the analyser flagged the query but produced no statement
  bare.unparseable = true;
  bare.error = "syntax error at or near \"SELEC\"";
  sql::QueryFacts stmt = Query({Stmt(Command::kUnparseable)});  // command only, no risk bit
  sql::QueryFacts flagged = Query({Stmt(Command::kUnknown, sql::kRiskUnparseable)});
  for (const auto& policy : {by_command, by_risk}) {
    for (const auto* q : {&bare, &stmt, &flagged}) {
      Decision d = policy->Evaluate(Prod(), Human(), *q, Noon());
      EXPECT_EQ(d.action, Action::kDeny);
      EXPECT_EQ(d.rules, std::vector<std::string>{"u"});
    }
  }
}

TEST(EvaluatorTest, MonitorModeKeepsTheActionAndFlagsIt) {
  const std::string yaml =
      "version: 1\nrules:\n  - {id: d, action: deny, match: {statement: {commands: [DROP]}}}\n";
  auto p = MustLoad(yaml, Mode::kMonitor);
  EXPECT_EQ(p->mode(), Mode::kMonitor);
  Decision d = p->Evaluate(Prod(), Human(), Query({Stmt(Command::kDrop)}), Noon());
  EXPECT_EQ(d.action, Action::kDeny);
  EXPECT_TRUE(d.monitor);
  EXPECT_EQ(d.rules, std::vector<std::string>{"d"});
  d = MustLoad(yaml)->Evaluate(Prod(), Human(), Query({Stmt(Command::kDrop)}), Noon());
  EXPECT_FALSE(d.monitor);
}

TEST(EvaluatorTest, TimeWindows) {
  using std::chrono::hours;
  using std::chrono::minutes;
  auto q = Query({Stmt(Command::kSelect)});
  const auto wed_noon = Noon();  // Wednesday 12:00 UTC
  const auto wed_0859 = Noon() - hours(3) - minutes(1);
  const auto sat_noon = Noon() + hours(72);
  const std::string office =
      "{time: {days: [mon, tue, wed, thu, fri], between: \"09:00-18:00\", tz: UTC}}";
  EXPECT_TRUE(Hits(office, Prod(), Human(), q, wed_noon));
  EXPECT_FALSE(Hits(office, Prod(), Human(), q, wed_0859));
  EXPECT_TRUE(Hits(office, Prod(), Human(), q, wed_0859 + minutes(1)));
  EXPECT_FALSE(Hits(office, Prod(), Human(), q, Noon() + hours(6)));  // 18:00 is outside
  EXPECT_FALSE(Hits(office, Prod(), Human(), q, sat_noon));
  // Fixed offsets: 12:00 UTC is 14:00 at +02:00 and 06:30 at -05:30.
  EXPECT_TRUE(
      Hits("{time: {between: \"13:30-14:30\", tz: \"+02:00\"}}", Prod(), Human(), q, wed_noon));
  EXPECT_FALSE(Hits("{time: {between: \"13:30-14:30\"}}", Prod(), Human(), q, wed_noon));
  EXPECT_TRUE(
      Hits("{time: {between: \"06:00-07:00\", tz: \"-05:30\"}}", Prod(), Human(), q, wed_noon));
  // The offset also moves the day: Wednesday 23:00 UTC is Thursday at +02:00.
  EXPECT_TRUE(
      Hits("{time: {days: [thu], tz: \"+02:00\"}}", Prod(), Human(), q, Noon() + hours(11)));
  EXPECT_FALSE(Hits("{time: {days: [thu]}}", Prod(), Human(), q, Noon() + hours(11)));
  // Overnight window: Friday 22:00 to Saturday 06:00 belongs to Friday.
  const std::string night = "{time: {days: [fri], between: \"22:00-06:00\"}}";
  const auto fri_23 = Noon() + hours(48 + 11);
  EXPECT_TRUE(Hits(night, Prod(), Human(), q, fri_23));
  EXPECT_TRUE(Hits(night, Prod(), Human(), q, fri_23 + hours(6)));               // Sat 05:00
  EXPECT_FALSE(Hits(night, Prod(), Human(), q, fri_23 + hours(7)));              // Sat 06:00
  EXPECT_FALSE(Hits(night, Prod(), Human(), q, fri_23 - hours(24) + hours(6)));  // Fri 05:00
  EXPECT_TRUE(Hits("{time: {days: weekends}}", Prod(), Human(), q, sat_noon));
  // Outside office hours, via not.
  const std::string after_hours =
      "{statement: {commands: [SELECT]}, not: {time: {days: [mon, tue, wed, thu, fri], "
      "between: \"09:00-18:00\", tz: UTC}}}";
  EXPECT_FALSE(Hits(after_hours, Prod(), Human(), q, wed_noon));
  EXPECT_TRUE(Hits(after_hours, Prod(), Human(), q, sat_noon));
}

TEST(EvaluatorTest, DenyWithoutMessageUsesDescription) {
  auto p = MustLoad(
      "version: 1\nrules:\n"
      "  - {id: a, description: no orders for the app, action: deny, match: {statement: {tables: "
      "[orders]}}}\n"
      "  - {id: b, action: deny, match: {statement: {tables: [billing]}}}\n");
  Decision d =
      p->Evaluate(Prod(), Human(), Query({Stmt(Command::kSelect, 0, {{"", "orders"}})}), Noon());
  EXPECT_EQ(d.reason, "denied by rule a: no orders for the app");
  d = p->Evaluate(Prod(), Human(), Query({Stmt(Command::kSelect, 0, {{"", "billing"}})}), Noon());
  EXPECT_EQ(d.reason, "denied by rule b");
}

}  // namespace
}  // namespace dbw::policy

namespace dbw::policy {
namespace {

TEST(EvaluatorTest, LimitRulesBoundAllowedStatementsOnly) {
  auto p = MustLoad(
      "version: 1\nrules:\n"
      "  - {id: w1, action: limit, limits: {max_rows: 50}, match: {env: [prod]}}\n"
      "  - {id: w2, action: limit, limits: {max_rows: 10, max_read_rows: 7}, "
      "match: {statement: {commands: [DELETE]}}}\n"
      "  - {id: rb, action: limit, limits: {max_read_bytes: 99}, match: {env: [prod]}}\n"
      "  - {id: d, action: deny, match: {statement: {commands: [DROP]}}}\n");
  // The tightest value of each limit over every matching limit rule, each naming its rule.
  Decision d = p->Evaluate(Prod(), Human(), Query({Stmt(Command::kDelete)}), Noon());
  EXPECT_EQ(d.action, Action::kAllow);
  EXPECT_TRUE(d.rules.empty());  // a limit rule decides nothing
  ASSERT_TRUE(d.limits);
  EXPECT_EQ(d.limits->max_rows, 10u);
  EXPECT_EQ(d.limits->write_rule, "w2");
  EXPECT_EQ(d.limits->max_read_rows, 7u);
  EXPECT_EQ(d.limits->max_read_bytes, 99u);
  EXPECT_EQ(d.limits->read_bytes_rule, "rb");
  d = p->Evaluate(Prod(), Human(), Query({Stmt(Command::kUpdate)}), Noon());
  ASSERT_TRUE(d.limits);
  EXPECT_EQ(d.limits->max_rows, 50u);
  EXPECT_EQ(d.limits->max_read_rows, 0u);
  // A refused statement carries none; a statement no limit rule matches neither.
  d = p->Evaluate(Prod(), Human(), Query({Stmt(Command::kDrop)}), Noon());
  EXPECT_EQ(d.action, Action::kDeny);
  EXPECT_FALSE(d.limits);
  d = p->Evaluate(Staging(), Human(), Query({Stmt(Command::kUpdate)}), Noon());
  EXPECT_FALSE(d.limits);
}

}  // namespace
}  // namespace dbw::policy
