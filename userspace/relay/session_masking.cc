// Session: result masking glue — the profile for the session's principal, the catalog the
// column rules need (loaded before a statement runs, the client pump paused meanwhile), and
// the backend messages masking rewrites.
#include <algorithm>

#include "userspace/common/logging.h"
#include "userspace/protocol/postgres/encoder.h"
#include "userspace/protocol/postgres/parse.h"
#include "userspace/relay/session.h"

namespace dbw::relay {

namespace {
// Masked rows are buffered whole; a larger row streams and so cannot be masked.
constexpr size_t kMaskedRowLimit = 64u << 20;

namespace mask = sql::mask;

mask::ColumnMask ToColumnMask(const masking::MaskSpec& spec) {
  mask::MaskFunction f = mask::MaskFunction::kRedact;
  switch (spec.function) {
    case masking::Function::kRedact:
      f = mask::MaskFunction::kRedact;
      break;
    case masking::Function::kPartial:
      f = mask::MaskFunction::kPartial;
      break;
    case masking::Function::kHash:
      f = mask::MaskFunction::kHash;
      break;
    case masking::Function::kNull:
      f = mask::MaskFunction::kNull;
      break;
  }
  return {f, spec.keep_last, spec.rule_id};
}

std::string QuotedIdent(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  return out + "\"";
}

// What the rewriter needs of the catalog, with the profile's column rules applied. A column
// rule on a table also covers the tables it is inherited by (partitions, children) and those it
// inherits from, column by name: rows of one are read through the other.
std::shared_ptr<const mask::Catalog> BuildMaskCatalog(const CatalogSnapshot& snap,
                                                      const policy::MaskingProfile& profile) {
  // Relations related by inheritance, both ways, transitively.
  std::unordered_map<uint32_t, std::vector<uint32_t>> related;
  for (const auto& [oid, rel] : snap.relations)
    for (uint32_t parent : rel.parents) {
      related[oid].push_back(parent);
      related[parent].push_back(oid);
    }
  auto own_mask = [&](const CatalogRelation& rel,
                      const std::string& column) -> std::optional<mask::ColumnMask> {
    const masking::MaskSpec* spec = profile.ForColumn(rel.schema, rel.name, column);
    if (spec == nullptr) return std::nullopt;
    return ToColumnMask(*spec);
  };
  auto catalog = std::make_shared<mask::Catalog>();
  for (const auto& [oid, rel] : snap.relations) {
    if (rel.kind == 'S') continue;  // sequences
    mask::Relation r;
    r.schema = rel.schema;
    r.name = rel.name;
    r.kind = rel.kind;
    r.definition = rel.definition;
    // Every relation connected to this one through inheritance, either way (a depth-first walk
    // of `related`; `frontier` holds the relations still to visit).
    std::vector<uint32_t> family;
    if (auto it = related.find(oid); it != related.end()) {
      std::vector<uint32_t> frontier = it->second;
      while (!frontier.empty()) {
        uint32_t o = frontier.back();
        frontier.pop_back();
        if (o == oid || std::find(family.begin(), family.end(), o) != family.end()) continue;
        family.push_back(o);
        if (auto more = related.find(o); more != related.end())
          frontier.insert(frontier.end(), more->second.begin(), more->second.end());
      }
    }
    for (size_t i = 0; i < rel.columns.size(); ++i) {
      if (rel.columns[i].empty()) continue;  // dropped
      mask::Column c;
      c.name = rel.columns[i];
      const ColumnType& t = i < rel.types.size() ? rel.types[i] : ColumnType{};
      c.type =
          t.name.empty() ? "pg_catalog.text" : QuotedIdent(t.schema) + "." + QuotedIdent(t.name);
      c.value_class = t.category == 'S'   ? mask::ValueClass::kText
                      : t.category == 'J' ? mask::ValueClass::kJson
                                          : mask::ValueClass::kOther;
      c.mask = own_mask(rel, c.name);
      for (uint32_t o : family) {
        if (c.mask) break;
        auto other = snap.relations.find(o);
        if (other != snap.relations.end()) c.mask = own_mask(other->second, c.name);
      }
      r.columns.push_back(std::move(c));
    }
    catalog->AddRelation(std::move(r));
  }
  for (const std::string& name : snap.function_names) catalog->AddFunctionName(name);
  for (const std::string& name : snap.system_relations) catalog->AddSystemRelation(name);
  for (const auto& [key, functions] : snap.user_functions)
    for (const UserFunction& f : functions) {
      mask::Routine r{f.schema, f.name, f.language, f.body, f.extension};
      r.kind = f.kind;
      r.strict = f.strict;
      r.returns_set = f.returns_set;
      r.security_definer = f.security_definer;
      r.atomic = f.atomic;
      r.return_type = f.return_type;
      r.return_type_kind = f.return_type_kind;
      if (auto rel = snap.relations.find(f.return_relation); rel != snap.relations.end()) {
        r.return_schema = rel->second.schema;
        r.return_relation = rel->second.name;
      }
      for (const UserFunction::Arg& a : f.args) r.args.push_back({a.mode, a.type, a.name});
      r.defaults = f.defaults;
      r.has_config = f.has_config;
      r.config_search_path = f.config_search_path;
      catalog->AddRoutine(std::move(r));
    }
  return catalog;
}

}  // namespace

void Session::UpdateMasking(const std::shared_ptr<const policy::CompiledPolicy>& policy) {
  if (masked_policy_ == policy && masked_app_ == state_.application_name()) return;
  const policy::Principal& p = PolicyPrincipal(policy);
  auto profile = policy->Masking({target_->options.name, target_->options.env}, p);
  bool was_active = masking_.active();
  // Under one policy a session never unmasks itself by renaming (application_name): only a
  // policy change can lift masking from a session that had it.
  if (!profile && was_active && masked_policy_ == policy) return;
  masking_.SetProfile(std::move(profile), deps_.mask_key.hmac);
  masked_policy_ = policy;
  masked_app_ = state_.application_name();
  if (masking_.active() != was_active)
    upstream_decoder_.set_stream_threshold(masking_.active() ? kMaskedRowLimit
                                                             : deps_.options->stream_threshold);
}

bool Session::AwaitCatalog(bool need_functions) {
  if (catalog_checked_) {  // the statement resumed after its load, successful or not
    catalog_checked_ = false;
    return false;
  }
  if (!masking_.needs_catalog() && !need_functions) return false;
  if (masking_.catalog_miss()) {
    // A result named a relation the catalog did not know (created since): read it again.
    worker_->catalog.Invalidate(target_->options.name, state_.database());
    masking_.clear_catalog_miss();
  }
  std::weak_ptr<Session> weak = weak_from_this();
  in_catalog_get_ = true;
  catalog_ready_now_ = false;
  CatalogLogin login{state_.user(), credential_ != nullptr ? credential_->password : ""};
  worker_->catalog.Get(*target_, login, state_.database(),
                       [weak](std::shared_ptr<const CatalogSnapshot> snapshot, const Status& st) {
                         if (auto self = weak.lock()) self->OnCatalog(std::move(snapshot), st);
                       });
  in_catalog_get_ = false;
  if (catalog_ready_now_) return false;
  pause_ = Pause::kWaitingCatalog;
  return true;
}

void Session::OnCatalog(std::shared_ptr<const CatalogSnapshot> snapshot, const Status& status) {
  // Without a catalog every column from a table is withheld (fail closed); the next statement
  // tries again.
  if (!status.ok()) deps_.metrics->masking_catalog_failures->Add();
  catalog_ = snapshot;
  masking_.SetCatalog(std::move(snapshot));
  if (in_catalog_get_) {
    catalog_ready_now_ = true;
    return;
  }
  if (closed_ || pause_ != Pause::kWaitingCatalog) return;
  pause_ = Pause::kCatalogReady;
  catalog_checked_ = true;
  if (!upstream_->writing) ResumeClient();
}

void Session::MaskReferences(const pg::FrontendMessage& message, DecisionNote* note) {
  if (note->enforced) return;
  if (message.type != pg::fe::kQuery && message.type != pg::fe::kParse) return;
  const std::string_view sql =
      message.type == pg::fe::kQuery ? message.query.sql : message.parse.sql;
  if (!masking_.needs_catalog()) {
    // Not followed meanwhile: should masking apply again, the search_path is not known.
    if (search_path_.started() && mask::Rewriter::MayChangeSearchPath(sql)) search_path_.Forget();
    return;
  }
  auto refuse = [&](const std::string& reason, const std::string& rule) {
    policy::Decision d;
    d.action = policy::Action::kDeny;
    for (size_t at = 0; at < rule.size();) {  // "a, b": the rules of the columns concerned
      size_t end = rule.find(", ", at);
      d.rules.push_back(rule.substr(at, end == std::string::npos ? end : end - at));
      at = end == std::string::npos ? rule.size() : end + 2;
    }
    d.reason = "masking: " + reason;
    d.sqlstate = "42501";
    note->decision = std::move(d);
    note->enforced = true;
    note->deferred = false;
    deps_.metrics->masking_refusals->Add();
    deps_.metrics->decisions[static_cast<int>(policy::Action::kDeny)]->Add();
  };
  const policy::MaskingProfile* profile = masking_.profile().get();
  // Statements that read no relation and call no function (SET, BEGIN, COMMIT, SHOW, SELECT 1:
  // what drivers send at connect) need no catalog.
  bool reads = note->facts == nullptr || note->facts->unparseable;
  if (note->facts)
    for (const sql::StatementFacts& st : note->facts->statements)
      for (const sql::StatementFacts* s = &st; s != nullptr; s = s->prepared.get())
        reads = reads || !s->tables_read.empty() || !s->tables_written.empty() ||
                !s->functions.empty() || s->command == sql::Command::kCopy ||
                s->command == sql::Command::kDo;
  if (!catalog_) {
    if (reads)
      refuse("the catalog of target " + target_->options.name +
                 " could not be read, so masked columns cannot be told apart",
             {});
    else if (mask::Rewriter::MayChangeSearchPath(sql))
      search_path_.Forget();
    return;
  }
  // A schema change the catalog does not show yet (earlier in this query string, sent before
  // and not answered, or uncommitted in this transaction) may redefine what a later statement
  // reads: a view, a function body, a table.
  bool stale = ddl_in_tx_ || ddl_unanswered_;
  if (note->facts)
    for (size_t i = 0; i + 1 < note->facts->statements.size(); ++i)
      stale = stale || note->facts->statements[i].Has(sql::kRiskSchemaChange);
  if (stale && reads) {
    refuse(
        "a schema change in this session is not yet committed and answered, and the relay "
        "cannot check what it redefines: commit it, then send this statement on its own",
        {});
    return;
  }
  if (!rewriter_ || rewriter_catalog_ != catalog_.get() || rewriter_profile_ != profile) {
    rewriter_ = std::make_unique<mask::Rewriter>(
        BuildMaskCatalog(*catalog_, *profile),
        mask::Options{deps_.mask_key.inner_pad_hex, deps_.mask_key.outer_pad_hex});
    rewriter_catalog_ = catalog_.get();
    rewriter_profile_ = profile;
  }
  std::optional<std::string> text = gate_.ServerText(sql);
  if (!reads) {
    // Read only for what it does to the search_path (SET, RESET, DISCARD ALL).
    if (mask::Rewriter::MayChangeSearchPath(sql)) {
      mask::Result r;
      if (text) r = rewriter_->Rewrite(*text, search_path_.Possible());
      if (!text || r.outcome == mask::Result::Outcome::kRefused)
        search_path_.Forget();
      else
        note->path_effects = std::move(r.path_effects);
    }
    return;
  }
  if (!text) {
    refuse("the statement cannot be read as the server will read it", {});
    return;
  }
  mask::Result r = rewriter_->Rewrite(*text, search_path_.Possible());
  if (r.outcome == mask::Result::Outcome::kRewritten && (*text != sql || !gate_.CanBindValues())) {
    // The rewritten text is UTF-8 with standard strings: the session must read it so.
    refuse(
        "a statement that reads masked columns must be sent as UTF-8 (or ASCII) text with "
        "standard_conforming_strings on",
        {});
    return;
  }
  if (r.outcome == mask::Result::Outcome::kRefused) {
    note->unknown_name = r.unknown_name;
    refuse(r.reason, r.rule_id);
    return;
  }
  note->masked_in_sql = true;
  note->masked_references = std::move(r.masked_columns);
  note->path_effects = std::move(r.path_effects);
  if (r.outcome == mask::Result::Outcome::kRewritten) {
    note->rewritten_sql = std::move(r.sql);
    deps_.metrics->masking_rewrites->Add();
  }
}

const pg::Frame* Session::RewrittenFrame(const pg::FrontendMessage& message,
                                         const DecisionNote* note) {
  if (note == nullptr || note->rewritten_sql.empty() || note->enforced) return nullptr;
  rewritten_bytes_.clear();
  if (message.type == pg::fe::kQuery) {
    pg::AppendQuery(&rewritten_bytes_, note->rewritten_sql);
  } else if (message.type == pg::fe::kParse) {
    pg::AppendParse(&rewritten_bytes_, message.parse.name, note->rewritten_sql,
                    message.parse.param_types);
  } else {
    return nullptr;
  }
  std::span<const std::byte> in(rewritten_bytes_);
  std::string error;
  if (pg::ParseFrame(pg::Direction::kFrontend, false, &in, &rewritten_frame_, &error) !=
      pg::ParseState::kOk)
    return nullptr;
  return &rewritten_frame_;
}

bool Session::StartPathProbe(const pg::Frame& ready) {
  path_probed_ = true;
  UpdateMasking(deps_.policy->Get());
  // Only with nothing of the client's sent yet, so the answer is the next the server sends.
  if (!masking_.needs_catalog() || state_.pending_requests() != 0) return false;
  path_probe_ready_.clear();
  pg::AppendFrame(&path_probe_ready_, ready);
  path_probing_ = true;
  pg::Bytes probe;
  pg::AppendQuery(&probe, "SELECT pg_catalog.current_setting('search_path')");
  SendUpstream(std::move(probe));
  return true;
}

pg::MessageAction Session::OnPathProbe(const pg::Frame& frame, pg::Bytes* out,
                                       std::string* reason) {
  if (frame.type == pg::be::kDataRow) {
    pg::DataRowMessage row;
    if (pg::ParseDataRow(frame.body, &row, reason) && row.values.size() == 1 && row.values[0]) {
      const auto& v = *row.values[0];
      path_probe_value_ = std::string(reinterpret_cast<const char*>(v.data()), v.size());
    }
    return pg::MessageAction::kHandled;
  }
  if (frame.type == pg::be::kErrorResponse) path_probe_value_.reset();
  if (frame.type != pg::be::kReadyForQuery) return pg::MessageAction::kHandled;
  path_probing_ = false;
  std::optional<sql::SearchPath> value;
  if (path_probe_value_) value = sql::ParseSearchPath(*path_probe_value_);
  if (!value) {
    DBW_LOG(kWarning) << "session " << id_
                      << ": the search_path could not be read; unqualified names are taken as "
                         "naming a relation of any schema";
  }
  search_path_.Start(std::move(value), state_.user());
  path_probe_value_.reset();
  // The server's first ReadyForQuery goes on as if it had just arrived.
  return DeliverHeld(path_probe_ready_, out, reason) ? pg::MessageAction::kHandled
                                                     : pg::MessageAction::kReject;
}

void Session::NotePathEffects(const pg::FrontendMessage& message, const DecisionNote* note) {
  if (message.type == pg::fe::kExecute) {
    if (state_.skipping()) return;
    note = static_cast<const DecisionNote*>(state_.LastNote());
  } else if (message.type != pg::fe::kQuery) {
    return;
  }
  if (note == nullptr || note->enforced || note->path_effects.empty()) return;
  search_path_.OnSent(note, note->path_effects);
}

bool Session::MaskBackend(const pg::Frame& frame, pg::Bytes* out, std::string* reason,
                          bool* handled) {
  *handled = false;
  if (!masking_.active()) return true;
  bool ok = true;
  switch (frame.type) {
    case pg::be::kRowDescription:
      ok = masking_.OnRowDescription(frame, state_.HeadResultSource(), out, reason);
      break;
    case pg::be::kDataRow:
      ok = masking_.OnDataRow(frame, state_.HeadResultSource(), out, reason);
      break;
    case pg::be::kCopyOutResponse: {
      const auto* note = dynamic_cast<const DecisionNote*>(state_.HeadNote());
      const sql::StatementFacts* copy = nullptr;
      if (note != nullptr && note->facts && note->facts->statements.size() == 1)
        copy = &note->facts->statements.front();
      ok = masking_.OnCopyOutResponse(frame, copy, note != nullptr && note->masked_in_sql, out,
                                      reason);
      break;
    }
    case pg::be::kNotificationResponse:
      ok = masking_.OnNotification(frame, out, reason);
      break;
    case pg::be::kCopyData:
      ok = masking_.OnCopyData(frame, out, reason);
      break;
    case pg::be::kErrorResponse:
    case pg::be::kNoticeResponse:
      ok = masking_.OnErrorOrNotice(frame, out, reason);
      break;
    default:
      return true;
  }
  *handled = ok;
  if (ok) deps_.metrics->masked_messages->Add();
  return ok;
}

}  // namespace dbw::relay
