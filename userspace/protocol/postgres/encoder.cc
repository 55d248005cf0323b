// Encoders for the messages dbwarden synthesises.
#include "userspace/protocol/postgres/encoder.h"

#include <cstring>

namespace dbw::pg {
namespace {

// Writes one message: the type byte (if any), a length placeholder patched on Finish().
class MessageWriter {
 public:
  MessageWriter(Bytes* out, uint8_t type) : out_(out) {
    if (type != 0) out_->push_back(static_cast<std::byte>(type));
    start_ = out_->size();
    U32(0);
  }
  ~MessageWriter() {
    uint32_t len = static_cast<uint32_t>(out_->size() - start_);
    for (int i = 0; i < 4; ++i)
      (*out_)[start_ + i] = static_cast<std::byte>((len >> (24 - 8 * i)) & 0xff);
  }
  void U8(uint8_t v) { out_->push_back(static_cast<std::byte>(v)); }
  void U16(uint16_t v) {
    U8(static_cast<uint8_t>(v >> 8));
    U8(static_cast<uint8_t>(v));
  }
  void U32(uint32_t v) {
    for (int i = 3; i >= 0; --i) U8(static_cast<uint8_t>(v >> (8 * i)));
  }
  void Raw(std::span<const std::byte> bytes) {
    out_->insert(out_->end(), bytes.begin(), bytes.end());
  }
  // A C string; embedded NULs would break framing, so the text is cut at the first one.
  void CString(std::string_view s) {
    size_t nul = s.find('\0');
    if (nul != std::string_view::npos) s = s.substr(0, nul);
    Raw({reinterpret_cast<const std::byte*>(s.data()), s.size()});
    U8(0);
  }

 private:
  Bytes* out_;
  size_t start_;
};

void AppendErrorLike(Bytes* out, uint8_t type, const ErrorFields& f) {
  MessageWriter w(out, type);
  auto field = [&w](uint8_t code, std::string_view v) {
    if (v.empty()) return;
    w.U8(code);
    w.CString(v);
  };
  field('S', f.severity);
  field('V', f.severity);
  field('C', f.sqlstate);
  field('M', f.message);
  field('D', f.detail);
  field('H', f.hint);
  w.U8(0);
}

}  // namespace

void AppendErrorResponse(Bytes* out, const ErrorFields& fields) {
  AppendErrorLike(out, be::kErrorResponse, fields);
}
void AppendNoticeResponse(Bytes* out, const ErrorFields& fields) {
  AppendErrorLike(out, be::kNoticeResponse, fields);
}

void AppendReadyForQuery(Bytes* out, uint8_t status) {
  MessageWriter w(out, be::kReadyForQuery);
  w.U8(status);
}

void AppendCommandComplete(Bytes* out, std::string_view tag) {
  MessageWriter w(out, be::kCommandComplete);
  w.CString(tag);
}

void AppendEmptyQueryResponse(Bytes* out) {
  MessageWriter w(out, be::kEmptyQueryResponse);
}

void AppendRowDescription(Bytes* out, std::span<const FieldDescription> fields) {
  MessageWriter w(out, be::kRowDescription);
  w.U16(static_cast<uint16_t>(fields.size()));
  for (const auto& f : fields) {
    w.CString(f.name);
    w.U32(f.table_oid);
    w.U16(static_cast<uint16_t>(f.column));
    w.U32(f.type_oid);
    w.U16(static_cast<uint16_t>(f.type_size));
    w.U32(static_cast<uint32_t>(f.type_modifier));
    w.U16(static_cast<uint16_t>(f.format));
  }
}

void AppendDataRow(Bytes* out, std::span<const std::optional<std::span<const std::byte>>> values) {
  MessageWriter w(out, be::kDataRow);
  w.U16(static_cast<uint16_t>(values.size()));
  for (const auto& v : values) {
    if (!v) {
      w.U32(0xffffffffu);
      continue;
    }
    w.U32(static_cast<uint32_t>(v->size()));
    w.Raw(*v);
  }
}

void AppendBackendKeyData(Bytes* out, const BackendKeyData& key) {
  MessageWriter w(out, be::kBackendKeyData);
  w.U32(key.pid);
  w.U32(key.key);
}

void AppendAuthenticationSasl(Bytes* out, std::span<const std::string_view> mechanisms) {
  MessageWriter w(out, be::kAuthentication);
  w.U32(static_cast<uint32_t>(AuthCode::kSasl));
  for (auto m : mechanisms) w.CString(m);
  w.U8(0);
}

void AppendParameterStatus(Bytes* out, std::string_view name, std::string_view value) {
  MessageWriter w(out, be::kParameterStatus);
  w.CString(name);
  w.CString(value);
}

void AppendAuthenticationRequest(Bytes* out, AuthCode code) {
  MessageWriter w(out, be::kAuthentication);
  w.U32(static_cast<uint32_t>(code));
}

void AppendSaslInitialResponse(Bytes* out, std::string_view mechanism, std::string_view data) {
  MessageWriter w(out, fe::kPassword);
  w.CString(mechanism);
  w.U32(static_cast<uint32_t>(data.size()));
  w.Raw({reinterpret_cast<const std::byte*>(data.data()), data.size()});
}

void AppendSaslResponse(Bytes* out, std::string_view data) {
  MessageWriter w(out, fe::kPassword);
  w.Raw({reinterpret_cast<const std::byte*>(data.data()), data.size()});
}

void AppendPasswordMessage(Bytes* out, std::string_view password) {
  MessageWriter w(out, fe::kPassword);
  w.CString(password);
}

void AppendStartupMessage(Bytes* out, const StartupMessage& message) {
  MessageWriter w(out, 0);
  w.U32(message.protocol);
  for (const auto& [k, v] : message.params) {
    w.CString(k);
    w.CString(v);
  }
  w.U8(0);
}

void AppendSslRequest(Bytes* out) {
  MessageWriter w(out, 0);
  w.U32(kSslRequestCode);
}

void AppendCancelRequest(Bytes* out, const CancelRequest& cancel) {
  MessageWriter w(out, 0);
  w.U32(kCancelRequestCode);
  w.U32(cancel.pid);
  w.U32(cancel.key);
}

void AppendFrame(Bytes* out, const Frame& frame) {
  out->reserve(out->size() + frame.WireSize());
  if (frame.type != 0) out->push_back(static_cast<std::byte>(frame.type));
  for (int shift = 24; shift >= 0; shift -= 8)
    out->push_back(static_cast<std::byte>(frame.length >> shift));
  out->insert(out->end(), frame.body.begin(), frame.body.end());
}

void AppendQuery(Bytes* out, std::string_view sql) {
  MessageWriter w(out, fe::kQuery);
  w.CString(sql);
}

void AppendParse(Bytes* out, std::string_view name, std::string_view sql,
                 std::span<const uint32_t> param_types) {
  MessageWriter w(out, fe::kParse);
  w.CString(name);
  w.CString(sql);
  w.U16(static_cast<uint16_t>(param_types.size()));
  for (uint32_t t : param_types) w.U32(t);
}

void AppendFunctionCall(Bytes* out, uint32_t function_oid) {
  MessageWriter w(out, fe::kFunctionCall);
  w.U32(function_oid);
  w.U16(0);  // argument format codes
  w.U16(0);  // arguments
  w.U16(0);  // result format: text
}

void AppendTerminate(Bytes* out) {
  MessageWriter w(out, fe::kTerminate);
}
void AppendSync(Bytes* out) {
  MessageWriter w(out, fe::kSync);
}

void AppendBind(Bytes* out, std::string_view portal, std::string_view statement) {
  MessageWriter w(out, fe::kBind);
  w.CString(portal);
  w.CString(statement);
  w.U16(0);  // parameter format codes
  w.U16(0);  // parameters
  w.U16(0);  // result format: text
}

void AppendRejectedBind(Bytes* out, std::string_view portal, std::string_view statement) {
  MessageWriter w(out, fe::kBind);
  w.CString(portal);
  w.CString(statement);
  w.U16(2);  // two parameter format codes ...
  w.U16(0);
  w.U16(0);
  w.U16(0);  // ... for no parameters: "bind message has 2 parameter formats but 0 parameters"
  w.U16(0);
}

void AppendExecute(Bytes* out, std::string_view portal, uint32_t max_rows) {
  MessageWriter w(out, fe::kExecute);
  w.CString(portal);
  w.U32(max_rows);
}

void AppendClose(Bytes* out, uint8_t kind, std::string_view name) {
  MessageWriter w(out, fe::kClose);
  w.U8(kind);
  w.CString(name);
}

void AppendFlush(Bytes* out) {
  MessageWriter w(out, fe::kFlush);
}

}  // namespace dbw::pg
