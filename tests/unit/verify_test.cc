// image/verify.h: cross-reference checks on decoded images (table-driven:
// one good task, one mutation per case, the message that must come out), page
// data checksums on a real file, and a whole directory written by ImageDir
// (durable writes included).
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "arch/x86_64/page.h"
#include "base/fs.h"
#include "base/unique_fd.h"
#include "ckpt.pb.h"
#include "image/crc32c.h"
#include "image/image_dir.h"
#include "image/page_server.h"
#include "image/page_store.h"
#include "image/page_wire.h"
#include "image/verify.h"

namespace ckpt::image {
namespace {

using arch::kPageSize;
using arch::kTaskSize;

constexpr pid_t kPid = 1234;
constexpr uint64_t kBase = 0x7f0000000000;

// A consistent task: an anonymous VMA with two runs, a file VMA, the vDSO,
// stdin/stdout/stderr where 1 and 2 share a description.
TaskImageSet good_task() {
  TaskImageSet t;
  t.pid = kPid;
  t.core.set_pid(kPid);
  img::ThreadCore* th = t.core.add_threads();
  th->set_tid(kPid);
  th->set_xsave(std::string(1024, '\0'));
  th->mutable_regs()->set_cs(0x33);
  th->mutable_regs()->set_ss(0x2b);
  th->mutable_regs()->set_eflags(0x246);
  th->mutable_regs()->set_rip(kBase + 0x123);
  img::SigInfo* si = th->add_pending();
  si->set_signo(10);
  si->set_raw(std::string(kSiginfoBytes, '\0'));
  img::SigAction* sa = t.core.add_sigactions();
  sa->set_signo(15);
  t.core.mutable_mm()->set_auxv(std::string(32, '\0'));

  auto vma = [&](uint64_t start, uint64_t end, img::Vma::Kind kind) {
    img::Vma* v = t.mm.add_vmas();
    v->set_start(start);
    v->set_end(end);
    v->set_kind(kind);
    v->set_prot(PROT_READ | PROT_WRITE);
  };
  vma(kBase, kBase + 16 * kPageSize, img::Vma::ANON_PRIVATE);
  vma(kBase + 16 * kPageSize, kBase + 20 * kPageSize, img::Vma::FILE_SHARED);
  vma(kBase + 32 * kPageSize, kBase + 34 * kPageSize, img::Vma::VDSO);

  auto run = [&](uint64_t vaddr, uint64_t n) {
    img::PageRun* r = t.pagemap.add_runs();
    r->set_vaddr(vaddr);
    r->set_nr_pages(n);
  };
  run(kBase, 2);
  run(kBase + 4 * kPageSize, 3);
  t.pagemap.set_total_pages(5);

  auto fd = [&](int n, uint32_t desc) {
    img::FdEntry* e = t.files.add_fds();
    e->set_fd(n);
    e->set_desc(desc);
  };
  fd(0, 1);
  fd(1, 2);
  fd(2, 2);
  return t;
}

struct TaskCase {
  const char* name;
  std::function<void(TaskImageSet&)> mutate;
  std::vector<std::string> msg_has;  // empty: must pass
};
void PrintTo(const TaskCase& c, std::ostream* os) { *os << c.name; }

std::vector<TaskCase> task_cases() {
  using T = TaskImageSet;
  std::vector<TaskCase> v;
  v.push_back({"Good", [](T&) {}, {}});
  // core
  v.push_back({"CoreOtherPid", [](T& t) { t.core.set_pid(99); }, {"d/core-1234.img", "holds pid 99"}});
  v.push_back({"NoThreads", [](T& t) { t.core.clear_threads(); }, {"core-1234.img", "no threads"}});
  v.push_back({"MainThreadNotFirst", [](T& t) { t.core.mutable_threads(0)->set_tid(77); }, {"core-1234.img", "main thread"}});
  v.push_back({"RepeatedTid",
               [](T& t) { *t.core.add_threads() = t.core.threads(0); },
               {"core-1234.img", "thread 1 has tid 1234, invalid or repeated"}});
  v.push_back({"SmallXsave", [](T& t) { t.core.mutable_threads(0)->set_xsave("x"); }, {"core-1234.img", "xsave area of 1 bytes"}});
  v.push_back({"HugeXsave",
               [](T& t) { t.core.mutable_threads(0)->set_xsave(std::string(kMaxXsaveBytes + 1, 'x')); },
               {"core-1234.img", "xsave"}});
  v.push_back({"BadPendingSignal",
               [](T& t) { t.core.mutable_threads(0)->mutable_pending(0)->set_signo(65); },
               {"core-1234.img", "signal 65 is out of range"}});
  v.push_back({"ShortSiginfo",
               [](T& t) { t.core.mutable_threads(0)->mutable_pending(0)->set_raw("abc"); },
               {"core-1234.img", "3 bytes, not 128"}});
  v.push_back({"BadSigaction", [](T& t) { t.core.mutable_sigactions(0)->set_signo(0); }, {"core-1234.img", "signal 0"}});
  // registers no user task can have, tids the system can't give, sigactions
  auto regs = [](T& t) { return t.core.mutable_threads(0)->mutable_regs(); };
  v.push_back({"KernelCs", [=](T& t) { regs(t)->set_cs(0x10); },
               {"core-1234.img: task 1234 thread 1234: cs 0x10 is not the 64-bit user code selector 0x33"}});
  v.push_back({"Compat32Cs", [=](T& t) { regs(t)->set_cs(0x23); }, {"thread 1234: cs 0x23"}});
  v.push_back({"BadSs", [=](T& t) { regs(t)->set_ss(0x18); }, {"thread 1234: ss 0x18 is not the user stack selector 0x2b"}});
  v.push_back({"NonCanonicalRip", [=](T& t) { regs(t)->set_rip(0x0000800000001000); },
               {"thread 1234: rip 0x800000001000 is not a canonical user address"}});
  v.push_back({"KernelRip", [=](T& t) { regs(t)->set_rip(0xffffffff81000000); }, {"thread 1234: rip 0xffffffff81000000"}});
  v.push_back({"TrapFlag", [=](T& t) { regs(t)->set_eflags(0x346); }, {"thread 1234: eflags 0x346 has bits no user task holds (0x100: TF)"}});
  v.push_back({"Iopl", [=](T& t) { regs(t)->set_eflags(0x3246); }, {"eflags 0x3246", "(0x3000: IOPL)"}});
  v.push_back({"Vm86", [=](T& t) { regs(t)->set_eflags(0x20246); }, {"(0x20000: VM)"}});
  v.push_back({"ReservedEflags", [=](T& t) { regs(t)->set_eflags(0x4000000246); }, {"(0x4000000000: reserved)"}});
  v.push_back({"UserEflagsPass", [=](T& t) { regs(t)->set_eflags(0x250ad7); }, {}});
  v.push_back({"TidAbovePidMax",
               [](T& t) { *t.core.add_threads() = t.core.threads(0); t.core.mutable_threads(1)->set_tid(system_pid_max()); },
               {"core-1234.img: task 1234 thread 1: tid", "is not below this system's pid_max"}});
  v.push_back({"TidAbovePidMaxLimit",
               [](T& t) { *t.core.add_threads() = t.core.threads(0); t.core.mutable_threads(1)->set_tid(kMaxPids); },
               {"core-1234.img: thread 1 has tid 4194304, invalid"}});
  v.push_back({"DuplicateSigaction", [](T& t) { *t.core.add_sigactions() = t.core.sigactions(0); },
               {"core-1234.img: task 1234: two sigactions for signal 15"}});
  v.push_back({"SigactionAbove64", [](T& t) { t.core.mutable_sigactions(0)->set_signo(65); },
               {"core-1234.img: task 1234: sigaction for signal 65, out of range (1..64)"}});
  v.push_back({"SigactionForSigkill", [](T& t) { t.core.mutable_sigactions(0)->set_signo(9); },
               {"task 1234: sigaction for signal 9, whose action can't be changed"}});
  v.push_back({"OddAuxv", [](T& t) { t.core.mutable_mm()->set_auxv("12345"); }, {"core-1234.img", "auxv of 5 bytes"}});
  // mm
  v.push_back({"UnalignedVma", [](T& t) { t.mm.mutable_vmas(1)->set_start(kBase + 16 * kPageSize + 1); },
               {"d/mm-1234.img", "VMA 1 has a bad range"}});
  v.push_back({"EmptyVma", [](T& t) { t.mm.mutable_vmas(2)->set_end(kBase + 32 * kPageSize); }, {"mm-1234.img", "VMA 2 has a bad range"}});
  v.push_back({"VmaPastTaskSize", [](T& t) { t.mm.mutable_vmas(2)->set_end(kTaskSize + kPageSize); },
               {"mm-1234.img", "VMA 2 has a bad range"}});
  v.push_back({"OverlappingVmas", [](T& t) { t.mm.mutable_vmas(1)->set_start(kBase + 8 * kPageSize); },
               {"mm-1234.img", "VMA 1 at 0x7f0000008000 overlaps the one before"}});
  v.push_back({"UnknownVmaKind", [](T& t) { t.mm.mutable_vmas(0)->set_kind(static_cast<img::Vma::Kind>(42)); },
               {"mm-1234.img", "unknown kind 42"}});
  v.push_back({"UnknownProt", [](T& t) { t.mm.mutable_vmas(0)->set_prot(0x100); }, {"mm-1234.img", "protection bits 0x100"}});
  v.push_back({"UnalignedPgoff", [](T& t) { t.mm.mutable_vmas(1)->set_pgoff(12); }, {"mm-1234.img", "not page aligned"}});
  // pagemap
  v.push_back({"OverlappingRuns", [](T& t) { t.pagemap.mutable_runs(1)->set_vaddr(kBase + kPageSize); },
               {"d/pagemap-1234.img", "run 1 (0x7f0000001000, 3 pages) overlaps or comes before run 0"}});
  v.push_back({"RunsOutOfOrder",
               [](T& t) {
                 t.pagemap.mutable_runs(0)->set_vaddr(kBase + 8 * kPageSize);
               },
               {"pagemap-1234.img", "run 1", "overlaps or comes before run 0"}});
  v.push_back({"RunOutsideVmas", [](T& t) { t.pagemap.mutable_runs(1)->set_vaddr(kBase + 24 * kPageSize); },
               {"pagemap-1234.img", "run 1", "not inside a private VMA"}});
  v.push_back({"RunInSharedVma", [](T& t) { t.pagemap.mutable_runs(1)->set_vaddr(kBase + 16 * kPageSize); },
               {"pagemap-1234.img", "not inside a private VMA"}});
  v.push_back({"RunAcrossVmaEnd", [](T& t) { t.pagemap.mutable_runs(1)->set_nr_pages(20); t.pagemap.set_total_pages(22); },
               {"pagemap-1234.img", "run 1", "not inside a private VMA"}});
  v.push_back({"ZeroPages", [](T& t) { t.pagemap.mutable_runs(0)->set_nr_pages(0); }, {"pagemap-1234.img", "run 0", "out of range"}});
  v.push_back({"HugeNrPages", [](T& t) { t.pagemap.mutable_runs(1)->set_nr_pages(1ULL << 60); },
               {"pagemap-1234.img", "run 1", "out of range"}});
  v.push_back({"WrappingNrPages", [](T& t) { t.pagemap.mutable_runs(1)->set_nr_pages(~0ULL / kPageSize + 2); },
               {"pagemap-1234.img", "run 1", "out of range"}});
  v.push_back({"UnalignedRun", [](T& t) { t.pagemap.mutable_runs(0)->set_vaddr(kBase + 1); }, {"pagemap-1234.img", "out of range"}});
  v.push_back({"WrongTotal", [](T& t) { t.pagemap.set_total_pages(6); }, {"pagemap-1234.img", "total_pages says 6, the runs hold 5"}});
  // files
  v.push_back({"NegativeFd", [](T& t) { t.files.mutable_fds(0)->set_fd(-1); }, {"d/files-1234.img", "entry 0 has fd -1"}});
  v.push_back({"RepeatedFd", [](T& t) { t.files.mutable_fds(1)->set_fd(0); }, {"files-1234.img", "fd 0 appears twice (entries 0 and 1)"}});
  v.push_back({"NoDescription", [](T& t) { t.files.mutable_fds(2)->set_desc(0); },
               {"files-1234.img", "fd 2 refers to no file description"}});
  return v;
}

class TaskCheck : public testing::TestWithParam<TaskCase> {};

TEST_P(TaskCheck, NamesTheProblem) {
  const TaskCase& tc = GetParam();
  TaskImageSet t = good_task();
  tc.mutate(t);
  auto r = check_task("d", t);
  if (tc.msg_has.empty()) {
    ASSERT_TRUE(r) << r.error().str();
    EXPECT_EQ(*r, 5u);
    return;
  }
  ASSERT_FALSE(r) << "accepted";
  const std::string msg = r.error().str();
  for (const std::string& s : tc.msg_has) EXPECT_NE(msg.find(s), std::string::npos) << "no '" << s << "' in: " << msg;
}

INSTANTIATE_TEST_SUITE_P(Verify, TaskCheck, testing::ValuesIn(task_cases()),
                         [](const testing::TestParamInfo<TaskCase>& i) { return i.param.name; });

img::Inventory good_inventory() {
  img::Inventory inv;
  inv.set_format_version(kFormatVersion);
  inv.set_root_pid(kPid);
  inv.add_pids(kPid);
  inv.set_page_size(4096);
  return inv;
}

TEST(VerifyInventory, Checks) {
  EXPECT_TRUE(check_inventory("inv", good_inventory()));
  struct {
    const char* name;
    std::function<void(img::Inventory&)> mutate;
    const char* msg;
  } cases[] = {
      {"no pids", [](img::Inventory& i) { i.clear_pids(); }, "inv: lists no pids"},
      {"repeated pid", [](img::Inventory& i) { i.add_pids(5); i.add_pids(kPid); }, "inv: pid 1234 is listed twice (entries 0 and 2)"},
      {"zero pid", [](img::Inventory& i) { i.add_pids(0); }, "inv: pid entry 1 holds 0, not a valid pid"},
      {"negative pid", [](img::Inventory& i) { i.set_pids(0, -5); i.set_root_pid(-5); }, "pid entry 0 holds -5"},
      {"huge pid", [](img::Inventory& i) { i.add_pids(kMaxPids + 1); }, "not a valid pid"},
      {"root not listed", [](img::Inventory& i) { i.set_root_pid(7); }, "root pid 7 is not among the listed pids"},
      {"future format", [](img::Inventory& i) { i.set_format_version(99); }, "format_version 99"},
      {"page size", [](img::Inventory& i) { i.set_page_size(65536); }, "page size 65536"},
  };
  for (const auto& c : cases) {
    img::Inventory inv = good_inventory();
    c.mutate(inv);
    auto r = check_inventory("inv", inv);
    ASSERT_FALSE(r) << c.name;
    EXPECT_NE(r.error().str().find(c.msg), std::string::npos) << c.name << ": " << r.error().str();
  }
}

// The network lock's name goes into nft and iptables commands at restore.
TEST(VerifyInventory, NetworkLock) {
  auto with_lock = [](const std::function<void(img::NetLock&)>& mutate) {
    img::Inventory inv = good_inventory();
    img::NetLock* l = inv.mutable_network_lock();
    l->set_name("ckpt-77-12345");
    img::NetLockConnection* c = l->add_connections();
    c->set_family(2);  // AF_INET
    c->set_local_addr(std::string("\x7f\0\0\x01", 4));
    c->set_remote_addr(std::string("\x7f\0\0\x01", 4));
    c->set_local_port(5000);
    c->set_remote_port(40000);
    mutate(*l);
    return check_inventory("inv", inv);
  };
  EXPECT_TRUE(with_lock([](img::NetLock&) {}));
  struct {
    const char* name;
    std::function<void(img::NetLock&)> mutate;
    const char* msg;
  } cases[] = {
      {"injected name", [](img::NetLock& l) { l.set_name("ckpt-1-2; flush ruleset"); }, "is not a name ckpt gives"},
      {"empty name", [](img::NetLock& l) { l.clear_name(); }, "is not a name ckpt gives"},
      {"method", [](img::NetLock& l) { l.set_method(static_cast<img::NetLock::Method>(9)); }, "method 9 is unknown"},
      {"family", [](img::NetLock& l) { l.mutable_connections(0)->set_family(1); }, "connection 0 (family 1"},
      {"short address", [](img::NetLock& l) { l.mutable_connections(0)->set_local_addr("ab"); }, "is no TCP connection"},
      {"v6 with v4 address", [](img::NetLock& l) { l.mutable_connections(0)->set_family(10); }, "is no TCP connection"},
      {"port", [](img::NetLock& l) { l.mutable_connections(0)->set_remote_port(70000); }, "ports 5000 and 70000"},
  };
  for (const auto& c : cases) {
    auto r = with_lock(c.mutate);
    ASSERT_FALSE(r) << c.name;
    EXPECT_NE(r.error().str().find(c.msg), std::string::npos) << c.name << ": " << r.error().str();
  }
}

// --- page data -----------------------------------------------------------------

// A pages file for `runs` (page counts), each page filled with its index.
struct PagesFixture {
  UniqueFd fd;
  img::PageMap pm;
  std::string data;

  explicit PagesFixture(const std::vector<uint64_t>& runs) : fd(memfd_create("pages", MFD_CLOEXEC)) {
    uint64_t page = 0;
    for (size_t i = 0; i < runs.size(); i++) {
      img::PageRun* r = pm.add_runs();
      r->set_vaddr(kBase + page * 2 * kPageSize);
      r->set_nr_pages(runs[i]);
      std::string bytes;
      for (uint64_t p = 0; p < runs[i]; p++, page++) bytes += std::string(kPageSize, static_cast<char>(page * 13 + 1));
      r->set_crc32c(crc32c(bytes.data(), bytes.size()));
      data += bytes;
    }
    pm.set_total_pages(page);
    PagesHeader h = make_pages_header(data.size());
    std::string file(reinterpret_cast<const char*>(&h), sizeof h);
    file.resize(kPagesDataOffset, '\0');
    file += data;
    EXPECT_TRUE(write_all(fd.get(), file.data(), file.size()));
  }
  void poke(uint64_t off, char c) { EXPECT_EQ(pwrite(fd.get(), &c, 1, static_cast<off_t>(off)), 1); }
};

TEST(VerifyPages, GoodFile) {
  PagesFixture f({1, 3, 2});
  auto r = verify_pages_file("pages-1.img", f.fd.get(), f.pm);
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(*r, 6u);
}

TEST(VerifyPages, EmptyMap) {
  PagesFixture f({});
  auto r = verify_pages_file("pages-1.img", f.fd.get(), f.pm);
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(*r, 0u);
}

TEST(VerifyPages, FlippedBitNamesRunAndOffset) {
  PagesFixture f({1, 3, 2});
  // Second page of run 1, which starts at 4096 + 4096.
  f.poke(kPagesDataOffset + kPageSize + kPageSize + 100, 'X');
  auto r = verify_page_data("pages-1.img", f.fd.get(), f.pm);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().msg, fmt::format("pages-1.img: checksum mismatch in run 1 ({:#x}, 3 pages) at offset 8192",
                                       kBase + 2 * kPageSize));
}

TEST(VerifyPages, EveryRunIsChecked) {
  for (int run = 0; run < 3; run++) {
    PagesFixture f({1, 3, 2});
    const uint64_t starts[] = {0, 1, 4};
    f.poke(kPagesDataOffset + starts[run] * kPageSize + kPageSize - 1, 'X');
    auto r = verify_page_data("p", f.fd.get(), f.pm);
    ASSERT_FALSE(r) << "run " << run;
    EXPECT_NE(r.error().msg.find(fmt::format("run {} ", run)), std::string::npos) << r.error().msg;
    EXPECT_NE(r.error().msg.find(fmt::format("at offset {}", kPagesDataOffset + starts[run] * kPageSize)),
              std::string::npos)
        << r.error().msg;
  }
}

TEST(VerifyPages, RunsSpanningChunks) {
  // 8 MiB chunks: a 3000-page run crosses two chunk boundaries, small runs around it.
  PagesFixture f({1, 3000, 5, 2100});
  auto r = verify_pages_file("p", f.fd.get(), f.pm);
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(*r, 5106u);
  f.poke(kPagesDataOffset + (1 + 3000 + 5 + 2099) * kPageSize, 'X');  // last page of the last run
  r = verify_pages_file("p", f.fd.get(), f.pm);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().msg.find("run 3 "), std::string::npos) << r.error().msg;
}

TEST(VerifyPages, DataSizeMustMatchRuns) {
  PagesFixture f({2, 2});
  f.pm.mutable_runs(1)->set_nr_pages(1);
  auto r = verify_pages_file("pages-1.img", f.fd.get(), f.pm);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().msg.find("pages-1.img: holds 16384 bytes of page data"), std::string::npos) << r.error().msg;
  EXPECT_NE(r.error().msg.find("need 12288"), std::string::npos) << r.error().msg;
}

TEST(VerifyPages, TruncatedDataIsNamed) {
  PagesFixture f({2, 2});
  ASSERT_EQ(ftruncate(f.fd.get(), kPagesDataOffset + 3 * kPageSize), 0);
  // verify_page_data alone (restore checks the size first, but be safe).
  auto r = verify_page_data("pages-1.img", f.fd.get(), f.pm);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().msg.find("pages-1.img: truncated at offset 16384"), std::string::npos) << r.error().msg;
}

TEST(VerifyPages, HugeRunsDoNotOverflow) {
  PagesFixture f({1});
  f.pm.mutable_runs(0)->set_nr_pages(1ULL << 62);
  auto r = verify_pages_file("p", f.fd.get(), f.pm);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().msg.find("more bytes than a file can hold"), std::string::npos) << r.error().msg;
}

// --- a directory -----------------------------------------------------------------

class TempDir {
 public:
  TempDir() {
    char t[] = "/tmp/ckpt-verify-XXXXXX";
    path_ = mkdtemp(t);
  }
  ~TempDir() { std::system(fmt::format("rm -rf {}", path_).c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Writes good_task() with its pages through ImageDir, as dump does.
void write_checkpoint(ImageDir& dir) {
  TaskImageSet t = good_task();
  PagesFixture pages({2, 3});
  for (int i = 0; i < 2; i++) t.pagemap.mutable_runs(i)->set_crc32c(pages.pm.runs(i).crc32c());
  ASSERT_TRUE(dir.write(core_name(kPid), ImageKind::Core, t.core));
  ASSERT_TRUE(dir.write(mm_name(kPid), ImageKind::Mm, t.mm));
  ASSERT_TRUE(dir.write(pagemap_name(kPid), ImageKind::PageMap, t.pagemap));
  ASSERT_TRUE(dir.write(files_name(kPid), ImageKind::Files, t.files));
  img::FileDescs descs;
  for (uint32_t id : {1, 2}) {
    img::FileDesc* d = descs.add_descs();
    d->set_id(id);
    d->mutable_regular()->set_path("/dev/null");
  }
  ASSERT_TRUE(dir.write(kFileDescsName, ImageKind::FileDescs, descs));
  auto out = dir.create_temp(pages_name(kPid));
  ASSERT_TRUE(out);
  std::string bytes(kPagesDataOffset + pages.data.size(), '\0');
  ASSERT_EQ(pread(pages.fd.get(), bytes.data(), bytes.size(), 0), static_cast<ssize_t>(bytes.size()));
  ASSERT_TRUE(write_all(out->fd(), bytes.data(), bytes.size()));
  ASSERT_TRUE(dir.commit(*out));
  ASSERT_TRUE(dir.write(kInventoryName, ImageKind::Inventory, good_inventory()));
}

TEST(VerifyDir, DurableWritesMakeAVerifiableCheckpoint) {
  TempDir tmp;
  const std::string path = tmp.path() + "/img";
  auto dir = ImageDir::create(path, SharedDir::Refuse);
  ASSERT_TRUE(dir) << dir.error().str();
  dir->set_durable(true);
  write_checkpoint(*dir);
  auto r = verify_dir(*dir);
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(r->images, 7u);
  EXPECT_EQ(r->pages, 5u);

  // Owner-only: the images hold a process's memory.
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  for (const std::string& n : {core_name(kPid), pages_name(kPid), std::string(kInventoryName)}) {
    ASSERT_EQ(stat(dir->file(n).c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0600u) << n;
  }
  // No temporaries left.
  EXPECT_NE(access(dir->file("." + core_name(kPid) + ".tmp").c_str(), F_OK), 0);

  // A second dump into it is refused.
  auto again = ImageDir::create(path, SharedDir::Refuse);
  ASSERT_FALSE(again);
  EXPECT_NE(again.error().str().find("already holds a checkpoint"), std::string::npos);
}

TEST(VerifyDir, LeftoverTempGetsOwnerOnlyMode) {
  TempDir tmp;
  auto dir = ImageDir::create(tmp.path() + "/img", SharedDir::Refuse);
  ASSERT_TRUE(dir);
  const std::string tmpfile = dir->file("." + core_name(kPid) + ".tmp");
  UniqueFd old(open(tmpfile.c_str(), O_WRONLY | O_CREAT, 0644));
  ASSERT_EQ(fchmod(old.get(), 0644), 0);
  ASSERT_TRUE(dir->write(core_name(kPid), ImageKind::Core, good_task().core));
  struct stat st;
  ASSERT_EQ(stat(dir->file(core_name(kPid)).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
}

TEST(VerifyDir, MissingImageIsNamed) {
  TempDir tmp;
  auto dir = ImageDir::create(tmp.path() + "/img", SharedDir::Refuse);
  ASSERT_TRUE(dir);
  write_checkpoint(*dir);
  ASSERT_EQ(unlink(dir->file(files_name(kPid)).c_str()), 0);
  auto r = verify_dir(*dir);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().msg.find(dir->file(files_name(kPid)) + " is missing (inventory.img lists pid 1234)"),
            std::string::npos)
      << r.error().msg;
}

TEST(VerifyDir, DamagedStrayImageIsFound) {
  TempDir tmp;
  auto dir = ImageDir::create(tmp.path() + "/img", SharedDir::Refuse);
  ASSERT_TRUE(dir);
  write_checkpoint(*dir);
  img::Stats s;
  s.set_dump_ns(5);
  ASSERT_TRUE(dir->write("stats-dump.img", ImageKind::Stats, s));
  auto r = verify_dir(*dir);
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(r->images, 8u);
  ASSERT_EQ(truncate(dir->file("stats-dump.img").c_str(), 20), 0);
  r = verify_dir(*dir);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().msg.find("stats-dump.img: truncated at offset 20"), std::string::npos) << r.error().msg;
}

TEST(VerifyDir, OversizedMetadataIsRefusedUnread) {
  TempDir tmp;
  auto dir = ImageDir::create(tmp.path() + "/img", SharedDir::Refuse);
  ASSERT_TRUE(dir);
  write_checkpoint(*dir);
  ASSERT_EQ(truncate(dir->file(mm_name(kPid)).c_str(), kMaxImageBytes + 1), 0);  // sparse
  auto r = verify_dir(*dir);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().msg.find("mm-1234.img: 268435457 bytes, too large for a metadata image"), std::string::npos)
      << r.error().msg;
}

TEST(VerifyDir, NotACheckpoint) {
  TempDir tmp;
  auto dir = ImageDir::open(tmp.path(), SharedDir::Refuse);
  ASSERT_TRUE(dir);
  auto r = verify_dir(*dir);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().msg.find("inventory.img is missing"), std::string::npos) << r.error().msg;
}

namespace wire {

// A frame for `name` with `body`, as the sending side writes it.
std::string frame_of(const std::string& name, const std::string& body) {
  WireHeader h{};
  std::memcpy(h.magic, kWireMagic, sizeof h.magic);
  h.kind = kWireFile;
  h.name_len = static_cast<uint32_t>(name.size());
  h.length = body.size();
  std::memcpy(h.name, name.data(), std::min(name.size(), kWireMaxName));
  h.crc = crc32c(&h, offsetof(WireHeader, crc));
  WireEnd e{};
  std::memcpy(e.magic, kWireEndMagic, sizeof e.magic);
  e.length = body.size();
  return std::string(reinterpret_cast<const char*>(&h), sizeof h) + body +
         std::string(reinterpret_cast<const char*>(&e), sizeof e);
}

Result<uint64_t> receive(ImageDir& dir, const std::string& name, const std::string& body, Accept accept) {
  int sv[2];
  EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  UniqueFd a(sv[0]), b(sv[1]);
  const std::string bytes = frame_of(name, body);
  EXPECT_TRUE(write_all(a.get(), bytes.data(), bytes.size()));
  WireHeader h;
  EXPECT_EQ(read(b.get(), &h, sizeof h), static_cast<ssize_t>(sizeof h));
  return receive_file(dir, b.get(), h, accept);
}

}  // namespace wire

// What the network may write into an images directory: a page server only
// pages files, ckpt migrate any image by its plain name; never a path, a
// hidden file or another name.
TEST(Wire, NamesTheReceiverWrites) {
  TempDir tmp;
  auto dir = ImageDir::create(tmp.path() + "/img", SharedDir::Refuse);
  ASSERT_TRUE(dir);
  const std::string image = frame(ImageKind::Core, good_task().core);
  for (const char* bad : {"../core-1.img", "/etc/passwd", ".core-1.img.tmp", "core-1.img/x", "Core-1.img", "core-1",
                          ".img", "core-1.img "}) {
    auto r = wire::receive(*dir, bad, image, Accept::Images);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().err, EPERM) << bad << ": " << r.error().str();
  }
  auto pages_only = wire::receive(*dir, core_name(kPid), image, Accept::Pages);
  ASSERT_FALSE(pages_only);
  EXPECT_NE(pages_only.error().str().find("is not the name of a pages file"), std::string::npos);
  auto ok = wire::receive(*dir, core_name(kPid), image, Accept::Images);
  ASSERT_TRUE(ok) << ok.error().str();
  EXPECT_EQ(read_file(dir->file(core_name(kPid))).value_or(""), image);
  // Never over what is there.
  EXPECT_FALSE(wire::receive(*dir, core_name(kPid), image, Accept::Images));
}

}  // namespace
}  // namespace ckpt::image

namespace ckpt::image {
namespace {

// shmem.img with a System V segment: its key and id must be there, its mode
// sane, and every VMA that attaches it shared and inside it.
TEST(VerifyShmem, SysvSegment) {
  struct Case {
    const char* name;
    std::function<void(img::ShmemObject&, img::Vma&)> mutate;
    const char* error;  // nullptr: accepted
  };
  const Case cases[] = {
      {"good", [](auto&, auto&) {}, nullptr},
      {"no key and id", [](img::ShmemObject& o, auto&) { o.clear_sysv(); }, "is a System V segment but has not its key"},
      {"key on a memfd", [](img::ShmemObject& o, auto&) { o.set_kind(img::ShmemObject::MEMFD); },
       "is not a System V segment but has its key"},
      {"mode", [](img::ShmemObject& o, auto&) { o.mutable_sysv()->set_mode(010640); }, "mode 10640"},
      {"private attach", [](auto&, img::Vma& v) { v.set_kind(img::Vma::FILE_PRIVATE); }, "outside it"},
      {"past its end", [](auto&, img::Vma& v) { v.set_pgoff(2 * kPageSize); }, "at offset 0x2000, outside it"},
  };
  for (const Case& c : cases) {
    TempDir tmp;
    auto dir = ImageDir::create(tmp.path() + "/img", SharedDir::Refuse);
    ASSERT_TRUE(dir);
    img::ShmemImage image;
    img::ShmemObject* o = image.add_objects();
    o->set_id(1);
    o->set_kind(img::ShmemObject::SYSV);
    o->set_size(2 * kPageSize + 100);
    o->mutable_sysv()->set_shmid(7);
    o->mutable_sysv()->set_key(0x1234);
    o->mutable_sysv()->set_mode(0640);
    img::MmImage mm;
    img::Vma* v = mm.add_vmas();
    v->set_start(kBase);
    v->set_end(kBase + 2 * kPageSize);
    v->set_kind(img::Vma::FILE_SHARED);
    v->set_pgoff(kPageSize);
    v->set_shmem_id(1);
    c.mutate(*o, *v);
    ASSERT_TRUE(dir->write(kShmemName, ImageKind::Shmem, image));
    const img::MmImage* mms[] = {&mm};
    auto r = load_shmem(*dir, mms);
    if (!c.error) {
      EXPECT_TRUE(r) << c.name << ": " << r.error().str();
      continue;
    }
    ASSERT_FALSE(r) << c.name;
    EXPECT_NE(r.error().str().find(c.error), std::string::npos) << c.name << ": " << r.error().str();
  }
}

}  // namespace
}  // namespace ckpt::image
