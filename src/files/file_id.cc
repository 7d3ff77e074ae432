#include "files/file_id.h"

#include <elf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>

#include <fmt/ranges.h>

#include <cstring>
#include <vector>

#include "base/fs.h"

namespace ckpt::files {

namespace {

// Real binaries have a dozen program headers and notes of a few hundred
// bytes; anything far beyond is not worth reading for a build-id.
constexpr unsigned kMaxPhnum = 512;
constexpr uint64_t kMaxNoteBytes = 64 << 10;
constexpr uint32_t kMaxBuildIdBytes = 64;  // SHA-1 gives 20, some linkers 16 or 32

// The build-id among the notes of one PT_NOTE segment. Each note: a header
// (namesz, descsz, type), the name, then the descriptor, each padded so that
// the descriptor and the next note start `align`-aligned (4, or 8 for
// segments aligned so, as the kernel's own note parser does).
std::string find_build_id(std::string_view notes, uint64_t align) {
  auto up = [align](uint64_t n) { return (n + align - 1) & ~(align - 1); };
  for (uint64_t off = 0; notes.size() - off >= sizeof(Elf64_Nhdr);) {
    Elf64_Nhdr nh;
    std::memcpy(&nh, notes.data() + off, sizeof nh);
    // u32 sizes added to an offset below 64 KiB: no overflow in u64.
    const uint64_t name_at = off + sizeof nh;
    const uint64_t desc_at = off + up(sizeof nh + nh.n_namesz);
    if (desc_at > notes.size() || nh.n_descsz > notes.size() - desc_at) return {};
    if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == sizeof ELF_NOTE_GNU &&
        std::memcmp(notes.data() + name_at, ELF_NOTE_GNU, sizeof ELF_NOTE_GNU) == 0 && nh.n_descsz > 0 &&
        nh.n_descsz <= kMaxBuildIdBytes)
      return std::string(notes.substr(desc_at, nh.n_descsz));
    off = up(desc_at + nh.n_descsz);
    if (off > notes.size()) return {};
  }
  return {};
}

std::string hex(const std::string& bytes) {
  std::string out;
  for (unsigned char c : bytes) out += fmt::format("{:02x}", c);
  return out;
}

std::string mtime_text(int64_t ns) {
  return fmt::format("{}.{:09}", ns / 1000000000, ns % 1000000000);
}

img::FileId from_stat(const struct stat& st) {
  img::FileId id;
  id.set_size(st.st_size);
  id.set_mtime_ns(static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec);
  id.set_inode(st.st_ino);
  id.set_dev(st.st_dev);
  return id;
}

uint64_t fsid_of(const struct statfs& s) {
  return static_cast<uint32_t>(s.f_fsid.__val[0]) |
         static_cast<uint64_t>(static_cast<uint32_t>(s.f_fsid.__val[1])) << 32;
}

}  // namespace

// Header, program headers and notes lie in a binary's first page as linkers
// lay them out: one read of it, not one per part (syscalls are dear in a
// guest); a part beyond it is read on its own.
Result<std::string> read_build_id(int fd, const std::string& what) {
  std::string head(4096, '\0');
  head.resize(TRY_CTX(pread_full(fd, head.data(), head.size(), 0), "read the ELF header of {}", what));
  // The bytes [off, off + len) of the file into `out`, from the first page
  // where they lie in it; false if the file ends before them.
  auto part = [&](uint64_t off, uint64_t len, void* out, std::string_view name) -> Result<bool> {
    if (off <= head.size() && len <= head.size() - off) {
      std::memcpy(out, head.data() + off, len);
      return true;
    }
    const size_t got = TRY_CTX(pread_full(fd, out, len, static_cast<off_t>(off)), "read the {} of {}", name, what);
    return got == len;
  };
  Elf64_Ehdr eh;
  if (head.size() < sizeof eh) return std::string();
  std::memcpy(&eh, head.data(), sizeof eh);
  if (std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
      eh.e_ident[EI_DATA] != ELFDATA2LSB)
    return std::string();
  if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 || eh.e_phnum > kMaxPhnum) return std::string();
  const uint64_t ph_bytes = eh.e_phnum * sizeof(Elf64_Phdr);
  if (eh.e_phoff > static_cast<uint64_t>(INT64_MAX) - ph_bytes) return std::string();
  std::vector<Elf64_Phdr> ph(eh.e_phnum);
  if (!TRY(part(eh.e_phoff, ph_bytes, ph.data(), "program headers"))) return std::string();
  std::string notes;
  for (const Elf64_Phdr& p : ph) {
    if (p.p_type != PT_NOTE || p.p_filesz == 0 || p.p_filesz > kMaxNoteBytes ||
        p.p_offset > static_cast<uint64_t>(INT64_MAX) - p.p_filesz)
      continue;
    notes.resize(p.p_filesz);
    if (!TRY(part(p.p_offset, p.p_filesz, notes.data(), "notes"))) continue;
    std::string id = find_build_id(notes, p.p_align == 8 ? 8 : 4);
    if (!id.empty()) return id;
  }
  return std::string();
}

bool same_inode(const img::FileId& id, const struct stat& st) {
  const img::FileId now = from_stat(st);
  return now.dev() == id.dev() && now.inode() == id.inode() && now.size() == id.size() &&
         now.mtime_ns() == id.mtime_ns();
}

Result<uint64_t> filesystem_id(int fd) {
  struct statfs s;
  if (fstatfs(fd, &s) < 0) return sys_error("statfs");
  return fsid_of(s);
}

Result<uint64_t> filesystem_id(const std::string& path) {
  struct statfs s;
  if (statfs(path.c_str(), &s) < 0) return sys_error("statfs {}", path);
  return fsid_of(s);
}

Result<uint64_t> FsIds::of(int mnt_id, dev_t dev, const std::string& path) {
  if (mnt_id == 0) return filesystem_id(path);
  if (auto it = ids_.find({mnt_id, dev}); it != ids_.end()) return it->second;
  const uint64_t id = TRY(filesystem_id(path));
  ids_.emplace(std::pair{mnt_id, dev}, id);
  return id;
}

Result<img::FileId> identify_file(int fd, const std::string& what) {
  struct stat st;
  if (fstat(fd, &st) < 0) return sys_error("stat {}", what);
  img::FileId id = from_stat(st);
  id.set_fsid(TRY_CTX(filesystem_id(fd), "{}", what));
  if (S_ISREG(st.st_mode)) id.set_build_id(TRY(read_build_id(fd, what)));
  return id;
}

namespace {

// The identity of `path`, which stat just saw as `st`.
Result<img::FileId> identify_stated(const std::string& path, const struct stat& st) {
  if (!S_ISREG(st.st_mode)) {
    img::FileId id = from_stat(st);
    id.set_fsid(TRY(filesystem_id(path)));
    return id;
  }
  UniqueFd fd = TRY(open_file(path, O_RDONLY | O_CLOEXEC));
  return identify_file(fd.get(), path);
}

}  // namespace

Result<img::FileId> identify_path(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) < 0) return sys_error("stat {}", path);
  return identify_stated(path, st);
}

Result<img::FileId> FileIdCache::identify_path(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) < 0) return sys_error("stat {}", path);
  if (!S_ISREG(st.st_mode)) return identify_stated(path, st);
  const std::pair<uint64_t, uint64_t> key{st.st_dev, st.st_ino};
  {
    std::lock_guard lock(mu_);
    if (auto k = known_.find(key); k != known_.end() && same_inode(k->second.id, st) &&
                                   k->second.ctime.tv_sec == st.st_ctim.tv_sec &&
                                   k->second.ctime.tv_nsec == st.st_ctim.tv_nsec)
      return k->second.id;
  }
  img::FileId id = TRY(identify_stated(path, st));
  std::lock_guard lock(mu_);
  known_.insert_or_assign(key, Known{id, st.st_ctim});
  return id;
}

Compare compare_for(const img::Vma& v) {
  return v.kind() == img::Vma::FILE_SHARED ? Compare::SameFile : Compare::Content;
}

std::string file_id_difference(const img::FileId& dumped, const img::FileId& now, Compare how) {
  std::vector<std::string> diffs;
  // On another filesystem the same file can only be one of the same content.
  const bool same_fs = same_filesystem(dumped.fsid(), now.fsid());
  const bool content = how == Compare::Content || !same_fs;
  if (content && dumped.size() != now.size()) diffs.push_back(fmt::format("size {} -> {}", dumped.size(), now.size()));
  if (content && dumped.mtime_ns() != now.mtime_ns())
    diffs.push_back(fmt::format("mtime {} -> {}", mtime_text(dumped.mtime_ns()), mtime_text(now.mtime_ns())));
  if (same_fs && dumped.inode() != now.inode())
    diffs.push_back(fmt::format("inode {} -> {}", dumped.inode(), now.inode()));
  if (same_fs && dumped.dev() != now.dev())
    diffs.push_back(fmt::format("device {}:{} -> {}:{}", major(dumped.dev()), minor(dumped.dev()), major(now.dev()),
                                minor(now.dev())));
  if (content && dumped.build_id() != now.build_id())
    diffs.push_back(fmt::format("build-id {} -> {}", dumped.build_id().empty() ? "none" : hex(dumped.build_id()),
                                now.build_id().empty() ? "none" : hex(now.build_id())));
  return fmt::format("{}", fmt::join(diffs, ", "));
}

Result<void> check_file_id(const std::string& path, std::string_view use, int fd, const img::FileId& dumped,
                           Compare how) {
  return check_file_id(path, use, TRY(identify_file(fd, path)), dumped, how);
}

Result<void> check_file_id(const std::string& path, std::string_view use, const img::FileId& now,
                           const img::FileId& dumped, Compare how) {
  std::string diff = file_id_difference(dumped, now, how);
  if (diff.empty()) return {};
  return error(ESTALE, "{} ({}) is not the file that was dumped: {}; --skip-file-check uses it anyway", path, use,
               diff);
}

}  // namespace ckpt::files
