// Router: the routing programs' lifetime, their maps, refusal records and the relay's lookups.
#include "userspace/route/router.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>
#include <utility>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "route.h"
#include "route.skel.h"
#include "route_unix.skel.h"
#include "userspace/common/logging.h"
#include "userspace/identity/process_info.h"
#include "userspace/route/addresses.h"
#include "userspace/tap/bpf_program.h"
#include "userspace/tap/discovery.h"

namespace dbw::route {
namespace {

constexpr int kPollMs = 200;
// A routed connection the relay has not accepted by then is not one it will accept.
constexpr uint64_t kRouteRecordTtlNs = 120ull * 1000 * 1000 * 1000;
constexpr std::array<const char*, 3> kCgroupPrograms = {"route_connect4", "route_connect6",
                                                        "route_sockops"};
// BPF_CGROUP_UNIX_CONNECT (Linux 6.7), which Debian 12's headers and libbpf 1.1 predate.
constexpr auto kUnixConnectAttach = static_cast<bpf_attach_type>(49);

Status Errno(const std::string& what, int err) {
  return Internal("routing: " + what + ": " + std::strerror(err < 0 ? -err : err));
}

// Where a recorded connect() was going: "127.0.0.1:5432", "[::1]:5432", "unix:/path".
std::string OriginText(const dbw_route_conn& c) {
  if (c.family == AF_UNIX) return "unix:" + std::string(c.path, strnlen(c.path, sizeof(c.path)));
  return AddressText(c.family, c.addr, ntohs(c.port));
}

// The LPM keys of a target's protected addresses, as the host has them now.
std::vector<dbw_route_key> Destinations(const RouteTarget& t) {
  std::vector<std::string> listening;
  bool local = t.upstream_host.empty() || tap::IsLocalAddress(t.upstream_host);
  if (local) listening = tap::ListeningAddresses(t.upstream_port);
  std::vector<dbw_route_key> out;
  for (const Prefix& p :
       ProtectedPrefixes(t.upstream_host, local, listening, tap::LocalAddresses())) {
    dbw_route_key k{};
    k.prefixlen = 32 + p.bits;
    k.family = p.family;
    k.port = htons(t.upstream_port);
    std::memcpy(k.addr, p.addr.data(), p.addr.size());
    out.push_back(k);
  }
  return out;
}

// The kernel's dev_t (major << 20 | minor) of a stat() st_dev.
uint32_t KernelDev(dev_t dev) {
  return (static_cast<uint32_t>(major(dev)) << 20) | static_cast<uint32_t>(minor(dev));
}

bool ExeKey(const std::string& path, dbw_route_exe* key) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return false;
  *key = {};
  key->dev = KernelDev(st.st_dev);
  key->ino = st.st_ino;
  return true;
}

// Directories below `dir` (any depth, up to a bound) whose name matches one of `units`.
void FindUnitCgroups(const std::string& dir, const std::vector<policy::Glob>& units, int depth,
                     std::vector<std::string>* out) {
  if (depth > 8) return;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return;
  while (dirent* e = ::readdir(d)) {
    if (e->d_type != DT_DIR || e->d_name[0] == '.') continue;
    std::string path = dir + "/" + e->d_name;
    bool matched = false;
    for (const policy::Glob& g : units) matched = matched || g.Match(e->d_name);
    if (matched)
      out->push_back(path);  // and below, through the ancestor check in the kernel
    else
      FindUnitCgroups(path, units, depth + 1, out);
  }
  ::closedir(d);
}

}  // namespace

StatusOr<std::unique_ptr<Router>> Router::Start(RouterOptions options, audit::EventSink* sink,
                                                MetricsRegistry* metrics) {
  std::unique_ptr<Router> r(new Router());
  r->options_ = std::move(options);
  r->sink_ = sink;
  auto connects = [metrics](const char* result) {
    return metrics->GetCounter("dbwarden_routing_connects_total",
                               "connect()s to protected servers by outcome",
                               std::string("result=\"") + result + "\"");
  };
  r->m_routed_ = connects("routed");
  r->m_refused_ = connects("refused");
  r->m_exempt_ = connects("exempt");
  r->m_lost_ = metrics->GetCounter(
      "dbwarden_routing_records_lost_total",
      "Routing records the kernel could not keep (ring buffer full, routed-connection table)");
  DBW_RETURN_IF_ERROR(r->Load());
  DBW_RETURN_IF_ERROR(r->Attach());
  r->thread_ = std::thread([p = r.get()] { p->Run(); });
  return r;
}

Status Router::Load() {
  DBW_RETURN_IF_ERROR(tap::EnsureKernelMounts());
  skel_ = route_bpf__open_and_load();
  if (!skel_) return Errno("loading the BPF programs (verifier log above)", errno);
  ring_ = ring_buffer__new(bpf_map__fd(skel_->maps.refusals), &Router::OnRefusal, this, nullptr);
  if (!ring_) return Errno("opening the ring buffer", errno);
  LoadUnix();

  auto put = [](bpf_map* map, const void* key, const void* value) -> Status {
    if (bpf_map__update_elem(map, key, bpf_map__key_size(map), value, bpf_map__value_size(map),
                             BPF_ANY) != 0)
      return Errno(std::string("map ") + bpf_map__name(map), errno);
    return Status::Ok();
  };
  auto self = static_cast<uint32_t>(::getpid());
  uint8_t agent = DBW_EXEMPT_AGENT;
  DBW_RETURN_IF_ERROR(put(skel_->maps.exempt_tgids, &self, &agent));
  uint8_t one = 1;
  for (uint32_t uid : options_.exempt.uids)
    DBW_RETURN_IF_ERROR(put(skel_->maps.exempt_uids, &uid, &one));
  for (const std::string& path : options_.exempt.exes) {
    dbw_route_exe key{};
    if (!ExeKey(path, &key))
      return InvalidArgument("routing: exempt exe " + path + ": " + std::strerror(errno));
    DBW_RETURN_IF_ERROR(put(skel_->maps.exempt_exes, &key, &one));
  }
  const std::string root = identity::Cgroup2MountPoint();
  if (root.empty()) return FailedPrecondition("routing: no cgroup v2 hierarchy is mounted");
  for (const std::string& c : options_.exempt.cgroups) {
    uint64_t id = identity::CgroupIdOfDir(root + c);
    if (id == 0)
      return InvalidArgument("routing: exempt cgroup " + c + " is not a cgroup v2 directory");
    DBW_RETURN_IF_ERROR(put(skel_->maps.exempt_cgroups, &id, &one));
  }
  for (uint32_t i = 0; i < options_.targets.size(); ++i) {
    dbw_route_dest d{};
    DBW_RETURN_IF_ERROR(RelayDestination(options_.targets[i], i, &d));
  }
  return Status::Ok();
}

void Router::LoadUnix() {
  unix_skel_ = route_unix_bpf__open();
  if (!unix_skel_) return;
  // One state for both objects: the unix program decides from route's maps.
  const std::array<std::pair<bpf_map*, bpf_map*>, 6> shared = {
      {{unix_skel_->maps.exempt_tgids, skel_->maps.exempt_tgids},
       {unix_skel_->maps.exempt_cgroups, skel_->maps.exempt_cgroups},
       {unix_skel_->maps.exempt_uids, skel_->maps.exempt_uids},
       {unix_skel_->maps.exempt_exes, skel_->maps.exempt_exes},
       {unix_skel_->maps.counters, skel_->maps.counters},
       {unix_skel_->maps.refusals, skel_->maps.refusals}}};
  int err = 0;
  for (const auto& [mine, theirs] : shared)
    if (err == 0) err = bpf_map__reuse_fd(mine, bpf_map__fd(theirs));
  if (err == 0)
    err = bpf_program__set_expected_attach_type(unix_skel_->progs.route_connect_unix,
                                                kUnixConnectAttach);
  // A kernel without the hook refuses the load: expected there, so libbpf's log stays quiet.
  libbpf_print_fn_t previous = libbpf_set_print(nullptr);
  if (err == 0) err = route_unix_bpf__load(unix_skel_);
  libbpf_set_print(previous);
  if (err != 0) {
    DBW_LOG(kWarning) << "routing: this kernel cannot route unix-socket connections ("
                      << std::strerror(err < 0 ? -err : err)
                      << "; cgroup/connect_unix needs Linux 6.7): clients of the servers' unix "
                         "sockets are not routed; the tap reports them as bypasses";
    route_unix_bpf__destroy(unix_skel_);
    unix_skel_ = nullptr;
  }
}

Status Router::Attach() {
  // The process trackers first: a server that forks after its discovery is still followed.
  bpf_program* prog = nullptr;
  bpf_object__for_each_program(prog, skel_->obj) {
    std::string name = bpf_program__name(prog);
    if (std::find(kCgroupPrograms.begin(), kCgroupPrograms.end(), name) != kCgroupPrograms.end())
      continue;
    bpf_link* link = bpf_program__attach(prog);
    if (!link) return Errno("attaching " + name, errno);
    links_.push_back(link);
  }
  ExemptRunningExes();
  Rescan();  // servers, units, destinations: filled before any connect() is judged
  const std::string root = identity::Cgroup2MountPoint();
  std::vector<std::string> cgroups = options_.cgroups;
  if (cgroups.empty()) cgroups.emplace_back();
  for (const std::string& c : cgroups) {
    std::string dir = root + c;
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return Errno("opening cgroup " + dir, errno);
    std::vector<bpf_program*> programs;
    for (const char* name : kCgroupPrograms)
      programs.push_back(bpf_object__find_program_by_name(skel_->obj, name));
    if (unix_skel_) programs.push_back(unix_skel_->progs.route_connect_unix);
    for (bpf_program* p : programs) {
      const char* name = bpf_program__name(p);
      bpf_link* link = bpf_program__attach_cgroup(p, fd);
      if (!link) {
        int err = errno;
        ::close(fd);
        return Errno(std::string("attaching ") + name + " to " + dir, err);
      }
      links_.push_back(link);
    }
    ::close(fd);
  }
  // An earlier run's pinned links (on_agent_exit: closed) go once ours are in place: no moment
  // without the programs. Ours are pinned in their place when this run keeps them closed too.
  std::error_code ec;
  std::vector<std::string> old;
  if (std::filesystem::is_directory(options_.pin_dir, ec)) {
    for (const auto& e : std::filesystem::directory_iterator(options_.pin_dir, ec))
      old.emplace_back(e.path().string());
  }
  for (const std::string& p : old) ::unlink(p.c_str());
  if (!old.empty()) {
    DBW_LOG(kInfo) << "routing: replaced " << old.size() << " links pinned by an earlier run in "
                   << options_.pin_dir;
  }
  if (options_.on_agent_exit == OnAgentExit::kOpen) {
    ::rmdir(options_.pin_dir.c_str());
    return Status::Ok();
  }
  std::filesystem::create_directories(options_.pin_dir, ec);
  if (ec) return Errno("creating " + options_.pin_dir, ec.value());
  for (size_t i = 0; i < links_.size(); ++i) {
    std::string path = options_.pin_dir + "/link" + std::to_string(i);
    if (int err = bpf_link__pin(links_[i], path.c_str()); err != 0) {
      size_t ignored = 0;
      (void)ReleasePinned(options_.pin_dir, &ignored);  // all or nothing
      return Errno("pinning a link at " + path, err);
    }
  }
  return Status::Ok();
}

void Router::ExemptRunningExes() {
  // Processes that run an exempt executable already (the exec tracepoint, attached before
  // this, sees the later ones).
  std::set<std::pair<uint32_t, uint64_t>> exes;
  for (const std::string& path : options_.exempt.exes) {
    dbw_route_exe key{};
    if (ExeKey(path, &key)) exes.insert({key.dev, key.ino});
  }
  if (exes.empty()) return;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    dbw_route_exe key{};
    if (!ExeKey(entry.path().string() + "/exe", &key) || !exes.count({key.dev, key.ino})) continue;
    auto tgid = static_cast<uint32_t>(std::stoul(name));
    uint8_t bits = DBW_EXEMPT_EXE;
    (void)bpf_map__update_elem(skel_->maps.exempt_tgids, &tgid, sizeof(tgid), &bits, sizeof(bits),
                               BPF_NOEXIST);
  }
}

Status Router::ReleasePinned(const std::string& pin_dir, size_t* released) {
  *released = 0;
  std::error_code ec;
  if (!std::filesystem::is_directory(pin_dir, ec)) return Status::Ok();
  for (const auto& e : std::filesystem::directory_iterator(pin_dir, ec)) {
    if (::unlink(e.path().c_str()) != 0) return Errno("removing " + e.path().string(), errno);
    ++*released;
  }
  ::rmdir(pin_dir.c_str());
  return Status::Ok();
}

void Router::Rescan() {
  auto put = [](bpf_map* map, const void* key, const void* value) {
    (void)bpf_map__update_elem(map, key, bpf_map__key_size(map), value, bpf_map__value_size(map),
                               BPF_ANY);
  };
  // The protected servers' processes.
  for (const RouteTarget& t : options_.targets) {
    std::optional<tap::ServerProcesses> s = t.upstream_unix.empty()
                                                ? tap::FindServer(t.upstream_host, t.upstream_port)
                                                : tap::FindServerByUnixPath(t.upstream_unix);
    if (!s || s->postmaster <= 0) continue;
    auto pm = static_cast<uint32_t>(s->postmaster);
    if (std::find(server_tgids_.begin(), server_tgids_.end(), pm) != server_tgids_.end()) continue;
    server_tgids_.push_back(pm);
    uint8_t bits = DBW_EXEMPT_SERVER;
    put(skel_->maps.exempt_tgids, &pm, &bits);
    for (int32_t d : s->descendants) {
      auto tgid = static_cast<uint32_t>(d);
      put(skel_->maps.exempt_tgids, &tgid, &bits);
    }
    DBW_LOG(kInfo) << "routing: target \"" << t.name << "\": server " << pm << " and "
                   << s->descendants.size() << " processes below it connect directly";
  }
  // Exempt units: cgroups come and go with them.
  if (!options_.exempt.units.empty()) {
    std::vector<std::string> dirs;
    const std::string root = identity::Cgroup2MountPoint();
    FindUnitCgroups(root, options_.exempt.units, 0, &dirs);
    std::vector<uint64_t> ids;
    for (const std::string& d : dirs)
      if (uint64_t id = identity::CgroupIdOfDir(d)) ids.push_back(id);
    uint8_t one = 1;
    for (uint64_t id : ids)
      if (std::find(exempt_cgroups_.begin(), exempt_cgroups_.end(), id) == exempt_cgroups_.end())
        put(skel_->maps.exempt_cgroups, &id, &one);
    for (uint64_t id : exempt_cgroups_)
      if (std::find(ids.begin(), ids.end(), id) == ids.end())
        (void)bpf_map__delete_elem(skel_->maps.exempt_cgroups, &id, sizeof(id), 0);
    exempt_cgroups_ = std::move(ids);
  }
  // Destinations: what the servers listen on now. Added before stale ones are removed.
  std::vector<std::vector<uint8_t>> keys;
  for (uint32_t i = 0; i < options_.targets.size(); ++i) {
    dbw_route_dest d{};
    if (!RelayDestination(options_.targets[i], i, &d).ok()) continue;  // checked at Load
    for (const dbw_route_key& k : Destinations(options_.targets[i])) {
      put(skel_->maps.dests, &k, &d);
      const auto* b = reinterpret_cast<const uint8_t*>(&k);
      keys.emplace_back(b, b + sizeof(k));
    }
  }
  for (const auto& k : dest_keys_)
    if (std::find(keys.begin(), keys.end(), k) == keys.end())
      (void)bpf_map__delete_elem(skel_->maps.dests, k.data(), k.size(), 0);
  dest_keys_ = std::move(keys);
  if (unix_skel_) RescanUnix();
}

void Router::RescanUnix() {
  std::vector<std::string> keys;
  for (uint32_t i = 0; i < options_.targets.size(); ++i) {
    const RouteTarget& t = options_.targets[i];
    dbw_route_unix_dest d{};
    d.target = i;
    d.action = t.action == Action::kRefuse ? DBW_ROUTE_REFUSE : DBW_ROUTE_ENFORCE;
    if (t.action == Action::kEnforce && !t.relay_unix.empty() &&
        t.relay_unix.size() < sizeof(d.relay_path)) {
      std::memcpy(d.relay_path, t.relay_unix.data(), t.relay_unix.size());
      d.relay_len = static_cast<uint32_t>(t.relay_unix.size());
    }
    // The server's sockets as it bound them, and under their directories' real paths
    // (/var/run/postgresql and /run/postgresql are one directory on Debian).
    std::vector<std::string> paths;
    if (!t.upstream_unix.empty()) paths.push_back(t.upstream_unix);
    std::optional<tap::ServerProcesses> s = t.upstream_unix.empty()
                                                ? tap::FindServer(t.upstream_host, t.upstream_port)
                                                : tap::FindServerByUnixPath(t.upstream_unix);
    if (s) paths.insert(paths.end(), s->unix_paths.begin(), s->unix_paths.end());
    for (size_t n = paths.size(), j = 0; j < n; ++j) {
      std::error_code ec;
      auto real = std::filesystem::canonical(std::filesystem::path(paths[j]).parent_path(), ec);
      if (!ec) paths.push_back((real / std::filesystem::path(paths[j]).filename()).string());
    }
    for (const std::string& p : paths) {
      struct stat st {};
      if (::stat(p.c_str(), &st) == 0 && (st.st_mode & S_IWOTH) != 0 &&
          std::find(warned_.begin(), warned_.end(), p) == warned_.end()) {
        warned_.push_back(p);
        DBW_LOG(kWarning) << "routing: target \"" << t.name << "\": the server's socket " << p
                          << " is open to every local user: clients that name it are "
                          << (t.action == Action::kRefuse ? "refused" : "routed")
                          << ", but another name for it (a symlink, a hard link, a relative "
                             "path) reaches the server directly; restrict it with "
                             "unix_socket_permissions and unix_socket_group "
                             "(docs/routing.md#unix-sockets)";
      }
      dbw_route_unix_key k{};
      if (p.empty() || p.size() >= sizeof(k.path) || p == t.relay_unix) continue;
      std::memcpy(k.path, p.data(), p.size());
      (void)bpf_map__update_elem(unix_skel_->maps.unix_dests, &k, sizeof(k), &d, sizeof(d),
                                 BPF_ANY);
      keys.emplace_back(k.path, sizeof(k.path));
    }
  }
  for (const std::string& k : unix_dest_keys_)
    if (std::find(keys.begin(), keys.end(), k) == keys.end())
      (void)bpf_map__delete_elem(unix_skel_->maps.unix_dests, k.data(), k.size(), 0);
  unix_dest_keys_ = std::move(keys);
}

std::optional<identity::RouteOrigin> Router::Take(const identity::Endpoint& peer,
                                                  int32_t unix_pid) {
  dbw_route_conn c{};
  if (unix_pid > 0) {
    if (!unix_skel_) return std::nullopt;
    auto tgid = static_cast<uint32_t>(unix_pid);
    if (bpf_map_lookup_and_delete_elem(bpf_map__fd(unix_skel_->maps.routed_unix), &tgid, &c) != 0)
      return std::nullopt;
  } else {
    dbw_route_peer key{};
    Address addr;
    uint16_t family = 0;
    if (!ParseAddress(peer.address, &family, &addr)) return std::nullopt;
    key.family = family;
    key.port = peer.port;
    std::memcpy(key.addr, addr.data(), addr.size());
    if (bpf_map_lookup_and_delete_elem(bpf_map__fd(skel_->maps.routed), &key, &c) != 0)
      return std::nullopt;
  }
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  uint64_t now_ns = static_cast<uint64_t>(now.tv_sec) * 1000000000ull + now.tv_nsec;
  if (now_ns - c.ts_ns > kRouteRecordTtlNs) return std::nullopt;  // a port used again since
  identity::RouteOrigin out;
  out.original = OriginText(c);
  out.target = c.target < options_.targets.size() ? options_.targets[c.target].name : "";
  out.tgid = c.tgid;
  out.uid = c.uid;
  return out;
}

int Router::OnRefusal(void* ctx, void* data, size_t size) {
  static_cast<Router*>(ctx)->Report(data, size);
  return 0;
}

void Router::Report(const void* data, size_t size) {
  if (size < sizeof(dbw_route_conn)) return;
  dbw_route_conn c{};
  std::memcpy(&c, data, sizeof(c));
  const RouteTarget* t = c.target < options_.targets.size() ? &options_.targets[c.target] : nullptr;
  auto info = std::make_shared<audit::SessionInfo>();
  if (t) {
    info->target = t->name;
    info->env = t->env;
  }
  identity::ProcessInfo p;
  // The process as it is now, if it still is the one that connected (same uid and name: its
  // pid may have been given to another since).
  const std::string comm(c.comm, strnlen(c.comm, sizeof(c.comm)));
  if (!identity::ReadProcessTree(static_cast<int32_t>(c.tgid), &p) || p.uid != c.uid ||
      p.comm != comm) {
    p = {};
    p.pid = static_cast<int32_t>(c.tgid);
    p.uid = c.uid;
    p.gid = c.gid;
  }
  if (p.comm.empty()) p.comm = comm;
  if (p.cgroup.empty()) p.cgroup = identity::CgroupPathById(c.cgroup_id);
  info->process = std::move(p);
  audit::Event e;
  e.kind = audit::EventKind::kConnectRefused;
  e.source = "route";
  e.session = std::move(info);
  std::string dest = OriginText(c);
  e.detail = "connect() to " + dest + " refused: target \"" + (t ? t->name : "?") + "\" is " +
             (c.action == DBW_ROUTE_REFUSE
                  ? "relay_only: refuse"
                  : "relay_only: enforce, and the relay has no listener this socket's address "
                    "family reaches");
  e.error_sqlstate = "42501";
  e.error_message = "EPERM";
  sink_->Submit(std::move(e));
}

void Router::PublishCounters() {
  int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) return;
  std::vector<uint64_t> values(static_cast<size_t>(cpus));
  std::array<uint64_t, DBW_ROUTE_COUNTER_MAX> totals{};
  for (uint32_t i = 0; i < DBW_ROUTE_COUNTER_MAX; ++i) {
    if (bpf_map__lookup_elem(skel_->maps.counters, &i, sizeof(i), values.data(),
                             values.size() * sizeof(uint64_t), 0) != 0)
      continue;
    for (uint64_t v : values) totals[i] += v;
  }
  uint64_t lost = totals[DBW_ROUTE_RINGBUF_LOST] + totals[DBW_ROUTE_PENDING_LOST];
  const std::array<uint64_t, 4> now = {totals[DBW_ROUTE_ROUTED], totals[DBW_ROUTE_REFUSED],
                                       totals[DBW_ROUTE_EXEMPT], lost};
  const std::array<Counter*, 4> out = {m_routed_, m_refused_, m_exempt_, m_lost_};
  for (int i = 0; i < 4; ++i) {
    if (now[i] > last_[i]) out[i]->Add(now[i] - last_[i]);
    last_[i] = now[i];
  }
  if (lost > last_lost_reported_) {
    audit::Event e;
    e.kind = audit::EventKind::kAuditLoss;
    e.source = "route";
    e.count = lost - last_lost_reported_;
    e.detail =
        "routing: refusal records dropped (ring buffer full) or routed connections whose "
        "origin the relay could not be told";
    sink_->Submit(std::move(e));
    last_lost_reported_ = lost;
  }
}

void Router::Run() {
  auto next_scan = std::chrono::steady_clock::now() + options_.rescan;
  while (!stop_.load()) {
    int n = ring_buffer__poll(ring_, kPollMs);
    if (n < 0 && n != -EINTR) {
      DBW_LOG(kError) << "routing: reading refusals: " << std::strerror(-n);
      std::this_thread::sleep_for(std::chrono::milliseconds(kPollMs));
    }
    PublishCounters();
    if (std::chrono::steady_clock::now() >= next_scan) {
      Rescan();
      next_scan = std::chrono::steady_clock::now() + options_.rescan;
    }
  }
}

Router::~Router() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
  if (ring_) {
    ring_buffer__consume(ring_);  // refusals not yet reported
    ring_buffer__free(ring_);
  }
  // Destroying a link detaches it, unless it is pinned (closed): then the pin keeps it.
  for (bpf_link* l : links_) bpf_link__destroy(l);
  if (unix_skel_) route_unix_bpf__destroy(unix_skel_);
  if (skel_) route_bpf__destroy(skel_);
}

}  // namespace dbw::route
