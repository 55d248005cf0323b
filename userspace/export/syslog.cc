// RFC 5424 over TCP (RFC 6587 octet counting) or TLS (RFC 5425). TCP syslog has no
// acknowledgement, so a batch is confirmed once the receiver's TCP stack has acknowledged its
// last byte and the connection is still up `syslog_confirm_after` after it was written: a
// receiver that goes away closes or resets the connection, and what it may not have read is sent
// again on the next connection.
#include <unistd.h>

#include <algorithm>
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

// How long Settle waits past confirm_after for the receiver's TCP to acknowledge.
constexpr std::chrono::milliseconds kAckWait{500};

class SyslogTransport final : public Transport {
 public:
  explicit SyslogTransport(ExporterOptions o)
      : o_(std::move(o)),
        hostname_(Token(LocalHostName(), 255)),
        procid_(std::to_string(::getpid())) {}

  StatusOr<uint64_t> Send(const std::vector<Message>& batch) override {
    if (!conn_) {
      auto c = Connection::Open(o_.host, o_.port, o_.tls, o_.timeout);
      if (!c.ok()) return c.status();
      conn_ = std::move(*c);
    } else if (!conn_->Alive()) {
      return Closed();
    }
    std::string frames;
    for (const Message& m : batch) AppendFrame(m, &frames);
    if (Status st = conn_->WriteAll(frames, Clock::now() + o_.timeout); !st.ok()) return st;
    if (!batch.empty()) sent_.push_back({batch.back().seq, conn_->BytesWritten(), Clock::now()});
    return Confirm();
  }

  StatusOr<uint64_t> Settle(bool final) override {
    if (!conn_ || sent_.empty()) return confirmed_;
    // Wait until the oldest unconfirmed batch (stopping: the newest) is confirmed: its age past
    // confirm_after and its bytes acknowledged, which loopback or a LAN does within
    // milliseconds (kAckWait bounds it).
    const Sent& target = final ? sent_.back() : sent_.front();
    const uint64_t want = target.seq;
    const Clock::time_point until = target.at + o_.syslog_confirm_after + kAckWait;
    while (true) {
      auto c = Confirm();
      if (!c.ok() || *c >= want || Clock::now() >= until) return c;
      ::usleep(20'000);
    }
  }

  [[nodiscard]] uint64_t confirmed() const override { return confirmed_; }

  void Reset() override {
    conn_.reset();
    sent_.clear();
  }

 private:
  struct Sent {
    uint64_t seq;          // the batch's last event
    uint64_t end;          // socket bytes written on this connection through its last frame
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

  // The receiver went away. Whatever it acknowledged within confirm_after may still have been
  // in its memory (a receiver killed closes in order just like one stopped), so nothing more is
  // confirmed: the unconfirmed events are sent again.
  Status Closed() const {
    return Unavailable("syslog receiver " + o_.host + ":" + o_.port + " closed the connection");
  }

  // Confirms every batch whose bytes the receiver's TCP acknowledged, written at least
  // syslog_confirm_after ago, while the connection is still up.
  StatusOr<uint64_t> Confirm() {
    if (!conn_->Alive()) return Closed();
    auto queued = conn_->Unacknowledged();
    if (!queued.ok()) return queued.status();
    const uint64_t written = conn_->BytesWritten();
    const auto unacked = static_cast<uint64_t>(std::max(*queued, 0));
    const uint64_t acked = unacked > written ? 0 : written - unacked;
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
  std::deque<Sent> sent_;
  uint64_t confirmed_ = 0;
};

}  // namespace

std::unique_ptr<Transport> MakeSyslogTransport(const ExporterOptions& o) {
  return std::make_unique<SyslogTransport>(o);
}

}  // namespace dbw::exporter
