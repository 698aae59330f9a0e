#include "shmlog/shm/topology.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <string>

namespace shmlog::shm {
namespace {

bool mentions(const std::vector<std::string>& fixes, const std::string& word) {
  return std::any_of(fixes.begin(), fixes.end(), [&](const std::string& f) { return f.find(word) != std::string::npos; });
}

TEST(Topology, ThisHostIsRead) {
  auto t = load_topology();
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  EXPECT_EQ(t->cpus.size(), static_cast<std::size_t>(sysconf(_SC_NPROCESSORS_ONLN)));
  EXPECT_GE(t->cores, 1u);
}

TEST(Topology, SyntheticTwoPackageTwoNodeTopologyIsRead) {
  auto t = load_topology("pack:2 numa:1 l3:1 core:4 pu:2");
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  EXPECT_EQ(t->packages, 2u);
  EXPECT_EQ(t->numa_nodes, 2u);
  EXPECT_EQ(t->cores, 8u);
  ASSERT_EQ(t->cpus.size(), 16u);
  EXPECT_TRUE(t->smt_siblings(0, 1));
  EXPECT_FALSE(t->smt_siblings(1, 2));
  EXPECT_EQ(t->cpu(9)->package, 1u);
  EXPECT_NE(t->cpu(9)->numa_node, t->cpu(1)->numa_node);
  EXPECT_NE(t->cpu(9)->l3, t->cpu(1)->l3);
}

TEST(Topology, BadSyntheticDescriptionIsAClearError) {
  auto t = load_topology("pack:two");
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("synthetic"), std::string::npos);
}

TEST(Recommend, PairsAreNeverSiblingsShareAnL3AndAvoidCpuZerosCore) {
  auto t = load_topology("pack:2 numa:1 l3:1 core:4 pu:2").value();
  HostSettings h;
  h.tsc_invariant = true;
  auto r = recommend(t, h);
  ASSERT_EQ(r.pairs.size(), 3u);
  for (const auto& p : r.pairs) {
    EXPECT_FALSE(t.smt_siblings(p.producer, p.consumer));
    EXPECT_EQ(t.cpu(p.producer)->l3, t.cpu(p.consumer)->l3);
    EXPECT_NE(t.cpu(p.producer)->core, t.cpu(0)->core);
    EXPECT_NE(t.cpu(p.consumer)->core, t.cpu(0)->core);
  }
  EXPECT_TRUE(mentions(r.fixes, "isolcpus="));
}

TEST(Recommend, IsolatedCoresComeFirst) {
  auto t = load_topology("pack:2 numa:1 l3:1 core:4 pu:2").value();
  HostSettings h;
  h.tsc_invariant = true;
  h.isolated = {12, 14};
  auto r = recommend(t, h);
  ASSERT_FALSE(r.pairs.empty());
  EXPECT_EQ(r.pairs[0].producer, 12u);
  EXPECT_EQ(r.pairs[0].consumer, 14u);
  EXPECT_FALSE(mentions(r.fixes, "isolcpus="));
}

TEST(Recommend, NamesTheFixesForGovernorSmtTscAndTinyHosts) {
  auto big = load_topology("pack:1 l3:1 core:8 pu:2").value();
  HostSettings h;
  h.governors = {"powersave"};
  h.smt = "on";
  h.tsc_invariant = false;
  auto r = recommend(big, h);
  EXPECT_TRUE(mentions(r.fixes, "cpupower frequency-set -g performance"));
  EXPECT_TRUE(mentions(r.fixes, "smt/control"));
  EXPECT_TRUE(mentions(r.fixes, "TSC"));
  auto tiny = load_topology("pack:1 core:2 pu:1").value();
  auto small = recommend(tiny, HostSettings{});
  ASSERT_EQ(small.pairs.size(), 1u);
  EXPECT_TRUE(mentions(small.fixes, "none can be isolated"));
  auto one = recommend(load_topology("pack:1 core:1 pu:2").value(), HostSettings{});
  EXPECT_TRUE(one.pairs.empty());
  EXPECT_TRUE(mentions(one.fixes, "one physical core"));
}

TEST(ParseCpuList, RangesListsAndGarbage) {
  EXPECT_EQ(parse_cpu_list("0-3,8,10-11"), (std::vector<unsigned>{0, 1, 2, 3, 8, 10, 11}));
  EXPECT_EQ(parse_cpu_list(""), std::vector<unsigned>{});
  EXPECT_EQ(parse_cpu_list("x,2"), std::vector<unsigned>{2});
}

}  // namespace
}  // namespace shmlog::shm
