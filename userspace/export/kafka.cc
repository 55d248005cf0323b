// Kafka through librdkafka: an idempotent producer (no duplicates or reordering from its own
// retries), keyed by session so one session's events stay in one partition, in order. A batch
// is confirmed when every one of its messages has its delivery report; librdkafka retries a
// broker that is away for as long as it takes (message.timeout.ms 0), so an outage delays the
// export and never drops or reorders it.
#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <utility>

#include <librdkafka/rdkafka.h>

#include "userspace/common/logging.h"
#include "userspace/export/transport.h"

namespace dbw::exporter {
namespace {

class KafkaTransport final : public Transport {
 public:
  KafkaTransport(ExporterOptions o, const std::atomic<bool>* stopping)
      : o_(std::move(o)), stopping_(stopping) {}
  ~KafkaTransport() override { Destroy(); }

  Status Create() {
    std::array<char, 512> err{};
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    auto set = [&](const std::string& k, const std::string& v) -> Status {
      if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err.data(), err.size()) != RD_KAFKA_CONF_OK)
        return InvalidArgument("kafka property " + k + ": " + err.data());
      return Status::Ok();
    };
    std::vector<std::pair<std::string, std::string>> props = {
        {"client.id", "dbwarden-" + o_.name},
        {"linger.ms", "5"},
        // Java's partitioner: the same key lands in the same partition as other producers'.
        {"partitioner", "murmur2_random"},
    };
    for (const auto& p : o_.kafka_properties) props.push_back(p);
    // Not overridable: what at-least-once, in order, without the producer's own duplicates needs.
    props.emplace_back("bootstrap.servers", o_.brokers);
    props.emplace_back("enable.idempotence", "true");
    props.emplace_back("acks", "all");
    props.emplace_back("message.timeout.ms", "0");
    for (const auto& [k, v] : props) {
      if (Status st = set(k, v); !st.ok()) {
        rd_kafka_conf_destroy(conf);
        return st;
      }
    }
    rd_kafka_conf_set_opaque(conf, this);
    rd_kafka_conf_set_dr_msg_cb(conf, &KafkaTransport::OnDelivery);
    rd_kafka_conf_set_error_cb(conf, &KafkaTransport::OnError);
    rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err.data(), err.size());
    if (rk_ == nullptr) {
      rd_kafka_conf_destroy(conf);
      return InvalidArgument(std::string("kafka producer: ") + err.data());
    }
    return Status::Ok();
  }

  StatusOr<uint64_t> Send(const std::vector<Message>& batch) override {
    if (rk_ == nullptr) {
      if (Status st = Create(); !st.ok()) return st;
    }
    results_.clear();
    last_progress_ = std::chrono::steady_clock::now();
    Status produced = Produce(batch);
    // Every message produced gets its report (librdkafka retries a broker outage for as long as
    // it takes), unless the agent stops.
    while (outstanding_ > 0) {
      if (Status st = Serve(); !st.ok()) return st;
    }
    // Confirmed: the longest prefix of the batch delivered or rejected for good.
    for (const Message& m : batch) {
      auto r = results_.find(m.seq);
      if (r == results_.end()) break;  // not produced
      if (r->second != RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (!Permanent(r->second))
          return Unavailable("kafka delivery of event " + std::to_string(m.seq) + ": " +
                             rd_kafka_err2str(r->second));
        rejected_.Add(m.seq, std::string("kafka: ") + rd_kafka_err2str(r->second));
      }
      confirmed_ = m.seq;
    }
    if (!produced.ok()) return produced;
    return confirmed_;
  }

  StatusOr<uint64_t> Settle(bool /*final*/) override { return confirmed_; }
  void Reset() override { Destroy(); }
  [[nodiscard]] uint64_t confirmed() const override { return confirmed_; }
  Rejected TakeRejected() override { return std::exchange(rejected_, Rejected{}); }

 private:
  // Errors that sending the message again cannot fix: the broker refuses the message itself.
  static bool Permanent(rd_kafka_resp_err_t e) {
    return e == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE || e == RD_KAFKA_RESP_ERR_INVALID_MSG ||
           e == RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE ||
           e == RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE || e == RD_KAFKA_RESP_ERR_INVALID_RECORD;
  }

  // Hands the batch to librdkafka, each message tagged with its seq; stops at the first message
  // it refuses for a reason other than a full queue (a message it refuses as too large is
  // rejected for good and the batch goes on).
  Status Produce(const std::vector<Message>& batch) {
    for (const Message& m : batch) {
      const std::string key = m.session_id.empty() ? std::string("agent") : m.session_id;
      const std::string seq = std::to_string(m.seq);
      while (true) {
        rd_kafka_resp_err_t e = rd_kafka_producev(
            rk_, RD_KAFKA_V_TOPIC(o_.topic.c_str()),
            RD_KAFKA_V_KEY(const_cast<char*>(key.data()), key.size()),
            RD_KAFKA_V_VALUE(const_cast<char*>(m.body.data()), m.body.size()),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_TIMESTAMP(m.ts_us / 1000),
            RD_KAFKA_V_OPAQUE(reinterpret_cast<void*>(static_cast<uintptr_t>(m.seq))),
            RD_KAFKA_V_HEADER("dbwarden.seq", seq.data(), static_cast<ssize_t>(seq.size())),
            RD_KAFKA_V_HEADER("dbwarden.kind", m.kind.data(), static_cast<ssize_t>(m.kind.size())),
            RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
          ++outstanding_;
          break;
        }
        if (e == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE) {
          results_[m.seq] = e;
          break;
        }
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
          return Unavailable("kafka produce of event " + seq + ": " + rd_kafka_err2str(e));
        if (Status st = Serve(); !st.ok()) return st;
      }
    }
    return Status::Ok();
  }

  // Serves delivery reports for a moment; fails on a fatal producer error, or when the agent
  // stops and the reports have not come within the exporter's timeout (what is outstanding then
  // is sent again by the next start).
  Status Serve() {
    rd_kafka_poll(rk_, 100);
    std::array<char, 512> err{};
    if (rd_kafka_fatal_error(rk_, err.data(), err.size()) != RD_KAFKA_RESP_ERR_NO_ERROR)
      return Unavailable(std::string("kafka producer failed: ") + err.data());
    const auto now = std::chrono::steady_clock::now();
    if (wait_hook_) wait_hook_(now - last_progress_ > o_.timeout);
    if (stopping_->load()) {
      if (!stop_seen_) stop_seen_ = now;
      if (now - *stop_seen_ > o_.timeout)
        return Unavailable("stopping with " + std::to_string(outstanding_) +
                           " deliveries unconfirmed");
    }
    return Status::Ok();
  }

  void Destroy() {
    if (rk_ == nullptr) return;
    // What is still queued or in flight is sent again from the confirmed point.
    rd_kafka_purge(rk_, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_poll(rk_, 0);
    rd_kafka_destroy(rk_);
    rk_ = nullptr;
    outstanding_ = 0;
  }

  static void OnDelivery(rd_kafka_t*, const rd_kafka_message_t* msg, void* opaque) {
    auto* self = static_cast<KafkaTransport*>(opaque);
    if (self->outstanding_ > 0) --self->outstanding_;
    self->results_[static_cast<uint64_t>(reinterpret_cast<uintptr_t>(msg->_private))] = msg->err;
    self->last_progress_ = std::chrono::steady_clock::now();
  }

  static void OnError(rd_kafka_t*, int err, const char* reason, void* opaque) {
    auto* self = static_cast<KafkaTransport*>(opaque);
    // Transient broker errors are retried by librdkafka; say so once per change.
    std::string what =
        std::string(rd_kafka_err2name(static_cast<rd_kafka_resp_err_t>(err))) + ": " + reason;
    if (what != self->last_error_) {
      DBW_LOG(kWarning) << "export " << self->o_.name << ": kafka: " << what;
      self->last_error_ = std::move(what);
    }
  }

  const ExporterOptions o_;
  const std::atomic<bool>* stopping_;
  rd_kafka_t* rk_ = nullptr;
  size_t outstanding_ = 0;                           // produced, no delivery report yet
  std::map<uint64_t, rd_kafka_resp_err_t> results_;  // this batch's reports by seq
  std::chrono::steady_clock::time_point last_progress_;
  Rejected rejected_;
  std::string last_error_;
  uint64_t confirmed_ = 0;
  std::optional<std::chrono::steady_clock::time_point> stop_seen_;
};

}  // namespace

Status CheckKafkaProperty(const std::string& key, const std::string& value) {
  std::array<char, 512> err{};
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_res_t res =
      rd_kafka_conf_set(conf, key.c_str(), value.c_str(), err.data(), err.size());
  rd_kafka_conf_destroy(conf);
  if (res != RD_KAFKA_CONF_OK) return InvalidArgument(err.data());
  return Status::Ok();
}

StatusOr<std::unique_ptr<Transport>> MakeKafkaTransport(const ExporterOptions& o,
                                                        const std::atomic<bool>* stopping) {
  auto t = std::make_unique<KafkaTransport>(o, stopping);
  if (Status st = t->Create(); !st.ok()) return st;
  return std::unique_ptr<Transport>(std::move(t));
}

}  // namespace dbw::exporter
