#include "image/image_file.h"

#include <cstring>

#include "image/crc32c.h"

namespace ckpt::image {

namespace {

constexpr char kMagic[8] = {'C', 'K', 'P', 'T', 'I', 'M', 'G', '\0'};

struct Header {
  char magic[8];
  uint32_t version;
  uint32_t kind;
  uint64_t length;
  uint32_t payload_crc;
  uint32_t header_crc;
};
static_assert(sizeof(Header) == kHeaderSize);

Result<Header> check_header(const std::string& name, std::string_view b) {
  if (b.size() < kHeaderSize)
    return error(EINVAL, "{}: truncated at offset {}: {} bytes, a header needs {}", name, b.size(), b.size(),
                 kHeaderSize);
  Header h;
  std::memcpy(&h, b.data(), sizeof h);
  if (std::memcmp(h.magic, kMagic, sizeof kMagic) != 0)
    return error(EINVAL, "{}: not a ckpt image (bad magic at offset 0)", name);
  if (crc32c(b.data(), offsetof(Header, header_crc)) != h.header_crc)
    return error(EINVAL, "{}: header checksum mismatch at offset 0", name);
  if (h.version > kFormatVersion)
    return error(EINVAL, "{}: image format version {} is newer than this ckpt reads ({}); use a newer ckpt", name,
                 h.version, kFormatVersion);
  if (h.version == 0) return error(EINVAL, "{}: image format version 0 at offset 8 is invalid", name);
  if (h.version < kOldestFormatVersion)
    return error(EINVAL, "{}: image format version {} is older than this ckpt reads ({} and later): dump again", name,
                 h.version, kOldestFormatVersion);
  return h;
}

}  // namespace

const char* kind_name(ImageKind k) {
  switch (k) {
    case ImageKind::Inventory: return "inventory";
    case ImageKind::Core: return "core";
    case ImageKind::Mm: return "mm";
    case ImageKind::PageMap: return "pagemap";
    case ImageKind::Files: return "files";
    case ImageKind::Stats: return "stats";
    case ImageKind::Tree: return "tree";
    case ImageKind::Shmem: return "shmem";
    case ImageKind::FileDescs: return "file descriptions";
  }
  return "unknown";
}

void frame_into(ImageKind kind, const google::protobuf::MessageLite& msg, char* out) {
  const size_t length = msg.GetCachedSize();
  auto* payload = reinterpret_cast<uint8_t*>(out + sizeof(Header));
  msg.SerializeWithCachedSizesToArray(payload);
  Header h{};
  std::memcpy(h.magic, kMagic, sizeof kMagic);
  h.version = kFormatVersion;
  h.kind = static_cast<uint32_t>(kind);
  h.length = length;
  h.payload_crc = crc32c(payload, length);
  h.header_crc = crc32c(&h, offsetof(Header, header_crc));
  std::memcpy(out, &h, sizeof h);
}

std::string frame(ImageKind kind, const google::protobuf::MessageLite& msg) {
  // Serialized into in place and never zero-filled first: a metadata image
  // may carry 100 MiB of pipe data.
  std::string out;
  out.resize_and_overwrite(sizeof(Header) + msg.ByteSizeLong(), [&](char* p, size_t n) {
    frame_into(kind, msg, p);
    return n;
  });
  return out;
}

Result<void> unframe(const std::string& name, std::string_view b, ImageKind kind,
                     google::protobuf::MessageLite* msg) {
  Header h = TRY(check_header(name, b));
  if (h.kind != static_cast<uint32_t>(kind))
    return error(EINVAL, "{}: holds a {} image (kind {} at offset 12), expected {}", name,
                 kind_name(static_cast<ImageKind>(h.kind)), h.kind, kind_name(kind));
  uint64_t have = b.size() - kHeaderSize;
  if (h.length != have)
    return error(EINVAL, "{}: {} at offset {}: header says {} payload bytes, file has {}", name,
                 h.length > have ? "truncated" : "trailing bytes", kHeaderSize + std::min(h.length, have), h.length,
                 have);
  std::string_view payload = b.substr(kHeaderSize);
  if (crc32c(payload.data(), payload.size()) != h.payload_crc)
    return error(EINVAL, "{}: checksum mismatch in payload (offset {}, {} bytes)", name, kHeaderSize,
                 payload.size());
  if (!msg->ParseFromArray(payload.data(), static_cast<int>(payload.size())))
    return error(EINVAL, "{}: payload at offset {} does not decode as a {} image", name, kHeaderSize, kind_name(kind));
  return {};
}

Result<ImageKind> peek_kind(const std::string& name, std::string_view bytes) {
  Header h = TRY(check_header(name, bytes));
  return static_cast<ImageKind>(h.kind);
}

}  // namespace ckpt::image
