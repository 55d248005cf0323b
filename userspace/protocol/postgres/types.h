// PostgreSQL v3 wire protocol: message type bytes, protocol codes, size limits and field views.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

namespace dbw::pg {

enum class Direction : uint8_t { kFrontend, kBackend };

// Frontend (client -> server) message type bytes.
namespace fe {
inline constexpr uint8_t kBind = 'B';
inline constexpr uint8_t kClose = 'C';
inline constexpr uint8_t kCopyData = 'd';
inline constexpr uint8_t kCopyDone = 'c';
inline constexpr uint8_t kCopyFail = 'f';
inline constexpr uint8_t kDescribe = 'D';
inline constexpr uint8_t kExecute = 'E';
inline constexpr uint8_t kFlush = 'H';
inline constexpr uint8_t kFunctionCall = 'F';
inline constexpr uint8_t kParse = 'P';
inline constexpr uint8_t kPassword = 'p';  // also SASLInitialResponse, SASLResponse, GSSResponse
inline constexpr uint8_t kQuery = 'Q';
inline constexpr uint8_t kSync = 'S';
inline constexpr uint8_t kTerminate = 'X';
}  // namespace fe

// Backend (server -> client) message type bytes.
namespace be {
inline constexpr uint8_t kAuthentication = 'R';
inline constexpr uint8_t kBackendKeyData = 'K';
inline constexpr uint8_t kBindComplete = '2';
inline constexpr uint8_t kCloseComplete = '3';
inline constexpr uint8_t kCommandComplete = 'C';
inline constexpr uint8_t kCopyBothResponse = 'W';
inline constexpr uint8_t kCopyData = 'd';
inline constexpr uint8_t kCopyDone = 'c';
inline constexpr uint8_t kCopyInResponse = 'G';
inline constexpr uint8_t kCopyOutResponse = 'H';
inline constexpr uint8_t kDataRow = 'D';
inline constexpr uint8_t kEmptyQueryResponse = 'I';
inline constexpr uint8_t kErrorResponse = 'E';
inline constexpr uint8_t kFunctionCallResponse = 'V';
inline constexpr uint8_t kNegotiateProtocolVersion = 'v';
inline constexpr uint8_t kNoData = 'n';
inline constexpr uint8_t kNoticeResponse = 'N';
inline constexpr uint8_t kNotificationResponse = 'A';
inline constexpr uint8_t kParameterDescription = 't';
inline constexpr uint8_t kParameterStatus = 'S';
inline constexpr uint8_t kParseComplete = '1';
inline constexpr uint8_t kPortalSuspended = 's';
inline constexpr uint8_t kReadyForQuery = 'Z';
inline constexpr uint8_t kRowDescription = 'T';
}  // namespace be

inline constexpr uint32_t kProtocolV3 = 196608;  // 3.0
inline constexpr uint32_t kCancelRequestCode = 80877102;
inline constexpr uint32_t kSslRequestCode = 80877103;
inline constexpr uint32_t kGssEncRequestCode = 80877104;

// Authentication request codes carried in 'R' messages.
enum class AuthCode : uint32_t {
  kOk = 0,
  kKerberosV5 = 2,
  kCleartextPassword = 3,
  kMd5Password = 5,
  kGss = 7,
  kGssContinue = 8,
  kSspi = 9,
  kSasl = 10,
  kSaslContinue = 11,
  kSaslFinal = 12,
};

// Size limits, as PostgreSQL's own backend enforces them (pqcomm.h / postmaster.c).
inline constexpr uint32_t kMaxStartupPacket = 10000;      // MAX_STARTUP_PACKET_LENGTH
inline constexpr uint32_t kMaxSmallMessage = 10000;       // PQ_SMALL_MESSAGE_LIMIT
inline constexpr uint32_t kMaxLargeMessage = 0x3fffffff;  // PQ_LARGE_MESSAGE_LIMIT (1 GiB - 1)

// One framed message. For startup-phase packets `type` is 0. `length` is the value of the
// length field, which counts itself but not the type byte.
struct Frame {
  uint8_t type = 0;
  uint32_t length = 0;
  std::span<const std::byte> body;  // length - 4 bytes
  size_t WireSize() const { return (type != 0 ? 1u : 0u) + length; }
};

enum class ParseState { kOk, kNeedMoreData, kInvalid };

// ---- Typed views. They point into the parsed buffer and live no longer than it. ----

struct StartupMessage {
  uint32_t protocol = 0;
  std::vector<std::pair<std::string_view, std::string_view>> params;
  std::string_view Param(std::string_view name) const {
    for (const auto& [k, v] : params)
      if (k == name) return v;
    return {};
  }
};
struct CancelRequest {
  uint32_t pid = 0;
  uint32_t key = 0;
};
enum class StartupKind { kStartup, kSslRequest, kGssEncRequest, kCancel };
struct StartupPacket {
  StartupKind kind = StartupKind::kStartup;
  StartupMessage startup;  // kStartup
  CancelRequest cancel;    // kCancel
};

struct QueryMessage {
  std::string_view sql;
};
struct ParseMessage {
  std::string_view name;
  std::string_view sql;
  std::vector<uint32_t> param_types;
};
struct BindMessage {
  std::string_view portal;
  std::string_view statement;
  std::vector<int16_t> param_formats;
  std::vector<std::optional<std::span<const std::byte>>> params;  // nullopt = SQL NULL
  std::vector<int16_t> result_formats;
};
struct DescribeMessage {
  uint8_t kind = 0;  // 'S' statement, 'P' portal
  std::string_view name;
};
using CloseMessage = DescribeMessage;
struct ExecuteMessage {
  std::string_view portal;
  uint32_t max_rows = 0;
};
struct CopyFailMessage {
  std::string_view message;
};
struct FunctionCallMessage {
  uint32_t function_oid = 0;
  std::vector<int16_t> arg_formats;
  std::vector<std::optional<std::span<const std::byte>>> args;
  int16_t result_format = 0;
};
// A typed (non-startup) frontend message decoded once, for every later step to read. Only the
// member of `type` is set; the others keep their capacity, so one value reused per session makes
// decoding allocation-free in the steady state.
struct FrontendMessage {
  uint8_t type = 0;
  QueryMessage query;                 // 'Q'
  ParseMessage parse;                 // 'P'
  BindMessage bind;                   // 'B'
  DescribeMessage describe;           // 'D', and 'C' (Close has the same fields)
  ExecuteMessage execute;             // 'E'
  FunctionCallMessage function_call;  // 'F'
  CopyFailMessage copy_fail;          // 'f'
};

struct SaslInitialResponse {
  std::string_view mechanism;
  std::optional<std::span<const std::byte>> data;
};

struct AuthenticationMessage {
  AuthCode code = AuthCode::kOk;
  std::span<const std::byte> data;  // salt, SASL mechanisms or SASL data
};
struct ParameterStatusMessage {
  std::string_view name;
  std::string_view value;
};
struct BackendKeyData {
  uint32_t pid = 0;
  uint32_t key = 0;
};
struct ReadyForQueryMessage {
  uint8_t status = 'I';  // 'I' idle, 'T' in transaction, 'E' failed transaction
};
struct FieldDescription {
  std::string_view name;
  uint32_t table_oid = 0;
  int16_t column = 0;
  uint32_t type_oid = 0;
  int16_t type_size = 0;
  int32_t type_modifier = 0;
  int16_t format = 0;
};
struct RowDescriptionMessage {
  std::vector<FieldDescription> fields;
};
struct DataRowMessage {
  std::vector<std::optional<std::span<const std::byte>>> values;
};
struct CommandCompleteMessage {
  std::string_view tag;
};
// ErrorResponse and NoticeResponse.
struct ErrorField {
  uint8_t code = 0;  // 'S', 'V', 'C', 'M', 'D', 'H', ...
  std::string_view value;
};
struct ErrorMessage {
  std::vector<ErrorField> fields;
  std::string_view Field(uint8_t code) const {
    for (const auto& f : fields)
      if (f.code == code) return f.value;
    return {};
  }
};
struct ParameterDescriptionMessage {
  std::vector<uint32_t> types;
};
struct CopyResponseMessage {
  uint8_t format = 0;
  std::vector<int16_t> column_formats;
};
struct NotificationMessage {
  uint32_t pid = 0;
  std::string_view channel;
  std::string_view payload;
};
struct NegotiateProtocolVersionMessage {
  uint32_t newest_minor = 0;
  std::vector<std::string_view> unrecognized;
};
struct FunctionCallResponseMessage {
  std::optional<std::span<const std::byte>> value;
};

}  // namespace dbw::pg
