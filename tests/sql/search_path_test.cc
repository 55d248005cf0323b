// The session's search_path as the relay follows it (userspace/sql/search_path.h), and the
// rewriter's use of it: which relation an unqualified name means, written qualified where the
// choice matters. The real server's view is checked in tests/integration/test_mask_search_path.py.
#include "userspace/sql/search_path.h"

#include <gtest/gtest.h>

#include "userspace/sql/mask_rewrite.h"

namespace dbw::sql {
namespace {

using Kind = PathEffect::Kind;

TEST(ParseSearchPath, SplitsAsTheServerDoes) {
  EXPECT_EQ(ParseSearchPath("\"$user\", public"), (SearchPath{"$user", "public"}));
  EXPECT_EQ(ParseSearchPath("  Scratch ,\"My \"\"S\"\"\",x"),
            (SearchPath{"scratch", "My \"S\"", "x"}));
  EXPECT_EQ(ParseSearchPath(""), SearchPath{});
  EXPECT_EQ(ParseSearchPath("a,,b"), std::nullopt);
  EXPECT_EQ(ParseSearchPath("\"open"), std::nullopt);
  EXPECT_EQ(ParseSearchPath("a b"), std::nullopt);
}

class Tracker : public ::testing::Test {
 protected:
  void SetUp() override { t.Start(SearchPath{"$user", "public"}, "agent"); }
  // Sends and completes a statement, then the server is idle with status `status`.
  void Run(std::vector<PathEffect> effects, bool ok = true, const char* tag = "SET",
           char status = 'I') {
    int key = 0;
    t.OnSent(&key, std::move(effects));
    t.OnCommandTag(tag);
    t.OnCompleted(&key, ok);
    t.OnReady(status, true);
  }
  static PathEffect Set(std::string s, bool local = false) { return {Kind::kSet, local, {s}}; }
  SearchPathTracker t;
  const std::vector<SearchPath> kInitial{{"agent", "public"}};
  const std::vector<SearchPath> kScratch{{"scratch"}};
};

TEST_F(Tracker, StartsUnknownAndExpandsUser) {
  SearchPathTracker fresh;
  EXPECT_TRUE(fresh.Possible().empty());
  EXPECT_EQ(t.Possible(), kInitial);
  t.Forget();
  EXPECT_TRUE(t.Possible().empty());
  Run({Set("scratch")});  // a SET that completes makes it known again
  EXPECT_EQ(t.Possible(), kScratch);
  Run({{Kind::kReset, false, {}}});
  EXPECT_EQ(t.Possible(), kInitial);
}

TEST_F(Tracker, SetAndResetOutsideTransactions) {
  Run({Set("scratch")});
  EXPECT_EQ(t.Possible(), kScratch);
  Run({{Kind::kReset, false, {}}});
  EXPECT_EQ(t.Possible(), kInitial);
  Run({Set("scratch")}, /*ok=*/false, "");  // failed: either may hold
  EXPECT_EQ(t.Possible().size(), 2u);
  Run({Set("public")});
  EXPECT_EQ(t.Possible(), (std::vector<SearchPath>{{"public"}}));
}

TEST_F(Tracker, WhileInFlightBothValuesArePossible) {
  int key = 0;
  t.OnSent(&key, {Set("scratch")});
  EXPECT_EQ(t.Possible().size(), 2u);
  t.OnCompleted(&key, true);
  EXPECT_EQ(t.Possible(), kScratch);
}

TEST_F(Tracker, TransactionsCommitRollBackAndEndLocals) {
  Run({}, true, "BEGIN", 'T');
  Run({Set("scratch")}, true, "SET", 'T');
  EXPECT_EQ(t.Possible(), kScratch);
  Run({}, true, "ROLLBACK", 'I');
  EXPECT_EQ(t.Possible(), kInitial);

  Run({}, true, "BEGIN", 'T');
  Run({Set("scratch", true)}, true, "SET", 'T');
  EXPECT_EQ(t.Possible(), kScratch);
  Run({}, true, "COMMIT", 'I');
  EXPECT_EQ(t.Possible(), kInitial);

  Run({}, true, "BEGIN", 'T');
  Run({Set("scratch")}, true, "SET", 'T');
  Run({}, true, "COMMIT", 'I');
  EXPECT_EQ(t.Possible(), kScratch);
}

TEST_F(Tracker, SavepointRollbackKeepsEveryValuePossible) {
  Run({}, true, "BEGIN", 'T');
  Run({}, true, "SAVEPOINT", 'T');
  Run({Set("public")}, true, "SET", 'T');
  Run({}, true, "ROLLBACK", 'T');  // ROLLBACK TO SAVEPOINT
  EXPECT_EQ(t.Possible().size(), 2u);
  Run({}, true, "COMMIT", 'I');
  EXPECT_EQ(t.Possible().size(), 2u);  // not the transaction's only ROLLBACK
}

TEST_F(Tracker, UnknownEffectsAndRoleChanges) {
  Run({{Kind::kUnknown, false, {}}});
  EXPECT_TRUE(t.Possible().empty());
  Run({Set("public")});
  EXPECT_EQ(t.Possible(), (std::vector<SearchPath>{{"public"}}));
  Run({{Kind::kRole, false, {}}});
  EXPECT_EQ(t.Possible(), (std::vector<SearchPath>{{"public"}}));  // no "$user" in it
  Run({{Kind::kReset, false, {}}});
  EXPECT_TRUE(t.Possible().empty());  // "$user" after SET ROLE: not followed
}

TEST_F(Tracker, StatementsTheServerSkippedAreForgottenWhenIdle) {
  int key = 0;
  t.OnSent(&key, {Set("scratch")});
  t.OnReady('I', true);  // an error made the server skip it
  EXPECT_EQ(t.Possible(), kInitial);
}

// ---- the rewriter with a search_path ----

mask::Column Col(std::string name, bool masked) {
  mask::Column c{std::move(name), "\"pg_catalog\".\"text\"", mask::ValueClass::kText, std::nullopt};
  if (masked) c.mask = mask::ColumnMask{mask::MaskFunction::kRedact, 4, "rule-email"};
  return c;
}

std::shared_ptr<const mask::Catalog> TwoSchemas() {
  auto cat = std::make_shared<mask::Catalog>();
  cat->AddRelation({"public", "accounts", 'r', {Col("id", false), Col("email", true)}, "", false});
  cat->AddRelation({"scratch",
                    "accounts",
                    'r',
                    {Col("id", false), Col("email", false), Col("extra", false)},
                    "",
                    false});
  cat->AddRelation({"scratch", "notes", 'r', {Col("id", false)}, "", false});
  cat->AddFunctionName("set_config");
  return cat;
}

TEST(MaskRewritePath, UnqualifiedNamesResolveByTheSearchPath) {
  mask::Rewriter r(TwoSchemas(), {});
  const std::string sql = "SELECT email FROM accounts";
  // Not known: two shapes, one masked: refused.
  EXPECT_EQ(r.Rewrite(sql).outcome, mask::Result::Outcome::kRefused);
  // public first: masked.
  mask::Result pub = r.Rewrite(sql, {{"agent", "public", "scratch"}});
  ASSERT_EQ(pub.outcome, mask::Result::Outcome::kRewritten) << pub.reason;
  EXPECT_NE(pub.sql.find("FROM public.accounts"), std::string::npos) << pub.sql;
  // scratch first: read as stored, and written qualified so the server reads the same table.
  mask::Result scr = r.Rewrite(sql, {{"scratch", "public"}});
  ASSERT_EQ(scr.outcome, mask::Result::Outcome::kRewritten) << scr.reason;
  EXPECT_EQ(scr.sql, "SELECT email FROM scratch.accounts");
  EXPECT_EQ(r.Rewrite("UPDATE accounts SET email = 'x'", {{"scratch"}}).sql,
            "UPDATE scratch.accounts SET email = 'x'");
  // Either may hold: refused.
  EXPECT_EQ(r.Rewrite(sql, {{"scratch"}, {"public"}}).outcome, mask::Result::Outcome::kRefused);
  // Names no other schema has stay as written.
  EXPECT_EQ(r.Rewrite("SELECT * FROM notes", {{"scratch"}}).outcome,
            mask::Result::Outcome::kUnchanged);
  // On no path as followed: every candidate.
  EXPECT_EQ(r.Rewrite(sql, {{"elsewhere"}}).outcome, mask::Result::Outcome::kRefused);
}

TEST(MaskRewritePath, StatementsReportWhatTheyDoToTheSearchPath) {
  mask::Rewriter r(TwoSchemas(), {});
  auto effects = [&](const char* sql) { return r.Rewrite(sql, {{"public"}}).path_effects; };
  EXPECT_EQ(effects("SET search_path = scratch, \"My S\""),
            (std::vector<PathEffect>{{Kind::kSet, false, {"scratch", "My S"}}}));
  EXPECT_EQ(effects("SET LOCAL search_path TO scratch"),
            (std::vector<PathEffect>{{Kind::kSet, true, {"scratch"}}}));
  EXPECT_EQ(effects("SET SCHEMA 'scratch'"),
            (std::vector<PathEffect>{{Kind::kSet, false, {"scratch"}}}));
  for (const char* reset :
       {"RESET search_path", "SET search_path TO DEFAULT", "RESET ALL", "DISCARD ALL"})
    EXPECT_EQ(effects(reset), (std::vector<PathEffect>{{Kind::kReset, false, {}}})) << reset;
  for (const char* unknown : {"SELECT set_config('search_path', 'x', false)",
                              "SELECT pg_catalog.set_config('SEARCH_PATH', 'x', true)",
                              "SELECT set_config(current_user, 'x', false)",
                              "DO $$BEGIN PERFORM set_config('search_path', 'x', false); END$$"})
    EXPECT_EQ(effects(unknown), (std::vector<PathEffect>{{Kind::kUnknown, false, {}}})) << unknown;
  EXPECT_EQ(effects("SET ROLE agent"), (std::vector<PathEffect>{{Kind::kRole, false, {}}}));
  EXPECT_TRUE(effects("SELECT set_config('application_name', 'x', false)").empty());
  EXPECT_TRUE(effects("SET search_path FROM CURRENT").empty());
  // A later statement of the string resolves with it; after a COMMIT it is not known.
  EXPECT_EQ(r.Rewrite("SET search_path = scratch; SELECT email FROM accounts", {{"public"}}).sql,
            "SET search_path = scratch;\nSELECT email FROM scratch.accounts");
  EXPECT_EQ(r.Rewrite("BEGIN; SET LOCAL search_path = scratch; COMMIT; SELECT email FROM accounts",
                      {{"public"}})
                .outcome,
            mask::Result::Outcome::kRefused);
}

}  // namespace
}  // namespace dbw::sql
