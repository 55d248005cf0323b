// Parameters and their values (params.h), on the shape scanner's tokens.
#include "userspace/sql/params.h"

#include <charconv>

#include "userspace/sql/lexer.h"

namespace dbw::sql {
namespace {

struct Token {
  size_t begin = 0;
  size_t end = 0;
  bool literal = false;
};

// Every token of `text` with its byte range; false when the text ends inside a construct.
struct TokenSink {
  std::string_view text;
  std::vector<Token> tokens;
  bool open = false;
  void Add(std::string_view bytes, bool literal) {
    size_t at = static_cast<size_t>(bytes.data() - text.data());
    tokens.push_back({at, at + bytes.size(), literal});
  }
  void Raw(std::string_view bytes) { Add(bytes, false); }
  void Literal(lex::LiteralKind, std::string_view bytes) { Add(bytes, true); }
  void Space() {}
  void Unterminated() { open = true; }
};

std::optional<std::vector<Token>> Tokens(std::string_view text) {
  TokenSink sink{text, {}};
  lex::Scan(text, sink);
  if (sink.open) return std::nullopt;
  return std::move(sink.tokens);
}

bool IsWord(std::string_view token, std::string_view lower) {
  if (token.size() != lower.size()) return false;
  for (size_t i = 0; i < token.size(); ++i) {
    char c = token[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != lower[i]) return false;
  }
  return true;
}

bool IsName(std::string_view token) {
  return !token.empty() &&
         (token[0] == '"' || lex::IsIdentStart(static_cast<unsigned char>(token[0])));
}

int Depth(std::string_view token, int depth) {
  if (token == "(" || token == "[") return depth + 1;
  if (token == ")" || token == "]") return depth - 1;
  return depth;
}

bool ParamNumber(std::string_view token, size_t* n) {
  if (token.size() < 2 || token[0] != '$' || !lex::IsDigit(static_cast<unsigned char>(token[1])))
    return false;
  auto [p, ec] = std::from_chars(token.data() + 1, token.data() + token.size(), *n);
  return ec == std::errc() && p == token.data() + token.size();
}

}  // namespace

std::optional<std::string> SubstituteParams(std::string_view text,
                                            const std::vector<std::string>& values) {
  auto tokens = Tokens(text);
  if (!tokens) return std::nullopt;
  std::string out;
  out.reserve(text.size() + 16);
  size_t copied = 0;
  for (const Token& t : *tokens) {
    size_t n = 0;
    if (t.literal || !ParamNumber(text.substr(t.begin, t.end - t.begin), &n) || n == 0 ||
        n > values.size() || values[n - 1].empty())
      continue;
    out.append(text.substr(copied, t.begin - copied));
    // Parentheses keep the value one operand (`x - $1` with -5 must not read as a comment).
    out.push_back('(');
    out.append(values[n - 1]);
    out.push_back(')');
    copied = t.end;
  }
  out.append(text.substr(copied));
  return out;
}

std::string BoundLiteral(std::string_view value, bool string_type) {
  if (!string_type && !value.empty()) {
    size_t i = (value[0] == '-' || value[0] == '+') ? 1 : 0;
    // The same number without a `+`, which would read as an operator applied to it.
    if (i < value.size() && lex::IsDigit(static_cast<unsigned char>(value[i])) &&
        lex::ScanNumber(value, i) == value.size())
      return std::string(value[0] == '+' ? value.substr(1) : value);
  }
  std::string out = "'";
  for (char c : value) {
    if (c == '\'') out.push_back('\'');
    out.push_back(c);
  }
  out.push_back('\'');
  return out;
}

std::optional<std::vector<std::string>> ExecuteArguments(std::string_view statement) {
  auto tokens = Tokens(statement);
  if (!tokens) return std::nullopt;
  const std::vector<Token>& t = *tokens;
  auto at = [&](size_t i) { return statement.substr(t[i].begin, t[i].end - t[i].begin); };
  // The last EXECUTE name at depth 0: EXPLAIN and CREATE TABLE AS end with it (and WITH DATA).
  size_t exec = t.size();
  int depth = 0;
  for (size_t i = 0; i < t.size(); ++i) {
    if (depth == 0 && !t[i].literal && IsWord(at(i), "execute") && i + 1 < t.size() &&
        !t[i + 1].literal && IsName(at(i + 1)))
      exec = i;
    if (!t[i].literal) depth = Depth(at(i), depth);
  }
  if (exec == t.size()) return std::nullopt;
  std::vector<std::string> args;
  size_t open = exec + 2;
  if (open >= t.size() || t[open].literal || at(open) != "(") return args;
  depth = 1;
  size_t first = open + 1;
  for (size_t i = open + 1; i < t.size(); ++i) {
    std::string_view tok = t[i].literal ? std::string_view() : at(i);
    if (depth == 1 && (tok == "," || tok == ")")) {
      if (i == first) return std::nullopt;  // an empty argument
      args.emplace_back(statement.substr(t[first].begin, t[i - 1].end - t[first].begin));
      first = i + 1;
      if (tok == ")") return args;
      continue;
    }
    depth = Depth(tok, depth);
  }
  return std::nullopt;  // no closing parenthesis
}

std::optional<std::string_view> PreparedText(std::string_view statement) {
  auto tokens = Tokens(statement);
  if (!tokens) return std::nullopt;
  int depth = 0;
  for (size_t i = 0; i + 1 < tokens->size(); ++i) {
    const Token& t = (*tokens)[i];
    std::string_view tok = statement.substr(t.begin, t.end - t.begin);
    if (!t.literal && depth == 0 && IsWord(tok, "as")) {
      size_t begin = (*tokens)[i + 1].begin;
      size_t end = tokens->back().end;
      return statement.substr(begin, end - begin);
    }
    if (!t.literal) depth = Depth(tok, depth);
  }
  return std::nullopt;
}

}  // namespace dbw::sql
