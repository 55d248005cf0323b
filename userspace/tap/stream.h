// MessageStream: turns the captured chunks of one direction of a PostgreSQL connection (ordered,
// possibly with holes) into protocol messages, and resynchronises after a hole loses the framing.
#pragma once

#include <bitset>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "userspace/protocol/postgres/types.h"

namespace dbw::tap {

// Receives what one MessageStream decodes. Callbacks run inside MessageStream::Add; spans are
// valid only for the duration of the call. A callback may call the stream's EnterTypedPhase,
// ExpectEncryptionResponse and the const accessors; it must not call Add on the same stream.
class MessageSink {
 public:
  virtual ~MessageSink() = default;
  // Frontend only, before the typed phase: one untyped startup-phase packet (StartupMessage,
  // SSLRequest, GSSENCRequest, CancelRequest), whole, including its 4-byte length.
  virtual void OnStartupPacket(std::span<const std::byte> packet) = 0;
  // Backend only: the single-byte answer to an SSLRequest/GSSENCRequest ('S', 'N' or 'G').
  virtual void OnEncryptionResponse(uint8_t answer) = 0;
  // A whole typed message with its body (type, length incl. the 4 length bytes, body).
  virtual void OnMessage(const pg::Frame& frame) = 0;
  // A message whose body is not delivered: its type is in skip_bodies, its body is larger than
  // max_body, or part of it was lost in a gap. Delivered once, when its last byte has passed (or
  // when a gap swallowed its end). `complete` is false when bytes of it were lost. Type 0 is a
  // startup packet cut by a gap (as in pg::Frame, startup packets have type 0).
  virtual void OnSkippedMessage(uint8_t type, uint32_t length, bool complete) = 0;
  // `bytes` were missing from the stream (pos jumped). Called before the message it cut is
  // reported.
  virtual void OnGap(uint64_t bytes) = 0;
  // After losing the message boundary, decoding resumed; `skipped` captured bytes were
  // discarded to find it (bytes missing in gaps are reported by OnGap, not here).
  virtual void OnResync(uint64_t skipped) = 0;
};

struct StreamOptions {
  pg::Direction direction = pg::Direction::kFrontend;  // kFrontend: client->server bytes
  uint32_t max_body = 1 << 20;   // bodies larger than this are skipped, not buffered
  std::string_view skip_bodies;  // message types whose bodies are never buffered (e.g. "Dd")
};

// One direction of one connection. Not thread-safe; one owner feeds it in position order.
//
// Memory is bounded: a partial message (at most max_body + 5 bytes, or a 10000-byte startup
// packet) plus, while lost, at most kLostWindow bytes of candidate data. A whole message that
// lies within one chunk is delivered straight from the caller's span, without a copy.
class MessageStream {
 public:
  // While lost, at most this many captured bytes are kept to search for a boundary; older bytes
  // are discarded and counted as skipped.
  static constexpr size_t kLostWindow = 64 * 1024;
  // Resync verifies candidate messages whole, so a candidate's messages (type byte included)
  // must be at most this long. A resync never lands on a longer message, only after it.
  static constexpr uint32_t kMaxResyncMessage = 16 * 1024;

  MessageStream(StreamOptions options, MessageSink* sink);
  MessageStream(const MessageStream&) = delete;
  MessageStream& operator=(const MessageStream&) = delete;

  // One captured chunk: `data` starts at byte `pos` of this direction's stream. A chunk before
  // expected_pos() is trimmed (or dropped whole); one after it reports a gap. The first chunk
  // of a stream on which ExpectStartup was never called sets the position without a gap.
  void Add(uint64_t pos, std::span<const std::byte> data);

  // The connection was seen from its first byte (position 0). Frontend: it begins in the
  // untyped startup phase. Backend: it begins synchronised on typed messages. Ignored once data
  // has been added. Default (not called): the stream starts lost and resynchronises (a session
  // picked up mid-way).
  void ExpectStartup();
  // Backend (ignored on the frontend): the next byte, at the next message boundary, is the
  // one-byte answer to an SSLRequest/GSSENCRequest. 'S', 'N' and 'G' are delivered through
  // OnEncryptionResponse; any other byte is decoded as a typed message (an old server's
  // ErrorResponse). On a lost stream this declares the boundary: the stream resynchronises at
  // expected_pos() (immediately if nothing was added yet, else at the start of the next Add,
  // which reports OnResync for the discarded bytes). After 'S'/'G' the bytes are ciphertext;
  // stop feeding the stream or expect it to go lost.
  void ExpectEncryptionResponse();
  // Frontend: startup is over; typed messages follow. The stream also switches by itself once
  // it has read the header of a protocol-3 StartupMessage (before OnStartupPacket is called),
  // so calling this from OnStartupPacket is harmless and optional. SSLRequest, GSSENCRequest and
  // CancelRequest keep the startup phase. Takes effect at the next message boundary.
  void EnterTypedPhase() { typed_phase_ = true; }

  // Next byte position expected (inside a callback: the end of the chunk being added).
  uint64_t expected_pos() const { return expected_pos_; }
  // Boundary unknown, waiting to resync.
  bool lost() const { return state_ == State::kLost; }
  bool typed_phase() const { return typed_phase_; }

  uint64_t gap_bytes() const { return gap_bytes_; }
  uint64_t gaps() const { return gaps_; }
  uint64_t resyncs() const { return resyncs_; }
  uint64_t resync_skipped_bytes() const { return resync_skipped_bytes_; }
  // Units delivered: OnStartupPacket, OnEncryptionResponse, OnMessage and OnSkippedMessage.
  uint64_t messages() const { return messages_; }
  uint64_t skipped_messages() const { return skipped_messages_; }
  // Bytes of chunks that repeated bytes already seen (trimmed).
  uint64_t overlap_bytes() const { return overlap_bytes_; }
  // Heap bytes held by the stream's buffers (capacity), for metrics and tests.
  size_t buffered_bytes() const { return msg_buf_.capacity() + lost_buf_.capacity(); }

 private:
  enum class State : uint8_t {
    kBoundary,  // the next byte starts a message (or the encryption answer)
    kHeader,    // hdr_len_ bytes of a header are held in hdr_
    kBody,      // a message is being buffered in msg_buf_
    kSkip,      // a message's remaining skip_remaining_ bytes are passing unbuffered
    kLost,      // boundary unknown: bytes go to lost_buf_ until a resync point is found
  };
  enum class Verdict : uint8_t { kReject, kPending, kAccept };
  struct Header {
    uint8_t type = 0;  // 0 for a startup packet
    uint32_t length = 0;
    uint64_t wire = 0;  // bytes on the wire, type byte included
    bool startup = false;
    bool skip = false;
  };
  struct TypeTable;

  bool ParseHeader(const std::byte* p, bool startup, Header* out);
  bool ValidTypedHeader(uint8_t type, uint32_t length) const;

  // Synchronised decoding. Returns the unconsumed rest of `in`, which is non-empty only when
  // the stream went lost (it then starts at the offending header).
  std::span<const std::byte> ConsumeSynced(std::span<const std::byte> in);
  bool ConsumeAtBoundary(std::span<const std::byte>* in);
  bool ContinueHeader(std::span<const std::byte>* in);
  void StartFromHeader(const Header& h, size_t header_bytes);
  void ContinueBody(std::span<const std::byte>* in);
  void ContinueSkip(std::span<const std::byte>* in);
  void FinishBody();
  void FinishSkip();

  void HandleGap(uint64_t bytes);
  void TruncateMessage(uint64_t remaining, uint64_t gap);
  void GoLost();
  void ApplyForcedSync();

  // Lost state: buffers `in` (window by window), searches for a resync point and replays the
  // buffered bytes from it. Returns the rest of `in` once synchronised, or empty.
  std::span<const std::byte> FeedLost(std::span<const std::byte> in);
  bool Search(bool at_end, size_t* at);
  Verdict Evaluate(size_t offset, bool at_end);
  bool TilesToEnd(size_t offset);
  void DropRejected();

  void DeliverFrame(uint8_t type, uint32_t length, std::span<const std::byte> body);
  void DeliverStartup(std::span<const std::byte> packet);
  void DeliverSkipped(uint8_t type, uint32_t length, bool complete);
  void RecycleMsgBuf();
  void ReleaseLostBuf();

  const pg::Direction dir_;
  const uint32_t max_body_;
  MessageSink* const sink_;
  const TypeTable* types_;
  std::bitset<256> skip_types_;

  State state_ = State::kLost;
  bool typed_phase_ = true;
  bool fresh_ = true;      // no position known yet: the first chunk sets it
  bool received_ = false;  // Add has been called
  bool in_add_ = false;
  bool enc_expected_ = false;
  bool force_sync_ = false;  // ExpectEncryptionResponse while lost, applied in the next Add
  uint64_t expected_pos_ = 0;

  Header cur_;                   // the message in kBody / kSkip
  bool cur_complete_ = true;     // kSkip: no byte of it was lost
  uint64_t skip_remaining_ = 0;  // kSkip
  size_t want_ = 0;              // kBody: wire size being collected in msg_buf_
  std::byte hdr_[8] = {};        // kHeader; after an invalid split header, the carried bytes
  uint8_t hdr_len_ = 0;
  uint8_t hdr_need_ = 0;
  bool hdr_startup_ = false;
  uint8_t carry_len_ = 0;  // bytes of hdr_ to prepend to the lost window
  std::vector<std::byte> msg_buf_;

  std::vector<std::byte> lost_buf_;  // lost state: contiguous captured bytes, at most kLostWindow
  size_t scan_ = 0;                  // offsets before this in lost_buf_ were rejected
  uint64_t lost_dropped_ = 0;        // bytes discarded in this lost episode before lost_buf_[0]
  size_t memo_valid_at_ = SIZE_MAX;  // lost_buf_ offset whose message last passed validation
  size_t chunk_at_ = SIZE_MAX;       // lost_buf_ offset where the chunk being added began

  uint64_t gap_bytes_ = 0;
  uint64_t gaps_ = 0;
  uint64_t resyncs_ = 0;
  uint64_t resync_skipped_bytes_ = 0;
  uint64_t messages_ = 0;
  uint64_t skipped_messages_ = 0;
  uint64_t overlap_bytes_ = 0;
};

}  // namespace dbw::tap
