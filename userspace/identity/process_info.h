// ProcessInfo: what dbwarden knows of the process on the other end of a connection.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace dbw::identity {

inline constexpr uint32_t kUnknownId = 0xffffffffu;

// One ancestor of a process, nearest first.
struct ParentInfo {
  int32_t pid = 0;
  std::string comm;
  std::string exe;
};

struct ProcessInfo {
  int32_t pid = 0;
  int32_t ppid = 0;
  uint32_t uid = 0;
  uint32_t gid = kUnknownId;
  std::string comm;
  std::string exe;
  std::string cmdline;              // arguments joined by spaces, at most kMaxCmdline bytes
  std::string cgroup;               // cgroup v2 path, e.g. /system.slice/cron.service
  std::vector<ParentInfo> parents;  // up to kMaxParents ancestors below pid 1 (ReadProcessTree)
};

inline constexpr size_t kMaxCmdline = 512;
inline constexpr size_t kMaxParents = 4;

// The shape of a command line (NUL-separated, as in /proc/<pid>/cmdline): the program, then
// option names with every value replaced by "?" ("psql -h ? -U ? -c ?"). Command lines carry
// passwords, connection strings and SQL literals, which must not reach the audit log. At most
// kMaxCmdline bytes.
std::string CmdlineShape(std::string_view raw);
// Reads /proc/<pid>/{status,exe,cmdline,cgroup}. False when the process is gone.
bool ReadProcessInfo(int32_t pid, ProcessInfo* out);
// ReadProcessInfo plus the parent chain (comm and exe of up to kMaxParents ancestors).
bool ReadProcessTree(int32_t pid, ProcessInfo* out);
// The cgroup v2 path ("/system.slice/cron.service") of a cgroup id as the kernel reports it
// (bpf_get_current_cgroup_id), resolved through the cgroup2 mount; "" when the cgroup is gone,
// no cgroup2 file system is mounted or the caller may not open file handles.
std::string CgroupPathById(uint64_t id);
// Where the cgroup v2 hierarchy is mounted ("/sys/fs/cgroup", or "/sys/fs/cgroup/unified" on
// hybrid hosts); "" when it is not.
std::string Cgroup2MountPoint();
// The id BPF reports (bpf_get_current_cgroup_id) for the cgroup v2 directory `dir`; 0 when it
// is not one.
uint64_t CgroupIdOfDir(const std::string& dir);

}  // namespace dbw::identity

namespace dbw::identity {

// The systemd unit a cgroup v2 path belongs to: the last component ending in .service or
// .scope ("/system.slice/cron.service" -> "cron.service"), or "" when there is none.
std::string UnitFromCgroup(std::string_view cgroup);
// The container id in a cgroup path, for docker ("docker-<id>.scope", "/docker/<id>"),
// containerd ("cri-containerd-<id>.scope"), cri-o ("crio-<id>.scope") and podman
// ("libpod-<id>.scope"); "" when the path is not a container's.
std::string ContainerFromCgroup(std::string_view cgroup);

}  // namespace dbw::identity
