// Peer lookup over a real loopback connection made by this test process.
#include "userspace/identity/peer_process.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "userspace/identity/process_info.h"

namespace dbw::identity {
namespace {

// A listening loopback TCP socket on a free port; `addr` receives its address.
int LoopbackListener(sockaddr_in* addr, int backlog) {
  int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  *addr = sockaddr_in{};
  addr->sin_family = AF_INET;
  addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(addr), sizeof(*addr)), 0);
  EXPECT_EQ(::listen(listener, backlog), 0);
  socklen_t len = sizeof(*addr);
  ::getsockname(listener, reinterpret_cast<sockaddr*>(addr), &len);
  return listener;
}

// Connects a new socket to `addr`; `local` receives the socket's own end.
int ConnectTo(const sockaddr_in& addr, Endpoint* local) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  EXPECT_EQ(::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)), 0);
  sockaddr_in own{};
  socklen_t len = sizeof(own);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&own), &len);
  *local = Endpoint{"127.0.0.1", ntohs(own.sin_port)};
  return fd;
}

TEST(PeerProcessTest, FindsThisProcessBehindALoopbackConnection) {
  sockaddr_in addr{};
  int listener = LoopbackListener(&addr, 1);
  Endpoint c;
  int client = ConnectTo(addr, &c);
  Endpoint s{"127.0.0.1", ntohs(addr.sin_port)};
  auto info = FindPeerProcess(c, s);
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->pid, ::getpid());
  EXPECT_EQ(info->uid, ::getuid());
  EXPECT_FALSE(info->exe.empty());
  EXPECT_NE(info->exe.find("identity_test"), std::string::npos) << info->exe;
  EXPECT_FALSE(info->cgroup.empty());

  // Reversed endpoints name the server's accepted socket, which nobody has accepted yet:
  // it exists in the kernel but no process holds it.
  EXPECT_FALSE(FindPeerProcess(s, c).has_value());
  ::close(client);
  ::close(listener);
}

TEST(ProcessInfoTest, CmdlineKeepsItsShapeNotItsValues) {
  using namespace std::string_view_literals;
  EXPECT_EQ(CmdlineShape("psql\0-X\0-h\0db.internal\0-U\0app\0-c\0DELETE FROM t WHERE "
                         "email = 'a@b.c'\0"sv),
            "psql -X -h ? -U ? -c ?");
  EXPECT_EQ(CmdlineShape("/usr/bin/python3\0job.py\0--dsn=postgresql://u:secret@h/db\0"
                         "--verbose\0-p5432\0"sv),
            "/usr/bin/python3 ? --dsn=? --verbose -p?");
  EXPECT_EQ(CmdlineShape(""), "");
  std::string many;
  for (int i = 0; i < 1000; ++i) many += std::string("-x") + '\0';
  EXPECT_LE(CmdlineShape("prog\0" + many).size(), kMaxCmdline);

  // This process, read from /proc: its own arguments are there only as their shape.
  ProcessInfo self;
  ASSERT_TRUE(ReadProcessTree(::getpid(), &self));
  EXPECT_EQ(self.ppid, ::getppid());
  EXPECT_EQ(self.gid, ::getgid());
  EXPECT_NE(self.cmdline.find("identity_test"), std::string::npos) << self.cmdline;
  if (self.ppid > 1) {
    ASSERT_FALSE(self.parents.empty());
    EXPECT_EQ(self.parents[0].pid, self.ppid);
  }
}

TEST(PeerProcessTest, ABatchResolvesEveryConnectionWithOneScan) {
  sockaddr_in addr{};
  int listener = LoopbackListener(&addr, 64);
  Endpoint s{"127.0.0.1", ntohs(addr.sin_port)};
  std::vector<int> clients;
  std::vector<std::pair<Endpoint, Endpoint>> peers;
  for (int i = 0; i < 20; ++i) {
    Endpoint local;
    clients.push_back(ConnectTo(addr, &local));
    peers.push_back({local, s});
  }
  peers.push_back({{"127.0.0.1", 1}, s});     // nobody
  peers.push_back({s, peers.front().first});  // the un-accepted server side: no process
  auto found = FindPeerProcesses(peers);
  ASSERT_EQ(found.size(), peers.size());
  for (size_t i = 0; i < 20; ++i) {
    ASSERT_TRUE(found[i].has_value()) << i;
    EXPECT_EQ(found[i]->pid, ::getpid());
  }
  EXPECT_FALSE(found[20].has_value());
  EXPECT_FALSE(found[21].has_value());
  for (int c : clients) ::close(c);
  ::close(listener);
}

// The processes named as likely are looked at first; a wrong guess, or none, finds the same
// process, and so does a client that is this process (looked at last).
TEST(PeerProcessTest, LikelyProcessesAreOnlyAStartingPoint) {
  sockaddr_in addr{};
  int listener = LoopbackListener(&addr, 4);
  Endpoint s{"127.0.0.1", ntohs(addr.sin_port)};

  // A child holds one client socket (the parent closes its copy); this process the other.
  int ready[2];
  int release[2];
  ASSERT_EQ(::pipe(ready), 0);
  ASSERT_EQ(::pipe(release), 0);
  Endpoint from_child;
  int child_client = ConnectTo(addr, &from_child);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    char c = 0;
    (void)!::write(ready[1], &c, 1);
    (void)!::read(release[0], &c, 1);  // until the parent is done
    ::_exit(0);
  }
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ::close(child_client);
  Endpoint from_self;
  int own_client = ConnectTo(addr, &from_self);

  for (const std::vector<int32_t>& likely : std::vector<std::vector<int32_t>>{
           {}, {child}, {1}, {::getpid()}, {1, child, ::getpid(), child}}) {
    auto found = FindPeerProcesses({{from_child, s}, {from_self, s}}, likely);
    ASSERT_TRUE(found[0].has_value());
    EXPECT_EQ(found[0]->pid, child);
    ASSERT_TRUE(found[1].has_value());
    EXPECT_EQ(found[1]->pid, ::getpid());
  }
  (void)!::write(release[1], &c, 1);
  int status = 0;
  ::waitpid(child, &status, 0);
  for (int fd : {ready[0], ready[1], release[0], release[1], own_client, listener}) ::close(fd);
}

TEST(PeerProcessTest, UnknownEndpointsFindNothing) {
  EXPECT_FALSE(FindPeerProcess({"127.0.0.1", 1}, {"127.0.0.1", 2}).has_value());
  EXPECT_FALSE(FindPeerProcess({"not-an-ip", 1}, {"127.0.0.1", 2}).has_value());
}

}  // namespace
}  // namespace dbw::identity

namespace dbw::identity {
namespace {

TEST(CgroupTest, UnitAndContainer) {
  EXPECT_EQ(UnitFromCgroup("/system.slice/cron.service"), "cron.service");
  EXPECT_EQ(UnitFromCgroup("/user.slice/user-1000.slice/session-3.scope"), "session-3.scope");
  EXPECT_EQ(UnitFromCgroup("/"), "");
  const std::string id = "4f1c2a9b8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a1f0e9d8c7b6a5f4e3d2c1b";
  EXPECT_EQ(ContainerFromCgroup("/system.slice/docker-" + id + ".scope"), id);
  EXPECT_EQ(ContainerFromCgroup("/docker/" + id), id);
  EXPECT_EQ(ContainerFromCgroup("/kubepods.slice/kubepods-besteffort.slice/cri-containerd-" + id +
                                ".scope"),
            id);
  EXPECT_EQ(ContainerFromCgroup("/machine.slice/libpod-" + id + ".scope"), id);
  EXPECT_EQ(ContainerFromCgroup("/kubepods/besteffort/pod1234/" + id), id);
  EXPECT_EQ(ContainerFromCgroup("/system.slice/cron.service"), "");
  EXPECT_EQ(ContainerFromCgroup("/system.slice/docker-notanid.scope"), "");
}

// A cgroup id (the directory's inode, what BPF reports) resolves to its path while the cgroup
// exists, and to nothing after it is removed.
// The cgroup2 hierarchy's mount point (whole hierarchy), or "" when there is none.
std::string Cgroup2MountPoint() {
  std::ifstream mountinfo("/proc/self/mountinfo");
  std::string line;
  while (std::getline(mountinfo, line)) {
    size_t dash = line.find(" - cgroup2 ");
    if (dash == std::string::npos) continue;
    std::istringstream fields(line.substr(0, dash));
    std::string id, parent, dev, root, mount_point;
    if (fields >> id >> parent >> dev >> root >> mount_point && root == "/") return mount_point;
  }
  return "";
}

TEST(CgroupTest, PathById) {
  const std::filesystem::path root = Cgroup2MountPoint();
  if (::geteuid() != 0 || root.empty() || !std::filesystem::exists(root / "cgroup.procs"))
    GTEST_SKIP() << "needs root and a cgroup v2 hierarchy";
  const std::string name = "dbwarden-id-test-" + std::to_string(::getpid());
  const std::filesystem::path dir = root / name / "inner";
  std::filesystem::create_directories(dir);
  struct stat st {};
  ASSERT_EQ(::stat(dir.c_str(), &st), 0);
  EXPECT_EQ(CgroupPathById(st.st_ino), "/" + name + "/inner");
  struct stat top {};
  ASSERT_EQ(::stat(root.c_str(), &top), 0);
  EXPECT_EQ(CgroupPathById(top.st_ino), "/");
  std::filesystem::remove(dir);
  std::filesystem::remove(root / name);
  EXPECT_EQ(CgroupPathById(st.st_ino), "");
  EXPECT_EQ(CgroupPathById(0), "");
}

}  // namespace
}  // namespace dbw::identity
