// parse_locks on fdinfo text as the kernel prints it (fs/locks.c).
#include "files/locks.h"

#include <gtest/gtest.h>

namespace ckpt::files {
namespace {

struct Case {
  const char* name;
  const char* fdinfo;
  std::vector<std::string> want;  // "kind write start len", or {"!error text"}
};
void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

class ParseLocks : public ::testing::TestWithParam<Case> {};

TEST_P(ParseLocks, Table) {
  const Case& c = GetParam();
  auto r = parse_locks(c.fdinfo);
  if (!c.want.empty() && c.want[0][0] == '!') {
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().msg.find(c.want[0].substr(1)), std::string::npos) << r.error().msg;
    return;
  }
  ASSERT_TRUE(r) << r.error().str();
  std::vector<std::string> got;
  for (const img::FileLock& l : *r)
    got.push_back(fmt::format("{} {} {} {}", img::FileLock::Kind_Name(l.kind()), l.write(), l.start(), l.len()));
  EXPECT_EQ(got, c.want);
}

const char kHead[] = "pos:\t0\nflags:\t02100002\nmnt_id:\t27\nino:\t10952800\n";

INSTANTIATE_TEST_SUITE_P(
    Fdinfo, ParseLocks,
    ::testing::Values(
        Case{"None", kHead, {}},
        Case{"PosixRange", "pos:\t0\nlock:\t1: POSIX  ADVISORY  WRITE 9283 fe:00:10952800 5 14\n", {"POSIX true 5 10"}},
        Case{"FlockToEof", "lock:\t1: FLOCK  ADVISORY  READ 9283 fe:00:10953003 0 EOF\n", {"FLOCK false 0 0"}},
        Case{"OfdToEof", "lock:\t2: OFDLCK ADVISORY  WRITE -1 fe:00:10953003 5 EOF\n", {"OFD true 5 0"}},
        Case{"Several",
             "lock:\t1: POSIX  ADVISORY  READ 7 00:1f:12 0 0\nlock:\t2: POSIX  ADVISORY  WRITE 7 00:1f:12 100 199\n",
             {"POSIX false 0 1", "POSIX true 100 100"}},
        Case{"WaiterIsNotAHolder", "lock:\t1: -> POSIX  ADVISORY  WRITE 8 fe:00:1 0 EOF\n", {}},
        Case{"Lease", "lock:\t1: LEASE  ACTIVE    READ 9 fe:00:1 0 EOF\n", {"!LEASE"}},
        Case{"Garbage", "lock:\t1: POSIX\n", {"!cannot parse"}},
        Case{"EndBeforeStart", "lock:\t1: POSIX  ADVISORY  WRITE 7 fe:00:1 10 5\n", {"!ends before it starts"}}),
    [](const auto& i) { return std::string(i.param.name); });

}  // namespace
}  // namespace ckpt::files
