// AuditStore: round trip of every event kind, every index against a brute-force scan,
// pagination, chain verification against tampering, restart, retention, read-only open.
#include "userspace/audit/store.h"

#include <simdjson.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include "userspace/audit/event_json.h"
#include "userspace/audit/intent_log.h"
#include "userspace/audit/store_codec.h"
#include "userspace/audit/store_signing.h"
#include "userspace/identity/process_info.h"

namespace dbw::audit {
namespace {

namespace fs = std::filesystem;

std::string TempDir(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("dbw-store-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(p);
  return p.string();
}

StoreOptions Options(const std::string& dir) {
  StoreOptions o;
  o.dir = dir;
  o.durability = Durability::kAsync;
  o.queue_capacity = 1 << 18;
  o.checkpoint_every_events = 1000;
  o.retention = std::chrono::seconds(0);
  return o;
}

// What the test knows of an event, independently of the store's own term extraction.
struct Truth {
  uint64_t seq = 0;
  int64_t ts_us = 0;
  std::string principal, db_user, database, action, kind, session, exe, unit, fingerprint, source;
  std::set<std::string> tables;
};

const std::vector<std::string> kUsers = {"alice", "bob", "carol", "dave", "erin", "app"};
const std::vector<std::string> kDbs = {"orders", "billing", "hr"};
const std::vector<std::string> kTables = {"public.t1", "public.t2", "s.t3", "t4", "public.t5"};
const std::vector<std::string> kExes = {"/usr/bin/psql", "/usr/bin/python3", "/opt/app/bin/app"};
const std::vector<std::string> kUnits = {"/system.slice/cron.service",
                                         "/user.slice/session-1.scope", ""};

Event MakeEvent(std::mt19937_64& rng, int64_t base_ts, Truth* t) {
  Event e;
  auto pick = [&rng](const std::vector<std::string>& v) { return v[rng() % v.size()]; };
  e.ts_us = base_ts + static_cast<int64_t>(rng() % 3600'000'000ull);  // not monotonic in seq
  int k = static_cast<int>(rng() % 10);
  e.kind = k < 6   ? EventKind::kStatement
           : k < 7 ? EventKind::kSessionStart
           : k < 8 ? EventKind::kSessionEnd
           : k < 9 ? EventKind::kDecision
                   : EventKind::kAgentStart;
  t->ts_us = e.ts_us;
  t->kind = EventKindName(e.kind);
  if (e.kind == EventKind::kAgentStart) {
    e.source = "agent";
    e.detail = "started";
    t->source = "agent";
    return e;
  }
  e.source = rng() % 4 == 0 ? "tap" : "relay";
  t->source = e.source;
  auto info = std::make_shared<SessionInfo>();
  info->session_id = "s" + std::to_string(rng() % 500);
  info->target = "pg";
  info->env = "prod";
  info->principal.db_user = pick(kUsers);
  info->principal.database = pick(kDbs);
  info->principal.client_addr = "127.0.0.1:5000";
  if (rng() % 3 == 0) info->principal.cert_subject = "CN=" + pick(kUsers);
  identity::ProcessInfo proc;
  proc.pid = 42;
  proc.exe = pick(kExes);
  proc.cgroup = pick(kUnits);
  info->process = proc;
  e.session = info;
  t->session = info->session_id;
  t->db_user = info->principal.db_user;
  t->database = info->principal.database;
  t->principal = info->principal.cert_subject.empty() ? t->db_user : info->principal.cert_subject;
  t->exe = proc.exe;
  t->unit = identity::UnitFromCgroup(proc.cgroup);
  if (e.kind == EventKind::kStatement || e.kind == EventKind::kDecision) {
    auto facts = std::make_shared<sql::QueryFacts>();
    sql::StatementFacts st;
    st.command = rng() % 2 ? sql::Command::kSelect : sql::Command::kUpdate;
    st.risks = st.command == sql::Command::kUpdate ? uint32_t{sql::kRiskWrite} : 0u;
    st.normalized = "SELECT $1";
    st.fingerprint_hex = "fp" + std::to_string(rng() % 50);
    auto table = [&](const std::string& q) {
      auto dot = q.find('.');
      return dot == std::string::npos ? sql::TableRef{"", q}
                                      : sql::TableRef{q.substr(0, dot), q.substr(dot + 1)};
    };
    st.tables_read.push_back(table(pick(kTables)));
    if (rng() % 2) st.tables_written.push_back(table(pick(kTables)));
    for (const auto& r : st.tables_read) t->tables.insert(r.Qualified());
    for (const auto& r : st.tables_written) t->tables.insert(r.Qualified());
    t->fingerprint = st.fingerprint_hex;
    facts->statements.push_back(st);
    e.statement = StatementInfo{facts, "simple", ""};
    auto d = std::make_shared<policy::Decision>();
    d->action = static_cast<policy::Action>(rng() % 4);
    d->rules = {"r1"};
    e.decision = DecisionInfo{d, false};
    t->action = std::string(policy::ActionName(d->action));
    if (e.kind == EventKind::kStatement) e.result = ResultInfo{"SELECT 1", "", "", 10, 1, 20};
  }
  return e;
}

bool Matches(const Truth& t, const EventFilter& f) {
  if (f.since_us && t.ts_us < *f.since_us) return false;
  if (f.until_us && t.ts_us >= *f.until_us) return false;
  auto eq = [](const std::string& want, const std::string& have) {
    return want.empty() || want == have;
  };
  return eq(f.principal, t.principal) && eq(f.db_user, t.db_user) && eq(f.database, t.database) &&
         eq(f.action, t.action) && eq(f.kind, t.kind) && eq(f.session, t.session) &&
         eq(f.fingerprint, t.fingerprint) && eq(f.source, t.source) &&
         (f.exe.empty() || f.exe == t.exe || f.exe == t.unit) &&
         (f.table.empty() || t.tables.count(f.table) > 0);
}

std::vector<uint64_t> QueryAll(AuditStore& store, const EventFilter& f, size_t page) {
  std::vector<uint64_t> seqs;
  std::string cursor;
  for (int guard = 0; guard < 100000; ++guard) {
    auto r = store.Query(f, page, cursor);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok()) break;
    for (const auto& e : r->events) seqs.push_back(e.seq);
    if (r->next_cursor.empty()) break;
    EXPECT_EQ(r->events.size(), page);
    cursor = r->next_cursor;
  }
  return seqs;
}

std::vector<uint64_t> BruteForce(const std::vector<Truth>& all, const EventFilter& f) {
  std::vector<const Truth*> hits;
  for (const auto& t : all)
    if (Matches(t, f)) hits.push_back(&t);
  std::sort(hits.begin(), hits.end(), [](const Truth* a, const Truth* b) {
    return a->ts_us != b->ts_us ? a->ts_us > b->ts_us : a->seq > b->seq;
  });
  std::vector<uint64_t> out;
  for (const Truth* t : hits) out.push_back(t->seq);
  return out;
}

void Commit(AuditStore& store, Event e) {
  store.Submit(std::move(e));
}

TEST(AuditStoreTest, EveryIndexAnswersExactlyWithPagination) {
  std::string dir = TempDir("index");
  auto store = AuditStore::Open(Options(dir));
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  std::mt19937_64 rng(1234);
  const int64_t base = 1'700'000'000'000'000;
  std::vector<Truth> truth(100000);
  for (size_t i = 0; i < truth.size(); ++i) {
    truth[i].seq = i + 1;
    Commit(**store, MakeEvent(rng, base, &truth[i]));
  }
  (*store)->Flush();
  ASSERT_EQ((*store)->Stats().head_seq, truth.size());
  ASSERT_EQ((*store)->Stats().dropped, 0u);

  std::vector<EventFilter> filters;
  auto add = [&filters](auto setter) {
    EventFilter f;
    setter(f);
    filters.push_back(f);
  };
  add([](EventFilter& f) { f.principal = "CN=bob"; });
  add([](EventFilter& f) { f.principal = "alice"; });
  add([](EventFilter& f) { f.db_user = "carol"; });
  add([](EventFilter& f) { f.database = "hr"; });
  add([](EventFilter& f) { f.table = "public.t2"; });
  add([](EventFilter& f) { f.table = "t4"; });
  add([](EventFilter& f) { f.action = "deny"; });
  add([](EventFilter& f) { f.kind = "session_start"; });
  add([](EventFilter& f) { f.kind = "agent_start"; });
  add([](EventFilter& f) { f.session = "s17"; });
  add([](EventFilter& f) { f.exe = "/usr/bin/psql"; });
  add([](EventFilter& f) { f.exe = "cron.service"; });
  add([](EventFilter& f) { f.fingerprint = "fp7"; });
  add([](EventFilter& f) { f.source = "tap"; });
  add([base](EventFilter& f) {
    f.since_us = base + 600'000'000;
    f.until_us = base + 900'000'000;
  });
  add([base](EventFilter& f) {
    f.db_user = "bob";
    f.action = "allow";
    f.since_us = base + 1'000'000'000;
    f.until_us = base + 2'000'000'000;
  });
  add([](EventFilter& f) {
    f.table = "s.t3";
    f.exe = "session-1.scope";
    f.source = "relay";
  });
  add([](EventFilter& f) { f.db_user = "nobody"; });
  for (const auto& f : filters) {
    auto want = BruteForce(truth, f);
    auto got = QueryAll(**store, f, 997);
    ASSERT_EQ(got.size(), want.size()) << "filter hash " << store::FilterHash(f);
    EXPECT_TRUE(got == want);
    std::set<uint64_t> unique(got.begin(), got.end());
    EXPECT_EQ(unique.size(), got.size());  // no duplicates across pages
  }
  // A cursor is bound to its filter.
  EventFilter a, b;
  a.db_user = "alice";
  b.db_user = "bob";
  auto page = (*store)->Query(a, 10, "");
  ASSERT_TRUE(page.ok());
  ASSERT_FALSE(page->next_cursor.empty());
  EXPECT_FALSE((*store)->Query(b, 10, page->next_cursor).ok());
  EXPECT_FALSE((*store)->Query(a, 10, "zz").ok());

  auto report = (*store)->Verify(std::nullopt, std::nullopt);
  EXPECT_TRUE(report.ok) << report.problem;
  EXPECT_EQ(report.checked, truth.size());
  EXPECT_GE(report.checkpoints_verified, 1u);  // one per batch that crossed N events
  store->reset();
  fs::remove_all(dir);
}

// One event of every kind, with every part set.
std::vector<Event> EveryKind() {
  auto info = std::make_shared<SessionInfo>();
  info->session_id = "0123456789abcdef";
  info->target = "pg";
  info->env = "prod";
  info->principal = Principal{"human", "alice", "orders", "psql", "127.0.0.1:5555", "CN=alice"};
  info->process = identity::ProcessInfo{.pid = 7,
                                        .uid = 1000,
                                        .comm = "psql",
                                        .exe = "/usr/bin/psql",
                                        .cgroup = "/system.slice/x.service"};
  auto facts = std::make_shared<sql::QueryFacts>();
  sql::StatementFacts st;
  st.command = sql::Command::kDelete;
  st.risks = sql::kRiskWrite | sql::kRiskNoWhere;
  st.normalized = "DELETE FROM t WHERE a = $1";
  st.fingerprint_hex = "abcd";
  st.tables_written.push_back({"public", "t"});
  facts->statements.push_back(st);
  auto decision = std::make_shared<policy::Decision>();
  decision->action = policy::Action::kDeny;
  decision->rules = {"no-delete"};
  decision->reason = "because";
  std::vector<Event> out;
  for (int k = 0; k <= static_cast<int>(EventKind::kAuditTamper); ++k) {
    Event e;
    e.kind = static_cast<EventKind>(k);
    e.ts_us = 1'700'000'000'000'000 + k;
    e.source = k <= 1 || k == static_cast<int>(EventKind::kPolicyLoad) ? "agent"
               : k >= static_cast<int>(EventKind::kBypass)             ? "tap"
                                                                       : "relay";
    if (e.kind == EventKind::kApproval) {
      e.approval = ApprovalInfo{.id = "ap-1",
                                .step = "approved",
                                .mode = "hold",
                                .actor = "oncall",
                                .comment = "ok \"quoted\"",
                                .approvals = 2,
                                .required = 2,
                                .rules = {"prod-destructive-human"},
                                .reason = "destructive",
                                .sql = "DROP TABLE t",
                                .fingerprint = "abcd"};
    }
    if (e.kind == EventKind::kStatement)
      e.masking = MaskingInfo{{{"public.t.email", 3}}, {{"email", 4}, {"payment_card", 1}}, 2};
    if (std::string(e.source) != "agent") e.session = info;
    e.statement = StatementInfo{facts, "extended", "stmt1"};
    e.decision = DecisionInfo{decision, true};
    e.result = ResultInfo{"DELETE 3", "", "", 55, 3, 99};
    e.error_sqlstate = "08P01";
    e.error_message = "bad \xff bytes";
    e.detail = "detail";
    e.count = 5;
    out.push_back(e);
  }
  return out;
}

TEST(AuditStoreTest, RoundTripsEveryKindAndContinuesAfterRestart) {
  std::string dir = TempDir("roundtrip");
  std::vector<std::string> expected;
  uint64_t seq = 0;
  // Round 0 waits for the writer, which renders each record; round 1 writes each to the
  // thread's intent log, rendered by the producer: the records must be the same.
  for (int round = 0; round < 2; ++round) {
    StoreOptions o = Options(dir);
    o.intent_log_bytes = round == 0 ? 0 : 1 << 20;
    auto store = AuditStore::Open(o);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    for (Event e : EveryKind()) {
      e.seq = ++seq;
      expected.emplace_back();
      AppendEventJson(e, &expected.back());
      uint64_t got = 0;
      bool called = false;
      Status status;
      (*store)->SubmitAndWait(e, [&](const Status& s, uint64_t n) {
        status = s;
        got = n;
        called = true;
      });
      if (round == 1) {
        EXPECT_TRUE(called) << "an intent-logged event is acknowledged at once";
      }
      (*store)->Flush();
      ASSERT_TRUE(status.ok()) << status.ToString();
      EXPECT_EQ(got, round == 0 ? seq : 0);
    }
  }
  auto store = AuditStore::Open(Options(dir));
  ASSERT_TRUE(store.ok());
  auto events = (*store)->ReadAfter(0, 1000);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), expected.size());
  simdjson::dom::parser parser;
  std::string prev_hash(64, '0');
  for (size_t i = 0; i < expected.size(); ++i) {
    const std::string& served = (*events)[i].json;
    EXPECT_EQ((*events)[i].seq, i + 1);
    // The served object is the canonical one plus the two hashes.
    EXPECT_EQ(served.substr(0, expected[i].size() - 1),
              expected[i].substr(0, expected[i].size() - 1));
    simdjson::dom::element doc;
    ASSERT_EQ(parser.parse(served).get(doc), simdjson::SUCCESS) << served;
    EXPECT_EQ(std::string(doc["prev_hash"].get_string().value()), prev_hash);
    prev_hash = std::string(doc["hash"].get_string().value());
  }
  auto report = (*store)->Verify(std::nullopt, std::nullopt);
  EXPECT_TRUE(report.ok) << report.problem;
  EXPECT_EQ(report.checked, expected.size());
  EXPECT_GE(report.checkpoints_verified, 2u);  // one per clean shutdown
  EXPECT_NE((*store)->PublicKeyPem().find("BEGIN PUBLIC KEY"), std::string::npos);
  EXPECT_EQ(fs::status(dir + "/signing-key.pem").permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  store->reset();
  fs::remove_all(dir);
}

TEST(AuditStoreTest, NeedsSyncForChangesOnly) {
  Event e;
  EXPECT_FALSE(NeedsSync(e));
  auto facts = std::make_shared<sql::QueryFacts>();
  sql::StatementFacts st;
  st.command = sql::Command::kSelect;
  facts->statements.push_back(st);
  e.statement = StatementInfo{facts, "simple", ""};
  EXPECT_FALSE(NeedsSync(e));
  facts->statements[0].risks = sql::kRiskSchemaChange;
  EXPECT_TRUE(NeedsSync(e));
  facts->statements[0].risks = 0;
  facts->statements[0].command = sql::Command::kInsert;
  EXPECT_TRUE(NeedsSync(e));
}

// Writes `n` events, closes, and returns the directory.
void Fill(const std::string& dir, int n, StoreOptions o) {
  auto store = AuditStore::Open(o);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  std::mt19937_64 rng(7);
  for (int i = 0; i < n; ++i) {
    Truth t;
    (*store)->Submit(MakeEvent(rng, 1'700'000'000'000'000, &t));
  }
  (*store)->Flush();
}

struct RawDb {
  explicit RawDb(const std::string& dir) {
    std::vector<std::string> names;
    EXPECT_TRUE(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), dir, &names).ok());
    std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
    for (const auto& n : names) cfs.emplace_back(n, rocksdb::ColumnFamilyOptions());
    rocksdb::DB* raw = nullptr;
    EXPECT_TRUE(rocksdb::DB::Open(rocksdb::DBOptions(), dir, cfs, &handles, &raw).ok());
    db.reset(raw);
    for (size_t i = 0; i < names.size(); ++i) by_name[names[i]] = handles[i];
  }
  ~RawDb() {
    for (auto* h : handles) db->DestroyColumnFamilyHandle(h).PermitUncheckedError();
  }
  std::string Get(uint64_t seq) {
    std::string v;
    EXPECT_TRUE(db->Get({}, by_name["events"], store::SeqKey(seq), &v).ok());
    return v;
  }
  void Put(uint64_t seq, const std::string& v) {
    EXPECT_TRUE(db->Put({}, by_name["events"], store::SeqKey(seq), v).ok());
  }
  void Delete(uint64_t seq) {
    EXPECT_TRUE(db->Delete({}, by_name["events"], store::SeqKey(seq)).ok());
  }
  std::unique_ptr<rocksdb::DB> db;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  std::map<std::string, rocksdb::ColumnFamilyHandle*> by_name;
};

// Edits event `first` and re-hashes it and every later one through `last`, as an attacker
// without the signing key would: the hashes link up again.
void EditAndRecomputeChain(RawDb* raw, uint64_t first, uint64_t last) {
  store::Hash prev{};
  std::memcpy(prev.data(), raw->Get(first - 1).data() + 41, 32);
  for (uint64_t s = first; s <= last; ++s) {
    const std::string v = raw->Get(s);  // rec's views point into it
    store::Record rec;
    ASSERT_TRUE(store::DecodeRecord(s, v, &rec).ok());
    std::string body(rec.canonical);
    if (s == first) body.replace(body.find("\"kind\""), 6, "\"kind\" ");
    store::Sha256 sha;
    store::Hash h;
    ASSERT_TRUE(sha.Chain(prev, body, &h).ok());
    std::string out;
    store::EncodeRecord(rec.ts_us, prev, h, body, &out);
    raw->Put(s, out);
    prev = h;
  }
}

VerifyReport VerifyDir(const std::string& dir) {
  auto store = AuditStore::OpenReadOnly(dir);
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  return (*store)->Verify(std::nullopt, std::nullopt);
}

class TamperTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TempDir("tamper");
    StoreOptions o = Options(dir_);
    o.checkpoint_every_events = 50;
    Fill(dir_, 500, o);
    ASSERT_TRUE(VerifyDir(dir_).ok);
  }
  void TearDown() override { fs::remove_all(dir_); }
  void ExpectBrokenAt(uint64_t seq) {
    VerifyReport r = VerifyDir(dir_);
    EXPECT_FALSE(r.ok);
    ASSERT_TRUE(r.first_bad_seq.has_value());
    EXPECT_EQ(*r.first_bad_seq, seq) << r.problem;
  }
  std::string dir_;
};

TEST_F(TamperTest, DetectsEditedEvent) {
  {
    RawDb raw(dir_);
    std::string v = raw.Get(123);
    auto pos = v.find("\"source\":\"");
    ASSERT_NE(pos, std::string::npos);
    v[pos + 10] = v[pos + 10] == 'r' ? 't' : 'r';
    raw.Put(123, v);
  }
  ExpectBrokenAt(123);
}

TEST_F(TamperTest, DetectsEditWithRecomputedChainByCheckpoint) {
  {
    RawDb raw(dir_);
    EditAndRecomputeChain(&raw, 300, 500);
  }
  // The hashes link up again; the first signed checkpoint at or after 300 does not.
  VerifyReport r = VerifyDir(dir_);
  EXPECT_FALSE(r.ok);
  EXPECT_GE(r.first_bad_seq.value_or(0), 300u);
  EXPECT_NE(r.problem.find("checkpoint"), std::string::npos) << r.problem;
}

TEST_F(TamperTest, DetectsDeletedEvent) {
  { RawDb(dir_).Delete(200); }
  ExpectBrokenAt(200);
}

TEST_F(TamperTest, DetectsReorderedPair) {
  {
    RawDb raw(dir_);
    std::string a = raw.Get(50), b = raw.Get(51);
    raw.Put(50, b);
    raw.Put(51, a);
  }
  ExpectBrokenAt(50);
}

TEST_F(TamperTest, DetectsTruncatedTail) {
  {
    RawDb raw(dir_);
    for (uint64_t s = 481; s <= 500; ++s) raw.Delete(s);
  }
  ExpectBrokenAt(481);
}

// Rollbacks that leave a self-consistent store: only published anchors (an outside copy of the
// anchor file) reveal them, and the store's own check at Open against its anchor file.
class AnchorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TempDir("anchors");
    anchor_file_ = dir_ + "-anchors.jsonl";
    fs::remove(anchor_file_);
    options_ = Options(dir_);
    options_.checkpoint_every_events = 50;
    options_.anchor_file = anchor_file_;
    Fill(dir_, 500, options_);
    anchors_ = ReadAnchors();
    ASSERT_FALSE(anchors_.empty());
    EXPECT_EQ(anchors_.back().seq, 500u);  // the head, published at close
  }
  void TearDown() override {
    fs::remove_all(dir_);
    fs::remove(anchor_file_);
  }
  std::vector<Anchor> ReadAnchors() {
    std::ifstream in(anchor_file_);
    std::stringstream text;
    text << in.rdbuf();
    auto parsed = ParseAnchors(text.str(), anchor_file_);
    EXPECT_TRUE(parsed.ok()) << parsed.status().ToString();
    return parsed.ok() ? *parsed : std::vector<Anchor>{};
  }
  VerifyReport VerifyWithAnchors() {
    auto store = AuditStore::OpenReadOnly(dir_);
    EXPECT_TRUE(store.ok());
    return (*store)->Verify(std::nullopt, std::nullopt, &anchors_);
  }
  // What an attacker with write access to the store (not to the anchors' outside copy) does to
  // hide a rollback: the head and the checkpoints made to agree with the shortened or rewritten
  // chain.
  void RewriteHeadAndCheckpoints(RawDb* raw, uint64_t head, uint64_t drop_checkpoints_from) {
    store::Record rec;
    std::string v = raw->Get(head);
    ASSERT_TRUE(store::DecodeRecord(head, v, &rec).ok());
    std::string value = store::SeqKey(head);
    value.append(reinterpret_cast<const char*>(rec.hash.data()), rec.hash.size());
    ASSERT_TRUE(raw->db->Put({}, raw->by_name["default"], "head", value).ok());
    ASSERT_TRUE(raw->db
                    ->DeleteRange({}, raw->by_name["checkpoints"],
                                  store::SeqKey(drop_checkpoints_from), store::SeqKey(~0ull))
                    .ok());
  }
  std::string dir_, anchor_file_;
  StoreOptions options_;
  std::vector<Anchor> anchors_;
};

TEST_F(AnchorTest, AnUntouchedStoreMatchesEveryAnchorAndOpensReady) {
  VerifyReport r = VerifyWithAnchors();
  EXPECT_TRUE(r.ok) << r.problem;
  EXPECT_EQ(r.anchors_checked, anchors_.size());
  auto store = AuditStore::Open(options_);
  ASSERT_TRUE(store.ok());
  EXPECT_TRUE((*store)->Integrity().ok()) << (*store)->Integrity().message();
}

TEST_F(AnchorTest, DetectsATailRolledBackWithItsHeadRewritten) {
  {
    RawDb raw(dir_);
    for (uint64_t s = 451; s <= 500; ++s) raw.Delete(s);
    RewriteHeadAndCheckpoints(&raw, 450, 451);
  }
  EXPECT_TRUE(VerifyDir(dir_).ok);  // without an outside witness the store looks whole
  VerifyReport r = VerifyWithAnchors();
  EXPECT_FALSE(r.ok);
  EXPECT_GT(r.first_bad_seq.value_or(0), 450u);  // the first anchor past the new end
  EXPECT_NE(r.problem.find("rolled back"), std::string::npos) << r.problem;
  // The agent's own check at start: not ready, and an audit_tamper event recorded.
  auto store = AuditStore::Open(options_);
  ASSERT_TRUE(store.ok());
  Status integrity = (*store)->Integrity();
  EXPECT_FALSE(integrity.ok());
  EXPECT_NE(integrity.message().find("rolled back"), std::string::npos) << integrity.message();
  (*store)->Flush();
  auto found = (*store)->Query(EventFilter{.kind = "audit_tamper"}, 10, "");
  ASSERT_TRUE(found.ok());
  ASSERT_EQ(found->events.size(), 1u);
  EXPECT_NE(found->events[0].json.find("rolled back"), std::string::npos);
}

TEST_F(AnchorTest, DetectsAnEditWithTheChainRecomputedAndCheckpointsDeleted) {
  {
    RawDb raw(dir_);
    EditAndRecomputeChain(&raw, 300, 500);
    RewriteHeadAndCheckpoints(&raw, 500, 300);
  }
  EXPECT_TRUE(VerifyDir(dir_).ok);
  VerifyReport r = VerifyWithAnchors();
  EXPECT_FALSE(r.ok);
  EXPECT_GE(r.first_bad_seq.value_or(0), 300u);  // the first anchor after the edit
  EXPECT_NE(r.problem.find("rewritten"), std::string::npos) << r.problem;
  auto store = AuditStore::Open(options_);
  ASSERT_TRUE(store.ok());
  EXPECT_FALSE((*store)->Integrity().ok());
}

TEST_F(AnchorTest, AForgedAnchorLineFailsItsSignature) {
  Anchor forged = anchors_.back();
  forged.seq = 9999;  // vouching for events that never existed: the signature says otherwise
  anchors_.push_back(forged);
  VerifyReport r = VerifyWithAnchors();
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.problem.find("signature does not verify"), std::string::npos) << r.problem;
}

// Deleting the oldest events and moving a signed checkpoint into the retention anchor makes the
// store look as if retention had cut them. Anchors below that point are only accepted when a
// published retention line covers it.
TEST(AnchorRetentionTest, AFakeRetentionCutIsCaught) {
  const std::string dir = TempDir("fakecut");
  const std::string anchor_file = dir + "-anchors.jsonl";
  fs::remove(anchor_file);
  StoreOptions o = Options(dir);
  o.checkpoint_every_events = 50;
  o.anchor_file = anchor_file;
  {
    auto store = AuditStore::Open(o);
    ASSERT_TRUE(store.ok());
    std::mt19937_64 rng(3);
    for (int round = 0; round < 4; ++round) {  // a checkpoint (and anchor) per round
      for (int i = 0; i < 50; ++i) {
        Truth t;
        (*store)->Submit(MakeEvent(rng, 1'700'000'000'000'000, &t));
      }
      (*store)->Flush();
    }
  }
  std::ifstream in(anchor_file);
  std::stringstream text;
  text << in.rdbuf();
  auto anchors = ParseAnchors(text.str(), anchor_file);
  ASSERT_TRUE(anchors.ok()) << anchors.status().ToString();
  ASSERT_GE(anchors->size(), 3u);
  const uint64_t cut = (*anchors)[1].seq;  // a checkpoint with an anchor below it
  {
    RawDb raw(dir);
    std::string cp;
    ASSERT_TRUE(raw.db->Get({}, raw.by_name["checkpoints"], store::SeqKey(cut), &cp).ok());
    for (uint64_t s = 1; s <= cut; ++s) raw.Delete(s);
    ASSERT_TRUE(raw.db->Put({}, raw.by_name["default"], "anchor", cp).ok());
    ASSERT_TRUE(
        raw.db
            ->DeleteRange({}, raw.by_name["checkpoints"], store::SeqKey(0), store::SeqKey(cut + 1))
            .ok());
  }
  EXPECT_TRUE(VerifyDir(dir).ok);  // self-consistent without a witness
  auto store = AuditStore::OpenReadOnly(dir);
  ASSERT_TRUE(store.ok());
  VerifyReport r = (*store)->Verify(std::nullopt, std::nullopt, &*anchors);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.first_bad_seq.value_or(0), (*anchors)[0].seq);
  EXPECT_NE(r.problem.find("no published retention cut"), std::string::npos) << r.problem;
  // A published retention line for the cut is what a real retention pass leaves behind.
  Anchor line = (*anchors)[1];
  line.retention = true;
  std::vector<Anchor> with_cut = *anchors;
  with_cut.push_back(line);
  VerifyReport ok = (*store)->Verify(std::nullopt, std::nullopt, &with_cut);
  EXPECT_TRUE(ok.ok) << ok.problem;
  EXPECT_GE(ok.anchors_before_retention, 1u);
  store->reset();
  fs::remove_all(dir);
  fs::remove(anchor_file);
}

// A line cut short (a crash mid-append) does not swallow the next anchor.
TEST(AnchorRetentionTest, ATornLastLineIsClosedBeforeTheNextAnchor) {
  const std::string dir = TempDir("torn");
  const std::string anchor_file = dir + "-anchors.jsonl";
  { std::ofstream(anchor_file) << "{\"type\":\"dbwarden-audit-anch"; }
  StoreOptions o = Options(dir);
  o.anchor_file = anchor_file;
  {
    auto store = AuditStore::Open(o);
    ASSERT_TRUE(store.ok());
    Event e;
    e.kind = EventKind::kAgentStart;
    (*store)->Submit(e);
    (*store)->Flush();
  }  // the head is published at close
  std::ifstream in(anchor_file);
  std::stringstream text;
  text << in.rdbuf();
  // Line 1 is the torn one (bad JSON); the anchor after it is intact on line 2.
  auto all = ParseAnchors(text.str(), anchor_file);
  ASSERT_FALSE(all.ok());
  EXPECT_NE(all.status().message().find(":1:"), std::string::npos) << all.status().message();
  std::string rest = text.str().substr(text.str().find('\n') + 1);
  auto after = ParseAnchors(rest, anchor_file);
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  ASSERT_EQ(after->size(), 1u);
  fs::remove_all(dir);
  fs::remove(anchor_file);
}

TEST(AnchorFormatTest, RoundTripsAndNamesTheBadLine) {
  Anchor a;
  a.seq = 42;
  a.hash.assign(32, '\x11');
  a.ts_us = 1'700'000'000'123'456;
  a.public_key.assign(32, '\x22');
  a.signature.assign(64, '\x33');
  std::string text = FormatAnchor(a) + "\n" + FormatAnchor(a) + "\n{\"type\":";  // torn tail
  // A copy handed to verify reads its last line too (it is usually the newest anchor)...
  auto strict = ParseAnchors(text, "copy.jsonl");
  ASSERT_FALSE(strict.ok());
  EXPECT_NE(strict.status().message().find("copy.jsonl:3:"), std::string::npos);
  auto unterminated = ParseAnchors(FormatAnchor(a), "copy.jsonl");
  ASSERT_TRUE(unterminated.ok());
  EXPECT_EQ(unterminated->size(), 1u);
  // ... the agent's own file after a crash mid-append skips it.
  auto parsed = ParseAnchors(text, "anchors.jsonl", /*torn_tail_ok=*/true);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  ASSERT_EQ(parsed->size(), 2u);
  EXPECT_EQ((*parsed)[1].seq, 42u);
  EXPECT_EQ((*parsed)[1].line, 2u);
  EXPECT_EQ((*parsed)[1].hash, a.hash);
  EXPECT_EQ((*parsed)[1].signature, a.signature);
  EXPECT_EQ((*parsed)[1].ts_us, a.ts_us);
  auto bad = ParseAnchors(FormatAnchor(a) + "\n{\"type\":\"dbwarden-audit-anchor\",\"seq\":0}\n",
                          "anchors.jsonl");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("anchors.jsonl:2:"), std::string::npos)
      << bad.status().message();
}

// The writer's own clock, without a reopen: a checkpoint once `checkpoint_every` has passed
// (few events, far from checkpoint_every_events), and the retention pass every
// `retention_check_every` cutting events that aged past `retention` while the store ran.
TEST(AuditStoreTest, TimedCheckpointAndBackgroundRetention) {
  std::string dir = TempDir("timed");
  StoreOptions o = Options(dir);
  o.checkpoint_every_events = 1'000'000;
  o.checkpoint_every = std::chrono::seconds(1);
  o.retention = std::chrono::seconds(2);
  o.retention_check_every = std::chrono::seconds(1);
  auto store = AuditStore::Open(o);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  auto submit = [&](int64_t ts_us) {
    Event e;
    e.kind = EventKind::kAgentStart;
    e.source = "agent";
    e.ts_us = ts_us;
    (*store)->Submit(std::move(e));
  };
  // Three events that are already 10 s old (past retention), then three current ones.
  for (int i = 0; i < 3; ++i) submit(NowMicros() - 10'000'000);
  for (int i = 0; i < 3; ++i) submit(NowMicros());
  (*store)->Flush();

  // Within a few seconds: the old events are gone, the current ones stay, a checkpoint signs
  // the head, and the chain verifies across the cut.
  std::vector<StoredEvent> left;
  VerifyReport report;
  for (int i = 0; i < 100; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    auto events = (*store)->ReadAfter(0, 100);
    ASSERT_TRUE(events.ok());
    left = *events;
    report = (*store)->Verify(std::nullopt, std::nullopt);
    if (left.size() == 3 && report.checkpoints_verified > 0) break;
  }
  ASSERT_EQ(left.size(), 3u);
  EXPECT_EQ(left.front().seq, 4u);
  EXPECT_TRUE(report.ok) << report.problem;
  EXPECT_GT(report.checkpoints_verified, 0u);
}

TEST(AuditStoreTest, RetentionKeepsTheChainVerifiable) {
  std::string dir = TempDir("retention");
  StoreOptions o = Options(dir);
  {
    auto store = AuditStore::Open(o);
    ASSERT_TRUE(store.ok());
    for (int i = 0; i < 300; ++i) {
      Event e;
      e.kind = EventKind::kAgentStart;
      e.source = "agent";
      // 200 events 10 days old, then 100 from now; the old and the new share index values
      // (and commit batches), so their posting blocks must be split by the cut.
      e.ts_us = NowMicros() - (i < 200 ? 10LL * 86400 * 1000000 : 0);
      if (i % 2 == 0) {
        auto info = std::make_shared<SessionInfo>();
        info->session_id = "s" + std::to_string(i % 6);
        info->principal.db_user = "alice";
        info->principal.client_addr = "127.0.0.1:1";
        e.session = info;
      }
      (*store)->Submit(std::move(e));
    }
    (*store)->Flush();
  }
  o.retention = std::chrono::seconds(86400);
  {
    auto store = AuditStore::Open(o);  // the retention pass runs at open
    ASSERT_TRUE(store.ok());
    auto events = (*store)->ReadAfter(0, 1000);
    ASSERT_TRUE(events.ok());
    ASSERT_EQ(events->size(), 100u);
    EXPECT_EQ(events->front().seq, 201u);
    EventFilter f;
    f.kind = "agent_start";
    auto q = (*store)->Query(f, 1000, "");
    ASSERT_TRUE(q.ok());
    EXPECT_EQ(q->events.size(), 100u);
    EventFilter all;
    q = (*store)->Query(all, 1000, "");
    ASSERT_TRUE(q.ok());
    EXPECT_EQ(q->events.size(), 100u);
    Event e;
    e.kind = EventKind::kAgentStop;
    e.source = "agent";
    (*store)->Submit(std::move(e));
    (*store)->Flush();
    auto r = (*store)->Verify(std::nullopt, std::nullopt);
    EXPECT_TRUE(r.ok) << r.problem;
    EXPECT_EQ(r.first_seq, 201u);
    EXPECT_EQ(r.checked, 101u);
    EventFilter alice;
    alice.db_user = "alice";
    q = (*store)->Query(alice, 1000, "");
    ASSERT_TRUE(q.ok());
    EXPECT_EQ(q->events.size(), 50u);
  }
  {
    // The index holds no posting of a cut event, and every retained event once in idx_time.
    RawDb raw(dir);
    std::multiset<uint64_t> time_seqs;
    for (const auto& [name, cf] : raw.by_name) {
      if (name.rfind("idx_", 0) != 0) continue;
      std::unique_ptr<rocksdb::Iterator> it(raw.db->NewIterator({}, cf));
      for (it->SeekToFirst(); it->Valid(); it->Next()) {
        std::vector<store::Posting> block;
        ASSERT_TRUE(store::DecodeBlock(it->value().ToStringView(), &block).ok()) << name;
        int64_t key_ts = 0;
        uint64_t key_seq = 0;
        ASSERT_TRUE(store::ParseIndexKeyTail(it->key().ToStringView(), &key_ts, &key_seq));
        EXPECT_EQ(block.back(), (store::Posting{key_ts, key_seq})) << name;  // key = newest
        for (const auto& p : block) {
          EXPECT_GT(p.seq, 200u) << name;
          if (name == "idx_time") time_seqs.insert(p.seq);
        }
      }
    }
    EXPECT_EQ(time_seqs.size(), 101u);
    EXPECT_EQ(std::set<uint64_t>(time_seqs.begin(), time_seqs.end()).size(), 101u);
  }
  {
    // Cutting one more retained event by hand (without a new anchor) is caught.
    RawDb raw(dir);
    raw.Delete(201);
  }
  VerifyReport r = VerifyDir(dir);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.first_bad_seq.value_or(0), 201u);
  fs::remove_all(dir);
}

// The writer indexes terms computed from the event; queries check terms parsed back from the
// stored JSON. They must agree byte for byte, also for text that JSON had to sanitize.
TEST(AuditStoreTest, EventTermsEqualTermsOfTheStoredJson) {
  std::mt19937_64 rng(99);
  std::vector<Event> events = EveryKind();
  for (int i = 0; i < 2000; ++i) {
    Truth t;
    events.push_back(MakeEvent(rng, 1'700'000'000'000'000, &t));
  }
  const std::vector<std::string> odd = {
      "",         std::string("a\0b", 3), "caf\xc3\xa9",   "bad\xff\xfe",
      "\xe2\x82", "CN=x,O=\xc0\x80",      "s\x01\x1f\"q\\"};
  auto pick = [&](size_t i) { return odd[i % odd.size()]; };
  for (size_t i = 0; i < 300; ++i) {
    auto info = std::make_shared<SessionInfo>();
    info->session_id = pick(i);
    info->principal.db_user = pick(i + 1);
    info->principal.database = pick(i + 2);
    info->principal.client_addr = i % 3 == 0 ? "" : "127.0.0.1:1";
    info->principal.cert_subject = pick(i + 3);
    if (i % 4 != 0)
      info->process = identity::ProcessInfo{.pid = 1,
                                            .uid = 0,
                                            .comm = "c",
                                            .exe = pick(i + 4),
                                            .cgroup = "/system.slice/" + pick(i + 5) + ".service"};
    Event e;
    e.session = info;
    if (i % 5 != 0) {
      auto facts = std::make_shared<sql::QueryFacts>();
      for (size_t k = 0; k < i % 3; ++k) {
        sql::StatementFacts st;
        st.fingerprint_hex = k == 0 ? pick(i + 6) : "ff";
        st.tables_read.push_back({pick(i + k), pick(i + k + 1)});
        st.tables_written.push_back({"", pick(i + k + 2)});
        st.tables_written.push_back({pick(i + k), pick(i + k + 1)});  // also read: one term
        facts->statements.push_back(st);
      }
      e.statement = StatementInfo{i % 7 == 0 ? nullptr : facts, "simple", ""};
    }
    if (i % 2) {
      auto d = std::make_shared<policy::Decision>();
      d->action = policy::Action::kApprove;
      e.decision = DecisionInfo{i % 6 == 1 ? nullptr : d, true};
    }
    events.push_back(std::move(e));
  }
  for (size_t i = 0; i < events.size(); ++i) {
    std::string json;
    AppendEventJson(events[i], &json);
    store::Terms parsed;
    ASSERT_TRUE(store::ExtractTerms(json, &parsed).ok()) << json;
    std::vector<std::pair<store::Index, std::string>> direct;
    store::EventTerms(events[i], &direct);
    ASSERT_EQ(direct, parsed.values) << "event " << i << ": " << json;
  }
}

TEST(AuditStoreTest, ReadOnlyWhileOpenForWriting) {
  std::string dir = TempDir("readonly");
  auto store = AuditStore::Open(Options(dir));
  ASSERT_TRUE(store.ok());
  std::mt19937_64 rng(3);
  for (int i = 0; i < 100; ++i) {
    Truth t;
    (*store)->Submit(MakeEvent(rng, 1'700'000'000'000'000, &t));
  }
  (*store)->Flush();
  auto ro = AuditStore::OpenReadOnly(dir);
  ASSERT_TRUE(ro.ok()) << ro.status().ToString();
  EXPECT_EQ((*ro)->Stats().head_seq, 100u);
  auto r = (*ro)->Verify(std::nullopt, std::nullopt);
  EXPECT_TRUE(r.ok) << r.problem;
  EXPECT_EQ(r.checked, 100u);
  EXPECT_EQ((*ro)->PublicKeyPem(), (*store)->PublicKeyPem());
  Status status;
  (*ro)->SubmitAndWait(Event{}, [&](const Status& s, uint64_t) { status = s; });
  EXPECT_FALSE(status.ok());
  ro->reset();
  store->reset();
  fs::remove_all(dir);
}

TEST(AuditStoreTest, FullQueueIsCountedAndWrittenAsLoss) {
  std::string dir = TempDir("loss");
  StoreOptions o = Options(dir);
  o.queue_capacity = 4;
  auto store = AuditStore::Open(o);
  ASSERT_TRUE(store.ok());
  for (int i = 0; i < 5000; ++i) {
    Event e;
    e.kind = EventKind::kAgentStart;
    e.source = "agent";
    (*store)->Submit(std::move(e));
  }
  (*store)->Flush();
  StoreStats stats = (*store)->Stats();
  ASSERT_GT(stats.dropped, 0u);
  EventFilter f;
  f.kind = "audit_loss";
  auto q = (*store)->Query(f, 100000, "");
  ASSERT_TRUE(q.ok());
  uint64_t counted = 0;
  simdjson::dom::parser parser;
  for (const auto& e : q->events) counted += parser.parse(e.json)["count"].get_uint64().value();
  EXPECT_EQ(counted, stats.dropped);
  EXPECT_EQ(stats.head_seq, 5000 - stats.dropped + q->events.size());
  EXPECT_TRUE((*store)->WaitForNewer(0, std::chrono::milliseconds(1)));
  EXPECT_FALSE((*store)->WaitForNewer(stats.head_seq, std::chrono::milliseconds(1)));
  store->reset();
  fs::remove_all(dir);
}

// A backlog larger than one RocksDB write (the writer commits at most 8192 events per write,
// and a producer this fast leaves it batches of tens of thousands) lands whole, in order, with
// every index entry and a verifiable chain; commit callbacks get their own seqs.
// An intent log left by an earlier run (the agent was killed before its writer committed):
// the next open commits its entries after the head, indexed from their JSON, skips an entry
// that is no record of this agent, and removes the file.
TEST(AuditStoreTest, OpenReplaysAnIntentLogLeftByAnEarlierRun) {
  std::string dir = TempDir("intent-replay");
  { ASSERT_TRUE(AuditStore::Open(Options(dir)).ok()); }  // creates <dir>/intent
  const std::string path = dir + "/intent/1-0.log";
  std::vector<std::string> expected;
  {
    auto log = IntentLog::Create(path, 1 << 16);
    ASSERT_TRUE(log.ok()) << log.status().ToString();
    IntentLog::Appended at;
    std::vector<Event> events = EveryKind();
    for (size_t i = 0; i < events.size(); ++i) {
      Event e = events[i];
      e.seq = 0;
      if (e.ts_us == 0) e.ts_us = 1'700'000'000'000'000 + static_cast<int64_t>(i);
      std::string payload(sizeof(e.ts_us), '\0');
      std::memcpy(payload.data(), &e.ts_us, sizeof(e.ts_us));
      AppendEventJson(e, &payload);
      ASSERT_TRUE((*log)->Append(payload, &at));
      e.seq = i + 1;  // a fresh store: seqs from 1
      expected.emplace_back();
      AppendEventJson(e, &expected.back());
      if (i == 2) {
        ASSERT_TRUE((*log)->Append("not a record of this agent", &at));
      }
    }
  }
  auto store = AuditStore::Open(Options(dir));
  ASSERT_TRUE(store.ok());
  EXPECT_FALSE(std::filesystem::exists(path));
  auto events = (*store)->ReadAfter(0, 1000);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i)
    EXPECT_EQ((*events)[i].json.substr(0, expected[i].size() - 1),
              expected[i].substr(0, expected[i].size() - 1));
  // Indexed like any record: found through a filter.
  EventFilter f;
  f.kind = EventKindName(EveryKind()[0].kind);
  EXPECT_FALSE(QueryAll(**store, f, 10).empty());
  EXPECT_TRUE((*store)->Verify(std::nullopt, std::nullopt).ok);
  // Replayed once: a second open finds nothing more to do.
  store->reset();
  auto again = AuditStore::Open(Options(dir));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)->Stats().head_seq, expected.size());
}

TEST(AuditStoreTest, BacklogCommitsInSlicesWithoutGapsOrReordering) {
  std::string dir = TempDir("backlog");
  StoreOptions o = Options(dir);
  o.intent_log_bytes = 0;  // the waited events report their seq
  auto store = AuditStore::Open(o);
  ASSERT_TRUE(store.ok());
  constexpr int kEvents = 50000;
  std::vector<uint64_t> seqs(10, 0);
  for (int i = 0; i < kEvents; ++i) {
    Event e;
    e.kind = i % 2 == 0 ? EventKind::kSessionStart : EventKind::kSessionEnd;
    e.detail = std::to_string(i);
    if (i % 5000 == 4999) {
      (*store)->SubmitAndWait(std::move(e), [&seqs, i](const Status& s, uint64_t seq) {
        if (s.ok()) seqs[i / 5000] = seq;
      });
    } else {
      (*store)->Submit(std::move(e));
    }
  }
  (*store)->Flush();
  EXPECT_EQ((*store)->Stats().head_seq, static_cast<uint64_t>(kEvents));
  EXPECT_EQ((*store)->Stats().dropped, 0u);
  for (int k = 0; k < 10; ++k) EXPECT_EQ(seqs[k], static_cast<uint64_t>(k * 5000 + 5000));
  auto r = (*store)->Verify(std::nullopt, std::nullopt);
  EXPECT_TRUE(r.ok) << r.problem;
  EXPECT_EQ(r.checked, static_cast<uint64_t>(kEvents));
  simdjson::dom::parser parser;
  uint64_t next = 1;
  while (next <= kEvents) {
    auto page = (*store)->ReadAfter(next - 1, 4096);
    ASSERT_TRUE(page.ok());
    ASSERT_FALSE(page->empty());
    for (const auto& e : *page) {
      ASSERT_EQ(e.seq, next);
      std::string detail(parser.parse(e.json)["detail"].get_string().value());
      ASSERT_EQ(detail, std::to_string(next - 1));
      ++next;
    }
  }
  EventFilter f;
  f.kind = "session_end";
  EXPECT_EQ(QueryAll(**store, f, 5000).size(), static_cast<size_t>(kEvents / 2));
  store->reset();
  fs::remove_all(dir);
}

}  // namespace
}  // namespace dbw::audit
