// Router: kernel-enforced routing for targets with relay_only: enforce | refuse. Loads the cgroup
// connect4/connect6/sockops programs (bpf/src/route.bpf.c) and the process trackers they rely on,
// keeps their maps in step with the host (the servers' listening addresses and processes, exempt
// units and executables), turns refusals into audit events, and tells the relay where a routed
// connection was going. See docs/routing.md.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "userspace/audit/sink.h"
#include "userspace/common/metrics.h"
#include "userspace/common/status.h"
#include "userspace/identity/peer_process.h"
#include "userspace/route/options.h"

struct route_bpf;
struct route_unix_bpf;
struct ring_buffer;
struct bpf_link;

namespace dbw::route {

class Router {
 public:
  // Loads and attaches everything; fails without side effects on the host (nothing attached)
  // when the kernel refuses a program or a cgroup cannot be opened.
  static StatusOr<std::unique_ptr<Router>> Start(RouterOptions options, audit::EventSink* sink,
                                                 MetricsRegistry* metrics);
  // open: detaches the programs (direct connections work again). closed: leaves them pinned.
  ~Router();
  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;

  // The record of the routed connection whose client end is `peer` (TCP) or whose client
  // process is `unix_pid` (unix socket), taken (each is handed out once); nullopt for a
  // connection that was not routed. Any thread.
  std::optional<identity::RouteOrigin> Take(const identity::Endpoint& peer, int32_t unix_pid);

  // Removes links pinned by an earlier run in `pin_dir` (dbwarden routing release).
  static Status ReleasePinned(const std::string& pin_dir, size_t* released);

 private:
  Router() = default;
  Status Load();
  void LoadUnix();
  void ExemptRunningExes();
  Status Attach();
  void Run();
  void Rescan();
  void RescanUnix();
  void Report(const void* data, size_t size);
  void PublishCounters();
  static int OnRefusal(void* ctx, void* data, size_t size);

  RouterOptions options_;
  audit::EventSink* sink_ = nullptr;
  route_bpf* skel_ = nullptr;
  route_unix_bpf* unix_skel_ = nullptr;  // null: the kernel has no cgroup/connect_unix
  ring_buffer* ring_ = nullptr;
  std::vector<bpf_link*> links_;
  std::vector<std::string> stale_pins_;  // an earlier run's, removed once ours are attached
  std::vector<uint32_t> server_tgids_;   // postmasters already followed
  std::vector<uint64_t> exempt_cgroups_;
  std::vector<std::vector<uint8_t>> dest_keys_;  // what is in `dests` now
  std::vector<std::string> unix_dest_keys_;      // what is in `unix_dests` now
  std::vector<std::string> warned_;              // sockets open to all, logged once
  std::atomic<bool> stop_{false};
  std::thread thread_;
  Counter* m_routed_ = nullptr;
  Counter* m_refused_ = nullptr;
  Counter* m_exempt_ = nullptr;
  Counter* m_lost_ = nullptr;
  std::array<uint64_t, 4> last_{};  // counters as last published
  uint64_t last_lost_reported_ = 0;
};

}  // namespace dbw::route
