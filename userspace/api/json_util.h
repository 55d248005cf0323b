// RapidJSON helpers shared by the API's response builders.
#pragma once

#include <string_view>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "userspace/common/status.h"

namespace dbw::api {

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

inline void JsonString(JsonWriter* w, std::string_view s) {
  w->String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}
inline void JsonKeyString(JsonWriter* w, const char* key, std::string_view s) {
  w->Key(key);
  JsonString(w, s);
}
// An already-serialised JSON value (an event as the store keeps it).
inline void JsonRaw(JsonWriter* w, std::string_view json, rapidjson::Type type) {
  w->RawValue(json.data(), json.size(), type);
}
// HTTP status for a failed store call.
inline unsigned StatusHttp(const Status& s) {
  switch (s.code()) {
    case StatusCode::kInvalidArgument:
    case StatusCode::kOutOfRange:
      return 400;
    case StatusCode::kNotFound:
      return 404;
    case StatusCode::kUnavailable:
    case StatusCode::kResourceExhausted:
      return 503;
    default:
      return 500;
  }
}

}  // namespace dbw::api
