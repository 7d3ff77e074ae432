// The page server's wire format (ckpt page-server; dump and pre-dump
// --page-server). A connection opens with the handshake of wire_auth.h,
// then carries whole pages files, each framed:
//
//   FileHeader  magic "CKPTPSV1", kind kFile, the file's name (pages-PID.img
//               or pages-shmem-ID.img), its length (header page + data),
//               crc32c of the header
//   the file's bytes, exactly `length` (the pages stream of page_sink.h)
//   FileEnd     magic "CKPTPEND", the length again
//
// and the server answers each file with a Status once it is renamed into
// place (0) or refused (an errno). A kDone header ends the session. A file
// whose stream breaks off is never renamed into place, and a session that
// ends without kDone removes every file it put in place: a half-sent dump
// leaves nothing a restore would take (the dump, for its part, writes its
// inventory only after every file was acknowledged). Page data integrity is
// the runs' crc32c, checked at restore.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ckpt::image {

inline constexpr char kWireMagic[8] = {'C', 'K', 'P', 'T', 'P', 'S', 'V', '1'};
inline constexpr char kWireEndMagic[8] = {'C', 'K', 'P', 'T', 'P', 'E', 'N', 'D'};
inline constexpr size_t kWireMaxName = 64;

// ckpt migrate adds: kWireRound names the round (a subdirectory of the
// receiver's directory) the next files belong to; kWireRestore asks the
// receiver to restore that round and is answered by a WireRestored.
// The other direction (page-server --lazy-pages, lazy/remote_pages.h) adds
// kWireList, answered by a WireStatus, a count and a WireListEntry per
// pages file the server holds.
enum WireKind : uint32_t { kWireFile = 1, kWireDone = 2, kWireRound = 3, kWireRestore = 4, kWireList = 5 };

struct WireHeader {
  char magic[8];
  uint32_t kind;
  uint32_t name_len;
  uint64_t length;
  char name[kWireMaxName];
  uint32_t pad;
  uint32_t crc;  // crc32c of the bytes before it
};
static_assert(sizeof(WireHeader) == 96 && offsetof(WireHeader, crc) == 92);

// page-server --lazy-pages: `length` bytes at `offset` of pages file
// `name`, answered by a WireStatus and, if 0, exactly those bytes. The
// same size as a WireHeader: the server reads 96 bytes and looks at the magic.
inline constexpr char kWireReadMagic[8] = {'C', 'K', 'P', 'T', 'P', 'R', 'D', '1'};
inline constexpr uint64_t kWireMaxRead = 64 << 20;

struct WireRead {
  char magic[8];
  uint64_t offset;
  uint64_t length;
  char name[kWireMaxName];
  uint32_t name_len;
  uint32_t crc;  // crc32c of the bytes before it
};
static_assert(sizeof(WireRead) == sizeof(WireHeader) && offsetof(WireRead, crc) == 92);

struct WireListEntry {
  char name[kWireMaxName];
  uint32_t name_len;
  uint32_t pad;
  uint64_t length;
};

struct WireEnd {
  char magic[8];
  uint64_t length;
};

struct WireStatus {
  int32_t err;  // 0: in place
};

struct WireRestored {
  int32_t err;        // 0: the restored tree runs
  int32_t pid;        // its root, in the receiver's PID namespace
  char message[504];  // why not, NUL-terminated
};

}  // namespace ckpt::image
