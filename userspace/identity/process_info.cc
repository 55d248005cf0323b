// Reads process facts from /proc.
#include "userspace/identity/process_info.h"

#include <unistd.h>

#include <fstream>
#include <sstream>

namespace dbw::identity {

std::string CmdlineShape(std::string_view raw) {
  std::string out;
  size_t start = 0;
  bool first = true;
  while (start < raw.size() && out.size() < kMaxCmdline) {
    size_t end = raw.find('\0', start);
    if (end == std::string_view::npos) end = raw.size();
    std::string_view arg = raw.substr(start, end - start);
    start = end + 1;
    if (!out.empty()) out += ' ';
    if (first) {
      // The program as invoked; programs that rewrite their title put arguments here too.
      out += arg.substr(0, arg.find(' '));
      first = false;
    } else if (arg.starts_with("--")) {
      size_t eq = arg.find('=');
      out += eq == std::string_view::npos ? arg : std::string(arg.substr(0, eq)) + "=?";
    } else if (arg.starts_with('-') && arg.size() > 1) {
      out += arg.size() == 2 ? arg : std::string(arg.substr(0, 2)) + "?";
    } else {
      out += '?';
    }
  }
  if (out.size() > kMaxCmdline) out.resize(kMaxCmdline);
  return out;
}

bool ReadProcessInfo(int32_t pid, ProcessInfo* out) {
  std::string base = "/proc/" + std::to_string(pid);
  std::ifstream status(base + "/status");
  if (!status) return false;
  out->pid = pid;
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("Uid:", 0) == 0) {
      std::istringstream fields(line.substr(4));
      fields >> out->uid;  // real uid
    } else if (line.rfind("Gid:", 0) == 0) {
      std::istringstream fields(line.substr(4));
      fields >> out->gid;  // real gid
    } else if (line.rfind("PPid:", 0) == 0) {
      std::istringstream fields(line.substr(5));
      fields >> out->ppid;
    } else if (line.rfind("Name:", 0) == 0) {
      size_t start = line.find_first_not_of(" \t", 5);
      out->comm = start == std::string::npos ? "" : line.substr(start);
    }
  }
  char exe[4096];
  ssize_t n = ::readlink((base + "/exe").c_str(), exe, sizeof(exe) - 1);
  if (n > 0) out->exe.assign(exe, static_cast<size_t>(n));
  std::ifstream cmdline(base + "/cmdline", std::ios::binary);
  char args[4096];
  cmdline.read(args, sizeof(args));
  std::streamsize got = cmdline.gcount();
  out->cmdline = CmdlineShape(std::string_view(args, got > 0 ? static_cast<size_t>(got) : 0));
  std::ifstream cgroup(base + "/cgroup");
  while (std::getline(cgroup, line)) {
    // cgroup v2 is the "0::" line; on hybrid hosts take it over the v1 controllers.
    if (line.rfind("0::", 0) == 0) out->cgroup = line.substr(3);
  }
  return true;
}

bool ReadProcessTree(int32_t pid, ProcessInfo* out) {
  if (!ReadProcessInfo(pid, out)) return false;
  int32_t next = out->ppid;
  while (next > 1 && out->parents.size() < kMaxParents) {
    ProcessInfo parent;
    if (!ReadProcessInfo(next, &parent)) break;
    out->parents.push_back({parent.pid, parent.comm, parent.exe});
    next = parent.ppid;
  }
  return true;
}

}  // namespace dbw::identity

namespace dbw::identity {
namespace {

bool IsHex(std::string_view s) {
  if (s.size() < 12) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

}  // namespace

std::string UnitFromCgroup(std::string_view cgroup) {
  std::string_view best;
  size_t pos = 0;
  while (pos < cgroup.size()) {
    size_t end = cgroup.find('/', pos);
    if (end == std::string_view::npos) end = cgroup.size();
    std::string_view part = cgroup.substr(pos, end - pos);
    if (part.ends_with(".service") || part.ends_with(".scope")) best = part;
    pos = end + 1;
  }
  return std::string(best);
}

std::string ContainerFromCgroup(std::string_view cgroup) {
  static constexpr std::string_view kPrefixes[] = {"docker-", "cri-containerd-", "crio-",
                                                   "libpod-"};
  size_t pos = 0;
  std::string_view prev;
  while (pos < cgroup.size()) {
    size_t end = cgroup.find('/', pos);
    if (end == std::string_view::npos) end = cgroup.size();
    std::string_view part = cgroup.substr(pos, end - pos);
    for (auto prefix : kPrefixes) {
      if (part.starts_with(prefix)) {
        std::string_view id = part.substr(prefix.size());
        if (id.ends_with(".scope")) id.remove_suffix(6);
        if (IsHex(id)) return std::string(id);
      }
    }
    // cgroupfs driver: /docker/<id>, /kubepods/.../<id>
    if ((prev == "docker" || prev.starts_with("pod") || prev == "libpod_parent") && IsHex(part))
      return std::string(part);
    prev = part;
    pos = end + 1;
  }
  return "";
}

}  // namespace dbw::identity
