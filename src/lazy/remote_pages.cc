#include "lazy/remote_pages.h"

#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "base/fs.h"
#include "image/crc32c.h"
#include "image/page_server.h"
#include "image/page_store.h"
#include "image/page_wire.h"

namespace ckpt::lazy {

namespace {

constexpr size_t kChunk = 1 << 20;

std::string wire_name(const char* name, uint32_t len) {
  return std::string(name, std::min<size_t>(len, image::kWireMaxName));
}

}  // namespace

Result<RemotePages> RemotePages::open(const image::ImageDir& dir, const RemoteSource& source, Log& log) {
  image::PageServerConn conn = TRY(image::PageServerConn::connect(source.address, source.port, source.key));
  RemotePages r(dir, std::move(conn));
  const std::string& peer = r.conn_.peer();
  const image::WireHeader h = image::wire_header(image::kWireList, "", 0);
  TRY_CTX(write_all(r.conn_.fd(), &h, sizeof h), "page server {}", peer);
  image::WireStatus st{};
  uint32_t count = 0;
  TRY_CTX(read_exact(r.conn_.fd(), &st, sizeof st), "page server {}", peer);
  if (st.err) return error(st.err, "page server {} has no pages to serve", peer);
  TRY_CTX(read_exact(r.conn_.fd(), &count, sizeof count), "page server {}", peer);
  if (count > 1 << 20) return error(EPROTO, "page server {} lists {} files", peer, count);
  std::vector<image::WireListEntry> entries(count);
  TRY_CTX(read_exact(r.conn_.fd(), entries.data(), entries.size() * sizeof entries[0]), "page server {}", peer);
  for (const image::WireListEntry& e : entries) {
    const std::string name = wire_name(e.name, e.name_len);
    if (!image::pages_file_name(name) || e.length < image::kPagesDataOffset)
      return error(EPROTO, "page server {} lists '{}' ({} bytes), not a pages file", peer, name, e.length);
    TempFile tmp = TRY(dir.create_temp(name));
    if (ftruncate(tmp.fd(), static_cast<off_t>(e.length)) < 0) return sys_error("{}", dir.file(tmp.temp_name()));
    r.files_.push_back({name, e.length, std::move(tmp)});
    TRY(r.fetch_into(r.files_.back(), 0, image::kPagesDataOffset));
  }
  for (File& f : r.files_) {
    if (dir.exists(f.name)) log.warn("lazy-pages: {} is replaced by the page server's", dir.file(f.name));
    TRY(f.tmp.commit(false, TempFile::Replace::Yes));
  }
  log.info("lazy-pages: {} pages files at page server {}", r.files_.size(), peer);
  return r;
}

RemotePages::~RemotePages() {
  for (const File& f : files_) (void)dir_->dir().remove(f.name);
}

Result<void> RemotePages::bind(int fd, const std::string& name) {
  auto it = std::find_if(files_.begin(), files_.end(), [&](const File& f) { return f.name == name; });
  if (it == files_.end()) return error(ENOENT, "page server {} holds no {}", conn_.peer(), name);
  by_fd_[fd] = static_cast<size_t>(it - files_.begin());
  return {};
}

Result<void> RemotePages::fetch_all_but(const std::map<int, std::vector<std::pair<uint64_t, uint64_t>>>& lazy,
                                        std::span<const std::pair<int, std::pair<uint64_t, uint64_t>>> also) {
  for (size_t i = 0; i < files_.size(); i++) {
    // The runs of this file left to the daemon, if load_images opened it.
    const std::vector<std::pair<uint64_t, uint64_t>>* runs = nullptr;
    for (const auto& [fd, k] : by_fd_)
      if (k == i && lazy.contains(fd)) runs = &lazy.at(fd);
    uint64_t at = image::kPagesDataOffset;
    for (const auto& [off, len] : runs ? *runs : std::vector<std::pair<uint64_t, uint64_t>>{}) {
      if (off > at) TRY(fetch_into(files_[i], at, off - at));
      at = std::max(at, off + len);
    }
    if (files_[i].length > at) TRY(fetch_into(files_[i], at, files_[i].length - at));
  }
  for (const auto& [fd, range] : also) TRY(fetch(fd, range.first, range.second));
  return {};
}

Result<void> RemotePages::fetch(int fd, uint64_t off, uint64_t len) {
  auto it = by_fd_.find(fd);
  if (it == by_fd_.end()) return error(EINVAL, "fd {} is none of the page server's files", fd);
  return fetch_into(files_[it->second], off, len);
}

Result<void> RemotePages::fetch_into(const File& f, uint64_t off, uint64_t len) {
  if (off > f.length || len > f.length - off)
    return error(EINVAL, "{}: bytes {}..{} are past its {}", f.name, off, off + len, f.length);
  std::lock_guard<std::mutex> held(*lock_);
  std::vector<char>& buf = *buf_;
  const std::string what = fmt::format("{} from page server {}", f.name, conn_.peer());
  while (len) {
    const uint64_t n = std::min<uint64_t>(len, image::kWireMaxRead);
    image::WireRead rq{};
    std::memcpy(rq.magic, image::kWireReadMagic, sizeof rq.magic);
    rq.offset = off;
    rq.length = n;
    rq.name_len = static_cast<uint32_t>(f.name.size());
    std::memcpy(rq.name, f.name.data(), f.name.size());
    rq.crc = crc32c(&rq, offsetof(image::WireRead, crc));
    TRY_CTX(write_all(conn_.fd(), &rq, sizeof rq), "read {}", what);
    image::WireStatus st{};
    TRY_CTX(read_exact(conn_.fd(), &st, sizeof st), "read {}", what);
    if (st.err) return error(st.err, "page server {} refused to read {} bytes at {} of {}", conn_.peer(), n, off, f.name);
    for (uint64_t left = n; left;) {
      const size_t k = std::min<uint64_t>(left, buf.size());
      TRY_CTX(read_exact(conn_.fd(), buf.data(), k), "read {}", what);
      TRY_CTX(pwrite_all(f.tmp.fd(), buf.data(), k, static_cast<off_t>(off + n - left)), "{}", dir_->file(f.name));
      left -= k;
    }
    off += n;
    len -= n;
  }
  return {};
}

Result<void> RemotePages::done() { return conn_.done(); }

namespace {

// One session's requests on `conn`, until kWireDone.
Result<ServedReads> serve_reads(const image::ImageDir& dir, int conn, const std::vector<std::string>& names) {
  ServedReads s;
  std::map<std::string, std::pair<UniqueFd, uint64_t>> open;  // name -> (fd, length)
  for (const std::string& n : names) {
    UniqueFd fd = TRY(dir.open_read(n));
    struct stat st;
    if (fstat(fd.get(), &st) < 0) return sys_error("{}", dir.file(n));
    open[n] = {std::move(fd), static_cast<uint64_t>(st.st_size)};
  }
  for (;;) {
    union {
      image::WireHeader h;
      image::WireRead r;
    } m;
    TRY_CTX(read_exact(conn, &m, sizeof m), "read a request from the lazy-pages daemon");
    image::WireStatus st{0};
    if (std::memcmp(m.r.magic, image::kWireReadMagic, sizeof m.r.magic) == 0) {
      if (crc32c(&m.r, offsetof(image::WireRead, crc)) != m.r.crc) return error(EPROTO, "a damaged read request");
      const std::string name = wire_name(m.r.name, m.r.name_len);
      auto it = open.find(name);
      if (it == open.end() || m.r.length > image::kWireMaxRead || m.r.offset > it->second.second ||
          m.r.length > it->second.second - m.r.offset) {
        st.err = it == open.end() ? ENOENT : ERANGE;
        TRY(write_all(conn, &st, sizeof st));
        continue;  // the daemon says why; a bad request is not the end of the session
      }
      TRY(write_all(conn, &st, sizeof st));
      off_t off = static_cast<off_t>(m.r.offset);
      for (uint64_t left = m.r.length; left;) {
        const ssize_t n = sendfile(conn, it->second.first.get(), &off, left);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return n < 0 ? sys_error("send {}", dir.file(name)) : error(EIO, "{} shrank", dir.file(name));
        left -= static_cast<uint64_t>(n);
      }
      s.requests++;
      s.bytes += m.r.length;
      continue;
    }
    if (std::memcmp(m.h.magic, image::kWireMagic, sizeof m.h.magic) != 0 ||
        crc32c(&m.h, offsetof(image::WireHeader, crc)) != m.h.crc)
      return error(EPROTO, "not a ckpt lazy-pages daemon's request (bad frame header)");
    if (m.h.kind == image::kWireDone) {
      TRY(write_all(conn, &st, sizeof st));
      return s;
    }
    if (m.h.kind != image::kWireList) return error(EPROTO, "frame kind {} where reads were expected", m.h.kind);
    const uint32_t count = static_cast<uint32_t>(open.size());
    TRY(write_all(conn, &st, sizeof st));
    TRY(write_all(conn, &count, sizeof count));
    for (const auto& [name, f] : open) {
      image::WireListEntry e{};
      e.name_len = static_cast<uint32_t>(name.size());
      std::memcpy(e.name, name.data(), name.size());
      e.length = f.second;
      TRY(write_all(conn, &e, sizeof e));
    }
  }
}

}  // namespace

Result<ServedReads> serve_page_reads(const image::ImageDir& dir, const std::string& address, uint16_t port,
                                     const std::optional<image::WireKey>& key, Log& log) {
  signal(SIGPIPE, SIG_IGN);  // a daemon gone is an error on the connection
  // Only a finished checkpoint's pages: a directory being written, or none
  // at all, is refused before anyone connects.
  if (!dir.exists(image::kInventoryName))
    return error(ENOENT, "{} holds no checkpoint: {} is missing", dir.path(), image::kInventoryName);
  std::vector<std::string> names;
  for (std::string& n : TRY(dir.list_images()))
    if (image::pages_file_name(n)) names.push_back(std::move(n));
  UniqueFd listener = TRY(image::listen_on(address, port));
  log.info("page-server: listening on {}:{}, serving the pages of {} on demand", address.empty() ? "0.0.0.0" : address,
           port, dir.path());
  image::WireConn conn = TRY_CTX(image::accept_session(std::move(listener), key), "page server");
  return TRY_CTX(serve_reads(dir, conn.get(), names), "page server, lazy-pages daemon {}", conn.peer());
}

}  // namespace ckpt::lazy
