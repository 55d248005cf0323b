// WHERE effectiveness (a small three-valued constant evaluator) and SELECT boundedness.
#include "userspace/sql/predicates.h"

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <string>

namespace dbw::sql {

using tree::array;
using tree::element;
using tree::object;

namespace tree {
bool HasColumnRef(element e) {
  object o;
  if (e.get_object().get(o) == simdjson::SUCCESS) {
    for (auto kv : o) {
      if (kv.key == "ColumnRef" || kv.key == "CurrentOfExpr") return true;
      if (HasColumnRef(kv.value)) return true;
    }
    return false;
  }
  array a;
  if (e.get_array().get(a) == simdjson::SUCCESS) {
    for (element x : a)
      if (HasColumnRef(x)) return true;
  }
  return false;
}
}  // namespace tree

namespace {

// What an expression is known to be. kConst: the same for every row but not known here
// (parameters, function calls without columns); kRow: may differ between rows.
struct Value {
  enum Kind { kTrue, kFalse, kNull, kNumber, kString, kConst, kRow } kind = kConst;
  double number = 0;
  std::string_view text;
  bool literal() const { return kind == kNumber || kind == kString; }
};

Value Make(Value::Kind k) {
  return Value{k, 0, {}};
}

bool ParseNumber(std::string_view s, double* out) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

// PostgreSQL's boolin: t/true/y/yes/on/1 and f/false/n/no/off/0, any unique prefix, any case.
Value::Kind ParseBool(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\n'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\n'))
    s.remove_suffix(1);
  std::string l(s);
  for (char& c : l)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  auto prefix_of = [&](std::string_view word, size_t min) {
    return l.size() >= min && l.size() <= word.size() && word.substr(0, l.size()) == l;
  };
  if (l == "1" || prefix_of("true", 1) || prefix_of("yes", 1) || prefix_of("on", 2))
    return Value::kTrue;
  if (l == "0" || prefix_of("false", 1) || prefix_of("no", 1) || prefix_of("off", 2))
    return Value::kFalse;
  return Value::kConst;
}

class Evaluator {
 public:
  explicit Evaluator(bool* literal_sensitive) : sensitive_(literal_sensitive) {}

  Value Eval(element e) {
    std::string_view type;
    object body;
    if (!tree::AsNode(e, &type, &body)) return Opaque(e);
    if (type == "A_Const") return Const(body);
    if (type == "ColumnRef" || type == "CurrentOfExpr") return Make(Value::kRow);
    if (type == "ParamRef") return Make(Value::kConst);
    if (type == "BoolExpr") return Bool(body);
    if (type == "A_Expr") return Expr(body, e);
    if (type == "NullTest") return NullTest(body);
    if (type == "BooleanTest") return BooleanTest(body);
    if (type == "TypeCast") return Cast(body);
    return Opaque(e);
  }

  // A value used as a condition.
  Value::Kind Truth(const Value& v) {
    switch (v.kind) {
      case Value::kString:
        *sensitive_ = true;
        return ParseBool(v.text);
      case Value::kNumber:
        return Value::kConst;  // an integer condition is a type error at execution
      default:
        return v.kind;
    }
  }

 private:
  Value Opaque(element e) { return Make(tree::HasColumnRef(e) ? Value::kRow : Value::kConst); }

  Value Const(object c) {
    if (tree::GetBool(c, "isnull")) return Make(Value::kNull);
    object v;
    if (tree::GetObject(c, "boolval", &v))
      return Make(tree::GetBool(v, "boolval") ? Value::kTrue : Value::kFalse);
    if (tree::GetObject(c, "ival", &v)) {
      element n;
      int64_t i = 0;
      if (tree::Get(v, "ival", &n) && n.get_int64().get(i) != simdjson::SUCCESS) i = 0;
      return Value{Value::kNumber, static_cast<double>(i), {}};
    }
    if (tree::GetObject(c, "fval", &v)) {
      double d = 0;
      if (!ParseNumber(tree::GetString(v, "fval"), &d)) return Make(Value::kConst);
      return Value{Value::kNumber, d, {}};
    }
    if (tree::GetObject(c, "sval", &v)) return Value{Value::kString, 0, tree::GetString(v, "sval")};
    return Make(Value::kConst);  // bit strings
  }

  Value Bool(object b) {
    std::string_view op = tree::GetString(b, "boolop");
    array args;
    if (!tree::GetArray(b, "args", &args)) return Make(Value::kConst);
    bool any_true = false, any_false = false, any_null = false, any_const = false, any_row = false;
    bool all_true = true;
    size_t count = 0;
    Value::Kind last = Value::kConst;
    for (element a : args) {
      Value::Kind k = Truth(Eval(a));
      last = k;
      ++count;
      any_true |= k == Value::kTrue;
      any_false |= k == Value::kFalse;
      any_null |= k == Value::kNull;
      any_const |= k == Value::kConst;
      any_row |= k == Value::kRow;
      all_true &= k == Value::kTrue;
    }
    if (op == "NOT_EXPR") {
      if (count != 1) return Make(Value::kConst);
      if (last == Value::kTrue) return Make(Value::kFalse);
      if (last == Value::kFalse) return Make(Value::kTrue);
      return Make(last);
    }
    if (op == "AND_EXPR") {
      // A row-dependent conjunct restricts the rows whatever the others are.
      if (any_false) return Make(Value::kFalse);
      if (any_null) return Make(Value::kNull);
      if (any_row) return Make(Value::kRow);
      if (any_const) return Make(Value::kConst);
      return Make(all_true ? Value::kTrue : Value::kConst);
    }
    if (op == "OR_EXPR") {
      // A disjunct that may be constant-true opens the condition to every row.
      if (any_true) return Make(Value::kTrue);
      if (any_const) return Make(Value::kConst);
      if (any_row) return Make(Value::kRow);
      if (any_null) return Make(Value::kNull);
      return Make(Value::kFalse);
    }
    return Make(Value::kConst);
  }

  Value Expr(object x, element whole) {
    if (tree::GetString(x, "kind") != "AEXPR_OP") return Opaque(whole);
    array name;
    if (!tree::GetArray(x, "name", &name)) return Opaque(whole);
    std::string_view op = tree::LastName(name);
    element le, re;
    if (!tree::Get(x, "lexpr", &le) || !tree::Get(x, "rexpr", &re)) return Opaque(whole);
    Value l = Eval(le), r = Eval(re);
    if (l.kind == Value::kRow || r.kind == Value::kRow) return Make(Value::kRow);
    if (l.kind == Value::kConst || r.kind == Value::kConst) return Make(Value::kConst);
    if (l.literal() || r.literal()) *sensitive_ = true;
    int cmp;
    if (!Compare(l, r, op, &cmp)) return Make(Value::kConst);
    if (cmp == 2) return Make(Value::kNull);
    bool result;
    if (op == "=")
      result = cmp == 0;
    else if (op == "<>" || op == "!=")
      result = cmp != 0;
    else if (op == "<")
      result = cmp < 0;
    else if (op == "<=")
      result = cmp <= 0;
    else if (op == ">")
      result = cmp > 0;
    else if (op == ">=")
      result = cmp >= 0;
    else
      return Make(Value::kConst);
    return Make(result ? Value::kTrue : Value::kFalse);
  }

  // cmp: -1/0/1, or 2 for NULL. False when the comparison is not understood here.
  bool Compare(const Value& l, const Value& r, std::string_view op, int* cmp) {
    static constexpr std::string_view kOps[] = {"=", "<>", "!=", "<", "<=", ">", ">="};
    bool known = false;
    for (auto k : kOps) known |= k == op;
    if (!known) return false;
    if (l.kind == Value::kNull || r.kind == Value::kNull) {
      *cmp = 2;
      return true;
    }
    auto as_number = [](const Value& v, double* d) {
      if (v.kind == Value::kNumber) {
        *d = v.number;
        return true;
      }
      return v.kind == Value::kString && ParseNumber(v.text, d);
    };
    auto as_bool = [](const Value& v, Value::Kind* b) {
      if (v.kind == Value::kTrue || v.kind == Value::kFalse) {
        *b = v.kind;
        return true;
      }
      if (v.kind != Value::kString) return false;
      *b = ParseBool(v.text);
      return *b != Value::kConst;
    };
    if (l.kind == Value::kString && r.kind == Value::kString) {
      // Ordering depends on collation: only equality is decided.
      if (op != "=" && op != "<>" && op != "!=") return false;
      *cmp = l.text == r.text ? 0 : 1;
      return true;
    }
    double a, b;
    if ((l.kind == Value::kNumber || r.kind == Value::kNumber) && as_number(l, &a) &&
        as_number(r, &b)) {
      *cmp = a < b ? -1 : (a > b ? 1 : 0);
      return true;
    }
    Value::Kind x, y;
    if (as_bool(l, &x) && as_bool(r, &y)) {
      if (op != "=" && op != "<>" && op != "!=") return false;
      *cmp = x == y ? 0 : 1;
      return true;
    }
    return false;
  }

  Value NullTest(object t) {
    element arg;
    if (!tree::Get(t, "arg", &arg)) return Make(Value::kConst);
    Value v = Eval(arg);
    if (v.kind == Value::kRow || v.kind == Value::kConst) return Make(v.kind);
    bool is_null = v.kind == Value::kNull;
    bool want_null = tree::GetString(t, "nulltesttype") == "IS_NULL";
    return Make(is_null == want_null ? Value::kTrue : Value::kFalse);
  }

  Value BooleanTest(object t) {
    element arg;
    if (!tree::Get(t, "arg", &arg)) return Make(Value::kConst);
    Value::Kind k = Truth(Eval(arg));
    if (k == Value::kRow || k == Value::kConst) return Make(k);
    std::string_view test = tree::GetString(t, "booltesttype");
    bool r;
    if (test == "IS_TRUE")
      r = k == Value::kTrue;
    else if (test == "IS_NOT_TRUE")
      r = k != Value::kTrue;
    else if (test == "IS_FALSE")
      r = k == Value::kFalse;
    else if (test == "IS_NOT_FALSE")
      r = k != Value::kFalse;
    else if (test == "IS_UNKNOWN")
      r = k == Value::kNull;
    else if (test == "IS_NOT_UNKNOWN")
      r = k != Value::kNull;
    else
      return Make(Value::kConst);
    return Make(r ? Value::kTrue : Value::kFalse);
  }

  Value Cast(object c) {
    element arg;
    if (!tree::Get(c, "arg", &arg)) return Make(Value::kConst);
    Value v = Eval(arg);
    object type;
    array names;
    std::string_view target;
    if (tree::GetObject(c, "typeName", &type) && tree::GetArray(type, "names", &names))
      target = tree::LastName(names);
    if (target == "bool" || target == "boolean") {
      if (v.kind == Value::kString) return Make(Truth(v));
      if (v.kind == Value::kNumber) {
        *sensitive_ = true;
        return Make(v.number != 0 ? Value::kTrue : Value::kFalse);
      }
    }
    return v;  // other casts keep the literal for comparison ('1'::int = 1)
  }

  bool* sensitive_;
};

constexpr std::string_view kAggregates[] = {"count",
                                            "sum",
                                            "avg",
                                            "min",
                                            "max",
                                            "bool_and",
                                            "bool_or",
                                            "every",
                                            "bit_and",
                                            "bit_or",
                                            "bit_xor",
                                            "stddev",
                                            "stddev_pop",
                                            "stddev_samp",
                                            "variance",
                                            "var_pop",
                                            "var_samp",
                                            "corr",
                                            "covar_pop",
                                            "covar_samp",
                                            "mode",
                                            "percentile_cont",
                                            "percentile_disc",
                                            "range_agg",
                                            "range_intersect_agg",
                                            "any_value"};

// Aggregates whose single output row carries every input row: not a bound.
bool CollectsRows(std::string_view f) {
  return f == "array_agg" || f == "string_agg" || f == "xmlagg" || f.starts_with("json_agg") ||
         f.starts_with("jsonb_agg") || f.starts_with("json_object_agg") ||
         f.starts_with("jsonb_object_agg");
}

struct AggScan {
  bool aggregate = false;
  bool per_row = false;
};

void ScanTarget(element e, AggScan* s) {
  std::string_view type;
  object body;
  if (tree::AsNode(e, &type, &body)) {
    if (type == "ColumnRef") {
      s->per_row = true;
      return;
    }
    if (type == "SubLink") return;  // a scalar subquery is one value per output row
    if (type == "FuncCall") {
      array names;
      std::string_view f;
      if (tree::GetArray(body, "funcname", &names)) f = tree::LastName(names);
      if (tree::Has(body, "over") || CollectsRows(f)) {
        s->per_row = true;
        return;
      }
      bool agg = tree::GetBool(body, "agg_star") || tree::GetBool(body, "agg_distinct") ||
                 tree::Has(body, "agg_order") || tree::Has(body, "agg_filter") ||
                 tree::GetBool(body, "agg_within_group") || f.starts_with("regr_");
      for (auto a : kAggregates) agg |= f == a;
      if (agg) {
        s->aggregate = true;
        return;
      }
    }
    for (auto kv : body) ScanTarget(kv.value, s);
    return;
  }
  object o;
  array a;
  if (e.get_object().get(o) == simdjson::SUCCESS) {
    for (auto kv : o) ScanTarget(kv.value, s);
  } else if (e.get_array().get(a) == simdjson::SUCCESS) {
    for (element x : a) ScanTarget(x, s);
  }
}

bool IsNullConst(element e) {
  std::string_view type;
  object body;
  if (!tree::AsNode(e, &type, &body)) return false;
  if (type == "A_Const") return tree::GetBool(body, "isnull");
  element arg;
  if (type == "TypeCast" && tree::Get(body, "arg", &arg)) return IsNullConst(arg);
  return false;
}

}  // namespace

bool EffectiveWhere(element where, bool* literal_sensitive) {
  Evaluator ev(literal_sensitive);
  Value::Kind k = ev.Truth(ev.Eval(where));
  return k == Value::kRow || k == Value::kFalse || k == Value::kNull;
}

bool HasLimit(object select) {
  element count;
  if (!tree::Get(select, "limitCount", &count)) return false;
  return !IsNullConst(count);  // LIMIT NULL and LIMIT ALL mean no limit
}

bool AggregateOnly(object select) {
  if (tree::Has(select, "groupClause")) return false;
  array targets;
  if (!tree::GetArray(select, "targetList", &targets)) return false;
  AggScan s;
  for (element t : targets) ScanTarget(t, &s);
  return s.aggregate && !s.per_row;
}

bool BoundedSelect::IsCatalog(std::string_view schema, std::string_view name) {
  if (schema == "pg_catalog" || schema == "information_schema") return true;
  return schema.empty() && name.starts_with("pg_");
}

bool BoundedSelect::Unbounded(object select) {
  if (++depth_ > 200) {  // pathological nesting: judge it unbounded rather than recurse on
    --depth_;
    return true;
  }
  const size_t mark = scope_.size();
  object with;
  array ctes;
  if (tree::GetObject(select, "withClause", &with) && tree::GetArray(with, "ctes", &ctes)) {
    bool recursive = tree::GetBool(with, "recursive");
    size_t total = mark;
    for (element c : ctes) {
      (void)c;
      ++total;
    }
    for (element c : ctes) {
      std::string_view type;
      object body;
      element query;
      if (!tree::AsNode(c, &type, &body) || !tree::Get(body, "ctequery", &query)) continue;
      // A non-recursive CTE sees only the CTEs before it; a recursive WITH sees them all.
      scope_.push_back(
          Cte{tree::GetString(body, "ctename"), query, recursive ? total : scope_.size()});
    }
  }
  bool result = false;
  std::string_view op = tree::GetString(select, "op");
  if (!op.empty() && op != "SETOP_NONE") {
    object l, r;
    bool arms = (tree::GetObject(select, "larg", &l) && Unbounded(l)) ||
                (tree::GetObject(select, "rarg", &r) && Unbounded(r));
    result = arms && !HasLimit(select);
  } else if (!tree::Has(select, "whereClause") && !HasLimit(select) && !AggregateOnly(select)) {
    array from;
    if (tree::GetArray(select, "fromClause", &from)) {
      for (element item : from) {
        if (SourceUnbounded(item)) {
          result = true;
          break;
        }
      }
    }
  }
  scope_.resize(mark);
  --depth_;
  return result;
}

bool BoundedSelect::SourceUnbounded(element item) {
  std::string_view type;
  object body;
  if (!tree::AsNode(item, &type, &body)) return false;
  if (type == "RangeVar") return RangeVarUnbounded(body);
  if (type == "JoinExpr") {
    element l, r;
    return (tree::Get(body, "larg", &l) && SourceUnbounded(l)) ||
           (tree::Get(body, "rarg", &r) && SourceUnbounded(r));
  }
  if (type == "RangeSubselect") {
    element sub;
    std::string_view st;
    object sb;
    return tree::Get(body, "subquery", &sub) && tree::AsNode(sub, &st, &sb) && st == "SelectStmt" &&
           Unbounded(sb);
  }
  if (type == "RangeTableSample") {
    element rel;
    return tree::Get(body, "relation", &rel) && SourceUnbounded(rel);
  }
  return false;  // functions, XMLTABLE, VALUES: not a table's rows
}

bool BoundedSelect::RangeVarUnbounded(object rv) {
  std::string_view schema = tree::GetString(rv, "schemaname");
  std::string_view name = tree::GetString(rv, "relname");
  if (schema.empty()) {
    for (size_t i = scope_.size(); i-- > 0;) {
      if (scope_[i].name != name) continue;
      const char* id = scope_[i].name.data();
      for (const char* v : visiting_)
        if (v == id) return false;  // a recursive CTE's self-reference: the other arm decides
      std::string_view st;
      object sb;
      if (!tree::AsNode(scope_[i].query, &st, &sb) || st != "SelectStmt") return false;
      size_t visible = std::min(scope_[i].visible, scope_.size());
      std::vector<Cte> saved = scope_;
      scope_.resize(visible);
      visiting_.push_back(id);
      bool r = Unbounded(sb);
      visiting_.pop_back();
      scope_ = std::move(saved);
      return r;
    }
  }
  return !IsCatalog(schema, name);
}

}  // namespace dbw::sql
