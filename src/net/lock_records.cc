#include "net/lock_records.h"

#include <dirent.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

#include "base/dir.h"
#include "base/fs.h"
#include "net/lock_name.h"

namespace ckpt::net {

namespace {

std::optional<Method> parse_method(std::string_view s) {
  for (Method m : {Method::Nftables, Method::Iptables, Method::IptablesLegacy})
    if (s == method_name(m)) return m;
  return std::nullopt;
}

// Field 22 of /proc/PID/stat, after the ")" that ends comm.
std::optional<uint64_t> start_time(pid_t pid) {
  auto text = read_file(fmt::format("/proc/{}/stat", pid));
  if (!text) return std::nullopt;
  size_t at = text->rfind(')');
  if (at == std::string::npos) return std::nullopt;
  const char* p = text->c_str() + at + 1;
  for (int field = 3; field < 22; field++) {  // p is before field 3
    while (*p == ' ') p++;
    while (*p && *p != ' ') p++;
  }
  char* end;
  const uint64_t v = strtoull(p, &end, 10);
  if (end == p) return std::nullopt;
  return v;
}

}  // namespace

Result<void> write_record(const LockRecord& r) {
  if (!parse_lock_name(r.name)) return error(EINVAL, "\"{}\" is not a network lock's name", r.name);
  for (const char* d : {"/run/ckpt", kRecordsDir})
    if (mkdir(d, 0700) < 0 && errno != EEXIST) return sys_error("mkdir {}", d);
  std::string text = fmt::format("method {}\n", method_name(r.method));
  if (!r.images_dir.empty()) text += fmt::format("images {}\n", r.images_dir);
  TRY_CTX(replace_file(fmt::format("{}/{}", kRecordsDir, r.name), text, 0600), "record network lock {}", r.name);
  return {};
}

Result<void> remove_record(const std::string& name) {
  if (!parse_lock_name(name)) return error(EINVAL, "\"{}\" is not a network lock's name", name);
  const std::string path = fmt::format("{}/{}", kRecordsDir, name);
  if (unlink(path.c_str()) < 0 && errno != ENOENT) return sys_error("remove {}", path);
  return {};
}

std::optional<LockRecord> read_record(const std::string& name) {
  if (!parse_lock_name(name)) return std::nullopt;
  auto dir = Dir::open(kRecordsDir);
  if (!dir) return std::nullopt;
  auto fd = dir->open_read(name);
  if (!fd) return std::nullopt;
  auto text = read_fd(fd->get(), dir->file(name));
  if (!text) return std::nullopt;
  LockRecord r;
  r.name = name;
  std::string_view t = *text;
  if (!t.starts_with("method ")) return std::nullopt;
  t.remove_prefix(7);
  const size_t nl = t.find('\n');
  auto m = parse_method(t.substr(0, nl));
  if (!m || nl == std::string_view::npos) return std::nullopt;
  r.method = *m;
  t.remove_prefix(nl + 1);
  if (t.starts_with("images ")) {
    t.remove_prefix(7);
    if (t.ends_with('\n')) t.remove_suffix(1);
    r.images_dir = t;
  }
  return r;
}

Result<std::vector<LockRecord>> list_records() {
  std::vector<LockRecord> out;
  DIR* d = opendir(kRecordsDir);
  if (!d) {
    if (errno == ENOENT) return out;
    return sys_error("list {}", kRecordsDir);
  }
  while (dirent* e = readdir(d))
    if (auto r = read_record(e->d_name)) out.push_back(std::move(*r));
  closedir(d);
  return out;
}

bool owner_alive(const std::string& name) {
  auto o = parse_lock_name(name);
  if (!o) return false;
  auto st = start_time(o->pid);
  return st && *st == o->start;
}

Result<std::string> own_lock_name() {
  auto st = start_time(getpid());
  if (!st) return error(EIO, "read ckpt's own start time from /proc/self/stat");
  return lock_name({getpid(), *st});
}

}  // namespace ckpt::net
