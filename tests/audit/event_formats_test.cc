// The export formats (OCSF, ECS, CEF) against golden files, and checks that hold for every
// input whatever the goldens say: JSON parses, seq and hash survive, CEF stays one escaped line,
// and every native field is either mapped or kept in the format's catch-all.
//
// Golden files: tests/testdata/formats/<name>.json (a stored event as the API serves it) and,
// beside it, <name>.ocsf.json, <name>.ecs.json and <name>.cef. After an intended change of a
// mapping, regenerate them with DBW_UPDATE_GOLDEN=1 ./audit_event_formats_test and review the diff.
#include "userspace/audit/event_formats.h"

#include <simdjson.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace dbw::audit {
namespace {

namespace fs = std::filesystem;
using simdjson::dom::element;

const fs::path kDir = fs::path(DBW_TESTDATA) / "formats";

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct Input {
  std::string name;
  std::string json;  // without the file's trailing newline
};

std::vector<Input> Inputs() {
  std::vector<Input> out;
  for (const auto& e : fs::directory_iterator(kDir)) {
    std::string file = e.path().filename().string();
    if (!file.ends_with(".json") || file.ends_with(".ocsf.json") || file.ends_with(".ecs.json"))
      continue;
    std::string json = ReadFile(e.path());
    while (!json.empty() && json.back() == '\n') json.pop_back();
    out.push_back({file.substr(0, file.size() - 5), json});
  }
  std::sort(out.begin(), out.end(), [](const Input& a, const Input& b) { return a.name < b.name; });
  return out;
}

std::string Render(EventFormat f, const std::string& json) {
  auto r = RenderEvent(f, json);
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? *r : std::string();
}

TEST(EventFormats, Golden) {
  const bool update = std::getenv("DBW_UPDATE_GOLDEN") != nullptr &&
                      std::string(std::getenv("DBW_UPDATE_GOLDEN")) == "1";
  const std::vector<Input> inputs = Inputs();
  ASSERT_GE(inputs.size(), 7u);
  const std::pair<EventFormat, const char*> formats[] = {{EventFormat::kOcsf, ".ocsf.json"},
                                                         {EventFormat::kEcs, ".ecs.json"},
                                                         {EventFormat::kCef, ".cef"}};
  for (const Input& in : inputs) {
    for (const auto& [format, ext] : formats) {
      const fs::path golden = kDir / (in.name + ext);
      const std::string got = Render(format, in.json) + "\n";
      if (update) {
        std::ofstream(golden, std::ios::binary) << got;
        continue;
      }
      ASSERT_TRUE(fs::exists(golden)) << golden << " missing: run with DBW_UPDATE_GOLDEN=1";
      EXPECT_EQ(ReadFile(golden), got) << in.name << ext;
    }
  }
}

TEST(EventFormats, NativeIsTheInput) {
  for (const Input& in : Inputs()) EXPECT_EQ(Render(EventFormat::kNative, in.json), in.json);
}

TEST(EventFormats, ParseFormatName) {
  for (const char* name : {"native", "ocsf", "ecs", "cef"}) {
    auto f = ParseEventFormat(name);
    ASSERT_TRUE(f.ok());
    EXPECT_STREQ(EventFormatName(*f), name);
  }
  auto bad = ParseEventFormat("OCSF");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("native, ocsf, ecs or cef"), std::string::npos);
}

TEST(EventFormats, RejectsWhatIsNotAnEvent) {
  for (const char* bad : {"", "[]", "not json", "{\"seq\":\"1\"}", "{\"seq\":-1}", "{}",
                          "{\"seq\":1", "{\"seq\":1.5}"}) {
    for (EventFormat f : {EventFormat::kOcsf, EventFormat::kEcs, EventFormat::kCef}) {
      auto r = RenderEvent(f, bad);
      EXPECT_FALSE(r.ok()) << bad;
      if (!r.ok()) {
        EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
      }
    }
  }
  EXPECT_TRUE(RenderEvent(EventFormat::kOcsf, "{\"seq\":0}").ok());
}

// ---- CEF parsing, as a receiver would ----

struct Cef {
  std::vector<std::string> header;  // 7 fields, unescaped
  std::map<std::string, std::string> ext;
};

// Splits on unescaped pipes for the 7 header fields; the rest is `key=value` pairs separated by
// a space before the next unescaped `key=`.
bool ParseCef(const std::string& line, Cef* out) {
  size_t i = 0;
  std::string field;
  while (out->header.size() < 7) {
    if (i >= line.size()) return false;
    char c = line[i++];
    if (c == '\\') {
      if (i >= line.size() || (line[i] != '\\' && line[i] != '|')) return false;
      field.push_back(line[i++]);
    } else if (c == '|') {
      out->header.push_back(field);
      field.clear();
    } else {
      field.push_back(c);
    }
  }
  std::string rest = line.substr(i);
  // Key starts: the beginning, or a space followed by [A-Za-z0-9]+ and an unescaped '='.
  std::vector<std::pair<size_t, size_t>> keys;  // (start of key, position of '=')
  for (size_t p = 0; p < rest.size(); ++p) {
    if (p != 0 && rest[p - 1] != ' ') continue;
    size_t q = p;
    while (q < rest.size() && std::isalnum(static_cast<unsigned char>(rest[q]))) ++q;
    if (q > p && q < rest.size() && rest[q] == '=') keys.push_back({p, q});
  }
  for (size_t k = 0; k < keys.size(); ++k) {
    size_t end = k + 1 < keys.size() ? keys[k + 1].first - 1 : rest.size();
    std::string raw = rest.substr(keys[k].second + 1, end - keys[k].second - 1), value;
    for (size_t p = 0; p < raw.size(); ++p) {
      if (raw[p] == '=') return false;  // an unescaped '=' in a value
      if (raw[p] != '\\') {
        value.push_back(raw[p]);
        continue;
      }
      if (++p >= raw.size()) return false;
      char e = raw[p];
      value.push_back(e == 'n' ? '\n' : e == 'r' ? '\r' : e);
      if (e != 'n' && e != 'r' && e != '\\' && e != '=') return false;
    }
    out->ext[rest.substr(keys[k].first, keys[k].second - keys[k].first)] = value;
  }
  return true;
}

// ---- Nothing lost ----

std::string Pointer(const std::vector<std::string_view>& path) {
  std::string p;
  for (auto c : path) {
    p += '/';
    for (char ch : c) p += ch == '~' ? "~0" : ch == '/' ? "~1" : std::string(1, ch);
  }
  return p;
}

std::string Dotted(const std::vector<std::string_view>& path) {
  std::string p;
  for (auto c : path) p += (p.empty() ? "" : ".") + std::string(c);
  return p;
}

void Leaves(element e, std::vector<std::string_view>* path,
            std::vector<std::pair<std::vector<std::string_view>, element>>* out) {
  simdjson::dom::object obj;
  if (e.get_object().get(obj) == simdjson::SUCCESS && obj.size() > 0) {
    for (auto field : obj) {
      path->push_back(field.key);
      Leaves(field.value, path, out);
      path->pop_back();
    }
    return;
  }
  out->push_back({*path, e});
}

// A mapped value carries the native one: the same JSON, or a number as its decimal text.
bool Carries(element mapped, element native) {
  if (simdjson::minify(mapped) == simdjson::minify(native)) return true;
  std::string_view s;
  uint64_t n = 0;
  return mapped.get_string().get(s) == simdjson::SUCCESS &&
         native.get_uint64().get(n) == simdjson::SUCCESS && s == std::to_string(n);
}

// Native field → where the format puts it (besides the catch-all).
const std::map<std::string, std::vector<std::string>> kOcsfMapped = {
    {"seq", {"/metadata/sequence"}},
    {"hash", {"/metadata/uid"}},
    {"ts", {"/metadata/original_time"}},
    {"session_id", {"/metadata/correlation_uid"}},
    {"env", {"/metadata/tags/0/value"}},
    {"target", {"/dst_endpoint/name"}},
    {"principal.application_name", {"/actor/app_name"}},
    {"principal.db_user", {"/actor/user/name"}},
    {"principal.subject", {"/actor/user/uid"}},
    {"principal.jti", {"/actor/user/credential_uid"}},
    {"principal.kind", {"/actor/user/type"}},
    {"principal.database", {"/database/name"}},
    {"principal.client_addr", {"/src_endpoint/name"}},
    {"process.pid", {"/actor/process/pid"}},
    {"process.comm", {"/actor/process/name"}},
    {"process.cmdline", {"/actor/process/cmd_line"}},
    {"process.exe", {"/actor/process/file/path"}},
    {"process.ppid", {"/actor/process/parent_process/pid"}},
    {"process.uid", {"/actor/process/user/uid"}},
    {"statement.sql", {"/query_info/query_string"}},
    {"statement.fingerprint", {"/query_info/uid"}},
    {"result.bytes", {"/query_info/bytes"}},
    {"result.sqlstate", {"/status_code"}},
    {"result.message", {"/status_detail"}},
    {"error.sqlstate", {"/status_code"}},
    {"error.message", {"/status_detail"}},
};
const std::map<std::string, std::vector<std::string>> kEcsMapped = {
    {"seq", {"/event/sequence"}},
    {"hash", {"/event/id"}},
    {"ts", {"/@timestamp"}},
    {"decision.reason", {"/event/reason"}},
    {"decision.rules", {"/rule/id"}},
    {"target", {"/labels/target"}},
    {"env", {"/labels/env"}},
    {"principal.db_user", {"/user/name"}},
    {"principal.subject", {"/user/id"}},
    {"principal.client_addr", {"/source/address"}},
    {"principal.cert_subject", {"/tls/client/subject"}},
    {"principal.cert_issuer", {"/tls/client/issuer"}},
    {"principal.database", {"/db/namespace"}},
    {"process.pid", {"/process/pid"}},
    {"process.comm", {"/process/name"}},
    {"process.exe", {"/process/executable"}},
    {"process.cmdline", {"/process/command_line"}},
    {"process.ppid", {"/process/parent/pid"}},
    {"process.uid", {"/process/user/id"}},
    {"process.gid", {"/process/group/id"}},
    {"process.container_id", {"/container/id"}},
    {"statement.sql", {"/db/query/text"}},
    {"result.sqlstate", {"/db/response/status_code"}},
    {"result.message", {"/error/message"}},
    {"error.sqlstate", {"/error/code"}},
    {"error.message", {"/error/message"}},
};

// Mapped in a shape the table cannot compare directly.
bool CarriedSpecially(const std::string& dotted, element native, element out, bool ocsf) {
  std::string_view s;
  uint64_t n = 0;
  if (ocsf && dotted == "principal.client_addr" &&
      native.get_string().get(s) == simdjson::SUCCESS) {
    std::string_view ip;
    uint64_t port = 0;
    if (out.at_pointer("/src_endpoint/ip").get(ip) != simdjson::SUCCESS ||
        out.at_pointer("/src_endpoint/port").get(port) != simdjson::SUCCESS)
      return false;
    std::string joined =
        (ip.find(':') != std::string_view::npos ? "[" + std::string(ip) + "]" : std::string(ip)) +
        ":" + std::to_string(port);
    return joined == s;
  }
  if (ocsf && dotted == "principal.groups") {
    simdjson::dom::array groups, names;
    if (native.get_array().get(groups) != simdjson::SUCCESS ||
        out.at_pointer("/actor/user/groups").get(names) != simdjson::SUCCESS ||
        groups.size() != names.size())
      return false;
    auto g = groups.begin();
    for (element item : names) {
      if (simdjson::minify(item.at_key("name").value_unsafe()) != simdjson::minify(*g))
        return false;
      ++g;
    }
    return true;
  }
  uint64_t ns = 0;
  if (!ocsf && dotted == "result.duration_us" && native.get_uint64().get(n) == simdjson::SUCCESS)
    return out.at_pointer("/event/duration").get(ns) == simdjson::SUCCESS && ns == n * 1000;
  return false;
}

void ExpectNothingLost(const Input& in, EventFormat format) {
  const bool ocsf = format == EventFormat::kOcsf;
  const std::string rendered = Render(format, in.json);
  simdjson::dom::parser native_parser, out_parser;
  element native, out;
  ASSERT_EQ(native_parser.parse(in.json).get(native), simdjson::SUCCESS);
  ASSERT_EQ(out_parser.parse(rendered).get(out), simdjson::SUCCESS) << rendered;
  const std::string rest = ocsf ? "/unmapped" : "/dbwarden";
  const auto& table = ocsf ? kOcsfMapped : kEcsMapped;
  std::vector<std::pair<std::vector<std::string_view>, element>> leaves;
  std::vector<std::string_view> path;
  Leaves(native, &path, &leaves);
  for (const auto& [p, value] : leaves) {
    const std::string dotted = Dotted(p);
    element kept;
    bool found =
        out.at_pointer(rest + Pointer(p)).get(kept) == simdjson::SUCCESS && Carries(kept, value);
    if (auto it = table.find(dotted); !found && it != table.end()) {
      for (const std::string& ptr : it->second) {
        element mapped;
        found = found ||
                (out.at_pointer(ptr).get(mapped) == simdjson::SUCCESS && Carries(mapped, value));
      }
    }
    found = found || CarriedSpecially(dotted, value, out, ocsf);
    EXPECT_TRUE(found) << in.name << " " << EventFormatName(format) << ": " << dotted << " is lost";
  }
}

TEST(EventFormats, StructureOfEveryInput) {
  for (const Input& in : Inputs()) {
    simdjson::dom::parser p;
    element native;
    ASSERT_EQ(p.parse(in.json).get(native), simdjson::SUCCESS) << in.name;
    uint64_t seq = 0;
    std::string_view hash;
    ASSERT_EQ(native["seq"].get(seq), simdjson::SUCCESS);
    ASSERT_EQ(native["hash"].get(hash), simdjson::SUCCESS);
    const std::string want_hash(hash);

    for (EventFormat f : {EventFormat::kOcsf, EventFormat::kEcs, EventFormat::kCef}) {
      const std::string out = Render(f, in.json);
      EXPECT_EQ(out.find('\n'), std::string::npos) << in.name;
      EXPECT_EQ(out.find('\r'), std::string::npos) << in.name;
      if (f == EventFormat::kCef) continue;
      simdjson::dom::parser op;
      element doc;
      ASSERT_EQ(op.parse(out).get(doc), simdjson::SUCCESS) << out;
      const bool ocsf = f == EventFormat::kOcsf;
      uint64_t got_seq = 0;
      std::string_view got_hash;
      EXPECT_EQ(doc.at_pointer(ocsf ? "/metadata/sequence" : "/event/sequence").get(got_seq),
                simdjson::SUCCESS);
      EXPECT_EQ(doc.at_pointer(ocsf ? "/metadata/uid" : "/event/id").get(got_hash),
                simdjson::SUCCESS);
      EXPECT_EQ(got_seq, seq) << in.name;
      EXPECT_EQ(got_hash, want_hash) << in.name;
      ExpectNothingLost(in, f);
    }

    const std::string line = Render(EventFormat::kCef, in.json);
    Cef cef;
    ASSERT_TRUE(ParseCef(line, &cef)) << line;
    ASSERT_EQ(cef.header.size(), 7u);
    EXPECT_EQ(cef.header[0], "CEF:0");
    EXPECT_EQ(cef.header[1], "dbwarden");
    int severity = std::atoi(cef.header[6].c_str());
    EXPECT_TRUE(severity >= 0 && severity <= 10) << line;
    EXPECT_EQ(cef.ext["cn1"], std::to_string(seq));
    EXPECT_EQ(cef.ext["cn1Label"], "seq");
    EXPECT_EQ(cef.ext["cs6"], want_hash);
    EXPECT_EQ(cef.ext["cs6Label"], "hash");
    std::string_view sql;
    if (native.at_pointer("/statement/sql").get(sql) == simdjson::SUCCESS) {
      EXPECT_EQ(cef.ext["cs4"], sql) << in.name;
    }
    std::string_view app;
    if (native.at_pointer("/principal/application_name").get(app) == simdjson::SUCCESS) {
      EXPECT_EQ(cef.ext["requestClientApplication"], app) << in.name;
    }
  }
}

// The mappings the docs promise, independent of the golden bytes.
TEST(EventFormats, Mappings) {
  std::map<std::string, std::string> ocsf, ecs, cef;
  for (const Input& in : Inputs()) {
    ocsf[in.name] = Render(EventFormat::kOcsf, in.json);
    ecs[in.name] = Render(EventFormat::kEcs, in.json);
    cef[in.name] = Render(EventFormat::kCef, in.json);
  }
  struct Want {
    const char* name;
    int activity_id, status_id, disposition_id, severity_id;
    const char* outcome;
    const char* act;
  };
  const Want wants[] = {
      {"deny_drop", 7, 2, 2, 4, "failure", "deny"},
      {"select_masked", 1, 1, 1, 1, "success", "allow"},
      {"update_failed", 2, 2, 17, 2, "failure", "log"},
      {"session_start_token", 3, 1, -1, 1, "success", ""},
      {"bypass", 99, 0, -1, 4, "unknown", ""},
      {"audit_loss", 99, 0, -1, 5, "unknown", ""},
      {"tricky_text", 1, 1, 1, 1, "success", "allow"},
  };
  for (const Want& w : wants) {
    SCOPED_TRACE(w.name);
    simdjson::dom::parser p1, p2;
    element o, e;
    ASSERT_EQ(p1.parse(ocsf[w.name]).get(o), simdjson::SUCCESS);
    ASSERT_EQ(p2.parse(ecs[w.name]).get(e), simdjson::SUCCESS);
    EXPECT_EQ(int64_t(o["class_uid"]), 6005);
    EXPECT_EQ(int64_t(o["category_uid"]), 6);
    EXPECT_EQ(int64_t(o["activity_id"]), w.activity_id);
    EXPECT_EQ(int64_t(o["type_uid"]), 600500 + w.activity_id);
    EXPECT_EQ(int64_t(o["status_id"]), w.status_id);
    EXPECT_EQ(int64_t(o["severity_id"]), w.severity_id);
    int64_t disposition = -1;
    if (o["disposition_id"].get(disposition) != simdjson::SUCCESS) disposition = -1;
    EXPECT_EQ(disposition, w.disposition_id);
    EXPECT_EQ(std::string_view(e["event"]["outcome"]), w.outcome);
    Cef c;
    ASSERT_TRUE(ParseCef(cef[w.name], &c));
    EXPECT_EQ(c.ext["outcome"], w.outcome);
    EXPECT_EQ(c.ext["act"], w.act);
  }
  // A timestamp in milliseconds; the sql and the first table in place.
  simdjson::dom::parser p;
  element o = p.parse(ocsf["deny_drop"]);
  EXPECT_EQ(int64_t(o["time"]), 1777886102481);
  EXPECT_EQ(std::string_view(o["table"]["name"]), "public.orders");
  EXPECT_EQ(std::string_view(o["query_info"]["query_string"]), "DROP TABLE public.orders");
  EXPECT_EQ(std::string_view(o["disposition"]), "Blocked");
  EXPECT_EQ(std::string_view(o["activity_name"]), "Delete");
}

TEST(EventFormats, CefHeaderEscaping) {
  const std::string json =
      R"({"seq":9,"ts":"2026-01-01T00:00:00.000000Z","kind":"we|ird\\kind\nx","detail":"a=b\\c\nd","hash":"h"})";
  const std::string line = Render(EventFormat::kCef, json);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  Cef c;
  ASSERT_TRUE(ParseCef(line, &c)) << line;
  ASSERT_EQ(c.header.size(), 7u);
  EXPECT_EQ(c.header[4], "we|ird\\kind x");
  EXPECT_EQ(c.ext["msg"], "a=b\\c\nd");
  EXPECT_EQ(c.ext["cat"], "we|ird\\kind\nx");
}

}  // namespace
}  // namespace dbw::audit
