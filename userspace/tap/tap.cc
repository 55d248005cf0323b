// Tap and TapEngine: the reader thread, the connection table and who is on each end.
#include "userspace/tap/tap.h"

#include <arpa/inet.h>
#include <signal.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstring>
#include <set>
#include <unordered_map>

#include "userspace/common/logging.h"
#include "userspace/common/random_id.h"
#include "userspace/identity/peer_process.h"
#include "userspace/tap/bpf_program.h"
#include "userspace/tap/discovery.h"
#include "userspace/tap/metrics.h"
#include "userspace/tap/passive_session.h"

namespace dbw::tap {
namespace {

constexpr uint32_t kMaxBody = 1 << 20;                 // bodies past this are skipped
constexpr uint64_t kConnectMemoryNs = 60'000'000'000;  // connect records older than this go
constexpr auto kRediscoverEvery = std::chrono::seconds(5);
constexpr int kPollMs = 20;

uint64_t MonotonicNs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

// Numeric address of a record's address bytes; IPv4-mapped IPv6 is shown as IPv4, so both
// ends of a dual-stack connection name it alike.
std::string AddressText(uint16_t family, const uint8_t* bytes) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (family == AF_INET) {
    inet_ntop(AF_INET, bytes, buf, sizeof(buf));
    return buf;
  }
  static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(bytes, kMapped, sizeof(kMapped)) == 0) {
    inet_ntop(AF_INET, bytes + 12, buf, sizeof(buf));
    return buf;
  }
  inet_ntop(AF_INET6, bytes, buf, sizeof(buf));
  return buf;
}

std::string Endpoint(const std::string& addr, uint16_t port) {
  return (addr.find(':') != std::string::npos ? "[" + addr + "]" : addr) + ":" +
         std::to_string(port);
}

template <typename T>
bool ReadRecord(std::span<const std::byte> r, T* out) {
  if (r.size() < sizeof(T)) return false;
  std::memcpy(out, r.data(), sizeof(T));
  return true;
}

std::string CommText(const char* comm) {
  return std::string(comm, strnlen(comm, 16));
}

// What a record's task says of a process: pid, ids and command name.
identity::ProcessInfo TaskView(const dbw_tap_task& t) {
  identity::ProcessInfo info;
  info.pid = static_cast<int32_t>(t.tgid);
  info.uid = t.uid;
  info.gid = t.gid;
  info.comm = CommText(t.comm);
  return info;
}

// The executable path of a connect record, as /proc/PID/exe shows it: its components come leaf
// first. "" when the walk did not reach the root (a path deeper or longer than the record holds,
// a disconnected dentry) or found no name.
std::string ExePath(const dbw_tap_connect& r) {
  if (!r.exe_complete || r.exe_len == 0) return "";
  std::string_view parts(r.exe, std::min<size_t>(r.exe_len, sizeof(r.exe)));
  std::string path;
  while (!parts.empty()) {
    if (parts.back() == '\0') parts.remove_suffix(1);
    size_t start = parts.rfind('\0');
    start = start == std::string_view::npos ? 0 : start + 1;
    path += '/';
    path += parts.substr(start);
    parts.remove_suffix(parts.size() - start);
  }
  if (r.exe_deleted) path += " (deleted)";
  return path;
}

// A process that was gone before /proc could be read, as the kernel saw it at connect(): no
// command line; the ancestors from its parent, if that still lives.
identity::ProcessInfo KernelView(const dbw_tap_connect& r) {
  identity::ProcessInfo info = TaskView(r.conn.task);
  info.ppid = static_cast<int32_t>(r.ppid);
  info.exe = ExePath(r);
  info.cgroup = identity::CgroupPathById(r.conn.task.cgroup_id);
  identity::ProcessInfo parent;
  if (info.ppid > 1 && identity::ReadProcessTree(info.ppid, &parent)) {
    info.parents.push_back({parent.pid, parent.comm, parent.exe});
    for (auto& p : parent.parents) {
      if (info.parents.size() == identity::kMaxParents) break;
      info.parents.push_back(std::move(p));
    }
  }
  return info;
}

}  // namespace

// The server's side of one of the relay's own upstream connections, counted for the witness
// in stream order: a byte range that was not captured (a truncated write, a lost chunk) is
// counted in bytes and ends the counting of frames.
class ServerWitness {
 public:
  explicit ServerWitness(std::string key) : key_(std::move(key)) {}
  const std::string& key() const { return key_; }

  void Add(bool frontend, uint64_t pos, std::span<const std::byte> data) {
    pg::WireTally& t = frontend ? received_ : sent_;
    uint64_t& next = next_[frontend ? 1 : 0];
    if (pos > next) {
      t.Skip(pos - next);
      next = pos;
    } else if (pos < next) {  // already counted
      const uint64_t seen = next - pos;
      if (seen >= data.size()) return;
      data = data.subspan(seen);
    }
    t.Feed(data);
    next += data.size();
  }
  // The kernel's positions start over: what follows cannot be placed, and what was missed
  // between is unknown (so not counted: the server's counts stay lower bounds).
  void Rebase() {
    received_.Desync();
    sent_.Desync();
    next_[0] = next_[1] = 0;
  }
  // `complete`: watched to the connection's end.
  witness::ServerAccount Account(bool complete) const {
    return {received_.counts(), sent_.counts(), complete};
  }

 private:
  std::string key_;
  pg::WireTally received_{true};
  pg::WireTally sent_{false};
  std::array<uint64_t, 2> next_{};  // egress, ingress
};

class TapEngine {
 public:
  TapEngine(const TapOptions& options, TapDeps deps)
      : options_(options), deps_(deps), metrics_(deps.metrics) {}

  Status Start();
  void Poll(int timeout_ms) { (void)program_->Poll(timeout_ms); }
  void Tick();
  void CloseAll(const std::string& reason);

 private:
  struct TargetState {
    TapTarget options;
    int32_t postmaster = 0;
    std::set<int32_t> watched;  // pids this agent put into the kernel's watched set
    std::chrono::steady_clock::time_point next_discovery{};
  };
  struct Connect {
    uint32_t tgid = 0;
    uint64_t ts_ns = 0;
    // Set when the process had exited before its connect record was read: what the kernel
    // saw then. Otherwise the process is looked up (and cached) by tgid.
    std::optional<identity::ProcessInfo> gone;
  };
  struct Conn {
    std::unique_ptr<PassiveSession> session;  // null: ignored (the relay's own, a duplicate)
    std::unique_ptr<ServerWitness> witness;   // the relay's own, counted for the witness
    uint8_t role = 0;
    uint32_t owner_tgid = 0;
    uint64_t ino = 0;  // the socket's inode: with the struct sock address, the connection
  };

  void OnRecord(std::span<const std::byte> r);
  void OnConnect(const dbw_tap_connect& r);
  void OnOpen(const dbw_tap_conn& c);
  void OnData(const dbw_tap_data& d, std::span<const std::byte> payload);
  void OnClose(const dbw_tap_close& c);
  void OnExit(const dbw_tap_exit& e);
  // The connection ended: its session's end in the log, its witness's account reported.
  // `ended`: false when the tap stops watching a connection that goes on.
  void End(Conn* conn, uint64_t now_ns, const std::string& reason, bool ended = true);
  void Discover(TargetState* t);
  void WatchAll(TargetState* t, uint32_t index, const std::vector<int32_t>& pids);
  void CountFailure(const Status& st);
  void SweepProcesses();
  std::optional<identity::ProcessInfo> Process(uint32_t tgid, const dbw_tap_task* task);
  std::optional<Connect> ClientOf(const dbw_tap_conn& c, const std::string& raddr);
  // Removes and returns the connect recorded under `key`, if it was recorded no later than
  // `seen_ns` (a later one belongs to a later connection on a reused port or inode).
  template <typename Map>
  static std::optional<Connect> TakeConnect(Map* connects, const typename Map::key_type& key,
                                            uint64_t seen_ns);
  std::optional<identity::ProcessInfo> ProcessOf(const Connect& k);
  void ForgetOldConnects(uint64_t now_ns);
  void ReportLosses();
  void ReportProgramStats();

  TapOptions options_;
  TapDeps deps_;
  TapMetrics metrics_;
  sql::Analyzer analyzer_;
  std::unique_ptr<BpfProgram> program_;
  std::vector<TargetState> targets_;
  std::unordered_map<uint64_t, Conn> conns_;                       // by struct sock address
  std::unordered_map<std::string, Connect> tcp_connects_;          // by the client's local end
  std::unordered_map<uint64_t, Connect> unix_connects_;            // by the client socket's inode
  std::unordered_map<uint32_t, identity::ProcessInfo> processes_;  // by tgid, until it exits
  std::array<uint64_t, DBW_LOSS_MAX> losses_seen_{};
  // Per BPF program: the kernel's run time and run count last mirrored into the metrics.
  struct ProgramSeen {
    Counter* run_time_ns;
    Counter* runs;
    uint64_t seen_ns = 0;
    uint64_t seen_runs = 0;
  };
  std::unordered_map<std::string, ProgramSeen> programs_seen_;
  std::chrono::steady_clock::time_point next_sweep_{};
  uint32_t self_ = static_cast<uint32_t>(::getpid());
};

Status TapEngine::Start() {
  ProgramOptions po;
  po.self_tgid = self_;
  po.capture_bytes = options_.capture_bytes;
  po.ring_buffer_bytes = options_.ring_buffer_bytes;
  auto program = BpfProgram::Load(po, [this](std::span<const std::byte> r) { OnRecord(r); });
  if (!program.ok()) return program.status();
  program_ = std::move(*program);
  for (uint16_t port : options_.ports) DBW_RETURN_IF_ERROR(program_->AddClientPort(port));
  for (size_t i = 0; i < options_.targets.size(); ++i) {
    const TapTarget& o = options_.targets[i];
    DBW_RETURN_IF_ERROR(program_->AddServerPort(o.upstream_port));
    // Several targets in front of one server (say prod and staging relays): the tap sees the
    // server once, as the first of them, relay_only if any of them is.
    bool alias = false;
    for (auto& t : targets_) {
      if (t.options.upstream_host == o.upstream_host &&
          t.options.upstream_port == o.upstream_port &&
          t.options.upstream_unix == o.upstream_unix) {
        t.options.relay_only = t.options.relay_only || o.relay_only;
        alias = true;
      }
    }
    if (!alias) targets_.push_back({o});
  }
  for (auto& t : targets_) Discover(&t);
  // Only now does anything run: every decision is made with the settings in place.
  DBW_RETURN_IF_ERROR(program_->Attach());
  if (deps_.witness != nullptr) deps_.witness->Watching();
  return Status::Ok();
}

void TapEngine::Discover(TargetState* t) {
  t->next_discovery = std::chrono::steady_clock::now() + kRediscoverEvery;
  uint32_t index = static_cast<uint32_t>(t - targets_.data());
  if (t->postmaster > 0 && ::kill(t->postmaster, 0) == 0) {
    // The kernel follows forks from watched processes; a sweep now and then catches any it
    // could not record (a full map) and keeps the watch honest.
    WatchAll(t, index, Descendants(t->postmaster));
    return;
  }
  const TapTarget& o = t->options;
  std::optional<ServerProcesses> s = o.upstream_unix.empty()
                                         ? FindServer(o.upstream_host, o.upstream_port)
                                         : FindServerByUnixPath(o.upstream_unix);
  if (!s) {
    if (t->postmaster != -1) {
      DBW_LOG(kInfo) << "tap: target " << o.name << ": no local server listens on "
                     << (o.upstream_unix.empty() ? Endpoint(o.upstream_host, o.upstream_port)
                                                 : "unix:" + o.upstream_unix)
                     << " (client-side capture only)";
    }
    t->postmaster = -1;
    return;
  }
  t->postmaster = s->postmaster;
  t->watched.clear();
  // The server first, so that what it forks from now on is followed by the kernel; then what
  // it had forked already, listed again after the watch so that nothing falls in between.
  WatchAll(t, index, {s->postmaster});
  WatchAll(t, index, Descendants(s->postmaster));
  for (const std::string& path : s->unix_paths) CountFailure(program_->AddUnixPath(path));
  CountFailure(program_->BumpGeneration());
  std::string paths;
  for (const auto& p : s->unix_paths) paths += " " + p;
  DBW_LOG(kInfo) << "tap: target " << t->options.name << ": server pid " << s->postmaster << " ("
                 << t->watched.size() - 1
                 << " child processes), unix sockets:" << (paths.empty() ? " none" : paths);
}

void TapEngine::WatchAll(TargetState* t, uint32_t index, const std::vector<int32_t>& pids) {
  bool added = false;
  for (int32_t pid : pids) {
    if (!t->watched.insert(pid).second) continue;
    CountFailure(program_->Watch(static_cast<uint32_t>(pid), index));
    added = true;
  }
  if (added) CountFailure(program_->BumpGeneration());
  if (t->watched.size() > 4 * pids.size() + 1024) {
    // Forget pids that are gone (the kernel dropped them at exit).
    std::erase_if(t->watched, [](int32_t pid) { return ::kill(pid, 0) != 0; });
  }
}

void TapEngine::CountFailure(const Status& st) {
  if (st.ok()) return;
  metrics_.control_failures->Add();
  DBW_LOG(kWarning) << "tap: " << st.message();
}

void TapEngine::OnRecord(std::span<const std::byte> r) {
  metrics_.records->Add();
  if (r.empty()) return;
  switch (static_cast<uint8_t>(r[0])) {
    case DBW_REC_DATA: {
      dbw_tap_data d;
      if (!ReadRecord(r, &d) || r.size() < sizeof(d) + d.cap_len) return;
      OnData(d, r.subspan(sizeof(d), d.cap_len));
      return;
    }
    case DBW_REC_OPEN: {
      dbw_tap_conn c;
      if (!ReadRecord(r, &c)) return;
      c.path[sizeof(c.path) - 1] = '\0';
      OnOpen(c);
      return;
    }
    case DBW_REC_CONNECT: {
      dbw_tap_connect c;
      if (!ReadRecord(r, &c)) return;
      c.conn.path[sizeof(c.conn.path) - 1] = '\0';
      OnConnect(c);
      return;
    }
    case DBW_REC_CLOSE: {
      dbw_tap_close c;
      if (ReadRecord(r, &c)) OnClose(c);
      return;
    }
    case DBW_REC_EXIT: {
      dbw_tap_exit e;
      if (ReadRecord(r, &e)) OnExit(e);
      return;
    }
  }
}

std::optional<identity::ProcessInfo> TapEngine::Process(uint32_t tgid, const dbw_tap_task* task) {
  auto it = processes_.find(tgid);
  if (it != processes_.end()) return it->second;
  // Asked to be told of the exit first, then read: a process that exits in between is not
  // cached (its exit may have passed already), so the cache never outlives a process.
  Status notify = program_->NotifyExit(tgid);
  CountFailure(notify);
  identity::ProcessInfo info;
  // A zombie (exited, not yet reaped) still has /proc/PID/status but no exe: it is gone too.
  if (!identity::ReadProcessTree(static_cast<int32_t>(tgid), &info) || info.exe.empty() ||
      ::kill(tgid, 0) != 0) {
    program_->ForgetExit(tgid);
    if (!task) return std::nullopt;
    return TaskView(*task);  // gone already: what the kernel told us at the time
  }
  if (notify.ok()) processes_.emplace(tgid, info);
  return info;
}

std::optional<identity::ProcessInfo> TapEngine::ProcessOf(const Connect& k) {
  if (k.gone) return k.gone;
  return Process(k.tgid, nullptr);
}

// A backstop for exits the kernel could not report (ring buffer full): drop what is gone.
void TapEngine::SweepProcesses() {
  std::erase_if(processes_, [this](const auto& kv) {
    if (::kill(static_cast<pid_t>(kv.first), 0) == 0) return false;
    program_->ForgetExit(kv.first);
    return true;
  });
}

void TapEngine::OnConnect(const dbw_tap_connect& r) {
  const dbw_tap_conn& c = r.conn;
  if (tcp_connects_.size() + unix_connects_.size() >= 4096) ForgetOldConnects(c.task.ts_ns);
  Connect k{c.task.tgid, c.task.ts_ns, std::nullopt};
  // Read while it still exists; a client that has exited already (psql -c returns in
  // milliseconds) is described by what the kernel recorded at connect().
  if (c.task.tgid != self_ && !Process(c.task.tgid, nullptr)) {
    metrics_.processes_gone->Add();
    k.gone = KernelView(r);
  }
  if (c.family == AF_UNIX) {
    unix_connects_[c.ino] = std::move(k);
  } else {
    tcp_connects_[Endpoint(AddressText(c.family, c.laddr), c.lport)] = std::move(k);
  }
}

void TapEngine::ForgetOldConnects(uint64_t now_ns) {
  std::erase_if(tcp_connects_,
                [&](const auto& kv) { return kv.second.ts_ns + kConnectMemoryNs < now_ns; });
  std::erase_if(unix_connects_,
                [&](const auto& kv) { return kv.second.ts_ns + kConnectMemoryNs < now_ns; });
}

template <typename Map>
std::optional<TapEngine::Connect> TapEngine::TakeConnect(Map* connects,
                                                         const typename Map::key_type& key,
                                                         uint64_t seen_ns) {
  auto it = connects->find(key);
  if (it == connects->end() || it->second.ts_ns > seen_ns) return std::nullopt;
  Connect k = std::move(it->second);
  connects->erase(it);
  return k;
}

// The local client process of a server-side connection: from the connect() the kernel told us
// of, else (a connection older than the agent) from /proc.
std::optional<TapEngine::Connect> TapEngine::ClientOf(const dbw_tap_conn& c,
                                                      const std::string& raddr) {
  auto pid_only = [](int32_t pid) { return Connect{static_cast<uint32_t>(pid), 0, std::nullopt}; };
  if (c.family == AF_UNIX) {
    if (auto k = TakeConnect(&unix_connects_, c.peer_ino, c.task.ts_ns)) return k;
    if (c.peer_ino == 0) return std::nullopt;
    if (auto pid = identity::FindPidBySocketInode(c.peer_ino)) return pid_only(*pid);
    return std::nullopt;
  }
  if (auto k = TakeConnect(&tcp_connects_, Endpoint(raddr, c.rport), c.task.ts_ns)) return k;
  if (!IsLocalAddress(raddr)) return std::nullopt;
  auto inode =
      identity::FindTcpSocketInode({raddr, c.rport}, {AddressText(c.family, c.laddr), c.lport});
  if (!inode) return std::nullopt;
  if (auto pid = identity::FindPidBySocketInode(*inode)) return pid_only(*pid);
  return std::nullopt;
}

void TapEngine::OnOpen(const dbw_tap_conn& c) {
  if (auto old = conns_.find(c.sk); old != conns_.end()) {
    if (old->second.ino == c.ino) {
      // The same connection announced again (the kernel's table evicted it): its positions
      // start over, so the streams resynchronise; the session goes on.
      if (old->second.session) old->second.session->Rebase();
      if (old->second.witness) old->second.witness->Rebase();
      return;
    }
    // The struct sock was freed and now carries another connection.
    End(&old->second, c.task.ts_ns, "connection closed");
    conns_.erase(old);
  }
  Conn conn;
  conn.ino = c.ino;
  conn.role = c.role;
  conn.owner_tgid = c.task.tgid;
  SessionIdentity id;
  id.session_id = RandomHexId(8);
  std::string raddr = c.family == AF_UNIX ? "" : AddressText(c.family, c.raddr);
  if (c.role == DBW_ROLE_SERVER) {
    const TargetState* t = c.target < targets_.size() ? &targets_[c.target] : nullptr;
    std::optional<Connect> client = ClientOf(c, raddr);
    if (client && client->tgid == self_) {
      // The relay's own upstream connection: the relay reports its sessions, and the witness
      // compares the relay's account with what this side counts.
      metrics_.relay_connections->Add();
      if (deps_.witness != nullptr) {
        conn.witness = std::make_unique<ServerWitness>(
            c.family == AF_UNIX ? witness::UnixKey(c.peer_ino) : witness::TcpKey(raddr, c.rport));
      } else {
        CountFailure(program_->Mute(c.sk, c.ino));
      }
      conns_[c.sk] = std::move(conn);
      return;
    }
    if (t) {
      id.target = t->options.name;
      id.env = t->options.env;
      id.relay_only = t->options.relay_only;
    }
    id.server_pid = static_cast<int32_t>(c.task.tgid);
    if (c.family == AF_UNIX) {
      id.transport = "unix";
      id.client_addr = std::string("unix:") + c.path;
    } else {
      id.transport = "tcp";
      id.client_addr = Endpoint(raddr, c.rport);
    }
    if (client) id.client = ProcessOf(*client);
  } else {
    // Client side. A connection to a server this tap watches is seen there, once.
    for (const auto& t : targets_) {
      if (t.postmaster > 0 && c.rport == t.options.upstream_port && IsLocalAddress(raddr)) {
        CountFailure(program_->Mute(c.sk, c.ino));
        conns_[c.sk] = std::move(conn);
        return;
      }
    }
    for (const auto& t : targets_) {
      if (t.options.upstream_host == raddr && t.options.upstream_port == c.rport) {
        id.target = t.options.name;
        id.env = t.options.env;
      }
    }
    id.transport = "tcp";
    id.client_addr = Endpoint(AddressText(c.family, c.laddr), c.lport);
    // Nobody else claims a client-side connect: taken here, and its kernel view used if the
    // process was gone already.
    auto k = TakeConnect(&tcp_connects_, id.client_addr, c.task.ts_ns);
    if (k && k->tgid == c.task.tgid && k->gone)
      id.client = std::move(k->gone);
    else
      id.client = Process(c.task.tgid, &c.task);
  }
  SessionContext ctx{deps_.sink, deps_.policy, &analyzer_, &metrics_};
  conn.session = std::make_unique<PassiveSession>(ctx, std::move(id), kMaxBody);
  conns_[c.sk] = std::move(conn);
}

void TapEngine::OnData(const dbw_tap_data& d, std::span<const std::byte> payload) {
  metrics_.chunks->Add();
  metrics_.bytes->Add(payload.size());
  auto it = conns_.find(d.sk);
  if (it == conns_.end()) {
    metrics_.orphan_records->Add();
    return;
  }
  bool frontend =
      it->second.role == DBW_ROLE_SERVER ? d.dir == DBW_DIR_INGRESS : d.dir == DBW_DIR_EGRESS;
  if (ServerWitness* w = it->second.witness.get()) {
    w->Add(frontend, d.pos + d.offset, payload);
    return;
  }
  PassiveSession* s = it->second.session.get();
  if (!s) return;
  s->Add(frontend, d.pos + d.offset, payload, d.task.ts_ns);
}

void TapEngine::End(Conn* conn, uint64_t now_ns, const std::string& reason, bool ended) {
  if (conn->session) conn->session->Close(now_ns, reason);
  if (conn->witness)
    deps_.witness->ServerClosed(conn->witness->key(), conn->witness->Account(ended));
}

void TapEngine::OnClose(const dbw_tap_close& c) {
  auto it = conns_.find(c.sk);
  if (it == conns_.end()) return;
  End(&it->second, c.task.ts_ns, "connection closed");
  conns_.erase(it);
}

void TapEngine::OnExit(const dbw_tap_exit& e) {
  processes_.erase(e.tgid);
  // A process that exits closes its sockets without close(): its sessions end here.
  for (auto it = conns_.begin(); it != conns_.end();) {
    if (it->second.owner_tgid == e.tgid) {
      End(&it->second, e.ts_ns, "process exited");
      it = conns_.erase(it);
    } else {
      ++it;
    }
  }
}

void TapEngine::ReportLosses() {
  std::array<uint64_t, DBW_LOSS_MAX> now = program_->Losses();
  std::string detail;
  uint64_t lost_records = 0;
  for (int i = 0; i < DBW_LOSS_MAX; ++i) {
    if (now[i] <= losses_seen_[i]) continue;
    uint64_t delta = now[i] - losses_seen_[i];
    metrics_.losses[i]->Add(delta);
    detail += std::string(detail.empty() ? "" : ", ") + LossCause(i) + "=" + std::to_string(delta);
    // Truncation is by design (capture_bytes): in the detail, not in the count of losses.
    if (i == DBW_LOSS_RINGBUF_DATA || i == DBW_LOSS_RINGBUF_CONTROL ||
        i == DBW_LOSS_READ_FAULTS)
      lost_records += delta;
  }
  losses_seen_ = now;
  if (detail.empty()) return;
  audit::Event e;
  e.kind = audit::EventKind::kTapLoss;
  e.source = "tap";
  e.ts_us = audit::NowMicros();
  e.count = lost_records;
  e.detail = detail;
  deps_.sink->Submit(std::move(e));
}

void TapEngine::ReportProgramStats() {
  for (const auto& p : program_->Stats()) {
    auto it = programs_seen_.find(p.name);
    if (it == programs_seen_.end()) {
      std::string label = "program=\"" + p.name + "\"";
      MetricsRegistry& reg = *deps_.metrics;
      ProgramSeen seen{
          reg.GetScaledCounter("dbwarden_tap_bpf_run_time_seconds_total",
                               "Time the tap's BPF programs ran, in seconds (counted while "
                               "kernel.bpf_stats_enabled is 1)",
                               1e-9, label),
          reg.GetCounter("dbwarden_tap_bpf_runs_total",
                         "Runs of the tap's BPF programs (counted while kernel.bpf_stats_enabled "
                         "is 1)",
                         label)};
      it = programs_seen_.emplace(p.name, seen).first;
    }
    ProgramSeen& s = it->second;
    if (p.run_time_ns > s.seen_ns) s.run_time_ns->Add(p.run_time_ns - s.seen_ns);
    if (p.runs > s.seen_runs) s.runs->Add(p.runs - s.seen_runs);
    s.seen_ns = p.run_time_ns;
    s.seen_runs = p.runs;
  }
}

void TapEngine::Tick() {
  ReportLosses();
  if (deps_.witness != nullptr) deps_.witness->Tick();
  ReportProgramStats();
  auto now = std::chrono::steady_clock::now();
  for (auto& t : targets_)
    if (now >= t.next_discovery) Discover(&t);
  if (now >= next_sweep_) {
    SweepProcesses();
    // Connects nobody claimed (remote servers, failed non-blocking connects): a later
    // connection reusing the port must not inherit them.
    ForgetOldConnects(MonotonicNs());
    next_sweep_ = now + std::chrono::seconds(10);
  }
}

void TapEngine::CloseAll(const std::string& reason) {
  uint64_t now = MonotonicNs();
  for (auto& [sk, conn] : conns_) End(&conn, now, reason, false);
  conns_.clear();
  if (program_) ReportLosses();
}

StatusOr<std::unique_ptr<Tap>> Tap::Start(const TapOptions& options, TapDeps deps) {
  std::unique_ptr<Tap> tap(new Tap());
  tap->engine_ = std::make_unique<TapEngine>(options, deps);
  DBW_RETURN_IF_ERROR(tap->engine_->Start());
  tap->thread_ = std::thread([t = tap.get()] { t->Run(); });
  return tap;
}

void Tap::Run() {
  auto next_tick = std::chrono::steady_clock::now();
  while (!stop_.load(std::memory_order_relaxed)) {
    // The kernel wakes this thread only when an eighth of the ring is full; otherwise records
    // wait at most this long.
    engine_->Poll(kPollMs);
    auto now = std::chrono::steady_clock::now();
    if (now >= next_tick) {
      engine_->Tick();
      next_tick = now + std::chrono::seconds(1);
    }
  }
  engine_->Poll(0);  // what is already in the ring
  engine_->CloseAll("agent stopping");
}

Tap::~Tap() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

}  // namespace dbw::tap
