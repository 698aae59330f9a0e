// The flags that choose a log's pages, shared by create, lat and bench.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "shmlog/log.h"

namespace shmlog::tools {

struct MemoryFlags {
  bool huge_pages = false;
  bool thp = false;
  std::string dir;

  Pages pages() const { return huge_pages ? Pages::kHuge : thp ? Pages::kTransparentHuge : Pages::kNormal; }
  void add_to(CLI::App* app) {
    auto* huge = app->add_flag("--huge-pages", huge_pages, "Back the log with explicit huge pages (hugetlbfs)");
    app->add_flag("--thp", thp, "Ask for transparent huge pages (a tmpfs mounted with huge=)")->excludes(huge);
    app->add_option("--memory-dir", dir, "Directory of the log's memory file (default /dev/shm, or the hugetlbfs mount)");
  }
};

}  // namespace shmlog::tools
