// /proc parsers: table-driven cases on text captured from a 6.18 kernel
// (tests/unit/data and the lines quoted below), malformed input that must
// come back as an error naming the problem, and a few live reads of ourselves.
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <gtest/gtest.h>

#include "base/fs.h"
#include "base/unique_fd.h"
#include "proc/fds.h"
#include "proc/knobs.h"
#include "proc/maps.h"
#include "proc/record.h"
#include "proc/status.h"

namespace ckpt::proc {
namespace {

std::string data(const char* name) {
  auto text = read_file(fmt::format("{}/{}", CKPT_TESTDATA, name));
  EXPECT_TRUE(text) << text.error().str();
  return text.value_or("");
}

// Whole-struct renderings, so a mismatch shows every field side by side.
std::string show(const MapEntry& m) {
  return fmt::format("{:x}-{:x} {}{}{}{} off={:x} dev={:x}:{:x} ino={} path='{}'", m.start, m.end,
                     m.read ? 'r' : '-', m.write ? 'w' : '-', m.exec ? 'x' : '-',
                     m.shared ? 's' : 'p', m.offset, m.dev_major, m.dev_minor, m.inode, m.path);
}
std::string show(const std::vector<MapEntry>& maps) {
  std::string out;
  for (const auto& m : maps) out += show(m) + "\n";
  return out;
}
std::string show(const Status& s) {
  return fmt::format(
      "name='{}' state={} umask={:o} tgid={} pid={} ppid={} tracer={} threads={} "
      "pnd={:x} shd={:x} blk={:x} ign={:x} cgt={:x} nspid={} uids={} gids={} groups={} x86={} vmlck={} rss={} "
      "nnp={}",
      s.name, s.state, s.umask, s.tgid, s.pid, s.ppid, s.tracer_pid, s.threads, s.sig_pnd,
      s.shd_pnd, s.sig_blk, s.sig_ign, s.sig_cgt, s.nspid, s.uids, s.gids, s.groups, s.x86_thread_features, s.vm_lck_kib,
      s.rss_kib, s.no_new_privs);
}
std::string show(const Stat& s) {
  return fmt::format(
      "pid={} comm='{}' state={} ppid={} pgrp={} session={} flags={:x} code={:x}-{:x} "
      "stack={:x} data={:x}-{:x} brk={:x} arg={:x}-{:x} env={:x}-{:x}",
      s.pid, s.comm, s.state, s.ppid, s.pgrp, s.session, s.flags, s.start_code, s.end_code,
      s.start_stack, s.start_data, s.end_data, s.start_brk, s.arg_start, s.arg_end, s.env_start,
      s.env_end);
}
std::string show(const FdInfo& f) {
  return fmt::format("pos={} flags={:o} mnt_id={} ino={}", f.pos, f.flags, f.mnt_id, f.ino);
}

std::string show(const std::optional<int32_t>& nice) { return nice ? std::to_string(*nice) : "none"; }

// Malformed input: an error (never a crash) whose message contains `want`.
struct BadCase {
  const char* name;
  std::string text;
  const char* want;
};

template <typename Parse>
void expect_errors(const std::vector<BadCase>& cases, Parse parse) {
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto r = parse(c.text);
    ASSERT_FALSE(r) << "parsed garbage: " << show(*r);
    EXPECT_NE(r.error().msg.find(c.want), std::string::npos) << r.error().msg;
    EXPECT_EQ(r.error().err, 0);
  }
}

// ---- maps -------------------------------------------------------------------

TEST(ProcMaps, Lines) {
  struct Case {
    const char* name;
    const char* line;
    MapEntry want;
  };
  const Case cases[] = {
      {"file text",
       "561cf9665000-561cf966a000 r-xp 00002000 fe:00 247134                     /usr/bin/cat",
       {0x561cf9665000, 0x561cf966a000, true, false, true, false, 0x2000, 0xfe, 0, 247134,
        "/usr/bin/cat"}},
      {"heap", "561d248e9000-561d2490a000 rw-p 00000000 00:00 0                          [heap]",
       {0x561d248e9000, 0x561d2490a000, true, true, false, false, 0, 0, 0, 0, "[heap]"}},
      {"anonymous, trailing space", "7fe55c5f4000-7fe55c616000 rw-p 00000000 00:00 0 ",
       {0x7fe55c5f4000, 0x7fe55c616000, true, true, false, false, 0, 0, 0, 0, ""}},
      {"anonymous, no trailing space", "7fe55c5f4000-7fe55c616000 rw-p 00000000 00:00 0",
       {0x7fe55c5f4000, 0x7fe55c616000, true, true, false, false, 0, 0, 0, 0, ""}},
      {"shared file with spaces",
       "7fa011f52000-7fa011f54000 rw-s 00000000 fe:00 10952907                   "
       "/tmp/cap/my data file.bin",
       {0x7fa011f52000, 0x7fa011f54000, true, true, false, true, 0, 0xfe, 0, 10952907,
        "/tmp/cap/my data file.bin"}},
      {"deleted file",
       "7fa0129ba000-7fa0129bb000 r--p 00000000 fe:00 10952908                   "
       "/tmp/cap/gone.bin (deleted)",
       {0x7fa0129ba000, 0x7fa0129bb000, true, false, false, false, 0, 0xfe, 0, 10952908,
        "/tmp/cap/gone.bin (deleted)"}},
      {"shared anonymous",
       "7fa011d36000-7fa011d39000 rw-s 00000000 00:01 1025                       "
       "/dev/zero (deleted)",
       {0x7fa011d36000, 0x7fa011d39000, true, true, false, true, 0, 0, 1, 1025,
        "/dev/zero (deleted)"}},
      {"vvar", "7fa012bac000-7fa012bb0000 r--p 00000000 00:00 0                          [vvar]",
       {0x7fa012bac000, 0x7fa012bb0000, true, false, false, false, 0, 0, 0, 0, "[vvar]"}},
      {"vvar_vclock",
       "7fa012bb0000-7fa012bb2000 r--p 00000000 00:00 0                          [vvar_vclock]",
       {0x7fa012bb0000, 0x7fa012bb2000, true, false, false, false, 0, 0, 0, 0, "[vvar_vclock]"}},
      {"vdso", "7fa012bb2000-7fa012bb4000 r-xp 00000000 00:00 0                          [vdso]",
       {0x7fa012bb2000, 0x7fa012bb4000, true, false, true, false, 0, 0, 0, 0, "[vdso]"}},
      {"stack", "7fffc208f000-7fffc20b0000 rw-p 00000000 00:00 0                          [stack]",
       {0x7fffc208f000, 0x7fffc20b0000, true, true, false, false, 0, 0, 0, 0, "[stack]"}},
      {"vsyscall, top of the address space",
       "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]",
       {0xffffffffff600000, 0xffffffffff601000, false, false, true, false, 0, 0, 0, 0,
        "[vsyscall]"}},
      {"named anonymous with a space",
       "7f0000000000-7f0000001000 rw-p 00000000 00:00 0                          [anon:my buf]",
       {0x7f0000000000, 0x7f0000001000, true, true, false, false, 0, 0, 0, 0, "[anon:my buf]"}},
      {"short addresses, wide major, no padding left",
       "00400000-00452000 r-xp 00001000 103:2a 123456789012345678 /a",
       {0x400000, 0x452000, true, false, true, false, 0x1000, 0x103, 0x2a, 123456789012345678ull,
        "/a"}},
      {"path ending in a space kept verbatim",
       "1000-2000 r--p 00000000 fe:00 7                                          /tmp/x ",
       {0x1000, 0x2000, true, false, false, false, 0, 0xfe, 0, 7, "/tmp/x "}},
      {"escaped newline kept verbatim",
       "1000-2000 r--p 00000000 fe:00 7                                          /tmp/a\\012b",
       {0x1000, 0x2000, true, false, false, false, 0, 0xfe, 0, 7, "/tmp/a\\012b"}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto r = parse_maps(c.line);
    ASSERT_TRUE(r) << r.error().str();
    ASSERT_EQ(r->size(), 1u);
    EXPECT_EQ(show((*r)[0]), show(c.want));
  }
}

TEST(ProcMaps, CapturedFile) {
  auto r = parse_maps(data("maps_python.txt"));
  ASSERT_TRUE(r) << r.error().str();
  ASSERT_EQ(r->size(), 127u);
  EXPECT_EQ((*r)[0].path, "/root/.pyenv/versions/3.11.7/bin/python3.11");
  EXPECT_EQ(r->back().path, "[vsyscall]");
  auto has = [&](std::string_view path) {
    return std::any_of(r->begin(), r->end(), [&](const MapEntry& m) { return m.path == path; });
  };
  for (const char* p : {"[heap]", "[stack]", "[vdso]", "[vvar]", "[vvar_vclock]",
                        "/tmp/cap/my data file.bin", "/tmp/cap/gone.bin (deleted)", ""})
    EXPECT_TRUE(has(p)) << p;
  for (size_t i = 1; i < r->size(); ++i) EXPECT_LE((*r)[i - 1].end, (*r)[i].start) << i;
}

TEST(ProcMaps, Empty) {
  auto r = parse_maps("");
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->empty());
}

TEST(ProcMaps, Malformed) {
  const std::string good = "1000-2000 r--p 00000000 fe:00 7 /x\n";
  expect_errors(
      {
          {"not hex", "zz-1 r--p 0 00:00 0", "/proc maps line 1: bad address range 'zz-1'"},
          {"no dash", "1000 r--p 0 00:00 0", "bad address range '1000'"},
          {"end before start", "2000-1000 r--p 0 00:00 0", "bad address range '2000-1000'"},
          {"empty range", "1000-1000 r--p 0 00:00 0", "bad address range"},
          {"0x prefix", "0x1000-0x2000 r--p 0 00:00 0", "bad address range"},
          {"sign", "+1000-2000 r--p 0 00:00 0", "bad address range"},
          {"overflow", "10000000000000000-10000000000000001 r--p 0 00:00 0", "bad address range"},
          {"empty line", good + "\n" + good, "line 2: bad address range ''"},
          {"bad perms", "1000-2000 rwxq 0 00:00 0", "bad permissions 'rwxq'"},
          {"short perms", "1000-2000 r- 0 00:00 0", "bad permissions 'r-'"},
          {"perms out of place", "1000-2000 wr-p 0 00:00 0", "bad permissions 'wr-p'"},
          {"bad offset", "1000-2000 r--p zz 00:00 0", "bad offset 'zz'"},
          {"no device colon", "1000-2000 r--p 0 0000 0", "bad device '0000'"},
          {"bad minor", "1000-2000 r--p 0 00:zz 0", "bad device '00:zz'"},
          {"major too big", "1000-2000 r--p 0 100000000:0 0", "bad device"},
          {"negative inode", "1000-2000 r--p 0 00:00 -1", "bad inode '-1'"},
          {"inode in hex", "1000-2000 r--p 0 00:00 1f", "bad inode '1f'"},
          {"truncated", "1000-2000 r--p 0 00:00", "bad inode ''"},
          {"just a range", "1000-2000", "bad permissions ''"},
          {"tab separated", "1000-2000\tr--p 0 00:00 0", "bad address range"},
          {"third line", good + good + "garbage", "/proc maps line 3: bad address range 'garbage'"},
          {"binary", std::string("\0\xff\x01-\x80", 5), "bad address range"},
      },
      [](const std::string& t) { return parse_maps(t); });
}

TEST(ProcMaps, LongTokenIsCutInTheMessage) {
  auto r = parse_maps(std::string(10000, 'z'));
  ASSERT_FALSE(r);
  EXPECT_LT(r.error().msg.size(), 200u) << r.error().msg;
}

// ---- status -----------------------------------------------------------------

// The minimum parse_status() accepts: every line but Umask and NSpid.
const std::string kOldStatus =
    "Name:\tsleep\n"
    "State:\tS (sleeping)\n"
    "Tgid:\t42\n"
    "Pid:\t43\n"
    "PPid:\t1\n"
    "TracerPid:\t0\n"
    "Threads:\t2\n"
    "SigPnd:\t0000000000000000\n"
    "ShdPnd:\t0000000000000100\n"
    "SigBlk:\t0000000000010000\n"
    "SigIgn:\t0000000000001000\n"
    "SigCgt:\tffffffffffffffff\n";

// kOldStatus with the line starting with `key` replaced by `line` (or dropped).
std::string status_with(std::string_view key, std::string_view line) {
  std::string out;
  std::string_view rest = kOldStatus;
  while (!rest.empty()) {
    size_t nl = rest.find('\n');
    std::string_view l = rest.substr(0, nl + 1);
    rest.remove_prefix(nl + 1);
    if (l.starts_with(fmt::format("{}:", key))) {
      if (!line.empty()) out += fmt::format("{}\n", line);
    } else {
      out += l;
    }
  }
  return out;
}

TEST(ProcStatus, Cases) {
  struct Case {
    const char* name;
    std::string text;
    Status want;
  };
  const Status old = {"sleep", 'S', 0, 42, 43, 1, 0, 2, 0, 0x100, 0x10000, 0x1000, ~0ull, {}};
  auto with = [&](auto change) {
    Status s = old;
    change(s);
    return s;
  };
  auto resident = [](Status s, uint64_t kib) {
    s.rss_kib = kib;
    return s;
  };
  const Case cases[] = {
      {"captured, escaped name", data("status_escaped_name.txt"),
       resident({"x\\y\nz) (w", 'R', 027, 2778, 2778, 2774, 0, 1, 0, 0, 0, 0x1001000, 0x2, {2778}, 0, {0, 0, 0, 0},
                 {0, 0, 0, 0}, {}}, 14144)},
      {"captured, pid namespace", data("status_nspid.txt"),
       resident({"cat", 'R', 022, 2860, 2860, 2859, 0, 1, 0, 0, 0, 0, 0, {2860, 1}, 0, {0, 0, 0, 0}, {0, 0, 0, 0}, {}},
                1748)},
      {"old kernel: no Umask, no NSpid", kOldStatus, old},
      {"name with blanks kept", status_with("Name", "Name:\t a\tb "),
       with([](Status& s) { s.name = " a\tb "; })},
      {"empty name", status_with("Name", "Name:"), with([](Status& s) { s.name = ""; })},
      {"other backslashes kept", status_with("Name", "Name:\ta\\tb\\"),
       with([](Status& s) { s.name = "a\\tb\\"; })},
      {"umask", kOldStatus + "Umask:\t0777\n", with([](Status& s) { s.umask = 0777; })},
      {"traced zombie", status_with("State", "State:\tZ (zombie)") + "TracerPid:\t99\n",
       with([](Status& s) {
         s.state = 'Z';
         s.tracer_pid = 99;
       })},
      {"nested NSpid", kOldStatus + "NSpid:\t43\t7\t1\n",
       with([](Status& s) { s.nspid = {43, 7, 1}; })},
      // As the kernel writes them (arch/x86/kernel/fpu/xstate.c): a
      // blank-separated list after the tab, empty when none is enabled.
      {"x86 features none", kOldStatus + "x86_Thread_features:\t\nx86_Thread_features_locked:\t\n", old},
      {"x86 shadow stack", kOldStatus + "x86_Thread_features:\tshstk wrss \nx86_Thread_features_locked:\tshstk\n",
       with([](Status& s) { s.x86_thread_features = {"shstk", "wrss"}; })},
      {"locked memory", kOldStatus + "VmLck:\t    1024 kB\n", with([](Status& s) { s.vm_lck_kib = 1024; })},
      {"resident memory", kOldStatus + "VmRSS:\t    2048 kB\n", with([](Status& s) { s.rss_kib = 2048; })},
      {"no new privileges", kOldStatus + "NoNewPrivs:\t1\n", with([](Status& s) { s.no_new_privs = true; })},
      {"unknown lines ignored", kOldStatus + "Kthread:\t0\nGroups:\t \nNewThing:\tx y\n", old},
      // uid_t and gid_t are unsigned 32-bit: ids past INT_MAX are ids (a
      // user namespace's range, systemd's dynamic users), not overflows.
      {"ids past INT_MAX",
       kOldStatus + "Uid:\t1000\t4294967294\t2147483648\t0\nGid:\t4294967294\t5\t6\t7\n"
                    "Groups:\t10 3000000000 \n",
       with([](Status& s) {
         s.uids = {1000, 4294967294u, 2147483648u, 0};
         s.gids = {4294967294u, 5, 6, 7};
         s.groups = {10, 3000000000u};
       })},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto r = parse_status(c.text);
    ASSERT_TRUE(r) << r.error().str();
    EXPECT_EQ(show(*r), show(c.want));
  }
}

TEST(ProcStatus, Malformed) {
  expect_errors(
      {
          {"empty", "", "/proc status: no Name line"},
          {"no Pid", status_with("Pid", ""), "/proc status: no Pid line"},
          {"no SigCgt", status_with("SigCgt", ""), "no SigCgt line"},
          {"bad Tgid", status_with("Tgid", "Tgid:\tabc"), "/proc status line 3: bad Tgid 'abc'"},
          {"negative Pid", status_with("Pid", "Pid:\t-5"), "bad Pid '-5'"},
          {"pid overflow", status_with("PPid", "PPid:\t99999999999"), "bad PPid '99999999999'"},
          {"empty State", status_with("State", "State:\t"), "bad State ''"},
          {"mask with junk", status_with("SigBlk", "SigBlk:\t00000000000000zz"),
           "bad SigBlk '00000000000000zz'"},
          {"mask too wide", status_with("SigIgn", "SigIgn:\t1ffffffffffffffff"), "bad SigIgn"},
          {"mask with 0x", status_with("SigPnd", "SigPnd:\t0x0"), "bad SigPnd '0x0'"},
          {"Umask not octal", kOldStatus + "Umask:\t0089\n", "line 13: bad Umask '0089'"},
          {"bad NSpid", kOldStatus + "NSpid:\t43\tx\n", "bad NSpid '43\tx'"},
          {"empty NSpid", kOldStatus + "NSpid:\t\n", "bad NSpid ''"},
          {"negative Threads", status_with("Threads", "Threads:\t-1"), "bad Threads '-1'"},
          {"negative Uid", kOldStatus + "Uid:\t0\t-1\t0\t0\n", "bad Uid"},
          {"three Gids", kOldStatus + "Gid:\t0\t0\t0\n", "bad Gid"},
          {"Gid overflow", kOldStatus + "Gid:\t0\t0\t0\t4294967296\n", "bad Gid"},
          {"VmLck without kB", kOldStatus + "VmLck:\t1024\n", "bad VmLck '1024'"},
          {"VmLck not a number", kOldStatus + "VmLck:\t-1 kB\n", "bad VmLck '-1 kB'"},
          {"NoNewPrivs not a flag", kOldStatus + "NoNewPrivs:\t2\n", "bad NoNewPrivs '2'"},
          {"no colon", "Name:\ta\ngarbage\n", "/proc status line 2: no ':' in 'garbage'"},
          {"binary", std::string("\0\xff:\n\x80", 5), "line 2: no ':'"},
      },
      [](const std::string& t) { return parse_status(t); });
}

// ---- stat -------------------------------------------------------------------

// A kernel-thread line with fields 26.. and 45..51 numbered by their value,
// cut or changed by the malformed cases below.
std::string stat_line(std::string_view comm = "kthreadd") {
  std::string s = fmt::format("2 ({}) S 0 0 0 0 -1 2129984", comm);
  for (int n = 10; n <= 52; ++n) s += fmt::format(" {}", n);
  return s + "\n";
}

TEST(ProcStat, Cases) {
  struct Case {
    const char* name;
    std::string text;
    Stat want;
  };
  const Case cases[] = {
      {"captured, comm with newline and parens", data("stat_escaped_comm.txt"),
       {2778, "x\\y\nz) (w", 'R', 2774, 2774, 1996, 4194304, 94823946919936, 94823946920277,
        140736448878976, 94823946931632, 94823946932248, 94824601452544, 140736448886940,
        140736448886988, 140736448886988, 140736448888783}},
      {"captured kthread", data("stat_kthreadd.txt"),
       {2, "kthreadd", 'S', 0, 0, 0, 0x208040, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
      {"numbered fields", stat_line(),
       {2, "kthreadd", 'S', 0, 0, 0, 0x208040, 26, 27, 28, 45, 46, 47, 48, 49, 50, 51}},
      {"empty comm", stat_line(""),
       {2, "", 'S', 0, 0, 0, 0x208040, 26, 27, 28, 45, 46, 47, 48, 49, 50, 51}},
      {"comm ending in ')'", stat_line("a) b)"),
       {2, "a) b)", 'S', 0, 0, 0, 0x208040, 26, 27, 28, 45, 46, 47, 48, 49, 50, 51}},
      {"no trailing newline, 51 fields only", "7 (x) R 1 2 3 0 -1 9" + [] {
         std::string s;
         for (int n = 10; n <= 51; ++n) s += fmt::format(" {}", n);
         return s;
       }(),
       {7, "x", 'R', 1, 2, 3, 9, 26, 27, 28, 45, 46, 47, 48, 49, 50, 51}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto r = parse_stat(c.text);
    ASSERT_TRUE(r) << r.error().str();
    EXPECT_EQ(show(*r), show(c.want));
  }
}

TEST(ProcStat, Malformed) {
  auto replace = [](std::string s, std::string_view from, std::string_view to) {
    s.replace(s.find(from), from.size(), to);
    return s;
  };
  std::string full = stat_line();
  expect_errors(
      {
          {"empty", "", "/proc stat: no '(comm)'"},
          {"no ')'", "2 (kthreadd S 0", "no '(comm)'"},
          {"')' before '('", "2 )x( S 0", "no '(comm)'"},
          {"bad pid", replace(full, "2 (", "x ("), "/proc stat: bad pid 'x'"},
          {"no pid", replace(full, "2 (", "("), "bad pid ''"},
          {"just comm", "2 (a)", "/proc stat: 2 fields, want at least 51"},
          {"one short", full.substr(0, full.find(" 51")), "50 fields, want at least 51"},
          {"2.6-era line", full.substr(0, full.find(" 45")), "44 fields"},
          {"long state", replace(full, ") S ", ") SR "), "field 3 (state): bad state 'SR'"},
          {"bad ppid", replace(full, "S 0 0 0", "S x 0 0"), "field 4 (ppid): bad pid 'x'"},
          {"negative session", replace(full, "S 0 0 0", "S 0 0 -3"), "field 6 (session)"},
          {"bad flags", replace(full, "2129984", "0x1"), "field 9 (flags): bad number '0x1'"},
          {"bad start_code", replace(full, " 26 ", " 2z "), "field 26 (start_code): bad number"},
          {"negative env_end", replace(full, " 51", " -51"), "field 51 (env_end)"},
          {"address overflow", replace(full, " 48 ", " 18446744073709551616 "),
           "field 48 (arg_start)"},
      },
      [](const std::string& t) { return parse_stat(t); });
}

// ---- fdinfo -----------------------------------------------------------------

TEST(ProcFdinfo, Cases) {
  struct Case {
    const char* name;
    std::string text;
    FdInfo want;
  };
  const Case cases[] = {
      {"captured file", data("fdinfo_file.txt"), {123, 02100000, 27, 861}},
      {"captured epoll, tfd line ignored", data("fdinfo_epoll.txt"), {0, 02000002, 17, 1044}},
      {"before 3.15: no mnt_id, no ino", "pos:\t5\nflags:\t02\n", {5, 02, 0, 0}},
      // /proc/PID/mem seeked to the vsyscall page prints "pos:\t-10485760".
      {"offset past 2^63", "pos:\t-10485760\nflags:\t0100000\nmnt_id:\t22\nino:\t5766\n",
       {0xffffffffff600000, 0100000, 22, 5766}},
      {"other lines ignored",
       "pos:\t0\nflags:\t02\nmnt_id:\t15\nino:\t1\neventfd-count:                0\n"
       "inotify wd:1 ino:2 sdev:3 mask:4 ignored_mask:0\nlock:\t1: FLOCK ADVISORY WRITE\n"
       "no colon here\n",
       {0, 02, 15, 1}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto r = parse_fdinfo(c.text);
    ASSERT_TRUE(r) << r.error().str();
    EXPECT_EQ(show(*r), show(c.want));
  }
}

TEST(ProcFdinfo, Malformed) {
  expect_errors(
      {
          {"empty", "", "/proc fdinfo: no pos line"},
          {"no flags", "pos:\t0\n", "/proc fdinfo: no flags line"},
          {"bad pos", "pos:\tabc\nflags:\t0\n", "/proc fdinfo line 1: bad pos 'abc'"},
          {"empty pos", "pos:\nflags:\t0\n", "bad pos ''"},
          {"pos too big", "pos:\t9223372036854775808\nflags:\t0\n", "bad pos"},
          {"flags not octal", "pos:\t0\nflags:\t09\n", "line 2: bad flags '09'"},
          {"flags too wide", "pos:\t0\nflags:\t077777777777\n", "bad flags"},
          {"bad mnt_id", "pos:\t0\nflags:\t0\nmnt_id:\tx\n", "line 3: bad mnt_id 'x'"},
          {"bad ino", "pos:\t0\nflags:\t0\nino:\t-1\n", "bad ino '-1'"},
      },
      [](const std::string& t) { return parse_fdinfo(t); });
}

// ---- autogroup ----------------------------------------------------------------

TEST(ProcAutogroup, Cases) {
  struct Case {
    const char* name;
    std::string text;
    std::optional<int32_t> want;
  };
  const Case cases[] = {
      {"captured", "/autogroup-48200 nice 0\n", 0},
      {"reniced", "/autogroup-7 nice -5\n", -5},
      {"no newline", "/autogroup-7 nice 19", 19},
      // A task of init's default autogroup (no setsid since boot): the kernel
      // prints nothing. CI runs the suite from such a task.
      {"default autogroup", "", std::nullopt},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto r = parse_autogroup_nice(c.text, "/proc/1/autogroup");
    ASSERT_TRUE(r) << r.error().str();
    EXPECT_EQ(*r, c.want);
  }
}

TEST(ProcAutogroup, Malformed) {
  expect_errors(
      {
          {"no nice", "/autogroup-7\n", "/proc/1/autogroup: no nice value"},
          {"nice without value", "/autogroup-7 nice \n", "no nice value"},
          {"trailing garbage", "/autogroup-7 nice 3x\n", "no nice value"},
          {"too big", "/autogroup-7 nice 99999999999\n", "no nice value"},
      },
      [](const std::string& t) { return parse_autogroup_nice(t, "/proc/1/autogroup"); });
}

// ---- garbage never crashes ----------------------------------------------------

// A cheap stand-in for the fuzzers: mutate the captured files byte by byte.
TEST(ProcParsers, MutatedInputDoesNotCrash) {
  const std::string seeds[] = {data("maps_python.txt"), data("status_escaped_name.txt"),
                               data("stat_escaped_comm.txt"), data("fdinfo_epoll.txt")};
  std::mt19937 rng(12345);
  const char alphabet[] = "0123456789abcdefxz-:() \t\n\\\xff";
  for (int i = 0; i < 4000; ++i) {
    std::string s = seeds[i % std::size(seeds)];
    for (int k = 0, n = 1 + rng() % 8; k < n; ++k) {
      size_t at = rng() % (s.size() + 1);
      switch (rng() % 3) {
        case 0: if (at < s.size()) s[at] = alphabet[rng() % (sizeof alphabet - 1)]; break;
        case 1: s.erase(at, rng() % 16); break;
        case 2: s.insert(at, 1, alphabet[rng() % (sizeof alphabet - 1)]); break;
      }
    }
    (void)parse_maps(s);
    (void)parse_status(s);
    (void)parse_stat(s);
    (void)parse_fdinfo(s);
    (void)parse_autogroup_nice(s, "autogroup");
  }
}

// ---- live: ourselves ----------------------------------------------------------

TEST(ProcLive, MapsOfSelf) {
  auto r = read_maps(getpid());
  ASSERT_TRUE(r) << r.error().str();
  auto find = [&](uint64_t addr) {
    return std::find_if(r->begin(), r->end(),
                        [&](const MapEntry& m) { return m.start <= addr && addr < m.end; });
  };
  int local = 0;
  auto stack = find(reinterpret_cast<uintptr_t>(&local));
  ASSERT_NE(stack, r->end());
  EXPECT_EQ(stack->path, "[stack]");
  EXPECT_TRUE(stack->read && stack->write);
  auto code = find(reinterpret_cast<uintptr_t>(&data));
  ASSERT_NE(code, r->end());
  EXPECT_TRUE(code->exec);
  EXPECT_NE(code->inode, 0u);
}

TEST(ProcLive, StatusAndStatOfSelf) {
  auto status = read_status(getpid());
  ASSERT_TRUE(status) << status.error().str();
  EXPECT_EQ(status->pid, getpid());
  EXPECT_EQ(status->tgid, getpid());
  EXPECT_EQ(status->ppid, getppid());
  EXPECT_EQ(status->state, 'R');
  EXPECT_GE(status->threads, 1);
  ASSERT_FALSE(status->nspid.empty());
  EXPECT_EQ(status->nspid.front(), getpid());

  auto stat = read_stat(getpid());
  ASSERT_TRUE(stat) << stat.error().str();
  EXPECT_EQ(stat->pid, getpid());
  EXPECT_EQ(stat->ppid, getppid());
  EXPECT_EQ(stat->pgrp, getpgrp());
  EXPECT_EQ(stat->comm, status->name);
  EXPECT_EQ(stat->flags & 0x00200000, 0u);  // not a kthread
  EXPECT_LT(stat->start_code, stat->end_code);
  EXPECT_LT(stat->arg_start, stat->arg_end);
}

TEST(ProcLive, TaskDirHasOurTid) {
  auto r = list_numeric_dir("/proc/self/task");
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_NE(std::find(r->begin(), r->end(), gettid()), r->end());
  EXPECT_TRUE(std::is_sorted(r->begin(), r->end()));

  auto fds = list_numeric_dir("/proc/self/fd");
  ASSERT_TRUE(fds) << fds.error().str();
  EXPECT_TRUE(std::is_sorted(fds->begin(), fds->end()));
  EXPECT_EQ(fds->front(), 0);
}

TEST(ProcLive, MissingDirIsENOENT) {
  auto r = list_numeric_dir("/proc/self/no-such-dir");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().err, ENOENT);
  EXPECT_NE(r.error().msg.find("opendir /proc/self/no-such-dir"), std::string::npos);
}

TEST(ProcLive, FdinfoReportsPos) {
  auto fd = open_file("/proc/self/exe", O_RDONLY);  // our own binary: long enough
  ASSERT_TRUE(fd) << fd.error().str();
  ASSERT_EQ(lseek(fd->get(), 4321, SEEK_SET), 4321);
  auto r = read_fdinfo(getpid(), fd->get());
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(r->pos, 4321u);
  EXPECT_EQ(r->flags & O_ACCMODE, static_cast<uint32_t>(O_RDONLY));
  EXPECT_NE(r->flags & O_CLOEXEC, 0u);
  EXPECT_GT(r->mnt_id, 0);
  EXPECT_NE(r->ino, 0u);
}

TEST(ProcLive, FdinfoPosPast2To63) {
  auto fd = open_file("/proc/self/mem", O_RDONLY);
  ASSERT_TRUE(fd) << fd.error().str();
  const uint64_t vsyscall = 0xffffffffff600000;
  lseek(fd->get(), static_cast<off_t>(vsyscall), SEEK_SET);
  auto r = read_fdinfo(getpid(), fd->get());
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(r->pos, vsyscall);
}

TEST(ProcLive, GoneTaskIsENOENT) {
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) _exit(0);
  ASSERT_EQ(waitpid(child, nullptr, 0), child);
  auto r = read_stat(child);  // the pid could be reused, but not this soon
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().err, ENOENT) << r.error().str();
}

// A child that waits to be killed; reaped when this goes out of scope.
struct Child {
  pid_t pid;
  explicit Child(pid_t p) : pid(p) {}
  ~Child() {
    if (pid > 0) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  }
};

pid_t fork_pauser() {
  pid_t pid = fork();
  if (pid == 0) {
    pause();
    _exit(0);
  }
  return pid;
}

TEST(ProcLive, ChildrenOfEveryThread) {
  Child a(fork_pauser());
  ASSERT_GT(a.pid, 0);

  // A child forked by a second thread is on that thread's children list.
  std::atomic<pid_t> b_pid{0};
  std::atomic<bool> done{false};
  std::thread t([&] {
    b_pid = fork_pauser();
    while (!done) usleep(1000);
  });
  while (b_pid == 0) usleep(1000);
  Child b(b_pid);

  auto r = children(getpid());
  done = true;
  t.join();
  ASSERT_TRUE(r) << r.error().str();
  std::vector<pid_t> want = {a.pid, b.pid};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(*r, want);
}

TEST(ProcLive, ChildrenOfGoneTaskIsENOENT) {
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) _exit(0);
  ASSERT_EQ(waitpid(child, nullptr, 0), child);
  auto r = children(child);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().err, ENOENT) << r.error().str();
}

}  // namespace
}  // namespace ckpt::proc

// One listing under directory fds tells what the paths do: every fd, where
// it leads (a long path too), what it is, its fdinfo.
TEST(ProcLive, FdsUnderDirectoryFds) {
  const std::string dir = testing::TempDir() + fmt::format("ckpt-procfds-{}", getpid());
  std::string deep = dir;
  ASSERT_EQ(mkdir(dir.c_str(), 0700), 0);
  for (int i = 0; i < 3; i++) {
    deep += "/" + std::string(200, 'a' + i);  // past the first readlink buffer
    ASSERT_EQ(mkdir(deep.c_str(), 0700), 0);
  }
  const std::string file = deep + "/f";
  ckpt::UniqueFd f(open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  ASSERT_TRUE(f);
  int p[2];
  ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
  ckpt::UniqueFd r(p[0]), w(p[1]);

  auto fds = ckpt::proc::ProcFds::open(getpid());
  ASSERT_TRUE(fds) << fds.error().str();
  auto list = fds->list();
  ASSERT_TRUE(list);
  auto links = ckpt::proc::read_fd_links(getpid());
  ASSERT_TRUE(links);
  for (int fd : {f.get(), r.get(), w.get()}) {
    EXPECT_NE(std::ranges::find(*list, fd), list->end()) << fd;
    const std::string by_path = *ckpt::read_link(fmt::format("/proc/self/fd/{}", fd));
    EXPECT_EQ(*fds->link(fd), by_path);
    auto it = std::ranges::find(*links, fd, &ckpt::proc::FdLink::fd);
    ASSERT_NE(it, links->end());
    EXPECT_EQ(it->link, by_path);
    EXPECT_NE(fds->fdinfo(fd)->find("flags:"), std::string::npos);
  }
  EXPECT_EQ(*fds->link(f.get()), file);
  EXPECT_FALSE(fds->link(9999));
  struct stat dir_st;
  ASSERT_EQ(stat("/proc/self/fd", &dir_st), 0);
  if (dir_st.st_size > 0) {
    EXPECT_GE(*fds->count(), 3u + 3u) << "a kernel from 6.2 counts the open fds";
  }
  unlink(file.c_str());
  for (; deep.size() > dir.size(); deep.resize(deep.rfind('/'))) rmdir(deep.c_str());
  rmdir(dir.c_str());
}

// A /proc file made whole at each read, read with one read (or a few, when
// it is longer than the first buffer): the same text the read to
// end-of-file gives. Files that do not change between the two reads, and
// an epoll's fdinfo of 400 targets (over 16 KB: the buffer grows twice).
TEST(ProcRecord, SameAsReadToEndOfFile) {
  ckpt::UniqueFd ep(epoll_create1(EPOLL_CLOEXEC));
  ASSERT_TRUE(ep);
  std::vector<ckpt::UniqueFd> targets;
  for (int i = 0; i < 400; i++) {
    targets.emplace_back(eventfd(0, EFD_CLOEXEC));
    epoll_event ev{.events = EPOLLIN, .data = {.u64 = static_cast<uint64_t>(i)}};
    ASSERT_EQ(epoll_ctl(ep.get(), EPOLL_CTL_ADD, targets.back().get(), &ev), 0);
  }
  const std::string big = fmt::format("/proc/self/fdinfo/{}", ep.get());
  for (const std::string& path : {std::string("/proc/self/limits"), std::string("/proc/self/loginuid"),
                                  std::string("/proc/self/oom_score_adj"), std::string("/proc/self/coredump_filter"),
                                  big}) {
    auto whole = ckpt::read_file(path);
    auto record = ckpt::proc::read_record(path);
    ASSERT_TRUE(whole) << whole.error().str();
    ASSERT_TRUE(record) << record.error().str();
    EXPECT_EQ(*record, *whole) << path;
  }
  EXPECT_GT(ckpt::proc::read_record(big)->size(), 16384u);
  // Changing files: whole, to their last line.
  auto status = ckpt::proc::read_record("/proc/self/status");
  ASSERT_TRUE(status) << status.error().str();
  EXPECT_TRUE(status->ends_with("\n")) << *status;
  EXPECT_NE(status->find("nonvoluntary_ctxt_switches:"), std::string::npos) << *status;
  EXPECT_TRUE(ckpt::proc::parse_stat(*ckpt::proc::read_record("/proc/self/stat")));
  auto dir = ckpt::open_file("/proc/self/fdinfo", O_RDONLY | O_DIRECTORY);
  ASSERT_TRUE(dir) << dir.error().str();
  EXPECT_EQ(*ckpt::proc::read_record_at(dir->get(), std::to_string(ep.get()), big), *ckpt::read_file(big));
  auto gone = ckpt::proc::read_record("/proc/self/no-such-file");
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().err, ENOENT);
  EXPECT_NE(gone.error().str().find("/proc/self/no-such-file"), std::string::npos) << gone.error().str();
}
