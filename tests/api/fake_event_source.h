// An in-memory EventSource for API tests: filtering, newest-first pages with a seq cursor,
// ReadAfter and a WaitForNewer that wakes on Append.
#pragma once

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <vector>

#include "userspace/api/event_source.h"

namespace dbw::api::testing {

struct FakeEvent {
  std::string kind = "statement";
  std::string session;
  std::string db_user;
  std::string action;
  std::string fingerprint;
  std::string sql;
  int64_t ts_us = 0;
  std::string detail;
};

class FakeEventSource : public EventSource {
 public:
  uint64_t Append(const FakeEvent& e) {
    std::lock_guard lock(mu_);
    Row row{e, audit::StoredEvent{}};
    row.stored.seq = rows_.size() + 1;
    row.stored.ts_us = e.ts_us;
    std::string j = "{\"seq\":" + std::to_string(row.stored.seq) + ",\"ts\":\"2024-05-01T00:00:0" +
                    std::to_string(row.stored.seq % 10) + "Z\",\"kind\":\"" + e.kind +
                    "\",\"source\":\"relay\"";
    if (!e.session.empty()) j += ",\"session_id\":\"" + e.session + "\",\"target\":\"main\"";
    if (!e.db_user.empty()) j += ",\"principal\":{\"db_user\":\"" + e.db_user + "\"}";
    if (!e.fingerprint.empty()) {
      j += ",\"statement\":{\"sql\":\"" + e.sql + "\",\"fingerprint\":\"" + e.fingerprint + "\"}";
    }
    if (!e.action.empty()) j += ",\"decision\":{\"action\":\"" + e.action + "\"}";
    if (!e.detail.empty()) j += ",\"detail\":\"" + e.detail + "\"";
    j += "}";
    row.stored.json = j;
    rows_.push_back(row);
    cv_.notify_all();
    return row.stored.seq;
  }

  StatusOr<audit::QueryResult> Query(const audit::EventFilter& f, size_t limit,
                                     const std::string& cursor) const override {
    std::lock_guard lock(mu_);
    uint64_t before = rows_.size() + 1;
    if (!cursor.empty()) {
      if (cursor.find_first_not_of("0123456789") != std::string::npos) {
        return InvalidArgument("bad cursor");
      }
      before = std::stoull(cursor);
    }
    audit::QueryResult out;
    for (size_t i = before - 1; i >= 1; --i) {
      const Row& r = rows_[i - 1];
      if (!Matches(f, r.e)) continue;
      if (out.events.size() == limit) {
        out.next_cursor = std::to_string(out.events.back().seq);
        break;
      }
      out.events.push_back(r.stored);
    }
    ++queries;
    return out;
  }

  StatusOr<std::vector<audit::StoredEvent>> ReadAfter(uint64_t after, size_t limit) const override {
    std::lock_guard lock(mu_);
    std::vector<audit::StoredEvent> out;
    for (uint64_t s = after + 1; s <= rows_.size() && out.size() < limit; ++s) {
      out.push_back(rows_[s - 1].stored);
    }
    return out;
  }

  mutable std::vector<audit::Anchor> last_anchors;  // given to the last Verify

  bool WaitForNewer(uint64_t after, std::chrono::milliseconds timeout) const override {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return rows_.size() > after; });
  }

  audit::VerifyReport Verify(std::optional<uint64_t> from, std::optional<uint64_t> to,
                             const std::vector<audit::Anchor>* anchors) const override {
    std::lock_guard lock(mu_);
    audit::VerifyReport r;
    last_anchors = anchors ? *anchors : std::vector<audit::Anchor>{};
    if (anchors) {
      for (const auto& a : *anchors) {
        if (a.seq > rows_.size()) {
          r.ok = false;
          r.first_bad_seq = a.seq;
          r.problem = "the store ends before an anchor: rolled back";
          return r;
        }
        ++r.anchors_checked;
      }
    }
    r.first_seq = from.value_or(1);
    r.last_seq = to.value_or(rows_.size());
    r.checked = r.last_seq - r.first_seq + 1;
    if (broken) {
      r.ok = false;
      r.first_bad_seq = 2;
      r.problem = "hash mismatch";
    }
    return r;
  }
  std::string PublicKeyPem() const override { return "-----BEGIN PUBLIC KEY-----\nX\n"; }

  bool broken = false;
  mutable std::atomic<int> queries{0};

 private:
  struct Row {
    FakeEvent e;
    audit::StoredEvent stored;
  };
  static bool Matches(const audit::EventFilter& f, const FakeEvent& e) {
    if (f.since_us && e.ts_us < *f.since_us) return false;
    if (f.until_us && e.ts_us >= *f.until_us) return false;
    if (!f.kind.empty() && f.kind != e.kind) return false;
    if (!f.session.empty() && f.session != e.session) return false;
    if (!f.db_user.empty() && f.db_user != e.db_user) return false;
    if (!f.principal.empty() && f.principal != e.db_user) return false;
    if (!f.action.empty() && f.action != e.action) return false;
    if (!f.fingerprint.empty() && f.fingerprint != e.fingerprint) return false;
    return true;
  }
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::vector<Row> rows_;  // guarded by mu_
};

}  // namespace dbw::api::testing
