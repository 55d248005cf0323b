// Server discovery from /proc/net/{tcp,tcp6,unix}, /proc/<pid>/fd and /proc/<pid>/stat.
#include "userspace/tap/discovery.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "userspace/identity/peer_process.h"

namespace dbw::tap {
namespace {

// /proc/net/tcp{,6} encode addresses as the kernel's in-memory words in hex.
std::string DecodeProcAddress(const std::string& hex) {
  if (hex.size() == 8) {
    in_addr a{};
    a.s_addr = static_cast<uint32_t>(std::strtoul(hex.c_str(), nullptr, 16));
    char buf[INET_ADDRSTRLEN];
    return inet_ntop(AF_INET, &a, buf, sizeof(buf)) ? buf : "";
  }
  if (hex.size() == 32) {
    in6_addr a{};
    for (int w = 0; w < 4; ++w) {
      uint32_t word =
          static_cast<uint32_t>(std::strtoul(hex.substr(w * 8, 8).c_str(), nullptr, 16));
      std::memcpy(&a.s6_addr[w * 4], &word, 4);
    }
    char buf[INET6_ADDRSTRLEN];
    return inet_ntop(AF_INET6, &a, buf, sizeof(buf)) ? buf : "";
  }
  return "";
}

bool IsWildcard(const std::string& a) {
  return a == "0.0.0.0" || a == "::";
}

// Calls fn(address, inode) for each TCP socket listening on `port` (/proc/net/tcp{,6}).
template <typename Fn>
void ForEachListener(uint16_t port, Fn fn) {
  for (const char* file : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(file);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::istringstream f(line);
      std::string sl, local, remote, state, queues, timer, retr, uid, timeout, inode;
      f >> sl >> local >> remote >> state >> queues >> timer >> retr >> uid >> timeout >> inode;
      size_t colon = local.find(':');
      if (state != "0A" || colon == std::string::npos) continue;  // TCP_LISTEN
      if (std::strtoul(local.substr(colon + 1).c_str(), nullptr, 16) != port) continue;
      fn(DecodeProcAddress(local.substr(0, colon)), std::strtoull(inode.c_str(), nullptr, 10));
    }
  }
}

std::vector<uint64_t> ListeningInodes(const std::string& host, uint16_t port) {
  std::vector<uint64_t> out;
  ForEachListener(port, [&](const std::string& addr, uint64_t inode) {
    bool v4mapped = addr.rfind("::ffff:", 0) == 0 && addr.substr(7) == host;
    if (addr == host || IsWildcard(addr) || v4mapped || IsWildcard(host)) out.push_back(inode);
  });
  return out;
}

std::set<uint64_t> SocketInodesOf(int32_t pid) {
  std::set<uint64_t> out;
  std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* d = opendir(dir.c_str());
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    char target[64];
    ssize_t n = readlink((dir + "/" + e->d_name).c_str(), target, sizeof(target) - 1);
    if (n <= 0) continue;
    target[n] = '\0';
    if (std::strncmp(target, "socket:[", 8) == 0)
      out.insert(std::strtoull(target + 8, nullptr, 10));
  }
  closedir(d);
  return out;
}

std::vector<int32_t> DescendantsOf(int32_t root) {
  std::multimap<int32_t, int32_t> children;
  DIR* d = opendir("/proc");
  if (!d) return {};
  while (dirent* e = readdir(d)) {
    char* end = nullptr;
    long pid = std::strtol(e->d_name, &end, 10);
    if (*end != '\0' || pid <= 0) continue;
    std::ifstream stat("/proc/" + std::string(e->d_name) + "/stat");
    std::string text;
    std::getline(stat, text);
    size_t paren = text.rfind(')');  // comm may hold spaces and parentheses
    if (paren == std::string::npos) continue;
    std::istringstream f(text.substr(paren + 1));
    std::string state;
    int32_t ppid = 0;
    f >> state >> ppid;
    children.emplace(ppid, static_cast<int32_t>(pid));
  }
  closedir(d);
  std::vector<int32_t> out;
  std::vector<int32_t> queue{root};
  while (!queue.empty()) {
    int32_t p = queue.back();
    queue.pop_back();
    auto [lo, hi] = children.equal_range(p);
    for (auto it = lo; it != hi; ++it) {
      out.push_back(it->second);
      queue.push_back(it->second);
    }
  }
  return out;
}

// Calls `visit(inode, path)` for every listening unix socket bound to a path.
template <typename Visit>
void ForEachListeningUnixSocket(Visit visit) {
  std::ifstream in("/proc/net/unix");
  std::string line;
  std::getline(in, line);
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string num, refs, proto, flags, type, st, inode, path;
    f >> num >> refs >> proto >> flags >> type >> st >> inode >> path;
    if (path.empty() || path[0] == '@') continue;                             // unbound or abstract
    if ((std::strtoul(flags.c_str(), nullptr, 16) & 0x10000) == 0) continue;  // __SO_ACCEPTCON
    visit(std::strtoull(inode.c_str(), nullptr, 10), path);
  }
}

std::vector<std::string> ListeningUnixPaths(const std::set<uint64_t>& inodes) {
  std::vector<std::string> out;
  ForEachListeningUnixSocket([&](uint64_t inode, const std::string& path) {
    if (inodes.count(inode)) out.push_back(path);
  });
  return out;
}

std::vector<uint64_t> ListeningUnixInodes(const std::string& wanted) {
  std::vector<uint64_t> out;
  ForEachListeningUnixSocket([&](uint64_t inode, const std::string& path) {
    if (path == wanted) out.push_back(inode);
  });
  return out;
}

}  // namespace

std::optional<ServerProcesses> ServerOf(const std::vector<uint64_t>& listening) {
  for (uint64_t inode : listening) {
    std::optional<int32_t> pid = identity::FindPidBySocketInode(inode);
    if (!pid) continue;
    ServerProcesses s;
    s.postmaster = *pid;
    s.descendants = DescendantsOf(*pid);
    s.unix_paths = ListeningUnixPaths(SocketInodesOf(*pid));
    return s;
  }
  return std::nullopt;
}

std::optional<ServerProcesses> FindServer(const std::string& host, uint16_t port) {
  return ServerOf(ListeningInodes(host, port));
}

std::optional<ServerProcesses> FindServerByUnixPath(const std::string& path) {
  return ServerOf(ListeningUnixInodes(path));
}

std::vector<int32_t> Descendants(int32_t root) {
  return DescendantsOf(root);
}

std::vector<std::string> LocalAddresses() {
  std::vector<std::string> out;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return out;
  for (ifaddrs* i = list; i; i = i->ifa_next) {
    if (!i->ifa_addr) continue;
    char buf[INET6_ADDRSTRLEN] = {};
    if (i->ifa_addr->sa_family == AF_INET)
      inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr, buf, sizeof(buf));
    else if (i->ifa_addr->sa_family == AF_INET6)
      inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(i->ifa_addr)->sin6_addr, buf,
                sizeof(buf));
    if (buf[0] != '\0') out.emplace_back(buf);
  }
  freeifaddrs(list);
  return out;
}

bool IsLocalAddress(const std::string& address) {
  if (address.rfind("127.", 0) == 0 || address == "::1") return true;
  std::vector<std::string> local = LocalAddresses();
  return std::find(local.begin(), local.end(), address) != local.end();
}

std::vector<std::string> ListeningAddresses(uint16_t port) {
  std::vector<std::string> out;
  ForEachListener(port, [&](const std::string& address, uint64_t) {
    if (!address.empty() && std::find(out.begin(), out.end(), address) == out.end())
      out.push_back(address);
  });
  return out;
}

}  // namespace dbw::tap
