// ReadBudget: the runtime read limit for one statement's result (rows and bytes of DataRow
// messages). Past it the relay sends the client nothing more of that result and an error in
// place of its completion. Pure bookkeeping; the session drops, cancels and replaces.
#pragma once

#include <cstdint>

namespace dbw::gate {

class ReadBudget {
 public:
  enum class Verdict : uint8_t {
    kPass,      // within the budget: forward
    kExceeded,  // this row is the first past the budget: drop it, stop the statement
    kDrop,      // the statement was already stopped: drop
  };

  // A DataRow of `bytes` (whole message) for a statement limited to max_rows / max_bytes (0: no
  // limit on that dimension). `source` identifies the result: a bound portal's serial (a
  // suspended portal's later Executes continue its budget), 0 for a simple Query.
  Verdict OnRow(uint64_t source, uint64_t max_rows, uint64_t max_bytes, uint64_t bytes) {
    if (source != source_) {
      Reset();
      source_ = source;
    }
    if (stopped_) return Verdict::kDrop;
    if ((max_rows != 0 && rows_ + 1 > max_rows) || (max_bytes != 0 && bytes_ + bytes > max_bytes)) {
      stopped_ = true;
      return Verdict::kExceeded;
    }
    ++rows_;
    bytes_ += bytes;
    return Verdict::kPass;
  }
  // The statement's result ended (CommandComplete, EmptyQueryResponse, ErrorResponse, or a
  // ReadyForQuery with no portal suspended).
  void Reset() {
    rows_ = bytes_ = 0;
    stopped_ = false;
    suspended_ = false;
  }
  // A PortalSuspended: the portal's next Execute continues this budget.
  void Suspend() { suspended_ = true; }
  bool suspended() const { return suspended_; }
  bool stopped() const { return stopped_; }
  uint64_t rows() const { return rows_; }
  uint64_t bytes() const { return bytes_; }

 private:
  uint64_t rows_ = 0;
  uint64_t bytes_ = 0;
  bool stopped_ = false;
  bool suspended_ = false;
  uint64_t source_ = 0;
};

}  // namespace dbw::gate
