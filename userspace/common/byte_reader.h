// ByteReader: bounds-checked big-endian reads over a span, as the wire protocols need.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>

namespace dbw {

// Every read checks the remaining length and reports failure through its return value;
// nothing here trusts the bytes it reads.
class ByteReader {
 public:
  explicit ByteReader(std::span<const std::byte> data) : data_(data) {}

  size_t remaining() const { return data_.size() - pos_; }
  size_t position() const { return pos_; }
  bool empty() const { return remaining() == 0; }
  std::span<const std::byte> rest() const { return data_.subspan(pos_); }

  bool ReadU8(uint8_t* out) {
    if (remaining() < 1) return false;
    *out = static_cast<uint8_t>(data_[pos_++]);
    return true;
  }
  bool ReadU16(uint16_t* out) {
    if (remaining() < 2) return false;
    *out = static_cast<uint16_t>((U8At(pos_) << 8) | U8At(pos_ + 1));
    pos_ += 2;
    return true;
  }
  bool ReadI16(int16_t* out) {
    uint16_t v;
    if (!ReadU16(&v)) return false;
    *out = static_cast<int16_t>(v);
    return true;
  }
  bool ReadU32(uint32_t* out) {
    if (remaining() < 4) return false;
    *out = (static_cast<uint32_t>(U8At(pos_)) << 24) |
           (static_cast<uint32_t>(U8At(pos_ + 1)) << 16) |
           (static_cast<uint32_t>(U8At(pos_ + 2)) << 8) | static_cast<uint32_t>(U8At(pos_ + 3));
    pos_ += 4;
    return true;
  }
  bool ReadI32(int32_t* out) {
    uint32_t v;
    if (!ReadU32(&v)) return false;
    *out = static_cast<int32_t>(v);
    return true;
  }
  bool ReadBytes(size_t n, std::span<const std::byte>* out) {
    if (remaining() < n) return false;
    *out = data_.subspan(pos_, n);
    pos_ += n;
    return true;
  }
  // A NUL-terminated string; the terminator is consumed but not returned.
  bool ReadCString(std::string_view* out) {
    const std::byte* begin = data_.data() + pos_;
    const void* nul = std::memchr(begin, 0, remaining());
    if (nul == nullptr) return false;
    size_t len = static_cast<const std::byte*>(nul) - begin;
    *out = std::string_view(reinterpret_cast<const char*>(begin), len);
    pos_ += len + 1;
    return true;
  }
  bool Skip(size_t n) {
    if (remaining() < n) return false;
    pos_ += n;
    return true;
  }

 private:
  uint8_t U8At(size_t i) const { return static_cast<uint8_t>(data_[i]); }

  std::span<const std::byte> data_;
  size_t pos_ = 0;
};

inline std::string_view AsStringView(std::span<const std::byte> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}
inline std::span<const std::byte> AsBytes(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

}  // namespace dbw
