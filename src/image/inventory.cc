#include "image/inventory.h"

#include <sys/utsname.h>

#include <chrono>

#include "arch/x86_64/page.h"
#include "image/image_file.h"

namespace ckpt::image {

img::Inventory new_inventory(pid_t root, const std::vector<pid_t>& pids) {
  img::Inventory inv;
  inv.set_format_version(kFormatVersion);
  inv.set_root_pid(root);
  for (pid_t pid : pids) inv.add_pids(pid);
  utsname u;
  if (uname(&u) == 0) inv.set_kernel_release(u.release);
  inv.set_ckpt_version(CKPT_VERSION);
  inv.set_dump_unix_ns(std::chrono::duration_cast<std::chrono::nanoseconds>(
                           std::chrono::system_clock::now().time_since_epoch()).count());
  inv.set_page_size(arch::kPageSize);
  return inv;
}

}  // namespace ckpt::image
