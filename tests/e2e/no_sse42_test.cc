// A CPU without SSE4.2: ckpt sums its images with a table, and tells the
// blobs (parasite, spawner, restorer) to sum the pages they move the same
// way (arch/x86_64/crc32c.h). glibc's tunable hides the instruction from
// ckpt, which then tells the blobs it has none. The sums must match those
// of the instruction both ways, and a damaged run must still be caught by
// the restorer's table.
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <string>

#include "fmt/format.h"
#include "harness.h"

namespace e2e {
namespace {

// While it lives, the ckpt runs started here see a CPU without SSE4.2.
class NoSse42 {
 public:
  NoSse42() { setenv("GLIBC_TUNABLES", "glibc.cpu.hwcaps=-SSE4_2", 1); }
  ~NoSse42() { unsetenv("GLIBC_TUNABLES"); }
};

// 16 MiB of heap: runs longer than the instruction's three-chain blocks.
const std::vector<std::string> kHeap = {"16"};

TEST(NoSse42, DumpedByTheTableRestoredByTheInstruction) {
  Harness h;
  pid_t pid;
  {
    NoSse42 table;
    pid = h.dump_workload("heap", kHeap);
  }
  h.restore_expect_pass(pid, "heap");
}

TEST(NoSse42, DumpedByTheInstructionRestoredByTheTable) {
  Harness h;
  const pid_t pid = h.dump_workload("heap", kHeap);
  NoSse42 table;
  h.restore_expect_pass(pid, "heap");
}

// The tree's children inherit their parent's pages: the spawner reads and
// sums those, each task's restorer its own.
TEST(NoSse42, TreeDumpedAndRestoredByTheTable) {
  Harness h;
  NoSse42 table;
  const pid_t pid = h.start_workload("tree");
  ASSERT_GT(pid, 0);
  const int status = h.dump_restore_tree(pid, {"dump", "-t", std::to_string(pid), "-D", h.images()}, false, true);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status << read_text(h.workload_log("tree"));
}

TEST(NoSse42, DamagedRunCaughtByTheTable) {
  Harness h;
  const pid_t pid = h.dump_workload("heap", kHeap);
  const std::string pages = fmt::format("{}/pages-{}.img", h.images(), pid);
  struct stat st;
  ASSERT_EQ(stat(pages.c_str(), &st), 0);
  ASSERT_TRUE(flip_byte(pages, st.st_size - 1));
  NoSse42 table;
  CkptRun r = h.ckpt({"restore", "-D", h.images()});
  EXPECT_NE(r.exit_code(), 0);
  EXPECT_NE(r.err.find("checksum mismatch in run"), std::string::npos) << r.err;
  EXPECT_FALSE(alive(pid));
}

}  // namespace
}  // namespace e2e
