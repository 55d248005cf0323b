// Sessions and statistics: views built from the audit log's events (parsed with simdjson).
#include <simdjson.h>

#include <algorithm>
#include <map>
#include <unordered_map>

#include "userspace/api/api.h"
#include "userspace/api/json_util.h"
#include "userspace/audit/event_json.h"

namespace dbw::api {
namespace {

constexpr size_t kPage = 1000;
constexpr size_t kMaxSessions = 1000;
constexpr size_t kMaxScan = 100'000;  // events a sessions or stats window reads at most

std::string_view Str(simdjson::dom::element e, const char* key) {
  std::string_view s;
  if (e[key].get_string().get(s) != simdjson::SUCCESS) return {};
  return s;
}

// Reads every page of `filter` (newest first) until `visit` returns false or kMaxScan events.
// Returns false (and sets *truncated) when the scan cap was reached.
Status Scan(const EventSource& src, const audit::EventFilter& filter, size_t max,
            const std::function<bool(const audit::StoredEvent&)>& visit, bool* truncated) {
  std::string cursor;
  size_t seen = 0;
  *truncated = false;
  do {
    auto page = src.Query(filter, std::min(kPage, max - seen), cursor);
    if (!page.ok()) return page.status();
    for (const auto& e : page->events) {
      if (!visit(e)) return Status::Ok();
      ++seen;
    }
    cursor = page->next_cursor;
    if (page->events.empty()) break;
    if (seen >= max) {
      *truncated = !cursor.empty();
      break;
    }
  } while (!cursor.empty());
  return Status::Ok();
}

struct SessionRow {
  std::string start_json;  // the session_start event
  uint64_t start_seq = 0;
  std::string end_ts;
  std::string end_detail;
  uint64_t end_seq = 0;
};

void WriteSession(JsonWriter* w, simdjson::dom::parser* parser, const SessionRow& row) {
  simdjson::dom::element e;
  w->StartObject();
  if (parser->parse(row.start_json).get(e) == simdjson::SUCCESS) {
    JsonKeyString(w, "session_id", Str(e, "session_id"));
    JsonKeyString(w, "source", Str(e, "source"));
    JsonKeyString(w, "target", Str(e, "target"));
    JsonKeyString(w, "env", Str(e, "env"));
    JsonKeyString(w, "started", Str(e, "ts"));
    w->Key("start_seq");
    w->Uint64(row.start_seq);
    for (const char* key : {"principal", "process"}) {
      simdjson::dom::object obj;
      if (e[key].get_object().get(obj) == simdjson::SUCCESS) {
        w->Key(key);
        std::string raw = simdjson::minify(obj);
        JsonRaw(w, raw, rapidjson::kObjectType);
      }
    }
  }
  w->Key("active");
  w->Bool(row.end_seq == 0);
  if (row.end_seq != 0) {
    JsonKeyString(w, "ended", row.end_ts);
    w->Key("end_seq");
    w->Uint64(row.end_seq);
    JsonKeyString(w, "end_detail", row.end_detail);
  }
  w->EndObject();
}

// The window shared by sessions and stats: since (default `def`), until.
Status ParseWindow(const QueryParams& params, const char* def, audit::EventFilter* f) {
  const int64_t now = audit::NowMicros();
  auto since = params.Single("since");
  if (!since.ok()) return since.status();
  auto t = ParseTime(*since ? **since : std::string(def), now);
  if (!t.ok()) return InvalidArgument("since: " + t.status().message());
  f->since_us = *t;
  auto until = params.Single("until");
  if (!until.ok()) return until.status();
  if (*until) {
    auto u = ParseTime(**until, now);
    if (!u.ok()) return InvalidArgument("until: " + u.status().message());
    f->until_us = *u;
    if (*f->since_us >= *u) return InvalidArgument("\"since\" must be before \"until\"");
  }
  return Status::Ok();
}

}  // namespace

Response Api::Sessions(const QueryParams& params) const {
  if (Status s = params.OnlyKeys(
          {"since", "until", "principal", "db_user", "database", "active", "limit"});
      !s.ok()) {
    return JsonError(400, s.message());
  }
  audit::EventFilter starts;
  if (Status s = ParseWindow(params, "1h", &starts); !s.ok()) return JsonError(400, s.message());
  for (auto [key, out] :
       {std::pair{"principal", &starts.principal}, std::pair{"db_user", &starts.db_user},
        std::pair{"database", &starts.database}}) {
    auto v = params.Single(key);
    if (!v.ok()) return JsonError(400, v.status().message());
    if (*v) *out = **v;
  }
  std::optional<bool> active;
  auto a = params.Single("active");
  if (!a.ok()) return JsonError(400, a.status().message());
  if (*a) {
    if (**a != "true" && **a != "false") return JsonError(400, "\"active\" must be true or false");
    active = **a == "true";
  }
  size_t limit = 100;
  auto l = params.Single("limit");
  if (!l.ok()) return JsonError(400, l.status().message());
  if (*l) {
    auto n = ParseLimit("limit", **l, kMaxSessions);
    if (!n.ok()) return JsonError(400, n.status().message());
    limit = *n;
  }
  starts.kind = "session_start";
  std::vector<SessionRow> rows;
  std::unordered_map<std::string, size_t> by_id;
  simdjson::dom::parser parser;
  bool truncated = false;
  Status s = Scan(
      *deps_.events, starts, kMaxScan,
      [&](const audit::StoredEvent& e) {
        simdjson::dom::element doc;
        if (parser.parse(e.json).get(doc) != simdjson::SUCCESS) return true;
        std::string id(Str(doc, "session_id"));
        if (id.empty() || by_id.count(id)) return true;
        by_id[id] = rows.size();
        rows.push_back(SessionRow{e.json, e.seq, {}, {}, 0});
        return true;
      },
      &truncated);
  if (!s.ok()) return JsonError(StatusHttp(s), s.message());
  // Ends of those sessions come after their starts, so the same window (without its end) has them.
  audit::EventFilter ends;
  ends.since_us = starts.since_us;
  ends.kind = "session_end";
  bool ends_truncated = false;
  s = Scan(
      *deps_.events, ends, kMaxScan,
      [&](const audit::StoredEvent& e) {
        simdjson::dom::element doc;
        if (parser.parse(e.json).get(doc) != simdjson::SUCCESS) return true;
        auto it = by_id.find(std::string(Str(doc, "session_id")));
        if (it == by_id.end()) return true;
        SessionRow& row = rows[it->second];
        row.end_seq = e.seq;
        row.end_ts = Str(doc, "ts");
        row.end_detail = Str(doc, "detail");
        return true;
      },
      &ends_truncated);
  if (!s.ok()) return JsonError(StatusHttp(s), s.message());
  rapidjson::StringBuffer buf;
  JsonWriter w(buf);
  w.StartObject();
  w.Key("sessions");
  w.StartArray();
  size_t written = 0;
  for (const SessionRow& row : rows) {  // newest start first
    if (active && *active != (row.end_seq == 0)) continue;
    if (written == limit) {
      truncated = true;
      break;
    }
    WriteSession(&w, &parser, row);
    ++written;
  }
  w.EndArray();
  w.Key("truncated");
  w.Bool(truncated || ends_truncated);
  w.EndObject();
  Response r;
  r.body.assign(buf.GetString(), buf.GetSize());
  return r;
}

Response Api::Session(const std::string& id, const QueryParams& params) const {
  if (Status s = params.OnlyKeys({"limit", "cursor"}); !s.ok()) return JsonError(400, s.message());
  size_t limit = kMaxEventsLimit;
  std::string cursor;
  auto l = params.Single("limit");
  auto c = params.Single("cursor");
  if (!l.ok()) return JsonError(400, l.status().message());
  if (!c.ok()) return JsonError(400, c.status().message());
  if (*l) {
    auto n = ParseLimit("limit", **l, kMaxEventsLimit);
    if (!n.ok()) return JsonError(400, n.status().message());
    limit = *n;
  }
  if (*c) cursor = **c;
  audit::EventFilter f;
  f.session = id;
  auto events = deps_.events->Query(f, limit, cursor);
  if (!events.ok()) return JsonError(StatusHttp(events.status()), events.status().message());
  SessionRow row;
  for (const char* kind : {"session_start", "session_end"}) {
    f.kind = kind;
    auto one = deps_.events->Query(f, 1, "");
    if (!one.ok()) return JsonError(StatusHttp(one.status()), one.status().message());
    if (one->events.empty()) continue;
    const audit::StoredEvent& e = one->events.front();
    if (f.kind == "session_start") {
      row.start_json = e.json;
      row.start_seq = e.seq;
    } else {
      simdjson::dom::parser p;
      simdjson::dom::element doc;
      if (p.parse(e.json).get(doc) != simdjson::SUCCESS) continue;
      row.end_seq = e.seq;
      row.end_ts = Str(doc, "ts");
      row.end_detail = Str(doc, "detail");
    }
  }
  if (row.start_seq == 0 && events->events.empty()) {
    return JsonError(404, "no events for session " + id);
  }
  rapidjson::StringBuffer buf;
  JsonWriter w(buf);
  simdjson::dom::parser parser;
  w.StartObject();
  w.Key("session");
  if (row.start_seq != 0) {
    WriteSession(&w, &parser, row);
  } else {
    w.StartObject();  // its start fell out of retention
    JsonKeyString(&w, "session_id", id);
    w.Key("active");
    w.Bool(row.end_seq == 0);
    w.EndObject();
  }
  w.Key("events");
  w.StartArray();
  for (const auto& e : events->events) JsonRaw(&w, e.json, rapidjson::kObjectType);
  w.EndArray();
  JsonKeyString(&w, "next_cursor", events->next_cursor);
  w.EndObject();
  Response r;
  r.body.assign(buf.GetString(), buf.GetSize());
  return r;
}

Response Api::Stats(const QueryParams& params) const {
  if (Status s = params.OnlyKeys({"since", "until"}); !s.ok()) return JsonError(400, s.message());
  audit::EventFilter f;
  if (Status s = ParseWindow(params, "1h", &f); !s.ok()) return JsonError(400, s.message());
  f.kind = "statement";
  std::map<std::string, uint64_t> by_action;
  std::map<std::string, uint64_t> by_principal;
  struct Fp {
    std::string sql;
    uint64_t count = 0;
  };
  std::unordered_map<std::string, Fp> by_fp;
  uint64_t total = 0;
  simdjson::dom::parser parser;
  bool truncated = false;
  Status s = Scan(
      *deps_.events, f, kMaxScan,
      [&](const audit::StoredEvent& e) {
        simdjson::dom::element doc;
        if (parser.parse(e.json).get(doc) != simdjson::SUCCESS) return true;
        ++total;
        std::string_view action;
        if (doc["decision"]["action"].get_string().get(action) != simdjson::SUCCESS)
          action = "none";
        ++by_action[std::string(action)];
        std::string_view subject;
        // The subject the relay verified (auth), else the certificate's (tls_subject in
        // events written before 2026-12), else the database user.
        if ((doc["principal"]["subject"].get_string().get(subject) != simdjson::SUCCESS ||
             subject.empty()) &&
            (doc["principal"]["cert_subject"].get_string().get(subject) != simdjson::SUCCESS ||
             subject.empty()) &&
            (doc["principal"]["tls_subject"].get_string().get(subject) != simdjson::SUCCESS ||
             subject.empty())) {
          if (doc["principal"]["db_user"].get_string().get(subject) != simdjson::SUCCESS)
            subject = "";
        }
        ++by_principal[std::string(subject)];
        std::string_view fp;
        if (doc["statement"]["fingerprint"].get_string().get(fp) == simdjson::SUCCESS &&
            !fp.empty()) {
          Fp& slot = by_fp[std::string(fp)];
          if (slot.count++ == 0) {
            std::string_view sql;
            if (doc["statement"]["sql"].get_string().get(sql) == simdjson::SUCCESS) slot.sql = sql;
          }
        }
        return true;
      },
      &truncated);
  if (!s.ok()) return JsonError(StatusHttp(s), s.message());
  std::vector<std::pair<std::string, Fp>> top(by_fp.begin(), by_fp.end());
  std::sort(top.begin(), top.end(), [](const auto& a, const auto& b) {
    return a.second.count != b.second.count ? a.second.count > b.second.count : a.first < b.first;
  });
  if (top.size() > 10) top.resize(10);
  rapidjson::StringBuffer buf;
  JsonWriter w(buf);
  w.StartObject();
  JsonKeyString(&w, "since", audit::FormatTimestamp(*f.since_us));
  JsonKeyString(&w, "until", audit::FormatTimestamp(f.until_us.value_or(audit::NowMicros())));
  w.Key("statements");
  w.Uint64(total);
  for (auto [key, counts] :
       {std::pair{"by_action", &by_action}, std::pair{"by_principal", &by_principal}}) {
    w.Key(key);
    w.StartObject();
    for (const auto& [k, n] : *counts) {
      JsonString(&w, k);
      w.Uint64(n);
    }
    w.EndObject();
  }
  w.Key("top_fingerprints");
  w.StartArray();
  for (const auto& [fp, v] : top) {
    w.StartObject();
    JsonKeyString(&w, "fingerprint", fp);
    JsonKeyString(&w, "sql", v.sql);
    w.Key("count");
    w.Uint64(v.count);
    w.EndObject();
  }
  w.EndArray();
  w.Key("truncated");
  w.Bool(truncated);
  w.EndObject();
  Response r;
  r.body.assign(buf.GetString(), buf.GetSize());
  return r;
}

}  // namespace dbw::api
