// The shmlog command: create, inspect and delete logs, produce and consume
// from a shell, and a live multi-process demo. Every error is one line on
// stderr naming what is wrong, and a non-zero exit code. Each subcommand
// registers its options and what it does in its own file.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <string>

#include "bench_cmd.h"
#ifdef SHMLOG_HAVE_BRIDGE
#include "bridge_cmd.h"
#endif
#include "consume_cmd.h"
#include "copy_cmd.h"
#include "create_cmd.h"
#include "delete_cmd.h"
#include "demo.h"
#include "durable_cmd.h"
#include "exec_cmd.h"
#include "exporter_cmd.h"
#include "gc_cmd.h"
#include "info_cmd.h"
#include "lat.h"
#include "produce_cmd.h"
#include "stat_cmd.h"
#include "topo.h"

int main(int argc, char** argv) {
  namespace tools = shmlog::tools;
  CLI::App app{"shmlog: a shared-memory log for low-latency IPC on one host"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "shmlog 0.1.0");
  // In the order of `shmlog --help`.
  tools::add_create_command(app);
  tools::add_produce_command(app);
  tools::add_consume_command(app);
  tools::add_info_commands(app);  // info, groups
  tools::add_delete_command(app);
  tools::add_gc_command(app);
  tools::add_demo_command(app);
  tools::add_lat_command(app);
  tools::add_bench_command(app);
  tools::add_topo_command(app);
  tools::add_copy_command(app);
  tools::add_stat_command(app);
  tools::add_exporter_command(app);
  tools::add_durable_commands(app);  // keeper, dump, verify, repair
  tools::add_exec_command(app);
#ifdef SHMLOG_HAVE_BRIDGE
  tools::add_bridge_command(app);  // to-kafka
#endif

  // The chosen subcommand runs inside parse, once the whole line is parsed.
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::RuntimeError& e) {  // the subcommand's non-zero exit code
    return e.get_exit_code();
  } catch (const CLI::ParseError& e) {
    std::string sub;
    for (auto* s : app.get_subcommands()) sub = " " + s->get_name();
    std::fprintf(stderr, "shmlog%s: %s (see shmlog%s --help)\n", sub.c_str(), e.what(), sub.c_str());
    return 2;
  }
  return 0;
}
