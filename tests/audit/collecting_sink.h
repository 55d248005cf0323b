// CollectingSink: an audit::EventSink for unit tests that keeps every event, in order; commits
// succeed at once (seq = the event's position, from 1). Single-threaded use.
#pragma once

#include <utility>
#include <vector>

#include "userspace/audit/sink.h"

namespace dbw::audit {

class CollectingSink : public EventSink {
 public:
  void Submit(Event event) override { events.push_back(std::move(event)); }
  void SubmitAndWait(Event event, CommitCallback done) override {
    events.push_back(std::move(event));
    done(Status::Ok(), events.size());
  }
  std::vector<Event> events;
};

}  // namespace dbw::audit
