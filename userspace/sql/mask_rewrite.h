// Masking by reference: a statement of a principal with column masking rules is rewritten so
// that every reference to a masked column reads the masking expression instead of the stored
// value. Tables with masked columns are replaced, where the statement reads them, by a
// subquery that projects the masked columns through the masking expression; the target of
// UPDATE/DELETE/INSERT/MERGE keeps its name and its masked columns are replaced where the
// statement reads them (WHERE, SET values, RETURNING, ON CONFLICT). Predicates, joins,
// aggregates, copies and whole-row references then only ever see masked values. Views that read
// masked tables are expanded through their definitions; what rewriting cannot reach (SQL built
// at run time, functions that read masked tables, statistics that hold column values) is refused
// with a reason that names the rule. libpg_query's protobuf parse tree and deparser do the text
// work (docs/relay.md#masking-by-reference).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "userspace/sql/search_path.h"

namespace dbw::sql::mask {

enum class MaskFunction : uint8_t { kRedact, kPartial, kHash, kNull };

// How a column's values are masked in SQL: text-like types get the masking function's output,
// json and jsonb a JSON string of it, every other type NULL (as the result layer does).
enum class ValueClass : uint8_t { kText, kJson, kOther };

struct ColumnMask {
  MaskFunction function = MaskFunction::kRedact;
  int keep_last = 4;    // kPartial
  std::string rule_id;  // the masking rule, for reasons and the audit
};

struct Column {
  std::string name;
  // The column's (base) type as SQL, schema-qualified and quoted: "pg_catalog"."varchar".
  std::string type;
  ValueClass value_class = ValueClass::kOther;
  std::optional<ColumnMask> mask;  // nullopt: read as stored
};

struct Relation {
  std::string schema;
  std::string name;
  char kind = 'r';              // pg_class.relkind
  std::vector<Column> columns;  // live columns, in attribute order
  // Views and materialized views: the defining SELECT (pg_get_viewdef, names qualified).
  std::string definition;
  bool masked = false;  // some column has a mask
};

struct Routine {
  std::string schema;
  std::string name;
  std::string language;    // "sql", "plpgsql", "c", "internal", "plpython3u", ...
  std::string body;        // prosrc, or the parsed SQL body of BEGIN ATOMIC functions
  bool extension = false;  // belongs to an extension (installed by the DBA)

  // What expanding a call of a SQL function through its body needs.
  struct Arg {
    char mode = 'i';   // pg_proc.proargmodes: i, o, b (inout), v (variadic), t (table column)
    std::string type;  // as SQL (regtype text)
    std::string name;  // empty when unnamed
  };
  char kind = 'f';  // pg_proc.prokind: f, p, a, w
  bool strict = false;
  bool returns_set = false;
  bool security_definer = false;
  bool atomic = false;          // `body` is a SQL-standard body (BEGIN ATOMIC ... END, RETURN)
  std::string return_type;      // as SQL; "record" with OUT arguments
  char return_type_kind = 'b';  // pg_type.typtype: b, c (composite), d, e, p (pseudo), r, m
  // A composite return type's relation ("schema", "name"), when it is a table's row type.
  std::string return_schema, return_relation;
  std::vector<Arg> args;                          // every argument, OUT ones included, in order
  int defaults = 0;                               // how many input arguments have defaults
  bool has_config = false;                        // SET clauses (proconfig)
  std::optional<std::string> config_search_path;  // SET search_path's value
};

// What the rewriter knows of the database, with the principal's masks applied. Built by the
// relay from its catalog snapshot and the masking profile; immutable once built.
class Catalog {
 public:
  void AddRelation(Relation relation);
  void AddRoutine(Routine routine);
  // Relations named `name` in `schema` (every schema when empty).
  std::vector<const Relation*> FindRelations(std::string_view schema, std::string_view name) const;
  std::vector<const Routine*> FindRoutines(std::string_view schema, std::string_view name) const;
  // Names that exist without being user relations or routines: every function's name (builtins
  // included) and the system relations' (pg_catalog, information_schema). A name the catalog
  // has never seen was created after it was read, so what it reads is unknown: refused.
  void AddFunctionName(std::string name) { function_names_.insert(std::move(name)); }
  void AddSystemRelation(std::string name) { system_relations_.insert(std::move(name)); }
  bool KnowsFunction(const std::string& name) const { return function_names_.count(name) != 0; }
  bool KnowsSystemRelation(const std::string& name) const {
    return system_relations_.count(name) != 0;
  }
  const std::vector<Relation>& relations() const { return relations_; }
  const std::vector<Routine>& routines() const { return routines_; }
  bool any_masked() const { return any_masked_; }

 private:
  std::vector<Relation> relations_;
  std::vector<Routine> routines_;
  std::unordered_multimap<std::string, size_t> relations_by_name_, routines_by_name_;
  std::unordered_set<std::string> function_names_, system_relations_;
  bool any_masked_ = false;
};

// Whether a routine (or DO block) of this language and body may change the search_path as
// written: it names search_path or set_config, or is in a procedural language other than SQL
// and PL/pgSQL. A change it makes otherwise (spelt at run time, or in a routine that runs where
// no statement names it) is not followed; names the search_path decides are therefore written
// qualified into the statement, so the server reads what was judged whatever the session's
// search_path then is.
bool MaySetSearchPath(std::string_view language, std::string_view body, bool extension);

struct Options {
  // HMAC-SHA256 of the masking key in SQL (the `hash` function): the key XOR ipad and XOR opad,
  // 64 bytes each, hex. Empty: columns with a `hash` rule are refused.
  std::string hash_inner_pad_hex;
  std::string hash_outer_pad_hex;
};

struct Result {
  enum class Outcome : uint8_t { kUnchanged, kRewritten, kRefused };
  Outcome outcome = Outcome::kUnchanged;
  std::string sql;     // kRewritten: the text to send in the statement's place
  std::string reason;  // kRefused: why, naming the rule
  // kRefused: the masking rule(s) concerned, comma-separated, when known.
  std::string rule_id;
  // kRefused because the statement names a relation or function the catalog has not seen: a
  // fresher catalog may know it.
  bool unknown_name = false;
  // Masked columns the statement references ("schema.table.column"), for the audit.
  std::vector<std::string> masked_columns;
  // What the statement does to the session's search_path when it runs (SearchPathTracker).
  std::vector<PathEffect> path_effects;
};

// One per session and (catalog, profile): remembers what it worked out about views and
// routines. Not thread-safe.
class Rewriter {
 public:
  Rewriter(std::shared_ptr<const Catalog> catalog, Options options);
  ~Rewriter();
  Rewriter(const Rewriter&) = delete;
  Rewriter& operator=(const Rewriter&) = delete;

  // `sql`: the statement text as the server reads it (one or more statements). `paths`: the
  // values the session's search_path may have ("$user" expanded); an unqualified name is read as
  // the relation (or function) each of them finds. Empty: not known, every schema's.
  Result Rewrite(std::string_view sql, const std::vector<SearchPath>& paths = {});
  // Whether `sql` may change the search_path (a cheap look at its text): such a statement is
  // given to Rewrite for its path_effects even when it reads nothing.
  static bool MayChangeSearchPath(std::string_view sql);

  struct Memo;  // views and routines worked out so far (mask_rewrite.cc)

  static constexpr size_t kMaxCachedResults = 512;  // results kept by text, then started over

 private:
  Result RewriteUncached(std::string_view sql, const std::vector<SearchPath>& paths);

  std::shared_ptr<const Catalog> catalog_;
  Options options_;
  std::unique_ptr<Memo> memo_;
};

// Builtin functions and relations that read values behind rewriting's back (SQL given as text,
// statistics, other sessions' statement text, raw pages): refused for masked principals.
bool IsRefusedFunction(std::string_view name);
bool IsRefusedRelation(std::string_view name);

}  // namespace dbw::sql::mask
