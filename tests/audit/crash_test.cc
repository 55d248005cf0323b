// Crash: a child writes events in sync mode and reports each committed seq through a pipe; it
// is SIGKILLed at fixed-seed random points. After reopen every reported seq is there and the
// chain verifies (and continues across every kill). The same for async events acknowledged
// from the producer's intent log: every acknowledged event is there after the restart's
// replay, exactly once.
#include <signal.h>
#include <simdjson.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "userspace/audit/store.h"
#include "userspace/common/metrics.h"

namespace dbw::audit {
namespace {

[[noreturn]] void Child(const std::string& dir, int fd) {
  StoreOptions o;
  o.dir = dir;
  o.durability = Durability::kSync;
  o.checkpoint_every_events = 20;
  o.retention = std::chrono::seconds(0);
  auto store = AuditStore::Open(o);
  if (!store.ok()) {
    std::fprintf(stderr, "child: %s\n", store.status().ToString().c_str());
    ::_exit(2);
  }
  // Many events in flight, as from many relay sessions, but bounded like them: a producer
  // that outruns the fsyncs would fill the queue and get kResourceExhausted.
  std::atomic<int> in_flight{0};
  constexpr int kWindow = 256;
  for (int i = 0;; ++i) {
    for (int n = in_flight.load(); n >= kWindow; n = in_flight.load()) in_flight.wait(n);
    in_flight.fetch_add(1);
    Event e;
    e.kind = EventKind::kAgentStart;
    e.source = "agent";
    e.detail = "crash test event " + std::to_string(i);
    (*store)->SubmitAndWait(std::move(e), [fd, &in_flight](const Status& s, uint64_t seq) {
      if (!s.ok()) {
        std::fprintf(stderr, "child: %s\n", s.ToString().c_str());
        ::_exit(3);
      }
      // Written only after the commit returned: the parent may trust every seq it reads.
      if (::write(fd, &seq, sizeof(seq)) != sizeof(seq)) ::_exit(4);
      in_flight.fetch_sub(1);
      in_flight.notify_one();
    });
  }
}

// Forks a child that runs `body(write_fd)` (never returning) and reports values through the
// pipe; reads `kill_after` of them, SIGKILLs the child and reads what it wrote before dying.
// `error` is set when the child died before reporting that many.
struct KilledChild {
  std::vector<uint64_t> reported;
  std::string error;
};
template <typename Body>
KilledChild RunAndKill(size_t kill_after, Body body) {
  KilledChild out;
  int fds[2];
  if (::pipe(fds) != 0) {
    out.error = "pipe failed";
    return out;
  }
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    body(fds[1]);
  }
  ::close(fds[1]);
  uint64_t v = 0;
  while (out.reported.size() < kill_after) {
    ssize_t n = ::read(fds[0], &v, sizeof(v));
    if (n < 0 && errno == EINTR) continue;
    if (n != static_cast<ssize_t>(sizeof(v))) {
      int status = 0;
      ::waitpid(pid, &status, 0);
      ::close(fds[0]);
      out.error = WIFEXITED(status) ? "exit code " + std::to_string(WEXITSTATUS(status))
                                    : "signal " + std::to_string(WTERMSIG(status));
      return out;
    }
    out.reported.push_back(v);
  }
  ::kill(pid, SIGKILL);
  // What the child reported between the last read and the kill counts too.
  while (::read(fds[0], &v, sizeof(v)) == sizeof(v)) out.reported.push_back(v);
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid) out.error = "waitpid failed";
  ::close(fds[0]);
  return out;
}

TEST(AuditCrashTest, CommittedEventsSurviveSigkill) {
  std::string dir =
      (std::filesystem::temp_directory_path() / ("dbw-crash-" + std::to_string(::getpid())))
          .string();
  std::filesystem::remove_all(dir);
  std::mt19937_64 rng(20240611);
  std::vector<uint64_t> reported;
  for (int round = 0; round < 5; ++round) {
    size_t kill_after = 50 + rng() % 400;  // committed events to see before the kill
    KilledChild run = RunAndKill(kill_after, [&dir](int fd) { Child(dir, fd); });
    ASSERT_EQ(run.error, "") << "child died early in round " << round
                             << " (exit 2: open failed, 3: commit failed, 4: pipe write failed)";
    reported.insert(reported.end(), run.reported.begin(), run.reported.end());

    auto store = AuditStore::OpenReadOnly(dir);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    for (uint64_t s : reported) {
      auto ev = (*store)->ReadAfter(s - 1, 1);
      ASSERT_TRUE(ev.ok());
      ASSERT_EQ(ev->size(), 1u);
      EXPECT_EQ(ev->front().seq, s) << "committed event lost in round " << round;
    }
    VerifyReport r = (*store)->Verify(std::nullopt, std::nullopt);
    EXPECT_TRUE(r.ok) << "round " << round << ": " << r.problem;
    EXPECT_GE(r.checked, reported.size());
  }
  // Seqs continue across kills without reuse.
  for (size_t i = 1; i < reported.size(); ++i) EXPECT_LT(reported[i - 1], reported[i]);
  std::filesystem::remove_all(dir);
}

// Async events through the intent path: each is acknowledged (inline) once it is in the
// thread's intent log, and reported by its number. The writer is far behind by design.
[[noreturn]] void IntentChild(const std::string& dir, int round, int fd) {
  StoreOptions o;
  o.dir = dir;
  o.durability = Durability::kAsync;
  o.retention = std::chrono::seconds(0);
  o.intent_log_bytes = 4 << 20;
  auto store = AuditStore::Open(o);
  if (!store.ok()) {
    std::fprintf(stderr, "child: %s\n", store.status().ToString().c_str());
    ::_exit(2);
  }
  for (uint64_t i = 0;; ++i) {
    Event e;
    e.kind = EventKind::kAgentStart;
    e.source = "agent";
    e.detail = "r" + std::to_string(round) + " intent " + std::to_string(i);
    std::atomic<bool> acked{false};
    (*store)->SubmitAndWait(std::move(e), [&acked, fd, i](const Status& s, uint64_t) {
      if (!s.ok()) ::_exit(3);
      if (::write(fd, &i, sizeof(i)) != sizeof(i)) ::_exit(4);
      acked.store(true);
    });
    // A full log waits for the writer: then the acknowledgement comes from its thread.
    while (!acked.load()) std::this_thread::yield();
  }
}

TEST(AuditCrashTest, IntentLoggedEventsSurviveSigkillExactlyOnce) {
  std::string dir =
      (std::filesystem::temp_directory_path() / ("dbw-intent-crash-" + std::to_string(::getpid())))
          .string();
  std::filesystem::remove_all(dir);
  std::mt19937_64 rng(20261207);
  std::set<std::string> acknowledged;
  Counter* replayed = MetricsRegistry::Global().GetCounter("dbwarden_audit_intent_replayed_total",
                                                           "Audit records replayed at start");
  const uint64_t replayed_before = replayed->value();
  for (int round = 0; round < 5; ++round) {
    const std::string prefix = "r" + std::to_string(round) + " intent ";
    const size_t kill_after = 2000 + rng() % 20000;
    KilledChild run =
        RunAndKill(kill_after, [&dir, round](int fd) { IntentChild(dir, round, fd); });
    ASSERT_EQ(run.error, "") << "child died early in round " << round;
    for (uint64_t i : run.reported) acknowledged.insert(prefix + std::to_string(i));

    // A writable open replays what the store's marks do not cover; a read-only one after it
    // sees the result.
    {
      StoreOptions o;
      o.dir = dir;
      o.retention = std::chrono::seconds(0);
      ASSERT_TRUE(AuditStore::Open(o).ok());
    }
    auto store = AuditStore::OpenReadOnly(dir);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    VerifyReport r = (*store)->Verify(std::nullopt, std::nullopt);
    EXPECT_TRUE(r.ok) << "round " << round << ": " << r.problem;
    std::multiset<std::string> stored;
    simdjson::dom::parser parser;
    for (uint64_t after = 0;;) {
      auto page = (*store)->ReadAfter(after, 4096);
      ASSERT_TRUE(page.ok());
      if (page->empty()) break;
      for (const auto& e : *page) {
        after = e.seq;
        auto detail = parser.parse(e.json)["detail"].get_string();
        if (!detail.error()) stored.emplace(detail.value());
      }
    }
    for (const std::string& a : acknowledged)
      ASSERT_EQ(stored.count(a), 1u) << a << " was acknowledged: it must be stored once";
    for (const std::string& d : stored)
      if (d.find(" intent ") != std::string::npos) {
        ASSERT_EQ(stored.count(d), 1u) << d << " is stored twice (replayed after its commit)";
      }
  }
  EXPECT_GT(replayed->value(), replayed_before) << "no round left anything to replay";
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace dbw::audit
