// /proc/PID/status, /proc/PID/stat, /proc/PID/fdinfo/FD and the numeric
// /proc directories. Formats are the kernel's fs/proc/array.c and fs/proc/fd.c.
#include "proc/status.h"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <iterator>
#include <memory>
#include <type_traits>

#include "base/fs.h"
#include "proc/record.h"
#include "proc/text.h"

namespace ckpt::proc {
namespace {

bool parse_pid(std::string_view s, pid_t& out) { return parse_num(s, 10, out) && out >= 0; }

constexpr std::string_view kBlank = " \t";

std::string_view trim(std::string_view s) {
  size_t b = s.find_first_not_of(kBlank);
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(kBlank) - b + 1);
}

// Takes the next blank-separated token off the front of `rest`; empty at the end.
std::string_view next_token(std::string_view& rest) {
  size_t b = std::min(rest.find_first_not_of(kBlank), rest.size());
  rest.remove_prefix(b);
  size_t e = std::min(rest.find_first_of(kBlank), rest.size());
  std::string_view tok = rest.substr(0, e);
  rest.remove_prefix(e);
  return tok;
}

// Takes the next line (without its '\n') off the front of `text`.
// proc_task_name() escapes only '\n' (as "\n") and '\' (as "\\") in Name:,
// so the line stays one line; undo that and keep anything else as printed.
std::string unescape_name(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size() && (s[i + 1] == 'n' || s[i + 1] == '\\')) {
      out += s[i + 1] == 'n' ? '\n' : '\\';
      ++i;
    } else {
      out += s[i];
    }
  }
  return out;
}

Result<std::vector<pid_t>> parse_pid_list(std::string_view text) {
  std::vector<pid_t> out;
  for (std::string_view tok = next_token(text); !tok.empty(); tok = next_token(text)) {
    pid_t p;
    if (!parse_pid(tok, p)) return fail("bad pid '{:.64}'", tok);
    out.push_back(p);
  }
  return out;
}

// uid_t or gid_t: unsigned, the whole 32 bits are ids.
template <typename Id>
Result<std::vector<Id>> parse_id_list(std::string_view text) {
  std::vector<Id> out;
  for (std::string_view tok = next_token(text); !tok.empty(); tok = next_token(text)) {
    Id id;
    if (!parse_num(tok, 10, id)) return fail("bad id '{:.64}'", tok);
    out.push_back(id);
  }
  return out;
}

// Without CONFIG_PROC_CHILDREN there are no task/TID/children files. Find the
// children by their parent instead: stat field 4 is the tgid of the real
// parent, and /proc lists every thread-group leader, which is what the
// children files list (threads are never on their parent's children list).
Result<std::vector<pid_t>> children_by_scan(pid_t pid) {
  std::vector<pid_t> out;
  for (int p : TRY(list_numeric_dir("/proc"))) {
    Result<std::string> text = read_record(fmt::format("/proc/{}/stat", p));
    if (!text && (text.error().err == ENOENT || text.error().err == ESRCH)) continue;  // exited meanwhile
    if (!text) return std::unexpected(std::move(text.error()));
    Stat st = TRY_CTX(parse_stat(*text), "pid {}", p);
    if (st.ppid == pid) out.push_back(p);
  }
  return out;
}

}  // namespace

namespace {

// One line of /proc/PID/status: `raw` is what follows the colon, `val` the
// same trimmed. False when the value is malformed.
using StatusParser = bool (*)(std::string_view raw, std::string_view val, Status& s);

template <auto Field>
bool status_pid(std::string_view, std::string_view val, Status& s) { return parse_pid(val, s.*Field); }
template <auto Field>
bool status_hex(std::string_view, std::string_view val, Status& s) { return parse_num(val, 16, s.*Field); }
// uid_t or gid_t lists: exactly `N` ids, or any number when N is 0.
template <auto Field, size_t N>
bool status_ids(std::string_view, std::string_view val, Status& s) {
  auto ids = parse_id_list<typename std::remove_reference_t<decltype(s.*Field)>::value_type>(val);
  if (!ids || (N && ids->size() != N)) return false;
  s.*Field = std::move(*ids);
  return true;
}

bool status_name(std::string_view raw, std::string_view, Status& s) {
  // Not trimmed: a name may begin or end with blanks. One tab follows the colon.
  if (raw.starts_with('\t')) raw.remove_prefix(1);
  s.name = unescape_name(raw);
  return true;
}
bool status_state(std::string_view, std::string_view val, Status& s) {
  if (val.empty()) return false;  // "R (running)"
  s.state = val[0];
  return true;
}
bool status_umask(std::string_view, std::string_view val, Status& s) { return parse_num(val, 8, s.umask); }
bool status_seccomp(std::string_view, std::string_view val, Status& s) {
  return parse_num(val, 10, s.seccomp) && s.seccomp >= 0 && s.seccomp <= 2;
}
template <uint64_t Status::*Field>
bool status_kib(std::string_view, std::string_view val, Status& s) {
  if (!val.ends_with(" kB")) return false;
  return parse_num(trim(val.substr(0, val.size() - 3)), 10, s.*Field);
}
bool status_no_new_privs(std::string_view, std::string_view val, Status& s) {
  if (val != "0" && val != "1") return false;
  s.no_new_privs = val == "1";
  return true;
}
bool status_threads(std::string_view, std::string_view val, Status& s) {
  return parse_num(val, 10, s.threads) && s.threads >= 0;
}
bool status_nspid(std::string_view, std::string_view val, Status& s) {
  auto pids = parse_pid_list(val);
  if (!pids || pids->empty()) return false;
  s.nspid = std::move(*pids);
  return true;
}
bool status_x86_features(std::string_view, std::string_view val, Status& s) {
  for (std::string_view rest = val; !rest.empty();) {
    size_t end = rest.find_first_of(" \t");
    if (end) s.x86_thread_features.emplace_back(rest.substr(0, end));
    rest = end == std::string_view::npos ? std::string_view{} : rest.substr(end + 1);
  }
  return true;
}

// The lines we read; any other is skipped. Required: printed by every kernel
// we support (Umask came in 4.7, NSpid in 4.1); a missing one is reported in
// this order.
constexpr struct {
  std::string_view key;
  bool required;
  StatusParser parse;
} kStatusLines[] = {
    {"Name", true, status_name},
    {"State", true, status_state},
    {"Umask", false, status_umask},
    {"Tgid", true, status_pid<&Status::tgid>},
    {"Pid", true, status_pid<&Status::pid>},
    {"PPid", true, status_pid<&Status::ppid>},
    {"TracerPid", true, status_pid<&Status::tracer_pid>},
    {"NoNewPrivs", false, status_no_new_privs},
    {"Seccomp", false, status_seccomp},
    {"VmLck", false, status_kib<&Status::vm_lck_kib>},
    {"VmRSS", false, status_kib<&Status::rss_kib>},
    {"RssAnon", false, status_kib<&Status::rss_anon_kib>},
    {"Threads", true, status_threads},
    {"SigPnd", true, status_hex<&Status::sig_pnd>},
    {"ShdPnd", true, status_hex<&Status::shd_pnd>},
    {"SigBlk", true, status_hex<&Status::sig_blk>},
    {"SigIgn", true, status_hex<&Status::sig_ign>},
    {"SigCgt", true, status_hex<&Status::sig_cgt>},
    {"NSpid", false, status_nspid},
    {"Uid", false, status_ids<&Status::uids, 4>},
    {"Gid", false, status_ids<&Status::gids, 4>},
    {"Groups", false, status_ids<&Status::groups, 0>},
    {"CapInh", false, status_hex<&Status::cap_inh>},
    {"CapPrm", false, status_hex<&Status::cap_prm>},
    {"CapEff", false, status_hex<&Status::cap_eff>},
    {"CapBnd", false, status_hex<&Status::cap_bnd>},
    {"CapAmb", false, status_hex<&Status::cap_amb>},
    {"x86_Thread_features", false, status_x86_features},
};

}  // namespace

Result<Status> parse_status(std::string_view text) {
  bool seen[std::size(kStatusLines)] = {};
  Status s;
  std::string_view line;
  for (int lineno = 1; next_line(text, line); ++lineno) {
    size_t colon = line.find(':');
    if (colon == std::string_view::npos)
      return fail("/proc status line {}: no ':' in '{:.64}'", lineno, line);
    std::string_view key = line.substr(0, colon);
    std::string_view raw = line.substr(colon + 1);
    std::string_view val = trim(raw);
    auto it = std::find_if(std::begin(kStatusLines), std::end(kStatusLines), [&](const auto& l) { return l.key == key; });
    if (it == std::end(kStatusLines)) continue;
    if (!it->parse(raw, val, s)) return fail("/proc status line {}: bad {} '{:.64}'", lineno, key, val);
    seen[it - std::begin(kStatusLines)] = true;
  }
  for (size_t i = 0; i < std::size(kStatusLines); ++i)
    if (kStatusLines[i].required && !seen[i]) return fail("/proc status: no {} line", kStatusLines[i].key);
  return s;
}

Result<Status> read_status(pid_t pid) {
  std::string text = TRY(read_record(fmt::format("/proc/{}/status", pid)));
  return TRY_CTX(parse_status(text), "pid {}", pid);
}

Result<Stat> parse_stat(std::string_view text) {
  // comm is printed raw (it may hold spaces, parentheses, even a newline), but
  // nothing after it holds a ')', so it runs from the first '(' to the last ')'.
  size_t open = text.find('(');
  size_t close = text.rfind(')');
  if (open == std::string_view::npos || close == std::string_view::npos || close < open)
    return fail("/proc stat: no '(comm)' in '{:.64}'", text);

  Stat st;
  std::string_view pid = trim(text.substr(0, open));
  if (!parse_pid(pid, st.pid)) return fail("/proc stat: bad pid '{:.64}'", pid);
  st.comm = text.substr(open + 1, close - open - 1);

  // f[n] is proc(5)'s field n; 1 and 2 are done above.
  std::vector<std::string_view> f = {{}, pid, st.comm};
  std::string_view rest = text.substr(close + 1);
  if (rest.ends_with('\n')) rest.remove_suffix(1);
  for (std::string_view tok = next_token(rest); !tok.empty(); tok = next_token(rest))
    f.push_back(tok);
  // Fields 45..51 appeared in 3.3 and 3.5; older lines are too short for us.
  constexpr size_t kWant = 51;
  if (f.size() <= kWant) return fail("/proc stat: {} fields, want at least {}", f.size() - 1, kWant);

  if (f[3].size() != 1) return fail("/proc stat field 3 (state): bad state '{:.64}'", f[3]);
  st.state = f[3][0];

  static constexpr struct {
    int n;
    const char* name;
    pid_t Stat::*field;
  } kPids[] = {{4, "ppid", &Stat::ppid}, {5, "pgrp", &Stat::pgrp}, {6, "session", &Stat::session}};
  for (const auto& p : kPids)
    if (!parse_pid(f[p.n], st.*p.field))
      return fail("/proc stat field {} ({}): bad pid '{:.64}'", p.n, p.name, f[p.n]);

  static constexpr struct {
    int n;
    const char* name;
    uint64_t Stat::*field;
  } kNums[] = {
      {7, "tty_nr", &Stat::tty_nr},         {9, "flags", &Stat::flags},           {26, "start_code", &Stat::start_code},
      {27, "end_code", &Stat::end_code},    {28, "start_stack", &Stat::start_stack},
      {45, "start_data", &Stat::start_data}, {46, "end_data", &Stat::end_data},
      {47, "start_brk", &Stat::start_brk},  {48, "arg_start", &Stat::arg_start},
      {49, "arg_end", &Stat::arg_end},      {50, "env_start", &Stat::env_start},
      {51, "env_end", &Stat::env_end}};
  for (const auto& n : kNums)
    if (!parse_num(f[n.n], 10, st.*n.field))
      return fail("/proc stat field {} ({}): bad number '{:.64}'", n.n, n.name, f[n.n]);
  // Field 52 came in 3.5, and only a zombie's is of interest.
  if (f.size() > 52 && !parse_num(f[52], 10, st.exit_code))
    return fail("/proc stat field 52 (exit_code): bad number '{:.64}'", f[52]);
  return st;
}

Result<Stat> read_stat(pid_t pid) {
  std::string text = TRY(read_record(fmt::format("/proc/{}/stat", pid)));
  return TRY_CTX(parse_stat(text), "pid {}", pid);
}

Result<Stat> read_thread_stat(pid_t tid) {
  std::string text = TRY(read_record(fmt::format("/proc/{}/task/{}/stat", tid, tid)));
  return TRY_CTX(parse_stat(text), "thread {}", tid);
}

Result<FdInfo> parse_fdinfo(std::string_view text) {
  // pos and flags are always there; mnt_id came in 3.15 and ino in 5.14.
  FdInfo fi;
  bool have_pos = false, have_flags = false;
  std::string_view line;
  for (int lineno = 1; next_line(text, line); ++lineno) {
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;  // not ours to judge
    std::string_view key = line.substr(0, colon);
    std::string_view val = trim(line.substr(colon + 1));
    bool ok = true;
    if (key == "pos") {
      // Printed with %lli: files with FMODE_UNSIGNED_OFFSET (/dev/mem,
      // /proc/PID/mem) show offsets past 2^63 as negative. Keep the 64 bits.
      int64_t pos = 0;
      ok = have_pos = parse_num(val, 10, pos);
      fi.pos = static_cast<uint64_t>(pos);
    } else if (key == "flags") {
      ok = have_flags = parse_num(val, 8, fi.flags);
    } else if (key == "mnt_id") {
      ok = parse_num(val, 10, fi.mnt_id) && fi.mnt_id >= 0;
    } else if (key == "ino") {
      ok = parse_num(val, 10, fi.ino);
    }
    if (!ok) return fail("/proc fdinfo line {}: bad {} '{:.64}'", lineno, key, val);
  }
  if (!have_pos) return fail("/proc fdinfo: no pos line");
  if (!have_flags) return fail("/proc fdinfo: no flags line");
  return fi;
}

Result<FdInfo> read_fdinfo(pid_t pid, int fd) {
  std::string text = TRY(read_record(fmt::format("/proc/{}/fdinfo/{}", pid, fd)));
  return TRY_CTX(parse_fdinfo(text), "pid {} fd {}", pid, fd);
}

Result<std::vector<int>> list_numeric_dir(const std::string& path) {
  std::unique_ptr<DIR, int (*)(DIR*)> dir(::opendir(path.c_str()), ::closedir);
  if (!dir) return sys_error("opendir {}", path);
  std::vector<int> out;
  for (;;) {
    errno = 0;  // readdir() returns NULL both at the end and on error
    const dirent* de = ::readdir(dir.get());
    if (!de) {
      if (errno != 0) return sys_error("readdir {}", path);
      break;
    }
    int n;
    if (parse_num(std::string_view(de->d_name), 10, n) && n >= 0) out.push_back(n);
  }
  std::sort(out.begin(), out.end());
  return out;
}

Result<std::vector<pid_t>> children(pid_t pid) {
  std::vector<int> tids = TRY(list_numeric_dir(fmt::format("/proc/{}/task", pid)));
  // The children files need CONFIG_PROC_CHILDREN, which some kernels lack
  // (the 6.18 dev VM this was written on, for one). /proc/thread-self is
  // 3.17+, so an older kernel takes the slower scan too, which is still right.
  if (::access("/proc/thread-self/children", F_OK) != 0 && errno == ENOENT)
    return TRY_CTX(children_by_scan(pid), "children of pid {}", pid);
  // One file per thread, or one per process of the machine: whichever is
  // fewer opens (a process of 10,000 threads on a machine of 200 processes).
  if (tids.size() > 64)
    if (auto procs = list_numeric_dir("/proc"); procs && procs->size() < tids.size())
      return TRY_CTX(children_by_scan(pid), "children of pid {}", pid);

  std::vector<pid_t> out;
  for (int tid : tids) {
    std::string path = fmt::format("/proc/{}/task/{}/children", pid, tid);
    Result<std::string> read = read_file(path);
    if (!read && (read.error().err == ENOENT || read.error().err == ESRCH)) continue;  // the thread exited meanwhile
    std::string text = TRY(std::move(read));
    std::vector<pid_t> kids = TRY_CTX(parse_pid_list(text), "{}", path);
    out.insert(out.end(), kids.begin(), kids.end());
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

Result<uint32_t> read_cap_last_cap() {
  constexpr const char* kPath = "/proc/sys/kernel/cap_last_cap";
  std::string text = TRY(read_file(kPath));
  uint32_t last = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), last);
  if (ec != std::errc() || last > 63) return error(EINVAL, "{}: not a capability number: '{}'", kPath, text);
  return last;
}

}  // namespace ckpt::proc
