// JsonlSink: events land as JSON lines with increasing seq; the sequence survives reopen;
// invalid UTF-8 from the network never produces invalid JSON.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <filesystem>
#include <fstream>

#include "userspace/audit/event_json.h"
#include "userspace/audit/jsonl_sink.h"

namespace dbw::audit {
namespace {

std::vector<std::string> Lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

TEST(JsonlSinkTest, WritesParsableLinesAndContinuesSequence) {
  std::string path = std::filesystem::temp_directory_path() / ("dbw-audit-" + std::to_string(::getpid()));
  std::filesystem::remove(path);
  for (int round = 0; round < 2; ++round) {
    auto sink = JsonlSink::Open(path, 1024);
    ASSERT_TRUE(sink.ok());
    for (int i = 0; i < 10; ++i) {
      Event e;
      e.kind = EventKind::kStatement;
      auto info = std::make_shared<SessionInfo>();
      info->principal.db_user = "alice";
      info->principal.client_addr = "127.0.0.1:5";
      info->session_id = "s" + std::to_string(i);
      e.session = info;
      auto facts = std::make_shared<sql::QueryFacts>();
      sql::StatementFacts st;
      st.command = sql::Command::kSelect;
      st.normalized = "SELECT \"\xff\xfe\" || 'é'";  // an identifier that is not UTF-8
      st.tables_read.push_back({"public", "t"});
      facts->statements.push_back(st);
      e.statement = StatementInfo{facts, "simple", ""};
      e.result = ResultInfo{"SELECT 1", "", "", 12, 1, 40};
      (*sink)->Submit(std::move(e));
    }
    (*sink)->Flush();
  }
  auto lines = Lines(path);
  ASSERT_EQ(lines.size(), 20u);
  simdjson::dom::parser parser;
  uint64_t prev = 0;
  for (const auto& line : lines) {
    simdjson::dom::element doc;
    ASSERT_EQ(parser.parse(line).get(doc), simdjson::SUCCESS) << line;
    uint64_t seq = doc["seq"].get_uint64().value();
    EXPECT_EQ(seq, prev + 1);
    prev = seq;
    EXPECT_EQ(std::string(doc["kind"].get_string().value()), "statement");
    EXPECT_EQ(std::string(doc["principal"]["db_user"].get_string().value()), "alice");
    std::string sql(doc["statement"]["sql"].get_string().value());
    EXPECT_EQ(sql, "SELECT \"\xEF\xBF\xBD\xEF\xBF\xBD\" || 'é'");
    EXPECT_EQ(std::string(doc["statement"]["commands"].at(0).get_string().value()), "SELECT");
    EXPECT_EQ(std::string(doc["statement"]["tables_read"].at(0).get_string().value()), "public.t");
  }
  std::filesystem::remove(path);
}

TEST(JsonlSinkTest, FullQueueIsCountedAndReported) {
  std::string path = std::filesystem::temp_directory_path() / ("dbw-audit-loss-" + std::to_string(::getpid()));
  std::filesystem::remove(path);
  uint64_t dropped = 0;
  {
    auto sink = JsonlSink::Open(path, 4);
    ASSERT_TRUE(sink.ok());
    // The writer wakes every few ms; 2000 back-to-back submits overrun a queue of 4.
    for (int i = 0; i < 2000; ++i) (*sink)->Submit(Event{});
    (*sink)->Flush();
    dropped = (*sink)->dropped();
  }
  ASSERT_GT(dropped, 0u);
  uint64_t reported = 0, written = 0;
  simdjson::dom::parser parser;
  for (const auto& line : Lines(path)) {
    simdjson::dom::element doc;
    ASSERT_EQ(parser.parse(line).get(doc), simdjson::SUCCESS);
    if (std::string(doc["kind"].get_string().value()) == "audit_loss") {
      reported += doc["count"].get_uint64().value();
    } else {
      ++written;
    }
  }
  EXPECT_EQ(reported, dropped);
  EXPECT_EQ(written + dropped, 2000u);
  std::filesystem::remove(path);
}

TEST(EventJsonTest, TimestampFormat) {
  EXPECT_EQ(FormatTimestamp(1700000000123456), "2023-11-14T22:13:20.123456Z");
}

}  // namespace
}  // namespace dbw::audit
