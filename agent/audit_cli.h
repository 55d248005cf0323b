// `dbwarden audit verify|export --state-dir DIR`: offline commands over a read-only view of the
// audit store (they work while the agent runs).
#pragma once

#include <string>
#include <vector>

namespace dbw::agent {

// audit verify --state-dir DIR [--from SEQ] [--to SEQ]: exit 0 verified, 1 broken, 2 usage.
int AuditVerifyOfflineMain(const std::vector<std::string>& args);
// audit export --state-dir DIR [--after SEQ] [--limit N]: NDJSON in sequence order.
int AuditExportMain(const std::vector<std::string>& args);

}  // namespace dbw::agent
