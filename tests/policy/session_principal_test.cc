// SessionPrincipal: one classification for the relay and the tap — once per policy and
// application_name, never from agent back to human under one policy, again under a new policy.
#include "policy/session_principal.h"

#include <gtest/gtest.h>

#include "policy/loader.h"
#include "tests/policy/test_util.h"

namespace dbw::policy {
namespace {

std::shared_ptr<const CompiledPolicy> AgentsByApp(const std::string& app) {
  return testing::MustLoad("version: 1\nprincipals:\n  agents:\n    - {application_name: [\"" +
                           app + "\"]}\nrules: []\n");
}

TEST(SessionPrincipalTest, ClassifiesOncePerPolicyAndName) {
  auto policy = AgentsByApp("bot-*");
  SessionPrincipal s;
  int built = 0;
  auto identity = [&built] {
    ++built;
    Principal p;
    p.db_user = p.subject = "svc";
    return p;
  };
  EXPECT_EQ(s.Classified(policy, "psql", identity).kind, PrincipalKind::kHuman);
  EXPECT_EQ(s.Classified(policy, "psql", identity).kind, PrincipalKind::kHuman);
  EXPECT_EQ(built, 1);
  const Principal& agent = s.Classified(policy, "bot-7", identity);
  EXPECT_EQ(agent.kind, PrincipalKind::kAgent);
  EXPECT_EQ(agent.application_name, "bot-7");
  EXPECT_EQ(agent.db_user, "svc");
  // Renaming itself does not take an agent out of the agent rules.
  EXPECT_EQ(s.Classified(policy, "psql", identity).kind, PrincipalKind::kAgent);
  EXPECT_TRUE(s.is_agent());
  // A new policy classifies afresh, even one that happens to reuse the old one's address.
  auto next = AgentsByApp("other-*");
  EXPECT_EQ(s.Classified(next, "psql", identity).kind, PrincipalKind::kHuman);
  EXPECT_EQ(built, 4);
  EXPECT_STREQ(KindName(PrincipalKind::kAgent), "agent");
}

}  // namespace
}  // namespace dbw::policy
