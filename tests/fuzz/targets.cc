#include "targets.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <string_view>

#include "base/fs.h"
#include "base/unique_fd.h"
#include "ckpt.pb.h"
#include "image/crc32c.h"
#include "image/image_file.h"
#include "image/messages.h"
#include "image/page_store.h"
#include "image/verify.h"
#include "proc/maps.h"
#include "proc/numa_maps.h"
#include "proc/smaps.h"
#include "proc/status.h"
#include "proc/timers.h"

namespace ckpt::fuzz {

namespace {

// Takes a u32-length-prefixed record off the front of `in`.
std::string_view take_record(std::string_view& in) {
  uint32_t n = 0;
  if (in.size() < sizeof n) {
    in = {};
    return {};
  }
  std::memcpy(&n, in.data(), sizeof n);
  in.remove_prefix(sizeof n);
  std::string_view rec = in.substr(0, n);
  in.remove_prefix(rec.size());
  return rec;
}

bool parse(std::string_view bytes, google::protobuf::MessageLite* m) {
  return m->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
}

}  // namespace

int unframe(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  std::string file(reinterpret_cast<const char*>(data) + 1, size - 1);
  // Bit 7 of byte 0: put right checksums into the header first, so that the
  // fuzzer gets past them to the version, kind, length and payload checks.
  if (data[0] & 0x80 && file.size() >= image::kHeaderSize) {
    uint32_t payload_crc = crc32c(file.data() + image::kHeaderSize, file.size() - image::kHeaderSize);
    std::memcpy(file.data() + 24, &payload_crc, 4);
    uint32_t header_crc = crc32c(file.data(), 28);
    std::memcpy(file.data() + 28, &header_crc, 4);
  }
  const uint8_t pick = data[0] & 0x7f;
  auto kind = static_cast<image::ImageKind>(pick);
  if (pick < 1 || pick > 6) {
    auto peeked = image::peek_kind("fuzz.img", file);
    if (!peeked) return 0;
    kind = *peeked;
  }
  auto msg = image::new_message(kind);
  if (!msg) return 0;
  auto r = image::unframe("fuzz.img", file, kind, msg.get());
  if (r) {
    // What was accepted frames back to the same bytes' meaning.
    std::string again = image::frame(kind, *msg);
    auto copy = image::new_message(kind);
    if (!image::unframe("again.img", again, kind, copy.get())) __builtin_trap();
  }
  return 0;
}

int pages(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  img::PageMap pm;
  if (!parse(take_record(in), &pm)) return 0;
  UniqueFd fd(memfd_create("fuzz-pages", MFD_CLOEXEC));
  if (!fd || !write_all(fd.get(), in.data(), in.size())) return 0;
  auto bytes = image::check_pages_file("pages-1.img", fd.get());
  if (!bytes) return 0;
  (void)image::verify_pages_file("pages-1.img", fd.get(), pm);
  return 0;
}

int proc(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 7) {
    case 0: (void)proc::parse_maps(text); break;
    case 1: (void)proc::parse_status(text); break;
    case 2: (void)proc::parse_stat(text); break;
    case 3: (void)proc::parse_fdinfo(text); break;
    case 4: (void)proc::parse_timers(text); break;
    case 5: (void)proc::parse_smaps(text); break;
    case 6: (void)proc::parse_numa_maps_all_default(text); break;
  }
  return 0;
}

int verify(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  img::Inventory inv;
  image::TaskImageSet t;
  if (!parse(take_record(in), &inv) || !parse(take_record(in), &t.core) || !parse(take_record(in), &t.mm) ||
      !parse(take_record(in), &t.pagemap) || !parse(take_record(in), &t.files))
    return 0;
  (void)image::check_inventory("inventory.img", inv);
  t.pid = inv.root_pid();
  (void)image::check_task("fuzz", t);
  return 0;
}

}  // namespace ckpt::fuzz
