#include "net/netlock.h"

#include <fmt/format.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

#include "net/addr.h"
#include "net/lock_name.h"
#include "net/lock_records.h"

namespace ckpt::net {

namespace {

std::vector<Method> methods_of(LockChoice c) {
  switch (c) {
    case LockChoice::Auto: return {Method::Nftables, Method::Iptables, Method::IptablesLegacy};
    case LockChoice::Nftables: return {Method::Nftables};
    case LockChoice::Iptables: return {Method::Iptables, Method::IptablesLegacy};
    case LockChoice::Skip: return {};
  }
  return {};
}

// Record first, then the lock: a ckpt killed in between leaves a record
// of a lock that is not there, which the next sweep drops.
Result<std::unique_ptr<Backend>> install(Method m, const std::string& name, std::span<const Connection> conns) {
  std::unique_ptr<Backend> b = TRY(make_backend(m));
  TRY(write_record({.name = name, .method = m}));
  if (auto r = b->install(name, conns); !r) {
    (void)remove_record(name);  // nothing was installed: the batch is all or nothing
    return std::unexpected(r.error());
  }
  return b;
}

img::NetLock::Method to_image(Method m) {
  switch (m) {
    case Method::Nftables: return img::NetLock::NFTABLES;
    case Method::Iptables: return img::NetLock::IPTABLES;
    case Method::IptablesLegacy: return img::NetLock::IPTABLES_LEGACY;
  }
  return img::NetLock::NFTABLES;
}

Result<Method> from_image(img::NetLock::Method m) {
  switch (m) {
    case img::NetLock::NFTABLES: return Method::Nftables;
    case img::NetLock::IPTABLES: return Method::Iptables;
    case img::NetLock::IPTABLES_LEGACY: return Method::IptablesLegacy;
    default: return error(EINVAL, "network lock method {} is unknown", static_cast<int>(m));
  }
}

Result<Connection> from_image(const img::NetLockConnection& c) {
  Connection out{};
  out.family = static_cast<int>(c.family());
  const size_t len = out.family == AF_INET ? 4 : out.family == AF_INET6 ? 16 : 0;
  if (len == 0 || c.local_addr().size() != len || c.remote_addr().size() != len || c.local_port() > 65535 ||
      c.remote_port() > 65535)
    return error(EINVAL, "a locked connection of family {} with addresses of {} and {} bytes, ports {} and {}",
                 c.family(), c.local_addr().size(), c.remote_addr().size(), c.local_port(), c.remote_port());
  memcpy(out.local_addr.data(), c.local_addr().data(), len);
  memcpy(out.remote_addr.data(), c.remote_addr().data(), len);
  out.local_port = static_cast<uint16_t>(c.local_port());
  out.remote_port = static_cast<uint16_t>(c.remote_port());
  return out;
}

}  // namespace

std::optional<LockChoice> parse_lock_choice(std::string_view s) {
  if (s == "auto") return LockChoice::Auto;
  if (s == "nftables") return LockChoice::Nftables;
  if (s == "iptables") return LockChoice::Iptables;
  if (s == "skip") return LockChoice::Skip;
  return std::nullopt;
}

Result<NetLock> NetLock::lock(LockChoice choice, std::vector<Connection> conns, Log& log) {
  NetLock l;
  if (conns.empty() || choice == LockChoice::Skip) {
    if (!conns.empty())
      log.info("network lock: skipped (--network-lock skip) for {} connections: {}", conns.size(),
               describe_some(conns));
    return l;
  }
  const std::string name = TRY(own_lock_name());
  std::string why;
  for (Method m : methods_of(choice)) {
    auto b = install(m, name, conns);
    if (b) {
      l.backend_ = std::move(*b);
      l.name_ = name;
      l.conns_ = std::move(conns);
      l.log_ = &log;
      log.info("network lock: {} {} drops the packets of {} connections: {}", method_name(m), name,
               l.conns_.size(), describe_some(l.conns_));
      return l;
    }
    log.debug("network lock: {} does not work here: {}", method_name(m), b.error().str());
    why += fmt::format("{}{}: {}", why.empty() ? "" : "; ", method_name(m), b.error().str());
  }
  return error(0, "lock {} TCP connections ({}): {}; with --network-lock skip ckpt leaves locking them to you",
               conns.size(), describe_some(conns), why);
}

Result<NetLock> NetLock::take_over(const img::NetLock& image, const std::string& images_dir, LockChoice choice,
                                   Log& log) {
  if (!parse_lock_name(image.name()))
    return error(EINVAL, "network lock \"{}\" of the images: not a name ckpt gives", image.name());
  const Method m = TRY(from_image(image.method()));
  std::vector<Connection> conns;
  for (const img::NetLockConnection& c : image.connections()) conns.push_back(TRY(from_image(c)));
  // Still in place: this machine, where the dump ran.
  auto record = read_record(image.name());
  std::unique_ptr<Backend> b;
  if (auto made = make_backend(m)) b = std::move(*made);
  if (b) {
    auto there = b->exists(image.name());
    if (there && *there) {
      // Recorded, so that no sweep takes it while the tree is restored.
      if (!record) TRY(write_record({.name = image.name(), .method = m, .images_dir = images_dir}));
      NetLock l;
      l.backend_ = std::move(b);
      l.name_ = image.name();
      l.conns_ = std::move(conns);
      l.log_ = &log;
      log.info("network lock: {} {} of the dump taken over; removed once the tree runs", method_name(m), l.name_);
      return l;
    }
  }
  if (record) TRY(remove_record(image.name()));  // its lock is gone
  log.info("network lock: {} of the dump is not here: {}", image.name(),
           choice == LockChoice::Skip ? "none made (--network-lock skip)" : "made anew until the tree runs");
  return lock(choice, std::move(conns), log);
}

NetLock::NetLock(NetLock&& o) noexcept
    : backend_(std::move(o.backend_)), name_(std::move(o.name_)), conns_(std::move(o.conns_)), log_(o.log_) {}

NetLock::~NetLock() {
  if (!backend_) return;
  if (auto r = unlock(); !r && log_)
    log_->error("network lock {} stays in place: {} (the next ckpt run removes it)", name_, r.error().str());
}

img::NetLock NetLock::image() const {
  img::NetLock out;
  if (!backend_) return out;
  out.set_method(to_image(backend_->method()));
  out.set_name(name_);
  for (const Connection& c : conns_) {
    img::NetLockConnection* e = out.add_connections();
    const size_t len = c.family == AF_INET ? 4 : 16;
    e->set_family(static_cast<uint32_t>(c.family));
    e->set_local_addr(c.local_addr.data(), len);
    e->set_remote_addr(c.remote_addr.data(), len);
    e->set_local_port(c.local_port);
    e->set_remote_port(c.remote_port);
  }
  return out;
}

Result<void> NetLock::hand_over(const std::string& images_dir) {
  if (!backend_) return {};
  return write_record({.name = name_, .method = backend_->method(), .images_dir = images_dir});
}

void NetLock::release() {
  if (backend_ && log_) log_->info("network lock {} stays in place until the tree is restored", name_);
  backend_.reset();
}

Result<void> NetLock::unlock() {
  if (!backend_) return {};
  std::unique_ptr<Backend> b = std::move(backend_);
  TRY_CTX(b->remove(name_), "remove network lock {}", name_);
  TRY(remove_record(name_));
  if (log_) log_->info("network lock {} removed", name_);
  return {};
}

void sweep_stale_locks(const HeldBy& held, bool everywhere, Log& log) {
  auto stale = [&](const std::string& name, const std::string& images_dir) {
    if (owner_alive(name)) return false;
    return images_dir.empty() || !held(images_dir, name);
  };
  auto remove = [&](Method m, const std::string& name, Backend* b) {
    std::unique_ptr<Backend> own;
    if (!b) {
      auto made = make_backend(m);
      if (!made) {
        log.warn("network lock {} of a ckpt that died: {}", name, made.error().str());
        return;
      }
      own = std::move(*made);
      b = own.get();
    }
    if (auto r = b->remove(name); !r) {
      log.warn("network lock {} of a ckpt that died can't be removed: {}", name, r.error().str());
      return;
    }
    (void)remove_record(name);  // gone: a leftover record is harmless and dropped next time
    log.info("network lock {} ({}) left by a ckpt that died removed", name, method_name(m));
  };
  std::vector<std::string> recorded;
  if (auto records = list_records(); records) {
    for (const LockRecord& r : *records) {
      recorded.push_back(r.name);
      if (stale(r.name, r.images_dir)) remove(r.method, r.name, nullptr);
    }
  } else {
    log.warn("network locks of ckpts that died: {}", records.error().str());
  }
  if (!everywhere) return;
  for (Method m : methods_of(LockChoice::Auto)) {
    auto b = make_backend(m);
    if (!b) continue;
    auto names = (*b)->list();
    if (!names) continue;
    for (const std::string& n : *names)
      if (std::find(recorded.begin(), recorded.end(), n) == recorded.end() && !owner_alive(n))
        remove(m, n, b->get());
  }
}

std::vector<MethodProbe> probe_methods(Log& log) {
  std::vector<MethodProbe> out;
  for (Method m : methods_of(LockChoice::Auto)) {
    auto works = [&]() -> Result<void> {
      const std::string name = TRY(own_lock_name());
      std::unique_ptr<Backend> b = TRY(install(m, name, {}));
      TRY(b->remove(name));
      return remove_record(name);
    }();
    if (!works) log.debug("check: network lock {}: {}", method_name(m), works.error().str());
    const bool done = works.has_value();
    out.push_back({m, std::move(works)});
    if (done) break;
  }
  return out;
}

}  // namespace ckpt::net
