// ShapeKey and friends on top of the scanner in lexer.h. The key mixes one step per token:
// structural bytes 8 at a time with the token's length folded in, and a distinct tag per
// whitespace/comment run and per literal kind. The cache does not trust the key alone: it
// compares the canonical form too (CanonicalShape), so a collision costs a miss, never a
// wrong answer.
#include "userspace/sql/shape.h"

#include <charconv>
#include <cstring>

#include "userspace/sql/analyzer.h"
#include "userspace/sql/lexer.h"

namespace dbw::sql {
namespace {

// wyhash's multiply-fold: a 64x64→128 multiply with the halves xor-ed.
inline uint64_t Mum(uint64_t a, uint64_t b) {
  __uint128_t r = static_cast<__uint128_t>(a) * b;
  return static_cast<uint64_t>(r >> 64) ^ static_cast<uint64_t>(r);
}

constexpr uint64_t kSeed = 0xa0761d6478bd642full;
constexpr uint64_t kWord = 0xe7037ed1a0b428dbull;
constexpr uint64_t kTail = 0x8ebc6af09c88c6e3ull;
constexpr uint64_t kSpaceTag = 0x589965cc75374cc3ull;
constexpr uint64_t kStringTag = 0x1d8e4e27c47d124full;
constexpr uint64_t kNumberTag = 0x2d358dccaa6c78a5ull;
constexpr uint64_t kOpenTag = 0x9e3779b97f4a7c15ull;

// Numbers keep a class in the shape, so that facts decided by a number's size are not handed to
// a statement of the same shape with a number of another size: 'n' an integer up to 1,000,000
// (a LIMIT that bounds), 'm' a larger one below 2,147,483,647, 'h' from there on (a range
// bound at a 32-bit column's domain), 'f' anything not all digits (decimals, exponents).
// docs/sql-analysis.md lists the thresholds the analysis uses; they are these.
char NumberClass(std::string_view text) {
  if (text.empty()) return 'f';
  for (char c : text)
    if (c < '0' || c > '9') return 'f';
  size_t i = text.find_first_not_of('0');
  std::string_view digits = i == std::string_view::npos ? std::string_view("0") : text.substr(i);
  if (digits.size() > 10) return 'h';
  uint64_t v = 0;
  for (char c : digits) v = v * 10 + static_cast<uint64_t>(c - '0');
  if (v <= 1'000'000) return 'n';
  if (v < 2'147'483'647) return 'm';
  return 'h';
}

struct HashSink {
  uint64_t h = kSeed;
  void Raw(std::string_view bytes) {
    const char* p = bytes.data();
    size_t n = bytes.size();
    while (n > 8) {
      uint64_t w;
      std::memcpy(&w, p, 8);
      h = Mum(h ^ w ^ kWord, kTail);
      p += 8;
      n -= 8;
    }
    uint64_t w = 0;
    std::memcpy(&w, p, n);
    h = Mum(h ^ w ^ kTail, kWord + n);
  }
  void Space() { h = Mum(h ^ kSpaceTag, kWord); }
  void Literal(lex::LiteralKind kind, std::string_view text) {
    if (kind == lex::LiteralKind::kString) {
      h = Mum(h ^ kStringTag, kWord);
    } else {
      h = Mum(h ^ kNumberTag ^ static_cast<uint64_t>(NumberClass(text)), kWord);
    }
  }
  void Unterminated() { h = Mum(h ^ kOpenTag, kWord); }
  uint64_t Finish() const { return Mum(h ^ kSeed, kTail); }
};

// The canonical form spells the symbols as bytes: structural bytes as themselves, except
// 0x00, which escapes: "\0\0" is a NUL byte, "\0 " a space run, "\0s" a string, "\0n" a number
// followed by its class (NumberClass),
// "\0u" text that ends inside a literal, quoted name or comment.
struct CanonicalSink {
  HashSink hash;
  std::string* out;
  void Raw(std::string_view bytes) {
    hash.Raw(bytes);
    if (std::memchr(bytes.data(), 0, bytes.size()) == nullptr) {
      out->append(bytes);
      return;
    }
    for (char c : bytes) {
      if (c == '\0') out->push_back('\0');
      out->push_back(c);
    }
  }
  void Space() {
    hash.Space();
    out->append("\0 ", 2);
  }
  void Literal(lex::LiteralKind kind, std::string_view text) {
    hash.Literal(kind, text);
    if (kind == lex::LiteralKind::kString) {
      out->append("\0s", 2);
    } else {
      out->append("\0n", 2);
      out->push_back(NumberClass(text));
    }
  }
  void Unterminated() {
    hash.Unterminated();
    out->append("\0u", 2);
  }
};

struct ScrubSink {
  std::string out;
  ScrubStyle style;
  int next;
  bool open = false;  // the rest of the text is inside an unterminated construct
  void Raw(std::string_view bytes) {
    if (open) return;  // e.g. an unterminated "name swallows literals that follow it
    out.append(bytes);
  }
  void Unterminated() {
    if (!open) out.append(" ...");
    open = true;
  }
  void Space() { out.push_back(' '); }
  void Literal(lex::LiteralKind kind, std::string_view) {
    if (style == ScrubStyle::kQuestionMarks) {
      out.append(kind == lex::LiteralKind::kString ? "'?'" : "?");
      return;
    }
    out.push_back('$');
    out.append(std::to_string(next++));
  }
};

struct TextSink {
  std::string out;
  bool space = false;  // a separator is owed before the next token
  void Token(std::string_view bytes) {
    if (space && !out.empty()) out.push_back(' ');
    space = false;
    out.append(bytes);
  }
  // Unquoted words are folded to lower case, as PostgreSQL folds unquoted identifiers and
  // ignores the case of keywords (ASCII only, as it does in UTF-8 databases); quoted names and
  // the literal after UESCAPE (quoted or dollar-quoted) keep theirs.
  void Raw(std::string_view bytes) {
    if (!bytes.empty() && (bytes[0] == '"' || bytes[0] == '\'' || bytes[0] == '$')) {
      Token(bytes);
      return;
    }
    if (space && !out.empty()) out.push_back(' ');
    space = false;
    for (char c : bytes) out.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c);
  }
  void Space() { space = true; }
  void Literal(lex::LiteralKind, std::string_view text) { Token(text); }
  // Text ending inside a comment or literal must not equal the complete statement.
  void Unterminated() { out.append("\x01unterminated"); }
};

struct ParamSink {
  int max = 0;
  void Raw(std::string_view bytes) {
    if (bytes.size() < 2 || bytes[0] != '$' || !lex::IsDigit(bytes[1])) return;
    int v = 0;
    auto [p, ec] = std::from_chars(bytes.data() + 1, bytes.data() + bytes.size(), v);
    if (ec == std::errc() && v > max) max = v;
  }
  void Space() {}
  void Literal(lex::LiteralKind, std::string_view) {}
  void Unterminated() {}
};

}  // namespace

uint64_t ShapeKey(std::string_view sql) {
  HashSink sink;
  lex::Scan(sql, sink);
  return sink.Finish();
}

uint64_t CanonicalShape(std::string_view sql, std::string* out) {
  out->clear();
  CanonicalSink sink{{}, out};
  lex::Scan(sql, sink);
  return sink.hash.Finish();
}

std::string ScrubLiterals(std::string_view sql, ScrubStyle style, int first_param) {
  ScrubSink sink{{}, style, first_param};
  sink.out.reserve(sql.size());
  lex::Scan(sql, sink);
  return std::move(sink.out);
}

std::string CanonicalText(std::string_view sql) {
  TextSink sink;
  sink.out.reserve(sql.size());
  lex::Scan(sql, sink);
  return std::move(sink.out);
}

int MaxParamNumber(std::string_view sql) {
  ParamSink sink;
  lex::Scan(sql, sink);
  return sink.max;
}

}  // namespace dbw::sql
