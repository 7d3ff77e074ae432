// Post-copy from another host: the pages files of a checkpoint stay where
// it was dumped, with `ckpt page-server -D DIR --lazy-pages` (the source),
// and `ckpt lazy-pages -D DIR --page-server --address A --port N` (the
// destination, whose DIR holds the checkpoint's other images) fetches
// what it needs from there over the page server's wire (image/page_wire.h:
// the same handshake and --psk-file, then kWireList and WireRead requests).
//
// The destination's pages files are made in place as sparse files of the
// source's length: the header and everything the restorers read themselves
// (memory that is not lazy: shared, file-backed, locked, ...) before the
// daemon takes restores, each lazy run the first time it is needed (a fault,
// the background push, the background check), whole, into its place. So
// the restore and the daemon read local files as ever, every run is checked
// against its checksum before a byte of it is served, and a run is fetched
// once. The files are removed when the daemon ends: a plain restore must
// not find them with holes.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "base/dir.h"
#include "base/log.h"
#include "base/result.h"
#include "image/image_dir.h"
#include "image/socket_sink.h"
#include "image/wire_auth.h"

namespace ckpt::lazy {

// Where the pages are: ckpt page-server --lazy-pages at address:port.
struct RemoteSource {
  std::string address;
  uint16_t port = 0;
  std::optional<image::WireKey> key;
};

class RemotePages {
 public:
  // Connects, and puts every pages file the server holds in place in `dir`
  // (its header fetched, holes for the rest), replacing one of that name.
  static Result<RemotePages> open(const image::ImageDir& dir, const RemoteSource& source, Log& log);
  RemotePages(RemotePages&&) = default;
  ~RemotePages();

  // The file `fd` is an open handle of (load_images opened each by name).
  Result<void> bind(int fd, const std::string& name);
  // Fetches everything of each file outside `lazy` (runs, by the fd bound
  // to their file, in offset order) and `also` (pieces the restorers read
  // inside lazy runs: a child's memory that is not lazy, inherited).
  Result<void> fetch_all_but(const std::map<int, std::vector<std::pair<uint64_t, uint64_t>>>& lazy,
                             std::span<const std::pair<int, std::pair<uint64_t, uint64_t>>> also);
  // [off, off + len) of the file bound to `fd` into its place. Thread-safe.
  Result<void> fetch(int fd, uint64_t off, uint64_t len);
  // Ends the session: the server exits.
  Result<void> done();

 private:
  struct File {
    std::string name;
    uint64_t length = 0;
    TempFile tmp;  // its write handle, open after the rename
  };
  RemotePages(const image::ImageDir& dir, image::PageServerConn conn) : dir_(&dir), conn_(std::move(conn)) {}
  Result<void> fetch_into(const File& f, uint64_t off, uint64_t len);

  const image::ImageDir* dir_;
  image::PageServerConn conn_;
  std::vector<File> files_;
  std::map<int, size_t> by_fd_;  // -> files_
  std::unique_ptr<std::mutex> lock_ = std::make_unique<std::mutex>();  // one request at a time
  std::unique_ptr<std::vector<char>> buf_ = std::make_unique<std::vector<char>>(1 << 20);  // under lock_
};

// The source: serves reads of DIR's pages files to one ckpt lazy-pages
// --page-server, until it says it is done. `key` as for serve_pages.
struct ServedReads {
  uint64_t requests = 0;
  uint64_t bytes = 0;
};
Result<ServedReads> serve_page_reads(const image::ImageDir& dir, const std::string& address, uint16_t port,
                                     const std::optional<image::WireKey>& key, Log& log);

}  // namespace ckpt::lazy
