// OTLP/HTTP logs, JSON encoding (opentelemetry-proto's ExportLogsServiceRequest): one POST per
// batch, confirmed by the collector's 2xx answer. Each event is a LogRecord whose body is the
// event in the exporter's format; seq, kind and session are attributes.
#include <simdjson.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "userspace/export/connection.h"
#include "userspace/export/transport.h"

namespace dbw::exporter {
namespace {

namespace http = boost::beast::http;
using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

constexpr size_t kMaxResponseHeader = 16 << 10;
constexpr size_t kMaxResponseBody = 1 << 20;

void StringAttribute(JsonWriter& w, const char* key, std::string_view value) {
  w.StartObject();
  w.Key("key");
  w.String(key);
  w.Key("value");
  w.StartObject();
  w.Key("stringValue");
  w.String(value.data(), static_cast<rapidjson::SizeType>(value.size()));
  w.EndObject();
  w.EndObject();
}

// int64 values are strings in OTLP's JSON encoding (the protobuf JSON mapping).
void IntAttribute(JsonWriter& w, const char* key, uint64_t value) {
  w.StartObject();
  w.Key("key");
  w.String(key);
  w.Key("value");
  w.StartObject();
  w.Key("intValue");
  w.String(std::to_string(value).c_str());
  w.EndObject();
  w.EndObject();
}

// syslog severity -> OpenTelemetry SeverityNumber and text.
std::pair<int, const char*> Severity(int syslog) {
  if (syslog <= 2) return {21, "FATAL"};
  if (syslog <= 4) return {13, "WARN"};
  return {9, "INFO"};
}

class OtlpTransport final : public Transport {
 public:
  OtlpTransport(ExporterOptions o, const std::atomic<bool>* stopping)
      : o_(std::move(o)), stopping_(stopping), hostname_(LocalHostName()) {}

  StatusOr<uint64_t> Send(const std::vector<Message>& batch) override {
    if (batch.empty()) return confirmed_;
    std::string body = Payload(batch);
    std::string request = "POST ";
    request += o_.otlp_path;
    request += " HTTP/1.1\r\nHost: ";
    // An IPv6 address goes in brackets (RFC 7230 section 5.4).
    request += o_.host.find(':') != std::string::npos ? "[" + o_.host + "]" : o_.host;
    request += ":";
    request += o_.port;
    request += "\r\nContent-Type: application/json\r\nUser-Agent: dbwarden/" DBWARDEN_VERSION
               "\r\nContent-Length: ";
    request += std::to_string(body.size());
    request += "\r\n";
    for (const auto& [k, v] : o_.headers) {
      request += k;
      request += ": ";
      request += v;
      request += "\r\n";
    }
    request += "\r\n";
    request += body;
    // A kept-alive connection the collector closed in the meantime: one fresh attempt.
    for (int attempt = 0;; ++attempt) {
      bool reused = conn_ != nullptr;
      if (!conn_) {
        auto c = Connection::Open(o_.host, o_.port, o_.tls, o_.timeout);
        if (!c.ok()) return c.status();
        conn_ = std::move(*c);
      }
      StatusOr<int> status = Exchange(request);
      if (!status.ok()) {
        conn_.reset();
        if (reused && attempt == 0 && !stopping_->load()) continue;
        return status.status();
      }
      if (*status / 100 == 2) break;
      conn_.reset();
      std::string what = "OTLP collector answered HTTP " + std::to_string(*status) + ": " +
                         response_body_.substr(0, 200);
      // 400 (it cannot parse the request) and 413 (too large) are not retryable as they are
      // (OTLP/HTTP spec): smaller batches isolate the event; one event alone is rejected.
      if (*status == 400 || *status == 413) {
        if (batch.size() > 1) return ResourceExhausted(what);
        rejected_.Add(batch.front().seq, what);
        break;
      }
      return Unavailable(what);  // 429, 5xx and the rest: retried
    }
    RecordPartialSuccess(batch);
    confirmed_ = batch.back().seq;
    return confirmed_;
  }

  StatusOr<uint64_t> Settle(bool /*final*/) override { return confirmed_; }
  void Reset() override { conn_.reset(); }
  [[nodiscard]] uint64_t confirmed() const override { return confirmed_; }
  Rejected TakeRejected() override { return std::exchange(rejected_, Rejected{}); }

 private:
  std::string Payload(const std::vector<Message>& batch) const {
    rapidjson::StringBuffer buf;
    JsonWriter w(buf);
    w.StartObject();
    w.Key("resourceLogs");
    w.StartArray();
    w.StartObject();
    w.Key("resource");
    w.StartObject();
    w.Key("attributes");
    w.StartArray();
    StringAttribute(w, "service.name", "dbwarden");
    StringAttribute(w, "service.version", DBWARDEN_VERSION);
    StringAttribute(w, "host.name", hostname_);
    w.EndArray();
    w.EndObject();
    w.Key("scopeLogs");
    w.StartArray();
    w.StartObject();
    w.Key("scope");
    w.StartObject();
    w.Key("name");
    w.String("dbwarden.audit");
    w.Key("version");
    w.String(DBWARDEN_VERSION);
    w.EndObject();
    w.Key("logRecords");
    w.StartArray();
    const std::string observed =
        std::to_string(std::chrono::duration_cast<std::chrono::nanoseconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count());
    for (const Message& m : batch) {
      w.StartObject();
      w.Key("timeUnixNano");
      w.String(std::to_string(m.ts_us * 1000).c_str());
      w.Key("observedTimeUnixNano");
      w.String(observed.c_str());
      auto [number, text] = Severity(m.severity);
      w.Key("severityNumber");
      w.Int(number);
      w.Key("severityText");
      w.String(text);
      w.Key("body");
      w.StartObject();
      w.Key("stringValue");
      w.String(m.body.data(), static_cast<rapidjson::SizeType>(m.body.size()));
      w.EndObject();
      w.Key("attributes");
      w.StartArray();
      IntAttribute(w, "dbwarden.seq", m.seq);
      StringAttribute(w, "event.name", "dbwarden." + m.kind);
      StringAttribute(w, "dbwarden.kind", m.kind);
      if (!m.session_id.empty()) StringAttribute(w, "dbwarden.session_id", m.session_id);
      StringAttribute(w, "dbwarden.format", audit::EventFormatName(o_.format));
      w.EndArray();
      w.EndObject();
    }
    w.EndArray();
    w.EndObject();
    w.EndArray();
    w.EndObject();
    w.EndArray();
    w.EndObject();
    return {buf.GetString(), buf.GetSize()};
  }

  // Writes the request and reads the response; its status code, the body in response_body_.
  StatusOr<int> Exchange(const std::string& request) {
    const Clock::time_point deadline = Clock::now() + o_.timeout;
    if (Status st = conn_->WriteAll(request, deadline); !st.ok()) return st;
    http::response_parser<http::string_body> parser;
    parser.header_limit(kMaxResponseHeader);
    parser.body_limit(kMaxResponseBody);
    std::string in;
    size_t used = 0;
    boost::beast::error_code ec;
    while (!parser.is_done()) {
      if (used < in.size()) {
        used += parser.put(boost::asio::buffer(in.data() + used, in.size() - used), ec);
        if (ec && ec != http::error::need_more)
          return Unavailable("OTLP collector's response: " + ec.message());
        // The parser takes the header and the body in separate calls: read only when it
        // needs more than is here.
        if (!ec && used < in.size()) continue;
        if (parser.is_done()) break;
      }
      // A response that never ends (an endless chunk extension) stops here.
      if (in.size() > kMaxResponseHeader + kMaxResponseBody)
        return Unavailable("OTLP collector's response is too large");
      // Not cut short by a stop: a request the collector took and did not answer would be
      // sent again by the next start. The deadline bounds it.
      if (Status st = conn_->ReadSome(&in, deadline); !st.ok()) {
        // A response delimited by the end of the connection. Nothing at all is no response:
        // Beast's put_eof would take it for a complete one, with the default status 200.
        if (!conn_->closed() || !parser.is_header_done()) return st;
        parser.put_eof(ec);
        if (ec || !parser.is_done()) return st;
      }
    }
    const auto& res = parser.get();
    response_body_ = res.body();
    if (!res.keep_alive()) conn_.reset();
    return static_cast<int>(res.result_int());
  }

  // Records the collector accepted the request with but reported rejecting
  // (partialSuccess.rejectedLogRecords; it does not say which: the batch's range is reported).
  void RecordPartialSuccess(const std::vector<Message>& batch) {
    if (response_body_.empty()) return;
    simdjson::dom::parser p;
    simdjson::dom::element doc;
    if (p.parse(response_body_).get(doc)) return;
    simdjson::dom::element rejected;
    if (doc.at_pointer("/partialSuccess/rejectedLogRecords").get(rejected)) return;
    int64_t n = 0;
    std::string_view text;
    if (rejected.get_int64().get(n) &&
        (rejected.get_string().get(text) ||
         std::from_chars(text.data(), text.data() + text.size(), n).ec != std::errc()))
      return;
    if (n <= 0) return;
    std::string_view why;
    if (doc.at_pointer("/partialSuccess/errorMessage").get_string().get(why)) why = {};
    if (rejected_.count == 0) {
      rejected_.first = batch.front().seq;
      rejected_.why = "OTLP partial success: " + std::string(why);
    }
    rejected_.count += static_cast<uint64_t>(n);
    rejected_.last = batch.back().seq;
  }

  const ExporterOptions o_;
  const std::atomic<bool>* stopping_;
  const std::string hostname_;
  std::unique_ptr<Connection> conn_;
  std::string response_body_;
  uint64_t confirmed_ = 0;
  Rejected rejected_;
};

}  // namespace

std::unique_ptr<Transport> MakeOtlpTransport(const ExporterOptions& o,
                                             const std::atomic<bool>* stopping) {
  return std::make_unique<OtlpTransport>(o, stopping);
}

}  // namespace dbw::exporter
