// A session's result masking: turns each RowDescription into a plan (columns resolved through
// the catalog to their source table and attribute, or by result name for expressions), rewrites
// DataRows, COPY TO STDOUT text rows and error/notice texts, and counts what it masked for the
// statement's audit event. No sockets: the session feeds it frames.
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "policy/masking.h"
#include "userspace/audit/event.h"
#include "userspace/masking/row_masker.h"
#include "userspace/protocol/postgres/encoder.h"
#include "userspace/protocol/postgres/session.h"
#include "userspace/protocol/postgres/types.h"
#include "userspace/relay/catalog.h"

namespace dbw::relay {

class ResultMasking {
 public:
  // `profile` null: nothing is masked. Kept until the next call.
  void SetProfile(std::shared_ptr<const policy::MaskingProfile> profile, masking::KeyedHash hmac);
  bool active() const { return profile_ != nullptr; }
  const std::shared_ptr<const policy::MaskingProfile>& profile() const { return profile_; }
  // Column rules need the catalog before results can be resolved.
  bool needs_catalog() const { return profile_ && profile_->has_column_rules(); }
  void SetCatalog(std::shared_ptr<const CatalogSnapshot> catalog) { catalog_ = std::move(catalog); }
  // A result referred to a relation the catalog does not know: reload before the next statement.
  bool catalog_miss() const { return catalog_miss_; }
  void clear_catalog_miss() { catalog_miss_ = false; }

  // Backend messages (only called while active()). Each writes the message to forward (masked
  // or not) to *out, and returns false with *reason on a malformed message.
  // `source`: what the request being answered returns rows of (SessionState::HeadResultSource),
  // so rows of a prepared statement or portal use its own RowDescription, and the formats of
  // its Bind, even when other statements ran in between.
  bool OnRowDescription(const pg::Frame& frame, const pg::ResultSource& source, pg::Bytes* out,
                        std::string* reason);
  bool OnDataRow(const pg::Frame& frame, const pg::ResultSource& source, pg::Bytes* out,
                 std::string* reason);
  // COPY TO STDOUT: the table the statement copies (from its facts), to map fields to columns.
  // `copy`: the COPY statement's facts (table, column list), null when unknown.
  // `masked_in_sql`: the statement was checked by masking by reference (its masked columns, if
  // any, were masked in SQL), so lines need the detectors only.
  bool OnCopyOutResponse(const pg::Frame& frame, const sql::StatementFacts* copy,
                         bool masked_in_sql, pg::Bytes* out, std::string* reason);
  bool OnCopyData(const pg::Frame& frame, pg::Bytes* out, std::string* reason);
  // NotificationResponse: the payload passes through the detectors.
  bool OnNotification(const pg::Frame& frame, pg::Bytes* out, std::string* reason);
  // ErrorResponse/NoticeResponse: message, detail and hint pass through the detectors.
  bool OnErrorOrNotice(const pg::Frame& frame, pg::Bytes* out, std::string* reason);

  // A setting's value the server reports (application_name, which a statement can set to any
  // text) through the detectors; true when it changed.
  bool MaskSetting(std::string* value) const;

  // What was masked since the last call (for one statement's audit event); nullopt when
  // nothing was.
  std::optional<audit::MaskingInfo> TakeSummary();

 private:
  struct Field {
    std::string name;
    uint32_t table_oid = 0;
    int16_t column = 0;
    uint32_t type_oid = 0;
    int16_t format = 0;
  };
  using Description = std::vector<Field>;

  void Accumulate();  // stats_ into the statement's counts, then zeroed
  void ResetStats();
  // Free text (error fields, NOTIFY payloads) through the detectors, counted; withheld when
  // they are not available.
  void MaskText(std::string* text);
  // plan_ for `fields`; with `bind_formats`, the formats are a Bind's result format codes
  // (`formats`, null = all text) instead of the description's.
  void BuildPlan(const Description& fields, bool bind_formats, const std::vector<int16_t>* formats);
  // Selects the plan for rows of `source`; false when no RowDescription for it was seen.
  bool SelectPlan(const pg::ResultSource& source);

  std::shared_ptr<const policy::MaskingProfile> profile_;
  std::shared_ptr<const CatalogSnapshot> catalog_;
  masking::KeyedHash hmac_;
  masking::ResultPlan plan_;
  std::vector<std::string> column_names_;  // of plan_, as audited ("public.t.email" or "lower")
  bool have_plan_ = false;
  uint64_t plan_key_ = 0;  // portal serial plan_ was built for; 0: the last RowDescription
  // RowDescriptions of prepared statements (Describe 'S') and portals (Describe 'P'), by serial.
  std::unordered_map<uint64_t, Description> statement_desc_, portal_desc_;
  bool copy_binary_ = false;
  bool copy_withhold_ = false;    // COPY fields that cannot be tied to columns: all withheld
  bool copy_scan_lines_ = false;  // masked in SQL: whole lines through the detectors
  // The COPY's output shape: CSV (quote, escape) or text, its delimiter, a header line to come.
  bool copy_csv_ = false;
  char copy_delimiter_ = '\t';
  char copy_quote_ = '"';
  char copy_escape_ = '"';
  bool copy_header_pending_ = false;
  std::shared_ptr<const policy::MaskingProfile> plan_profile_;  // keeps plan_.detectors alive
  bool catalog_miss_ = false;
  masking::MaskStats stats_;
  std::string scratch_;
  // Accumulated for the current statement: column -> count, detector -> count, withheld.
  std::vector<std::pair<std::string, uint64_t>> columns_;
  std::vector<std::pair<std::string, uint64_t>> detectors_;
  uint64_t withheld_ = 0;
};

}  // namespace dbw::relay
