// Loopback peer lookup through /proc/net/tcp{,6} and /proc/*/fd.
#include "userspace/identity/peer_process.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>

#include "userspace/common/thread_name.h"

namespace dbw::identity {
namespace {

// /proc/net/tcp prints addresses as the hex of the in-memory (network order) words, each
// printed as a host-order u32: reproduce that text for the endpoint.
std::optional<std::string> ProcNetAddress(const Endpoint& ep, bool* v6) {
  char buf[64];
  in_addr a4{};
  in6_addr a6{};
  if (inet_pton(AF_INET, ep.address.c_str(), &a4) == 1) {
    *v6 = false;
    std::snprintf(buf, sizeof(buf), "%08X:%04X", a4.s_addr, ep.port);
    return std::string(buf);
  }
  if (inet_pton(AF_INET6, ep.address.c_str(), &a6) == 1) {
    *v6 = true;
    uint32_t w[4];
    std::memcpy(w, &a6, sizeof(w));
    std::snprintf(buf, sizeof(buf), "%08X%08X%08X%08X:%04X", w[0], w[1], w[2], w[3], ep.port);
    return std::string(buf);
  }
  return std::nullopt;
}

std::optional<uint64_t> ScanProcNet(const char* path, const std::string& local,
                                    const std::string& remote) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);  // header
  char l[64], r[64];
  unsigned long long inode;
  while (std::getline(in, line)) {
    // sl local rem st tx:rx tr:when retr uid timeout inode
    if (std::sscanf(line.c_str(), " %*s %63s %63s %*s %*s %*s %*s %*s %*s %llu", l, r, &inode) != 3)
      continue;
    if (local == l && remote == r) return inode;
  }
  return std::nullopt;
}

}  // namespace

std::optional<uint64_t> FindTcpSocketInode(const Endpoint& local, const Endpoint& remote) {
  bool v6l = false, v6r = false;
  auto l = ProcNetAddress(local, &v6l);
  auto r = ProcNetAddress(remote, &v6r);
  if (!l || !r || v6l != v6r) return std::nullopt;
  return ScanProcNet(v6l ? "/proc/net/tcp6" : "/proc/net/tcp", *l, *r);
}

std::optional<int32_t> FindPidBySocketInode(uint64_t inode) {
  const std::string want = "socket:[" + std::to_string(inode) + "]";
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return std::nullopt;
  std::optional<int32_t> found;
  while (dirent* pe = ::readdir(proc)) {
    if (pe->d_name[0] < '0' || pe->d_name[0] > '9') continue;
    std::string fd_dir = std::string("/proc/") + pe->d_name + "/fd";
    DIR* fds = ::opendir(fd_dir.c_str());
    if (fds == nullptr) continue;
    while (dirent* fe = ::readdir(fds)) {
      if (fe->d_name[0] == '.') continue;
      char target[64];
      std::string link = fd_dir + "/" + fe->d_name;
      ssize_t n = ::readlink(link.c_str(), target, sizeof(target) - 1);
      if (n <= 0) continue;
      if (want.compare(0, std::string::npos, target, static_cast<size_t>(n)) == 0) {
        found = std::atoi(pe->d_name);
        break;
      }
    }
    ::closedir(fds);
    if (found) break;
  }
  ::closedir(proc);
  return found;
}

std::optional<ProcessInfo> FindPeerProcess(const Endpoint& client, const Endpoint& server) {
  // The client's own socket has the client endpoint as its local address.
  auto inode = FindTcpSocketInode(client, server);
  if (!inode) return std::nullopt;
  auto pid = FindPidBySocketInode(*inode);
  if (!pid) return std::nullopt;
  ProcessInfo info;
  if (!ReadProcessInfo(*pid, &info)) return std::nullopt;
  return info;
}

PeerResolver::PeerResolver() : thread_([this] { Run(); }) {}

PeerResolver::~PeerResolver() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void PeerResolver::Resolve(Endpoint client, Endpoint server, Callback done) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(Request{std::move(client), std::move(server), std::move(done)});
  }
  cv_.notify_one();
}

void PeerResolver::Run() {
  SetThreadName("dbw-resolver");
  while (true) {
    Request req;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stop_ with nothing left
      req = std::move(queue_.front());
      queue_.pop_front();
    }
    req.done(FindPeerProcess(req.client, req.server));
  }
}

}  // namespace dbw::identity
