// Witness: the second witness of relayed sessions (docs/routing.md#the-second-witness). The relay
// reports each upstream connection it opens and, when it ends, its account of it: what it wrote
// and read (counted on the socket), and how many statements it wrote into the audit log. The tap
// reports what the server's side of the same connection read and wrote. When both halves are in,
// they are compared; a disagreement is a `witness_mismatch` audit event and metric: something
// reached the server that the audit log does not show, or the relay read what the server never
// sent.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "userspace/audit/event.h"
#include "userspace/audit/sink.h"
#include "userspace/common/metrics.h"
#include "userspace/protocol/postgres/wire_tally.h"

namespace dbw::witness {

// How both sides name a connection: the relay's end of it. `address` as text (an IPv4-mapped
// IPv6 address is taken as the IPv4 one); for a unix socket, the inode of the relay's socket.
std::string TcpKey(std::string_view address, uint16_t port);
std::string UnixKey(uint64_t relay_socket_inode);

// The relay's account of one upstream connection.
struct RelayAccount {
  pg::WireCounts sent;      // what the relay wrote to the server
  pg::WireCounts received;  // what it read from it
  uint64_t statements = 0;  // statement events of Query, Execute and FunctionCall executions
  uint64_t skipped = 0;     // such requests the server skipped (after an extended-protocol error)
  uint64_t internal = 0;    // such requests the relay made itself (search_path probe, row budgets)
  bool clean = false;       // ended by the client's Terminate with nothing pending
};

// What the tap saw on the server's side of it.
struct ServerAccount {
  pg::WireCounts received;  // what the server read
  pg::WireCounts sent;      // what the server wrote
  // False when the tap did not watch the connection to its end (the agent stopping): the
  // server may have written more than was counted.
  bool complete = true;
};

// The disagreements between the two accounts, in words; empty when they agree.
std::vector<std::string> Disagreements(const RelayAccount& relay, const ServerAccount& server);

class Witness {
 public:
  // A half waits this long for the other before it is settled alone.
  static constexpr std::chrono::seconds kWait{30};

  Witness(audit::EventSink* sink, MetricsRegistry* metrics);

  // The tap watches the servers from now on: connections the relay opens from here are
  // reconciled (those opened before are counted unwitnessed: their start was not seen).
  void Watching();
  // The tap is not running: nothing is kept from now on.
  void Off();

  // Relay: a session's upstream connection is up, nothing sent on it yet.
  void RelayOpened(const std::string& key, std::shared_ptr<const audit::SessionInfo> session);
  // Relay: a connection of its own that carries no session (a catalog read).
  void RelayInternal(const std::string& key);
  // Relay: the session ended; `session` is its last identity.
  void RelayClosed(const std::string& key, std::shared_ptr<const audit::SessionInfo> session,
                   const RelayAccount& account);
  // Tap: the server's side of a connection the agent made ended.
  void ServerClosed(const std::string& key, const ServerAccount& account);
  // Settles halves that waited longer than kWait. Called every second.
  void Tick() { Tick(std::chrono::steady_clock::now()); }
  void Tick(std::chrono::steady_clock::time_point now);

  size_t pending() const;

 private:
  struct Entry {
    std::shared_ptr<const audit::SessionInfo> session;
    bool internal = false;
    bool unwatched = false;  // opened before the tap watched
    bool relay_opened = false;
    bool relay_closed = false;
    bool server_closed = false;
    RelayAccount relay;
    ServerAccount server;
    std::chrono::steady_clock::time_point since;  // when the first half ended
    bool waiting = false;                         // one half ended
  };
  enum class Result : uint8_t {
    kMatch,
    kMismatch,
    kUnwitnessed,
    kUnclaimed,
    kEncrypted,
    kCancel,
    kInternal,
    kCount
  };

  void Settle(const std::string& key, Entry& e);  // both halves in, or one waited too long
  // Settles and removes the entry when both halves are in.
  bool SettleIfPaired(const std::string& key, std::deque<Entry>::iterator it);
  void Count(Result r) { results_[static_cast<size_t>(r)]->Add(); }
  void Mismatch(const std::string& key, const Entry& e, const std::vector<std::string>& why);

  enum class State : uint8_t { kStarting, kWatching, kOff };
  audit::EventSink* sink_;
  State state_ = State::kStarting;  // guarded by mu_
  std::array<Counter*, static_cast<size_t>(Result::kCount)> results_{};
  mutable std::mutex mu_;  // the relay's workers and the tap's thread report concurrently
  // By key, oldest first: a port may be reused while an older connection's half still waits.
  // Guarded by mu_.
  std::unordered_map<std::string, std::deque<Entry>> entries_;
};

}  // namespace dbw::witness
