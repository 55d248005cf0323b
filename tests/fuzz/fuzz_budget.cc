// libFuzzer target: a server's byte stream answering a wrap of the runtime row budget
// (gate::WriteBudget) in each protocol mode, and the read budget's bookkeeping over the same
// rows. The first input byte picks the mode, the rest is backend messages. Whatever the server
// sends, the budget must never crash, must end or keep waiting, and must only ever send the
// relay's own messages upstream.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "userspace/gate/read_budget.h"
#include "userspace/gate/write_budget.h"
#include "userspace/protocol/postgres/parse.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dbw;
  if (size < 1) return 0;
  const uint8_t mode = data[0];
  std::span<const std::byte> in(reinterpret_cast<const std::byte*>(data + 1), size - 1);
  gate::WriteBudget budget("fuzz");
  gate::ReadBudget reads;
  pg::Bytes before, after;
  const bool extended = mode & 1;
  const uint8_t tx = (mode & 2) ? 'T' : 'I';
  budget.Begin(1 + (mode >> 4), "fuzz-rule", extended, tx, &before, &after);
  if (mode & 4) budget.ForceRefuse(std::nullopt);
  uint64_t source = 0;
  while (!in.empty()) {
    pg::Frame frame;
    std::string error;
    if (pg::ParseFrame(pg::Direction::kBackend, false, &in, &frame, &error) != pg::ParseState::kOk)
      break;
    gate::WriteBudget::Output out;
    (void)budget.OnBackend(frame, (mode & 8) && frame.type == pg::be::kBindComplete, &out);
    // Whatever it sends upstream is well-formed frontend messages of its own.
    std::span<const std::byte> up(out.upstream);
    while (!up.empty()) {
      pg::Frame f;
      if (pg::ParseFrame(pg::Direction::kFrontend, false, &up, &f, &error) != pg::ParseState::kOk)
        __builtin_trap();
    }
    if (frame.type == pg::be::kDataRow) {
      (void)reads.OnRow(source, 3, 100, frame.WireSize());
    } else if (frame.type == pg::be::kPortalSuspended) {
      reads.Suspend();
      ++source;
    } else if (frame.type == pg::be::kReadyForQuery) {
      reads.OnReady(!frame.body.empty() && frame.body[0] == std::byte{'I'});
    } else if (frame.type == pg::be::kCommandComplete) {
      reads.Reset();
    }
    if (!budget.active()) break;
  }
  return 0;
}
