// Masking by reference (mask_rewrite.h): parse to libpg_query's protobuf tree, replace what
// reads masked columns, deparse. The walk is generic (protobuf reflection over every node), with
// scopes where SQL has them: WITH names, FROM items, and the target of a data-modifying
// statement.
#include "userspace/sql/mask_rewrite.h"

#include <pg_query.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <map>
#include <unordered_set>

#include "pg_query.pb.h"

namespace dbw::sql::mask {
namespace {

namespace pb = google::protobuf;
using pg_query::Node;

// Views of views of views...: beyond this the statement is refused rather than expanded.
constexpr int kMaxViewDepth = 16;

// System columns a statement may read through a wrapped table (they hold no user data): the
// wrapper carries those the statement's text mentions, so `SELECT xmin, ...` still works.
constexpr std::array<std::string_view, 6> kSystemColumns = {"ctid", "xmin", "xmax",
                                                            "cmin", "cmax", "tableoid"};

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string Quote(std::string_view ident) {
  std::string out = "\"";
  for (char c : ident) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

std::string_view StringOf(const Node& n) {
  return n.node_case() == Node::kString ? std::string_view(n.string().sval()) : std::string_view();
}

std::string QualifiedName(const Relation& r) {
  return r.schema + "." + r.name;
}

// The masking rules of a relation's masked columns, distinct, comma-separated.
std::string RuleOf(const Relation& r) {
  std::vector<std::string_view> rules;
  for (const Column& c : r.columns)
    if (c.mask && !c.mask->rule_id.empty() &&
        std::find(rules.begin(), rules.end(), c.mask->rule_id) == rules.end())
      rules.push_back(c.mask->rule_id);
  std::string out;
  for (std::string_view rule : rules) out += (out.empty() ? "" : ", ") + std::string(rule);
  return out;
}

// ---- masking expressions (only pg_catalog functions, schema-qualified: a session cannot
// redefine them through its search_path; no operators, whose resolution it could steer) ----

// The masked text of `x`, an expression of type pg_catalog.text; empty when it cannot be built.
std::string TextMask(const ColumnMask& m, const std::string& x, const Options& o, bool* keyed) {
  switch (m.function) {
    case MaskFunction::kRedact:
      return "'[redacted]'";
    case MaskFunction::kNull:
      return "NULL";
    case MaskFunction::kPartial: {
      const int k = std::clamp(m.keep_last, 0, 64);
      std::string email = "pg_catalog.int4gt(pg_catalog.strpos(" + x + ", '@'), 1)";
      std::string domain = "pg_catalog.concat('****', pg_catalog.\"right\"(" + x +
                           ", pg_catalog.strpos(pg_catalog.reverse(" + x + "), '@')))";
      std::string out = "CASE WHEN " + email + " THEN " + domain;
      if (k > 0)
        out += " WHEN pg_catalog.int4ge(pg_catalog.char_length(" + x + "), " +
               std::to_string(2 * k) + ") THEN pg_catalog.concat('****', pg_catalog.\"right\"(" +
               x + ", " + std::to_string(k) + "))";
      return out + " ELSE '****' END";
    }
    case MaskFunction::kHash: {
      // Without a key, as the result layer: the marker (fail closed).
      if (o.hash_inner_pad_hex.empty() || o.hash_outer_pad_hex.empty()) return "'[redacted]'";
      *keyed = true;
      // HMAC-SHA256(key, convert_to(x, 'UTF8')) = sha256((key^opad) || sha256((key^ipad) || m)),
      // the first 12 bytes in hex after "h:", as the result layer's hash.
      return "pg_catalog.concat('h:', pg_catalog.substr(pg_catalog.encode(pg_catalog.sha256("
             "pg_catalog.byteacat(pg_catalog.decode('" +
             o.hash_outer_pad_hex +
             "', 'hex'), pg_catalog.sha256(pg_catalog.byteacat(pg_catalog.decode('" +
             o.hash_inner_pad_hex + "', 'hex'), pg_catalog.convert_to(" + x +
             ", 'UTF8'))))), 'hex'), 1, 24))";
    }
  }
  return {};
}

// The type a masked column's value is cast to. libpg_query's deparser prints a cast of a
// constant to bpchar as a typed literal (`char 'x'`, which is char(1), and `char NULL`, which
// does not parse): a masked bpchar column is text.
const std::string& MaskedType(const Column& c) {
  static const std::string kBpchar = "\"pg_catalog\".\"bpchar\"", kText = "pg_catalog.text";
  return c.type == kBpchar ? kText : c.type;
}

// The masking expression for column `c` read as `ref` (a quoted, maybe qualified, reference).
std::string ColumnExpr(const Column& c, const std::string& ref, const Options& o, bool* keyed) {
  const ColumnMask& m = *c.mask;
  if (c.value_class == ValueClass::kOther || m.function == MaskFunction::kNull)
    return "CAST(NULL AS " + MaskedType(c) + ")";
  // String types reach the pg_catalog text functions through their implicit casts (a type
  // without one makes the statement fail: nothing runs); an explicit cast per use would add
  // nodes the deparser pays for.
  std::string text = TextMask(m, ref, o, keyed);
  if (text.empty()) return {};
  if (c.value_class == ValueClass::kJson)
    text = "pg_catalog.to_json(CAST(" + text + " AS pg_catalog.text))";
  return "CASE WHEN " + ref + " IS NULL THEN NULL ELSE CAST(" + text + " AS " + MaskedType(c) +
         ") END";
}

// ---- tree helpers ----

// Parses `SELECT <text>` (or a whole statement) into a tree; false on a parse error.
bool ParseTree(const std::string& text, pg_query::ParseResult* out, std::string* error) {
  // Text that is not UTF-8 makes the tree unreadable (a refusal); protobuf would also log each
  // such statement to stderr, a line per client statement.
  static const bool quiet = (pb::SetLogHandler(nullptr), true);
  (void)quiet;
  PgQueryProtobufParseResult r = pg_query_parse_protobuf(text.c_str());
  bool ok = r.error == nullptr;
  if (!ok) {
    *error = r.error->message != nullptr ? r.error->message : "parse error";
  } else if (!out->ParseFromArray(r.parse_tree.data, static_cast<int>(r.parse_tree.len))) {
    ok = false;
    *error = "the parse tree could not be read";
  }
  pg_query_free_protobuf_parse_result(r);
  return ok;
}

// One statement as SQL text; false (with *error) when the deparser cannot print it.
bool Deparse(const Node& stmt, std::string* out, std::string* error) {
  pg_query::ParseResult one;
  one.set_version(PG_VERSION_NUM);
  *one.add_stmts()->mutable_stmt() = stmt;
  std::string bytes = one.SerializeAsString();
  PgQueryProtobuf pbuf{bytes.size(), bytes.data()};
  PgQueryDeparseResult d = pg_query_deparse_protobuf(pbuf);
  const bool ok = d.error == nullptr && d.query != nullptr;
  if (ok) {
    *out = d.query;
  } else {
    *error = d.error != nullptr && d.error->message != nullptr ? d.error->message : "";
  }
  pg_query_free_deparse_result(d);
  return ok;
}

const pg_query::SelectStmt* FirstSelect(const pg_query::ParseResult& tree) {
  if (tree.stmts_size() != 1 || !tree.stmts(0).stmt().has_select_stmt()) return nullptr;
  return &tree.stmts(0).stmt().select_stmt();
}

// Types a value cannot be cast to (polymorphic and pseudo-types).
bool PseudoType(std::string_view type) {
  return type.rfind("any", 0) == 0 || type == "record" || type == "internal" || type == "cstring" ||
         type == "void" || type == "trigger" || type == "event_trigger";
}

bool InputMode(char mode) {
  return mode == 'i' || mode == 'b' || mode == 'v';
}

size_t Inputs(const Routine& r) {
  size_t n = 0;
  for (const Routine::Arg& a : r.args) n += InputMode(a.mode) ? 1 : 0;
  return n;
}

// Whether a call with `argc` arguments may run `r` (defaults and variadic arguments counted).
bool MayRun(const Routine& r, int argc) {
  const int inputs = static_cast<int>(Inputs(r));
  bool variadic = false;
  for (const Routine::Arg& a : r.args) variadic = variadic || a.mode == 'v';
  return variadic ? argc >= inputs - 1 - r.defaults : argc <= inputs && argc >= inputs - r.defaults;
}

bool Expandable(const Routine& r) {
  return Lower(r.language) == "sql" && r.kind == 'f';
}

// The statements of a SQL-standard body (BEGIN ATOMIC ... END lists them in lists).
void BodyStatements(const Node& n, std::vector<const Node*>* out) {
  if (n.has_list()) {
    for (const Node& item : n.list().items()) BodyStatements(item, out);
  } else if (n.node_case() != Node::NODE_NOT_SET) {
    out->push_back(&n);
  }
}

bool IsStar(const Node& n) {
  return n.node_case() == Node::kAStar;
}

}  // namespace

// ---- refused builtins ----

bool IsRefusedFunction(std::string_view raw) {
  static const std::unordered_set<std::string> kNames = {
      // SQL given as text, or whole tables and schemas, read by the server itself
      "query_to_xml", "query_to_xml_and_xmlschema", "table_to_xml", "table_to_xml_and_xmlschema",
      "schema_to_xml", "schema_to_xml_and_xmlschema", "database_to_xml",
      "database_to_xml_and_xmlschema", "ts_stat", "ts_rewrite",
      // statement text (the rewritten text holds the hash key's pads) and other sessions' text
      "current_query", "pg_stat_get_activity", "pg_stat_get_backend_activity", "pg_stat_statements",
      // table data read raw: files, pages, WAL
      "pg_read_file", "pg_read_binary_file", "lo_import", "get_raw_page", "heap_page_items",
      "heap_page_item_attrs", "tuple_data_split", "bt_page_items", "brin_page_items",
      "gin_leafpage_items", "gist_page_items", "pg_logical_slot_get_changes",
      "pg_logical_slot_peek_changes", "pg_logical_slot_get_binary_changes",
      "pg_logical_slot_peek_binary_changes", "pg_mcv_list_items"};
  std::string name = Lower(raw);
  return kNames.count(name) != 0 || name.rfind("dblink", 0) == 0;
}

bool IsRefusedRelation(std::string_view raw) {
  static const std::unordered_set<std::string> kNames = {
      "pg_stats",           "pg_stats_ext",           "pg_stats_ext_exprs",
      "pg_statistic",       "pg_statistic_ext_data",  "pg_stat_activity",
      "pg_stat_statements", "pg_prepared_statements", "pg_cursors"};
  return kNames.count(Lower(raw)) != 0;
}

// ---- catalog ----

void Catalog::AddRelation(Relation relation) {
  for (const Column& c : relation.columns) relation.masked = relation.masked || c.mask.has_value();
  any_masked_ = any_masked_ || relation.masked;
  relations_by_name_.emplace(relation.name, relations_.size());
  relations_.push_back(std::move(relation));
}

bool MaySetSearchPath(std::string_view language, std::string_view body, bool extension) {
  const std::string lang = Lower(language);
  if (lang != "sql" && lang != "plpgsql") return !extension && lang != "c" && lang != "internal";
  const std::string text = Lower(body);
  return text.find("search_path") != std::string::npos ||
         text.find("set_config") != std::string::npos;
}

void Catalog::AddRoutine(Routine routine) {
  routines_by_name_.emplace(routine.name, routines_.size());
  routines_.push_back(std::move(routine));
}

std::vector<const Relation*> Catalog::FindRelations(std::string_view schema,
                                                    std::string_view name) const {
  std::vector<const Relation*> out;
  auto [b, e] = relations_by_name_.equal_range(std::string(name));
  for (auto it = b; it != e; ++it)
    if (schema.empty() || relations_[it->second].schema == schema)
      out.push_back(&relations_[it->second]);
  return out;
}

std::vector<const Routine*> Catalog::FindRoutines(std::string_view schema,
                                                  std::string_view name) const {
  std::vector<const Routine*> out;
  auto [b, e] = routines_by_name_.equal_range(std::string(name));
  for (auto it = b; it != e; ++it)
    if (schema.empty() || routines_[it->second].schema == schema)
      out.push_back(&routines_[it->second]);
  return out;
}

// ---- what a rewriter remembers ----

struct Verdict {
  enum State : uint8_t { kUnknown, kInProgress, kClear, kMasked, kRefused } state = kUnknown;
  std::string reason;
  std::string rule_id;
};

struct Rewriter::Memo {
  // Views: expanded definition (kMasked), or plain (kClear), or refused.
  std::unordered_map<const Relation*, std::pair<Verdict, Node>> views;
  // Materialized views over masked tables: a relation with every column masked.
  std::unordered_map<const Relation*, std::unique_ptr<Relation>> matviews;
  std::unordered_map<const Routine*, Verdict> routines;
  // Relations merged from same-named candidates in several schemas.
  std::vector<std::unique_ptr<Relation>> merged;
  // Parsed masking expressions and wrapper SELECTs, by text.
  std::unordered_map<std::string, Node> expressions;
  // By relation and the system columns it carries (a bit per kSystemColumns entry).
  // By relation and shape: the system columns it carries, then a '1' or '0' per column for
  // whether a masked column gets its masking expression or NULL.
  std::map<std::pair<const Relation*, std::string>, pg_query::SelectStmt> wrappers;
  // Results by statement text: applications repeat their texts (parameters as $n), and a
  // statement's rewrite depends on nothing else while the catalog and profile stay.
  std::unordered_map<std::string, Result> results;
  // Lower-case names whose mention in a function body or DO block reads masked values.
  bool words_ready = false;
  std::vector<std::pair<std::string, std::string>> masked_words;  // name, rule
};

namespace {

// What a statement's text contains, for trimming projections: lower case, and whether it has a
// `*` anywhere. View definitions are walked with an empty text that has a star.
struct Text {
  std::string lower;
  bool has_star = true;
};

class Walker {
 public:
  // `system_columns`: bits of kSystemColumns the statement mentions.
  // `paths`: the values the session's search_path may have (empty: not known).
  Walker(const Catalog& catalog, const Options& options, Rewriter::Memo& memo, int depth,
         unsigned system_columns = 0, Text text = {}, std::vector<SearchPath> paths = {})
      : catalog_(catalog),
        options_(options),
        memo_(memo),
        depth_(depth),
        system_columns_(system_columns),
        text_(std::move(text)),
        paths_(std::move(paths)) {}

  void Statement(Node* stmt);
  bool refused() const { return !reason_.empty(); }
  const std::string& reason() const { return reason_; }
  const std::string& rule_id() const { return rule_; }
  bool changed() const { return changed_; }
  bool keyed() const { return keyed_; }
  bool unknown_name() const { return unknown_name_; }
  void ResetChanged() { changed_ = false; }
  // The rule of the first masked column the statement reads.
  const std::string& first_rule() const { return first_rule_; }
  std::vector<std::string>& masked_columns() { return masked_columns_; }
  std::vector<PathEffect>& path_effects() { return path_effects_; }
  // A view's definition rewritten in place.
  void Definition(pg_query::SelectStmt* s) { Select(s); }

 private:
  struct ScopeItem {
    std::string refname;
    std::string schema;  // a wrapped table named without alias: schema.table.column refs
    bool wrapped_unaliased = false;
    bool columns_known = false;
    std::vector<std::string> columns;
  };
  struct Scope {
    std::vector<ScopeItem> items;
  };
  struct Target {
    const Relation* rel;
    std::string refname;
    std::string schema;  // as written, when unaliased
    bool aliased;
    size_t level;  // index of the statement's scope
  };

  void Refuse(std::string reason, std::string rule = {}) {
    if (reason_.empty()) {
      reason_ = std::move(reason);
      rule_ = std::move(rule);
    }
  }

  // Generic walk: every message field; Nodes are dispatched by kind.
  void Visit(pb::Message* m);
  // Every message field of `m` but those numbered in `skip`.
  void Fields(pb::Message* m, const std::vector<int>& skip = {});
  void VisitNode(Node* n);
  void Select(pg_query::SelectStmt* s);
  void With(pg_query::WithClause* w);
  // `level`: the scope (an index: nested statements grow scopes_) its names go to.
  void FromItem(Node* item, size_t level);
  void Dml(Node* n);
  void Copy(Node* n);
  void ColumnRef(Node* n);
  // `argc` (a call in an expression or FROM, with that many arguments; else -1): a SQL
  // function that reads masked columns and may be the one called is left to FuncCallNode,
  // which expands it through its body.
  void Call(const pb::RepeatedPtrField<Node>& funcname, int argc = -1);
  // SQL functions that read masked columns, expanded through their bodies: a call in an
  // expression becomes a scalar subquery, one in FROM a LATERAL subquery; the body is
  // rewritten as any query is, its arguments read from a FROM item of their values.
  // `n` is the call, or `(call).field` (an A_Indirection) when `field` is given.
  void FuncCallNode(Node* n, pg_query::FuncCall* f, std::string_view field = {});
  bool RangeFunctionItem(Node* item, size_t level);
  // A call's arguments as SQL, when it can be expanded (by position, every one given, not an
  // aggregate-style call); false: refused.
  bool CallArguments(const pg_query::FuncCall& f, const Routine* r, std::vector<std::string>* args);
  // The SQL function a call runs when it is one whose body reads masked columns (null: none
  // is, or refused).
  const Routine* MaskedCallee(const pg_query::FuncCall& f);
  struct Expansion {
    std::string body;                                          // the rewritten body, as SQL
    std::vector<std::pair<std::string, std::string>> outputs;  // name, type
    bool record = false;  // several outputs (a row); else one value
  };
  // False: refused, or the body reads no masked column after all (*masked false).
  bool Expand(const Routine* r, const std::string& scalar_name, Expansion* out, bool* masked);
  // In a function body's walker: a reference to an argument, by number or name, becomes a
  // reference to its value. True when `n` was one.
  bool ArgumentRef(Node* n);
  void Do(const pg_query::DoStmt& d);
  void ScanUtility(pb::Message* m, std::string_view what);
  // What a statement does to the search_path; later statements of the string resolve with it.
  void PathEffectOf(PathEffect e);
  void SetStatement(const pg_query::VariableSetStmt& s);
  void SetConfigCall(const pg_query::FuncCall& f);
  // Of the relations an unqualified name may mean, those the search_path finds first (on no
  // path: every one).
  std::vector<const Relation*> OnPath(std::vector<const Relation*> candidates) const;

  // Resolution. Null when `rv` names no known relation (or a WITH name). May refuse. Sets
  // qualify_ to the schema to write into an unqualified reference that needs one.
  const Relation* Resolve(const pg_query::RangeVar& rv);
  void Qualify(pg_query::RangeVar* rv) {
    if (qualify_.empty() || !rv->schemaname().empty()) return;
    rv->set_schemaname(qualify_);
    changed_ = true;
  }
  bool IsCte(const pg_query::RangeVar& rv) const {
    return rv.schemaname().empty() &&
           std::find(ctes_.begin(), ctes_.end(), rv.relname()) != ctes_.end();
  }
  const Verdict& ViewVerdict(const Relation* view);
  const Relation* MatviewMask(const Relation* view, const std::string& rule);
  const Verdict& RoutineVerdict(const Routine* r);
  Verdict BodyVerdict(std::string_view language, std::string_view body, const Routine* self);
  void PrepareWords();

  // Builders. False (refused) when an expression cannot be built.
  bool ExprNode(const std::string& text, Node* out);
  bool Wrapper(const Relation* rel, pg_query::SelectStmt* out);
  bool MaskedRef(const Relation* rel, size_t column, const std::string& qualifier, Node* out);
  bool WholeRow(const Relation* rel, const std::string& qualifier, Node* out);
  void NoteColumns(const Relation* rel);
  // Replaces the FROM item *item, which named `rv`, by `(subquery) AS alias`: the statement's
  // alias, or the relation's name. Returns the alias.
  pg_query::Alias* Substitute(Node* item, const pg_query::RangeVar& rv, Node subquery,
                              ScopeItem* si);
  // Substitute with the masking projection of `rel` over `inner` (the table, or its sample).
  bool WrapTable(Node* item, const pg_query::RangeVar& rv, Node inner, const Relation* rel,
                 ScopeItem* si);
  ScopeItem ItemOf(const Node& item) const;

  const Catalog& catalog_;
  const Options& options_;
  Rewriter::Memo& memo_;
  int depth_;
  unsigned system_columns_;
  Text text_;
  std::vector<SearchPath> paths_;
  std::vector<PathEffect> path_effects_;
  std::string qualify_;
  // Set on the walker of a SQL function's body: its input arguments' names, and the FROM item
  // (columns p1..pn) that holds their values.
  struct Params {
    const Routine* routine = nullptr;
    std::string alias;
    std::vector<std::string> names;
  };
  std::optional<Params> params_;
  bool in_range_function_ = false;  // walking a FROM function that could not be expanded
  std::vector<std::string> ctes_;
  std::vector<Scope> scopes_;
  std::vector<Target> targets_;
  std::string reason_, rule_, first_rule_;
  bool changed_ = false;
  bool keyed_ = false;
  bool unknown_name_ = false;
  std::vector<std::string> masked_columns_;
};

void Walker::Visit(pb::Message* m) {
  if (refused()) return;
  if (m->GetDescriptor() == Node::descriptor()) {
    VisitNode(static_cast<Node*>(m));
  } else if (m->GetDescriptor() == pg_query::SelectStmt::descriptor()) {
    Select(static_cast<pg_query::SelectStmt*>(m));
  } else if (m->GetDescriptor() == pg_query::ResTarget::descriptor()) {
    // An output column that was a plain reference keeps its name when the reference becomes a
    // masking expression (RETURNING email is still named email).
    auto* rt = static_cast<pg_query::ResTarget*>(m);
    std::string name;
    if (rt->name().empty() && rt->val().has_column_ref() &&
        rt->val().column_ref().fields_size() > 0)
      name = std::string(
          StringOf(rt->val().column_ref().fields(rt->val().column_ref().fields_size() - 1)));
    Fields(m);
    if (!name.empty() && !rt->val().has_column_ref()) rt->set_name(name);
  } else {
    Fields(m);
  }
}

void Walker::Fields(pb::Message* m, const std::vector<int>& skip) {
  if (refused()) return;
  const pb::Reflection* r = m->GetReflection();
  std::vector<const pb::FieldDescriptor*> fields;
  if (m->GetDescriptor() == Node::descriptor()) {
    // A Node is one of ~250 kinds: only the one it holds, without listing every field.
    const auto kind = static_cast<Node*>(m)->node_case();
    if (kind == Node::NODE_NOT_SET) return;
    fields.push_back(Node::descriptor()->FindFieldByNumber(kind));
  } else {
    r->ListFields(*m, &fields);
  }
  for (const pb::FieldDescriptor* f : fields) {
    if (f->cpp_type() != pb::FieldDescriptor::CPPTYPE_MESSAGE) continue;
    if (std::find(skip.begin(), skip.end(), f->number()) != skip.end()) continue;
    if (f->is_repeated()) {
      for (int i = 0; i < r->FieldSize(*m, f); ++i) Visit(r->MutableRepeatedMessage(m, f, i));
    } else {
      Visit(r->MutableMessage(m, f));
    }
  }
}

void Walker::VisitNode(Node* n) {
  switch (n->node_case()) {
    case Node::kSelectStmt:
      Select(n->mutable_select_stmt());
      return;
    case Node::kInsertStmt:
    case Node::kUpdateStmt:
    case Node::kDeleteStmt:
    case Node::kMergeStmt:
      Dml(n);
      return;
    case Node::kColumnRef:
      ColumnRef(n);
      return;
    case Node::kFuncCall:
      FuncCallNode(n, n->mutable_func_call());
      return;
    case Node::kAIndirection: {
      // (f(...)).field of a function with several outputs: that output's expansion.
      auto* ind = n->mutable_a_indirection();
      if (ind->arg().has_func_call() && ind->indirection_size() == 1 &&
          ind->indirection(0).has_string()) {
        const std::string field = ind->indirection(0).string().sval();
        FuncCallNode(n, ind->mutable_arg()->mutable_func_call(), field);
        return;
      }
      Fields(n);
      return;
    }
    case Node::kParamRef:
      if (params_) ArgumentRef(n);
      return;
    case Node::kRangeVar:
      // Outside a FROM clause (a utility statement's object): nothing is read through it here.
      if (IsRefusedRelation(n->range_var().relname()))
        Refuse("reads " + n->range_var().relname() +
               ", which holds column values or statement text that masking cannot reach");
      return;
    default:
      Fields(n);
      return;
  }
}

void Walker::Statement(Node* stmt) {
  switch (stmt->node_case()) {
    case Node::kSelectStmt:
    case Node::kInsertStmt:
    case Node::kUpdateStmt:
    case Node::kDeleteStmt:
    case Node::kMergeStmt:
      VisitNode(stmt);
      return;
    case Node::kCopyStmt:
      Copy(stmt);
      return;
    case Node::kExplainStmt:
      VisitNode(stmt->mutable_explain_stmt()->mutable_query());
      // A plan prints the masking expressions, the hash key's pads among them.
      if (keyed_)
        Refuse(
            "EXPLAIN of a statement that reads a column masked with a keyed hash would print "
            "the key");
      return;
    case Node::kCreateTableAsStmt: {
      auto* c = stmt->mutable_create_table_as_stmt();
      VisitNode(c->mutable_query());
      if (keyed_ && c->objtype() == pg_query::OBJECT_MATVIEW)
        Refuse("a materialized view's definition would hold the masking hash key");
      return;
    }
    case Node::kDeclareCursorStmt:
      VisitNode(stmt->mutable_declare_cursor_stmt()->mutable_query());
      return;
    case Node::kPrepareStmt:
      VisitNode(stmt->mutable_prepare_stmt()->mutable_query());
      return;
    case Node::kVariableSetStmt:
      SetStatement(stmt->variable_set_stmt());
      Fields(stmt);
      return;
    case Node::kTransactionStmt:
      // SET LOCAL ends with the transaction, and a rollback undoes SETs: what the string set
      // before is no longer known to hold.
      if (!path_effects_.empty()) paths_.clear();
      return;
    case Node::kDiscardStmt:
      if (stmt->discard_stmt().target() == pg_query::DISCARD_ALL)
        PathEffectOf({PathEffect::Kind::kReset, false, {}});
      return;
    case Node::kExecuteStmt:
    case Node::kCallStmt:
      Fields(stmt);
      return;
    case Node::kDoStmt:
      Do(stmt->do_stmt());
      return;
    case Node::kCreateTrigStmt:
      Call(stmt->create_trig_stmt().funcname());
      ScanUtility(stmt, "a trigger on");
      return;
    case Node::kAlterTableStmt:
      ScanUtility(stmt, "ALTER TABLE of");
      return;
    case Node::kIndexStmt:
      ScanUtility(stmt, "an index on");
      return;
    case Node::kRuleStmt:
      ScanUtility(stmt, "a rule that involves");
      return;
    case Node::kCreatePolicyStmt:
    case Node::kAlterPolicyStmt:
      ScanUtility(stmt, "a row security policy on");
      return;
    case Node::kCreateStatsStmt:
      ScanUtility(stmt, "extended statistics on");
      return;
    default:
      // Other utility statements read no rows (CREATE VIEW and CREATE FUNCTION store text that
      // is judged when it is read or called).
      return;
  }
}

void Walker::With(pg_query::WithClause* w) {
  if (w->recursive())
    for (const Node& c : w->ctes()) ctes_.push_back(c.common_table_expr().ctename());
  for (Node& c : *w->mutable_ctes()) {
    auto* cte = c.mutable_common_table_expr();
    VisitNode(cte->mutable_ctequery());
    if (!w->recursive()) ctes_.push_back(cte->ctename());
  }
}

void Walker::Select(pg_query::SelectStmt* s) {
  if (refused()) return;
  const size_t cte_mark = ctes_.size();
  if (s->has_with_clause()) With(s->mutable_with_clause());
  if (s->op() != pg_query::SETOP_NONE && s->op() != pg_query::SET_OPERATION_UNDEFINED) {
    if (s->has_larg()) Select(s->mutable_larg());
    if (s->has_rarg()) Select(s->mutable_rarg());
  }
  scopes_.emplace_back();
  for (Node& item : *s->mutable_from_clause()) {
    FromItem(&item, scopes_.size() - 1);
    if (refused()) break;
  }
  // with_clause = 16, from_clause = 4, larg = 19, rarg = 20
  Fields(s, {16, 4, 19, 20});
  scopes_.pop_back();
  ctes_.resize(cte_mark);
}

Walker::ScopeItem Walker::ItemOf(const Node& item) const {
  ScopeItem it;
  switch (item.node_case()) {
    case Node::kRangeVar: {
      const auto& rv = item.range_var();
      it.refname = rv.has_alias() ? rv.alias().aliasname() : rv.relname();
      if (IsCte(rv)) break;
      auto rels = catalog_.FindRelations(rv.schemaname(), rv.relname());
      if (rels.empty()) break;
      // Known only for one relation: `AS t(a, b)` renames its first columns in order.
      it.columns_known = rels.size() == 1 || !rv.has_alias() || rv.alias().colnames_size() == 0;
      for (const Relation* r : rels)
        for (const Column& c : r->columns) it.columns.push_back(c.name);
      if (rv.has_alias())
        for (int i = 0; i < rv.alias().colnames_size() && i < static_cast<int>(it.columns.size());
             ++i)
          it.columns[i] = std::string(StringOf(rv.alias().colnames(i)));
      break;
    }
    case Node::kRangeSubselect:
      it.refname = item.range_subselect().has_alias() ? item.range_subselect().alias().aliasname()
                                                      : std::string();
      break;
    case Node::kRangeFunction:
      it.refname = item.range_function().has_alias() ? item.range_function().alias().aliasname()
                                                     : std::string();
      break;
    default:
      break;
  }
  return it;
}

void Walker::FromItem(Node* item, size_t level) {
  if (refused()) return;
  switch (item->node_case()) {
    case Node::kJoinExpr: {
      auto* j = item->mutable_join_expr();
      FromItem(j->mutable_larg(), level);
      FromItem(j->mutable_rarg(), level);
      if (j->has_quals()) VisitNode(j->mutable_quals());
      return;
    }
    case Node::kRangeTableSample: {
      auto* ts = item->mutable_range_table_sample();
      for (Node& a : *ts->mutable_args()) VisitNode(&a);
      if (ts->has_repeatable()) VisitNode(ts->mutable_repeatable());
      if (!ts->relation().has_range_var()) return;
      const auto& rv = ts->relation().range_var();
      const Relation* rel = Resolve(rv);
      ScopeItem si = ItemOf(ts->relation());
      Qualify(ts->mutable_relation()->mutable_range_var());
      if (rel == nullptr || !rel->masked) {
        scopes_[level].items.push_back(std::move(si));
        return;
      }
      // The sample stays inside the wrapper, on the table itself.
      Node sample = *item;
      sample.mutable_range_table_sample()->mutable_relation()->mutable_range_var()->clear_alias();
      if (WrapTable(item, rv, std::move(sample), rel, &si))
        scopes_[level].items.push_back(std::move(si));
      return;
    }
    case Node::kRangeVar: {
      const pg_query::RangeVar rv = item->range_var();
      ScopeItem si = ItemOf(*item);
      const Relation* rel = Resolve(rv);
      if (refused()) return;
      Qualify(item->mutable_range_var());
      if (rel != nullptr && rel->kind == 'v') {
        const Verdict& v = ViewVerdict(rel);
        if (v.state == Verdict::kRefused) return Refuse(v.reason, v.rule_id);
        if (v.state == Verdict::kMasked) {
          auto* alias = Substitute(item, rv, memo_.views.at(rel).second, &si);
          // The view's column names, unless the statement renamed them.
          if (alias->colnames_size() == 0)
            for (const Column& c : rel->columns)
              alias->add_colnames()->mutable_string()->set_sval(c.name);
          masked_columns_.push_back(QualifiedName(*rel) + ".*");
        }
        scopes_[level].items.push_back(std::move(si));
        return;
      }
      if (rel == nullptr || !rel->masked) {
        scopes_[level].items.push_back(std::move(si));
        return;
      }
      Node inner = *item;
      inner.mutable_range_var()->clear_alias();
      if (WrapTable(item, rv, std::move(inner), rel, &si))
        scopes_[level].items.push_back(std::move(si));
      return;
    }
    case Node::kRangeFunction: {
      if (RangeFunctionItem(item, level)) return;
      ScopeItem si = ItemOf(*item);
      in_range_function_ = true;
      Fields(item);
      in_range_function_ = false;
      scopes_[level].items.push_back(std::move(si));
      return;
    }
    default: {
      // Subqueries, XMLTABLE: their insides are walked (a LATERAL one sees the items before
      // it).
      ScopeItem si = ItemOf(*item);
      Fields(item);
      scopes_[level].items.push_back(std::move(si));
      return;
    }
  }
}

pg_query::Alias* Walker::Substitute(Node* item, const pg_query::RangeVar& rv, Node subquery,
                                    ScopeItem* si) {
  Node replaced;
  auto* sub = replaced.mutable_range_subselect();
  *sub->mutable_subquery() = std::move(subquery);
  if (rv.has_alias()) {
    *sub->mutable_alias() = rv.alias();
  } else {
    sub->mutable_alias()->set_aliasname(rv.relname());
    si->wrapped_unaliased = true;
    si->schema = rv.schemaname();
  }
  *item = std::move(replaced);
  changed_ = true;
  return item->mutable_range_subselect()->mutable_alias();
}

bool Walker::WrapTable(Node* item, const pg_query::RangeVar& rv, Node inner, const Relation* rel,
                       ScopeItem* si) {
  pg_query::SelectStmt wrapper;
  if (!Wrapper(rel, &wrapper)) return false;
  *wrapper.mutable_from_clause(0) = std::move(inner);
  Node subquery;
  *subquery.mutable_select_stmt() = std::move(wrapper);
  Substitute(item, rv, std::move(subquery), si);
  NoteColumns(rel);
  return true;
}

const Relation* Walker::Resolve(const pg_query::RangeVar& rv) {
  qualify_.clear();
  if (IsRefusedRelation(rv.relname())) {
    Refuse("reads " + rv.relname() +
           ", which holds column values or statement text that masking cannot reach");
    return nullptr;
  }
  if (IsCte(rv)) return nullptr;
  std::vector<const Relation*> rels = catalog_.FindRelations(rv.schemaname(), rv.relname());
  if (rv.schemaname().empty() && rels.size() > 1) {
    // Where the choice matters (a candidate masks, or is a view), the one the search_path
    // picks is written with its schema: should the session's search_path be other than the
    // relay follows (a routine that changed it out of sight), the server still reads what was
    // judged.
    bool matters = false;
    for (const Relation* r : rels)
      matters = matters || r->masked || r->kind == 'v' || r->kind == 'm';
    rels = OnPath(std::move(rels));
    if (matters && rels.size() == 1) qualify_ = rels.front()->schema;
  }
  if (rels.empty()) {
    const bool system = rv.schemaname().empty() || rv.schemaname() == "pg_catalog" ||
                        rv.schemaname() == "information_schema";
    if (!system || !catalog_.KnowsSystemRelation(rv.relname())) {
      unknown_name_ = true;
      Refuse("\"" + rv.relname() +
             "\" is not in the catalog the relay read (created since, or in this same query "
             "string): what it reads cannot be checked; run it as a statement of its own");
    }
    return nullptr;
  }
  // Materialized views over masked tables hold masked values' sources: every column masked.
  for (const Relation*& r : rels) {
    if (r->kind != 'm' || r->masked) continue;
    const Verdict& v = ViewVerdict(r);
    if (v.state == Verdict::kRefused) {
      Refuse(v.reason, v.rule_id);
      return nullptr;
    }
    if (v.state == Verdict::kMasked) r = MatviewMask(r, v.rule_id);
  }
  if (rels.size() == 1) return rels.front();
  // An unqualified name found in several schemas: the session's search_path picks one. When
  // they differ in masking, they must have one shape, and every mask applies.
  bool any = false;
  for (const Relation* r : rels) {
    any = any || r->masked;
    if (r->kind == 'v' && ViewVerdict(r).state != Verdict::kClear) any = true;
  }
  if (!any) return rels.front();
  const Relation* first = rels.front();
  for (const Relation* r : rels) {
    bool same = r->kind != 'v' && r->columns.size() == first->columns.size();
    for (size_t i = 0; same && i < r->columns.size(); ++i)
      same = r->columns[i].name == first->columns[i].name &&
             r->columns[i].type == first->columns[i].type;
    if (!same) {
      Refuse("\"" + rv.relname() +
                 "\" names relations in several schemas, some with masked columns; qualify it "
                 "with its schema",
             RuleOf(*first));
      return nullptr;
    }
  }
  auto merged = std::make_unique<Relation>(*first);
  for (const Relation* r : rels)
    for (size_t i = 0; i < r->columns.size(); ++i)
      if (!merged->columns[i].mask && r->columns[i].mask)
        merged->columns[i].mask = r->columns[i].mask;
  merged->masked = true;
  memo_.merged.push_back(std::move(merged));
  return memo_.merged.back().get();
}

const Verdict& Walker::ViewVerdict(const Relation* view) {
  auto& entry = memo_.views[view];
  Verdict& v = entry.first;
  if (v.state == Verdict::kInProgress) {
    v.state = Verdict::kRefused;
    v.reason = "view " + QualifiedName(*view) + " is defined through itself";
    return v;
  }
  if (v.state != Verdict::kUnknown) return v;
  if (view->definition.empty()) {
    v.state = Verdict::kClear;
    return v;
  }
  if (depth_ >= kMaxViewDepth) {
    v.state = Verdict::kRefused;
    v.reason = "views nested too deep to expand for masking";
    return v;
  }
  v.state = Verdict::kInProgress;
  pg_query::ParseResult tree;
  std::string error;
  const pg_query::SelectStmt* def = nullptr;
  if (ParseTree(view->definition, &tree, &error)) def = FirstSelect(tree);
  if (def == nullptr) {
    Verdict& again = memo_.views[view].first;
    again.state = Verdict::kRefused;
    again.reason = "the definition of view " + QualifiedName(*view) + " cannot be analysed";
    return again;
  }
  pg_query::SelectStmt rewritten = *def;
  Walker inner(catalog_, options_, memo_, depth_ + 1);
  inner.Definition(&rewritten);
  keyed_ = keyed_ || inner.keyed();
  auto& done = memo_.views[view];  // the map may have grown meanwhile
  if (inner.refused()) {
    done.first.state = Verdict::kRefused;
    done.first.reason = "view " + QualifiedName(*view) + ": " + inner.reason();
    done.first.rule_id = inner.rule_id();
  } else if (inner.changed()) {
    done.first.state = Verdict::kMasked;
    done.first.rule_id = inner.first_rule();
    if (first_rule_.empty()) first_rule_ = inner.first_rule();
    *done.second.mutable_select_stmt() = std::move(rewritten);
  } else {
    done.first.state = Verdict::kClear;
  }
  return done.first;
}

const Relation* Walker::MatviewMask(const Relation* view, const std::string& rule) {
  auto& slot = memo_.matviews[view];
  if (!slot) {
    slot = std::make_unique<Relation>(*view);
    for (Column& c : slot->columns) c.mask = ColumnMask{MaskFunction::kRedact, 4, rule};
    slot->masked = true;
  }
  return slot.get();
}

void Walker::PrepareWords() {
  if (memo_.words_ready) return;
  memo_.words_ready = true;
  for (const Relation& r : catalog_.relations()) {
    if (r.masked) {
      memo_.masked_words.emplace_back(Lower(r.name), RuleOf(r));
    } else if (r.kind == 'v' || r.kind == 'm') {
      const Verdict& v = ViewVerdict(&r);
      if (v.state != Verdict::kClear) memo_.masked_words.emplace_back(Lower(r.name), v.rule_id);
    }
  }
}

Verdict Walker::BodyVerdict(std::string_view language, std::string_view body, const Routine* self) {
  Verdict v;
  v.state = Verdict::kRefused;
  const std::string lang = Lower(language);
  if (lang != "sql" && lang != "plpgsql") {
    v.reason = "is written in " + std::string(language) + ", which masking cannot see into";
    return v;
  }
  const std::string text = Lower(body);
  if (text.find("execute") != std::string::npos) {
    v.reason = "runs SQL built at run time (EXECUTE), which masking cannot rewrite";
    return v;
  }
  if (text.find("u&") != std::string::npos) {
    v.reason = "names objects with Unicode escapes, which masking cannot check";
    return v;
  }
  PrepareWords();
  for (const auto& [word, rule] : memo_.masked_words)
    if (text.find(word) != std::string::npos) {
      v.reason = "reads " + word + ", which has masked columns";
      v.rule_id = rule;
      return v;
    }
  for (const Routine& other : catalog_.routines()) {
    if (&other == self || other.extension) continue;
    if (text.find(Lower(other.name)) == std::string::npos) continue;
    const Verdict& ov = RoutineVerdict(&other);
    if (ov.state == Verdict::kRefused) {
      v.reason = "calls " + other.schema + "." + other.name + ", which " + ov.reason;
      v.rule_id = ov.rule_id;
      return v;
    }
  }
  // Builtins that read behind rewriting's back, named anywhere in the body.
  static constexpr std::array<std::string_view, 12> kWords = {
      "query_to_xml", "table_to_xml", "schema_to_xml", "database_to_xml",
      "ts_stat",      "ts_rewrite",   "current_query", "pg_stat",
      "pg_read",      "dblink",       "pg_cursors",    "pg_prepared_statements"};
  for (std::string_view w : kWords)
    if (text.find(w) != std::string::npos) {
      v.reason = "calls " + std::string(w) + ", which masking cannot reach";
      return v;
    }
  v.state = Verdict::kClear;
  return v;
}

const Verdict& Walker::RoutineVerdict(const Routine* r) {
  Verdict& v = memo_.routines[r];
  if (v.state == Verdict::kInProgress) {
    // A cycle: judged by its other members' bodies.
    static const Verdict kClearVerdict{Verdict::kClear, {}, {}};
    return kClearVerdict;
  }
  if (v.state != Verdict::kUnknown) return v;
  if (r->extension && (r->language == "c" || r->language == "internal")) {
    v.state = Verdict::kClear;
    return v;
  }
  v.state = Verdict::kInProgress;
  Verdict computed = BodyVerdict(r->language, r->body, r);
  Verdict& slot = memo_.routines[r];
  slot = std::move(computed);
  return slot;
}

void Walker::Call(const pb::RepeatedPtrField<Node>& funcname, int argc) {
  if (refused() || funcname.empty()) return;
  std::string_view name = StringOf(funcname.Get(funcname.size() - 1));
  std::string_view schema =
      funcname.size() >= 2 ? StringOf(funcname.Get(funcname.size() - 2)) : std::string_view();
  if (IsRefusedFunction(name)) {
    Refuse("calls " + std::string(name) +
           ", which reads values behind masking's back (SQL given as text, statistics, statement "
           "text or raw data)");
    return;
  }
  if (!catalog_.KnowsFunction(std::string(name))) {
    unknown_name_ = true;
    Refuse("calls " + std::string(name) +
           ", which is not in the catalog the relay read (created since, or in this same query "
           "string): what it reads cannot be checked; run it as a statement of its own");
    return;
  }
  // Every schema's: which overload the server calls depends on argument types as well as the
  // search_path, so one that reads masked columns anywhere refuses the call.
  for (const Routine* r : catalog_.FindRoutines(schema, name)) {
    if (MaySetSearchPath(r->language, r->body, r->extension))
      PathEffectOf({PathEffect::Kind::kUnknown, false, {}});
    if (argc >= 0 && Expandable(*r) && MayRun(*r, argc)) continue;  // FuncCallNode
    const Verdict& v = RoutineVerdict(r);
    if (v.state == Verdict::kRefused) {
      Refuse("calls " + r->schema + "." + r->name + ", which " + v.reason, v.rule_id);
      return;
    }
  }
}

void Walker::Do(const pg_query::DoStmt& d) {
  std::string language = "plpgsql", body;
  for (const Node& a : d.args()) {
    if (!a.has_def_elem()) continue;
    const auto& e = a.def_elem();
    if (e.defname() == "as") body = std::string(StringOf(e.arg()));
    if (e.defname() == "language") language = std::string(StringOf(e.arg()));
  }
  Verdict v = BodyVerdict(language, body, nullptr);
  if (v.state == Verdict::kRefused) Refuse("a DO block that " + v.reason, v.rule_id);
  if (MaySetSearchPath(language, body, false))
    PathEffectOf({PathEffect::Kind::kUnknown, false, {}});
}

void Walker::PathEffectOf(PathEffect e) {
  switch (e.kind) {
    case PathEffect::Kind::kSet:
      paths_.clear();
      if (std::find(e.schemas.begin(), e.schemas.end(), "$user") == e.schemas.end())
        paths_.push_back(e.schemas);
      break;
    case PathEffect::Kind::kReset:
    case PathEffect::Kind::kUnknown:
      paths_.clear();  // the value at connect is the session's to know; unknown here
      break;
    case PathEffect::Kind::kRole:
      for (const SearchPath& p : paths_)  // expanded with the role before
        if (!p.empty()) {
          paths_.clear();
          break;
        }
      break;
  }
  path_effects_.push_back(std::move(e));
}

void Walker::SetStatement(const pg_query::VariableSetStmt& s) {
  const std::string name = Lower(s.name());
  if (name == "role" || name == "session_authorization") {
    PathEffectOf({PathEffect::Kind::kRole, s.is_local(), {}});
    return;
  }
  if (s.kind() == pg_query::VAR_RESET_ALL) {
    PathEffectOf({PathEffect::Kind::kReset, false, {}});
    return;
  }
  if (name != "search_path") return;
  switch (s.kind()) {
    case pg_query::VAR_SET_DEFAULT:
    case pg_query::VAR_RESET:
      PathEffectOf({PathEffect::Kind::kReset, s.is_local(), {}});
      return;
    case pg_query::VAR_SET_VALUE: {
      // Each argument is one schema name, as written (the server quotes each when it builds
      // the setting, so 'a, b' names one schema).
      PathEffect e{PathEffect::Kind::kSet, s.is_local(), {}};
      for (const Node& a : s.args()) {
        if (!a.has_a_const() || !a.a_const().has_sval()) {
          e = {PathEffect::Kind::kUnknown, s.is_local(), {}};
          break;
        }
        e.schemas.push_back(a.a_const().sval().sval());
      }
      PathEffectOf(std::move(e));
      return;
    }
    case pg_query::VAR_SET_CURRENT:  // FROM CURRENT: the value it has
      return;
    default:
      PathEffectOf({PathEffect::Kind::kUnknown, s.is_local(), {}});
      return;
  }
}

void Walker::SetConfigCall(const pg_query::FuncCall& f) {
  if (f.funcname().empty() || StringOf(f.funcname(f.funcname_size() - 1)) != "set_config") return;
  std::string setting;
  if (f.args_size() > 0 && f.args(0).has_a_const() && f.args(0).a_const().has_sval())
    setting = Lower(f.args(0).a_const().sval().sval());
  else
    setting = "search_path";  // computed: it may be
  if (setting == "role" || setting == "session_authorization")
    PathEffectOf({PathEffect::Kind::kRole, false, {}});
  else if (setting == "search_path")
    PathEffectOf({PathEffect::Kind::kUnknown, false, {}});
}

std::vector<const Relation*> Walker::OnPath(std::vector<const Relation*> candidates) const {
  if (paths_.empty() || candidates.size() < 2) return candidates;
  std::vector<const Relation*> out;
  for (const SearchPath& path : paths_) {
    // pg_catalog is searched first unless the path places it.
    std::vector<std::string_view> order;
    if (std::find(path.begin(), path.end(), "pg_catalog") == path.end())
      order.push_back("pg_catalog");
    order.insert(order.end(), path.begin(), path.end());
    for (std::string_view schema : order) {
      bool found = false;
      for (const Relation* c : candidates)
        if (c->schema == schema) {
          found = true;
          if (std::find(out.begin(), out.end(), c) == out.end()) out.push_back(c);
        }
      if (found) break;
    }
  }
  // On no path as the relay knows it: the server would not find it there either (or finds a
  // temporary one), but every candidate is taken should the relay's view be wrong.
  return out.empty() ? candidates : out;
}

void Walker::ScanUtility(pb::Message* m, std::string_view what) {
  if (refused()) return;
  if (m->GetDescriptor() == pg_query::RangeVar::descriptor()) {
    const auto& rv = *static_cast<pg_query::RangeVar*>(m);
    for (const Relation* r : catalog_.FindRelations(rv.schemaname(), rv.relname())) {
      bool masked = r->masked;
      if (!masked && (r->kind == 'v' || r->kind == 'm'))
        masked = ViewVerdict(r).state != Verdict::kClear;
      if (masked) {
        Refuse(std::string(what) + " " + QualifiedName(*r) +
                   ", which has masked columns: its values could surface in errors, generated "
                   "columns or stored definitions",
               RuleOf(*r));
        return;
      }
    }
    return;
  }
  const pb::Reflection* r = m->GetReflection();
  std::vector<const pb::FieldDescriptor*> fields;
  r->ListFields(*m, &fields);
  for (const pb::FieldDescriptor* f : fields) {
    if (f->cpp_type() != pb::FieldDescriptor::CPPTYPE_MESSAGE) continue;
    if (f->is_repeated()) {
      for (int i = 0; i < r->FieldSize(*m, f); ++i)
        ScanUtility(r->MutableRepeatedMessage(m, f, i), what);
    } else {
      ScanUtility(r->MutableMessage(m, f), what);
    }
  }
  if (m->GetDescriptor() == Node::descriptor() &&
      static_cast<Node*>(m)->node_case() == Node::kFuncCall)
    Call(static_cast<Node*>(m)->func_call().funcname());
}

void Walker::Dml(Node* n) {
  if (refused()) return;
  const size_t cte_mark = ctes_.size();
  const size_t target_mark = targets_.size();
  pg_query::RangeVar* relation = nullptr;
  pg_query::WithClause* with = nullptr;
  switch (n->node_case()) {
    case Node::kInsertStmt:
      relation = n->mutable_insert_stmt()->mutable_relation();
      if (n->insert_stmt().has_with_clause())
        with = n->mutable_insert_stmt()->mutable_with_clause();
      break;
    case Node::kUpdateStmt:
      relation = n->mutable_update_stmt()->mutable_relation();
      if (n->update_stmt().has_with_clause())
        with = n->mutable_update_stmt()->mutable_with_clause();
      break;
    case Node::kDeleteStmt:
      relation = n->mutable_delete_stmt()->mutable_relation();
      if (n->delete_stmt().has_with_clause())
        with = n->mutable_delete_stmt()->mutable_with_clause();
      break;
    default:
      relation = n->mutable_merge_stmt()->mutable_relation();
      if (n->merge_stmt().has_with_clause()) with = n->mutable_merge_stmt()->mutable_with_clause();
      break;
  }
  if (with != nullptr) With(with);
  scopes_.emplace_back();
  const size_t level = scopes_.size() - 1;
  // What the statement reads besides its target.
  if (n->has_insert_stmt() && n->insert_stmt().has_select_stmt())
    VisitNode(n->mutable_insert_stmt()->mutable_select_stmt());
  if (n->has_update_stmt())
    for (Node& item : *n->mutable_update_stmt()->mutable_from_clause()) FromItem(&item, level);
  if (n->has_delete_stmt())
    for (Node& item : *n->mutable_delete_stmt()->mutable_using_clause()) FromItem(&item, level);
  if (n->has_merge_stmt()) FromItem(n->mutable_merge_stmt()->mutable_source_relation(), level);
  const Relation* rel = refused() ? nullptr : Resolve(*relation);
  if (rel != nullptr) Qualify(relation);
  if (rel != nullptr && rel->kind == 'v' && ViewVerdict(rel).state != Verdict::kClear) {
    const Verdict& v = ViewVerdict(rel);
    Refuse(v.state == Verdict::kRefused
               ? v.reason
               : "writes through view " + QualifiedName(*rel) + ", which reads masked columns",
           v.rule_id);
  }
  if (rel != nullptr && rel->masked && rel->kind != 'v') {
    const bool aliased = relation->has_alias();
    targets_.push_back({rel, aliased ? relation->alias().aliasname() : relation->relname(),
                        relation->schemaname(), aliased, level});
    NoteColumns(rel);
  }
  auto expand_returning = [&](pb::RepeatedPtrField<Node>* list) {
    if (targets_.size() == target_mark) return;  // the target has no masked column
    const Target& t = targets_.back();
    pb::RepeatedPtrField<Node> out;
    for (Node& item : *list) {
      const auto& rt = item.res_target();
      const Node& val = rt.val();
      bool star = val.has_column_ref() && !val.column_ref().fields().empty() &&
                  IsStar(val.column_ref().fields(val.column_ref().fields_size() - 1));
      bool all = star && val.column_ref().fields_size() == 1;
      bool own = star && val.column_ref().fields_size() == 2 &&
                 StringOf(val.column_ref().fields(0)) == t.refname;
      if (!all && !own) {
        *out.Add() = std::move(item);
        continue;
      }
      // * and target.*: the target's columns one by one, masked ones masked; with `*` the FROM
      // items' columns follow (they are masked where they are read).
      std::string list_text;
      for (size_t i = 0; i < t.rel->columns.size(); ++i) {
        const Column& c = t.rel->columns[i];
        list_text += list_text.empty() ? "" : ", ";
        list_text += Quote(t.refname) + "." + Quote(c.name);
      }
      pg_query::ParseResult tree;
      std::string error;
      const pg_query::SelectStmt* s = nullptr;
      if (ParseTree("SELECT " + list_text, &tree, &error)) s = FirstSelect(tree);
      if (s == nullptr) return Refuse("RETURNING could not be rewritten for masking");
      for (const Node& e : s->target_list()) *out.Add() = e;
      if (all)
        for (const ScopeItem& si : scopes_[level].items) {
          if (si.refname.empty()) return Refuse("RETURNING * over an unnamed join");
          Node* e = out.Add();
          auto* cr = e->mutable_res_target()->mutable_val()->mutable_column_ref();
          cr->add_fields()->mutable_string()->set_sval(si.refname);
          cr->add_fields()->mutable_a_star();
        }
    }
    *list = std::move(out);
  };
  switch (n->node_case()) {
    case Node::kInsertStmt: {
      auto* s = n->mutable_insert_stmt();
      expand_returning(s->mutable_returning_list());
      if (s->has_on_conflict_clause()) {
        auto* oc = s->mutable_on_conflict_clause();
        for (Node& e : *oc->mutable_target_list()) Visit(&e);
        if (oc->has_where_clause()) VisitNode(oc->mutable_where_clause());
      }
      for (Node& e : *s->mutable_returning_list()) Visit(&e);
      break;
    }
    case Node::kUpdateStmt: {
      auto* s = n->mutable_update_stmt();
      expand_returning(s->mutable_returning_list());
      for (Node& e : *s->mutable_target_list()) Visit(&e);
      if (s->has_where_clause()) VisitNode(s->mutable_where_clause());
      for (Node& e : *s->mutable_returning_list()) Visit(&e);
      break;
    }
    case Node::kDeleteStmt: {
      auto* s = n->mutable_delete_stmt();
      expand_returning(s->mutable_returning_list());
      if (s->has_where_clause()) VisitNode(s->mutable_where_clause());
      for (Node& e : *s->mutable_returning_list()) Visit(&e);
      break;
    }
    default: {
      auto* s = n->mutable_merge_stmt();
      if (s->has_join_condition()) VisitNode(s->mutable_join_condition());
      for (Node& e : *s->mutable_merge_when_clauses()) Visit(&e);
      break;
    }
  }
  targets_.resize(target_mark);
  scopes_.pop_back();
  ctes_.resize(cte_mark);
}

void Walker::Copy(Node* n) {
  auto* c = n->mutable_copy_stmt();
  // libpg_query's deparser dereferences the value of these options (the server refuses them
  // without one anyway).
  for (const Node& o : c->options()) {
    if (!o.has_def_elem() || o.def_elem().has_arg()) continue;
    const std::string& name = o.def_elem().defname();
    for (const char* needs : {"format", "delimiter", "null", "quote", "escape", "encoding",
                              "force_quote", "force_not_null", "force_null", "default"})
      if (name == needs) return Refuse("COPY option " + name + " needs a value");
  }
  if (c->has_query()) {
    VisitNode(c->mutable_query());
    return;
  }
  if (c->is_from() || !c->has_relation()) return;  // writes read nothing
  const Relation* rel = Resolve(c->relation());
  if (rel != nullptr) Qualify(c->mutable_relation());
  if (refused() || rel == nullptr || !rel->masked) return;
  // COPY table [(columns)] TO ...: COPY (SELECT columns FROM table) TO ..., the table then
  // wrapped as any read is. The output keeps its columns, order and options.
  Node query;
  auto* s = query.mutable_select_stmt();
  s->set_op(pg_query::SETOP_NONE);
  s->set_limit_option(pg_query::LIMIT_OPTION_DEFAULT);
  if (c->attlist_size() == 0) {
    s->add_target_list()
        ->mutable_res_target()
        ->mutable_val()
        ->mutable_column_ref()
        ->add_fields()
        ->mutable_a_star();
  } else {
    for (const Node& a : c->attlist())
      s->add_target_list()
          ->mutable_res_target()
          ->mutable_val()
          ->mutable_column_ref()
          ->add_fields()
          ->mutable_string()
          ->set_sval(std::string(StringOf(a)));
  }
  auto* from = s->add_from_clause()->mutable_range_var();
  *from = c->relation();
  c->clear_relation();
  c->clear_attlist();
  *c->mutable_query() = std::move(query);
  changed_ = true;
  VisitNode(c->mutable_query());
}

// ---- SQL functions expanded through their bodies ----

const Routine* Walker::MaskedCallee(const pg_query::FuncCall& f) {
  if (refused() || f.funcname().empty()) return nullptr;
  std::string_view name = StringOf(f.funcname(f.funcname_size() - 1));
  std::string_view schema =
      f.funcname_size() >= 2 ? StringOf(f.funcname(f.funcname_size() - 2)) : std::string_view();
  const int argc = f.args_size();
  std::vector<const Routine*> masked, callable;
  for (const Routine* r : catalog_.FindRoutines(schema, name)) {
    if (!MayRun(*r, argc)) continue;
    callable.push_back(r);
    if (Expandable(*r) && RoutineVerdict(r).state == Verdict::kRefused) masked.push_back(r);
  }
  if (masked.empty()) return nullptr;
  const Routine* r = masked.front();
  if (callable.size() != 1) {
    Refuse("calls " + std::string(name) + ", and function " + r->schema + "." + r->name +
               " of that name " + RoutineVerdict(r).reason +
               ": with several functions of that name the one called cannot be told; qualify "
               "it with its schema",
           RoutineVerdict(r).rule_id);
    return nullptr;
  }
  return r;
}

bool Walker::Expand(const Routine* r, const std::string& scalar_name, Expansion* out,
                    bool* masked) {
  *masked = false;
  const std::string what = "calls " + r->schema + "." + r->name + ", which reads masked columns";
  const std::string& rule = RoutineVerdict(r).rule_id;
  if (depth_ >= kMaxViewDepth) {
    Refuse("functions nested too deep to expand for masking", rule);
    return false;
  }
  if (r->security_definer) {
    Refuse(what + " with its owner's rights (SECURITY DEFINER), so it cannot be expanded", rule);
    return false;
  }
  std::vector<std::string> names;
  for (const Routine::Arg& a : r->args) {
    if (a.mode == 'v' || (InputMode(a.mode) && PseudoType(a.type))) {
      Refuse(what + " and takes variadic or polymorphic arguments, so it cannot be expanded", rule);
      return false;
    }
    if (InputMode(a.mode)) names.push_back(a.name);
    if (a.mode == 'o' || a.mode == 'b' || a.mode == 't') out->outputs.emplace_back(a.name, a.type);
  }
  if (!out->outputs.empty()) {
    out->record = out->outputs.size() > 1;
  } else if (r->return_type_kind == 'c') {
    auto rels = catalog_.FindRelations(r->return_schema, r->return_relation);
    if (r->return_relation.empty() || rels.size() != 1) {
      Refuse(what + " and returns a composite type the relay does not know", rule);
      return false;
    }
    for (const Column& c : rels.front()->columns) out->outputs.emplace_back(c.name, c.type);
    out->record = true;
  } else if (PseudoType(r->return_type)) {
    Refuse(what + " and returns " + r->return_type + ", so it cannot be expanded", rule);
    return false;
  } else {
    out->outputs.emplace_back(scalar_name, r->return_type);
  }
  // The body: one SELECT (or RETURN expression).
  pg_query::ParseResult tree;
  std::string error;
  std::vector<const Node*> stmts;
  if (r->atomic) {
    if (ParseTree("CREATE FUNCTION pg_temp.f() RETURNS int LANGUAGE sql " + r->body, &tree,
                  &error) &&
        tree.stmts_size() == 1 && tree.stmts(0).stmt().has_create_function_stmt())
      BodyStatements(tree.stmts(0).stmt().create_function_stmt().sql_body(), &stmts);
  } else if (ParseTree(r->body, &tree, &error)) {
    for (const pg_query::RawStmt& raw : tree.stmts()) stmts.push_back(&raw.stmt());
  }
  pg_query::SelectStmt select;
  if (stmts.size() == 1 && stmts[0]->has_select_stmt()) {
    select = stmts[0]->select_stmt();
  } else if (stmts.size() == 1 && stmts[0]->has_return_stmt()) {
    select.set_op(pg_query::SETOP_NONE);
    select.set_limit_option(pg_query::LIMIT_OPTION_DEFAULT);
    *select.add_target_list()->mutable_res_target()->mutable_val() =
        stmts[0]->return_stmt().returnval();
  } else {
    Refuse(what + " and its body is not a single SELECT, so it cannot be expanded", rule);
    return false;
  }
  // Names in the body resolve with the function's own search_path when it sets one.
  std::vector<SearchPath> paths = paths_;
  if (r->config_search_path) {
    paths.clear();
    std::optional<SearchPath> p = ParseSearchPath(*r->config_search_path);
    if (p && std::find(p->begin(), p->end(), "$user") == p->end()) paths.push_back(*p);
  }
  Walker inner(catalog_, options_, memo_, depth_ + 1, system_columns_, Text{}, std::move(paths));
  inner.params_ = Params{r, "__dbw_f" + std::to_string(depth_), std::move(names)};
  inner.Definition(&select);
  keyed_ = keyed_ || inner.keyed();
  if (inner.refused()) {
    unknown_name_ = unknown_name_ || inner.unknown_name();
    Refuse("calls " + r->schema + "." + r->name + ": " + inner.reason(), inner.rule_id());
    return false;
  }
  if (inner.masked_columns().empty()) return false;  // it reads nothing masked after all
  *masked = true;
  masked_columns_.insert(masked_columns_.end(), inner.masked_columns().begin(),
                         inner.masked_columns().end());
  if (first_rule_.empty()) first_rule_ = inner.first_rule();
  Node stmt;
  *stmt.mutable_select_stmt() = std::move(select);
  if (!Deparse(stmt, &out->body, &error)) {
    Refuse(what + ", and its body rewritten for masking could not be deparsed: " + error, rule);
    return false;
  }
  return true;
}

namespace {

// `FROM (SELECT 1, (a1)::t1, ...) AS __dbw_fN(p0, p1, ...) <join> LATERAL (body) AS
// __dbw_rN(c1, ...)` and the condition a strict function's arguments put on it.
std::string ExpansionFrom(const Routine& r, const std::vector<std::string>& args, int depth,
                          const std::string& body, size_t outputs, bool left_join) {
  const std::string f = "__dbw_f" + std::to_string(depth), row = "__dbw_r" + std::to_string(depth);
  std::string values = "SELECT 1", columns = "p0", nulls;
  size_t i = 0;
  for (const Routine::Arg& a : r.args) {
    if (!InputMode(a.mode)) continue;
    values += ", (" + args[i] + ")::" + a.type;
    columns += ", p" + std::to_string(i + 1);
    nulls += (nulls.empty() ? "" : ", ") + f + ".p" + std::to_string(i + 1);
    ++i;
  }
  std::string out = " FROM (" + values + ") AS " + f + "(" + columns + ") " +
                    (left_join ? "LEFT JOIN" : "CROSS JOIN") + " LATERAL (" + body + ") AS " + row +
                    "(";
  for (size_t c = 1; c <= outputs; ++c) out += (c > 1 ? ", c" : "c") + std::to_string(c);
  out += ")";
  // A strict function returns NULL (no row) when an argument is NULL.
  const std::string cond = r.strict && !nulls.empty()
                               ? "pg_catalog.num_nulls(" + nulls + ") OPERATOR(pg_catalog.=) 0"
                               : "true";
  return out + (left_join ? " ON " : " WHERE ") + cond;
}

}  // namespace

bool Walker::CallArguments(const pg_query::FuncCall& f, const Routine* r,
                           std::vector<std::string>* args) {
  const std::string what = "calls " + r->schema + "." + r->name + ", which reads masked columns";
  const std::string& rule = RoutineVerdict(r).rule_id;
  if (f.agg_star() || f.agg_distinct() || f.has_over() || f.agg_order_size() > 0 ||
      f.has_agg_filter() || f.func_variadic()) {
    Refuse(what + ", called in a form that cannot be expanded", rule);
    return false;
  }
  for (const Node& a : f.args()) {
    if (a.has_named_arg_expr()) {
      Refuse(what + "; pass its arguments by position to have it expanded", rule);
      return false;
    }
    Node stmt;
    auto* s = stmt.mutable_select_stmt();
    s->set_op(pg_query::SETOP_NONE);
    s->set_limit_option(pg_query::LIMIT_OPTION_DEFAULT);
    *s->add_target_list()->mutable_res_target()->mutable_val() = a;
    std::string text, error;
    if (!Deparse(stmt, &text, &error) || text.rfind("SELECT ", 0) != 0) {
      Refuse(what + ", and an argument could not be printed: " + error, rule);
      return false;
    }
    args->push_back(text.substr(7));
  }
  if (args->size() != Inputs(*r)) {
    Refuse(what + "; pass every argument (defaults are not expanded)", rule);
    return false;
  }
  return true;
}

void Walker::FuncCallNode(Node* n, pg_query::FuncCall* f, std::string_view field) {
  Call(f->funcname(), f->args_size());
  SetConfigCall(*f);
  const Routine* r = MaskedCallee(*f);
  Fields(f);  // arguments, FILTER, ORDER BY, OVER: read where the call is
  if (refused() || r == nullptr) return;
  const std::string what = "calls " + r->schema + "." + r->name + ", which reads masked columns";
  const std::string& rule = RoutineVerdict(r).rule_id;
  if (r->returns_set)
    return Refuse(what + (in_range_function_
                              ? " and returns a set: with ROWS FROM, WITH ORDINALITY or a column "
                                "definition list it cannot be expanded"
                              : " and returns a set: call it in FROM, where it is expanded"),
                  rule);
  std::vector<std::string> args;
  if (!CallArguments(*f, r, &args)) return;
  Expansion e;
  bool masked = false;
  if (!Expand(r, r->name, &e, &masked)) return;  // refused, or read as written
  const std::string row = "__dbw_r" + std::to_string(depth_);
  std::string value;
  if (!field.empty()) {
    size_t c = 0;
    while (c < e.outputs.size() && e.outputs[c].first != field) ++c;
    if (!e.record || c == e.outputs.size())
      return Refuse(what + ", and it has no output named " + std::string(field), rule);
    value = row + ".c" + std::to_string(c + 1) + "::" + e.outputs[c].second;
  } else if (e.record) {
    for (size_t c = 0; c < e.outputs.size(); ++c)
      value +=
          (c ? ", " : "ROW(") + row + ".c" + std::to_string(c + 1) + "::" + e.outputs[c].second;
    value += ")";
    if (r->return_type != "record") value += "::" + r->return_type;
  } else {
    value = row + ".c1::" + e.outputs[0].second;
  }
  const std::string text = "(SELECT " + value +
                           ExpansionFrom(*r, args, depth_, e.body, e.outputs.size(), true) +
                           " LIMIT 1)";
  pg_query::ParseResult tree;
  std::string error;
  const pg_query::SelectStmt* s = nullptr;
  if (ParseTree("SELECT " + text, &tree, &error)) s = FirstSelect(tree);
  if (s == nullptr || s->target_list_size() != 1)
    return Refuse(what + ", and its expansion could not be built: " + error, rule);
  *n = s->target_list(0).res_target().val();
  changed_ = true;
}

bool Walker::RangeFunctionItem(Node* item, size_t level) {
  auto* rf = item->mutable_range_function();
  if (rf->functions_size() != 1 || rf->ordinality() || rf->is_rowsfrom()) return false;
  Node* entry = rf->mutable_functions(0);
  if (!entry->has_list() || entry->list().items_size() < 1 ||
      !entry->list().items(0).has_func_call())
    return false;
  if (entry->list().items_size() > 1 && entry->list().items(1).has_list() &&
      entry->list().items(1).list().items_size() > 0)
    return false;  // a column definition list
  Node* call = entry->mutable_list()->mutable_items(0);
  const Routine* r = MaskedCallee(call->func_call());
  if (refused()) return true;
  if (r == nullptr) return false;  // walked as any FROM function
  // The call becomes a scalar-context expansion first (arguments walked, checks made), then
  // its FROM form replaces the whole item.
  auto* f = call->mutable_func_call();
  Call(f->funcname(), f->args_size());
  SetConfigCall(*f);
  Fields(f);
  if (refused()) return true;
  const std::string what = "calls " + r->schema + "." + r->name + ", which reads masked columns";
  const std::string& rule = RoutineVerdict(r).rule_id;
  std::vector<std::string> args;
  if (!CallArguments(*f, r, &args)) return true;
  const std::string alias = rf->has_alias() ? rf->alias().aliasname() : r->name;
  ScopeItem si;
  si.refname = alias;
  Expansion e;
  bool masked = false;
  if (!Expand(r, alias, &e, &masked)) {
    if (!refused()) scopes_[level].items.push_back(std::move(si));  // read as written
    return true;
  }
  const std::string row = "__dbw_r" + std::to_string(depth_);
  std::string outputs;
  for (size_t c = 0; c < e.outputs.size(); ++c)
    outputs += (c ? ", " : "") + row + ".c" + std::to_string(c + 1) + "::" + e.outputs[c].second +
               " AS " + Quote(e.outputs[c].first);
  const std::string text =
      "SELECT * FROM LATERAL (SELECT " + outputs +
      ExpansionFrom(*r, args, depth_, e.body, e.outputs.size(), !r->returns_set) +
      (r->returns_set ? "" : " LIMIT 1") + ") AS x";
  pg_query::ParseResult tree;
  std::string error;
  const pg_query::SelectStmt* s = nullptr;
  if (ParseTree(text, &tree, &error)) s = FirstSelect(tree);
  if (s == nullptr || s->from_clause_size() != 1 || !s->from_clause(0).has_range_subselect()) {
    Refuse(what + ", and its expansion could not be built: " + error, rule);
    return true;
  }
  Node replaced = s->from_clause(0);
  auto* sub = replaced.mutable_range_subselect();
  if (rf->has_alias()) {
    *sub->mutable_alias() = rf->alias();
  } else {
    sub->mutable_alias()->set_aliasname(alias);
  }
  si.columns_known = true;
  for (const auto& [name, type] : e.outputs) si.columns.push_back(name);
  for (int i = 0; i < sub->alias().colnames_size() && i < static_cast<int>(si.columns.size()); ++i)
    si.columns[i] = std::string(StringOf(sub->alias().colnames(i)));
  *item = std::move(replaced);
  changed_ = true;
  scopes_[level].items.push_back(std::move(si));
  return true;
}

bool Walker::ArgumentRef(Node* n) {
  const Params& p = *params_;
  const std::string fname = p.routine->name;
  int index = -1;
  if (n->has_param_ref()) {
    index = n->param_ref().number() - 1;
    if (index < 0 || index >= static_cast<int>(p.names.size())) {
      Refuse("function " + p.routine->schema + "." + fname +
             " refers to an argument it does not have");
      return true;
    }
  } else {
    const auto& fields = n->column_ref().fields();
    std::string_view qualifier, name;
    if (fields.size() == 1) {
      name = StringOf(fields.Get(0));
    } else if (fields.size() == 2 && StringOf(fields.Get(0)) == fname) {
      qualifier = fname;
      name = StringOf(fields.Get(1));
    } else {
      return false;
    }
    if (name.empty()) return false;
    for (size_t i = 0; i < p.names.size(); ++i)
      if (p.names[i] == name) index = static_cast<int>(i);
    if (index < 0) return false;
    // A column of that name in scope takes precedence, as in the server.
    for (const Scope& scope : scopes_)
      for (const ScopeItem& it : scope.items) {
        if (!qualifier.empty() ? it.refname == qualifier
                               : it.columns_known && std::find(it.columns.begin(), it.columns.end(),
                                                               name) != it.columns.end())
          return false;
        if (qualifier.empty() && !it.columns_known) {
          Refuse("function " + p.routine->schema + "." + fname + " names its argument " +
                 std::string(name) +
                 " where a column of that name may be meant; write it as $n or qualify it");
          return true;
        }
      }
  }
  Node ref;
  auto* cr = ref.mutable_column_ref();
  cr->add_fields()->mutable_string()->set_sval(p.alias);
  cr->add_fields()->mutable_string()->set_sval("p" + std::to_string(index + 1));
  *n = std::move(ref);
  changed_ = true;
  return true;
}

void Walker::ColumnRef(Node* n) {
  if (params_ && ArgumentRef(n)) return;
  auto* cr = n->mutable_column_ref();
  const int size = cr->fields_size();
  // schema.table.column of a table that is now a subquery named after the table: table.column.
  if (size >= 3 && !IsStar(cr->fields(size - 1))) {
    std::string_view schema = StringOf(cr->fields(size - 3));
    std::string_view table = StringOf(cr->fields(size - 2));
    for (auto s = scopes_.rbegin(); s != scopes_.rend(); ++s) {
      bool found = false;
      for (const ScopeItem& it : s->items)
        if (it.wrapped_unaliased && it.refname == table &&
            (it.schema.empty() || it.schema == schema))
          found = true;
      if (found) {
        cr->mutable_fields()->DeleteSubrange(0, size - 2);
        break;
      }
    }
  }
  if (targets_.empty()) return;
  const int fields = cr->fields_size();
  // Which target this names, if any: the innermost one not hidden by a FROM item in between.
  auto shadowed = [&](const Target& t, std::string_view refname, std::string_view column) {
    for (size_t l = t.level + 1; l < scopes_.size(); ++l)
      for (const ScopeItem& it : scopes_[l].items) {
        if (!refname.empty() && it.refname == refname) return true;
        if (refname.empty() && it.columns_known &&
            std::find(it.columns.begin(), it.columns.end(), column) != it.columns.end())
          return true;
      }
    return false;
  };
  for (auto t = targets_.rbegin(); t != targets_.rend(); ++t) {
    std::string_view qualifier, column;
    if (fields == 1 && !IsStar(cr->fields(0))) {
      column = StringOf(cr->fields(0));
    } else if (fields == 2) {
      qualifier = StringOf(cr->fields(0));
      if (qualifier != t->refname) continue;
      if (IsStar(cr->fields(1))) {
        if (shadowed(*t, qualifier, {})) return;
        Node replaced;
        if (WholeRow(t->rel, t->refname, &replaced)) *n = std::move(replaced);
        return;
      }
      column = StringOf(cr->fields(1));
    } else if (fields == 3 && !t->aliased) {
      if (StringOf(cr->fields(1)) != t->refname ||
          (!t->schema.empty() && StringOf(cr->fields(0)) != t->schema))
        continue;
      qualifier = t->refname;
      column = StringOf(cr->fields(2));
    } else {
      continue;
    }
    if (shadowed(*t, qualifier, column)) return;
    size_t i = 0;
    while (i < t->rel->columns.size() && t->rel->columns[i].name != column) ++i;
    if (i == t->rel->columns.size()) {
      // An unqualified name that is the target's own name: the whole row.
      if (qualifier.empty() && column == t->refname) {
        Node replaced;
        if (WholeRow(t->rel, t->refname, &replaced)) *n = std::move(replaced);
        return;
      }
      if (!qualifier.empty()) return;  // not a column (an error the server reports)
      continue;                        // an outer target's, or another item's
    }
    if (!t->rel->columns[i].mask) return;
    Node replaced;
    if (MaskedRef(t->rel, i, Quote(t->refname) + ".", &replaced)) *n = std::move(replaced);
    return;
  }
}

bool Walker::ExprNode(const std::string& text, Node* out) {
  auto it = memo_.expressions.find(text);
  if (it == memo_.expressions.end()) {
    pg_query::ParseResult tree;
    std::string error;
    const pg_query::SelectStmt* s = nullptr;
    if (ParseTree("SELECT " + text, &tree, &error)) s = FirstSelect(tree);
    if (s == nullptr || s->target_list_size() != 1) {
      Refuse("a masking expression could not be built");
      return false;
    }
    it = memo_.expressions.emplace(text, s->target_list(0).res_target().val()).first;
  }
  *out = it->second;
  changed_ = true;
  return true;
}

bool Walker::MaskedRef(const Relation* rel, size_t column, const std::string& qualifier,
                       Node* out) {
  const Column& c = rel->columns[column];
  std::string expr = ColumnExpr(c, qualifier + Quote(c.name), options_, &keyed_);
  if (expr.empty()) {
    Refuse("column " + QualifiedName(*rel) + "." + c.name +
               " is masked with a keyed hash, and no masking key is loaded",
           c.mask->rule_id);
    return false;
  }
  return ExprNode(expr, out);
}

bool Walker::WholeRow(const Relation* rel, const std::string& qualifier, Node* out) {
  std::string list;
  for (size_t i = 0; i < rel->columns.size(); ++i) {
    const Column& c = rel->columns[i];
    std::string ref = Quote(qualifier) + "." + Quote(c.name);
    std::string expr = c.mask ? ColumnExpr(c, ref, options_, &keyed_) : ref;
    if (expr.empty()) {
      Refuse("column " + QualifiedName(*rel) + "." + c.name +
                 " is masked with a keyed hash, and no masking key is loaded",
             c.mask->rule_id);
      return false;
    }
    list += (list.empty() ? "" : ", ") + expr + " AS " + Quote(c.name);
  }
  return ExprNode("(SELECT __dbw_row FROM (SELECT " + list + ") AS __dbw_row)", out);
}

bool Walker::Wrapper(const Relation* rel, pg_query::SelectStmt* out) {
  const bool has_system = rel->kind == 'r' || rel->kind == 'p' || rel->kind == 'm';
  const unsigned system = has_system ? system_columns_ : 0;
  // A masked column the statement cannot name (its name is nowhere in the text, and there is
  // no `*`) can only be read through a whole-row reference: NULL is masked as well, and costs
  // the server and the deparser far less than the masking expression.
  std::string shape = std::to_string(system) + ":";
  for (const Column& c : rel->columns)
    shape.push_back(
        c.mask && (text_.has_star || text_.lower.find(Lower(c.name)) != std::string::npos) ? '1'
                                                                                           : '0');
  auto it = memo_.wrappers.find({rel, shape});
  if (it == memo_.wrappers.end()) {
    std::string list;
    for (size_t i = 0; i < rel->columns.size(); ++i) {
      const Column& c = rel->columns[i];
      const bool named = shape[shape.size() - rel->columns.size() + i] == '1';
      std::string expr = !c.mask ? Quote(c.name)
                         : named ? ColumnExpr(c, Quote(c.name), options_, &keyed_)
                                 : "CAST(NULL AS " + MaskedType(c) + ")";
      if (expr.empty()) {
        Refuse("column " + QualifiedName(*rel) + "." + c.name +
                   " is masked with a keyed hash, and no masking key is loaded",
               c.mask->rule_id);
        return false;
      }
      list += (list.empty() ? "" : ", ") + expr + (c.mask ? " AS " + Quote(c.name) : "");
    }
    for (size_t i = 0; i < kSystemColumns.size(); ++i)
      if ((system & (1u << i)) != 0) list += ", " + std::string(kSystemColumns[i]);
    pg_query::ParseResult tree;
    std::string error;
    const pg_query::SelectStmt* s = nullptr;
    if (ParseTree("SELECT " + list + " FROM __dbw_relation", &tree, &error)) s = FirstSelect(tree);
    if (s == nullptr) {
      Refuse("the masking projection of " + QualifiedName(*rel) + " could not be built");
      return false;
    }
    it = memo_.wrappers.emplace(std::make_pair(rel, shape), *s).first;
  } else {
    // What building it noted: the expressions hold the key's pads.
    for (size_t i = 0; i < rel->columns.size(); ++i) {
      const Column& c = rel->columns[i];
      if (c.mask && c.mask->function == MaskFunction::kHash &&
          c.value_class != ValueClass::kOther && !options_.hash_inner_pad_hex.empty() &&
          shape[shape.size() - rel->columns.size() + i] == '1')
        keyed_ = true;
    }
  }
  *out = it->second;
  return true;
}

void Walker::NoteColumns(const Relation* rel) {
  for (const Column& c : rel->columns)
    if (c.mask) {
      masked_columns_.push_back(QualifiedName(*rel) + "." + c.name);
      if (first_rule_.empty()) first_rule_ = c.mask->rule_id;
    }
}

}  // namespace

namespace {

Result Refuse(Result result, std::string reason) {
  result.outcome = Result::Outcome::kRefused;
  result.reason = std::move(reason);
  result.sql.clear();
  return result;
}

}  // namespace

Rewriter::Rewriter(std::shared_ptr<const Catalog> catalog, Options options)
    : catalog_(std::move(catalog)), options_(std::move(options)), memo_(std::make_unique<Memo>()) {}

Rewriter::~Rewriter() = default;

bool Rewriter::MayChangeSearchPath(std::string_view sql) {
  // SET [LOCAL] search_path / SCHEMA / ROLE / SESSION AUTHORIZATION, RESET, DISCARD ALL, and a
  // name spelt with Unicode escapes. (set_config and DO blocks are reads: always rewritten.)
  static constexpr std::array<std::string_view, 7> kWords = {
      "search_path", "schema", "reset", "discard", "role", "authorization", "u&"};
  const std::string lower = Lower(sql);
  for (std::string_view w : kWords)
    if (lower.find(w) != std::string::npos) return true;
  return false;
}

Result Rewriter::Rewrite(std::string_view sql, const std::vector<SearchPath>& paths) {
  if (!catalog_ || !catalog_->any_masked()) return {};
  // Keyed by the paths too: they decide what an unqualified name reads.
  std::string key;
  for (const SearchPath& p : paths) {
    for (const std::string& schema : p) key += schema + '\x01';
    key += '\x02';
  }
  key += '\x03';
  key.append(sql);
  if (auto it = memo_->results.find(key); it != memo_->results.end()) return it->second;
  Result result = RewriteUncached(sql, paths);
  if (memo_->results.size() >= kMaxCachedResults) memo_->results.clear();
  memo_->results.emplace(std::move(key), result);
  return result;
}

Result Rewriter::RewriteUncached(std::string_view sql, const std::vector<SearchPath>& paths) {
  Result result;
  pg_query::ParseResult tree;
  std::string error;
  if (sql.find('\0') != std::string_view::npos || !ParseTree(std::string(sql), &tree, &error)) {
    result.outcome = Result::Outcome::kRefused;
    result.reason = "the statement cannot be analysed for masking: " + error;
    return result;
  }
  unsigned system_columns = 0;
  const std::string lower = Lower(sql);
  for (size_t i = 0; i < kSystemColumns.size(); ++i)
    if (lower.find(kSystemColumns[i]) != std::string::npos) system_columns |= 1u << i;
  Walker walker(*catalog_, options_, *memo_, 0, system_columns,
                {lower, lower.find('*') != std::string::npos}, paths);
  std::vector<bool> changed;
  for (pg_query::RawStmt& raw : *tree.mutable_stmts()) {
    walker.ResetChanged();
    walker.Statement(raw.mutable_stmt());
    changed.push_back(walker.changed());
    if (walker.refused()) break;
  }
  if (walker.refused()) {
    result.outcome = Result::Outcome::kRefused;
    result.reason = walker.reason();
    result.rule_id = walker.rule_id();
    result.unknown_name = walker.unknown_name();
    return result;
  }
  result.path_effects = std::move(walker.path_effects());
  result.masked_columns = std::move(walker.masked_columns());
  std::sort(result.masked_columns.begin(), result.masked_columns.end());
  result.masked_columns.erase(
      std::unique(result.masked_columns.begin(), result.masked_columns.end()),
      result.masked_columns.end());
  if (std::find(changed.begin(), changed.end(), true) == changed.end()) return result;
  // Only the statements that changed are deparsed (each on its own); the others keep the
  // client's text. That keeps libpg_query's deparser to the statement kinds rewriting produces.
  std::string out;
  for (int i = 0; i < tree.stmts_size(); ++i) {
    const pg_query::RawStmt& raw = tree.stmts(i);
    if (!out.empty()) out += ";\n";
    if (!changed[i]) {
      const size_t at = static_cast<size_t>(std::max(raw.stmt_location(), 0));
      if (at > sql.size()) return Refuse(result, "the statement's text could not be split");
      out.append(sql.substr(
          at, raw.stmt_len() > 0 ? static_cast<size_t>(raw.stmt_len()) : std::string_view::npos));
      continue;
    }
    std::string text, error;
    if (!Deparse(raw.stmt(), &text, &error))
      return Refuse(result, "the statement rewritten for masking could not be deparsed: " + error);
    out += text;
  }
  result.outcome = Result::Outcome::kRewritten;
  result.sql = std::move(out);
  return result;
}

}  // namespace dbw::sql::mask
