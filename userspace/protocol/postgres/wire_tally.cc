// WireTally: frame headers only; bodies are skipped without being looked at.
#include "userspace/protocol/postgres/wire_tally.h"

#include <algorithm>

#include "userspace/protocol/postgres/types.h"

namespace dbw::pg {
namespace {

uint32_t Be32(const uint8_t* p) {
  return (static_cast<uint32_t>(p[0]) << 24) | (static_cast<uint32_t>(p[1]) << 16) |
         (static_cast<uint32_t>(p[2]) << 8) | static_cast<uint32_t>(p[3]);
}

}  // namespace

uint64_t WireTally::Requests(std::span<const std::byte> frames) {
  WireTally t(true);
  t.untyped_next_ = false;
  t.Feed(frames);
  return t.counts_.requests;
}

void WireTally::Skip(uint64_t n) {
  counts_.bytes += n;
  if (n > 0) counts_.framed = false;
}

void WireTally::Feed(std::span<const std::byte> data) {
  counts_.bytes += data.size();
  if (!counts_.framed) return;
  while (!data.empty()) {
    if (remaining_ > 0) {
      const size_t take = static_cast<size_t>(std::min<uint64_t>(remaining_, data.size()));
      remaining_ -= take;
      data = data.subspan(take);
      continue;
    }
    // An untyped packet's header is its length and its request code; a typed frame's, its type
    // and length.
    const uint8_t need = untyped_next_ ? 8 : 5;
    const size_t take = std::min<size_t>(need - header_len_, data.size());
    for (size_t i = 0; i < take; ++i) header_[header_len_++] = static_cast<uint8_t>(data[i]);
    data = data.subspan(take);
    if (header_len_ < need) return;
    header_len_ = 0;
    OnHeader();
    if (!counts_.framed) return;
  }
}

void WireTally::OnHeader() {
  ++counts_.messages;
  if (untyped_next_) {
    const uint32_t len = Be32(header_.data());
    const uint32_t code = Be32(header_.data() + 4);
    if (len < 8) {
      counts_.framed = false;
      return;
    }
    remaining_ = len - 8;
    if (counts_.first_code == 0) counts_.first_code = code;
    // After an SSLRequest or GSSENCRequest the server answers one byte (not seen in this
    // direction); refused, another untyped packet follows. Accepted, the rest is ciphertext,
    // which the tally then counts in bytes only.
    untyped_next_ = code == kSslRequestCode || code == kGssEncRequestCode;
    return;
  }
  const uint8_t type = header_[0];
  const uint32_t len = Be32(header_.data() + 1);
  if (len < 4) {
    counts_.framed = false;
    return;
  }
  remaining_ = len - 4;
  if (frontend_) {
    if (type == fe::kQuery || type == fe::kExecute || type == fe::kFunctionCall) ++counts_.requests;
  } else if (type == be::kDataRow) {
    ++counts_.rows;
  }
}

}  // namespace dbw::pg
