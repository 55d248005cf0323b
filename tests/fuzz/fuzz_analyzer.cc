// libFuzzer target: arbitrary bytes as query text through ShapeKey, the canonical form, the
// uncached analyzer and the cache. Besides not crashing, it checks the cache's soundness: when
// a fresh analysis is parseable and literal-insensitive, the cache (which may answer from an
// earlier input of the same shape) must give the same facts.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "userspace/sql/analyzer.h"
#include "userspace/sql/shape.h"

namespace {

bool SameFacts(const dbw::sql::QueryFacts& a, const dbw::sql::QueryFacts& b) {
  if (a.statements.size() != b.statements.size()) return false;
  for (size_t i = 0; i < a.statements.size(); ++i) {
    const auto& x = a.statements[i];
    const auto& y = b.statements[i];
    if (x.command != y.command || x.object_kind != y.object_kind || x.risks != y.risks ||
        x.tables_read != y.tables_read || x.tables_written != y.tables_written ||
        x.functions != y.functions)
      return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // A NUL-terminated copy, as a Query message body would arrive.
  const std::string text(reinterpret_cast<const char*>(data), size);
  const std::string_view sql(text.data(), text.size());
  std::string canonical;
  if (dbw::sql::ShapeKey(sql) != dbw::sql::CanonicalShape(sql, &canonical)) std::abort();

  auto fresh = dbw::sql::AnalyzeUncached(sql);
  if (fresh->unparseable && fresh->statements.size() != 1) std::abort();
  for (const auto& s : fresh->statements)
    if (s.command == dbw::sql::Command::kUnparseable && !s.Has(dbw::sql::kRiskUnparseable))
      std::abort();

  static dbw::sql::Analyzer cache(256);
  auto cached = cache.Analyze(sql);
  if (!fresh->unparseable && !fresh->literal_sensitive && !SameFacts(*fresh, *cached)) std::abort();
  return 0;
}

// The known libpg_query leak of tests/lsan.supp (a 1-byte buffer per PL/pgSQL body that does
// not compile), bounded in the agent by userspace/sql/analyzer.cc.
extern "C" const char* __lsan_default_suppressions() {
  return "leak:pg_query_raw_parse\n";
}
