// dbwarden's entry point: the CLI, and `run`, which wires the modules and handles signals.
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <string>
#include <utility>  // before any Boost.Asio header (Boost 1.74)
#include <vector>

#include <systemd/sd-daemon.h>

#include "agent/audit_cli.h"
#include "agent/config.h"
#include "agent/http_cli.h"
#include "agent/masking_key.h"
#include "agent/policy_cli.h"
#include "agent/policy_reloader.h"
#include "agent/tap_ddl_sink.h"
#include "userspace/api/event_source.h"
#include "userspace/api/server.h"
#include "userspace/approvals/service.h"
#include "userspace/audit/store.h"
#include "userspace/common/logging.h"
#include "userspace/export/exporter.h"
#include "userspace/identity/peer_process.h"
#include "userspace/relay/server.h"
#include "userspace/route/router.h"
#include "userspace/tap/tap.h"
#include "userspace/witness/witness.h"

#ifndef DBWARDEN_VERSION
#define DBWARDEN_VERSION "0.0.0"
#endif

namespace dbw::agent {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

void Usage(std::ostream& out) {
  out << "usage:\n"
         "  dbwarden run --config FILE [--log-level debug|info|warning|error]\n"
         "  dbwarden config check FILE\n"
         "  dbwarden policy check FILE...\n"
         "  dbwarden policy eval [--policy FILE]... [--target T] [--env E]\n"
         "                       [--principal-kind agent|human] [--user U] [--mode "
         "enforce|monitor]\n"
         "                       < statements (one per line, or JSON lines)\n"
         "  dbwarden events [--since 1h] [--principal P] [--action deny] ... [--json]\n"
         "  dbwarden sessions [ID]\n"
         "  dbwarden approvals [list [--state S]] | show ID | approve ID | deny ID [--comment C]\n"
         "  dbwarden audit verify [--state-dir DIR [--anchors FILE|URL] | --api URL] [--from SEQ] "
         "[--to SEQ]\n"
         "  dbwarden audit export --state-dir DIR [--after SEQ] [--limit N]\n"
         "  dbwarden routing release [--pin-dir DIR]\n"
         "  dbwarden --version\n";
}

int ConfigCheck(const std::vector<std::string>& args) {
  if (args.size() != 1) {
    Usage(std::cerr);
    return kExitUsage;
  }
  auto config = LoadConfig(args[0]);
  if (!config.ok()) {
    std::cerr << config.status().message() << "\n";
    return kExitUsage;
  }
  std::cout << args[0] << ": ok (" << config->relay.targets.size() << " target(s))\n";
  return kExitOk;
}

// The tap, per `tap.enabled`: null when it is off or could not start (logged, and fatal only
// for "true").
std::unique_ptr<tap::Tap> StartTap(const AgentConfig& config, audit::EventSink* sink,
                                   const policy::PolicyStore* policy, witness::Witness* witness) {
  if (config.tap_mode == "false") return nullptr;
  tap::TapOptions options = config.tap;
  for (const auto& t : config.relay.targets)
    options.targets.push_back(
        {t.name, t.env, t.upstream_host, t.upstream_port, t.relay_only, t.upstream_unix});
  auto started = tap::Tap::Start(options, {sink, policy, &MetricsRegistry::Global(), witness});
  if (!started.ok()) {
    if (config.tap_mode == "true") {
      DBW_LOG(kError) << "tap: " << started.status().message();
    } else {
      DBW_LOG(kWarning) << "tap: not running (" << started.status().message()
                        << "); sessions that skip the relay are not seen. It needs root (or "
                           "CAP_BPF and CAP_PERFMON) and a kernel with BTF; set tap.enabled: "
                           "false to silence this";
    }
    return nullptr;
  }
  DBW_LOG(kInfo) << "tap: running (" << options.targets.size() << " target(s), client ports "
                 << options.ports.size() << ", ring buffer " << (options.ring_buffer_bytes >> 20)
                 << " MiB)";
  return std::move(*started);
}

// Kernel routing for the targets with relay_only: enforce | refuse; null when there are none.
// Failing to start it is fatal: those targets' servers would be open.
StatusOr<std::unique_ptr<route::Router>> StartRouting(const AgentConfig& config,
                                                      audit::EventSink* sink) {
  route::RouterOptions options = config.routing;
  for (const auto& t : config.relay.targets) {
    if (t.route == relay::TargetOptions::Route::kNone) continue;
    options.targets.push_back({t.name, t.env,
                               t.route == relay::TargetOptions::Route::kRefuse
                                   ? route::Action::kRefuse
                                   : route::Action::kEnforce,
                               t.upstream_host, t.upstream_port, t.upstream_unix, t.listen_host,
                               t.listen_port, t.listen_unix});
  }
  if (options.targets.empty()) return std::unique_ptr<route::Router>();
  auto started = route::Router::Start(std::move(options), sink, &MetricsRegistry::Global());
  if (!started.ok()) return started.status();
  DBW_LOG(kInfo) << "routing: " << config.routing.cgroups.size() << " cgroup(s) ("
                 << (config.routing.cgroups.empty() ? "the whole host" : "configured")
                 << "), on_agent_exit: "
                 << (config.routing.on_agent_exit == route::OnAgentExit::kOpen ? "open" : "closed");
  return started;
}

int RoutingRelease(const std::vector<std::string>& args) {
  std::string pin_dir = route::RouterOptions().pin_dir;
  if (args.size() == 2 && args[0] == "--pin-dir") {
    pin_dir = args[1];
  } else if (!args.empty()) {
    Usage(std::cerr);
    return kExitUsage;
  }
  size_t released = 0;
  if (Status st = route::Router::ReleasePinned(pin_dir, &released); !st.ok()) {
    std::cerr << st.message() << "\n";
    return kExitFailure;
  }
  std::cout << "released " << released << " pinned routing link(s) from " << pin_dir << "\n";
  return kExitOk;
}

int Run(const std::vector<std::string>& args) {
  std::string config_path;
  std::string log_level;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--config" && i + 1 < args.size()) {
      config_path = args[++i];
    } else if (args[i] == "--log-level" && i + 1 < args.size()) {
      log_level = args[++i];
    } else {
      Usage(std::cerr);
      return kExitUsage;
    }
  }
  if (config_path.empty()) {
    Usage(std::cerr);
    return kExitUsage;
  }
  auto config = LoadConfig(config_path);
  if (!config.ok()) {
    std::cerr << config.status().message() << "\n";
    return kExitUsage;
  }
  LogLevel level = LogLevel::kInfo;
  ParseLogLevel(log_level.empty() ? config->log_level : log_level, &level);
  SetLogLevel(level);

  std::error_code fs_error;
  std::filesystem::create_directories(config->state_dir, fs_error);
  if (fs_error) {
    DBW_LOG(kError) << "cannot create state_dir " << config->state_dir << ": "
                    << fs_error.message();
    return kExitFailure;
  }
  audit::StoreOptions store_options;
  store_options.dir = config->state_dir + "/audit";
  store_options.durability = config->audit_durability == "sync"    ? audit::Durability::kSync
                             : config->audit_durability == "async" ? audit::Durability::kAsync
                                                                   : audit::Durability::kAuto;
  store_options.retention = config->audit_retention;
  store_options.signing_key_path = config->audit_signing_key;
  store_options.intent_log_bytes = config->audit_intent_log_mb << 20;
  store_options.anchor_file = config->audit_anchor_file.empty()
                                  ? config->state_dir + "/audit-anchors.jsonl"
                              : config->audit_anchor_file == "off" ? std::string()
                                                                   : config->audit_anchor_file;
  auto sink = audit::AuditStore::Open(store_options);
  if (!sink.ok()) {
    DBW_LOG(kError) << "audit log: " << sink.status().message();
    return kExitFailure;
  }

  // Signals are taken synchronously on this thread; workers never see them.
  sigset_t signals;
  sigemptyset(&signals);
  for (int s : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&signals, s);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto initial_policy = LoadInitialPolicy(config->policy_files, config->policy_mode);
  if (!initial_policy.ok()) {
    DBW_LOG(kError) << "policy: " << initial_policy.status().message();
    return kExitUsage;
  }
  const std::string policy_summary =
      std::to_string((*initial_policy)->rule_count()) + " rules from " +
      (*initial_policy)->source() +
      (config->policy_mode == policy::Mode::kMonitor ? ", monitor mode" : ", enforce mode");
  policy::PolicyStore policy_store(std::move(*initial_policy));
  PolicyReloader reloader(config->policy_files, config->policy_mode, &policy_store, sink->get());

  auto mask_hmac =
      LoadMaskingHash(config->masking_hash_key.empty() ? config->state_dir + "/masking-hash.key"
                                                       : config->masking_hash_key);
  if (!mask_hmac.ok()) {
    DBW_LOG(kError) << "masking key: " << mask_hmac.status().message();
    return kExitFailure;
  }
  approvals::ServiceOptions approval_options;
  approval_options.dir = config->state_dir + "/approvals";
  approval_options.retention = config->approvals.retention;
  for (const auto& h : config->approvals.webhooks)
    approval_options.webhooks.push_back({h.url, h.headers});
  approval_options.webhook_attempts = config->approvals.webhook_attempts;
  approval_options.webhook_backoff = config->approvals.webhook_backoff;
  approval_options.webhook_timeout = config->approvals.webhook_timeout;
  if (config->api_enabled)
    approval_options.api_url =
        (config->api.tls.cert.empty() ? "http://" : "https://") + config->api.listen;
  auto approvals = approvals::ApprovalService::Open(std::move(approval_options), sink->get());
  if (!approvals.ok()) {
    DBW_LOG(kError) << "approvals: " << approvals.status().message();
    return kExitFailure;
  }
  (*approvals)->Start();
  identity::PeerResolver resolver;
  // The second witness, when the tap may run: the relay reports to it from its first session.
  std::unique_ptr<witness::Witness> witness;
  if (config->tap_mode != "false" && config->tap.witness)
    witness = std::make_unique<witness::Witness>(sink->get(), &MetricsRegistry::Global());
  relay::RelayServer server(config->relay, sink->get(), &resolver, &policy_store,
                            std::move(*mask_hmac), approvals->get());
  std::atomic<route::Router*> router_ptr{nullptr};
  server.SetRouteLookup([&router_ptr](const identity::Endpoint& client, int32_t unix_pid) {
    route::Router* r = router_ptr.load();
    return r ? r->Take(client, unix_pid) : std::nullopt;
  });
  server.SetWitness(witness.get());
  if (Status st = server.Start(); !st.ok()) {
    DBW_LOG(kError) << st.message();
    return kExitFailure;
  }
  // After the relay listens: routed connections have somewhere to go.
  auto routing = StartRouting(*config, sink->get());
  if (!routing.ok()) {
    DBW_LOG(kError) << routing.status().message();
    server.Shutdown();
    (*approvals)->Stop();
    return kExitFailure;
  }
  std::unique_ptr<route::Router> router = std::move(*routing);
  router_ptr.store(router.get());
  audit::Event start;
  start.kind = audit::EventKind::kAgentStart;
  start.source = "agent";
  start.detail = "dbwarden " DBWARDEN_VERSION " started with " + config_path;
  (*sink)->Submit(std::move(start));
  api::StoreEventSource source(sink->get());
  std::unique_ptr<api::Server> api_server;
  if (config->api_enabled) {
    api::ApiDeps deps{&source, &policy_store, approvals->get(),
                      [&](std::string* why) {
                        // Writable now, not "never failed": ready again once space returns.
                        // A store that failed its start-up check (rolled back) stays not ready.
                        Status st = (*sink)->Integrity();
                        if (st.ok()) st = (*sink)->Writable();
                        if (!st.ok()) *why = st.message();
                        return st.ok();
                      },
                      [&](std::string*) { return policy_store.Get() != nullptr; }};
    auto created = api::Server::Create(config->api, std::move(deps));
    Status st = created.ok() ? (*created)->Start() : created.status();
    if (!st.ok()) {
      DBW_LOG(kError) << "api: " << st.message();
      server.Shutdown();
      return kExitFailure;
    }
    api_server = std::move(*created);
  }
  audit::Event loaded;
  loaded.kind = audit::EventKind::kPolicyLoad;
  loaded.source = "agent";
  loaded.detail = "loaded: " + policy_summary;
  (*sink)->Submit(std::move(loaded));
  DBW_LOG(kInfo) << "policy: " << policy_summary;
  reloader.Start(std::chrono::seconds(2));
  TapDdlSink tap_sink(sink->get());  // DDL the tap sees re-reads the relay's masking catalogs
  std::unique_ptr<tap::Tap> tap = StartTap(*config, &tap_sink, &policy_store, witness.get());
  if (!tap && witness) witness->Off();
  if (!tap && config->tap_mode == "true") {
    server.Shutdown();
    if (api_server) api_server->Stop();
    (*approvals)->Stop();
    return kExitFailure;
  }
  auto exporters = exporter::ExportService::Start(config->exporters, config->state_dir, sink->get(),
                                                  &MetricsRegistry::Global());
  if (!exporters.ok()) {
    DBW_LOG(kError) << exporters.status().message();
    router_ptr.store(nullptr);
    router.reset();
    tap.reset();
    server.Shutdown();
    if (api_server) api_server->Stop();
    (*approvals)->Stop();
    return kExitFailure;
  }
  sd_notify(0, "READY=1");
  DBW_LOG(kInfo) << "dbwarden " << DBWARDEN_VERSION << " running";

  while (true) {
    int sig = 0;
    if (sigwait(&signals, &sig) != 0) continue;
    if (sig == SIGHUP) {
      // Policy reloads in place. Listeners and upstreams are fixed for the process's life; the
      // file is validated so a broken edit is reported before a restart would hit it.
      auto reloaded = LoadConfig(config_path);
      if (reloaded.ok()) {
        DBW_LOG(kInfo) << "SIGHUP: " << config_path
                       << " is valid; target changes take effect on restart";
      } else {
        DBW_LOG(kError) << "SIGHUP: keeping the running configuration: "
                        << reloaded.status().message();
      }
      reloader.Reload("SIGHUP");
      continue;
    }
    DBW_LOG(kInfo) << "received " << strsignal(sig) << ", shutting down";
    break;
  }
  sd_notify(0, "STOPPING=1");
  // Before the relay stops listening: open detaches the programs first, so routed clients
  // are never sent to a closed port; closed leaves them pinned.
  router_ptr.store(nullptr);
  router.reset();
  tap.reset();  // its open sessions end in the log
  server.Shutdown();
  if (api_server) api_server->Stop();
  (*approvals)->Stop();  // held statements' requests stay pending in the store
  audit::Event stop;
  stop.kind = audit::EventKind::kAgentStop;
  stop.source = "agent";
  stop.detail = "dbwarden stopped";
  (*sink)->Submit(std::move(stop));
  (*sink)->Flush();
  (*exporters)->Stop();  // each saves how far its receiver confirmed
  DBW_LOG(kInfo) << "stopped";
  return kExitOk;
}

}  // namespace
}  // namespace dbw::agent

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) {
    dbw::agent::Usage(std::cerr);
    return dbw::agent::kExitUsage;
  }
  if (args[0] == "--version" || args[0] == "version") {
    std::cout << "dbwarden " << DBWARDEN_VERSION << "\n";
    return dbw::agent::kExitOk;
  }
  if (args[0] == "--help" || args[0] == "help") {
    dbw::agent::Usage(std::cout);
    return dbw::agent::kExitOk;
  }
  if (args[0] == "run") return dbw::agent::Run({args.begin() + 1, args.end()});
  if (args[0] == "config" && args.size() >= 2 && args[1] == "check")
    return dbw::agent::ConfigCheck({args.begin() + 2, args.end()});
  if (args[0] == "events") return dbw::agent::EventsMain({args.begin() + 1, args.end()});
  if (args[0] == "sessions") return dbw::agent::SessionsMain({args.begin() + 1, args.end()});
  if (args[0] == "approvals") return dbw::agent::ApprovalsMain({args.begin() + 1, args.end()});
  if (args[0] == "audit" && args.size() >= 2 && args[1] == "export")
    return dbw::agent::AuditExportMain({args.begin() + 2, args.end()});
  if (args[0] == "audit" && args.size() >= 2 && args[1] == "verify") {
    std::vector<std::string> rest(args.begin() + 2, args.end());
    bool offline = std::find(rest.begin(), rest.end(), "--state-dir") != rest.end();
    return offline ? dbw::agent::AuditVerifyOfflineMain(rest)
                   : dbw::agent::AuditVerifyRemoteMain(rest);
  }
  if (args[0] == "routing" && args.size() >= 2 && args[1] == "release")
    return dbw::agent::RoutingRelease({args.begin() + 2, args.end()});
  if (args[0] == "policy" && args.size() >= 2 && args[1] == "check")
    return dbw::agent::PolicyCheckMain({args.begin() + 2, args.end()});
  if (args[0] == "policy" && args.size() >= 2 && args[1] == "eval")
    return dbw::agent::PolicyEvalMain({args.begin() + 2, args.end()});
  dbw::agent::Usage(std::cerr);
  return dbw::agent::kExitUsage;
}
