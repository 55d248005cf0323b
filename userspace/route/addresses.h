// The address arithmetic of routing, kept apart from the kernel and /proc so that it is tested on
// its own: which destinations a server is reachable at, and where the relay is for each socket
// family (docs/routing.md#how-it-works).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "route.h"
#include "userspace/common/status.h"
#include "userspace/route/options.h"

namespace dbw::route {

// An address as the programs hold it: 16 bytes, IPv4 in the first 4.
using Address = std::array<uint8_t, 16>;

// A numeric address as the programs compare it (::ffff:a.b.c.d as the IPv4 a.b.c.d); false
// when it is not one.
bool ParseAddress(const std::string& text, uint16_t* family, Address* out);
// "127.0.0.1:5432", "[::1]:5432".
std::string AddressText(uint16_t family, const uint8_t* addr, uint16_t port);

// An address prefix: the first `bits` bits of `addr`.
struct Prefix {
  uint16_t family = 0;  // AF_INET or AF_INET6
  Address addr{};
  uint32_t bits = 0;
};

// What a local connect() reaches a server at, given the addresses it listens on (numeric,
// "0.0.0.0"/"::" for wildcards) and this host's interface addresses. A server on another host
// (`upstream_is_local` false) is reachable at its own address only.
std::vector<Prefix> ProtectedPrefixes(const std::string& upstream_host, bool upstream_is_local,
                                      const std::vector<std::string>& listening,
                                      const std::vector<std::string>& local_addresses);

// Target `t` as the programs see it (target `index`): for enforce, the relay's listener in the
// form each socket family can connect to; relay_port4/6 0 where none is reachable (refused).
// InvalidArgument when the relay's listen host is not a numeric address.
Status RelayDestination(const RouteTarget& t, uint32_t index, dbw_route_dest* d);

}  // namespace dbw::route
