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
  OtlpTransport(const ExporterOptions& o, const std::atomic<bool>* stopping)
      : o_(o), stopping_(stopping) {
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    hostname_ = host;
  }

  StatusOr<uint64_t> Send(const std::vector<Message>& batch) override {
    if (batch.empty()) return confirmed_;
    std::string body = Payload(batch);
    std::string request = "POST " + o_.otlp_path + " HTTP/1.1\r\nHost: " + o_.host + ":" + o_.port +
                          "\r\nContent-Type: application/json\r\nUser-Agent: dbwarden/" +
                          DBWARDEN_VERSION + "\r\nContent-Length: " + std::to_string(body.size()) +
                          "\r\n";
    for (const auto& [k, v] : o_.headers) request += k + ": " + v + "\r\n";
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
      if (*status / 100 != 2) {
        conn_.reset();
        return Unavailable("OTLP collector answered HTTP " + std::to_string(*status) + ": " +
                           response_body_.substr(0, 200));
      }
      break;
    }
    RecordPartialSuccess();
    confirmed_ = batch.back().seq;
    return confirmed_;
  }

  StatusOr<uint64_t> Settle() override { return confirmed_; }
  void Reset() override { conn_.reset(); }

  uint64_t TakeRejected() override { return std::exchange(rejected_, 0); }

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
    parser.body_limit(1 << 20);
    std::string in;
    size_t used = 0;
    while (!parser.is_done()) {
      // Not cut short by a stop: a request the collector took and did not answer would be
      // sent again by the next start. The deadline bounds it.
      if (used == in.size()) {
        if (Status st = conn_->ReadSome(&in, deadline); !st.ok()) return st;
      }
      boost::beast::error_code ec;
      size_t n = parser.put(boost::asio::buffer(in.data() + used, in.size() - used), ec);
      used += n;
      if (ec == http::error::need_more) {
        if (Status st = conn_->ReadSome(&in, deadline); !st.ok()) return st;
        continue;
      }
      if (ec) return Unavailable("OTLP collector's response: " + ec.message());
    }
    const auto& res = parser.get();
    response_body_ = res.body();
    if (!res.keep_alive()) conn_.reset();
    return static_cast<int>(res.result_int());
  }

  void RecordPartialSuccess() {
    if (response_body_.empty()) return;
    simdjson::dom::parser p;
    simdjson::dom::element doc;
    if (p.parse(response_body_).get(doc)) return;
    simdjson::dom::element rejected;
    if (doc.at_pointer("/partialSuccess/rejectedLogRecords").get(rejected)) return;
    int64_t n = 0;
    std::string_view text;
    if (!rejected.get_int64().get(n) ||
        (!rejected.get_string().get(text) &&
         std::from_chars(text.data(), text.data() + text.size(), n).ec == std::errc()))
      rejected_ += static_cast<uint64_t>(std::max<int64_t>(n, 0));
  }

  const ExporterOptions o_;
  const std::atomic<bool>* stopping_;
  std::string hostname_;
  std::unique_ptr<Connection> conn_;
  std::string response_body_;
  uint64_t confirmed_ = 0;
  uint64_t rejected_ = 0;
};

}  // namespace

std::unique_ptr<Transport> MakeOtlpTransport(const ExporterOptions& o,
                                             const std::atomic<bool>* stopping) {
  return std::make_unique<OtlpTransport>(o, stopping);
}

}  // namespace dbw::exporter
