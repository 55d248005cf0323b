// Value rewriting shared by the DataRow, COPY and free-text paths: per-thread buffers, rules,
// detected spans, and the care that keeps json/jsonb values valid JSON.
#include "userspace/masking/rewrite.h"

#include "userspace/masking/mask_internal.h"
#include "userspace/masking/validators.h"

namespace dbw::masking::internal {
namespace {

thread_local RowScratch t_row;

// The replacement of one detected span (never NULL: inside text kNull is the marker).
void AppendReplacement(const DetectorRule& rule, std::string_view match, const KeyedHash& hmac,
                       RowScratch& rs, std::string* out) {
  if (rule.mask.function == Function::kHash && hmac) {
    // "4111 1111 ..." and "4111-1111-..." hash alike, so hashed values still join.
    rs.canonical.clear();
    AppendCanonical(rule.detector, match, &rs.canonical);
    AppendHash(rs.canonical, hmac, out);
    return;
  }
  if (!AppendMasked(rule.mask, match, rule.detector == Detector::kEmail, hmac, out))
    out->append(kRedactMarker);
}

bool JsonBareChar(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '+' ||
         c == '-' || c == '.';
}

// Tracks whether a position in a JSON text is inside a string literal.
struct JsonCursor {
  std::string_view text;
  size_t at = 0;
  bool in_string = false;
  bool escaped = false;
  void AdvanceTo(size_t to) {
    for (; at < to; ++at) {
      char c = text[at];
      if (escaped) {
        escaped = false;
      } else if (in_string && c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = !in_string;
      }
    }
  }
};

// JSON values stay JSON: inside a string literal the replacement is spliced in, outside one
// (a number) it becomes a string literal. A match that would cut through JSON structure turns
// the whole document into the marker string.
void AppendDetectedJson(const DetectorSet& ds, std::span<const Match> ms, std::string_view value,
                        const KeyedHash& hmac, RowScratch& rs, std::string* out) {
  JsonCursor check{value};
  for (const Match& m : ms) {
    check.AdvanceTo(m.begin);
    if (check.escaped) return AppendJsonString(kRedactMarker, out);
    for (size_t i = m.begin; i < m.end; ++i) {
      char c = value[i];
      if (c == '"' || c == '\\' || (!check.in_string && !JsonBareChar(c)))
        return AppendJsonString(kRedactMarker, out);
    }
    check.at = m.end;  // no quote or backslash inside: the state is unchanged
  }
  JsonCursor cursor{value};
  size_t pos = 0;
  for (const Match& m : ms) {
    cursor.AdvanceTo(m.begin);
    out->append(value.substr(pos, m.begin - pos));
    rs.masked.clear();
    AppendReplacement(ds.rules()[m.rule], value.substr(m.begin, m.end - m.begin), hmac, rs,
                      &rs.masked);
    if (cursor.in_string) {
      // A kept tail could end in half an escape; such characters are not worth the risk.
      for (char c : rs.masked)
        out->push_back(c == '"' || c == '\\' || static_cast<uint8_t>(c) < 0x20 ? '*' : c);
    } else {
      AppendJsonString(rs.masked, out);
    }
    cursor.at = m.end;
    pos = m.end;
  }
  out->append(value.substr(pos));
}

}  // namespace

RowScratch& ThreadRowScratch() {
  return t_row;
}

const DetectorSet* ActiveDetectors(const ResultPlan& plan) {
  return plan.detectors != nullptr && !plan.detectors->rules().empty() ? plan.detectors : nullptr;
}

void EnsureStats(MaskStats* stats, size_t columns, size_t rules) {
  if (stats == nullptr) return;
  if (stats->column_masked.size() < columns) stats->column_masked.resize(columns);
  if (stats->detector_hits.size() < rules) stats->detector_hits.resize(rules);
}

void AppendJsonString(std::string_view s, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->push_back('"');
  for (char c : s) {
    auto u = static_cast<uint8_t>(c);
    if (c == '"' || c == '\\') {
      out->push_back('\\');
      out->push_back(c);
    } else if (u < 0x20) {
      out->append("\\u00");
      out->push_back(kHex[u >> 4]);
      out->push_back(kHex[u & 0xf]);
    } else {
      out->push_back(c);
    }
  }
  out->push_back('"');
}

// `value` with its detected spans replaced. False (nothing appended) when the whole value is one
// match whose function is kNull and NULL is possible here.
bool AppendDetected(const DetectorSet& ds, std::span<const Match> ms, std::string_view value,
                    const KeyedHash& hmac, bool json, bool allow_null, RowScratch& rs,
                    std::string* out, MaskStats* stats) {
  const std::vector<DetectorRule>& rules = ds.rules();
  if (stats != nullptr)
    for (const Match& m : ms) ++stats->detector_hits[m.rule];
  if (allow_null && ms.size() == 1 && ms[0].begin == 0 && ms[0].end == value.size() &&
      rules[ms[0].rule].mask.function == Function::kNull)
    return false;
  if (json) {
    AppendDetectedJson(ds, ms, value, hmac, rs, out);
    return true;
  }
  size_t pos = 0;
  for (const Match& m : ms) {
    out->append(value.substr(pos, m.begin - pos));
    AppendReplacement(rules[m.rule], value.substr(m.begin, m.end - m.begin), hmac, rs, out);
    pos = m.end;
  }
  out->append(value.substr(pos));
  return true;
}

// A column rule's replacement of a whole value. False: NULL.
bool AppendRule(const MaskSpec& spec, std::string_view text, bool json, const KeyedHash& hmac,
                RowScratch& rs, std::string* out) {
  if (!json && spec.function == Function::kPartial) {
    AppendPartial(text, spec.keep_last, EmailDomainAt(text), out);
    return true;
  }
  bool email = spec.function == Function::kPartial && EmailDomainAt(text) != std::string_view::npos;
  if (!json) return AppendMasked(spec, text, email, hmac, out);
  rs.masked.clear();
  if (!AppendMasked(spec, text, email, hmac, &rs.masked)) return false;
  AppendJsonString(rs.masked, out);
  return true;
}

void AppendWithheld(bool json, std::string* out) {
  if (json) {
    AppendJsonString(kRedactMarker, out);
  } else {
    out->append(kRedactMarker);
  }
}

}  // namespace dbw::masking::internal
