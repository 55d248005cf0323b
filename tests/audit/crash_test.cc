// Crash: a child writes events in sync mode and reports each committed seq through a pipe; it
// is SIGKILLed at fixed-seed random points. After reopen every reported seq is there and the
// chain verifies (and continues across every kill).
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "userspace/audit/store.h"

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

TEST(AuditCrashTest, CommittedEventsSurviveSigkill) {
  std::string dir =
      (std::filesystem::temp_directory_path() / ("dbw-crash-" + std::to_string(::getpid())))
          .string();
  std::filesystem::remove_all(dir);
  std::mt19937_64 rng(20240611);
  std::vector<uint64_t> reported;
  for (int round = 0; round < 5; ++round) {
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(fds[0]);
      Child(dir, fds[1]);
    }
    ::close(fds[1]);
    size_t kill_after = 50 + rng() % 400;  // committed events to see before the kill
    size_t seen = 0;
    uint64_t seq = 0;
    while (seen < kill_after) {
      ssize_t n = ::read(fds[0], &seq, sizeof(seq));
      if (n < 0 && errno == EINTR) continue;
      if (n != static_cast<ssize_t>(sizeof(seq))) {
        int status = 0;
        ::waitpid(pid, &status, 0);
        FAIL() << "child died early in round " << round << ": "
               << (WIFEXITED(status) ? "exit code " + std::to_string(WEXITSTATUS(status))
                                     : "signal " + std::to_string(WTERMSIG(status)))
               << " (2: open failed, 3: commit failed, 4: pipe write failed)";
      }
      reported.push_back(seq);
      ++seen;
    }
    ::kill(pid, SIGKILL);
    // Commits that finished between the last read and the kill are reported too.
    while (::read(fds[0], &seq, sizeof(seq)) == sizeof(seq)) reported.push_back(seq);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ::close(fds[0]);

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

}  // namespace
}  // namespace dbw::audit
