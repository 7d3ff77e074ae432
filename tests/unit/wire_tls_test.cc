// --tls (image/wire_tls.h): both ends with the key and --tls get a
// connection that carries bytes both ways (written, spliced), the bytes on
// the wire are not the bytes written, and every disagreement is refused.
#include "image/wire_tls.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <future>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "base/fs.h"
#include "base/unique_fd.h"

using namespace ckpt;
using namespace ckpt::image;

namespace {

const WireKey kTls{"the key both ends hold", true};
const WireKey kPlain{"the key both ends hold", false};

std::pair<UniqueFd, UniqueFd> socket_pair() {
  int sv[2];
  EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  return {UniqueFd(sv[0]), UniqueFd(sv[1])};
}

// Both ends of a session over `a` (server) and `b` (client).
std::pair<Result<WireConn>, Result<WireConn>> session(UniqueFd a, UniqueFd b, const WireKey& server_key,
                                                      const WireKey& client_key) {
  auto server = std::async(std::launch::async, [&] { return WireConn::server(std::move(a), server_key, "client"); });
  Result<WireConn> client = WireConn::client(std::move(b), client_key, "server");
  return {server.get(), std::move(client)};
}

std::string random_bytes(size_t n) {
  std::mt19937_64 rng(42);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

// The server echoes 8 MiB the client writes in part by write(2), in part by
// splice(2) from a pipe (how dump sends pages): the client reads back the same.
TEST(WireTls, CarriesBytesBothWaysWrittenAndSpliced) {
  auto [a, b] = socket_pair();
  auto [server, client] = session(std::move(a), std::move(b), kTls, kTls);
  ASSERT_TRUE(server) << server.error().str();
  ASSERT_TRUE(client) << client.error().str();
  const std::string data = random_bytes(8 << 20);
  auto echo = std::async(std::launch::async, [&s = *server, n = data.size()]() -> Result<void> {
    std::vector<char> buf(64 << 10);
    for (size_t left = n; left;) {
      const size_t k = std::min(left, buf.size());
      TRY(read_exact(s.get(), buf.data(), k));
      TRY(write_all(s.get(), buf.data(), k));
      left -= k;
    }
    return {};
  });
  auto send = std::async(std::launch::async, [&c = *client, &data]() -> Result<void> {
    const size_t half = data.size() / 2;
    TRY(write_all(c.get(), data.data(), half));
    int p[2];
    if (pipe(p) < 0) return sys_error("pipe");
    UniqueFd r(p[0]), w(p[1]);
    for (size_t off = half; off < data.size();) {
      const size_t k = std::min<size_t>(data.size() - off, 64 << 10);
      TRY(write_all(w.get(), data.data() + off, k));
      for (size_t moved = 0; moved < k;) {
        const ssize_t n = splice(r.get(), nullptr, c.get(), nullptr, k - moved, SPLICE_F_MOVE);
        if (n <= 0) return sys_error("splice");
        moved += static_cast<size_t>(n);
      }
      off += k;
    }
    return {};
  });
  std::string back(data.size(), '\0');
  auto got = read_exact(client->get(), back.data(), back.size());
  ASSERT_TRUE(got) << got.error().str();
  auto sent = send.get();
  ASSERT_TRUE(sent) << sent.error().str();
  auto echoed = echo.get();
  ASSERT_TRUE(echoed) << echoed.error().str();
  EXPECT_TRUE(back == data);
  // One end goes: the other reads EOF, and neither waits for ever.
  *server = WireConn();
  char c;
  EXPECT_EQ(read(client->get(), &c, 1), 0);
}

// What crosses the wire is not what was written: a tap between the ends
// records it.
TEST(WireTls, TheWireCarriesNoPlaintext) {
  auto [a, tap_a] = socket_pair();
  auto [tap_b, b] = socket_pair();
  std::string seen;
  std::thread tap([&, ta = std::move(tap_a), tb = std::move(tap_b)] {
    char buf[65536];
    for (;;) {
      pollfd fds[2] = {{ta.get(), POLLIN, 0}, {tb.get(), POLLIN, 0}};
      if (poll(fds, 2, 5000) <= 0) return;
      for (int i = 0; i < 2; i++) {
        if (!fds[i].revents) continue;
        const ssize_t n = read(fds[i].fd, buf, sizeof buf);
        if (n <= 0) return;
        if (i == 1) seen.append(buf, static_cast<size_t>(n));  // client -> server
        if (write(fds[1 - i].fd, buf, static_cast<size_t>(n)) != n) return;
      }
    }
  });
  const std::string secret = "the process's memory: " + std::string(4096, 'M');
  {
    auto [server, client] = session(std::move(a), std::move(b), kTls, kTls);
    ASSERT_TRUE(server) << server.error().str();
    ASSERT_TRUE(client) << client.error().str();
    ASSERT_TRUE(write_all(client->get(), secret.data(), secret.size()));
    std::string got(secret.size(), '\0');
    ASSERT_TRUE(read_exact(server->get(), got.data(), got.size()));
    EXPECT_EQ(got, secret);
  }
  tap.join();
  EXPECT_GT(seen.size(), secret.size());
  EXPECT_EQ(seen.find("the process's memory"), std::string::npos);
  EXPECT_EQ(seen.find(std::string(64, 'M')), std::string::npos);
}

// One end with --tls, the other without: refused, saying which.
TEST(WireTls, OneEndWithoutTlsIsRefused) {
  {
    auto [a, b] = socket_pair();
    auto [server, client] = session(std::move(a), std::move(b), kTls, kPlain);
    ASSERT_FALSE(client);
    EXPECT_NE(client.error().str().find("wants TLS: pass --tls"), std::string::npos) << client.error().str();
    EXPECT_FALSE(server);
  }
  {
    auto [a, b] = socket_pair();
    auto [server, client] = session(std::move(a), std::move(b), kPlain, kTls);
    ASSERT_FALSE(client);
    EXPECT_NE(client.error().str().find("runs without --tls"), std::string::npos) << client.error().str();
    EXPECT_FALSE(server);
  }
}

// Without --tls the session is the socket itself, as before.
TEST(WireTls, PlainSessionIsTheSocket) {
  auto [a, b] = socket_pair();
  const int fd = b.get();
  auto [server, client] = session(std::move(a), std::move(b), kPlain, kPlain);
  ASSERT_TRUE(server && client);
  EXPECT_EQ(client->get(), fd);
}

}  // namespace
