// Command line: parse_command_line() on argument vectors (without argv[0]),
// spelled as a CRIU user would spell them. Table-driven: each case names the
// arguments and checks the resulting Command, or the exit status and message.
#include <ostream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <gtest/gtest.h>

#include "cli/commands/options.h"

namespace ckpt::cli {
namespace {

using Args = std::vector<std::string>;

const char* verb_name(Verb v) {
  switch (v) {
    case Verb::Check: return "check";
    case Verb::Dump: return "dump";
    case Verb::Restore: return "restore";
    case Verb::Show: return "show";
    case Verb::Verify: return "verify";
    case Verb::PreDump: return "pre-dump";
    case Verb::PageServer: return "page-server";
    case Verb::MigrateOut: return "migrate-out";
    case Verb::MigrateIn: return "migrate-in";
    case Verb::LazyPages: return "lazy-pages";
  }
  return "?";
}
const char* after_name(dump::After a) {
  switch (a) {
    case dump::After::Kill: return "kill";
    case dump::After::Run: return "run";
    case dump::After::Stop: return "stop";
  }
  return "?";
}

// The whole Command on one line, so that a mismatch shows every field.
std::string show(const Command& c) {
  return fmt::format(
      "verb={} v={} log='{}' stats={} bp={} shared={} | dump: pid={} dir='{}' after={} shell_job={} timeout={} "
      "pages={} fsync={} | "
      "restore: dir='{}' detach={} stopped={} sibling={} pidfile='{}' bp={} files={} | show: target='{}' json={} | "
      "verify: dir='{}' files={}",
      verb_name(c.verb), c.verbosity, c.log_file, c.stats, c.breakpoints, c.allow_shared_dir, c.dump.pid, c.dump.dir,
      after_name(c.dump.after), c.dump.shell_job, c.dump.timeout_s,
      c.dump.pages == dump::PageTransfer::Splice ? "splice" : "readv", c.dump.fsync, c.restore.dir, c.restore.detach,
      c.restore.leave_stopped, c.restore.sibling, c.restore.pidfile, c.restore.breakpoints, c.restore.check_files,
      c.show_target, c.json, c.verify_dir, c.verify_files);
}

Command dump_cmd(pid_t pid, std::string dir) {
  Command c;
  c.verb = Verb::Dump;
  c.dump.pid = pid;
  c.dump.dir = std::move(dir);
  return c;
}
Command restore_cmd(std::string dir) {
  Command c;
  c.verb = Verb::Restore;
  c.restore.dir = std::move(dir);
  return c;
}

// ---------------------------------------------------------------------------
// Accepted command lines.

struct GoodCase {
  const char* name;
  Args args;
  Command want;
};

std::vector<GoodCase> good_cases() {
  std::vector<GoodCase> v;
  auto add = [&](const char* name, Args args, Command want) { v.push_back({name, std::move(args), std::move(want)}); };

  add("DumpShort", {"dump", "-t", "123", "-D", "d"}, dump_cmd(123, "d"));
  add("DumpLong", {"dump", "--tree", "123", "--images-dir", "d"}, dump_cmd(123, "d"));
  add("DumpLongWithEquals", {"dump", "--tree=123", "--images-dir=d"}, dump_cmd(123, "d"));
  add("DumpImagesDirFirst", {"dump", "-D", "d", "-t", "123"}, dump_cmd(123, "d"));
  add("DumpImagesDirBeforeVerb", {"-D", "d", "dump", "-t", "123"}, dump_cmd(123, "d"));
  {
    Command c = dump_cmd(7, "imgs");
    c.dump.after = dump::After::Run;
    add("LeaveRunningLong", {"dump", "-t", "7", "-D", "imgs", "--leave-running"}, c);
    add("LeaveRunningShort", {"dump", "-R", "-t", "7", "-D", "imgs"}, c);
  }
  {
    Command c = dump_cmd(7, "imgs");
    c.dump.after = dump::After::Stop;
    add("LeaveStoppedLong", {"dump", "-t", "7", "-D", "imgs", "--leave-stopped"}, c);
    add("LeaveStoppedShort", {"dump", "-t", "7", "-D", "imgs", "-s"}, c);
  }
  {
    Command c = dump_cmd(1, "d");
    c.dump.shell_job = true;
    add("ShellJobLong", {"dump", "-t", "1", "-D", "d", "--shell-job"}, c);
    add("ShellJobShort", {"dump", "-t", "1", "-D", "d", "-j"}, c);
  }
  {
    Command c = dump_cmd(1, "d");
    c.dump.timeout_s = 5;
    add("Timeout", {"dump", "-t", "1", "-D", "d", "--timeout", "5"}, c);
    add("TimeoutEquals", {"dump", "-t", "1", "-D", "d", "--timeout=5"}, c);
  }
  {
    Command c = dump_cmd(1, "d");
    c.verbosity = 3;
    add("VerbosityEquals", {"dump", "-t", "1", "-D", "d", "--verbosity=3"}, c);
    add("VerbosityBeforeVerb", {"--verbosity=3", "dump", "-t", "1", "-D", "d"}, c);
  }
  {
    Command c = dump_cmd(1, "d");
    c.verbosity = 4;
    add("VerbosityShortAttachedBeforeVerb", {"-v4", "dump", "-t", "1", "-D", "d"}, c);
    add("VerbosityShortAttachedAfterVerb", {"dump", "-t", "1", "-D", "d", "-v4"}, c);
    add("VerbosityShortAttachedMidVerb", {"dump", "-v4", "-t", "1", "-D", "d"}, c);
  }
  {
    Command c = dump_cmd(1, "d");
    c.verbosity = 0;
    add("VerbosityZero", {"dump", "-t", "1", "-D", "d", "-v0"}, c);
  }
  {
    Command c = dump_cmd(1, "d");
    c.log_file = "dump.log";
    add("LogFileShort", {"dump", "-t", "1", "-D", "d", "-o", "dump.log"}, c);
    add("LogFileLong", {"dump", "-t", "1", "-D", "d", "--log-file", "dump.log"}, c);
    add("LogFileBeforeVerb", {"--log-file=dump.log", "dump", "-t", "1", "-D", "d"}, c);
  }
  {
    Command c = dump_cmd(1, "d");
    c.stats = true;
    add("StatsBeforeVerb", {"--stats", "dump", "-t", "1", "-D", "d"}, c);
    add("StatsAfterVerb", {"dump", "-t", "1", "-D", "d", "--stats"}, c);
  }
  {
    // Everything a CRIU script might pass to dump, in CRIU's spellings.
    Command c = dump_cmd(4242, "/tmp/ck");
    c.verbosity = 4;
    c.log_file = "dump.log";
    c.dump.after = dump::After::Run;
    c.dump.shell_job = true;
    c.dump.timeout_s = 30;
    add("DumpCriuScript",
        {"dump", "--tree", "4242", "--images-dir", "/tmp/ck", "--log-file", "dump.log", "-v4", "--shell-job",
         "--leave-running", "--timeout", "30"},
        c);
  }

  add("RestoreShort", {"restore", "-D", "d"}, restore_cmd("d"));
  add("RestoreImagesDirBeforeVerb", {"-D", "d", "restore"}, restore_cmd("d"));
  {
    Command c = restore_cmd("d");
    c.restore.detach = true;
    c.restore.pidfile = "p";
    c.restore.sibling = true;
    c.restore.leave_stopped = true;
    add("RestoreAll", {"restore", "-D", "d", "-d", "--pidfile", "p", "--restore-sibling", "--leave-stopped"}, c);
    add("RestoreAllLong",
        {"restore", "--images-dir", "d", "--restore-detached", "--pidfile=p", "--restore-sibling", "-s"}, c);
  }
  {
    Command c = restore_cmd("d");
    add("RestoreShellJobAccepted", {"restore", "-D", "d", "--shell-job"}, c);
    add("RestoreShellJobShortAccepted", {"restore", "-D", "d", "-j"}, c);
  }
  {
    Command c = restore_cmd("d");
    c.breakpoints = false;
    c.restore.breakpoints = false;
    add("NoBreakpointsAfterVerb", {"restore", "-D", "d", "--no-breakpoints"}, c);
    add("NoBreakpointsBeforeVerb", {"--no-breakpoints", "restore", "-D", "d"}, c);
  }
  {
    Command c = dump_cmd(1, "d");
    c.breakpoints = false;  // accepted, for restore: the dump's cure traces syscalls anyway
    add("DumpNoBreakpoints", {"dump", "-t", "1", "-D", "d", "--no-breakpoints"}, c);
  }
  {
    Command c = dump_cmd(1, "d");
    c.dump.pages = dump::PageTransfer::Readv;
    add("PageTransferReadv", {"dump", "-t", "1", "-D", "d", "--page-transfer", "readv"}, c);
    c.dump.pages = dump::PageTransfer::Splice;
    add("PageTransferSplice", {"dump", "-t", "1", "-D", "d", "--page-transfer=splice"}, c);
    c.dump.pages = dump::PageTransfer::Auto;  // the default
    add("PageTransferAuto", {"dump", "-t", "1", "-D", "d", "--page-transfer", "auto"}, c);
  }
  {
    Command c = dump_cmd(1, "d");
    c.dump.fsync = true;
    add("Fsync", {"dump", "-t", "1", "-D", "d", "--fsync"}, c);
  }
  {
    Command c = dump_cmd(1, "d");
    c.allow_shared_dir = true;
    add("AllowSharedImagesDir", {"dump", "-t", "1", "-D", "d", "--allow-shared-images-dir"}, c);
    add("AllowSharedImagesDirBeforeVerb", {"--allow-shared-images-dir", "dump", "-t", "1", "-D", "d"}, c);
    Command r = restore_cmd("d");
    r.allow_shared_dir = true;
    add("RestoreAllowSharedImagesDir", {"restore", "-D", "d", "--allow-shared-images-dir"}, r);
  }
  {
    Command c = restore_cmd("d");
    c.verbosity = 4;
    c.log_file = "restore.log";
    add("RestoreCommonBefore", {"-v4", "-o", "restore.log", "restore", "-D", "d"}, c);
    add("RestoreCommonAfter", {"restore", "-D", "d", "-v4", "-o", "restore.log"}, c);
  }

  {
    Command c;
    c.verb = Verb::Show;
    c.show_target = "d";
    c.json = true;
    add("ShowJson", {"show", "d", "--json"}, c);
    add("ShowJsonFirst", {"show", "--json", "d"}, c);
  }
  {
    Command c;
    c.verb = Verb::Show;
    c.show_target = "d/core-1.img";
    add("ShowFile", {"show", "d/core-1.img"}, c);
  }
  {
    Command c;
    c.verb = Verb::Show;
    c.show_target = "d";
    add("ShowImagesDir", {"show", "-D", "d"}, c);
  }

  {
    Command c;
    c.verb = Verb::Verify;
    c.verify_dir = "d";
    add("Verify", {"verify", "d"}, c);
    add("VerifyImagesDir", {"verify", "-D", "d"}, c);
    add("VerifyImagesDirBeforeVerb", {"-D", "d", "verify"}, c);
  }

  {
    Command c = restore_cmd("d");
    c.restore.check_files = false;
    add("RestoreSkipFileCheck", {"restore", "-D", "d", "--skip-file-check"}, c);
    Command v;
    v.verb = Verb::Verify;
    v.verify_dir = "d";
    v.verify_files = false;
    add("VerifySkipFileCheck", {"verify", "--skip-file-check", "d"}, v);
  }

  add("Check", {"check"}, Command{});
  {
    Command c;
    c.verbosity = 4;
    add("CheckVerbose", {"-v4", "check"}, c);
  }
  return v;
}

void PrintTo(const GoodCase& c, std::ostream* os) { *os << fmt::format("{}", fmt::join(c.args, " ")); }

class GoodCommandLine : public testing::TestWithParam<GoodCase> {};

TEST_P(GoodCommandLine, Parses) {
  const GoodCase& tc = GetParam();
  Parsed p = parse_command_line(tc.args);
  SCOPED_TRACE(fmt::format("args: {}", fmt::join(tc.args, " ")));
  ASSERT_TRUE(p.command.has_value()) << "exit " << p.exit_code << ": " << p.text;
  EXPECT_EQ(p.exit_code, 0);
  EXPECT_EQ(p.text, "");
  EXPECT_EQ(show(*p.command), show(tc.want));
}

INSTANTIATE_TEST_SUITE_P(Options, GoodCommandLine, testing::ValuesIn(good_cases()),
                         [](const testing::TestParamInfo<GoodCase>& i) { return i.param.name; });

// A command line that starts with its subcommand's name gets that one
// subcommand made; one that starts with a common option gets them all. Both
// must read every good case the same.
TEST(Options, SubcommandMadeAloneReadsAsWithTheOthers) {
  for (const GoodCase& tc : good_cases()) {
    Args alone = tc.args, all = tc.args;
    alone.push_back("--stats");
    all.insert(all.begin(), "--stats");
    Parsed a = parse_command_line(alone), b = parse_command_line(all);
    ASSERT_TRUE(a.command.has_value()) << tc.name << ": " << a.text;
    ASSERT_TRUE(b.command.has_value()) << tc.name << ": " << b.text;
    EXPECT_EQ(show(*a.command), show(*b.command)) << tc.name;
    EXPECT_TRUE(a.command->stats) << tc.name;
  }
}

// --psk-file reaches each end of a connection: page-server, dump and
// pre-dump --page-server, and both sides of migrate.
TEST(Options, PskFileOnEveryEnd) {
  Parsed ps = parse_command_line({"page-server", "-D", "d", "--port", "9", "--psk-file", "k1"});
  ASSERT_TRUE(ps.command) << ps.text;
  EXPECT_EQ(ps.command->server_psk_file, "k1");
  for (const char* verb : {"dump", "pre-dump"}) {
    Parsed d = parse_command_line(
        {verb, "-t", "1", "-D", "d", "--page-server", "--address", "a", "--port", "9", "--psk-file", "k2"});
    ASSERT_TRUE(d.command) << verb << ": " << d.text;
    EXPECT_EQ(d.command->dump.psk_file, "k2");
  }
  Parsed in = parse_command_line({"migrate", "--listen", "9", "-D", "d", "--psk-file", "k3"});
  ASSERT_TRUE(in.command) << in.text;
  EXPECT_EQ(in.command->migrate_in.psk_file, "k3");
  Parsed out = parse_command_line({"migrate", "-t", "1", "--to", "h:9", "-D", "w", "--psk-file", "k4"});
  ASSERT_TRUE(out.command) << out.text;
  EXPECT_EQ(out.command->migrate_out.psk_file, "k4");
}

// --tls on every end of a connection, and only with the key it is keyed by.
TEST(Options, TlsOnEveryEndNeedsTheKey) {
  Parsed ps = parse_command_line({"page-server", "-D", "d", "--port", "9", "--psk-file", "k", "--tls"});
  ASSERT_TRUE(ps.command) << ps.text;
  EXPECT_TRUE(ps.command->server_tls);
  Parsed d = parse_command_line(
      {"dump", "-t", "1", "-D", "d", "--page-server", "--address", "a", "--port", "9", "--psk-file", "k", "--tls"});
  ASSERT_TRUE(d.command) << d.text;
  EXPECT_TRUE(d.command->dump.tls);
  Parsed lz = parse_command_line(
      {"lazy-pages", "-D", "d", "--page-server", "--address", "a", "--port", "9", "--psk-file", "k", "--tls"});
  ASSERT_TRUE(lz.command) << lz.text;
  EXPECT_TRUE(lz.command->lazy_tls);
  Parsed in = parse_command_line({"migrate", "--listen", "9", "-D", "d", "--psk-file", "k", "--tls"});
  ASSERT_TRUE(in.command) << in.text;
  EXPECT_TRUE(in.command->migrate_in.tls);
  Parsed out = parse_command_line({"migrate", "-t", "1", "--to", "h:9", "-D", "w", "--psk-file", "k", "--tls"});
  ASSERT_TRUE(out.command) << out.text;
  EXPECT_TRUE(out.command->migrate_out.tls);
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"page-server", "-D", "d", "--port", "9", "--tls"},
           {"dump", "-t", "1", "-D", "d", "--page-server", "--address", "a", "--port", "9", "--tls"},
           {"migrate", "--listen", "9", "-D", "d", "--tls"}}) {
    Parsed p = parse_command_line(args);
    EXPECT_FALSE(p.command) << args[0];
    EXPECT_EQ(p.exit_code, 2);
    EXPECT_NE(p.text.find("--tls needs --psk-file"), std::string::npos) << p.text;
  }
  Parsed local = parse_command_line({"dump", "-t", "1", "-D", "d", "--psk-file", "k", "--tls"});
  EXPECT_FALSE(local.command);
  EXPECT_NE(local.text.find("go with --page-server"), std::string::npos) << local.text;
}

// -v without a number asks for more output than the default (CRIU: one level
// up from the default; ckpt: debug).
TEST(Options, BareVerbosityRaisesLevel) {
  Parsed p = parse_command_line({"-v", "dump", "-t", "1", "-D", "d"});
  ASSERT_TRUE(p.command) << p.text;
  EXPECT_GT(p.command->verbosity, Command{}.verbosity);
  EXPECT_EQ(p.command->verb, Verb::Dump);
  EXPECT_EQ(p.command->dump.pid, 1);
}

// CRIU also spells verbosity as repeated v's: each one raises the level by one
// from the default of 2 (criu/crtools.c: -vv is 4, -vvvv is 6, i.e. all;
// Documentation/criu.txt: "-v[v...]"); options.cc rewrites them before CLI11,
// which would take "-vv" as -v with the value "v".
TEST(Options, CriuRepeatedV) {
  for (const char* v : {"-vv", "-vvvv"}) {
    Parsed p = parse_command_line({"dump", "-t", "1", "-D", "d", v});
    ASSERT_TRUE(p.command) << v << ": exit " << p.exit_code << ": " << p.text;
    EXPECT_EQ(p.command->verbosity, 4) << v;
  }
}

// dump --fsync sets DumpOptions::fsync, and only it does.
TEST(Options, DumpFsync) {
  Parsed p = parse_command_line({"dump", "-t", "1", "-D", "d", "--fsync"});
  ASSERT_TRUE(p.command) << p.text;
  EXPECT_TRUE(p.command->dump.fsync);
  Parsed q = parse_command_line({"dump", "-t", "1", "-D", "d"});
  ASSERT_TRUE(q.command) << q.text;
  EXPECT_FALSE(q.command->dump.fsync);
}

// restore --lazy-pages and the lazy-pages daemon, which needs -D.
TEST(Options, LazyPages) {
  Parsed r = parse_command_line({"restore", "-D", "d", "--lazy-pages"});
  ASSERT_TRUE(r.command) << r.text;
  EXPECT_TRUE(r.command->restore.lazy_pages);
  Parsed plain = parse_command_line({"restore", "-D", "d"});
  ASSERT_TRUE(plain.command) << plain.text;
  EXPECT_FALSE(plain.command->restore.lazy_pages);
  Parsed l = parse_command_line({"lazy-pages", "-D", "d"});
  ASSERT_TRUE(l.command) << l.text;
  EXPECT_EQ(l.command->verb, Verb::LazyPages);
  EXPECT_EQ(l.command->restore.dir, "d");
  Parsed no_dir = parse_command_line({"lazy-pages"});
  EXPECT_FALSE(no_dir.command);
  EXPECT_EQ(no_dir.exit_code, 2);
}

// --network-lock on dump and restore (net/netlock.h); auto by default; a
// method that is not one is refused.
TEST(Options, NetworkLock) {
  Parsed d = parse_command_line({"dump", "-t", "1", "-D", "d"});
  ASSERT_TRUE(d.command) << d.text;
  EXPECT_EQ(d.command->dump.network_lock, net::LockChoice::Auto);
  Parsed s = parse_command_line({"dump", "-t", "1", "-D", "d", "--network-lock", "skip"});
  ASSERT_TRUE(s.command) << s.text;
  EXPECT_EQ(s.command->dump.network_lock, net::LockChoice::Skip);
  Parsed r = parse_command_line({"restore", "-D", "d", "--network-lock", "iptables"});
  ASSERT_TRUE(r.command) << r.text;
  EXPECT_EQ(r.command->restore.network_lock, net::LockChoice::Iptables);
  Parsed n = parse_command_line({"restore", "-D", "d", "--network-lock=nftables"});
  ASSERT_TRUE(n.command) << n.text;
  EXPECT_EQ(n.command->restore.network_lock, net::LockChoice::Nftables);
  Parsed bad = parse_command_line({"dump", "-t", "1", "-D", "d", "--network-lock", "pf"});
  EXPECT_FALSE(bad.command);
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.text.find("--network-lock"), std::string::npos) << bad.text;
}

// ---------------------------------------------------------------------------
// Rejected command lines: exit status 2 and a message that names the problem.

struct BadCase {
  const char* name;
  Args args;
  std::vector<std::string> msg_has;  // substrings of the message
};

std::vector<BadCase> bad_cases() {
  return {
      {"LeaveRunningAndStopped", {"dump", "-t", "1", "-D", "d", "--leave-running", "--leave-stopped"},
       {"leave-running", "leave-stopped"}},
      {"LeaveRunningAndStoppedShort", {"dump", "-t", "1", "-D", "d", "-s", "-R"}, {"leave-"}},
      {"UnknownLongOption", {"dump", "-t", "1", "-D", "d", "--bogus-option"}, {"--bogus-option"}},
      {"UnknownLongOptionBeforeVerb", {"--bogus-option", "dump", "-t", "1", "-D", "d"}, {"--bogus-option"}},
      {"UnknownShortOption", {"restore", "-D", "d", "-Z"}, {"-Z"}},
      // CLI11 reports "A subcommand is required" here, without the word.
      {"UnknownVerb", {"frobnicate"}, {}},
      {"DumpOptionOnRestore", {"restore", "-D", "d", "--leave-running"}, {"--leave-running"}},
      {"DumpMissingImagesDir", {"dump", "-t", "1"}, {"-D", "images-dir"}},
      {"RestoreMissingImagesDir", {"restore", "-d"}, {"-D", "images-dir"}},
      {"DumpMissingTree", {"dump", "-D", "d"}, {"tree"}},
      {"TreeNotANumber", {"dump", "-t", "abc", "-D", "d"}, {"abc"}},
      {"TreeWithoutValue", {"dump", "-D", "d", "-t"}, {"tree"}},
      {"VerbosityTooHigh", {"dump", "-t", "1", "-D", "d", "--verbosity=5"}, {"5"}},
      {"VerbosityNegative", {"-v-1", "check"}, {"-1"}},
      {"TimeoutZero", {"dump", "-t", "1", "-D", "d", "--timeout", "0"}, {"0"}},
      {"PageTransferUnknown", {"dump", "-t", "1", "-D", "d", "--page-transfer", "mmap"}, {"mmap"}},
      {"PskFileWithoutPageServer", {"dump", "-t", "1", "-D", "d", "--psk-file", "k"}, {"--psk-file", "--page-server"}},
      {"ShowNothing", {"show"}, {"images directory"}},
      {"VerifyNothing", {"verify"}, {"images directory"}},
      {"NoVerb", {}, {"subcommand"}},
      {"TwoVerbs", {"check", "dump", "-t", "1", "-D", "d"}, {"dump"}},
  };
}

void PrintTo(const BadCase& c, std::ostream* os) { *os << fmt::format("{}", fmt::join(c.args, " ")); }

class BadCommandLine : public testing::TestWithParam<BadCase> {};

TEST_P(BadCommandLine, FailsWithStatus2) {
  const BadCase& tc = GetParam();
  Parsed p = parse_command_line(tc.args);
  SCOPED_TRACE(fmt::format("args: {}", fmt::join(tc.args, " ")));
  EXPECT_FALSE(p.command.has_value()) << show(*p.command);
  EXPECT_EQ(p.exit_code, 2);
  for (const std::string& s : tc.msg_has) EXPECT_NE(p.text.find(s), std::string::npos) << "no '" << s << "' in: " << p.text;
}

INSTANTIATE_TEST_SUITE_P(Options, BadCommandLine, testing::ValuesIn(bad_cases()),
                         [](const testing::TestParamInfo<BadCase>& i) { return i.param.name; });

// ---------------------------------------------------------------------------
// Help: exit status 0, no command, text that lists what is asked about.

struct HelpCase {
  const char* name;
  Args args;
  std::vector<std::string> text_has;
};

void PrintTo(const HelpCase& c, std::ostream* os) { *os << fmt::format("{}", fmt::join(c.args, " ")); }

class Help : public testing::TestWithParam<HelpCase> {};

TEST_P(Help, PrintsTextAndExitsZero) {
  const HelpCase& tc = GetParam();
  Parsed p = parse_command_line(tc.args);
  EXPECT_FALSE(p.command.has_value());
  EXPECT_EQ(p.exit_code, 0);
  for (const std::string& s : tc.text_has) EXPECT_NE(p.text.find(s), std::string::npos) << "no '" << s << "' in:\n" << p.text;
}

INSTANTIATE_TEST_SUITE_P(
    Options, Help,
    testing::Values(HelpCase{"Long", {"--help"}, {"ckpt", "dump", "restore", "show", "check", "--images-dir"}},
                    HelpCase{"Short", {"-h"}, {"dump", "restore"}},
                    HelpCase{"Dump", {"dump", "--help"}, {"--tree", "--leave-running", "--leave-stopped"}},
                    HelpCase{"Restore", {"restore", "--help"}, {"--restore-detached", "--pidfile"}}),
    [](const testing::TestParamInfo<HelpCase>& i) { return i.param.name; });

// --version and -V, as CRIU spells them and prints it: no subcommand needed.
TEST(Options, Version) {
  for (const Args& a : {Args{"--version"}, Args{"-V"}}) {
    Parsed p = parse_command_line(a);
    EXPECT_FALSE(p.command.has_value()) << a[0];
    EXPECT_EQ(p.exit_code, 0) << a[0];
    EXPECT_EQ(p.text, fmt::format("Version: {}\n", CKPT_VERSION)) << a[0];
  }
}

// A successful parse never carries text or a non-zero status; a failed one
// always carries both (the caller prints text and exits with exit_code).
TEST(Options, ErrorTextEndsWithNewline) {
  for (const Args& a : {Args{"dump", "-t", "1"}, Args{"--bogus"}, Args{"show"}}) {
    Parsed p = parse_command_line(a);
    ASSERT_FALSE(p.text.empty());
    EXPECT_EQ(p.text.back(), '\n') << p.text;
  }
}

}  // namespace
}  // namespace ckpt::cli
