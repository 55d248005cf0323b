// The statement walker: specific handling where semantics matter (DML targets, WHERE, COPY,
// DDL kinds, PREPARE/EXPLAIN), and a generic walk everywhere else that collects every table
// read, every function called and every nested data-modifying statement, CTEs and subqueries
// included.
#include "userspace/sql/walker.h"

#include <algorithm>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "userspace/sql/predicates.h"

namespace dbw::sql {

using tree::array;
using tree::element;
using tree::object;

namespace {

constexpr std::string_view kFileFunctions[] = {
    "pg_read_file", "pg_read_binary_file", "pg_ls_dir", "pg_stat_file", "lo_import", "lo_export",
    "pg_file_write", "pg_file_rename", "pg_file_unlink", "pg_file_sync", "pg_logdir_ls",
    "pg_ls_logdir", "pg_ls_waldir", "pg_ls_tmpdir", "pg_ls_archive_statusdir",
    // PostgreSQL 15's other directory listings.
    "pg_ls_logicalsnapdir", "pg_ls_logicalmapdir", "pg_ls_replslotdir"};

// Functions that reach the network (the pgsql-http extension).
constexpr std::string_view kNetworkFunctions[] = {
    "http", "http_get", "http_post", "http_put", "http_patch", "http_delete", "http_head"};

// Functions that run SQL given as a string, or dump whole tables named by a string.
constexpr std::string_view kDynamicFunctions[] = {
    "query_to_xml", "query_to_xmlschema", "query_to_xml_and_xmlschema", "table_to_xml",
    "table_to_xmlschema", "table_to_xml_and_xmlschema", "schema_to_xml",
    "schema_to_xml_and_xmlschema", "database_to_xml", "database_to_xml_and_xmlschema",
    // text search statistics over a query's text
    "ts_stat", "ts_rewrite",
    // tablefunc and xml2 run the query they get
    "crosstab", "crosstab2", "crosstab3", "crosstab4", "connectby", "xpath_table"};

bool Contains(std::initializer_list<std::string_view> list, std::string_view s) {
  return std::find(list.begin(), list.end(), s) != list.end();
}

void AddUnique(std::vector<TableRef>* v, TableRef t) {
  if (t.name.empty()) return;
  if (std::find(v->begin(), v->end(), t) == v->end()) v->push_back(std::move(t));
}

}  // namespace

Walker::Walker(StatementFacts* facts, bool* literal_sensitive)
    : f_(facts), sensitive_(literal_sensitive) {}

void Walker::Statement(element stmt) {
  std::string_view type;
  object body;
  if (!tree::AsNode(stmt, &type, &body)) {
    f_->command = Command::kUnknown;
    return;
  }
  if (type == "SelectStmt") return TopSelect(body);
  if (type == "InsertStmt") return Top(Command::kInsert), Dml(type, body, false);
  if (type == "UpdateStmt") return Top(Command::kUpdate), Dml(type, body, false);
  if (type == "DeleteStmt") return Top(Command::kDelete), Dml(type, body, false);
  if (type == "MergeStmt") return Top(Command::kMerge), Dml(type, body, false);
  if (type == "CopyStmt") return Copy(body);
  if (type == "PrepareStmt") return Prepare(body);
  if (type == "ExplainStmt") return Explain(body);
  if (type == "DeclareCursorStmt") {
    Top(Command::kDeclareCursor);
    f_->object_name = std::string(tree::GetString(body, "portalname"));
    int64_t options = tree::GetInt(body, "options");
    f_->cursor_binary = (options & 0x0001) != 0;  // CURSOR_OPT_BINARY
    f_->cursor_hold = (options & 0x0020) != 0;    // CURSOR_OPT_HOLD
    f_->prepared = Inner(body);                   // what FETCH from it returns
    Bounded(body, "query");
    return WalkFields(body);
  }
  DescribeUtility(type, body, this);
}

void Walker::Top(Command c, std::string kind) {
  f_->command = c;
  f_->object_kind = std::move(kind);
}

void Walker::TopSelect(object body) {
  object into, rel;
  if (tree::GetObject(body, "intoClause", &into)) {  // SELECT ... INTO new_table
    Top(Command::kCreate, "TABLE");
    Risk(kRiskSchemaChange | kRiskWrite);
    if (tree::GetObject(into, "rel", &rel)) Written(rel);
  } else {
    Top(Command::kSelect);
    if (BoundedSelect(sensitive_).Unbounded(body)) {
      Risk(kRiskUnboundedSelect);
      // Unbounded only because it groups: what by, for the relay's statistics.
      BoundedSelect grouping(sensitive_);
      grouping.set_top_grouping_bounded(true);
      if (!grouping.Unbounded(body)) {
        f_->grouped = GroupColumns(body, &f_->group_columns);
        if (!f_->grouped) f_->group_columns.clear();
      }
    }
  }
  Node("SelectStmt", body);
}

void Walker::Bounded(object body, std::string_view query_field) {
  element q;
  std::string_view type;
  object select;
  if (tree::Get(body, query_field, &q) && tree::AsNode(q, &type, &select) && type == "SelectStmt" &&
      BoundedSelect(sensitive_).Unbounded(select))
    Risk(kRiskUnboundedSelect);
}

void Walker::Copy(object body) {
  object rel;
  bool has_rel = tree::GetObject(body, "relation", &rel);
  if (tree::GetBool(body, "is_from")) {
    Top(Command::kCopy, "FROM");
    Risk(kRiskWrite);
    if (has_rel) Written(rel);
  } else {
    Top(Command::kCopy, "TO");
    array cols;
    if (tree::GetArray(body, "attlist", &cols))
      for (element c : cols) f_->copy_columns.emplace_back(tree::StringNode(c));
    f_->copy_query = tree::Has(body, "query");
    CopyOptions(body);
    // COPY table TO exports every row: judged like SELECT * FROM table.
    if (has_rel) {
      Read(rel);
      if (!BoundedSelect::IsCatalog(tree::GetString(rel, "schemaname"),
                                    tree::GetString(rel, "relname")))
        Risk(kRiskUnboundedSelect);
    }
    Bounded(body, "query");
  }
  // The file name is a literal the shape cache does not see: COPY t FROM '' (an error) and
  // COPY t FROM '/etc/passwd' share a shape.
  *sensitive_ = true;
  if (tree::GetBool(body, "is_program")) {
    Risk(kRiskCopyProgram);
  } else if (tree::Has(body, "filename")) {
    Risk(kRiskServerFileAccess);
  }
  WalkFields(body, {"relation"});
}

// COPY's output options (WITH (FORMAT csv, DELIMITER '|', HEADER) and the old CSV/DELIMITER
// spellings, which the parser turns into the same list).
void Walker::CopyOptions(object body) {
  array options;
  if (!tree::GetArray(body, "options", &options)) return;
  // Delimiter, quote and escape are string literals the shape cache does not see.
  *sensitive_ = true;
  bool delimiter_set = false, escape_set = false;
  for (element e : options) {
    std::string_view type;
    object def;
    if (!tree::AsNode(e, &type, &def) || type != "DefElem") continue;
    std::string_view name = tree::GetString(def, "defname");
    element arg;
    bool has_arg = tree::Get(def, "arg", &arg);
    std::string_view value = has_arg ? tree::StringNode(arg) : std::string_view();
    if (name == "format") {
      f_->copy_csv = value == "csv";
    } else if (name == "delimiter" && !value.empty()) {
      f_->copy_delimiter = value[0];
      delimiter_set = true;
    } else if (name == "quote" && !value.empty()) {
      f_->copy_quote = value[0];
    } else if (name == "escape" && !value.empty()) {
      f_->copy_escape = value[0];
      escape_set = true;
    } else if (name == "header") {
      // HEADER alone, a boolean spelled as a word, a number (0 has no ival), or MATCH.
      std::string_view arg_type;
      object arg_body;
      bool zero = has_arg && tree::AsNode(arg, &arg_type, &arg_body) && arg_type == "Integer" &&
                  !tree::Has(arg_body, "ival");
      f_->copy_header = !zero && value != "false" && value != "off";
    }
  }
  if (f_->copy_csv && !delimiter_set) f_->copy_delimiter = ',';
  if (!escape_set) f_->copy_escape = f_->copy_quote;
}

// The statement a PREPARE or EXPLAIN wraps, described on its own.
std::shared_ptr<StatementFacts> Walker::Inner(object body) {
  auto inner = std::make_shared<StatementFacts>();
  element q;
  if (tree::Get(body, "query", &q)) Walker(inner.get(), sensitive_).Statement(q);
  return inner;
}

void Walker::Absorb(const StatementFacts& inner, bool with_risks) {
  if (with_risks) f_->risks |= inner.risks;
  for (const auto& t : inner.tables_read) AddUnique(&f_->tables_read, t);
  for (const auto& t : inner.tables_written)
    AddUnique(with_risks ? &f_->tables_written : &f_->tables_read, t);
  for (const auto& fn : inner.functions) AddFunctionName(fn);
}

void Walker::Prepare(object body) {
  Top(Command::kPrepare);
  f_->prepare_name = std::string(tree::GetString(body, "name"));
  f_->object_name = f_->prepare_name;
  auto inner = Inner(body);
  Absorb(*inner, true);  // judged by what it prepares
  f_->prepared = std::move(inner);
}

void Walker::Explain(object body) {
  Top(Command::kExplain);
  bool analyze = false;
  array options;
  if (tree::GetArray(body, "options", &options)) {
    for (element o : options) {
      std::string_view type;
      object def;
      if (!tree::AsNode(o, &type, &def) || tree::GetString(def, "defname") != "analyze") continue;
      analyze = ExplainOptionOn(def);
    }
  }
  // EXPLAIN ANALYZE executes the statement: it carries the statement's risks. Plain EXPLAIN
  // only plans it: its tables are listed as read, and it carries no risks.
  auto inner = Inner(body);
  // EXPLAIN ANALYZE SELECT runs the query but returns only the plan: no rows are read out.
  StatementFacts absorbed = *inner;
  absorbed.risks &= ~static_cast<uint32_t>(kRiskUnboundedSelect);
  Absorb(absorbed, analyze);
  if (analyze) f_->object_kind = "ANALYZE";
  // EXPLAIN [CREATE TABLE ... AS] EXECUTE evaluates the arguments even without ANALYZE; with
  // ANALYZE it runs the prepared statement, which the gate resolves by name (`prepared`).
  std::shared_ptr<const StatementFacts> execute;
  if (inner->command == Command::kExecute) {
    execute = std::move(inner);
  } else if (inner->prepared && inner->prepared->command == Command::kExecute) {
    execute = inner->prepared;
  }
  if (execute) {
    f_->risks |= execute->risks;
    f_->prepared = std::move(execute);
  }
}

bool Walker::ExplainOptionOn(object def) {
  element arg;
  if (!tree::Get(def, "arg", &arg)) return true;
  std::string_view type;
  object v;
  if (!tree::AsNode(arg, &type, &v)) return true;
  *sensitive_ = true;  // `ANALYZE 0`, `ANALYZE 'off'`: decided by a literal
  if (type == "Integer") {
    element n;
    int64_t i = 0;
    if (tree::Get(v, "ival", &n) && n.get_int64().get(i) != simdjson::SUCCESS) return true;
    return i != 0;
  }
  if (type == "String" || type == "Boolean") {
    std::string_view s = tree::GetString(v, "sval");
    if (type == "Boolean") return tree::GetBool(v, "boolval");
    std::string l(s);
    for (char& c : l)
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return !Contains({"false", "off", "no", "0", "f", "n", "of"}, l);
  }
  return true;
}

void Walker::Dml(std::string_view type, object body, bool nested) {
  Risk(kRiskWrite);
  if (nested && cte_depth_ > 0) Risk(kRiskDataModifyingCte);
  WithScope(body, [&] {
    object rel;
    const bool has_rel = tree::GetObject(body, "relation", &rel);
    if (has_rel) Written(rel);
    element cond;
    std::vector<element> from;
    auto collect = [&](std::string_view field) {
      array items;
      if (tree::GetArray(body, field, &items))
        for (element i : items) from.push_back(i);
    };
    if (!has_rel) {
      // Nothing to judge (the parser always gives DML a relation).
    } else if (type == "UpdateStmt" || type == "DeleteStmt") {
      collect(type == "UpdateStmt" ? "fromClause" : "usingClause");
      const RelationScope scope = RelationScope::ForTarget(rel, from);
      if (!tree::Get(body, "whereClause", &cond) || !EffectiveWhere(cond, scope, sensitive_))
        Risk(kRiskNoWhere);
    } else if (type == "MergeStmt") {
      element source;
      if (tree::Get(body, "sourceRelation", &source)) from.push_back(source);
      const RelationScope scope = RelationScope::ForTarget(rel, from);
      // MERGE ... ON <no restriction> WHEN MATCHED THEN UPDATE/DELETE touches every row an arm
      // without a restricting condition of its own reaches.
      if (tree::Get(body, "joinCondition", &cond) && !EffectiveWhere(cond, scope, sensitive_) &&
          MergeChangesUnrestricted(body, scope))
        Risk(kRiskNoWhere);
    }
    // RETURNING hands rows back: a subquery packing a whole table into it reads the table out,
    // and INSERT ... SELECT ... RETURNING returns every row its SELECT reads.
    element returning;
    if (tree::Get(body, "returningList", &returning)) {
      BoundedSelect bounded(sensitive_);
      if (bounded.PacksUnboundedRead(returning)) Risk(kRiskUnboundedSelect);
      element q;
      std::string_view qt;
      object select;
      if (type == "InsertStmt" && tree::Get(body, "selectStmt", &q) &&
          tree::AsNode(q, &qt, &select) && qt == "SelectStmt" &&
          !tree::Has(select, "valuesLists") && bounded.Unbounded(select))
        Risk(kRiskUnboundedSelect);
    }
    if (type == "InsertStmt") {
      // ON CONFLICT DO UPDATE changes the existing rows the inserted ones collide with: as many
      // as the source has, so a source that reads a whole table may update every row.
      object conflict;
      if (tree::GetObject(body, "onConflictClause", &conflict) &&
          tree::GetString(conflict, "action") == "ONCONFLICT_UPDATE") {
        element q;
        std::string_view qt;
        object select;
        if (tree::Get(body, "selectStmt", &q) && tree::AsNode(q, &qt, &select) &&
            qt == "SelectStmt" && !tree::Has(select, "valuesLists") &&
            BoundedSelect(sensitive_).Unbounded(select))
          Risk(kRiskNoWhere);
      }
    }
    WalkFields(body, {"relation", "withClause"});
  });
}

bool Walker::MergeChangesUnrestricted(object body, const RelationScope& scope) {
  array clauses;
  if (!tree::GetArray(body, "mergeWhenClauses", &clauses)) return false;
  for (element c : clauses) {
    std::string_view type;
    object w;
    if (!tree::AsNode(c, &type, &w) || !tree::GetBool(w, "matched")) continue;
    std::string_view cmd = tree::GetString(w, "commandType");
    if (cmd != "CMD_UPDATE" && cmd != "CMD_DELETE") continue;
    element cond;
    if (!tree::Get(w, "condition", &cond) || !EffectiveWhere(cond, scope, sensitive_)) return true;
  }
  return false;
}

void Walker::Walk(element e) {
  switch (e.type()) {
    case simdjson::dom::element_type::OBJECT: {
      std::string_view type;
      object body;
      if (tree::AsNode(e, &type, &body)) {
        Node(type, body);
      } else if (e.get_object().get(body) == simdjson::SUCCESS) {
        WalkFields(body);
      }
      return;
    }
    case simdjson::dom::element_type::ARRAY: {
      array a;
      if (e.get_array().get(a) == simdjson::SUCCESS)
        for (element x : a) Walk(x);
      return;
    }
    default:
      return;
  }
}

void Walker::WalkFields(object o, std::initializer_list<std::string_view> skip) {
  for (auto kv : o) {
    if (skip.size() != 0 && Contains(skip, kv.key)) continue;
    Walk(kv.value);
  }
}

void Walker::Node(std::string_view type, object body) {
  if (type == "RangeVar") return Read(body);
  if (type == "FuncCall") {
    Function(body);
    return WalkFields(body, {"funcname"});
  }
  if (type == "SelectStmt") {
    // lockingClause names aliases (FOR UPDATE OF a), intoClause a table being created.
    return WithScope(body, [&] {
      WalkFields(body, {"withClause", "lockingClause", "intoClause"});
    });
  }
  if (type == "InsertStmt" || type == "UpdateStmt" || type == "DeleteStmt" || type == "MergeStmt")
    return Dml(type, body, true);
  WalkFields(body);
}

bool Walker::IsCteRef(object rv) const {
  if (!tree::GetString(rv, "schemaname").empty()) return false;
  std::string_view name = tree::GetString(rv, "relname");
  return std::find(scope_.begin(), scope_.end(), name) != scope_.end();
}

void Walker::Read(object rv) {
  if (!IsCteRef(rv)) AddUnique(&f_->tables_read, tree::TableFromRangeVar(rv));
}

void Walker::Written(object rv) {
  AddUnique(&f_->tables_written, tree::TableFromRangeVar(rv));
}

void Walker::WrittenName(element name) {
  // A qualified name as a List of String nodes: [schema.]name, or catalog.schema.name.
  std::string_view type;
  object body;
  array items;
  if (!tree::AsNode(name, &type, &body) || type != "List" || !tree::GetArray(body, "items", &items))
    return;
  std::vector<std::string_view> parts;
  for (element i : items) parts.push_back(tree::StringNode(i));
  if (parts.empty()) return;
  TableRef t;
  t.name = std::string(parts.back());
  if (parts.size() >= 2) t.schema = std::string(parts[parts.size() - 2]);
  AddUnique(&f_->tables_written, std::move(t));
}

void Walker::AddFunctionName(const std::string& name) {
  if (std::find(f_->functions.begin(), f_->functions.end(), name) == f_->functions.end())
    f_->functions.push_back(name);
}

void Walker::Function(object call) {
  array names;
  if (!tree::GetArray(call, "funcname", &names)) return;
  AddFunctionName(tree::JoinNames(names));
  std::string_view f = tree::LastName(names);
  for (auto n : kFileFunctions)
    if (f == n) Risk(kRiskServerFileAccess);
  for (auto n : kDynamicFunctions)
    if (f == n) Risk(kRiskDynamicSql);
  if (f.starts_with("dblink")) Risk(kRiskExternalAccess);
  for (auto n : kNetworkFunctions)
    if (f == n) Risk(kRiskExternalAccess);
  if (f == "set_config") SetConfig(call);
}

// set_config('role', ...) is SET ROLE by another name.
void Walker::SetConfig(object call) {
  array args;
  if (!tree::GetArray(call, "args", &args)) return;
  for (element first : args) {
    std::string_view type;
    object c, s;
    if (tree::AsNode(first, &type, &c) && type == "A_Const" && tree::GetObject(c, "sval", &s)) {
      *sensitive_ = true;
      std::string name = tree::Lower(tree::GetString(s, "sval"));
      if (name == "role" || name == "session_authorization") Risk(kRiskPrivilegeChange);
      if (name == "search_path") Risk(kRiskSearchPathChange);
      if (name == "standard_conforming_strings" || name == "client_encoding" ||
          name == "backslash_quote")
        Risk(kRiskLexerChange);
    } else {
      // A setting chosen at run time may be the role, the search path, or one that changes how
      // text is read.
      Risk(kRiskPrivilegeChange | kRiskLexerChange | kRiskSearchPathChange);
    }
    return;
  }
}

}  // namespace dbw::sql
