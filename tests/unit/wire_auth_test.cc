// image/wire_auth.h: the key file's checks and the handshake, both ends
// over a socketpair.
#include "image/wire_auth.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <string>

#include <gtest/gtest.h>

#include "base/unique_fd.h"

using namespace ckpt;
using namespace ckpt::image;

namespace {

class KeyFile : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ckpt-wirekey-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& text, mode_t mode = 0600) {
    const std::string p = dir_ + "/" + name;
    std::ofstream(p) << text;
    chmod(p.c_str(), mode);
    return p;
  }
  std::string dir_;
};

TEST_F(KeyFile, NoneWithoutAPath) {
  auto k = load_wire_key("");
  ASSERT_TRUE(k) << k.error().str();
  EXPECT_FALSE(k->has_value());
}

TEST_F(KeyFile, TrailingNewlineIsNotPartOfTheKey) {
  auto k = load_wire_key(write("k", "0123456789abcdef\n"));
  ASSERT_TRUE(k && k->has_value()) << (k ? "" : k.error().str());
  EXPECT_EQ((*k)->secret, "0123456789abcdef");
}

TEST_F(KeyFile, RefusedWhenOthersMayReadItTooShortOrALink) {
  auto open = load_wire_key(write("open", "0123456789abcdef", 0640));
  ASSERT_FALSE(open);
  EXPECT_EQ(open.error().err, EPERM);
  auto shrt = load_wire_key(write("short", "0123456789\n"));
  ASSERT_FALSE(shrt);
  EXPECT_EQ(shrt.error().err, EINVAL);
  const std::string target = write("target", "0123456789abcdef");
  ASSERT_EQ(symlink(target.c_str(), (dir_ + "/link").c_str()), 0);
  auto link = load_wire_key(dir_ + "/link");
  ASSERT_FALSE(link);
  EXPECT_EQ(link.error().err, ELOOP);
  auto missing = load_wire_key(dir_ + "/missing");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().err, ENOENT);
}

struct Ends {
  Result<void> server, client;
};

Ends handshake(const std::optional<WireKey>& server_key, const std::optional<WireKey>& client_key) {
  int sv[2];
  EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  UniqueFd s(sv[0]), c(sv[1]);
  auto server = std::async(std::launch::async, [&] {
    auto r = wire_hello_server(s.get(), server_key, "the client");
    shutdown(s.get(), SHUT_WR);  // a server that stops answers no more
    return r;
  });
  Ends e{{}, wire_hello_client(c.get(), client_key, "the server")};
  shutdown(c.get(), SHUT_WR);
  e.server = server.get();
  return e;
}

const WireKey kKey{"the key both ends hold"};
const WireKey kOther{"a key of someone else"};

TEST(WireHandshake, SameKeyOnBothEnds) {
  Ends e = handshake(kKey, kKey);
  EXPECT_TRUE(e.server) << e.server.error().str();
  EXPECT_TRUE(e.client) << e.client.error().str();
}

TEST(WireHandshake, NoKeyOnEitherEnd) {
  Ends e = handshake(std::nullopt, std::nullopt);
  EXPECT_TRUE(e.server);
  EXPECT_TRUE(e.client);
}

TEST(WireHandshake, AnotherKeyFailsBothEnds) {
  Ends e = handshake(kKey, kOther);
  ASSERT_FALSE(e.server);
  EXPECT_EQ(e.server.error().err, EACCES);
  ASSERT_FALSE(e.client);
  EXPECT_NE(e.client.error().str().find("refused the key"), std::string::npos) << e.client.error().str();
}

TEST(WireHandshake, OneKeyOnlyIsRefusedByTheClient) {
  Ends no_client_key = handshake(kKey, std::nullopt);
  ASSERT_FALSE(no_client_key.client);
  EXPECT_NE(no_client_key.client.error().str().find("wants a key"), std::string::npos);
  EXPECT_FALSE(no_client_key.server) << "the server took no proof as one";
  Ends no_server_key = handshake(std::nullopt, kKey);
  ASSERT_FALSE(no_server_key.client);
  EXPECT_NE(no_server_key.client.error().str().find("runs without --psk-file"), std::string::npos);
}

// A server that is not one (or is of an older ckpt): a clear error.
TEST(WireHandshake, NotACkptServer) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  UniqueFd s(sv[0]), c(sv[1]);
  const std::string junk(48, 'x');
  ASSERT_EQ(write(s.get(), junk.data(), junk.size()), 48);
  auto r = wire_hello_client(c.get(), kKey, "the server");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().err, EPROTO);
}

}  // namespace
