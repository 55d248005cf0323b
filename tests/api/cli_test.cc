// `dbwarden events|sessions|audit verify` against a live API server with a fake event source.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>  // before Asio (Boost 1.74 with g++ 12)

#include <gtest/gtest.h>

#include "agent/http_cli.h"
#include "tests/api/fake_event_source.h"
#include "userspace/api/auth.h"
#include "userspace/api/server.h"

namespace dbw::api {
namespace {

using testing::FakeEvent;

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServerOptions o;
    o.listen = "127.0.0.1:0";
    o.tokens = {{"v", Role::kViewer, TokenSha256Hex("tok")}};
    ApiDeps deps;
    deps.events = &events_;
    auto s = Server::Create(o, deps);
    ASSERT_TRUE(s.ok());
    server_ = std::move(*s);
    ASSERT_TRUE(server_->Start().ok());
    api_ = "http://127.0.0.1:" + std::to_string(server_->port());
  }
  int Run(int (*main)(const std::vector<std::string>&, std::ostream&, std::ostream&),
          std::vector<std::string> args, bool token = true) {
    args.push_back("--api");
    args.push_back(api_);
    if (token) {
      args.push_back("--token");
      args.push_back("tok");
    }
    out_.str("");
    err_.str("");
    return main(args, out_, err_);
  }
  testing::FakeEventSource events_;
  std::unique_ptr<Server> server_;
  std::string api_;
  std::ostringstream out_, err_;
};

TEST_F(CliTest, EventsTableJsonAndPaging) {
  const int64_t now = audit::NowMicros();
  for (int i = 0; i < 1500; ++i) {
    events_.Append(FakeEvent{"statement", "s1", i % 2 ? "alice" : "bob", i % 7 ? "allow" : "deny",
                             "fp", "SELECT * FROM t WHERE id = $1", now - 1000, ""});
  }
  ASSERT_EQ(Run(agent::EventsMain, {"--principal", "alice", "--limit", "3"}), 0) << err_.str();
  std::string table = out_.str();
  EXPECT_EQ(table.rfind("SEQ", 0), 0u);
  EXPECT_EQ(std::count(table.begin(), table.end(), '\n'), 4);
  EXPECT_NE(table.find("alice"), std::string::npos);
  EXPECT_EQ(table.find("bob"), std::string::npos);
  EXPECT_NE(table.find("SELECT * FROM t"), std::string::npos);
  ASSERT_EQ(Run(agent::EventsMain, {"--since", "1h", "--limit", "1200", "--json"}), 0);
  std::string lines = out_.str();
  EXPECT_EQ(std::count(lines.begin(), lines.end(), '\n'), 1200);  // two pages
  EXPECT_EQ(lines.rfind("{\"seq\":301,", 0), 0u);                 // oldest first
  EXPECT_EQ(Run(agent::EventsMain, {"--action", "nope"}), 1);
  EXPECT_NE(err_.str().find("\"action\" must be"), std::string::npos);
  EXPECT_EQ(Run(agent::EventsMain, {"--bogus", "1"}), 2);
}

TEST_F(CliTest, ErrorsAreClear) {
  EXPECT_EQ(Run(agent::EventsMain, {}, false), 1);
  EXPECT_NE(err_.str().find("unauthorized"), std::string::npos) << err_.str();
  uint16_t port = server_->port();
  server_.reset();
  std::vector<std::string> args = {"--api", "http://127.0.0.1:" + std::to_string(port)};
  std::ostringstream out, err;
  EXPECT_EQ(agent::EventsMain(args, out, err), 1);
  EXPECT_NE(err.str().find("Connection refused"), std::string::npos) << err.str();
}

TEST_F(CliTest, SessionsAndVerify) {
  const int64_t now = audit::NowMicros();
  events_.Append(FakeEvent{"session_start", "abc", "alice", "", "", "", now - 10, ""});
  events_.Append(FakeEvent{"statement", "abc", "alice", "allow", "fp", "SELECT 1", now - 5, ""});
  ASSERT_EQ(Run(agent::SessionsMain, {}), 0) << err_.str();
  EXPECT_NE(out_.str().find("abc"), std::string::npos);
  EXPECT_NE(out_.str().find("active"), std::string::npos);
  ASSERT_EQ(Run(agent::SessionsMain, {"abc"}), 0) << err_.str();
  EXPECT_NE(out_.str().find("SELECT 1"), std::string::npos);
  EXPECT_EQ(Run(agent::AuditVerifyRemoteMain, {}), 0);
  EXPECT_EQ(out_.str().rfind("ok: ", 0), 0u) << out_.str();
  events_.broken = true;
  EXPECT_EQ(Run(agent::AuditVerifyRemoteMain, {"--from", "1"}), 1);
  EXPECT_NE(out_.str().find("BROKEN at seq 2"), std::string::npos);
  EXPECT_EQ(Run(agent::AuditVerifyRemoteMain, {"--from", "x"}), 2);
  // --anchors FILE: the newest anchors go to POST /v1/audit/verify.
  events_.broken = false;
  const std::string file =
      (std::filesystem::temp_directory_path() / ("cli-anchors-" + std::to_string(::getpid())))
          .string();
  {
    std::ofstream f(file);
    for (uint64_t seq : {1, 2}) {
      audit::Anchor a;
      a.seq = seq;
      a.hash.assign(32, '\x01');
      a.public_key.assign(32, '\x02');
      a.signature.assign(64, '\x03');
      f << audit::FormatAnchor(a) << "\n";
    }
  }
  ASSERT_EQ(Run(agent::AuditVerifyRemoteMain, {"--anchors", file}), 0) << err_.str();
  EXPECT_NE(out_.str().find("2 published anchors match"), std::string::npos) << out_.str();
  ASSERT_EQ(events_.last_anchors.size(), 2u);
  EXPECT_EQ(events_.last_anchors[0].seq, 2u);  // newest first
  {
    std::ofstream f(file, std::ios::app);
    audit::Anchor a;
    a.seq = 50;  // the store has 2 events: rolled back
    a.hash.assign(32, '\x01');
    a.public_key.assign(32, '\x02');
    a.signature.assign(64, '\x03');
    f << audit::FormatAnchor(a) << "\n";
  }
  EXPECT_EQ(Run(agent::AuditVerifyRemoteMain, {"--anchors", file}), 1);
  EXPECT_NE(out_.str().find("BROKEN at seq 50"), std::string::npos) << out_.str();
  EXPECT_EQ(Run(agent::AuditVerifyRemoteMain, {"--anchors", file + ".missing"}), 2);
  EXPECT_NE(err_.str().find("cannot read the anchors"), std::string::npos) << err_.str();
  std::filesystem::remove(file);
}

}  // namespace
}  // namespace dbw::api
