// Framing of metadata images: a 32-byte header, then one protobuf message.
//
//   0  magic      "CKPTIMG\0"
//   8  version    format version that wrote it (kFormatVersion)
//  12  kind       ImageKind, so a core image is never read as an mm image
//  16  length     payload bytes
//  24  crc32c     of the payload
//  28  crc32c     of bytes 0..27
//  32  payload
#pragma once

#include <google/protobuf/message_lite.h>

#include <cstdint>
#include <string>

#include "base/result.h"

namespace ckpt::image {

inline constexpr uint32_t kFormatVersion = 2;
// Metadata images older than this are refused: 2 moved fds to open file
// descriptions (fdesc.img).
inline constexpr uint32_t kOldestFormatVersion = 2;
inline constexpr size_t kHeaderSize = 32;

enum class ImageKind : uint32_t {
  Inventory = 1,
  Core = 2,
  Mm = 3,
  PageMap = 4,
  Files = 5,
  Stats = 6,
  Tree = 7,
  Shmem = 8,
  FileDescs = 9,
};
const char* kind_name(ImageKind k);

// Header + payload bytes of `msg`.
std::string frame(ImageKind kind, const google::protobuf::MessageLite& msg);
// The same into `out`, which holds kHeaderSize + msg.ByteSizeLong() bytes
// (its sizes cached by that call).
void frame_into(ImageKind kind, const google::protobuf::MessageLite& msg, char* out);
// Checks header, length and checksum of `bytes` (the content of `name`) and
// parses the payload into `msg`; errors name the file and the offset.
Result<void> unframe(const std::string& name, std::string_view bytes, ImageKind kind,
                     google::protobuf::MessageLite* msg);
// Reads just the kind of a framed file, for `show`.
Result<ImageKind> peek_kind(const std::string& name, std::string_view bytes);

}  // namespace ckpt::image
