#include "image/page_store.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "arch/x86_64/page.h"
#include "base/fs.h"
#include "image/crc32c.h"
#include "image/image_file.h"

namespace ckpt::image {

namespace {
constexpr char kPagesMagic[8] = {'C', 'K', 'P', 'T', 'P', 'A', 'G', 'E'};
}

PagesHeader make_pages_header(uint64_t data_bytes) {
  PagesHeader h{};
  std::memcpy(h.magic, kPagesMagic, sizeof h.magic);
  h.version = kFormatVersion;
  h.page_size = arch::kPageSize;
  h.data_bytes = data_bytes;
  h.crc = crc32c(&h, offsetof(PagesHeader, crc));
  return h;
}

Result<uint64_t> check_pages_file(const std::string& name, int fd, const struct stat* known) {
  PagesHeader h;
  size_t n = TRY_CTX(pread_full(fd, &h, sizeof h, 0), "{}", name);
  if (n < sizeof h) return error(EINVAL, "{}: truncated at offset {}: no page file header", name, n);
  if (std::memcmp(h.magic, kPagesMagic, sizeof h.magic) != 0)
    return error(EINVAL, "{}: not a ckpt pages image (bad magic at offset 0)", name);
  if (crc32c(&h, offsetof(PagesHeader, crc)) != h.crc)
    return error(EINVAL, "{}: header checksum mismatch at offset 0", name);
  if (h.version > kFormatVersion)
    return error(EINVAL, "{}: image format version {} is newer than this ckpt reads ({})", name, h.version,
                 kFormatVersion);
  if (h.version == 0) return error(EINVAL, "{}: image format version 0 at offset 8 is invalid", name);
  if (h.page_size != arch::kPageSize)
    return error(EINVAL, "{}: page size {} at offset 12; this ckpt handles {}-byte pages", name, h.page_size,
                 arch::kPageSize);
  if (h.data_bytes % arch::kPageSize)
    return error(EINVAL, "{}: {} bytes of page data (offset 16) is not a whole number of pages", name, h.data_bytes);
  struct stat st;
  if (known) st = *known;
  else if (fstat(fd, &st) < 0) return sys_error("stat {}", name);
  uint64_t need = kPagesDataOffset + h.data_bytes;
  if (h.data_bytes > UINT64_MAX - kPagesDataOffset || static_cast<uint64_t>(st.st_size) < need)
    return error(EINVAL, "{}: truncated at offset {}: page data should end at {}", name, st.st_size, need);
  return h.data_bytes;
}

}  // namespace ckpt::image
