// StatementGate: what a statement is, as the server will read and run it, and the verdict on it.
// Pure (no sockets, no threads): the relay session feeds it the messages it forwards and the
// server's answers; the gate keeps the session settings that change how text is read and the
// server-side names (prepared statements, cursors) that change what a name runs.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "policy/policy.h"
#include "userspace/sql/analyzer.h"
#include "userspace/sql/facts.h"

namespace dbw::gate {

// The rule id the gate's own refusals carry (audit, error detail).
inline constexpr std::string_view kGateRule = "dbwarden-gate";

class StatementGate {
 public:
  explicit StatementGate(sql::Analyzer* analyzer) : analyzer_(analyzer) {}

  // ---- What the server reports ----
  // ParameterStatus: standard_conforming_strings and client_encoding decide how text is read.
  void OnParameterStatus(std::string_view name, std::string_view value);
  // Every ReadyForQuery (the first one ends the startup). 'I': the transaction ended, and cursors
  // without WITH HOLD are gone.
  void OnReadyForQuery(uint8_t tx_status);

  // ---- What the client sends ----
  // A Query, Sync or FunctionCall was forwarded: the server will answer it with a ReadyForQuery.
  void OnSyncPoint() { ++sync_points_; }

  // The facts of a Query's or Parse's text as the server will read it: converted from the client
  // encoding, split with the session's standard_conforming_strings, and with EXECUTE and FETCH
  // standing for what they run. Marked `unverifiable` when that cannot be known.
  std::shared_ptr<const sql::QueryFacts> Facts(std::string_view text);
  // The facts of a FunctionCall of the function `qualified_name` ("schema.name"; empty when the
  // OID is not in the catalog) with `args` arguments. The arguments are read as parameters whose
  // values are unknown, so a function judged by its arguments (set_config) is judged at its worst.
  std::shared_ptr<const sql::QueryFacts> FunctionCallFacts(uint32_t oid,
                                                           std::string_view qualified_name,
                                                           size_t args = 0);

  // ---- Values bound to parameters ----
  // Whether bound values can be read into statement text now: the session reads strings with
  // standard_conforming_strings on (as params.h does) and no statement that may change how text
  // is read is unanswered.
  bool CanBindValues() const { return lex_.standard_conforming_strings && !lexing_uncertain(); }
  // The text the server reads for `text` (converted from the client encoding); nullopt when it
  // cannot be converted.
  std::optional<std::string> ServerText(std::string_view text) const;
  // A Bind's parameter values as SQL literals for SubstituteParams: NULL, numbers, strings (text
  // format, converted from the client encoding), and binary integers, floats, booleans and
  // strings by the statement's declared parameter types; "" where the value cannot be read (it
  // is then judged at its worst), and for text beyond ASCII while the client encoding may be
  // changing (lexing_uncertain).
  std::vector<std::string> BindValues(
      const std::vector<int16_t>& formats,
      const std::vector<std::optional<std::span<const std::byte>>>& params,
      const std::vector<uint32_t>& types) const;
  // The facts of `def` (a statement with parameters and a `source`, which the server read with
  // standard_conforming_strings on) run with `values` in place of its parameters; `def` itself
  // (its worst case) when they cannot be bound. Parameter values are not lexed by the server,
  // so the session's settings now do not matter.
  std::shared_ptr<const sql::QueryFacts> BoundFacts(const sql::StatementFacts& def,
                                                    const std::vector<std::string>& values);
  // For a statement that Decide refuses: the decision when the risks that depend on parameter
  // values (no_where, unbounded_select) and that some values would lift are left to be judged
  // with the values — a Parse with parameters (`extended`, its server text `parse_source`), or
  // PREPAREs whose inner statement has them. Nullopt when that decision refuses too, or when no
  // value could change it. Such a statement runs nothing itself; whoever runs it (a Bind, an
  // EXECUTE) must be judged with BoundFacts / by Facts.
  std::optional<policy::Decision> DecideDeferred(const policy::CompiledPolicy& policy,
                                                 const policy::Target& target,
                                                 const policy::Principal& principal,
                                                 const sql::QueryFacts& facts, bool masked,
                                                 std::chrono::system_clock::time_point now,
                                                 bool extended, std::string_view parse_source);

  // The decision: the policy's, then the gate's own refusals, which no rule can lift (enforce
  // mode; recorded as would-be refusals in monitor mode):
  //  - a statement that cannot be verified (see Facts);
  //  - a FunctionCall while masking applies (its result cannot be masked by column);
  //  - a replication connection that no rule explicitly allows;
  //  - under a row budget (limits.max_rows), what cannot be counted: transaction control mixed
  //    with other statements, COPY FROM, TRUNCATE and DROP (they reset or drop counters), a
  //    FunctionCall, unparseable text, and CALL or DO in the extended protocol (`extended`: a
  //    Parse), where a procedure may COMMIT before the relay's second count.
  policy::Decision Decide(const policy::CompiledPolicy& policy, const policy::Target& target,
                          const policy::Principal& principal, const sql::QueryFacts& facts,
                          bool masked, std::chrono::system_clock::time_point now,
                          bool extended = false) const;

  // A judged statement is forwarded. `simple`: as a Query (answered by its own ReadyForQuery);
  // otherwise a Parse, whose effects come with a later Execute. `parse_name`: the Parse's
  // statement name, which now may name these facts.
  void OnForwarded(const std::shared_ptr<const sql::QueryFacts>& facts, bool simple,
                   std::string_view parse_name);
  // An Execute ran a statement parsed earlier with these facts (their effects happen now).
  void OnExecuteForwarded(const sql::QueryFacts& facts);
  // The server answered a statement whose name operations were recorded: the first `succeeded`
  // statements took effect, the rest did not.
  void OnCompleted(const sql::QueryFacts& facts, size_t succeeded);
  // A protocol-level Parse of `name` succeeded (ParseComplete) or failed.
  void OnParseAnswered(std::string_view name, const std::shared_ptr<const sql::QueryFacts>& facts,
                       bool ok);

  // A Bind made `portal` run the statement with these facts (null: a statement the gate does not
  // know); SQL FETCH can name a portal like a cursor.
  void OnBind(std::string_view portal,
              const std::shared_ptr<const sql::QueryFacts>& statement_facts);
  // A Close of a statement ('S') or portal ('P'): the server drops the name in order.
  void OnClose(uint8_t kind, std::string_view name);

  // ---- Read back (tests, audit) ----
  bool standard_conforming_strings() const { return lex_.standard_conforming_strings; }
  const std::string& client_encoding() const { return encoding_; }
  // True while a statement that may change how text is read has not been answered.
  bool lexing_uncertain() const { return ready_seen_ < uncertain_until_; }
  size_t known_statements() const { return statements_.size(); }
  size_t known_cursors() const { return cursors_.size(); }

 private:
  using FactsPtr = std::shared_ptr<const sql::StatementFacts>;
  // Every definition a name may have on the server now: more than one while a redefinition has
  // not been answered. A statement run through the name is judged as each (the strictest wins).
  struct Name {
    std::vector<FactsPtr> candidates;
    bool hold = false;  // cursors: WITH HOLD
  };
  using Names = std::unordered_map<std::string, Name>;

  std::shared_ptr<const sql::QueryFacts> Read(std::string_view text, std::string* problem);
  std::shared_ptr<const sql::QueryFacts> Resolve(std::shared_ptr<const sql::QueryFacts> facts);
  // What `execute` (EXECUTE name(args)) runs when the name means `def`: `def` with the arguments
  // bound (when its text is known), plus what evaluating the arguments does.
  sql::StatementFacts Executed(const sql::StatementFacts& execute, const sql::StatementFacts& def);
  // The value-dependent risks of `source` (with parameters $1..$params) that binding plain
  // values lifts.
  uint32_t ValueRisksBindingCanLift(std::string_view source, int params);
  std::optional<sql::StatementFacts> BindInto(const sql::StatementFacts& def,
                                              const std::vector<std::string>& values);
  void OpenWindow(const sql::QueryFacts& facts, bool answered_by_next_sync);
  static bool MayChangeReading(const sql::QueryFacts& facts);

  sql::Analyzer* analyzer_;
  sql::LexSettings lex_;
  std::string encoding_ = "UTF8";
  // ReadyForQuery messages counted against sync points (the first answers the startup), so the
  // gate knows when every statement that could change a setting has been answered.
  uint64_t sync_points_ = 1;
  uint64_t ready_seen_ = 0;
  uint64_t uncertain_until_ = 1;  // the startup's settings arrive before its ReadyForQuery
  Names statements_;
  Names cursors_;
  // Nesting of bound statements being resolved (a Parse of `EXECUTE q($1)` where q is another
  // such Parse): past a few levels the worst case is used.
  int bind_depth_ = 0;
};

}  // namespace dbw::gate
