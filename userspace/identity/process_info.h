// ProcessInfo: what dbwarden knows of the process on the other end of a connection.
#pragma once

#include <cstdint>
#include <string>

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
