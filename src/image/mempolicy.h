// A NUMA memory policy between its image (img::MemPolicy) and what
// get_mempolicy and set_mempolicy/mbind take (abi::MemPolicyArg): one
// place for both directions of the node mask.
#pragma once

#include "ckpt.pb.h"
#include "pie/abi.h"

namespace ckpt::image {

// Only a policy other than the default is worth an image field.
inline bool is_default(const abi::MemPolicyArg& p) { return p.mode == 0; }

inline img::MemPolicy to_image(const abi::MemPolicyArg& p) {
  img::MemPolicy out;
  out.set_mode(static_cast<uint32_t>(p.mode));
  int words = abi::kMemPolicyNodeWords;
  while (words > 0 && p.nodes[words - 1] == 0) words--;
  for (int w = 0; w < words; w++) out.add_nodes(p.nodes[w]);
  return out;
}

// Nodes beyond what the restorer can pass (MAX_NUMNODES) are an error.
inline bool from_image(const img::MemPolicy& in, abi::MemPolicyArg* out) {
  if (in.nodes_size() > abi::kMemPolicyNodeWords) return false;
  out->mode = static_cast<int32_t>(in.mode());
  for (int w = 0; w < in.nodes_size(); w++) out->nodes[w] = in.nodes(w);
  return true;
}

}  // namespace ckpt::image
