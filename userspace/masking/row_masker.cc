// DataRow and free-text rewriting: parse, decide per column, one detector scan per row, then
// copy untouched bytes in runs and re-encode only the values that change.
#include "userspace/masking/row_masker.h"

#include <algorithm>
#include <cstring>

#include "userspace/masking/mask_internal.h"
#include "userspace/masking/rewrite.h"
#include "userspace/masking/validators.h"

namespace dbw::masking {
namespace {

using internal::Action;
using internal::ActiveDetectors;
using internal::AppendDetected;
using internal::AppendRule;
using internal::AppendWithheld;
using internal::Column;
using internal::EnsureStats;
using internal::IsJson;
using internal::kJsonbOid;
using internal::kJsonbVersion;
using internal::kMaxBody;
using internal::RowScratch;

void PutI32(std::string* out, int32_t v) {
  auto u = static_cast<uint32_t>(v);
  char b[4] = {static_cast<char>(u >> 24), static_cast<char>(u >> 16), static_cast<char>(u >> 8),
               static_cast<char>(u)};
  out->append(b, 4);
}

void PatchI32(std::string* out, size_t at, uint32_t v) {
  (*out)[at] = static_cast<char>(v >> 24);
  (*out)[at + 1] = static_cast<char>(v >> 16);
  (*out)[at + 2] = static_cast<char>(v >> 8);
  (*out)[at + 3] = static_cast<char>(v);
}

uint32_t GetU32(const std::byte* p) {
  return (static_cast<uint32_t>(p[0]) << 24) | (static_cast<uint32_t>(p[1]) << 16) |
         (static_cast<uint32_t>(p[2]) << 8) | static_cast<uint32_t>(p[3]);
}

// Writes one DataRow value: a length, then (for binary jsonb) the version byte and what `fill`
// appends; `fill` returning false makes the value NULL.
template <typename Fill>
void WriteValue(std::string* out, bool jsonb_binary, Fill&& fill) {
  size_t at = out->size();
  PutI32(out, 0);
  if (jsonb_binary) out->push_back(kJsonbVersion);
  if (!fill()) {
    out->resize(at);
    PutI32(out, -1);
    return;
  }
  PatchI32(out, at, static_cast<uint32_t>(out->size() - at - 4));
}

// Redact and partial of a text value, the common cases, length included.
void WriteRedacted(std::string* out) {
  // The marker's length and the marker in one append.
  static constexpr char kRedacted[] = "\0\0\0\x0a[redacted]";
  static_assert(sizeof(kRedacted) - 1 == 4 + kRedactMarker.size());
  out->append(kRedacted, sizeof(kRedacted) - 1);
}

void WritePartial(const MaskSpec& spec, std::string_view v, std::string* out) {
  std::string_view kept = internal::PartialKept(v, spec.keep_last, internal::EmailDomainAt(v));
  // The length and the fill in one append, then what is kept.
  const auto n = static_cast<uint32_t>(kPartialFill.size() + kept.size());
  char head[4 + kPartialFill.size()] = {static_cast<char>(n >> 24), static_cast<char>(n >> 16),
                                        static_cast<char>(n >> 8), static_cast<char>(n)};
  std::memcpy(head + 4, kPartialFill.data(), kPartialFill.size());
  out->append(head, sizeof(head));
  out->append(kept);
}

// A column rule's replacement of one DataRow value, length included: binary formats, JSON,
// hash and null (kept out of line so the common cases below stay small).
[[gnu::noinline]] void WriteRuleValueGeneral(const ColumnPlan& cp, std::string_view v,
                                             const KeyedHash& hmac, RowScratch& rs,
                                             std::string* out) {
  const bool binary = cp.format != 0;
  if (binary && !IsTextLike(cp.type_oid)) {
    PutI32(out, -1);  // its binary form cannot carry a marker
    return;
  }
  const bool jsonb_binary = binary && cp.type_oid == kJsonbOid;
  if (jsonb_binary) {
    if (v.empty() || v[0] != kJsonbVersion) {
      PutI32(out, -1);
      return;
    }
    v.remove_prefix(1);
  }
  const bool json = IsJson(cp.type_oid);
  if (!json && cp.rule->function == Function::kRedact) return WriteRedacted(out);
  if (!json && cp.rule->function == Function::kPartial) return WritePartial(*cp.rule, v, out);
  WriteValue(out, jsonb_binary, [&] { return AppendRule(*cp.rule, v, json, hmac, rs, out); });
}

// A column rule's replacement of one DataRow value, length included.
inline void WriteRuleValue(const ColumnPlan& cp, std::string_view v, const KeyedHash& hmac,
                           RowScratch& rs, std::string* out) {
  if (cp.format == 0 && !IsJson(cp.type_oid)) {
    if (cp.rule->function == Function::kRedact) return WriteRedacted(out);
    if (cp.rule->function == Function::kPartial) return WritePartial(*cp.rule, v, out);
  }
  WriteRuleValueGeneral(cp, v, hmac, rs, out);
}

Status CountMismatch(size_t count, size_t expected) {
  return DataLoss("DataRow has " + std::to_string(count) + " columns, RowDescription " +
                  std::to_string(expected));
}

// Column rules only (no detectors): one pass that copies untouched bytes in runs and writes
// the rules' replacements. A malformed body takes back what was appended.
Status MaskWithRules(const ResultPlan& plan, std::span<const std::byte> body, std::string* out,
                     MaskStats* stats) {
  const size_t ncols = plan.columns.size();
  if (body.size() < 2) return DataLoss("DataRow body shorter than its column count");
  size_t count = (static_cast<size_t>(body[0]) << 8) | static_cast<size_t>(body[1]);
  if (count != ncols) return CountMismatch(count, ncols);
  if (body.size() > kMaxBody) return DataLoss("DataRow body too large");
  RowScratch& rs = internal::ThreadRowScratch();
  const char* raw = reinterpret_cast<const char*>(body.data());
  const size_t base = out->size();
  size_t pos = 2, run = 0;  // body bytes before `run` have been written
  for (size_t i = 0; i < ncols; ++i) {
    if (body.size() - pos < 4) {
      out->resize(base);
      return DataLoss("DataRow truncated in column " + std::to_string(i));
    }
    auto len = static_cast<int32_t>(GetU32(body.data() + pos));
    pos += 4;
    if (len == -1) continue;
    if (len < -1 || body.size() - pos < static_cast<size_t>(len)) {
      out->resize(base);
      return DataLoss("DataRow column " + std::to_string(i) + " has a bad length");
    }
    const ColumnPlan& cp = plan.columns[i];
    if (!cp.rule) {
      pos += static_cast<size_t>(len);
      continue;
    }
    out->append(raw + run, pos - 4 - run);
    std::string_view v(raw + pos, static_cast<size_t>(len));
    pos += static_cast<size_t>(len);
    run = pos;
    if (stats != nullptr) ++stats->column_masked[i];
    WriteRuleValue(cp, v, plan.hmac, rs, out);
  }
  if (pos != body.size()) {
    out->resize(base);
    return DataLoss("DataRow has trailing bytes");
  }
  out->append(raw + run, body.size() - run);
  return Status::Ok();
}

Status ParseBody(std::span<const std::byte> body, size_t expected, std::vector<Column>* columns) {
  if (body.size() < 2) return DataLoss("DataRow body shorter than its column count");
  size_t count = (static_cast<size_t>(body[0]) << 8) | static_cast<size_t>(body[1]);
  if (count != expected) return CountMismatch(count, expected);
  if (body.size() > kMaxBody) return DataLoss("DataRow body too large");
  columns->resize(count);
  size_t pos = 2;
  for (size_t i = 0; i < count; ++i) {
    if (body.size() - pos < 4) return DataLoss("DataRow truncated in column " + std::to_string(i));
    auto len = static_cast<int32_t>(GetU32(body.data() + pos));
    pos += 4;
    if (len < -1) return DataLoss("DataRow column " + std::to_string(i) + " has a negative length");
    (*columns)[i] = Column{len, static_cast<uint32_t>(pos)};
    if (len == -1) continue;
    if (body.size() - pos < static_cast<size_t>(len))
      return DataLoss("DataRow column " + std::to_string(i) + " runs past the body");
    pos += static_cast<size_t>(len);
  }
  if (pos != body.size()) return DataLoss("DataRow has trailing bytes");
  return Status::Ok();
}

}  // namespace

bool IsTextLike(uint32_t type_oid) {
  switch (type_oid) {
    case 25:    // text
    case 1043:  // varchar
    case 1042:  // bpchar
    case 19:    // name
    case 18:    // char
    case 114:   // json
    case 142:   // xml
    case 705:   // unknown
    case 3802:  // jsonb
      return true;
    default:
      return false;
  }
}

namespace {

// Element types of the array types whose binary form is decoded (pg_type.typelem).
uint32_t ArrayElement(uint32_t array_oid) {
  switch (array_oid) {
    case 1009:
      return 25;  // text[]
    case 1015:
      return 1043;  // varchar[]
    case 1014:
      return 1042;  // bpchar[]
    case 1003:
      return 19;  // name[]
    case 1002:
      return 18;  // char[]
    case 199:
      return 114;  // json[]
    case 3807:
      return 3802;  // jsonb[]
    case 143:
      return 142;  // xml[]
    case 2287:
      return 2249;  // record[]
    case 1000:
      return 16;  // bool[]
    case 1005:
      return 21;  // int2[]
    case 1007:
      return 23;  // int4[]
    case 1016:
      return 20;  // int8[]
    case 1028:
      return 26;  // oid[]
    case 1021:
      return 700;  // float4[]
    case 1022:
      return 701;  // float8[]
    case 1231:
      return 1700;  // numeric[]
    case 1182:
      return 1082;  // date[]
    case 1115:
      return 1114;  // timestamp[]
    case 1185:
      return 1184;  // timestamptz[]
    case 2951:
      return 2950;  // uuid[]
    default:
      return 0;
  }
}
constexpr uint32_t kRecordOid = 2249;
constexpr int kMaxNesting = 8;

bool ReadI32(std::string_view* v, int32_t* out) {
  if (v->size() < 4) return false;
  const auto* p = reinterpret_cast<const unsigned char*>(v->data());
  *out = static_cast<int32_t>((uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) |
                              (uint32_t{p[2]} << 8) | uint32_t{p[3]});
  v->remove_prefix(4);
  return true;
}

// One element or field: its length (-1: NULL) and bytes, masked as `oid`.
bool MaskElement(const DetectorSet& ds, const KeyedHash& hmac, uint32_t oid, std::string_view* v,
                 std::string* out, MaskStats* stats, int depth) {
  int32_t len = 0;
  if (!ReadI32(v, &len) || len < -1 || static_cast<size_t>(std::max(len, 0)) > v->size())
    return false;
  if (len == -1) {
    PutI32(out, -1);
    return true;
  }
  std::string inner;
  if (!MaskBinaryContainer(ds, hmac, oid, v->substr(0, static_cast<size_t>(len)), &inner, stats,
                           depth + 1))
    return false;
  v->remove_prefix(static_cast<size_t>(len));
  PutI32(out, static_cast<int32_t>(inner.size()));
  out->append(inner);
  return true;
}

}  // namespace

bool MaskBinaryContainer(const DetectorSet& ds, const KeyedHash& hmac, uint32_t oid,
                         std::string_view v, std::string* out, MaskStats* stats, int depth) {
  if (depth > kMaxNesting) return false;
  if (IsBinaryScalar(oid)) {
    out->append(v);
    return true;
  }
  if (IsTextLike(oid)) {
    std::string text(v);
    const bool jsonb = oid == kJsonbOid;
    if (jsonb) {
      if (text.empty() || text[0] != kJsonbVersion) return false;
      text.erase(0, 1);
      out->push_back(kJsonbVersion);
    }
    // A masked span inside JSON stays inside its string: the masks never hold quotes.
    if (!MaskFreeText(ds, hmac, &text, stats)) return false;
    out->append(text);
    return true;
  }
  int32_t n = 0;
  if (oid == kRecordOid) {
    // nfields, then per field: type OID, length, bytes.
    if (!ReadI32(&v, &n) || n < 0 || n > 1664) return false;
    PutI32(out, n);
    for (int32_t i = 0; i < n; ++i) {
      int32_t field_oid = 0;
      if (!ReadI32(&v, &field_oid)) return false;
      PutI32(out, field_oid);
      if (!MaskElement(ds, hmac, static_cast<uint32_t>(field_oid), &v, out, stats, depth))
        return false;
    }
    return v.empty();
  }
  const uint32_t element = ArrayElement(oid);
  if (element == 0) return false;
  // ndim, has-nulls flag, element OID, (dimension, lower bound) per dimension, elements.
  int32_t ndim = 0, flags = 0, elem = 0;
  if (!ReadI32(&v, &ndim) || !ReadI32(&v, &flags) || !ReadI32(&v, &elem) || ndim < 0 || ndim > 6 ||
      static_cast<uint32_t>(elem) != element)
    return false;
  PutI32(out, ndim);
  PutI32(out, flags);
  PutI32(out, elem);
  int64_t count = ndim == 0 ? 0 : 1;
  for (int32_t d = 0; d < ndim; ++d) {
    int32_t size = 0, lower = 0;
    if (!ReadI32(&v, &size) || !ReadI32(&v, &lower) || size < 0) return false;
    count *= size;
    if (count > static_cast<int64_t>(v.size()) / 4 + 1) return false;  // 4 bytes each at least
    PutI32(out, size);
    PutI32(out, lower);
  }
  for (int64_t i = 0; i < count; ++i)
    if (!MaskElement(ds, hmac, element, &v, out, stats, depth)) return false;
  return v.empty();
}

bool IsBinaryScalar(uint32_t type_oid) {
  switch (type_oid) {
    case 16:    // bool
    case 20:    // int8
    case 21:    // int2
    case 23:    // int4
    case 26:    // oid
    case 700:   // float4
    case 701:   // float8
    case 790:   // money
    case 1082:  // date
    case 1083:  // time
    case 1114:  // timestamp
    case 1184:  // timestamptz
    case 1186:  // interval
    case 1266:  // timetz
    case 1700:  // numeric
    case 2950:  // uuid
      return true;
    default:
      return false;
  }
}

bool ResultPlan::active() const {
  if (ActiveDetectors(*this) != nullptr) return true;
  for (const ColumnPlan& c : columns)
    if (c.rule) return true;
  return false;
}

void MaskStats::Resize(size_t columns, size_t detector_rules) {
  column_masked.resize(columns);
  detector_hits.resize(detector_rules);
}

Status MaskDataRow(const ResultPlan& plan, std::span<const std::byte> body, std::string* out,
                   MaskStats* stats) {
  const size_t ncols = plan.columns.size();
  const DetectorSet* ds = ActiveDetectors(plan);
  EnsureStats(stats, ncols, ds != nullptr ? ds->rules().size() : 0);
  if (ds == nullptr) return MaskWithRules(plan, body, out, stats);

  RowScratch& rs = internal::ThreadRowScratch();
  DBW_RETURN_IF_ERROR(ParseBody(body, ncols, &rs.columns));
  auto value_at = [&](const Column& c) {
    return std::string_view(reinterpret_cast<const char*>(body.data()) + c.offset,
                            static_cast<size_t>(c.length));
  };

  rs.actions.assign(ncols, Action::kCopy);
  rs.values.clear();
  bool any = false;
  for (size_t i = 0; i < ncols; ++i) {
    const Column& c = rs.columns[i];
    const ColumnPlan& cp = plan.columns[i];
    if (c.length < 0) continue;  // NULL stays NULL
    if (cp.rule) {
      rs.actions[i] = Action::kRule;
      any = true;
      continue;
    }
    bool binary = cp.format != 0;
    if (ds == nullptr) continue;
    if (binary && !IsTextLike(cp.type_oid)) {
      // Numbers, dates, booleans cannot carry text. Arrays and records are decoded and their
      // text elements scanned (before the row's own scan, which reuses the scratch matches);
      // bytea, tsvector, ranges and user types cannot be read as text: withheld.
      if (IsBinaryScalar(cp.type_oid)) continue;
      if (rs.decoded_values.size() < ncols) rs.decoded_values.resize(ncols);
      std::string& decoded = rs.decoded_values[i];
      decoded.clear();
      if (!MaskBinaryContainer(*ds, plan.hmac, cp.type_oid, value_at(c), &decoded, stats, 0)) {
        rs.actions[i] = Action::kWithhold;
        any = true;
      } else if (decoded != value_at(c)) {
        rs.actions[i] = Action::kDecoded;
        any = true;
      }
      continue;
    }
    std::string_view v = value_at(c);
    if (binary && cp.type_oid == kJsonbOid) {
      if (v.empty() || v[0] != kJsonbVersion) {
        rs.actions[i] = Action::kWithhold;
        any = true;
        continue;
      }
      v.remove_prefix(1);
    }
    rs.actions[i] = Action::kScan;
    rs.values.push_back(v);
  }
  if (!any && rs.values.empty()) {
    out->append(reinterpret_cast<const char*>(body.data()), body.size());
    return Status::Ok();
  }
  rs.matches.clear();
  bool failed = false;
  if (!rs.values.empty()) failed = !ds->Scan(rs.values, &rs.matches).ok();

  const size_t base = out->size();
  out->reserve(base + body.size() + 64);
  const char* raw = reinterpret_cast<const char*>(body.data());
  size_t run = 0;  // body bytes before this offset have been written
  size_t scanned = 0, next_match = 0;
  for (size_t i = 0; i < ncols; ++i) {
    Action action = rs.actions[i];
    if (action == Action::kCopy) continue;
    const Column& c = rs.columns[i];
    std::span<const Match> ms;
    if (action == Action::kScan) {
      size_t first = next_match;
      while (next_match < rs.matches.size() && rs.matches[next_match].value == scanned)
        ++next_match;
      ms = std::span<const Match>(rs.matches).subspan(first, next_match - first);
      ++scanned;
      if (!failed && ms.empty()) continue;  // nothing found: copied with its neighbours
    }
    out->append(raw + run, c.offset - 4 - run);
    run = c.offset + static_cast<size_t>(c.length);

    const ColumnPlan& cp = plan.columns[i];
    const bool binary = cp.format != 0;
    const bool json = IsJson(cp.type_oid);
    const bool jsonb_binary = binary && cp.type_oid == kJsonbOid;
    std::string_view v = value_at(c);
    switch (action) {
      case Action::kRule:
        if (stats != nullptr) ++stats->column_masked[i];
        WriteRuleValue(cp, v, plan.hmac, rs, out);
        break;
      case Action::kScan:
        if (jsonb_binary) v.remove_prefix(1);
        if (failed) {
          if (stats != nullptr) ++stats->withheld;
          WriteValue(out, jsonb_binary, [&] {
            AppendWithheld(json, out);
            return true;
          });
        } else {
          WriteValue(out, jsonb_binary, [&] {
            return AppendDetected(*ds, ms, v, plan.hmac, json, true, rs, out, stats);
          });
        }
        break;
      case Action::kWithhold:
        if (stats != nullptr) ++stats->withheld;
        PutI32(out, -1);
        break;
      case Action::kDecoded:
        PutI32(out, static_cast<int32_t>(rs.decoded_values[i].size()));
        out->append(rs.decoded_values[i]);
        break;
      case Action::kCopy:
        break;
    }
  }
  out->append(raw + run, body.size() - run);
  if (out->size() - base > kMaxBody) {
    out->resize(base);
    return ResourceExhausted("masked DataRow exceeds the message size limit");
  }
  return Status::Ok();
}

bool MaskFreeText(const DetectorSet& detectors, const KeyedHash& hmac, std::string* text,
                  MaskStats* stats) {
  RowScratch& rs = internal::ThreadRowScratch();
  EnsureStats(stats, 0, detectors.rules().size());
  if (detectors.rules().empty()) return true;
  std::string_view value = *text;
  rs.matches.clear();
  if (!detectors.Scan(std::span<const std::string_view>(&value, 1), &rs.matches).ok()) {
    if (stats != nullptr) ++stats->withheld;
    *text = std::string(kRedactMarker);
    return false;
  }
  if (rs.matches.empty()) return true;
  rs.field.clear();
  AppendDetected(detectors, rs.matches, value, hmac, false, false, rs, &rs.field, stats);
  text->assign(rs.field);
  return true;
}

}  // namespace dbw::masking
