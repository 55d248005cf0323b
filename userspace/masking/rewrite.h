// Value rewriting shared by DataRow, COPY and free-text masking: per-thread buffers, applying a
// column rule or the detectors' matches to one value, and keeping JSON values JSON. Private to
// the module.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "userspace/masking/detectors.h"
#include "userspace/masking/mask.h"
#include "userspace/masking/row_masker.h"

namespace dbw::masking::internal {

inline constexpr uint32_t kJsonOid = 114;
inline constexpr uint32_t kJsonbOid = 3802;
inline constexpr char kJsonbVersion = 1;
// A rewritten body must still fit a PostgreSQL message (PQ_LARGE_MESSAGE_LIMIT less header).
inline constexpr size_t kMaxBody = 0x3fffffff - 4;

inline bool IsJson(uint32_t oid) {
  return oid == kJsonOid || oid == kJsonbOid;
}

// One DataRow value's place in the body.
struct Column {
  int32_t length = -1;  // -1: NULL
  uint32_t offset = 0;  // of the value bytes in the body
};

// What happens to one value.
enum class Action : uint8_t {
  kCopy,      // forwarded byte for byte (NULLs, columns nothing looks at)
  kRule,      // a column rule replaces it
  kScan,      // the detectors look at it
  kWithhold,  // cannot be read as text (jsonb of an unknown version): NULL
  kDecoded,  // a binary array or record whose text elements were masked: RowScratch::decoded_values
};

// One COPY text field: its bytes in the line, and where its unescaped form is.
struct CopyField {
  uint32_t raw_begin = 0;
  uint32_t raw_end = 0;
  uint32_t decoded_begin = 0;
  uint32_t decoded_end = 0;
  bool null = false;
  bool decoded = false;  // unescaped into RowScratch::decoded (else the raw bytes are the text)
};

// Per-thread buffers reused row after row, so steady-state masking allocates nothing.
struct RowScratch {
  std::vector<Column> columns;
  std::vector<Action> actions;
  std::vector<std::string_view> values;  // scanned values, in column order
  std::vector<Match> matches;
  std::string masked;     // a replacement before JSON quoting or COPY escaping
  std::string canonical;  // a detected value before hashing
  std::string field;      // a COPY field or free text before it is written out
  std::string decoded;    // COPY: unescaped fields
  std::vector<CopyField> fields;
  std::vector<std::string> decoded_values;  // kDecoded: the rewritten binary value, by column
};
RowScratch& ThreadRowScratch();

// The plan's detectors when there are any rules to run, else null.
const DetectorSet* ActiveDetectors(const ResultPlan& plan);
// Grows the stats' vectors to the plan's shape (never shrinks: callers may size them first).
void EnsureStats(MaskStats* stats, size_t columns, size_t rules);

void AppendJsonString(std::string_view s, std::string* out);
// `value` with its detected spans `ms` replaced (counted in stats->detector_hits). False, with
// nothing appended, when the whole value is one match whose function is kNull and `allow_null`.
bool AppendDetected(const DetectorSet& ds, std::span<const Match> ms, std::string_view value,
                    const KeyedHash& hmac, bool json, bool allow_null, RowScratch& rs,
                    std::string* out, MaskStats* stats);
// A column rule's replacement of a whole value (a JSON string literal for json types). False:
// NULL.
bool AppendRule(const MaskSpec& spec, std::string_view text, bool json, const KeyedHash& hmac,
                RowScratch& rs, std::string* out);
// The marker for a value that could not be scanned (a JSON string literal for json types).
void AppendWithheld(bool json, std::string* out);

}  // namespace dbw::masking::internal
