// WHERE effectiveness (a small three-valued constant evaluator) and SELECT boundedness.
#include "userspace/sql/predicates.h"

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <limits>
#include <optional>
#include <string>

namespace dbw::sql {

using tree::array;
using tree::element;
using tree::object;

namespace tree {
std::string_view& SourceText() {
  thread_local std::string_view text;
  return text;
}

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

// How FROM/USING items relate to the target table (defined below, used by the evaluator).
std::vector<RelationScope::Other> OthersOf(const std::vector<element>& items,
                                           std::string_view target_relname, bool* sensitive);
RelationScope::Kind SubselectKind(object select, std::string_view target_relname, bool* sensitive);

namespace {

bool HasSubLinkOrColumn(element e);
bool ReadsRelation(element e, std::string_view relname);

// What an expression is known to be. kConst: the same for every row of the target but not known
// here (parameters, functions of no column, values of constant relations); kRow: derived from
// the target's own row; kOther: a value of another relation that restricts (a join partner);
// kSelf: a value of a relation holding every target row.
struct Value {
  enum Kind { kTrue, kFalse, kNull, kNumber, kString, kConst, kRow, kOther, kSelf } kind = kConst;
  double number = 0;
  std::string_view text;
  // A number written with digits only: its size class is part of the statement's shape
  // (shape.cc NumberClass), so facts decided by a threshold there need no literal sensitivity.
  bool digits = false;
  // A constant that is (or is computed from) a parameter: its value is bound later, so a
  // pattern or a range bound made of it may admit every row.
  bool param = false;
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

// Structural equality of two expressions, ignoring source positions.
bool SameExpr(element a, element b) {
  if (a.type() != b.type()) return false;
  switch (a.type()) {
    case simdjson::dom::element_type::OBJECT: {
      object x, y;
      if (a.get_object().get(x) != simdjson::SUCCESS || b.get_object().get(y) != simdjson::SUCCESS)
        return false;
      size_t nx = 0, ny = 0;
      for (auto kv : x) {
        if (kv.key == "location") continue;
        ++nx;
        element other;
        if (!tree::Get(y, kv.key, &other) || !SameExpr(kv.value, other)) return false;
      }
      for (auto kv : y)
        if (kv.key != "location") ++ny;
      return nx == ny;
    }
    case simdjson::dom::element_type::ARRAY: {
      array x, y;
      if (a.get_array().get(x) != simdjson::SUCCESS || b.get_array().get(y) != simdjson::SUCCESS)
        return false;
      if (x.size() != y.size()) return false;
      auto it = y.begin();
      for (element e : x) {
        if (!SameExpr(e, *it)) return false;
        ++it;
      }
      return true;
    }
    case simdjson::dom::element_type::STRING:
      return std::string_view(a.get_string().value_unsafe()) ==
             std::string_view(b.get_string().value_unsafe());
    case simdjson::dom::element_type::INT64:
      return a.get_int64().value_unsafe() == b.get_int64().value_unsafe();
    case simdjson::dom::element_type::UINT64:
      return a.get_uint64().value_unsafe() == b.get_uint64().value_unsafe();
    case simdjson::dom::element_type::DOUBLE:
      return a.get_double().value_unsafe() == b.get_double().value_unsafe();
    case simdjson::dom::element_type::BOOL:
      return a.get_bool().value_unsafe() == b.get_bool().value_unsafe();
    default:
      return true;  // null
  }
}

// A comparison operator's meaning, with the operands swapped when the literal is on the left.
enum class Cmp { kEq, kNe, kLt, kLe, kGt, kGe, kOther };
Cmp CmpOf(std::string_view op) {
  if (op == "=") return Cmp::kEq;
  if (op == "<>" || op == "!=") return Cmp::kNe;
  if (op == "<") return Cmp::kLt;
  if (op == "<=") return Cmp::kLe;
  if (op == ">") return Cmp::kGt;
  if (op == ">=") return Cmp::kGe;
  return Cmp::kOther;
}
Cmp Flip(Cmp c) {
  switch (c) {
    case Cmp::kLt:
      return Cmp::kGt;
    case Cmp::kLe:
      return Cmp::kGe;
    case Cmp::kGt:
      return Cmp::kLt;
    case Cmp::kGe:
      return Cmp::kLe;
    default:
      return c;
  }
}

Cmp Negate(Cmp c) {
  switch (c) {
    case Cmp::kEq:
      return Cmp::kNe;
    case Cmp::kNe:
      return Cmp::kEq;
    case Cmp::kLt:
      return Cmp::kGe;
    case Cmp::kLe:
      return Cmp::kGt;
    case Cmp::kGt:
      return Cmp::kLe;
    case Cmp::kGe:
      return Cmp::kLt;
    default:
      return c;
  }
}
std::string_view CmpName(Cmp c) {
  switch (c) {
    case Cmp::kEq:
      return "=";
    case Cmp::kNe:
      return "<>";
    case Cmp::kLt:
      return "<";
    case Cmp::kLe:
      return "<=";
    case Cmp::kGt:
      return ">";
    case Cmp::kGe:
      return ">=";
    default:
      return "";
  }
}

// A 32-bit integer column's whole domain: a bound at or beyond it restricts nothing.
constexpr double kDomainLow = -2147483647.0;  // magnitudes match shape.cc's class 'h'
constexpr double kDomainHigh = 2147483647.0;

// The set of numbers a comparison `x <op> n` admits, as up to two intervals.
struct Interval {
  double lo, hi;
  bool lo_open, hi_open;
};
void Admitted(Cmp c, double n, std::vector<Interval>* out) {
  constexpr double inf = std::numeric_limits<double>::infinity();
  switch (c) {
    case Cmp::kEq:
      out->push_back({n, n, false, false});
      break;
    case Cmp::kNe:
      out->push_back({-inf, n, true, true});
      out->push_back({n, inf, true, true});
      break;
    case Cmp::kLt:
      out->push_back({-inf, n, true, true});
      break;
    case Cmp::kLe:
      out->push_back({-inf, n, true, false});
      break;
    case Cmp::kGt:
      out->push_back({n, inf, true, true});
      break;
    case Cmp::kGe:
      out->push_back({n, inf, false, true});
      break;
    default:
      break;
  }
}
// Whether the intervals together admit every number.
bool CoverEverything(std::vector<Interval> v) {
  constexpr double inf = std::numeric_limits<double>::infinity();
  std::sort(v.begin(), v.end(), [](const Interval& a, const Interval& b) {
    return a.lo != b.lo ? a.lo < b.lo : (!a.lo_open && b.lo_open);
  });
  double reach = -inf;
  bool reach_open = true;  // whether `reach` itself is excluded
  bool started = false;
  for (const Interval& i : v) {
    if (!started) {
      if (i.lo != -inf) return false;
      started = true;
      reach = i.hi;
      reach_open = i.hi_open;
      continue;
    }
    // The next interval must start at or before the reach, and close the gap at `reach`.
    if (i.lo > reach || (i.lo == reach && reach_open && i.lo_open)) return false;
    if (i.hi > reach || (i.hi == reach && !i.hi_open)) {
      reach = i.hi;
      reach_open = i.hi_open;
    }
  }
  return started && reach == inf;
}

// Evaluation steps one statement's conditions may take (nested evaluators share it): a crafted
// condition must not make the analysis (which runs before every decision) slow. Past it every
// value is unknown, the risky answer.
struct EvalBudget {
  int depth = 0;
  int64_t left = 0;
};
thread_local EvalBudget eval_budget;
constexpr int64_t kEvalSteps = 200'000;

// Holds the budget for the outermost evaluation on this thread.
class BudgetScope {
 public:
  BudgetScope() {
    if (eval_budget.depth++ == 0) eval_budget.left = kEvalSteps;
  }
  ~BudgetScope() { --eval_budget.depth; }
  BudgetScope(const BudgetScope&) = delete;
  BudgetScope& operator=(const BudgetScope&) = delete;
};

class Evaluator {
 public:
  Evaluator(const RelationScope& scope, bool* literal_sensitive)
      : scope_(scope), sensitive_(literal_sensitive) {}

  Value Eval(element e) {
    if (--eval_budget.left < 0) return Make(Value::kConst);
    std::string_view type;
    object body;
    if (!tree::AsNode(e, &type, &body)) return Opaque(e);
    if (type == "A_Const") return Const(body);
    if (type == "ColumnRef") return Make(Column(body));
    if (type == "CurrentOfExpr") return Make(Value::kRow);  // exactly one row
    if (type == "ParamRef") {
      Value v = Make(Value::kConst);
      v.param = true;
      return v;
    }
    if (type == "BoolExpr") return Bool(body, false);
    if (type == "A_Expr") return Expr(body, e, false);
    if (type == "NullTest") return NullTest(body, false);
    if (type == "BooleanTest") return BooleanTest(body, false);
    if (type == "TypeCast") return Cast(body);
    if (type == "SubLink") return SubLink(body, e);
    return Opaque(e);
  }

  // NOT e, pushed down to the tests below it, so that what is true of every row stays
  // recognisable: NOT (x IS NULL), NOT (x < -2147483648), NOT (a AND b), NOT x NOT LIKE '%'.
  Value EvalNot(element e) {
    std::string_view type;
    object body;
    if (tree::AsNode(e, &type, &body)) {
      // NOT (x IN (SELECT ...)) is true of every row when the subquery is empty.
      if (type == "SubLink" && !scope_.every_column &&
          tree::GetString(body, "subLinkType") == "ANY_SUBLINK")
        return Make(Value::kConst);
      if (type == "BoolExpr") return Bool(body, true);
      if (type == "A_Expr") return Expr(body, e, true);
      if (type == "NullTest") return NullTest(body, true);
      if (type == "BooleanTest") return BooleanTest(body, true);
    }
    Value::Kind k = Truth(Eval(e));
    if (k == Value::kTrue) return Make(Value::kFalse);
    if (k == Value::kFalse) return Make(Value::kTrue);
    return Make(k);
  }

  // A value used as a condition.
  Value::Kind Truth(const Value& v) {
    switch (v.kind) {
      case Value::kString:
        *sensitive_ = true;
        return ParseBool(v.text);
      case Value::kNumber:
        return Value::kConst;  // an integer condition is a type error at execution
      case Value::kOther:
      case Value::kSelf:
        return Value::kConst;  // a condition on another relation alone
      default:
        return v.kind;
    }
  }

 private:
  // Which relation a column reference belongs to.
  Value::Kind Column(object ref) {
    if (scope_.every_column) return Value::kRow;
    array fields;
    std::vector<std::string_view> names;
    if (tree::GetArray(ref, "fields", &fields))
      for (element f : fields) {
        std::string_view n = tree::StringNode(f);
        if (!n.empty()) names.push_back(n);
      }
    if (names.empty()) return Value::kConst;
    if (names.size() == 1) {
      // Unqualified: the target's only when no other relation could own it.
      return scope_.others.empty() ? Value::kRow : Value::kConst;
    }
    std::string_view qualifier = names[names.size() - 2];
    std::string qualified =
        names.size() >= 3 ? std::string(names[names.size() - 3]) + "." + std::string(qualifier)
                          : std::string(qualifier);
    for (const auto& t : scope_.target)
      if (t == qualifier || t == qualified) return Value::kRow;
    for (const auto& o : scope_.others) {
      if (o.name != qualifier) continue;
      switch (o.kind) {
        case RelationScope::Kind::kRestricting:
          return Value::kOther;
        case RelationScope::Kind::kSelf:
          return Value::kSelf;
        case RelationScope::Kind::kConstant:
          return Value::kConst;
      }
    }
    return Value::kConst;  // an outer query's column: the same for every row here
  }

  // The most row-dependent kind of the columns below `e`.
  Value Opaque(element e) {
    Value::Kind k = Value::kConst;
    Scan(e, &k);
    Value v = Make(k);
    v.param = k == Value::kConst && HasParam(e);
    return v;
  }
  static bool HasParam(element e) {
    std::string_view type;
    object body;
    if (tree::AsNode(e, &type, &body) && type == "ParamRef") return true;
    return tree::AnyChild(e, HasParam);
  }
  void Scan(element e, Value::Kind* k) {
    std::string_view type;
    object body;
    if (tree::AsNode(e, &type, &body) && type == "ColumnRef") {
      Value::Kind c = Column(body);
      if (c == Value::kRow || (c == Value::kOther && *k != Value::kRow) ||
          (c == Value::kSelf && *k == Value::kConst))
        *k = c;
      return;
    }
    object o;
    array a;
    if (e.get_object().get(o) == simdjson::SUCCESS) {
      for (auto kv : o) Scan(kv.value, k);
    } else if (e.get_array().get(a) == simdjson::SUCCESS) {
      for (element x : a) Scan(x, k);
    }
  }

  Value Const(object c) {
    if (tree::GetBool(c, "isnull")) return Make(Value::kNull);
    object v;
    if (tree::GetObject(c, "boolval", &v))
      return Make(tree::GetBool(v, "boolval") ? Value::kTrue : Value::kFalse);
    if (tree::GetObject(c, "ival", &v)) {
      element n;
      int64_t i = 0;
      if (tree::Get(v, "ival", &n)) {
        if (n.get_int64().get(i) != simdjson::SUCCESS) return Make(Value::kConst);
      } else if (!NegativeFromSource(tree::GetInt(c, "location"), &i)) {
        // An empty ival is 0 or a negative number the JSON dropped: unknown unless the text
        // says which.
        return Make(Value::kConst);
      }
      return Value{Value::kNumber, static_cast<double>(i), {}, true};
    }
    if (tree::GetObject(c, "fval", &v)) {
      double d = 0;
      std::string_view text = tree::GetString(v, "fval");
      if (!ParseNumber(text, &d)) return Make(Value::kConst);
      std::string_view magnitude = text;
      if (!magnitude.empty() && magnitude.front() == '-') magnitude.remove_prefix(1);
      bool digits =
          !magnitude.empty() && std::all_of(magnitude.begin(), magnitude.end(),
                                            [](char ch) { return ch >= '0' && ch <= '9'; });
      return Value{Value::kNumber, d, {}, digits};
    }
    if (tree::GetObject(c, "sval", &v)) return Value{Value::kString, 0, tree::GetString(v, "sval")};
    return Make(Value::kConst);  // bit strings
  }

  // The integer constant at `location` of the statement text: 0 (00, ...), or `-` then digits
  // (comments and spaces may stand between them, since the grammar folds the sign into the
  // constant).
  static bool NegativeFromSource(int64_t location, int64_t* out) {
    std::string_view text = tree::SourceText();
    if (location < 0 || static_cast<size_t>(location) >= text.size()) return false;
    size_t i = static_cast<size_t>(location);
    if (text[i] == '0') {
      // 0, or 00, 000: a zero written with leading zeros (any other digit would be in ival).
      while (i < text.size() && text[i] == '0') ++i;
      *out = 0;
      return i >= text.size() || text[i] < '0' || text[i] > '9';
    }
    if (text[i] != '-') return false;
    ++i;
    while (i < text.size()) {
      if (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r' ||
          text[i] == '\f') {
        ++i;
      } else if (text.compare(i, 2, "--") == 0) {
        while (i < text.size() && text[i] != '\n') ++i;
      } else if (text.compare(i, 2, "/*") == 0) {
        // Nested block comments, as PostgreSQL's lexer reads them.
        int depth = 0;
        while (i < text.size()) {
          if (text.compare(i, 2, "/*") == 0) {
            ++depth;
            i += 2;
          } else if (text.compare(i, 2, "*/") == 0) {
            i += 2;
            if (--depth == 0) break;
          } else {
            ++i;
          }
        }
      } else {
        break;
      }
    }
    int64_t v = 0;
    size_t digits = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9' && digits < 18) {
      v = v * 10 + (text[i] - '0');
      ++i;
      ++digits;
    }
    if (digits == 0 || (i < text.size() && text[i] >= '0' && text[i] <= '9')) return false;
    *out = -v;
    return true;
  }

  Value Bool(object b, bool negate) {
    std::string_view op = tree::GetString(b, "boolop");
    array args;
    if (!tree::GetArray(b, "args", &args)) return Make(Value::kConst);
    if (op == "NOT_EXPR") {
      for (element a : args) return negate ? Make(Truth(Eval(a))) : EvalNot(a);
      return Make(Value::kConst);
    }
    // De Morgan: NOT (a AND b) is NOT a OR NOT b.
    if (negate) op = op == "AND_EXPR" ? "OR_EXPR" : op == "OR_EXPR" ? "AND_EXPR" : op;
    bool any_true = false, any_false = false, any_null = false, any_const = false, any_row = false;
    bool all_true = true;
    size_t count = 0;
    Value::Kind last = Value::kConst;
    for (element a : args) {
      Value::Kind k = Truth(negate ? EvalNot(a) : Eval(a));
      last = k;
      ++count;
      any_true |= k == Value::kTrue;
      any_false |= k == Value::kFalse;
      any_null |= k == Value::kNull;
      any_const |= k == Value::kConst;
      any_row |= k == Value::kRow;
      all_true &= k == Value::kTrue;
    }
    (void)last;
    (void)count;
    if (op == "AND_EXPR") {
      // A row-dependent conjunct restricts the rows whatever the others are.
      if (any_false) return Make(Value::kFalse);
      if (any_null) return Make(Value::kNull);
      if (any_row) return Make(Value::kRow);
      if (any_const) return Make(Value::kConst);
      return Make(all_true ? Value::kTrue : Value::kConst);
    }
    if (op == "OR_EXPR") {
      // A disjunct that may be constant-true opens the condition to every row; so do ranges
      // that together admit every number.
      if (any_true) return Make(Value::kTrue);
      if (any_const) return Make(Value::kConst);
      if (any_row && RangesCoverEverything(args, negate)) return Make(Value::kConst);
      if (any_row) return Make(Value::kRow);
      if (any_null) return Make(Value::kNull);
      return Make(Value::kFalse);
    }
    return Make(Value::kConst);
  }

  // `e` as `<target expression> <op> <number>`: the expression and the interval(s) admitted.
  bool NumericComparison(element e, bool negate, element* expr, std::vector<Interval>* admitted) {
    std::string_view type;
    object x;
    if (!tree::AsNode(e, &type, &x) || type != "A_Expr" || tree::GetString(x, "kind") != "AEXPR_OP")
      return false;
    array name;
    element le, re;
    if (!tree::GetArray(x, "name", &name) || !tree::Get(x, "lexpr", &le) ||
        !tree::Get(x, "rexpr", &re))
      return false;
    Cmp c = CmpOf(tree::LastName(name));
    if (c == Cmp::kOther) return false;
    if (negate) c = Negate(c);
    // Only `expression <op> literal` qualifies: the literal side is a constant node, and the
    // other side is evaluated once here (cheap: the Bool loop already paid for its subtree).
    auto literal_node = [](element x) {
      std::string_view t;
      object b;
      return tree::AsNode(x, &t, &b) && (t == "A_Const" || t == "TypeCast");
    };
    if (!literal_node(le) && !literal_node(re)) return false;
    Value l = Eval(le), r = Eval(re);
    double n;
    if (l.kind == Value::kRow && r.kind == Value::kNumber) {
      *expr = le;
      n = r.number;
    } else if (r.kind == Value::kRow && l.kind == Value::kNumber) {
      *expr = re;
      n = l.number;
      c = Flip(c);
    } else {
      return false;
    }
    *sensitive_ = true;
    Admitted(c, n, admitted);
    return true;
  }

  // The disjuncts of an OR (of `args`, negated when `negate`: then an AND's conjuncts),
  // flattening nested ORs and NOTs.
  void Disjuncts(array args, bool negate, std::vector<std::pair<element, bool>>* out) {
    for (element a : args) {
      std::string_view type;
      object body;
      array inner;
      if (tree::AsNode(a, &type, &body) && type == "BoolExpr" &&
          tree::GetArray(body, "args", &inner)) {
        std::string_view op = tree::GetString(body, "boolop");
        if (op == "NOT_EXPR") {
          Disjuncts(inner, !negate, out);
          continue;
        }
        if ((op == "OR_EXPR" && !negate) || (op == "AND_EXPR" && negate)) {
          Disjuncts(inner, negate, out);
          continue;
        }
      }
      out->emplace_back(a, negate);
    }
  }

  // Whether comparisons of one target expression with numbers, OR'ed, admit every number
  // (x < 5 OR x >= 5); constant-false disjuncts do not count.
  bool RangesCoverEverything(array args, bool negate) {
    std::vector<std::pair<element, bool>> parts;
    Disjuncts(args, negate, &parts);
    std::vector<Interval> all;
    std::optional<element> subject;
    for (const auto& [e, neg] : parts) {
      element expr;
      if (!NumericComparison(e, neg, &expr, &all)) {
        // A constant-false disjunct (`OR false`) adds nothing; anything more complex ends the
        // attempt, rather than evaluating it again (nested AND/OR would make that exponential).
        std::string_view type;
        object body;
        if (!tree::AsNode(e, &type, &body) || (type != "A_Const" && type != "TypeCast"))
          return false;
        Value::Kind k = Truth(neg ? EvalNot(e) : Eval(e));
        if (k == Value::kFalse || k == Value::kNull) continue;
        return false;
      }
      if (subject && !SameExpr(*subject, expr)) return false;
      subject = expr;
    }
    return subject.has_value() && CoverEverything(std::move(all));
  }

  // A target value compared with `other`: restricts, unless `other` holds every target row.
  static Value::Kind AgainstTarget(const Value& other) {
    return other.kind == Value::kSelf ? Value::kConst : Value::kRow;
  }

  Value Expr(object x, element whole, bool negate) {
    std::string_view kind = tree::GetString(x, "kind");
    array name;
    std::string_view op;
    if (tree::GetArray(x, "name", &name)) op = tree::LastName(name);
    element le, re;
    bool has_l = tree::Get(x, "lexpr", &le), has_r = tree::Get(x, "rexpr", &re);
    // Prefix operators (`~~ '%'` is one too) have no left operand: a value, not a test.
    if (!has_l || !has_r) return Opaque(whole);
    if (kind == "AEXPR_LIKE" || kind == "AEXPR_ILIKE" || kind == "AEXPR_SIMILAR" ||
        (kind == "AEXPR_OP" && IsPatternOp(op)))
      return Pattern(kind, op, le, re, whole, negate);
    if (kind == "AEXPR_IN") return In(negate ? (op == "=" ? "<>" : "=") : op, le, re);
    if (kind == "AEXPR_BETWEEN" || kind == "AEXPR_NOT_BETWEEN" || kind == "AEXPR_BETWEEN_SYM" ||
        kind == "AEXPR_NOT_BETWEEN_SYM")
      return Between(kind, le, re, negate);
    if (kind == "AEXPR_DISTINCT" || kind == "AEXPR_NOT_DISTINCT") {
      Value l = Eval(le), r = Eval(re);
      const bool distinct = (kind == "AEXPR_DISTINCT") != negate;
      if (l.kind == Value::kRow && r.kind == Value::kRow)
        return Make(SameExpr(le, re) ? (distinct ? Value::kFalse : Value::kConst) : Value::kConst);
      // IS DISTINCT FROM NULL is IS NOT NULL (maybe every row); NOT DISTINCT FROM NULL is IS NULL.
      if ((l.kind == Value::kRow && r.kind == Value::kNull) ||
          (r.kind == Value::kRow && l.kind == Value::kNull))
        return Make(distinct ? Value::kConst : Value::kRow);
      if (l.kind == Value::kRow) return Make(AgainstTarget(r));
      if (r.kind == Value::kRow) return Make(AgainstTarget(l));
      return Opaque(whole);
    }
    if (kind == "AEXPR_OP_ANY" || kind == "AEXPR_OP_ALL") {
      // x = ANY(list) restricts to the list's values; `<> ALL`, `> ANY`, ... may admit every
      // row (`<> ALL('{}')`). Strict only for changes: reads keep the plain reading.
      Value l = Eval(le);
      if (l.kind != Value::kRow || scope_.every_column) return Opaque(whole);
      const Cmp c = negate ? Negate(CmpOf(op)) : CmpOf(op);
      const bool any = (kind == "AEXPR_OP_ANY") != negate;
      return Make(any && c == Cmp::kEq ? Value::kRow : Value::kConst);
    }
    if (kind != "AEXPR_OP") return Opaque(whole);  // NULLIF, ...
    Value l = Eval(le), r = Eval(re);
    Cmp c = CmpOf(op);
    if (c == Cmp::kOther) {
      // Arithmetic and other operators: a value, as row-dependent as its operands.
      return Opaque(whole);
    }
    if (negate) {
      c = Negate(c);
      op = CmpName(c);
    }
    if (l.kind == Value::kRow && r.kind == Value::kRow) {
      // Two values of the same row: equal expressions compare true for every non-null row;
      // different ones (id = id + 0, a = b) cannot be shown to restrict.
      if (SameExpr(le, re) && (c == Cmp::kNe || c == Cmp::kLt || c == Cmp::kGt))
        return Make(Value::kFalse);
      return Make(Value::kConst);
    }
    if (l.kind == Value::kRow || r.kind == Value::kRow) {
      const Value& other = l.kind == Value::kRow ? r : l;
      // A range bound bound later (`id > $1`) may be -2147483648: not shown to restrict.
      // Equality with a parameter restricts whatever it is bound to.
      if (other.param && c != Cmp::kEq && c != Cmp::kNe) return Make(Value::kConst);
      // For a change, a range bound must be a number written as such (or a joined value):
      // an expression or a string (`-(2147483648)::bigint`, `'-2147483648'`, `now() - ...`)
      // may cover the whole domain.
      if (!scope_.every_column && c != Cmp::kEq && c != Cmp::kNe && other.kind != Value::kNumber &&
          other.kind != Value::kOther)
        return Make(Value::kConst);
      if (other.kind == Value::kNumber) {
        if (!other.digits) *sensitive_ = true;
        const Cmp norm = l.kind == Value::kRow ? c : Flip(c);
        // A bound beyond a 32-bit integer's domain admits every row of such a column.
        if ((norm == Cmp::kGt || norm == Cmp::kGe) && other.number <= kDomainLow)
          return Make(Value::kConst);
        if ((norm == Cmp::kLt || norm == Cmp::kLe) && other.number >= kDomainHigh)
          return Make(Value::kConst);
      }
      return Make(AgainstTarget(other));
    }
    if (l.kind == Value::kOther || r.kind == Value::kOther || l.kind == Value::kSelf ||
        r.kind == Value::kSelf || l.kind == Value::kConst || r.kind == Value::kConst)
      return Make(Value::kConst);
    if (l.literal() || r.literal()) *sensitive_ = true;
    int cmp;
    if (!Compare(l, r, op, &cmp)) return Make(Value::kConst);
    if (cmp == 2) return Make(Value::kNull);
    bool result;
    switch (c) {
      case Cmp::kEq:
        result = cmp == 0;
        break;
      case Cmp::kNe:
        result = cmp != 0;
        break;
      case Cmp::kLt:
        result = cmp < 0;
        break;
      case Cmp::kLe:
        result = cmp <= 0;
        break;
      case Cmp::kGt:
        result = cmp > 0;
        break;
      case Cmp::kGe:
        result = cmp >= 0;
        break;
      default:
        return Make(Value::kConst);
    }
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

  static bool IsPatternOp(std::string_view op) {
    return op == "~~" || op == "~~*" || op == "!~~" || op == "!~~*" || op == "~" || op == "~*" ||
           op == "!~" || op == "!~*";
  }

  // LIKE/ILIKE/SIMILAR TO/regular expressions: a pattern that matches every string admits
  // every non-null row.
  Value Pattern(std::string_view kind, std::string_view op, element le, element re, element whole,
                bool negate) {
    Value l = Eval(le);
    if (l.kind != Value::kRow) return Opaque(whole);
    const bool negated = op.starts_with("!") != negate;
    // SIMILAR TO 'p' is ~ similar_to_escape('p'): the pattern is the call's first argument.
    element pattern = re;
    std::string_view type;
    object call;
    array args;
    if (tree::AsNode(re, &type, &call) && type == "FuncCall" && tree::GetArray(call, "args", &args))
      for (element a : args) {
        pattern = a;
        break;
      }
    Value p = Eval(pattern);
    if (p.param) return Make(Value::kConst);  // LIKE $1 may be bound to '%'
    // For a change, a pattern must be a string literal to be judged (`'%' || ''` is '%').
    if (p.kind != Value::kString)
      return Make(scope_.every_column ? AgainstTarget(p) : Value::kConst);
    *sensitive_ = true;
    const bool like = kind == "AEXPR_LIKE" || kind == "AEXPR_ILIKE" || op == "~~" || op == "~~*" ||
                      op == "!~~" || op == "!~~*";
    const bool similar = kind == "AEXPR_SIMILAR";
    bool matches_all;
    if (like || similar) {
      // Only wildcards, at least one that matches any run of characters (an empty pattern
      // matches only the empty string): `%`, `%%`, and with `_` every string of a few characters
      // or more (`_%`, `%_%`).
      matches_all = p.text.find('%') != std::string_view::npos &&
                    std::all_of(p.text.begin(), p.text.end(), [&](char ch) {
                      return ch == '%' || ch == '_' ||
                             (similar && (ch == '(' || ch == ')' || ch == '|' || ch == '*'));
                    });
    } else {
      // A regular expression made only of anchors, `.*`, groups and optional parts matches the
      // empty string, hence somewhere in every string; with `.+` every non-empty one.
      matches_all = std::all_of(p.text.begin(), p.text.end(), [](char ch) {
        return ch == '.' || ch == '*' || ch == '+' || ch == '^' || ch == '$' || ch == '(' ||
               ch == ')' || ch == '|' || ch == '?';
      });
    }
    if (matches_all && !negated) return Make(Value::kConst);
    return Make(Value::kRow);
  }

  Value In(std::string_view op, element le, element re) {
    Value l = Eval(le);
    if (l.kind != Value::kRow) return Make(Value::kConst);
    array items;
    std::string_view type;
    object list;
    bool self = false, against_self = false;
    if (re.get_array().get(items) == simdjson::SUCCESS ||
        (tree::AsNode(re, &type, &list) && tree::GetArray(list, "items", &items))) {
      for (element i : items) {
        Value v = Eval(i);
        if (v.kind == Value::kRow) self = true;  // id IN (id), a IN (b): not a restriction
        if (v.kind == Value::kSelf) against_self = true;
      }
    }
    if (op == "=") {
      // id IN (id, ...) is true for every non-null row; IN a list of other values restricts.
      if (self || against_self) return Make(Value::kConst);
      return Make(Value::kRow);
    }
    return Make(self ? Value::kConst : Value::kRow);  // NOT IN (...)
  }

  Value Between(std::string_view kind, element le, element re, bool negate) {
    Value l = Eval(le);
    if (l.kind != Value::kRow) return Make(Value::kConst);
    array items;
    std::string_view type;
    object list;
    std::vector<Value> bounds;
    if (re.get_array().get(items) == simdjson::SUCCESS ||
        (tree::AsNode(re, &type, &list) && tree::GetArray(list, "items", &items)))
      for (element i : items) bounds.push_back(Eval(i));
    if (bounds.size() != 2) return Make(Value::kRow);
    for (const Value& b : bounds)
      if (b.kind == Value::kRow || b.kind == Value::kSelf || b.param) return Make(Value::kConst);
    if (bounds[0].kind != Value::kNumber || bounds[1].kind != Value::kNumber)
      return Make(scope_.every_column ? Value::kRow : Value::kConst);
    double lo = bounds[0].number, hi = bounds[1].number;
    const bool symmetric = kind.ends_with("_SYM");
    if (symmetric && lo > hi) std::swap(lo, hi);
    const bool negated = kind.starts_with("AEXPR_NOT") != negate;
    // Whether the range is empty depends on the values, not their size classes.
    if (negated || !bounds[0].digits || !bounds[1].digits) *sensitive_ = true;
    const bool empty = lo > hi;
    const bool covers = lo <= kDomainLow && hi >= kDomainHigh;
    if (!negated) return Make(covers ? Value::kConst : (empty ? Value::kFalse : Value::kRow));
    return Make(empty ? Value::kConst : (covers ? Value::kFalse : Value::kRow));
  }

  Value NullTest(object t, bool negate) {
    element arg;
    if (!tree::Get(t, "arg", &arg)) return Make(Value::kConst);
    Value v = Eval(arg);
    bool want_null = (tree::GetString(t, "nulltesttype") == "IS_NULL") != negate;
    if (v.kind == Value::kRow) {
      // IS NOT NULL may hold for every row (a key, ctid); IS NULL restricts.
      return Make(want_null ? Value::kRow : Value::kConst);
    }
    if (v.kind == Value::kOther || v.kind == Value::kSelf || v.kind == Value::kConst)
      return Make(Value::kConst);
    bool is_null = v.kind == Value::kNull;
    return Make(is_null == want_null ? Value::kTrue : Value::kFalse);
  }

  Value BooleanTest(object t, bool negate) {
    element arg;
    if (!tree::Get(t, "arg", &arg)) return Make(Value::kConst);
    Value::Kind k = Truth(Eval(arg));
    if (k == Value::kRow || k == Value::kConst) return Make(k);
    std::string test(tree::GetString(t, "booltesttype"));
    if (negate) {
      // IS TRUE <-> IS NOT TRUE, and so on.
      test = test.starts_with("IS_NOT_") ? "IS_" + test.substr(7) : "IS_NOT_" + test.substr(3);
    }
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

  // EXISTS and IN/ANY/ALL over a subquery, and scalar subqueries as values.
  Value SubLink(object link, element whole) {
    std::string_view type = tree::GetString(link, "subLinkType");
    element sub;
    std::string_view st;
    object select;
    if (!tree::Get(link, "subselect", &sub) || !tree::AsNode(sub, &st, &select) ||
        st != "SelectStmt")
      return Opaque(whole);
    if (type == "EXISTS_SUBLINK") {
      // The same for every target row unless correlated with it by a restricting condition.
      return Make(Correlated(select) ? Value::kRow : Value::kConst);
    }
    if (type == "ALL_SUBLINK" && !scope_.every_column) {
      return Make(Value::kConst);  // x <> ALL (SELECT ...): every row when it is empty
    }
    if (type == "ANY_SUBLINK" || type == "ALL_SUBLINK") {
      element test;
      if (!tree::Get(link, "testexpr", &test)) return Make(Value::kConst);
      Value t = Eval(test);
      if (t.kind != Value::kRow) return Make(Value::kConst);
      // x IN (SELECT x FROM <the target table>) with nothing restricting the subquery: every row.
      if (type == "ANY_SUBLINK" && ReadsTargetUnrestricted(select)) return Make(Value::kConst);
      return Make(Value::kRow);
    }
    if (type == "EXPR_SUBLINK" || type == "ARRAY_SUBLINK") {
      // One value for the whole statement (uncorrelated) or per row (correlated).
      return Make(Correlated(select) ? Value::kRow : Value::kConst);
    }
    return Opaque(whole);
  }

  // The subquery's WHERE restricts by the target's row (a condition relating the two).
  bool Correlated(object select) {
    // Reading rows: a semi-join restricts no more than a join does (see Bounded reads).
    if (scope_.every_column) return false;
    element where;
    if (!tree::Get(select, "whereClause", &where)) return false;
    RelationScope inner = scope_;
    // The subquery's own relations join the others (its unqualified columns are then
    // ambiguous, as in UPDATE ... FROM), and a name it declares hides the target's: in
    // `EXISTS (SELECT 1 FROM accounts WHERE accounts.id = 1)` under DELETE FROM accounts,
    // `accounts` is the subquery's own table.
    array from;
    std::vector<element> items;
    if (tree::GetArray(select, "fromClause", &from))
      for (element f : from) items.push_back(f);
    for (auto& o : OthersOf(items, scope_.target_relname, sensitive_)) {
      inner.target.erase(std::remove(inner.target.begin(), inner.target.end(), o.name),
                         inner.target.end());
      inner.others.push_back(std::move(o));
    }
    for (const std::string& name : DeclaredNames(items))
      inner.target.erase(std::remove(inner.target.begin(), inner.target.end(), name),
                         inner.target.end());
    Evaluator ev(inner, sensitive_);
    return ev.Truth(ev.Eval(where)) == Value::kRow;
  }

  // Every relation name and alias declared by FROM items, joins included.
  static std::vector<std::string> DeclaredNames(const std::vector<element>& items) {
    std::vector<std::string> out;
    for (element item : items) {
      std::string_view type;
      object body;
      if (!tree::AsNode(item, &type, &body)) continue;
      object alias;
      if (tree::GetObject(body, "alias", &alias))
        out.emplace_back(tree::GetString(alias, "aliasname"));
      if (type == "RangeVar") {
        out.emplace_back(tree::GetString(body, "relname"));
        std::string_view schema = tree::GetString(body, "schemaname");
        if (!schema.empty())
          out.push_back(std::string(schema) + "." + std::string(tree::GetString(body, "relname")));
      }
      if (type == "JoinExpr") {
        element l, r;
        std::vector<element> sides;
        if (tree::Get(body, "larg", &l)) sides.push_back(l);
        if (tree::Get(body, "rarg", &r)) sides.push_back(r);
        for (auto& n : DeclaredNames(sides)) out.push_back(std::move(n));
      }
    }
    return out;
  }

  bool ReadsTargetUnrestricted(object select) {
    if (scope_.target_relname.empty()) return false;
    element from;
    if (!tree::Get(select, "fromClause", &from) || !ReadsRelation(from, scope_.target_relname))
      return false;
    element where;
    bool restricted = tree::Get(select, "whereClause", &where) && EffectiveWhere(where, sensitive_);
    return !restricted && !HasLimit(select, sensitive_);
  }

  const RelationScope& scope_;
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
                                            "range_intersect_agg",
                                            "any_value"};

// Aggregates whose single output row carries every input row: not a bound.
bool CollectsRows(std::string_view f) {
  return f == "array_agg" || f == "string_agg" || f == "xmlagg" || f == "range_agg" ||
         f == "multirange_agg" || f.starts_with("json_agg") || f.starts_with("jsonb_agg") ||
         f.starts_with("json_object_agg") || f.starts_with("jsonb_object_agg");
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

// Whether `e` holds a subquery or a column reference.
bool HasSubLinkOrColumn(element e) {
  std::string_view type;
  object body;
  if (tree::AsNode(e, &type, &body) && (type == "SubLink" || type == "ColumnRef")) return true;
  return tree::AnyChild(e, HasSubLinkOrColumn);
}

// Whether the FROM items below `e` read the table named `relname` anywhere (joins and nested
// subqueries included).
bool ReadsRelation(element e, std::string_view relname) {
  std::string_view type;
  object body;
  if (tree::AsNode(e, &type, &body) && type == "RangeVar")
    return tree::GetString(body, "relname") == relname;
  object o;
  array a;
  if (e.get_object().get(o) == simdjson::SUCCESS) {
    for (auto kv : o)
      if (ReadsRelation(kv.value, relname)) return true;
  } else if (e.get_array().get(a) == simdjson::SUCCESS) {
    for (element x : a)
      if (ReadsRelation(x, relname)) return true;
  }
  return false;
}

}  // namespace

// A subquery in FROM/USING: restricting only when shown to be (its own effective WHERE or a
// bounding LIMIT, or plain other tables); constant when it reads no table; else it may hold
// every target row.
RelationScope::Kind SubselectKind(object select, std::string_view target_relname, bool* sensitive) {
  element where;
  const bool restricted =
      (tree::Get(select, "whereClause", &where) && EffectiveWhere(where, sensitive)) ||
      HasLimit(select, sensitive);
  std::string_view op = tree::GetString(select, "op");
  if (!op.empty() && op != "SETOP_NONE")
    return restricted ? RelationScope::Kind::kRestricting : RelationScope::Kind::kSelf;
  array from;
  const bool has_from = tree::GetArray(select, "fromClause", &from) && from.size() > 0;
  if (!has_from) {
    // VALUES or SELECT without FROM: constant rows, unless a subquery makes them.
    element part;
    for (std::string_view field : {"valuesLists", "targetList"})
      if (tree::Get(select, field, &part) && HasSubLinkOrColumn(part))
        return RelationScope::Kind::kSelf;
    return RelationScope::Kind::kConstant;
  }
  if (restricted) return RelationScope::Kind::kRestricting;
  // Plain other tables only: matching them restricts as a table in USING does.
  for (element f : from) {
    std::string_view ft;
    object rv;
    if (!tree::AsNode(f, &ft, &rv) || ft != "RangeVar" ||
        tree::GetString(rv, "relname") == target_relname)
      return RelationScope::Kind::kSelf;
  }
  return RelationScope::Kind::kRestricting;
}

// How the FROM/USING items of a statement relate to the target table named `target_relname`.
std::vector<RelationScope::Other> OthersOf(const std::vector<element>& items,
                                           std::string_view target_relname, bool* sensitive) {
  std::vector<RelationScope::Other> out;
  for (element item : items) {
    std::string_view type;
    object body;
    if (!tree::AsNode(item, &type, &body)) continue;
    object alias;
    std::string alias_name;
    if (tree::GetObject(body, "alias", &alias)) alias_name = tree::GetString(alias, "aliasname");
    if (type == "JoinExpr") {
      std::vector<element> sides;
      element l, r;
      if (tree::Get(body, "larg", &l)) sides.push_back(l);
      if (tree::Get(body, "rarg", &r)) sides.push_back(r);
      for (auto& o : OthersOf(sides, target_relname, sensitive)) out.push_back(std::move(o));
      continue;
    }
    RelationScope::Other o;
    o.name = alias_name;
    if (type == "RangeVar") {
      std::string_view name = tree::GetString(body, "relname");
      if (alias_name.empty()) o.name = std::string(name);
      o.kind =
          name == target_relname ? RelationScope::Kind::kSelf : RelationScope::Kind::kRestricting;
    } else if (type == "RangeSubselect") {
      element sub;
      std::string_view st;
      object select;
      o.kind =
          tree::Get(body, "subquery", &sub) && tree::AsNode(sub, &st, &select) && st == "SelectStmt"
              ? SubselectKind(select, target_relname, sensitive)
              : RelationScope::Kind::kSelf;
    } else if (type == "RangeFunction") {
      // Rows made from the arguments: constant, unless an argument reads a table or a column
      // (`unnest(ARRAY(SELECT id FROM t))` holds every id of t).
      o.kind =
          HasSubLinkOrColumn(item) ? RelationScope::Kind::kSelf : RelationScope::Kind::kConstant;
    } else {
      o.kind = RelationScope::Kind::kSelf;  // XMLTABLE, TABLESAMPLE, ...: not shown to restrict
    }
    out.push_back(std::move(o));
  }
  return out;
}

RelationScope RelationScope::ForTarget(object target, const std::vector<element>& from) {
  RelationScope s;
  std::string_view schema = tree::GetString(target, "schemaname");
  std::string_view name = tree::GetString(target, "relname");
  object alias;
  if (tree::GetObject(target, "alias", &alias)) {
    s.target.emplace_back(tree::GetString(alias, "aliasname"));
  } else {
    s.target.emplace_back(name);
    if (!schema.empty()) s.target.push_back(std::string(schema) + "." + std::string(name));
  }
  s.target_relname = std::string(name);
  bool ignored = false;
  s.others = OthersOf(from, name, &ignored);
  return s;
}

RelationScope RelationScope::ForSelect() {
  RelationScope s;
  s.every_column = true;
  return s;
}

bool EffectiveWhere(element where, const RelationScope& scope, bool* literal_sensitive) {
  BudgetScope budget;
  Evaluator ev(scope, literal_sensitive);
  Value::Kind k = ev.Truth(ev.Eval(where));
  return k == Value::kRow || k == Value::kFalse || k == Value::kNull;
}

bool EffectiveWhere(element where, bool* literal_sensitive) {
  static const RelationScope kSelect = RelationScope::ForSelect();
  return EffectiveWhere(where, kSelect, literal_sensitive);
}

namespace {

// A literal integer row count, through casts; false for NULL, ALL, parameters, expressions.
bool LiteralRowCount(element e, int64_t* n) {
  std::string_view type;
  object body;
  if (!tree::AsNode(e, &type, &body)) return false;
  element arg;
  if (type == "TypeCast" && tree::Get(body, "arg", &arg)) return LiteralRowCount(arg, n);
  if (type != "A_Const" || tree::GetBool(body, "isnull")) return false;
  object v;
  if (tree::GetObject(body, "ival", &v)) {
    element x;
    *n = 0;  // 0 has no ival field
    if (tree::Get(v, "ival", &x) && x.get_int64().get(*n) != simdjson::SUCCESS) return false;
    return true;
  }
  return false;  // fval (1e18, 10.5), strings
}

}  // namespace

bool HasLimit(object select, bool* literal_sensitive) {
  element count;
  if (!tree::Get(select, "limitCount", &count)) return false;
  // FETCH FIRST n ROWS WITH TIES returns every row that ties with the n-th: all of them when
  // the ordering is constant.
  if (tree::GetString(select, "limitOption") == "LIMIT_OPTION_WITH_TIES") return false;
  int64_t n = 0;
  // LIMIT ALL/NULL/$1/(expr): maybe every row. The row count's size class (up to
  // kMaxBoundedLimit or not) is part of the shape: no literal sensitivity.
  (void)literal_sensitive;
  if (!LiteralRowCount(count, &n)) return false;
  return n <= kMaxBoundedLimit;
}

bool AggregateOnly(object select) {
  if (tree::Has(select, "groupClause")) return false;
  array targets;
  if (!tree::GetArray(select, "targetList", &targets)) return false;
  AggScan s;
  for (element t : targets) ScanTarget(t, &s);
  return s.aggregate && !s.per_row;
}

namespace {

// Whether the select list packs rows into values, or returns one row per input row.
bool PacksRows(element e) {
  std::string_view type;
  object body;
  if (tree::AsNode(e, &type, &body)) {
    if (type == "SubLink") return false;  // judged by PacksUnboundedRead
    if (type == "FuncCall") {
      array names;
      std::string_view f;
      if (tree::GetArray(body, "funcname", &names)) f = tree::LastName(names);
      if (tree::Has(body, "over") || CollectsRows(f)) return true;
    }
  }
  return tree::AnyChild(e, PacksRows);
}

struct FromTable {
  std::string_view name;  // alias, or relname
  TableRef table;
};

// The plain tables of a FROM clause (through joins); false when it has another kind of item.
bool FromTables(element item, const std::vector<std::string_view>& ctes,
                std::vector<FromTable>* out) {
  std::string_view type;
  object body;
  if (!tree::AsNode(item, &type, &body)) return false;
  if (type == "JoinExpr") {
    element l, r;
    if (tree::Has(body, "alias")) return false;  // (a JOIN b) AS j hides the tables' names
    return tree::Get(body, "larg", &l) && FromTables(l, ctes, out) && tree::Get(body, "rarg", &r) &&
           FromTables(r, ctes, out);
  }
  if (type != "RangeVar") return false;
  TableRef t = tree::TableFromRangeVar(body);
  if (t.schema.empty() && std::find(ctes.begin(), ctes.end(), t.name) != ctes.end()) return false;
  object alias;
  std::string_view name = tree::GetObject(body, "alias", &alias)
                              ? tree::GetString(alias, "aliasname")
                              : tree::GetString(body, "relname");
  out->push_back({name, std::move(t)});
  return true;
}

bool KeyColumns(element e, const std::vector<FromTable>& from, std::vector<GroupColumn>* out) {
  std::string_view type;
  object body;
  if (tree::AsNode(e, &type, &body)) {
    if (type == "SubLink") return false;
    if (type == "ColumnRef") {
      array fields;
      if (!tree::GetArray(body, "fields", &fields)) return false;
      std::vector<std::string_view> parts;
      for (element f : fields) {
        std::string_view part = tree::StringNode(f);
        if (part.empty()) return false;  // A_Star
        parts.push_back(part);
      }
      const FromTable* t = nullptr;
      if (parts.size() == 1 && from.size() == 1) {
        t = &from.front();
      } else if (parts.size() == 2) {
        for (const FromTable& c : from)
          if (c.name == parts[0]) t = &c;
      } else if (parts.size() == 3) {
        for (const FromTable& c : from)
          if (c.name == parts[1] && c.table.schema == parts[0]) t = &c;
      }
      if (t == nullptr) return false;
      GroupColumn g{t->table, std::string(parts.back())};
      if (std::find(out->begin(), out->end(), g) == out->end()) out->push_back(std::move(g));
      return true;
    }
  }
  return !tree::AnyChild(e, [&](element x) { return !KeyColumns(x, from, out); });
}

}  // namespace

bool GroupedOutput(object select) {
  element targets;
  return tree::Has(select, "groupClause") && tree::Get(select, "targetList", &targets) &&
         !PacksRows(targets);
}

bool GroupColumns(object select, std::vector<GroupColumn>* columns) {
  std::vector<std::string_view> ctes;
  object with;
  array list;
  if (tree::GetObject(select, "withClause", &with) && tree::GetArray(with, "ctes", &list))
    for (element c : list) {
      std::string_view type;
      object body;
      if (tree::AsNode(c, &type, &body)) ctes.push_back(tree::GetString(body, "ctename"));
    }
  std::vector<FromTable> from;
  array items, keys, targets;
  if (!tree::GetArray(select, "fromClause", &items) ||
      !tree::GetArray(select, "groupClause", &keys))
    return false;
  for (element item : items)
    if (!FromTables(item, ctes, &from)) return false;
  tree::GetArray(select, "targetList", &targets);
  for (element key : keys) {
    // GROUP BY 2: the second output column.
    std::string_view type;
    object body, ival;
    element n;
    int64_t ordinal = 0;
    if (tree::AsNode(key, &type, &body) && type == "A_Const" &&
        tree::GetObject(body, "ival", &ival)) {
      if (!tree::Get(ival, "ival", &n) || n.get_int64().get(ordinal) != simdjson::SUCCESS)
        return false;
      element target;
      int64_t i = 0;
      bool found = false;
      for (element t : targets)
        if (++i == ordinal) {
          target = t;
          found = true;
        }
      if (!found) return false;
      std::string_view tt;
      object tb;
      element val;
      if (!tree::AsNode(target, &tt, &tb) || !tree::Get(tb, "val", &val) ||
          !KeyColumns(val, from, columns))
        return false;
      continue;
    }
    if (!KeyColumns(key, from, columns)) return false;
  }
  return true;
}

bool BoundedSelect::IsCatalog(std::string_view schema, std::string_view name) {
  if (schema == "pg_catalog" || schema == "information_schema") return true;
  return schema.empty() && name.starts_with("pg_");
}

bool BoundedSelect::PacksUnboundedRead(element e) {
  std::string_view type;
  object body;
  if (tree::AsNode(e, &type, &body)) {
    if (type == "SubLink") {
      element sub;
      std::string_view st;
      object select;
      if (tree::Get(body, "subselect", &sub) && tree::AsNode(sub, &st, &select) &&
          st == "SelectStmt" && Unbounded(select))
        return true;
      return false;
    }
    if (type == "SelectStmt") return false;  // RangeSubselect: judged as a source
  }
  return tree::AnyChild(e, [this](element x) { return PacksUnboundedRead(x); });
}

bool BoundedSelect::Unbounded(object select) {
  if (++depth_ > 200) {  // pathological nesting: judge it unbounded rather than recurse on
    --depth_;
    return true;
  }
  bool* sensitive = sensitive_ != nullptr ? sensitive_ : &ignored_;
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
  element where;
  if (!op.empty() && op != "SETOP_NONE") {
    object l, r;
    bool arms = (tree::GetObject(select, "larg", &l) && Unbounded(l)) ||
                (tree::GetObject(select, "rarg", &r) && Unbounded(r));
    result = arms && !HasLimit(select, sensitive);
  } else if (!HasLimit(select, sensitive)) {
    // A subquery in the output (select list, VALUES, a FROM function's arguments) that packs a
    // whole table into values: as unbounded as reading the table itself.
    element part;
    for (std::string_view field : {"targetList", "valuesLists", "fromClause"})
      if (!result && tree::Get(select, field, &part) && PacksUnboundedRead(part)) result = true;
    const bool restricted =
        tree::Get(select, "whereClause", &where) && EffectiveWhere(where, sensitive);
    const bool grouped_bound = top_grouping_ && depth_ == 1 && GroupedOutput(select);
    if (!result && !restricted && !AggregateOnly(select) && !grouped_bound) {
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
