// Glob compilation and matching: a literal fast path, then an iterative star-backtracking matcher.
#include "policy/glob.h"

namespace dbw::policy {
namespace {

char Fold(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

}  // namespace

bool Glob::Compile(std::string_view pattern, bool fold_case, Glob* out, std::string* error) {
  Glob g;
  g.fold_ = fold_case;
  g.text_ = std::string(pattern);
  if (pattern.empty()) {
    *error = "empty glob pattern";
    return false;
  }
  for (size_t i = 0; i < pattern.size(); ++i) {
    char c = pattern[i];
    if (c == '\\') {
      if (i + 1 == pattern.size()) {
        *error = "bad glob \"" + g.text_ + "\": trailing backslash";
        return false;
      }
      c = pattern[++i];
      g.chars_.push_back(fold_case ? Fold(c) : c);
      g.ops_.push_back('c');
    } else if (c == '[' || c == ']') {
      *error = "bad glob \"" + g.text_ + "\": character classes are not supported (escape with \\" +
               std::string(1, c) + ")";
      return false;
    } else if (c == '*') {
      if (!g.ops_.empty() && g.ops_.back() == '*') continue;  // "**" is "*"
      g.chars_.push_back('*');
      g.ops_.push_back('*');
    } else if (c == '?') {
      g.chars_.push_back('?');
      g.ops_.push_back('?');
    } else {
      g.chars_.push_back(fold_case ? Fold(c) : c);
      g.ops_.push_back('c');
    }
  }
  size_t stars = 0, questions = 0;
  for (char op : g.ops_) {
    stars += op == '*';
    questions += op == '?';
  }
  const size_t n = g.ops_.size();
  if (stars == 0 && questions == 0) {
    g.kind_ = Kind::kExact;
    g.lit_ = g.chars_;
  } else if (questions == 0 && stars == 1 && n == 1) {
    g.kind_ = Kind::kAny;
  } else if (questions == 0 && stars == 1 && g.ops_.back() == '*') {
    g.kind_ = Kind::kPrefix;
    g.lit_ = g.chars_.substr(0, n - 1);
  } else if (questions == 0 && stars == 1 && g.ops_.front() == '*') {
    g.kind_ = Kind::kSuffix;
    g.lit_ = g.chars_.substr(1);
  } else {
    g.kind_ = Kind::kGeneral;
  }
  *out = std::move(g);
  return true;
}

bool Glob::Eq(char a, char b) const {
  return fold_ ? Fold(a) == b : a == b;
}

bool Glob::Match(std::string_view s) const {
  auto literal_at = [this, s](size_t pos) {
    for (size_t i = 0; i < lit_.size(); ++i)
      if (!Eq(s[pos + i], lit_[i])) return false;
    return true;
  };
  switch (kind_) {
    case Kind::kAny:
      return true;
    case Kind::kExact:
      return s.size() == lit_.size() && literal_at(0);
    case Kind::kPrefix:
      return s.size() >= lit_.size() && literal_at(0);
    case Kind::kSuffix:
      return s.size() >= lit_.size() && literal_at(s.size() - lit_.size());
    case Kind::kGeneral:
      break;
  }
  // Classic iterative matcher: on a mismatch, retry from the last star one character further.
  const size_t n = ops_.size();
  size_t p = 0, i = 0, star = std::string::npos, mark = 0;
  while (i < s.size()) {
    if (p < n && (ops_[p] == '?' || (ops_[p] == 'c' && Eq(s[i], chars_[p])))) {
      ++p;
      ++i;
    } else if (p < n && ops_[p] == '*') {
      star = p++;
      mark = i;
    } else if (star != std::string::npos) {
      p = star + 1;
      i = ++mark;
    } else {
      return false;
    }
  }
  while (p < n && ops_[p] == '*') ++p;
  return p == n;
}

bool QualifiedGlob::Compile(std::string_view pattern, QualifiedGlob* out, std::string* error) {
  // Split at the unescaped dot; SQL object patterns are "name" or "schema.name".
  size_t dot = std::string_view::npos;
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] == '\\') {
      ++i;
    } else if (pattern[i] == '.') {
      if (dot != std::string_view::npos) {
        *error = "bad name pattern \"" + std::string(pattern) +
                 "\": use \"name\" or \"schema.name\" (one dot)";
        return false;
      }
      dot = i;
    }
  }
  QualifiedGlob q;
  if (dot == std::string_view::npos) {
    if (!Glob::Compile(pattern, true, &q.name_, error)) return false;
  } else {
    q.has_schema_ = true;
    if (!Glob::Compile(pattern.substr(0, dot), true, &q.schema_, error) ||
        !Glob::Compile(pattern.substr(dot + 1), true, &q.name_, error)) {
      *error = "bad name pattern \"" + std::string(pattern) + "\": " + *error;
      return false;
    }
  }
  *out = std::move(q);
  return true;
}

bool QualifiedGlob::Match(std::string_view schema, std::string_view name,
                          std::initializer_list<std::string_view> implicit_schemas) const {
  if (!name_.Match(name)) return false;
  if (!has_schema_) return true;
  if (!schema.empty()) return schema_.Match(schema);
  for (std::string_view s : implicit_schemas)
    if (schema_.Match(s)) return true;
  return false;
}

bool QualifiedGlob::MatchDotted(std::string_view dotted,
                                std::initializer_list<std::string_view> implicit_schemas) const {
  size_t dot = dotted.rfind('.');
  if (dot == std::string_view::npos) return Match({}, dotted, implicit_schemas);
  return Match(dotted.substr(0, dot), dotted.substr(dot + 1), implicit_schemas);
}

}  // namespace dbw::policy
