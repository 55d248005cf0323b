// WriteBudget: measure, run, measure, then commit, undo or abort (see write_budget.h).
#include "userspace/gate/write_budget.h"

#include <charconv>

#include "userspace/protocol/postgres/parse.h"

namespace dbw::gate {

const std::string_view kRowsChangedSql =
    "SELECT CASE WHEN pg_catalog.current_setting('track_counts')::pg_catalog.bool THEN "
    "COALESCE(pg_catalog.sum(pg_catalog.pg_stat_get_xact_tuples_inserted(c.oid) "
    "OPERATOR(pg_catalog.+) pg_catalog.pg_stat_get_xact_tuples_updated(c.oid) "
    "OPERATOR(pg_catalog.+) pg_catalog.pg_stat_get_xact_tuples_deleted(c.oid)), 0) END "
    "FROM pg_catalog.pg_class c "
    "WHERE c.oid OPERATOR(pg_catalog.>=) 16384::pg_catalog.oid "
    "AND (c.relkind OPERATOR(pg_catalog.=) 'r' OR c.relkind OPERATOR(pg_catalog.=) 'm')";

namespace {

// The failing statement that aborts the client's transaction when the budget was exceeded: a
// syntax error, so it runs nothing.
constexpr std::string_view kAbortSql = "dbwarden: row budget exceeded";

// Extended measurement: Close S, Parse, Bind, Execute, Close P, Close S: six completions.
constexpr int kExtendedGroup = 6;

bool IsCompletion(uint8_t type) {
  return type == pg::be::kParseComplete || type == pg::be::kBindComplete ||
         type == pg::be::kCloseComplete || type == pg::be::kCommandComplete;
}

// Messages that are never an answer to a request: they always go to the client.
bool Asynchronous(uint8_t type) {
  return type == pg::be::kParameterStatus || type == pg::be::kNotificationResponse;
}

}  // namespace

WriteBudget::WriteBudget(std::string names_suffix)
    : statement_name_("dbwarden_rows_" + names_suffix),
      portal_name_("dbwarden_rows_" + names_suffix),
      abort_name_("dbwarden_abort_" + names_suffix) {}

void WriteBudget::AppendMeasure(pg::Bytes* out, Count count) const {
  if (!extended_) {
    // In the relay's own autocommit transaction, deferred constraint triggers fire before the
    // second count (they would otherwise run at COMMIT, after it).
    pg::AppendQuery(out, std::string(count == Count::kBegin    ? "BEGIN; "
                                     : count == Count::kSettle ? "SET CONSTRAINTS ALL IMMEDIATE; "
                                                               : "") +
                             std::string(kRowsChangedSql));
    return;
  }
  // Named, so the client's unnamed statement and portal survive; closed first in case an earlier
  // wrap was cut short by an error (Close of an unknown name is not an error).
  pg::AppendClose(out, 'S', statement_name_);
  pg::AppendParse(out, statement_name_, kRowsChangedSql);
  pg::AppendBind(out, portal_name_, statement_name_);
  pg::AppendExecute(out, portal_name_);
  pg::AppendClose(out, 'P', portal_name_);
  pg::AppendClose(out, 'S', statement_name_);
}

void WriteBudget::AppendAbort(pg::Bytes* out) const {
  if (extended_) {
    // A named Parse that fails creates nothing and leaves the client's unnamed statement alone;
    // the server then skips to the client's Sync, as after any error.
    pg::AppendParse(out, abort_name_, kAbortSql);
    pg::AppendFlush(out);
  } else {
    pg::AppendQuery(out, kAbortSql);
  }
}

void WriteBudget::Begin(uint64_t max_rows, std::string rule, bool extended, uint8_t tx_status,
                        pg::Bytes* before, pg::Bytes* after) {
  max_rows_ = max_rows;
  rule_ = std::move(rule);
  extended_ = extended;
  tx_status_ = tx_status;
  before_.reset();
  after_.reset();
  statement_failed_ = false;
  force_ = false;
  forced_.reset();
  held_.clear();
  phase_ = Phase::kAhead;
  const bool own_tx = !extended && tx_status == 'I';
  AppendMeasure(before, own_tx ? Count::kBegin : Count::kPlain);
  AppendMeasure(after, own_tx ? Count::kSettle : Count::kPlain);
  if (extended) pg::AppendFlush(after);  // the answers are needed before the client's Sync
}

void WriteBudget::Hold(const pg::Frame& frame) {
  pg::Bytes b;
  pg::AppendFrame(&b, frame);
  held_.push_back(std::move(b));
}

void WriteBudget::ReleaseHeld(Output* out) {
  for (auto& h : held_) out->release.push_back(std::move(h));
  held_.clear();
}

void WriteBudget::End(Output* out) {
  phase_ = Phase::kIdle;
  out->done = true;
}

void WriteBudget::ForceRefuse(std::optional<Refusal> refusal) {
  forced_ = std::move(refusal);
  force_ = true;
}

bool WriteBudget::Over() const {
  return force_ || !before_ || !after_ || *after_ < *before_ ||
         static_cast<uint64_t>(*after_ - *before_) > max_rows_;
}

std::optional<WriteBudget::Refusal> WriteBudget::RefusalNow() const {
  if (force_) return forced_;
  if (!before_ || !after_ || *after_ < *before_) return Unchecked("the count failed");
  return Exceeded();
}

WriteBudget::Refusal WriteBudget::Exceeded() const {
  uint64_t rows = static_cast<uint64_t>(*after_ - *before_);
  return {"54000",
          "dbwarden: the statement was stopped: it changed " + std::to_string(rows) +
              " rows, more than the limit of " + std::to_string(max_rows_) + " set by rule " +
              rule_,
          "policy rule(s): " + rule_};
}

WriteBudget::Refusal WriteBudget::Unchecked(std::string_view why) const {
  return {"54000",
          "dbwarden: the statement was stopped: the rows it changed could not be counted (" +
              std::string(why) + "), and rule " + rule_ + " limits it to " +
              std::to_string(max_rows_) + " rows",
          "policy rule(s): " + rule_};
}

// A measurement group's message; true when it was the group's last.
bool WriteBudget::GroupMessage(const pg::Frame& frame) {
  if (frame.type == pg::be::kDataRow) {
    pg::DataRowMessage row;
    std::string error;
    if (pg::ParseDataRow(frame.body, &row, &error) && row.values.size() == 1 && row.values[0]) {
      const auto& v = *row.values[0];
      group_value_.assign(reinterpret_cast<const char*>(v.data()), v.size());
    }
    return false;
  }
  if (frame.type == pg::be::kErrorResponse) group_failed_ = true;
  if (!extended_) return frame.type == pg::be::kReadyForQuery;
  if (frame.type == pg::be::kErrorResponse) return true;  // the server now skips to Sync
  if (IsCompletion(frame.type)) return --group_left_ == 0;
  return false;
}

namespace {
std::optional<int64_t> ParseCount(const std::string& text, bool failed) {
  // Failed, or NULL: track_counts is off, so the counters say nothing.
  if (failed || text.empty()) return std::nullopt;
  int64_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || p != text.data() + text.size() || v < 0) return std::nullopt;
  return v;
}
}  // namespace

WriteBudget::Route WriteBudget::OnBackend(const pg::Frame& frame, bool client_ahead, Output* out) {
  if (phase_ == Phase::kIdle || Asynchronous(frame.type)) return Route::kClient;
  if (phase_ == Phase::kAhead) {
    if (client_ahead) {
      // Extended protocol: an error in an earlier message makes the server skip to Sync, the
      // wrap included; nothing of it will be answered.
      if (extended_ && frame.type == pg::be::kErrorResponse) End(out);
      return Route::kClient;
    }
    phase_ = Phase::kBefore;
    group_left_ = kExtendedGroup;
    group_value_.clear();
    group_failed_ = false;
  }
  switch (phase_) {
    case Phase::kBefore: {
      if (extended_ && frame.type == pg::be::kErrorResponse) {
        // The server skips the client's Execute too: this error is the statement's.
        End(out);
        return Route::kClient;
      }
      if (!GroupMessage(frame)) return Route::kSwallow;
      before_ = ParseCount(group_value_, group_failed_);
      phase_ = Phase::kStatement;
      return Route::kSwallow;
    }
    case Phase::kStatement: {
      const uint8_t t = frame.type;
      if (t == pg::be::kErrorResponse) {
        statement_failed_ = true;
        if (extended_) End(out);  // the server skips the second measurement
        return Route::kClient;
      }
      if (extended_) {
        if (t == pg::be::kCommandComplete || t == pg::be::kEmptyQueryResponse ||
            t == pg::be::kPortalSuspended) {
          Hold(frame);
          phase_ = Phase::kAfter;
          group_left_ = kExtendedGroup;
          group_value_.clear();
          group_failed_ = false;
          return Route::kHold;
        }
        return Route::kClient;
      }
      // Simple protocol: every answer goes on in order (a multi-statement Query's results stay
      // together); a stop adds its error before the final ReadyForQuery, as a later statement's
      // error would, and the ROLLBACK or abort undoes what the completions reported.
      if (t == pg::be::kReadyForQuery) {
        // The final ReadyForQuery the client gets is the wrap's last one.
        phase_ = Phase::kAfter;
        group_value_.clear();
        group_failed_ = false;
        return Route::kSwallow;
      }
      return Route::kClient;
    }
    case Phase::kAfter: {
      if (!extended_ && frame.type == pg::be::kErrorResponse && !statement_failed_) {
        // A deferred constraint failing at SET CONSTRAINTS ALL IMMEDIATE (or the count failing):
        // the statement fails with the server's error and is rolled back.
        statement_failed_ = true;
        group_failed_ = true;
        return Route::kClient;
      }
      if (!GroupMessage(frame)) return Route::kSwallow;
      after_ = ParseCount(group_value_, group_failed_);
      Decide(out);
      if (phase_ == Phase::kIdle && !extended_) return Route::kClient;  // this ReadyForQuery
      return Route::kSwallow;
    }
    case Phase::kFinish: {
      const uint8_t t = frame.type;
      if (finish_ == Finish::kCommit && t == pg::be::kErrorResponse)
        return Route::kClient;  // COMMIT failed: the client gets its error
      if (extended_) {
        // The abort's ErrorResponse; the client's Sync brings the ReadyForQuery.
        if (t != pg::be::kErrorResponse) return Route::kSwallow;
        out->refusal = RefusalNow();
        End(out);
        return Route::kSwallow;
      }
      if (t != pg::be::kReadyForQuery) return Route::kSwallow;
      if (finish_ == Finish::kRefuse) out->refusal = RefusalNow();
      End(out);
      return Route::kClient;
    }
    default:
      return Route::kClient;
  }
}

void WriteBudget::Decide(Output* out) {
  const bool over = Over();
  if (extended_) {
    if (statement_failed_) {  // not reached: the error ended the wrap
      End(out);
      return;
    }
    if (!over) {
      ReleaseHeld(out);
      End(out);
      return;
    }
    held_.clear();
    if (group_failed_) {
      // The server already failed the batch: it skips to Sync without being told.
      out->refusal = force_ ? forced_ : Unchecked("the count failed");
      End(out);
      return;
    }
    AppendAbort(&out->upstream);
    phase_ = Phase::kFinish;
    finish_ = Finish::kRefuse;
    return;
  }
  if (statement_failed_) {
    if (tx_status_ == 'I') {
      pg::AppendQuery(&out->upstream, "ROLLBACK");
      phase_ = Phase::kFinish;
      finish_ = Finish::kRollbackAfterError;
      return;
    }
    End(out);  // the block is aborted, as PostgreSQL leaves it
    return;
  }
  if (over) {
    if (tx_status_ == 'I') {
      pg::AppendQuery(&out->upstream, "ROLLBACK");
    } else {
      AppendAbort(&out->upstream);
    }
    phase_ = Phase::kFinish;
    finish_ = Finish::kRefuse;
    return;
  }
  if (tx_status_ == 'I') {
    pg::AppendQuery(&out->upstream, "COMMIT");
    phase_ = Phase::kFinish;
    finish_ = Finish::kCommit;
    return;
  }
  End(out);
}

void WriteBudget::AppendAbortExtended(pg::Bytes* out) const {
  pg::AppendParse(out, abort_name_, kAbortSql);
  pg::AppendFlush(out);
}

}  // namespace dbw::gate
