// The default pack (compiled in): each guardrail's decision for agents and humans on prod from
// hand-built facts, nothing on other envs, and the cost of a decision.
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "tests/policy/test_util.h"

namespace dbw::policy {
namespace {

using namespace testing;  // NOLINT: test helpers
using sql::Command;

std::shared_ptr<const CompiledPolicy> Pack() {
  auto p = LoadPolicy({}, Mode::kEnforce);
  EXPECT_TRUE(p.ok()) << p.status().message();
  return *p;
}

struct Case {
  const char* name;
  sql::StatementFacts stmt;
  Action agent;
  Action human;
  const char* agent_rule;  // "" = no rule
  const char* human_rule;
};

sql::StatementFacts WithKind(sql::StatementFacts s, const char* kind) {
  s.object_kind = kind;
  return s;
}

sql::StatementFacts WithFunctions(sql::StatementFacts s, std::vector<std::string> f) {
  s.functions = std::move(f);
  return s;
}

std::vector<Case> Cases() {
  using enum Action;
  const uint32_t w = sql::kRiskWrite;
  return {
      {"drop table",
       WithKind(Stmt(Command::kDrop, sql::kRiskDestructive | sql::kRiskSchemaChange), "TABLE"),
       kDeny, kApprove, "prod-destructive-agent", "prod-destructive-human"},
      {"drop index",
       WithKind(Stmt(Command::kDrop, sql::kRiskDestructive | sql::kRiskSchemaChange), "INDEX"),
       kDeny, kApprove, "prod-destructive-agent", "prod-destructive-human"},
      {"truncate", Stmt(Command::kTruncate, sql::kRiskDestructive | w), kDeny, kApprove,
       "prod-destructive-agent", "prod-destructive-human"},
      {"delete no where", Stmt(Command::kDelete, sql::kRiskNoWhere | w), kDeny, kApprove,
       "prod-no-where-agent", "prod-no-where-human"},
      {"cte update no where",
       Stmt(Command::kSelect, sql::kRiskNoWhere | sql::kRiskDataModifyingCte | w), kDeny, kApprove,
       "prod-no-where-agent", "prod-no-where-human"},
      {"update with where", Stmt(Command::kUpdate, w), kAllow, kAllow, "", ""},
      {"alter table", WithKind(Stmt(Command::kAlter, sql::kRiskSchemaChange), "TABLE"), kApprove,
       kApprove, "prod-schema-change", "prod-schema-change"},
      {"create index", WithKind(Stmt(Command::kCreate, sql::kRiskSchemaChange), "INDEX"), kApprove,
       kApprove, "prod-schema-change", "prod-schema-change"},
      {"grant", Stmt(Command::kGrant, sql::kRiskPrivilegeChange), kDeny, kApprove,
       "prod-privilege-agent", "prod-privilege-human"},
      {"create role", Stmt(Command::kRole, sql::kRiskPrivilegeChange), kDeny, kApprove,
       "prod-privilege-agent", "prod-privilege-human"},
      {"copy program", WithKind(Stmt(Command::kCopy, sql::kRiskCopyProgram), "TO"), kDeny, kDeny,
       "prod-copy-program", "prod-copy-program"},
      {"pg_read_file",
       WithFunctions(Stmt(Command::kSelect, sql::kRiskServerFileAccess), {"pg_read_file"}), kDeny,
       kDeny, "prod-server-file-access", "prod-server-file-access"},
      {"lo_export",
       WithFunctions(Stmt(Command::kSelect, sql::kRiskServerFileAccess), {"lo_export"}), kDeny,
       kDeny, "prod-server-file-access", "prod-server-file-access"},
      {"dblink", WithFunctions(Stmt(Command::kSelect, sql::kRiskExternalAccess), {"dblink_exec"}),
       kDeny, kDeny, "prod-external-access", "prod-external-access"},
      {"do block", Stmt(Command::kDo, sql::kRiskDynamicSql), kDeny, kAllow,
       "prod-dynamic-sql-agent", ""},
      {"fastpath call", WithFunctions(Stmt(Command::kFastpath), {"pg_catalog.upper"}), kDeny,
       kAllow, "prod-fastpath-agent", ""},
      {"unbounded select", Stmt(Command::kSelect, sql::kRiskUnboundedSelect, {{"", "orders"}}),
       kDeny, kAllow, "prod-unbounded-select-agent", ""},
      {"bounded select", Stmt(Command::kSelect, 0, {{"", "orders"}}), kAllow, kAllow, "", ""},
      {"unparseable", Stmt(Command::kUnparseable, sql::kRiskUnparseable), kDeny, kDeny,
       "prod-unparseable", "prod-unparseable"},
      {"begin", WithKind(Stmt(Command::kTransaction), "BEGIN"), kAllow, kAllow, "", ""},
      {"user function", Stmt(Command::kSelect, sql::kRiskUserFunction), kApprove, kAllow,
       "prod-user-function-agent", ""},
      {"insert", Stmt(Command::kInsert, w, {}, {{"", "orders"}}), kAllow, kAllow, "", ""},
  };
}

TEST(DefaultPackTest, Loads) {
  auto p = Pack();
  EXPECT_EQ(p->rule_count(), 18u);
  EXPECT_EQ(p->source(), "default pack (guardrails.yaml)");
  EXPECT_EQ(p->mode(), Mode::kEnforce);
  // principals.agents is empty: everyone is human until a deployment says otherwise.
  Principal who = Agent("svc_ai_bot");
  who.application_name = "langchain";
  p->Classify(&who);
  EXPECT_EQ(who.kind, PrincipalKind::kHuman);
}

TEST(DefaultPackTest, ShippedFileIsTheCompiledPack) {
  std::ifstream in(std::filesystem::path(DBW_SOURCE_DIR) / "policy/packs/guardrails.yaml");
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str(), DefaultPackText());
  auto p =
      LoadPolicy({std::string(DBW_SOURCE_DIR) + "/policy/packs/guardrails.yaml"}, Mode::kEnforce);
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ((*p)->rule_count(), 18u);
}

TEST(DefaultPackTest, DecisionsOnProd) {
  auto p = Pack();
  for (const Case& c : Cases()) {
    SCOPED_TRACE(c.name);
    Decision a = p->Evaluate(Prod(), Agent(), Query({c.stmt}), Noon());
    Decision h = p->Evaluate(Prod(), Human(), Query({c.stmt}), Noon());
    EXPECT_EQ(a.action, c.agent) << ActionName(a.action) << " " << a.reason;
    EXPECT_EQ(h.action, c.human) << ActionName(h.action) << " " << h.reason;
    auto ids = [](const char* id) {
      return *id ? std::vector<std::string>{id} : std::vector<std::string>{};
    };
    EXPECT_EQ(a.rules, ids(c.agent_rule));
    EXPECT_EQ(h.rules, ids(c.human_rule));
    if (a.action == Action::kDeny) {
      EXPECT_EQ(a.sqlstate, "42501");
    }
    if (h.action == Action::kApprove) {
      ASSERT_TRUE(h.approval.has_value());
      EXPECT_EQ(h.approval->mode, ApprovalMode::kHold);
      EXPECT_EQ(h.approval->timeout, std::chrono::minutes(10));
    }
  }
}

TEST(DefaultPackTest, RuntimeLimitsForAgentsOnProd) {
  auto p = Pack();
  const uint32_t w = sql::kRiskWrite;
  sql::StatementFacts insert = Stmt(Command::kInsert, w, {}, {{"", "orders"}});
  Decision a = p->Evaluate(Prod(), Agent(), Query({insert}), Noon());
  ASSERT_TRUE(a.limits);
  EXPECT_EQ(a.limits->max_rows, 100u);
  EXPECT_EQ(a.limits->write_rule, "prod-write-budget-agent");
  EXPECT_EQ(a.limits->max_read_rows, 10000u);
  EXPECT_EQ(a.limits->max_read_bytes, 16777216u);
  Decision call = p->Evaluate(Prod(), Agent(), Query({Stmt(Command::kCall)}), Noon());
  ASSERT_TRUE(call.limits);
  EXPECT_EQ(call.limits->write_rule, "prod-call-budget-agent");
  // Reads carry the read budget only; humans and other environments none.
  Decision read =
      p->Evaluate(Prod(), Agent(), Query({Stmt(Command::kSelect, 0, {{"", "orders"}})}), Noon());
  ASSERT_TRUE(read.limits);
  EXPECT_EQ(read.limits->max_rows, 0u);
  EXPECT_FALSE(p->Evaluate(Prod(), Human(), Query({insert}), Noon()).limits);
  EXPECT_FALSE(p->Evaluate(Staging(), Agent(), Query({insert}), Noon()).limits);
}

TEST(DefaultPackTest, OtherEnvsAllowEverything) {
  auto p = Pack();
  for (const Case& c : Cases()) {
    for (const char* env : {"staging", "dev", "", "production"}) {
      Decision d = p->Evaluate(Target{"orders", env}, Agent(), Query({c.stmt}), Noon());
      EXPECT_EQ(d.action, Action::kAllow) << c.name << " on " << env;
      EXPECT_TRUE(d.rules.empty());
    }
  }
}

TEST(DefaultPackTest, ReasonNamesTheRule) {
  Decision d = Pack()->Evaluate(Prod(), Agent(), Query({Stmt(Command::kDrop)}), Noon());
  EXPECT_EQ(
      d.reason,
      "denied by rule prod-destructive-agent: DROP and TRUNCATE are not allowed for AI agents "
      "in production");
}

TEST(DefaultPackTest, MixedQueryTakesTheStrictest) {
  auto p = Pack();
  auto q = Query({Stmt(Command::kSelect, 0, {{"", "orders"}}),
                  WithKind(Stmt(Command::kAlter, sql::kRiskSchemaChange), "TABLE"),
                  Stmt(Command::kDelete, sql::kRiskNoWhere)});
  Decision d = p->Evaluate(Prod(), Human(), q, Noon());
  EXPECT_EQ(d.action, Action::kApprove);
  EXPECT_EQ(d.rules, (std::vector<std::string>{"prod-no-where-human", "prod-schema-change"}));
  d = p->Evaluate(Prod(), Agent(), q, Noon());
  EXPECT_EQ(d.action, Action::kDeny);
  EXPECT_EQ(d.rules, std::vector<std::string>{"prod-no-where-agent"});
}

// The budget is "cache hit + decision <= 2 us"; the decision alone must be well under 1 us.
TEST(DefaultPackTest, EvaluationIsFast) {
  auto p = Pack();
  auto q = Query({Stmt(Command::kSelect, 0, {{"public", "pgbench_accounts"}})});
  Principal who = Agent();
  const int n = 200000;
  auto start = std::chrono::steady_clock::now();
  size_t allowed = 0;
  for (int i = 0; i < n; ++i)
    allowed += p->Evaluate(Prod(), who, q, Noon()).action == Action::kAllow;
  auto per = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start) / n;
  EXPECT_EQ(allowed, static_cast<size_t>(n));
#if !defined(__SANITIZE_ADDRESS__) && defined(NDEBUG)
  EXPECT_LT(per.count(), 1000.0);
#endif
  std::printf("default pack, allowed statement: %.0f ns per decision\n", per.count());
}

}  // namespace
}  // namespace dbw::policy

namespace dbw::policy {
namespace {

using namespace testing;  // NOLINT: test helpers
using sql::Command;

// The documented examples, loaded next to the shipped pack as a deployment would.
TEST(DocExamplesTest, WithThePack) {
  const std::string dir = std::string(DBW_SOURCE_DIR) + "/tests/policy/testdata/";
  auto loaded =
      LoadPolicy({std::string(DBW_SOURCE_DIR) + "/policy/packs/guardrails.yaml", dir + "*.yaml"},
                 Mode::kEnforce);
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  const CompiledPolicy& p = **loaded;

  Principal bot;
  bot.db_user = "svc_ai_reports";
  p.Classify(&bot);
  EXPECT_EQ(bot.kind, PrincipalKind::kAgent);

  auto drop = Query(
      {Stmt(Command::kDrop, sql::kRiskDestructive | sql::kRiskSchemaChange, {}, {{"", "orders"}})});
  Principal dba = Human("bob");
  dba.groups = {"dba"};
  Decision d = p.Evaluate(Prod(), dba, drop, Noon());
  EXPECT_EQ(d.action, Action::kApprove);
  EXPECT_EQ(d.rules, std::vector<std::string>{"dba-drop-with-approval"});
  EXPECT_EQ(d.approval->timeout, std::chrono::minutes(15));
  EXPECT_EQ(p.Evaluate(Prod(), Human(), drop, Noon()).rules,
            std::vector<std::string>{"prod-destructive-human"});

  auto scratch = Query({Stmt(Command::kTruncate, sql::kRiskDestructive, {}, {{"scratch", "t1"}})});
  d = p.Evaluate(Prod(), bot, scratch, Noon());
  EXPECT_EQ(d.action, Action::kAllow);
  EXPECT_EQ(d.rules, std::vector<std::string>{"scratch-is-disposable"});

  Principal reporting = Human("rep");
  reporting.application_name = "reporting-daily";
  d = p.Evaluate(Staging(), reporting, Query({Stmt(Command::kSelect, 0, {{"payroll", "runs"}})}),
                 Noon());
  EXPECT_EQ(d.rules, std::vector<std::string>{"reporting-no-payroll"});

  // Noon() is Wednesday 13:00 at +01:00: inside office hours, the pack's approval applies.
  auto alter = Query({Stmt(Command::kAlter, sql::kRiskSchemaChange)});
  EXPECT_EQ(p.Evaluate(Prod(), Human(), alter, Noon()).action, Action::kApprove);
  d = p.Evaluate(Prod(), Human(), alter, Noon() + std::chrono::hours(9));  // 22:00 at +01:00
  EXPECT_EQ(d.action, Action::kDeny);
  EXPECT_EQ(d.rules, std::vector<std::string>{"schema-changes-office-hours"});
}

}  // namespace
}  // namespace dbw::policy
