// Config loading: valid files load; every broken file names its line and reason.
#include "agent/config.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

namespace dbw::agent {
namespace {

struct BadCase {
  std::string text;
  int line;
  const char* reason;
};

class ConfigTest : public ::testing::Test {
 protected:
  std::string Write(const std::string& text) {
    path_ = std::filesystem::temp_directory_path() / ("dbw-config-" + std::to_string(::getpid()) +
                                                      "-" + std::to_string(counter_++) + ".yaml");
    std::ofstream(path_) << text;
    return path_.string();
  }
  // The file is rejected with "FILE:LINE: ... reason".
  void ExpectRejected(const BadCase& bad) {
    std::string file = Write(bad.text);
    auto c = LoadConfig(file);
    ASSERT_FALSE(c.ok()) << bad.text;
    const std::string msg = c.status().message();
    EXPECT_TRUE(msg.starts_with(file + ":" + std::to_string(bad.line) + ":")) << msg;
    EXPECT_NE(msg.find(bad.reason), std::string::npos) << msg;
  }
  void TearDown() override { std::filesystem::remove(path_); }
  std::filesystem::path path_;
  int counter_ = 0;
};

TEST_F(ConfigTest, LoadsEveryKey) {
  auto c = LoadConfig(Write(R"(state_dir: /tmp/x
log_level: debug
relay:
  workers: 3
  shutdown_grace: 5s
  connect_timeout: 250ms
  authentication_timeout: 2m
  max_connections: 100
  max_connections_per_source: 0
targets:
  - name: orders
    env: prod
    listen: 127.0.0.1:6432
    upstream: localhost:5432
  - name: v6
    env: staging
    listen: "[::1]:6433"
    upstream: "[::1]:5433"
)"));
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->state_dir, "/tmp/x");
  EXPECT_EQ(c->relay.workers, 3);
  EXPECT_EQ(c->relay.shutdown_grace, std::chrono::seconds(5));
  EXPECT_EQ(c->relay.connect_timeout, std::chrono::milliseconds(250));
  EXPECT_EQ(c->relay.authentication_timeout, std::chrono::minutes(2));
  EXPECT_EQ(c->relay.max_connections, 100u);
  EXPECT_EQ(c->relay.max_connections_per_source, 0u);  // unlimited
  ASSERT_EQ(c->relay.targets.size(), 2u);
  EXPECT_EQ(c->relay.targets[0].listen_port, 6432);
  EXPECT_TRUE(c->relay.targets[0].upstream_host == "127.0.0.1" ||
              c->relay.targets[0].upstream_host == "::1");
  EXPECT_EQ(c->relay.targets[1].listen_host, "::1");
  EXPECT_EQ(c->relay.targets[1].env, "staging");
}

TEST_F(ConfigTest, RejectsWithFileLineAndReason) {
  const BadCase cases[] = {
      {"targets:\n  - name: a\n    listen: 127.0.0.1:1\n    upstream: 127.0.0.1:2\n    colour: "
       "red\n",
       5, "unknown key \"colour\""},
      {"targets:\n  - name: a\n    listen: 127.0.0.1:99999\n    upstream: 127.0.0.1:2\n", 3,
       "invalid port"},
      {"targets:\n  - name: a\n    listen: db.example:1\n    upstream: 127.0.0.1:2\n", 3,
       "not a numeric IP address"},
      {"targets:\n  - env: prod\n    listen: 127.0.0.1:1\n    upstream: 127.0.0.1:2\n", 2,
       "missing required key \"name\""},
      {"state_dir: /x\ntargets: [\n", 3, "end of sequence flow not found"},
      {"relay:\n  shutdown_grace: 5 parsecs\ntargets:\n  - name: a\n    listen: 127.0.0.1:1\n    "
       "upstream: 127.0.0.1:2\n",
       2, "unknown duration unit"},
      {"relay:\n  authentication_timeout: soon\ntargets:\n  - name: a\n    listen: "
       "127.0.0.1:1\n    upstream: 127.0.0.1:2\n",
       2, "relay.authentication_timeout"},
      {"relay:\n  max_connections_per_source: -1\ntargets:\n  - name: a\n    listen: "
       "127.0.0.1:1\n    upstream: 127.0.0.1:2\n",
       2, "relay.max_connections_per_source must be a number from 0"},
      {"api:\n  max_connections: lots\ntargets:\n  - name: a\n    listen: "
       "127.0.0.1:1\n    upstream: 127.0.0.1:2\n",
       2, "api.max_connections must be a number"},
      {"targets:\n  - name: a\n    listen: 127.0.0.1:1\n    upstream: 127.0.0.1:2\n  - name: a\n   "
       " listen: 127.0.0.1:3\n    upstream: 127.0.0.1:2\n",
       5, "duplicate target name"},
      {"targets:\n  - name: a\n    listen: 127.0.0.1:1\n    upstream: 127.0.0.1:2\n    tls: {cert: "
       "/nonexistent.pem, key: /nonexistent.key}\n",
       5, "cannot read"},
  };
  for (const auto& b : cases) ExpectRejected(b);
}

TEST_F(ConfigTest, UnixSocketUpstream) {
  auto c = LoadConfig(Write(R"(targets:
  - name: local
    listen: 127.0.0.1:6432
    upstream: unix:/var/run/postgresql/.s.PGSQL.5433
)"));
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->relay.targets[0].upstream_unix, "/var/run/postgresql/.s.PGSQL.5433");
  EXPECT_EQ(c->relay.targets[0].upstream_port, 5433);  // from the socket's name
  EXPECT_EQ(c->relay.targets[0].upstream_host, "");

  const std::string head = "targets:\n  - name: a\n    listen: 127.0.0.1:1\n    upstream: ";
  const BadCase cases[] = {
      {head + "unix:run/.s.PGSQL.5432\n", 4, "must be an absolute path"},
      {head + "\"unix:\"\n", 4, "must be an absolute path"},
      {head + "unix:/run/postgresql\n", 4, "named .s.PGSQL.<port>, got \"postgresql\""},
      {head + "unix:/run/.s.PGSQL.0\n", 4, "named .s.PGSQL.<port>"},
      {head + "unix:/run/.s.PGSQL.5432x\n", 4, "named .s.PGSQL.<port>"},
      {head + "unix:/" + std::string(120, 'd') + "/.s.PGSQL.5432\n", 4, "longer than 107 bytes"},
      {head + "unix:/run/.s.PGSQL.5432\n    upstream_tls: {ca: /etc/ssl/ca.pem}\n", 5,
       "PostgreSQL offers no TLS on its unix socket"},
  };
  for (const auto& b : cases) ExpectRejected(b);
}

TEST_F(ConfigTest, AuditAndApiSections) {
  auto c = LoadConfig(Write(R"(audit:
  durability: sync
  retention: 30d
  signing_key: /etc/dbwarden/k.pem
  anchor_file: /var/log/dbwarden/anchors.jsonl
  intent_log_mb: 32
api:
  listen: 127.0.0.1:9721
  max_connections: 50
  max_connections_per_source: 10
  tokens:
    - {name: oncall, role: viewer, sha256: 2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824}
    - {name: boss, role: admin, sha256: 2CF24DBA5FB0A30E26E83B2AC5B9E29E1B161E5C1FA7425E73043362938B9824}
targets:
  - name: a
    env: staging
    listen: 127.0.0.1:1
    upstream: 127.0.0.1:2
)"));
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->audit_durability, "sync");
  EXPECT_EQ(c->audit_retention, std::chrono::hours(24 * 30));
  EXPECT_EQ(c->audit_anchor_file, "/var/log/dbwarden/anchors.jsonl");
  EXPECT_EQ(c->audit_intent_log_mb, 32u);
  EXPECT_EQ(c->api.listen, "127.0.0.1:9721");
  EXPECT_EQ(c->api.max_connections, 50u);
  EXPECT_EQ(c->api.max_connections_per_source, 10u);
  ASSERT_EQ(c->api.tokens.size(), 2u);
  EXPECT_EQ(c->api.tokens[1].role, api::Role::kAdmin);
  EXPECT_FALSE(c->relay.targets[0].audit_before_forward);  // staging default

  const BadCase bad[] = {
      {"audit: {durability: maybe}\ntargets: [{name: a, listen: 127.0.0.1:1, upstream: "
       "127.0.0.1:2}]\n",
       1, "audit.durability must be"},
      {"audit:\n  intent_log_mb: 4096\ntargets: [{name: a, listen: 127.0.0.1:1, upstream: "
       "127.0.0.1:2}]\n",
       2, "audit.intent_log_mb must be a number from 0 to 1024 (0: off)"},
      {"api:\n  tokens:\n    - {name: x, role: god, sha256: ab}\ntargets: [{name: a, listen: "
       "127.0.0.1:1, upstream: 127.0.0.1:2}]\n",
       3, "role must be viewer, approver or admin"},
      {"api:\n  tokens:\n    - {name: x, role: viewer, sha256: abc}\ntargets: [{name: a, listen: "
       "127.0.0.1:1, upstream: 127.0.0.1:2}]\n",
       3, "64 hex digits"},
  };
  for (const auto& b : bad) ExpectRejected(b);
}

TEST_F(ConfigTest, ApprovalsSectionAndApproverGroups) {
  auto c = LoadConfig(Write(R"(api:
  tokens:
    - {name: alice, role: approver, groups: [dba, oncall], sha256: 2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824}
approvals:
  retention: 7d
  webhook_attempts: 3
  webhook_backoff: 500ms
  webhook_timeout: 2s
  webhooks:
    - url: https://hooks.example.com/services/T0/B0/x
      headers: {X-Token: secret}
    - url: http://[::1]:9000/hook
targets: [{name: a, listen: 127.0.0.1:1, upstream: 127.0.0.1:2}]
)"));
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->api.tokens[0].groups, (std::vector<std::string>{"dba", "oncall"}));
  EXPECT_EQ(c->approvals.retention, std::chrono::hours(24 * 7));
  EXPECT_EQ(c->approvals.webhook_attempts, 3);
  EXPECT_EQ(c->approvals.webhook_backoff, std::chrono::milliseconds(500));
  EXPECT_EQ(c->approvals.webhook_timeout, std::chrono::seconds(2));
  ASSERT_EQ(c->approvals.webhooks.size(), 2u);
  EXPECT_EQ(c->approvals.webhooks[0].headers,
            (std::vector<std::pair<std::string, std::string>>{{"X-Token", "secret"}}));

  const std::string target = "targets: [{name: a, listen: 127.0.0.1:1, upstream: 127.0.0.1:2}]\n";
  const BadCase bad[] = {
      {"approvals:\n  webhooks:\n    - url: ftp://x/\n" + target, 3, "must start with http://"},
      {"approvals:\n  webhook_attempts: 0\n" + target, 2, "from 1 to 100"},
      {"approvals:\n  webhooks:\n    - {url: http://x/, method: PUT}\n" + target, 3,
       "unknown key \"method\""},
      {"approvals: {ttl: 1h}\n" + target, 1, "unknown key \"ttl\" in approvals"},
  };
  for (const auto& b : bad) ExpectRejected(b);
}

TEST_F(ConfigTest, TapSectionAndRelayOnly) {
  auto c = LoadConfig(Write(R"(tap:
  enabled: "true"
  ports: [5432, 6543]
  capture_bytes: 4096
  ring_buffer_mb: 16
  witness: false
targets:
  - {name: a, listen: 127.0.0.1:1, upstream: 127.0.0.1:2, relay_only: true}
  - {name: b, listen: 127.0.0.1:3, upstream: 127.0.0.1:2}
  - {name: c, listen: 127.0.0.1:4, upstream: 127.0.0.1:5, relay_only: enforce,
     listen_unix: /run/dbwarden/c/.s.PGSQL.5}
  - {name: d, listen: 127.0.0.1:6, upstream: 127.0.0.1:7, relay_only: refuse}
routing:
  cgroups: [/system.slice, /user.slice/]
  on_agent_exit: closed
  exempt: [{uid: [0, root]}, {cgroup: /system.slice/backup.service}, {unit: "pg-*.service"}]
)"));
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->tap_mode, "true");
  EXPECT_EQ(c->tap.ports, (std::vector<uint16_t>{5432, 6543}));
  EXPECT_EQ(c->tap.capture_bytes, 4096u);
  EXPECT_EQ(c->tap.ring_buffer_bytes, 16ull << 20);
  EXPECT_FALSE(c->tap.witness);
  EXPECT_TRUE(c->relay.targets[0].relay_only);
  EXPECT_EQ(c->relay.targets[0].route, relay::TargetOptions::Route::kNone);
  EXPECT_FALSE(c->relay.targets[1].relay_only);
  EXPECT_TRUE(c->relay.targets[2].relay_only);  // the tap still reports what gets past
  EXPECT_EQ(c->relay.targets[2].route, relay::TargetOptions::Route::kEnforce);
  EXPECT_EQ(c->relay.targets[2].listen_unix, "/run/dbwarden/c/.s.PGSQL.5");
  EXPECT_EQ(c->relay.targets[3].route, relay::TargetOptions::Route::kRefuse);
  EXPECT_EQ(c->routing.cgroups, (std::vector<std::string>{"/system.slice", "/user.slice"}));
  EXPECT_EQ(c->routing.on_agent_exit, route::OnAgentExit::kClosed);
  EXPECT_EQ(c->routing.exempt.uids, (std::vector<uint32_t>{0, 0}));
  EXPECT_EQ(c->routing.exempt.cgroups, (std::vector<std::string>{"/system.slice/backup.service"}));
  ASSERT_EQ(c->routing.exempt.units.size(), 1u);
  EXPECT_TRUE(c->routing.exempt.units[0].Match("pg-dump.service"));

  auto d = LoadConfig(Write("targets: [{name: a, listen: 127.0.0.1:1, upstream: 127.0.0.1:2}]\n"));
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(d->tap_mode, "auto");
  EXPECT_EQ(d->tap.ports, (std::vector<uint16_t>{5432}));
  EXPECT_EQ(d->tap.capture_bytes, 16384u);
  EXPECT_EQ(d->tap.ring_buffer_bytes, 64ull << 20);
  EXPECT_TRUE(d->tap.witness);  // on by default

  const std::string t = "targets: [{name: a, listen: 127.0.0.1:1, upstream: 127.0.0.1:2}]\n";
  const BadCase cases[] = {
      {"tap:\n  enabled: sometimes\n" + t, 2, "tap.enabled must be true, false or auto"},
      {"tap:\n  ports: [5432, 70000]\n" + t, 2, "tap.ports entry must be a number from 1"},
      {"tap:\n  capture_bytes: 10\n" + t, 2, "tap.capture_bytes must be a number from 64"},
      {"tap:\n  ring_buffer_mb: 0\n" + t, 2, "tap.ring_buffer_mb must be a number from 1"},
      {"tap:\n  port: [1]\n" + t, 2, "unknown key \"port\" in tap"},
      {"tap:\n  witness: maybe\n" + t, 2, "tap.witness must be true or false"},
      {"targets:\n  - name: a\n    listen: 127.0.0.1:1\n    upstream: 127.0.0.1:2\n    "
       "relay_only: maybe\n",
       5, "relay_only must be true, false, enforce or refuse"},
      {"routing:\n  on_agent_exit: later\n" + t, 2, "routing.on_agent_exit must be open or closed"},
      {"routing:\n  exempt: [{uid: [nobody-such-user]}]\n" + t, 2, "no user"},
  };
  for (const auto& b : cases) ExpectRejected(b);
}

TEST_F(ConfigTest, AuthSection) {
  const std::string secret_path =
      (std::filesystem::temp_directory_path() / ("dbw-secret-" + std::to_string(::getpid())))
          .string();
  std::ofstream(secret_path) << "s3cret\n";
  const std::string head =
      "targets:\n  - name: a\n    listen: 127.0.0.1:1\n    upstream: 127.0.0.1:2\n"
      "    tls: {cert: /dev/null, key: /dev/null}\n    auth:\n";
  const std::string issuer =
      "      token:\n        issuers:\n          - {issuer: https://idp, audience: db, "
      "jwks_file: /dev/null, kind: agent}\n";
  const std::string creds =
      "      credentials:\n        - {match: {subject: [\"svc-*\"]}, role: app, password_file: " +
      secret_path + "}\n";
  auto c =
      LoadConfig(Write(head + issuer + "        clock_skew: 5s\n        on_expiry: continue\n" +
                       creds + "      bind: [{subject: [\"svc-*\"], exe: [\"/usr/bin/*\"]}]\n"));
  ASSERT_TRUE(c.ok()) << c.status().message();
  const relay::TargetOptions& t = c->relay.targets[0];
  ASSERT_TRUE(t.auth && t.auth->token);
  EXPECT_TRUE(t.tls_required);  // forced by auth.token
  EXPECT_EQ(t.auth->token->issuers[0].audiences, std::vector<std::string>{"db"});
  EXPECT_EQ(t.auth->token->issuers[0].kind, "agent");
  EXPECT_EQ(t.auth->token->clock_skew, std::chrono::seconds(5));
  EXPECT_FALSE(t.auth->token->end_at_expiry);
  ASSERT_EQ(t.auth->credentials.size(), 1u);
  EXPECT_EQ(t.auth->credentials[0].password, "s3cret");  // the trailing newline dropped
  ASSERT_EQ(t.auth->credentials[0].users.size(), 1u);    // default: the role itself
  EXPECT_TRUE(t.auth->credentials[0].users[0].Match("app"));
  EXPECT_FALSE(t.auth->credentials[0].users[0].Match("postgres"));
  EXPECT_TRUE(t.auth->bind[0].exe[0].Match("/usr/bin/python3"));

  ::unsetenv("CREDENTIALS_DIRECTORY");
  const BadCase cases[] = {
      {head +
           "      token:\n        issuers:\n          - {issuer: https://idp, jwks_file: "
           "/dev/null}\n" +
           creds,
       9, "missing required key \"audiences\""},
      {head +
           "      token:\n        issuers:\n          - {issuer: https://idp, audience: db, "
           "jwks_url: http://idp/keys}\n" +
           creds,
       9, "jwks_url must be an https:// URL"},
      {head + "      token:\n        issuers:\n          - {issuer: https://idp, audience: db}\n" +
           creds,
       9, "give jwks_file or jwks_url"},
      {head + issuer + "        clock_skew: 1h\n" + creds, 10, "clock_skew must be at most 10m"},
      {head + issuer + "        on_expiry: never\n" + creds, 10,
       "on_expiry must be terminate or continue"},
      {head + issuer, 7, "auth.credentials must be a non-empty list"},
      {head + issuer + "      credentials:\n        - {role: app}\n", 11,
       "missing required key \"match\""},
      {head + issuer +
           "      credentials:\n        - {match: {subject: x}, role: app, credential: "
           "app}\n",
       11, "$CREDENTIALS_DIRECTORY is not set"},
      {head + issuer +
           "      credentials:\n        - {match: {subject: x}, role: app, "
           "password_file: /nonexistent/secret}\n",
       11, "cannot read \"/nonexistent/secret\""},
      {head + issuer + "      credentials:\n        - {match: {color: x}, role: app}\n", 11,
       "unknown key \"color\""},
      {head + creds, 7, "needs tls.client_ca"},
      {head + issuer + creds + "      bind: [{subject: x}]\n", 12,
       "name the workload with unit, exe or cgroup"},
      {"targets:\n  - name: a\n    listen: 127.0.0.1:1\n    upstream: 127.0.0.1:2\n    auth:\n" +
           issuer + creds,
       7, "auth.token needs tls.cert and tls.key"},
      {"targets:\n  - name: a\n    listen: 127.0.0.1:1\n    upstream: 127.0.0.1:2\n"
       "    tls: {cert: /dev/null, key: /dev/null, require: false}\n    auth:\n" +
           issuer + creds,
       5, "tls.require: false with auth.token"},
  };
  for (const auto& b : cases) ExpectRejected(b);
  std::filesystem::remove(secret_path);
}

TEST_F(ConfigTest, ExportSection) {
  auto c = LoadConfig(Write(R"(targets: [{name: a, listen: 127.0.0.1:1, upstream: 127.0.0.1:2}]
export:
  - name: siem
    type: syslog
    format: cef
    address: "[::1]:6514"
    tls: true
    facility: 10
    app_name: dbw
    confirm_after: 2s
    start: end
  - name: bus
    type: kafka
    format: ocsf
    brokers: k1:9092,k2:9092
    topic: audit
    batch: 1000
    properties: {compression.type: zstd}
  - name: otel
    type: otlp
    format: ecs
    url: https://collector.example:4318/custom/logs
    headers: {Authorization: Bearer x}
    timeout: 3s
    backoff: 1s
    max_backoff: 1m
)"));
  ASSERT_TRUE(c.ok()) << c.status().message();
  ASSERT_EQ(c->exporters.size(), 3u);
  const auto& s = c->exporters[0];
  EXPECT_EQ(s.kind, exporter::Kind::kSyslog);
  EXPECT_EQ(s.format, audit::EventFormat::kCef);
  EXPECT_EQ(s.host, "::1");
  EXPECT_EQ(s.port, "6514");
  EXPECT_TRUE(s.tls.enabled);
  EXPECT_EQ(s.syslog_facility, 10);
  EXPECT_EQ(s.syslog_app_name, "dbw");
  EXPECT_EQ(s.syslog_confirm_after, std::chrono::seconds(2));
  EXPECT_EQ(s.start, exporter::Start::kEnd);
  const auto& k = c->exporters[1];
  EXPECT_EQ(k.kind, exporter::Kind::kKafka);
  EXPECT_EQ(k.brokers, "k1:9092,k2:9092");
  EXPECT_EQ(k.topic, "audit");
  EXPECT_EQ(k.batch, 1000u);
  ASSERT_EQ(k.kafka_properties.size(), 1u);
  EXPECT_EQ(k.kafka_properties[0].first, "compression.type");
  const auto& o = c->exporters[2];
  EXPECT_EQ(o.kind, exporter::Kind::kOtlp);
  EXPECT_EQ(o.host, "collector.example");
  EXPECT_EQ(o.port, "4318");
  EXPECT_EQ(o.otlp_path, "/custom/logs");
  EXPECT_TRUE(o.tls.enabled);
  EXPECT_EQ(o.timeout, std::chrono::seconds(3));
  EXPECT_EQ(o.max_backoff, std::chrono::minutes(1));
  ASSERT_EQ(o.headers.size(), 1u);

  for (const BadCase& bad : std::vector<BadCase>{
           {"targets: []\nexport:\n  - {name: a, type: syslog}\n", 3,
            "missing required key \"address\""},
           {"targets: []\nexport:\n  - {name: a, type: syslog, address: \"::1:514\"}\n", 3,
            "in brackets"},
           {"targets: []\nexport:\n  - {name: \"a/b\", type: otlp, url: \"http://h\"}\n", 3,
            "name may hold"},
           {"targets: []\nexport:\n  - {name: a, type: otlp, url: \"http://h\", tls: true}\n", 3,
            "needs an https:// url"},
           {"targets: []\nexport:\n  - {name: a, type: syslog, address: \"h:1\", batch: 0}\n", 3,
            "batch must be a number from 1 to 10000"},
           {"targets: []\nexport:\n  - {name: a, type: syslog, address: \"h:1\", backoff: 2s, "
            "max_backoff: 1s}\n",
            3, "max_backoff must not be less than backoff"},
           {"targets: []\nexport:\n  - {name: a, type: kafka, brokers: b, topic: t, "
            "properties: {enable.idempotence: \"false\"}}\n",
            3, "set by dbwarden"},
           {"targets: []\nexport:\n  - {name: a, type: syslog, address: \"h:1\", topic: t}\n", 3,
            "unknown key \"topic\""},
       })
    ExpectRejected(bad);
}

TEST_F(ConfigTest, MissingFile) {
  auto c = LoadConfig("/nonexistent/dbwarden.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("cannot open"), std::string::npos);
}

}  // namespace
}  // namespace dbw::agent
