// Append-style masking primitives shared by mask.cc and row_masker.cc. Private to the module.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "userspace/masking/mask.h"

namespace dbw::masking::internal {

inline constexpr size_t kHashBytes = 12;  // of the HMAC, hex-encoded after "h:"

// Appends the replacement of `value` to *out and returns true, or appends nothing and returns
// false when the value becomes SQL NULL.
bool AppendMasked(const MaskSpec& spec, std::string_view value, bool email, const KeyedHash& hmac,
                  std::string* out);
// kPartial: what follows kPartialFill (an address's "@domain", a tail, or nothing). `email_at`:
// the '@' of an email address whose domain stays visible, or npos.
std::string_view PartialKept(std::string_view value, int keep_last, size_t email_at);
void AppendPartial(std::string_view value, int keep_last, size_t email_at, std::string* out);
// `hmac` must be non-empty.
void AppendHash(std::string_view value, const KeyedHash& hmac, std::string* out);

}  // namespace dbw::masking::internal
