// Query-string, time, limit and cursor parsing.
#include "userspace/api/query.h"

#include <gtest/gtest.h>

#include "userspace/api/auth.h"

namespace dbw::api {
namespace {

TEST(PercentDecode, DecodesEscapesAndPlus) {
  EXPECT_EQ(*PercentDecode("a%20b+c%2Fd"), "a b c/d");
  EXPECT_EQ(*PercentDecode("%e2%82%AC"), "\xe2\x82\xac");
  EXPECT_FALSE(PercentDecode("%").ok());
  EXPECT_FALSE(PercentDecode("%4").ok());
  EXPECT_FALSE(PercentDecode("%zz").ok());
  EXPECT_FALSE(PercentDecode("a%00b").ok());
  EXPECT_EQ(*PercentDecode(PercentEncode("x y/ü&=?")), "x y/ü&=?");
}

TEST(QueryString, RepeatedKeysAndEmptyValues) {
  auto p = ParseQueryString("a=1&b=&c&&a=2");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->All("a"), (std::vector<std::string>{"1", "2"}));
  EXPECT_FALSE(p->Single("a").ok());
  EXPECT_EQ(**p->Single("b"), "");
  EXPECT_EQ(**p->Single("c"), "");
  EXPECT_FALSE(p->Single("d")->has_value());
  EXPECT_FALSE(ParseQueryString("=1").ok());
  EXPECT_FALSE(ParseQueryString("a=%G1").ok());
  EXPECT_EQ(p->OnlyKeys({"a", "b"}).message(), "unknown parameter \"c\"");
}

TEST(SplitTarget, PathAndQuery) {
  auto t = SplitTarget("/v1/sessions/ab%20c?x=1");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->path, "/v1/sessions/ab c");
  EXPECT_EQ(t->query, "x=1");
  EXPECT_FALSE(SplitTarget("v1").ok());
  EXPECT_FALSE(SplitTarget("http://x/").ok());
}

TEST(Durations, UnitsAndErrors) {
  EXPECT_EQ(ParseDuration("15m")->count(), 15 * 60'000);
  EXPECT_EQ(ParseDuration("2h")->count(), 7'200'000);
  EXPECT_EQ(ParseDuration("7d")->count(), 7 * 86'400'000LL);
  EXPECT_EQ(ParseDuration("500ms")->count(), 500);
  EXPECT_EQ(ParseDuration("1w")->count(), 7 * 86'400'000LL);
  for (const char* bad : {"", "15", "m", "-5m", "5 m", "5y", "1.5h", "9999999999999s"}) {
    EXPECT_FALSE(ParseDuration(bad).ok()) << bad;
  }
}

TEST(Times, Rfc3339AndRelative) {
  EXPECT_EQ(*ParseTime("1970-01-01T00:00:00Z", 0), 0);
  EXPECT_EQ(*ParseTime("2024-05-01T12:00:00Z", 0), 1714564800LL * 1'000'000);
  EXPECT_EQ(*ParseTime("2024-05-01T14:00:00.25+02:00", 0), 1714564800LL * 1'000'000 + 250'000);
  EXPECT_EQ(*ParseTime("2024-02-29T00:00:00Z", 0), 1709164800LL * 1'000'000);
  EXPECT_EQ(*ParseTime("15m", 1'000'000'000'000), 1'000'000'000'000 - 900'000'000);
  for (const char* bad : {"2023-02-29T00:00:00Z", "2024-13-01T00:00:00Z", "2024-05-01 12:00:00Z",
                          "2024-05-01T12:00:00", "2024-05-01T25:00:00Z", "2024-05-01T12:00:00.Z",
                          "2024-05-01T12:00:00+0200", "yesterday"}) {
    EXPECT_FALSE(ParseTime(bad, 0).ok()) << bad;
  }
}

TEST(EventsQuery, FiltersAndErrors) {
  auto p = ParseQueryString("since=1h&principal=alice&action=deny&limit=5&table=public.t");
  auto q = ParseEventsQuery(*p, 10'000'000'000);
  ASSERT_TRUE(q.ok()) << q.status().message();
  EXPECT_EQ(*q->filter.since_us, 10'000'000'000 - 3'600'000'000);
  EXPECT_EQ(q->filter.principal, "alice");
  EXPECT_EQ(q->filter.action, "deny");
  EXPECT_EQ(q->filter.table, "public.t");
  EXPECT_EQ(q->limit, 5u);
  auto err = [](const char* qs) {
    return ParseEventsQuery(*ParseQueryString(qs), 10'000'000'000).status().message();
  };
  EXPECT_EQ(err("limit=0"), "\"limit\" must be an integer from 1 to 1000");
  EXPECT_EQ(err("limit=1001"), "\"limit\" must be an integer from 1 to 1000");
  EXPECT_EQ(err("action=nope"), "\"action\" must be allow, log, approve or deny");
  EXPECT_EQ(err("bogus=1"), "unknown parameter \"bogus\"");
  EXPECT_EQ(err("kind=a&kind=b"), "parameter \"kind\" given more than once");
  EXPECT_EQ(err("principal="), "parameter \"principal\" is empty");
  EXPECT_EQ(err("since=1h&until=2h"), "\"since\" must be before \"until\"");
  EXPECT_NE(err("since=soon").find("since: bad time"), std::string::npos);
}

TEST(StreamCursor, RoundTripAndRejects) {
  for (uint64_t s : {0ull, 1ull, 255ull, 1ull << 40, ~0ull}) {
    EXPECT_EQ(*DecodeStreamCursor(EncodeStreamCursor(s)), s);
  }
  for (const char* bad : {"", "s1.", "s2.0000000000000001", "s1.000000000000000g",
                          "s1.000000000000000A", "s1.00000000000000001"}) {
    EXPECT_FALSE(DecodeStreamCursor(bad).ok()) << bad;
  }
  auto q = ParseStreamQuery(*ParseQueryString("cursor=" + EncodeStreamCursor(7) + "&wait=30s"));
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->after_seq, 7u);
  EXPECT_EQ(q->wait.count(), 30'000);
  EXPECT_FALSE(ParseStreamQuery(*ParseQueryString("wait=61s")).ok());
  EXPECT_FALSE(ParseStreamQuery(*ParseQueryString("limit=5001")).ok());
}

TEST(Auth, RolesAndTokens) {
  std::vector<TokenConfig> tokens = {{"v", Role::kViewer, TokenSha256Hex("tv")},
                                     {"a", Role::kAdmin, TokenSha256Hex("ta")}};
  auto auth = Authenticator::Create(tokens);
  ASSERT_TRUE(auth.ok());
  Identity who;
  EXPECT_EQ(auth->Authenticate("", &who), Authenticator::Result::kMissing);
  EXPECT_EQ(auth->Authenticate("Bearer nope", &who), Authenticator::Result::kInvalid);
  EXPECT_EQ(auth->Authenticate("Basic dHY=", &who), Authenticator::Result::kInvalid);
  EXPECT_EQ(auth->Authenticate("bearer ta", &who), Authenticator::Result::kOk);
  EXPECT_EQ(who.name, "a");
  EXPECT_TRUE(RoleAllows(Role::kAdmin, Role::kApprover));
  EXPECT_FALSE(RoleAllows(Role::kViewer, Role::kApprover));
  EXPECT_EQ(TokenSha256Hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_FALSE(Authenticator::Create({{"x", Role::kViewer, "abc"}}).ok());
  EXPECT_FALSE(Authenticator::Create({tokens[0], tokens[0]}).ok());
  // No tokens configured: nothing is anonymous.
  auto none = Authenticator::Create({});
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->Authenticate("", &who), Authenticator::Result::kMissing);
  EXPECT_EQ(none->Authenticate("Bearer tv", &who), Authenticator::Result::kInvalid);
}

}  // namespace
}  // namespace dbw::api
