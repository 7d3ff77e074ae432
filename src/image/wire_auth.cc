#include "image/wire_auth.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cstring>

#include "base/fs.h"
#include "base/unique_fd.h"
#include "image/openssl.h"

namespace ckpt::image {

namespace {

constexpr char kHelloMagic[8] = {'C', 'K', 'P', 'T', 'H', 'E', 'L', 'O'};
constexpr uint32_t kHelloVersion = 2;  // 2: `wants` says whether TLS follows
constexpr size_t kMinKey = 16, kMaxKey = 4096;
constexpr time_t kHandshakeTimeoutS = HandshakeTimeout::kSeconds;

using Nonce = std::array<uint8_t, 32>;
using Mac = Sha256;

struct Hello {  // server -> client
  enum Wants : uint32_t { kKey = 1, kTls = 2 };
  char magic[8];
  uint32_t version;
  uint32_t wants;
  Nonce nonce;
};
struct Proof {  // client -> server
  Nonce nonce;
  Mac mac;
};
struct Verdict {  // server -> client
  int32_t err;  // 0: the client's proof holds
  Mac mac;
};

Result<Nonce> fresh_nonce() {
  Nonce n;
  if (getrandom(n.data(), n.size(), 0) != static_cast<ssize_t>(n.size())) return sys_error("getrandom");
  return n;
}

Mac mac_of(const OpenSsl& o, const WireKey& key, const char* role, const Nonce& first, const Nonce& second) {
  std::string msg(role);
  msg.append(reinterpret_cast<const char*>(first.data()), first.size());
  msg.append(reinterpret_cast<const char*>(second.data()), second.size());
  return hmac_sha256(o, key.secret, msg);
}

bool same(const OpenSsl& o, const Mac& a, const Mac& b) { return o.CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0; }

Result<void> receive(int fd, void* p, size_t n, const std::string& peer, const char* what) {
  auto r = read_exact(fd, p, n);
  if (!r && (r.error().err == EAGAIN || r.error().err == EWOULDBLOCK))
    return error(ETIMEDOUT, "{}: no {} within {} s", peer, what, kHandshakeTimeoutS);
  if (!r) return std::unexpected(std::move(r.error().context(fmt::format("{}: {}", peer, what))));
  return {};
}

}  // namespace

HandshakeTimeout::HandshakeTimeout(int fd) : fd_(fd) {
  timeval tv{kSeconds, 0};
  (void)setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

HandshakeTimeout::~HandshakeTimeout() {
  timeval tv{0, 0};
  (void)setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

std::string peer_of(int fd) {
  sockaddr_storage a{};
  socklen_t len = sizeof a;
  char host[INET6_ADDRSTRLEN] = "?";
  uint16_t port = 0;
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    if (a.ss_family == AF_INET) {
      const auto* in = reinterpret_cast<const sockaddr_in*>(&a);
      inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
      port = ntohs(in->sin_port);
    } else if (a.ss_family == AF_INET6) {
      const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&a);
      inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
      port = ntohs(in6->sin6_port);
    }
  }
  return fmt::format("{}:{}", host, port);
}

Result<std::optional<WireKey>> load_wire_key(const std::string& path, bool tls) {
  if (path.empty() && tls) return error(EINVAL, "--tls needs --psk-file: the key TLS is keyed with");
  if (path.empty()) return std::optional<WireKey>{};
  const int fd = open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) return sys_error("--psk-file {}", path);
  UniqueFd f(fd);
  struct stat st;
  if (fstat(fd, &st) < 0) return sys_error("--psk-file {}", path);
  if (!S_ISREG(st.st_mode)) return error(EINVAL, "--psk-file {}: not a regular file", path);
  if (st.st_uid != geteuid())
    return error(EPERM, "--psk-file {}: owned by uid {}, not by ckpt's user ({})", path, st.st_uid, geteuid());
  if (st.st_mode & (S_IRWXG | S_IRWXO))
    return error(EPERM, "--psk-file {}: mode {:04o} lets others read or change the key (chmod 600 it)", path,
                 st.st_mode & 07777);
  if (st.st_size > static_cast<off_t>(kMaxKey))
    return error(EINVAL, "--psk-file {}: {} bytes, more than a key of at most {}", path, st.st_size, kMaxKey);
  std::string secret = TRY_CTX(read_fd(fd, path, static_cast<size_t>(st.st_size)), "--psk-file");
  if (secret.ends_with('\n')) secret.pop_back();
  if (secret.size() < kMinKey)
    return error(EINVAL, "--psk-file {}: a key of {} bytes, fewer than {} (e.g. head -c 32 /dev/urandom | "
                 "base64 > FILE)", path, secret.size(), kMinKey);
  TRY(openssl());  // a key is used through OpenSSL: missing, it is an error before any work
  return std::optional<WireKey>{WireKey{std::move(secret), tls}};
}

Result<void> wire_hello_server(int fd, const std::optional<WireKey>& key, const std::string& peer) {
  HandshakeTimeout timeout(fd);
  Hello h{};
  std::memcpy(h.magic, kHelloMagic, sizeof h.magic);
  h.version = kHelloVersion;
  h.wants = (key ? uint32_t{Hello::kKey} : 0u) | (key && key->tls ? uint32_t{Hello::kTls} : 0u);
  h.nonce = TRY(fresh_nonce());
  TRY_CTX(write_all(fd, &h, sizeof h), "{}: hello", peer);
  if (!key) return {};
  const OpenSsl& o = *TRY(openssl());
  Proof p;
  TRY(receive(fd, &p, sizeof p, peer, "proof of the key"));
  Verdict v{};
  if (!same(o, p.mac, mac_of(o, *key, "ckpt client", h.nonce, p.nonce))) {
    v.err = EACCES;
    (void)write_all(fd, &v, sizeof v);
    return error(EACCES, "{} does not hold the key of --psk-file: refused", peer);
  }
  v.mac = mac_of(o, *key, "ckpt server", p.nonce, h.nonce);
  TRY_CTX(write_all(fd, &v, sizeof v), "{}: verdict", peer);
  return {};
}

Result<void> wire_hello_client(int fd, const std::optional<WireKey>& key, const std::string& peer) {
  HandshakeTimeout timeout(fd);
  Hello h;
  TRY(receive(fd, &h, sizeof h, peer, "hello (is it a ckpt page server or migrate --listen of this version?)"));
  if (std::memcmp(h.magic, kHelloMagic, sizeof h.magic) != 0 || h.version != kHelloVersion)
    return error(EPROTO, "{}: not a ckpt page server or migrate --listen of this version", peer);
  if ((h.wants & Hello::kKey) && !key) return error(EACCES, "{} wants a key: pass the one it has with --psk-file", peer);
  if (!(h.wants & Hello::kKey) && key)
    return error(EACCES, "{} runs without --psk-file, so it can't prove it holds the key: refusing to send it a "
                 "process", peer);
  if (!key) return {};
  if ((h.wants & Hello::kTls) && !key->tls) return error(EPROTO, "{} wants TLS: pass --tls", peer);
  if (!(h.wants & Hello::kTls) && key->tls)
    return error(EPROTO, "{} runs without --tls: refusing to move a process in clear", peer);
  const OpenSsl& o = *TRY(openssl());
  Proof p;
  p.nonce = TRY(fresh_nonce());
  p.mac = mac_of(o, *key, "ckpt client", h.nonce, p.nonce);
  TRY_CTX(write_all(fd, &p, sizeof p), "{}: proof of the key", peer);
  Verdict v;
  TRY(receive(fd, &v, sizeof v, peer, "verdict on the key"));
  if (v.err != 0) return error(v.err, "{} refused the key of --psk-file: it holds another", peer);
  if (!same(o, v.mac, mac_of(o, *key, "ckpt server", p.nonce, h.nonce)))
    return error(EACCES, "{} does not hold the key of --psk-file: refusing to send it a process", peer);
  return {};
}

}  // namespace ckpt::image
