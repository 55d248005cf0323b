// AnalyzeUncached: libpg_query parse → simdjson DOM → per-statement facts, with libpg_query's
// normalization and fingerprint; and the Analyzer's LRU cache keyed by statement shape.
#include "userspace/sql/analyzer.h"

#include <pg_query.h>
#include <simdjson.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>

#include "userspace/sql/lexer.h"
#include "userspace/sql/params.h"
#include "userspace/sql/shape.h"
#include "userspace/sql/walker.h"

// libpg_query's scanner settings: per-thread globals of the library (PostgreSQL's GUCs).
extern "C" {
extern __thread bool standard_conforming_strings;
}

namespace dbw::sql {
namespace {

// Sets the scanner's settings for one analysis on this thread, and restores the defaults.
class ScopedLex {
 public:
  explicit ScopedLex(LexSettings lex) : saved_(standard_conforming_strings) {
    standard_conforming_strings = lex.standard_conforming_strings;
  }
  ~ScopedLex() { standard_conforming_strings = saved_; }
  ScopedLex(const ScopedLex&) = delete;
  ScopedLex& operator=(const ScopedLex&) = delete;

 private:
  bool saved_;
};

void Unparseable(QueryFacts* q, std::string_view sql, std::string error) {
  q->statements.clear();
  StatementFacts s;
  s.command = Command::kUnparseable;
  s.risks = kRiskUnparseable;
  s.error = error;
  // The audit log stores `normalized`: never the raw text of something we could not read.
  s.normalized = ScrubLiterals(sql, ScrubStyle::kQuestionMarks);
  q->statements.push_back(std::move(s));
  q->unparseable = true;
  q->error = std::move(error);
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && lex::IsSpace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && lex::IsSpace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// Literals become $n (numbered after any $n the text already has) and comments go, by the same
// scanner that computes the shape key. libpg_query's own normalizer costs another parse
// (about 6 us here) and still leaves literals in utility statements and comments.
void Normalize(const std::string& text, StatementFacts* s, const LexSettings& lex) {
  if (lex.standard_conforming_strings) {
    s->normalized = ScrubLiterals(text, ScrubStyle::kParams, MaxParamNumber(text) + 1);
  } else {
    // The project's scanner reads strings as standard_conforming_strings = on; libpg_query's
    // normalizer reads them as the session does.
    PgQueryNormalizeResult n = pg_query_normalize(text.c_str());
    s->normalized = n.error ? "?" : n.normalized_query;
    pg_query_free_normalize_result(n);
  }

  PgQueryFingerprintResult f = pg_query_fingerprint(text.c_str());
  if (!f.error) {
    s->fingerprint = f.fingerprint;
    if (f.fingerprint_str) s->fingerprint_hex = f.fingerprint_str;
  }
  pg_query_free_fingerprint_result(f);
}

int64_t IntField(simdjson::dom::object o, std::string_view key) {
  int64_t v = 0;
  simdjson::dom::element e;
  if (o.at_key(key).get(e) != simdjson::SUCCESS || e.get_int64().get(v) != simdjson::SUCCESS)
    return 0;
  return v;
}

struct PendingBody {
  size_t statement;
  Walker::Body body;
  std::string statement_text;  // plpgsql: the whole CREATE FUNCTION, as its parser wants it
};

// The SQL a PL/pgSQL function runs: every expression and statement text ("query" of a
// PLpgSQL_expr); dynamic SQL (EXECUTE, FOR ... IN EXECUTE, RETURN QUERY EXECUTE) cannot be
// known.
void CollectPlpgsql(simdjson::dom::element e, std::vector<std::string>* queries, bool* dynamic) {
  simdjson::dom::object o;
  simdjson::dom::array a;
  if (e.get_object().get(o) == simdjson::SUCCESS) {
    for (auto kv : o) {
      if (kv.key == "PLpgSQL_stmt_dynexecute" || kv.key == "PLpgSQL_stmt_dynfors" ||
          kv.key == "dynquery")
        *dynamic = true;
      std::string_view q;
      if (kv.key == "query" && kv.value.get_string().get(q) == simdjson::SUCCESS) {
        queries->emplace_back(q);
        continue;
      }
      CollectPlpgsql(kv.value, queries, dynamic);
    }
  } else if (e.get_array().get(a) == simdjson::SUCCESS) {
    for (auto x : a) CollectPlpgsql(x, queries, dynamic);
  }
}

// Bodies nested in bodies (a function that creates a function) are followed this deep; deeper
// ones count as dynamic SQL.
thread_local int body_depth = 0;

// libpg_query 15-4.0.0 leaks a 1-byte buffer each time pg_query_parse_plpgsql meets a body that
// does not compile (it returns before freeing it; tests/lsan.supp). A client could repeat such
// bodies forever, so after this many failures in the process, PL/pgSQL bodies are no longer
// parsed and count as dynamic SQL, as a failing body does anyway: the leak stays under a few MiB.
constexpr uint64_t kMaxPlpgsqlFailures = 65536;
std::atomic<uint64_t> plpgsql_failures{0};

// Folds what a CREATE FUNCTION/PROCEDURE body does into the statement's facts: the risks,
// tables and functions of each statement it runs. Text that does not parse as a statement
// (PL/pgSQL assignments, bare expressions) adds nothing.
void AbsorbBody(const PendingBody& pending, LexSettings lex, StatementFacts* s) {
  std::vector<std::string> queries;
  bool dynamic = false;
  if (pending.body.language == "sql") {
    queries.push_back(pending.body.text);
  } else if (pending.body.language != "plpgsql") {
    dynamic = true;  // plperl, plpython, ...: code this analysis cannot read
  } else if (plpgsql_failures.load(std::memory_order_relaxed) >= kMaxPlpgsqlFailures) {
    dynamic = true;
  } else {
    PgQueryPlpgsqlParseResult r = pg_query_parse_plpgsql(pending.statement_text.c_str());
    if (r.error != nullptr) {
      dynamic = true;  // a body its own parser rejects cannot be judged
      plpgsql_failures.fetch_add(1, std::memory_order_relaxed);
    } else if (r.plpgsql_funcs != nullptr) {
      simdjson::dom::parser local;
      simdjson::dom::element doc;
      if (local.parse(r.plpgsql_funcs, std::strlen(r.plpgsql_funcs)).get(doc) == simdjson::SUCCESS)
        CollectPlpgsql(doc, &queries, &dynamic);
      else
        dynamic = true;
    }
    pg_query_free_plpgsql_parse_result(r);
  }
  if (dynamic || body_depth >= 3) s->risks |= kRiskDynamicSql;
  if (body_depth >= 3) return;
  ++body_depth;
  for (const std::string& q : queries) {
    // PL/pgSQL keeps expressions (IF conditions, RETURN values) and assignments as bare text:
    // read them as the SELECT PL/pgSQL itself runs them as.
    auto inner = AnalyzeUncached(q, lex);
    if (inner->unparseable) inner = AnalyzeUncached("SELECT " + q, lex);
    if (inner->unparseable) {
      size_t assign = q.find(":=");
      if (assign != std::string::npos)
        inner = AnalyzeUncached("SELECT " + q.substr(assign + 2), lex);
    }
    if (inner->unparseable) continue;
    for (const auto& st : inner->statements) {
      s->risks |= st.risks;
      for (const auto& t : st.tables_read)
        if (std::find(s->tables_read.begin(), s->tables_read.end(), t) == s->tables_read.end())
          s->tables_read.push_back(t);
      for (const auto& t : st.tables_written)
        if (std::find(s->tables_written.begin(), s->tables_written.end(), t) ==
            s->tables_written.end())
          s->tables_written.push_back(t);
      for (const auto& f : st.functions)
        if (std::find(s->functions.begin(), s->functions.end(), f) == s->functions.end())
          s->functions.push_back(f);
    }
  }
  --body_depth;
}

// What the gate needs to judge a prepared statement with its values (params.h): the text a
// PREPARE prepares when it has parameters, and the arguments of an EXECUTE. Both are literals
// of this text, so the facts are not shared with other texts of the same shape.
void BindableParts(std::string_view statement, StatementFacts* s, bool* literal_sensitive) {
  if (s->command == Command::kPrepare && s->prepared) {
    std::optional<std::string_view> body = PreparedText(statement);
    if (body && MaxParamNumber(*body) > 0) {
      std::const_pointer_cast<StatementFacts>(s->prepared)->source = std::string(*body);
      *literal_sensitive = true;
    }
    return;
  }
  StatementFacts* execute = s->command == Command::kExecute ? s : nullptr;
  if (execute == nullptr && s->prepared && s->prepared->command == Command::kExecute)
    execute = std::const_pointer_cast<StatementFacts>(s->prepared).get();
  if (execute == nullptr) return;
  std::optional<std::vector<std::string>> args = ExecuteArguments(statement);
  execute->execute_args_known = args.has_value();
  if (!args) return;
  if (!args->empty()) *literal_sensitive = true;
  execute->execute_args = std::move(*args);
}

}  // namespace

std::shared_ptr<const QueryFacts> AnalyzeUncached(std::string_view sql, LexSettings lex) {
  ScopedLex scoped(lex);
  auto q = std::make_shared<QueryFacts>();
  // The server reads a Query message up to its NUL; text past one is not what it would run.
  if (sql.find('\0') != std::string_view::npos) {
    Unparseable(q.get(), sql, "query text contains a NUL byte");
    return q;
  }
  const std::string text(sql);
  PgQueryParseResult r = pg_query_parse(text.c_str());
  if (r.error) {
    Unparseable(q.get(), sql, r.error->message ? r.error->message : "syntax error");
    pg_query_free_parse_result(r);
    return q;
  }
  // One parser per thread: it keeps its buffers between calls.
  thread_local simdjson::dom::parser parser;
  simdjson::dom::element doc;
  simdjson::dom::array stmts;
  auto err = parser.parse(r.parse_tree, std::strlen(r.parse_tree)).get(doc);
  pg_query_free_parse_result(r);  // parse() copied the JSON into its padded buffer
  if (err != simdjson::SUCCESS) {
    Unparseable(q.get(), sql,
                std::string("parse tree not readable: ") + simdjson::error_message(err));
    return q;
  }
  simdjson::dom::object root;
  if (doc.get_object().get(root) != simdjson::SUCCESS) {
    Unparseable(q.get(), sql, "parse tree not readable");
    return q;
  }
  if (root.at_key("stmts").get_array().get(stmts) != simdjson::SUCCESS) return q;  // empty query

  q->max_param = MaxParamNumber(text);
  const size_t count = stmts.size();
  std::vector<PendingBody> bodies;
  for (simdjson::dom::element raw : stmts) {
    simdjson::dom::object raw_obj;
    simdjson::dom::element stmt;
    if (raw.get_object().get(raw_obj) != simdjson::SUCCESS ||
        raw_obj.at_key("stmt").get(stmt) != simdjson::SUCCESS)
      continue;
    StatementFacts s;
    bool sensitive = false;
    Walker walker(&s, &sensitive);
    {
      tree::ScopedSource source(text);
      walker.Statement(stmt);
    }
    q->literal_sensitive |= sensitive;

    size_t loc = static_cast<size_t>(IntField(raw_obj, "stmt_location"));
    size_t len = static_cast<size_t>(IntField(raw_obj, "stmt_len"));
    if (loc > text.size()) loc = text.size();
    if (len == 0 || loc + len > text.size()) len = text.size() - loc;
    // params.h reads text with standard_conforming_strings on, as the server then does.
    if (lex.standard_conforming_strings)
      BindableParts(count == 1 ? std::string_view(text) : std::string_view(text).substr(loc, len),
                    &s, &q->literal_sensitive);
    for (auto& b : walker.bodies()) {
      std::string statement_text = b.language == "plpgsql" ? text.substr(loc, len) : std::string();
      bodies.push_back({q->statements.size(), std::move(b), std::move(statement_text)});
    }
    if (count == 1) {
      Normalize(text, &s, lex);
    } else {
      Normalize(std::string(Trim(std::string_view(text).substr(loc, len))), &s, lex);
    }
    if (s.prepared) {
      // PREPARE's inner statement has no text of its own: it shares the PREPARE's.
      auto inner = std::const_pointer_cast<StatementFacts>(s.prepared);
      inner->normalized = s.normalized;
      inner->fingerprint = s.fingerprint;
      inner->fingerprint_hex = s.fingerprint_hex;
    }
    q->statements.push_back(std::move(s));
  }
  // Function bodies last: analysing them reuses this thread's parser, which the loop above
  // was still reading from.
  for (auto& pending : bodies) AbsorbBody(pending, lex, &q->statements[pending.statement]);
  return q;
}

Analyzer::Analyzer(size_t capacity) : capacity_(capacity) {
  scratch_.reserve(1024);
  index_.reserve(capacity);
}

std::shared_ptr<const QueryFacts> Analyzer::Analyze(std::string_view sql, LexSettings lex) {
  if (lex != LexSettings{}) {
    ++misses_;
    return AnalyzeUncached(sql, lex);
  }
  const uint64_t key = CanonicalShape(sql, &scratch_);
  auto it = index_.find(key);
  if (it != index_.end() && it->second->canonical == scratch_) {
    ++hits_;
    lru_.splice(lru_.begin(), lru_, it->second);
    return it->second->facts;
  }
  ++misses_;
  std::shared_ptr<const QueryFacts> facts = AnalyzeUncached(sql);
  // Facts that hinge on a literal belong to this text only; unparseable text is not a shape
  // worth keeping (and a literal may be what broke it).
  if (capacity_ == 0 || facts->literal_sensitive || facts->unparseable) return facts;
  if (it != index_.end()) {  // same key, different shape: the newer one takes the slot
    it->second->canonical = scratch_;
    it->second->facts = facts;
    lru_.splice(lru_.begin(), lru_, it->second);
    return facts;
  }
  if (index_.size() >= capacity_) {
    index_.erase(lru_.back().key);
    lru_.pop_back();
  }
  lru_.push_front(Entry{key, scratch_, facts});
  index_.emplace(key, lru_.begin());
  return facts;
}

}  // namespace dbw::sql
