#include "image/schema.h"

#include <google/protobuf/descriptor.pb.h>

// The FileDescriptorSet of proto/ckpt.proto (CMakeLists.txt, ckpt_schema.S).
extern "C" const char ckpt_schema_start[];
extern "C" const char ckpt_schema_end[];

namespace ckpt::image {

Result<std::unique_ptr<Schema>> Schema::load() {
  google::protobuf::FileDescriptorSet set;
  if (!set.ParseFromArray(ckpt_schema_start, static_cast<int>(ckpt_schema_end - ckpt_schema_start)))
    return fail("the embedded image schema does not parse");
  std::unique_ptr<Schema> s(new Schema());
  for (const google::protobuf::FileDescriptorProto& f : set.file())
    if (!s->pool_.BuildFile(f)) return fail("the embedded image schema {} does not build", f.name());
  return s;
}

Result<std::unique_ptr<google::protobuf::Message>> Schema::reflect(const google::protobuf::MessageLite& msg) {
  const google::protobuf::Descriptor* d = pool_.FindMessageTypeByName(msg.GetTypeName());
  if (!d) return fail("the image schema has no message {}", msg.GetTypeName());
  std::unique_ptr<google::protobuf::Message> out(factory_.GetPrototype(d)->New());
  if (!out->ParseFromString(msg.SerializeAsString())) return fail("{}: cannot read it back with its schema", msg.GetTypeName());
  return out;
}

}  // namespace ckpt::image
