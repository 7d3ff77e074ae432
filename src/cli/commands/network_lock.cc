// Network locks left by a ckpt that was killed (net/netlock.h): dump,
// restore and check remove them first. A lock handed to a checkpoint stays
// as long as that checkpoint's inventory names it.
#include "cli/commands/commands.h"
#include "image/image_dir.h"
#include "net/netlock.h"

namespace ckpt::cli {

void sweep_network_locks(bool everywhere, Log& log) {
  auto held = [](const std::string& images_dir, const std::string& name) {
    auto dir = image::ImageDir::open(images_dir, image::SharedDir::Allow);
    if (!dir || !dir->exists(image::kInventoryName)) return false;
    img::Inventory inv;
    if (!dir->read(image::kInventoryName, image::ImageKind::Inventory, &inv)) return false;
    return inv.has_network_lock() && inv.network_lock().name() == name;
  };
  net::sweep_stale_locks(held, everywhere, log);
}

}  // namespace ckpt::cli
