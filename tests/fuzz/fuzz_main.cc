// One libFuzzer binary per target of targets.h: tools/fuzz.sh compiles this
// with -DCKPT_FUZZ_TARGET=<name>.
#include "targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return ckpt::fuzz::CKPT_FUZZ_TARGET(data, size);
}
