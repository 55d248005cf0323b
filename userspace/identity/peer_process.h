// Finds the local process at the other end of a loopback TCP connection, from /proc.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "userspace/identity/process_info.h"

namespace dbw::identity {

// A TCP endpoint as text address plus port; v4 ("127.0.0.1") or v6 ("::1").
struct Endpoint {
  std::string address;
  uint16_t port = 0;
};

// The socket inode of the TCP socket whose local end is `local` and remote end is `remote`,
// from /proc/net/tcp and /proc/net/tcp6.
std::optional<uint64_t> FindTcpSocketInode(const Endpoint& local, const Endpoint& remote);
// The first process holding socket inode `inode` open, from /proc/*/fd.
std::optional<int32_t> FindPidBySocketInode(uint64_t inode);
// Both of the above, then ReadProcessInfo.
std::optional<ProcessInfo> FindPeerProcess(const Endpoint& client, const Endpoint& server);
// The same for many (client, server) pairs with one read of /proc/net and one walk of /proc/*/fd,
// which looks at the processes in `likely` first and stops once every peer is found.
std::vector<std::optional<ProcessInfo>> FindPeerProcesses(
    const std::vector<std::pair<Endpoint, Endpoint>>& peers,
    const std::vector<int32_t>& likely = {});

// What the kernel recorded of a connection it routed to the relay (relay_only: enforce):
// where the client was connecting, and who connected.
struct RouteOrigin {
  std::string original;  // "127.0.0.1:5432", "[::1]:5432"
  std::string target;
  uint32_t tgid = 0;
  uint32_t uid = 0;
};
// Takes the record of the routed connection whose client end is `client` (a TCP client) or
// whose client process is `unix_pid` (a unix-socket client; 0 for TCP); each is handed out
// once; nullopt for a connection that was not routed.
using RouteLookup =
    std::function<std::optional<RouteOrigin>(const Endpoint& client, int32_t unix_pid)>;

// Runs lookups on its own thread: scanning /proc takes milliseconds, which a relay worker
// must not spend. Callbacks run on the resolver thread.
class PeerResolver {
 public:
  using Callback = std::function<void(std::optional<ProcessInfo>)>;
  PeerResolver();
  ~PeerResolver();
  PeerResolver(const PeerResolver&) = delete;
  PeerResolver& operator=(const PeerResolver&) = delete;

  // `likely`: a process the caller believes holds the client end (the kernel said who
  // connected): looked at first, still checked against the socket.
  void Resolve(Endpoint client, Endpoint server, Callback done, int32_t likely = 0);
  // The process the kernel named (a unix-socket peer's SO_PEERCRED pid), read from /proc.
  void ResolvePid(int32_t pid, Callback done);
  // Drops the lookups not yet started and joins the thread: no callback runs after it returns
  // (the relay calls it before its workers, which the callbacks post to, go away). Later
  // Resolve calls are dropped.
  void Stop();

 private:
  struct Request {
    Endpoint client;
    Endpoint server;
    Callback done;
    int32_t likely;
  };
  void Run();
  // Keeps `pid` at the front of recent_clients_ (resolver thread only).
  void RememberClient(int32_t pid);

  // The processes the last lookups found, most recent first: where the next walk starts.
  static constexpr size_t kRecentClients = 8;
  std::vector<int32_t> recent_clients_;

  std::mutex mu_;  // guards queue_ and stop_
  std::condition_variable cv_;
  std::deque<Request> queue_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace dbw::identity
