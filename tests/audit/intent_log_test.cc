// IntentLog: entries come back from the file in order across the ring's wrap, a full ring
// refuses instead of overwriting what is not drained, and recovery stops at a torn or corrupt
// entry rather than returning it. Crc32c against the standard check value.
#include "userspace/audit/intent_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include <gtest/gtest.h>

namespace dbw::audit {
namespace {

std::string TempPath(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() / ("dbw-intent-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto path = dir / (name + ".log");
  std::filesystem::remove(path);
  return path.string();
}

std::string Payload(uint64_t i) {
  return "event " + std::to_string(i) + std::string(i % 37, 'x');
}

TEST(IntentLogTest, Crc32cMatchesTheCastagnoliCheckValue) {
  EXPECT_EQ(Crc32c(0, "123456789", 9), 0xE3069283u);
  // Split input gives the same value as whole (the hardware path's 8-byte steps and tail).
  std::string s(1000, 'a');
  for (size_t i = 0; i < s.size(); ++i) s[i] = static_cast<char>(i * 7);
  EXPECT_EQ(Crc32c(Crc32c(0, s.data(), 13), s.data() + 13, s.size() - 13),
            Crc32c(0, s.data(), s.size()));
}

TEST(IntentLogTest, RecoversUndrainedEntriesInOrderAcrossTheWrap) {
  const std::string path = TempPath("wrap");
  auto log = IntentLog::Create(path, 4096);
  ASSERT_TRUE(log.ok()) << log.status().ToString();
  // Append and drain past the end of the ring several times; leave the last 20 undrained.
  IntentLog::Appended at;
  uint64_t next = 1, drained_through = 0;
  for (; next <= 300; ++next) {
    ASSERT_TRUE((*log)->Append(Payload(next), &at)) << next;
    EXPECT_EQ(at.seq, next);
    if (next <= 280) {
      (*log)->Drained(at.end);
      drained_through = next;
    }
  }
  auto entries = IntentLog::Recover(path);
  ASSERT_TRUE(entries.ok()) << entries.status().ToString();
  ASSERT_EQ(entries->size(), 20u);
  for (size_t i = 0; i < entries->size(); ++i) {
    EXPECT_EQ((*entries)[i].seq, drained_through + 1 + i);
    EXPECT_EQ((*entries)[i].payload, Payload(drained_through + 1 + i));
  }
}

TEST(IntentLogTest, AFullRingRefusesWithoutOverwriting) {
  const std::string path = TempPath("full");
  auto log = IntentLog::Create(path, 4096);
  ASSERT_TRUE(log.ok());
  IntentLog::Appended at;
  const std::string payload(100, 'p');
  uint64_t appended = 0;
  while ((*log)->Append(payload, &at)) ++appended;
  EXPECT_GT(appended, 10u);
  EXPECT_LE(appended * (payload.size() + IntentLog::kEntryHeader), 4096u);
  auto entries = IntentLog::Recover(path);
  ASSERT_TRUE(entries.ok());
  EXPECT_EQ(entries->size(), appended) << "a refused append overwrote undrained entries";
  // Draining one entry makes room for one more.
  (*log)->Drained(IntentLog::kEntryHeader + payload.size() + 4);  // entry 1, 8-aligned
  EXPECT_TRUE((*log)->Append(payload, &at));
}

TEST(IntentLogTest, RecoveryStopsAtACorruptEntry) {
  const std::string path = TempPath("torn");
  uint64_t third_offset = 0;
  {
    auto log = IntentLog::Create(path, 8192);
    ASSERT_TRUE(log.ok());
    IntentLog::Appended at;
    for (uint64_t i = 1; i <= 5; ++i) {
      ASSERT_TRUE((*log)->Append(Payload(i), &at));
      if (i == 2) third_offset = at.end;
    }
  }
  // A byte of the third entry's payload flips (a write torn by a crash): 1 and 2 survive.
  int fd = ::open(path.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  const off_t at_byte =
      static_cast<off_t>(IntentLog::kHeaderSize + third_offset + IntentLog::kEntryHeader + 2);
  char c = 0;
  ASSERT_EQ(::pread(fd, &c, 1, at_byte), 1);
  c = static_cast<char>(c ^ 0x40);
  ASSERT_EQ(::pwrite(fd, &c, 1, at_byte), 1);
  ::close(fd);
  auto entries = IntentLog::Recover(path);
  ASSERT_TRUE(entries.ok());
  ASSERT_EQ(entries->size(), 2u);
  EXPECT_EQ((*entries)[1].payload, Payload(2));
}

TEST(IntentLogTest, AFileThatIsNotALogIsRefused) {
  const std::string path = TempPath("garbage");
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT, 0600);
  ASSERT_GE(fd, 0);
  std::string junk(IntentLog::kHeaderSize + 4096, 'j');
  ASSERT_EQ(::write(fd, junk.data(), junk.size()), static_cast<ssize_t>(junk.size()));
  ::close(fd);
  EXPECT_FALSE(IntentLog::Recover(path).ok());
}

}  // namespace
}  // namespace dbw::audit
