// ResultMasking: plans from RowDescription/CopyOutResponse, masked rows and messages, and the
// per-statement counts for the audit event.
#include "userspace/relay/result_masking.h"

#include "userspace/protocol/postgres/parse.h"

namespace dbw::relay {
namespace {

// Fields of one COPY text-format line: delimiters not escaped by a backslash, plus one.
size_t TextFieldCount(std::string_view line, char delimiter) {
  size_t fields = 1;
  for (size_t i = 0; i < line.size(); ++i) {
    if (line[i] == '\\') {
      ++i;  // the escaped character, a delimiter included
    } else if (line[i] == delimiter) {
      ++fields;
    }
  }
  return fields;
}

// Fields of one COPY CSV line: delimiters outside quoted fields, plus one. Inside quotes the
// quote character is doubled, or preceded by the escape character when that differs.
size_t CsvFieldCount(std::string_view line, char delimiter, char quote, char escape) {
  size_t fields = 1;
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (quoted) {
      if (escape != quote && c == escape && i + 1 < line.size() &&
          (line[i + 1] == quote || line[i + 1] == escape)) {
        ++i;
      } else if (c == quote) {
        if (i + 1 < line.size() && line[i + 1] == quote) {
          ++i;  // a doubled quote
        } else {
          quoted = false;
        }
      }
    } else if (c == quote) {
      quoted = true;
    } else if (c == delimiter) {
      ++fields;
    }
  }
  return fields;
}

// Re-frames a rewritten body as a message of `type`.
void AppendMessage(uint8_t type, std::string_view body, pg::Bytes* out) {
  uint32_t len = static_cast<uint32_t>(body.size() + 4);
  out->push_back(static_cast<std::byte>(type));
  for (int shift = 24; shift >= 0; shift -= 8) out->push_back(static_cast<std::byte>(len >> shift));
  const auto* p = reinterpret_cast<const std::byte*>(body.data());
  out->insert(out->end(), p, p + body.size());
}

// Rule for values nobody could resolve: withheld, whatever their content.
constexpr std::string_view kWithheldRule = "catalog-unavailable";
masking::MaskSpec Withhold() {
  masking::MaskSpec m;
  m.function = masking::Function::kRedact;
  m.rule_id = kWithheldRule;
  return m;
}

void Add(std::vector<std::pair<std::string, uint64_t>>* counts, const std::string& name,
         uint64_t n) {
  if (n == 0) return;
  for (auto& [k, v] : *counts)
    if (k == name) {
      v += n;
      return;
    }
  counts->emplace_back(name, n);
}

}  // namespace

void ResultMasking::SetProfile(std::shared_ptr<const policy::MaskingProfile> profile,
                               masking::KeyedHash hmac) {
  // Results already in flight keep the plan (and the detectors) they were built with:
  // plan_profile_ holds that profile until the next plan is built.
  profile_ = std::move(profile);
  hmac_ = std::move(hmac);
}

void ResultMasking::BuildPlan(const Description& fields, bool bind_formats,
                              const std::vector<int16_t>* formats) {
  plan_profile_ = profile_;
  const bool detectors_failed = profile_->detectors_failed();
  plan_.columns.clear();
  column_names_.clear();
  for (size_t i = 0; i < fields.size(); ++i) {
    const Field& f = fields[i];
    masking::ColumnPlan c;
    c.type_oid = f.type_oid;
    c.format = f.format;
    if (bind_formats) {  // a Bind's codes: none = all text, one = for every column
      c.format = formats == nullptr || formats->empty() ? 0
                 : formats->size() == 1                 ? (*formats)[0]
                 : i < formats->size()                  ? (*formats)[i]
                                                        : 0;
    }
    std::string name = f.name;
    if (f.table_oid == 0) {
      if (const masking::MaskSpec* m = profile_->ForResultName(f.name)) c.rule = *m;
    } else if (f.table_oid >= kFirstNormalObjectId && f.column > 0 &&
               profile_->has_column_rules()) {  // system columns (xmin, ctid) hold no user data
      auto found = catalog_ ? catalog_->Find(f.table_oid, f.column) : std::nullopt;
      if (!found) {
        // A relation created after the catalog was read, or no catalog at all: fail closed.
        c.rule = Withhold();
        catalog_miss_ = true;
        name = "oid " + std::to_string(f.table_oid) + "." + std::to_string(f.column);
      } else {
        const CatalogRelation& rel = *found->first;
        name = rel.schema + "." + rel.name + "." + *found->second;
        if (const masking::MaskSpec* m = profile_->ForColumn(rel.schema, rel.name, *found->second))
          c.rule = *m;
      }
    }
    // A masked value of a non-text type would not parse as that type (drivers decode text
    // results by type OID too), so it becomes NULL in both formats.
    if (c.rule && !masking::IsTextLike(c.type_oid)) c.rule->function = masking::Function::kNull;
    // Detectors that could not be compiled: withhold what they would have scanned.
    if (detectors_failed && !c.rule && (c.format == 0 || masking::IsTextLike(c.type_oid)))
      c.rule = Withhold();
    plan_.columns.push_back(std::move(c));
    column_names_.push_back(std::move(name));
  }
  plan_.detectors = profile_->detectors();
  plan_.hmac = hmac_;
  ResetStats();
  have_plan_ = true;
}

bool ResultMasking::OnRowDescription(const pg::Frame& frame, const pg::ResultSource& source,
                                     pg::Bytes* out, std::string* reason) {
  Accumulate();
  pg::RowDescriptionMessage rd;
  if (!pg::ParseRowDescription(frame.body, &rd, reason)) return false;
  Description fields;
  fields.reserve(rd.fields.size());
  for (const pg::FieldDescription& f : rd.fields)
    fields.push_back({std::string(f.name), f.table_oid, f.column, f.type_oid, f.format});
  BuildPlan(fields, false, nullptr);
  plan_key_ = 0;
  copy_binary_ = false;
  // Kept for rows that come later without a RowDescription of their own (an Execute of a
  // statement described at prepare time). Bounded: drivers reuse a few names.
  constexpr size_t kMaxKept = 1024;
  if (source.kind == pg::ResultSource::Kind::kStatement) {
    if (statement_desc_.size() >= kMaxKept) statement_desc_.clear();
    statement_desc_[source.statement_serial] = std::move(fields);
  } else if (source.kind == pg::ResultSource::Kind::kPortal) {
    // Also the description of the portal's statement: later Binds of it may not Describe
    // (pgjdbc describes the portal once, then only binds and executes).
    if (portal_desc_.size() >= kMaxKept) portal_desc_.clear();
    if (statement_desc_.size() >= kMaxKept) statement_desc_.clear();
    statement_desc_[source.statement_serial] = fields;
    portal_desc_[source.portal_serial] = std::move(fields);
    plan_key_ = source.portal_serial;
  }
  pg::AppendFrame(out, frame);
  return true;
}

bool ResultMasking::SelectPlan(const pg::ResultSource& source) {
  // kNone: rows of a portal the relay cannot name (a SQL cursor executed at protocol level):
  // no plan, so the caller withholds them.
  if (source.kind == pg::ResultSource::Kind::kNone) return false;
  if (source.kind != pg::ResultSource::Kind::kPortal) return have_plan_;
  if (have_plan_ && plan_key_ == source.portal_serial) return true;
  Accumulate();
  if (auto it = portal_desc_.find(source.portal_serial); it != portal_desc_.end()) {
    BuildPlan(it->second, false, nullptr);
  } else if (auto st = statement_desc_.find(source.statement_serial); st != statement_desc_.end()) {
    BuildPlan(st->second, true, source.result_formats.get());
  } else {
    have_plan_ = false;
    return false;
  }
  plan_key_ = source.portal_serial;
  return true;
}

bool ResultMasking::OnDataRow(const pg::Frame& frame, const pg::ResultSource& source,
                              pg::Bytes* out, std::string* reason) {
  bool have = SelectPlan(source);
  size_t count = frame.body.size() >= 2 ? (std::to_integer<size_t>(frame.body[0]) << 8) |
                                              std::to_integer<size_t>(frame.body[1])
                                        : 0;
  if (!have || plan_.columns.size() != count) {
    // Rows whose RowDescription this relay did not see: without the column layout every value
    // is withheld rather than guessed at.
    pg::DataRowMessage row;
    if (!pg::ParseDataRow(frame.body, &row, reason)) return false;
    // NULL: the types are unknown too, and a marker would not parse as a binary int.
    std::vector<std::optional<std::span<const std::byte>>> values(row.values.size());
    for (const auto& v : row.values) withheld_ += v ? 1 : 0;
    pg::AppendDataRow(out, values);
    return true;
  }
  scratch_.clear();
  Status st = masking::MaskDataRow(plan_, frame.body, &scratch_, &stats_);
  if (!st.ok()) {
    *reason = "DataRow does not match its RowDescription: " + st.message();
    return false;
  }
  AppendMessage(pg::be::kDataRow, scratch_, out);
  return true;
}

bool ResultMasking::OnCopyOutResponse(const pg::Frame& frame, const sql::StatementFacts* copy,
                                      bool masked_in_sql, pg::Bytes* out, std::string* reason) {
  Accumulate();
  pg::CopyResponseMessage m;
  if (!pg::ParseCopyResponse(frame.body, &m, reason)) return false;
  copy_binary_ = m.format != 0;
  copy_withhold_ = false;
  copy_scan_lines_ = masked_in_sql;
  if (masked_in_sql) {
    // Masked columns were masked in the statement itself: the lines only go through the
    // detectors, whatever their format, options or columns.
    copy_header_pending_ = false;
    have_plan_ = false;
    pg::AppendFrame(out, frame);
    return true;
  }
  copy_csv_ = copy != nullptr && copy->copy_csv;
  copy_delimiter_ = copy != nullptr ? copy->copy_delimiter : '\t';
  copy_quote_ = copy != nullptr ? copy->copy_quote : '"';
  copy_escape_ = copy != nullptr ? copy->copy_escape : '"';
  copy_header_pending_ = copy != nullptr && copy->copy_header;
  plan_key_ = 0;  // a suspended portal resumed later must not reuse this plan
  plan_profile_ = profile_;
  plan_.columns.clear();
  column_names_.clear();
  // COPY table [(columns)] TO STDOUT: fields are the listed columns, or the table's in attribute
  // order. COPY (query) and anything the catalog cannot name are not tied to columns.
  const CatalogRelation* rel = nullptr;
  const sql::TableRef* table = nullptr;
  if (copy != nullptr && !copy->copy_query && copy->tables_read.size() == 1)
    table = &copy->tables_read.front();
  if (table != nullptr && catalog_) {
    for (const auto& [oid, r] : catalog_->relations)
      if (r.name == table->name && (table->schema.empty() || r.schema == table->schema) &&
          (rel == nullptr || r.schema == "public"))
        rel = &r;  // unqualified: public first (the usual search_path)
  }
  auto add = [&](const std::string& col) {
    masking::ColumnPlan c;
    c.type_oid = 25;  // COPY text: every field is text
    if (const masking::MaskSpec* s = profile_->ForColumn(rel->schema, rel->name, col)) c.rule = *s;
    plan_.columns.push_back(std::move(c));
    column_names_.push_back(rel->schema + "." + rel->name + "." + col);
  };
  if (rel != nullptr) {
    if (copy->copy_columns.empty()) {
      for (const std::string& col : rel->columns)
        if (!col.empty()) add(col);  // dropped attributes are not copied
    } else {
      for (const std::string& col : copy->copy_columns) add(col);
    }
  } else if (profile_->has_column_rules()) {
    // Column rules exist but the fields cannot be tied to columns: withhold every field.
    copy_withhold_ = true;
    catalog_miss_ = table != nullptr;
  }
  // The field masker reads text format split on tabs. CSV, or text with another delimiter,
  // cannot be split by it: every field is withheld (fail closed) rather than misread.
  if (copy_csv_ || copy_delimiter_ != '\t') copy_withhold_ = true;
  plan_.detectors = profile_->detectors();
  plan_.hmac = hmac_;
  ResetStats();
  have_plan_ = true;
  pg::AppendFrame(out, frame);
  return true;
}

bool ResultMasking::OnCopyData(const pg::Frame& frame, pg::Bytes* out, std::string* reason) {
  if (copy_binary_) {
    *reason = "binary COPY output cannot be masked";
    return false;
  }
  scratch_.clear();
  std::string_view line(reinterpret_cast<const char*>(frame.body.data()), frame.body.size());
  if (copy_scan_lines_) {
    if (profile_->detectors() == nullptr && !profile_->detectors_failed()) {
      pg::AppendFrame(out, frame);
      return true;
    }
    scratch_.assign(line);
    MaskText(&scratch_);
    AppendMessage(pg::be::kCopyData, scratch_, out);
    return true;
  }
  if (copy_header_pending_) {
    // HEADER: the first line holds column names, not data.
    copy_header_pending_ = false;
    pg::AppendFrame(out, frame);
    return true;
  }
  if (copy_withhold_ || !have_plan_) {
    // Every field becomes NULL (\N in text, an empty unquoted field in CSV); the line keeps
    // its shape.
    std::string_view content = line;
    const bool newline = !content.empty() && content.back() == '\n';
    if (newline) content.remove_suffix(1);
    if (copy_csv_ && !content.empty() && content.back() == '\r') content.remove_suffix(1);
    size_t fields = copy_csv_ ? CsvFieldCount(content, copy_delimiter_, copy_quote_, copy_escape_)
                              : TextFieldCount(content, copy_delimiter_);
    for (size_t i = 0; i < fields; ++i) {
      if (i > 0) scratch_ += copy_delimiter_;
      if (!copy_csv_) scratch_ += "\\N";
    }
    if (newline) scratch_ += '\n';
    withheld_ += fields;
    AppendMessage(pg::be::kCopyData, scratch_, out);
    return true;
  }
  Status st = masking::MaskCopyTextRow(plan_, line, &scratch_, &stats_);
  if (!st.ok()) {
    *reason = "COPY data cannot be masked: " + st.message();
    return false;
  }
  AppendMessage(pg::be::kCopyData, scratch_, out);
  return true;
}

bool ResultMasking::MaskSetting(std::string* value) const {
  const masking::DetectorSet* detectors = profile_->detectors();
  if (detectors == nullptr) {
    if (!profile_->detectors_failed()) return false;
    *value = std::string(masking::kRedactMarker);  // cannot be scanned: withheld
    return true;
  }
  // Not counted in a statement's masking summary: a setting belongs to the session.
  std::string before = *value;
  masking::MaskStats stats;
  masking::MaskFreeText(*detectors, hmac_, value, &stats);
  return *value != before;
}

void ResultMasking::MaskText(std::string* text) {
  const masking::DetectorSet* detectors = profile_->detectors();
  if (detectors == nullptr) {  // the detectors failed to compile: fail closed
    *text = std::string(masking::kRedactMarker);
    ++withheld_;
    return;
  }
  masking::MaskStats stats;
  stats.Resize(0, detectors->rules().size());
  if (!masking::MaskFreeText(*detectors, hmac_, text, &stats)) ++withheld_;
  for (size_t i = 0; i < stats.detector_hits.size(); ++i)
    Add(&detectors_, detectors->rules()[i].name, stats.detector_hits[i]);
}

bool ResultMasking::OnNotification(const pg::Frame& frame, pg::Bytes* out, std::string* reason) {
  pg::NotificationMessage m;
  if (!pg::ParseNotification(frame.body, &m, reason)) return false;
  const masking::DetectorSet* detectors = profile_->detectors();
  if (detectors == nullptr && !profile_->detectors_failed()) {
    pg::AppendFrame(out, frame);
    return true;
  }
  // NOTIFY payloads are often row data (row_to_json(NEW) in a trigger).
  std::string payload(m.payload);
  MaskText(&payload);
  std::string body;
  for (int shift = 24; shift >= 0; shift -= 8) body.push_back(static_cast<char>(m.pid >> shift));
  body.append(m.channel);
  body.push_back('\0');
  body += payload;
  body.push_back('\0');
  AppendMessage(frame.type, body, out);
  return true;
}

bool ResultMasking::OnErrorOrNotice(const pg::Frame& frame, pg::Bytes* out, std::string* reason) {
  pg::ErrorMessage m;
  if (!pg::ParseErrorOrNotice(frame.body, &m, reason)) return false;
  const masking::DetectorSet* detectors = profile_->detectors();
  std::string_view sqlstate;
  for (const pg::ErrorField& f : m.fields)
    if (f.code == 'C') sqlstate = f.value;
  // A NOT NULL or CHECK violation's detail quotes the whole failing row, masked columns
  // included (an UPDATE of another column): withheld when column rules apply.
  const bool row_detail =
      profile_->has_column_rules() && (sqlstate == "23502" || sqlstate == "23514");
  if (detectors == nullptr && !profile_->detectors_failed() && !row_detail) {
    pg::AppendFrame(out, frame);
    return true;
  }
  const bool scan = detectors != nullptr || profile_->detectors_failed();
  std::string body;
  for (const pg::ErrorField& f : m.fields) {
    std::string value(f.value);
    // Every field that can carry text goes through the detectors: message, detail, hint,
    // context, internal query, and the schema, table, column, data type and constraint names.
    // Severity, code, positions and the server's source location cannot.
    switch (f.code) {
      case 'S':
      case 'V':
      case 'C':
      case 'P':
      case 'p':
      case 'F':
      case 'L':
      case 'R':
        break;
      case 'D':
        if (row_detail) {
          value = "Failing row contents withheld by dbwarden (masked columns)";
          ++withheld_;
          break;
        }
        if (scan) MaskText(&value);
        break;
      default:
        if (scan) MaskText(&value);
        break;
    }
    body.push_back(static_cast<char>(f.code));
    body += value;
    body.push_back('\0');
  }
  body.push_back('\0');
  AppendMessage(frame.type, body, out);
  return true;
}

void ResultMasking::Accumulate() {
  if (!have_plan_) return;
  for (size_t i = 0; i < stats_.column_masked.size() && i < column_names_.size(); ++i) {
    const auto& rule = plan_.columns[i].rule;
    if (rule && rule->rule_id == kWithheldRule) {
      withheld_ += stats_.column_masked[i];  // unresolved: withheld, not masked by a rule
    } else {
      Add(&columns_, column_names_[i], stats_.column_masked[i]);
    }
  }
  if (plan_.detectors != nullptr)
    for (size_t i = 0; i < stats_.detector_hits.size(); ++i)
      Add(&detectors_, plan_.detectors->rules()[i].name, stats_.detector_hits[i]);
  withheld_ += stats_.withheld;
  ResetStats();
}

void ResultMasking::ResetStats() {
  stats_.column_masked.assign(plan_.columns.size(), 0);
  stats_.detector_hits.assign(plan_.detectors ? plan_.detectors->rules().size() : 0, 0);
  stats_.withheld = 0;
}

std::optional<audit::MaskingInfo> ResultMasking::TakeSummary() {
  Accumulate();
  if (columns_.empty() && detectors_.empty() && withheld_ == 0) return std::nullopt;
  audit::MaskingInfo info;
  info.columns = std::move(columns_);
  info.detectors = std::move(detectors_);
  info.withheld = withheld_;
  columns_.clear();
  detectors_.clear();
  withheld_ = 0;
  return info;
}

}  // namespace dbw::relay
