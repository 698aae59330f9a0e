#include "topo.h"

#include <nlohmann/json.hpp>

#include <cinttypes>
#include <cstdio>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "command.h"
#include "shmlog/shm/topology.h"

namespace shmlog::tools {
namespace {

struct TopoArgs {
  bool json = false;
  std::string synthetic;
};

std::string list(const std::vector<unsigned>& v) {
  if (v.empty()) return "none";
  std::string s;
  for (unsigned c : v) s += (s.empty() ? "" : ",") + std::to_string(c);
  return s;
}

int run_topo(bool json, const std::string& synthetic) {
  auto topology = shm::load_topology(synthetic);
  if (!topology.ok()) {
    std::fprintf(stderr, "shmlog topo: %s\n", topology.status().message().c_str());
    return 1;
  }
  const auto& t = *topology;
  // Host settings describe this machine; for a synthetic topology they are
  // left empty so the recommendation reflects the topology alone.
  shm::HostSettings h;
  if (synthetic.empty()) {
    h = shm::read_host_settings(static_cast<unsigned>(t.cpus.size()));
  } else {
    h.tsc_invariant = true;
  }
  const auto rec = shm::recommend(t, h);
  if (json) {
    Json cpus = Json::array();
    for (const auto& c : t.cpus) {
      Json cpu = {{"cpu", c.os_index},        {"core", c.core}, {"package", c.package},
                  {"numa_node", c.numa_node}, {"l2", c.l2},     {"l3", c.l3}};
      if (c.os_index < h.interrupts.size()) cpu["interrupts"] = h.interrupts[c.os_index];
      cpus.push_back(std::move(cpu));
    }
    Json pairs = Json::array();
    for (const auto& p : rec.pairs) {
      pairs.push_back(Json{{"producer", p.producer}, {"consumer", p.consumer}, {"why", p.why}});
    }
    print_json({{"source", t.source},
                {"packages", t.packages},
                {"numa_nodes", t.numa_nodes},
                {"cores", t.cores},
                {"cpus", t.cpus.size()},
                {"l2_bytes", t.l2_bytes},
                {"l3_bytes", t.l3_bytes},
                {"cpu_list", std::move(cpus)},
                {"isolated", h.isolated},
                {"nohz_full", h.nohz_full},
                {"rcu_nocbs", h.rcu_nocbs},
                {"smt", h.smt},
                {"governors", h.governors},
                {"tsc_invariant", h.tsc_invariant},
                {"recommended_pairs", std::move(pairs)},
                {"fixes", rec.fixes}});
    return 0;
  }
  std::printf("topology       %s\n", t.source.c_str());
  std::printf("packages       %u\nNUMA nodes     %u\ncores          %u\nCPUs           %zu (%s)\n", t.packages,
              t.numa_nodes, t.cores, t.cpus.size(), t.cpus.size() > t.cores ? "SMT" : "one per core");
  std::printf("caches         L2 %" PRIu64 " KiB, L3 %" PRIu64 " KiB\n", t.l2_bytes >> 10, t.l3_bytes >> 10);
  std::printf("\n%-5s %-5s %-8s %-5s %-4s %-4s %12s\n", "CPU", "CORE", "PACKAGE", "NUMA", "L2", "L3", "INTERRUPTS");
  for (const auto& c : t.cpus) {
    std::printf("%-5u %-5u %-8u %-5d %-4d %-4d %12s\n", c.os_index, c.core, c.package, c.numa_node, c.l2, c.l3,
                c.os_index < h.interrupts.size() ? std::to_string(h.interrupts[c.os_index]).c_str() : "-");
  }
  if (synthetic.empty()) {
    std::printf("\nisolated CPUs  %s\nnohz_full      %s\nrcu_nocbs      %s\nSMT            %s\n", list(h.isolated).c_str(),
                list(h.nohz_full).c_str(), list(h.rcu_nocbs).c_str(), h.smt.c_str());
    std::printf("governor       %s\nTSC            %s\n", h.governors.empty() ? "no cpufreq (VM or fixed)" : h.governors[0].c_str(),
                h.tsc_invariant ? "invariant" : "not invariant");
  }
  std::printf("\nrecommended producer/consumer CPUs:\n");
  for (const auto& p : rec.pairs) std::printf("  %u -> %u   (%s)\n", p.producer, p.consumer, p.why.c_str());
  if (rec.pairs.empty()) std::printf("  none: one physical core only\n");
  if (!rec.fixes.empty()) {
    std::printf("\nto fix:\n");
    for (const auto& f : rec.fixes) std::printf("  - %s\n", f.c_str());
  }
  return 0;
}

}  // namespace

void add_topo_command(CLI::App& app) {
  auto a = std::make_shared<TopoArgs>();
  auto* topo = app.add_subcommand("topo", "CPU topology, latency-relevant Linux settings, recommended cores");
  topo->add_flag("--json", a->json, "Print JSON");
  topo->add_option("--synthetic", a->synthetic, "Describe a synthetic hwloc topology instead, e.g. 'pack:2 core:4 pu:2'");
  set_action(topo, [a] { return run_topo(a->json, a->synthetic); });
}

}  // namespace shmlog::tools
