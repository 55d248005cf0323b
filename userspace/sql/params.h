// Parameters and their values: what a prepared statement becomes once its `$n` are bound. The
// gate judges `EXECUTE name(args)` and a protocol Bind by substituting the values (or argument
// expressions) into the prepared text and analysing the result; the server still runs the
// statement as prepared. Lexing follows lexer.h, i.e. standard_conforming_strings = on: callers
// substitute only under that setting.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dbw::sql {

// `text` with every parameter `$n` (outside literals and comments) whose value is known —
// `values[n-1]` non-empty — replaced by that value in parentheses; unknown ones stay `$n`, which
// the analysis judges at their worst. Nullopt when the text ends inside a literal or comment.
std::optional<std::string> SubstituteParams(std::string_view text,
                                            const std::vector<std::string>& values);

// A bound value as SQL text. Text that reads as a decimal number (`-5`, `+1.5e3`) becomes that
// number (without a `+`) when the parameter's type is not a string type (`string_type`);
// anything else a string literal with its quotes doubled.
std::string BoundLiteral(std::string_view value, bool string_type);

// The argument expressions of `EXECUTE name (a, b, ...)` at the end of `statement` (a top-level
// EXECUTE, or one inside EXPLAIN or CREATE TABLE AS), as written. Nullopt when they cannot be
// told apart; empty when there are none.
std::optional<std::vector<std::string>> ExecuteArguments(std::string_view statement);

// The statement a `PREPARE name [(types)] AS statement` prepares, as written.
std::optional<std::string_view> PreparedText(std::string_view statement);

}  // namespace dbw::sql
