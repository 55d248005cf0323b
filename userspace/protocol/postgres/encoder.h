// Encoders for the messages dbwarden synthesises (errors, notices, results, startup packets).
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "userspace/protocol/postgres/types.h"

namespace dbw::pg {

using Bytes = std::vector<std::byte>;

struct ErrorFields {
  std::string_view severity = "ERROR";  // ERROR, FATAL, PANIC / NOTICE, WARNING, INFO ...
  std::string_view sqlstate;
  std::string_view message;
  std::string_view detail;
  std::string_view hint;
};

// A parsed frame's bytes as they were on the wire (type, length, body).
void AppendFrame(Bytes* out, const Frame& frame);

// Backend messages.
void AppendErrorResponse(Bytes* out, const ErrorFields& fields);
void AppendNoticeResponse(Bytes* out, const ErrorFields& fields);
void AppendReadyForQuery(Bytes* out, uint8_t status);
void AppendCommandComplete(Bytes* out, std::string_view tag);
void AppendEmptyQueryResponse(Bytes* out);
void AppendRowDescription(Bytes* out, std::span<const FieldDescription> fields);
void AppendDataRow(Bytes* out, std::span<const std::optional<std::span<const std::byte>>> values);
void AppendBackendKeyData(Bytes* out, const BackendKeyData& key);
void AppendAuthenticationSasl(Bytes* out, std::span<const std::string_view> mechanisms);
void AppendParameterStatus(Bytes* out, std::string_view name, std::string_view value);
void AppendAuthenticationRequest(Bytes* out, AuthCode code);  // no payload (Ok, Cleartext)

// Frontend messages.
void AppendStartupMessage(Bytes* out, const StartupMessage& message);
void AppendSslRequest(Bytes* out);
void AppendCancelRequest(Bytes* out, const CancelRequest& cancel);
void AppendQuery(Bytes* out, std::string_view sql);
// `param_types`: the declared parameter type OIDs (0: unspecified); at most 65535.
void AppendParse(Bytes* out, std::string_view name, std::string_view sql,
                 std::span<const uint32_t> param_types = {});
// A FunctionCall without arguments (the relay's stand-in for a refused one uses OID 0).
void AppendFunctionCall(Bytes* out, uint32_t function_oid);
void AppendTerminate(Bytes* out);
void AppendSync(Bytes* out);
// Extended protocol without parameters, text results (the relay's own statements).
void AppendBind(Bytes* out, std::string_view portal, std::string_view statement);
// A Bind that the server always rejects with an ERROR before it binds or evaluates anything
// (two parameter format codes for zero parameters): what a refused Bind is replaced by.
void AppendRejectedBind(Bytes* out, std::string_view portal, std::string_view statement);
void AppendExecute(Bytes* out, std::string_view portal, uint32_t max_rows = 0);
void AppendClose(Bytes* out, uint8_t kind, std::string_view name);  // kind 'S' or 'P'
void AppendFlush(Bytes* out);
void AppendSaslInitialResponse(Bytes* out, std::string_view mechanism, std::string_view data);
void AppendSaslResponse(Bytes* out, std::string_view data);
void AppendPasswordMessage(Bytes* out, std::string_view password);  // cleartext or md5 hash

}  // namespace dbw::pg
