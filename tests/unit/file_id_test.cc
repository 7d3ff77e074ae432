// files/file_id.h: the ELF build-id parser on crafted files (good, and damaged
// in every field it reads: it must find nothing, never read out of bounds),
// on a real binary, and the description of what differs between identities.
#include <elf.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <string>

#include <gtest/gtest.h>

#include "base/fs.h"
#include "base/unique_fd.h"
#include "files/file_id.h"

namespace ckpt::files {
namespace {

const std::string kId = "\x01\x23\x45\x67\x89\xab\xcd\xef\x01\x23\x45\x67\x89\xab\xcd\xef\x10\x20\x30\x40";

// A little ELF file: header, two program headers (PT_LOAD, PT_NOTE), then a
// note segment holding a GNU property note (8-aligned, as ld writes it) and
// the build-id note.
struct Elf {
  Elf64_Ehdr eh{};
  Elf64_Phdr ph[2]{};
  std::string notes;

  static void note(std::string& out, uint32_t type, const std::string& name, const std::string& desc, size_t align) {
    Elf64_Nhdr nh{static_cast<uint32_t>(name.size()), static_cast<uint32_t>(desc.size()), type};
    out.append(reinterpret_cast<const char*>(&nh), sizeof nh);
    out += name;
    out.resize((out.size() + align - 1) & ~(align - 1), '\0');
    out += desc;
    out.resize((out.size() + align - 1) & ~(align - 1), '\0');
  }

  Elf() {
    std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
    eh.e_ident[EI_CLASS] = ELFCLASS64;
    eh.e_ident[EI_DATA] = ELFDATA2LSB;
    eh.e_ident[EI_VERSION] = EV_CURRENT;
    eh.e_type = ET_DYN;
    eh.e_machine = EM_X86_64;
    eh.e_phoff = sizeof eh;
    eh.e_phentsize = sizeof(Elf64_Phdr);
    eh.e_phnum = 2;
    ph[0].p_type = PT_LOAD;
    note(notes, NT_GNU_BUILD_ID + 2, std::string("GNU\0", 4), std::string(16, 'p'), 4);
    note(notes, NT_GNU_BUILD_ID, std::string("GNU\0", 4), kId, 4);
    ph[1].p_type = PT_NOTE;
    ph[1].p_offset = sizeof eh + sizeof ph;
    ph[1].p_filesz = notes.size();
    ph[1].p_align = 4;
  }
  std::string bytes() const {
    std::string out(reinterpret_cast<const char*>(&eh), sizeof eh);
    out.append(reinterpret_cast<const char*>(ph), sizeof ph);
    return out + notes;
  }
};

Result<std::string> build_id_of(const std::string& bytes) {
  UniqueFd fd(memfd_create("elf", MFD_CLOEXEC));
  EXPECT_TRUE(fd);
  EXPECT_TRUE(write_all(fd.get(), bytes.data(), bytes.size()));
  return read_build_id(fd.get(), "test.elf");
}

TEST(BuildId, FoundInAGoodFile) {
  auto id = build_id_of(Elf().bytes());
  ASSERT_TRUE(id) << id.error().str();
  EXPECT_EQ(*id, kId);
}

TEST(BuildId, EightByteAlignedNotes) {
  Elf e;
  e.notes.clear();
  Elf::note(e.notes, 5, std::string("GNU\0", 4), std::string(12, 'p'), 8);
  Elf::note(e.notes, NT_GNU_BUILD_ID, std::string("GNU\0", 4), kId, 8);
  e.ph[1].p_filesz = e.notes.size();
  e.ph[1].p_align = 8;
  EXPECT_EQ(build_id_of(e.bytes()).value_or("?"), kId);
}

// Read with the first page, unless they lie beyond it: then on their own.
TEST(BuildId, NotesAndProgramHeadersPastTheFirstPage) {
  Elf e;
  const size_t far = 3 * 4096 + 100;
  e.ph[1].p_offset = far;
  std::string bytes = e.bytes();
  bytes.resize(far, '\0');
  bytes += e.notes;
  EXPECT_EQ(build_id_of(bytes).value_or("?"), kId) << "notes past the first page";

  Elf moved;
  moved.eh.e_phoff = far;
  moved.ph[1].p_offset = sizeof(Elf64_Ehdr);
  std::string out(reinterpret_cast<const char*>(&moved.eh), sizeof moved.eh);
  out += moved.notes;
  out.resize(far, '\0');
  out.append(reinterpret_cast<const char*>(moved.ph), sizeof moved.ph);
  EXPECT_EQ(build_id_of(out).value_or("?"), kId) << "program headers past the first page";

  Elf straddles;  // notes that start in the first page and end past it
  straddles.ph[1].p_offset = 4096 - 10;
  bytes = straddles.bytes();
  bytes.resize(4096 - 10, '\0');
  bytes += straddles.notes;
  EXPECT_EQ(build_id_of(bytes).value_or("?"), kId) << "notes across the end of the first page";
}

struct Damage {
  const char* name;
  std::function<void(Elf&)> change;
  size_t truncate_to = 0;  // 0: whole file
};

TEST(BuildId, NothingInDamagedOrForeignFiles) {
  const Damage cases[] = {
      {"not ELF", [](Elf& e) { e.eh.e_ident[1] = 'X'; }},
      {"32-bit", [](Elf& e) { e.eh.e_ident[EI_CLASS] = ELFCLASS32; }},
      {"big-endian", [](Elf& e) { e.eh.e_ident[EI_DATA] = ELFDATA2MSB; }},
      {"header cut short", [](Elf&) {}, 40},
      {"program headers cut short", [](Elf&) {}, sizeof(Elf64_Ehdr) + 60},
      {"notes cut short", [](Elf&) {}, sizeof(Elf64_Ehdr) + 2 * sizeof(Elf64_Phdr) + 30},
      {"odd phentsize", [](Elf& e) { e.eh.e_phentsize = 32; }},
      {"no program headers", [](Elf& e) { e.eh.e_phnum = 0; }},
      {"too many program headers", [](Elf& e) { e.eh.e_phnum = 60000; }},
      {"phoff past the end", [](Elf& e) { e.eh.e_phoff = 1 << 20; }},
      {"phoff wraps", [](Elf& e) { e.eh.e_phoff = ~0ULL - 8; }},
      {"note offset wraps", [](Elf& e) { e.ph[1].p_offset = ~0ULL - 4; }},
      {"note segment past the end", [](Elf& e) { e.ph[1].p_offset = 1 << 20; }},
      {"huge note segment", [](Elf& e) { e.ph[1].p_filesz = 1ULL << 40; }},
      {"huge namesz", [](Elf& e) { reinterpret_cast<Elf64_Nhdr*>(e.notes.data())->n_namesz = 0xffffffff; }},
      {"huge descsz", [](Elf& e) { reinterpret_cast<Elf64_Nhdr*>(e.notes.data())->n_descsz = 0xfffffff0; }},
      {"build-id desc past the segment",
       [](Elf& e) { e.ph[1].p_filesz -= 8; }},
      {"build-id not from GNU", [](Elf& e) { e.notes[32 + 12] = 'X'; }},
      {"empty build-id", [](Elf& e) {
         e.notes.resize(32);
         Elf::note(e.notes, NT_GNU_BUILD_ID, std::string("GNU\0", 4), "", 4);
         e.ph[1].p_filesz = e.notes.size();
       }},
  };
  for (const Damage& d : cases) {
    Elf e;
    d.change(e);
    std::string bytes = e.bytes();
    if (d.truncate_to) bytes.resize(d.truncate_to);
    auto id = build_id_of(bytes);
    ASSERT_TRUE(id) << d.name << ": " << id.error().str();
    EXPECT_EQ(*id, "") << d.name;
  }
}

TEST(BuildId, OfThisBinary) {
  UniqueFd fd = open_file("/proc/self/exe", O_RDONLY).value();
  auto id = read_build_id(fd.get(), "unit_tests");
  ASSERT_TRUE(id) << id.error().str();
  EXPECT_EQ(id->size(), 20u) << "built without --build-id=sha1?";
  auto whole = identify_path("/proc/self/exe");
  ASSERT_TRUE(whole) << whole.error().str();
  EXPECT_EQ(whole->build_id(), *id);
  EXPECT_GT(whole->size(), 0u);
  EXPECT_GT(whole->mtime_ns(), 0);
  // A device has no build-id to read (and is not opened for one).
  auto null = identify_path("/dev/null");
  ASSERT_TRUE(null) << null.error().str();
  EXPECT_EQ(null->build_id(), "");
}

// The cache answers as identify_path does, by inode (a second path to the
// same file gets the same answer), and looks again at a file changed since,
// even one whose size and mtime were put back as they were (its ctime moved).
// Writes `bytes` into `path`, in place (the same inode once it exists).
bool put(const std::string& path, const std::string& bytes) {
  auto fd = open_file(path, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0600);
  return fd && write_all(fd->get(), bytes.data(), bytes.size());
}

TEST(FileIdCache, AnswersAsALookAndSeesAFileChanged) {
  const std::string path = "/tmp/ckpt-fileidcache-" + std::to_string(getpid());
  const std::string link = path + "-link";
  Elf e;
  ASSERT_TRUE(put(path, e.bytes()));
  ASSERT_EQ(::link(path.c_str(), link.c_str()), 0);
  FileIdCache cache;
  auto first = cache.identify_path(path);
  ASSERT_TRUE(first) << first.error().str();
  EXPECT_EQ(first->build_id(), kId);
  EXPECT_EQ(first->SerializeAsString(), identify_path(path)->SerializeAsString());
  auto by_link = cache.identify_path(link);
  ASSERT_TRUE(by_link) << by_link.error().str();
  EXPECT_EQ(by_link->SerializeAsString(), first->SerializeAsString());

  struct stat before;
  ASSERT_EQ(stat(path.c_str(), &before), 0);
  std::string other = e.bytes();
  other.replace(other.find(kId), kId.size(), std::string(kId.size(), '\x5a'));
  ASSERT_TRUE(put(path, other));
  const struct timespec times[2] = {before.st_atim, before.st_mtim};
  ASSERT_EQ(utimensat(AT_FDCWD, path.c_str(), times, 0), 0);
  auto again = cache.identify_path(path);
  ASSERT_TRUE(again) << again.error().str();
  EXPECT_EQ(again->mtime_ns(), first->mtime_ns());
  EXPECT_EQ(again->build_id(), std::string(kId.size(), '\x5a'));
  unlink(path.c_str());
  unlink(link.c_str());
}

// Asked once a mount and device: a second file there gets the first one's
// answer without a statfs (here, a path that no longer exists); another
// filesystem, and an unknown mount, are asked.
TEST(FsIds, OnceAMountAndDevice) {
  const std::string tmp = "/tmp/ckpt-fsids-" + std::to_string(getpid());
  const std::string shm = "/dev/shm/ckpt-fsids-" + std::to_string(getpid());
  for (const std::string& p : {tmp, shm}) UniqueFd(open(p.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
  struct stat t, m;
  ASSERT_EQ(stat(tmp.c_str(), &t), 0);
  ASSERT_EQ(stat(shm.c_str(), &m), 0);
  // The mount ids are keys only: any two tell the mounts apart.
  constexpr int kTmpMount = 1, kShmMount = 2;
  FsIds ids;
  auto a = ids.of(kTmpMount, t.st_dev, tmp);
  auto b = ids.of(kShmMount, m.st_dev, shm);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(*a, *filesystem_id(tmp));
  EXPECT_EQ(*b, *filesystem_id(shm));
  unlink(tmp.c_str());
  unlink(shm.c_str());
  auto again = ids.of(kTmpMount, t.st_dev, tmp);
  ASSERT_TRUE(again) << again.error().str();
  EXPECT_EQ(*again, *a);
  EXPECT_FALSE(ids.of(0, t.st_dev, tmp)) << "an unknown mount is asked each time";
  EXPECT_FALSE(ids.of(kTmpMount, m.st_dev, tmp)) << "another device is asked";
}

TEST(FileIdDifference, NamesWhatDiffers) {
  img::FileId a;
  a.set_size(100);
  a.set_mtime_ns(1700000000123456789);
  a.set_inode(42);
  a.set_dev(0x801);
  a.set_build_id("\xab\xcd");
  EXPECT_EQ(file_id_difference(a, a), "");
  img::FileId b = a;
  b.set_size(200);
  b.set_inode(43);
  b.clear_build_id();
  EXPECT_EQ(file_id_difference(a, b), "size 100 -> 200, inode 42 -> 43, build-id abcd -> none");
  b = a;
  b.set_mtime_ns(1700000001000000005);
  b.set_dev(0x802);
  EXPECT_EQ(file_id_difference(a, b),
            "mtime 1700000000.123456789 -> 1700000001.000000005, device 8:1 -> 8:2");
  // A file mapped shared: the task may write it; only which file it is counts.
  EXPECT_EQ(file_id_difference(a, b, Compare::SameFile), "device 8:1 -> 8:2");
  b = a;
  b.set_size(4096);
  b.set_mtime_ns(1800000000000000000);
  b.set_build_id("x");
  EXPECT_EQ(file_id_difference(a, b, Compare::SameFile), "");
  img::Vma v;
  v.set_kind(img::Vma::FILE_SHARED);
  EXPECT_EQ(compare_for(v), Compare::SameFile);
  v.set_kind(img::Vma::FILE_PRIVATE);
  EXPECT_EQ(compare_for(v), Compare::Content);
}

}  // namespace
}  // namespace ckpt::files
