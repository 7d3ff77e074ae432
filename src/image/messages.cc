#include "image/messages.h"

#include "ckpt.pb.h"

namespace ckpt::image {

std::unique_ptr<google::protobuf::MessageLite> new_message(ImageKind kind) {
  switch (kind) {
    case ImageKind::Inventory: return std::make_unique<img::Inventory>();
    case ImageKind::Core: return std::make_unique<img::TaskCore>();
    case ImageKind::Mm: return std::make_unique<img::MmImage>();
    case ImageKind::PageMap: return std::make_unique<img::PageMap>();
    case ImageKind::Files: return std::make_unique<img::Files>();
    case ImageKind::Stats: return std::make_unique<img::Stats>();
    case ImageKind::Tree: return std::make_unique<img::ProcessTree>();
    case ImageKind::Shmem: return std::make_unique<img::ShmemImage>();
    case ImageKind::FileDescs: return std::make_unique<img::FileDescs>();
  }
  return nullptr;
}

}  // namespace ckpt::image
