// Unit tests of the runtime limits' bookkeeping: WriteBudget (what it sends around a statement,
// which backend messages are the relay's, held or the client's, and the outcome for each case)
// and ReadBudget. The relay's real behaviour with PostgreSQL is in
// tests/integration/test_runtime_limits.py.
#include <span>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "userspace/gate/read_budget.h"
#include "userspace/gate/write_budget.h"
#include "userspace/protocol/postgres/encoder.h"
#include "userspace/protocol/postgres/parse.h"

namespace dbw::gate {
namespace {

using Route = WriteBudget::Route;

// Backend messages as the server would send them.
pg::Bytes Rfq(uint8_t status) {
  pg::Bytes b;
  pg::AppendReadyForQuery(&b, status);
  return b;
}
pg::Bytes Cc(std::string_view tag) {
  pg::Bytes b;
  pg::AppendCommandComplete(&b, tag);
  return b;
}
pg::Bytes Err(std::string_view code) {
  pg::Bytes b;
  pg::AppendErrorResponse(&b, {.severity = "ERROR", .sqlstate = code, .message = "boom"});
  return b;
}
pg::Bytes Row(std::string_view value) {
  pg::Bytes b;
  std::span<const std::byte> v(reinterpret_cast<const std::byte*>(value.data()), value.size());
  std::optional<std::span<const std::byte>> cols[] = {v};
  pg::AppendDataRow(&b, cols);
  return b;
}
pg::Bytes Simple(uint8_t type) {
  return {static_cast<std::byte>(type), std::byte{0}, std::byte{0}, std::byte{0}, std::byte{4}};
}
pg::Bytes RowDesc() {
  pg::FieldDescription f;
  f.name = "sum";
  pg::Bytes b;
  pg::AppendRowDescription(&b, std::span<const pg::FieldDescription>(&f, 1));
  return b;
}

// The frontend messages in `bytes`, as type letters ("QQQ", "CPBECC..."), with the Query texts.
std::string Types(const pg::Bytes& bytes, std::vector<std::string>* queries = nullptr) {
  std::string out;
  std::span<const std::byte> in(bytes);
  while (!in.empty()) {
    pg::Frame f;
    std::string err;
    EXPECT_EQ(pg::ParseFrame(pg::Direction::kFrontend, false, &in, &f, &err), pg::ParseState::kOk);
    out.push_back(static_cast<char>(f.type));
    if (queries != nullptr && f.type == pg::fe::kQuery)
      queries->emplace_back(reinterpret_cast<const char*>(f.body.data()), f.body.size() - 1);
  }
  return out;
}

// The text of the single Query the relay sends upstream in `out` ("" when it is not one Query).
std::string SentQuery(const WriteBudget::Output& out) {
  std::vector<std::string> q;
  return Types(out.upstream, &q) == "Q" ? q[0] : std::string();
}

struct Fed {
  Route route;
  WriteBudget::Output out;
};

Fed Feed(WriteBudget* b, const pg::Bytes& bytes, bool ahead = false) {
  std::span<const std::byte> in(bytes);
  pg::Frame f;
  std::string err;
  EXPECT_EQ(pg::ParseFrame(pg::Direction::kBackend, false, &in, &f, &err), pg::ParseState::kOk);
  Fed r;
  r.route = b->OnBackend(f, ahead, &r.out);
  return r;
}

// A simple-protocol measurement's answer: RowDescription, DataRow(count), CommandComplete, RFQ.
void Measure(WriteBudget* b, std::string_view count, uint8_t status, Fed* last = nullptr) {
  EXPECT_EQ(Feed(b, RowDesc()).route, Route::kSwallow);
  EXPECT_EQ(Feed(b, Row(count)).route, Route::kSwallow);
  EXPECT_EQ(Feed(b, Cc("SELECT 1")).route, Route::kSwallow);
  Fed f = Feed(b, Rfq(status));
  if (last != nullptr) *last = std::move(f);
}

TEST(WriteBudgetTest, AutocommitWithinBudgetCommits) {
  WriteBudget b("x");
  pg::Bytes before, after;
  b.Begin(100, "rule-a", false, 'I', &before, &after);
  std::vector<std::string> q;
  EXPECT_EQ(Types(before, &q), "Q");
  EXPECT_EQ(q[0].rfind("BEGIN; SELECT CASE WHEN pg_catalog.current_setting", 0), 0u) << q[0];
  EXPECT_EQ(Types(after), "Q");
  // BEGIN's answer, then the first count.
  EXPECT_EQ(Feed(&b, Cc("BEGIN")).route, Route::kSwallow);
  Measure(&b, "7", 'T');
  // The statement: its completion is held, its ReadyForQuery swallowed.
  EXPECT_EQ(Feed(&b, Cc("DELETE 40")).route, Route::kClient);
  EXPECT_EQ(Feed(&b, Rfq('T')).route, Route::kSwallow);
  Fed last;
  Measure(&b, "47", 'T', &last);
  EXPECT_EQ(last.route, Route::kSwallow);
  EXPECT_EQ(SentQuery(last.out), "COMMIT");
  EXPECT_FALSE(last.out.done);
  EXPECT_EQ(Feed(&b, Cc("COMMIT")).route, Route::kSwallow);
  Fed end = Feed(&b, Rfq('I'));
  EXPECT_EQ(end.route, Route::kClient);  // the client's ReadyForQuery: idle
  EXPECT_TRUE(end.out.release.empty());
  EXPECT_TRUE(end.out.done);
  EXPECT_FALSE(end.out.refusal);
  EXPECT_FALSE(b.active());
}

TEST(WriteBudgetTest, AutocommitOverBudgetRollsBackAndRefuses) {
  WriteBudget b("x");
  pg::Bytes before, after;
  b.Begin(100, "rule-a", false, 'I', &before, &after);
  EXPECT_EQ(Feed(&b, Cc("BEGIN")).route, Route::kSwallow);
  Measure(&b, "0", 'T');
  EXPECT_EQ(Feed(&b, Cc("DELETE 101")).route, Route::kClient);
  EXPECT_EQ(Feed(&b, Rfq('T')).route, Route::kSwallow);
  Fed last;
  Measure(&b, "101", 'T', &last);
  EXPECT_EQ(SentQuery(last.out), "ROLLBACK");
  EXPECT_EQ(Feed(&b, Cc("ROLLBACK")).route, Route::kSwallow);
  Fed end = Feed(&b, Rfq('I'));
  EXPECT_EQ(end.route, Route::kClient);
  EXPECT_TRUE(end.out.release.empty());  // the error follows the completion; ROLLBACK undid it
  ASSERT_TRUE(end.out.refusal);
  EXPECT_EQ(end.out.refusal->sqlstate, "54000");
  EXPECT_NE(end.out.refusal->message.find("changed 101 rows, more than the limit of 100 set by "
                                          "rule rule-a"),
            std::string::npos);
}

TEST(WriteBudgetTest, InABlockOverBudgetAbortsTheTransaction) {
  WriteBudget b("x");
  pg::Bytes before, after;
  b.Begin(10, "r", false, 'T', &before, &after);
  std::vector<std::string> q;
  Types(before, &q);
  EXPECT_EQ(q[0].rfind("SELECT", 0), 0u);  // no BEGIN inside a block
  Measure(&b, "500", 'T');  // earlier statements of the transaction count in both measurements
  EXPECT_EQ(Feed(&b, Cc("UPDATE 11")).route, Route::kClient);
  EXPECT_EQ(Feed(&b, Rfq('T')).route, Route::kSwallow);
  Fed last;
  Measure(&b, "511", 'T', &last);
  EXPECT_EQ(SentQuery(last.out),
            "dbwarden: row budget exceeded");  // a syntax error: aborts, runs nothing
  EXPECT_EQ(Feed(&b, Err("42601")).route, Route::kSwallow);
  Fed end = Feed(&b, Rfq('E'));
  EXPECT_EQ(end.route, Route::kClient);
  ASSERT_TRUE(end.out.refusal);
}

TEST(WriteBudgetTest, InABlockWithinBudgetCostsNoRoundTrip) {
  WriteBudget b("x");
  pg::Bytes before, after;
  b.Begin(10, "r", false, 'T', &before, &after);
  Measure(&b, "3", 'T');
  EXPECT_EQ(Feed(&b, Cc("UPDATE 10")).route, Route::kClient);
  EXPECT_EQ(Feed(&b, Rfq('T')).route, Route::kSwallow);
  Fed last;
  Measure(&b, "13", 'T', &last);
  EXPECT_TRUE(last.out.upstream.empty());
  EXPECT_EQ(last.route, Route::kClient);  // the last count's ReadyForQuery is the client's
  EXPECT_TRUE(last.out.release.empty());
  EXPECT_TRUE(last.out.done);
}

TEST(WriteBudgetTest, AStatementErrorKeepsItsOrderAndRollsBackInAutocommit) {
  WriteBudget b("x");
  pg::Bytes before, after;
  b.Begin(10, "r", false, 'I', &before, &after);
  EXPECT_EQ(Feed(&b, Cc("BEGIN")).route, Route::kSwallow);
  Measure(&b, "0", 'T');
  EXPECT_EQ(Feed(&b, Cc("INSERT 0 1")).route, Route::kClient);
  Fed err = Feed(&b, Err("23505"));
  EXPECT_EQ(err.route, Route::kClient);
  EXPECT_TRUE(err.out.release.empty());
  EXPECT_EQ(Feed(&b, Rfq('E')).route, Route::kSwallow);
  EXPECT_EQ(Feed(&b, Err("25P02")).route, Route::kSwallow);  // the second count fails
  Fed last = Feed(&b, Rfq('E'));
  EXPECT_EQ(SentQuery(last.out), "ROLLBACK");
  EXPECT_EQ(Feed(&b, Cc("ROLLBACK")).route, Route::kSwallow);
  Fed end = Feed(&b, Rfq('I'));
  EXPECT_EQ(end.route, Route::kClient);
  EXPECT_FALSE(end.out.refusal);  // the client has the server's own error
}

TEST(WriteBudgetTest, ACountThatCannotBeReadFailsClosed) {
  WriteBudget b("x");
  pg::Bytes before, after;
  b.Begin(10, "r", false, 'T', &before, &after);
  Measure(&b, "not a number", 'T');
  EXPECT_EQ(Feed(&b, Cc("UPDATE 1")).route, Route::kClient);
  EXPECT_EQ(Feed(&b, Rfq('T')).route, Route::kSwallow);
  Fed last;
  Measure(&b, "1", 'T', &last);
  EXPECT_FALSE(last.out.upstream.empty());  // aborted
  EXPECT_EQ(Feed(&b, Err("42601")).route, Route::kSwallow);
  Fed end = Feed(&b, Rfq('E'));
  ASSERT_TRUE(end.out.refusal);
  EXPECT_NE(end.out.refusal->message.find("could not be counted"), std::string::npos);
}

// Extended protocol: six completions per count; the answers before the wrap are the client's.
void ExtendedMeasure(WriteBudget* b, std::string_view count, Fed* last = nullptr) {
  EXPECT_EQ(Feed(b, Simple(pg::be::kCloseComplete)).route, Route::kSwallow);
  EXPECT_EQ(Feed(b, Simple(pg::be::kParseComplete)).route, Route::kSwallow);
  EXPECT_EQ(Feed(b, Simple(pg::be::kBindComplete)).route, Route::kSwallow);
  EXPECT_EQ(Feed(b, Row(count)).route, Route::kSwallow);
  EXPECT_EQ(Feed(b, Cc("SELECT 1")).route, Route::kSwallow);
  EXPECT_EQ(Feed(b, Simple(pg::be::kCloseComplete)).route, Route::kSwallow);
  Fed f = Feed(b, Simple(pg::be::kCloseComplete));
  EXPECT_EQ(f.route, Route::kSwallow);
  if (last != nullptr) *last = std::move(f);
}

TEST(WriteBudgetTest, ExtendedWithinBudget) {
  WriteBudget b("abc");
  pg::Bytes before, after;
  b.Begin(5, "r", true, 'I', &before, &after);
  EXPECT_EQ(Types(before), "CPBECC");
  EXPECT_EQ(Types(after), "CPBECCH");  // flushed: the count is needed before the client's Sync
  // The client's Bind, answered before the wrap starts.
  EXPECT_EQ(Feed(&b, Simple(pg::be::kBindComplete), true).route, Route::kClient);
  ExtendedMeasure(&b, "0");
  EXPECT_EQ(Feed(&b, Cc("UPDATE 5")).route, Route::kHold);
  Fed last;
  ExtendedMeasure(&b, "5", &last);
  EXPECT_TRUE(last.out.done);
  EXPECT_EQ(last.out.release.size(), 1u);
  EXPECT_TRUE(last.out.upstream.empty());
}

TEST(WriteBudgetTest, ExtendedOverBudgetFailsTheBatch) {
  WriteBudget b("abc");
  pg::Bytes before, after;
  b.Begin(5, "r", true, 'T', &before, &after);
  ExtendedMeasure(&b, "2");
  EXPECT_EQ(Feed(&b, Cc("DELETE 6")).route, Route::kHold);
  Fed last;
  ExtendedMeasure(&b, "8", &last);
  EXPECT_FALSE(last.out.done);
  EXPECT_EQ(Types(last.out.upstream), "PH");  // a named Parse that fails, flushed
  Fed end = Feed(&b, Err("42601"));
  EXPECT_EQ(end.route, Route::kSwallow);
  EXPECT_TRUE(end.out.done);
  EXPECT_TRUE(end.out.release.empty());
  ASSERT_TRUE(end.out.refusal);
}

TEST(WriteBudgetTest, ExtendedErrorsEndTheWrap) {
  {  // an earlier message of the batch failed: the server skips the wrap
    WriteBudget b("abc");
    pg::Bytes before, after;
    b.Begin(5, "r", true, 'I', &before, &after);
    Fed f = Feed(&b, Err("22012"), true);
    EXPECT_EQ(f.route, Route::kClient);
    EXPECT_TRUE(f.out.done);
    EXPECT_FALSE(b.active());
  }
  {  // the statement failed
    WriteBudget b("abc");
    pg::Bytes before, after;
    b.Begin(5, "r", true, 'I', &before, &after);
    ExtendedMeasure(&b, "0");
    Fed f = Feed(&b, Err("23505"));
    EXPECT_EQ(f.route, Route::kClient);
    EXPECT_TRUE(f.out.done);
  }
}

TEST(WriteBudgetTest, TrackCountsOffFailsClosed) {
  // The count is NULL when track_counts is off: nothing can be said, so the statement is undone.
  WriteBudget b("x");
  pg::Bytes before, after;
  b.Begin(10, "r", false, 'I', &before, &after);
  EXPECT_EQ(Feed(&b, Cc("BEGIN")).route, Route::kSwallow);
  pg::Bytes null_row;
  std::optional<std::span<const std::byte>> cols[] = {std::nullopt};
  pg::AppendDataRow(&null_row, cols);
  EXPECT_EQ(Feed(&b, RowDesc()).route, Route::kSwallow);
  EXPECT_EQ(Feed(&b, null_row).route, Route::kSwallow);
  EXPECT_EQ(Feed(&b, Cc("SELECT 1")).route, Route::kSwallow);
  EXPECT_EQ(Feed(&b, Rfq('T')).route, Route::kSwallow);
  EXPECT_EQ(Feed(&b, Cc("UPDATE 1")).route, Route::kClient);
  EXPECT_EQ(Feed(&b, Rfq('T')).route, Route::kSwallow);
  Fed last;
  Measure(&b, "1", 'T', &last);
  EXPECT_EQ(SentQuery(last.out), "ROLLBACK");
  EXPECT_EQ(Feed(&b, Cc("ROLLBACK")).route, Route::kSwallow);
  Fed end = Feed(&b, Rfq('I'));
  ASSERT_TRUE(end.out.refusal);
  EXPECT_NE(end.out.refusal->message.find("could not be counted"), std::string::npos);
}

TEST(WriteBudgetTest, ADeferredConstraintFailingAtTheSecondCount) {
  WriteBudget b("x");
  pg::Bytes before, after;
  b.Begin(10, "r", false, 'I', &before, &after);
  std::vector<std::string> after_q;
  Types(after, &after_q);
  // Deferred constraint triggers fire before the second count, inside the relay's transaction.
  EXPECT_EQ(after_q[0].rfind("SET CONSTRAINTS ALL IMMEDIATE; SELECT", 0), 0u) << after_q[0];
  EXPECT_EQ(Feed(&b, Cc("BEGIN")).route, Route::kSwallow);
  Measure(&b, "0", 'T');
  EXPECT_EQ(Feed(&b, Cc("INSERT 0 1")).route, Route::kClient);
  EXPECT_EQ(Feed(&b, Rfq('T')).route, Route::kSwallow);
  // SET CONSTRAINTS ALL IMMEDIATE fails: the client gets the server's error; rolled back.
  EXPECT_EQ(Feed(&b, Err("23503")).route, Route::kClient);
  Fed last = Feed(&b, Rfq('E'));
  EXPECT_EQ(SentQuery(last.out), "ROLLBACK");
  EXPECT_EQ(Feed(&b, Cc("ROLLBACK")).route, Route::kSwallow);
  Fed end = Feed(&b, Rfq('I'));
  EXPECT_EQ(end.route, Route::kClient);
  EXPECT_FALSE(end.out.refusal);
}

TEST(WriteBudgetTest, ForcedByTheReadBudget) {
  {  // simple, autocommit: rolled back; the read budget's error is already the client's
    WriteBudget b("x");
    pg::Bytes before, after;
    b.Begin(100, "r", false, 'I', &before, &after);
    EXPECT_EQ(Feed(&b, Cc("BEGIN")).route, Route::kSwallow);
    Measure(&b, "0", 'T');
    b.ForceRefuse(std::nullopt);
    EXPECT_EQ(Feed(&b, Rfq('T')).route, Route::kSwallow);
    Fed last;
    Measure(&b, "3", 'T', &last);
    EXPECT_EQ(SentQuery(last.out), "ROLLBACK");
    EXPECT_EQ(Feed(&b, Cc("ROLLBACK")).route, Route::kSwallow);
    Fed end = Feed(&b, Rfq('I'));
    EXPECT_FALSE(end.out.refusal);
  }
  {  // extended: the held completion is dropped, the batch fails with the given error
    WriteBudget b("x");
    pg::Bytes before, after;
    b.Begin(100, "r", true, 'I', &before, &after);
    ExtendedMeasure(&b, "0");
    b.ForceRefuse(WriteBudget::Refusal{"54000", "read budget", ""});
    EXPECT_EQ(Feed(&b, Cc("UPDATE 3")).route, Route::kHold);
    Fed last;
    ExtendedMeasure(&b, "3", &last);
    EXPECT_EQ(Types(last.out.upstream), "PH");
    Fed end = Feed(&b, Err("42601"));
    EXPECT_TRUE(end.out.release.empty());
    ASSERT_TRUE(end.out.refusal);
    EXPECT_EQ(end.out.refusal->message, "read budget");
  }
}

TEST(WriteBudgetTest, AsynchronousMessagesAlwaysReachTheClient) {
  WriteBudget b("x");
  pg::Bytes before, after;
  b.Begin(5, "r", false, 'T', &before, &after);
  pg::Bytes ps;
  pg::AppendParameterStatus(&ps, "application_name", "x");
  EXPECT_EQ(Feed(&b, ps).route, Route::kClient);
  EXPECT_TRUE(b.active());
}

TEST(ReadBudgetTest, AlternatingPortalsKeepTheirBudgets) {
  ReadBudget r;
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(r.OnRow(7, 4, 0, 1), ReadBudget::Verdict::kPass);
    r.Suspend();
    EXPECT_EQ(r.OnRow(8, 4, 0, 1), ReadBudget::Verdict::kPass);
    r.Suspend();
  }
  EXPECT_EQ(r.OnRow(7, 4, 0, 1), ReadBudget::Verdict::kPass);
  EXPECT_EQ(r.OnRow(7, 4, 0, 1), ReadBudget::Verdict::kExceeded);
  r.OnReady(true);  // the transaction ended: its portals are gone
  EXPECT_EQ(r.OnRow(8, 4, 0, 1), ReadBudget::Verdict::kPass);
  EXPECT_EQ(r.rows(), 1u);
}

TEST(ReadBudgetTest, RowsBytesAndSuspendedPortals) {
  ReadBudget r;
  EXPECT_EQ(r.OnRow(0, 2, 0, 10), ReadBudget::Verdict::kPass);
  EXPECT_EQ(r.OnRow(0, 2, 0, 10), ReadBudget::Verdict::kPass);
  EXPECT_EQ(r.OnRow(0, 2, 0, 10), ReadBudget::Verdict::kExceeded);
  EXPECT_EQ(r.OnRow(0, 2, 0, 10), ReadBudget::Verdict::kDrop);
  r.Reset();
  EXPECT_EQ(r.OnRow(0, 0, 25, 10), ReadBudget::Verdict::kPass);
  EXPECT_EQ(r.OnRow(0, 0, 25, 10), ReadBudget::Verdict::kPass);
  EXPECT_EQ(r.OnRow(0, 0, 25, 10), ReadBudget::Verdict::kExceeded);
  r.Reset();
  // A suspended portal's next Execute continues its budget; another portal starts afresh.
  EXPECT_EQ(r.OnRow(7, 2, 0, 1), ReadBudget::Verdict::kPass);
  r.Suspend();
  EXPECT_EQ(r.OnRow(7, 2, 0, 1), ReadBudget::Verdict::kPass);
  EXPECT_EQ(r.OnRow(7, 2, 0, 1), ReadBudget::Verdict::kExceeded);
  EXPECT_EQ(r.OnRow(8, 2, 0, 1), ReadBudget::Verdict::kPass);
}

}  // namespace
}  // namespace dbw::gate
