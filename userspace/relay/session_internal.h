// Helpers shared by the files of relay::Session (not part of its interface).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace dbw::relay {

inline constexpr size_t kInitialBuffer = 64 * 1024;  // a leg's first read buffer
inline constexpr size_t kMinReadSpace = 16 * 1024;   // grown when less is free
// The largest message a client may send before it is authenticated: PostgreSQL reads
// password and SASL messages with a 65535-byte limit (PG_MAX_AUTH_TOKEN_LENGTH), plus the length.
inline constexpr uint32_t kMaxMessageBeforeLogin = 65535 + 4;

inline uint64_t MonotonicNs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

}  // namespace dbw::relay
