// The protobuf message each kind of image holds.
#pragma once

#include <google/protobuf/message_lite.h>

#include <memory>

#include "image/image_file.h"

namespace ckpt::image {

// An empty message of the kind's type; null for a kind this ckpt doesn't know.
std::unique_ptr<google::protobuf::MessageLite> new_message(ImageKind kind);

}  // namespace ckpt::image
