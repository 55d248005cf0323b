// Client encodings: reading a statement's bytes as the server will, after it converts them from
// the session's client_encoding, before any analysis.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "userspace/common/status.h"

namespace dbw::sql {

// PostgreSQL's client-only encodings (SJIS, SHIFT_JIS_2004, BIG5, GBK, UHC, GB18030, JOHAB):
// the second byte of a character can be an ASCII byte such as a backslash or a quote, so the
// same bytes split into different tokens than they would read as UTF-8.
bool IsClientOnlyEncoding(std::string_view encoding);
// Their names, as the server reports them.
std::vector<std::string_view> ClientOnlyEncodings();

// True when nothing needs converting: the encoding is UTF8 or SQL_ASCII (the server passes bytes
// through), or the text is plain ASCII, which every PostgreSQL encoding reads alike.
bool ReadsAsIs(std::string_view text, std::string_view encoding);

// The text as the server's lexer will see it, in UTF-8: characters are delimited by
// PostgreSQL's own rules for the encoding (pg_wchar.c's mblen), then converted. Bytes that are
// not valid in the encoding are an error, as they are for the server, which refuses the message.
// `encoding` is the name the server reports in ParameterStatus (e.g. "SJIS", "LATIN1").
StatusOr<std::string> ToServerText(std::string_view text, std::string_view encoding);

// True when `text` (valid in `encoding`) would split into other characters in some client-only
// encoding: a byte at or above 0x80 followed there by an ASCII byte it would swallow. Used while
// a change of client_encoding may still be in flight.
bool MayReadDifferentlyInClientOnlyEncoding(std::string_view text);

}  // namespace dbw::sql
