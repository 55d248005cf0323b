// JsonlSink: one writer thread, bounded queue, losses counted and written as audit_loss.
#include "userspace/audit/jsonl_sink.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>

#include "userspace/audit/event_json.h"
#include "userspace/common/logging.h"
#include "userspace/common/thread_name.h"

namespace dbw::audit {
namespace {

constexpr size_t kWakeThreshold = 256;
constexpr std::chrono::milliseconds kMaxDelay{20};

// Our own lines start with {"seq":N — read N from the last complete line.
uint64_t LastSeq(int fd) {
  off_t size = ::lseek(fd, 0, SEEK_END);
  if (size <= 0) return 0;
  size_t tail = static_cast<size_t>(std::min<off_t>(size, 1 << 20));
  std::string buf(tail, '\0');
  if (::pread(fd, buf.data(), tail, size - static_cast<off_t>(tail)) != static_cast<ssize_t>(tail))
    return 0;
  while (!buf.empty() && buf.back() == '\n') buf.pop_back();
  size_t nl = buf.rfind('\n');
  std::string_view last(buf);
  if (nl != std::string::npos) last = last.substr(nl + 1);
  constexpr std::string_view kPrefix = "{\"seq\":";
  if (!last.starts_with(kPrefix)) return 0;
  uint64_t seq = 0;
  std::from_chars(last.data() + kPrefix.size(), last.data() + last.size(), seq);
  return seq;
}

}  // namespace

StatusOr<std::unique_ptr<JsonlSink>> JsonlSink::Open(const std::string& path,
                                                     size_t queue_capacity) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (fd < 0) return Unavailable("cannot open audit file " + path + ": " + std::strerror(errno));
  uint64_t next = LastSeq(fd) + 1;
  return std::unique_ptr<JsonlSink>(new JsonlSink(fd, next, queue_capacity));
}

JsonlSink::JsonlSink(int fd, uint64_t next_seq, size_t capacity)
    : fd_(fd), capacity_(capacity), next_seq_(next_seq) {
  auto& m = MetricsRegistry::Global();
  written_ = m.GetCounter("dbwarden_audit_events_written_total", "Audit events written");
  dropped_total_ = m.GetCounter("dbwarden_audit_events_dropped_total",
                                "Audit events dropped because the queue was full");
  queue_depth_ = m.GetGauge("dbwarden_audit_queue_depth", "Audit events waiting to be written");
  thread_ = std::thread([this] { Run(); });
}

JsonlSink::~JsonlSink() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
  ::close(fd_);
}

void JsonlSink::Submit(Event event) {
  Enqueue(std::move(event), nullptr);
}

void JsonlSink::SubmitAndWait(Event event, CommitCallback done) {
  Enqueue(std::move(event), std::move(done));
}

void JsonlSink::Enqueue(Event event, CommitCallback done) {
  bool waiter = static_cast<bool>(done);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (queue_.size() >= capacity_) {
      ++lost_;
      dropped_total_->Add();
      if (done) done(ResourceExhausted("audit queue full"), 0);
      return;
    }
    if (event.ts_us == 0) event.ts_us = NowMicros();
    queue_.push_back(Queued{std::move(event), std::move(done)});
    ++submitted_;
    queue_depth_->Set(static_cast<int64_t>(queue_.size()));
    // The writer wakes on its own every kMaxDelay; waking it per event would cost a futex
    // call and a context switch per statement on the query path.
    // A waiting producer is woken at once: it holds a statement back until its event is written.
    if (queue_.size() < kWakeThreshold && !waiter) return;
  }
  cv_.notify_one();
}

void JsonlSink::Flush() {
  std::unique_lock<std::mutex> lock(mu_);
  uint64_t target = submitted_;
  flush_requested_ = true;
  cv_.notify_one();
  flushed_cv_.wait(lock, [&] { return done_ >= target; });
}

void JsonlSink::Run() {
  SetThreadName("dbw-audit");
  std::deque<Queued> batch;
  while (true) {
    uint64_t lost = 0;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, kMaxDelay, [this] {
        return stop_ || flush_requested_ || queue_.size() >= kWakeThreshold ||
               (!queue_.empty() && queue_.back().done);
      });
      flush_requested_ = false;
      if (stop_ && queue_.empty() && lost_ == 0) return;
      if (queue_.empty() && lost_ == 0) continue;
      batch.swap(queue_);
      lost = lost_;
      lost_ = 0;
      queue_depth_->Set(0);
    }
    WriteBatch(&batch, lost);
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ += batch.size();
    }
    flushed_cv_.notify_all();
    batch.clear();
  }
}

void JsonlSink::WriteBatch(std::deque<Queued>* batch, uint64_t lost) {
  std::string out;
  out.reserve(batch->size() * 512);
  if (lost > 0) {
    Event loss;
    loss.kind = EventKind::kAuditLoss;
    loss.source = "agent";
    loss.ts_us = NowMicros();
    loss.count = lost;
    loss.detail = "audit queue full; events dropped";
    loss.seq = next_seq_++;
    AppendEventJson(loss, &out);
    out += '\n';
  }
  for (Queued& q : *batch) {
    q.event.seq = next_seq_++;
    AppendEventJson(q.event, &out);
    out += '\n';
  }
  Status status;
  size_t off = 0;
  while (off < out.size()) {
    ssize_t n = ::write(fd_, out.data() + off, out.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      DBW_LOG(kError) << "audit write failed: " << std::strerror(errno);
      dropped_total_->Add(batch->size());
      status = Unavailable(std::string("audit write failed: ") + std::strerror(errno));
      break;
    }
    off += static_cast<size_t>(n);
  }
  if (status.ok()) written_->Add(batch->size());
  for (Queued& q : *batch)
    if (q.done) q.done(status, q.event.seq);
}

}  // namespace dbw::audit
