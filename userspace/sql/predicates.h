// Semantic predicates over parse-tree fragments: whether a WHERE clause restricts rows, and
// whether a row-returning SELECT is bounded.
#pragma once

#include <string_view>
#include <vector>

#include "userspace/sql/json_tree.h"

namespace dbw::sql {

// False when the condition may be true for every row: it references no column (or only under
// an OR with something that may be constant-true), e.g. `true`, `1=1`, `'a'='a'`, `NOT false`,
// `x = 1 OR 1 = 1`, `$1`. Constant comparisons of literals are evaluated; doing so sets
// *literal_sensitive. `WHERE CURRENT OF c`, and anything referencing a column, is effective.
bool EffectiveWhere(tree::element where, bool* literal_sensitive);

// Decides whether row-returning SELECTs are bounded, resolving CTE references by scope.
class BoundedSelect {
 public:
  // True when `select` (a SelectStmt body) can return every row of a non-catalog table: no
  // WHERE, no LIMIT/FETCH (other than NULL/ALL), and output not aggregate-only; set operations
  // are unbounded when an arm is and there is no outer LIMIT.
  bool Unbounded(tree::object select);

  // pg_catalog.*, information_schema.*, and unqualified pg_* names.
  static bool IsCatalog(std::string_view schema, std::string_view name);

 private:
  struct Cte {
    std::string_view name;
    tree::element query;
    size_t visible;  // how many scope entries (itself included, when recursive) its query sees
  };
  bool SourceUnbounded(tree::element from_item);
  bool RangeVarUnbounded(tree::object rv);

  std::vector<Cte> scope_;
  std::vector<const char*> visiting_;  // names (by tape address) of CTEs being evaluated
  int depth_ = 0;
};

bool HasLimit(tree::object select);
bool AggregateOnly(tree::object select);

}  // namespace dbw::sql
