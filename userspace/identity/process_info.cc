// Reads process facts from /proc.
#include "userspace/identity/process_info.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
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

namespace {

// A mountinfo field with its octal escapes ("\040" for a space) undone.
std::string Unescape(std::string_view field) {
  std::string out;
  for (size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size() && field[i + 1] >= '0' && field[i + 1] <= '3' &&
        field[i + 2] >= '0' && field[i + 2] <= '7' && field[i + 3] >= '0' && field[i + 3] <= '7') {
      out += static_cast<char>((field[i + 1] - '0') * 64 + (field[i + 2] - '0') * 8 +
                               (field[i + 3] - '0'));
      i += 3;
    } else {
      out += field[i];
    }
  }
  return out;
}

// Where the cgroup2 hierarchy is mounted ("/sys/fs/cgroup" or, on hybrid hosts,
// "/sys/fs/cgroup/unified"), from /proc/self/mountinfo, and the cgroup path its root shows
// ("/" unless a subtree is bind-mounted); a mount of the whole hierarchy is preferred.
struct Cgroup2 {
  std::string mount_point;
  std::string root;
};
Cgroup2 FindCgroup2() {
  std::ifstream mountinfo("/proc/self/mountinfo");
  std::string line;
  Cgroup2 found;
  while (std::getline(mountinfo, line)) {
    // "36 25 0:31 / /sys/fs/cgroup/unified rw,... shared:9 - cgroup2 cgroup2 rw,..."
    size_t dash = line.find(" - ");
    if (dash == std::string::npos || line.compare(dash + 3, 8, "cgroup2 ") != 0) continue;
    std::istringstream fields(line.substr(0, dash));
    std::string id, parent, dev, root, mount_point;
    if (!(fields >> id >> parent >> dev >> root >> mount_point)) continue;
    if (found.mount_point.empty() || root == "/") found = {Unescape(mount_point), Unescape(root)};
    if (root == "/") break;
  }
  return found;
}

// A file descriptor closed when it goes out of scope.
struct Fd {
  int fd;
  explicit Fd(int f) : fd(f) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

std::string Cgroup2MountPoint() {
  return FindCgroup2().mount_point;
}

uint64_t CgroupIdOfDir(const std::string& dir) {
  alignas(file_handle) char buf[sizeof(file_handle) + sizeof(uint64_t)] = {};
  auto* handle = reinterpret_cast<file_handle*>(buf);
  handle->handle_bytes = sizeof(uint64_t);
  int mount_id = 0;
  if (::name_to_handle_at(AT_FDCWD, dir.c_str(), handle, &mount_id, 0) != 0 ||
      handle->handle_type != 0xfe || handle->handle_bytes != sizeof(uint64_t))
    return 0;
  uint64_t id = 0;
  std::memcpy(&id, handle->f_handle, sizeof(id));
  return id;
}

std::string CgroupPathById(uint64_t id) {
  if (id == 0) return "";
  // The mount is looked up once per thread and again whenever it cannot be opened.
  thread_local Cgroup2 mount;
  Fd mount_fd(-1);
  for (int attempt = 0; attempt < 2 && mount_fd.fd < 0; ++attempt) {
    if (attempt == 1 || mount.mount_point.empty()) mount = FindCgroup2();
    if (mount.mount_point.empty()) return "";
    mount_fd.fd = ::open(mount.mount_point.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  }
  if (mount_fd.fd < 0) return "";
  // A cgroup2 directory's file handle is its kernfs id (FILEID_KERNFS), the id BPF reports.
  alignas(file_handle) char buf[sizeof(file_handle) + sizeof(uint64_t)] = {};
  auto* handle = reinterpret_cast<file_handle*>(buf);
  handle->handle_bytes = sizeof(uint64_t);
  handle->handle_type = 0xfe;  // FILEID_KERNFS
  std::memcpy(handle->f_handle, &id, sizeof(id));
  Fd dir(::open_by_handle_at(mount_fd.fd, handle, O_RDONLY | O_CLOEXEC));
  if (dir.fd < 0) return "";
  char path[4096];
  ssize_t n =
      ::readlink(("/proc/self/fd/" + std::to_string(dir.fd)).c_str(), path, sizeof(path) - 1);
  if (n <= 0) return "";
  std::string_view full(path, static_cast<size_t>(n));
  if (!full.starts_with(mount.mount_point)) return "";
  full.remove_prefix(mount.mount_point.size());
  if (!full.empty() && full[0] != '/') return "";  // "/sys/fs/cgroupX": another directory
  // Under a bind-mounted subtree the path continues the subtree's own.
  std::string out = mount.root == "/" ? std::string() : mount.root;
  out += full;
  return out.empty() ? "/" : out;
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
