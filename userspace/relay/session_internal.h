// Helpers shared by the files of relay::Session (not part of its interface).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace dbw::relay {

inline constexpr size_t kInitialBuffer = 64 * 1024;  // a leg's first read buffer
inline constexpr size_t kMinReadSpace = 16 * 1024;   // grown when less is free

inline uint64_t MonotonicNs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

}  // namespace dbw::relay
