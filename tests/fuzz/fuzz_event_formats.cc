// libFuzzer target: arbitrary bytes as a stored audit event, rendered in every export format.
// Rendering must never crash; what renders as OCSF or ECS must parse as JSON and stay one line;
// CEF must never carry a raw line break (it would split the record for a receiver).
#include <simdjson.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "userspace/audit/event_formats.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using dbw::audit::EventFormat;
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto native = dbw::audit::RenderEvent(EventFormat::kNative, bytes);
  if (!native.ok() || *native != bytes) __builtin_trap();
  for (EventFormat f : {EventFormat::kOcsf, EventFormat::kEcs, EventFormat::kCef}) {
    auto out = dbw::audit::RenderEvent(f, bytes);
    if (!out.ok()) continue;
    if (out->find('\n') != std::string::npos || out->find('\r') != std::string::npos)
      __builtin_trap();
    if (f == EventFormat::kCef) {
      if (!out->starts_with("CEF:0|dbwarden|dbwarden|")) __builtin_trap();
      continue;
    }
    static simdjson::dom::parser parser;
    simdjson::dom::element doc;
    if (parser.parse(*out).get(doc) != simdjson::SUCCESS || !doc.is_object()) __builtin_trap();
  }
  return 0;
}
