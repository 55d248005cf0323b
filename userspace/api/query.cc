// Query-string, time, limit and cursor parsing for the HTTP API.
#include "userspace/api/query.h"

#include <charconv>
#include <limits>

namespace dbw::api {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool ParseDigits(std::string_view s, int64_t* out) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
int64_t DaysFromCivil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

bool IsLeap(int64_t y) {
  return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

StatusOr<int64_t> ParseRfc3339(std::string_view s) {
  const Status bad = InvalidArgument("bad time \"" + std::string(s) +
                                     "\": expected RFC 3339 (2024-05-01T12:00:00Z) or a "
                                     "relative duration (15m, 2h, 7d)");
  if (s.size() < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') ||
      s[13] != ':' || s[16] != ':') {
    return bad;
  }
  int64_t y, mo, d, h, mi, sec;
  if (!ParseDigits(s.substr(0, 4), &y) || !ParseDigits(s.substr(5, 2), &mo) ||
      !ParseDigits(s.substr(8, 2), &d) || !ParseDigits(s.substr(11, 2), &h) ||
      !ParseDigits(s.substr(14, 2), &mi) || !ParseDigits(s.substr(17, 2), &sec)) {
    return bad;
  }
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 60) return bad;
  if (d > kDays[mo - 1] + (mo == 2 && IsLeap(y) ? 1 : 0)) return bad;
  if (sec == 60) sec = 59;  // a leap second maps onto the second before it
  size_t i = 19;
  int64_t frac_us = 0;
  if (i < s.size() && s[i] == '.') {
    ++i;
    size_t digits = 0;
    int64_t scale = 100000;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
      if (digits < 6) frac_us += (s[i] - '0') * scale;
      scale /= 10;
      ++digits;
      ++i;
    }
    if (digits == 0 || digits > 9) return bad;
  }
  int64_t offset_s = 0;
  std::string_view zone = s.substr(i);
  if (zone == "Z" || zone == "z") {
    offset_s = 0;
  } else if (zone.size() == 6 && (zone[0] == '+' || zone[0] == '-') && zone[3] == ':') {
    int64_t oh, om;
    if (!ParseDigits(zone.substr(1, 2), &oh) || !ParseDigits(zone.substr(4, 2), &om) || oh > 23 ||
        om > 59) {
      return bad;
    }
    offset_s = (oh * 3600 + om * 60) * (zone[0] == '-' ? -1 : 1);
  } else {
    return bad;
  }
  const int64_t days = DaysFromCivil(y, mo, d);
  const int64_t secs = days * 86400 + h * 3600 + mi * 60 + sec - offset_s;
  return secs * 1'000'000 + frac_us;
}

}  // namespace

StatusOr<std::optional<std::string>> QueryParams::Single(std::string_view key) const {
  std::optional<std::string> found;
  for (const auto& [k, v] : items_) {
    if (k != key) continue;
    if (found)
      return InvalidArgument("parameter \"" + std::string(key) + "\" given more than once");
    found = v;
  }
  return found;
}

std::vector<std::string> QueryParams::All(std::string_view key) const {
  std::vector<std::string> out;
  for (const auto& [k, v] : items_) {
    if (k == key) out.push_back(v);
  }
  return out;
}

Status QueryParams::OnlyKeys(const std::vector<std::string_view>& allowed) const {
  for (const auto& [k, v] : items_) {
    bool ok = false;
    for (std::string_view a : allowed) ok = ok || k == a;
    if (!ok) return InvalidArgument("unknown parameter \"" + k + "\"");
  }
  return Status::Ok();
}

StatusOr<std::string> PercentDecode(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '+') {
      out.push_back(' ');
    } else if (c == '%') {
      if (i + 2 >= in.size()) {
        return InvalidArgument("truncated percent-escape at offset " + std::to_string(i));
      }
      int hi = HexValue(in[i + 1]);
      int lo = HexValue(in[i + 2]);
      if (hi < 0 || lo < 0) {
        return InvalidArgument("bad percent-escape at offset " + std::to_string(i));
      }
      char decoded = static_cast<char>(hi * 16 + lo);
      if (decoded == '\0') return InvalidArgument("percent-escape decodes to a NUL byte");
      out.push_back(decoded);
      i += 2;
    } else if (c == '\0') {
      return InvalidArgument("NUL byte at offset " + std::to_string(i));  // as %00 is refused
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string PercentEncode(std::string_view in) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : in) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

StatusOr<QueryParams> ParseQueryString(std::string_view query) {
  QueryParams params;
  size_t start = 0;
  while (start <= query.size()) {
    size_t end = query.find('&', start);
    if (end == std::string_view::npos) end = query.size();
    std::string_view part = query.substr(start, end - start);
    start = end + 1;
    if (part.empty()) continue;
    size_t eq = part.find('=');
    std::string_view raw_key = part.substr(0, eq);
    std::string_view raw_value = eq == std::string_view::npos ? "" : part.substr(eq + 1);
    auto key = PercentDecode(raw_key);
    if (!key.ok()) return key.status();
    if (key->empty()) return InvalidArgument("empty parameter name in query string");
    auto value = PercentDecode(raw_value);
    if (!value.ok()) {
      return InvalidArgument("parameter \"" + *key + "\": " + value.status().message());
    }
    params.Add(std::move(*key), std::move(*value));
  }
  return params;
}

StatusOr<Target> SplitTarget(std::string_view target) {
  if (target.empty() || target[0] != '/')
    return InvalidArgument("request target must start with /");
  size_t q = target.find('?');
  Target t;
  auto path = PercentDecode(target.substr(0, q));
  if (!path.ok()) return InvalidArgument("path: " + path.status().message());
  t.path = std::move(*path);
  if (q != std::string_view::npos) t.query = std::string(target.substr(q + 1));
  return t;
}

StatusOr<std::chrono::milliseconds> ParseDuration(std::string_view text) {
  const Status bad = InvalidArgument("bad duration \"" + std::string(text) +
                                     "\": expected a number and a unit (ms, s, m, h, d, w)");
  size_t i = 0;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i;
  if (i == 0 || i > 12) return bad;
  int64_t n = 0;
  if (!ParseDigits(text.substr(0, i), &n)) return bad;
  std::string_view unit = text.substr(i);
  int64_t ms_per = 0;
  if (unit == "ms")
    ms_per = 1;
  else if (unit == "s")
    ms_per = 1000;
  else if (unit == "m")
    ms_per = 60'000;
  else if (unit == "h")
    ms_per = 3'600'000;
  else if (unit == "d")
    ms_per = 86'400'000;
  else if (unit == "w")
    ms_per = 7 * 86'400'000LL;
  else
    return bad;
  // 12 digits of weeks still fits in int64 milliseconds.
  return std::chrono::milliseconds(n * ms_per);
}

StatusOr<int64_t> ParseTime(std::string_view text, int64_t now_us) {
  if (text.empty()) return InvalidArgument("empty time");
  if (text.size() >= 20 && text[4] == '-') return ParseRfc3339(text);
  auto d = ParseDuration(text);
  if (!d.ok()) {
    return InvalidArgument("bad time \"" + std::string(text) +
                           "\": expected RFC 3339 (2024-05-01T12:00:00Z) or a relative duration "
                           "(15m, 2h, 7d)");
  }
  return now_us - d->count() * 1000;
}

StatusOr<size_t> ParseLimit(std::string_view name, std::string_view text, size_t max) {
  int64_t n = 0;
  if (text.size() > 9 || !ParseDigits(text, &n) || n < 1 || static_cast<size_t>(n) > max) {
    return InvalidArgument("\"" + std::string(name) + "\" must be an integer from 1 to " +
                           std::to_string(max));
  }
  return static_cast<size_t>(n);
}

StatusOr<uint64_t> ParseSeq(std::string_view name, std::string_view text) {
  uint64_t n = 0;
  bool digits = !text.empty();
  for (char c : text) digits = digits && c >= '0' && c <= '9';
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (!digits || ec != std::errc() || p != text.data() + text.size()) {
    return InvalidArgument("\"" + std::string(name) + "\" must be a sequence number");
  }
  return n;
}

StatusOr<EventsQuery> ParseEventsQuery(const QueryParams& params, int64_t now_us) {
  DBW_RETURN_IF_ERROR(params.OnlyKeys({"since", "until", "principal", "db_user", "database",
                                       "table", "action", "kind", "session", "exe", "fingerprint",
                                       "source", "limit", "cursor", "format"}));
  EventsQuery q;
  struct Field {
    const char* key;
    std::string* out;
  };
  audit::EventFilter& f = q.filter;
  const Field fields[] = {
      {"principal", &f.principal}, {"db_user", &f.db_user}, {"database", &f.database},
      {"table", &f.table},         {"action", &f.action},   {"kind", &f.kind},
      {"session", &f.session},     {"exe", &f.exe},         {"fingerprint", &f.fingerprint},
      {"source", &f.source},       {"cursor", &q.cursor}};
  for (const Field& field : fields) {
    auto v = params.Single(field.key);
    if (!v.ok()) return v.status();
    if (!*v) continue;
    if (v->value().empty()) {
      return InvalidArgument("parameter \"" + std::string(field.key) + "\" is empty");
    }
    *field.out = std::move(**v);
  }
  if (!f.action.empty() && f.action != "allow" && f.action != "log" && f.action != "approve" &&
      f.action != "deny") {
    return InvalidArgument("\"action\" must be allow, log, approve or deny");
  }
  for (const char* key : {"since", "until"}) {
    auto v = params.Single(key);
    if (!v.ok()) return v.status();
    if (!*v) continue;
    auto t = ParseTime(**v, now_us);
    if (!t.ok()) return InvalidArgument(std::string(key) + ": " + t.status().message());
    (std::string_view(key) == "since" ? f.since_us : f.until_us) = *t;
  }
  if (f.since_us && f.until_us && *f.since_us >= *f.until_us) {
    return InvalidArgument("\"since\" must be before \"until\"");
  }
  auto limit = params.Single("limit");
  if (!limit.ok()) return limit.status();
  if (*limit) {
    auto n = ParseLimit("limit", **limit, kMaxEventsLimit);
    if (!n.ok()) return n.status();
    q.limit = *n;
  }
  auto format = ParseFormatParam(params);
  if (!format.ok()) return format.status();
  q.format = *format;
  return q;
}

StatusOr<audit::EventFormat> ParseFormatParam(const QueryParams& params) {
  auto v = params.Single("format");
  if (!v.ok()) return v.status();
  if (!*v) return audit::EventFormat::kNative;
  return audit::ParseEventFormat(**v);
}

std::string EncodeStreamCursor(uint64_t last_seq) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "s1.";
  for (int shift = 60; shift >= 0; shift -= 4) out.push_back(kHex[(last_seq >> shift) & 15]);
  return out;
}

StatusOr<uint64_t> DecodeStreamCursor(std::string_view cursor) {
  const Status bad = InvalidArgument("bad cursor: use the X-Dbwarden-Cursor value of a response");
  if (cursor.size() != 19 || cursor.substr(0, 3) != "s1.") return bad;
  uint64_t seq = 0;
  for (char c : cursor.substr(3)) {
    int v = HexValue(c);
    if (v < 0 || (c >= 'A' && c <= 'F')) return bad;
    seq = (seq << 4) | static_cast<uint64_t>(v);
  }
  return seq;
}

StatusOr<StreamQuery> ParseStreamQuery(const QueryParams& params) {
  DBW_RETURN_IF_ERROR(params.OnlyKeys({"cursor", "wait", "limit", "format"}));
  StreamQuery q;
  auto cursor = params.Single("cursor");
  if (!cursor.ok()) return cursor.status();
  if (*cursor && !(*cursor)->empty()) {
    auto seq = DecodeStreamCursor(**cursor);
    if (!seq.ok()) return seq.status();
    q.after_seq = *seq;
  }
  auto wait = params.Single("wait");
  if (!wait.ok()) return wait.status();
  if (*wait) {
    if (**wait == "0") {
      q.wait = std::chrono::milliseconds(0);
    } else {
      auto d = ParseDuration(**wait);
      if (!d.ok()) return InvalidArgument("wait: " + d.status().message());
      if (*d > kMaxStreamWait) return InvalidArgument("\"wait\" must be at most 60s");
      q.wait = *d;
    }
  }
  auto limit = params.Single("limit");
  if (!limit.ok()) return limit.status();
  if (*limit) {
    auto n = ParseLimit("limit", **limit, kMaxStreamLimit);
    if (!n.ok()) return n.status();
    q.limit = *n;
  }
  auto format = ParseFormatParam(params);
  if (!format.ok()) return format.status();
  q.format = *format;
  return q;
}

}  // namespace dbw::api
