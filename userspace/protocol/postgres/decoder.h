// Incremental stream decoder: splits one direction of a connection into messages, lets a
// handler inspect or replace each, and streams oversized rows/copy data without buffering.
#pragma once

#include <cstddef>
#include <span>
#include <string>

#include "userspace/protocol/postgres/encoder.h"
#include "userspace/protocol/postgres/types.h"

namespace dbw::pg {

enum class MessageAction {
  kForward,  // append the message's bytes to the output unchanged
  kHandled,  // the handler wrote whatever replaces the message (possibly nothing)
  kReject,   // protocol violation: stop decoding; the handler has set the reason
  kPause,    // stop before this message; it is presented again by the next Decode call
};

class DecoderHandler {
 public:
  virtual ~DecoderHandler() = default;
  // A whole message. `out` is the forward buffer, for handlers that replace the message.
  virtual MessageAction OnMessage(Direction dir, const Frame& frame, Bytes* out,
                                  std::string* reason) = 0;
  // A DataRow or CopyData too large to buffer begins; only its header has been seen. Its bytes
  // are forwarded as they arrive.
  virtual void OnStreamedMessage(Direction dir, uint8_t type, uint32_t length) = 0;
};

struct DecodeResult {
  size_t consumed = 0;  // bytes of the input that were processed
  size_t need = 0;      // when > 0: the next message needs this many contiguous bytes
  bool error = false;
  bool paused = false;  // the handler paused at a message (kPause); consumed stops before it
  std::string reason;
};

class StreamDecoder {
 public:
  // Messages of streamable types larger than `stream_threshold` bytes are streamed through
  // instead of being buffered whole.
  StreamDecoder(Direction dir, DecoderHandler* handler, size_t stream_threshold)
      : dir_(dir), handler_(handler), stream_threshold_(stream_threshold) {}

  // The frontend begins with untyped startup packets; the relay handles those itself and
  // starts decoding typed messages afterwards.
  void set_startup(bool startup) { startup_ = startup; }
  bool streaming() const { return stream_remaining_ > 0; }
  // Takes effect from the next message (masking raises it: masked rows must be whole).
  void set_stream_threshold(size_t threshold) { stream_threshold_ = threshold; }
  // A limit on any message's declared length below its type's own (0: none). Before a client
  // has authenticated, nothing it may send needs more than a SASL message (64 KiB), so a header
  // announcing 1 GiB is refused from its first five bytes instead of being waited for.
  void set_max_message(uint32_t max) { max_message_ = max; }

  // Processes as many whole messages (and streamed bytes) of `in` as possible, appending the
  // bytes to forward to *out. Unconsumed input must be presented again with more appended.
  DecodeResult Decode(std::span<const std::byte> in, Bytes* out);

 private:
  bool Streamable(uint8_t type) const;

  Direction dir_;
  DecoderHandler* handler_;
  size_t stream_threshold_;
  bool startup_ = false;
  size_t stream_remaining_ = 0;
  uint32_t max_message_ = 0;
};

}  // namespace dbw::pg
