// WireTally: what crossed one direction of a connection, counted frame by frame from the raw
// bytes: bytes, messages, requests the server runs (Query, Execute, FunctionCall) and result
// rows (DataRow). The relay counts its upstream socket with it and the tap the server's side of
// the same connection (the second witness, docs/routing.md#the-second-witness): the same bytes
// give the same counts.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

namespace dbw::pg {

struct WireCounts {
  uint64_t bytes = 0;
  uint64_t messages = 0;
  uint64_t requests = 0;  // frontend: Query, Execute, FunctionCall
  uint64_t rows = 0;      // backend: DataRow
  // The first (untyped) packet of a frontend stream: its request code (StartupMessage's
  // protocol version, SSLRequest, GSSENCRequest, CancelRequest); 0 until it is complete.
  uint32_t first_code = 0;
  // False once the frames could not be followed (bytes missing, a length below 4): from then
  // on only `bytes` is counted.
  bool framed = true;
};

class WireTally {
 public:
  // `frontend`: client -> server bytes, which begin with an untyped startup packet.
  explicit WireTally(bool frontend) : frontend_(frontend), untyped_next_(frontend) {}

  void Feed(std::span<const std::byte> data);
  // Query, Execute and FunctionCall messages among whole typed frontend frames.
  static uint64_t Requests(std::span<const std::byte> frames);
  // `n` bytes went by that were not seen: counted, and framing stops.
  void Skip(uint64_t n);
  // Where the stream stands is no longer known (an unknown number of bytes missed): framing
  // stops, the bytes counted so far stay a lower bound.
  void Desync() { counts_.framed = false; }
  const WireCounts& counts() const { return counts_; }

 private:
  void OnHeader();

  bool frontend_;
  bool untyped_next_;
  std::array<uint8_t, 8>
      header_{};  // the frame header being collected: type + length, or length + code
  uint8_t header_len_ = 0;
  uint64_t remaining_ = 0;  // body bytes of the current frame still to come
  WireCounts counts_;
};

}  // namespace dbw::pg
