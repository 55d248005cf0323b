// Record, key, term and cursor encodings of the audit store (see docs/audit-store.md).
#include "userspace/audit/store_codec.h"

#include <simdjson.h>

#include <algorithm>
#include <cstring>

#include "userspace/audit/event_json.h"
#include "userspace/identity/process_info.h"

namespace dbw::audit::store {

const char* IndexCfName(Index index) {
  switch (index) {
    case Index::kTime:
      return "idx_time";
    case Index::kPrincipal:
      return "idx_principal";
    case Index::kDbUser:
      return "idx_db_user";
    case Index::kDatabase:
      return "idx_database";
    case Index::kTable:
      return "idx_table";
    case Index::kAction:
      return "idx_action";
    case Index::kKind:
      return "idx_kind";
    case Index::kSession:
      return "idx_session";
    case Index::kExe:
      return "idx_exe";
    case Index::kFingerprint:
      return "idx_fingerprint";
    case Index::kSource:
      return "idx_source";
  }
  return "idx_unknown";
}

void StoreBigEndian64(uint64_t v, char* out) {
  for (int i = 7; i >= 0; --i) {
    out[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
}

void PutBigEndian64(uint64_t v, std::string* out) {
  char b[8];
  StoreBigEndian64(v, b);
  out->append(b, 8);
}

uint64_t GetBigEndian64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

std::string SeqKey(uint64_t seq) {
  std::string k;
  PutBigEndian64(seq, &k);
  return k;
}

void StoreTimestamp(int64_t ts_us, char* out) {
  StoreBigEndian64(static_cast<uint64_t>(ts_us) ^ (uint64_t{1} << 63), out);
}
void PutTimestamp(int64_t ts_us, std::string* out) {
  char b[8];
  StoreTimestamp(ts_us, b);
  out->append(b, 8);
}
int64_t GetTimestamp(const char* p) {
  return static_cast<int64_t>(GetBigEndian64(p) ^ (uint64_t{1} << 63));
}

void EncodeRecord(int64_t ts_us, const Hash& prev, const Hash& hash, std::string_view canonical,
                  std::string* out) {
  out->reserve(out->size() + kRecordHeader + canonical.size());
  out->push_back(static_cast<char>(kRecordVersion));
  PutTimestamp(ts_us, out);
  out->append(reinterpret_cast<const char*>(prev.data()), prev.size());
  out->append(reinterpret_cast<const char*>(hash.data()), hash.size());
  out->append(canonical);
}

Status DecodeRecord(uint64_t seq, std::string_view bytes, Record* out) {
  if (bytes.size() < kRecordHeader + 2) return DataLoss("record too short");
  if (static_cast<uint8_t>(bytes[0]) != kRecordVersion)
    return DataLoss("unknown record version " + std::to_string(static_cast<uint8_t>(bytes[0])));
  out->seq = seq;
  out->ts_us = GetTimestamp(bytes.data() + 1);
  std::memcpy(out->prev_hash.data(), bytes.data() + 9, 32);
  std::memcpy(out->hash.data(), bytes.data() + 41, 32);
  out->canonical = bytes.substr(kRecordHeader);
  if (out->canonical.front() != '{' || out->canonical.back() != '}')
    return DataLoss("record body is not a JSON object");
  return Status::Ok();
}

bool Terms::Has(Index index, std::string_view value) const {
  for (const auto& [i, v] : values)
    if (i == index && v == value) return true;
  return false;
}

namespace {

using simdjson::dom::element;

std::string_view StringField(element obj, const char* key) {
  std::string_view v;
  if (obj[key].get_string().get(v) != simdjson::SUCCESS) return {};
  return v;
}

void Add(Terms* t, Index index, std::string_view value) {
  if (value.empty() || t->Has(index, value)) return;
  t->values.emplace_back(index, std::string(value));
}

void AddTables(Terms* t, element statement, const char* key) {
  simdjson::dom::array arr;
  if (statement[key].get_array().get(arr) != simdjson::SUCCESS) return;
  for (element e : arr) {
    std::string_view name;
    if (e.get_string().get(name) == simdjson::SUCCESS) Add(t, Index::kTable, name);
  }
}

}  // namespace

Status ExtractTerms(std::string_view canonical, Terms* out) {
  thread_local simdjson::dom::parser parser;
  element doc;
  if (parser.parse(canonical.data(), canonical.size(), true).get(doc) != simdjson::SUCCESS ||
      !doc.is_object())
    return DataLoss("record body is not valid JSON");
  out->values.clear();
  if (doc["seq"].get_uint64().get(out->seq) != simdjson::SUCCESS) return DataLoss("no seq");
  std::string_view ts;
  if (doc["ts"].get_string().get(ts) != simdjson::SUCCESS) return DataLoss("no ts");
  out->ts.assign(ts);
  Add(out, Index::kKind, StringField(doc, "kind"));
  Add(out, Index::kSource, StringField(doc, "source"));
  Add(out, Index::kSession, StringField(doc, "session_id"));
  element principal;
  if (doc["principal"].get(principal) == simdjson::SUCCESS && principal.is_object()) {
    std::string_view user = StringField(principal, "db_user");
    std::string_view subject = StringField(principal, "subject");  // verified by the relay
    if (subject.empty()) subject = StringField(principal, "cert_subject");
    if (subject.empty()) subject = StringField(principal, "tls_subject");  // before 2026-12
    Add(out, Index::kPrincipal, subject.empty() ? user : subject);
    Add(out, Index::kDbUser, user);
    Add(out, Index::kDatabase, StringField(principal, "database"));
  }
  element process;
  if (doc["process"].get(process) == simdjson::SUCCESS && process.is_object()) {
    Add(out, Index::kExe, StringField(process, "exe"));
    Add(out, Index::kExe, identity::UnitFromCgroup(StringField(process, "cgroup")));
  }
  element statement;
  if (doc["statement"].get(statement) == simdjson::SUCCESS && statement.is_object()) {
    Add(out, Index::kFingerprint, StringField(statement, "fingerprint"));
    AddTables(out, statement, "tables_read");
    AddTables(out, statement, "tables_written");
  }
  element decision;
  if (doc["decision"].get(decision) == simdjson::SUCCESS && decision.is_object())
    Add(out, Index::kAction, StringField(decision, "action"));
  return Status::Ok();
}

void EventTerms(const Event& e, std::vector<std::pair<Index, std::string>>* out) {
  // Mirrors AppendEventJson's choices (which fields are written, how text is sanitized) and
  // ExtractTerms' order and de-duplication; store_test checks the two agree.
  out->clear();
  auto add = [out](Index index, std::string value) {
    if (value.empty()) return;
    for (const auto& [i, v] : *out)
      if (i == index && v == value) return;
    out->emplace_back(index, std::move(value));
  };
  add(Index::kKind, EventKindName(e.kind));
  add(Index::kSource, e.source);
  if (e.session) {
    const SessionInfo& si = *e.session;
    add(Index::kSession, JsonText(si.session_id));
    const Principal& p = si.principal;
    if (!p.db_user.empty() || !p.client_addr.empty()) {
      std::string user = JsonText(p.db_user);
      add(Index::kPrincipal, !p.subject.empty()        ? JsonText(p.subject)
                             : !p.cert_subject.empty() ? JsonText(p.cert_subject)
                                                       : user);
      add(Index::kDbUser, std::move(user));
      add(Index::kDatabase, JsonText(p.database));
    }
    if (si.process) {
      add(Index::kExe, JsonText(si.process->exe));
      add(Index::kExe, identity::UnitFromCgroup(JsonText(si.process->cgroup)));
    }
  }
  if (e.statement && e.statement->facts) {
    const sql::QueryFacts& f = *e.statement->facts;
    if (!f.statements.empty())
      add(Index::kFingerprint, JsonText(f.statements.front().fingerprint_hex));
    for (const auto& s : f.statements)
      for (const auto& t : s.tables_read) add(Index::kTable, JsonText(t.Qualified()));
    for (const auto& s : f.statements)
      for (const auto& t : s.tables_written) add(Index::kTable, JsonText(t.Qualified()));
  }
  if (e.decision && e.decision->decision)
    add(Index::kAction, std::string(policy::ActionName(e.decision->decision->action)));
}

void EncodeBlock(std::span<const Posting> postings, std::string* out) {
  size_t at = out->size();
  out->resize(at + postings.size() * kPostingSize);
  char* p = out->data() + at;
  for (const Posting& posting : postings) {
    StoreTimestamp(posting.ts_us, p);
    StoreBigEndian64(posting.seq, p + 8);
    p += kPostingSize;
  }
}

Status DecodeBlock(std::string_view bytes, std::vector<Posting>* out) {
  if (bytes.empty() || bytes.size() % kPostingSize != 0) return DataLoss("malformed posting block");
  size_t first = out->size();
  for (size_t off = 0; off < bytes.size(); off += kPostingSize) {
    Posting p{GetTimestamp(bytes.data() + off), GetBigEndian64(bytes.data() + off + 8)};
    if (out->size() > first && !(out->back() < p)) return DataLoss("posting block out of order");
    out->push_back(p);
  }
  return Status::Ok();
}

std::string IndexKey(Index index, std::string_view value, int64_t ts_us, uint64_t seq) {
  std::string k;
  k.reserve(value.size() + 17);
  if (index != Index::kTime) {
    k.append(value);
    k.push_back('\0');
  }
  PutTimestamp(ts_us, &k);
  PutBigEndian64(seq, &k);
  return k;
}

bool ParseIndexKeyTail(std::string_view key, int64_t* ts_us, uint64_t* seq) {
  if (key.size() < 16) return false;
  *ts_us = GetTimestamp(key.data() + key.size() - 16);
  *seq = GetBigEndian64(key.data() + key.size() - 8);
  return true;
}

std::string Hex(const uint8_t* data, size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(n * 2, '0');
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kDigits[data[i] >> 4];
    out[2 * i + 1] = kDigits[data[i] & 0xf];
  }
  return out;
}

bool ParseHex(std::string_view hex, std::string* out) {
  if (hex.size() % 2 != 0) return false;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  out->clear();
  for (size_t i = 0; i < hex.size(); i += 2) {
    int hi = nibble(hex[i]), lo = nibble(hex[i + 1]);
    if (hi < 0 || lo < 0) return false;
    out->push_back(static_cast<char>(hi << 4 | lo));
  }
  return true;
}

std::string ServedJson(const Record& r) {
  std::string out(r.canonical.substr(0, r.canonical.size() - 1));
  out += ",\"prev_hash\":\"";
  out += Hex(r.prev_hash.data(), r.prev_hash.size());
  out += "\",\"hash\":\"";
  out += Hex(r.hash.data(), r.hash.size());
  out += "\"}";
  return out;
}

uint64_t FilterHash(const EventFilter& f) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a over every field, each terminated
  auto mix = [&h](std::string_view s) {
    for (char c : s) h = (h ^ static_cast<uint8_t>(c)) * 1099511628211ull;
    h = (h ^ 0xff) * 1099511628211ull;
  };
  mix(f.since_us ? std::to_string(*f.since_us) : "-");
  mix(f.until_us ? std::to_string(*f.until_us) : "-");
  for (const auto* s : {&f.principal, &f.db_user, &f.database, &f.table, &f.action, &f.kind,
                        &f.session, &f.exe, &f.fingerprint, &f.source})
    mix(*s);
  return h;
}

constexpr uint8_t kCursorVersion = 1;

std::string EncodeCursor(uint64_t filter_hash, int64_t ts_us, uint64_t seq) {
  std::string raw(1, static_cast<char>(kCursorVersion));
  PutBigEndian64(filter_hash, &raw);
  PutTimestamp(ts_us, &raw);
  PutBigEndian64(seq, &raw);
  return Hex(reinterpret_cast<const uint8_t*>(raw.data()), raw.size());
}

Status DecodeCursor(std::string_view cursor, uint64_t filter_hash, int64_t* ts_us, uint64_t* seq) {
  std::string raw;
  if (!ParseHex(cursor, &raw) || raw.size() != 25 || static_cast<uint8_t>(raw[0]) != kCursorVersion)
    return InvalidArgument("malformed cursor");
  if (GetBigEndian64(raw.data() + 1) != filter_hash)
    return InvalidArgument("cursor belongs to a different filter");
  *ts_us = GetTimestamp(raw.data() + 9);
  *seq = GetBigEndian64(raw.data() + 17);
  return Status::Ok();
}

std::vector<std::pair<Index, std::string>> FilterTerms(const EventFilter& f) {
  // Most selective first: one session or statement shape is rarer than one user or action.
  std::vector<std::pair<Index, std::string>> out;
  auto add = [&out](Index i, const std::string& v) {
    if (!v.empty()) out.emplace_back(i, v);
  };
  add(Index::kSession, f.session);
  add(Index::kFingerprint, f.fingerprint);
  add(Index::kTable, f.table);
  add(Index::kExe, f.exe);
  add(Index::kPrincipal, f.principal);
  add(Index::kDbUser, f.db_user);
  add(Index::kDatabase, f.database);
  add(Index::kAction, f.action);
  add(Index::kKind, f.kind);
  add(Index::kSource, f.source);
  return out;
}

}  // namespace dbw::audit::store
