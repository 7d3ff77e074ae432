// The ways ckpt can drop a set of TCP connections' packets: a table of its
// own in nftables, or a chain of its own in iptables' filter table. Each
// lock has a name (net/lock_name.h) that is the table's or chain's.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "net/connection.h"

namespace ckpt::net {

enum class Method { Nftables, Iptables, IptablesLegacy };
std::string_view method_name(Method m);

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Method method() const = 0;
  // Drops every packet of each connection, both ways, from one atomic
  // change of the ruleset: all of it is in place or nothing is.
  virtual Result<void> install(const std::string& name, std::span<const Connection> conns) = 0;
  // Takes it out; a lock that is not there is no error.
  virtual Result<void> remove(const std::string& name) = 0;
  virtual Result<bool> exists(const std::string& name) = 0;
  // The names of every ckpt lock there (tables, chains named "ckpt-...").
  virtual Result<std::vector<std::string>> list() = 0;
};

// nftables through libnftables (net/nftables.cc); iptables through
// iptables-restore and iptables-save (net/iptables.cc). Fails when the
// library can't start or the tools are not installed.
Result<std::unique_ptr<Backend>> make_nftables();
Result<std::unique_ptr<Backend>> make_iptables(Method m);
Result<std::unique_ptr<Backend>> make_backend(Method m);

}  // namespace ckpt::net
