// The exporter loop against a real audit store (RocksDB in a temp dir) and a scripted transport:
// order, the persisted cursor across restarts, re-sending what was not confirmed after a failure,
// and where a new exporter starts. The syslog transport against a loopback listener: RFC 5424
// octet-counted frames, and confirmation only after the receiver's TCP acknowledged and kept the
// connection up.
#include "userspace/export/exporter.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <regex>
#include <thread>

#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <rocksdb/db.h>

#include "userspace/audit/store.h"

namespace dbw::exporter {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

std::string TempDir(const std::string& name) {
  fs::path p =
      fs::temp_directory_path() / ("dbw-export-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

std::unique_ptr<audit::AuditStore> OpenStore(const std::string& state_dir) {
  audit::StoreOptions o;
  o.dir = state_dir + "/audit";
  o.durability = audit::Durability::kAsync;
  o.retention = std::chrono::seconds(0);
  auto store = audit::AuditStore::Open(o);
  EXPECT_TRUE(store.ok()) << store.status().message();
  return std::move(*store);
}

void Write(audit::AuditStore* store, int n) {
  for (int i = 0; i < n; ++i) {
    audit::Event e;
    e.kind = audit::EventKind::kPolicyLoad;
    e.source = "agent";
    e.detail = "event " + std::to_string(i);
    store->Submit(std::move(e));
  }
  store->Flush();
}

// What the scripted transport received, and how it behaves; shared with the test.
struct Script {
  std::mutex mu;
  std::vector<uint64_t> received;  // every seq sent, in the order sent (duplicates included)
  int fail_sends = 0;              // the next N sends fail after half the batch got through
  bool lag_one_batch = false;      // confirm only the batch before the last (as syslog does)
  size_t max_batch = 0;            // larger batches are refused as too large (0: any size)
  std::vector<size_t> batch_sizes;
};

class ScriptedTransport final : public Transport {
 public:
  explicit ScriptedTransport(std::shared_ptr<Script> s) : s_(std::move(s)) {}
  StatusOr<uint64_t> Send(const std::vector<Message>& batch) override {
    std::lock_guard lock(s_->mu);
    s_->batch_sizes.push_back(batch.size());
    if (s_->max_batch > 0 && batch.size() > s_->max_batch)
      return ResourceExhausted("scripted: batch too large");
    if (s_->fail_sends > 0) {
      --s_->fail_sends;
      // Half the batch reached the receiver, and (without the lag) was confirmed.
      for (size_t i = 0; i < batch.size() / 2; ++i) {
        s_->received.push_back(batch[i].seq);
        if (!s_->lag_one_batch) confirmed_ = batch[i].seq;
      }
      return Unavailable("scripted failure");
    }
    for (const auto& m : batch) s_->received.push_back(m.seq);
    uint64_t confirm = s_->lag_one_batch ? previous_ : batch.back().seq;
    previous_ = batch.back().seq;
    confirmed_ = std::max(confirmed_, confirm);
    return confirmed_;
  }
  StatusOr<uint64_t> Settle(bool /*final*/) override {
    confirmed_ = std::max(confirmed_, previous_);
    return confirmed_;
  }
  void Reset() override { previous_ = confirmed_; }
  [[nodiscard]] uint64_t confirmed() const override { return confirmed_; }

 private:
  std::shared_ptr<Script> s_;
  uint64_t previous_ = 0;
  uint64_t confirmed_ = 0;
};

TransportFactory Scripted(std::shared_ptr<Script> s) {
  return [s](const ExporterOptions&,
             const std::atomic<bool>*) -> StatusOr<std::unique_ptr<Transport>> {
    return std::unique_ptr<Transport>(new ScriptedTransport(s));
  };
}

ExporterOptions Options(size_t batch = 7) {
  ExporterOptions o;
  o.name = "test";
  o.batch = batch;
  o.backoff = milliseconds(10);
  o.max_backoff = milliseconds(20);
  return o;
}

bool WaitFor(const std::function<bool()>& done, milliseconds timeout = milliseconds(10000)) {
  auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    if (done()) return true;
    std::this_thread::sleep_for(milliseconds(5));
  }
  return done();
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::vector<uint64_t> Range(uint64_t from, uint64_t to) {
  std::vector<uint64_t> v;
  for (uint64_t s = from; s <= to; ++s) v.push_back(s);
  return v;
}

TEST(Exporter, DeliversEveryEventInOrderAndResumesFromItsCursor) {
  const std::string dir = TempDir("resume");
  auto store = OpenStore(dir);
  MetricsRegistry metrics;
  auto script = std::make_shared<Script>();
  Write(store.get(), 40);
  const uint64_t head = store->Stats().head_seq;
  ASSERT_GE(head, 40u);
  {
    Exporter e(Options(), dir, store.get(), &metrics, Scripted(script));
    ASSERT_TRUE(e.Start().ok());
    ASSERT_TRUE(WaitFor([&] { return e.confirmed() == head; }));
    e.Stop();
  }
  EXPECT_EQ(ReadFile(dir + "/export/test.cursor"), std::to_string(head) + "\n");
  EXPECT_EQ(script->received, Range(1, head));
  // Written while no exporter ran: the next one starts after the cursor, sending nothing twice.
  Write(store.get(), 25);
  const uint64_t head2 = store->Stats().head_seq;
  {
    Exporter e(Options(), dir, store.get(), &metrics, Scripted(script));
    ASSERT_TRUE(e.Start().ok());
    ASSERT_TRUE(WaitFor([&] { return e.confirmed() == head2; }));
  }
  EXPECT_EQ(script->received, Range(1, head2));
  EXPECT_NE(metrics.RenderPrometheus().find("dbwarden_export_events_total{exporter=\"test\"} " +
                                            std::to_string(head2)),
            std::string::npos)
      << metrics.RenderPrometheus();
}

TEST(Exporter, AFailureSendsAgainEverythingNotConfirmedAndNothingIsSkipped) {
  const std::string dir = TempDir("failure");
  auto store = OpenStore(dir);
  MetricsRegistry metrics;
  auto script = std::make_shared<Script>();
  script->lag_one_batch = true;
  Write(store.get(), 10);
  Exporter e(Options(5), dir, store.get(), &metrics, Scripted(script));
  ASSERT_TRUE(e.Start().ok());
  ASSERT_TRUE(WaitFor([&] { return e.confirmed() == store->Stats().head_seq; }));
  {
    std::lock_guard lock(script->mu);
    script->fail_sends = 2;
  }
  Write(store.get(), 30);
  const uint64_t head = store->Stats().head_seq;
  ASSERT_TRUE(WaitFor([&] { return e.confirmed() == head; }));
  e.Stop();
  std::lock_guard lock(script->mu);
  // De-duplicated by seq, the receiver has every event in order.
  std::vector<uint64_t> unique;
  uint64_t high = 0;
  size_t repeats = 0;
  for (uint64_t s : script->received) {
    if (s <= high) {
      ++repeats;
      continue;
    }
    EXPECT_EQ(s, high + 1) << "a gap before " << s;
    high = s;
    unique.push_back(s);
  }
  EXPECT_EQ(unique, Range(1, head));
  EXPECT_GT(repeats, 0u) << "the unconfirmed batch was not sent again";
  const std::string text = metrics.RenderPrometheus();
  EXPECT_NE(text.find("dbwarden_export_failures_total{exporter=\"test\"} 2"), std::string::npos)
      << text;
  EXPECT_NE(text.find("dbwarden_export_events_total{exporter=\"test\"} " + std::to_string(head)),
            std::string::npos)
      << text;
}

// Runs one exporter over the store until its receiver confirmed `through`, then stops it.
void ExportThrough(const std::string& dir, audit::AuditStore* store, std::shared_ptr<Script> script,
                   const ExporterOptions& o, uint64_t through) {
  MetricsRegistry metrics;
  Exporter e(o, dir, store, &metrics, Scripted(std::move(script)));
  ASSERT_TRUE(e.Start().ok());
  ASSERT_TRUE(WaitFor([&] { return e.confirmed() >= through; }));
  e.Stop();
}

TEST(Exporter, AConfirmedPrefixOfAFailedBatchIsNotSentAgain) {
  const std::string dir = TempDir("prefix");
  auto store = OpenStore(dir);
  auto script = std::make_shared<Script>();
  script->fail_sends = 1;
  Write(store.get(), 20);
  const uint64_t head = store->Stats().head_seq;
  ExportThrough(dir, store.get(), script, Options(10), head);
  std::lock_guard lock(script->mu);
  EXPECT_EQ(script->received, Range(1, head)) << "the confirmed half was sent twice";
}

TEST(Exporter, ABatchRefusedAsTooLargeIsSentInSmallerOnes) {
  const std::string dir = TempDir("smaller");
  auto store = OpenStore(dir);
  auto script = std::make_shared<Script>();
  script->max_batch = 3;
  Write(store.get(), 30);
  const uint64_t head = store->Stats().head_seq;
  ExportThrough(dir, store.get(), script, Options(16), head);
  std::lock_guard lock(script->mu);
  EXPECT_EQ(script->received, Range(1, head));
  // 16 refused, then 8, 4: 2 goes through.
  ASSERT_GE(script->batch_sizes.size(), 4u);
  EXPECT_EQ(script->batch_sizes[0], 16u);
  EXPECT_EQ(script->batch_sizes[1], 8u);
  EXPECT_EQ(script->batch_sizes[2], 4u);
  EXPECT_EQ(script->batch_sizes[3], 2u);
}

TEST(Exporter, ACursorPastTheLogStartsOverFromItsBeginning) {
  const std::string dir = TempDir("ahead");
  auto store = OpenStore(dir);
  Write(store.get(), 5);
  const uint64_t head = store->Stats().head_seq;
  fs::create_directories(dir + "/export");
  std::ofstream(dir + "/export/test.cursor") << head + 1000 << "\n";
  auto script = std::make_shared<Script>();
  ExportThrough(dir, store.get(), script, Options(), head);
  EXPECT_EQ(script->received, Range(1, head));
}

TEST(Exporter, AnUnreadableRecordIsReportedAndSteppedPast) {
  const std::string dir = TempDir("unreadable");
  {
    auto store = OpenStore(dir);
    Write(store.get(), 12);
  }
  {
    // Damage record 5 as a disk error or an edit would.
    std::vector<std::string> names;
    ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), dir + "/audit", &names).ok());
    std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
    for (const auto& n : names) cfs.emplace_back(n, rocksdb::ColumnFamilyOptions());
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::DBOptions(), dir + "/audit", cfs, &handles, &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    const auto events = std::find(names.begin(), names.end(), "events") - names.begin();
    ASSERT_LT(static_cast<size_t>(events), names.size());
    const char key[8] = {0, 0, 0, 0, 0, 0, 0, 5};
    ASSERT_TRUE(
        db->Put(rocksdb::WriteOptions(), handles[events], rocksdb::Slice(key, 8), "x").ok());
    for (auto* h : handles) ASSERT_TRUE(db->DestroyColumnFamilyHandle(h).ok());
  }
  auto store = OpenStore(dir);
  const uint64_t head = store->Stats().head_seq;
  MetricsRegistry metrics;
  auto script = std::make_shared<Script>();
  Exporter e(Options(), dir, store.get(), &metrics, Scripted(script));
  ASSERT_TRUE(e.Start().ok());
  // Everything but event 5, and the audit_loss event that names it (written after the head).
  ASSERT_TRUE(WaitFor([&] { return e.confirmed() > head; }));
  e.Stop();
  std::vector<uint64_t> expected = Range(1, head);
  expected.erase(expected.begin() + 4);
  std::lock_guard lock(script->mu);
  std::vector<uint64_t> got(script->received.begin(),
                            script->received.begin() + static_cast<long>(expected.size()));
  EXPECT_EQ(got, expected);
  auto loss = store->ReadAfter(head, 10);
  ASSERT_TRUE(loss.ok());
  ASSERT_FALSE(loss->empty());
  EXPECT_NE(loss->front().json.find("\"kind\":\"audit_loss\""), std::string::npos);
  EXPECT_NE(loss->front().json.find("event 5 cannot be read"), std::string::npos)
      << loss->front().json;
}

TEST(Exporter, ANewExporterStartsAtTheBeginningOrTheEnd) {
  const std::string dir = TempDir("start");
  auto store = OpenStore(dir);
  MetricsRegistry metrics;
  Write(store.get(), 12);
  const uint64_t head = store->Stats().head_seq;
  auto script = std::make_shared<Script>();
  ExporterOptions o = Options();
  o.name = "late";
  o.start = Start::kEnd;
  Exporter e(o, dir, store.get(), &metrics, Scripted(script));
  ASSERT_TRUE(e.Start().ok());
  EXPECT_EQ(e.confirmed(), head);
  Write(store.get(), 3);
  ASSERT_TRUE(WaitFor([&] { return e.confirmed() == head + 3; }));
  e.Stop();
  EXPECT_EQ(script->received, Range(head + 1, head + 3));
}

TEST(Exporter, AnUnreadableCursorStopsTheStartNamingTheFile) {
  const std::string dir = TempDir("cursor");
  auto store = OpenStore(dir);
  MetricsRegistry metrics;
  fs::create_directories(dir + "/export");
  std::ofstream(dir + "/export/test.cursor") << "12x\n";
  Exporter e(Options(), dir, store.get(), &metrics, Scripted(std::make_shared<Script>()));
  Status st = e.Start();
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find(dir + "/export/test.cursor"), std::string::npos) << st.message();
}

TEST(MakeMessage, TakesKindSessionAndSeverityFromTheEvent) {
  audit::StoredEvent deny{
      7, 1700000000000000,
      R"({"seq":7,"ts":"2023-11-14T22:13:20.000000Z","kind":"decision","source":"relay",)"
      R"("session_id":"00aa11bb22cc33dd","decision":{"action":"deny","enforced":true},)"
      R"("prev_hash":"aa","hash":"bb"})"};
  auto m = MakeMessage(deny, audit::EventFormat::kNative);
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(m->seq, 7u);
  EXPECT_EQ(m->kind, "decision");
  EXPECT_EQ(m->session_id, "00aa11bb22cc33dd");
  EXPECT_EQ(m->severity, 4);
  EXPECT_EQ(m->body, deny.json);
  audit::StoredEvent loss{8, 1, R"({"seq":8,"kind":"audit_loss","source":"agent","count":3})"};
  m = MakeMessage(loss, audit::EventFormat::kNative);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->severity, 2);
  EXPECT_EQ(m->session_id, "");
  audit::StoredEvent allow{9, 1, R"({"seq":9,"kind":"statement","decision":{"action":"allow"}})"};
  EXPECT_EQ(MakeMessage(allow, audit::EventFormat::kNative)->severity, 5);
}

// A listening socket on 127.0.0.1 and a free port.
int ListenOnLoopback(uint16_t* port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  *port = ntohs(a.sin_port);
  ::listen(fd, 4);
  return fd;
}

// A loopback listener that accepts one connection at a time and keeps what it reads.
class Listener {
 public:
  // reads: false: accepts and never reads (what arrives stays unread in the kernel).
  explicit Listener(bool reads = true) : reads_(reads) {
    fd_ = ListenOnLoopback(&port_);
    thread_ = std::thread([this] {
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      {
        std::lock_guard lock(mu_);
        conn_ = c;
      }
      if (!reads_) {
        std::unique_lock lock(mu_);
        done_.wait(lock, [this] { return stop_; });
        return;
      }
      char buf[4096];
      ssize_t n;
      while ((n = ::recv(c, buf, sizeof buf, 0)) > 0) {
        std::lock_guard lock(mu_);
        data_.append(buf, static_cast<size_t>(n));
      }
    });
  }
  ~Listener() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    done_.notify_all();
    CloseConnection();
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
  }
  void CloseConnection() {
    std::lock_guard lock(mu_);
    if (conn_ >= 0) ::shutdown(conn_, SHUT_RDWR);
  }
  // Closes with what it was sent still unread: the kernel resets the connection.
  void CloseUnread() {
    std::lock_guard lock(mu_);
    if (conn_ < 0) return;
    ::close(conn_);
    conn_ = -1;
  }
  std::string data() {
    std::lock_guard lock(mu_);
    return data_;
  }
  std::string port() const { return std::to_string(port_); }

 private:
  int fd_;
  uint16_t port_ = 0;
  std::thread thread_;
  const bool reads_;
  std::mutex mu_;
  std::condition_variable done_;
  bool stop_ = false;
  int conn_ = -1;
  std::string data_;
};

Message Msg(uint64_t seq, std::string body) {
  Message m;
  m.seq = seq;
  m.ts_us = 1700000000123456;
  m.kind = "statement";
  m.session_id = "s\"1]";
  m.severity = 4;
  m.body = std::move(body);
  return m;
}

TEST(SyslogTransport, SendsOctetCountedRfc5424FramesAndConfirmsOnlyAfterTheReceiverKeptThem) {
  Listener receiver;
  ExporterOptions o = Options();
  o.kind = Kind::kSyslog;
  o.host = "127.0.0.1";
  o.port = receiver.port();
  o.syslog_confirm_after = milliseconds(200);
  auto t = MakeSyslogTransport(o);
  auto c = t->Send({Msg(1, "{\"a\":\"é\"}"), Msg(2, "two words")});
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(*c, 0u) << "confirmed before the receiver could have kept it";
  c = t->Settle(false);
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(*c, 2u);
  ASSERT_TRUE(WaitFor([&] { return receiver.data().size() > 0; }));
  // Each frame: MSG-LEN SP SYSLOG-MSG, the length in bytes (é is two).
  std::string data = receiver.data();
  std::vector<std::string> frames;
  size_t at = 0;
  while (at < data.size()) {
    size_t sp = data.find(' ', at);
    ASSERT_NE(sp, std::string::npos);
    size_t len = std::stoul(data.substr(at, sp - at));
    frames.push_back(data.substr(sp + 1, len));
    at = sp + 1 + len;
  }
  ASSERT_EQ(at, data.size());
  ASSERT_EQ(frames.size(), 2u);
  // PRI 13*8+4, version 1, RFC 3339 time, host, app, pid, MSGID, SD with escaped values.
  std::regex rfc5424(R"(<108>1 2023-11-14T22:13:20\.123456Z \S+ dbwarden \d+ statement )"
                     R"(\[dbwarden@32473 seq="1" session="s\\"1\\]"\] \{"a":"é"\})");
  EXPECT_TRUE(std::regex_match(frames[0], rfc5424)) << frames[0];
  EXPECT_TRUE(frames[1].ends_with("] two words")) << frames[1];
}

TEST(SyslogTransport, AReceiverThatClosesWithinConfirmAfterConfirmsNothingMore) {
  Listener receiver;
  ExporterOptions o = Options();
  o.kind = Kind::kSyslog;
  o.host = "127.0.0.1";
  o.port = receiver.port();
  o.syslog_confirm_after = milliseconds(5000);
  auto t = MakeSyslogTransport(o);
  ASSERT_TRUE(t->Send({Msg(1, "x")}).ok());
  EXPECT_EQ(t->confirmed(), 0u);
  ASSERT_TRUE(WaitFor([&] { return !receiver.data().empty(); }));
  receiver.CloseConnection();
  std::this_thread::sleep_for(milliseconds(50));
  auto c = t->Send({Msg(2, "y")});
  EXPECT_FALSE(c.ok()) << "a closed connection was taken for delivery";
  // It read event 1, but it may have died with it in memory: event 1 is sent again.
  EXPECT_EQ(t->confirmed(), 0u);
}

TEST(SyslogTransport, AReceiverThatResetsTheConnectionConfirmsNothingUnconfirmed) {
  Listener receiver(/*reads=*/false);
  ExporterOptions o = Options();
  o.kind = Kind::kSyslog;
  o.host = "127.0.0.1";
  o.port = receiver.port();
  o.syslog_confirm_after = milliseconds(5000);
  auto t = MakeSyslogTransport(o);
  ASSERT_TRUE(t->Send({Msg(1, "x")}).ok());
  std::this_thread::sleep_for(milliseconds(50));  // acknowledged by its TCP, never read
  receiver.CloseUnread();
  std::this_thread::sleep_for(milliseconds(50));
  auto c = t->Send({Msg(2, "y")});
  EXPECT_FALSE(c.ok()) << "a reset connection was taken for delivery";
  EXPECT_EQ(t->confirmed(), 0u) << "event 1 was never read, yet confirmed";
}

TEST(SyslogTransport, NoReceiverIsAnErrorWithinTheTimeout) {
  ExporterOptions o = Options();
  o.kind = Kind::kSyslog;
  o.host = "127.0.0.1";
  o.port = "1";  // nothing listens on port 1 here
  o.timeout = milliseconds(500);
  auto t = MakeSyslogTransport(o);
  auto c = t->Send({Msg(1, "x")});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("127.0.0.1:1"), std::string::npos) << c.status().message();
}

// A collector that answers each request on its connection with the next canned response
// (written as it is; an empty one closes the connection without answering).
class CannedCollector {
 public:
  explicit CannedCollector(std::vector<std::string> responses) : responses_(std::move(responses)) {
    fd_ = ListenOnLoopback(&port_);
    thread_ = std::thread([this] { Serve(); });
  }
  ~CannedCollector() {
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
  }
  std::string port() const { return std::to_string(port_); }
  int requests() const { return requests_.load(); }

 private:
  void Serve() {
    size_t next = 0;
    while (next < responses_.size()) {
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      std::string in;
      while (next < responses_.size()) {
        // One request: the header, then Content-Length bytes.
        size_t end;
        char buf[65536];
        while ((end = in.find("\r\n\r\n")) == std::string::npos) {
          ssize_t n = ::recv(c, buf, sizeof buf, 0);
          if (n <= 0) break;
          in.append(buf, static_cast<size_t>(n));
        }
        if (end == std::string::npos) break;
        size_t cl = in.find("Content-Length: ");
        size_t body = std::stoul(in.substr(cl + 16));
        while (in.size() < end + 4 + body) {
          ssize_t n = ::recv(c, buf, sizeof buf, 0);
          if (n <= 0) break;
          in.append(buf, static_cast<size_t>(n));
        }
        in.erase(0, end + 4 + body);
        ++requests_;
        const std::string& r = responses_[next++];
        if (r.empty()) break;
        ::send(c, r.data(), r.size(), MSG_NOSIGNAL);
        if (r.find("Connection: close") != std::string::npos) break;
      }
      ::close(c);
    }
  }
  std::vector<std::string> responses_;
  int fd_;
  uint16_t port_ = 0;
  std::atomic<int> requests_{0};
  std::thread thread_;
};

ExporterOptions OtlpOptions(const std::string& port) {
  ExporterOptions o = Options();
  o.kind = Kind::kOtlp;
  o.host = "127.0.0.1";
  o.port = port;
  o.timeout = milliseconds(2000);
  return o;
}

TEST(OtlpTransport, AConnectionClosedWithoutAnAnswerIsNotADelivery) {
  const std::string ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
  // The first request is answered; the second connection closes without a word (twice, the
  // transport's one fresh attempt included).
  CannedCollector collector({ok, "", ""});
  std::atomic<bool> stopping{false};
  auto t = MakeOtlpTransport(OtlpOptions(collector.port()), &stopping);
  auto c = t->Send({Msg(1, "a")});
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(*c, 1u);
  c = t->Send({Msg(2, "b")});
  EXPECT_FALSE(c.ok()) << "an unanswered request was taken for a delivery";
  EXPECT_EQ(t->confirmed(), 1u);
}

TEST(OtlpTransport, AnswersDelimitedByLengthOrByTheEndOfTheConnectionAndPartialSuccess) {
  CannedCollector collector({
      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
      R"({"partialSuccess":{"rejectedLogRecords":"2","errorMessage":"bad body"}})",
      "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy",
      "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n\r\n",
      "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
  });
  std::atomic<bool> stopping{false};
  auto t = MakeOtlpTransport(OtlpOptions(collector.port()), &stopping);
  auto c = t->Send({Msg(1, "a"), Msg(2, "b"), Msg(3, "c")});
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(*c, 3u);
  Rejected r = t->TakeRejected();
  EXPECT_EQ(r.count, 2u);
  EXPECT_EQ(r.first, 1u);
  EXPECT_EQ(r.last, 3u);
  EXPECT_NE(r.why.find("bad body"), std::string::npos) << r.why;
  c = t->Send({Msg(4, "d")});
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kUnavailable) << c.status().message();
  t->Reset();
  // Too large with more than one event: the exporter retries smaller.
  c = t->Send({Msg(4, "d"), Msg(5, "e")});
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kResourceExhausted) << c.status().message();
  t->Reset();
  // Unparseable alone: rejected, stepped past.
  c = t->Send({Msg(4, "d")});
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(*c, 4u);
  EXPECT_EQ(t->TakeRejected().first, 4u);
}

// librdkafka's mock cluster in this process: the idempotent producer delivers, and an event the
// cluster can never take (larger than message.max.bytes) is rejected once and stepped past, not
// retried for ever.
TEST(KafkaTransport, DeliversInOrderAndStepsPastAnEventTooLargeToEverSend) {
  std::array<char, 256> err{};
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_t* host = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err.data(), err.size());
  ASSERT_NE(host, nullptr) << err.data();
  rd_kafka_mock_cluster_t* cluster = rd_kafka_mock_cluster_new(host, 1);
  ASSERT_NE(cluster, nullptr);
  ASSERT_EQ(rd_kafka_mock_topic_create(cluster, "audit", 1, 1), RD_KAFKA_RESP_ERR_NO_ERROR);
  ExporterOptions o = Options();
  o.kind = Kind::kKafka;
  o.brokers = rd_kafka_mock_cluster_bootstraps(cluster);
  o.topic = "audit";
  o.kafka_properties = {{"message.max.bytes", "2000"}};
  std::atomic<bool> stopping{false};
  {
    auto t = MakeKafkaTransport(o, &stopping);
    ASSERT_TRUE(t.ok()) << t.status().message();
    auto c = (*t)->Send({Msg(1, "a"), Msg(2, "b")});
    ASSERT_TRUE(c.ok()) << c.status().message();
    EXPECT_EQ(*c, 2u);
    c = (*t)->Send({Msg(3, std::string(5000, 'x')), Msg(4, "d")});
    ASSERT_TRUE(c.ok()) << c.status().message();
    EXPECT_EQ(*c, 4u);
    Rejected r = (*t)->TakeRejected();
    EXPECT_EQ(r.count, 1u);
    EXPECT_EQ(r.first, 3u);
    EXPECT_NE(r.why.find("too large"), std::string::npos) << r.why;
    EXPECT_EQ((*t)->TakeRejected().count, 0u);
  }
  rd_kafka_mock_cluster_destroy(cluster);
  rd_kafka_destroy(host);
}

}  // namespace
}  // namespace dbw::exporter
