// RandomHexId: getrandom(2), which blocks only before the kernel's pool is first initialised.
#include "userspace/common/random_id.h"

#include <sys/random.h>

#include <cerrno>
#include <vector>

namespace dbw {

std::string RandomHexId(size_t bytes) {
  std::vector<unsigned char> raw(bytes);
  size_t got = 0;
  while (got < bytes) {
    ssize_t n = getrandom(raw.data() + got, bytes - got, 0);
    if (n > 0) got += static_cast<size_t>(n);
    // EINTR: retry; anything else cannot happen for a buffer this small.
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id;
  id.reserve(2 * bytes);
  for (unsigned char c : raw) {
    id += kHex[c >> 4];
    id += kHex[c & 0xf];
  }
  return id;
}

}  // namespace dbw
