// Routing's address arithmetic (see addresses.h).
#include "userspace/route/addresses.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>

namespace dbw::route {
namespace {

void Add(const std::string& text, uint32_t v4_bits, uint32_t v6_bits, std::vector<Prefix>* out) {
  Prefix p;
  if (!ParseAddress(text, &p.family, &p.addr)) return;
  p.bits = p.family == AF_INET ? v4_bits : v6_bits;
  out->push_back(p);
}

// Every address a local process can reach a server listening at `listening` with.
void AddReachable(const std::string& listening, const std::vector<std::string>& local_addresses,
                  std::vector<Prefix>* out) {
  if (listening == "0.0.0.0" || listening == "::") {
    // A wildcard listener: loopback, the unspecified address (connect() takes it for the
    // local host) and every interface address. An IPv6 wildcard also takes IPv4 unless the
    // socket is v6-only, which /proc does not say: both are protected.
    Add("127.0.0.0", 8, 0, out);
    Add("0.0.0.0", 32, 0, out);
    Add("::1", 0, 128, out);
    Add("::", 0, 128, out);
    for (const std::string& a : local_addresses) Add(a, 32, 128, out);
    return;
  }
  Add(listening, 32, 128, out);
  // connect() to the unspecified address reaches the loopback one.
  if (listening == "127.0.0.1") Add("0.0.0.0", 32, 0, out);
  if (listening == "::1") Add("::", 0, 128, out);
}

}  // namespace

bool ParseAddress(const std::string& text, uint16_t* family, Address* out) {
  out->fill(0);
  if (inet_pton(AF_INET, text.c_str(), out->data()) == 1) {
    *family = AF_INET;
    return true;
  }
  in6_addr a{};
  if (inet_pton(AF_INET6, text.c_str(), &a) != 1) return false;
  if (IN6_IS_ADDR_V4MAPPED(&a)) {
    *family = AF_INET;
    std::memcpy(out->data(), &a.s6_addr[12], 4);
    return true;
  }
  *family = AF_INET6;
  std::memcpy(out->data(), a.s6_addr, 16);
  return true;
}

std::string AddressText(uint16_t family, const uint8_t* addr, uint16_t port) {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(family == AF_INET ? AF_INET : AF_INET6, addr, buf, sizeof(buf));
  return family == AF_INET ? std::string(buf) + ":" + std::to_string(port)
                           : "[" + std::string(buf) + "]:" + std::to_string(port);
}

std::vector<Prefix> ProtectedPrefixes(const std::string& upstream_host, bool upstream_is_local,
                                      const std::vector<std::string>& listening,
                                      const std::vector<std::string>& local_addresses) {
  std::vector<Prefix> out;
  if (!upstream_host.empty() && !upstream_is_local && upstream_host != "0.0.0.0" &&
      upstream_host != "::") {
    Add(upstream_host, 32, 128, &out);  // a server on another host
    return out;
  }
  if (!upstream_host.empty()) AddReachable(upstream_host, local_addresses, &out);
  for (const std::string& l : listening) AddReachable(l, local_addresses, &out);
  return out;
}

// The relay's listener as the programs rewrite to: IPv4 sockets need an IPv4 address, IPv6
// sockets an IPv6 one (an IPv4 listener through its v4-mapped form).
Status RelayDestination(const RouteTarget& t, uint32_t index, dbw_route_dest* d) {
  *d = {};
  d->target = index;
  d->action = t.action == Action::kRefuse ? DBW_ROUTE_REFUSE : DBW_ROUTE_ENFORCE;
  if (t.action == Action::kRefuse) return Status::Ok();
  std::string host = t.relay_host;
  uint16_t family = 0;
  Address addr;
  bool dual = host == "::";
  if (host == "0.0.0.0" || dual) host = "127.0.0.1";
  if (!ParseAddress(host, &family, &addr))
    return InvalidArgument("routing: target \"" + t.name + "\": the relay listens on \"" +
                           t.relay_host + "\", which is not a numeric address");
  uint16_t port = htons(t.relay_port);
  if (family == AF_INET) {
    std::memcpy(&d->relay_ip4, addr.data(), 4);
    d->relay_port4 = port;
    // ::ffff:a.b.c.d: an IPv6 socket that is not v6-only reaches the IPv4 listener.
    d->relay_ip6[2] = htonl(0xffff);
    std::memcpy(&d->relay_ip6[3], addr.data(), 4);
    d->relay_port6 = port;
    if (dual) {  // a listener on "::" takes IPv6 at ::1
      Address loop6{};
      loop6[15] = 1;
      std::memcpy(d->relay_ip6, loop6.data(), loop6.size());
    }
  } else {
    std::memcpy(d->relay_ip6, addr.data(), addr.size());
    d->relay_port6 = port;
  }
  return Status::Ok();
}

}  // namespace dbw::route
