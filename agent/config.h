// The agent's configuration file: loading, validation and the resulting settings.
#pragma once

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "policy/policy.h"
#include "userspace/api/options.h"
#include "userspace/common/status.h"
#include "userspace/export/options.h"
#include "userspace/relay/options.h"
#include "userspace/route/options.h"
#include "userspace/tap/options.h"

namespace dbw::agent {

// approvals: requests for `approve` decisions (RocksDB under <state_dir>/approvals) and the
// webhooks told of each new request.
struct ApprovalsConfig {
  std::chrono::seconds retention{30 * 24 * 3600};  // finished requests kept this long
  struct Webhook {
    std::string url;
    std::vector<std::pair<std::string, std::string>> headers;
  };
  std::vector<Webhook> webhooks;
  int webhook_attempts = 5;
  std::chrono::milliseconds webhook_backoff{1000};
  std::chrono::milliseconds webhook_timeout{5000};
};

struct AgentConfig {
  std::string path;
  std::string state_dir = "/var/lib/dbwarden";
  std::string log_level = "info";
  relay::RelayOptions relay;
  // policy.files (paths or globs; empty: the built-in default pack) and policy.mode.
  std::vector<std::string> policy_files;
  policy::Mode policy_mode = policy::Mode::kEnforce;
  // audit: the RocksDB audit log under <state_dir>/audit.
  std::string audit_durability = "auto";                 // auto | sync | async
  std::chrono::seconds audit_retention{90 * 24 * 3600};  // 0: keep forever
  // Ring of each relay worker's intent log (docs/audit-store.md#intent-logs); 0: off.
  size_t audit_intent_log_mb = 8;
  // Key of the masking function `hash` (HMAC-SHA256); empty: <state_dir>/masking-hash.key,
  // generated on first start.
  std::string masking_hash_key;
  std::string audit_signing_key;  // Ed25519 PEM; empty: <state_dir>/audit/signing-key.pem
  // Each signed checkpoint is appended here (docs/audit-store.md#anchors); empty:
  // <state_dir>/audit-anchors.jsonl. "off": not published.
  std::string audit_anchor_file;
  ApprovalsConfig approvals;
  // tap: the eBPF tap. "auto" (default): on when the kernel and privileges allow it, with a
  // log line when they do not; "true": the agent does not start without it; "false": off.
  std::string tap_mode = "auto";
  tap::TapOptions tap;  // targets are filled from `targets` when the tap starts
  // routing: how targets with relay_only: enforce | refuse are held to it (docs/routing.md);
  // its targets are filled from `targets` when routing starts.
  route::RouterOptions routing;
  // export: audit exporters (docs/export.md#exporters).
  std::vector<exporter::ExporterOptions> exporters;
  // api: the HTTP API.
  bool api_enabled = true;
  api::ServerOptions api;
};

// Loads and validates a config file. Errors read "FILE:LINE: reason".
StatusOr<AgentConfig> LoadConfig(const std::string& path);

}  // namespace dbw::agent
