// Loader: valid files load; each kind of mistake is reported as "FILE:LINE: reason" with the
// line of the mistake; files and globs are expanded and merged.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "tests/policy/test_util.h"

namespace dbw::policy {
namespace {

using testing::MustLoad;

// Asserts that `yaml` fails with "test.yaml:LINE: ..." containing `what`.
void ExpectError(const std::string& yaml, int line, const std::string& what) {
  auto p = LoadPolicyText(yaml, "test.yaml", Mode::kEnforce);
  ASSERT_FALSE(p.ok()) << "loaded but expected an error at line " << line << ":\n" << yaml;
  const std::string m = p.status().message();
  std::string prefix = "test.yaml:" + std::to_string(line) + ": ";
  EXPECT_EQ(m.rfind(prefix, 0), 0u) << "got: " << m << "\nwant prefix: " << prefix;
  EXPECT_NE(m.find(what), std::string::npos) << "got: " << m << "\nwant: " << what;
}

const char kRuleHead[] =
    "version: 1\n"   // 1
    "rules:\n"       // 2
    "  - id: r1\n";  // 3

TEST(LoaderTest, MinimalFilesLoad) {
  auto p = MustLoad("version: 1\n");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->rule_count(), 0u);
  p = MustLoad(std::string(kRuleHead) + "    action: log\n");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->rule_count(), 1u);
  EXPECT_EQ(p->source(), "test.yaml");
}

TEST(LoaderTest, UnknownTopLevelKey) {
  ExpectError("version: 1\nrulez: []\n", 2, "unknown key \"rulez\" in the policy file");
}

TEST(LoaderTest, MissingVersionAndBadVersion) {
  ExpectError("rules: []\n", 1, "missing required key \"version\"");
  ExpectError("# comment\nversion: 2\n", 2, "unsupported version");
}

TEST(LoaderTest, EmptyFileAndSyntaxError) {
  ExpectError("# nothing here\n", 1, "the policy file is empty");
  ExpectError("version: 1\nrules:\n  - id: [unclosed\n", 4, "");
}

TEST(LoaderTest, UnknownKeyInStatement) {
  ExpectError(std::string(kRuleHead) +
                  "    match:\n"                // 4
                  "      statement:\n"          // 5
                  "        commands: [DROP]\n"  // 6
                  "        tabels: [orders]\n"  // 7
                  "    action: deny\n",
              7, "unknown key \"tabels\" in match.statement");
}

TEST(LoaderTest, BadAction) {
  ExpectError(std::string(kRuleHead) + "    action: block\n", 4, "unknown action \"block\"");
}

TEST(LoaderTest, MissingAction) {
  ExpectError(std::string(kRuleHead) + "    message: hi\n", 3,
              "rule \"r1\" is missing required key \"action\"");
}

TEST(LoaderTest, MissingId) {
  ExpectError(
      "version: 1\n"
      "rules:\n"
      "  - id: ok\n"
      "    action: log\n"
      "  - action: deny\n"  // 5
      "    message: no id\n",
      5, "missing required key \"id\"");
}

TEST(LoaderTest, BadIdCharacters) {
  ExpectError("version: 1\nrules:\n  - id: has space\n    action: log\n", 3, "rule id");
}

TEST(LoaderTest, UnknownCommandName) {
  ExpectError(std::string(kRuleHead) +
                  "    match:\n"
                  "      statement:\n"
                  "        commands:\n"  // 6
                  "          - DROP\n"   // 7
                  "          - DROPP\n"  // 8
                  "    action: deny\n",
              8, "unknown command \"DROPP\"");
}

TEST(LoaderTest, UnknownRiskName) {
  ExpectError(std::string(kRuleHead) +
                  "    match:\n"
                  "      statement: {risks: [no_where, nowhere]}\n"  // 5
                  "    action: deny\n",
              5, "unknown risk \"nowhere\"");
}

TEST(LoaderTest, BadGlob) {
  ExpectError(std::string(kRuleHead) +
                  "    match:\n"
                  "      statement:\n"
                  "        tables:\n"
                  "          - public.orders\n"
                  "          - \"billing.[ab]*\"\n"  // 8
                  "    action: deny\n",
              8, "character classes are not supported");
  ExpectError(std::string(kRuleHead) +
                  "    match:\n"
                  "      principal: {db_user: \"\"}\n"  // 5
                  "    action: deny\n",
              5, "empty glob pattern");
}

TEST(LoaderTest, BadDuration) {
  ExpectError(std::string(kRuleHead) +
                  "    action: approve\n"
                  "    approval:\n"
                  "      mode: hold\n"
                  "      timeout: 10 minutes\n",  // 7
              7, "expected a duration");
  ExpectError(std::string(kRuleHead) + "    action: approve\n    approval: {grant_ttl: 0s}\n", 5,
              "expected a duration");
}

TEST(LoaderTest, BadTimeWindow) {
  ExpectError(std::string(kRuleHead) +
                  "    match:\n"
                  "      time:\n"
                  "        days: [mon]\n"
                  "        between: \"9am-6pm\"\n"  // 7
                  "    action: deny\n",
              7, "expected a window like");
  ExpectError(std::string(kRuleHead) +
                  "    match:\n      time: {between: \"09:00-09:00\"}\n    action: deny\n",
              5, "the window is empty");
  ExpectError(
      std::string(kRuleHead) + "    match:\n      time: {days: [mon, funday]}\n    action: deny\n",
      5, "unknown day \"funday\"");
  ExpectError(std::string(kRuleHead) +
                  "    match:\n      time: {between: \"24:00-06:00\"}\n    action: deny\n",
              5, "expected a window like");
}

TEST(LoaderTest, BadTimeZone) {
  ExpectError(std::string(kRuleHead) +
                  "    match:\n"
                  "      time:\n"
                  "        tz: Europe/Paris\n"  // 6
                  "    action: deny\n",
              6, "named zones are not supported");
}

TEST(LoaderTest, ApprovalOnNonApproveAction) {
  ExpectError(std::string(kRuleHead) +
                  "    action: deny\n"
                  "    approval: {timeout: 5m}\n",  // 5
              5, "approval is only allowed with action: approve");
}

TEST(LoaderTest, SqlstateChecks) {
  ExpectError(std::string(kRuleHead) + "    action: log\n    sqlstate: \"42501\"\n", 5,
              "sqlstate is only allowed with action: deny or approve");
  ExpectError(std::string(kRuleHead) + "    action: deny\n    sqlstate: 4250\n", 5,
              "sqlstate must be five");
}

TEST(LoaderTest, BadPrincipalKindAndPriority) {
  ExpectError(
      std::string(kRuleHead) + "    match:\n      principal: {kind: robot}\n    action: deny\n", 5,
      "must be agent or human");
  ExpectError(std::string(kRuleHead) + "    priority: high\n    action: deny\n", 4,
              "priority must be a whole number");
}

TEST(LoaderTest, DuplicateKeyAndEmptyLists) {
  ExpectError(std::string(kRuleHead) +
                  "    action: deny\n"
                  "    action: allow\n",  // 5
              5, "duplicate key \"action\"");
  ExpectError(std::string(kRuleHead) + "    match:\n      env: []\n    action: deny\n", 5,
              "must not be an empty list");
  ExpectError(
      std::string(kRuleHead) + "    match:\n      env: [prod]\n      not: {}\n    action: deny\n",
      6, "must name at least one condition");
}

TEST(LoaderTest, UnknownKeyInAgents) {
  ExpectError(
      "version: 1\n"
      "principals:\n"
      "  agents:\n"
      "    - application_name: [\"langchain*\"]\n"
      "    - process: [/opt/agents/*]\n",  // 5
      5, "unknown key \"process\" in principals.agents entry");
}

TEST(LoaderTest, DuplicateRuleIdAcrossFiles) {
  auto p = LoadPolicyTexts({{"a.yaml", "version: 1\nrules:\n  - id: x\n    action: log\n"},
                            {"b.yaml",
                             "version: 1\nrules:\n  - {action: deny, id: y}\n"
                             "  - id: x\n    action: deny\n"}},
                           Mode::kEnforce, "a+b");
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().message(), "b.yaml:4: duplicate rule id \"x\" (first defined at a.yaml:3)");
}

TEST(LoaderTest, AliasedTreesAreBounded) {
  // yaml-cpp shares aliased nodes; walking them is capped so a small file cannot cost minutes.
  std::string yaml = "version: 1\nrules:\n  - id: r0\n    action: log\n    match:\n      env: &e [";
  for (int i = 0; i < 1000; ++i) yaml += i ? ", a" : "a";
  yaml += "]\n";
  for (int i = 1; i < 400; ++i)
    yaml += "  - {id: r" + std::to_string(i) + ", action: log, match: {env: *e}}\n";
  auto p = LoadPolicyText(yaml, "test.yaml", Mode::kEnforce);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("too large"), std::string::npos) << p.status().message();
}

class FileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        std::filesystem::temp_directory_path() / ("dbw-policy-test-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_ / "d");
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string Write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name) << text;
    return (dir_ / name).string();
  }
  std::filesystem::path dir_;
};

TEST_F(FileTest, GlobsMergeRulesAndAgents) {
  Write("d/10-agents.yaml", "version: 1\nprincipals:\n  agents:\n    - db_user: [\"svc_ai_*\"]\n");
  Write("d/20-rules.yaml", "version: 1\nrules:\n  - id: a\n    action: log\n");
  std::string other = Write("other.yaml", "version: 1\nrules:\n  - id: b\n    action: deny\n");
  auto p = LoadPolicy({(dir_ / "d" / "*.yaml").string(), other}, Mode::kMonitor);
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ((*p)->rule_count(), 2u);
  EXPECT_EQ((*p)->mode(), Mode::kMonitor);
  Principal who;
  who.db_user = "svc_ai_bot";
  (*p)->Classify(&who);
  EXPECT_EQ(who.kind, PrincipalKind::kAgent);
  // Naming a file twice (glob and path) loads it once, so its ids are not duplicates.
  p = LoadPolicy({other, other, (dir_ / "*.yaml").string()}, Mode::kEnforce);
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ((*p)->rule_count(), 1u);
}

TEST_F(FileTest, FileErrors) {
  auto p = LoadPolicy({(dir_ / "none" / "*.yaml").string()}, Mode::kEnforce);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find(":0: no policy files match"), std::string::npos);
  p = LoadPolicy({(dir_ / "missing.yaml").string()}, Mode::kEnforce);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("missing.yaml:0: cannot open file"), std::string::npos);
  p = LoadPolicy({(dir_ / "d").string()}, Mode::kEnforce);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("is a directory"), std::string::npos);
  std::string bad = Write("bad.yaml", "version: 1\nrules:\n  - id: a\n    action: nope\n");
  p = LoadPolicy({bad}, Mode::kEnforce);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().message(),
            bad + ":4: unknown action \"nope\" (use allow, log, approve, deny or limit)");
}

TEST(LoaderTest, ExamplesFromTheDocsLoad) {
  namespace fs = std::filesystem;
  size_t n = 0;
  for (const auto& e : fs::directory_iterator(fs::path(DBW_SOURCE_DIR) / "tests/policy/testdata")) {
    if (e.path().extension() != ".yaml") continue;
    auto p = LoadPolicy({e.path().string()}, Mode::kEnforce);
    EXPECT_TRUE(p.ok()) << p.status().message();
    ++n;
  }
  EXPECT_GE(n, 3u);
}

}  // namespace
}  // namespace dbw::policy

namespace dbw::policy {
namespace {

TEST(LoaderTest, LimitRules) {
  ExpectError(std::string(kRuleHead) + "    action: limit\n", 3,
              "action: limit needs limits: {max_rows, max_read_rows, max_read_bytes}");
  ExpectError(std::string(kRuleHead) + "    action: deny\n    limits: {max_rows: 5}\n", 5,
              "limits are only allowed with action: limit");
  ExpectError(std::string(kRuleHead) + "    action: limit\n    limits: {max_rows: 0}\n", 5,
              "limits.max_rows must be a whole number from 1 to 2^50");
  ExpectError(std::string(kRuleHead) + "    action: limit\n    limits: {max_rowz: 5}\n", 5,
              "max_rowz");
  ExpectError(std::string(kRuleHead) + "    action: limit\n    limits: {}\n", 5,
              "set at least one of");
  ExpectError(std::string(kRuleHead) +
                  "    action: limit\n    sqlstate: \"54000\"\n    limits: {max_rows: 5}\n",
              5, "sqlstate is only allowed with action: deny or approve");
}

}  // namespace
}  // namespace dbw::policy
