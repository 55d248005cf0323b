// StatementGate: reading text as the server will, resolving server-side names, and the gate's own
// refusals on top of the policy's decision.
#include "userspace/gate/statement_gate.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdio>

#include "userspace/sql/encoding.h"
#include "userspace/sql/params.h"
#include "userspace/sql/shape.h"

namespace dbw::gate {
namespace {

using sql::Command;
using sql::QueryFacts;
using sql::StatementFacts;

bool SameStatement(const StatementFacts& a, const StatementFacts& b) {
  return a.command == b.command && a.object_kind == b.object_kind && a.risks == b.risks &&
         a.tables_read == b.tables_read && a.tables_written == b.tables_written &&
         a.functions == b.functions && a.fingerprint == b.fingerprint &&
         a.object_name == b.object_name;
}

// Two readings of one text agree when they split into the same statements doing the same things.
bool SameReading(const QueryFacts& a, const QueryFacts& b) {
  if (a.unparseable != b.unparseable || a.statements.size() != b.statements.size()) return false;
  for (size_t i = 0; i < a.statements.size(); ++i)
    if (!SameStatement(a.statements[i], b.statements[i])) return false;
  return true;
}

std::shared_ptr<const QueryFacts> Unverifiable(const std::shared_ptr<const QueryFacts>& facts,
                                               std::string reason) {
  auto out = facts ? std::make_shared<QueryFacts>(*facts) : std::make_shared<QueryFacts>();
  if (out->statements.empty()) out->statements.emplace_back();  // kUnknown
  for (auto& s : out->statements) s.risks |= sql::kRiskUnverifiable;
  out->unverifiable = std::move(reason);
  out->literal_sensitive = true;
  return out;
}

// Risks that depend on the values bound to parameters (`id > $1`, `LIKE $1`, `LIMIT $1`).
constexpr uint32_t kValueRisks = sql::kRiskNoWhere | sql::kRiskUnboundedSelect;

bool HasByte(std::string_view text, char c) {
  return text.find(c) != std::string_view::npos;
}

std::string Quoted(std::string_view ident) {
  std::string out = "\"";
  for (char c : ident) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  return out + "\"";
}

policy::Decision Refusal(std::string reason, bool monitor) {
  policy::Decision d;
  d.action = policy::Action::kDeny;
  d.rules = {std::string(kGateRule)};
  d.reason = "denied by " + std::string(kGateRule) + ": " + reason;
  d.sqlstate = "42501";
  d.monitor = monitor;
  return d;
}

void AddUnique(std::vector<sql::TableRef>* v, const sql::TableRef& t) {
  if (std::find(v->begin(), v->end(), t) == v->end()) v->push_back(t);
}

void AddCandidate(std::vector<std::shared_ptr<const StatementFacts>>* list,
                  std::shared_ptr<const StatementFacts> f) {
  if (!f) return;
  if (std::find(list->begin(), list->end(), f) == list->end()) list->push_back(std::move(f));
}

}  // namespace

void StatementGate::OnParameterStatus(std::string_view name, std::string_view value) {
  if (name == "standard_conforming_strings") {
    lex_.standard_conforming_strings = value == "on";
  } else if (name == "client_encoding") {
    encoding_ = std::string(value);
  }
}

void StatementGate::OnReadyForQuery(uint8_t tx_status) {
  ++ready_seen_;
  if (tx_status != 'I') return;
  // Cursors without WITH HOLD close with their transaction.
  std::erase_if(cursors_, [](const auto& entry) { return !entry.second.hold; });
}

std::shared_ptr<const QueryFacts> StatementGate::Read(std::string_view text, std::string* problem) {
  std::string converted;
  std::string_view server_text = text;
  if (!sql::ReadsAsIs(text, encoding_)) {
    StatusOr<std::string> conv = sql::ToServerText(text, encoding_);
    if (!conv.ok()) {
      *problem = conv.status().message() + " (client_encoding " + encoding_ + ")";
      return nullptr;
    }
    converted = std::move(*conv);
    server_text = converted;
  }
  std::shared_ptr<const QueryFacts> facts = analyzer_->Analyze(server_text, lex_);
  if (!lexing_uncertain()) return facts;

  // A statement that may change a setting that decides how text is read has not been answered:
  // this text must read the same whichever way that went.
  // A reading the parser rejects is harmless: the server would run nothing of that text.
  auto differs = [&facts](const QueryFacts& other) {
    return !other.unparseable && !SameReading(*facts, other);
  };
  if (HasByte(server_text, '\\')) {
    sql::LexSettings other = lex_;
    other.standard_conforming_strings = !other.standard_conforming_strings;
    if (differs(*sql::AnalyzeUncached(server_text, other))) {
      *problem =
          "it reads differently with standard_conforming_strings on and off, and a statement "
          "that may change that setting has not been answered yet";
      return facts;
    }
  }
  if (sql::MayReadDifferentlyInClientOnlyEncoding(text)) {
    std::vector<std::string_view> encodings = sql::ClientOnlyEncodings();
    encodings.push_back("UTF8");
    for (std::string_view enc : encodings) {
      if (enc == encoding_) continue;
      StatusOr<std::string> conv = sql::ToServerText(text, enc);
      if (!conv.ok()) continue;  // the server would refuse these bytes in that encoding
      if (differs(*sql::AnalyzeUncached(*conv, lex_))) {
        *problem = "it reads differently in client_encoding " + std::string(enc) +
                   ", and a statement that may change client_encoding has not been answered yet";
        return facts;
      }
    }
  }
  return facts;
}

std::shared_ptr<const QueryFacts> StatementGate::Facts(std::string_view text) {
  std::string problem;
  std::shared_ptr<const QueryFacts> facts = Read(text, &problem);
  if (!problem.empty())
    return Unverifiable(facts,
                        "dbwarden cannot read this statement as the "
                        "server will: " +
                            problem);
  return Resolve(std::move(facts));
}

std::shared_ptr<const QueryFacts> StatementGate::Resolve(std::shared_ptr<const QueryFacts> facts) {
  // EXECUTE runs a prepared statement; so do EXPLAIN ANALYZE EXECUTE and CREATE TABLE AS EXECUTE
  // (`prepared` holds their EXECUTE); FETCH reads a cursor.
  auto nested = [](const StatementFacts& s) {
    return s.prepared && s.prepared->command == Command::kExecute &&
           ((s.command == Command::kExplain && s.object_kind == "ANALYZE") ||
            s.command == Command::kCreate);
  };
  bool names = false;
  for (const auto& s : facts->statements)
    names |= s.command == Command::kExecute || (s.command == Command::kFetch && !s.fetch_move) ||
             nested(s);
  if (!names) return facts;

  auto out = std::make_shared<QueryFacts>(*facts);
  out->literal_sensitive = true;
  // Names defined earlier in the same text: their definitions are candidates too.
  Names local_statements, local_cursors;
  std::vector<StatementFacts> extra;
  for (StatementFacts& s : out->statements) {
    if (s.command == Command::kPrepare && !s.object_name.empty()) {
      AddCandidate(&local_statements[s.object_name].candidates, s.prepared);
      continue;
    }
    if (s.command == Command::kDeclareCursor && !s.object_name.empty()) {
      AddCandidate(&local_cursors[s.object_name].candidates, s.prepared);
      continue;
    }
    const bool inside = nested(s);
    const bool execute = s.command == Command::kExecute || inside;
    if (!execute && !(s.command == Command::kFetch && !s.fetch_move)) continue;
    const StatementFacts& runner = inside ? *s.prepared : s;
    std::vector<FactsPtr> candidates;
    const Names* tables[2] = {execute ? &statements_ : &cursors_,
                              execute ? &local_statements : &local_cursors};
    for (const Names* table : tables) {
      auto it = table->find(runner.object_name);
      if (it != table->end())
        for (const auto& c : it->second.candidates) AddCandidate(&candidates, c);
    }
    if (candidates.empty()) {
      s.risks |= sql::kRiskUnverifiable;
      out->unverifiable =
          std::string(execute ? "EXECUTE of prepared statement \"" : "FETCH from cursor \"") +
          runner.object_name + "\", which dbwarden did not see " +
          (execute ? "prepared" : "declared") + " in this session";
      continue;
    }
    if (inside) {
      // The statement runs inside this one (its rows go to a plan or a new table, not to the
      // client): its effects become this statement's, for every possible definition.
      for (const auto& c : candidates) {
        StatementFacts run = Executed(runner, *c);
        s.risks |= run.risks & ~static_cast<uint32_t>(sql::kRiskUnboundedSelect);
        for (const auto& t : run.tables_read) AddUnique(&s.tables_read, t);
        for (const auto& t : run.tables_written) AddUnique(&s.tables_written, t);
        for (const auto& f : run.functions)
          if (std::find(s.functions.begin(), s.functions.end(), f) == s.functions.end())
            s.functions.push_back(f);
      }
      continue;
    }
    // Judged as what it runs; with several possible definitions, as each (strictest wins).
    auto resolved = [&](const FactsPtr& c) -> FactsPtr {
      if (!execute) return c;
      return std::make_shared<const StatementFacts>(Executed(s, *c));
    };
    s.prepared = resolved(candidates.front());
    for (size_t i = 1; i < candidates.size(); ++i) {
      StatementFacts copy = s;
      copy.prepared = resolved(candidates[i]);
      extra.push_back(std::move(copy));
    }
  }
  for (auto& e : extra) out->statements.push_back(std::move(e));
  return out;
}

StatementFacts StatementGate::Executed(const StatementFacts& execute, const StatementFacts& def) {
  std::optional<StatementFacts> bound;
  if (!def.source.empty() && execute.execute_args_known && CanBindValues())
    bound = BindInto(def, execute.execute_args);
  StatementFacts out = bound ? *std::move(bound) : def;
  // The arguments are evaluated whatever the statement does with them.
  out.risks |= execute.risks;
  for (const auto& t : execute.tables_read) AddUnique(&out.tables_read, t);
  for (const auto& f : execute.functions)
    if (std::find(out.functions.begin(), out.functions.end(), f) == out.functions.end())
      out.functions.push_back(f);
  return out;
}

std::optional<StatementFacts> StatementGate::BindInto(const StatementFacts& def,
                                                      const std::vector<std::string>& values) {
  if (bind_depth_ >= 4) return std::nullopt;
  std::optional<std::string> text = sql::SubstituteParams(def.source, values);
  if (!text) return std::nullopt;
  ++bind_depth_;
  // A source is text the server read with standard_conforming_strings on, and the values are
  // written for that reading: the statement it became is read the same way.
  std::shared_ptr<const QueryFacts> facts = Resolve(analyzer_->Analyze(*text));
  --bind_depth_;
  if (facts->unparseable || facts->statements.size() != 1 || !facts->unverifiable.empty())
    return std::nullopt;
  StatementFacts out = facts->statements.front();
  // Audited as the statement that was prepared (its normalized text and fingerprint).
  out.normalized = def.normalized;
  out.fingerprint = def.fingerprint;
  out.fingerprint_hex = def.fingerprint_hex;
  out.source.clear();
  return out;
}

std::shared_ptr<const QueryFacts> StatementGate::BoundFacts(
    const StatementFacts& def, const std::vector<std::string>& values) {
  auto out = std::make_shared<QueryFacts>();
  out->literal_sensitive = true;
  std::optional<StatementFacts> bound;
  if (!def.source.empty()) bound = BindInto(def, values);
  if (bound) {
    out->statements.push_back(std::move(*bound));
  } else {
    out->statements.push_back(def);
    out->statements.back().source.clear();
  }
  return out;
}

std::optional<std::string> StatementGate::ServerText(std::string_view text) const {
  if (sql::ReadsAsIs(text, encoding_)) return std::string(text);
  StatusOr<std::string> conv = sql::ToServerText(text, encoding_);
  if (!conv.ok()) return std::nullopt;
  return std::move(*conv);
}

std::vector<std::string> StatementGate::BindValues(
    const std::vector<int16_t>& formats,
    const std::vector<std::optional<std::span<const std::byte>>>& params,
    const std::vector<uint32_t>& types) const {
  // Type OIDs (pg_type.h) whose values the analysis can read.
  enum : uint32_t {
    kBool = 16,
    kChar = 18,
    kName = 19,
    kInt8 = 20,
    kInt2 = 21,
    kInt4 = 23,
    kText = 25,
    kOid = 26,
    kFloat4 = 700,
    kFloat8 = 701,
    kBpchar = 1042,
    kVarchar = 1043,
  };
  auto string_type = [](uint32_t t) {
    return t == kText || t == kVarchar || t == kBpchar || t == kName || t == kChar;
  };
  std::vector<std::string> out;
  out.reserve(params.size());
  for (size_t i = 0; i < params.size(); ++i) {
    int16_t format = -1;  // more values than format codes: the server's error
    if (formats.empty()) {
      format = 0;
    } else if (formats.size() == 1) {
      format = formats[0];
    } else if (i < formats.size()) {
      format = formats[i];
    }
    const uint32_t type = i < types.size() ? types[i] : 0;
    if (!params[i]) {
      out.emplace_back("NULL");
      continue;
    }
    const std::span<const std::byte> raw = *params[i];
    std::string_view bytes(reinterpret_cast<const char*>(raw.data()), raw.size());
    auto text_value = [&](std::string_view v, bool as_string) -> std::string {
      if (v.find('\0') != std::string_view::npos) return {};
      // The server converts text values from the client encoding it has when the Bind arrives;
      // while a statement that may change it is unanswered, only ASCII reads the same in all.
      if (lexing_uncertain() &&
          std::any_of(v.begin(), v.end(), [](char c) { return static_cast<uint8_t>(c) >= 0x80; }))
        return {};
      std::optional<std::string> server = ServerText(v);
      return server ? sql::BoundLiteral(*server, as_string) : std::string();
    };
    auto be = [&](size_t n) {
      uint64_t v = 0;
      for (size_t k = 0; k < n; ++k) v = (v << 8) | static_cast<uint8_t>(bytes[k]);
      return v;
    };
    std::string value;
    if (format == 0) {
      value = text_value(bytes, string_type(type));
    } else if (format == 1) {
      if (string_type(type)) {
        value = text_value(bytes, true);
      } else if (type == kInt2 && bytes.size() == 2) {
        value = std::to_string(static_cast<int16_t>(be(2)));
      } else if (type == kInt4 && bytes.size() == 4) {
        value = std::to_string(static_cast<int32_t>(be(4)));
      } else if (type == kOid && bytes.size() == 4) {
        value = std::to_string(static_cast<uint32_t>(be(4)));
      } else if (type == kInt8 && bytes.size() == 8) {
        value = std::to_string(static_cast<int64_t>(be(8)));
      } else if ((type == kFloat4 && bytes.size() == 4) || (type == kFloat8 && bytes.size() == 8)) {
        double d = 0;
        if (type == kFloat4) {
          d = std::bit_cast<float>(static_cast<uint32_t>(be(4)));
        } else {
          d = std::bit_cast<double>(be(8));
        }
        std::array<char, 64> buf{};
        std::snprintf(buf.data(), buf.size(), "%.17g", d);
        value = sql::BoundLiteral(buf.data(), !std::isfinite(d));  // inf, nan: strings
      } else if (type == kBool && bytes.size() == 1) {
        value = bytes[0] != 0 ? "true" : "false";
      }
    }
    out.push_back(std::move(value));
  }
  return out;
}

uint32_t StatementGate::ValueRisksBindingCanLift(std::string_view source, int params) {
  // Bound to plain values — every parameter a small number, or every one a string without
  // wildcards — does the statement lose the risk? If neither does, no value will.
  uint32_t remaining = kValueRisks;
  for (std::string_view trial : {std::string_view("1"), std::string_view("'x'")}) {
    std::vector<std::string> values(static_cast<size_t>(std::min(params, 100)), std::string(trial));
    std::optional<std::string> text = sql::SubstituteParams(source, values);
    if (!text) return 0;
    std::shared_ptr<const QueryFacts> facts = analyzer_->Analyze(*text);
    if (facts->unparseable || facts->statements.size() != 1) return 0;
    uint32_t left = 0;
    for (const StatementFacts* p = &facts->statements.front(); p != nullptr; p = p->prepared.get())
      left |= p->risks & kValueRisks;
    if (std::popcount(left) < std::popcount(remaining)) remaining = left;
  }
  return kValueRisks & ~remaining;
}

std::optional<policy::Decision> StatementGate::DecideDeferred(
    const policy::CompiledPolicy& policy, const policy::Target& target,
    const policy::Principal& principal, const QueryFacts& facts, bool masked,
    std::chrono::system_clock::time_point now, bool extended, std::string_view parse_source) {
  if (!CanBindValues() || facts.unparseable || !facts.unverifiable.empty()) return std::nullopt;
  // `lift` left out of `s` and of what it stands for (PREPARE's statement, what an EXECUTE was
  // resolved to).
  auto clear = [](StatementFacts* s, uint32_t lift, auto& self) -> void {
    s->risks &= ~lift;
    if (s->prepared && (s->command == Command::kPrepare || s->command == Command::kExecute)) {
      auto inner = std::make_shared<StatementFacts>(*s->prepared);
      self(inner.get(), lift, self);
      s->prepared = std::move(inner);
    }
  };
  QueryFacts view = facts;
  bool deferred = false;
  for (StatementFacts& s : view.statements) {
    uint32_t lift = 0;
    if (extended && view.statements.size() == 1 && facts.max_param > 0) {
      lift = ValueRisksBindingCanLift(parse_source, facts.max_param);
    } else if (s.command == Command::kPrepare && s.prepared && !s.prepared->source.empty()) {
      lift = ValueRisksBindingCanLift(s.prepared->source, sql::MaxParamNumber(s.prepared->source));
    }
    if (lift == 0) continue;
    clear(&s, lift, clear);
    deferred = true;
  }
  if (!deferred) return std::nullopt;
  policy::Decision d = Decide(policy, target, principal, view, masked, now, extended);
  if (d.action > policy::Action::kLog) return std::nullopt;
  return d;
}

std::shared_ptr<const QueryFacts> StatementGate::FunctionCallFacts(uint32_t oid,
                                                                   std::string_view qualified_name,
                                                                   size_t args) {
  const std::string label = "FASTPATH function OID " + std::to_string(oid);
  if (qualified_name.empty()) {
    StatementFacts s;
    s.command = Command::kFastpath;
    s.functions = {"oid:" + std::to_string(oid)};
    s.normalized = label;
    auto q = std::make_shared<QueryFacts>();
    q->statements.push_back(std::move(s));
    return Unverifiable(q, "FunctionCall of function OID " + std::to_string(oid) +
                               ", which is not in the database's catalog");
  }
  // Judged as a call of the function by name: the analyzer knows what that name does.
  size_t dot = qualified_name.find('.');
  std::string call = "SELECT " +
                     (dot == std::string_view::npos ? Quoted(qualified_name)
                                                    : Quoted(qualified_name.substr(0, dot)) + "." +
                                                          Quoted(qualified_name.substr(dot + 1))) +
                     "(";
  // At most FUNC_MAX_ARGS (100) arguments reach a function; more is the server's error anyway.
  for (size_t i = 0; i < std::min<size_t>(args, 100); ++i)
    call += (i == 0 ? "$" : ", $") + std::to_string(i + 1);
  call += ")";
  auto q = std::make_shared<QueryFacts>(*analyzer_->Analyze(call));
  if (q->statements.size() != 1) return Unverifiable(q, "FunctionCall could not be described");
  StatementFacts& s = q->statements.front();
  s.command = Command::kFastpath;
  s.object_kind = "FUNCTION";
  s.functions = {std::string(qualified_name)};
  s.normalized = label + " (" + std::string(qualified_name) + ")";
  q->literal_sensitive = true;
  return q;
}

policy::Decision StatementGate::Decide(const policy::CompiledPolicy& policy,
                                       const policy::Target& target,
                                       const policy::Principal& principal, const QueryFacts& facts,
                                       bool masked, std::chrono::system_clock::time_point now,
                                       bool extended) const {
  policy::Decision d = policy.Evaluate(target, principal, facts, now);
  const bool monitor = policy.mode() == policy::Mode::kMonitor;
  if (facts.AllRisks() & sql::kRiskUnverifiable)
    return Refusal(
        facts.unverifiable.empty() ? "the statement cannot be verified" : facts.unverifiable,
        monitor);
  for (const auto& s : facts.statements) {
    if (s.command == Command::kFastpath && masked)
      return Refusal(
          "a FunctionCall (fastpath) message cannot run while masking applies to this session: "
          "its result cannot be masked by column",
          monitor);
    if (s.command == Command::kReplication &&
        !(d.action <= policy::Action::kLog && !d.rules.empty()))
      return Refusal(
          "replication connections are refused unless a policy rule allows them "
          "(statement: {commands: [REPLICATION]}, action: allow)",
          monitor);
  }
  if (d.limits && d.limits->max_rows == 0 && facts.statements.size() > 1 && !monitor &&
      (d.limits->max_read_rows != 0 || d.limits->max_read_bytes != 0)) {
    // A read budget stops one statement of a Query, but the server goes on with the next ones
    // and commits them: a later statement that writes would run while the client (and the audit
    // record) see the Query fail. Without a row budget to undo them, such Queries are refused.
    for (size_t i = 1; i < facts.statements.size(); ++i) {
      const auto& s = facts.statements[i];
      if ((s.risks & (sql::kRiskWrite | sql::kRiskUserFunction)) || s.command == Command::kCall ||
          s.command == Command::kDo)
        return Refusal(
            "a statement that writes after another in the same Query cannot run under the read "
            "budget of rule " +
                (d.limits->max_read_rows != 0 ? d.limits->read_rows_rule
                                              : d.limits->read_bytes_rule) +
                " without a row budget; send the statements one by one",
            monitor);
    }
  }
  if (d.limits && d.limits->max_rows != 0 && !monitor) {
    // The relay counts the rows a Query changes inside one transaction of its own making, with
    // the server's per-transaction counters; what ends or splits that transaction, resets or
    // drops counters, or runs while the relay holds the client, cannot be counted.
    const std::string budget = " cannot run under the row budget of rule " + d.limits->write_rule +
                               " (max_rows " + std::to_string(d.limits->max_rows) + ")";
    if (facts.unparseable) return Refusal("unparseable text" + budget, monitor);
    bool control = false, other = false;
    for (const auto& s : facts.statements) {
      switch (s.command) {
        case Command::kCopy:
          if (s.risks & sql::kRiskWrite)
            return Refusal("COPY FROM" + budget + "; use INSERT", monitor);
          break;
        case Command::kTruncate:
        case Command::kDrop:
          return Refusal(std::string(sql::CommandName(s.command)) + budget, monitor);
        case Command::kFastpath:
          return Refusal("a FunctionCall (fastpath) message" + budget, monitor);
        case Command::kUnparseable:
          return Refusal("unparseable text" + budget, monitor);
        case Command::kCall:
        case Command::kDo:
          if (extended)
            return Refusal(std::string(sql::CommandName(s.command)) + " in the extended protocol" +
                               budget +
                               " (a procedure may COMMIT before the count); send it as a Query",
                           monitor);
          break;
        default:
          break;
      }
      (s.command == Command::kTransaction ? control : other) = true;
    }
    if (control && other)
      return Refusal(
          "transaction control (BEGIN, COMMIT, ROLLBACK, SAVEPOINT ...) in the same Query as "
          "other statements" +
              budget + "; send it as a Query of its own",
          monitor);
    if (!other) d.limits->max_rows = 0;  // nothing to count
    if (!d.limits->any()) d.limits.reset();
  }
  return d;
}

bool StatementGate::MayChangeReading(const QueryFacts& facts) {
  constexpr uint32_t kRisks = sql::kRiskLexerChange | sql::kRiskDynamicSql | sql::kRiskWrite;
  for (const auto& top : facts.statements) {
    for (const StatementFacts* s = &top; s != nullptr; s = s->prepared.get()) {
      // Functions and triggers can call set_config; DO, CALL and fastpath calls run any code.
      if ((s->risks & kRisks) || !s->functions.empty() || s->command == Command::kCall ||
          s->command == Command::kDo || s->command == Command::kFastpath ||
          s->command == Command::kExecute)
        return true;
    }
  }
  return false;
}

void StatementGate::OpenWindow(const QueryFacts& facts, bool answered_by_next_sync) {
  if (!MayChangeReading(facts)) return;
  uncertain_until_ = std::max(uncertain_until_, sync_points_ + (answered_by_next_sync ? 1 : 0));
}

void StatementGate::OnForwarded(const std::shared_ptr<const QueryFacts>& facts, bool simple,
                                std::string_view parse_name) {
  // Definitions become candidates now (the server acts on messages in order); whether they took
  // effect is known when the statement is answered (OnCompleted).
  for (const StatementFacts& s : facts->statements) {
    if (s.object_name.empty()) continue;
    if (s.command == Command::kPrepare) {
      AddCandidate(&statements_[s.object_name].candidates, s.prepared);
    } else if (s.command == Command::kDeclareCursor) {
      Name& n = cursors_[s.object_name];
      AddCandidate(&n.candidates, s.prepared);
      n.hold |= s.cursor_hold;
    }
  }
  if (!parse_name.empty() && facts->statements.size() == 1)
    AddCandidate(&statements_[std::string(parse_name)].candidates,
                 FactsPtr(facts, &facts->statements.front()));
  OpenWindow(*facts, !simple);
}

void StatementGate::OnExecuteForwarded(const QueryFacts& facts) {
  OpenWindow(facts, true);
}

void StatementGate::OnCompleted(const QueryFacts& facts, size_t succeeded) {
  auto settle = [](Names* names, const std::string& name, const FactsPtr& def, bool ok) {
    auto it = names->find(name);
    if (ok) {
      Name& n = (*names)[name];
      n.candidates = {def};
      return;
    }
    if (it == names->end()) return;
    std::erase(it->second.candidates, def);
    if (it->second.candidates.empty()) names->erase(it);
  };
  for (size_t i = 0; i < facts.statements.size(); ++i) {
    const StatementFacts& s = facts.statements[i];
    const bool ok = i < succeeded;
    switch (s.command) {
      case Command::kPrepare:
        if (!s.object_name.empty() && s.prepared)
          settle(&statements_, s.object_name, s.prepared, ok);
        break;
      case Command::kDeclareCursor:
        if (!s.object_name.empty() && s.prepared) settle(&cursors_, s.object_name, s.prepared, ok);
        if (ok && !s.object_name.empty()) cursors_[s.object_name].hold = s.cursor_hold;
        break;
      case Command::kDeallocate:
      case Command::kClosePortal: {
        Names& names = s.command == Command::kDeallocate ? statements_ : cursors_;
        if (!ok) break;
        if (s.name_all) {
          names.clear();
        } else {
          names.erase(s.object_name);
        }
        break;
      }
      case Command::kDiscard:
        if (ok && s.object_kind == "ALL") {
          statements_.clear();
          cursors_.clear();
        }
        break;
      default:
        break;
    }
  }
}

void StatementGate::OnParseAnswered(std::string_view name,
                                    const std::shared_ptr<const QueryFacts>& facts, bool ok) {
  if (name.empty() || !facts || facts->statements.size() != 1) return;
  const std::string key(name);
  FactsPtr def(facts, &facts->statements.front());
  auto it = statements_.find(key);
  if (ok) {
    statements_[key].candidates = {def};
  } else if (it != statements_.end()) {
    std::erase(it->second.candidates, def);
    if (it->second.candidates.empty()) statements_.erase(it);
  }
}

void StatementGate::OnBind(std::string_view portal,
                           const std::shared_ptr<const QueryFacts>& statement_facts) {
  if (portal.empty()) return;  // the unnamed portal cannot be named in SQL
  Name& n = cursors_[std::string(portal)];
  if (statement_facts && statement_facts->statements.size() == 1) {
    AddCandidate(&n.candidates, FactsPtr(statement_facts, &statement_facts->statements.front()));
  } else {
    n.candidates.clear();  // unknown statement: FETCH from it is unverifiable
  }
}

void StatementGate::OnClose(uint8_t kind, std::string_view name) {
  if (kind == 'S') {
    statements_.erase(std::string(name));
  } else {
    cursors_.erase(std::string(name));
  }
}

}  // namespace dbw::gate
