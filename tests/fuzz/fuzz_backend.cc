// libFuzzer target: a server's byte stream through the stream decoder and session state,
// with every whole message also run through its typed parser.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "userspace/protocol/postgres/decoder.h"
#include "userspace/protocol/postgres/parse.h"
#include "userspace/protocol/postgres/session.h"

namespace {

class Handler : public dbw::pg::DecoderHandler, public dbw::pg::SessionObserver {
 public:
  dbw::pg::SessionState state{this};
  dbw::pg::MessageAction OnMessage(dbw::pg::Direction dir, const dbw::pg::Frame& frame,
                                   dbw::pg::Bytes*, std::string* reason) override {
    if (!dbw::pg::ValidateMessage(dir, frame, reason)) return dbw::pg::MessageAction::kReject;
    return state.OnBackend(frame, 1, reason) ? dbw::pg::MessageAction::kForward
                                             : dbw::pg::MessageAction::kReject;
  }
  void OnStreamedMessage(dbw::pg::Direction, uint8_t type, uint32_t length) override {
    state.OnBackendStreamed(type, length, 1);
  }
  void OnExecutionComplete(const dbw::pg::Execution&) override {}
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dbw::pg;
  std::span<const std::byte> in(reinterpret_cast<const std::byte*>(data), size);
  // Captures begin with the one-byte answer to SSLRequest ('N' or 'S'), as a client reads it.
  if (in.size() >= 2 && (data[0] == 'N' || data[0] == 'S') && data[1] == 'R') in = in.subspan(1);
  Handler handler;
  handler.state.AssumeReady();
  StreamDecoder decoder(Direction::kBackend, &handler, 4096);
  Bytes pending, out;
  size_t third = in.size() / 3;
  for (auto piece : {in.first(third), in.subspan(third)}) {
    pending.insert(pending.end(), piece.begin(), piece.end());
    DecodeResult r = decoder.Decode(pending, &out);
    if (r.error) return 0;
    pending.erase(pending.begin(), pending.begin() + static_cast<ptrdiff_t>(r.consumed));
  }
  handler.state.OnClose(2, "end of input");
  return 0;
}
