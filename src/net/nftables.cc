// The nftables lock: a table "inet NAME" of ckpt's own, so that nothing of
// the user's ruleset is touched and removing the lock is deleting the table.
//
//   table inet NAME {
//     set tcp4 { type ipv4_addr . inet_service . ipv4_addr . inet_service; elements = { local . port . remote . port, ... } }
//     set tcp6 { ...the same with ipv6_addr }
//     chain input  { type filter hook input  priority raw; meta mark 0x636b7074 accept; ip daddr . tcp dport . ip saddr . tcp sport @tcp4 drop; ... }
//     chain output { type filter hook output priority raw; meta mark 0x636b7074 accept; ip saddr . tcp sport . ip daddr . tcp dport @tcp4 drop; ... }
//   }
//
// (The mark: packets restore injects itself, a FIN the socket had received,
// files/tcp_fin.h.) One set lookup per packet however many connections are locked. Priority
// raw (-300) drops before conntrack (-200) sees the packet, so a locked
// connection's conntrack entry is left as it was. Another table's accept
// does not undo a drop: every base chain on the hook must let a packet pass.
//
// Through libnftables (nft's own parser and netlink code, one call per
// batch, and a batch is one netlink transaction: atomic) rather than
// libnftnl expressions built by hand: the ruleset reads as the nft command
// a user would type, and the error text is nft's. It is opened (dlopen)
// when a lock is first needed, not linked: most ckpt runs lock nothing, and
// loading it and the five libraries it needs cost every run of ckpt ~1.5 ms
// here; a machine without it falls back to iptables.
#include <dlfcn.h>
#include <fmt/format.h>
#include <nftables/libnftables.h>
#include <sys/socket.h>

#include <cstring>
#include <type_traits>

#include "net/addr.h"
#include "net/backend.h"
#include "net/lock_name.h"

namespace ckpt::net {

namespace {

// The functions of libnftables ckpt calls. The library stays loaded once
// opened (dlclose of a library with its own atexit handlers is not worth it).
struct NftApi {
  decltype(&nft_ctx_new) ctx_new;
  decltype(&nft_ctx_free) ctx_free;
  decltype(&nft_ctx_buffer_output) buffer_output;
  decltype(&nft_ctx_buffer_error) buffer_error;
  decltype(&nft_ctx_unbuffer_output) unbuffer_output;
  decltype(&nft_ctx_unbuffer_error) unbuffer_error;
  decltype(&nft_ctx_get_output_buffer) get_output_buffer;
  decltype(&nft_ctx_get_error_buffer) get_error_buffer;
  decltype(&nft_run_cmd_from_buffer) run_cmd_from_buffer;
};

Result<NftApi> open_libnftables() {
  constexpr const char* kLib = "libnftables.so.1";
  void* h = dlopen(kLib, RTLD_NOW | RTLD_LOCAL);
  if (!h) return error(ENOENT, "{}", dlerror());
  NftApi api;
  auto sym = [&](auto& fn, const char* name) -> Result<void> {
    fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(h, name));
    if (!fn) return error(ENOENT, "{}: no {}", kLib, name);
    return {};
  };
  TRY(sym(api.ctx_new, "nft_ctx_new"));
  TRY(sym(api.ctx_free, "nft_ctx_free"));
  TRY(sym(api.buffer_output, "nft_ctx_buffer_output"));
  TRY(sym(api.buffer_error, "nft_ctx_buffer_error"));
  TRY(sym(api.unbuffer_output, "nft_ctx_unbuffer_output"));
  TRY(sym(api.unbuffer_error, "nft_ctx_unbuffer_error"));
  TRY(sym(api.get_output_buffer, "nft_ctx_get_output_buffer"));
  TRY(sym(api.get_error_buffer, "nft_ctx_get_error_buffer"));
  TRY(sym(api.run_cmd_from_buffer, "nft_run_cmd_from_buffer"));
  return api;
}

class Nftables final : public Backend {
 public:
  Nftables(NftApi api, nft_ctx* ctx) : nft_(api), ctx_(ctx) {}
  ~Nftables() override { nft_.ctx_free(ctx_); }
  Nftables(const Nftables&) = delete;
  Nftables& operator=(const Nftables&) = delete;

  Method method() const override { return Method::Nftables; }

  Result<void> install(const std::string& name, std::span<const Connection> conns) override {
    TRY(check_name(name));
    std::string cmds, v4, v6;
    for (const Connection& c0 : conns) {
      const Connection c = on_the_wire(c0);
      std::string& set = c.family == AF_INET ? v4 : v6;
      set += fmt::format("{}{} . {} . {} . {}", set.empty() ? "" : ", ", addr_text(c.family, c.local_addr),
                         c.local_port, addr_text(c.family, c.remote_addr), c.remote_port);
    }
    cmds += fmt::format("add table inet {0}\n"
                        "add chain inet {0} input {{ type filter hook input priority -300; policy accept; }}\n"
                        "add chain inet {0} output {{ type filter hook output priority -300; policy accept; }}\n"
                        "add rule inet {0} input meta mark {1:#x} accept\n"
                        "add rule inet {0} output meta mark {1:#x} accept\n",
                        name, kRepairMark);
    auto family = [&](const std::string& elems, const char* set, const char* type, const char* ip) {
      if (elems.empty()) return;
      cmds += fmt::format(
          "add set inet {0} {1} {{ type {2} . inet_service . {2} . inet_service; }}\n"
          "add element inet {0} {1} {{ {3} }}\n"
          "add rule inet {0} input {4} daddr . tcp dport . {4} saddr . tcp sport @{1} drop\n"
          "add rule inet {0} output {4} saddr . tcp sport . {4} daddr . tcp dport @{1} drop\n",
          name, set, type, elems, ip);
    };
    family(v4, "tcp4", "ipv4_addr", "ip");
    family(v6, "tcp6", "ipv6_addr", "ip6");
    TRY_CTX(run(cmds), "nftables: add table inet {}", name);
    return {};
  }

  Result<void> remove(const std::string& name) override {
    TRY(check_name(name));
    auto r = run(fmt::format("delete table inet {}", name));
    if (!r && r.error().err == ENOENT) return {};
    if (!r) return std::unexpected(r.error().context(fmt::format("nftables: delete table inet {}", name)));
    return {};
  }

  Result<bool> exists(const std::string& name) override {
    TRY(check_name(name));
    auto r = run(fmt::format("list table inet {}", name));
    if (!r && r.error().err == ENOENT) return false;
    if (!r) return std::unexpected(r.error().context(fmt::format("nftables: list table inet {}", name)));
    return true;
  }

  Result<std::vector<std::string>> list() override {
    const std::string out = TRY_CTX(run("list tables inet"), "nftables: list tables");
    std::vector<std::string> names;
    size_t at = 0;
    while (at < out.size()) {
      size_t nl = out.find('\n', at);
      if (nl == std::string::npos) nl = out.size();
      std::string_view line(out.data() + at, nl - at);
      if (line.starts_with("table inet ")) {
        line.remove_prefix(11);
        if (parse_lock_name(line)) names.emplace_back(line);
      }
      at = nl + 1;
    }
    return names;
  }

 private:
  static Result<void> check_name(const std::string& name) {
    if (!parse_lock_name(name)) return error(EINVAL, "\"{}\" is not the name of a ckpt network lock", name);
    return {};
  }

  // Runs `cmds` as one batch; returns what nft printed. nft's message on
  // failure, with ENOENT when it says so (a table that is not there).
  Result<std::string> run(const std::string& cmds) {
    if (nft_.buffer_output(ctx_) != 0 || nft_.buffer_error(ctx_) != 0)
      return error(ENOMEM, "libnftables: buffer its output");
    const int rc = nft_.run_cmd_from_buffer(ctx_, cmds.c_str());
    std::string out = nft_.get_output_buffer(ctx_);
    std::string err = nft_.get_error_buffer(ctx_);
    (void)nft_.unbuffer_output(ctx_);
    (void)nft_.unbuffer_error(ctx_);
    if (rc == 0) return out;
    // "Error: Could not process rule: No such file or directory\n<command>\n  ^^^^\n": its first line.
    std::string first = err.substr(0, err.find('\n'));
    if (first.starts_with("Error: ")) first.erase(0, 7);
    if (first.empty()) first = "failed";
    const int e = first.find("No such file or directory") != std::string::npos ? ENOENT
                  : first.find("Operation not permitted") != std::string::npos ? EPERM
                  : first.find("Operation not supported") != std::string::npos ? EOPNOTSUPP
                                                                                : 0;
    if (e != 0)  // said once, by Error::str()
      if (size_t at = first.find(fmt::format(": {}", strerror(e))); at != std::string::npos) first.erase(at);
    return error(e, "{}", first);
  }

  NftApi nft_;
  nft_ctx* ctx_;
};

}  // namespace

Result<std::unique_ptr<Backend>> make_nftables() {
  NftApi api = TRY(open_libnftables());
  nft_ctx* ctx = api.ctx_new(NFT_CTX_DEFAULT);
  if (!ctx) return error(ENOMEM, "libnftables: nft_ctx_new failed");
  return std::make_unique<Nftables>(api, ctx);
}

}  // namespace ckpt::net
