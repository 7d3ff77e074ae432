// ProcessTree::plan_joins: which helpers restore adds for sessions and groups
// whose leaders have exited, and what it refuses.
#include <gtest/gtest.h>

#include <array>
#include <set>

#include "tree/tree.h"

namespace ckpt::tree {
namespace {

// {pid, ppid, pgid, sid} rows, the root first; `zombies` by pid.
ProcessTree make_tree(std::vector<std::array<pid_t, 4>> rows, std::set<pid_t> zombies = {}) {
  std::vector<Task> tasks;
  for (auto [pid, ppid, pgid, sid] : rows)
    tasks.push_back({.pid = pid, .ppid = ppid, .pgid = pgid, .sid = sid, .zombie = zombies.contains(pid),
                     .comm = "t"});
  auto t = ProcessTree::make(std::move(tasks));
  EXPECT_TRUE(t.has_value());
  return std::move(*t);
}

TEST(PlanJoins, GroupWhoseLeaderExited) {
  // R leads session 10; 11 is in group 20, whose leader exited.
  auto plan = make_tree({{10, 1, 10, 10}, {11, 10, 20, 10}}).plan_joins(false);
  ASSERT_TRUE(plan.has_value()) << plan.error().str();
  ASSERT_EQ(plan->helpers.size(), 1u);
  const Helper& h = plan->helpers[0];
  EXPECT_EQ(h.pid, 20);
  EXPECT_EQ(h.sid, 10);
  EXPECT_FALSE(h.new_session);
  EXPECT_EQ(h.parent, 0) << "a live task of session 10 forks it";
  EXPECT_TRUE(h.adopted.empty());
  EXPECT_EQ(plan->tasks[1].join_group, 20);
}

TEST(PlanJoins, SessionWhoseLeaderExited) {
  // R (a subreaper) holds 11 and 12 of session 30, whose leader exited;
  // 11 in group 30 (the session leader's), 12 leads its group, 13 (12's
  // child) in group 40 whose leader exited too, 14 a zombie in session 30.
  auto plan = make_tree({{10, 1, 10, 10}, {11, 10, 30, 30}, {12, 10, 12, 30}, {14, 10, 30, 30}, {13, 12, 40, 30}},
                        {14})
                  .plan_joins(false);
  ASSERT_TRUE(plan.has_value()) << plan.error().str();
  ASSERT_EQ(plan->helpers.size(), 2u);
  const Helper& s = plan->helpers[0];
  EXPECT_EQ(s.pid, 30);
  EXPECT_TRUE(s.new_session);
  EXPECT_EQ(s.parent, 0);
  EXPECT_EQ(s.adopted, (std::vector<int>{1, 2, 3}));
  const Helper& g = plan->helpers[1];
  EXPECT_EQ(g.pid, 40);
  EXPECT_FALSE(g.new_session);
  EXPECT_EQ(g.sid, 30);
  EXPECT_EQ(g.parent, 1) << "the first live task of session 30";
  EXPECT_EQ(plan->tasks[1].join_group, 30);
  EXPECT_TRUE(plan->tasks[2].lead_group);
  EXPECT_EQ(plan->tasks[4].join_group, 40);
}

TEST(PlanJoins, Refused) {
  struct Case {
    const char* name;
    std::vector<std::array<pid_t, 4>> rows;
    const char* says;
  };
  const Case cases[] = {
      {"born before its parent's setsid", {{10, 1, 10, 10}, {11, 10, 11, 11}, {12, 11, 10, 10}},
       "neither its own nor its parent's"},
      {"one exited session under two parents", {{10, 1, 10, 10}, {11, 10, 30, 30}, {12, 10, 12, 12}, {13, 12, 30, 30}},
       "under different parents"},
      {"group of another session", {{10, 1, 10, 10}, {11, 10, 11, 11}, {12, 10, 11, 10}}, "of another session"},
      {"root's session outside", {{10, 1, 10, 5}}, "--shell-job"},
  };
  for (const Case& c : cases) {
    auto plan = make_tree(c.rows).plan_joins(false);
    ASSERT_FALSE(plan.has_value()) << c.name;
    EXPECT_NE(plan.error().str().find(c.says), std::string::npos) << c.name << ": " << plan.error().str();
  }
}

// 11, a zombie, is in session 30 and group 40, both of exited leaders: the
// session's helper can fork it, but no live task of session 30 can fork the
// group's helper.
TEST(PlanJoins, GroupWithOnlyZombiesRefused) {
  auto plan = make_tree({{10, 1, 10, 10}, {11, 10, 40, 30}}, {11}).plan_joins(false);
  ASSERT_FALSE(plan.has_value());
  EXPECT_NE(plan.error().str().find("no live task of its session 30"), std::string::npos) << plan.error().str();
  // In group 30, the session's: its helper leads both.
  auto ok = make_tree({{10, 1, 10, 10}, {11, 10, 30, 30}}, {11}).plan_joins(false);
  ASSERT_TRUE(ok.has_value()) << ok.error().str();
  EXPECT_EQ(ok->helpers.size(), 1u);
}

}  // namespace
}  // namespace ckpt::tree
