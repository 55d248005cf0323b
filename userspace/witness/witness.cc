// Witness: pairs the two halves of each relayed connection and compares them.
#include "userspace/witness/witness.h"

#include <algorithm>
#include <utility>

#include "userspace/common/logging.h"
#include "userspace/protocol/postgres/types.h"

namespace dbw::witness {
namespace {

constexpr std::array<const char*, 7> kResultNames = {
    "match", "mismatch", "unwitnessed", "unclaimed", "encrypted", "cancel", "internal"};

std::string N(uint64_t v) {
  return std::to_string(v);
}

}  // namespace

std::string TcpKey(std::string_view address, uint16_t port) {
  // "::ffff:127.0.0.1" is 127.0.0.1: the server's socket may be IPv6 where the relay's is not.
  constexpr std::string_view kMapped = "::ffff:";
  if (address.size() > kMapped.size() && address.substr(0, kMapped.size()) == kMapped &&
      address.find('.') != std::string_view::npos)
    address.remove_prefix(kMapped.size());
  std::string key = "tcp:";
  if (address.find(':') != std::string_view::npos) {
    key += '[';
    key += address;
    key += ']';
  } else {
    key += address;
  }
  return key + ":" + std::to_string(port);
}

std::string UnixKey(uint64_t relay_socket_inode) {
  return "unix:" + std::to_string(relay_socket_inode);
}

std::vector<std::string> Disagreements(const RelayAccount& relay, const ServerAccount& server) {
  std::vector<std::string> out;
  const pg::WireCounts& in = server.received;
  const pg::WireCounts& out_of_server = server.sent;
  const uint64_t accounted = relay.statements + relay.skipped + relay.internal;
  // What the tap counts can only fall short of what crossed (it may lose bytes), so the server
  // having read more than the relay wrote, or than the audit log accounts for, is never noise.
  if (in.requests > accounted)
    out.push_back("the server received " + N(in.requests) +
                  " requests (Query, Execute, FunctionCall); the audit log accounts for " +
                  N(accounted) + " (" + N(relay.statements) + " statements, " + N(relay.skipped) +
                  " skipped by the server after an error, " + N(relay.internal) +
                  " made by the relay)");
  if (in.requests > relay.sent.requests)
    out.push_back("the server received " + N(in.requests) + " requests; the relay sent " +
                  N(relay.sent.requests));
  if (in.bytes > relay.sent.bytes)
    out.push_back("the server received " + N(in.bytes) + " bytes; the relay sent " +
                  N(relay.sent.bytes));
  // The other way, the relay's counts are the upper ones: it cannot have read what the server
  // never wrote. Only when the tap saw every byte the server wrote.
  if (out_of_server.framed && server.complete) {
    if (relay.received.rows > out_of_server.rows)
      out.push_back("the relay received " + N(relay.received.rows) + " rows; the server sent " +
                    N(out_of_server.rows));
    if (relay.received.bytes > out_of_server.bytes)
      out.push_back("the relay received " + N(relay.received.bytes) + " bytes; the server sent " +
                    N(out_of_server.bytes));
  }
  // A session that ended cleanly left nothing in flight: every count agrees exactly.
  if (relay.clean && server.complete && in.framed && out_of_server.framed && relay.sent.framed &&
      relay.received.framed) {
    if (in.requests < accounted)
      out.push_back("the audit log accounts for " + N(accounted) +
                    " requests; the server received " + N(in.requests));
    if (in.requests < relay.sent.requests)
      out.push_back("the relay sent " + N(relay.sent.requests) + " requests; the server received " +
                    N(in.requests));
    if (in.bytes < relay.sent.bytes)
      out.push_back("the relay sent " + N(relay.sent.bytes) + " bytes; the server received " +
                    N(in.bytes));
    if (relay.received.rows < out_of_server.rows)
      out.push_back("the server sent " + N(out_of_server.rows) + " rows; the relay received " +
                    N(relay.received.rows));
  }
  return out;
}

Witness::Witness(audit::EventSink* sink, MetricsRegistry* metrics) : sink_(sink) {
  static_assert(kResultNames.size() == static_cast<size_t>(Result::kCount));
  for (size_t i = 0; i < static_cast<size_t>(Result::kCount); ++i)
    results_[i] = metrics->GetCounter(
        "dbwarden_witness_connections_total",
        "The relay's upstream connections reconciled with the tap's view of the server's side, "
        "by result (mismatch and unclaimed are also witness_mismatch audit events)",
        std::string("result=\"") + kResultNames[i] + "\"");
}

void Witness::Watching() {
  std::lock_guard lock(mu_);
  state_ = State::kWatching;
}

void Witness::Off() {
  std::lock_guard lock(mu_);
  state_ = State::kOff;
  entries_.clear();
}

void Witness::RelayOpened(const std::string& key,
                          std::shared_ptr<const audit::SessionInfo> session) {
  std::lock_guard lock(mu_);
  if (state_ == State::kOff) return;
  auto& list = entries_[key];
  // The server's side may have ended first (a backend that refused the connection at once).
  for (auto it = list.begin(); it != list.end(); ++it) {
    if (it->server_closed && !it->relay_opened && !it->internal) {
      it->relay_opened = true;
      it->session = std::move(session);
      it->waiting = false;  // now waits for the relay's end, however long the session lasts
      return;
    }
  }
  Entry e;
  e.relay_opened = true;
  e.unwatched = state_ != State::kWatching;
  e.session = std::move(session);
  list.push_back(std::move(e));
}

void Witness::RelayInternal(const std::string& key) {
  std::lock_guard lock(mu_);
  if (state_ == State::kOff) return;
  Entry e;
  e.internal = true;
  e.relay_opened = true;
  e.relay_closed = true;
  e.waiting = true;
  e.since = std::chrono::steady_clock::now();
  entries_[key].push_back(std::move(e));
}

void Witness::RelayClosed(const std::string& key, std::shared_ptr<const audit::SessionInfo> session,
                          const RelayAccount& account) {
  std::lock_guard lock(mu_);
  if (state_ == State::kOff) return;
  auto& list = entries_[key];
  auto it = std::find_if(list.begin(), list.end(),
                         [](const Entry& e) { return !e.internal && !e.relay_closed; });
  if (it == list.end()) it = list.insert(list.end(), Entry{});
  it->relay_opened = true;
  it->session = std::move(session);
  it->relay = account;
  it->relay_closed = true;
  if (SettleIfPaired(key, it)) return;
  it->waiting = true;
  it->since = std::chrono::steady_clock::now();
}

bool Witness::SettleIfPaired(const std::string& key, std::deque<Entry>::iterator it) {
  if (!it->relay_closed || !it->server_closed) return false;
  Settle(key, *it);
  auto& list = entries_[key];
  list.erase(it);
  if (list.empty()) entries_.erase(key);
  return true;
}

void Witness::ServerClosed(const std::string& key, const ServerAccount& account) {
  std::lock_guard lock(mu_);
  if (state_ == State::kOff) return;
  const uint32_t code = account.received.first_code;
  if (code == pg::kCancelRequestCode) {  // the relay's cancel requests: no session runs there
    Count(Result::kCancel);
    return;
  }
  if (code == pg::kSslRequestCode || code == pg::kGssEncRequestCode) {
    // upstream_tls: ciphertext, nothing to count. Its session registered nothing.
    Count(Result::kEncrypted);
    return;
  }
  auto& list = entries_[key];
  auto it = std::find_if(list.begin(), list.end(), [](const Entry& e) { return !e.server_closed; });
  if (it == list.end()) it = list.insert(list.end(), Entry{});
  it->server = account;
  it->server_closed = true;
  if (SettleIfPaired(key, it)) return;
  if (!it->relay_opened) {  // no relay session claims it (yet)
    it->waiting = true;
    it->since = std::chrono::steady_clock::now();
  }
}

void Witness::Tick(std::chrono::steady_clock::time_point now) {
  std::lock_guard lock(mu_);
  for (auto m = entries_.begin(); m != entries_.end();) {
    auto& list = m->second;
    for (auto it = list.begin(); it != list.end();) {
      if (it->waiting && now - it->since >= kWait) {
        Settle(m->first, *it);
        it = list.erase(it);
      } else {
        ++it;
      }
    }
    m = list.empty() ? entries_.erase(m) : std::next(m);
  }
}

size_t Witness::pending() const {
  std::lock_guard lock(mu_);
  size_t n = 0;
  for (const auto& [key, list] : entries_) n += list.size();
  return n;
}

void Witness::Settle(const std::string& key, Entry& e) {
  if (e.internal) {
    Count(Result::kInternal);
    return;
  }
  if (!e.server_closed || e.unwatched) {
    // The tap never saw the server's side (not a server it watches), or not from its start.
    Count(Result::kUnwitnessed);
    return;
  }
  if (!e.relay_closed) {
    Count(Result::kUnclaimed);
    Mismatch(
        key, e,
        {"the server served a connection from the agent that no relay session or catalog "
         "read accounts for: it received " +
         N(e.server.received.requests) + " requests, " + N(e.server.received.bytes) + " bytes"});
    return;
  }
  std::vector<std::string> why = Disagreements(e.relay, e.server);
  if (why.empty()) {
    Count(Result::kMatch);
    return;
  }
  Count(Result::kMismatch);
  Mismatch(key, e, why);
}

void Witness::Mismatch(const std::string& key, const Entry& e,
                       const std::vector<std::string>& why) {
  audit::Event ev;
  ev.kind = audit::EventKind::kWitnessMismatch;
  ev.source = "agent";
  ev.ts_us = audit::NowMicros();
  ev.session = e.session;
  const uint64_t accounted = e.relay.statements + e.relay.skipped + e.relay.internal;
  ev.count = e.server.received.requests > accounted ? e.server.received.requests - accounted : 0;
  std::string detail = "connection " + key + ": ";
  for (size_t i = 0; i < why.size(); ++i) detail += (i ? "; " : "") + why[i];
  ev.detail = std::move(detail);
  DBW_LOG(kWarning) << "witness mismatch: " << ev.detail;
  sink_->Submit(std::move(ev));
}

}  // namespace dbw::witness
