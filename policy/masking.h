// Masking rules from policy files and the per-principal profile the relay applies to result
// sets: column rules by source table and attribute, rules by result-column name for
// expressions, and the content detectors to run. Immutable once built.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "policy/glob.h"
#include "userspace/masking/detectors.h"
#include "userspace/masking/mask.h"

namespace dbw::policy {

// "table.column" (any schema) or "schema.table.column", each part a glob: "*.email",
// "billing.cards.number", "hr.*.ssn".
class ColumnGlob {
 public:
  static bool Compile(std::string_view pattern, ColumnGlob* out, std::string* error);
  bool Match(std::string_view schema, std::string_view table, std::string_view column) const;
  const std::string& pattern() const { return text_; }

 private:
  bool has_schema_ = false;
  Glob schema_, table_, column_;
  std::string text_;
};

class MaskingProfile {
 public:
  struct ColumnRule {
    ColumnGlob column;
    masking::MaskSpec mask;
  };
  struct NameRule {
    Glob name;
    masking::MaskSpec mask;
  };

  MaskingProfile(std::vector<ColumnRule> columns, std::vector<NameRule> names,
                 std::shared_ptr<const masking::DetectorSet> detectors,
                 std::vector<std::string> rule_ids, bool detectors_failed)
      : columns_(std::move(columns)),
        names_(std::move(names)),
        detectors_(std::move(detectors)),
        rule_ids_(std::move(rule_ids)),
        detectors_failed_(detectors_failed) {}

  // The first rule (in policy order) covering a source column, or null.
  const masking::MaskSpec* ForColumn(std::string_view schema, std::string_view table,
                                     std::string_view column) const;
  // The first rule covering a result column without a source table (an expression), by the
  // name the client sees.
  const masking::MaskSpec* ForResultName(std::string_view name) const;
  const masking::DetectorSet* detectors() const { return detectors_.get(); }
  bool has_column_rules() const { return !columns_.empty(); }
  bool has_name_rules() const { return !names_.empty(); }
  const std::vector<std::string>& rule_ids() const { return rule_ids_; }
  // The detectors could not be compiled: withhold every value they would have scanned.
  bool detectors_failed() const { return detectors_failed_; }

 private:
  std::vector<ColumnRule> columns_;
  std::vector<NameRule> names_;
  std::shared_ptr<const masking::DetectorSet> detectors_;  // null: no content detection
  std::vector<std::string> rule_ids_;
  bool detectors_failed_ = false;
};

}  // namespace dbw::policy
