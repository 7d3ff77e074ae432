// The iptables lock, for machines where nftables does not work: a chain
// NAME of ckpt's own in the filter table, jumped to first from INPUT and
// OUTPUT, with one DROP rule per connection and direction, after an ACCEPT
// for the packets restore injects itself (a FIN received: files/tcp_fin.h):
//
//   -A NAME -m mark --mark 0x636b7074 -j ACCEPT
//   -A NAME -p tcp -s REMOTE -d LOCAL --sport RPORT --dport LPORT -j DROP
//   -A NAME -p tcp -s LOCAL -d REMOTE --sport LPORT --dport RPORT -j DROP
//
// IPv4 through iptables-restore, IPv6 through ip6tables-restore, each one
// transaction (--noflush: the rest of the table stays). The tools, not
// libiptc, whose interface is not a stable one. Method IptablesLegacy runs
// the -legacy tools (x_tables), for kernels without nf_tables, where the
// plain names may lead to iptables-nft.
#include <fmt/format.h>
#include <sys/socket.h>

#include <algorithm>

#include "net/addr.h"
#include "net/backend.h"
#include "net/lock_name.h"
#include "net/run_tool.h"

namespace ckpt::net {

namespace {

class Iptables final : public Backend {
 public:
  explicit Iptables(Method m) : method_(m) {}
  Method method() const override { return method_; }

  Result<void> install(const std::string& name, std::span<const Connection> conns) override {
    TRY(check_name(name));
    std::string v4, v6;
    for (const Connection& c0 : conns) {
      const Connection c = on_the_wire(c0);
      const std::string l = addr_text(c.family, c.local_addr), r = addr_text(c.family, c.remote_addr);
      (c.family == AF_INET ? v4 : v6) += fmt::format(
          "-A {0} -p tcp -s {1} -d {2} --sport {3} --dport {4} -j DROP\n"
          "-A {0} -p tcp -s {2} -d {1} --sport {4} --dport {3} -j DROP\n",
          name, r, l, c.remote_port, c.local_port);
    }
    // The IPv4 chain always (it is how the lock is found again), the IPv6
    // one when there is something to drop there.
    TRY(restore(tool(false, "restore"), transaction(name, v4)));
    if (!v6.empty()) {
      if (auto r = restore(tool(true, "restore"), transaction(name, v6)); !r) {
        (void)remove(name);  // all or nothing
        return r;
      }
    }
    return {};
  }

  Result<void> remove(const std::string& name) override {
    TRY(check_name(name));
    TRY(remove_from(false, name));
    // An IPv6 chain is there only if IPv6 connections were locked; a
    // machine without ip6tables has none.
    if (!find_tool(tool(true, "save")).empty()) TRY(remove_from(true, name));
    return {};
  }

  Result<bool> exists(const std::string& name) override {
    TRY(check_name(name));
    for (const std::string& n : TRY(list()))
      if (n == name) return true;
    return false;
  }

  Result<std::vector<std::string>> list() override {
    std::vector<std::string> names;
    for (bool v6 : {false, true}) {
      if (v6 && find_tool(tool(true, "save")).empty()) continue;
      const std::string saved = TRY(save(v6));
      for (const std::string& n : chains(saved))
        if (std::find(names.begin(), names.end(), n) == names.end()) names.push_back(n);
    }
    return names;
  }

 private:
  static Result<void> check_name(const std::string& name) {
    if (!parse_lock_name(name)) return error(EINVAL, "\"{}\" is not the name of a ckpt network lock", name);
    return {};
  }

  std::string tool(bool v6, const char* what) const {
    return fmt::format("{}{}-{}", v6 ? "ip6tables" : "iptables", method_ == Method::IptablesLegacy ? "-legacy" : "",
                       what);
  }

  static std::string transaction(const std::string& name, const std::string& rules) {
    return fmt::format("*filter\n:{0} - [0:0]\n-I INPUT 1 -j {0}\n-I OUTPUT 1 -j {0}\n"
                       "-A {0} -m mark --mark {2:#x} -j ACCEPT\n{1}COMMIT\n",
                       name, rules, kRepairMark);
  }

  // -w: wait for the xtables lock another iptables holds instead of failing.
  Result<void> restore(const std::string& t, const std::string& input) {
    ToolOutput r = TRY(run_tool({t, "-w", "--noflush"}, input));
    if (r.status != 0) return error(0, "{}: {}", t, trim(r.out, r.status));
    return {};
  }

  Result<std::string> save(bool v6) {
    const std::string t = tool(v6, "save");
    ToolOutput r = TRY(run_tool({t, "-t", "filter"}));
    if (r.status != 0) return error(0, "{} -t filter: {}", t, trim(r.out, r.status));
    return r.out;
  }

  // The ckpt chains of a table as iptables-save prints it (":NAME - [0:0]").
  static std::vector<std::string> chains(const std::string& saved) {
    std::vector<std::string> out;
    size_t at = 0;
    while (at < saved.size()) {
      size_t nl = saved.find('\n', at);
      if (nl == std::string::npos) nl = saved.size();
      std::string_view line(saved.data() + at, nl - at);
      if (line.starts_with(":")) {
        std::string_view n = line.substr(1, line.find(' ') - 1);
        if (parse_lock_name(n)) out.emplace_back(n);
      }
      at = nl + 1;
    }
    return out;
  }

  // The jumps to the chain that are there, the chain's rules and the chain,
  // in one transaction.
  Result<void> remove_from(bool v6, const std::string& name) {
    const std::string saved = TRY(save(v6));
    const auto cs = chains(saved);
    if (std::find(cs.begin(), cs.end(), name) == cs.end()) return {};
    std::string tx = "*filter\n";
    for (const char* hook : {"INPUT", "OUTPUT"}) {
      const std::string jump = fmt::format("-A {} -j {}", hook, name);
      for (size_t at = saved.find(jump + "\n"); at != std::string::npos; at = saved.find(jump + "\n", at + 1))
        if (at == 0 || saved[at - 1] == '\n') tx += fmt::format("-D {} -j {}\n", hook, name);
    }
    tx += fmt::format("-F {0}\n-X {0}\nCOMMIT\n", name);
    return restore(tool(v6, "restore"), tx);
  }

  static std::string trim(std::string s, int status) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    if (s.empty()) s = fmt::format("exit status {}", status);
    for (char& c : s)
      if (c == '\n') c = ' ';
    return s;
  }

  Method method_;
};

}  // namespace

Result<std::unique_ptr<Backend>> make_iptables(Method m) {
  std::unique_ptr<Backend> b = std::make_unique<Iptables>(m);
  const std::string t = m == Method::IptablesLegacy ? "iptables-legacy-restore" : "iptables-restore";
  if (find_tool(t).empty()) return error(ENOENT, "{} is not installed", t);
  return b;
}

Result<std::unique_ptr<Backend>> make_backend(Method m) {
  return m == Method::Nftables ? make_nftables() : make_iptables(m);
}

std::string_view method_name(Method m) {
  switch (m) {
    case Method::Nftables: return "nftables";
    case Method::Iptables: return "iptables";
    case Method::IptablesLegacy: return "iptables-legacy";
  }
  return "?";
}

}  // namespace ckpt::net
