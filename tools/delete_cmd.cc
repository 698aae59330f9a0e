#include "delete_cmd.h"

#include <memory>
#include <string>

#include "command.h"
#include "shmlog/log.h"

namespace shmlog::tools {

void add_delete_command(CLI::App& app) {
  auto log = std::make_shared<std::string>();
  auto* del = app.add_subcommand("delete", "Delete a log: its shared memory, files and directory");
  del->add_option("LOG", *log, "Log directory")->required();
  set_action(del, [log] {
    check(Log::remove(*log));
    return 0;
  });
}

}  // namespace shmlog::tools
