// The tap's settings (config section `tap:` plus what it needs of each target).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dbw::tap {

struct TapTarget {
  std::string name;
  std::string env;
  std::string upstream_host;  // numeric address of the database server (empty: upstream_unix)
  uint16_t upstream_port = 0;
  bool relay_only = false;    // sessions that bypass the relay are reported
  std::string upstream_unix;  // the server's unix socket, when the relay reaches it there
};

struct TapOptions {
  bool enabled = true;
  std::vector<uint16_t> ports{5432};  // client-side TCP capture
  uint32_t capture_bytes = 16384;
  uint64_t ring_buffer_bytes = 64ull << 20;
  // The second witness: the relay's upstream connections counted on the server's side and
  // reconciled with the relay's account of them.
  bool witness = true;
  std::vector<TapTarget> targets;
};

}  // namespace dbw::tap
