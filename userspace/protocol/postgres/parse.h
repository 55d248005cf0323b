// Pure parsers for PostgreSQL v3 frames and message bodies: bytes in, typed views out.
#pragma once

#include <span>
#include <string>

#include "userspace/protocol/postgres/types.h"

namespace dbw::pg {

// The declared maximum `length` field for a message type in a direction, or 0 when the type
// byte is not a valid message in that direction.
uint32_t MaxMessageLength(Direction dir, uint8_t type);
// Exact length for fixed-size messages (Sync, ReadyForQuery, ...), else 0.
uint32_t FixedMessageLength(Direction dir, uint8_t type);
// A readable name ("Query", "DataRow"), or "Unknown".
const char* MessageName(Direction dir, uint8_t type);

// Reads one frame's header from the front of `in` without consuming. kOk fills type and length
// (not body). kInvalid sets *error. `startup` selects the untyped startup-packet format.
ParseState PeekHeader(Direction dir, bool startup, std::span<const std::byte> in, Frame* out,
                      std::string* error);

// Parses one whole frame from the front of `*in`. On kOk advances `*in` past it; on
// kNeedMoreData or kInvalid leaves `*in` untouched.
ParseState ParseFrame(Direction dir, bool startup, std::span<const std::byte>* in, Frame* out,
                      std::string* error);

// Body parsers. Each returns false (and sets *error) unless the body is exactly one
// well-formed message of that type, with no trailing bytes.
bool ParseStartupPacket(std::span<const std::byte> body, StartupPacket* out, std::string* error);
bool ParseQuery(std::span<const std::byte> body, QueryMessage* out, std::string* error);
bool ParseParse(std::span<const std::byte> body, ParseMessage* out, std::string* error);
bool ParseBind(std::span<const std::byte> body, BindMessage* out, std::string* error);
bool ParseDescribe(std::span<const std::byte> body, DescribeMessage* out, std::string* error);
// Any typed frontend message, whole, into its typed value (Sync, Flush, Terminate, CopyData,
// CopyDone and the password family carry nothing to decode here).
bool ParseFrontend(const Frame& frame, FrontendMessage* out, std::string* error);
bool ParseClose(std::span<const std::byte> body, CloseMessage* out, std::string* error);
bool ParseExecute(std::span<const std::byte> body, ExecuteMessage* out, std::string* error);
bool ParseCopyFail(std::span<const std::byte> body, CopyFailMessage* out, std::string* error);
bool ParseFunctionCall(std::span<const std::byte> body, FunctionCallMessage* out,
                       std::string* error);
bool ParseSaslInitialResponse(std::span<const std::byte> body, SaslInitialResponse* out,
                              std::string* error);
bool ParsePasswordMessage(std::span<const std::byte> body, std::string_view* password,
                          std::string* error);

bool ParseAuthentication(std::span<const std::byte> body, AuthenticationMessage* out,
                         std::string* error);
// The mechanism list of an AuthenticationSASL message's data.
bool ParseSaslMechanisms(std::span<const std::byte> data, std::vector<std::string_view>* out,
                         std::string* error);
bool ParseParameterStatus(std::span<const std::byte> body, ParameterStatusMessage* out,
                          std::string* error);
bool ParseBackendKeyData(std::span<const std::byte> body, BackendKeyData* out, std::string* error);
bool ParseReadyForQuery(std::span<const std::byte> body, ReadyForQueryMessage* out,
                        std::string* error);
bool ParseRowDescription(std::span<const std::byte> body, RowDescriptionMessage* out,
                         std::string* error);
bool ParseDataRow(std::span<const std::byte> body, DataRowMessage* out, std::string* error);
bool ParseCommandComplete(std::span<const std::byte> body, CommandCompleteMessage* out,
                          std::string* error);
bool ParseErrorOrNotice(std::span<const std::byte> body, ErrorMessage* out, std::string* error);
bool ParseParameterDescription(std::span<const std::byte> body, ParameterDescriptionMessage* out,
                               std::string* error);
bool ParseCopyResponse(std::span<const std::byte> body, CopyResponseMessage* out,
                       std::string* error);
bool ParseNotification(std::span<const std::byte> body, NotificationMessage* out,
                       std::string* error);
bool ParseNegotiateProtocolVersion(std::span<const std::byte> body,
                                   NegotiateProtocolVersionMessage* out, std::string* error);
bool ParseFunctionCallResponse(std::span<const std::byte> body, FunctionCallResponseMessage* out,
                               std::string* error);

// Runs the body parser for `frame.type` in `dir`. Password-family ('p') bodies are checked
// only for framing because their meaning depends on the authentication exchange.
bool ValidateMessage(Direction dir, const Frame& frame, std::string* error);

// Number of rows in a "SELECT n" / "INSERT 0 n" / "UPDATE n"... command tag, if it has one.
std::optional<uint64_t> RowsFromCommandTag(std::string_view tag);

}  // namespace dbw::pg
