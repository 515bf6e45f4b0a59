#include "scheduler_runtime/scheduled_generation.h"

#include <gtest/gtest.h>

#include "inference/llama_model.h"
#include "inference/sampler.h"
#include "models/random_llama.h"
#include "scheduler_runtime/kv_classifier.h"
#include "scheduler_runtime/precision_scheduler.h"
#include "tests/test_util.h"

namespace pmpd::scheduler {
namespace {

using inference::LlamaModel;

// A tiny random model quantized to any-precision S = 2 .. P = 4 (shared by the tests below).
const std::string& AnyprecDir() {
  static const std::string dir = pmpd::testing::QuantizedRandomModel("sched", 96, 21, 2, 4);
  return dir;
}

std::unique_ptr<PrecisionScheduler> Static(std::vector<int> p, std::vector<int> s) {
  auto sched = MakeStaticScheduler(std::move(p), std::move(s));
  EXPECT_TRUE(sched.ok()) << sched.status();
  return std::move(*sched);
}

TEST(StaticSchedulerTest, CumulativeSwitchSteps) {
  auto s = Static({4, 3, 2}, {16, 64});
  EXPECT_EQ(s->NextPrecision(1, 4, {}), 4);
  EXPECT_EQ(s->NextPrecision(15, 4, {}), 4);
  EXPECT_EQ(s->NextPrecision(16, 4, {}), 3);
  EXPECT_EQ(s->NextPrecision(63, 3, {}), 3);
  EXPECT_EQ(s->NextPrecision(64, 3, {}), 2);
  EXPECT_EQ(s->NextPrecision(1000, 2, {}), 2);
  auto uniform = Static({3}, {});
  EXPECT_EQ(uniform->NextPrecision(5, 3, {}), 3);
  auto skip = Static({4, 3, 2}, {8, 8});  // equal steps skip 3 bits
  EXPECT_EQ(skip->NextPrecision(8, 4, {}), 2);
}

TEST(StaticSchedulerTest, BadSchedulesAreRefused) {
  struct Case {
    std::vector<int> p, s;
    const char* needle;
  };
  for (const Case& c : std::vector<Case>{
           {{4, 3, 2}, {64, 16}, "non-decreasing"},
           {{4, 3, 2}, {16}, "need 2 value(s)"},
           {{4, 3}, {-1}, "non-negative"},
           {{3, 4}, {8}, "precisions 3,4: need bit widths in 2..8, strictly decreasing"},
           {{9, 4}, {8}, "precisions 9,4: need bit widths in 2..8"},
           {{}, {}, "precisions (none)"}}) {
    auto s = MakeStaticScheduler(c.p, c.s);
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.status().message().find(c.needle), std::string::npos) << s.status();
  }
  EXPECT_FALSE(ParseIntList("4,x,2", "--precisions").ok());
  EXPECT_EQ(ParseIntList("4,3,2", "--precisions").value(), std::vector<int>({4, 3, 2}));
}

// The one ladder check: every caller (static and learned schedules, gen-data, the CLIs) refuses the
// same lists with the same message, naming its option.
TEST(StaticSchedulerTest, OneLadderCheckForEveryCaller) {
  EXPECT_TRUE(CheckPrecisionLadder({8, 5, 2}, 2).ok());
  EXPECT_TRUE(CheckPrecisionLadder({4}, 1).ok());
  for (const std::vector<int>& bad :
       std::vector<std::vector<int>>{{4}, {4, 4}, {2, 3}, {4, 1}, {9, 8}, {}}) {
    const absl::Status st = CheckPrecisionLadder(bad, 2, "--precisions");
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.message().rfind("--precisions ", 0), 0u) << st;
    EXPECT_NE(st.message().find("need at least 2 bit widths in 2..8, strictly decreasing"),
              std::string::npos)
        << st;
  }
  auto parsed = ParsePrecisionLadder("5,4,3", 2, "--precisions");
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(*parsed, std::vector<int>({5, 4, 3}));
  EXPECT_EQ(ParsePrecisionLadder("5,5", 2, "--precisions").status().message(),
            "--precisions 5,5: need at least 2 bit widths in 2..8, strictly decreasing (high to "
            "low, e.g. "
            "4,3,2)");
  auto learned = MakeLearnedScheduler(LearnedSchedulerOptions{"/nonexistent", {3, 4}, 4, 8, 255});
  ASSERT_FALSE(learned.ok());
  EXPECT_NE(
      learned.status().message().find("the learned scheduler's precisions 3,4: need at least 2"),
      std::string::npos)
      << learned.status();
}

// Switch step k == k greedy tokens at the high precision, then the low one from the same cache.
TEST(ScheduledGenerationTest, SwitchStepEqualsManualSwitchOnTheSameCache) {
  auto model = LlamaModel::Load(AnyprecDir());
  ASSERT_TRUE(model.ok()) << model.status();
  const std::vector<int> prompt = {1, 17, 33, 9, 60};
  const int n = 24;
  for (int k : {0, 1, 7, 24}) {
    ScheduledGenerationOptions opt;
    opt.generation.max_new_tokens = n;
    opt.generation.stop_at_eos = false;
    auto sched = Static({4, 2}, {k});
    auto r = GenerateScheduled(**model, prompt, opt, sched.get());
    ASSERT_TRUE(r.ok()) << r.status();

    // By hand: prefill at 4, greedy, switch to 2 before producing token k.
    (*model)->Reset();
    ASSERT_TRUE((*model)->SetPrecision(4).ok());
    std::vector<float> logits;
    ASSERT_TRUE((*model)->Forward(prompt, false, &logits).ok());
    std::vector<int> manual, precisions;
    int precision = 4;
    for (int t = 0; t < n; ++t) {
      manual.push_back(inference::Argmax(logits));
      precisions.push_back(precision);
      if (t + 1 == n) break;
      if (t + 1 >= k && precision != 2) {
        ASSERT_TRUE((*model)->SetPrecision(2).ok());
        precision = 2;
      }
      const int one[1] = {manual.back()};
      ASSERT_TRUE((*model)->Forward(one, false, &logits).ok());
    }
    EXPECT_EQ(r->generation.new_ids, manual) << "k = " << k;
    std::vector<int> expected_precisions(n, 2);
    for (int t = 0; t < std::max(k, 1) && t < n; ++t)
      expected_precisions[t] = 4;  // token 0 is the prefill's
    EXPECT_EQ(r->token_precisions, expected_precisions) << "k = " << k;
    EXPECT_DOUBLE_EQ(r->avg_bits, AverageBits(expected_precisions));
  }
}

TEST(ScheduledGenerationTest, AverageBitsAndPrefillPrecision) {
  auto model = LlamaModel::Load(AnyprecDir());
  ASSERT_TRUE(model.ok());
  ScheduledGenerationOptions opt;
  opt.generation.max_new_tokens = 20;
  opt.generation.stop_at_eos = false;
  opt.prefill_precision = 3;
  auto sched = Static({4, 3, 2}, {5, 10});
  auto r = GenerateScheduled(**model, std::vector<int>{1, 2, 3}, opt, sched.get());
  ASSERT_TRUE(r.ok()) << r.status();
  // token 0 from the 3-bit prefill, tokens 1-4 at 4, 5-9 at 3, 10-19 at 2.
  EXPECT_EQ(r->token_precisions[0], 3);
  EXPECT_EQ(r->token_precisions[4], 4);
  EXPECT_EQ(r->token_precisions[5], 3);
  EXPECT_EQ(r->token_precisions[10], 2);
  EXPECT_DOUBLE_EQ(r->avg_bits, (3 + 4 * 4 + 5 * 3 + 10 * 2) / 20.0);
  EXPECT_DOUBLE_EQ(AverageBits({}), 0.0);
}

TEST(ScheduledGenerationTest, MissingPrecisionAndPlainModelsAreErrors) {
  auto model = LlamaModel::Load(AnyprecDir());
  ASSERT_TRUE(model.ok());
  ScheduledGenerationOptions opt;
  auto sched = Static({5, 3}, {4});
  auto r = GenerateScheduled(**model, std::vector<int>{1, 2}, opt, sched.get());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find(
                "precision 5 is missing from the checkpoint, which holds 2 to 4 bits"),
            std::string::npos)
      << r.status();
  const std::string plain_dir = pmpd::testing::MakeTempDir("sched_plain");
  ASSERT_TRUE(models::WriteRandomLlama(plain_dir, models::TinyDemoConfig(96), 1).ok());
  auto plain = LlamaModel::Load(plain_dir);
  ASSERT_TRUE(plain.ok());
  auto s2 = Static({4, 3}, {4});
  r = GenerateScheduled(**plain, std::vector<int>{1, 2}, opt, s2.get());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("any-precision checkpoint"), std::string::npos);
}

}  // namespace
}  // namespace pmpd::scheduler
