// A NUMA memory policy between its image (img::MemPolicy) and what
// get_mempolicy and set_mempolicy/mbind take (abi::MemPolicyArg): one
// place for both directions of the node mask.
#pragma once

#include "base/result.h"
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

// `start`, `end`: a VMA's, or 0 for a thread's. Nodes beyond what the
// restorer can pass (MAX_NUMNODES) are an error.
inline Result<abi::MemPolicyArg> from_image(const img::MemPolicy& in, uint64_t start, uint64_t end) {
  if (in.nodes_size() > abi::kMemPolicyNodeWords)
    return error(EINVAL, "a NUMA memory policy of {} node words (at most {})", in.nodes_size(),
                 abi::kMemPolicyNodeWords);
  abi::MemPolicyArg out{.start = start, .end = end, .mode = static_cast<int32_t>(in.mode())};
  for (int w = 0; w < in.nodes_size(); w++) out.nodes[w] = in.nodes(w);
  return out;
}

}  // namespace ckpt::image
