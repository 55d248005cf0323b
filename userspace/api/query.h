// Pure parsing for the HTTP API: request targets, query strings (percent-decoding, repeated
// keys), times and durations, limits, event filters and the stream cursor. No sockets.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "userspace/audit/event_formats.h"
#include "userspace/audit/store.h"
#include "userspace/common/status.h"

namespace dbw::api {

// Decoded query parameters in the order they appeared; a key may repeat.
class QueryParams {
 public:
  void Add(std::string key, std::string value) {
    items_.emplace_back(std::move(key), std::move(value));
  }
  // The value of `key`, or nullopt; a key given twice is an error (filters take one value).
  StatusOr<std::optional<std::string>> Single(std::string_view key) const;
  std::vector<std::string> All(std::string_view key) const;
  const std::vector<std::pair<std::string, std::string>>& items() const { return items_; }
  // Fails naming the first key that is not in `allowed`.
  Status OnlyKeys(const std::vector<std::string_view>& allowed) const;

 private:
  std::vector<std::pair<std::string, std::string>> items_;
};

// Decodes %XX escapes and '+' (as a space, per application/x-www-form-urlencoded). A '%' not
// followed by two hex digits and a decoded NUL byte are errors.
StatusOr<std::string> PercentDecode(std::string_view in);
std::string PercentEncode(std::string_view in);  // unreserved characters kept, rest %XX

// Splits "a=1&b=&c" into decoded pairs ("c" has an empty value). Empty segments are skipped.
StatusOr<QueryParams> ParseQueryString(std::string_view query);

// "/v1/events?x=1" → path "/v1/events" (percent-decoded) and the raw query "x=1".
struct Target {
  std::string path;
  std::string query;
};
StatusOr<Target> SplitTarget(std::string_view target);

// "15m", "2h", "7d", "30s", "500ms", "1w": a positive duration. Bare numbers are rejected.
StatusOr<std::chrono::milliseconds> ParseDuration(std::string_view text);
// RFC 3339 ("2024-05-01T12:00:00Z", fractional seconds, "+02:00" offsets) or a relative
// duration meaning now minus it. Microseconds since the epoch.
StatusOr<int64_t> ParseTime(std::string_view text, int64_t now_us);
// A decimal in [1, max]; `name` is used in the error.
StatusOr<size_t> ParseLimit(std::string_view name, std::string_view text, size_t max);
// A decimal sequence number.
StatusOr<uint64_t> ParseSeq(std::string_view name, std::string_view text);

// ?format=native|ocsf|ecs|cef (absent: native); anything else is an error naming the choices.
StatusOr<audit::EventFormat> ParseFormatParam(const QueryParams& params);

// The filters of GET /v1/events (and of the CLI), validated.
struct EventsQuery {
  audit::EventFilter filter;
  size_t limit = 100;
  std::string cursor;  // the store's opaque cursor, passed through
  audit::EventFormat format = audit::EventFormat::kNative;  // ?format=
};
inline constexpr size_t kDefaultEventsLimit = 100;
inline constexpr size_t kMaxEventsLimit = 1000;
StatusOr<EventsQuery> ParseEventsQuery(const QueryParams& params, int64_t now_us);

// The stream cursor: opaque to clients, encodes the last sequence number delivered. It names a
// position in the log, not a server-side state, so it survives restarts of the agent.
std::string EncodeStreamCursor(uint64_t last_seq);
StatusOr<uint64_t> DecodeStreamCursor(std::string_view cursor);

struct StreamQuery {
  uint64_t after_seq = 0;
  std::chrono::milliseconds wait{0};
  size_t limit = 500;
  audit::EventFormat format = audit::EventFormat::kNative;  // ?format=
};
inline constexpr std::chrono::milliseconds kMaxStreamWait{60'000};
inline constexpr size_t kDefaultStreamLimit = 500;
inline constexpr size_t kMaxStreamLimit = 5000;
StatusOr<StreamQuery> ParseStreamQuery(const QueryParams& params);

}  // namespace dbw::api
