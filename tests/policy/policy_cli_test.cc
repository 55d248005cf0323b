// `policy check` and `policy eval` through their library entry points, with string streams.
#include "agent/policy_cli.h"

#include <simdjson.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

namespace dbw::agent {
namespace {

class PolicyCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        std::filesystem::temp_directory_path() / ("dbw-policy-cli-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string Write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name) << text;
    return (dir_ / name).string();
  }
  int Eval(const std::vector<std::string>& args, const std::string& input) {
    std::istringstream in(input);
    out_.str("");
    err_.str("");
    return PolicyEvalMain(args, in, out_, err_);
  }
  std::vector<std::string> Lines() {
    std::vector<std::string> lines;
    std::istringstream s(out_.str());
    for (std::string l; std::getline(s, l);) lines.push_back(l);
    return lines;
  }
  std::filesystem::path dir_;
  std::ostringstream out_, err_;
};

TEST_F(PolicyCliTest, Check) {
  std::string good = Write("good.yaml", "version: 1\nrules:\n  - {id: a, action: log}\n");
  std::string bad = Write("bad.yaml", "version: 1\nrules:\n  - id: a\n    action: nope\n");
  std::ostringstream out, err;
  EXPECT_EQ(PolicyCheckMain({good}, out, err), 0);
  EXPECT_EQ(out.str(), good + ": ok (1 rules)\n");
  out.str("");
  EXPECT_EQ(PolicyCheckMain({good, bad}, out, err), 2);
  EXPECT_EQ(out.str(), good + ": ok (1 rules)\n");
  EXPECT_NE(err.str().find(bad + ":4: unknown action"), std::string::npos) << err.str();
  // Each loads alone, but together the rule id is defined twice.
  std::string dup = Write("dup.yaml", "version: 1\nrules:\n  - {id: a, action: deny}\n");
  err.str("");
  EXPECT_EQ(PolicyCheckMain({good, dup}, out, err), 2);
  EXPECT_NE(err.str().find("duplicate rule id \"a\""), std::string::npos) << err.str();
  EXPECT_EQ(PolicyCheckMain({}, out, err), 2);
}

TEST_F(PolicyCliTest, EvalPlainAndJsonLines) {
  const std::string input =
      "DROP TABLE orders\n"
      "\n"
      "{\"sql\": \"DROP TABLE orders\", \"principal\": {\"kind\": \"human\"}, \"id\": \"q2\"}\n"
      "{\"sql\": \"DROP TABLE orders\", \"env\": \"staging\"}\n"
      "{\"sql\": 42}\n"
      "SELECT 1\n";
  EXPECT_EQ(Eval({"--principal-kind", "agent", "--env", "prod"}, input), 2);
  auto lines = Lines();
  ASSERT_EQ(lines.size(), 5u) << out_.str();
  simdjson::dom::parser parser;
  simdjson::dom::element d;
  ASSERT_EQ(parser.parse(lines[0]).get(d), simdjson::SUCCESS);
  EXPECT_EQ(std::string_view(d["action"]), "deny");
  EXPECT_EQ(std::string_view(d["rules"].at(0)), "prod-destructive-agent");
  EXPECT_EQ(std::string_view(d["sqlstate"]), "42501");
  EXPECT_EQ(std::string_view(d["principal_kind"]), "agent");
  EXPECT_EQ(std::string_view(d["statements"].at(0)["command"]), "DROP");
  EXPECT_EQ(std::string_view(d["statements"].at(0)["tables_written"].at(0)), "orders");
  EXPECT_EQ(std::string_view(d["statements"].at(0)["fingerprint"]).size(), 16u);
  ASSERT_EQ(parser.parse(lines[1]).get(d), simdjson::SUCCESS);
  EXPECT_EQ(std::string_view(d["id"]), "q2");
  EXPECT_EQ(std::string_view(d["action"]), "approve");
  EXPECT_EQ(std::string_view(d["approval"]["mode"]), "hold");
  EXPECT_EQ(int64_t(d["approval"]["timeout_s"]), 600);
  ASSERT_EQ(parser.parse(lines[2]).get(d), simdjson::SUCCESS);
  EXPECT_EQ(std::string_view(d["action"]), "allow");
  EXPECT_EQ(d["rules"].get_array().size(), 0u);
  ASSERT_EQ(parser.parse(lines[3]).get(d), simdjson::SUCCESS);
  EXPECT_EQ(uint64_t(d["line"]), 5u);
  EXPECT_NE(std::string_view(d["error"]).find("\"sql\" must be a string"), std::string_view::npos);
  ASSERT_EQ(parser.parse(lines[4]).get(d), simdjson::SUCCESS);
  EXPECT_EQ(std::string_view(d["action"]), "allow");
}

TEST_F(PolicyCliTest, EvalWithPolicyFilesAndMonitor) {
  std::string agents =
      Write("agents.yaml", "version: 1\nprincipals:\n  agents:\n    - db_user: [\"svc_ai_*\"]\n");
  const std::string pack = std::string(DBW_SOURCE_DIR) + "/policy/packs/guardrails.yaml";
  EXPECT_EQ(
      Eval({"--policy", pack, "--policy", agents, "--user", "svc_ai_bot", "--mode", "monitor"},
           "DELETE FROM orders\n"),
      0);
  simdjson::dom::parser parser;
  simdjson::dom::element d;
  ASSERT_EQ(parser.parse(Lines().at(0)).get(d), simdjson::SUCCESS);
  EXPECT_EQ(std::string_view(d["action"]), "deny");
  EXPECT_EQ(bool(d["monitor"]), true);
  EXPECT_EQ(std::string_view(d["principal_kind"]), "agent");
  EXPECT_EQ(std::string_view(d["rules"].at(0)), "prod-no-where-agent");

  EXPECT_EQ(Eval({"--policy", (dir_ / "missing.yaml").string()}, "SELECT 1\n"), 2);
  EXPECT_NE(err_.str().find("missing.yaml:0: cannot open file"), std::string::npos);
  EXPECT_EQ(Eval({"--principal-kind", "robot"}, ""), 2);
  EXPECT_EQ(Eval({"--bogus"}, ""), 2);
}

}  // namespace
}  // namespace dbw::agent
