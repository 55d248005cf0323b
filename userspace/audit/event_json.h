// JSON encoding of audit events (one object per event, stable field names).
#pragma once

#include <string>

#include "userspace/audit/event.h"

namespace dbw::audit {

void AppendEventJson(const Event& event, std::string* out);
std::string FormatTimestamp(int64_t ts_us);  // RFC 3339, UTC, microseconds
// A string as AppendEventJson writes it (after JSON unescaping): NUL and invalid UTF-8 bytes
// become U+FFFD. The store indexes these values, so they match what is stored byte for byte.
std::string JsonText(const std::string& value);

// The systemd unit and container id of a cgroup path (identity::UnitFromCgroup,
// ContainerFromCgroup), remembered for the last path asked on this thread: consecutive events
// mostly come from one process.
struct CgroupNames {
  std::string cgroup;
  std::string unit;
  std::string container_id;
};
const CgroupNames& NamesOfCgroup(const std::string& cgroup);

}  // namespace dbw::audit
