// Masking functions: what replaces a value (or a detected span inside one).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace dbw::masking {

enum class Function : uint8_t {
  kRedact,   // a fixed marker, kRedactMarker
  kPartial,  // kPartialFill then the last `keep_last` characters (UTF-8 characters; kept only
             // when the value is at least twice that long); an email keeps its domain
  kHash,     // "h:" + hex of the first 12 bytes of HMAC-SHA256(key, value): stable for joins
  kNull,     // SQL NULL (inside longer text, where NULL is impossible: the redact marker)
};
std::string_view FunctionName(Function function);  // "redact" | "partial" | "hash" | "null"

inline constexpr std::string_view kRedactMarker = "[redacted]";
inline constexpr std::string_view kPartialFill = "****";

struct MaskSpec {
  Function function = Function::kRedact;
  int keep_last = 4;    // kPartial
  std::string rule_id;  // the policy rule that asked for it (audit)
};

// HMAC-SHA256 under the configured key. The agent provides it (OpenSSL stays out of this
// module); a null function makes kHash fall back to the redact marker (fail closed).
using KeyedHash = std::function<std::array<uint8_t, 32>(std::string_view)>;

// The masking key as the relay uses it: the HMAC function for result values, and the same HMAC
// written in SQL for masking by reference (the key XOR ipad and XOR opad, 64 bytes each, hex).
struct MaskingKey {
  KeyedHash hmac;
  std::string inner_pad_hex;
  std::string outer_pad_hex;
};
// HMAC-SHA256's pads for a key of at most 64 bytes (longer keys: empty pads, no SQL hash).
void HmacPadsHex(std::string_view key, std::string* inner, std::string* outer);

// Appends the replacement of `value` to *out and returns true, or appends nothing and returns
// false when the value becomes SQL NULL. `email` tells kPartial to keep the domain. Output lengths
// never depend on the masked part's length: fixed marker, fixed fill, fixed-length hash.
bool MaskValue(const MaskSpec& spec, std::string_view value, bool email, const KeyedHash& hmac,
               std::string* out);

}  // namespace dbw::masking
