// Incremental stream decoder.
#include "userspace/protocol/postgres/decoder.h"

#include <algorithm>

#include "userspace/protocol/postgres/parse.h"

namespace dbw::pg {

bool StreamDecoder::Streamable(uint8_t type) const {
  return dir_ == Direction::kBackend ? (type == be::kDataRow || type == be::kCopyData)
                                     : type == fe::kCopyData;
}

DecodeResult StreamDecoder::Decode(std::span<const std::byte> in, Bytes* out) {
  DecodeResult result;
  std::span<const std::byte> rest = in;
  auto forward = [out](std::span<const std::byte> bytes) {
    out->insert(out->end(), bytes.begin(), bytes.end());
  };
  while (!rest.empty()) {
    if (stream_remaining_ > 0) {
      size_t n = std::min(stream_remaining_, rest.size());
      forward(rest.first(n));
      rest = rest.subspan(n);
      stream_remaining_ -= n;
      continue;
    }
    Frame frame;
    std::string error;
    ParseState st = PeekHeader(dir_, startup_, rest, &frame, &error);
    if (st == ParseState::kInvalid) {
      result.error = true;
      result.reason = std::string(MessageName(dir_, startup_ ? 0 : static_cast<uint8_t>(rest[0]))) +
                      ": " + error;
      break;
    }
    if (st == ParseState::kNeedMoreData) break;
    if (max_message_ != 0 && frame.length > max_message_) {
      result.error = true;
      result.reason = std::string(MessageName(dir_, frame.type)) + ": declares " +
                      std::to_string(frame.length) + " bytes, more than the " +
                      std::to_string(max_message_) + " accepted at this stage of the session";
      break;
    }
    size_t wire = frame.WireSize();
    if (rest.size() < wire) {
      if (!startup_ && wire > stream_threshold_ && Streamable(frame.type)) {
        handler_->OnStreamedMessage(dir_, frame.type, frame.length);
        stream_remaining_ = wire;
        continue;  // the loop forwards what is here and counts down the rest
      }
      result.need = wire;
      break;
    }
    std::span<const std::byte> whole = rest;
    if (ParseFrame(dir_, startup_, &whole, &frame, &error) != ParseState::kOk) {
      result.error = true;
      result.reason = error;
      break;
    }
    std::string reason;
    switch (handler_->OnMessage(dir_, frame, out, &reason)) {
      case MessageAction::kForward:
        forward(rest.first(wire));
        break;
      case MessageAction::kHandled:
        break;
      case MessageAction::kPause:
        result.paused = true;
        result.consumed = in.size() - rest.size();
        return result;
      case MessageAction::kReject:
        result.error = true;
        result.reason = std::string(MessageName(dir_, frame.type)) + ": " + reason;
        result.consumed = in.size() - rest.size();
        return result;
    }
    rest = rest.subspan(wire);
  }
  result.consumed = in.size() - rest.size();
  return result;
}

}  // namespace dbw::pg
