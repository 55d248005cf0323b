// Validators for Hyperscan candidates: what a regular expression cannot say (checksums, number
// ranges, boundaries with the surrounding text, matching PEM labels, a JWT's JSON header).
#include "userspace/masking/validators.h"

#include <simdjson.h>

#include <array>
#include <cstring>
#include <string>

namespace dbw::masking::internal {
namespace {

// Character classes as one table lookup each: the checks run over every candidate's bytes,
// and chains of comparisons mispredict on mixed text.
enum : uint8_t {
  kDigit = 1,
  kUpper = 2,
  kLower = 4,
  kLocal = 8,    // email local part: alnum . _ % + -
  kDomain = 16,  // email domain: alnum - .
  kPhone = 32,   // digits and " .()-"
  kSecret = 64,  // base64 without padding: alnum / +
  kToken = 128,  // base64url, GitLab, Slack: alnum _ -
};
constexpr std::array<uint8_t, 256> kClass = [] {
  std::array<uint8_t, 256> t{};
  for (int c = 0; c < 256; ++c) {
    uint8_t m = 0;
    if (c >= '0' && c <= '9') m |= kDigit | kLocal | kDomain | kPhone | kSecret | kToken;
    if (c >= 'A' && c <= 'Z') m |= kUpper | kLocal | kDomain | kSecret | kToken;
    if (c >= 'a' && c <= 'z') m |= kLower | kLocal | kDomain | kSecret | kToken;
    if (c == '.' || c == '_' || c == '%' || c == '+' || c == '-') m |= kLocal;
    if (c == '-' || c == '.') m |= kDomain;
    if (c == ' ' || c == '.' || c == '(' || c == ')' || c == '-') m |= kPhone;
    if (c == '/' || c == '+') m |= kSecret;
    if (c == '_' || c == '-') m |= kToken;
    t[c] = m;
  }
  return t;
}();
inline bool Has(char c, uint8_t mask) {
  return (kClass[static_cast<uint8_t>(c)] & mask) != 0;
}

bool IsDigit(char c) {
  return Has(c, kDigit);
}
bool IsUpper(char c) {
  return Has(c, kUpper);
}
bool IsLower(char c) {
  return Has(c, kLower);
}
bool IsAlnum(char c) {
  return Has(c, kDigit | kUpper | kLower);
}
bool IsWord(char c) {
  return IsAlnum(c) || c == '_';
}
bool IsTokenChar(char c) {
  return Has(c, kToken);
}
bool IsSecretKeyChar(char c) {
  return Has(c, kSecret);
}
bool IsDomainChar(char c) {
  return Has(c, kDomain);
}
bool IsLocalChar(char c) {
  return Has(c, kLocal);
}
bool IsPhoneChar(char c) {
  return Has(c, kPhone);
}

// A number-like match must not be a piece of a longer number or word: "x4111...", "1123-45-...",
// "0.4111..." and "4111...-7" are not standalone values.
bool NumericBefore(std::string_view v, size_t begin) {
  if (begin == 0) return true;
  char before = v[begin - 1];
  if (IsAlnum(before)) return false;
  return !((before == '-' || before == '.') && begin > 1 && IsDigit(v[begin - 2]));
}
bool NumericAfter(std::string_view v, size_t end) {
  if (end >= v.size()) return true;
  char after = v[end];
  if (IsAlnum(after)) return false;
  return !((after == '-' || after == '.') && end + 1 < v.size() && IsDigit(v[end + 1]));
}
bool NumericBoundary(std::string_view v, Span s) {
  return NumericBefore(v, s.begin) && NumericAfter(v, s.end);
}

// Tokens (keys, IBANs, ...) must not be glued to more characters of their own alphabet.
template <typename Pred>
bool TokenBoundary(std::string_view v, Span s, Pred in_token) {
  if (s.begin > 0 && in_token(v[s.begin - 1])) return false;
  if (s.end < v.size() && in_token(v[s.end])) return false;
  return true;
}

bool ValidateCard(std::string_view v, Span s) {
  std::string_view m = v.substr(s.begin, s.end - s.begin);
  char sep = 0;
  size_t digits = 0, group = 0, groups = 0;
  std::array<size_t, 20> group_len{};
  std::array<char, 20> number{};
  for (char c : m) {
    if (IsDigit(c)) {
      if (digits == number.size()) return false;
      number[digits++] = c;
      ++group;
      continue;
    }
    // A separator: one kind throughout, between digit groups.
    if (sep != 0 && c != sep) return false;
    if (group == 0 || groups + 1 >= group_len.size()) return false;
    sep = c;
    group_len[groups++] = group;
    group = 0;
  }
  if (group == 0) return false;
  group_len[groups++] = group;
  if (groups > 1) {
    // Printed layouts: 4-4-4-4(-3), 4-6-5 (Amex), 4-6-4 / 4-4-4-2 (Diners), 4-4-4-1 ...
    if (group_len[0] != 4) return false;
    for (size_t i = 1; i + 1 < groups; ++i)
      if (group_len[i] != 4 && group_len[i] != 6) return false;
    if (group_len[groups - 1] > 5) return false;
  }
  bool length_ok = false;
  switch (number[0]) {
    case '4':  // Visa
      length_ok = digits == 13 || digits == 16 || digits == 19;
      break;
    case '3':  // Amex 15, Diners 14-19, JCB 16-19
      length_ok = digits >= 14 && digits <= 19;
      break;
    case '5':  // Mastercard 16, Maestro 16-19
    case '6':  // Discover, UnionPay, Maestro 16-19
      length_ok = digits >= 16 && digits <= 19;
      break;
    default:
      return false;
  }
  return length_ok && LuhnValid(std::string_view(number.data(), digits)) && NumericBoundary(v, s);
}

bool ValidateSsn(std::string_view v, Span s) {
  std::string_view m = v.substr(s.begin, s.end - s.begin);
  if (m.size() != 11 || m[3] != '-' || m[6] != '-') return false;
  auto num = [&](size_t at, size_t n) {
    int x = 0;
    for (size_t i = 0; i < n; ++i) {
      if (!IsDigit(m[at + i])) return -1;
      x = x * 10 + (m[at + i] - '0');
    }
    return x;
  };
  int area = num(0, 3), group = num(4, 2), serial = num(7, 4);
  if (area <= 0 || area == 666 || area >= 900) return false;
  if (group <= 0 || serial <= 0) return false;
  return NumericBoundary(v, s);
}

bool ValidateIban(std::string_view v, Span s) {
  std::string_view m = v.substr(s.begin, s.end - s.begin);
  std::array<char, 34> compact{};
  size_t n = 0, since_space = 0;
  bool spaced = false;
  for (size_t i = 0; i < m.size(); ++i) {
    char c = m[i];
    if (c == ' ') {
      // The print format puts one space after every group of four.
      if (since_space != 4) return false;
      spaced = true;
      since_space = 0;
      continue;
    }
    if (n == compact.size()) return false;
    compact[n++] = c;
    ++since_space;
  }
  if (spaced && since_space > 4) return false;
  std::string_view iban(compact.data(), n);
  if (n < 5 || IbanLength(iban.substr(0, 2)) != static_cast<int>(n)) return false;
  return IbanChecksumValid(iban) && TokenBoundary(v, s, IsAlnum);
}

bool ValidateEmail(std::string_view v, Span* s) {
  // The leftmost start may take in punctuation that cannot begin an address (".bob@x.io").
  while (s->begin < s->end && !IsAlnum(v[s->begin]) && v[s->begin] != '_') ++s->begin;
  std::string_view m = v.substr(s->begin, s->end - s->begin);
  size_t at = m.find('@');
  if (at == std::string_view::npos || at == 0 || at > 64 || m.size() > 254) return false;
  std::string_view local = m.substr(0, at), domain = m.substr(at + 1);
  if (local.back() == '.' || local.find("..") != std::string_view::npos) return false;
  size_t label_start = 0;
  std::string_view label;
  for (size_t i = 0; i <= domain.size(); ++i) {
    if (i < domain.size() && domain[i] != '.') continue;
    label = domain.substr(label_start, i - label_start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-')
      return false;
    label_start = i + 1;
  }
  if (label_start == 0 || label.size() < 2) return false;  // a dotted domain, a TLD of letters
  for (char c : label)
    if (!IsUpper(c) && !IsLower(c)) return false;
  // The pattern ends on letters; more letters or digits after them mean the TLD was cut.
  return s->end == v.size() || !(IsAlnum(v[s->end]) || v[s->end] == '-');
}

bool ValidatePhone(std::string_view v, Span s) {
  std::string_view m = v.substr(s.begin, s.end - s.begin);
  size_t digits = 0;
  int open = 0, close = 0;
  char first = 0;
  for (char c : m) {
    if (IsDigit(c)) {
      if (digits++ == 0) first = c;
    } else if (c == '(') {
      if (++open > 1 || close > 0) return false;
    } else if (c == ')') {
      if (++close > open) return false;
    }
  }
  if (open != close || digits < 8 || digits > 15 || first == '0') return false;
  if (s.begin > 0 && (IsAlnum(v[s.begin - 1]) || v[s.begin - 1] == '+')) return false;
  return NumericAfter(v, s.end);
}

bool ValidateAwsSecret(std::string_view v, Span* s) {
  if (s->end - s->begin < 40) return false;
  Span key{s->end - 40, s->end};
  bool upper = false, lower = false;
  for (size_t i = key.begin; i < key.end; ++i) {
    char c = v[i];
    if (!IsSecretKeyChar(c) && c != '=') return false;
    upper |= IsUpper(c);
    lower |= IsLower(c);
  }
  // '=' may end a key (padding) or precede it ("key=..."), never start one.
  if (v[key.begin] == '=') return false;
  if (key.begin > 0 && IsSecretKeyChar(v[key.begin - 1])) return false;
  if (key.end < v.size() && (IsSecretKeyChar(v[key.end]) || v[key.end] == '=')) return false;
  // Random base64 has both cases; hex digests and numbers do not.
  if (!upper || !lower) return false;
  *s = key;
  return true;
}

bool ValidateJwt(std::string_view v, Span s) {
  std::string_view m = v.substr(s.begin, s.end - s.begin);
  size_t dot = m.find('.');
  if (dot == std::string_view::npos || dot > 4096) return false;
  if (!TokenBoundary(v, s, [](char c) { return IsTokenChar(c); })) return false;
  thread_local std::string header;
  if (!Base64UrlDecode(m.substr(0, dot), &header)) return false;
  thread_local simdjson::dom::parser parser;
  simdjson::dom::object object;
  if (parser.parse(header.data(), header.size(), true).get(object) != simdjson::SUCCESS)
    return false;
  std::string_view alg;
  return object["alg"].get(alg) == simdjson::SUCCESS;
}

bool ValidatePem(std::string_view v, Span s) {
  std::string_view m = v.substr(s.begin, s.end - s.begin);
  constexpr std::string_view kBegin = "-----BEGIN ", kEnd = "-----END ", kDashes = "-----";
  if (m.substr(0, kBegin.size()) != kBegin) return false;
  size_t label_end = m.find(kDashes, kBegin.size());
  size_t end_at = m.rfind(kEnd);
  if (label_end == std::string_view::npos || end_at == std::string_view::npos ||
      end_at <= label_end || m.size() < end_at + kEnd.size() + kDashes.size())
    return false;
  std::string_view begin_label = m.substr(kBegin.size(), label_end - kBegin.size());
  std::string_view end_label =
      m.substr(end_at + kEnd.size(), m.size() - kDashes.size() - end_at - kEnd.size());
  return begin_label == end_label;
}

// The pattern ends just past the first dot after '@': walk back over the domain to '@' and over
// the local part, then forward once over the domain, remembering the last label boundary where
// the address is valid (a TLD of letters). Every walk is bounded by RFC 5321 lengths, so a
// value full of address characters costs linear time.
bool ExtractEmail(std::string_view v, size_t end, Span* s) {
  size_t at = end;
  while (at > 0 && IsDomainChar(v[at - 1])) {
    if (end - --at > 255) return false;
  }
  if (at == 0 || v[at - 1] != '@') return false;
  size_t begin = --at;
  while (begin > 0 && IsLocalChar(v[begin - 1])) {
    if (at - --begin > 80) return false;
  }
  // The leftmost local character may be punctuation that cannot begin an address (".bob@x.io").
  while (begin < at && !IsAlnum(v[begin]) && v[begin] != '_') ++begin;
  std::string_view local = v.substr(begin, at - begin);
  if (local.empty() || local.size() > 64 || local.back() == '.' ||
      local.find("..") != std::string_view::npos)
    return false;
  size_t best = 0, labels = 0, label_start = at + 1;
  bool letters = true;
  for (size_t i = at + 1; i <= v.size() && i - begin <= 254; ++i) {
    char c = i < v.size() ? v[i] : '\0';
    if (c != '.' && IsDomainChar(c)) {
      letters = letters && (IsUpper(c) || IsLower(c));
      continue;
    }
    size_t n = i - label_start;
    if (n == 0 || n > 63 || v[label_start] == '-' || v[i - 1] == '-') break;  // and any longer
    if (++labels >= 2 && letters && n >= 2) best = i;
    if (c != '.') break;
    label_start = i + 1;
    letters = true;
  }
  if (best == 0) return false;
  *s = Span{begin, best};
  return true;
}

// Tries the spans [begin, ends[k]) longest first; the first that `valid` accepts wins.
template <typename Valid>
bool LongestValid(std::string_view v, size_t begin, const size_t* ends, size_t n, Valid valid,
                  Span* s) {
  for (size_t k = n; k-- > 0;) {
    Span candidate{begin, ends[k]};
    if (valid(v, candidate)) {
      *s = candidate;
      return true;
    }
  }
  return false;
}

// The pattern is '+' and the first eight digits: walk back to the '+', then forward over up to
// 15 digits (at most two separators between two digits), longest valid number first.
bool ExtractPhone(std::string_view v, size_t end, Span* s) {
  size_t plus = end;
  while (plus > 0 && v[plus - 1] != '+') {
    if (!IsPhoneChar(v[plus - 1]) || end - plus > 24) return false;
    --plus;
  }
  if (plus == 0) return false;
  size_t begin = plus - 1;
  std::array<size_t, 8> ends{};  // after the 8th .. 15th digit
  size_t n = 0, digits = 0, separators = 0;
  for (size_t i = plus; i < v.size() && digits < 15; ++i) {
    char c = v[i];
    if (IsDigit(c)) {
      separators = 0;
      if (++digits >= 8) ends[n++] = i + 1;
    } else if (!IsPhoneChar(c) || ++separators > 2) {
      break;
    }
  }
  return LongestValid(v, begin, ends.data(), n, ValidatePhone, s);
}

bool ExtractSsn(std::string_view v, size_t end, Span* s) {
  if (end < 11) return false;
  *s = Span{end - 11, end};
  return ValidateSsn(v, *s);
}

// The pattern is a card's first eight digits ([3-6]ddd, an optional separator, dddd). From its
// start, read up to 19 digits with single separators and try the lengths that can be a card,
// longest first: "4111 1111 1111 1111 2024" is a card followed by a year.
bool ExtractCard(std::string_view v, size_t end, Span* s) {
  if (end < 8) return false;
  size_t begin = end >= 9 && (v[end - 5] == ' ' || v[end - 5] == '-') ? end - 9 : end - 8;
  if (!NumericBefore(v, begin)) return false;
  std::array<size_t, 7> ends{};  // after the 13th .. 19th digit
  size_t n = 0, digits = 0;
  for (size_t i = begin; i < v.size() && digits < 19;) {
    char c = v[i];
    if (IsDigit(c)) {
      ++i;
      if (++digits >= 13) ends[n++] = i;
    } else if ((c == ' ' || c == '-') && i + 1 < v.size() && IsDigit(v[i + 1])) {
      ++i;
    } else {
      break;
    }
  }
  return LongestValid(v, begin, ends.data(), n, ValidateCard, s);
}

// The pattern is an IBAN's first eight characters (country, check digits, an optional space,
// four more). The country fixes the length, so there is one candidate to read and check.
bool ExtractIban(std::string_view v, size_t end, Span* s) {
  if (end < 8) return false;
  size_t begin = end >= 9 && v[end - 5] == ' ' ? end - 9 : end - 8;
  auto length = static_cast<size_t>(IbanLength(v.substr(begin, 2)));
  if (length == 0) return false;
  size_t n = 0, i = begin;
  while (i < v.size() && n < length) {
    char c = v[i];
    if (IsUpper(c) || IsDigit(c)) {
      ++n;
    } else if (c != ' ' || n % 4 != 0) {
      return false;
    }
    ++i;
  }
  if (n != length) return false;
  *s = Span{begin, i};
  return ValidateIban(v, *s);
}

// ISO 13616 IBAN lengths by country (SWIFT IBAN registry).
struct IbanCountry {
  char code[3];
  uint8_t length;
};
constexpr IbanCountry kIbanCountries[] = {
    {"AD", 24}, {"AE", 23}, {"AL", 28}, {"AT", 20}, {"AZ", 28}, {"BA", 20}, {"BE", 16}, {"BG", 22},
    {"BH", 22}, {"BI", 27}, {"BR", 29}, {"BY", 28}, {"CH", 21}, {"CR", 22}, {"CY", 28}, {"CZ", 24},
    {"DE", 22}, {"DJ", 27}, {"DK", 18}, {"DO", 28}, {"EE", 20}, {"EG", 29}, {"ES", 24}, {"FI", 18},
    {"FK", 18}, {"FO", 18}, {"FR", 27}, {"GB", 22}, {"GE", 22}, {"GI", 23}, {"GL", 18}, {"GR", 27},
    {"GT", 28}, {"HR", 21}, {"HU", 28}, {"IE", 22}, {"IL", 23}, {"IQ", 23}, {"IS", 26}, {"IT", 27},
    {"JO", 30}, {"KW", 30}, {"KZ", 20}, {"LB", 28}, {"LC", 32}, {"LI", 21}, {"LT", 20}, {"LU", 20},
    {"LV", 21}, {"LY", 25}, {"MC", 27}, {"MD", 24}, {"ME", 22}, {"MK", 19}, {"MN", 20}, {"MR", 27},
    {"MT", 31}, {"MU", 30}, {"NI", 28}, {"NL", 18}, {"NO", 15}, {"OM", 23}, {"PK", 24}, {"PL", 28},
    {"PS", 29}, {"PT", 25}, {"QA", 29}, {"RO", 24}, {"RS", 22}, {"RU", 33}, {"SA", 24}, {"SC", 31},
    {"SD", 18}, {"SE", 24}, {"SI", 19}, {"SK", 24}, {"SM", 27}, {"SO", 23}, {"ST", 25}, {"SV", 28},
    {"TL", 23}, {"TN", 24}, {"TR", 26}, {"UA", 29}, {"VA", 22}, {"VG", 24}, {"XK", 20}, {"YE", 30},
};

}  // namespace

bool LuhnValid(std::string_view digits) {
  if (digits.empty()) return false;
  int sum = 0;
  bool twice = false;
  for (size_t i = digits.size(); i-- > 0;) {
    if (!IsDigit(digits[i])) return false;
    int d = digits[i] - '0';
    if (twice) d = d * 2 > 9 ? d * 2 - 9 : d * 2;
    sum += d;
    twice = !twice;
  }
  return sum % 10 == 0;
}

int IbanLength(std::string_view country) {
  for (const IbanCountry& c : kIbanCountries)
    if (country == std::string_view(c.code, 2)) return c.length;
  return 0;
}

bool IbanChecksumValid(std::string_view iban) {
  if (iban.size() < 5) return false;
  if (!IsDigit(iban[2]) || !IsDigit(iban[3])) return false;
  // Move the country and check digits to the end, letters count as 10..35, then mod 97.
  uint32_t rem = 0;
  for (size_t k = 0; k < iban.size(); ++k) {
    char c = iban[(k + 4) % iban.size()];
    if (IsDigit(c)) {
      rem = (rem * 10 + static_cast<uint32_t>(c - '0')) % 97;
    } else if (IsUpper(c)) {
      rem = (rem * 100 + static_cast<uint32_t>(c - 'A' + 10)) % 97;
    } else {
      return false;
    }
  }
  return rem == 1;
}

bool Base64UrlDecode(std::string_view in, std::string* out) {
  out->clear();
  while (!in.empty() && in.back() == '=') in.remove_suffix(1);
  if (in.size() % 4 == 1) return false;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    uint32_t x;
    if (IsUpper(c)) {
      x = static_cast<uint32_t>(c - 'A');
    } else if (IsLower(c)) {
      x = static_cast<uint32_t>(c - 'a' + 26);
    } else if (IsDigit(c)) {
      x = static_cast<uint32_t>(c - '0' + 52);
    } else if (c == '-') {
      x = 62;
    } else if (c == '_') {
      x = 63;
    } else {
      return false;
    }
    acc = (acc << 6) | x;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return true;
}

bool Validate(Detector detector, std::string_view value, Span* span) {
  if (span->begin >= span->end || span->end > value.size()) return false;
  switch (detector) {
    case Detector::kEmail:
      return ValidateEmail(value, span);
    case Detector::kPaymentCard:
      return ValidateCard(value, *span);
    case Detector::kUsSsn:
      return ValidateSsn(value, *span);
    case Detector::kIban:
      return ValidateIban(value, *span);
    case Detector::kPhone:
      return ValidatePhone(value, *span);
    case Detector::kAwsAccessKeyId:
      return TokenBoundary(value, *span, IsAlnum);
    case Detector::kAwsSecretKey:
      return ValidateAwsSecret(value, span);
    case Detector::kGithubToken:
      return TokenBoundary(value, *span, IsWord);
    case Detector::kGitlabToken:
      return TokenBoundary(value, *span, IsTokenChar);
    case Detector::kSlackToken: {
      std::string_view m = value.substr(span->begin, span->end - span->begin);
      bool digit = false;
      for (char c : m.substr(5)) digit |= IsDigit(c);
      return digit && m.size() <= 255 && TokenBoundary(value, *span, IsTokenChar);
    }
    case Detector::kJwt:
      return ValidateJwt(value, *span);
    case Detector::kPemPrivateKey:
      return ValidatePem(value, *span);
    case Detector::kCustom:
      return true;
  }
  return false;
}

bool EveryEndIsACandidate(Detector detector) {
  return detector == Detector::kAwsSecretKey;
}

const char* BuiltinPattern(Detector detector) {
  switch (detector) {
    // Without start-of-match: ExtractAt finds the start.
    case Detector::kEmail:  // a local-part character, '@', a label, '.', one more character
      return R"([A-Za-z0-9._%+\-]@[A-Za-z0-9\-]+\.[A-Za-z0-9])";
    case Detector::kPaymentCard:  // a card's first eight digits
      return R"([3-6][0-9]{3}[ \-]?[0-9]{4})";
    case Detector::kUsSsn:
      return R"([0-9]{3}-[0-9]{2}-[0-9]{4})";
    case Detector::kIban:  // country, check digits, then four characters
      return R"([A-Z]{2}[0-9]{2} ?[A-Z0-9]{4})";
    case Detector::kPhone:  // '+' and the first eight digits, up to two of " .-()" between
      return R"(\+[ (]?[0-9](?:[ .()\-]{0,2}[0-9]){7})";
    // With start-of-match: each begins with a literal.
    case Detector::kAwsAccessKeyId:
      return R"((?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16})";
    case Detector::kAwsSecretKey:  // the hint, up to 30 bytes, the key (Validate narrows)
      return R"((?i:aws|secret_access_key)[^\x00]{0,30}[A-Za-z0-9/+=]{40})";
    case Detector::kGithubToken:
      return R"(gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{82})";
    case Detector::kGitlabToken:
      return R"(glpat-[A-Za-z0-9_\-]{20,})";
    case Detector::kSlackToken:
      return R"(xox[abposr]-[A-Za-z0-9\-]{10,})";
    case Detector::kJwt:  // base64url of '{"' is "eyJ"/"eyI", of '{ ' "eyA", of '{\n' "ewo"
      return R"((?:ey[IJA]|ew[o0])[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{2,}\.[A-Za-z0-9_\-]*)";
    case Detector::kPemPrivateKey:
      // The body never holds five dashes in a row, so one match cannot run into the next key.
      return R"(-----BEGIN [A-Z ]*PRIVATE KEY-----(?:[A-Za-z0-9+/=\r\n\t :,.]|-{1,4}[A-Za-z0-9+/=\r\n\t :,.])*-----END [A-Z ]*PRIVATE KEY-----)";
    case Detector::kCustom:
      break;
  }
  return nullptr;
}

bool UsesStartOfMatch(Detector detector) {
  switch (detector) {
    case Detector::kEmail:
    case Detector::kPaymentCard:
    case Detector::kUsSsn:
    case Detector::kIban:
    case Detector::kPhone:
      return false;
    default:
      return true;
  }
}

bool ExtractAt(Detector detector, std::string_view value, size_t end, Span* span) {
  if (end > value.size()) return false;
  switch (detector) {
    case Detector::kEmail:
      return ExtractEmail(value, end, span);
    case Detector::kPaymentCard:
      return ExtractCard(value, end, span);
    case Detector::kUsSsn:
      return ExtractSsn(value, end, span);
    case Detector::kIban:
      return ExtractIban(value, end, span);
    case Detector::kPhone:
      return ExtractPhone(value, end, span);
    default:
      return false;
  }
}

size_t EmailDomainAt(std::string_view value) {
  // The local part is hidden whatever it holds; only the domain that stays visible is checked.
  constexpr size_t kNo = std::string_view::npos;
  if (value.size() < 5 || value.size() > 320) return kNo;
  const void* found = memrchr(value.data(), '@', value.size());  // glibc's vectorised search
  if (found == nullptr) return kNo;
  size_t at = static_cast<size_t>(static_cast<const char*>(found) - value.data());
  if (at == 0 || at > 64) return kNo;
  size_t last_dot = 0;
  for (size_t i = at + 1; i < value.size(); ++i) {
    char c = value[i];
    if (!Has(c, kDomain)) return kNo;  // letters, digits, '-' and '.'
    if (c == '.') {
      if (i == at + 1 || value[i - 1] == '.') return kNo;
      last_dot = i;
    }
  }
  if (last_dot == 0 || value.size() - last_dot < 3) return kNo;
  for (size_t i = last_dot + 1; i < value.size(); ++i)
    if (!Has(value[i], kUpper | kLower)) return kNo;
  return at;
}

void AppendCanonical(Detector detector, std::string_view match, std::string* out) {
  switch (detector) {
    case Detector::kPaymentCard:
    case Detector::kIban:
    case Detector::kPhone:
      for (char c : match)
        if (IsAlnum(c) || c == '+') out->push_back(c);
      return;
    default:
      out->append(match);
  }
}

}  // namespace dbw::masking::internal
