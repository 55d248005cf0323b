// Statement shapes: the literal-blind key the analyzer cache is indexed by, the canonical form
// that verifies a cache hit, and literal scrubbing for text that goes to the audit log.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace dbw::sql {

// Writes the canonical token stream of `sql` into `out` (cleared first; its capacity is reused)
// and returns the same value as ShapeKey(sql). Two texts have equal canonical forms exactly
// when they differ only in literal values, whitespace and comments.
uint64_t CanonicalShape(std::string_view sql, std::string* out);

// Renders `sql` with comments removed, whitespace runs collapsed to one space, and every
// literal replaced: numbers and strings by "$<n>" with n counting up from `first_param`
// (ScrubStyle::kParams), or strings by '?' and numbers by ? (ScrubStyle::kQuestionMarks).
enum class ScrubStyle { kParams, kQuestionMarks };
std::string ScrubLiterals(std::string_view sql, ScrubStyle style, int first_param = 1);

// `sql` with comments removed, whitespace runs collapsed to one space (none at either end),
// unquoted words (keywords, identifiers) folded to lower case as PostgreSQL folds them, and
// literals and quoted names kept exactly as written: two texts are equal when they are the same
// statement with the same literal values, however formatted and capitalised. Approvals bind to it.
std::string CanonicalText(std::string_view sql);

// The highest $n parameter number written in `sql` outside literals and comments (0 if none).
int MaxParamNumber(std::string_view sql);

}  // namespace dbw::sql
