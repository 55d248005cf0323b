// Finds a target's database server on this host from /proc: the process listening on its
// upstream address, that process's descendants, and the unix sockets it listens on.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace dbw::tap {

struct ServerProcesses {
  int32_t postmaster = 0;
  std::vector<int32_t> descendants;     // every process below the postmaster now
  std::vector<std::string> unix_paths;  // listening unix sockets it holds
};

// The process holding a TCP socket listening on host:port (or on the wildcard address, with
// the same port), and what belongs to it. Empty when no local process listens there.
std::optional<ServerProcesses> FindServer(const std::string& host, uint16_t port);
// The same for a server reached at its unix socket: the process listening on that path.
std::optional<ServerProcesses> FindServerByUnixPath(const std::string& path);

// Every process below `root` now (children, grandchildren, ...), from /proc/*/stat.
std::vector<int32_t> Descendants(int32_t root);

// True when `address` (numeric) is one of this host's own addresses (or loopback).
bool IsLocalAddress(const std::string& address);
// This host's interface addresses (numeric, IPv4 and IPv6; link-local ones without a scope).
std::vector<std::string> LocalAddresses();
// The local addresses (numeric; "0.0.0.0" / "::" for a wildcard) of TCP sockets listening on
// `port`, from /proc/net/tcp and /proc/net/tcp6.
std::vector<std::string> ListeningAddresses(uint16_t port);

}  // namespace dbw::tap
