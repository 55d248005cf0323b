// BpfProgram: skeleton lifetime, settings maps, ring buffer polling and loss counters.
#include "userspace/tap/bpf_program.h"

#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "tap.skel.h"
#include "userspace/common/logging.h"

namespace dbw::tap {
namespace {

Status Errno(const std::string& what, int err) {
  return Internal(what + ": " + std::strerror(err < 0 ? -err : err));
}

bool MountedAs(const char* path, long magic) {
  struct statfs fs {};
  return statfs(path, &fs) == 0 && static_cast<long>(fs.f_type) == magic;
}

Status MountIfMissing(const char* path, const char* type, long magic) {
  if (MountedAs(path, magic)) return Status::Ok();
  ::mkdir(path, 0700);
  if (::mount(type, path, type, 0, nullptr) != 0 && !MountedAs(path, magic))
    return Errno(std::string("mount ") + type + " at " + path, errno);
  DBW_LOG(kInfo) << "tap: mounted " << type << " at " << path;
  return Status::Ok();
}

uint64_t RoundUpPow2(uint64_t v) {
  uint64_t p = 4096;
  while (p < v) p <<= 1;
  return p;
}

int LibbpfPrint(enum libbpf_print_level level, const char* format, va_list args) {
  if (level == LIBBPF_DEBUG) return 0;
  char line[1024];
  int n = vsnprintf(line, sizeof(line), format, args);
  std::string text(line, n > 0 ? std::min<size_t>(n, sizeof(line) - 1) : 0);
  while (!text.empty() && text.back() == '\n') text.pop_back();
  if (!text.empty()) {
    DBW_LOG(kWarning) << "libbpf: " << text;
  }
  return 0;
}

Status Put(bpf_map* map, const void* key, const void* value) {
  if (bpf_map__update_elem(map, key, bpf_map__key_size(map), value, bpf_map__value_size(map),
                           BPF_ANY) != 0)
    return Errno(std::string("bpf map ") + bpf_map__name(map), errno);
  return Status::Ok();
}

}  // namespace

Status EnsureKernelMounts() {
  DBW_RETURN_IF_ERROR(MountIfMissing("/sys/kernel/tracing", "tracefs", TRACEFS_MAGIC));
  return MountIfMissing("/sys/fs/bpf", "bpf", BPF_FS_MAGIC);
}

StatusOr<std::unique_ptr<BpfProgram>> BpfProgram::Load(const ProgramOptions& options,
                                                       RecordHandler handler) {
  DBW_RETURN_IF_ERROR(EnsureKernelMounts());
  libbpf_set_print(LibbpfPrint);
  std::unique_ptr<BpfProgram> p(new BpfProgram());
  p->handler_ = std::move(handler);
  p->skel_ = tap_bpf__open();
  if (!p->skel_) return Errno("tap: opening the BPF object", errno);
  p->skel_->rodata->self_tgid = options.self_tgid;
  p->skel_->rodata->capture_bytes = options.capture_bytes;
  p->ring_bytes_ = RoundUpPow2(options.ring_buffer_bytes);
  if (int err = bpf_map__set_max_entries(p->skel_->maps.events, p->ring_bytes_); err != 0)
    return Errno("tap: sizing the ring buffer", err);
  // An eighth of the ring wakes the reader at once; less waits for its next poll (kPollMs).
  p->skel_->rodata->wakeup_bytes = p->ring_bytes_ / 8;
  if (int err = tap_bpf__load(p->skel_); err != 0)
    return Errno("tap: loading the BPF programs (verifier log above)", err);
  p->ring_ =
      ring_buffer__new(bpf_map__fd(p->skel_->maps.events), &BpfProgram::OnRecord, p.get(), nullptr);
  if (!p->ring_) return Errno("tap: opening the ring buffer", errno);
  return p;
}

Status BpfProgram::Attach() {
  if (int err = tap_bpf__attach(skel_); err != 0)
    return Errno("tap: attaching the BPF programs", err);
  return Status::Ok();
}

Status BpfProgram::BumpGeneration() {
  uint32_t zero = 0;
  uint32_t gen = 0;
  (void)bpf_map__lookup_elem(skel_->maps.generation, &zero, sizeof(zero), &gen, sizeof(gen), 0);
  ++gen;
  return Put(skel_->maps.generation, &zero, &gen);
}

void BpfProgram::ForgetExit(uint32_t tgid) {
  (void)bpf_map__delete_elem(skel_->maps.exit_notify, &tgid, sizeof(tgid), 0);
}

BpfProgram::~BpfProgram() {
  if (ring_) ring_buffer__free(ring_);
  if (skel_) tap_bpf__destroy(skel_);
}

int BpfProgram::OnRecord(void* ctx, void* data, size_t size) {
  auto* self = static_cast<BpfProgram*>(ctx);
  self->handler_(std::span<const std::byte>(static_cast<const std::byte*>(data), size));
  return 0;
}

int BpfProgram::Poll(int timeout_ms) {
  // Records submitted without a wakeup do not make epoll fire: consume whatever is there after
  // the wait, woken or not.
  int woken = ring_buffer__poll(ring_, timeout_ms);
  if (woken < 0 && woken != -EINTR) return woken;
  int more = ring_buffer__consume(ring_);
  return more < 0 ? more : (woken > 0 ? woken : 0) + more;
}

Status BpfProgram::AddClientPort(uint16_t port) {
  uint8_t one = 1;
  return Put(skel_->maps.ports, &port, &one);
}

Status BpfProgram::AddServerPort(uint16_t port) {
  uint8_t one = 1;
  return Put(skel_->maps.server_ports, &port, &one);
}

Status BpfProgram::AddUnixPath(const std::string& path) {
  char key[DBW_TAP_UNIX_PATH] = {};
  if (path.empty() || path.size() >= sizeof(key))
    return InvalidArgument("tap: unix socket path too long: " + path);
  std::memcpy(key, path.data(), path.size());
  uint8_t one = 1;
  return Put(skel_->maps.unix_paths, key, &one);
}

Status BpfProgram::Watch(uint32_t tgid, uint32_t target) {
  dbw_tap_watch w{target};
  return Put(skel_->maps.watched, &tgid, &w);
}

Status BpfProgram::NotifyExit(uint32_t tgid) {
  uint8_t one = 1;
  return Put(skel_->maps.exit_notify, &tgid, &one);
}

Status BpfProgram::Mute(uint64_t sk, uint64_t ino) {
  return Put(skel_->maps.muted, &sk, &ino);
}

std::array<uint64_t, DBW_LOSS_MAX> BpfProgram::Losses() const {
  std::array<uint64_t, DBW_LOSS_MAX> out{};
  int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) return out;
  std::vector<uint64_t> values(static_cast<size_t>(cpus));
  for (uint32_t i = 0; i < DBW_LOSS_MAX; ++i) {
    if (bpf_map__lookup_elem(skel_->maps.losses, &i, sizeof(i), values.data(),
                             values.size() * sizeof(uint64_t), 0) != 0)
      continue;
    for (uint64_t v : values) out[i] += v;
  }
  return out;
}

std::vector<BpfProgram::ProgramStats> BpfProgram::Stats() const {
  std::vector<ProgramStats> out;
  bpf_program* prog = nullptr;
  bpf_object__for_each_program(prog, skel_->obj) {
    int fd = bpf_program__fd(prog);
    if (fd < 0) continue;  // not loaded (autoload off)
    bpf_prog_info info{};
    uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) continue;
    out.push_back({bpf_program__name(prog), info.run_time_ns, info.run_cnt});
  }
  return out;
}

}  // namespace dbw::tap
