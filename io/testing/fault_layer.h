// A file layer for tests that simulates what a disk and a host crash do to
// the keeper's writes, the way LevelDB's fault-injection Env and SQLite's
// crash-test VFS do: writes go to the real files, and the layer remembers
// each one (the bytes before and after) until an fdatasync of its file
// succeeds. On a simulated host crash every write not known to be synced is
// kept, dropped or torn (sector by sector), chosen at random, in any order
// within and across files. It can also fail a write (EIO, ENOSPC), write
// short, or fail a sync: like Linux, the failed sync loses the file's
// unsynced writes for good (a crash drops or tears them) while a later sync
// of the same file succeeds and proves nothing. A segment file made through
// the layer has neither its header nor its size on disk before its first
// good sync (a crash may leave it empty or a header page long), and a file
// removed through it comes back after a crash unless its directory was
// synced since (the removals lost are the latest ones, as a journaling file
// system orders them).
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "shmlog/io/file_layer.h"

namespace shmlog::io {

class FaultLayer final : public FileLayer {
 public:
  explicit FaultLayer(std::uint64_t seed) : rng_(seed) {}

  // Faults armed from now on: the `nth` (1 = next) write or sync run
  // through the layer fails with `err` (a write: is not done; a sync: loses
  // the file's unsynced writes), or the nth write writes half its bytes.
  void fail_write(std::uint64_t nth, int err);
  void short_write(std::uint64_t nth);
  void fail_sync(std::uint64_t nth, int err);
  // The nth directory sync fails, and with `sticky` every one after it.
  void fail_directory_sync(std::uint64_t nth, int err, bool sticky = false);

  struct CrashReport {
    std::uint64_t kept = 0, dropped = 0, torn = 0;  // unsynced writes, by what the crash did to them
    std::uint64_t entries_lost = 0;                 // files whose directory entry was never synced
    std::uint64_t sizes_lost = 0;                   // new files cut to nothing or to their header page
    std::uint64_t removals_undone = 0;              // removed files that came back
  };
  // What a crash does to each unsynced write: chosen at random per write
  // (kept, dropped or torn sector by sector), or the same for all of them.
  enum class Crash { kRandom, kDropAll, kKeepAll };
  // The host crashes now: unsynced writes are kept, dropped or torn in the
  // files, and files created in a directory since its last successful sync
  // through this layer disappear; from now on every op, directory sync and
  // file replacement fails with EIO, as if nothing the process does reaches
  // the disk any more.
  CrashReport crash(Crash how = Crash::kRandom);
  // The host crashes when the nth sync (1 = next) is about to run: every
  // write since the file's last sync is at the crash's mercy.
  void crash_before_sync(std::uint64_t nth);
  // Files removed through the layer whose removal reached the disk (their
  // directory was synced, or a crash kept the removal), oldest first.
  std::vector<std::string> removed_files() const;
  // Whether the host has crashed, and what the crash did.
  bool crashed() const;
  CrashReport crash_report() const;

  struct Counts {
    std::uint64_t writes = 0, syncs = 0, faults = 0;
  };
  Counts counts() const;

  Status run(std::span<IoOp> ops, bool inline_run) override;
  Status sync_directory(const std::string& dir) override;
  Status replace_file(const std::string& path, const std::string& header, const KeyValues& values,
                      std::uint32_t mode) override;
  Result<SegmentFile> create_segment_file(const std::string& partition_dir, const SegmentFileHeader& header,
                                          std::uint32_t mode) override;
  Status remove_file(const std::string& path) override;

 private:
  struct Pending {
    std::uint64_t dev = 0, ino = 0;
    std::string path;
    std::uint64_t offset = 0;
    std::vector<std::byte> before, after;
    bool lost = false;  // its sync failed: no later sync covers it
  };
  void write(IoOp& op);
  void sync(IoOp& op);
  void crash_locked(Crash how);

  mutable std::mutex mu_;
  std::mt19937_64 rng_;
  struct Made {  // a new segment file whose size no sync has covered yet
    std::uint64_t dev = 0, ino = 0;
    std::string path;
  };
  struct Removed {  // a removal its directory's sync has not covered yet
    std::string path, kept_as;  // kept_as: a hard link to the file, for the crash to put back
  };
  std::vector<Pending> pending_;  // oldest first
  std::vector<Made> made_;
  std::map<std::string, std::vector<Removed>> removed_;  // directory -> removals, oldest first
  std::uint64_t removals_ = 0;
  std::vector<std::string> removed_for_good_;
  std::map<std::string, std::set<std::string>> synced_entries_;  // directory -> names at its last good sync
  std::uint64_t write_fault_at_ = 0, short_write_at_ = 0, sync_fault_at_ = 0, dir_sync_fault_at_ = 0;
  int write_err_ = 0, sync_err_ = 0, dir_sync_err_ = 0;
  bool dir_sync_sticky_ = false, dir_sync_failing_ = false;
  std::uint64_t crash_at_sync_ = 0;
  bool crashed_ = false;
  CrashReport report_;
  Counts counts_;
};

}  // namespace shmlog::io
