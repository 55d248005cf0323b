// Rewrites result data with masks applied: DataRow bodies (text and binary format), COPY text
// rows, and the text fields of ErrorResponse/NoticeResponse. Pure functions over bytes.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "userspace/common/status.h"
#include "userspace/masking/detectors.h"
#include "userspace/masking/mask.h"

namespace dbw::masking {

// Text-like types whose values are masked in both formats (their binary form is the text):
// text, varchar, bpchar, name, char, json, xml, unknown, and jsonb (binary: version byte 1
// then the text). Any other type in binary format is never scanned; a column rule on it makes
// the value NULL.
bool IsTextLike(uint32_t type_oid);
// Types whose binary form holds a number, date, boolean or UUID only: nothing to scan.
bool IsBinaryScalar(uint32_t type_oid);

struct ColumnPlan {
  std::optional<MaskSpec> rule;  // a column rule applies to this column
  uint32_t type_oid = 0;
  int16_t format = 0;  // 0 text, 1 binary (from RowDescription)
};

// How one result set is masked. Detectors scan every column in text format and every text-like
// column in binary format that no column rule already masks.
struct ResultPlan {
  std::vector<ColumnPlan> columns;
  const DetectorSet* detectors = nullptr;  // null: no content detection
  KeyedHash hmac;
  bool active() const;  // anything to do at all
};

// Per result set, for the audit event: never values, only counts.
struct MaskStats {
  std::vector<uint64_t> column_masked;  // per column: values a column rule masked
  std::vector<uint64_t> detector_hits;  // per detector rule (DetectorSet::rules() order)
  uint64_t withheld = 0;                // values withheld because masking could not be applied
  void Resize(size_t columns, size_t detector_rules);
};

// One DataRow body (int16 column count, then per column int32 length or -1, bytes) to the
// masked body, appended to *out. A body that does not match the plan's column count or is
// malformed is kDataLoss and appends nothing. json/jsonb values stay valid JSON: a replacement
// outside a JSON string literal is itself written as a string literal. When the detectors fail,
// every value they should have scanned is withheld (text: kRedactMarker; binary non-text: NULL) and
// counted.
Status MaskDataRow(const ResultPlan& plan, std::span<const std::byte> body, std::string* out,
                   MaskStats* stats);

// One line of COPY ... TO STDOUT in text format (tab-separated, \N for NULL, backslash
// escapes, the trailing newline included) to the masked line, appended to *out; fields that
// change are re-escaped, the others are copied as the server wrote them. A field ending in a
// lone backslash is kDataLoss and appends nothing. Columns
// beyond the plan's count are scanned by detectors only.
Status MaskCopyTextRow(const ResultPlan& plan, std::string_view line, std::string* out,
                       MaskStats* stats);

// Masks what the detectors find inside free text (ErrorResponse/NoticeResponse message and
// detail: a unique violation quotes the offending value). Returns false when the detectors
// failed, in which case *text is replaced by kRedactMarker.
bool MaskFreeText(const DetectorSet& detectors, const KeyedHash& hmac, std::string* text,
                  MaskStats* stats);

// The binary form of a value of type `oid` with every text inside (array elements, record
// fields, nested) passed through the detectors, appended to *out. False when it cannot be read
// that way (bytea, tsvector, ranges, user types, arrays of those, malformed bytes): withhold.
bool MaskBinaryContainer(const DetectorSet& detectors, const KeyedHash& hmac, uint32_t oid,
                         std::string_view value, std::string* out, MaskStats* stats, int depth);

}  // namespace dbw::masking
