#include "userspace/export/exporter.h"

#include <fcntl.h>
#include <simdjson.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include "userspace/audit/event.h"
#include "userspace/common/logging.h"
#include "userspace/common/thread_name.h"

namespace dbw::exporter {

const char* KindName(Kind kind) {
  switch (kind) {
    case Kind::kSyslog:
      return "syslog";
    case Kind::kKafka:
      return "kafka";
    case Kind::kOtlp:
      return "otlp";
  }
  return "unknown";
}

namespace {

// Kinds that mean the audit trail itself is in question, and kinds that are refusals.
int SeverityOf(std::string_view kind, std::string_view action) {
  static const std::set<std::string_view> kCritical = {"audit_tamper", "audit_loss",
                                                       "witness_mismatch", "bypass", "tap_loss"};
  static const std::set<std::string_view> kWarning = {
      "login_failed", "protocol_violation", "connect_refused", "token_expired", "upstream_error"};
  if (kCritical.count(kind)) return 2;
  if (kWarning.count(kind) || action == "deny") return 4;
  return 5;
}

}  // namespace

StatusOr<Message> MakeMessage(const audit::StoredEvent& event, audit::EventFormat format) {
  Message m;
  m.seq = event.seq;
  m.ts_us = event.ts_us;
  thread_local simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(event.json).get(doc))
    return DataLoss("event " + std::to_string(event.seq) + " is not JSON");
  std::string_view kind, session, action;
  if (!doc["kind"].get_string().get(kind)) m.kind = kind;
  if (!doc["session_id"].get_string().get(session)) m.session_id = session;
  if (doc.at_pointer("/decision/action").get_string().get(action)) action = {};
  m.severity = SeverityOf(kind, action);
  auto body = audit::RenderEvent(format, event.json);
  if (!body.ok()) return body.status();
  m.body = std::move(*body);
  return m;
}

TransportFactory DefaultTransport() {
  return [](const ExporterOptions& o,
            const std::atomic<bool>* stopping) -> StatusOr<std::unique_ptr<Transport>> {
    switch (o.kind) {
      case Kind::kSyslog:
        return MakeSyslogTransport(o);
      case Kind::kOtlp:
        return MakeOtlpTransport(o, stopping);
      case Kind::kKafka:
        return MakeKafkaTransport(o, stopping);
    }
    return Internal("unknown exporter kind");
  };
}

Exporter::Exporter(ExporterOptions options, const std::string& state_dir, audit::AuditStore* log,
                   MetricsRegistry* metrics, TransportFactory transport)
    : o_(std::move(options)),
      cursor_path_(state_dir + "/export/" + o_.name + ".cursor"),
      log_(log),
      factory_(std::move(transport)),
      backoff_(o_.backoff) {
  const std::string label = "exporter=\"" + o_.name + "\"";
  exported_ = metrics->GetCounter("dbwarden_export_events_total",
                                  "Audit events each exporter's receiver confirmed", label);
  failures_ = metrics->GetCounter(
      "dbwarden_export_failures_total",
      "Failed connects and sends of each exporter (each is retried after a backoff)", label);
  resent_ = metrics->GetCounter(
      "dbwarden_export_resent_events_total",
      "Events sent again after a failure because their delivery was not confirmed", label);
  skipped_ = metrics->GetCounter(
      "dbwarden_export_skipped_events_total",
      "Events not exported: removed by audit retention before the exporter sent them, or "
      "stored records that cannot be read (each also an audit_loss event)",
      label);
  rejected_ = metrics->GetCounter(
      "dbwarden_export_rejected_events_total",
      "Events a receiver accepted the request with but reported rejecting (OTLP partial "
      "success; also audit_loss events)",
      label);
  lag_events_ = metrics->GetGauge("dbwarden_export_lag_events",
                                  "Audit events written that the exporter's receiver has not "
                                  "confirmed yet",
                                  label);
  lag_seconds_ = metrics->GetGauge(
      "dbwarden_export_lag_seconds",
      "Age of the oldest audit event the exporter's receiver has not confirmed (0: none)", label);
  up_ = metrics->GetGauge("dbwarden_export_up",
                          "1 while the exporter's last attempt to deliver succeeded", label);
}

Exporter::~Exporter() {
  Stop();
}

Status Exporter::Start() {
  auto transport = factory_(o_, &stopping_);
  if (!transport.ok())
    return {transport.status().code(), "export " + o_.name + ": " + transport.status().message()};
  transport_ = std::move(*transport);
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(cursor_path_).parent_path(), ec);
  if (ec) return Unavailable("export " + o_.name + ": " + ec.message());
  std::ifstream in(cursor_path_);
  if (in) {
    std::string text;
    std::getline(in, text);
    uint64_t seq = 0;
    auto [ptr, err] = std::from_chars(text.data(), text.data() + text.size(), seq);
    if (err != std::errc() || ptr != text.data() + text.size())
      return DataLoss("export " + o_.name + ": " + cursor_path_ + " does not hold a seq: \"" +
                      text + "\"");
    confirmed_ = seq;
    if (uint64_t head = log_->Stats().head_seq; seq > head) {
      // The audit log was replaced (restored, or created anew) since: its events from the
      // beginning may never have been exported.
      DBW_LOG(kWarning) << "export " << o_.name << ": the cursor (" << seq
                        << ") is past the audit log's newest event (" << head
                        << "); exporting the log from its beginning";
      confirmed_ = 0;
      if (Status st = SaveCursor(0); !st.ok()) return st;
    }
  } else {
    fresh_ = true;
    confirmed_ = o_.start == Start::kEnd ? log_->Stats().head_seq : 0;
    if (Status st = SaveCursor(confirmed_); !st.ok()) return st;
  }
  DBW_LOG(kInfo) << "export " << o_.name << ": " << KindName(o_.kind) << ", "
                 << audit::EventFormatName(o_.format) << ", from seq " << confirmed_ + 1;
  thread_ = std::thread([this] { Run(); });
  return Status::Ok();
}

void Exporter::Stop() {
  RequestStop();
  Join();
}

void Exporter::RequestStop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
}

void Exporter::Join() {
  if (thread_.joinable()) thread_.join();
}

void Exporter::Sleep(std::chrono::milliseconds d) {
  std::unique_lock lock(mu_);
  wake_.wait_for(lock, d, [this] { return stopping_.load(); });
}

Status Exporter::SaveCursor(uint64_t seq) const {
  // Written beside and renamed over: a crash leaves the old cursor or the new one.
  const std::string tmp = cursor_path_ + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Unavailable("cannot write " + tmp + ": " + std::strerror(errno));
  const std::string text = std::to_string(seq) + "\n";
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
            ::fdatasync(fd) == 0;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), cursor_path_.c_str()) != 0)
    return Unavailable("cannot write " + cursor_path_ + ": " + std::strerror(errno));
  return Status::Ok();
}

void Exporter::Report(std::string detail, uint64_t count) {
  DBW_LOG(kWarning) << "export " << o_.name << ": " << detail;
  audit::Event e;
  e.kind = audit::EventKind::kAuditLoss;
  e.source = "agent";
  e.detail = "export " + o_.name + ": " + std::move(detail);
  e.count = count;
  log_->Submit(std::move(e));
}

void Exporter::Advance(uint64_t confirmed) {
  if (Rejected r = transport_->TakeRejected(); r.count > 0) {
    rejected_->Add(r.count);
    Report("the receiver rejected " + std::to_string(r.count) + " events (seq " +
               std::to_string(r.first) + " to " + std::to_string(r.last) + "): " + r.why,
           r.count);
  }
  const uint64_t before = confirmed_.load();
  if (confirmed <= before) return;
  exported_->Add(confirmed - before);
  confirmed_ = confirmed;
  if (Status st = SaveCursor(confirmed); !st.ok()) {
    DBW_LOG(kWarning) << "export " << o_.name << ": " << st.message()
                      << " (events since the last saved cursor are sent again after a restart)";
  }
}

uint64_t Exporter::Fail(const Status& st, uint64_t sent) {
  Advance(transport_->confirmed());  // a prefix of the failed batch may be confirmed
  const uint64_t confirmed = confirmed_.load();
  failures_->Add();
  up_->Set(0);
  resent_->Add(sent > confirmed ? sent - confirmed : 0);
  if (st.message() != last_failure_) {
    DBW_LOG(kWarning) << "export " << o_.name << ": " << st.message() << "; retrying in "
                      << backoff_.count() << " ms";
    last_failure_ = st.message();
  }
  transport_->Reset();
  Sleep(backoff_);
  backoff_ = std::min(backoff_ * 2, o_.max_backoff);
  return confirmed;
}

void Exporter::UpdateLag() {
  auto now = std::chrono::steady_clock::now();
  if (now - lag_checked_ < std::chrono::seconds(1)) return;
  lag_checked_ = now;
  const uint64_t head = log_->Stats().head_seq;
  const uint64_t confirmed = confirmed_.load();
  lag_events_->Set(static_cast<int64_t>(head > confirmed ? head - confirmed : 0));
  int64_t age_us = 0;
  if (head > confirmed) {
    auto oldest = log_->ReadAfter(confirmed, 1);
    if (oldest.ok() && !oldest->empty())
      age_us = std::max<int64_t>(0, audit::NowMicros() - oldest->front().ts_us);
  }
  lag_seconds_->Set(age_us / 1'000'000);
}

void Exporter::Run() {
  SetThreadName("dbw-export");
  // Keeps lag and up current while a transport waits on its receiver (Kafka's outages).
  transport_->SetWaitHook([this](bool stalled) {
    UpdateLag();
    if (stalled) up_->Set(0);
  });
  uint64_t sent = confirmed_.load();  // the read position: everything through it was sent
  size_t limit = o_.batch;            // smaller after a receiver refused a batch as too large
  std::vector<Message> batch;
  while (!stopping_.load()) {
    UpdateLag();
    auto events = log_->ReadAfter(sent, limit);
    if (!events.ok() && events.status().code() == StatusCode::kDataLoss) {
      // A stored record that cannot be read (damaged or edited; the chain check reports it as
      // audit_tamper). Found by reading one at a time; then reported and stepped past, so one
      // bad record does not stop the export of everything after it.
      if (limit > 1) {
        limit = 1;
        continue;
      }
      const uint64_t bad = sent + 1;
      if (bad > unreadable_reported_) {
        unreadable_reported_ = bad;
        skipped_->Add(1);
        Report("event " + std::to_string(bad) + " cannot be read from the audit log (" +
                   events.status().message() + ") and is not exported",
               1);
      }
      sent = bad;
      continue;
    }
    if (!events.ok()) {
      sent = Fail(events.status(), sent);
      continue;
    }
    if (events->empty()) {
      auto c = transport_->Settle(false);
      if (!c.ok()) {
        sent = Fail(c.status(), sent);
        continue;
      }
      Advance(*c);
      // Nothing new. While sent events wait for confirmation, look again soon.
      log_->WaitForNewer(sent, std::chrono::milliseconds(sent == confirmed_.load() ? 250 : 50));
      continue;
    }
    // Retention deleted these before they were exported (a receiver away for longer than
    // audit.retention); reported once. A new exporter starting at the beginning expects it.
    if (uint64_t first = events->front().seq; first > sent + 1 && first - 1 > gap_reported_) {
      gap_reported_ = first - 1;
      if (!fresh_) {
        skipped_->Add(first - sent - 1);
        Report("events " + std::to_string(sent + 1) + " to " + std::to_string(first - 1) +
                   " were removed by audit retention before they were exported",
               first - sent - 1);
      }
    }
    fresh_ = false;
    batch.clear();
    for (const auto& e : *events) {
      auto m = MakeMessage(e, o_.format);
      if (!m.ok()) {
        // Stored events are the store's own JSON; one that is not is sent as stored.
        DBW_LOG(kWarning) << "export " << o_.name << ": " << m.status().message();
        Message raw;
        raw.seq = e.seq;
        raw.ts_us = e.ts_us;
        raw.body = e.json;
        m = std::move(raw);
      }
      batch.push_back(std::move(*m));
    }
    auto c = transport_->Send(batch);
    if (!c.ok()) {
      if (c.status().code() == StatusCode::kResourceExhausted && batch.size() > 1)
        limit = std::max<size_t>(1, batch.size() / 2);
      sent = Fail(c.status(), sent);
      continue;
    }
    sent = batch.back().seq;
    limit = std::min(o_.batch, limit * 2);
    backoff_ = o_.backoff;
    up_->Set(1);
    last_failure_.clear();
    Advance(*c);
  }
  // Confirm what was sent (syslog: the receiver held the connection long enough), so a
  // restart does not send it again.
  if (sent > confirmed_.load()) {
    auto c = transport_->Settle(true);
    if (c.ok()) Advance(*c);
  }
  transport_->Reset();
}

ExportService::~ExportService() {
  Stop();
}

void ExportService::Stop() {
  for (auto& e : exporters_) e->RequestStop();
  for (auto& e : exporters_) e->Join();
}

StatusOr<std::unique_ptr<ExportService>> ExportService::Start(
    const std::vector<ExporterOptions>& all, const std::string& state_dir, audit::AuditStore* log,
    MetricsRegistry* metrics) {
  auto service = std::unique_ptr<ExportService>(new ExportService());
  for (const auto& o : all) {
    auto e = std::make_unique<Exporter>(o, state_dir, log, metrics);
    if (Status st = e->Start(); !st.ok()) return st;
    service->exporters_.push_back(std::move(e));
  }
  return service;
}

}  // namespace dbw::exporter
