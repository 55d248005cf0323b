// ProcessInfo: what dbwarden knows of the process on the other end of a connection.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace dbw::identity {

struct ProcessInfo {
  int32_t pid = 0;
  uint32_t uid = 0;
  std::string comm;
  std::string exe;
  std::string cgroup;  // cgroup v2 path, e.g. /system.slice/cron.service
};

// Reads /proc/<pid>/{comm,exe,status,cgroup}. False when the process is gone.
bool ReadProcessInfo(int32_t pid, ProcessInfo* out);

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
