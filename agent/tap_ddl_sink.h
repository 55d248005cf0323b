// The tap's events on their way to the audit log: a schema change the tap saw (a session that
// did not come through the relay, or any other on the host) makes every relay worker read its
// masking catalog again before its next masked statement, so a view or function redefined
// behind the relay's back is not judged by its old definition (docs/relay.md#the-catalog).
#pragma once

#include <utility>

#include "userspace/audit/sink.h"
#include "userspace/relay/catalog.h"
#include "userspace/sql/facts.h"

namespace dbw::agent {

class TapDdlSink : public audit::EventSink {
 public:
  explicit TapDdlSink(audit::EventSink* next) : next_(next) {}

  void Submit(audit::Event event) override {
    Watch(event);
    next_->Submit(std::move(event));
  }
  void SubmitAndWait(audit::Event event, CommitCallback done) override {
    Watch(event);
    next_->SubmitAndWait(std::move(event), std::move(done));
  }

 private:
  static void Watch(const audit::Event& e) {
    if (e.kind == audit::EventKind::kStatement && e.statement && e.statement->facts &&
        (e.statement->facts->AllRisks() & sql::kRiskSchemaChange) != 0)
      relay::CatalogCache::InvalidateEverywhere();
  }

  audit::EventSink* next_;
};

}  // namespace dbw::agent
