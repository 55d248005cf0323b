// Evaluation: matching compiled rules against a statement's facts, choosing the winning action
// by priority then strictness, and combining several statements (strictest wins).
#include <algorithm>
#include <climits>
#include <map>
#include <mutex>

#include "policy/compiled.h"

namespace dbw::policy {
namespace {

bool AnyGlob(const std::vector<Glob>& globs, std::string_view value) {
  for (const Glob& g : globs)
    if (g.Match(value)) return true;
  return false;
}

// An empty list is no condition; otherwise some glob must match the value.
bool ListMatches(const std::vector<Glob>& globs, std::string_view value) {
  return globs.empty() || AnyGlob(globs, value);
}

bool TableListMatches(const std::vector<QualifiedGlob>& globs, const std::vector<sql::TableRef>& a,
                      const std::vector<sql::TableRef>* b) {
  if (globs.empty()) return true;
  for (const QualifiedGlob& g : globs) {
    for (const auto& t : a)
      if (g.Match(t.schema, t.name, {"public"})) return true;
    if (b != nullptr)
      for (const auto& t : *b)
        if (g.Match(t.schema, t.name, {"public"})) return true;
  }
  return false;
}

int64_t FloorDiv(int64_t a, int64_t b) {
  return a / b - ((a % b != 0) && ((a < 0) != (b < 0)));
}

// Unparseable text counts as both the UNPARSEABLE command and the `unparseable` risk.
uint32_t EffectiveRisks(const sql::StatementFacts& s) {
  return s.risks | (s.command == sql::Command::kUnparseable ? sql::kRiskUnparseable : 0u);
}

const sql::StatementFacts& Judged(const sql::StatementFacts& s) {
  // PREPARE x AS <stmt> is judged as <stmt>; so are EXECUTE x and FETCH from a cursor once the
  // gate has resolved the name to what it runs.
  const sql::StatementFacts* p = &s;
  while ((p->command == sql::Command::kPrepare || p->command == sql::Command::kExecute ||
          p->command == sql::Command::kFetch) &&
         p->prepared)
    p = p->prepared.get();
  return *p;
}

const sql::StatementFacts& UnparseableStatement() {
  static const sql::StatementFacts kFacts = [] {
    sql::StatementFacts f;
    f.command = sql::Command::kUnparseable;
    f.risks = sql::kRiskUnparseable;
    return f;
  }();
  return kFacts;
}

std::string_view Verb(Action a) {
  switch (a) {
    case Action::kAllow:
      return "allowed";
    case Action::kLog:
      return "logged";
    case Action::kApprove:
      return "approval required";
    case Action::kDeny:
      return "denied";
  }
  return "decided";
}

class Policy final : public CompiledPolicy {
 public:
  explicit Policy(PolicyData data) : d_(std::move(data)) {
    for (Rule& r : d_.rules) {
      has_limits_ = has_limits_ || r.limits.has_value();
      r.reason = std::string(Verb(r.action)) + " by rule " + r.id;
      const std::string& text = !r.message.empty() ? r.message : r.description;
      if (!text.empty()) r.reason += ": " + text;
    }
  }

  void Classify(Principal* principal) const override {
    principal->kind = principal->asserted_kind.value_or(PrincipalKind::kHuman);
    for (const PrincipalMatcher& m : d_.agents) {
      if (m.Matches(*principal)) {
        principal->kind = PrincipalKind::kAgent;
        break;
      }
    }
    for (const auto& [name, matchers] : d_.groups) {
      bool member = false;
      for (const auto& g : principal->groups) member = member || g == name;
      for (size_t i = 0; i < matchers.size() && !member; ++i) {
        if (matchers[i].Matches(*principal)) {
          principal->groups.push_back(name);
          member = true;
        }
      }
    }
  }

  std::shared_ptr<const MaskingProfile> Masking(const Target& target,
                                                const Principal& principal) const override {
    std::vector<bool> applies(d_.masking.size());
    bool any = false;
    for (size_t i = 0; i < d_.masking.size(); ++i)
      any |= applies[i] = d_.masking[i].Applies(target, principal);
    if (!any) return nullptr;
    std::lock_guard<std::mutex> lock(profiles_mu_);
    auto& slot = profiles_[applies];
    if (!slot) slot = BuildProfile(applies);
    return slot;
  }

  Decision Evaluate(const Target& target, const Principal& principal, const sql::QueryFacts& facts,
                    std::chrono::system_clock::time_point now) const override {
    Decision decision;
    decision.monitor = d_.mode == Mode::kMonitor;
    std::vector<const Rule*> winners;  // allocated only once some rule matched
    bool saw_unparseable = false;
    for (const auto& stmt : facts.statements) {
      const sql::StatementFacts& s = Judged(stmt);
      saw_unparseable |= (EffectiveRisks(s) & sql::kRiskUnparseable) != 0;
      JudgeStatement(target, principal, s, now, &decision.action, &winners);
    }
    // Fail closed: a query the parser rejected is judged even if no statement says so.
    if (facts.unparseable && !saw_unparseable)
      JudgeStatement(target, principal, UnparseableStatement(), now, &decision.action, &winners);
    Finish(&winners, &decision);
    if (has_limits_ && decision.action <= Action::kLog)
      CollectLimits(target, principal, facts, now, &decision);
    return decision;
  }

  Mode mode() const override { return d_.mode; }
  size_t rule_count() const override { return d_.rules.size(); }
  const std::string& source() const override { return d_.source; }

 private:
  // Finds this statement's winning level (highest priority, then strictest action) and merges it
  // into the query's result: a stricter action replaces the winners, an equal one adds to them.
  void JudgeStatement(const Target& target, const Principal& principal,
                      const sql::StatementFacts& s, std::chrono::system_clock::time_point now,
                      Action* overall, std::vector<const Rule*>* winners) const {
    // Inline pre-filter on bit sets, so the common case (no rule applies) calls nothing.
    const uint32_t risks = EffectiveRisks(s);
    const uint64_t command_bits =
        (uint64_t{1} << static_cast<unsigned>(s.command)) |
        ((risks & sql::kRiskUnparseable)
             ? uint64_t{1} << static_cast<unsigned>(sql::Command::kUnparseable)
             : 0);
    const Rule* best = nullptr;
    for (const Rule& r : d_.rules) {
      if (r.limits) continue;  // bounds what runs; collected by CollectLimits
      const StatementMatcher& sm = r.match.statement;
      if ((sm.commands != 0 && (sm.commands & command_bits) == 0) ||
          (sm.risks != 0 && (sm.risks & risks) == 0) ||
          (r.match.principal.kind && *r.match.principal.kind != principal.kind))
        continue;
      if (best != nullptr && (r.priority < best->priority ||
                              (r.priority == best->priority && r.action <= best->action)))
        continue;  // cannot beat the current best
      if (r.Matches(target, principal, s, now)) best = &r;
    }
    if (best == nullptr) return;  // allow, no rule
    if (best->action < *overall) return;
    if (best->action > *overall) winners->clear();
    *overall = best->action;
    for (const Rule& r : d_.rules) {
      if (r.limits || r.priority != best->priority || r.action != best->action) continue;
      if (&r != best && !r.Matches(target, principal, s, now)) continue;
      if (std::find(winners->begin(), winners->end(), &r) == winners->end()) winners->push_back(&r);
    }
    // Keep file order so the decision reads the same however statements were ordered.
    std::sort(winners->begin(), winners->end());
  }

  // The tightest value of each limit over every `limit` rule that matches any statement.
  void CollectLimits(const Target& target, const Principal& principal, const sql::QueryFacts& facts,
                     std::chrono::system_clock::time_point now, Decision* d) const {
    EffectLimits out;
    auto tighten = [](uint64_t* have, uint64_t v, std::string* rule, const std::string& id) {
      if (v != 0 && (*have == 0 || v < *have)) {
        *have = v;
        *rule = id;
      }
    };
    for (const Rule& r : d_.rules) {
      if (!r.limits) continue;
      bool hit = false;
      for (const auto& stmt : facts.statements)
        hit = hit || r.Matches(target, principal, Judged(stmt), now);
      if (!hit && facts.unparseable)
        hit = r.Matches(target, principal, UnparseableStatement(), now);
      if (!hit) continue;
      tighten(&out.max_rows, r.limits->max_rows, &out.write_rule, r.id);
      tighten(&out.max_read_rows, r.limits->max_read_rows, &out.read_rows_rule, r.id);
      tighten(&out.max_read_bytes, r.limits->max_read_bytes, &out.read_bytes_rule, r.id);
    }
    if (out.any()) d->limits = std::move(out);
  }

  static void Finish(std::vector<const Rule*>* winners, Decision* d) {
    if (winners->empty()) {
      d->reason = "no rule matched";
      return;
    }
    for (const Rule* r : *winners) {
      d->rules.push_back(r->id);
      if (!d->reason.empty()) d->reason += "; ";
      d->reason += r->reason;
    }
    const Rule* first = winners->front();
    if (d->action == Action::kDeny)
      d->sqlstate = first->sqlstate.empty() ? "42501" : first->sqlstate;
    if (d->action == Action::kApprove) {
      d->approval = first->approval.value_or(ApprovalSpec{});
      d->sqlstate = first->sqlstate;  // a ticket's refusal; empty: 42501
    }
  }

  std::shared_ptr<const MaskingProfile> BuildProfile(const std::vector<bool>& applies) const {
    std::vector<MaskingProfile::ColumnRule> columns;
    std::vector<MaskingProfile::NameRule> names;
    std::vector<masking::DetectorRule> detectors;
    std::vector<std::string> ids;
    for (size_t i = 0; i < d_.masking.size(); ++i) {
      if (!applies[i]) continue;
      const MaskingRule& r = d_.masking[i];
      ids.push_back(r.id);
      for (const ColumnGlob& c : r.columns) columns.push_back({c, r.mask});
      for (const Glob& n : r.result_columns) names.push_back({n, r.mask});
      for (const masking::DetectorRule& d : r.detectors) {
        bool dup = false;  // one detector, the first rule's mask (policy order)
        for (const auto& have : detectors)
          dup = dup || (d.detector != masking::Detector::kCustom && have.detector == d.detector);
        if (!dup) detectors.push_back(d);
      }
    }
    std::shared_ptr<const masking::DetectorSet> set;
    bool failed = false;
    if (!detectors.empty()) {
      auto compiled = masking::DetectorSet::Compile(std::move(detectors));
      // Each rule's patterns compiled at load; should the union still fail, the relay
      // withholds what the detectors would have scanned (fail closed).
      if (compiled.ok()) set = std::move(*compiled);
      failed = !compiled.ok();
    }
    return std::make_shared<const MaskingProfile>(std::move(columns), std::move(names),
                                                  std::move(set), std::move(ids), failed);
  }

  PolicyData d_;
  bool has_limits_ = false;
  mutable std::mutex profiles_mu_;  // guards profiles_
  mutable std::map<std::vector<bool>, std::shared_ptr<const MaskingProfile>> profiles_;
};

}  // namespace

namespace {

bool ClaimsMatch(const std::vector<std::pair<std::string, std::vector<Glob>>>& wanted,
                 const std::vector<std::pair<std::string, std::vector<std::string>>>& have) {
  for (const auto& [name, globs] : wanted) {
    bool hit = false;
    for (const auto& [claim, values] : have)
      if (claim == name)
        for (const std::string& v : values) hit = hit || AnyGlob(globs, v);
    if (!hit) return false;
  }
  return true;
}

}  // namespace

bool PrincipalMatcher::Matches(const Principal& p) const {
  if (kind && *kind != p.kind) return false;
  if (!groups.empty()) {
    bool any = false;
    for (const auto& g : p.groups) any = any || AnyGlob(groups, g);
    if (!any) return false;
  }
  return ListMatches(subject, p.subject) && ListMatches(db_user, p.db_user) &&
         ListMatches(database, p.database) && ListMatches(application_name, p.application_name) &&
         ListMatches(client_addr, p.client_addr) && ListMatches(cert_subject, p.cert_subject) &&
         ListMatches(cert_san, p.cert_san) && ListMatches(cert_issuer, p.cert_issuer) &&
         ListMatches(issuer, p.issuer) && ClaimsMatch(claims, p.claims) &&
         ListMatches(exe, p.exe) && ListMatches(unit, p.unit) &&
         ListMatches(container, p.container);
}

bool StatementMatcher::QuickMatches(const sql::StatementFacts& s) const {
  const uint32_t r = EffectiveRisks(s);
  if (commands != 0) {
    bool hit = (commands >> static_cast<unsigned>(s.command)) & 1u;
    if (!hit && (r & sql::kRiskUnparseable))
      hit = (commands >> static_cast<unsigned>(sql::Command::kUnparseable)) & 1u;
    if (!hit) return false;
  }
  return risks == 0 || (r & risks) != 0;
}

bool StatementMatcher::Matches(const sql::StatementFacts& s) const {
  if (!ListMatches(object_kinds, s.object_kind)) return false;
  if (!TableListMatches(tables, s.tables_read, &s.tables_written)) return false;
  if (!TableListMatches(tables_read, s.tables_read, nullptr)) return false;
  if (!TableListMatches(tables_written, s.tables_written, nullptr)) return false;
  if (!functions.empty()) {
    bool any = false;
    for (const auto& f : s.functions) {
      for (const auto& g : functions) {
        if (g.MatchDotted(f, {"pg_catalog", "public"})) {
          any = true;
          break;
        }
      }
      if (any) break;
    }
    if (!any) return false;
  }
  return true;
}

bool TimeWindow::Matches(std::chrono::system_clock::time_point now) const {
  if (!present) return true;
  const int64_t secs =
      std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count() +
      offset_seconds;
  const int64_t day = FloorDiv(secs, 86400);
  const int minute = static_cast<int>((secs - day * 86400) / 60);
  const int weekday = static_cast<int>(((day + 4) % 7 + 7) % 7);  // 1970-01-01 was a Thursday
  auto day_ok = [this](int wd) { return ((days >> wd) & 1u) != 0; };
  if (start_minute < end_minute)
    return day_ok(weekday) && minute >= start_minute && minute < end_minute;
  // Past midnight: the early hours belong to the previous day's window.
  if (minute >= start_minute) return day_ok(weekday);
  if (minute < end_minute) return day_ok((weekday + 6) % 7);
  return false;
}

bool Matcher::Matches(const Target& t, const Principal& p, const sql::StatementFacts& s,
                      std::chrono::system_clock::time_point now) const {
  // Cheapest and most selective first: bit tests on the statement, then the principal's kind.
  return statement.QuickMatches(s) && (!principal.kind || *principal.kind == p.kind) &&
         ListMatches(env, t.env) && ListMatches(target, t.name) && statement.Matches(s) &&
         principal.Matches(p) && time.Matches(now);
}

bool Rule::Matches(const Target& t, const Principal& p, const sql::StatementFacts& s,
                   std::chrono::system_clock::time_point now) const {
  if (!match.Matches(t, p, s, now)) return false;
  for (const Matcher& m : exclude)
    if (m.Matches(t, p, s, now)) return false;
  return true;
}

std::shared_ptr<const CompiledPolicy> MakeCompiledPolicy(PolicyData data) {
  return std::make_shared<const Policy>(std::move(data));
}

std::string_view ActionName(Action action) {
  switch (action) {
    case Action::kAllow:
      return "allow";
    case Action::kLog:
      return "log";
    case Action::kApprove:
      return "approve";
    case Action::kDeny:
      return "deny";
  }
  return "unknown";
}

}  // namespace dbw::policy
