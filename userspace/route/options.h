// What the routing programs are told: protected targets, exemptions, where they attach and what
// happens when the agent stops (docs/routing.md). Plain settings, no kernel types.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "policy/glob.h"

namespace dbw::route {

enum class Action : uint8_t { kEnforce, kRefuse };

struct RouteTarget {
  std::string name;
  std::string env;
  Action action = Action::kEnforce;
  // The server: a TCP address (numeric) and port, or its unix socket (port from its name).
  std::string upstream_host;
  uint16_t upstream_port = 0;
  std::string upstream_unix;
  // The relay's listener for this target, where enforce sends connections; relay_unix: its unix
  // socket (listen_unix), where connections to the server's unix socket go (empty: refused).
  std::string relay_host;
  uint16_t relay_port = 0;
  std::string relay_unix;
};

struct Exemptions {
  std::vector<policy::Glob> units;   // systemd units (cgroup directory names), any depth
  std::vector<std::string> exes;     // absolute paths; compared by inode, not by name
  std::vector<uint32_t> uids;        // real uid
  std::vector<std::string> cgroups;  // cgroup v2 paths ("/system.slice/x.service"), and below
};

enum class OnAgentExit : uint8_t { kOpen, kClosed };

struct RouterOptions {
  std::vector<RouteTarget> targets;
  // Cgroup v2 paths (relative to the hierarchy's root) the programs are attached to; empty:
  // the root, i.e. every process on the host.
  std::vector<std::string> cgroups;
  Exemptions exempt;
  OnAgentExit on_agent_exit = OnAgentExit::kOpen;
  // closed: the programs' links are pinned here and outlive the agent.
  std::string pin_dir = "/sys/fs/bpf/dbwarden/routing";
  // How often listening addresses, server processes and exempt units are looked at again.
  std::chrono::milliseconds rescan{2000};
};

}  // namespace dbw::route
