// Masking hash key: file handling and HMAC-SHA256 with OpenSSL.
#include "agent/masking_key.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>

#include <openssl/hmac.h>
#include <openssl/rand.h>

namespace dbw::agent {

namespace {
constexpr size_t kKeyBytes = 32;
}

StatusOr<masking::MaskingKey> LoadMaskingHash(const std::string& path) {
  std::string key(kKeyBytes, '\0');
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT) {
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
    if (RAND_bytes(reinterpret_cast<unsigned char*>(key.data()), kKeyBytes) != 1)
      return Internal("cannot generate the masking key");
    int out = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (out < 0) return Unavailable("cannot create " + path + ": " + std::strerror(errno));
    bool ok = ::write(out, key.data(), key.size()) == static_cast<ssize_t>(key.size()) &&
              ::fsync(out) == 0;
    ::close(out);
    if (!ok) return Unavailable("cannot write " + path);
  } else if (fd < 0) {
    return Unavailable("cannot open " + path + ": " + std::strerror(errno));
  } else {
    ssize_t n = ::read(fd, key.data(), key.size());
    ::close(fd);
    if (n < 16) return InvalidArgument(path + ": the masking key must hold at least 16 bytes");
    key.resize(static_cast<size_t>(n));
  }
  masking::MaskingKey out;
  masking::HmacPadsHex(key, &out.inner_pad_hex, &out.outer_pad_hex);
  auto shared = std::make_shared<const std::string>(std::move(key));
  out.hmac = masking::KeyedHash([shared](std::string_view value) {
    std::array<uint8_t, 32> mac{};
    unsigned int len = 0;
    HMAC(EVP_sha256(), shared->data(), static_cast<int>(shared->size()),
         reinterpret_cast<const unsigned char*>(value.data()), value.size(), mac.data(), &len);
    return mac;
  });
  return out;
}

}  // namespace dbw::agent
