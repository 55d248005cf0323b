// WriteBudget: the runtime row budget for one statement. The relay wraps the statement between
// two measurements of the rows its transaction has inserted, updated and deleted (the server's
// own per-transaction counters, so triggers, cascades, functions and writable CTEs count), and
// undoes it when the difference exceeds the limit. Pure: it says which backend messages are the
// relay's own, which are held, and what to send; the session does the I/O.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "userspace/protocol/postgres/encoder.h"
#include "userspace/protocol/postgres/types.h"

namespace dbw::gate {

// Rows inserted + updated + deleted in ordinary tables and materialized views so far in this
// transaction (TOAST chunks excluded). Only relations created after initdb (OID >= 16384,
// FirstNormalObjectId): the system catalogs change with DDL, not with data, and the OID bound
// makes it an index range scan over the database's own relations. Everything is
// schema-qualified and operators are named through OPERATOR(pg_catalog.x), so the caller's
// search_path cannot substitute its own objects.
extern const std::string_view kRowsChangedSql;

class WriteBudget {
 public:
  // What the relay does with one backend message while a wrapped statement runs.
  enum class Route : uint8_t {
    kClient,   // the session's ordinary path (state machine, masking, forward)
    kSwallow,  // an answer to the relay's own message: the client never sees it
    kHold,     // a completion held until the budget is known; released or replaced later
  };
  // The client's error when the budget stopped (or could not check) the statement.
  struct Refusal {
    std::string sqlstate;
    std::string message;
    std::string detail;
  };
  struct Output {
    std::vector<pg::Bytes> release;  // held messages for the client path, before anything else
    std::optional<Refusal> refusal;  // then this error, in place of the statement's completion
    pg::Bytes upstream;              // relay-made messages to send to the server now
    bool done = false;               // the wrap ended: the client's next messages may go
  };

  // `names_suffix`: makes the relay's statement and portal names unguessable to the client.
  explicit WriteBudget(std::string names_suffix);

  bool active() const { return phase_ != Phase::kIdle; }

  // A Query (`extended` false, `tx_status` the last ReadyForQuery's) or an Execute is about to be
  // forwarded and may change at most `max_rows` rows. Appends what goes before and after it.
  // Refused beforehand for a Query in a failed transaction ('E': it cannot run anyway).
  void Begin(uint64_t max_rows, std::string rule, bool extended, uint8_t tx_status,
             pg::Bytes* before, pg::Bytes* after);

  // Another limit stopped the statement (its result passed the read budget): undo it whatever
  // the count says. `refusal`: the error the client gets, or none when it already has one.
  void ForceRefuse(std::optional<Refusal> refusal);
  // A failing named Parse and a Flush: the server fails the batch and skips to the client's Sync.
  void AppendAbortExtended(pg::Bytes* out) const;

  // One backend message. `client_ahead`: an earlier client request is still unanswered, so this
  // message answers it, not the wrap.
  Route OnBackend(const pg::Frame& frame, bool client_ahead, Output* out);

 private:
  enum class Phase : uint8_t {
    kIdle,
    kAhead,      // answers to earlier client requests
    kBefore,     // the first measurement (after BEGIN in autocommit)
    kStatement,  // the client's statement
    kAfter,      // the second measurement
    kFinish,     // COMMIT / ROLLBACK / the failing statement that aborts the transaction
  };
  enum class Finish : uint8_t { kCommit, kRollbackAfterError, kRefuse };

  enum class Count : uint8_t { kPlain, kBegin, kSettle };
  void AppendMeasure(pg::Bytes* out, Count count) const;
  bool Over() const;
  std::optional<Refusal> RefusalNow() const;
  void AppendAbort(pg::Bytes* out) const;
  // Is this message the last of a measurement group?
  bool GroupMessage(const pg::Frame& frame);
  void Decide(Output* out);
  void Hold(const pg::Frame& frame);
  void ReleaseHeld(Output* out);
  void End(Output* out);
  Refusal Exceeded() const;
  Refusal Unchecked(std::string_view why) const;

  std::string statement_name_, portal_name_, abort_name_;
  Phase phase_ = Phase::kIdle;
  Finish finish_ = Finish::kCommit;
  bool extended_ = false;
  uint8_t tx_status_ = 'I';
  uint64_t max_rows_ = 0;
  std::string rule_;
  int group_left_ = 0;  // extended: completions still due in the current measurement
  std::optional<int64_t> before_, after_;
  std::string group_value_;
  bool group_failed_ = false;
  bool statement_failed_ = false;
  std::vector<pg::Bytes> held_;  // extended: the Execute's completion
  bool force_ = false;
  std::optional<Refusal> forced_;
};

}  // namespace dbw::gate
