// Routing's address arithmetic: what a server is reachable at, and where each socket family
// finds the relay.
#include "userspace/route/addresses.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace dbw::route {
namespace {

std::string Text(const Prefix& p) {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(p.family == AF_INET ? AF_INET : AF_INET6, p.addr.data(), buf, sizeof(buf));
  return std::string(buf) + "/" + std::to_string(p.bits);
}

std::vector<std::string> Texts(const std::vector<Prefix>& prefixes) {
  std::vector<std::string> out;
  for (const Prefix& p : prefixes) out.push_back(Text(p));
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

const std::vector<std::string> kLocal = {"127.0.0.1", "10.0.0.5", "::1", "fd00::5"};

TEST(ProtectedPrefixesTest, ALoopbackListenerIsAlsoReachedAtTheUnspecifiedAddress) {
  EXPECT_EQ(Texts(ProtectedPrefixes("127.0.0.1", true, {"127.0.0.1"}, kLocal)),
            (std::vector<std::string>{"0.0.0.0/32", "127.0.0.1/32"}));
  EXPECT_EQ(Texts(ProtectedPrefixes("127.0.0.1", true, {"127.0.0.1", "::1"}, kLocal)),
            (std::vector<std::string>{"0.0.0.0/32", "127.0.0.1/32", "::/128", "::1/128"}));
}

TEST(ProtectedPrefixesTest, AWildcardListenerIsReachedAtEveryLocalAddress) {
  // 127.0.0.0/8 whole: 127.0.0.2 reaches a server on 0.0.0.0.
  EXPECT_EQ(Texts(ProtectedPrefixes("127.0.0.1", true, {"0.0.0.0"}, kLocal)),
            (std::vector<std::string>{"0.0.0.0/32", "10.0.0.5/32", "127.0.0.0/8", "127.0.0.1/32",
                                      "::/128", "::1/128", "fd00::5/128"}));
  EXPECT_EQ(Texts(ProtectedPrefixes("", true, {"::"}, kLocal)),
            Texts(ProtectedPrefixes("", true, {"0.0.0.0"}, kLocal)));
}

TEST(ProtectedPrefixesTest, AServerOnAnotherHostIsReachedAtItsAddressOnly) {
  EXPECT_EQ(Texts(ProtectedPrefixes("10.9.8.7", false, {"0.0.0.0"}, kLocal)),
            (std::vector<std::string>{"10.9.8.7/32"}));
  EXPECT_EQ(Texts(ProtectedPrefixes("2001:db8::7", false, {}, kLocal)),
            (std::vector<std::string>{"2001:db8::7/128"}));
}

TEST(ProtectedPrefixesTest, AServerThatIsDownIsStillProtectedAtItsConfiguredAddress) {
  EXPECT_EQ(Texts(ProtectedPrefixes("127.0.0.1", true, {}, kLocal)),
            (std::vector<std::string>{"0.0.0.0/32", "127.0.0.1/32"}));
}

TEST(ParseAddressTest, AV4MappedAddressIsTheIPv4One) {
  uint16_t family = 0;
  Address a{};
  ASSERT_TRUE(ParseAddress("::ffff:127.0.0.1", &family, &a));
  EXPECT_EQ(family, AF_INET);
  EXPECT_EQ(AddressText(family, a.data(), 5432), "127.0.0.1:5432");
  ASSERT_TRUE(ParseAddress("::1", &family, &a));
  EXPECT_EQ(AddressText(family, a.data(), 5432), "[::1]:5432");
  EXPECT_FALSE(ParseAddress("localhost", &family, &a));
}

RouteTarget Target(const std::string& relay_host, Action action = Action::kEnforce) {
  RouteTarget t;
  t.name = "db";
  t.action = action;
  t.relay_host = relay_host;
  t.relay_port = 6432;
  return t;
}

TEST(RelayDestinationTest, AnIPv4ListenerIsReachedByIPv6SocketsThroughItsMappedForm) {
  dbw_route_dest d{};
  ASSERT_TRUE(RelayDestination(Target("127.0.0.1"), 3, &d).ok());
  EXPECT_EQ(d.target, 3u);
  EXPECT_EQ(d.action, DBW_ROUTE_ENFORCE);
  EXPECT_EQ(d.relay_ip4, htonl(INADDR_LOOPBACK));
  EXPECT_EQ(d.relay_port4, htons(6432));
  EXPECT_EQ(d.relay_port6, htons(6432));
  EXPECT_EQ(d.relay_ip6[0], 0u);
  EXPECT_EQ(d.relay_ip6[1], 0u);
  EXPECT_EQ(d.relay_ip6[2], htonl(0xffff));
  EXPECT_EQ(d.relay_ip6[3], htonl(INADDR_LOOPBACK));
}

TEST(RelayDestinationTest, WildcardListenersAreReachedOnLoopback) {
  dbw_route_dest d{};
  ASSERT_TRUE(RelayDestination(Target("0.0.0.0"), 0, &d).ok());
  EXPECT_EQ(d.relay_ip4, htonl(INADDR_LOOPBACK));
  EXPECT_EQ(d.relay_ip6[2], htonl(0xffff));
  ASSERT_TRUE(RelayDestination(Target("::"), 0, &d).ok());
  EXPECT_EQ(d.relay_ip4, htonl(INADDR_LOOPBACK));
  EXPECT_EQ(d.relay_port4, htons(6432));
  EXPECT_EQ(d.relay_ip6[2], 0u);
  EXPECT_EQ(d.relay_ip6[3], htonl(1));  // ::1
}

TEST(RelayDestinationTest, AnIPv6OnlyListenerLeavesIPv4SocketsNowhereToGo) {
  dbw_route_dest d{};
  ASSERT_TRUE(RelayDestination(Target("::1"), 0, &d).ok());
  EXPECT_EQ(d.relay_port4, 0);  // the program refuses rather than lets through
  EXPECT_EQ(d.relay_port6, htons(6432));
  EXPECT_EQ(d.relay_ip6[3], htonl(1));
}

TEST(RelayDestinationTest, RefuseNeedsNoListenerAndANameIsAnError) {
  dbw_route_dest d{};
  ASSERT_TRUE(RelayDestination(Target("localhost", Action::kRefuse), 1, &d).ok());
  EXPECT_EQ(d.action, DBW_ROUTE_REFUSE);
  EXPECT_EQ(d.relay_port4, 0);
  EXPECT_EQ(d.relay_port6, 0);
  Status st = RelayDestination(Target("localhost"), 1, &d);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("not a numeric address"), std::string::npos);
}

}  // namespace
}  // namespace dbw::route
