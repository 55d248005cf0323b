// Globs: the literal fast paths, the general matcher, escapes, case folding, qualified names.
#include "policy/glob.h"

#include <gtest/gtest.h>

namespace dbw::policy {
namespace {

Glob G(std::string_view p, bool fold = false) {
  Glob g;
  std::string error;
  EXPECT_TRUE(Glob::Compile(p, fold, &g, &error)) << p << ": " << error;
  return g;
}

TEST(GlobTest, LiteralAndWildcards) {
  EXPECT_TRUE(G("orders").Match("orders"));
  EXPECT_FALSE(G("orders").Match("order"));
  EXPECT_TRUE(G("*").Match(""));
  EXPECT_TRUE(G("**").Match("anything"));
  EXPECT_TRUE(G("svc_ai_*").Match("svc_ai_"));
  EXPECT_TRUE(G("svc_ai_*").Match("svc_ai_bot"));
  EXPECT_FALSE(G("svc_ai_*").Match("svc_a"));
  EXPECT_TRUE(G("*.service").Match("ai-x.service"));
  EXPECT_FALSE(G("*.service").Match("ai-x.socket"));
  EXPECT_TRUE(G("ai-*.service").Match("ai-x.service"));
  EXPECT_FALSE(G("ai-*.service").Match("ai-x.servic"));
  EXPECT_TRUE(G("a?c").Match("abc"));
  EXPECT_FALSE(G("a?c").Match("ac"));
  EXPECT_TRUE(G("*a*b*c*").Match("xxaxxbxxcxx"));
  EXPECT_FALSE(G("*a*b*c*").Match("xxaxxcxxbxx"));
  EXPECT_TRUE(G("a*b*").Match("ab"));
  EXPECT_TRUE(G("*aab").Match("aaab"));
}

TEST(GlobTest, EscapesAndCase) {
  EXPECT_TRUE(G("a\\*b").Match("a*b"));
  EXPECT_FALSE(G("a\\*b").Match("axb"));
  EXPECT_TRUE(G("a\\[1\\]").Match("a[1]"));
  EXPECT_FALSE(G("Orders").Match("orders"));
  EXPECT_TRUE(G("Orders", true).Match("ORDERS"));
  EXPECT_TRUE(G("PG_*", true).Match("pg_read_file"));
}

TEST(GlobTest, BadPatterns) {
  Glob g;
  std::string error;
  EXPECT_FALSE(Glob::Compile("", false, &g, &error));
  EXPECT_FALSE(Glob::Compile("abc\\", false, &g, &error));
  EXPECT_NE(error.find("trailing backslash"), std::string::npos);
  EXPECT_FALSE(Glob::Compile("a[bc]", false, &g, &error));
  EXPECT_NE(error.find("character classes"), std::string::npos);
}

TEST(QualifiedGlobTest, SchemaRules) {
  QualifiedGlob q;
  std::string error;
  ASSERT_TRUE(QualifiedGlob::Compile("orders", &q, &error));
  EXPECT_TRUE(q.Match("", "orders", {"public"}));
  EXPECT_TRUE(q.Match("billing", "orders", {"public"}));  // bare pattern: any schema
  EXPECT_TRUE(q.Match("", "ORDERS", {"public"}));
  ASSERT_TRUE(QualifiedGlob::Compile("public.*", &q, &error));
  EXPECT_TRUE(q.Match("", "orders", {"public"}));  // unqualified is public
  EXPECT_TRUE(q.Match("public", "orders", {"public"}));
  EXPECT_FALSE(q.Match("billing", "orders", {"public"}));
  ASSERT_TRUE(QualifiedGlob::Compile("billing.inv*", &q, &error));
  EXPECT_TRUE(q.Match("billing", "invoices", {"public"}));
  EXPECT_FALSE(q.Match("", "invoices", {"public"}));
  ASSERT_TRUE(QualifiedGlob::Compile("pg_catalog.pg_read_file", &q, &error));
  EXPECT_TRUE(q.MatchDotted("pg_read_file", {"pg_catalog", "public"}));
  EXPECT_TRUE(q.MatchDotted("pg_catalog.pg_read_file", {"pg_catalog", "public"}));
  EXPECT_FALSE(q.MatchDotted("evil.pg_read_file", {"pg_catalog", "public"}));
  EXPECT_FALSE(QualifiedGlob::Compile("db.public.orders", &q, &error));
  EXPECT_FALSE(QualifiedGlob::Compile(".orders", &q, &error));
}

}  // namespace
}  // namespace dbw::policy
