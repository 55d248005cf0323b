// JsonlSink: events land as JSON lines with increasing seq; the sequence survives reopen;
// invalid UTF-8 from the network never produces invalid JSON.
#include "userspace/audit/jsonl_sink.h"

#include <simdjson.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "userspace/audit/event_json.h"

namespace dbw::audit {
namespace {

std::vector<std::string> Lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

TEST(JsonlSinkTest, WritesParsableLinesAndContinuesSequence) {
  std::string path =
      std::filesystem::temp_directory_path() / ("dbw-audit-" + std::to_string(::getpid()));
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
  std::string path =
      std::filesystem::temp_directory_path() / ("dbw-audit-loss-" + std::to_string(::getpid()));
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
  EXPECT_EQ(FormatTimestamp(0), "1970-01-01T00:00:00.000000Z");
  EXPECT_EQ(FormatTimestamp(951782400000001), "2000-02-29T00:00:00.000001Z");
  EXPECT_EQ(FormatTimestamp(951868799999999), "2000-02-29T23:59:59.999999Z");
  EXPECT_EQ(FormatTimestamp(1709251199000000), "2024-02-29T23:59:59.000000Z");
  EXPECT_EQ(FormatTimestamp(4102444800000000), "2100-01-01T00:00:00.000000Z");
  EXPECT_EQ(FormatTimestamp(253402300799999999), "9999-12-31T23:59:59.999999Z");
  EXPECT_EQ(FormatTimestamp(-1), "1969-12-31T23:59:59.999999Z");
}

// Every section of an event, with strings that need escaping or sanitizing: the bytes are the
// canonical form the audit chain hashes, so they are pinned here (they are what RapidJSON's
// Writer produced before the writer was replaced).
TEST(EventJsonTest, CanonicalBytes) {
  const std::string kGolden =
      "{\"seq\":18446744073709551615,\"ts\":\"2023-11-14T22:13:20.123456Z\",\"kind\":\"statement\","
      "\"source\":\"relay\",\"session_id\":\"s-1\",\"target\":\"pg\",\"env\":\"prod\","
      "\"principal\":{\"kind\":\"agent\",\"db_user\":\"al\\\"ice\",\"database\":\"d\xEF\xBF\xBD"
      "b\",\"application_name\":\"app\\u0001\\u001F\x7F\",\"client_addr\":\"[::1]:5\",\"cert_"
      "subject\":\"CN=x,O=\xC3\xA9\"},\"process\":{\"pid\":7,\"uid\":1000,\"ppid\":1,\"gid\":100,"
      "\"comm\":\"psql\",\"exe\":\"/usr/bin/psql\",\"cmdline\":\"psql -h "
      "<host>\",\"cgroup\":\"/system.slice/"
      "app.service\",\"unit\":\"app.service\",\"parents\":[{\"pid\":1,\"comm\":\"systemd\",\"exe\":"
      "\"/usr/lib/systemd/"
      "systemd\"}]},\"statement\":{\"protocol\":\"extended\",\"name\":\"stmt\\\"1\",\"sql\":"
      "\"UPDATE t SET v = $1 -- \\b\\f\\n\\r\\t\\\\ \xE2\x82\xAC \xF0\x9F\x98\x80 \xEF\xBF\xBD; "
      "SELECT "
      "1\",\"fingerprint\":\"abc\",\"commands\":[\"UPDATE\",\"SELECT\"],\"risks\":[\"write\"],"
      "\"tables_read\":[\"u\"],\"tables_written\":[\"public.t\"]},\"decision\":{\"action\":"
      "\"deny\",\"rules\":[\"no-\\\"x\\\"\",\"r2\"],\"reason\":\"because\\n\",\"mode\":\"enforce\","
      "\"enforced\":true,\"approval_id\":\"ap-1\"},\"result\":{\"command_tag\":\"UPDATE "
      "1\",\"sqlstate\":\"42501\",\"message\":\"den\\u0002ied\",\"duration_us\":5,\"rows\":1,"
      "\"bytes\":64},\"masking\":{\"columns\":{\"public.t.\\\"email\\\"\":3},\"detectors\":{"
      "\"card\":2,\"tok\xEF\xBF\xBD\":1},\"withheld\":4},\"approval\":{\"id\":\"ap-1\",\"step\":"
      "\"vote\",\"mode\":\"hold\",\"actor\":\"ops\",\"comment\":\"ok\\t\",\"approvals\":1,"
      "\"required\":2,\"rules\":[\"r1\"],\"reason\":\"why\",\"sql\":\"UPDATE "
      "t\",\"fingerprint\":\"abc\"},\"error\":{\"sqlstate\":\"08P01\",\"message\":\"bad "
      "\\u0003\"},\"detail\":\"d\"}";
  Event e;
  e.seq = 18446744073709551615ull;
  e.ts_us = 1700000000123456;
  e.kind = EventKind::kStatement;
  auto info = std::make_shared<SessionInfo>();
  info->session_id = "s-1";
  info->target = "pg";
  info->env = "prod";
  info->principal = {"agent",           "al\"ice", std::string("d\0b", 3),
                     "app\x01\x1f\x7f", "[::1]:5", "CN=x,O=\xc3\xa9"};
  identity::ProcessInfo pr{.pid = 7, .uid = 1000, .comm = "psql", .exe = "/usr/bin/psql"};
  pr.ppid = 1;
  pr.gid = 100;
  pr.cmdline = "psql -h <host>";
  pr.cgroup = "/system.slice/app.service";
  pr.parents.push_back({.pid = 1, .comm = "systemd", .exe = "/usr/lib/systemd/systemd"});
  info->process = pr;
  e.session = info;
  auto facts = std::make_shared<sql::QueryFacts>();
  sql::StatementFacts a;
  a.command = sql::Command::kUpdate;
  a.normalized = "UPDATE t SET v = $1 -- \b\f\n\r\t\\ \xe2\x82\xac \xf0\x9f\x98\x80 \xff";
  a.fingerprint_hex = "abc";
  a.risks = sql::kRiskWrite;
  a.tables_written.push_back({"public", "t"});
  a.tables_read.push_back({"", "u"});
  sql::StatementFacts b;
  b.command = sql::Command::kSelect;
  b.normalized = "SELECT 1";
  facts->statements = {a, b};
  e.statement = StatementInfo{facts, "extended", "stmt\"1"};
  auto d = std::make_shared<policy::Decision>();
  d->action = policy::Action::kDeny;
  d->rules = {"no-\"x\"", "r2"};
  d->reason = "because\n";
  e.decision = DecisionInfo{d, true, "ap-1"};
  e.result = ResultInfo{"UPDATE 1", "42501", "den\x02ied", 5, 1, 64};
  e.masking = MaskingInfo{{{"public.t.\"email\"", 3}}, {{"card", 2}, {"tok\xff", 1}}, 4};
  e.approval =
      ApprovalInfo{"ap-1", "vote", "hold", "ops", "ok\t", 1, 2, {"r1"}, "why", "UPDATE t", "abc"};
  e.error_sqlstate = "08P01";
  e.error_message = "bad \x03";
  e.detail = "d";
  std::string json;
  AppendEventJson(e, &json);
  EXPECT_EQ(json, kGolden);
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  EXPECT_EQ(parser.parse(json).get(doc), simdjson::SUCCESS) << json;

  Event loss;
  loss.kind = EventKind::kAuditLoss;
  loss.source = "agent";
  loss.count = 3;
  loss.seq = 2;
  json.clear();
  AppendEventJson(loss, &json);
  EXPECT_EQ(json,
            R"({"seq":2,"ts":"1970-01-01T00:00:00.000000Z","kind":"audit_loss","source":"agent",)"
            R"("count":3})");
}

}  // namespace
}  // namespace dbw::audit
