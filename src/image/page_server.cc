#include "image/page_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <signal.h>
#include <unistd.h>

#include <charconv>
#include <cstring>
#include <vector>

#include "base/fs.h"
#include "image/crc32c.h"
#include "image/page_store.h"
#include "image/page_wire.h"

namespace ckpt::image {

namespace {

constexpr size_t kChunk = 1 << 20;

}  // namespace

Result<void> read_exact(int fd, void* p, size_t n, const char* what) {
  TRY_CTX(ckpt::read_exact(fd, p, n), "read {} from the dump", what);
  return {};
}

bool pages_file_name(std::string_view n) {
  for (std::string_view prefix : {"pages-shmem-", "pages-"}) {
    if (!n.starts_with(prefix) || !n.ends_with(".img")) continue;
    std::string_view num = n.substr(prefix.size(), n.size() - prefix.size() - 4);
    uint64_t v;
    if (!num.empty() && std::from_chars(num.data(), num.data() + num.size(), v).ptr == num.data() + num.size())
      return true;
  }
  return false;
}

Result<UniqueFd> listen_on(const std::string& address, uint16_t port) {
  UniqueFd s(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!s) return sys_error("socket");
  int one = 1;
  (void)setsockopt(s.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  // Answers are small writes after small reads: without it, Nagle waits for
  // the peer's delayed ACK, 40 ms a frame. Accepted connections inherit it.
  (void)setsockopt(s.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_ANY);
  if (!address.empty() && inet_pton(AF_INET, address.c_str(), &a.sin_addr) != 1)
    return error(EINVAL, "page server: {} is not an IPv4 address", address);
  if (bind(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) < 0)
    return sys_error("page server: bind {}:{}", address.empty() ? "0.0.0.0" : address, port);
  if (listen(s.get(), 1) < 0) return sys_error("page server: listen");
  return s;
}

Result<WireConn> accept_session(UniqueFd listener, const std::optional<WireKey>& key) {
  UniqueFd conn;
  for (;;) {
    conn = UniqueFd(accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (conn || errno != EINTR) break;
  }
  if (!conn) return sys_error("accept");
  listener.reset();
  const std::string peer = peer_of(conn.get());
  return WireConn::server(std::move(conn), key, peer);
}

namespace {

// A metadata image's name: lower-case words and a number, ".img".
bool image_file_name(std::string_view n) {
  if (!n.ends_with(".img") || n.size() <= 4) return false;
  n.remove_suffix(4);
  return n.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-") == std::string_view::npos &&
         n.front() >= 'a' && n.front() <= 'z';
}

}  // namespace

Result<uint64_t> receive_file(ImageDir& dir, int conn, const WireHeader& h, Accept accept) {
  if (h.name_len == 0 || h.name_len > kWireMaxName) return error(EPROTO, "a file name of {} bytes", h.name_len);
  const std::string name(h.name, h.name_len);
  const bool pages = pages_file_name(name);
  if (!pages && !(accept == Accept::Images && image_file_name(name)))
    return error(EPERM, "'{}' is not the name of a {}", name, accept == Accept::Images ? "ckpt image" : "pages file");
  if (pages && h.length < kPagesDataOffset) return error(EPROTO, "{}: {} bytes is shorter than its header", name, h.length);
  TempFile tmp = TRY(dir.create_temp(name));
  std::vector<char> buf(kChunk);
  for (uint64_t left = h.length; left > 0;) {
    const size_t n = std::min<uint64_t>(left, buf.size());
    TRY_CTX(read_exact(conn, buf.data(), n, name.c_str()), "{}", dir.file(name));
    TRY_CTX(write_all(tmp.fd(), buf.data(), n), "{}", dir.file(name));
    left -= n;
  }
  WireEnd e;
  TRY(read_exact(conn, &e, sizeof e, "the end of a file"));
  if (std::memcmp(e.magic, kWireEndMagic, sizeof e.magic) != 0 || e.length != h.length)
    return error(EPROTO, "{}: the stream does not end as announced", name);
  // Metadata images carry their own checksum, checked where they are read.
  if (!pages) {
    TRY(dir.commit(tmp));
    return h.length;
  }
  // The temporary is write-only: its header is read through a new handle.
  UniqueFd rd = TRY(dir.open_read(tmp.temp_name()));
  const uint64_t data = TRY(check_pages_file(dir.file(tmp.temp_name()), rd.get()));
  if (data + kPagesDataOffset != h.length)
    return error(EPROTO, "{}: its header says {} bytes of pages, {} came", name, data, h.length - kPagesDataOffset);
  TRY(dir.commit(tmp));
  return h.length;
}


Result<ServedSession> serve_pages(ImageDir& dir, const std::string& address, uint16_t port,
                                  const std::optional<WireKey>& key, Log& log) {
  signal(SIGPIPE, SIG_IGN);  // a dump gone is an error on the connection
  UniqueFd listener = TRY(listen_on(address, port));
  log.info("page-server: listening on {}:{}, images into {}", address.empty() ? "0.0.0.0" : address, port, dir.path());
  WireConn conn = TRY_CTX(accept_session(std::move(listener), key), "page server");
  ServedSession s;
  bool done = false;
  auto session = [&]() -> Result<void> {
    for (;;) {
      WireHeader h;
      TRY(read_exact(conn.get(), &h, sizeof h, "a frame header"));
      if (std::memcmp(h.magic, kWireMagic, sizeof h.magic) != 0 || crc32c(&h, offsetof(WireHeader, crc)) != h.crc)
        return error(EPROTO, "not a ckpt page stream (bad frame header)");
      WireStatus st{0};
      if (h.kind == kWireDone) {
        done = true;
        TRY(write_all(conn.get(), &st, sizeof st));
        return {};
      }
      if (h.kind != kWireFile) return error(EPROTO, "unknown frame kind {}", h.kind);
      auto got = receive_file(dir, conn.get(), h, Accept::Pages);
      st.err = got ? 0 : (got.error().err ? got.error().err : EIO);
      (void)write_all(conn.get(), &st, sizeof st);
      if (!got) return std::unexpected(got.error());
      s.files++;
      s.bytes += *got;
    }
  };
  auto r = session();
  if (!r || !done) {
    // A session that did not end as one: nothing of it stays.
    dir.remove_written();
    return std::unexpected(r ? Error{ECONNRESET, "page server: the session did not end"} : r.error());
  }
  return s;
}

}  // namespace ckpt::image
