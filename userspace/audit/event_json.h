// JSON encoding of audit events (one object per event, stable field names).
#pragma once

#include <string>

#include "userspace/audit/event.h"

namespace dbw::audit {

void AppendEventJson(const Event& event, std::string* out);
std::string FormatTimestamp(int64_t ts_us);  // RFC 3339, UTC, microseconds

}  // namespace dbw::audit
