// Tap: the passive side of dbwarden. Loads the BPF programs, follows the targets' database
// servers, reads the ring buffer on one thread and turns captured bytes into audit events
// (source "tap"): sessions, statements judged by the policy in monitor mode, bypasses of
// relay_only targets and losses.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "policy/policy.h"
#include "userspace/audit/sink.h"
#include "userspace/common/metrics.h"
#include "userspace/common/status.h"
#include "userspace/tap/options.h"
#include "userspace/witness/witness.h"

namespace dbw::tap {

struct TapDeps {
  audit::EventSink* sink = nullptr;
  const policy::PolicyStore* policy = nullptr;
  MetricsRegistry* metrics = nullptr;
  // The relay's upstream connections are counted on the server's side and reported here (the
  // second witness); null: they are ignored. Ticked by the tap's thread.
  witness::Witness* witness = nullptr;
};

class TapEngine;

class Tap {
 public:
  // Loads and attaches the programs and starts the reader thread. Fails (with the reason) when
  // the kernel or the privileges do not allow it.
  static StatusOr<std::unique_ptr<Tap>> Start(const TapOptions& options, TapDeps deps);
  ~Tap();  // stops the reader; open sessions end with reason "agent stopping"
  Tap(const Tap&) = delete;
  Tap& operator=(const Tap&) = delete;

 private:
  Tap() = default;
  void Run();

  std::unique_ptr<TapEngine> engine_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace dbw::tap
