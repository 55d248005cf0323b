// Small helpers over libpg_query's JSON parse tree as simdjson's DOM presents it. A node is an
// object with one PascalCase key naming its type ({"RangeVar": {...}}); plain structs
// (a DeleteStmt's "relation") are objects with lower-case field names.
#pragma once

#include <simdjson.h>

#include <string>
#include <string_view>

#include "userspace/sql/facts.h"

namespace dbw::sql::tree {

using simdjson::dom::array;
using simdjson::dom::element;
using simdjson::dom::object;

inline bool Get(object o, std::string_view key, element* out) {
  return o.at_key(key).get(*out) == simdjson::SUCCESS;
}
inline bool Has(object o, std::string_view key) {
  element e;
  return Get(o, key, &e);
}
inline bool GetObject(object o, std::string_view key, object* out) {
  element e;
  return Get(o, key, &e) && e.get_object().get(*out) == simdjson::SUCCESS;
}
inline bool GetArray(object o, std::string_view key, array* out) {
  element e;
  return Get(o, key, &e) && e.get_array().get(*out) == simdjson::SUCCESS;
}
inline std::string_view GetString(object o, std::string_view key) {
  element e;
  std::string_view s;
  if (!Get(o, key, &e) || e.get_string().get(s) != simdjson::SUCCESS) return {};
  return s;
}
inline bool GetBool(object o, std::string_view key) {
  element e;
  bool b = false;
  return Get(o, key, &e) && e.get_bool().get(b) == simdjson::SUCCESS && b;
}

// {"Type": {...}} → type and body. False for anything else.
inline int64_t GetInt(object o, std::string_view key) {
  int64_t v = 0;
  element e;
  if (o.at_key(key).get(e) != simdjson::SUCCESS || e.get_int64().get(v) != simdjson::SUCCESS)
    return 0;
  return v;
}

// ASCII lower case, as PostgreSQL folds setting names.
inline std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

inline bool AsNode(element e, std::string_view* type, object* body) {
  object o;
  if (e.get_object().get(o) != simdjson::SUCCESS || o.size() != 1) return false;
  auto kv = *o.begin();
  if (kv.key.empty() || kv.key[0] < 'A' || kv.key[0] > 'Z') return false;
  if (kv.value.get_object().get(*body) != simdjson::SUCCESS) return false;
  *type = kv.key;
  return true;
}

// The sval of a {"String": {"sval": ...}} node ("" when absent or another node).
inline std::string_view StringNode(element e) {
  std::string_view type;
  object body;
  if (!AsNode(e, &type, &body) || type != "String") return {};
  return GetString(body, "sval");
}

// Joins a list of String nodes with '.' (function names, qualified object names).
inline std::string JoinNames(array names) {
  std::string out;
  for (element n : names) {
    if (!out.empty()) out.push_back('.');
    out.append(StringNode(n));
  }
  return out;
}

// The last String of a name list ("pg_catalog.count" → "count").
inline std::string_view LastName(array names) {
  std::string_view last;
  for (element n : names) last = StringNode(n);
  return last;
}

inline TableRef TableFromRangeVar(object rv) {
  return TableRef{std::string(GetString(rv, "schemaname")), std::string(GetString(rv, "relname"))};
}

// Calls `f` with each value directly below `e` (an object's values, an array's elements) until
// one returns true; whether one did. Recursive walks are written as f(e) = check(e) ||
// AnyChild(e, f).
template <typename F>
bool AnyChild(element e, F&& f) {
  object o;
  array a;
  if (e.get_object().get(o) == simdjson::SUCCESS) {
    for (auto kv : o)
      if (f(kv.value)) return true;
  } else if (e.get_array().get(a) == simdjson::SUCCESS) {
    for (element x : a)
      if (f(x)) return true;
  }
  return false;
}

// True when `e` holds a column reference anywhere below it (including subqueries).
bool HasColumnRef(element e);

// The statement text being walked (set by the analyzer, see ScopedSource), for values the JSON
// parse tree does not carry: libpg_query 15-4.0.0 writes a negative integer constant as an empty
// "ival" object, so `-5` must be read back from the text at the constant's location.
std::string_view& SourceText();
class ScopedSource {
 public:
  explicit ScopedSource(std::string_view text) : saved_(SourceText()) { SourceText() = text; }
  ~ScopedSource() { SourceText() = saved_; }
  ScopedSource(const ScopedSource&) = delete;
  ScopedSource& operator=(const ScopedSource&) = delete;

 private:
  std::string_view saved_;
};

}  // namespace dbw::sql::tree
