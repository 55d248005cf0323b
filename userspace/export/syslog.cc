// RFC 5424 over TCP (RFC 6587 octet counting) or TLS (RFC 5425). TCP syslog has no
// acknowledgement, so a batch is confirmed once the receiver's TCP stack has acknowledged its
// last byte and the connection is still up `syslog_confirm_after` after it was written: a
// receiver that goes away closes or resets the connection, and what it may not have read is sent
// again on the next connection.
#include <unistd.h>

#include <deque>

#include "userspace/audit/event_json.h"
#include "userspace/export/connection.h"
#include "userspace/export/transport.h"

namespace dbw::exporter {
namespace {

// PRINTUSASCII (33..126), at most `max` characters; "-" when empty.
std::string Token(std::string_view s, size_t max) {
  std::string out;
  for (char c : s) {
    if (out.size() == max) break;
    if (c >= 33 && c <= 126) out += c;
  }
  return out.empty() ? "-" : out;
}

// An SD-PARAM value: '"', '\' and ']' escaped (RFC 5424 section 6.3.3).
void AppendParamValue(std::string_view v, std::string* out) {
  for (char c : v) {
    if (c == '"' || c == '\\' || c == ']') *out += '\\';
    *out += c;
  }
}

std::string HostName() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "-";
  return Token(buf, 255);
}

class SyslogTransport final : public Transport {
 public:
  explicit SyslogTransport(const ExporterOptions& o)
      : o_(o), hostname_(HostName()), procid_(std::to_string(::getpid())) {}

  StatusOr<uint64_t> Send(const std::vector<Message>& batch) override {
    if (!conn_) {
      auto c = Connection::Open(o_.host, o_.port, o_.tls, o_.timeout);
      if (!c.ok()) return c.status();
      conn_ = std::move(*c);
      written_ = 0;
    } else if (!conn_->Alive()) {
      return Unavailable("syslog receiver " + o_.host + ":" + o_.port + " closed the connection");
    }
    std::string frames;
    for (const Message& m : batch) AppendFrame(m, &frames);
    if (Status st = conn_->WriteAll(frames, Clock::now() + o_.timeout); !st.ok()) return st;
    written_ += frames.size();
    if (!batch.empty()) sent_.push_back({batch.back().seq, written_, Clock::now()});
    return Confirm();
  }

  StatusOr<uint64_t> Settle() override {
    if (!conn_ || sent_.empty()) return confirmed_;
    // Wait until the oldest unconfirmed batch is old enough to confirm (also when stopping: at
    // most syslog_confirm_after, and a restart then need not send it again).
    Clock::time_point until = sent_.front().at + o_.syslog_confirm_after;
    while (Clock::now() < until) {
      if (!conn_->Alive()) return Unavailable("syslog receiver closed the connection");
      ::usleep(20'000);
    }
    return Confirm();
  }

  void Reset() override {
    conn_.reset();
    sent_.clear();
  }

 private:
  struct Sent {
    uint64_t seq;          // the batch's last event
    uint64_t end;          // bytes written on this connection through its last frame
    Clock::time_point at;  // when it was written
  };

  void AppendFrame(const Message& m, std::string* out) const {
    std::string msg;
    msg.reserve(m.body.size() + 200);
    msg += '<';
    msg += std::to_string(o_.syslog_facility * 8 + m.severity);
    msg += ">1 ";
    msg += audit::FormatTimestamp(m.ts_us);
    msg += ' ';
    msg += hostname_;
    msg += ' ';
    msg += Token(o_.syslog_app_name, 48);
    msg += ' ';
    msg += procid_;
    msg += ' ';
    msg += Token(m.kind, 32);
    // 32473: the enterprise number RFC 5612 reserves for documentation and examples.
    msg += " [dbwarden@32473 seq=\"";
    msg += std::to_string(m.seq);
    msg += '"';
    if (!m.session_id.empty()) {
      msg += " session=\"";
      AppendParamValue(m.session_id, &msg);
      msg += '"';
    }
    msg += "] ";
    msg += m.body;
    *out += std::to_string(msg.size());
    *out += ' ';
    *out += msg;
  }

  // Confirms every batch whose bytes the receiver's TCP acknowledged, written at least
  // syslog_confirm_after ago, while the connection is still up.
  StatusOr<uint64_t> Confirm() {
    if (!conn_->Alive()) return Unavailable("syslog receiver closed the connection");
    auto queued = conn_->Unacknowledged();
    if (!queued.ok()) return queued.status();
    const uint64_t acked = written_ - static_cast<uint64_t>(*queued);
    const Clock::time_point now = Clock::now();
    while (!sent_.empty() && sent_.front().end <= acked &&
           now - sent_.front().at >= o_.syslog_confirm_after) {
      confirmed_ = sent_.front().seq;
      sent_.pop_front();
    }
    return confirmed_;
  }

  const ExporterOptions o_;
  const std::string hostname_;
  const std::string procid_;
  std::unique_ptr<Connection> conn_;
  uint64_t written_ = 0;
  std::deque<Sent> sent_;
  uint64_t confirmed_ = 0;
};

}  // namespace

std::unique_ptr<Transport> MakeSyslogTransport(const ExporterOptions& o) {
  return std::make_unique<SyslogTransport>(o);
}

}  // namespace dbw::exporter
