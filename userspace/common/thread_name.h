// Names the calling thread (visible in top -H, ps -L and /proc/<pid>/task/*/comm).
#pragma once

#include <pthread.h>

#include <string>

namespace dbw {

inline void SetThreadName(const std::string& name) {
  // The kernel keeps 15 characters.
  pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
}

}  // namespace dbw
