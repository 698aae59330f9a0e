#include "shmlog/shm/topology.h"

#include <cpuid.h>
#include <hwloc.h>

#include <algorithm>
#include <fstream>
#include <memory>
#include <sstream>

#include "hwloc_util.h"

namespace shmlog::shm {
namespace {

std::string read_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

int ancestor_index(hwloc_topology_t t, hwloc_obj_type_t type, hwloc_obj_t pu) {
  hwloc_obj_t o = hwloc_get_ancestor_obj_by_type(t, type, pu);
  return o == nullptr ? -1 : static_cast<int>(o->logical_index);
}

std::vector<unsigned> kernel_parameter_list(const std::string& cmdline, const std::string& name) {
  std::istringstream words(cmdline);
  for (std::string w; words >> w;) {
    if (w.rfind(name + "=", 0) == 0) {
      std::string value = w.substr(name.size() + 1);
      // isolcpus may carry flags first: isolcpus=domain,managed_irq,2-3
      auto last = value.find_last_of(',');
      if (name == "isolcpus" && last != std::string::npos && !std::isdigit(static_cast<unsigned char>(value[0]))) {
        value = value.substr(value.find_first_of("0123456789"));
      }
      return parse_cpu_list(value);
    }
  }
  return {};
}

}  // namespace

std::vector<unsigned> parse_cpu_list(const std::string& text) {
  std::vector<unsigned> cpus;
  std::istringstream in(text);
  for (std::string part; std::getline(in, part, ',');) {
    if (part.empty()) continue;
    try {
      auto dash = part.find('-');
      if (dash == std::string::npos) {
        cpus.push_back(static_cast<unsigned>(std::stoul(part)));
      } else {
        const auto first = std::stoul(part.substr(0, dash)), last = std::stoul(part.substr(dash + 1));
        for (auto c = first; c <= last && c < 65536; ++c) cpus.push_back(static_cast<unsigned>(c));
      }
    } catch (...) {
      // not a number: ignore that part
    }
  }
  std::sort(cpus.begin(), cpus.end());
  cpus.erase(std::unique(cpus.begin(), cpus.end()), cpus.end());
  return cpus;
}

bool Topology::smt_siblings(unsigned a, unsigned b) const {
  const Cpu* x = cpu(a);
  const Cpu* y = cpu(b);
  return x != nullptr && y != nullptr && a != b && x->core == y->core;
}

const Cpu* Topology::cpu(unsigned os_index) const {
  for (const auto& c : cpus) {
    if (c.os_index == os_index) return &c;
  }
  return nullptr;
}

Result<Topology> load_topology(const std::string& synthetic) {
  hwloc_topology_t raw = nullptr;
  if (hwloc_topology_init(&raw) != 0) return Status(Status::Code::kIoError, "hwloc: cannot initialise a topology");
  detail::HwlocTopology t(raw);
  if (!synthetic.empty() && hwloc_topology_set_synthetic(raw, synthetic.c_str()) != 0) {
    return Status(Status::Code::kInvalidArgument, "hwloc: bad synthetic topology '" + synthetic + "'");
  }
  if (hwloc_topology_load(raw) != 0) return Status(Status::Code::kIoError, "hwloc: cannot read the topology");
  Topology topo;
  topo.source = synthetic.empty() ? "this host" : "synthetic: " + synthetic;
  topo.packages = static_cast<unsigned>(std::max(0, hwloc_get_nbobjs_by_type(raw, HWLOC_OBJ_PACKAGE)));
  topo.numa_nodes = static_cast<unsigned>(std::max(0, hwloc_get_nbobjs_by_type(raw, HWLOC_OBJ_NUMANODE)));
  topo.cores = static_cast<unsigned>(std::max(0, hwloc_get_nbobjs_by_type(raw, HWLOC_OBJ_CORE)));
  if (hwloc_obj_t l2 = hwloc_get_obj_by_type(raw, HWLOC_OBJ_L2CACHE, 0)) topo.l2_bytes = l2->attr->cache.size;
  if (hwloc_obj_t l3 = hwloc_get_obj_by_type(raw, HWLOC_OBJ_L3CACHE, 0)) topo.l3_bytes = l3->attr->cache.size;
  const int pus = hwloc_get_nbobjs_by_type(raw, HWLOC_OBJ_PU);
  for (int i = 0; i < pus; ++i) {
    hwloc_obj_t pu = hwloc_get_obj_by_type(raw, HWLOC_OBJ_PU, static_cast<unsigned>(i));
    Cpu c;
    c.os_index = pu->os_index;
    c.core = static_cast<unsigned>(std::max(0, ancestor_index(raw, HWLOC_OBJ_CORE, pu)));
    c.package = static_cast<unsigned>(std::max(0, ancestor_index(raw, HWLOC_OBJ_PACKAGE, pu)));
    c.l2 = ancestor_index(raw, HWLOC_OBJ_L2CACHE, pu);
    c.l3 = ancestor_index(raw, HWLOC_OBJ_L3CACHE, pu);
    // NUMA nodes hang off the tree as memory children: find the one whose
    // cpuset holds this PU.
    for (hwloc_obj_t node = hwloc_get_next_obj_by_type(raw, HWLOC_OBJ_NUMANODE, nullptr); node != nullptr;
         node = hwloc_get_next_obj_by_type(raw, HWLOC_OBJ_NUMANODE, node)) {
      if (hwloc_bitmap_isset(node->cpuset, pu->os_index)) {
        c.numa_node = static_cast<int>(node->os_index);
        break;
      }
    }
    topo.cpus.push_back(c);
  }
  std::sort(topo.cpus.begin(), topo.cpus.end(), [](const Cpu& a, const Cpu& b) { return a.os_index < b.os_index; });
  return topo;
}

HostSettings read_host_settings(unsigned cpus) {
  HostSettings h;
  h.isolated = parse_cpu_list(read_line("/sys/devices/system/cpu/isolated"));
  h.nohz_full = parse_cpu_list(read_line("/sys/devices/system/cpu/nohz_full"));
  const std::string cmdline = read_line("/proc/cmdline");
  if (h.isolated.empty()) h.isolated = kernel_parameter_list(cmdline, "isolcpus");
  h.rcu_nocbs = kernel_parameter_list(cmdline, "rcu_nocbs");
  const std::string smt = read_line("/sys/devices/system/cpu/smt/control");
  h.smt = smt.empty() ? "unknown" : smt;
  for (unsigned c = 0; c < cpus; ++c) {
    std::string g = read_line("/sys/devices/system/cpu/cpu" + std::to_string(c) + "/cpufreq/scaling_governor");
    if (!g.empty()) h.governors.push_back(g);
  }
#if defined(__x86_64__)
  unsigned a, b, c, d;
  h.tsc_invariant = __get_cpuid(0x80000007, &a, &b, &c, &d) && (d & (1u << 8));
#endif
  if (!h.tsc_invariant) {
    std::ifstream in("/proc/cpuinfo");
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("flags", 0) == 0) {
        h.tsc_invariant = line.find(" constant_tsc") != std::string::npos && line.find(" nonstop_tsc") != std::string::npos;
        break;
      }
    }
  }
  // Interrupts per CPU: the sum of each CPU's column in /proc/interrupts.
  std::ifstream irq("/proc/interrupts");
  std::string header;
  std::getline(irq, header);
  const auto columns = static_cast<unsigned>(std::count(header.begin(), header.end(), 'C'));  // "CPU0 CPU1 ..."
  h.interrupts.assign(columns, 0);
  for (std::string line; std::getline(irq, line);) {
    std::istringstream f(line);
    std::string label;
    f >> label;
    for (unsigned col = 0; col < columns; ++col) {
      std::uint64_t n;
      if (!(f >> n)) break;
      h.interrupts[col] += n;
    }
  }
  return h;
}

Recommendation recommend(const Topology& t, const HostSettings& h, std::size_t max_pairs) {
  Recommendation r;
  auto isolated = [&](unsigned c) { return std::find(h.isolated.begin(), h.isolated.end(), c) != h.isolated.end(); };
  auto irqs = [&](unsigned c) { return c < h.interrupts.size() ? h.interrupts[c] : 0; };
  struct Scored {
    CorePair pair;
    int score;
    std::uint64_t irqs;
  };
  std::vector<Scored> all;
  for (const Cpu& a : t.cpus) {
    for (const Cpu& b : t.cpus) {
      if (b.os_index <= a.os_index || a.core == b.core) continue;  // distinct physical cores only
      int score = 0;
      std::string why;
      if (isolated(a.os_index) && isolated(b.os_index)) {
        score += 8;
        why += "both isolated, ";
      }
      if (a.l3 >= 0 && a.l3 == b.l3) {
        score += 4;
        why += "same L3, ";
      } else if (a.l3 >= 0) {
        why += "different L3 (slower transfers), ";
      }
      if (a.numa_node == b.numa_node) {
        score += 2;
        why += "same NUMA node, ";
      }
      // CPU 0's core does the kernel's housekeeping: avoid it and its siblings.
      const Cpu* zero = t.cpu(0);
      const bool housekeeping = zero != nullptr && (a.core == zero->core || b.core == zero->core);
      if (!housekeeping) score += 1;
      why += "not SMT siblings";
      all.push_back({{a.os_index, b.os_index, why}, score, irqs(a.os_index) + irqs(b.os_index)});
    }
  }
  std::stable_sort(all.begin(), all.end(), [](const Scored& x, const Scored& y) {
    return x.score != y.score ? x.score > y.score : x.irqs < y.irqs;
  });
  for (std::size_t i = 0; i < all.size() && r.pairs.size() < max_pairs; ++i) r.pairs.push_back(all[i].pair);

  if (r.pairs.empty()) {
    r.fixes.push_back("only one physical core: a spinning producer and consumer will share it; use --wait block");
  }
  if (h.isolated.empty() && !r.pairs.empty() && t.cores < 3) {
    r.fixes.push_back("no isolated cores, and with " + std::to_string(t.cores) +
                      " cores none can be isolated without starving the kernel: a host with 3 or more cores can "
                      "isolate the producer's and consumer's");
  } else if (h.isolated.empty() && !r.pairs.empty()) {
    const auto& p = r.pairs.front();
    const std::string cpus = std::to_string(p.producer) + "," + std::to_string(p.consumer);
    r.fixes.push_back("no isolated cores: add isolcpus=" + cpus + " nohz_full=" + cpus + " rcu_nocbs=" + cpus +
                      " to the kernel command line (GRUB_CMDLINE_LINUX) and reboot");
  }
  for (std::size_t c = 0; c < h.governors.size(); ++c) {
    if (h.governors[c] != "performance") {
      r.fixes.push_back("CPU frequency governor is '" + h.governors[c] + "': cpupower frequency-set -g performance");
      break;
    }
  }
  if (h.smt == "on") {
    r.fixes.push_back("SMT is on: keep latency-critical threads on distinct cores (as above), or turn it off with "
                      "echo off > /sys/devices/system/cpu/smt/control");
  }
  if (!h.tsc_invariant) r.fixes.push_back("the TSC is not invariant: latency timestamps fall back to clock_gettime");
  if (!r.pairs.empty()) {
    const auto& p = r.pairs.front();
    if (irqs(p.producer) + irqs(p.consumer) > 0 && h.isolated.empty()) {
      r.fixes.push_back("device interrupts land on CPUs " + std::to_string(p.producer) + " and " +
                        std::to_string(p.consumer) + ": steer them away (irqbalance --banirq, or /proc/irq/*/smp_affinity_list)");
    }
  }
  return r;
}

Result<int> numa_node_of_cpu(unsigned cpu) {
  auto topology = load_topology();
  if (!topology.ok()) return std::move(topology).status();
  const Cpu* c = topology->cpu(cpu);
  if (c == nullptr) {
    return Status(Status::Code::kInvalidArgument, "CPU " + std::to_string(cpu) + " does not exist (this host has CPUs 0.." +
                                                      std::to_string(topology->cpus.size() - 1) + ")");
  }
  if (c->numa_node < 0) return Status(Status::Code::kNotFound, "hwloc does not know the NUMA node of CPU " + std::to_string(cpu));
  return c->numa_node;
}

}  // namespace shmlog::shm
