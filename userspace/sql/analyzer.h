// Analyzer: SQL text in, StatementFacts out, via libpg_query's JSON parse tree read with
// simdjson, with a bounded cache keyed by the statement's shape (literal values ignored).
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "userspace/sql/facts.h"

namespace dbw::sql {

// How the server will split the text into tokens (its session settings). The analysis reads the
// text with the same rules: libpg_query's scanner keeps these settings per thread.
struct LexSettings {
  bool standard_conforming_strings = true;
  bool operator==(const LexSettings&) const = default;
};

// Analyses one query string (possibly several statements) without any cache. Never throws;
// text the parser rejects yields unparseable facts.
std::shared_ptr<const QueryFacts> AnalyzeUncached(std::string_view sql, LexSettings lex = {});

// A single-pass scan that hashes the query's tokens with every numeric and string literal
// replaced by a placeholder. Identifiers, keywords, operators and comments-stripped
// structure are all in the key, so two texts with the same key differ only in literals.
uint64_t ShapeKey(std::string_view sql);

// Not thread-safe: one per worker thread (libpg_query also keeps per-thread state).
class Analyzer {
 public:
  explicit Analyzer(size_t capacity = 4096);
  // Text read with other lexing rules than the defaults is analysed uncached: the shape key's
  // scanner reads strings as standard_conforming_strings = on does.
  std::shared_ptr<const QueryFacts> Analyze(std::string_view sql, LexSettings lex = {});
  uint64_t hits() const { return hits_; }
  uint64_t misses() const { return misses_; }
  size_t size() const { return index_.size(); }  // entries cached now

 private:
  // A hit needs the same 64-bit key and the same canonical form: a hash collision (or a
  // crafted one) can never hand one statement's facts to another.
  struct Entry {
    uint64_t key;
    std::string canonical;
    std::shared_ptr<const QueryFacts> facts;
  };
  size_t capacity_;
  uint64_t hits_ = 0;
  uint64_t misses_ = 0;
  std::list<Entry> lru_;  // most recently used first
  std::unordered_map<uint64_t, std::list<Entry>::iterator> index_;
  std::string scratch_;  // canonical form of the text being looked up (capacity reused)
};

}  // namespace dbw::sql
