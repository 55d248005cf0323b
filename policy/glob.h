// Shell-style globs (`*`, `?`, `\` escapes) compiled once at load and matched without allocation.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace dbw::policy {

class Glob {
 public:
  // Compiles `pattern`. Returns false and sets *error on an empty pattern, a trailing `\`, or a
  // character class (`[`/`]` unescaped), which policy files do not support.
  static bool Compile(std::string_view pattern, bool fold_case, Glob* out, std::string* error);

  bool Match(std::string_view subject) const;
  const std::string& pattern() const { return text_; }

 private:
  enum class Kind : uint8_t { kExact, kAny, kPrefix, kSuffix, kGeneral };
  bool Eq(char a, char b) const;

  Kind kind_ = Kind::kExact;
  bool fold_ = false;
  std::string text_;   // as written
  std::string chars_;  // escapes resolved; literal chars (folded when fold_)
  std::string ops_;    // per position of chars_: 'c' literal, '?' one char, '*' any run
  std::string lit_;    // kExact/kPrefix/kSuffix: the literal part
};

// A glob over a possibly schema-qualified SQL name. "orders" matches the bare name in any schema;
// "billing.*" matches schema and name separately; names written unqualified belong to the
// schemas given as `implicit_schemas` (tables: public; functions: pg_catalog and public).
class QualifiedGlob {
 public:
  static bool Compile(std::string_view pattern, QualifiedGlob* out, std::string* error);
  // `schema` may be empty (unqualified).
  bool Match(std::string_view schema, std::string_view name,
             std::initializer_list<std::string_view> implicit_schemas) const;
  // A dotted "schema.name" (functions are reported this way); the last dot splits.
  bool MatchDotted(std::string_view dotted,
                   std::initializer_list<std::string_view> implicit_schemas) const;
  const std::string& pattern() const { return name_.pattern(); }

 private:
  bool has_schema_ = false;
  Glob schema_;
  Glob name_;
};

}  // namespace dbw::policy
