// The catalog snapshot's judgement of grouped reads (CatalogSnapshot::FewGroups): few groups by
// the statistics, every table of an unqualified name, and no lifting without statistics.
#include "userspace/relay/catalog.h"

#include <cmath>
#include <limits>

#include <gtest/gtest.h>

namespace dbw::relay {
namespace {

constexpr double kNone = std::numeric_limits<double>::quiet_NaN();

class FewGroupsTest : public ::testing::Test {
 protected:
  void Add(uint32_t oid, std::string schema, std::string name, char kind, double tuples,
           std::vector<std::pair<std::string, double>> columns) {
    CatalogRelation& r = snap_.relations[oid];
    r.schema = std::move(schema);
    r.name = name;
    r.kind = kind;
    r.tuples = tuples;
    for (auto& [column, nd] : columns) {
      r.columns.push_back(column);
      r.n_distinct.push_back(nd);
    }
    snap_.by_name[name].push_back(oid);
  }
  static sql::GroupColumn Col(std::string schema, std::string table, std::string column) {
    return {{std::move(schema), std::move(table)}, std::move(column)};
  }
  CatalogSnapshot snap_;
};

TEST_F(FewGroupsTest, DistinctValuesAgainstRows) {
  Add(16384, "public", "orders", 'r', 1000,
      {{"id", -1}, {"status", 3}, {"user_id", -0.5}, {"region", 20}, {"note", kNone}});
  EXPECT_TRUE(snap_.FewGroups({Col("", "orders", "status")}));
  EXPECT_TRUE(snap_.FewGroups({Col("public", "orders", "status")}));
  EXPECT_TRUE(snap_.FewGroups({Col("", "orders", "status"), Col("", "orders", "region")}));  // 60
  EXPECT_TRUE(snap_.FewGroups({}));                               // GROUP BY (): one group
  EXPECT_FALSE(snap_.FewGroups({Col("", "orders", "id")}));       // unique
  EXPECT_FALSE(snap_.FewGroups({Col("", "orders", "user_id")}));  // half the rows
  // A product of counts: status x region x id is every row.
  EXPECT_FALSE(snap_.FewGroups(
      {Col("", "orders", "status"), Col("", "orders", "region"), Col("", "orders", "id")}));
  EXPECT_FALSE(snap_.FewGroups({Col("", "orders", "note")}));     // no statistics
  EXPECT_FALSE(snap_.FewGroups({Col("", "orders", "missing")}));  // an output name
  EXPECT_FALSE(snap_.FewGroups({Col("other", "orders", "status")}));
  EXPECT_FALSE(snap_.FewGroups({Col("", "nothing", "status")}));
}

TEST_F(FewGroupsTest, EveryTableOfAnUnqualifiedNameAndOnlyAnalysedTables) {
  Add(16384, "public", "orders", 'r', 1000, {{"status", 3}});
  Add(16385, "archive", "orders", 'r', 1000, {{"status", -1}});
  EXPECT_FALSE(snap_.FewGroups({Col("", "orders", "status")}));  // archive.orders may be meant
  EXPECT_TRUE(snap_.FewGroups({Col("public", "orders", "status")}));
  Add(16386, "public", "orders_view", 'v', 1000, {{"status", 3}});
  Add(16387, "public", "fresh", 'r', -1, {{"status", 3}});
  EXPECT_FALSE(snap_.FewGroups({Col("", "orders_view", "status")}));  // a view: no statistics
  EXPECT_FALSE(snap_.FewGroups({Col("", "fresh", "status")}));        // never analysed
}

TEST_F(FewGroupsTest, EachTableOfAJoinOnItsOwnRows) {
  Add(16384, "public", "orders", 'r', 100000, {{"status", 3}, {"user_id", 200}});
  Add(16385, "public", "users", 'r', 200, {{"id", -1}, {"active", 2}});
  EXPECT_TRUE(snap_.FewGroups({Col("", "orders", "status"), Col("", "users", "active")}));
  // users.id is every user, however large orders is.
  EXPECT_FALSE(snap_.FewGroups({Col("", "orders", "status"), Col("", "users", "id")}));
}

}  // namespace
}  // namespace dbw::relay
