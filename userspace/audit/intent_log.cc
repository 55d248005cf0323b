// IntentLog: see intent_log.h.
#include "userspace/audit/intent_log.h"

#include <fcntl.h>
#include <nmmintrin.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>

namespace dbw::audit {
namespace {

constexpr std::array<char, 8> kMagic = {'D', 'B', 'W', 'I', 'N', 'T', '1', '\0'};
constexpr size_t kCapacityOffset = 8;
constexpr size_t kDrainedOffset = 64;  // its own cache line: the writer stores it
constexpr uint32_t kWrap = 0xFFFFFFFFu;
constexpr uint64_t kMaxPayload = 16u << 20;

uint64_t Align8(uint64_t n) {
  return (n + 7) & ~uint64_t{7};
}

std::array<uint32_t, 256> MakeTable() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    t[i] = c;
  }
  return t;
}

uint32_t Crc32cSoftware(uint32_t crc, const uint8_t* p, size_t n) {
  static const std::array<uint32_t, 256> kTable = MakeTable();
  for (size_t i = 0; i < n; ++i) crc = kTable[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return crc;
}

__attribute__((target("sse4.2"))) uint32_t Crc32cHardware(uint32_t crc, const uint8_t* p,
                                                          size_t n) {
  uint64_t c = crc;
  for (; n >= 8; n -= 8, p += 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    c = _mm_crc32_u64(c, v);
  }
  auto c32 = static_cast<uint32_t>(c);
  for (; n > 0; --n, ++p) c32 = _mm_crc32_u8(c32, *p);
  return c32;
}

uint32_t EntryCrc(uint64_t seq, std::string_view payload) {
  uint32_t crc = Crc32c(0, &seq, sizeof(seq));
  return Crc32c(crc, payload.data(), payload.size());
}

Status Errno(const std::string& what, const std::string& path) {
  return Unavailable(what + " " + path + ": " + std::strerror(errno));
}

}  // namespace

uint32_t Crc32c(uint32_t crc, const void* data, size_t n) {
  static const bool kHardware = __builtin_cpu_supports("sse4.2");
  const auto* p = static_cast<const uint8_t*>(data);
  crc = ~crc;
  crc = kHardware ? Crc32cHardware(crc, p, n) : Crc32cSoftware(crc, p, n);
  return ~crc;
}

StatusOr<std::unique_ptr<IntentLog>> IntentLog::Create(const std::string& path, size_t capacity) {
  capacity = (capacity + 4095) & ~size_t{4095};
  if (capacity < 4096) capacity = 4096;
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return Errno("cannot create intent log", path);
  const size_t size = kHeaderSize + capacity;
  // Allocated, not sparse: a store into a mapped page that the file system then cannot back
  // (a full disk) would kill the process with SIGBUS.
  if (int err = ::posix_fallocate(fd, 0, static_cast<off_t>(size)); err != 0) {
    errno = err;
    Status st = Errno("cannot allocate intent log", path);
    ::close(fd);
    ::unlink(path.c_str());
    return st;
  }
  void* map = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (map == MAP_FAILED) {
    Status st = Errno("cannot map intent log", path);
    ::close(fd);
    ::unlink(path.c_str());
    return st;
  }
  std::unique_ptr<IntentLog> log(new IntentLog());
  log->path_ = path;
  log->name_ = std::filesystem::path(path).stem().string();
  log->fd_ = fd;
  log->map_ = static_cast<uint8_t*>(map);
  log->map_size_ = size;
  log->capacity_ = capacity;
  std::memcpy(log->map_, kMagic.data(), kMagic.size());
  const uint64_t cap = capacity;
  std::memcpy(log->map_ + kCapacityOffset, &cap, sizeof(cap));
  log->drained_ = new (log->map_ + kDrainedOffset) std::atomic<uint64_t>(0);
  return log;
}

IntentLog::~IntentLog() {
  if (map_ != nullptr) ::munmap(map_, map_size_);
  if (fd_ >= 0) ::close(fd_);
}

bool IntentLog::Append(std::string_view payload, Appended* out) {
  const uint64_t size = Align8(kEntryHeader + payload.size());
  if (payload.size() > kMaxPayload || size > capacity_ / 2) return false;
  uint64_t pos = head_;
  const uint64_t to_end = capacity_ - pos % capacity_;
  const uint64_t skip = to_end < size ? to_end : 0;  // the entry would straddle the end
  const uint64_t drained = drained_->load(std::memory_order_acquire);
  if (pos + skip + size - drained > capacity_) return false;
  if (skip > 0) {
    // to_end is a multiple of 8 and at least 8: room for the marker.
    const uint32_t wrap = kWrap;
    std::memcpy(map_ + kHeaderSize + pos % capacity_, &wrap, sizeof(wrap));
    pos += skip;
  }
  uint8_t* e = map_ + kHeaderSize + pos % capacity_;
  const uint64_t seq = next_seq_;
  const uint32_t crc = EntryCrc(seq, payload);
  std::memcpy(e + 4, &crc, 4);
  std::memcpy(e + 8, &seq, 8);
  std::memcpy(e + kEntryHeader, payload.data(), payload.size());
  // The length last: a reader (recovery, after a crash) that finds it finds the rest, and the
  // CRC catches whatever the crash tore.
  const auto len = static_cast<uint32_t>(payload.size());
  std::atomic_ref<uint32_t>(*reinterpret_cast<uint32_t*>(e)).store(len, std::memory_order_release);
  head_ = pos + size;
  ++next_seq_;
  out->seq = seq;
  out->end = head_;
  return true;
}

void IntentLog::Drained(uint64_t end) {
  if (end > drained_->load(std::memory_order_relaxed))
    drained_->store(end, std::memory_order_release);
}

StatusOr<std::vector<IntentLog::Entry>> IntentLog::Recover(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Errno("cannot open intent log", path);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    Status s = Errno("cannot stat intent log", path);
    ::close(fd);
    return s;
  }
  const auto size = static_cast<uint64_t>(st.st_size);
  std::vector<Entry> entries;
  if (size < kHeaderSize) {
    ::close(fd);
    return entries;  // created, not yet sized: nothing was written to it
  }
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) return Errno("cannot map intent log", path);
  const auto* base = static_cast<const uint8_t*>(map);
  uint64_t capacity = 0, drained = 0;
  std::memcpy(&capacity, base + kCapacityOffset, 8);
  std::memcpy(&drained, base + kDrainedOffset, 8);
  if (std::memcmp(base, kMagic.data(), kMagic.size()) != 0 || capacity == 0 || capacity % 8 != 0 ||
      capacity != size - kHeaderSize) {
    ::munmap(map, size);
    return DataLoss("intent log " + path + " has no valid header");
  }
  const uint8_t* ring = base + kHeaderSize;
  uint64_t pos = drained;
  uint64_t expect = 0;  // 0: the first entry sets it
  while (pos - drained < capacity) {
    const uint64_t off = pos % capacity;
    const uint64_t to_end = capacity - off;
    uint32_t len = 0;
    std::memcpy(&len, ring + off, 4);
    if (len == kWrap) {
      pos += to_end;
      continue;
    }
    if (to_end < kEntryHeader || kEntryHeader + uint64_t{len} > to_end) break;
    uint32_t crc = 0;
    uint64_t seq = 0;
    std::memcpy(&crc, ring + off + 4, 4);
    std::memcpy(&seq, ring + off + 8, 8);
    if (seq == 0 || (expect != 0 && seq != expect)) break;
    std::string_view payload(reinterpret_cast<const char*>(ring + off + kEntryHeader), len);
    if (EntryCrc(seq, payload) != crc) break;
    entries.push_back({seq, std::string(payload)});
    expect = seq + 1;
    pos += Align8(kEntryHeader + len);
  }
  ::munmap(map, size);
  return entries;
}

}  // namespace dbw::audit
