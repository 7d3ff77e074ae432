// The images' schema, for printing them. ckpt's messages are lite (no
// descriptors: proto/ckpt.proto says why), so `ckpt show` builds the
// descriptors here, from the descriptor set protoc wrote at build time and
// ckpt embeds, and reads each decoded image into a message it can print.
#pragma once

#include <google/protobuf/descriptor.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/message.h>

#include <memory>

#include "base/result.h"

namespace ckpt::image {

class Schema {
 public:
  static Result<std::unique_ptr<Schema>> load();

  // `msg` again as a message with descriptors, unknown fields kept.
  Result<std::unique_ptr<google::protobuf::Message>> reflect(const google::protobuf::MessageLite& msg);

 private:
  Schema() = default;

  google::protobuf::DescriptorPool pool_;
  google::protobuf::DynamicMessageFactory factory_{&pool_};
};

}  // namespace ckpt::image
