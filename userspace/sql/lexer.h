// A literal-aware scanner that splits SQL text the way PostgreSQL 15's lexer (scan.l) does as far
// as comments, string/number literals and token boundaries are concerned. Internal to
// userspace/sql: the shape key, the cache's canonical form and literal scrubbing are built on it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace dbw::sql::lex {

enum class LiteralKind : uint8_t { kString, kNumber };

// Character classes as PostgreSQL 15's scan.l defines them, as a table: the scanner's inner
// loops test one byte per step.
enum CharClass : uint8_t {
  kClsSpace = 1,       // space [ \t\n\r\f]
  kClsHorizSpace = 2,  // horiz_space [ \t\f]
  kClsNewline = 4,     // newline [\n\r]
  kClsDigit = 8,
  kClsIdentStart = 16,  // ident_start [A-Za-z\200-\377_]
  kClsIdentCont = 32,   // ident_cont: ident_start, digits, '$'
};

struct CharTable {
  uint8_t cls[256] = {};
  constexpr CharTable() {
    for (int c = 0; c < 256; ++c) {
      uint8_t v = 0;
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f') v |= kClsSpace;
      if (c == ' ' || c == '\t' || c == '\f') v |= kClsHorizSpace;
      if (c == '\n' || c == '\r') v |= kClsNewline;
      if (c >= '0' && c <= '9') v |= kClsDigit | kClsIdentCont;
      if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80)
        v |= kClsIdentStart | kClsIdentCont;
      if (c == '$') v |= kClsIdentCont;
      cls[c] = v;
    }
  }
};
inline constexpr CharTable kChars{};

inline bool Is(unsigned char c, uint8_t cls) {
  return (kChars.cls[c] & cls) != 0;
}
inline bool IsSpace(unsigned char c) {
  return Is(c, kClsSpace);
}
inline bool IsHorizSpace(unsigned char c) {
  return Is(c, kClsHorizSpace);
}
inline bool IsNewline(unsigned char c) {
  return Is(c, kClsNewline);
}
inline bool IsDigit(unsigned char c) {
  return Is(c, kClsDigit);
}
inline bool IsIdentStart(unsigned char c) {
  return Is(c, kClsIdentStart);
}
inline bool IsIdentCont(unsigned char c) {
  return Is(c, kClsIdentCont);
}
// dolq_cont: like ident_cont without '$'.
inline bool IsDolqCont(unsigned char c) {
  return c != '$' && IsIdentCont(c);
}

// After a quote-style string literal closes at `i`, PostgreSQL continues the same literal if
// what follows is {whitespace_with_newline}{quote}:
//   ({horiz_space} | --comment)* {newline} ({space}+ | --comment {newline})* '
// Returns the index of that continuing quote, or npos.
inline size_t ContinuationQuote(std::string_view s, size_t i) {
  const size_t n = s.size();
  // ({horiz_space} | comment)*
  while (i < n) {
    if (IsHorizSpace(s[i])) {
      ++i;
    } else if (s[i] == '-' && i + 1 < n && s[i + 1] == '-') {
      i += 2;
      while (i < n && !IsNewline(s[i])) ++i;
    } else {
      break;
    }
  }
  if (i >= n || !IsNewline(s[i])) return std::string_view::npos;
  ++i;
  // ({space}+ | comment {newline})*
  while (i < n) {
    if (IsSpace(s[i])) {
      ++i;
    } else if (s[i] == '-' && i + 1 < n && s[i + 1] == '-') {
      size_t j = i + 2;
      while (j < n && !IsNewline(s[j])) ++j;
      if (j >= n) return std::string_view::npos;
      i = j + 1;
    } else {
      break;
    }
  }
  return i < n && s[i] == '\'' ? i : std::string_view::npos;
}

enum class QuoteStyle : uint8_t {
  kStandard,  // '...' and N'...', U&'...': '' is a quote
  kEscape,    // E'...': backslash escapes the next byte, '' is a quote
  kBits,      // B'...' and X'...': no escapes at all
};

// `i` is the index just past an opening quote. Returns the index just past the literal's final
// closing quote, following continuation lines; s.size() when unterminated (and then sets
// *unterminated).
inline size_t ScanQuoted(std::string_view s, size_t i, QuoteStyle style,
                         bool* unterminated = nullptr) {
  const size_t n = s.size();
  while (true) {
    while (i < n) {
      char c = s[i];
      if (c == '\'') {
        if (style != QuoteStyle::kBits && i + 1 < n && s[i + 1] == '\'') {
          i += 2;
          continue;
        }
        break;
      }
      if (c == '\\' && style == QuoteStyle::kEscape) {
        i += (i + 1 < n) ? 2 : 1;
        continue;
      }
      ++i;
    }
    if (i >= n) {
      if (unterminated != nullptr) *unterminated = true;
      return n;
    }
    ++i;  // the closing quote
    size_t q = ContinuationQuote(s, i);
    if (q == std::string_view::npos) return i;
    i = q + 1;
  }
}

// `i` points at a '$' at a token start. Returns the index past the dollar-quoted literal
// (s.size() when unterminated), or 0 when this '$' does not open one.
inline size_t ScanDollarQuoted(std::string_view s, size_t i, bool* unterminated = nullptr) {
  const size_t n = s.size();
  size_t j = i + 1;
  if (j < n && s[j] != '$') {
    if (!IsIdentStart(s[j])) return 0;
    while (j < n && IsDolqCont(s[j])) ++j;
    if (j >= n || s[j] != '$') return 0;
  }
  if (j >= n) return 0;
  std::string_view delim = s.substr(i, j + 1 - i);
  size_t end = s.find(delim, j + 1);
  if (end == std::string_view::npos) {
    if (unterminated != nullptr) *unterminated = true;
    return n;
  }
  return end + delim.size();
}

// Numbers as PostgreSQL 15 lexes them: integer, decimal (with "1..2" yielding the integer),
// optional exponent only when digits follow. No hex/octal/binary/underscores (PG 16).
inline size_t ScanNumber(std::string_view s, size_t i) {
  const size_t n = s.size();
  while (i < n && IsDigit(s[i])) ++i;
  if (i < n && s[i] == '.') {
    if (i + 1 < n && s[i + 1] == '.') return i;
    ++i;
    while (i < n && IsDigit(s[i])) ++i;
  }
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    size_t j = i + 1;
    if (j < n && (s[j] == '+' || s[j] == '-')) ++j;
    if (j < n && IsDigit(s[j])) {
      while (j < n && IsDigit(s[j])) ++j;
      i = j;
    }
  }
  return i;
}

inline bool IsUescape(std::string_view word) {
  static constexpr char kWord[] = "uescape";
  if (word.size() != 7) return false;
  for (size_t k = 0; k < 7; ++k) {
    char c = word[k];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != kWord[k]) return false;
  }
  return true;
}

// Scans `s` once and reports to `sink`:
//   sink.Raw(std::string_view)                 structural bytes (identifiers, keywords,
//                                              operators, punctuation, parameters, quoted names)
//   sink.Space()                               one run of whitespace and/or comments between
//                                              two tokens (never leading or trailing)
//   sink.Literal(LiteralKind, std::string_view) a literal, quotes and continuations included;
//                                              a literal's prefix (E, B, X, N, U&) comes as Raw.
//   sink.Unterminated()                        the text ends inside a literal, quoted name or
//                                              comment: such text must never share a shape with
//                                              a complete statement (it cannot parse, and a
//                                              cached parse of the complete one must not answer
//                                              for it).
// The literal after UESCAPE is reported as Raw: it changes what the preceding U& text means.
template <typename Sink>
inline void Scan(std::string_view s, Sink& sink) {
  const size_t n = s.size();
  size_t i = 0;
  bool any_token = false;
  bool pending_space = false;
  bool raw_next_literal = false;
  auto token = [&]() {
    if (pending_space && any_token) sink.Space();
    pending_space = false;
    any_token = true;
  };
  bool open = false;  // set by the scanners when the text ends inside a construct
  auto literal = [&](LiteralKind kind, size_t begin, size_t end) {
    if (raw_next_literal) {
      sink.Raw(s.substr(begin, end - begin));
      raw_next_literal = false;
    } else {
      sink.Literal(kind, s.substr(begin, end - begin));
    }
    if (open) {
      sink.Unterminated();
      open = false;
    }
  };
  while (i < n) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (IsSpace(c)) {
      ++i;
      while (i < n && IsSpace(static_cast<unsigned char>(s[i]))) ++i;
      pending_space = true;
      continue;
    }
    if (c == '-' && i + 1 < n && s[i + 1] == '-') {
      i += 2;
      while (i < n && !IsNewline(static_cast<unsigned char>(s[i]))) ++i;
      pending_space = true;
      continue;
    }
    if (c == '/' && i + 1 < n && s[i + 1] == '*') {
      // Nested block comments; an unterminated one runs to the end (a parse error anyway).
      int depth = 1;
      i += 2;
      while (i < n && depth > 0) {
        if (s[i] == '/' && i + 1 < n && s[i + 1] == '*') {
          ++depth;
          i += 2;
        } else if (s[i] == '*' && i + 1 < n && s[i + 1] == '/') {
          --depth;
          i += 2;
        } else {
          ++i;
        }
      }
      if (depth > 0) sink.Unterminated();
      pending_space = true;
      continue;
    }
    token();
    if (c == '\'') {
      size_t end = ScanQuoted(s, i + 1, QuoteStyle::kStandard, &open);
      literal(LiteralKind::kString, i, end);
      i = end;
      continue;
    }
    if (c == '"') {
      size_t j = i + 1;
      while (j < n) {
        if (s[j] == '"') {
          if (j + 1 < n && s[j + 1] == '"') {
            j += 2;
            continue;
          }
          ++j;
          break;
        }
        ++j;
      }
      bool closed = j - i >= 2 && s[j - 1] == '"';
      if (!closed) sink.Unterminated();
      sink.Raw(s.substr(i, j - i));
      raw_next_literal = false;
      i = j;
      continue;
    }
    if (IsDigit(c) || (c == '.' && i + 1 < n && IsDigit(static_cast<unsigned char>(s[i + 1])))) {
      size_t end = ScanNumber(s, i);
      literal(LiteralKind::kNumber, i, end);
      i = end;
      continue;
    }
    if (c == '$') {
      size_t j = i + 1;
      if (j < n && IsDigit(static_cast<unsigned char>(s[j]))) {  // $1: a parameter
        while (j < n && IsDigit(static_cast<unsigned char>(s[j]))) ++j;
        sink.Raw(s.substr(i, j - i));
        raw_next_literal = false;
        i = j;
        continue;
      }
      size_t end = ScanDollarQuoted(s, i, &open);
      if (end != 0) {
        literal(LiteralKind::kString, i, end);
        i = end;
        continue;
      }
      sink.Raw(s.substr(i, 1));
      raw_next_literal = false;
      ++i;
      continue;
    }
    if (IsIdentStart(c)) {
      // Literal prefixes count only at a token start: E'..', B'..', X'..', N'..', U&'..'.
      if (i + 1 < n && s[i + 1] == '\'') {
        QuoteStyle style = QuoteStyle::kStandard;
        bool prefix = true;
        switch (c) {
          case 'e':
          case 'E':
            style = QuoteStyle::kEscape;
            break;
          case 'b':
          case 'B':
          case 'x':
          case 'X':
            style = QuoteStyle::kBits;
            break;
          case 'n':
          case 'N':
            break;
          default:
            prefix = false;
        }
        if (prefix) {
          sink.Raw(s.substr(i, 1));
          size_t end = ScanQuoted(s, i + 2, style, &open);
          literal(LiteralKind::kString, i + 1, end);
          i = end;
          continue;
        }
      }
      if ((c == 'u' || c == 'U') && i + 2 < n && s[i + 1] == '&' && s[i + 2] == '\'') {
        sink.Raw(s.substr(i, 2));
        size_t end = ScanQuoted(s, i + 3, QuoteStyle::kStandard, &open);
        literal(LiteralKind::kString, i + 2, end);
        i = end;
        continue;
      }
      size_t j = i + 1;
      while (j < n && IsIdentCont(static_cast<unsigned char>(s[j]))) ++j;
      std::string_view word = s.substr(i, j - i);
      sink.Raw(word);
      raw_next_literal = IsUescape(word);
      i = j;
      continue;
    }
    // Operators and punctuation, one byte at a time (U&"..." arrives here as 'U' handled
    // above as an identifier, then '&', then the quoted name).
    sink.Raw(s.substr(i, 1));
    raw_next_literal = false;
    ++i;
  }
}

}  // namespace dbw::sql::lex
