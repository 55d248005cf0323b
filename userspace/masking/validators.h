// The built-in patterns and the checks that turn a Hyperscan report into a detection: checksums
// (Luhn, ISO 7064 mod 97), valid ranges, token boundaries, structure. Private to the module.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "userspace/masking/detectors.h"

namespace dbw::masking::internal {

// A candidate span inside one value, [begin, end) in bytes. A validator may narrow it (an
// AWS secret key is found by its hint but only the key itself is masked).
struct Span {
  size_t begin = 0;
  size_t end = 0;
};

// The built-in Hyperscan pattern of a detector (null for kCustom). None of them can match the
// 0x00 byte that separates a row's values.
const char* BuiltinPattern(Detector detector);

// Whether the detector's pattern is compiled with HS_FLAG_SOM_LEFTMOST. Start-of-match tracking
// is cheap behind a literal prefix (tokens, keys) but costs several times the scan for patterns
// that begin with a character class (emails, cards, IBANs, phone numbers, SSNs). Those report
// only where a match ends, and ExtractAt recovers the candidate around that end.
bool UsesStartOfMatch(Detector detector);

// True when the whole candidate `span` of `value` is a real match (how start-of-match reports
// are checked); may narrow *span (an AWS secret key is found with its hint, but only the key is
// masked). kCustom has no validator and always passes.
bool Validate(Detector detector, std::string_view value, Span* span);
// Whether every end offset of one start is a candidate of its own (the span is narrowed to a
// suffix of the match, so the longest match is not the only interesting one).
bool EveryEndIsACandidate(Detector detector);

// Detectors without start-of-match: the validated candidate whose pattern match ends at `end`
// in `value`, or false.
bool ExtractAt(Detector detector, std::string_view value, size_t end, Span* span);

// Where the '@' is when the whole of `value` is an email address (partial masking then keeps
// the domain), else npos.
size_t EmailDomainAt(std::string_view value);

// Appends the form of a matched value that hashes the same however it was written (cards,
// IBANs and phone numbers without their separators), so kHash stays stable for joins.
void AppendCanonical(Detector detector, std::string_view match, std::string* out);

// Exposed for tests.
bool LuhnValid(std::string_view digits);
bool IbanChecksumValid(std::string_view compact);  // no spaces, uppercase
int IbanLength(std::string_view country);          // 0: not an IBAN country
bool Base64UrlDecode(std::string_view in, std::string* out);

}  // namespace dbw::masking::internal
