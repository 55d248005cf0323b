// The coverage matrix: a verdict for every frontend message type in every phase and for every
// startup parameter. Anything not listed is refused. docs/protocol.md is the same table in prose.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "userspace/common/status.h"
#include "userspace/protocol/postgres/session.h"
#include "userspace/protocol/postgres/types.h"

namespace dbw::gate {

enum class Door : uint8_t {
  kPass,    // forwarded as is: carries no statement (Sync, Flush, Describe, Close, COPY data, ...)
  kJudge,   // a route to execution: judged before it is forwarded (Query, Parse, FunctionCall)
  kTrack,   // forwarded; runs what was judged before (Bind, Execute), tracked by name
  kRefuse,  // not valid here: the session ends with FATAL 08P01 and a protocol_violation event
};

struct DoorVerdict {
  Door door = Door::kRefuse;
  std::string_view why;  // for kRefuse: what the error says
};

// The verdict for a frontend message of `type` while the session is in `phase`.
// `authenticating`: the server asked for a password/SASL exchange and has not said
// AuthenticationOk.
DoorVerdict FrontendDoor(pg::Phase phase, uint8_t type);

// One setting a startup packet asks for: a parameter (other than user, database, replication and
// options), or a `-c name=value` / `--name=value` inside `options`. Names are lower case, as the
// server folds them.
struct StartupSetting {
  std::string name;
  std::string value;
  bool from_options = false;
};

struct StartupRequest {
  std::vector<StartupSetting> settings;
  std::string replication;             // the `replication` parameter as sent; empty when absent
  bool replication_requested = false;  // anything but off/false/no/0
};

// Reads a StartupMessage's parameters as the server will (postmaster.c, pg_split_opts): every
// parameter but user, database, replication and options is a setting; `options` is split on
// unescaped white space into switches, of which only -c/--name=value set anything the session
// keeps. Any other switch (e.g. -D, -P, -f) is refused: the gate cannot tell what it does.
StatusOr<StartupRequest> ReadStartup(const pg::StartupMessage& message);

// The SET statement a startup setting is equivalent to, quoted so that the name and value are
// read back exactly.
std::string SetStatementFor(const StartupSetting& setting);

}  // namespace dbw::gate
