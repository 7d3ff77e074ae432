// The network lock (issue 14): from the moment a dump collects the frozen
// tree's sockets until the restored tree runs, every packet to or from its TCP connections
// is dropped, so that a peer's retransmissions meet no RST from a host where
// the socket is gone for a while, and the sockets' queues and sequence
// numbers stand still while they are collected. docs/netlock.md.
//
//   dump:    seize -> parasite, cure -> NetLock::lock -> collect files, images -> hand_over -> inventory -> kill: release
//                                      (any failure: the destructor unlocks)               --leave-running: unlock
//   restore: images read -> NetLock::take_over -> tasks ... run -> unlock (any failure: the destructor unlocks)
//
// A ckpt SIGKILLed while it holds a lock leaves it behind: the next ckpt
// (dump, restore, check) removes it (sweep_stale_locks; net/lock_records.h
// tells how it knows).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/log.h"
#include "base/result.h"
#include "ckpt.pb.h"
#include "net/backend.h"
#include "net/connection.h"

namespace ckpt::net {

// --network-lock: the first method that works, one of them, or none (the
// user locks the connections by other means).
enum class LockChoice { Auto, Nftables, Iptables, Skip };
std::optional<LockChoice> parse_lock_choice(std::string_view s);

class NetLock {
 public:
  NetLock() = default;  // nothing locked
  // Drops the packets of `conns` through the first method of `choice` that
  // works here (Auto: nftables, iptables, iptables-legacy; Iptables: the
  // last two). Installs nothing for no connections, or Skip.
  static Result<NetLock> lock(LockChoice choice, std::vector<Connection> conns, Log& log);
  // Restore: the lock a dump left. Taken over where it is still in place
  // (this machine); else made anew for its connections (another machine),
  // unless Skip. `images_dir` (absolute): the checkpoint restored.
  static Result<NetLock> take_over(const img::NetLock& image, const std::string& images_dir, LockChoice choice,
                                   Log& log);

  NetLock(NetLock&& o) noexcept;
  NetLock& operator=(NetLock&&) = delete;
  ~NetLock();  // unlock(), unless released

  bool locked() const { return backend_ != nullptr; }
  const std::string& name() const { return name_; }
  Method method() const { return backend_->method(); }
  std::span<const Connection> connections() const { return conns_; }
  img::NetLock image() const;

  // A kill or --leave-stopped dump is about to write its inventory into
  // `images_dir` (absolute): from now on that checkpoint holds the lock.
  Result<void> hand_over(const std::string& images_dir);
  // The checkpoint keeps the lock: nothing is removed.
  void release();
  // Removes the lock and its record.
  Result<void> unlock();

 private:
  std::unique_ptr<Backend> backend_;
  std::string name_;
  std::vector<Connection> conns_;
  Log* log_ = nullptr;
};

// Whether the checkpoint in `images_dir` names lock `name` (its inventory).
using HeldBy = std::function<bool(const std::string& images_dir, const std::string& name)>;
// Removes every lock left by a ckpt that died and held by no checkpoint.
// `everywhere`: also looks through the rulesets for ckpt tables and chains
// that have no record (ckpt check), not only at the records (dump, restore:
// a readdir when there is nothing to do).
void sweep_stale_locks(const HeldBy& held, bool everywhere, Log& log);

// The methods in dump's order up to the first that works here, and why
// those before it don't (ckpt check): a lock without connections, made and
// removed. Stops there: the iptables-nft tools create `table ip filter`
// where there was none, which a machine using nftables should not get from
// a check.
struct MethodProbe {
  Method method;
  Result<void> works;
};
std::vector<MethodProbe> probe_methods(Log& log);

}  // namespace ckpt::net
