// ckpt show: decode the images of a checkpoint, for people (protobuf text
// format) or scripts (--json, one object keyed by file name; docs/show-json.md).
#include <fcntl.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/text_format.h>
#include <google/protobuf/util/json_util.h>
#include <sys/stat.h>

#include "base/fs.h"
#include "ckpt.pb.h"
#include "files/inet_socket.h"
#include "cli/commands/commands.h"
#include "net/addr.h"
#include "image/image_dir.h"
#include "image/image_file.h"
#include "image/messages.h"
#include "image/page_store.h"
#include "image/schema.h"
#include "image/verify.h"
#include "tree/tree.h"

namespace ckpt::cli {

namespace {

// `s` as a JSON string, quoted and escaped by protobuf's printer: the one that
// prints the images, so a key escapes as a value does. A file name need not be
// UTF-8, a JSON string must: the printer would drop the bytes it can't carry
// (and log that), so such a name is refused first, with protobuf's own check.
Result<std::string> json_string(const std::string& s) {
  if (!google::protobuf::internal::IsStructurallyValidUTF8(s))
    return error(EINVAL, "{}: JSON cannot carry this name (not UTF-8)", s);
  google::protobuf::Value v;
  v.set_string_value(s);
  std::string out;
  if (!google::protobuf::util::MessageToJsonString(v, &out).ok())
    return fail("{}: cannot print as JSON", s);
  return out;
}

// One file as {"kind": ..., "image": {...}} (JSON) or a text block; `fd` is
// open on it.
Result<std::string> decode(const std::string& path, int fd, bool json, image::Schema& schema) {
  std::string name = path.substr(path.find_last_of('/') + 1);
  if (name.starts_with("pages-")) {
    uint64_t bytes = TRY(image::check_pages_file(path, fd));
    // 64-bit numbers as strings, as protobuf's JSON prints every other one.
    return json ? fmt::format("{{\"kind\":\"pages\",\"data_bytes\":\"{}\"}}", bytes)
                : fmt::format("kind: pages\ndata_bytes: {}\n", bytes);
  }
  std::string bytes = TRY(read_fd(fd, path));
  image::ImageKind kind = TRY(image::peek_kind(path, bytes));
  auto msg = image::new_message(kind);
  if (!msg) return error(EINVAL, "{}: unknown image kind {} at offset 12", path, static_cast<uint32_t>(kind));
  TRY(image::unframe(path, bytes, kind, msg.get()));
  std::unique_ptr<google::protobuf::Message> full = TRY(schema.reflect(*msg));
  std::string body;
  if (json) {
    google::protobuf::util::JsonPrintOptions opt;
    opt.always_print_primitive_fields = true;
    opt.preserve_proto_field_names = true;
    if (!google::protobuf::util::MessageToJsonString(*full, &body, opt).ok())
      return fail("{}: cannot print as JSON", path);
    return fmt::format("{{\"kind\":\"{}\",\"image\":{}}}", image::kind_name(kind), body);
  }
  google::protobuf::TextFormat::PrintToString(*full, &body);
  return fmt::format("kind: {}\n{}", image::kind_name(kind), body);
}

// The pty pairs made in the tree (files/pty.cc), one a line by their index
// at dump, and the terminals left to the restoring one (--shell-job).
Result<std::string> terminals_summary(const image::ImageDir& dir) {
  img::FileDescs descs;
  if (!dir.exists(image::kFileDescsName)) return std::string();
  TRY(dir.read(image::kFileDescsName, image::ImageKind::FileDescs, &descs));
  std::string out;
  for (const img::FileDesc& d : descs.descs()) {
    if (d.has_terminal())
      out += fmt::format("description {}: {} (--shell-job: the restoring terminal)\n", d.id(), d.terminal().path());
    if (!d.has_pty()) continue;
    const img::Pty& t = d.pty();
    if (!t.master()) {
      out += fmt::format("description {}: pty {} slave\n", d.id(), t.index());
      continue;
    }
    size_t input = t.to_slave().size();
    for (const img::PtyLine& l : t.lines()) input += l.data().size();
    out += fmt::format("description {}: pty {} master, {}x{}{}{}{}, {} bytes queued for the master, {} for the slave "
                       "({} lines){}\n", d.id(), t.index(), t.cols(), t.rows(), t.packet() ? ", packet mode" : "",
                       t.locked() ? ", locked" : "", t.slave_opened() ? "" : ", slave never opened",
                       t.to_master().size(), input, t.lines_size(),
                       t.session() ? fmt::format(", terminal of session {} (foreground group {})", t.session(),
                                                 t.foreground())
                                   : "");
  }
  return out.empty() ? out : "=== terminals\n" + out + "\n";
}

// The network lock the dump left (net/netlock.h), its connections readable.
std::string network_lock_summary(const img::Inventory& inv) {
  if (!inv.has_network_lock()) return "";
  const img::NetLock& l = inv.network_lock();
  const char* where = l.method() == img::NetLock::NFTABLES ? "nftables table inet" : "iptables chain";
  std::string out = fmt::format("=== network lock: {} {} (removed by restore), {} connection{}\n", where, l.name(),
                                l.connections_size(), l.connections_size() == 1 ? "" : "s");
  for (const img::NetLockConnection& c : l.connections()) {
    net::Connection n{};
    n.family = static_cast<int>(c.family());
    std::copy_n(c.local_addr().begin(), std::min<size_t>(c.local_addr().size(), 16), n.local_addr.begin());
    std::copy_n(c.remote_addr().begin(), std::min<size_t>(c.remote_addr().size(), 16), n.remote_addr.begin());
    n.local_port = static_cast<uint16_t>(c.local_port());
    n.remote_port = static_cast<uint16_t>(c.remote_port());
    out += fmt::format("  tcp {}\n", net::describe(n));
  }
  return out + "\n";
}

// The tree, one task a line, children indented under their parent.
Result<std::string> tree_summary(const image::ImageDir& dir) {
  img::Inventory inv;
  TRY(dir.read(image::kInventoryName, image::ImageKind::Inventory, &inv));
  tree::ProcessTree t = TRY(image::load_tree(dir, inv));
  std::string out = "=== process tree\n";
  std::vector<int> depth(t.tasks().size(), 0);
  for (size_t i = 0; i < t.tasks().size(); i++) {
    const tree::Task& k = t.tasks()[i];
    if (k.parent >= 0) depth[i] = depth[k.parent] + 1;
    std::string state = k.zombie ? fmt::format("zombie (status {:#x})", k.exit_status) : "alive";
    if (!k.zombie) {
      img::TaskCore core;
      TRY(dir.read(image::core_name(k.pid), image::ImageKind::Core, &core));
      state += fmt::format(", {} thread{}{}", core.threads_size(), core.threads_size() == 1 ? "" : "s",
                           core.group_stopped() ? ", stopped" : "");
    }
    out += fmt::format("{:{}}pid {} ppid {} pgid {} sid {} comm {:?} {}\n", "", 2 * depth[i], k.pid, k.ppid, k.pgid,
                       k.sid, k.comm, state);
  }
  // Sockets, one a line (their records follow in fdesc.img).
  img::FileDescs descs;
  if (dir.exists(image::kFileDescsName) && dir.read(image::kFileDescsName, image::ImageKind::FileDescs, &descs)) {
    std::string socks;
    for (const img::FileDesc& d : descs.descs())
      if (d.has_inet()) socks += fmt::format("  fdesc {}: {}\n", d.id(), files::show_inet_socket(d.inet()));
    if (!socks.empty()) out += "\n=== sockets\n" + socks;
  }
  return out + "\n" + TRY(terminals_summary(dir)) + network_lock_summary(inv);
}

Result<std::string> show(const std::string& target, bool json) {
  std::unique_ptr<image::Schema> schema = TRY(image::Schema::load());
  struct stat st;
  if (stat(target.c_str(), &st) < 0) return sys_error("show {}", target);
  if (!S_ISDIR(st.st_mode)) {
    // One file the user named: theirs to name through a link.
    UniqueFd fd = TRY(open_file(target, O_RDONLY));
    return decode(target, fd.get(), json, *schema);
  }
  // A directory: its files through its handle, never through a link (image_dir.h).
  image::ImageDir dir = TRY(image::ImageDir::open(target, image::SharedDir::Allow));
  std::string out = json ? "{" : TRY(tree_summary(dir));
  bool first = true;
  for (const std::string& n : TRY(dir.list_images())) {
    UniqueFd fd = TRY(dir.open_read(n));
    std::string one = TRY(decode(dir.file(n), fd.get(), json, *schema));
    if (json) out += fmt::format("{}{}:{}", first ? "" : ",", TRY(json_string(n)), one);
    else out += fmt::format("=== {}\n{}\n", n, one);
    first = false;
  }
  if (json) out += "}";
  return out;
}

}  // namespace

int run_show(const std::string& target, bool json, Log& log) {
  auto r = show(target, json);
  if (!r) {
    log.error("{}", r.error().str());
    return 1;
  }
  fmt::print("{}\n", *r);
  return 0;
}

}  // namespace ckpt::cli
