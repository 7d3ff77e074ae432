// --psk-file (image/wire_auth.h): a page server or a migrate destination
// takes a checkpoint only from a peer that proves it holds the key, and a
// dump sends a process only to one that proves it too. Every mismatch
// fails before a page moves, and the process runs on.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "fmt/format.h"
#include "harness.h"

using namespace e2e;

namespace {

const std::string kWorkload = "dirtier";

std::vector<std::string> dump_args(pid_t pid, Harness& h, const PageServerRun& srv, const std::string& key) {
  std::vector<std::string> a = {"dump", "-t", std::to_string(pid), "-D", h.images()};
  for (const std::string& f : srv.flags()) a.push_back(f);
  if (!key.empty()) a.insert(a.end(), {"--psk-file", key});
  return a;
}

// A dump through a page server that wants `key` (and `tls` flags on both
// ends), then its images restored: the process checks every page.
void dump_through_server_and_restore(const std::vector<std::string>& tls) {
  Harness h;
  const std::string key = key_file(h, "key", "correct horse battery staple");
  pid_t pid = h.start_workload(kWorkload, {"64", "16"});
  ASSERT_GT(pid, 0);
  PageServerRun srv(h, h.images(), key, tls);
  std::vector<std::string> args = dump_args(pid, h, srv, key);
  args.insert(args.end(), tls.begin(), tls.end());
  CkptRun d = h.ckpt(args);
  CkptRun s = h.wait_ckpt(srv.pid);
  ASSERT_EQ(d.exit_code(), 0) << d.err << s.err;
  EXPECT_EQ(s.exit_code(), 0) << s.err;
  h.wait_child(pid);
  h.restore_expect_pass(pid, kWorkload);
}

TEST(WireKey, DumpWithTheServersKeyRestores) { dump_through_server_and_restore({}); }

// --tls on both ends: the pages go encrypted, and the images restore.
TEST(WireKey, DumpOverTlsRestores) { dump_through_server_and_restore({"--tls"}); }

// A page server with --tls and a dump without: refused, the process runs on.
TEST(WireKey, DumpWithoutTlsToATlsServerIsRefused) {
  Harness h;
  const std::string key = key_file(h, "key", "correct horse battery staple");
  pid_t pid = h.start_workload(kWorkload, {"64", "16"});
  ASSERT_GT(pid, 0);
  PageServerRun srv(h, h.images(), key, {"--tls"});
  CkptRun d = h.ckpt(dump_args(pid, h, srv, key));
  EXPECT_EQ(d.exit_code(), 1);
  EXPECT_NE(d.err.find("wants TLS: pass --tls"), std::string::npos) << d.err;
  EXPECT_EQ(h.wait_ckpt(srv.pid).exit_code(), 1);
  EXPECT_TRUE(alive(pid));
  EXPECT_EQ(tracer_of(pid), 0);
}

struct Mismatch {
  const char* name;
  const char* server_key;  // nullptr: none
  const char* dump_key;
  const char* dump_says;
};
// What ctest lists with the test's name, instead of the struct's bytes.
void PrintTo(const Mismatch& m, std::ostream* os) { *os << m.name; }

class WireKeyMismatch : public ::testing::TestWithParam<Mismatch> {};

TEST_P(WireKeyMismatch, RefusedBeforeAPageMovesAndTheProcessRuns) {
  const Mismatch& m = GetParam();
  Harness h;
  const std::string server_key = m.server_key ? key_file(h, "server.key", m.server_key) : "";
  const std::string dump_key = m.dump_key ? key_file(h, "dump.key", m.dump_key) : "";
  pid_t pid = h.start_workload(kWorkload, {"64", "16"});
  ASSERT_GT(pid, 0);
  PageServerRun srv(h, h.images(), server_key);
  CkptRun d = h.ckpt(dump_args(pid, h, srv, dump_key));
  EXPECT_NE(d.exit_code(), 0);
  EXPECT_NE(d.err.find(m.dump_says), std::string::npos) << d.err;
  CkptRun s = h.wait_ckpt(srv.pid);
  if (m.server_key) {
    EXPECT_NE(s.exit_code(), 0);
    EXPECT_NE(s.err.find("key"), std::string::npos) << s.err;
  }
  // Never touched: not traced, no parasite, and nothing to restore.
  ASSERT_TRUE(wait_ran_on(pid));
  EXPECT_EQ(tracer_of(pid), 0);
  EXPECT_FALSE(maps_but_parasite(pid).second);
  EXPECT_NE(access((h.images() + "/inventory.img").c_str(), F_OK), 0);
  EXPECT_NE(access(fmt::format("{}/pages-{}.img", h.images(), pid).c_str(), F_OK), 0);
  kill(pid, SIGTERM);
  int st = h.wait_child(pid);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << read_text(h.workload_log(kWorkload));
}

INSTANTIATE_TEST_SUITE_P(
    Cases, WireKeyMismatch,
    ::testing::Values(Mismatch{"another_key", "the server's own secret", "a guess of the attacker", "refused the key"},
                      Mismatch{"dump_without_key", "the server's own secret", nullptr, "wants a key"},
                      Mismatch{"server_without_key", nullptr, "a secret of the dump's", "runs without --psk-file"}),
    [](const auto& i) { return std::string(i.param.name); });

// A stranger who reaches the port of migrate --listen --psk-file and
// speaks the protocol, but has no key, gets nothing restored.
TEST(WireKey, StrangerAtMigrateListenIsRefused) {
  Harness h;
  const std::string key = key_file(h, "key", "the destination's secret key");
  const uint16_t port = free_port();
  pid_t m = h.ckpt_background({"migrate", "--listen", std::to_string(port), "--address", "127.0.0.1", "-D",
                               h.dir() + "/in", "--psk-file", key});
  ASSERT_TRUE(wait_until([&] { return listening(port); }));
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << strerror(errno);
  char hello[48];
  ASSERT_EQ(recv(s, hello, sizeof hello, MSG_WAITALL), static_cast<ssize_t>(sizeof hello));
  EXPECT_EQ(std::string(hello, 8), "CKPTHELO");
  uint32_t wants_key;
  std::memcpy(&wants_key, hello + 12, sizeof wants_key);
  EXPECT_EQ(wants_key, 1u);
  // A forged proof (a nonce and a MAC of zeros), then frames of a session.
  char forged[64] = {};
  ASSERT_EQ(send(s, forged, sizeof forged, MSG_NOSIGNAL), static_cast<ssize_t>(sizeof forged));
  char verdict[36];
  ASSERT_EQ(recv(s, verdict, sizeof verdict, MSG_WAITALL), static_cast<ssize_t>(sizeof verdict));
  int32_t err;
  std::memcpy(&err, verdict, sizeof err);
  EXPECT_EQ(err, EACCES);
  close(s);
  CkptRun r = h.wait_ckpt(m);
  EXPECT_NE(r.exit_code(), 0);
  EXPECT_NE(r.err.find("does not hold the key"), std::string::npos) << r.err;
  EXPECT_NE(access((h.dir() + "/in/final/inventory.img").c_str(), F_OK), 0);
}

// A key file others may read is no secret: refused before anything starts.
TEST(WireKey, KeyFileOthersCanReadIsRefused) {
  Harness h;
  const std::string key = key_file(h, "key", "a secret in the open");
  chmod(key.c_str(), 0644);
  CkptRun r = h.ckpt({"page-server", "-D", h.images(), "--port", std::to_string(free_port()), "--psk-file", key});
  EXPECT_NE(r.exit_code(), 0);
  EXPECT_NE(r.err.find("chmod 600"), std::string::npos) << r.err;
  EXPECT_NE(access(h.images().c_str(), F_OK), 0) << "made the directory anyway";
}

}  // namespace
