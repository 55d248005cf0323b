#include "userspace/common/conn_limiter.h"

#include <memory>
#include <vector>

#include <gtest/gtest.h>

namespace dbw {
namespace {

using Verdict = ConnectionLimiter::Verdict;

TEST(ConnectionLimiterTest, RefusesBeyondTheTotalWhenNothingIsIdle) {
  auto limiter = ConnectionLimiter::Create({2, 0});
  Verdict v;
  auto a = limiter->Admit(
      "10.0.0.1", [] {}, &v);
  auto b = limiter->Admit(
      "10.0.0.2", [] {}, &v);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(limiter->Admit(
                "10.0.0.3", [] {}, &v),
            nullptr);
  EXPECT_EQ(v, Verdict::kRefusedTotal);
  b.reset();  // a closed connection frees its slot
  EXPECT_NE(limiter->Admit(
                "10.0.0.3", [] {}, &v),
            nullptr);
  EXPECT_EQ(v, Verdict::kAdmitted);
}

TEST(ConnectionLimiterTest, EvictsTheOldestIdleConnectionToAdmitANewOne) {
  auto limiter = ConnectionLimiter::Create({3, 0});
  std::vector<int> evicted;
  Verdict v;
  auto a = limiter->Admit(
      "s", [&] { evicted.push_back(1); }, &v);
  auto b = limiter->Admit(
      "s", [&] { evicted.push_back(2); }, &v);
  auto c = limiter->Admit(
      "s", [&] { evicted.push_back(3); }, &v);
  a->SetIdle(false);  // busy: never evicted
  c->SetIdle(true);
  b->SetIdle(true);  // idle after c: c is the oldest idle one
  auto d = limiter->Admit(
      "t", [] {}, &v);
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(v, Verdict::kEvicted);
  EXPECT_EQ(evicted, std::vector<int>{3});
  EXPECT_EQ(limiter->open(), 3u);
  c.reset();  // the evicted connection closing later does not free a second slot
  EXPECT_EQ(limiter->open(), 3u);
  auto e = limiter->Admit(
      "t", [] {}, &v);
  EXPECT_EQ(evicted, (std::vector<int>{3, 2}));
  b->SetIdle(false);  // after eviction: ignored
  b.reset();
  EXPECT_EQ(limiter->open(), 3u);
  EXPECT_EQ(limiter->Admit(
                "t", [] {}, &v),
            nullptr);  // a, d, e are busy
  EXPECT_EQ(v, Verdict::kRefusedTotal);
}

TEST(ConnectionLimiterTest, ASourceAtItsLimitOnlyEvictsItsOwnIdleConnections) {
  auto limiter = ConnectionLimiter::Create({0, 2});
  Verdict v;
  int evicted_other = 0;
  int evicted_own = 0;
  auto other = limiter->Admit(
      "victim", [&] { ++evicted_other; }, &v);
  other->SetIdle(true);
  auto a = limiter->Admit(
      "flood", [&] { ++evicted_own; }, &v);
  auto b = limiter->Admit(
      "flood", [&] { ++evicted_own; }, &v);
  EXPECT_EQ(limiter->Admit(
                "flood", [] {}, &v),
            nullptr);
  EXPECT_EQ(v, Verdict::kRefusedPerSource);
  a->SetIdle(true);
  auto c = limiter->Admit(
      "flood", [] {}, &v);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(v, Verdict::kEvicted);
  EXPECT_EQ(evicted_own, 1);
  EXPECT_EQ(evicted_other, 0);
  EXPECT_EQ(limiter->open_from("flood"), 2u);
  EXPECT_EQ(limiter->open_from("victim"), 1u);
}

TEST(ConnectionLimiterTest, ZeroMeansUnlimited) {
  auto limiter = ConnectionLimiter::Create({0, 0});
  std::vector<std::unique_ptr<ConnectionLimiter::Lease>> leases;
  Verdict v;
  for (int i = 0; i < 1000; ++i)
    leases.push_back(limiter->Admit(
        "s", [] {}, &v));
  EXPECT_EQ(limiter->open(), 1000u);
  leases.clear();
  EXPECT_EQ(limiter->open(), 0u);
  EXPECT_EQ(limiter->open_from("s"), 0u);
}

}  // namespace
}  // namespace dbw
