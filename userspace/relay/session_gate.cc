// Session: the glue to the statement gate — facts and decision for a Query, Parse or
// FunctionCall, the principal it is judged for, what a forwarded message does to server-side
// names, and the refusal that replaces the server's error for a statement that was not run.
#include "userspace/identity/process_info.h"
#include "userspace/protocol/postgres/encoder.h"
#include "userspace/protocol/postgres/parse.h"
#include "userspace/relay/session.h"
#include "userspace/relay/session_internal.h"
#include "userspace/sql/params.h"

namespace dbw::relay {
namespace {

// PREPARE, EXECUTE and FETCH stand for the statement in `prepared`: policy judges that one.
bool IsWrapper(const sql::StatementFacts& s) {
  return s.command == sql::Command::kPrepare || s.command == sql::Command::kExecute ||
         s.command == sql::Command::kFetch;
}

// Marks the statement that policy judges, and its wrappers.
void MarkJudged(sql::StatementFacts* s, uint32_t risk) {
  if (IsWrapper(*s) && s->prepared) {
    auto inner = std::make_shared<sql::StatementFacts>(*s->prepared);
    MarkJudged(inner.get(), risk);
    s->prepared = std::move(inner);
  }
  s->risks |= risk;
}

// Clears a risk of the statement that policy judges, and of the wrappers that carry its risks.
void ClearJudged(sql::StatementFacts* s, uint32_t risk) {
  if (IsWrapper(*s) && s->prepared) {
    auto inner = std::make_shared<sql::StatementFacts>(*s->prepared);
    ClearJudged(inner.get(), risk);
    s->prepared = std::move(inner);
    if (s->command == sql::Command::kPrepare) s->risks &= ~risk;  // PREPARE carries its risks
    return;
  }
  s->risks &= ~risk;
}

}  // namespace

std::shared_ptr<const sql::QueryFacts> Session::WithCatalogRisks(
    std::shared_ptr<const sql::QueryFacts> facts) const {
  if (!catalog_) return facts;
  std::shared_ptr<sql::QueryFacts> copy;
  auto writable = [&](size_t i) {
    if (!copy) copy = std::make_shared<sql::QueryFacts>(*facts);  // the cached facts stay as read
    return &copy->statements[i];
  };
  for (size_t i = 0; i < facts->statements.size(); ++i) {
    bool risky = false;
    for (const sql::StatementFacts* p = &facts->statements[i]; p != nullptr && !risky;
         p = p->prepared.get())
      for (const std::string& f : p->functions)
        risky = risky || catalog_->CallsRiskyUserFunction(f);
    if (risky) MarkJudged(writable(i), sql::kRiskUserFunction);
    // A grouped read that the statistics show returns few groups is not a whole-table read.
    const sql::StatementFacts* judged = &facts->statements[i];
    while (IsWrapper(*judged) && judged->prepared) judged = judged->prepared.get();
    if (judged->grouped && judged->Has(sql::kRiskUnboundedSelect) &&
        catalog_->FewGroups(judged->group_columns))
      ClearJudged(writable(i), sql::kRiskUnboundedSelect);
  }
  return copy ? std::shared_ptr<const sql::QueryFacts>(std::move(copy)) : facts;
}

std::shared_ptr<DecisionNote> Session::Decide(const pg::FrontendMessage& message) {
  uint64_t start = MonotonicNs();
  auto note = std::make_shared<DecisionNote>();
  if (message.type == pg::fe::kQuery) {
    note->facts = gate_.Facts(message.query.sql);
  } else if (message.type == pg::fe::kParse) {
    note->facts = gate_.Facts(message.parse.sql);
  } else {
    uint32_t oid = message.function_call.function_oid;
    note->facts =
        gate_.FunctionCallFacts(oid, FunctionName(oid), message.function_call.args.size());
  }
  note->facts = WithCatalogRisks(std::move(note->facts));
  const bool parse = message.type == pg::fe::kParse;
  std::string source;  // a Parse's text as the server reads it, should it be deferred
  Judge(note.get(), deps_.policy->Get(), parse, message.type != pg::fe::kFunctionCall, [&] {
    if (parse) source = gate_.ServerText(message.parse.sql).value_or(std::string());
    return std::string_view(source);
  });
  MaskReferences(message, note.get());
  if (note->deferred && parse) {
    // Every Bind of it is judged with its values.
    auto facts = std::make_shared<sql::QueryFacts>(*note->facts);
    if (facts->statements.size() == 1) facts->statements.front().source = std::move(source);
    note->facts = std::move(facts);
    note->param_types = message.parse.param_types;
  }
  deps_.metrics->decision_latency->ObserveMicros((MonotonicNs() - start) / 1000);
  return note;
}

const DecisionNote* Session::DeferredStatement(std::string_view statement) const {
  // The relay attaches DecisionNotes only.
  const auto* note =
      static_cast<const DecisionNote*>(state_.StatementNoteOf(std::string(statement)));
  return note != nullptr && note->deferred ? note : nullptr;
}

std::shared_ptr<DecisionNote> Session::DecideBind(const pg::BindMessage& bind,
                                                  const DecisionNote& statement) {
  uint64_t start = MonotonicNs();
  // What was prepared: the Parse's statement (the relay gave it its text), or the PREPARE of
  // that name in a Query. Without a text it is judged at its worst, as prepared.
  const sql::StatementFacts* def = nullptr;
  const sql::QueryFacts& prepared = *statement.facts;
  if (prepared.statements.size() == 1 && !prepared.statements.front().source.empty())
    def = &prepared.statements.front();
  for (const auto& s : prepared.statements)
    if (def == nullptr && s.command == sql::Command::kPrepare && s.object_name == bind.statement &&
        s.prepared)
      def = s.prepared.get();
  auto note = std::make_shared<DecisionNote>();
  note->bind = true;
  std::vector<std::string> values =
      gate_.BindValues(bind.param_formats, bind.params, statement.param_types);
  note->facts = def != nullptr ? gate_.BoundFacts(*def, values) : statement.facts;
  note->facts = WithCatalogRisks(std::move(note->facts));
  Judge(note.get(), deps_.policy->Get(), true);
  if (def != nullptr && !def->source.empty() && note->decision.action == policy::Action::kApprove)
    note->bound_sql = sql::SubstituteParams(def->source, values).value_or(def->source);
  deps_.metrics->decision_latency->ObserveMicros((MonotonicNs() - start) / 1000);
  return note;
}

void Session::Judge(DecisionNote* note, const std::shared_ptr<const policy::CompiledPolicy>& policy,
                    bool extended, bool may_defer,
                    const std::function<std::string_view()>& parse_source) {
  const policy::Target target{target_->options.name, target_->options.env};
  const auto now = std::chrono::system_clock::now();
  note->decision = gate_.Decide(*policy, target, PolicyPrincipal(policy), *note->facts,
                                masking_.active(), now, extended);
  bool stop = note->decision.action == policy::Action::kDeny ||
              note->decision.action == policy::Action::kApprove;
  if (stop && may_defer && !note->decision.monitor) {
    std::optional<policy::Decision> deferred = gate_.DecideDeferred(
        *policy, target, PolicyPrincipal(policy), *note->facts, masking_.active(), now, extended,
        parse_source ? parse_source() : std::string_view());
    if (deferred) {
      deferred->reason = "judged with its parameter values when they are bound (as prepared: " +
                         note->decision.reason + ")";
      note->decision = std::move(*deferred);
      note->deferred = true;
      stop = false;
      deps_.metrics->decisions_deferred->Add();
    }
  }
  const policy::Decision& d = note->decision;
  note->enforced = stop && !d.monitor;
  deps_.metrics->decisions[static_cast<int>(d.action)]->Add();
  if (stop && d.monitor) deps_.metrics->decisions_monitored->Add();
}

const policy::Principal& Session::PolicyPrincipal(
    const std::shared_ptr<const policy::CompiledPolicy>& policy) {
  const policy::Principal& p =
      principal_classifier_.Classified(policy, state_.application_name(), [this] {
        policy::Principal id;
        id.db_user = principal_.db_user;
        id.database = principal_.database;
        id.client_addr = principal_.client_addr;
        id.cert_subject = principal_.cert_subject;
        id.cert_san = principal_.cert_san;
        id.cert_issuer = principal_.cert_issuer;
        // The verified identity: what the relay verified (auth: a token's subject); per
        // target, the certificate's URI SAN (SPIFFE ID) or its subject; else the database user.
        id.subject = !principal_.subject.empty() ? principal_.subject
                     : target_->options.identity_from_uri_san && !id.cert_san.empty() ? id.cert_san
                     : id.cert_subject.empty()                                        ? id.db_user
                                               : id.cert_subject;
        id.issuer = principal_.issuer;
        id.groups = principal_.groups;
        id.claims = token_claims_;
        id.asserted_kind = token_kind_;
        if (process_) {
          id.exe = process_->exe;
          id.unit = identity::UnitFromCgroup(process_->cgroup);
          id.container = identity::ContainerFromCgroup(process_->cgroup);
        }
        return id;
      });
  if (principal_.application_name != p.application_name ||
      principal_.kind != policy::KindName(p.kind)) {
    principal_.application_name = p.application_name;
    principal_.kind = policy::KindName(p.kind);
    info_.reset();
  }
  return p;
}

bool Session::RewriteRefusal(const pg::Frame& frame, pg::Bytes* out, std::string* reason) {
  const auto* note = dynamic_cast<const DecisionNote*>(state_.HeadNote());
  if (note == nullptr || !note->enforced) return false;
  const policy::Decision& d = note->decision;
  if (!note->audit_failure.empty()) {
    return ReplaceWithError({.severity = "ERROR",
                             .sqlstate = "58000",
                             .message = "dbwarden: the audit log cannot record this "
                                        "statement, so it was not run",
                             .detail = note->audit_failure},
                            out, reason);
  }
  if (note->refusal) {
    // An approval's answer: ticket, denied, timed out, withdrawn; it names the request.
    const approvals::Outcome& o = *note->refusal;
    return ReplaceWithError({.severity = "ERROR",
                             .sqlstate = o.sqlstate,
                             .message = o.message,
                             .detail = o.detail,
                             .hint = o.hint},
                            out, reason);
  }
  std::string rules;
  for (const auto& r : d.rules) rules += (rules.empty() ? "" : ", ") + r;
  std::string message = "dbwarden: " + d.reason;  // names the rule and says deny or approval
  return ReplaceWithError({.severity = "ERROR",
                           .sqlstate = d.sqlstate.empty() ? std::string_view("42501") : d.sqlstate,
                           .message = message,
                           .detail = rules.empty() ? "" : "policy rule(s): " + rules,
                           .hint = d.action == policy::Action::kApprove
                                       ? "an approver must approve this statement before it can run"
                                       : ""},
                          out, reason);
}

bool Session::ReplaceWithError(const pg::ErrorFields& fields, pg::Bytes* out, std::string* reason) {
  pg::Bytes replaced;
  pg::AppendErrorResponse(&replaced, fields);
  std::span<const std::byte> in(replaced);
  pg::Frame rewritten;
  if (pg::ParseFrame(pg::Direction::kBackend, false, &in, &rewritten, reason) !=
          pg::ParseState::kOk ||
      !state_.OnBackend(rewritten, MonotonicNs(), reason))
    return false;
  out->insert(out->end(), replaced.begin(), replaced.end());
  return true;
}

void Session::TrackForwarded(const pg::FrontendMessage& message,
                             const std::shared_ptr<DecisionNote>& note) {
  switch (message.type) {
    case pg::fe::kSync:
      gate_.OnSyncPoint();
      return;
    case pg::fe::kQuery:
    case pg::fe::kParse:
    case pg::fe::kFunctionCall: {
      const bool parse = message.type == pg::fe::kParse;
      if (!parse) gate_.OnSyncPoint();
      if (note == nullptr || note->enforced || !note->facts) return;  // replaced: runs nothing
      gate_.OnForwarded(note->facts, !parse, parse ? message.parse.name : std::string_view());
      // SQL-level names share the server's table with protocol-level ones: what was learned
      // about a redefined name (its result description) must not be used again.
      for (const sql::StatementFacts& s : note->facts->statements) {
        if (s.command == sql::Command::kPrepare && !s.object_name.empty()) {
          state_.RedefineStatement(s.object_name, note);
        } else if (s.command == sql::Command::kDeallocate) {
          if (s.name_all) {
            state_.DropAllStatements();
          } else {
            state_.DropStatement(s.object_name);
          }
        } else if (s.command == sql::Command::kDiscard && s.object_kind == "ALL") {
          state_.DropAllStatements();
        }
      }
      return;
    }
    case pg::fe::kBind: {
      // Only a named portal can be named in SQL (FETCH); the unnamed one needs no lookup.
      if (message.bind.portal.empty() || (note != nullptr && note->enforced)) return;
      // A judged Bind (of a deferred statement) runs what it was judged as. The relay attaches
      // DecisionNotes only.
      const auto* stmt = note != nullptr ? note.get()
                                         : static_cast<const DecisionNote*>(state_.StatementNoteOf(
                                               std::string(message.bind.statement)));
      gate_.OnBind(message.bind.portal, stmt != nullptr ? stmt->facts : nullptr);
      return;
    }
    case pg::fe::kExecute: {
      const auto* run = static_cast<const DecisionNote*>(state_.LastNote());
      if (run != nullptr && run->facts) gate_.OnExecuteForwarded(*run->facts);
      return;
    }
    case pg::fe::kClose:
      gate_.OnClose(message.describe.kind, message.describe.name);
      return;
    default:
      return;
  }
}

std::string Session::FunctionName(uint32_t oid) const {
  if (!catalog_) return {};
  auto it = catalog_->functions.find(oid);
  return it == catalog_->functions.end() ? std::string() : it->second;
}

}  // namespace dbw::relay
