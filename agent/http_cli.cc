// The SRE CLI over the HTTP API: a synchronous Beast client (plain or TLS), argument parsing,
// and table/JSON-lines output of events, sessions and the chain check.
#include <utility>  // before Asio: Boost 1.74's awaitable.hpp needs it with g++ 12

#include "agent/http_cli.h"

#include <simdjson.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <map>
#include <optional>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "userspace/api/query.h"

namespace dbw::agent {
namespace {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = net::ip::tcp;

constexpr int kExitOk = 0;
constexpr int kExitFail = 1;
constexpr int kExitUsage = 2;

struct Endpoint {
  bool tls = false;
  std::string host;
  std::string port;
  std::string prefix;  // path prefix of the base URL, without a trailing slash
};

struct Client {
  std::string api;
  std::string token;
  std::string cacert;
};

bool ParseUrl(const std::string& url, Endpoint* ep, std::string* error) {
  std::string rest;
  if (url.rfind("http://", 0) == 0) {
    rest = url.substr(7);
  } else if (url.rfind("https://", 0) == 0) {
    ep->tls = true;
    rest = url.substr(8);
  } else {
    *error = "API URL must start with http:// or https://: " + url;
    return false;
  }
  size_t slash = rest.find('/');
  std::string hostport = rest.substr(0, slash);
  ep->prefix = slash == std::string::npos ? "" : rest.substr(slash);
  while (!ep->prefix.empty() && ep->prefix.back() == '/') ep->prefix.pop_back();
  ep->port = ep->tls ? "443" : "80";
  if (!hostport.empty() && hostport[0] == '[') {
    size_t close = hostport.find(']');
    if (close == std::string::npos) {
      *error = "bad IPv6 address in " + url;
      return false;
    }
    ep->host = hostport.substr(1, close - 1);
    if (close + 1 < hostport.size() && hostport[close + 1] == ':') ep->port = hostport.substr(close + 2);
  } else {
    size_t colon = hostport.rfind(':');
    ep->host = hostport.substr(0, colon);
    if (colon != std::string::npos) ep->port = hostport.substr(colon + 1);
  }
  if (ep->host.empty() || ep->port.empty()) {
    *error = "bad API URL " + url;
    return false;
  }
  return true;
}

struct HttpReply {
  unsigned status = 0;
  std::string body;
};

template <class Stream>
bool Exchange(Stream& s, const Endpoint& ep, const Client& c, const std::string& target,
              HttpReply* reply, beast::error_code& ec) {
  http::request<http::empty_body> req(http::verb::get, ep.prefix + target, 11);
  req.set(http::field::host, ep.host);
  req.set(http::field::user_agent, "dbwarden-cli");
  if (!c.token.empty()) req.set(http::field::authorization, "Bearer " + c.token);
  http::write(s, req, ec);
  if (ec) return false;
  beast::flat_buffer buf;
  http::response_parser<http::string_body> parser;
  parser.body_limit(256 << 20);
  http::read(s, buf, parser, ec);
  if (ec) return false;
  reply->status = parser.get().result_int();
  reply->body = std::move(parser.get().body());
  return true;
}

// GET `target`; on failure writes a clear message to `err` and returns false.
bool Get(const Client& c, const std::string& target, HttpReply* reply, std::ostream& err) {
  Endpoint ep;
  std::string error;
  if (!ParseUrl(c.api, &ep, &error)) {
    err << "dbwarden: " << error << "\n";
    return false;
  }
  net::io_context ioc;
  beast::error_code ec;
  tcp::resolver resolver(ioc);
  auto results = resolver.resolve(ep.host, ep.port, ec);
  if (ec) {
    err << "dbwarden: cannot resolve " << ep.host << ": " << ec.message() << "\n";
    return false;
  }
  auto fail = [&](const char* what) {
    err << "dbwarden: " << what << " " << c.api << ": " << ec.message();
    if (ec == net::error::connection_refused) {
      err << " (is the agent running with api.listen there? set --api or DBWARDEN_API)";
    }
    err << "\n";
    return false;
  };
  bool ok;
  if (ep.tls) {
    ssl::context ctx(ssl::context::tls_client);
    if (c.cacert.empty()) {
      ctx.set_default_verify_paths(ec);
    } else {
      ctx.load_verify_file(c.cacert, ec);
    }
    if (ec) return fail("cannot load CA certificates for");
    ctx.set_verify_mode(ssl::verify_peer);
    beast::ssl_stream<beast::tcp_stream> s(ioc, ctx);
    SSL_set_tlsext_host_name(s.native_handle(), ep.host.c_str());
    s.set_verify_callback(ssl::host_name_verification(ep.host));
    beast::get_lowest_layer(s).expires_after(std::chrono::seconds(90));
    beast::get_lowest_layer(s).connect(results, ec);
    if (ec) return fail("cannot connect to");
    s.handshake(ssl::stream_base::client, ec);
    if (ec) return fail("TLS handshake failed with");
    ok = Exchange(s, ep, c, target, reply, ec);
  } else {
    beast::tcp_stream s(ioc);
    s.expires_after(std::chrono::seconds(90));
    s.connect(results, ec);
    if (ec) return fail("cannot connect to");
    ok = Exchange(s, ep, c, target, reply, ec);
  }
  if (!ok) return fail("request failed:");
  if (reply->status == 200) return true;
  simdjson::dom::parser parser;
  std::string_view message;
  if (parser.parse(reply->body).get_object()["error"].get_string().get(message) !=
      simdjson::SUCCESS) {
    message = reply->body;
  }
  if (reply->status == 401) {
    err << "dbwarden: unauthorized (" << message << "): set --token or DBWARDEN_TOKEN\n";
  } else if (reply->status == 403) {
    err << "dbwarden: forbidden: " << message << "\n";
  } else {
    err << "dbwarden: API answered " << reply->status << ": " << message << "\n";
  }
  return false;
}

size_t TerminalWidth() {
  struct winsize ws {};
  if (isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 40) {
    return ws.ws_col;
  }
  if (const char* cols = std::getenv("COLUMNS")) {
    long n = std::strtol(cols, nullptr, 10);
    if (n >= 40 && n < 1000) return static_cast<size_t>(n);
  }
  return 80;
}

std::string_view Field(simdjson::dom::element e, std::string_view a, std::string_view b = {}) {
  std::string_view s;
  auto v = e[a];
  if (!b.empty()) v = v[b];
  if (v.get_string().get(s) != simdjson::SUCCESS) return {};
  return s;
}

std::string Cell(std::string_view s, size_t width) {
  std::string out(s.substr(0, width));
  if (s.size() > width && width > 1) out.back() = '~';
  out.resize(width, ' ');
  return out;
}

void PrintEventRow(simdjson::dom::element e, size_t width, std::ostream& out) {
  uint64_t seq = 0;
  if (e["seq"].get_uint64().get(seq) != simdjson::SUCCESS) seq = {};
  std::string_view ts = Field(e, "ts");
  ts = ts.size() >= 19 ? ts.substr(5, 14) : ts;  // MM-DDTHH:MM:SS
  std::string_view principal = Field(e, "principal", "tls_subject");
  if (principal.empty()) principal = Field(e, "principal", "db_user");
  std::string_view result = Field(e, "result", "sqlstate");
  if (result.empty()) result = Field(e, "result", "command_tag");
  std::string_view sql = Field(e, "statement", "sql");
  if (sql.empty()) sql = Field(e, "detail");
  std::string line = Cell(std::to_string(seq), 7) + " " + Cell(ts, 14) + " " +
                     Cell(Field(e, "kind"), 10) + " " + Cell(principal, 10) + " " +
                     Cell(Field(e, "principal", "application_name"), 8) + " " +
                     Cell(Field(e, "decision", "action"), 7) + " " + Cell(result, 6) + " ";
  std::string flat(sql);
  std::replace(flat.begin(), flat.end(), '\n', ' ');
  // The SQL gets what is left of the width, but never less than 24 columns.
  line += Cell(flat, std::max<size_t>(24, width > line.size() ? width - line.size() : 0));
  while (!line.empty() && line.back() == ' ') line.pop_back();
  out << line << "\n";
}

void PrintEventHeader(std::ostream& out) {
  out << Cell("SEQ", 7) << " " << Cell("TIME (UTC)", 14) << " " << Cell("KIND", 10) << " "
      << Cell("PRINCIPAL", 10) << " " << Cell("APP", 8) << " " << Cell("DECISION", 7) << " "
      << Cell("RESULT", 6) << " SQL\n";
}

// Common flags; returns false on an unknown flag or a missing value (and says so).
struct Flags {
  Client client;
  std::map<std::string, std::string> values;  // --flag value, keyed without the dashes
  bool json = false;
  bool active = false;
  std::vector<std::string> positional;
};

bool ParseFlags(const std::vector<std::string>& args, const std::vector<std::string>& valued,
                Flags* f, std::ostream& err) {
  f->client.api = std::getenv("DBWARDEN_API") ? std::getenv("DBWARDEN_API") : "http://127.0.0.1:9720";
  if (const char* t = std::getenv("DBWARDEN_TOKEN")) f->client.token = t;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--json") {
      f->json = true;
      continue;
    }
    if (a == "--active") {
      f->active = true;
      continue;
    }
    if (a.rfind("--", 0) != 0) {
      f->positional.push_back(a);
      continue;
    }
    std::string name = a.substr(2);
    bool known = name == "api" || name == "token" || name == "cacert" ||
                 std::find(valued.begin(), valued.end(), name) != valued.end();
    if (!known) {
      err << "dbwarden: unknown flag " << a << "\n";
      return false;
    }
    if (i + 1 == args.size()) {
      err << "dbwarden: " << a << " needs a value\n";
      return false;
    }
    const std::string& v = args[++i];
    if (name == "api") f->client.api = v;
    else if (name == "token") f->client.token = v;
    else if (name == "cacert") f->client.cacert = v;
    else f->values[name] = v;
  }
  return true;
}

std::string QueryFrom(const Flags& f, const std::vector<std::pair<std::string, std::string>>& map) {
  std::string q;
  for (const auto& [flag, param] : map) {
    auto it = f.values.find(flag);
    if (it == f.values.end()) continue;
    q += (q.empty() ? "?" : "&") + param + "=" + api::PercentEncode(it->second);
  }
  return q;
}

}  // namespace

int EventsMain(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  static const std::vector<std::pair<std::string, std::string>> kMap = {
      {"since", "since"},     {"until", "until"},   {"principal", "principal"},
      {"db-user", "db_user"}, {"database", "database"}, {"table", "table"},
      {"action", "action"},   {"kind", "kind"},     {"session", "session"},
      {"exe", "exe"},         {"fingerprint", "fingerprint"}, {"source", "source"}};
  std::vector<std::string> valued = {"limit"};
  for (const auto& [flag, param] : kMap) valued.push_back(flag);
  Flags f;
  if (!ParseFlags(args, valued, &f, err) || !f.positional.empty()) {
    err << "usage: dbwarden events [--since 1h] [--until T] [--principal P] [--db-user U]\n"
           "         [--database D] [--table T] [--action allow|log|approve|deny] [--kind K]\n"
           "         [--session S] [--exe E] [--fingerprint F] [--source S] [--limit N] [--json]\n"
           "         [--api URL] [--token T] [--cacert FILE]\n";
    return kExitUsage;
  }
  size_t want = 100;
  if (auto it = f.values.find("limit"); it != f.values.end()) {
    auto n = api::ParseLimit("--limit", it->second, 1'000'000);
    if (!n.ok()) {
      err << "dbwarden: " << n.status().message() << "\n";
      return kExitUsage;
    }
    want = *n;
  }
  const std::string base = "/v1/events" + QueryFrom(f, kMap);
  const char sep = base.find('?') == std::string::npos ? '?' : '&';
  std::vector<std::string> events;  // raw JSON, newest first
  std::string cursor;
  simdjson::dom::parser parser;
  do {
    size_t page = std::min<size_t>(want - events.size(), api::kMaxEventsLimit);
    std::string target = base + sep + "limit=" + std::to_string(page);
    if (!cursor.empty()) target += "&cursor=" + api::PercentEncode(cursor);
    HttpReply reply;
    if (!Get(f.client, target, &reply, err)) return kExitFail;
    simdjson::dom::element doc;
    if (parser.parse(reply.body).get(doc) != simdjson::SUCCESS) {
      err << "dbwarden: the API answered with invalid JSON\n";
      return kExitFail;
    }
    simdjson::dom::array arr;
    if (doc["events"].get_array().get(arr) != simdjson::SUCCESS) break;
    for (auto e : arr) events.push_back(simdjson::minify(e));
    std::string_view next;
    cursor = doc["next_cursor"].get_string().get(next) == simdjson::SUCCESS ? std::string(next) : "";
    if (arr.size() == 0) break;
  } while (!cursor.empty() && events.size() < want);
  // Oldest first, like a log.
  std::reverse(events.begin(), events.end());
  if (f.json) {
    for (const auto& e : events) out << e << "\n";
    return kExitOk;
  }
  const size_t width = TerminalWidth();
  PrintEventHeader(out);
  for (const auto& e : events) {
    simdjson::dom::element doc;
    if (parser.parse(e).get(doc) == simdjson::SUCCESS) PrintEventRow(doc, width, out);
  }
  return kExitOk;
}

int SessionsMain(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  static const std::vector<std::pair<std::string, std::string>> kMap = {
      {"since", "since"}, {"until", "until"}, {"principal", "principal"},
      {"db-user", "db_user"}, {"database", "database"}, {"limit", "limit"}};
  std::vector<std::string> valued;
  for (const auto& [flag, param] : kMap) valued.push_back(flag);
  Flags f;
  if (!ParseFlags(args, valued, &f, err) || f.positional.size() > 1) {
    err << "usage: dbwarden sessions [--since 1h] [--until T] [--active] [--principal P]\n"
           "         [--db-user U] [--database D] [--limit N] [--json] [--api URL] [--token T]\n"
           "       dbwarden sessions ID [--json]\n";
    return kExitUsage;
  }
  simdjson::dom::parser parser;
  HttpReply reply;
  if (f.positional.size() == 1) {
    if (!Get(f.client, "/v1/sessions/" + api::PercentEncode(f.positional[0]), &reply, err)) {
      return kExitFail;
    }
    if (f.json) {
      out << reply.body << "\n";
      return kExitOk;
    }
    simdjson::dom::element doc;
    if (parser.parse(reply.body).get(doc) != simdjson::SUCCESS) return kExitFail;
    simdjson::dom::element s;
    simdjson::dom::array evs;
    bool active = false;
    if (doc["session"].get(s) != simdjson::SUCCESS ||
        doc["events"].get_array().get(evs) != simdjson::SUCCESS) {
      err << "dbwarden: the API answered with an unexpected body\n";
      return kExitFail;
    }
    if (s["active"].get_bool().get(active) != simdjson::SUCCESS) active = {};
    out << "session " << Field(s, "session_id") << "  target " << Field(s, "target") << "  user "
        << Field(s, "principal", "db_user") << "  from " << Field(s, "principal", "client_addr")
        << "  started " << Field(s, "started") << "  "
        << (active ? std::string("active") : "ended " + std::string(Field(s, "ended")))
        << "\n";
    std::vector<std::string> events;
    for (auto e : evs) events.push_back(simdjson::minify(e));
    std::reverse(events.begin(), events.end());
    PrintEventHeader(out);
    simdjson::dom::parser p2;
    for (const auto& e : events) {
      simdjson::dom::element ev;
      if (p2.parse(e).get(ev) == simdjson::SUCCESS) PrintEventRow(ev, TerminalWidth(), out);
    }
    return kExitOk;
  }
  std::string target = "/v1/sessions" + QueryFrom(f, kMap);
  if (f.active) target += std::string(target.find('?') == std::string::npos ? "?" : "&") + "active=true";
  if (!Get(f.client, target, &reply, err)) return kExitFail;
  simdjson::dom::element doc;
  if (parser.parse(reply.body).get(doc) != simdjson::SUCCESS) return kExitFail;
  simdjson::dom::array sessions;
  if (doc["sessions"].get_array().get(sessions) != simdjson::SUCCESS) return kExitFail;
  if (f.json) {
    for (auto s : sessions) out << simdjson::minify(s) << "\n";
    return kExitOk;
  }
  out << Cell("SESSION", 16) << " " << Cell("STARTED (UTC)", 19) << " " << Cell("STATE", 6) << " "
      << Cell("USER", 12) << " " << Cell("DATABASE", 12) << " " << Cell("APP", 12) << " CLIENT\n";
  for (auto s : sessions) {
    bool active = false;
    if (s["active"].get_bool().get(active) != simdjson::SUCCESS) active = {};
    out << Cell(Field(s, "session_id"), 16) << " " << Cell(Field(s, "started").substr(0, 19), 19)
        << " " << Cell(active ? "active" : "ended", 6) << " "
        << Cell(Field(s, "principal", "db_user"), 12) << " "
        << Cell(Field(s, "principal", "database"), 12) << " "
        << Cell(Field(s, "principal", "application_name"), 12) << " "
        << Field(s, "principal", "client_addr") << "\n";
  }
  bool truncated = false;
  if (doc["truncated"].get_bool().get(truncated) == simdjson::SUCCESS && truncated) {
    out << "(more sessions in the window than shown; narrow it with --since or --limit)\n";
  }
  return kExitOk;
}

int AuditVerifyRemoteMain(const std::vector<std::string>& args, std::ostream& out,
                          std::ostream& err) {
  Flags f;
  if (!ParseFlags(args, {"from", "to"}, &f, err) || !f.positional.empty()) {
    err << "usage: dbwarden audit verify [--api URL] [--token T] [--cacert FILE] [--from SEQ] "
           "[--to SEQ] [--json]\n";
    return kExitUsage;
  }
  for (const char* k : {"from", "to"}) {
    auto it = f.values.find(k);
    if (it != f.values.end() && !api::ParseSeq(k, it->second).ok()) {
      err << "dbwarden: --" << k << " must be a sequence number\n";
      return kExitUsage;
    }
  }
  HttpReply reply;
  if (!Get(f.client, "/v1/audit/verify" + QueryFrom(f, {{"from", "from"}, {"to", "to"}}), &reply,
           err)) {
    return kExitFail;
  }
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  bool ok = false;
  if (parser.parse(reply.body).get(doc) != simdjson::SUCCESS ||
      doc["ok"].get_bool().get(ok) != simdjson::SUCCESS) {
    err << "dbwarden: the API answered with an unexpected body\n";
    return kExitFail;
  }
  if (f.json) {
    out << reply.body << "\n";
    return ok ? kExitOk : kExitFail;
  }
  uint64_t first = 0, last = 0, checked = 0, checkpoints = 0, bad = 0;
  if (doc["first_seq"].get_uint64().get(first) != simdjson::SUCCESS) first = {};
  if (doc["last_seq"].get_uint64().get(last) != simdjson::SUCCESS) last = {};
  if (doc["checked"].get_uint64().get(checked) != simdjson::SUCCESS) checked = {};
  if (doc["checkpoints_verified"].get_uint64().get(checkpoints) != simdjson::SUCCESS) checkpoints = {};
  if (ok) {
    out << "ok: " << checked << " events (seq " << first << ".." << last << "), " << checkpoints
        << " signed checkpoints verified\n";
    return kExitOk;
  }
  if (doc["first_bad_seq"].get_uint64().get(bad) != simdjson::SUCCESS) bad = {};
  out << "BROKEN at seq " << bad << ": " << Field(doc, "problem") << " (checked " << checked
      << " events from seq " << first << ")\n";
  return kExitFail;
}

int EventsMain(const std::vector<std::string>& args) { return EventsMain(args, std::cout, std::cerr); }
int SessionsMain(const std::vector<std::string>& args) {
  return SessionsMain(args, std::cout, std::cerr);
}
int AuditVerifyRemoteMain(const std::vector<std::string>& args) {
  return AuditVerifyRemoteMain(args, std::cout, std::cerr);
}

}  // namespace dbw::agent
