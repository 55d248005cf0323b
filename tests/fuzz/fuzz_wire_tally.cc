// libFuzzer target: the witness's frame counter (WireTally) over arbitrary bytes, fed whole and
// in the pieces the first byte chooses; both must count the same, and never more bytes than fed.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "userspace/protocol/postgres/wire_tally.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const bool frontend = (data[0] & 1) != 0;
  const size_t step = 1 + (data[0] >> 1);
  std::span<const std::byte> in(reinterpret_cast<const std::byte*>(data + 1), size - 1);
  dbw::pg::WireTally whole(frontend);
  whole.Feed(in);
  dbw::pg::WireTally pieces(frontend);
  for (size_t at = 0; at < in.size(); at += step)
    pieces.Feed(in.subspan(at, std::min(step, in.size() - at)));
  const auto& a = whole.counts();
  const auto& b = pieces.counts();
  if (a.bytes != in.size() || b.bytes != in.size() || a.messages != b.messages ||
      a.requests != b.requests || a.rows != b.rows || a.framed != b.framed ||
      a.first_code != b.first_code)
    std::abort();
  (void)dbw::pg::WireTally::Requests(in);
  return 0;
}
