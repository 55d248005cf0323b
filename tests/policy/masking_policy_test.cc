// Masking rules in policy files: loading (with FILE:LINE errors), groups and exemptions, the
// per-principal profile (column globs, result names, detectors) and the shipped pii pack.
#include <gtest/gtest.h>

#include "policy/masking.h"
#include "tests/policy/test_util.h"

namespace dbw::policy {
namespace {

using testing::Human;
using testing::MustLoad;
using testing::Prod;

void ExpectError(const std::string& yaml, int line, const std::string& what) {
  auto p = LoadPolicyText(yaml, "m.yaml", Mode::kEnforce);
  ASSERT_FALSE(p.ok()) << yaml;
  const std::string m = p.status().message();
  EXPECT_EQ(m.rfind("m.yaml:" + std::to_string(line) + ": ", 0), 0u) << m;
  EXPECT_NE(m.find(what), std::string::npos) << m;
}

const char kPolicy[] =
    "version: 1\n"
    "principals:\n"
    "  groups:\n"
    "    pii-readers: [{db_user: [lead, 'auditor_*']}]\n"
    "masking:\n"
    "  - id: cards\n"
    "    match: {env: prod}\n"
    "    except: {groups: [pii-readers]}\n"
    "    columns: [billing.cards.number, '*.email']\n"
    "    result_columns: [email]\n"
    "    function: partial\n"
    "    keep_last: 2\n"
    "  - id: secrets\n"
    "    except: [{groups: [pii-readers]}, {db_user: root}]\n"
    "    detectors: [aws_access_key_id, jwt]\n"
    "    custom_detectors: [{name: employee_id, pattern: 'EMP-[0-9]{6}'}]\n"
    "    columns: ['*.*.api_key']\n"
    "    function: hash\n";

TEST(MaskingPolicyTest, ProfilesFollowTargetsGroupsAndExemptions) {
  auto p = MustLoad(kPolicy);
  ASSERT_NE(p, nullptr);

  Principal alice = Human("alice");
  p->Classify(&alice);
  EXPECT_TRUE(alice.groups.empty());
  auto prof = p->Masking(Prod(), alice);
  ASSERT_NE(prof, nullptr);
  EXPECT_EQ(prof->rule_ids(), (std::vector<std::string>{"cards", "secrets"}));
  const masking::MaskSpec* m = prof->ForColumn("billing", "cards", "number");
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->function, masking::Function::kPartial);
  EXPECT_EQ(m->keep_last, 2);
  EXPECT_EQ(m->rule_id, "cards");
  EXPECT_EQ(prof->ForColumn("public", "cards", "number"), nullptr);  // schema given: billing only
  ASSERT_NE(prof->ForColumn("crm", "customers", "EMAIL"), nullptr);  // names fold case
  ASSERT_NE(prof->ForColumn("app", "keys", "api_key"), nullptr);
  EXPECT_EQ(prof->ForColumn("app", "keys", "api_key")->function, masking::Function::kHash);
  EXPECT_EQ(prof->ForColumn("app", "keys", "id"), nullptr);
  ASSERT_NE(prof->ForResultName("email"), nullptr);
  EXPECT_EQ(prof->ForResultName("lower"), nullptr);
  ASSERT_NE(prof->detectors(), nullptr);
  ASSERT_EQ(prof->detectors()->rules().size(), 3u);
  EXPECT_EQ(prof->detectors()->rules()[2].name, "employee_id");
  EXPECT_EQ(prof->detectors()->rules()[0].mask.rule_id, "secrets");

  // Same applicable rules, same profile object.
  Principal bob = Human("bob");
  p->Classify(&bob);
  EXPECT_EQ(p->Masking(Prod(), bob), prof);

  // Staging: only the rule without an env condition.
  auto staging = p->Masking(Target{"orders", "staging"}, alice);
  ASSERT_NE(staging, nullptr);
  EXPECT_EQ(staging->rule_ids(), (std::vector<std::string>{"secrets"}));
  EXPECT_EQ(staging->ForColumn("billing", "cards", "number"), nullptr);

  // A pii-reader (by glob) is exempt from both; root only from "secrets".
  Principal auditor = Human("auditor_jane");
  p->Classify(&auditor);
  EXPECT_EQ(auditor.groups, (std::vector<std::string>{"pii-readers"}));
  EXPECT_EQ(p->Masking(Prod(), auditor), nullptr);
  Principal root = Human("root");
  p->Classify(&root);
  auto root_prof = p->Masking(Prod(), root);
  ASSERT_NE(root_prof, nullptr);
  EXPECT_EQ(root_prof->rule_ids(), (std::vector<std::string>{"cards"}));
  EXPECT_EQ(root_prof->detectors(), nullptr);

  // Classify twice: the group is not added again.
  p->Classify(&auditor);
  EXPECT_EQ(auditor.groups.size(), 1u);
}

TEST(MaskingPolicyTest, MistakesNameFileAndLine) {
  const std::string head = "version: 1\nmasking:\n  - id: m1\n";  // lines 1-3
  ExpectError(head + "    columns: ['*.email']\n", 3, "missing required key \"function\"");
  ExpectError(head + "    function: scramble\n", 4, "unknown masking function \"scramble\"");
  ExpectError(head + "    function: redact\n    detectors: [email, dna]\n", 5,
              "unknown detector \"dna\"");
  ExpectError(head + "    function: redact\n    columns: [email]\n", 5,
              "must be table.column or schema.table.column");
  ExpectError(head + "    function: redact\n", 3, "masks nothing");
  ExpectError(head + "    function: redact\n    keep_last: 3\n    columns: ['*.x']\n", 5,
              "keep_last is only allowed with function: partial");
  ExpectError(
      head + "    function: redact\n    custom_detectors:\n      - {name: bad, pattern: 'a(b'}\n",
      6, "detector \"bad\"");
  ExpectError(head + "    function: redact\n    columns: ['*.x']\n    colour: red\n", 6,
              "unknown key \"colour\" in masking rule");
  ExpectError(
      "version: 1\nrules:\n  - id: dup\n    action: log\nmasking:\n  - id: dup\n"
      "    function: redact\n    columns: ['*.x']\n",
      6, "duplicate rule id \"dup\"");
  ExpectError("version: 1\nprincipals:\n  groups:\n    readers: {shoe_size: 9}\n", 4,
              "unknown key \"shoe_size\"");
}

TEST(MaskingPolicyTest, ShippedPiiPackLoadsWithEveryDetector) {
  auto p = LoadPolicy({std::string(DBW_SOURCE_DIR) + "/policy/packs/pii.yaml"}, Mode::kEnforce);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  Principal alice = Human("alice");
  (*p)->Classify(&alice);
  auto prof = (*p)->Masking(Prod(), alice);
  ASSERT_NE(prof, nullptr);
  ASSERT_NE(prof->detectors(), nullptr);
  EXPECT_EQ(prof->detectors()->rules().size(), masking::kBuiltinDetectorCount);
  for (const auto& r : prof->detectors()->rules()) {
    bool secret = masking::IsSecret(r.detector);
    EXPECT_EQ(r.mask.function, secret ? masking::Function::kRedact : masking::Function::kPartial)
        << r.name;
  }
  ASSERT_NE(prof->ForColumn("public", "customers", "email"), nullptr);
  Principal reader = Human("lead");
  reader.groups.push_back("pii-readers");  // as a site's own groups would add it
  EXPECT_EQ((*p)->Masking(Prod(), reader), nullptr);
}

}  // namespace
}  // namespace dbw::policy
