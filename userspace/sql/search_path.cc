#include "userspace/sql/search_path.h"

#include <algorithm>
#include <cctype>

namespace dbw::sql {

std::optional<SearchPath> ParseSearchPath(std::string_view value) {
  SearchPath out;
  size_t i = 0;
  auto space = [&] {
    while (i < value.size() && std::isspace(static_cast<unsigned char>(value[i]))) ++i;
  };
  space();
  if (i == value.size()) return out;  // an empty path
  for (;;) {
    std::string name;
    if (i < value.size() && value[i] == '"') {
      for (++i;; ++i) {
        if (i >= value.size()) return std::nullopt;  // unterminated
        if (value[i] == '"') {
          if (i + 1 < value.size() && value[i + 1] == '"') {
            name.push_back('"');
            ++i;
            continue;
          }
          ++i;
          break;
        }
        name.push_back(value[i]);
      }
    } else {
      while (i < value.size() && value[i] != ',' &&
             !std::isspace(static_cast<unsigned char>(value[i])))
        name.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(value[i++]))));
      if (name.empty()) return std::nullopt;
    }
    out.push_back(std::move(name));
    space();
    if (i == value.size()) return out;
    if (value[i] != ',') return std::nullopt;
    ++i;
    space();
  }
}

void SearchPathTracker::Start(std::optional<SearchPath> value, std::string user) {
  started_ = true;
  initial_ = std::move(value);
  session_ = current_ = committed_ = {initial_};
  user_ = std::move(user);
}

void SearchPathTracker::Add(Values* set, const Value& v) {
  if (std::find(set->begin(), set->end(), v) == set->end()) set->push_back(v);
}

void SearchPathTracker::AddAll(Values* set, const Values& more) {
  for (const Value& v : more) Add(set, v);
}

SearchPathTracker::Values SearchPathTracker::Apply(const Values& from, const PathEffect& e) const {
  switch (e.kind) {
    case PathEffect::Kind::kSet:
      return {e.schemas};
    case PathEffect::Kind::kReset:
      return {initial_};
    case PathEffect::Kind::kUnknown:
      return {std::nullopt};
    case PathEffect::Kind::kRole:
      break;
  }
  return from;
}

void SearchPathTracker::OnSent(const void* key, std::vector<PathEffect> effects) {
  if (!effects.empty()) in_flight_.emplace_back(key, std::move(effects));
}

void SearchPathTracker::OnCompleted(const void* key, bool ok) {
  auto it = std::find_if(in_flight_.begin(), in_flight_.end(),
                         [&](const auto& entry) { return entry.first == key; });
  if (it == in_flight_.end()) return;
  std::vector<PathEffect> effects = std::move(it->second);
  in_flight_.erase(it);
  in_tx_touched_ = true;
  Values current = current_, committed = committed_;
  for (const PathEffect& e : effects) {
    if (e.kind == PathEffect::Kind::kRole) role_changed_ = true;
    current = Apply(current, e);
    AddAll(&seen_any_in_tx_, current);
    if (!e.local) {
      committed = Apply(committed, e);
      AddAll(&seen_in_tx_, committed);
    }
  }
  if (ok) {
    current_ = std::move(current);
    committed_ = std::move(committed);
    return;
  }
  // A statement that failed part-way (a query string whose later statement failed inside a
  // transaction block, say) may have left any of them: every value stays possible.
  AddAll(&current_, current);
  AddAll(&committed_, committed);
  tx_unclean_ = true;
}

void SearchPathTracker::OnCommandTag(std::string_view tag) {
  if (tag == "ROLLBACK") {
    ++rollbacks_;
    // ROLLBACK TO SAVEPOINT returns to a value of the transaction the relay does not follow
    // (which savepoint, set when): any value the transaction had may hold.
    AddAll(&current_, session_);
    AddAll(&current_, seen_any_in_tx_);
    AddAll(&committed_, session_);
    AddAll(&committed_, seen_in_tx_);
  }
  last_was_rollback_ = tag == "ROLLBACK";
  // It ends the transaction without saying what the session keeps.
  if (tag == "PREPARE TRANSACTION") tx_unclean_ = true;
}

void SearchPathTracker::OnReady(char status, bool nothing_pending) {
  if (nothing_pending) in_flight_.clear();
  if (status != 'I') return;
  if (in_tx_touched_) {
    // One ROLLBACK, the transaction's last command, undid it all; any other ROLLBACK (TO
    // SAVEPOINT) undid part of it, which is not followed: every value stays possible.
    if (tx_unclean_ || rollbacks_ > 1 || (rollbacks_ == 1 && !last_was_rollback_)) {
      AddAll(&session_, seen_in_tx_);
      AddAll(&session_, committed_);
    } else if (rollbacks_ == 0) {
      session_ = committed_;
    }
  }
  current_ = committed_ = session_;
  in_tx_touched_ = tx_unclean_ = last_was_rollback_ = false;
  seen_in_tx_.clear();
  seen_any_in_tx_.clear();
  rollbacks_ = 0;
}

std::vector<SearchPath> SearchPathTracker::Possible() const {
  if (!started_) return {};
  Values all = current_;
  bool role = role_changed_;
  for (const auto& [key, effects] : in_flight_) {
    Values v = current_;
    for (const PathEffect& e : effects) {
      role = role || e.kind == PathEffect::Kind::kRole;
      v = Apply(v, e);
      AddAll(&all, v);
    }
  }
  std::vector<SearchPath> out;
  for (const Value& v : all) {
    if (!v) return {};
    SearchPath p = *v;
    for (std::string& s : p) {
      if (s != "$user") continue;
      if (role) return {};  // which role "$user" now names is not followed
      s = user_;
    }
    if (std::find(out.begin(), out.end(), p) == out.end()) out.push_back(std::move(p));
  }
  return out;
}

}  // namespace dbw::sql
