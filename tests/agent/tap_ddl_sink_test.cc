// agent/tap_ddl_sink.h: a schema change the tap saw makes every relay worker re-read its
// masking catalog; other events only pass through.
#include "agent/tap_ddl_sink.h"

#include <memory>
#include <vector>

#include <gtest/gtest.h>

#include "tests/audit/collecting_sink.h"

namespace dbw::agent {
namespace {

using Collect = audit::CollectingSink;

audit::Event Statement(uint32_t risks) {
  auto facts = std::make_shared<sql::QueryFacts>();
  facts->statements.emplace_back();
  facts->statements.back().risks = risks;
  audit::Event e;
  e.kind = audit::EventKind::kStatement;
  e.source = "tap";
  e.statement = audit::StatementInfo{facts, "simple", ""};
  return e;
}

TEST(TapDdlSinkTest, SchemaChangesInvalidateEveryCatalogAndEveryEventPasses) {
  Collect next;
  TapDdlSink sink(&next);
  const uint64_t before = relay::CatalogCache::generation();
  sink.Submit(Statement(sql::kRiskNone));
  EXPECT_EQ(relay::CatalogCache::generation(), before);
  sink.Submit(Statement(sql::kRiskSchemaChange));
  EXPECT_EQ(relay::CatalogCache::generation(), before + 1);
  bool committed = false;
  sink.SubmitAndWait(Statement(sql::kRiskSchemaChange),
                     [&](const Status& st, uint64_t) { committed = st.ok(); });
  EXPECT_TRUE(committed);
  EXPECT_EQ(relay::CatalogCache::generation(), before + 2);
  EXPECT_EQ(next.events.size(), 3u);
}

}  // namespace
}  // namespace dbw::agent
