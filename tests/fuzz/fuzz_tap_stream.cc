// libFuzzer target: captured chunks of both directions of a connection, with gaps and overlaps,
// through the tap's MessageStream. Checks framing invariants and that memory stays bounded.
//
// Input: one flags byte, then records of [op, length, `length` bytes]. op bit 7 picks the
// direction (set: backend); op & 0x7f: 0 continues where that direction left off, 1..63 skips
// that many bytes, 64..95 steps back (op - 63) bytes (an overlap), 96..127 skips (op - 95) * 64
// KiB.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "userspace/protocol/postgres/parse.h"
#include "userspace/tap/stream.h"

namespace {

using dbw::pg::Direction;
using dbw::tap::MessageStream;

// Checks what it is handed and plays the session's part: SSLRequest makes the backend expect
// its answer, a StartupMessage ends the startup phase (both from inside the callback).
class Sink : public dbw::tap::MessageSink {
 public:
  explicit Sink(Direction dir) : dir_(dir) {}
  void OnStartupPacket(std::span<const std::byte> packet) override {
    if (dir_ != Direction::kFrontend || packet.size() < 8) __builtin_trap();
    dbw::pg::StartupPacket p;
    if (!dbw::pg::ParseStartupPacket(packet.subspan(4), &p, nullptr)) return;
    if (p.kind == dbw::pg::StartupKind::kSslRequest && other != nullptr)
      other->ExpectEncryptionResponse();
    if (p.kind == dbw::pg::StartupKind::kStartup) self->EnterTypedPhase();
  }
  void OnEncryptionResponse(uint8_t answer) override {
    if (dir_ != Direction::kBackend) __builtin_trap();
    if (answer != 'S' && answer != 'N' && answer != 'G') __builtin_trap();
  }
  void OnMessage(const dbw::pg::Frame& frame) override {
    if (frame.body.size() + 4 != frame.length) __builtin_trap();
    if (dbw::pg::MaxMessageLength(dir_, frame.type) == 0) __builtin_trap();
    (void)dbw::pg::ValidateMessage(dir_, frame, nullptr);
  }
  void OnSkippedMessage(uint8_t, uint32_t length, bool) override {
    if (length < 4) __builtin_trap();
  }
  void OnGap(uint64_t bytes) override {
    if (bytes == 0) __builtin_trap();
  }
  void OnResync(uint64_t) override {
    if (self->lost()) __builtin_trap();
  }

  MessageStream* self = nullptr;
  MessageStream* other = nullptr;

 private:
  Direction dir_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t flags = data[0];
  const uint32_t max_body = (flags & 0x10) != 0 ? 64 : 1 << 20;
  const char* skip = (flags & 0x0c) == 0 ? "" : (flags & 0x0c) == 4 ? "D" : "Ddd";
  Sink fe_sink(Direction::kFrontend), be_sink(Direction::kBackend);
  MessageStream fe({.direction = Direction::kFrontend, .max_body = max_body, .skip_bodies = skip},
                   &fe_sink);
  MessageStream be({.direction = Direction::kBackend, .max_body = max_body, .skip_bodies = skip},
                   &be_sink);
  fe_sink.self = &fe;
  fe_sink.other = &be;
  be_sink.self = &be;
  if ((flags & 1) != 0) fe.ExpectStartup();
  if ((flags & 2) != 0) be.ExpectStartup();
  // A partial message (startup packets up to 10000), a retained buffer and the lost window.
  const size_t bound =
      std::max<size_t>(max_body + 5, 64 * 1024) + 10000 + MessageStream::kLostWindow + 64;
  uint64_t next[2] = {0, 0};
  size_t i = 1;
  while (i + 2 <= size) {
    const uint8_t op = data[i];
    const size_t n = std::min<size_t>(data[i + 1], size - i - 2);
    const std::span<const std::byte> chunk(reinterpret_cast<const std::byte*>(data + i + 2), n);
    i += 2 + n;
    const int d = op >> 7;
    const uint8_t code = op & 0x7f;
    uint64_t pos = next[d];
    if (code >= 1 && code <= 63) pos += code;
    if (code >= 64 && code <= 95) pos -= std::min<uint64_t>(pos, code - 63);
    if (code >= 96) pos += uint64_t{code - 95u} << 16;
    MessageStream& s = d == 0 ? fe : be;
    const uint64_t before = s.expected_pos();
    s.Add(pos, chunk);
    next[d] = std::max(next[d], pos + n);
    if (s.expected_pos() < before) __builtin_trap();  // positions only move forward
    if (s.buffered_bytes() > bound) __builtin_trap();
  }
  return 0;
}
