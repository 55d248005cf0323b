// JsonlSink: audit events appended as JSON lines to a file by one writer thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

#include "userspace/audit/sink.h"
#include "userspace/common/metrics.h"
#include "userspace/common/status.h"

namespace dbw::audit {

class JsonlSink : public EventSink {
 public:
  // Opens (appending) `path`; the sequence continues from the last event already in it.
  static StatusOr<std::unique_ptr<JsonlSink>> Open(const std::string& path, size_t queue_capacity);
  ~JsonlSink() override;

  void Submit(Event event) override;
  void SubmitAndWait(Event event, CommitCallback done) override;
  // Blocks until every event submitted before the call is written (tests, shutdown).
  void Flush();
  uint64_t dropped() const { return dropped_total_->value(); }

 private:
  JsonlSink(int fd, uint64_t next_seq, size_t capacity);
  void Run();
  struct Queued {
    Event event;
    CommitCallback done;  // may be empty
  };
  void Enqueue(Event event, CommitCallback done);
  void WriteBatch(std::deque<Queued>* batch, uint64_t lost);

  int fd_;
  size_t capacity_;
  uint64_t next_seq_;  // writer thread only
  Counter* written_;
  Counter* dropped_total_;
  Gauge* queue_depth_;

  std::mutex mu_;  // guards queue_, lost_, stop_, flush_requested_, submitted_, done_
  std::condition_variable cv_;
  std::condition_variable flushed_cv_;
  std::deque<Queued> queue_;
  uint64_t lost_ = 0;  // dropped since the last audit_loss event
  uint64_t submitted_ = 0;
  uint64_t done_ = 0;
  bool stop_ = false;
  bool flush_requested_ = false;
  std::thread thread_;
};

}  // namespace dbw::audit
