// libFuzzer target: a client's byte stream as the relay sees it (startup packets, then typed
// messages through the stream decoder and the session state machine).
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
  dbw::pg::MessageAction OnMessage(dbw::pg::Direction, const dbw::pg::Frame& frame, dbw::pg::Bytes*,
                                   std::string* reason) override {
    return state.OnFrontend(frame, 1, reason) ? dbw::pg::MessageAction::kForward
                                              : dbw::pg::MessageAction::kReject;
  }
  void OnStreamedMessage(dbw::pg::Direction, uint8_t type, uint32_t length) override {
    state.OnFrontendStreamed(type, length, 1);
  }
  void OnExecutionComplete(const dbw::pg::Execution&) override {}
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dbw::pg;
  std::span<const std::byte> in(reinterpret_cast<const std::byte*>(data), size);
  Handler handler;
  // Startup packets first, as the relay reads them.
  while (true) {
    Frame f;
    std::string error;
    if (ParseFrame(Direction::kFrontend, true, &in, &f, &error) != ParseState::kOk) return 0;
    StartupPacket p;
    if (!ParseStartupPacket(f.body, &p, &error)) return 0;
    if (p.kind == StartupKind::kStartup) {
      handler.state.OnStartup(p.startup);
      break;
    }
    if (p.kind == StartupKind::kCancel) return 0;
  }
  // Split the rest in two reads to exercise partial messages.
  StreamDecoder decoder(Direction::kFrontend, &handler, 4096);
  Bytes pending, out;
  size_t half = in.size() / 2;
  for (auto piece : {in.first(half), in.subspan(half)}) {
    pending.insert(pending.end(), piece.begin(), piece.end());
    DecodeResult r = decoder.Decode(pending, &out);
    if (r.error) return 0;
    pending.erase(pending.begin(), pending.begin() + static_cast<ptrdiff_t>(r.consumed));
  }
  handler.state.OnClose(2, "end of input");
  return 0;
}
