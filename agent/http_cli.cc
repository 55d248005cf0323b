// The SRE CLI over the HTTP API: a synchronous Beast client (plain or TLS), argument parsing,
// and table/JSON-lines output of events, sessions and the chain check.
#include "agent/http_cli.h"

#include <simdjson.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <utility>  // before Asio: Boost 1.74's awaitable.hpp needs it with g++ 12

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "userspace/api/query.h"
#include "userspace/audit/store.h"
#include "userspace/common/url.h"

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

using Endpoint = HttpUrl;

struct Client {
  std::string api;
  std::string token;
  std::string cacert;
};

struct HttpReply {
  unsigned status = 0;
  std::string body;
};

template <class Stream>
bool Exchange(Stream& s, const Endpoint& ep, const Client& c, http::verb method,
              const std::string& target, const std::string& body, HttpReply* reply,
              beast::error_code& ec) {
  http::request<http::string_body> req(method, ep.path + target, 11);
  req.set(http::field::host, ep.host);
  req.set(http::field::user_agent, "dbwarden-cli");
  if (!c.token.empty()) req.set(http::field::authorization, "Bearer " + c.token);
  if (method == http::verb::post) {
    req.set(http::field::content_type, "application/json");
    req.body() = body;
    req.prepare_payload();
  }
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

// `method` `target` (with `body` for POST); on failure writes a clear message to `err` and
// returns false.
bool Call(const Client& c, http::verb method, const std::string& target, const std::string& body,
          HttpReply* reply, std::ostream& err) {
  Endpoint ep;
  std::string error;
  if (!ParseHttpUrl(c.api, &ep, &error)) {
    err << "dbwarden: API " << error << "\n";
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
    ok = Exchange(s, ep, c, method, target, body, reply, ec);
  } else {
    beast::tcp_stream s(ioc);
    s.expires_after(std::chrono::seconds(90));
    s.connect(results, ec);
    if (ec) return fail("cannot connect to");
    ok = Exchange(s, ep, c, method, target, body, reply, ec);
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

bool Get(const Client& c, const std::string& target, HttpReply* reply, std::ostream& err) {
  return Call(c, http::verb::get, target, "", reply, err);
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
  std::string_view principal = Field(e, "principal", "cert_subject");
  if (principal.empty()) principal = Field(e, "principal", "tls_subject");  // before 2026-12
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
  f->client.api =
      std::getenv("DBWARDEN_API") ? std::getenv("DBWARDEN_API") : "http://127.0.0.1:9720";
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
    if (name == "api")
      f->client.api = v;
    else if (name == "token")
      f->client.token = v;
    else if (name == "cacert")
      f->client.cacert = v;
    else
      f->values[name] = v;
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
      {"since", "since"},
      {"until", "until"},
      {"principal", "principal"},
      {"db-user", "db_user"},
      {"database", "database"},
      {"table", "table"},
      {"action", "action"},
      {"kind", "kind"},
      {"session", "session"},
      {"exe", "exe"},
      {"fingerprint", "fingerprint"},
      {"source", "source"}};
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
    cursor =
        doc["next_cursor"].get_string().get(next) == simdjson::SUCCESS ? std::string(next) : "";
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
      {"since", "since"},     {"until", "until"},       {"principal", "principal"},
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
        << (active ? std::string("active") : "ended " + std::string(Field(s, "ended"))) << "\n";
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
  if (f.active)
    target += std::string(target.find('?') == std::string::npos ? "?" : "&") + "active=true";
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

// The published anchors at `source` (a file, or an http(s) URL), as the body of POST
// /v1/audit/verify: the newest that fit the API's 64 KiB body limit, newest first. The newest
// anchor vouches for every event before it (the chain links them, and the server walks the
// whole chain), so older ones add nothing but a second opinion.
static bool AnchorsBody(const std::string& source, const std::string& cacert, std::string* body,
                        std::ostream& err) {
  std::string text;
  if (source.rfind("http://", 0) == 0 || source.rfind("https://", 0) == 0) {
    if (!FetchUrl(source, cacert, &text, err)) return false;
  } else {
    std::ifstream in(source, std::ios::binary);
    if (!in) {
      err << "dbwarden: cannot read the anchors " << source << ": " << std::strerror(errno) << "\n";
      return false;
    }
    std::stringstream s;
    s << in.rdbuf();
    text = s.str();
  }
  auto anchors = audit::ParseAnchors(text, source);
  if (!anchors.ok()) {
    err << "dbwarden: " << anchors.status().message() << "\n";
    return false;
  }
  if (anchors->empty()) {
    err << "dbwarden: " << source << ": no anchors in it\n";
    return false;
  }
  std::sort(anchors->begin(), anchors->end(),
            [](const audit::Anchor& a, const audit::Anchor& b) { return a.seq > b.seq; });
  constexpr size_t kBodyBudget = 60 * 1024;
  for (const audit::Anchor& a : *anchors) {
    std::string line = audit::FormatAnchor(a) + "\n";
    if (body->size() + line.size() > kBodyBudget) break;
    *body += line;
  }
  return true;
}

int AuditVerifyRemoteMain(const std::vector<std::string>& args, std::ostream& out,
                          std::ostream& err) {
  Flags f;
  if (!ParseFlags(args, {"from", "to", "anchors"}, &f, err) || !f.positional.empty()) {
    err << "usage: dbwarden audit verify [--api URL] [--token T] [--cacert FILE] [--from SEQ] "
           "[--to SEQ] [--anchors FILE|URL] [--json]\n";
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
  const std::string target = "/v1/audit/verify" + QueryFrom(f, {{"from", "from"}, {"to", "to"}});
  if (auto it = f.values.find("anchors"); it != f.values.end()) {
    std::string body;
    if (!AnchorsBody(it->second, f.client.cacert, &body, err)) return kExitUsage;
    if (!Call(f.client, http::verb::post, target, body, &reply, err)) return kExitFail;
  } else if (!Get(f.client, target, &reply, err)) {
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
  if (doc["checkpoints_verified"].get_uint64().get(checkpoints) != simdjson::SUCCESS)
    checkpoints = {};
  if (ok) {
    out << "ok: " << checked << " events (seq " << first << ".." << last << "), " << checkpoints
        << " signed checkpoints verified";
    uint64_t anchors = 0;
    if (doc["anchors_checked"].get_uint64().get(anchors) == simdjson::SUCCESS)
      out << ", " << anchors << " published anchors match";
    out << "\n";
    return kExitOk;
  }
  if (doc["first_bad_seq"].get_uint64().get(bad) != simdjson::SUCCESS) bad = {};
  out << "BROKEN at seq " << bad << ": " << Field(doc, "problem") << " (checked " << checked
      << " events from seq " << first << ")\n";
  return kExitFail;
}

namespace {

int64_t IntField(simdjson::dom::element e, std::string_view key) {
  int64_t v = 0;
  if (e[key].get_int64().get(v) != simdjson::SUCCESS) v = 0;
  return v;
}

std::string Flat(std::string_view text) {
  std::string flat(text);
  std::replace(flat.begin(), flat.end(), '\n', ' ');
  return flat;
}

void PrintApproval(simdjson::dom::element r, std::ostream& out) {
  std::string_view sql = Field(r, "statement", "sql");
  if (sql.empty()) sql = Field(r, "statement", "normalized");
  bool waiting = false;
  if (r["waiting"].get_bool().get(waiting) != simdjson::SUCCESS) waiting = false;
  out << "request   " << Field(r, "id") << "  (" << Field(r, "state") << ", " << Field(r, "mode")
      << (waiting ? ", a session is waiting" : "") << ")\n"
      << "target    " << Field(r, "target") << " (" << Field(r, "env") << "), database "
      << Field(r, "principal", "database") << "\n"
      << "principal " << Field(r, "principal", "subject") << " (db user "
      << Field(r, "principal", "db_user") << ", " << Field(r, "principal", "kind") << ", app \""
      << Field(r, "principal", "application_name") << "\", from "
      << Field(r, "principal", "client_addr") << ")\n";
  simdjson::dom::element proc;
  if (r["process"].get(proc) == simdjson::SUCCESS && IntField(proc, "pid") != 0)
    out << "process   pid " << IntField(proc, "pid") << " " << Field(proc, "exe") << "\n";
  out << "statement " << sql << "\n"
      << "reason    " << Field(r, "reason") << "\n"
      << "approvals " << IntField(r, "approvals") << " of " << IntField(r, "required") << "\n"
      << "created   " << Field(r, "created") << "\n"
      << "expires   " << Field(r, "expires") << "\n";
  simdjson::dom::array votes;
  if (r["votes"].get_array().get(votes) == simdjson::SUCCESS) {
    for (auto v : votes) {
      out << "vote      " << Field(v, "decision") << " by " << Field(v, "who") << " at "
          << Field(v, "at");
      if (!Field(v, "comment").empty()) out << ": " << Field(v, "comment");
      out << "\n";
    }
  }
  if (!Field(r, "end_detail").empty()) out << "ended     " << Field(r, "end_detail") << "\n";
}

}  // namespace

int ApprovalsMain(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  Flags f;
  auto usage = [&err] {
    err << "usage: dbwarden approvals [list] [--state pending|approved|denied|expired|executed|"
           "withdrawn|all] [--limit N] [--json]\n"
           "       dbwarden approvals show ID [--json]\n"
           "       dbwarden approvals approve|deny ID [--comment TEXT] [--json]\n"
           "       (all take --api URL --token T --cacert FILE; DBWARDEN_API, DBWARDEN_TOKEN)\n";
    return kExitUsage;
  };
  if (!ParseFlags(args, {"state", "limit", "comment"}, &f, err)) return usage();
  std::string verb = f.positional.empty() ? "list" : f.positional[0];
  HttpReply reply;
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (verb == "list") {
    if (f.positional.size() > 1 || f.values.count("comment")) return usage();
    if (!Get(f.client, "/v1/approvals" + QueryFrom(f, {{"state", "state"}, {"limit", "limit"}}),
             &reply, err))
      return kExitFail;
    simdjson::dom::array items;
    if (parser.parse(reply.body).get(doc) != simdjson::SUCCESS ||
        doc["approvals"].get_array().get(items) != simdjson::SUCCESS) {
      err << "dbwarden: the API answered with an unexpected body\n";
      return kExitFail;
    }
    if (f.json) {
      for (auto r : items) out << simdjson::minify(r) << "\n";
      return kExitOk;
    }
    out << Cell("ID", 12) << " " << Cell("STATE", 9) << " " << Cell("CREATED (UTC)", 19) << " "
        << Cell("MODE", 6) << " " << Cell("PRINCIPAL", 12) << " " << Cell("TARGET", 10) << " "
        << Cell("OK", 3) << " STATEMENT\n";
    for (auto r : items) {
      std::string_view sql = Field(r, "statement", "sql");
      if (sql.empty()) sql = Field(r, "statement", "normalized");
      std::string line =
          Cell(Field(r, "id"), 12) + " " + Cell(Field(r, "state"), 9) + " " +
          Cell(Field(r, "created").substr(0, 19), 19) + " " + Cell(Field(r, "mode"), 6) + " " +
          Cell(Field(r, "principal", "subject"), 12) + " " + Cell(Field(r, "target"), 10) + " " +
          Cell(std::to_string(IntField(r, "approvals")) + "/" +
                   std::to_string(IntField(r, "required")),
               3) +
          " ";
      size_t width = TerminalWidth();
      line += Cell(Flat(sql), std::max<size_t>(24, width > line.size() ? width - line.size() : 0));
      while (!line.empty() && line.back() == ' ') line.pop_back();
      out << line << "\n";
    }
    return kExitOk;
  }
  if (f.positional.size() != 2 || f.values.count("state") || f.values.count("limit"))
    return usage();
  const std::string id = f.positional[1];
  const std::string path = "/v1/approvals/" + api::PercentEncode(id);
  if (verb == "show") {
    if (f.values.count("comment")) return usage();
    if (!Get(f.client, path, &reply, err)) return kExitFail;
  } else if (verb == "approve" || verb == "deny") {
    rapidjson::StringBuffer buf;
    rapidjson::Writer<rapidjson::StringBuffer> w(buf);
    w.StartObject();
    w.Key("comment");
    const std::string& comment = f.values["comment"];
    w.String(comment.data(), static_cast<rapidjson::SizeType>(comment.size()));
    w.EndObject();
    if (!Call(f.client, http::verb::post, path + "/" + verb, buf.GetString(), &reply, err))
      return kExitFail;
  } else {
    return usage();
  }
  if (parser.parse(reply.body).get(doc) != simdjson::SUCCESS) {
    err << "dbwarden: the API answered with invalid JSON\n";
    return kExitFail;
  }
  if (f.json) {
    out << simdjson::minify(doc) << "\n";
    return kExitOk;
  }
  if (verb == "approve") {
    out << (Field(doc, "state") == "pending" ? "approval recorded" : "approved") << ": request "
        << id << " has " << IntField(doc, "approvals") << " of " << IntField(doc, "required")
        << " approval(s), now " << Field(doc, "state") << "\n";
  } else if (verb == "deny") {
    out << "denied: request " << id << "\n";
  } else {
    PrintApproval(doc, out);
  }
  return kExitOk;
}

int ApprovalsMain(const std::vector<std::string>& args) {
  return ApprovalsMain(args, std::cout, std::cerr);
}

int EventsMain(const std::vector<std::string>& args) {
  return EventsMain(args, std::cout, std::cerr);
}
int SessionsMain(const std::vector<std::string>& args) {
  return SessionsMain(args, std::cout, std::cerr);
}
bool FetchUrl(const std::string& url, const std::string& cacert, std::string* body,
              std::ostream& err) {
  Client c;
  c.api = url;
  c.cacert = cacert;
  HttpReply reply;
  if (!Call(c, http::verb::get, "", "", &reply, err)) return false;
  *body = std::move(reply.body);
  return true;
}

int AuditVerifyRemoteMain(const std::vector<std::string>& args) {
  return AuditVerifyRemoteMain(args, std::cout, std::cerr);
}

}  // namespace dbw::agent
