// Client encodings: PostgreSQL's character boundaries (src/common/wchar.c) and glibc's iconv for
// the conversion to UTF-8.
#include "userspace/sql/encoding.h"

#include <errno.h>
#include <iconv.h>

#include <array>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>

namespace dbw::sql {
namespace {

struct EncodingInfo {
  std::string_view pg;  // as the server reports it
  const char* iconv;    // glibc's name; null: no conversion available
  bool client_only;     // second bytes may be ASCII
};

constexpr std::array<EncodingInfo, 40> kEncodings{{
    {"SJIS", "CP932", true},
    {"SHIFT_JIS_2004", "SHIFT_JISX0213", true},
    {"BIG5", "CP950", true},
    {"GBK", "GBK", true},
    {"UHC", "CP949", true},
    {"GB18030", "GB18030", true},
    {"JOHAB", "JOHAB", true},
    {"EUC_JP", "EUC-JP", false},
    {"EUC_CN", "EUC-CN", false},
    {"EUC_KR", "EUC-KR", false},
    {"EUC_TW", "EUC-TW", false},
    {"EUC_JIS_2004", "EUC-JISX0213", false},
    {"LATIN1", "ISO-8859-1", false},
    {"LATIN2", "ISO-8859-2", false},
    {"LATIN3", "ISO-8859-3", false},
    {"LATIN4", "ISO-8859-4", false},
    {"LATIN5", "ISO-8859-9", false},
    {"LATIN6", "ISO-8859-10", false},
    {"LATIN7", "ISO-8859-13", false},
    {"LATIN8", "ISO-8859-14", false},
    {"LATIN9", "ISO-8859-15", false},
    {"LATIN10", "ISO-8859-16", false},
    {"ISO_8859_5", "ISO-8859-5", false},
    {"ISO_8859_6", "ISO-8859-6", false},
    {"ISO_8859_7", "ISO-8859-7", false},
    {"ISO_8859_8", "ISO-8859-8", false},
    {"WIN1250", "CP1250", false},
    {"WIN1251", "CP1251", false},
    {"WIN1252", "CP1252", false},
    {"WIN1253", "CP1253", false},
    {"WIN1254", "CP1254", false},
    {"WIN1255", "CP1255", false},
    {"WIN1256", "CP1256", false},
    {"WIN1257", "CP1257", false},
    {"WIN1258", "CP1258", false},
    {"WIN866", "CP866", false},
    {"WIN874", "CP874", false},
    {"KOI8R", "KOI8-R", false},
    {"KOI8U", "KOI8-U", false},
    {"MULE_INTERNAL", nullptr, false},
}};

const EncodingInfo* Find(std::string_view name) {
  for (const auto& e : kEncodings)
    if (e.pg == name) return &e;
  return nullptr;
}

bool IsAscii(std::string_view text) {
  for (char c : text)
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  return true;
}

// PostgreSQL's character length for a client-only encoding at s[0] (pg_sjis_mblen & co).
size_t ClientOnlyLength(std::string_view encoding, std::string_view s) {
  auto b = [&](size_t i) { return i < s.size() ? static_cast<unsigned char>(s[i]) : 0; };
  const unsigned char c = b(0);
  if (c < 0x80) return 1;
  if (encoding == "SJIS" || encoding == "SHIFT_JIS_2004") return c >= 0xa1 && c <= 0xdf ? 1 : 2;
  if (encoding == "GB18030") return b(1) >= 0x30 && b(1) <= 0x39 ? 4 : 2;
  if (encoding == "JOHAB") return c == 0x8e ? 2 : c == 0x8f ? 3 : 2;  // pg_euc_mblen
  return 2;                                                           // BIG5, GBK, UHC
}

// One iconv descriptor per encoding and thread (iconv_t keeps conversion state).
class Converter {
 public:
  explicit Converter(const char* from) : cd_(iconv_open("UTF-8", from)) {}
  ~Converter() {
    if (ok()) iconv_close(cd_);
  }
  Converter(const Converter&) = delete;
  Converter& operator=(const Converter&) = delete;
  bool ok() const { return cd_ != reinterpret_cast<iconv_t>(-1); }

  // Appends `in` converted to *out; false when a byte sequence is invalid or incomplete.
  bool Append(std::string_view in, std::string* out) {
    iconv(cd_, nullptr, nullptr, nullptr, nullptr);  // initial shift state
    char* src = const_cast<char*>(in.data());
    size_t left = in.size();
    while (left > 0) {
      char buf[1024];
      char* dst = buf;
      size_t room = sizeof buf;
      size_t r = iconv(cd_, &src, &left, &dst, &room);
      out->append(buf, static_cast<size_t>(dst - buf));
      if (r == static_cast<size_t>(-1) && errno != E2BIG) return false;
    }
    return true;
  }

 private:
  iconv_t cd_;
};

Converter* ConverterFor(const EncodingInfo& e) {
  thread_local std::unordered_map<std::string_view, std::unique_ptr<Converter>> converters;
  auto& slot = converters[e.pg];
  if (!slot) slot = std::make_unique<Converter>(e.iconv);
  return slot->ok() ? slot.get() : nullptr;
}

}  // namespace

bool IsClientOnlyEncoding(std::string_view encoding) {
  const EncodingInfo* e = Find(encoding);
  return e != nullptr && e->client_only;
}

std::vector<std::string_view> ClientOnlyEncodings() {
  std::vector<std::string_view> out;
  for (const auto& e : kEncodings)
    if (e.client_only) out.push_back(e.pg);
  return out;
}

bool ReadsAsIs(std::string_view text, std::string_view encoding) {
  return encoding == "UTF8" || encoding == "SQL_ASCII" || IsAscii(text);
}

StatusOr<std::string> ToServerText(std::string_view text, std::string_view encoding) {
  if (ReadsAsIs(text, encoding)) return std::string(text);
  const EncodingInfo* e = Find(encoding);
  if (e == nullptr || e->iconv == nullptr)
    return InvalidArgument("client_encoding " + std::string(encoding) +
                           " cannot be read by dbwarden for text that is not ASCII");
  Converter* conv = ConverterFor(*e);
  if (conv == nullptr)
    return InvalidArgument("client_encoding " + std::string(encoding) + " has no converter");
  std::string out;
  out.reserve(text.size() * 2);
  if (!e->client_only) {
    if (!conv->Append(text, &out))
      return InvalidArgument("invalid byte sequence for encoding " + std::string(encoding));
    return out;
  }
  // Character by character, delimited as PostgreSQL delimits them: the boundaries decide which
  // ASCII bytes are tokens, so they must be the server's, not the converter's.
  for (size_t i = 0; i < text.size();) {
    size_t n = ClientOnlyLength(encoding, text.substr(i));
    if (static_cast<unsigned char>(text[i]) < 0x80) {
      out.push_back(text[i]);
      ++i;
      continue;
    }
    if (i + n > text.size() || !conv->Append(text.substr(i, n), &out))
      return InvalidArgument("invalid byte sequence for encoding " + std::string(encoding));
    i += n;
  }
  return out;
}

bool MayReadDifferentlyInClientOnlyEncoding(std::string_view text) {
  // A high byte swallows the next one in every client-only encoding (BIG5, GBK, UHC: any high
  // byte leads two); so the question is whether an ASCII byte ever follows a high byte.
  for (size_t i = 0; i + 1 < text.size(); ++i)
    if (static_cast<unsigned char>(text[i]) >= 0x80 &&
        static_cast<unsigned char>(text[i + 1]) < 0x80)
      return true;
  return false;
}

}  // namespace dbw::sql
