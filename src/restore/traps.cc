#include "restore/traps.h"

#include <sys/syscall.h>

#include <cstring>

#include "ptrace/remote_syscall.h"

namespace ckpt::restore {

namespace {

Result<void> queue_in(Tracee& t, pid_t tgid, const std::vector<const img::SigInfo*>& sigs, bool shared) {
  const SyscallSite site = TRY(find_syscall_site(t));
  RemoteSyscalls rs = TRY(RemoteSyscalls::begin(t, site));
  const RemoteAddr scratch = TRY(rs.scratch());
  for (const img::SigInfo* s : sigs) {
    uint8_t raw[sizeof(siginfo_t)] = {};
    std::memcpy(raw, s->raw().data(), std::min(s->raw().size(), sizeof raw));
    TRY(t.write_mem(scratch, raw, sizeof raw));
    const auto sig = static_cast<uint64_t>(s->signo());
    if (shared)
      TRY(rs.must(fmt::format("rt_sigqueueinfo of signal {}", sig), SYS_rt_sigqueueinfo,
                  {static_cast<uint64_t>(tgid), sig, scratch.raw()}));
    else
      TRY(rs.must(fmt::format("rt_tgsigqueueinfo of signal {}", sig), SYS_rt_tgsigqueueinfo,
                  {static_cast<uint64_t>(tgid), static_cast<uint64_t>(t.tid()), sig, scratch.raw()}));
  }
  return rs.end();
}

std::vector<const img::SigInfo*> late(const google::protobuf::RepeatedPtrField<img::SigInfo>& all) {
  std::vector<const img::SigInfo*> out;
  for (const img::SigInfo& s : all)
    if (queued_late(s)) out.push_back(&s);
  return out;
}

}  // namespace

Result<void> queue_late_signals(std::span<Tracee> threads, const img::TaskCore& core) {
  const pid_t tgid = threads[0].tid();
  for (size_t i = 0; i < threads.size() && i < static_cast<size_t>(core.threads_size()); i++) {
    auto sigs = late(core.threads(i).pending());
    if (!sigs.empty()) TRY_CTX(queue_in(threads[i], tgid, sigs, false), "thread {}", threads[i].tid());
  }
  auto shared = late(core.shared_pending());
  if (!shared.empty()) TRY_CTX(queue_in(threads[0], tgid, shared, true), "task {}", tgid);
  return {};
}

}  // namespace ckpt::restore
