// The API over real HTTP on loopback: auth, every route, limits, malformed input, TLS, the
// stream's long-poll and pagination.
#include "userspace/api/server.h"

#include <simdjson.h>

#include <cstdlib>
#include <filesystem>
#include <set>
#include <thread>
#include <utility>  // before Asio (Boost 1.74 with g++ 12)

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <gtest/gtest.h>

#include "tests/api/fake_event_source.h"
#include "userspace/api/auth.h"

namespace dbw::api {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using testing::FakeEvent;
using testing::FakeEventSource;

struct Reply {
  unsigned status = 0;
  std::string body;
  http::fields headers;
  bool ok = false;
};

template <class Stream>
Reply Exchange(Stream& s, http::request<http::string_body>& req) {
  Reply out;
  beast::error_code ec;
  req.prepare_payload();
  http::write(s, req, ec);
  if (ec) return out;
  beast::flat_buffer buf;
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 << 20);
  http::read(s, buf, parser, ec);
  if (ec) return out;
  auto& res = parser.get();
  out.ok = true;
  out.status = res.result_int();
  out.body = res.body();
  for (const auto& f : res) out.headers.set(f.name_string(), f.value());
  return out;
}

Reply Fetch(uint16_t port, const std::string& target, const std::string& token = "",
            http::verb verb = http::verb::get, const std::string& body = "") {
  net::io_context ioc;
  beast::tcp_stream s(ioc);
  beast::error_code ec;
  s.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port), ec);
  if (ec) return {};
  http::request<http::string_body> req(verb, target, 11);
  req.set(http::field::host, "127.0.0.1");
  if (!token.empty()) req.set(http::field::authorization, "Bearer " + token);
  req.body() = body;
  return Exchange(s, req);
}

// Sends raw bytes and returns the raw response text.
std::string Raw(uint16_t port, const std::string& bytes) {
  net::io_context ioc;
  tcp::socket s(ioc);
  beast::error_code ec;
  s.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port), ec);
  net::write(s, net::buffer(bytes), ec);
  std::string out;
  char buf[4096];
  for (;;) {
    size_t n = s.read_some(net::buffer(buf), ec);
    if (ec) break;
    out.append(buf, n);
  }
  return out;
}

simdjson::dom::element Parse(simdjson::dom::parser& p, const std::string& s) {
  simdjson::dom::element e;
  EXPECT_EQ(p.parse(s).get(e), simdjson::SUCCESS) << s;
  return e;
}

class ApiServerTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(BaseOptions()); }
  void TearDown() override { server_.reset(); }

  ServerOptions BaseOptions() {
    ServerOptions o;
    o.listen = "127.0.0.1:0";
    o.stream_poll = std::chrono::milliseconds(10);
    o.tokens = {{"v", Role::kViewer, TokenSha256Hex("viewer-token")},
                {"ap", Role::kApprover, TokenSha256Hex("approver-token")},
                {"ad", Role::kAdmin, TokenSha256Hex("admin-token")}};
    return o;
  }
  void Start(const ServerOptions& o) {
    server_.reset();
    ApiDeps deps;
    deps.events = &events_;
    deps.policy = policy_.get();
    deps.store_ready = [this](std::string* why) {
      *why = "store closed";
      return store_ready_.load();
    };
    auto s = Server::Create(o, std::move(deps));
    ASSERT_TRUE(s.ok()) << s.status().message();
    server_ = std::move(*s);
    ASSERT_TRUE(server_->Start().ok());
  }
  Reply Get(const std::string& target, const std::string& token = "viewer-token") {
    return Fetch(server_->port(), target, token);
  }

  FakeEventSource events_;
  std::unique_ptr<policy::PolicyStore> policy_ = [] {
    auto p = policy::LoadPolicy({}, policy::Mode::kEnforce);
    return std::make_unique<policy::PolicyStore>(p.ok() ? *p : nullptr);
  }();
  std::atomic<bool> store_ready_{true};
  std::unique_ptr<Server> server_;
  simdjson::dom::parser parser_;
};

TEST_F(ApiServerTest, HealthNeedsNoToken) {
  EXPECT_EQ(Get("/healthz", "").status, 200u);
  EXPECT_EQ(Get("/readyz", "").status, 200u);
  store_ready_ = false;
  Reply r = Get("/readyz", "");
  EXPECT_EQ(r.status, 503u);
  EXPECT_NE(r.body.find("store closed"), std::string::npos);
}

TEST_F(ApiServerTest, AuthPerRole) {
  Reply none = Get("/v1/events", "");
  EXPECT_EQ(none.status, 401u);
  EXPECT_EQ(none.headers[http::field::www_authenticate], "Bearer realm=\"dbwarden\"");
  EXPECT_EQ(Get("/v1/events", "wrong").status, 401u);
  for (const char* t : {"viewer-token", "approver-token", "admin-token"}) {
    EXPECT_EQ(Get("/v1/events", t).status, 200u) << t;
    EXPECT_EQ(Get("/metrics", t).status, 200u) << t;
  }
}

TEST_F(ApiServerTest, RoutesMethodsAndErrors) {
  EXPECT_EQ(Get("/nope").status, 404u);
  EXPECT_EQ(Get("/v1/sessions/a/b").status, 404u);
  Reply post = Fetch(server_->port(), "/v1/events", "viewer-token", http::verb::post);
  EXPECT_EQ(post.status, 405u);
  EXPECT_EQ(Fetch(server_->port(), "/v1/policy/evaluate", "viewer-token").status, 405u);
  Reply bad = Get("/v1/events?limit=0");
  EXPECT_EQ(bad.status, 400u);
  EXPECT_EQ(std::string_view(Parse(parser_, bad.body)["error"]),
            "\"limit\" must be an integer from 1 to 1000");
  EXPECT_EQ(Get("/v1/events?since=%zz").status, 400u);
  EXPECT_EQ(Get("/v1/events?cursor=xyz").status, 400u);  // the store rejects its cursor
}

TEST_F(ApiServerTest, MalformedAndOversizedRequests) {
  std::string r = Raw(server_->port(), "NOT HTTP AT ALL\r\n\r\n");
  EXPECT_EQ(r.rfind("HTTP/1.1 400", 0), 0u) << r;
  EXPECT_NE(r.find("{\"error\":"), std::string::npos);
  std::string big_body(70 * 1024, 'x');
  r = Raw(server_->port(), "POST /v1/policy/evaluate HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                               std::to_string(big_body.size()) + "\r\n\r\n" + big_body);
  EXPECT_EQ(r.rfind("HTTP/1.1 413", 0), 0u) << r.substr(0, 100);
  std::string big_header =
      "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(20 * 1024, 'y') + "\r\n\r\n";
  r = Raw(server_->port(), big_header);
  EXPECT_EQ(r.rfind("HTTP/1.1 431", 0), 0u) << r.substr(0, 100);
}

TEST_F(ApiServerTest, KeepAliveServesSeveralRequests) {
  net::io_context ioc;
  beast::tcp_stream s(ioc);
  s.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), server_->port()));
  for (int i = 0; i < 3; ++i) {
    http::request<http::string_body> req(http::verb::get, "/healthz", 11);
    req.set(http::field::host, "x");
    EXPECT_EQ(Exchange(s, req).status, 200u);
  }
}

TEST_F(ApiServerTest, EventsFiltersAndPaginationWithoutGapsOrDuplicates) {
  const int64_t now = audit::NowMicros();
  for (int i = 0; i < 250; ++i) {
    events_.Append(FakeEvent{"statement", "s" + std::to_string(i % 3), i % 2 ? "alice" : "bob",
                             i % 5 ? "allow" : "deny", "fp" + std::to_string(i % 4), "SELECT $1",
                             now - (250 - i) * 1000, ""});
  }
  std::set<uint64_t> seen;
  std::string cursor;
  uint64_t last = ~0ull;
  int pages = 0;
  do {
    Reply r = Get("/v1/events?principal=alice&limit=40" +
                  (cursor.empty() ? "" : "&cursor=" + PercentEncode(cursor)));
    ASSERT_EQ(r.status, 200u) << r.body;
    auto doc = Parse(parser_, r.body);
    for (auto e : doc["events"].get_array()) {
      uint64_t seq = uint64_t(e["seq"]);
      EXPECT_LT(seq, last);  // newest first
      last = seq;
      EXPECT_TRUE(seen.insert(seq).second);
      EXPECT_EQ(seq % 2, 0u);  // alice's events have even seq (i odd)
    }
    cursor = std::string(std::string_view(doc["next_cursor"]));
    ++pages;
  } while (!cursor.empty());
  EXPECT_EQ(seen.size(), 125u);
  EXPECT_EQ(pages, 4);
  Reply deny = Get("/v1/events?action=deny&since=1h&limit=1000");
  EXPECT_EQ(Parse(parser_, deny.body)["events"].get_array().size(), 50u);
}

TEST_F(ApiServerTest, StreamResumesAndLongPolls) {
  for (int i = 0; i < 5; ++i) events_.Append(FakeEvent{});
  Reply first = Get("/v1/events/stream?limit=3");
  ASSERT_EQ(first.status, 200u);
  EXPECT_EQ(first.headers[http::field::content_type], "application/x-ndjson");
  EXPECT_EQ(std::count(first.body.begin(), first.body.end(), '\n'), 3);
  std::string cursor(first.headers["X-Dbwarden-Cursor"]);
  EXPECT_EQ(cursor, EncodeStreamCursor(3));
  Reply second = Get("/v1/events/stream?cursor=" + cursor);
  EXPECT_EQ(std::count(second.body.begin(), second.body.end(), '\n'), 2);
  EXPECT_NE(second.body.find("\"seq\":4,"), std::string::npos);
  cursor = std::string(second.headers["X-Dbwarden-Cursor"]);
  // Nothing new: a long-poll waits, and returns as soon as an event arrives.
  std::thread writer([this] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    events_.Append(FakeEvent{});
  });
  auto t0 = std::chrono::steady_clock::now();
  Reply third = Get("/v1/events/stream?wait=20s&cursor=" + cursor);
  auto took = std::chrono::steady_clock::now() - t0;
  writer.join();
  EXPECT_NE(third.body.find("\"seq\":6,"), std::string::npos);
  EXPECT_LT(took, std::chrono::seconds(10));
  EXPECT_EQ(std::string(third.headers["X-Dbwarden-Cursor"]), EncodeStreamCursor(6));
  // A short wait with nothing new: empty body, the cursor unchanged.
  Reply empty = Get("/v1/events/stream?wait=50ms&cursor=" + EncodeStreamCursor(6));
  EXPECT_EQ(empty.status, 200u);
  EXPECT_EQ(empty.body, "");
  EXPECT_EQ(std::string(empty.headers["X-Dbwarden-Cursor"]), EncodeStreamCursor(6));
  EXPECT_EQ(Get("/v1/events/stream?cursor=bogus").status, 400u);
}

TEST_F(ApiServerTest, ManyConcurrentLongPollsDoNotBlockOtherRequests) {
  std::vector<std::thread> polls;
  for (int i = 0; i < 8; ++i) {
    polls.emplace_back([this] { Get("/v1/events/stream?wait=1s"); });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(Get("/healthz", "").status, 200u);
  EXPECT_EQ(Get("/v1/events").status, 200u);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(800));
  for (auto& t : polls) t.join();
}

TEST_F(ApiServerTest, SessionsAndSessionDetail) {
  const int64_t now = audit::NowMicros();
  events_.Append(FakeEvent{"session_start", "aa", "alice", "", "", "", now - 3000, ""});
  events_.Append(FakeEvent{"session_start", "bb", "bob", "", "", "", now - 2000, ""});
  events_.Append(FakeEvent{"statement", "aa", "alice", "allow", "f1", "SELECT 1", now - 1500, ""});
  events_.Append(FakeEvent{"session_end", "aa", "alice", "", "", "", now - 1000, "client closed"});
  Reply r = Get("/v1/sessions");
  ASSERT_EQ(r.status, 200u) << r.body;
  auto doc = Parse(parser_, r.body);
  auto sessions = doc["sessions"].get_array();
  ASSERT_EQ(sessions.size(), 2u);
  EXPECT_EQ(std::string_view(sessions.at(0)["session_id"]), "bb");
  EXPECT_TRUE(bool(sessions.at(0)["active"]));
  EXPECT_EQ(std::string_view(sessions.at(1)["session_id"]), "aa");
  EXPECT_FALSE(bool(sessions.at(1)["active"]));
  EXPECT_EQ(std::string_view(sessions.at(1)["end_detail"]), "client closed");
  Reply active = Get("/v1/sessions?active=true");
  EXPECT_EQ(Parse(parser_, active.body)["sessions"].get_array().size(), 1u);
  Reply one = Get("/v1/sessions/aa");
  ASSERT_EQ(one.status, 200u);
  auto d = Parse(parser_, one.body);
  EXPECT_EQ(std::string_view(d["session"]["principal"]["db_user"]), "alice");
  EXPECT_EQ(d["events"].get_array().size(), 3u);
  EXPECT_EQ(Get("/v1/sessions/zz").status, 404u);
  EXPECT_EQ(Get("/v1/sessions?active=maybe").status, 400u);
}

TEST_F(ApiServerTest, Stats) {
  const int64_t now = audit::NowMicros();
  for (int i = 0; i < 30; ++i) {
    events_.Append(FakeEvent{"statement", "s", i % 3 ? "alice" : "bob", i % 10 ? "allow" : "deny",
                             "fp" + std::to_string(i % 12), "SELECT " + std::to_string(i % 12),
                             now - 1000, ""});
  }
  events_.Append(FakeEvent{"statement", "s", "old", "allow", "fpold", "", now - 7'200'000'000, ""});
  Reply r = Get("/v1/stats?since=1h");
  ASSERT_EQ(r.status, 200u) << r.body;
  auto d = Parse(parser_, r.body);
  EXPECT_EQ(uint64_t(d["statements"]), 30u);
  EXPECT_EQ(uint64_t(d["by_action"]["deny"]), 3u);
  EXPECT_EQ(uint64_t(d["by_principal"]["bob"]), 10u);
  auto top = d["top_fingerprints"].get_array();
  EXPECT_EQ(top.size(), 10u);
  EXPECT_EQ(uint64_t(top.at(0)["count"]), 3u);
  EXPECT_EQ(std::string_view(top.at(0)["sql"]), "SELECT 0");
  EXPECT_EQ(Get("/v1/stats?since=banana").status, 400u);
}

TEST_F(ApiServerTest, VerifyMetricsAndPublicKey) {
  for (int i = 0; i < 4; ++i) events_.Append(FakeEvent{});
  Reply ok = Get("/v1/audit/verify?from=1&to=4");
  ASSERT_EQ(ok.status, 200u);
  auto d = Parse(parser_, ok.body);
  EXPECT_TRUE(bool(d["ok"]));
  EXPECT_EQ(uint64_t(d["checked"]), 4u);
  events_.broken = true;
  d = Parse(parser_, Get("/v1/audit/verify").body);
  EXPECT_FALSE(bool(d["ok"]));
  EXPECT_EQ(uint64_t(d["first_bad_seq"]), 2u);
  EXPECT_EQ(Get("/v1/audit/verify?from=x").status, 400u);
  EXPECT_EQ(Get("/v1/audit/verify?from=5&to=1").status, 400u);
  // POST: the same check against published anchors (one JSON line each).
  events_.broken = false;
  audit::Anchor a;
  a.seq = 3;
  a.hash.assign(32, '\x01');
  a.public_key.assign(32, '\x02');
  a.signature.assign(64, '\x03');
  auto post = [this](const std::string& body) {
    return Fetch(server_->port(), "/v1/audit/verify", "viewer-token", http::verb::post, body);
  };
  Reply anchored = post(audit::FormatAnchor(a) + "\n");
  ASSERT_EQ(anchored.status, 200u) << anchored.body;
  d = Parse(parser_, anchored.body);
  EXPECT_TRUE(bool(d["ok"]));
  EXPECT_EQ(uint64_t(d["anchors_checked"]), 1u);
  ASSERT_EQ(events_.last_anchors.size(), 1u);
  EXPECT_EQ(events_.last_anchors[0].seq, 3u);
  EXPECT_EQ(events_.last_anchors[0].hash, a.hash);
  a.seq = 9;  // past the store's end
  d = Parse(parser_, post(audit::FormatAnchor(a) + "\n").body);
  EXPECT_FALSE(bool(d["ok"]));
  EXPECT_EQ(uint64_t(d["first_bad_seq"]), 9u);
  Reply bad = post("{\"type\":\"nope\"}\n");
  EXPECT_EQ(bad.status, 400u);
  EXPECT_NE(bad.body.find("request body:1:"), std::string::npos) << bad.body;
  EXPECT_EQ(post("").status, 400u);
  Reply m = Get("/metrics");
  EXPECT_EQ(m.headers[http::field::content_type], "text/plain; version=0.0.4");
  // The store's families are the store's to register (here there is no store): the API adds
  // no second names for them.
  EXPECT_EQ(m.body.find("dbwarden_audit_store_"), std::string::npos) << m.body;
  EXPECT_NE(m.body.find("dbwarden_api_requests_total"), std::string::npos);
  EXPECT_NE(Get("/v1/audit/public-key").body.find("BEGIN PUBLIC KEY"), std::string::npos);
}

TEST_F(ApiServerTest, PolicyEvaluate) {
  ASSERT_NE(policy_->Get(), nullptr);
  auto post = [this](const std::string& body) {
    return Fetch(server_->port(), "/v1/policy/evaluate", "viewer-token", http::verb::post, body);
  };
  Reply r = post(R"({"sql":"DROP TABLE users","env":"prod","principal":{"db_user":"app"}})");
  ASSERT_EQ(r.status, 200u) << r.body;
  auto d = Parse(parser_, r.body);
  EXPECT_NE(std::string_view(d["action"]), "allow");
  EXPECT_EQ(std::string_view(d["statements"].at(0)["command"]), "DROP");
  EXPECT_EQ(post("{").status, 400u);
  EXPECT_EQ(post(R"({"sql":1})").status, 400u);
  EXPECT_EQ(post(R"({"nosql":"x"})").status, 400u);
}

TEST(ApiServerConfig, NoTokensOnlyOnLoopback) {
  FakeEventSource events;
  ApiDeps deps;
  deps.events = &events;
  ServerOptions o;
  o.listen = "0.0.0.0:0";
  EXPECT_FALSE(Server::Create(o, deps).ok());
  o.listen = "[::1]:0";
  auto s = Server::Create(o, deps);
  ASSERT_TRUE(s.ok()) << s.status().message();
  if ((*s)->Start().ok()) {  // hosts without IPv6 cannot bind ::1
    net::io_context ioc;
    beast::tcp_stream st(ioc);
    beast::error_code ec;
    st.connect(tcp::endpoint(net::ip::make_address("::1"), (*s)->port()), ec);
    ASSERT_FALSE(ec);
    http::request<http::string_body> req(http::verb::get, "/v1/events", 11);
    req.set(http::field::host, "x");
    EXPECT_EQ(Exchange(st, req).status, 401u);  // no tokens: nothing is anonymous
    http::request<http::string_body> health(http::verb::get, "/healthz", 11);
    health.set(http::field::host, "x");
    EXPECT_EQ(Exchange(st, health).status, 200u);
  }
  o.listen = "127.0.0.1";
  EXPECT_FALSE(Server::Create(o, deps).ok());
  o.listen = "127.0.0.1:0";
  o.tls.cert = "/nonexistent.pem";
  o.tls.key = "/nonexistent.key";
  EXPECT_FALSE(Server::Create(o, deps).ok());
}

// TLS with a throwaway CA, server and client certificate made by the openssl CLI.
class ApiTlsTest : public ApiServerTest {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("dbw-api-tls-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    const std::string d = dir_.string();
    const std::string script =
        "cd " + d +
        " && "
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 "
        "-subj /CN=test-ca -keyout ca.key -out ca.pem && "
        "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost "
        "-addext subjectAltName=IP:127.0.0.1 -keyout server.key -out server.csr && "
        "printf 'subjectAltName=IP:127.0.0.1\\n' > ext.cnf && "
        "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 "
        "-extfile ext.cnf -out server.pem && "
        "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=client "
        "-keyout client.key -out client.csr && "
        "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 "
        "-out client.pem) >/dev/null 2>&1";
    ASSERT_EQ(std::system(("(" + script).c_str()), 0);
    ServerOptions o = BaseOptions();
    o.tls = {d + "/server.pem", d + "/server.key", d + "/ca.pem"};
    Start(o);
  }
  void TearDown() override {
    ApiServerTest::TearDown();
    std::filesystem::remove_all(dir_);
  }
  Reply TlsGet(bool client_cert) {
    net::io_context ioc;
    ssl::context ctx(ssl::context::tls_client);
    ctx.load_verify_file((dir_ / "ca.pem").string());
    ctx.set_verify_mode(ssl::verify_peer);
    if (client_cert) {
      ctx.use_certificate_chain_file((dir_ / "client.pem").string());
      ctx.use_private_key_file((dir_ / "client.key").string(), ssl::context::pem);
    }
    beast::ssl_stream<beast::tcp_stream> s(ioc, ctx);
    beast::error_code ec;
    beast::get_lowest_layer(s).connect(
        tcp::endpoint(net::ip::make_address("127.0.0.1"), server_->port()), ec);
    if (ec) return {};
    s.handshake(ssl::stream_base::client, ec);
    if (ec) return {};
    http::request<http::string_body> req(http::verb::get, "/v1/events", 11);
    req.set(http::field::host, "127.0.0.1");
    req.set(http::field::authorization, "Bearer viewer-token");
    return Exchange(s, req);
  }
  std::filesystem::path dir_;
};

TEST_F(ApiTlsTest, ClientCertificateRequired) {
  EXPECT_TRUE(server_->tls());
  Reply with = TlsGet(true);
  EXPECT_TRUE(with.ok);
  EXPECT_EQ(with.status, 200u);
  EXPECT_FALSE(TlsGet(false).ok);
  EXPECT_EQ(Raw(server_->port(), "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").find("HTTP/1.1 200"),
            std::string::npos);  // plain HTTP on a TLS port gets no answer
}

}  // namespace
}  // namespace dbw::api
