// dbwarden's entry point: the CLI, and `run`, which wires the modules and handles signals.
#include <signal.h>
#include <sys/stat.h>

#include <cstring>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include <systemd/sd-daemon.h>

#include "agent/config.h"
#include "agent/policy_cli.h"
#include "agent/policy_reloader.h"
#include "userspace/audit/jsonl_sink.h"
#include "userspace/common/logging.h"
#include "userspace/identity/peer_process.h"
#include "userspace/relay/server.h"

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
  auto sink = audit::JsonlSink::Open(config->state_dir + "/audit.jsonl", 1 << 16);
  if (!sink.ok()) {
    DBW_LOG(kError) << sink.status().message();
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

  identity::PeerResolver resolver;
  relay::RelayServer server(config->relay, sink->get(), &resolver, &policy_store);
  if (Status st = server.Start(); !st.ok()) {
    DBW_LOG(kError) << st.message();
    return kExitFailure;
  }
  audit::Event start;
  start.kind = audit::EventKind::kAgentStart;
  start.source = "agent";
  start.detail = "dbwarden " DBWARDEN_VERSION " started with " + config_path;
  (*sink)->Submit(std::move(start));
  audit::Event loaded;
  loaded.kind = audit::EventKind::kPolicyLoad;
  loaded.source = "agent";
  loaded.detail = "loaded: " + policy_summary;
  (*sink)->Submit(std::move(loaded));
  DBW_LOG(kInfo) << "policy: " << policy_summary;
  reloader.Start(std::chrono::seconds(2));
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
  server.Shutdown();
  audit::Event stop;
  stop.kind = audit::EventKind::kAgentStop;
  stop.source = "agent";
  stop.detail = "dbwarden stopped";
  (*sink)->Submit(std::move(stop));
  (*sink)->Flush();
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
  if (args[0] == "policy" && args.size() >= 2 && args[1] == "check")
    return dbw::agent::PolicyCheckMain({args.begin() + 2, args.end()});
  if (args[0] == "policy" && args.size() >= 2 && args[1] == "eval")
    return dbw::agent::PolicyEvalMain({args.begin() + 2, args.end()});
  dbw::agent::Usage(std::cerr);
  return dbw::agent::kExitUsage;
}
