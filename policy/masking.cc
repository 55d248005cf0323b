// Column globs, masking profiles and which masking rules apply to a principal.
#include "policy/masking.h"

#include "policy/compiled.h"

namespace dbw::policy {

bool ColumnGlob::Compile(std::string_view pattern, ColumnGlob* out, std::string* error) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  for (size_t i = 0; i <= pattern.size(); ++i) {
    if (i == pattern.size() || pattern[i] == '.') {
      parts.push_back(pattern.substr(start, i - start));
      start = i + 1;
    }
  }
  if (parts.size() < 2 || parts.size() > 3) {
    *error = "\"" + std::string(pattern) +
             "\" must be table.column or schema.table.column (each part may be a glob)";
    return false;
  }
  out->text_ = std::string(pattern);
  out->has_schema_ = parts.size() == 3;
  size_t i = 0;
  // SQL names are folded to lower case unless quoted; rules match either spelling.
  if (out->has_schema_ && !Glob::Compile(parts[i++], true, &out->schema_, error)) return false;
  return Glob::Compile(parts[i], true, &out->table_, error) &&
         Glob::Compile(parts[i + 1], true, &out->column_, error);
}

bool ColumnGlob::Match(std::string_view schema, std::string_view table,
                       std::string_view column) const {
  return (!has_schema_ || schema_.Match(schema)) && table_.Match(table) && column_.Match(column);
}

const masking::MaskSpec* MaskingProfile::ForColumn(std::string_view schema, std::string_view table,
                                                   std::string_view column) const {
  for (const ColumnRule& r : columns_)
    if (r.column.Match(schema, table, column)) return &r.mask;
  return nullptr;
}

const masking::MaskSpec* MaskingProfile::ForResultName(std::string_view name) const {
  for (const NameRule& r : names_)
    if (r.name.Match(name)) return &r.mask;
  return nullptr;
}

namespace {
bool AnyGlob(const std::vector<Glob>& globs, std::string_view s) {
  for (const Glob& g : globs)
    if (g.Match(s)) return true;
  return false;
}
}  // namespace

bool MaskingRule::Applies(const Target& t, const Principal& p) const {
  if (!target.empty() && !AnyGlob(target, t.name)) return false;
  if (!env.empty() && !AnyGlob(env, t.env)) return false;
  if (!principal.Matches(p)) return false;  // an empty matcher matches everyone
  for (const PrincipalMatcher& m : except)
    if (m.Matches(p)) return false;
  return true;
}

}  // namespace dbw::policy
