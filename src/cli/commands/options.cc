#include "cli/commands/options.h"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>

namespace ckpt::cli {

namespace {

// CRIU spells verbosity -vN, --verbosity=N, or -v, -vv, ...: each v one level
// above the default 2. CLI11 handles the first two; this rewrites the last.
std::vector<std::string> expand_repeated_v(const std::vector<std::string>& args) {
  std::vector<std::string> out;
  for (const std::string& a : args) {
    if (a.size() >= 2 && a[0] == '-' && a.find_first_not_of('v', 1) == std::string::npos)
      out.push_back(fmt::format("--verbosity={}", std::min<size_t>(4, 1 + a.size())));
    else
      out.push_back(a);
  }
  return out;
}

}  // namespace

Parsed parse_command_line(const std::vector<std::string>& raw_args) {
  const std::vector<std::string> args = expand_repeated_v(raw_args);
  Command c;
  CLI::App app{"ckpt: checkpoint a running Linux process to image files and restore it", "ckpt"};
  app.require_subcommand(1);
  app.fallthrough();
  // As CRIU spells and prints it; answered before the subcommand is required.
  app.set_version_flag("-V,--version", fmt::format("Version: {}", CKPT_VERSION), "print the version and exit");

  // What the subcommands' options are parsed into, before the subcommands
  // (only some of which are made).
  bool leave_running = false, leave_stopped = false;
  bool fsync = false;
  std::string transfer = "auto";
  bool shell_job_r = false;
  bool skip_file_check = false, skip_cpu_check = false;
  bool tcp_established_r = false;
  std::string to;
  uint16_t listen_port = 0;
  std::string psk_file;
  bool migrate_tls = false;
  std::string network_lock = "auto";
  CLI::App *check = nullptr, *dump = nullptr, *pre = nullptr, *ps = nullptr, *rst = nullptr, *lazy = nullptr,
           *mig = nullptr, *show = nullptr, *verify = nullptr;
  // A command line that starts with a subcommand's name gets that subcommand
  // alone: CLI11 makes each option's names, checks and callbacks, and making
  // every subcommand's was a fifth of a tiny dump's start-up. Any other
  // (help, an option first, a misspelt name) gets them all.
  constexpr std::string_view kSubcommands[] = {"check",    "dump",    "pre-dump", "page-server", "restore",
                                               "lazy-pages", "migrate", "show",   "verify"};
  const bool named = !args.empty() && std::ranges::find(kSubcommands, args[0]) != std::end(kSubcommands);
  auto sub = [&](const char* name, const char* what) {
    return !named || args[0] == name ? app.add_subcommand(name, what) : nullptr;
  };
  auto parsed = [](const CLI::App* a) { return a && a->parsed(); };

  // Common options, accepted before or after the subcommand.
  std::string images_dir;
  app.add_option("-v,--verbosity", c.verbosity, "0 errors only .. 4 debug (-v4, or -v, -vv: one level each)")
      ->check(CLI::Range(0, 4));
  app.add_option("-o,--log-file", c.log_file, "log file, relative to the images directory");
  app.add_flag("--stats", c.stats, "print timings, page counts and ptrace stops; also written to stats-*.img");
  bool no_bp = false;
  app.add_flag("--no-breakpoints", no_bp, "complete restore by tracing syscalls instead of at a hardware breakpoint");
  app.add_option("-D,--images-dir", images_dir, "images directory");
  app.add_flag("--allow-shared-images-dir", c.allow_shared_dir,
               "use an images directory that another user owns or can write (refused by default)");

  check = sub("check", "test the kernel features ckpt needs");

  if ((dump = sub("dump", "checkpoint a process into an images directory"))) {
    dump->add_option("-t,--tree", c.dump.pid, "pid of the process")->required();
    auto* lr = dump->add_flag("-R,--leave-running", leave_running, "resume the process after dumping");
    dump->add_flag("-s,--leave-stopped", leave_stopped, "leave the process stopped after dumping")->excludes(lr);
    dump->add_flag("-j,--shell-job", c.dump.shell_job, "the process uses the terminal; restore gives it ckpt's");
    dump->add_flag("--ext-unix-sk", c.dump.ext_unix_sk, "a datagram unix socket connected to a named socket outside the "
                   "tree (/dev/log) is connected to that name again at restore");
    dump->add_flag("--tcp-established", c.dump.tcp_established, "dump established TCP connections (through TCP_REPAIR); "
                   "without it a tree with one is refused");
    dump->add_flag("--skip-in-flight", c.dump.skip_in_flight, "drop the connections from outside the tree that wait "
                   "in a listener's accept queue, instead of refusing the dump");
    dump->add_option("--timeout", c.dump.timeout_s, "give up seizing after N seconds")->check(CLI::Range(1u, 3600u));
    dump->add_option("--ghost-limit", c.dump.ghost_limit,
                     "store at most this many bytes of a deleted file or memfd (suffixes K, M, G)")
        ->transform(CLI::AsSizeValue(false));
    dump->add_flag("--fsync", fsync, "sync every image and the directory to disk before the process goes");
    dump->add_option("--page-transfer", transfer, "how memory leaves the process: splice (the parasite's vmsplice, "
                     "zero-copy), readv (process_vm_readv), or auto (readv for a process that stores little, "
                     "splice for the others)")->check(CLI::IsMember({"auto", "splice", "readv"}));

    dump->add_option("--prev-images-dir", c.dump.prev_dir, "the previous round (a pre-dump), relative to the images "
                     "directory: store only the pages written since");
    dump->add_flag("--track-mem", c.dump.track_mem, "use the dirty tracking a pre-dump armed (with --prev-images-dir)");
  }

  if ((pre = sub("pre-dump", "store a live process's memory, and track what it writes next, "
                                   "for a later dump --prev-images-dir to store only that"))) {
    pre->add_option("-t,--tree", c.dump.pid, "pid of the process")->required();
    pre->add_option("--prev-images-dir", c.dump.prev_dir, "the previous round, relative to the images directory");
    pre->add_flag("--track-mem", c.dump.track_mem, "track memory changes (always on; accepted as CRIU spells it)");
    pre->add_option("--timeout", c.dump.timeout_s, "give up seizing after N seconds")->check(CLI::Range(1u, 3600u));
  }

  for (CLI::App* d : {dump, pre}) {
    if (!d) continue;
    d->add_flag("--page-server", c.dump.page_server, "send the pages to ckpt page-server at --address:--port");
    d->add_option("--address", c.dump.address, "the page server's address");
    d->add_option("--port", c.dump.port, "the page server's port");
    d->add_option("--psk-file", c.dump.psk_file, "a key file (mode 0600) the page server must prove it holds, as it "
                  "checks this end does (docs/migration.md)");
    d->add_flag("--tls", c.dump.tls, "encrypt the connection: TLS 1.3 keyed by --psk-file (both ends; docs/migration.md)");
  }
  if ((ps = sub("page-server", "receive the pages of one dump or pre-dump --page-server over TCP "
                                  "into the images directory"))) {
    ps->add_option("--address", c.server_address, "address to listen on (default: every address)");
    ps->add_option("--port", c.server_port, "port to listen on")->required();
    ps->add_option("--psk-file", c.server_psk_file, "a key file (mode 0600) the dump must prove it holds");
    ps->add_flag("--tls", c.server_tls, "encrypt the connection: TLS 1.3 keyed by --psk-file (both ends; docs/migration.md)");
    ps->add_flag("--lazy-pages", c.server_lazy, "serve the pages of the checkpoint in the images directory to one "
                 "ckpt lazy-pages --page-server, on demand, instead of receiving pages");
  }

  if ((rst = sub("restore", "restore a process from an images directory"))) {
    rst->add_flag("-d,--restore-detached", c.restore.detach, "return once the process runs");
    rst->add_flag("-s,--leave-stopped", c.restore.leave_stopped, "leave the restored process stopped");
    rst->add_flag("--restore-sibling", c.restore.sibling, "make the process a child of ckpt's parent");
    rst->add_option("--pidfile", c.restore.pidfile, "write the restored pid here (with --pidns: its pid outside)");
    rst->add_flag("--pidns", c.restore.pidns, "restore into a new PID namespace (and a /proc of it), every task with its "
                  "dumped pid inside, under an init of ckpt's");
    rst->add_flag("--skip-cpu-check", skip_cpu_check, "restore on a CPU that lacks instruction-set features "
                  "the dumping one had (the process must not use them)");
    rst->add_flag("--skip-file-check", skip_file_check, "map the dumped files even where the file now at their path "
                  "differs (size, mtime, inode, device or ELF build-id)");
    rst->add_flag("--tcp-established", tcp_established_r, "accepted as CRIU spells it: connections in the images are "
                  "restored anyway");
    rst->add_flag("--tcp-close", c.restore.tcp_close, "restore established TCP connections closed");
    rst->add_flag("--lazy-pages", c.restore.lazy_pages, "leave the private anonymous memory to ckpt lazy-pages -D DIR, "
                  "which fills it on demand while the process runs (docs/migration.md)");
    rst->add_flag("-j,--shell-job", shell_job_r, "the process uses the terminal (see dump --shell-job)");
  }

  if ((lazy = sub("lazy-pages", "serve the memory of one restore --lazy-pages of the images "
                                    "directory on demand, and the rest in the background, until all is in"))) {
    lazy->add_flag("--page-server", c.lazy_remote, "the pages files are with ckpt page-server --lazy-pages at "
                   "--address:--port (the images directory holds the other images)");
    lazy->add_option("--address", c.lazy_source.address, "the page server's address");
    lazy->add_option("--port", c.lazy_source.port, "the page server's port");
    lazy->add_option("--psk-file", c.lazy_psk_file, "a key file (mode 0600) the page server must prove it holds, as it "
                     "checks this end does");
    lazy->add_flag("--tls", c.lazy_tls, "encrypt the connection: TLS 1.3 keyed by --psk-file (both ends; docs/migration.md)");
  }

  if ((mig = sub("migrate", "move a live process to another host: pre-dump rounds, the final dump, "
                                   "restore there (-t PID --to ADDRESS:PORT on the source, --listen PORT on the destination)"))) {
    mig->add_option("-t,--tree", c.migrate_out.pid, "pid of the process to move (source)");
    mig->add_option("--to", to, "the destination's ckpt migrate --listen, ADDRESS:PORT (source)");
    mig->add_option("--max-rounds", c.migrate_out.max_rounds, "pre-dump rounds at most (source)")
        ->check(CLI::Range(1u, 100u));
    mig->add_option("--listen", listen_port, "port to wait on for the source (destination)");
    mig->add_option("--psk-file", psk_file, "a key file (mode 0600) both ends hold and prove to each other");
    mig->add_flag("--tls", migrate_tls, "encrypt the connection: TLS 1.3 keyed by --psk-file (both ends; docs/migration.md)");
    mig->add_option("--address", c.migrate_in.address, "address to listen on (destination; default: every address)");
    mig->add_flag("-d,--restore-detached", c.migrate_in.detach, "return once the process runs (destination)");
    mig->add_flag("--pidns", c.migrate_in.pidns, "restore into a new PID namespace (destination; see restore --pidns)");
    mig->add_flag("--lazy-pages", c.migrate_in.lazy_pages,
                  "post-copy: run the process before its memory is in, serving it from the rounds received "
                  "(destination; see restore --lazy-pages)");
  }

  if ((show = sub("show", "decode the images of a checkpoint"))) {
    show->add_option("target", c.show_target, "images directory or one image file");
    show->add_flag("--json", c.json, "machine-readable output (docs/show-json.md)");
  }

  if ((verify = sub("verify", "check a checkpoint's images (checksums, cross-references) without restoring"))) {
    verify->add_option("dir", c.verify_dir, "images directory");
    verify->add_flag("--skip-file-check", skip_file_check, "don't compare the mapped files with the dumped ones");
  }

  for (CLI::App* a : {dump, rst})
    if (a) a->add_option("--network-lock", network_lock, "how TCP connections are locked between the freeze and the restored "
                  "tree running: auto (the first that works), nftables, iptables, or skip (you lock them)")
        ->check(CLI::IsMember({"auto", "nftables", "iptables", "skip"}));

  try {
    std::vector<std::string> rev(args.rbegin(), args.rend());
    app.parse(rev);
  } catch (const CLI::CallForHelp&) {
    return {std::nullopt, app.help(), 0};
  } catch (const CLI::CallForVersion& v) {
    return {std::nullopt, fmt::format("{}\n", v.what()), 0};
  } catch (const CLI::ParseError& e) {
    return {std::nullopt, fmt::format("ckpt: {}\nRun 'ckpt --help' for the options.\n", e.what()), 2};
  }

  c.breakpoints = !no_bp;
  c.dump.network_lock = c.restore.network_lock = *net::parse_lock_choice(network_lock);
  if (parsed(check)) c.verb = Verb::Check;
  if (parsed(dump)) {
    c.verb = Verb::Dump;
    c.dump.dir = images_dir;
    c.dump.after = leave_running ? dump::After::Run : leave_stopped ? dump::After::Stop : dump::After::Kill;
    if (images_dir.empty()) return {std::nullopt, "ckpt dump: -D/--images-dir is required\n", 2};
    c.dump.fsync = fsync;
    c.dump.pages = transfer == "readv"    ? dump::PageTransfer::Readv
                   : transfer == "splice" ? dump::PageTransfer::Splice
                                          : dump::PageTransfer::Auto;
  }
  if (parsed(pre)) {
    c.verb = Verb::PreDump;
    c.dump.dir = images_dir;
    c.dump.after = dump::After::Run;
    c.dump.track_mem = true;
    if (images_dir.empty()) return {std::nullopt, "ckpt pre-dump: -D/--images-dir is required\n", 2};
  }
  if (parsed(dump) && c.dump.track_mem && c.dump.prev_dir.empty())
    return {std::nullopt, "ckpt dump: --track-mem needs --prev-images-dir (the pre-dump that armed the tracking)\n", 2};
  if ((parsed(dump) || parsed(pre)) && c.dump.page_server && (c.dump.address.empty() || c.dump.port == 0))
    return {std::nullopt, "ckpt: --page-server needs --address and --port\n", 2};
  if ((parsed(dump) || parsed(pre)) && !c.dump.page_server && (!c.dump.psk_file.empty() || c.dump.tls))
    return {std::nullopt, "ckpt: --psk-file and --tls go with --page-server\n", 2};
  if ((c.dump.tls && c.dump.psk_file.empty()) || (c.server_tls && c.server_psk_file.empty()) ||
      (c.lazy_tls && c.lazy_psk_file.empty()) || (migrate_tls && psk_file.empty()))
    return {std::nullopt, "ckpt: --tls needs --psk-file: the key TLS is keyed with\n", 2};
  if (parsed(ps)) {
    c.verb = Verb::PageServer;
    c.server_dir = images_dir;
    if (images_dir.empty()) return {std::nullopt, "ckpt page-server: -D/--images-dir is required\n", 2};
  }
  if (parsed(rst)) {
    c.verb = Verb::Restore;
    c.restore.dir = images_dir;
    c.restore.breakpoints = !no_bp;
    c.restore.check_files = !skip_file_check;
    c.restore.check_cpu = !skip_cpu_check;
    if (images_dir.empty()) return {std::nullopt, "ckpt restore: -D/--images-dir is required\n", 2};
  }
  if (parsed(lazy)) {
    c.verb = Verb::LazyPages;
    c.restore.dir = images_dir;
    if (images_dir.empty()) return {std::nullopt, "ckpt lazy-pages: -D/--images-dir is required\n", 2};
    if (c.lazy_remote && (c.lazy_source.address.empty() || c.lazy_source.port == 0))
      return {std::nullopt, "ckpt lazy-pages: --page-server needs --address and --port\n", 2};
    if (!c.lazy_remote && (!c.lazy_source.address.empty() || c.lazy_source.port || !c.lazy_psk_file.empty() || c.lazy_tls))
      return {std::nullopt, "ckpt lazy-pages: --address, --port, --psk-file and --tls go with --page-server\n", 2};
  }
  if (parsed(mig)) {
    if (images_dir.empty()) return {std::nullopt, "ckpt migrate: -D/--images-dir is required\n", 2};
    if (to.empty() == (listen_port == 0))
      return {std::nullopt, "ckpt migrate: give either -t PID --to ADDRESS:PORT (source) or --listen PORT (destination)\n", 2};
    if (listen_port) {
      c.verb = Verb::MigrateIn;
      c.migrate_in.dir = images_dir;
      c.migrate_in.port = listen_port;
      c.migrate_in.breakpoints = !no_bp;
      c.migrate_in.allow_shared_dir = c.allow_shared_dir;
      c.migrate_in.psk_file = psk_file;
      c.migrate_in.tls = migrate_tls;
    } else {
      c.verb = Verb::MigrateOut;
      const size_t colon = to.rfind(':');
      unsigned port = 0;
      if (colon == std::string::npos || colon == 0 || std::sscanf(to.c_str() + colon + 1, "%u", &port) != 1 ||
          port == 0 || port > 65535)
        return {std::nullopt, fmt::format("ckpt migrate: --to {}: not ADDRESS:PORT\n", to), 2};
      if (c.migrate_out.pid <= 0) return {std::nullopt, "ckpt migrate: --to needs -t PID\n", 2};
      c.migrate_out.address = to.substr(0, colon);
      c.migrate_out.port = static_cast<uint16_t>(port);
      c.migrate_out.work_dir = images_dir;
      c.migrate_out.psk_file = psk_file;
      c.migrate_out.tls = migrate_tls;
    }
  }
  if (parsed(show)) {
    c.verb = Verb::Show;
    if (c.show_target.empty()) c.show_target = images_dir;
    if (c.show_target.empty()) return {std::nullopt, "ckpt show: name an images directory or file\n", 2};
  }
  if (parsed(verify)) {
    c.verb = Verb::Verify;
    if (c.verify_dir.empty()) c.verify_dir = images_dir;
    c.verify_files = !skip_file_check;
    if (c.verify_dir.empty()) return {std::nullopt, "ckpt verify: name an images directory\n", 2};
  }
  return {c, "", 0};
}

}  // namespace ckpt::cli
