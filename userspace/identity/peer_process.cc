// Loopback peer lookup through /proc/net/tcp{,6} and /proc/*/fd.
#include "userspace/identity/peer_process.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

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

// How /proc/net/tcp6 prints the first 96 bits of ::ffff:a.b.c.d.
constexpr std::string_view kV4MappedPrefix = "0000000000000000FFFF0000";

// Every socket in /proc/net/tcp{,6}, keyed "local remote" as the file prints them.
std::unordered_map<std::string, uint64_t> ReadProcNet() {
  std::unordered_map<std::string, uint64_t> out;
  for (const char* path : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(path);
    std::string line;
    std::getline(in, line);  // header
    char l[64], r[64];
    unsigned long long inode;
    while (std::getline(in, line)) {
      if (std::sscanf(line.c_str(), " %*s %63s %63s %*s %*s %*s %*s %*s %*s %llu", l, r, &inode) !=
          3)
        continue;
      out.emplace(std::string(l) + " " + r, inode);
      // An IPv6 socket connected to an IPv4 address (::ffff:a.b.c.d, e.g. a client the kernel
      // routed to an IPv4 listener) is the IPv4 peer the other end sees.
      std::string_view lv(l), rv(r);
      if (lv.size() == 37 && rv.size() == 37 && lv.starts_with(kV4MappedPrefix) &&
          rv.starts_with(kV4MappedPrefix)) {
        lv.remove_prefix(kV4MappedPrefix.size());
        rv.remove_prefix(kV4MappedPrefix.size());
        out.emplace(std::string(lv) + " " + std::string(rv), inode);
      }
    }
  }
  return out;
}

// Adds to `found` the wanted socket inodes that process `pid` holds; true once all are found.
bool ScanFds(int32_t pid, const std::unordered_map<uint64_t, int32_t>& wanted,
             std::unordered_map<uint64_t, int32_t>* found) {
  std::string fd_dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* fds = ::opendir(fd_dir.c_str());
  if (fds == nullptr) return false;
  while (dirent* fe = ::readdir(fds)) {
    if (fe->d_name[0] == '.') continue;
    char target[64];
    std::string link = fd_dir + "/" + fe->d_name;
    ssize_t n = ::readlink(link.c_str(), target, sizeof(target) - 1);
    if (n <= 8 || std::strncmp(target, "socket:[", 8) != 0) continue;
    target[n] = '\0';
    uint64_t inode = std::strtoull(target + 8, nullptr, 10);
    if (wanted.count(inode) != 0) found->emplace(inode, pid);
  }
  ::closedir(fds);
  return found->size() == wanted.size();
}

// One walk of /proc/*/fd for many socket inodes: inode -> a pid holding it. The processes in
// `likely` are looked at first (a client that connected before usually connects again: a pool
// or pgbench opening its sessions one after another), this process last (the relay holds the
// other ends of its clients' connections, thousands of descriptors that are never the answer,
// but a client of its own is still found); the walk stops once every inode is found.
std::unordered_map<uint64_t, int32_t> FindPidsBySocketInodes(
    const std::unordered_map<uint64_t, int32_t>& wanted, const std::vector<int32_t>& likely = {}) {
  std::unordered_map<uint64_t, int32_t> found;
  const int32_t self = static_cast<int32_t>(::getpid());
  std::unordered_set<int32_t> scanned{self};
  for (int32_t pid : likely) {
    if (!scanned.insert(pid).second) continue;
    if (ScanFds(pid, wanted, &found)) return found;
  }
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return found;
  bool all = false;
  while (dirent* pe = ::readdir(proc)) {
    if (pe->d_name[0] < '0' || pe->d_name[0] > '9') continue;
    const int32_t pid = std::atoi(pe->d_name);
    if (scanned.count(pid) != 0) continue;
    if ((all = ScanFds(pid, wanted, &found))) break;
  }
  ::closedir(proc);
  if (!all) ScanFds(self, wanted, &found);
  return found;
}

}  // namespace

std::vector<std::optional<ProcessInfo>> FindPeerProcesses(
    const std::vector<std::pair<Endpoint, Endpoint>>& peers, const std::vector<int32_t>& likely) {
  std::vector<std::optional<ProcessInfo>> out(peers.size());
  std::unordered_map<std::string, uint64_t> sockets = ReadProcNet();
  std::vector<std::optional<uint64_t>> inodes(peers.size());
  std::unordered_map<uint64_t, int32_t> wanted;
  for (size_t i = 0; i < peers.size(); ++i) {
    bool v6l = false, v6r = false;
    // The client's own socket has the client endpoint as its local address.
    auto l = ProcNetAddress(peers[i].first, &v6l);
    auto r = ProcNetAddress(peers[i].second, &v6r);
    if (!l || !r || v6l != v6r) continue;
    auto it = sockets.find(*l + " " + *r);
    if (it == sockets.end()) continue;
    inodes[i] = it->second;
    wanted.emplace(it->second, 0);
  }
  if (wanted.empty()) return out;
  std::unordered_map<uint64_t, int32_t> pids = FindPidsBySocketInodes(wanted, likely);
  for (size_t i = 0; i < peers.size(); ++i) {
    if (!inodes[i]) continue;
    auto it = pids.find(*inodes[i]);
    if (it == pids.end()) continue;
    ProcessInfo info;
    if (ReadProcessInfo(it->second, &info)) out[i] = std::move(info);
  }
  return out;
}

std::optional<uint64_t> FindTcpSocketInode(const Endpoint& local, const Endpoint& remote) {
  bool v6l = false, v6r = false;
  auto l = ProcNetAddress(local, &v6l);
  auto r = ProcNetAddress(remote, &v6r);
  if (!l || !r || v6l != v6r) return std::nullopt;
  auto sockets = ReadProcNet();
  auto it = sockets.find(*l + " " + *r);
  if (it == sockets.end()) return std::nullopt;
  return it->second;
}

std::optional<int32_t> FindPidBySocketInode(uint64_t inode) {
  auto found = FindPidsBySocketInodes({{inode, 0}});
  if (found.empty()) return std::nullopt;
  return found.begin()->second;
}

std::optional<ProcessInfo> FindPeerProcess(const Endpoint& client, const Endpoint& server) {
  return std::move(FindPeerProcesses({{client, server}}).front());
}

PeerResolver::PeerResolver() : thread_([this] { Run(); }) {}

PeerResolver::~PeerResolver() {
  Stop();
}

void PeerResolver::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    queue_.clear();
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void PeerResolver::Resolve(Endpoint client, Endpoint server, Callback done, int32_t likely) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_) return;
    queue_.push_back(Request{std::move(client), std::move(server), std::move(done), likely});
  }
  cv_.notify_one();
}

void PeerResolver::ResolvePid(int32_t pid, Callback done) {
  Resolve(Endpoint{}, Endpoint{}, std::move(done), pid);
}

void PeerResolver::RememberClient(int32_t pid) {
  auto it = std::find(recent_clients_.begin(), recent_clients_.end(), pid);
  if (it != recent_clients_.end()) recent_clients_.erase(it);
  recent_clients_.insert(recent_clients_.begin(), pid);
  if (recent_clients_.size() > kRecentClients) recent_clients_.pop_back();
}

void PeerResolver::Run() {
  SetThreadName("dbw-resolver");
  while (true) {
    std::deque<Request> batch;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stop_ with nothing left
      batch.swap(queue_);
    }
    // Everything that queued meanwhile in one walk of /proc: a connection storm costs one
    // scan per batch, not one per connection.
    std::vector<std::pair<Endpoint, Endpoint>> peers;
    peers.reserve(batch.size());
    std::vector<int32_t> likely;
    for (Request& r : batch) {
      if (r.client.address.empty()) {  // ResolvePid: the kernel named the process
        ProcessInfo info;
        bool found = ReadProcessInfo(r.likely, &info);
        r.done(found ? std::optional<ProcessInfo>(std::move(info)) : std::nullopt);
        r.done = nullptr;
        continue;
      }
      peers.emplace_back(r.client, r.server);
      if (r.likely > 0) likely.push_back(r.likely);
    }
    std::erase_if(batch, [](const Request& r) { return !r.done; });
    likely.insert(likely.end(), recent_clients_.begin(), recent_clients_.end());
    std::vector<std::optional<ProcessInfo>> found = FindPeerProcesses(peers, likely);
    for (size_t i = 0; i < batch.size(); ++i) {
      if (found[i]) RememberClient(found[i]->pid);
      batch[i].done(std::move(found[i]));
    }
  }
}

}  // namespace dbw::identity
