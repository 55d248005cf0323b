// EventSink: where producers hand audit events. Implementations never drop silently.
#pragma once

#include "userspace/audit/event.h"

namespace dbw::audit {

class EventSink {
 public:
  virtual ~EventSink() = default;
  // Never blocks on disk. An event that cannot be queued is counted and reported as an
  // audit_loss event and a metric.
  virtual void Submit(Event event) = 0;
};

}  // namespace dbw::audit
