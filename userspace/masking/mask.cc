// Masking functions: redact, partial (fill plus a kept tail or an email's domain), keyed hash
// and NULL. Every replacement has a length independent of how long the masked part was.
#include "userspace/masking/mask.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "userspace/masking/mask_internal.h"

namespace dbw::masking {
namespace {

constexpr char kHex[] = "0123456789abcdef";

// True when no byte of `s` has its high bit set (ASCII), eight bytes at a time.
bool IsAscii(std::string_view s) {
  uint64_t high = 0;
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, s.data() + i, sizeof(w));
    high |= w;
  }
  for (; i < s.size(); ++i) high |= static_cast<uint8_t>(s[i]);
  return (high & 0x8080808080808080ull) == 0;
}

// Start of the last `n` UTF-8 characters of `s` (continuation bytes are 10xxxxxx), so a kept
// tail never splits a character and the output stays valid text.
size_t TailStart(std::string_view s, size_t n) {
  if (n <= s.size() && IsAscii(s.substr(s.size() - n))) return s.size() - n;
  size_t i = s.size();
  while (n > 0 && i > 0) {
    --i;
    if ((static_cast<uint8_t>(s[i]) & 0xC0) != 0x80) --n;
  }
  return i;
}

size_t CharCount(std::string_view s) {
  if (IsAscii(s)) return s.size();
  size_t n = 0;
  for (char c : s) n += (static_cast<uint8_t>(c) & 0xC0) != 0x80;
  return n;
}

}  // namespace

std::string_view FunctionName(Function function) {
  switch (function) {
    case Function::kRedact:
      return "redact";
    case Function::kPartial:
      return "partial";
    case Function::kHash:
      return "hash";
    case Function::kNull:
      return "null";
  }
  return "unknown";
}

namespace internal {

std::string_view PartialKept(std::string_view value, int keep_last, size_t email_at) {
  if (email_at != std::string_view::npos && email_at < value.size()) return value.substr(email_at);
  // Keeping the tail of a short value would show most of it: only values at least twice as
  // long as the tail keep one.
  size_t keep = static_cast<size_t>(std::clamp(keep_last, 0, 64));
  if (keep == 0 || value.size() < 2 * keep) return {};
  size_t tail = TailStart(value, keep);
  // What stays hidden must hold `keep` characters too; only short prefixes need counting.
  if (tail < 4 * keep && CharCount(value.substr(0, tail)) < keep) return {};
  return value.substr(tail);
}

void AppendPartial(std::string_view value, int keep_last, size_t email_at, std::string* out) {
  out->append(kPartialFill);
  out->append(PartialKept(value, keep_last, email_at));
}

void AppendHash(std::string_view value, const KeyedHash& hmac, std::string* out) {
  std::array<uint8_t, 32> mac = hmac(value);
  out->append("h:");
  for (size_t i = 0; i < kHashBytes; ++i) {
    out->push_back(kHex[mac[i] >> 4]);
    out->push_back(kHex[mac[i] & 0xf]);
  }
}

bool AppendMasked(const MaskSpec& spec, std::string_view value, bool email, const KeyedHash& hmac,
                  std::string* out) {
  switch (spec.function) {
    case Function::kNull:
      return false;
    case Function::kPartial: {
      size_t at = email ? value.rfind('@') : std::string_view::npos;
      AppendPartial(value, spec.keep_last, at == 0 ? std::string_view::npos : at, out);
      return true;
    }
    case Function::kHash:
      if (hmac) {
        AppendHash(value, hmac, out);
        return true;
      }
      break;  // no key: fail closed to the marker
    case Function::kRedact:
      break;
  }
  out->append(kRedactMarker);
  return true;
}

}  // namespace internal

void HmacPadsHex(std::string_view key, std::string* inner, std::string* outer) {
  inner->clear();
  outer->clear();
  if (key.size() > 64) return;
  for (size_t i = 0; i < 64; ++i) {
    const uint8_t k = i < key.size() ? static_cast<uint8_t>(key[i]) : 0;
    for (auto [out, pad] : {std::pair{inner, uint8_t{0x36}}, std::pair{outer, uint8_t{0x5c}}}) {
      const uint8_t b = k ^ pad;
      out->push_back(kHex[b >> 4]);
      out->push_back(kHex[b & 0xf]);
    }
  }
}

bool MaskValue(const MaskSpec& spec, std::string_view value, bool email, const KeyedHash& hmac,
               std::string* out) {
  return internal::AppendMasked(spec, value, email, hmac, out);
}

}  // namespace dbw::masking
