// MessageStream: chunk reassembly, message framing and resynchronisation for the passive tap.
#include "userspace/tap/stream.h"

#include <algorithm>
#include <cstring>

#include "userspace/protocol/postgres/parse.h"

namespace dbw::tap {
namespace {

constexpr size_t kTypedHeader = 5;    // type byte + int32 length
constexpr size_t kStartupHeader = 8;  // int32 length + int32 code
// A message buffer larger than this is freed after use rather than kept for the next message.
constexpr size_t kRetainBuffer = 64 * 1024;

uint32_t LoadU32(const std::byte* p) {
  return (static_cast<uint32_t>(p[0]) << 24) | (static_cast<uint32_t>(p[1]) << 16) |
         (static_cast<uint32_t>(p[2]) << 8) | static_cast<uint32_t>(p[3]);
}

}  // namespace

// Per-direction length limits by type byte, built once from the protocol module's tables so
// the header check on the hot path is two array reads.
struct MessageStream::TypeTable {
  uint32_t max[256];
  uint32_t fixed[256];

  explicit TypeTable(pg::Direction dir) {
    for (int t = 0; t < 256; ++t) {
      max[t] = t == 0 ? 0 : pg::MaxMessageLength(dir, static_cast<uint8_t>(t));
      fixed[t] = t == 0 ? 0 : pg::FixedMessageLength(dir, static_cast<uint8_t>(t));
    }
  }
};

MessageStream::MessageStream(StreamOptions options, MessageSink* sink)
    : dir_(options.direction), max_body_(options.max_body), sink_(sink) {
  static const TypeTable kFrontend(pg::Direction::kFrontend);
  static const TypeTable kBackend(pg::Direction::kBackend);
  types_ = dir_ == pg::Direction::kFrontend ? &kFrontend : &kBackend;
  for (char c : options.skip_bodies) skip_types_.set(static_cast<uint8_t>(c));
}

void MessageStream::ExpectStartup() {
  if (received_) return;
  state_ = State::kBoundary;
  typed_phase_ = dir_ == pg::Direction::kBackend;
  fresh_ = false;
  force_sync_ = false;
  expected_pos_ = 0;
}

void MessageStream::ExpectEncryptionResponse() {
  if (dir_ != pg::Direction::kBackend) return;
  enc_expected_ = true;
  if (state_ != State::kLost) return;
  // Nothing seen yet: no callback is owed, so synchronise now. Otherwise OnResync must report
  // the discarded bytes, and callbacks are only made from inside Add.
  if (!received_) {
    state_ = State::kBoundary;
  } else {
    force_sync_ = true;
  }
}

void MessageStream::Add(uint64_t pos, std::span<const std::byte> data) {
  if (in_add_) return;  // re-entrant Add from a callback: documented as not allowed
  in_add_ = true;
  received_ = true;
  if (force_sync_) ApplyForcedSync();
  if (fresh_) {
    fresh_ = false;
    expected_pos_ = pos;
  }
  if (pos < expected_pos_) {
    const uint64_t seen = expected_pos_ - pos;
    if (seen >= data.size()) {
      overlap_bytes_ += data.size();
      in_add_ = false;
      return;
    }
    overlap_bytes_ += seen;
    data = data.subspan(static_cast<size_t>(seen));
    pos = expected_pos_;
  } else if (pos > expected_pos_) {
    const uint64_t gap = pos - expected_pos_;
    expected_pos_ = pos;
    HandleGap(gap);
  }
  expected_pos_ = pos + data.size();
  while (!data.empty()) {
    if (force_sync_) ApplyForcedSync();
    data = state_ == State::kLost ? FeedLost(data) : ConsumeSynced(data);
  }
  in_add_ = false;
}

// ---- Framing ----

bool MessageStream::ValidTypedHeader(uint8_t type, uint32_t length) const {
  const uint32_t max = types_->max[type];
  const uint32_t fixed = types_->fixed[type];
  return max != 0 && length >= 4 && length <= max && (fixed == 0 || length == fixed);
}

bool MessageStream::ParseHeader(const std::byte* p, bool startup, Header* out) {
  if (startup) {
    const uint32_t length = LoadU32(p);
    const uint32_t code = LoadU32(p + 4);
    if (length < kStartupHeader || length > pg::kMaxStartupPacket) return false;
    bool ok;
    if (code == pg::kSslRequestCode || code == pg::kGssEncRequestCode) {
      ok = length == 8;
    } else if (code == pg::kCancelRequestCode) {
      ok = length == 16;
    } else {
      ok = (code >> 16) == 3;  // StartupMessage, protocol 3.x
      if (ok) typed_phase_ = true;
    }
    if (!ok) return false;
    *out = Header{0, length, length, true, false};
    return true;
  }
  const auto type = static_cast<uint8_t>(p[0]);
  const uint32_t length = LoadU32(p + 1);
  if (!ValidTypedHeader(type, length)) return false;
  *out = Header{type, length, uint64_t{length} + 1, false,
                skip_types_.test(type) || length - 4 > max_body_};
  return true;
}

std::span<const std::byte> MessageStream::ConsumeSynced(std::span<const std::byte> in) {
  while (!in.empty()) {
    switch (state_) {
      case State::kBoundary:
        if (enc_expected_) {
          enc_expected_ = false;
          const auto answer = static_cast<uint8_t>(in[0]);
          if (answer == 'S' || answer == 'N' || answer == 'G') {
            in = in.subspan(1);
            ++messages_;
            sink_->OnEncryptionResponse(answer);
          }
          break;
        }
        if (!ConsumeAtBoundary(&in)) return in;
        break;
      case State::kHeader:
        if (!ContinueHeader(&in)) return in;
        break;
      case State::kBody:
        ContinueBody(&in);
        break;
      case State::kSkip:
        ContinueSkip(&in);
        break;
      case State::kLost:
        return in;
    }
  }
  return in;
}

bool MessageStream::ConsumeAtBoundary(std::span<const std::byte>* in) {
  const bool startup = !typed_phase_;
  const size_t need = startup ? kStartupHeader : kTypedHeader;
  if (in->size() < need) {
    std::memcpy(hdr_, in->data(), in->size());
    hdr_len_ = static_cast<uint8_t>(in->size());
    hdr_need_ = static_cast<uint8_t>(need);
    hdr_startup_ = startup;
    state_ = State::kHeader;
    *in = {};
    return true;
  }
  Header h;
  if (!ParseHeader(in->data(), startup, &h)) {
    GoLost();
    return false;
  }
  if (in->size() >= h.wire) {
    // The whole message is in this chunk: deliver it from the caller's span.
    const auto msg = in->first(static_cast<size_t>(h.wire));
    *in = in->subspan(static_cast<size_t>(h.wire));
    if (h.skip) {
      DeliverSkipped(h.type, h.length, true);
    } else if (startup) {
      DeliverStartup(msg);
    } else {
      DeliverFrame(h.type, h.length, msg.subspan(kTypedHeader));
    }
    return true;
  }
  cur_ = h;
  if (h.skip) {
    cur_complete_ = true;
    skip_remaining_ = h.wire - in->size();
    state_ = State::kSkip;
  } else {
    want_ = static_cast<size_t>(h.wire);
    msg_buf_.reserve(want_);
    msg_buf_.assign(in->begin(), in->end());
    state_ = State::kBody;
  }
  *in = {};
  return true;
}

bool MessageStream::ContinueHeader(std::span<const std::byte>* in) {
  const size_t n = std::min<size_t>(hdr_need_ - hdr_len_, in->size());
  std::memcpy(hdr_ + hdr_len_, in->data(), n);
  if (hdr_len_ + n < hdr_need_) {
    hdr_len_ += static_cast<uint8_t>(n);
    *in = in->subspan(n);
    return true;
  }
  Header h;
  if (!ParseHeader(hdr_, hdr_startup_, &h)) {
    // The held bytes go to the lost window ahead of `in`, which is left unconsumed.
    const uint8_t held = hdr_len_;
    GoLost();
    carry_len_ = held;
    return false;
  }
  *in = in->subspan(n);
  hdr_len_ = 0;
  StartFromHeader(h, hdr_need_);
  return true;
}

// The header (held in hdr_) has been read; the body follows in later input.
void MessageStream::StartFromHeader(const Header& h, size_t header_bytes) {
  cur_ = h;
  if (h.skip) {
    cur_complete_ = true;
    skip_remaining_ = h.wire - header_bytes;
    state_ = State::kSkip;
    if (skip_remaining_ == 0) FinishSkip();
    return;
  }
  want_ = static_cast<size_t>(h.wire);
  msg_buf_.reserve(want_);
  msg_buf_.assign(hdr_, hdr_ + header_bytes);
  state_ = State::kBody;
  if (msg_buf_.size() == want_) FinishBody();
}

void MessageStream::ContinueBody(std::span<const std::byte>* in) {
  const size_t n = std::min(want_ - msg_buf_.size(), in->size());
  msg_buf_.insert(msg_buf_.end(), in->begin(), in->begin() + static_cast<ptrdiff_t>(n));
  *in = in->subspan(n);
  if (msg_buf_.size() == want_) FinishBody();
}

void MessageStream::ContinueSkip(std::span<const std::byte>* in) {
  const size_t n = static_cast<size_t>(std::min<uint64_t>(skip_remaining_, in->size()));
  skip_remaining_ -= n;
  *in = in->subspan(n);
  if (skip_remaining_ == 0) FinishSkip();
}

void MessageStream::FinishBody() {
  state_ = State::kBoundary;
  const std::span<const std::byte> msg(msg_buf_);
  if (cur_.startup) {
    DeliverStartup(msg);
  } else {
    DeliverFrame(cur_.type, cur_.length, msg.subspan(kTypedHeader));
  }
  RecycleMsgBuf();
}

void MessageStream::FinishSkip() {
  state_ = State::kBoundary;
  DeliverSkipped(cur_.type, cur_.length, cur_complete_);
}

// ---- Gaps ----

void MessageStream::HandleGap(uint64_t bytes) {
  ++gaps_;
  gap_bytes_ += bytes;
  sink_->OnGap(bytes);
  switch (state_) {
    case State::kBoundary:  // the next header is in the hole
      GoLost();
      break;
    case State::kHeader: {  // so is the rest of this one
      const uint8_t held = hdr_len_;
      GoLost();
      lost_dropped_ = held;
      break;
    }
    case State::kBody: {
      const uint64_t remaining = want_ - msg_buf_.size();
      RecycleMsgBuf();
      TruncateMessage(remaining, bytes);
      break;
    }
    case State::kSkip:
      TruncateMessage(skip_remaining_, bytes);
      break;
    case State::kLost:  // the window no longer continues into the next chunk
      lost_dropped_ += lost_buf_.size() + carry_len_;
      carry_len_ = 0;
      lost_buf_.clear();
      scan_ = 0;
      chunk_at_ = SIZE_MAX;
      memo_valid_at_ = SIZE_MAX;
      break;
  }
}

// A gap of `gap` bytes hit the current message with `remaining` bytes still to come. Its
// length prefix says where it ends: if that is past the gap the stream stays synchronised.
void MessageStream::TruncateMessage(uint64_t remaining, uint64_t gap) {
  if (gap < remaining) {
    skip_remaining_ = remaining - gap;
    cur_complete_ = false;
    state_ = State::kSkip;
    return;
  }
  if (gap == remaining) {
    state_ = State::kBoundary;
  } else {
    GoLost();
  }
  DeliverSkipped(cur_.type, cur_.length, false);
}

void MessageStream::GoLost() {
  // lost_buf_ is left alone: a replay may be reading it (FeedLost trims it).
  state_ = State::kLost;
  enc_expected_ = false;
  typed_phase_ = true;  // resync looks for typed messages; the startup phase is never resumed
  hdr_len_ = 0;
  RecycleMsgBuf();
  lost_dropped_ = 0;
  scan_ = 0;
  memo_valid_at_ = SIZE_MAX;
}

void MessageStream::ApplyForcedSync() {
  force_sync_ = false;
  if (state_ != State::kLost) return;
  const uint64_t skipped = lost_dropped_ + lost_buf_.size() + carry_len_;
  carry_len_ = 0;
  ReleaseLostBuf();
  state_ = State::kBoundary;
  ++resyncs_;
  resync_skipped_bytes_ += skipped;
  sink_->OnResync(skipped);
}

// ---- Resynchronisation ----

std::span<const std::byte> MessageStream::FeedLost(std::span<const std::byte> in) {
  if (lost_buf_.capacity() < kLostWindow + sizeof(hdr_))
    lost_buf_.reserve(kLostWindow + sizeof(hdr_));
  bool started = false;
  while (true) {
    if (carry_len_ > 0) {
      lost_buf_.insert(lost_buf_.end(), hdr_, hdr_ + carry_len_);
      carry_len_ = 0;
    }
    if (!started) {
      started = true;
      chunk_at_ = lost_buf_.size();
    }
    if (lost_buf_.size() >= kLostWindow) DropRejected();
    const size_t room = lost_buf_.size() < kLostWindow ? kLostWindow - lost_buf_.size() : 0;
    const size_t take = std::min(room, in.size());
    lost_buf_.insert(lost_buf_.end(), in.begin(), in.begin() + static_cast<ptrdiff_t>(take));
    in = in.subspan(take);
    size_t at;
    if (!Search(in.empty(), &at)) {
      if (in.empty()) return in;
      continue;
    }
    const uint64_t skipped = lost_dropped_ + at;
    ++resyncs_;
    resync_skipped_bytes_ += skipped;
    state_ = State::kBoundary;
    sink_->OnResync(skipped);
    // Replay the window from the resync point. Frames point into lost_buf_, which nothing
    // modifies until the replay returns.
    const std::span<const std::byte> window(lost_buf_);
    const auto rest = ConsumeSynced(window.subspan(at));
    if (state_ != State::kLost) {
      ReleaseLostBuf();
      return in;
    }
    // Lost again inside the window: keep the bytes from the offending header on and search
    // them (the accepted message was consumed, so the window shrank).
    const size_t q = std::max<size_t>(window.size() - rest.size(), 1);
    lost_buf_.erase(lost_buf_.begin(), lost_buf_.begin() + static_cast<ptrdiff_t>(q));
    chunk_at_ = chunk_at_ != SIZE_MAX && chunk_at_ >= q ? chunk_at_ - q : SIZE_MAX;
    memo_valid_at_ = SIZE_MAX;
  }
}

// Discards the rejected front of a full window (at least half of it: see kMaxResyncMessage).
void MessageStream::DropRejected() {
  const size_t n = std::max<size_t>(scan_, 1);
  lost_buf_.erase(lost_buf_.begin(), lost_buf_.begin() + static_cast<ptrdiff_t>(n));
  lost_dropped_ += n;
  scan_ -= std::min(scan_, n);
  chunk_at_ = chunk_at_ != SIZE_MAX && chunk_at_ >= n ? chunk_at_ - n : SIZE_MAX;
  memo_valid_at_ = SIZE_MAX;
}

// Tries offsets in order from the first not yet rejected; the earliest plausible boundary wins,
// so the search waits while that one needs more data. At the end of a chunk it may look past a
// waiting candidate to where the chunk began, but only for stronger evidence: messages that tile
// the chunk exactly (a waiting false candidate would otherwise hold back the real boundary until
// up to 2 * kMaxResyncMessage more bytes arrive). That look is made once per chunk, so the work
// stays linear in the bytes added.
bool MessageStream::Search(bool at_end, size_t* at) {
  while (scan_ < lost_buf_.size()) {
    switch (Evaluate(scan_, at_end)) {
      case Verdict::kAccept:
        *at = scan_;
        return true;
      case Verdict::kPending: {
        if (!at_end || chunk_at_ == SIZE_MAX || chunk_at_ <= scan_) return false;
        const size_t chunk_at = chunk_at_;
        chunk_at_ = SIZE_MAX;
        if (!TilesToEnd(chunk_at)) return false;
        *at = chunk_at;
        return true;
      }
      case Verdict::kReject:
        ++scan_;
        break;
    }
  }
  return false;
}

// Do plausible messages from `offset` end exactly at the end of the window, with the evidence
// Evaluate asks for?
bool MessageStream::TilesToEnd(size_t offset) {
  const std::span<const std::byte> buf(lost_buf_);
  size_t p = offset;
  int count = 0;
  uint8_t last_type = 0;
  uint32_t last_length = 0;
  while (p < buf.size()) {
    if (buf.size() - p < kTypedHeader) return false;
    last_type = static_cast<uint8_t>(buf[p]);
    last_length = LoadU32(&buf[p + 1]);
    if (!ValidTypedHeader(last_type, last_length)) return false;
    const uint64_t wire = uint64_t{last_length} + 1;
    if (wire > kMaxResyncMessage || buf.size() - p < wire) return false;
    const pg::Frame frame{last_type, last_length, buf.subspan(p + kTypedHeader, last_length - 4)};
    if (!pg::ValidateMessage(dir_, frame, nullptr)) return false;
    ++count;
    p += static_cast<size_t>(wire);
  }
  if (count >= 2) return true;
  if (dir_ == pg::Direction::kBackend) return last_type == pg::be::kReadyForQuery;
  return count == 1 && last_length > 4;
}

// Is `offset` a message boundary? Every message from it must be plausible: valid type, length
// in range and at most kMaxResyncMessage, body parses. Accepted when two chain, or (backend) one
// is ReadyForQuery, or (frontend) at the end of a chunk one message with a body ends exactly at
// the end of the data: clients write whole messages, a lone Query is a typical chunk. Servers
// flush mid-message, so a backend chunk end is no evidence. A message too long to verify is
// never trusted: a false boundary followed by a plausible huge length would be skipped through
// silently.
MessageStream::Verdict MessageStream::Evaluate(size_t offset, bool at_end) {
  const std::span<const std::byte> buf(lost_buf_);
  size_t p = offset;
  int complete = 0;
  uint32_t first_length = 0;
  while (true) {
    const size_t avail = buf.size() - p;
    if (avail < kTypedHeader) {
      if (complete == 1 && avail == 0 && at_end && first_length > 4 &&
          dir_ == pg::Direction::kFrontend)
        return Verdict::kAccept;
      return Verdict::kPending;
    }
    const auto type = static_cast<uint8_t>(buf[p]);
    const uint32_t length = LoadU32(&buf[p + 1]);
    if (!ValidTypedHeader(type, length)) return Verdict::kReject;
    const uint64_t wire = uint64_t{length} + 1;
    if (wire > kMaxResyncMessage) return Verdict::kReject;
    if (avail < wire) return Verdict::kPending;
    if (p != memo_valid_at_) {
      const pg::Frame frame{type, length, buf.subspan(p + kTypedHeader, length - 4)};
      if (!pg::ValidateMessage(dir_, frame, nullptr)) return Verdict::kReject;
      memo_valid_at_ = p;
    }
    ++complete;
    if (dir_ == pg::Direction::kBackend && type == pg::be::kReadyForQuery) return Verdict::kAccept;
    if (complete == 2) return Verdict::kAccept;
    first_length = length;
    p += static_cast<size_t>(wire);
  }
}

// ---- Delivery ----

void MessageStream::DeliverFrame(uint8_t type, uint32_t length, std::span<const std::byte> body) {
  ++messages_;
  sink_->OnMessage(pg::Frame{type, length, body});
}

void MessageStream::DeliverStartup(std::span<const std::byte> packet) {
  ++messages_;
  sink_->OnStartupPacket(packet);
}

void MessageStream::DeliverSkipped(uint8_t type, uint32_t length, bool complete) {
  ++messages_;
  ++skipped_messages_;
  sink_->OnSkippedMessage(type, length, complete);
}

void MessageStream::RecycleMsgBuf() {
  if (msg_buf_.capacity() > kRetainBuffer) {
    std::vector<std::byte>().swap(msg_buf_);
  } else {
    msg_buf_.clear();
  }
}

void MessageStream::ReleaseLostBuf() {
  std::vector<std::byte>().swap(lost_buf_);
  scan_ = 0;
  lost_dropped_ = 0;
  chunk_at_ = SIZE_MAX;
  memo_valid_at_ = SIZE_MAX;
}

}  // namespace dbw::tap
