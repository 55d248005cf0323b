// Reads process facts from /proc.
#include "userspace/identity/process_info.h"

#include <unistd.h>

#include <fstream>
#include <sstream>

namespace dbw::identity {

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
    } else if (line.rfind("Name:", 0) == 0) {
      size_t start = line.find_first_not_of(" \t", 5);
      out->comm = start == std::string::npos ? "" : line.substr(start);
    }
  }
  char exe[4096];
  ssize_t n = ::readlink((base + "/exe").c_str(), exe, sizeof(exe) - 1);
  if (n > 0) out->exe.assign(exe, static_cast<size_t>(n));
  std::ifstream cgroup(base + "/cgroup");
  while (std::getline(cgroup, line)) {
    // cgroup v2 is the "0::" line; on hybrid hosts take it over the v1 controllers.
    if (line.rfind("0::", 0) == 0) out->cgroup = line.substr(3);
  }
  return true;
}

}  // namespace dbw::identity
