// EventSink: where producers hand audit events. Implementations never drop silently.
#pragma once

#include <cstdint>
#include <functional>

#include "userspace/audit/event.h"
#include "userspace/common/status.h"

namespace dbw::audit {

class EventSink {
 public:
  virtual ~EventSink() = default;
  // Never blocks on disk. An event that cannot be queued is counted and reported as an
  // audit_loss event and a metric.
  virtual void Submit(Event event) = 0;

  // Enqueues `event` and calls `done` (on the sink's own thread, or at once on the calling
  // thread when the event is already durable at its level) once it is durable at its level,
  // with the error if it could not be written. A full queue calls `done` at once with
  // kResourceExhausted. The relay's audit-before-forward waits for this.
  using CommitCallback = std::function<void(const Status&, uint64_t seq)>;
  virtual void SubmitAndWait(Event event, CommitCallback done) = 0;
};

}  // namespace dbw::audit
