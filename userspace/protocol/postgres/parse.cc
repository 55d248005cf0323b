// Pure parsers for PostgreSQL v3 frames and message bodies.
#include "userspace/protocol/postgres/parse.h"

#include <charconv>

#include "userspace/common/byte_reader.h"

namespace dbw::pg {
namespace {

bool Fail(std::string* error, const char* what) {
  if (error != nullptr) *error = what;
  return false;
}

bool Done(const ByteReader& r, std::string* error) {
  if (!r.empty()) return Fail(error, "trailing bytes after message fields");
  return true;
}

bool ReadInt16Array(ByteReader* r, std::vector<int16_t>* out) {
  uint16_t n;
  if (!r->ReadU16(&n)) return false;
  if (r->remaining() < size_t{n} * 2) return false;
  out->resize(n);
  for (auto& v : *out) r->ReadI16(&v);
  return true;
}

// Values as in Bind/DataRow/FunctionCall: int32 length (-1 = NULL) then bytes.
bool ReadValue(ByteReader* r, std::optional<std::span<const std::byte>>* out) {
  int32_t len;
  if (!r->ReadI32(&len)) return false;
  if (len == -1) {
    *out = std::nullopt;
    return true;
  }
  if (len < 0) return false;
  std::span<const std::byte> bytes;
  if (!r->ReadBytes(static_cast<size_t>(len), &bytes)) return false;
  *out = bytes;
  return true;
}

bool ReadValues(ByteReader* r, uint16_t n,
                std::vector<std::optional<std::span<const std::byte>>>* out) {
  // Each value needs at least 4 bytes: reject impossible counts before allocating.
  if (r->remaining() < size_t{n} * 4) return false;
  out->resize(n);
  for (auto& v : *out)
    if (!ReadValue(r, &v)) return false;
  return true;
}

bool ValidFormatCode(int16_t f) {
  return f == 0 || f == 1;
}

}  // namespace

uint32_t FixedMessageLength(Direction dir, uint8_t type) {
  if (dir == Direction::kFrontend) {
    switch (type) {
      case fe::kSync:
      case fe::kFlush:
      case fe::kTerminate:
      case fe::kCopyDone:
        return 4;
      default:
        return 0;
    }
  }
  switch (type) {
    case be::kParseComplete:
    case be::kBindComplete:
    case be::kCloseComplete:
    case be::kNoData:
    case be::kEmptyQueryResponse:
    case be::kPortalSuspended:
    case be::kCopyDone:
      return 4;
    case be::kReadyForQuery:
      return 5;
    case be::kBackendKeyData:
      return 12;
    default:
      return 0;
  }
}

uint32_t MaxMessageLength(Direction dir, uint8_t type) {
  if (uint32_t fixed = FixedMessageLength(dir, type); fixed != 0) return fixed;
  if (dir == Direction::kFrontend) {
    switch (type) {
      case fe::kQuery:
      case fe::kParse:
      case fe::kBind:
      case fe::kCopyData:
      case fe::kFunctionCall:
      case fe::kPassword:
      case fe::kCopyFail:
        return kMaxLargeMessage;
      case fe::kDescribe:
      case fe::kClose:
      case fe::kExecute:
        return kMaxSmallMessage;
      default:
        return 0;
    }
  }
  switch (type) {
    case be::kAuthentication:
    case be::kParameterStatus:
    case be::kRowDescription:
    case be::kDataRow:
    case be::kCommandComplete:
    case be::kErrorResponse:
    case be::kNoticeResponse:
    case be::kParameterDescription:
    case be::kCopyInResponse:
    case be::kCopyOutResponse:
    case be::kCopyBothResponse:
    case be::kCopyData:
    case be::kNotificationResponse:
    case be::kNegotiateProtocolVersion:
    case be::kFunctionCallResponse:
      return kMaxLargeMessage;
    default:
      return 0;
  }
}

const char* MessageName(Direction dir, uint8_t type) {
  if (dir == Direction::kFrontend) {
    switch (type) {
      case 0:
        return "StartupPacket";
      case fe::kBind:
        return "Bind";
      case fe::kClose:
        return "Close";
      case fe::kCopyData:
        return "CopyData";
      case fe::kCopyDone:
        return "CopyDone";
      case fe::kCopyFail:
        return "CopyFail";
      case fe::kDescribe:
        return "Describe";
      case fe::kExecute:
        return "Execute";
      case fe::kFlush:
        return "Flush";
      case fe::kFunctionCall:
        return "FunctionCall";
      case fe::kParse:
        return "Parse";
      case fe::kPassword:
        return "PasswordMessage";
      case fe::kQuery:
        return "Query";
      case fe::kSync:
        return "Sync";
      case fe::kTerminate:
        return "Terminate";
      default:
        return "Unknown";
    }
  }
  switch (type) {
    case be::kAuthentication:
      return "Authentication";
    case be::kBackendKeyData:
      return "BackendKeyData";
    case be::kBindComplete:
      return "BindComplete";
    case be::kCloseComplete:
      return "CloseComplete";
    case be::kCommandComplete:
      return "CommandComplete";
    case be::kCopyBothResponse:
      return "CopyBothResponse";
    case be::kCopyData:
      return "CopyData";
    case be::kCopyDone:
      return "CopyDone";
    case be::kCopyInResponse:
      return "CopyInResponse";
    case be::kCopyOutResponse:
      return "CopyOutResponse";
    case be::kDataRow:
      return "DataRow";
    case be::kEmptyQueryResponse:
      return "EmptyQueryResponse";
    case be::kErrorResponse:
      return "ErrorResponse";
    case be::kFunctionCallResponse:
      return "FunctionCallResponse";
    case be::kNegotiateProtocolVersion:
      return "NegotiateProtocolVersion";
    case be::kNoData:
      return "NoData";
    case be::kNoticeResponse:
      return "NoticeResponse";
    case be::kNotificationResponse:
      return "NotificationResponse";
    case be::kParameterDescription:
      return "ParameterDescription";
    case be::kParameterStatus:
      return "ParameterStatus";
    case be::kParseComplete:
      return "ParseComplete";
    case be::kPortalSuspended:
      return "PortalSuspended";
    case be::kReadyForQuery:
      return "ReadyForQuery";
    case be::kRowDescription:
      return "RowDescription";
    default:
      return "Unknown";
  }
}

ParseState PeekHeader(Direction dir, bool startup, std::span<const std::byte> in, Frame* out,
                      std::string* error) {
  ByteReader r(in);
  if (startup) {
    uint32_t len;
    if (!r.ReadU32(&len)) return ParseState::kNeedMoreData;
    if (len < 8 || len > kMaxStartupPacket) {
      Fail(error, "startup packet length out of range");
      return ParseState::kInvalid;
    }
    out->type = 0;
    out->length = len;
    return ParseState::kOk;
  }
  uint8_t type;
  uint32_t len;
  if (!r.ReadU8(&type) || !r.ReadU32(&len)) return ParseState::kNeedMoreData;
  uint32_t max = MaxMessageLength(dir, type);
  if (max == 0) {
    Fail(error, dir == Direction::kFrontend ? "unknown frontend message type"
                                            : "unknown backend message type");
    return ParseState::kInvalid;
  }
  uint32_t fixed = FixedMessageLength(dir, type);
  if (len < 4 || len > max || (fixed != 0 && len != fixed)) {
    Fail(error, "message length out of range for its type");
    return ParseState::kInvalid;
  }
  out->type = type;
  out->length = len;
  return ParseState::kOk;
}

ParseState ParseFrame(Direction dir, bool startup, std::span<const std::byte>* in, Frame* out,
                      std::string* error) {
  Frame f;
  ParseState st = PeekHeader(dir, startup, *in, &f, error);
  if (st != ParseState::kOk) return st;
  size_t header = startup ? 4 : 5;
  if (in->size() < f.WireSize()) return ParseState::kNeedMoreData;
  f.body = in->subspan(header, f.length - 4);
  *out = f;
  *in = in->subspan(f.WireSize());
  return ParseState::kOk;
}

bool ParseStartupPacket(std::span<const std::byte> body, StartupPacket* out, std::string* error) {
  ByteReader r(body);
  uint32_t code;
  if (!r.ReadU32(&code)) return Fail(error, "startup packet too short");
  switch (code) {
    case kSslRequestCode:
      out->kind = StartupKind::kSslRequest;
      return Done(r, error);
    case kGssEncRequestCode:
      out->kind = StartupKind::kGssEncRequest;
      return Done(r, error);
    case kCancelRequestCode:
      out->kind = StartupKind::kCancel;
      if (!r.ReadU32(&out->cancel.pid) || !r.ReadU32(&out->cancel.key))
        return Fail(error, "truncated CancelRequest");
      return Done(r, error);
    default:
      break;
  }
  if ((code >> 16) != 3) return Fail(error, "unsupported frontend protocol version");
  out->kind = StartupKind::kStartup;
  out->startup.protocol = code;
  out->startup.params.clear();
  while (true) {
    std::string_view name;
    if (!r.ReadCString(&name)) return Fail(error, "unterminated startup parameter name");
    if (name.empty()) break;
    std::string_view value;
    if (!r.ReadCString(&value)) return Fail(error, "unterminated startup parameter value");
    out->startup.params.emplace_back(name, value);
  }
  return Done(r, error);
}

bool ParseQuery(std::span<const std::byte> body, QueryMessage* out, std::string* error) {
  ByteReader r(body);
  if (!r.ReadCString(&out->sql)) return Fail(error, "unterminated query string");
  return Done(r, error);
}

bool ParseParse(std::span<const std::byte> body, ParseMessage* out, std::string* error) {
  ByteReader r(body);
  uint16_t n;
  if (!r.ReadCString(&out->name) || !r.ReadCString(&out->sql) || !r.ReadU16(&n))
    return Fail(error, "truncated Parse message");
  if (r.remaining() < size_t{n} * 4) return Fail(error, "truncated Parse parameter types");
  out->param_types.resize(n);
  for (auto& t : out->param_types) r.ReadU32(&t);
  return Done(r, error);
}

bool ParseBind(std::span<const std::byte> body, BindMessage* out, std::string* error) {
  ByteReader r(body);
  if (!r.ReadCString(&out->portal) || !r.ReadCString(&out->statement) ||
      !ReadInt16Array(&r, &out->param_formats))
    return Fail(error, "truncated Bind message");
  for (int16_t f : out->param_formats)
    if (!ValidFormatCode(f)) return Fail(error, "invalid Bind parameter format code");
  uint16_t n;
  if (!r.ReadU16(&n)) return Fail(error, "truncated Bind parameter count");
  if (out->param_formats.size() > 1 && out->param_formats.size() != n)
    return Fail(error, "Bind parameter format count does not match parameter count");
  if (!ReadValues(&r, n, &out->params)) return Fail(error, "truncated Bind parameter value");
  if (!ReadInt16Array(&r, &out->result_formats))
    return Fail(error, "truncated Bind result formats");
  for (int16_t f : out->result_formats)
    if (!ValidFormatCode(f)) return Fail(error, "invalid Bind result format code");
  return Done(r, error);
}

bool ParseDescribe(std::span<const std::byte> body, DescribeMessage* out, std::string* error) {
  ByteReader r(body);
  if (!r.ReadU8(&out->kind) || !r.ReadCString(&out->name))
    return Fail(error, "truncated Describe/Close message");
  if (out->kind != 'S' && out->kind != 'P')
    return Fail(error, "Describe/Close target must be 'S' or 'P'");
  return Done(r, error);
}

bool ParseClose(std::span<const std::byte> body, CloseMessage* out, std::string* error) {
  return ParseDescribe(body, out, error);
}

bool ParseExecute(std::span<const std::byte> body, ExecuteMessage* out, std::string* error) {
  ByteReader r(body);
  if (!r.ReadCString(&out->portal) || !r.ReadU32(&out->max_rows))
    return Fail(error, "truncated Execute message");
  return Done(r, error);
}

bool ParseCopyFail(std::span<const std::byte> body, CopyFailMessage* out, std::string* error) {
  ByteReader r(body);
  if (!r.ReadCString(&out->message)) return Fail(error, "unterminated CopyFail message");
  return Done(r, error);
}

bool ParseFunctionCall(std::span<const std::byte> body, FunctionCallMessage* out,
                       std::string* error) {
  ByteReader r(body);
  uint16_t n;
  if (!r.ReadU32(&out->function_oid) || !ReadInt16Array(&r, &out->arg_formats) || !r.ReadU16(&n))
    return Fail(error, "truncated FunctionCall message");
  if (!ReadValues(&r, n, &out->args)) return Fail(error, "truncated FunctionCall argument");
  if (!r.ReadI16(&out->result_format)) return Fail(error, "truncated FunctionCall result format");
  return Done(r, error);
}

bool ParseSaslInitialResponse(std::span<const std::byte> body, SaslInitialResponse* out,
                              std::string* error) {
  ByteReader r(body);
  if (!r.ReadCString(&out->mechanism) || !ReadValue(&r, &out->data))
    return Fail(error, "truncated SASLInitialResponse");
  return Done(r, error);
}

bool ParsePasswordMessage(std::span<const std::byte> body, std::string_view* password,
                          std::string* error) {
  ByteReader r(body);
  if (!r.ReadCString(password)) return Fail(error, "unterminated password");
  return Done(r, error);
}

bool ParseAuthentication(std::span<const std::byte> body, AuthenticationMessage* out,
                         std::string* error) {
  ByteReader r(body);
  uint32_t code;
  if (!r.ReadU32(&code)) return Fail(error, "truncated Authentication message");
  out->code = static_cast<AuthCode>(code);
  out->data = r.rest();
  switch (out->code) {
    case AuthCode::kOk:
    case AuthCode::kKerberosV5:
    case AuthCode::kCleartextPassword:
    case AuthCode::kGss:
    case AuthCode::kSspi:
      return Done(r, error);
    case AuthCode::kMd5Password:
      if (r.remaining() != 4) return Fail(error, "MD5 salt must be 4 bytes");
      return true;
    case AuthCode::kSasl: {
      std::vector<std::string_view> mechs;
      return ParseSaslMechanisms(out->data, &mechs, error);
    }
    case AuthCode::kGssContinue:
    case AuthCode::kSaslContinue:
    case AuthCode::kSaslFinal:
      return true;
  }
  return Fail(error, "unknown authentication request code");
}

bool ParseSaslMechanisms(std::span<const std::byte> data, std::vector<std::string_view>* out,
                         std::string* error) {
  ByteReader r(data);
  out->clear();
  while (true) {
    std::string_view mech;
    if (!r.ReadCString(&mech)) return Fail(error, "unterminated SASL mechanism list");
    if (mech.empty()) break;
    out->push_back(mech);
  }
  return Done(r, error);
}

bool ParseParameterStatus(std::span<const std::byte> body, ParameterStatusMessage* out,
                          std::string* error) {
  ByteReader r(body);
  if (!r.ReadCString(&out->name) || !r.ReadCString(&out->value))
    return Fail(error, "truncated ParameterStatus");
  return Done(r, error);
}

bool ParseBackendKeyData(std::span<const std::byte> body, BackendKeyData* out, std::string* error) {
  ByteReader r(body);
  if (!r.ReadU32(&out->pid) || !r.ReadU32(&out->key))
    return Fail(error, "truncated BackendKeyData");
  return Done(r, error);
}

bool ParseReadyForQuery(std::span<const std::byte> body, ReadyForQueryMessage* out,
                        std::string* error) {
  ByteReader r(body);
  if (!r.ReadU8(&out->status)) return Fail(error, "truncated ReadyForQuery");
  if (out->status != 'I' && out->status != 'T' && out->status != 'E')
    return Fail(error, "invalid transaction status in ReadyForQuery");
  return Done(r, error);
}

bool ParseRowDescription(std::span<const std::byte> body, RowDescriptionMessage* out,
                         std::string* error) {
  ByteReader r(body);
  uint16_t n;
  if (!r.ReadU16(&n)) return Fail(error, "truncated RowDescription");
  // Each field needs at least 19 bytes (empty name + 18 bytes of attributes).
  if (r.remaining() < size_t{n} * 19) return Fail(error, "truncated RowDescription field");
  out->fields.resize(n);
  for (auto& f : out->fields) {
    if (!r.ReadCString(&f.name) || !r.ReadU32(&f.table_oid) || !r.ReadI16(&f.column) ||
        !r.ReadU32(&f.type_oid) || !r.ReadI16(&f.type_size) || !r.ReadI32(&f.type_modifier) ||
        !r.ReadI16(&f.format))
      return Fail(error, "truncated RowDescription field");
    if (!ValidFormatCode(f.format)) return Fail(error, "invalid RowDescription format code");
  }
  return Done(r, error);
}

bool ParseDataRow(std::span<const std::byte> body, DataRowMessage* out, std::string* error) {
  ByteReader r(body);
  uint16_t n;
  if (!r.ReadU16(&n)) return Fail(error, "truncated DataRow");
  if (!ReadValues(&r, n, &out->values)) return Fail(error, "truncated DataRow value");
  return Done(r, error);
}

bool ParseCommandComplete(std::span<const std::byte> body, CommandCompleteMessage* out,
                          std::string* error) {
  ByteReader r(body);
  if (!r.ReadCString(&out->tag)) return Fail(error, "unterminated CommandComplete tag");
  return Done(r, error);
}

bool ParseErrorOrNotice(std::span<const std::byte> body, ErrorMessage* out, std::string* error) {
  ByteReader r(body);
  out->fields.clear();
  while (true) {
    uint8_t code;
    if (!r.ReadU8(&code)) return Fail(error, "unterminated error field list");
    if (code == 0) break;
    ErrorField f;
    f.code = code;
    if (!r.ReadCString(&f.value)) return Fail(error, "unterminated error field");
    out->fields.push_back(f);
  }
  return Done(r, error);
}

bool ParseParameterDescription(std::span<const std::byte> body, ParameterDescriptionMessage* out,
                               std::string* error) {
  ByteReader r(body);
  uint16_t n;
  if (!r.ReadU16(&n) || r.remaining() < size_t{n} * 4)
    return Fail(error, "truncated ParameterDescription");
  out->types.resize(n);
  for (auto& t : out->types) r.ReadU32(&t);
  return Done(r, error);
}

bool ParseCopyResponse(std::span<const std::byte> body, CopyResponseMessage* out,
                       std::string* error) {
  ByteReader r(body);
  if (!r.ReadU8(&out->format) || !ReadInt16Array(&r, &out->column_formats))
    return Fail(error, "truncated Copy response");
  if (out->format > 1) return Fail(error, "invalid Copy response format");
  return Done(r, error);
}

bool ParseNotification(std::span<const std::byte> body, NotificationMessage* out,
                       std::string* error) {
  ByteReader r(body);
  if (!r.ReadU32(&out->pid) || !r.ReadCString(&out->channel) || !r.ReadCString(&out->payload))
    return Fail(error, "truncated NotificationResponse");
  return Done(r, error);
}

bool ParseNegotiateProtocolVersion(std::span<const std::byte> body,
                                   NegotiateProtocolVersionMessage* out, std::string* error) {
  ByteReader r(body);
  uint32_t n;
  if (!r.ReadU32(&out->newest_minor) || !r.ReadU32(&n))
    return Fail(error, "truncated NegotiateProtocolVersion");
  if (n > r.remaining()) return Fail(error, "truncated NegotiateProtocolVersion options");
  out->unrecognized.resize(n);
  for (auto& o : out->unrecognized)
    if (!r.ReadCString(&o)) return Fail(error, "truncated NegotiateProtocolVersion option");
  return Done(r, error);
}

bool ParseFunctionCallResponse(std::span<const std::byte> body, FunctionCallResponseMessage* out,
                               std::string* error) {
  ByteReader r(body);
  if (!ReadValue(&r, &out->value)) return Fail(error, "truncated FunctionCallResponse");
  return Done(r, error);
}

bool ParseFrontend(const Frame& frame, FrontendMessage* out, std::string* error) {
  out->type = frame.type;
  const auto body = frame.body;
  switch (frame.type) {
    case fe::kQuery:
      return ParseQuery(body, &out->query, error);
    case fe::kParse:
      return ParseParse(body, &out->parse, error);
    case fe::kBind:
      return ParseBind(body, &out->bind, error);
    case fe::kDescribe:
      return ParseDescribe(body, &out->describe, error);
    case fe::kClose:
      return ParseClose(body, &out->describe, error);
    case fe::kExecute:
      return ParseExecute(body, &out->execute, error);
    case fe::kCopyFail:
      return ParseCopyFail(body, &out->copy_fail, error);
    case fe::kFunctionCall:
      return ParseFunctionCall(body, &out->function_call, error);
    case fe::kSync:
    case fe::kFlush:
    case fe::kTerminate:
    case fe::kCopyDone:
    case fe::kCopyData:
    case fe::kPassword:
      return true;
    default:
      return Fail(error, "unknown frontend message type");
  }
}

bool ValidateMessage(Direction dir, const Frame& frame, std::string* error) {
  const auto body = frame.body;
  if (dir == Direction::kFrontend) {
    if (frame.type == 0) {
      StartupPacket m;
      return ParseStartupPacket(body, &m, error);
    }
    FrontendMessage m;
    return ParseFrontend(frame, &m, error);
  }
  switch (frame.type) {
    case be::kAuthentication: {
      AuthenticationMessage m;
      return ParseAuthentication(body, &m, error);
    }
    case be::kParameterStatus: {
      ParameterStatusMessage m;
      return ParseParameterStatus(body, &m, error);
    }
    case be::kBackendKeyData: {
      BackendKeyData m;
      return ParseBackendKeyData(body, &m, error);
    }
    case be::kReadyForQuery: {
      ReadyForQueryMessage m;
      return ParseReadyForQuery(body, &m, error);
    }
    case be::kRowDescription: {
      RowDescriptionMessage m;
      return ParseRowDescription(body, &m, error);
    }
    case be::kDataRow: {
      DataRowMessage m;
      return ParseDataRow(body, &m, error);
    }
    case be::kCommandComplete: {
      CommandCompleteMessage m;
      return ParseCommandComplete(body, &m, error);
    }
    case be::kErrorResponse:
    case be::kNoticeResponse: {
      ErrorMessage m;
      return ParseErrorOrNotice(body, &m, error);
    }
    case be::kParameterDescription: {
      ParameterDescriptionMessage m;
      return ParseParameterDescription(body, &m, error);
    }
    case be::kCopyInResponse:
    case be::kCopyOutResponse:
    case be::kCopyBothResponse: {
      CopyResponseMessage m;
      return ParseCopyResponse(body, &m, error);
    }
    case be::kNotificationResponse: {
      NotificationMessage m;
      return ParseNotification(body, &m, error);
    }
    case be::kNegotiateProtocolVersion: {
      NegotiateProtocolVersionMessage m;
      return ParseNegotiateProtocolVersion(body, &m, error);
    }
    case be::kFunctionCallResponse: {
      FunctionCallResponseMessage m;
      return ParseFunctionCallResponse(body, &m, error);
    }
    case be::kParseComplete:
    case be::kBindComplete:
    case be::kCloseComplete:
    case be::kNoData:
    case be::kEmptyQueryResponse:
    case be::kPortalSuspended:
    case be::kCopyDone:
    case be::kCopyData:
      return true;
    default:
      return Fail(error, "unknown backend message type");
  }
}

std::optional<uint64_t> RowsFromCommandTag(std::string_view tag) {
  // The row count is the last space-separated word for SELECT/INSERT/UPDATE/DELETE/MERGE/
  // FETCH/MOVE/COPY; other tags ("CREATE TABLE") have none.
  static constexpr std::string_view kCounted[] = {"SELECT ", "INSERT ", "UPDATE ", "DELETE ",
                                                  "MERGE ",  "FETCH ",  "MOVE ",   "COPY "};
  bool counted = false;
  for (auto prefix : kCounted)
    if (tag.starts_with(prefix)) counted = true;
  if (!counted) return std::nullopt;
  size_t sp = tag.rfind(' ');
  uint64_t n = 0;
  auto digits = tag.substr(sp + 1);
  auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
  if (ec != std::errc() || ptr != digits.data() + digits.size()) return std::nullopt;
  return n;
}

}  // namespace dbw::pg
