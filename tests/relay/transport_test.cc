// Transport's plain-TCP reads over a real loopback connection: bytes arrive whole and in order
// however reads and writes interleave, bytes that arrived while no read was pending (their
// epoll edge already reported) are found by the next read, and end of stream, close and
// destruction complete or drop reads as they should. These guard any change to how the relay
// waits for its sockets (see docs/performance.md on Boost 1.74's speculative reads), and count
// the recv calls a read makes (draining_read.h: no failing recv after a short read).
#include "userspace/relay/transport.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace {
std::atomic<int> g_recv_calls{0};
}  // namespace

// Asio's reads call recv(); this binary's definition takes the place of libc's, so the tests
// can count them. It forwards to the system call.
extern "C" ssize_t recv(int fd, void* buf, size_t n, int flags) {
  g_recv_calls.fetch_add(1);
  return syscall(SYS_recvfrom, fd, buf, n, flags, nullptr, nullptr);
}

namespace dbw::relay {
namespace {

class TransportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tcp::acceptor acceptor(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    peer_.connect(acceptor.local_endpoint());
    transport_ = std::make_unique<Transport>(acceptor.accept());
  }

  void Send(const std::string& s) { asio::write(peer_, asio::buffer(s)); }

  // Starts a read into `buf`; `done` and the results are set by the handler.
  void StartRead(size_t size) {
    buf_.assign(size, '\0');
    done_ = false;
    transport_->AsyncReadSome(asio::buffer(buf_),
                              [this](const boost::system::error_code& ec, size_t n) {
                                done_ = true;
                                ec_ = ec;
                                got_.append(buf_.data(), n);
                              });
  }

  // Runs the loop until the read completes or a second passes.
  bool RunUntilDone() {
    for (int i = 0; i < 1000 && !done_; ++i) {
      io_.restart();
      io_.run_for(std::chrono::milliseconds(1));
    }
    return done_;
  }

  asio::io_context io_;
  tcp::socket peer_{io_};
  std::unique_ptr<Transport> transport_;
  std::string buf_;
  std::string got_;
  bool done_ = false;
  boost::system::error_code ec_;
};

TEST_F(TransportTest, ReadCompletesWhenDataArrivesLater) {
  StartRead(64);
  io_.poll();  // nothing there yet: the read waits
  EXPECT_FALSE(done_);
  Send("hello");
  ASSERT_TRUE(RunUntilDone());
  EXPECT_FALSE(ec_);
  EXPECT_EQ(got_, "hello");
}

TEST_F(TransportTest, HandlerIsNeverCalledInsideTheRead) {
  Send("ready");
  // Give the bytes time to land, so the read finds them at once.
  for (int i = 0; i < 100 && peer_.available() == 0; ++i) io_.run_for(std::chrono::milliseconds(1));
  StartRead(64);
  EXPECT_FALSE(done_);
  ASSERT_TRUE(RunUntilDone());
  EXPECT_EQ(got_, "ready");
}

// After a short read nothing reads for a while, the loop runs (epoll reports the next bytes'
// edge with no read pending), and only then a read starts. It must find the bytes rather than
// wait for an edge that already passed.
TEST_F(TransportTest, EdgeReportedWhileNoReadIsPendingIsNotLost) {
  Send("first");
  StartRead(64);
  ASSERT_TRUE(RunUntilDone());
  ASSERT_EQ(got_, "first");
  Send("second");
  for (int i = 0; i < 20; ++i) {
    io_.restart();
    io_.run_for(std::chrono::milliseconds(1));  // the edge is reported now, no read pending
  }
  got_.clear();
  StartRead(64);
  ASSERT_TRUE(RunUntilDone()) << "the read waited for an edge that had passed";
  EXPECT_EQ(got_, "second");
}

// Bytes that are on the socket by the time the loop has seen their edge.
void WaitUntilAvailable(asio::io_context& io, Transport& t, size_t n) {
  for (int i = 0; i < 1000 && t.socket().available() < n; ++i) {
    io.restart();
    io.run_for(std::chrono::milliseconds(1));
  }
}

// A short read drained the socket: the next read waits for the edge of new bytes instead of
// first calling recv to be told EAGAIN (half of the relay's recv calls before).
TEST_F(TransportTest, AfterAShortReadTheNextReadWaitsWithoutCallingRecv) {
  Send("abc");
  WaitUntilAvailable(io_, *transport_, 3);
  StartRead(64);
  ASSERT_TRUE(RunUntilDone());
  ASSERT_EQ(got_, "abc");
  const int after_first = g_recv_calls.load();
  StartRead(64);
  for (int i = 0; i < 5; ++i) io_.poll();
  EXPECT_FALSE(done_);
  EXPECT_EQ(g_recv_calls.load(), after_first) << "a recv was tried on a drained socket";
  Send("def");
  ASSERT_TRUE(RunUntilDone());
  EXPECT_EQ(got_, "abcdef");
  EXPECT_EQ(g_recv_calls.load(), after_first + 1);
}

// A read that filled its buffer may have left bytes behind, and their edge has passed: the next
// read must try at once and find them.
TEST_F(TransportTest, AfterAFullReadTheNextReadTriesAtOnce) {
  Send("0123456789AB");
  WaitUntilAvailable(io_, *transport_, 12);
  StartRead(8);
  ASSERT_TRUE(RunUntilDone());
  ASSERT_EQ(got_, "01234567");
  StartRead(64);
  ASSERT_TRUE(RunUntilDone()) << "bytes left by a full read were not read";
  EXPECT_EQ(got_, "0123456789AB");
}

TEST_F(TransportTest, ManyWritesArriveWholeAndInOrderThroughSmallReads) {
  std::string sent;
  for (int i = 0; i < 200; ++i) sent += "message " + std::to_string(i) + ";";
  std::string rest = sent;
  // Writes in uneven pieces while reads of 7 bytes (a full buffer: read again at once) run.
  size_t piece = 1;
  while (got_.size() < sent.size()) {
    if (!rest.empty()) {
      size_t n = std::min(piece, rest.size());
      Send(rest.substr(0, n));
      rest.erase(0, n);
      piece = piece % 13 + 1;
    }
    StartRead(7);
    ASSERT_TRUE(RunUntilDone());
    ASSERT_FALSE(ec_) << ec_.message();
  }
  EXPECT_EQ(got_, sent);
}

TEST_F(TransportTest, EndOfStreamIsEof) {
  Send("bye");
  peer_.shutdown(tcp::socket::shutdown_send);
  StartRead(64);
  ASSERT_TRUE(RunUntilDone());
  EXPECT_EQ(got_, "bye");
  StartRead(64);
  ASSERT_TRUE(RunUntilDone());
  EXPECT_EQ(ec_, asio::error::eof);
}

TEST_F(TransportTest, CloseAbortsAPendingRead) {
  StartRead(64);
  io_.poll();
  ASSERT_FALSE(done_);
  transport_->Close();
  ASSERT_TRUE(RunUntilDone());
  EXPECT_EQ(ec_, asio::error::operation_aborted);
}

// Destroyed after a read while the peer keeps sending: nothing may touch the destroyed object
// (ASan watches this one).
TEST_F(TransportTest, DestroyedWithAWaitQueued) {
  Send("x");
  StartRead(64);
  ASSERT_TRUE(RunUntilDone());
  transport_.reset();
  Send("more");
  io_.restart();
  io_.run_for(std::chrono::milliseconds(20));
  SUCCEED();
}

}  // namespace
}  // namespace dbw::relay
