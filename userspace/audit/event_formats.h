// The audit event in the schemas SIEMs read: dbwarden's own JSON (native), OCSF 1.x class 6005
// Datastore Activity, Elastic Common Schema and ArcSight CEF. Each is rendered from the event as
// the store serves it (StoredEvent::json: the native JSON with seq, prev_hash and hash), so the
// API's ?format= and the exporters render exactly the same bytes. Field tables: docs/export.md.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "userspace/common/status.h"

namespace dbw::audit {

enum class EventFormat : uint8_t { kNative, kOcsf, kEcs, kCef };

// "native" | "ocsf" | "ecs" | "cef"; anything else is kInvalidArgument naming the choices.
StatusOr<EventFormat> ParseEventFormat(std::string_view name);
const char* EventFormatName(EventFormat format);

// One stored event in `format`, one line, no trailing newline. kNative returns the input as it
// is, unchecked (the API's default answer stays the store's bytes). The result always carries the
// event's seq (receivers de-duplicate at-least-once delivery by it) and its hash. An input that is
// not a JSON object with a numeric seq is kInvalidArgument.
StatusOr<std::string> RenderEvent(EventFormat format, std::string_view native_json);

}  // namespace dbw::audit
