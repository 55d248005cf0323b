// Random identifiers for sessions and approval requests, from the kernel's CSPRNG.
#pragma once

#include <cstddef>
#include <string>

namespace dbw {

// `bytes` random bytes as lowercase hex (2 * bytes digits).
std::string RandomHexId(size_t bytes);

}  // namespace dbw
