// Semantic predicates over parse-tree fragments: whether a condition restricts the rows of the
// relation a statement changes (an *effective* predicate), and whether a row-returning SELECT is
// *bounded*. The definitions are in docs/sql-analysis.md ("Effective predicates", "Bounded
// reads"); when the analysis cannot tell, the answer is the risky one.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "userspace/sql/facts.h"
#include "userspace/sql/json_tree.h"

namespace dbw::sql {

// Where the columns of a condition come from.
struct RelationScope {
  // How a relation other than the target relates to the target's rows.
  enum class Kind : uint8_t {
    kRestricting,  // another table, or a subquery that is itself restricted: matching restricts
    kSelf,         // holds every row of the target (the target table again, unrestricted)
    kConstant,     // rows known without reading a table: VALUES, SELECT without FROM, functions
  };
  struct Other {
    std::string name;  // the alias, or the relation's name when it has none
    Kind kind = Kind::kRestricting;
  };
  // Names that refer to the target relation: its alias, or its name (and schema.name).
  std::vector<std::string> target;
  std::string target_relname;  // the target table's own name
  std::vector<Other> others;   // UPDATE ... FROM, DELETE ... USING, MERGE's source
  // SELECT: every column of every relation counts as restricting rows being read.
  bool every_column = false;

  // The scope of a statement changing `target` (a RangeVar body) with `from` (FROM/USING items
  // or MERGE's source; may be empty).
  static RelationScope ForTarget(tree::object target, const std::vector<tree::element>& from);
  // A SELECT's: every column restricts.
  static RelationScope ForSelect();
};

// True when `where` restricts the target's rows by something that is not true of every row
// (docs/sql-analysis.md). False for constant conditions (`true`, `1=1`, `$1`, `now() > x`),
// self-comparisons (`id = id`, `id >= id`), tests true of every non-null value (`IS NOT NULL`,
// `LIKE '%'`, `~ '.*'`), ranges that cover a 32-bit integer's domain (`id > -2147483649`, `x < 5
// OR x >= 5`), comparisons of a target column with another target column or with a relation
// that holds every target row, conditions only on other relations (`s.k = 1`), uncorrelated
// EXISTS, and `IN (SELECT ... FROM the same table)` without a restriction of its own. A
// condition on an unqualified column is counted only when no other relation is in scope.
// Literal values that decide the answer set *literal_sensitive.
bool EffectiveWhere(tree::element where, const RelationScope& scope, bool* literal_sensitive);
// The same with RelationScope::ForSelect().
bool EffectiveWhere(tree::element where, bool* literal_sensitive);

// Decides whether row-returning SELECTs are bounded, resolving CTE references by scope.
class BoundedSelect {
 public:
  explicit BoundedSelect(bool* literal_sensitive = nullptr) : sensitive_(literal_sensitive) {}

  // True when `select` (a SelectStmt body) can return every row of a non-catalog table: no
  // effective WHERE, no LIMIT/FETCH of a literal row count, and output not aggregate-only; or
  // when its select list, VALUES or FROM functions hold a subquery that packs such a read into
  // one value (`(SELECT json_agg(t) FROM t)`, `ARRAY(SELECT ...)`); set operations are
  // unbounded when an arm is and there is no outer LIMIT.
  bool Unbounded(tree::object select);

  // Judge the outermost SELECT's GROUP BY as a bound when its output packs no rows: whether
  // a statement is unbounded only because it groups (GroupColumns then says by what).
  void set_top_grouping_bounded(bool on) { top_grouping_ = on; }

  // pg_catalog.*, information_schema.*, and unqualified pg_* names.
  static bool IsCatalog(std::string_view schema, std::string_view name);

  // A subquery anywhere below `e` (not descending into SELECTs of its own) whose result carries
  // an unbounded read: `(SELECT json_agg(t) FROM t)`, `ARRAY(SELECT x FROM t)`.
  bool PacksUnboundedRead(tree::element e);

 private:
  struct Cte {
    std::string_view name;
    tree::element query;
    size_t visible;  // how many scope entries (itself included, when recursive) its query sees
  };
  bool SourceUnbounded(tree::element from_item);
  bool RangeVarUnbounded(tree::object rv);

  bool* sensitive_;
  bool ignored_ = false;
  bool top_grouping_ = false;
  std::vector<Cte> scope_;
  std::vector<const char*> visiting_;  // names (by tape address) of CTEs being evaluated
  int depth_ = 0;
};

// A LIMIT/FETCH FIRST that bounds the rows: a literal row count of at most kMaxBoundedLimit.
// `LIMIT ALL`, `LIMIT NULL`, a parameter or an expression may be every row.
inline constexpr int64_t kMaxBoundedLimit = 1'000'000;
bool HasLimit(tree::object select, bool* literal_sensitive);
bool AggregateOnly(tree::object select);
// GROUP BY whose select list packs no rows into values (array_agg, string_agg, json_agg, window
// functions): one output row per group.
bool GroupedOutput(tree::object select);
// The table columns the GROUP BY keys of `select` are made of, through ordinals, grouping sets
// and the FROM clause's aliases (a constant key adds none). False when a key cannot be tied to
// a table's column: a subquery in it, a column of another kind of FROM item or of a CTE, an
// unqualified column with several FROM items.
bool GroupColumns(tree::object select, std::vector<GroupColumn>* columns);

}  // namespace dbw::sql
