// COPY ... TO STDOUT text rows: fields split on tabs, unescaped, masked like DataRow values, and
// only the fields that change re-escaped.
#include "userspace/masking/rewrite.h"
#include "userspace/masking/row_masker.h"

namespace dbw::masking {
namespace {

using internal::Action;
using internal::CopyField;
using internal::RowScratch;

bool DecodeCopyField(std::string_view raw, std::string* out) {
  auto octal = [](char c) { return c >= '0' && c <= '7'; };
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < raw.size(); ++i) {
    char c = raw[i];
    if (c != '\\') {
      out->push_back(c);
      continue;
    }
    if (++i == raw.size()) return false;  // a lone trailing backslash
    c = raw[i];
    switch (c) {
      case 'b':
        out->push_back('\b');
        break;
      case 'f':
        out->push_back('\f');
        break;
      case 'n':
        out->push_back('\n');
        break;
      case 'r':
        out->push_back('\r');
        break;
      case 't':
        out->push_back('\t');
        break;
      case 'v':
        out->push_back('\v');
        break;
      case 'x':
        // As COPY FROM reads it: \x with one or two hex digits is a byte, else a plain 'x'.
        if (i + 1 < raw.size() && hex(raw[i + 1]) >= 0) {
          int v = hex(raw[++i]);
          if (i + 1 < raw.size() && hex(raw[i + 1]) >= 0) v = v * 16 + hex(raw[++i]);
          out->push_back(static_cast<char>(v));
        } else {
          out->push_back('x');
        }
        break;
      default:
        if (octal(c)) {
          int v = c - '0';
          for (int n = 1; n < 3 && i + 1 < raw.size() && octal(raw[i + 1]); ++n)
            v = v * 8 + (raw[++i] - '0');
          out->push_back(static_cast<char>(v & 0xff));
        } else {
          out->push_back(c);  // \\ and any other escaped character stand for themselves
        }
    }
  }
  return true;
}

// Escapes as COPY TO does (CopyAttributeOutText).
void EncodeCopyField(std::string_view v, std::string* out) {
  for (char c : v) {
    switch (c) {
      case '\\':
        out->append("\\\\");
        break;
      case '\b':
        out->append("\\b");
        break;
      case '\f':
        out->append("\\f");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      case '\v':
        out->append("\\v");
        break;
      default:
        out->push_back(c);
    }
  }
}

}  // namespace

Status MaskCopyTextRow(const ResultPlan& plan, std::string_view line, std::string* out,
                       MaskStats* stats) {
  RowScratch& rs = internal::ThreadRowScratch();
  std::string_view content = line;
  const bool newline = !content.empty() && content.back() == '\n';
  if (newline) content.remove_suffix(1);
  if (content == "\\." || !plan.active() || content.size() > internal::kMaxBody) {
    // The end-of-data marker, or nothing to do; oversized lines are not split into fields.
    if (content.size() > internal::kMaxBody) return DataLoss("COPY row too large");
    out->append(line);
    return Status::Ok();
  }
  const DetectorSet* ds = internal::ActiveDetectors(plan);
  internal::EnsureStats(stats, plan.columns.size(), ds != nullptr ? ds->rules().size() : 0);

  rs.fields.clear();
  rs.decoded.clear();
  for (size_t start = 0, i = 0; i <= content.size(); ++i) {
    if (i < content.size() && content[i] != '\t') continue;
    CopyField f;
    f.raw_begin = static_cast<uint32_t>(start);
    f.raw_end = static_cast<uint32_t>(i);
    std::string_view raw = content.substr(start, i - start);
    if (raw == "\\N") {
      f.null = true;
    } else if (raw.find('\\') != std::string_view::npos) {
      f.decoded = true;
      f.decoded_begin = static_cast<uint32_t>(rs.decoded.size());
      if (!DecodeCopyField(raw, &rs.decoded))
        return DataLoss("COPY field " + std::to_string(rs.fields.size()) + " ends in a backslash");
      f.decoded_end = static_cast<uint32_t>(rs.decoded.size());
    }
    rs.fields.push_back(f);
    start = i + 1;
  }
  auto text_of = [&](const CopyField& f) {
    return f.decoded ? std::string_view(rs.decoded)
                           .substr(f.decoded_begin, f.decoded_end - f.decoded_begin)
                     : content.substr(f.raw_begin, f.raw_end - f.raw_begin);
  };

  const size_t nfields = rs.fields.size();
  rs.actions.assign(nfields, Action::kCopy);
  rs.values.clear();
  for (size_t i = 0; i < nfields; ++i) {
    if (rs.fields[i].null) continue;
    if (i < plan.columns.size() && plan.columns[i].rule) {
      rs.actions[i] = Action::kRule;
    } else if (ds != nullptr) {
      rs.actions[i] = Action::kScan;
      rs.values.push_back(text_of(rs.fields[i]));
    }
  }
  rs.matches.clear();
  bool failed = false;
  if (!rs.values.empty()) failed = !ds->Scan(rs.values, &rs.matches).ok();

  size_t scanned = 0, next_match = 0;
  for (size_t i = 0; i < nfields; ++i) {
    if (i > 0) out->push_back('\t');
    const CopyField& f = rs.fields[i];
    std::string_view raw = content.substr(f.raw_begin, f.raw_end - f.raw_begin);
    Action action = rs.actions[i];
    bool json = i < plan.columns.size() && internal::IsJson(plan.columns[i].type_oid);
    rs.field.clear();
    bool not_null = true;
    if (action == Action::kRule) {
      if (stats != nullptr && i < stats->column_masked.size()) ++stats->column_masked[i];
      not_null =
          internal::AppendRule(*plan.columns[i].rule, text_of(f), json, plan.hmac, rs, &rs.field);
    } else if (action == Action::kScan) {
      size_t first = next_match;
      while (next_match < rs.matches.size() && rs.matches[next_match].value == scanned)
        ++next_match;
      std::span<const Match> ms =
          std::span<const Match>(rs.matches).subspan(first, next_match - first);
      ++scanned;
      if (failed) {
        if (stats != nullptr) ++stats->withheld;
        internal::AppendWithheld(json, &rs.field);
      } else if (ms.empty()) {
        action = Action::kCopy;
      } else {
        not_null = internal::AppendDetected(*ds, ms, text_of(f), plan.hmac, json, true, rs,
                                            &rs.field, stats);
      }
    }
    if (action == Action::kCopy) {
      out->append(raw);  // exactly as the server escaped it
    } else if (!not_null) {
      out->append("\\N");
    } else {
      EncodeCopyField(rs.field, out);
    }
  }
  if (newline) out->push_back('\n');
  return Status::Ok();
}

}  // namespace dbw::masking
