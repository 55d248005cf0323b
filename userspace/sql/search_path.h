// The session's search_path as the relay can know it, for resolving the unqualified names of a
// statement the way the server will (masking by reference, docs/relay.md#search_path). The value
// at connect is asked of the server; what the session does to it afterwards (SET, SET LOCAL,
// RESET, DISCARD ALL, set_config, a role change, a transaction that rolls back) is followed from
// the statements it sends and their outcomes. Where the relay cannot tell which of several values
// holds it keeps them all, and where it cannot tell at all it says so: names are then looked up
// in every schema.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dbw::sql {

// Schemas, in order, as the setting lists them ("$user" kept as written).
using SearchPath = std::vector<std::string>;

// Splits a search_path value as PostgreSQL does (SplitIdentifierString): comma-separated names,
// double-quoted ones taken as written ("" for a quote), others lower-cased. nullopt: malformed.
std::optional<SearchPath> ParseSearchPath(std::string_view value);

// What one statement does to the search_path when it succeeds.
struct PathEffect {
  enum class Kind : uint8_t {
    kSet,      // SET [SESSION|LOCAL] search_path / SET SCHEMA, to `schemas`
    kReset,    // RESET search_path, SET search_path TO DEFAULT, RESET ALL, DISCARD ALL
    kUnknown,  // a value the relay cannot work out (set_config, a function that sets it)
    kRole,     // SET ROLE / SET SESSION AUTHORIZATION / RESET ROLE: "$user" changes
  };
  Kind kind = Kind::kUnknown;
  bool local = false;  // SET LOCAL: until the end of the transaction
  SearchPath schemas;
  bool operator==(const PathEffect&) const = default;
};

class SearchPathTracker {
 public:
  // The value the server reported at connect (nullopt: it could not be read), and the session's
  // role, which "$user" stands for.
  void Start(std::optional<SearchPath> value, std::string user);
  bool started() const { return started_; }
  // A statement whose effect the relay did not follow ran: the value is not known until a
  // SET search_path (or RESET) completes, as after set_config.
  void Forget() { session_ = current_ = committed_ = {std::nullopt}; }

  // A statement with these effects was sent (`key` names it until it completes).
  void OnSent(const void* key, std::vector<PathEffect> effects);
  // It completed: its effects hold when `ok`.
  void OnCompleted(const void* key, bool ok);
  // A command tag of a completed statement (COMMIT, ROLLBACK, ...).
  void OnCommandTag(std::string_view tag);
  // ReadyForQuery: 'I' ends the transaction. `nothing_pending`: the server has answered every
  // request, so a statement still counted as sent never ran (skipped after an error).
  void OnReady(char status, bool nothing_pending);

  // Every value the search_path may have now, "$user" expanded; empty when it cannot be known.
  std::vector<SearchPath> Possible() const;

 private:
  // A value, or unknown (nullopt). A set of them: what may hold.
  using Value = std::optional<SearchPath>;
  using Values = std::vector<Value>;
  static void Add(Values* set, const Value& v);
  static void AddAll(Values* set, const Values& more);
  Values Apply(const Values& from, const PathEffect& e) const;

  bool started_ = false;
  Value initial_;               // what RESET returns to
  Values session_;              // outside a transaction (what a rollback returns to)
  Values current_;              // now, by the statements that completed
  Values committed_;            // what COMMIT would keep: current_ without SET LOCAL
  bool in_tx_touched_ = false;  // a statement with effects completed since the last idle point
  bool tx_unclean_ = false;     // ... and one failed part-way, or PREPARE TRANSACTION ran
  int rollbacks_ = 0;           // ROLLBACK tags since the last idle point
  bool last_was_rollback_ = false;
  Values seen_in_tx_;      // every value SET in the transaction (for an unclean end)
  Values seen_any_in_tx_;  // ... SET LOCAL ones too
  std::vector<std::pair<const void*, std::vector<PathEffect>>> in_flight_;
  std::string user_;
  bool role_changed_ = false;
};

}  // namespace dbw::sql
