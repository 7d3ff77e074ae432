#include "base/keep_until_exit.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

namespace ckpt {

void keep_until_exit(std::shared_ptr<void> what) {
  auto* kept = new std::shared_ptr<void>(std::move(what));
#if defined(__SANITIZE_ADDRESS__)
  __lsan_ignore_object(kept);  // and what it reaches
#endif
  (void)kept;
}

}  // namespace ckpt
