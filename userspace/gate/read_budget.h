// ReadBudget: the runtime read limit for one statement's result (rows and bytes of DataRow, or of
// CopyData for COPY TO STDOUT). Past it the relay sends the client nothing more of that result
// and an error in place of its completion. Pure bookkeeping; the session drops, cancels and
// replaces.
#pragma once

#include <cstdint>
#include <unordered_map>

namespace dbw::gate {

class ReadBudget {
 public:
  enum class Verdict : uint8_t {
    kPass,      // within the budget: forward
    kExceeded,  // this row is the first past the budget: drop it, stop the statement
    kDrop,      // the statement was already stopped: drop
  };

  // A row of `bytes` (whole message) for a statement limited to max_rows / max_bytes (0: no
  // limit on that dimension). `source` identifies the result: a bound portal's serial, 0 for a
  // simple Query. A suspended portal's later Executes continue its budget, whatever other
  // portals ran in between.
  Verdict OnRow(uint64_t source, uint64_t max_rows, uint64_t max_bytes, uint64_t bytes) {
    Switch(source);
    if (cur_.stopped) return Verdict::kDrop;
    if ((max_rows != 0 && cur_.rows + 1 > max_rows) ||
        (max_bytes != 0 && cur_.bytes + bytes > max_bytes)) {
      cur_.stopped = true;
      return Verdict::kExceeded;
    }
    ++cur_.rows;
    cur_.bytes += bytes;
    return Verdict::kPass;
  }
  // The current result ended (CommandComplete, EmptyQueryResponse, ErrorResponse).
  void Reset() { cur_ = {}; }
  // A PortalSuspended: the portal's next Execute continues this budget.
  void Suspend() { cur_.suspended = true; }
  // A ReadyForQuery: at the end of a transaction every portal is gone.
  void OnReady(bool transaction_ended) {
    if (transaction_ended) {
      parked_.clear();
      cur_ = {};
    } else if (!cur_.suspended) {
      cur_ = {};
    }
  }
  bool stopped() const { return cur_.stopped; }
  bool suspended() const { return cur_.suspended; }
  uint64_t rows() const { return cur_.rows; }
  uint64_t bytes() const { return cur_.bytes; }

 private:
  struct Counters {
    uint64_t rows = 0;
    uint64_t bytes = 0;
    bool stopped = false;
    bool suspended = false;
  };
  void Switch(uint64_t source) {
    if (source == source_) return;
    if (cur_.suspended && source_ != 0) parked_[source_] = cur_;
    auto it = parked_.find(source);
    if (it != parked_.end()) {
      cur_ = it->second;
      parked_.erase(it);
    } else {
      cur_ = {};
    }
    source_ = source;
  }

  Counters cur_;
  uint64_t source_ = 0;
  std::unordered_map<uint64_t, Counters> parked_;  // suspended portals, until the transaction ends
};

}  // namespace dbw::gate
