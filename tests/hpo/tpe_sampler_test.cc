#include "hpo/tpe_sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include "hpo/random_sampler.h"
#include "hpo/run_study.h"
#include "hpo/study.h"

namespace pmpd::hpo {
namespace {

FrozenTrial Made(int64_t number, TrialState state, std::optional<double> value,
                 std::map<int64_t, double> intermediate = {}) {
  FrozenTrial t;
  t.number = number;
  t.state = state;
  t.value = value;
  t.params = {0.0};
  t.intermediate = std::move(intermediate);
  return t;
}

std::vector<int64_t> Numbers(const std::vector<const FrozenTrial*>& trials) {
  std::vector<int64_t> n;
  for (const FrozenTrial* t : trials) n.push_back(t->number);
  return n;
}

TEST(TpeSplitTest, GoodGroupIsTheBestGammaWithPrunedAfterCompleteAndLiarsLast) {
  // 9 complete (values below), 3 pruned, 1 failed, 1 running, 1 stale.
  // finished n = 12 -> gamma = ceil(1.2) = 2: the two best complete trials, 8 (value 1) and 6
  // (value 2), are good. Failed ones are ignored; running ones go to the bad group under the liar.
  std::vector<FrozenTrial> trials;
  const double values[] = {9, 8, 7, 6, 5, 4, 2, 3, 1};
  for (int i = 0; i < 9; ++i) trials.push_back(Made(i, TrialState::kComplete, values[i]));
  trials.push_back(Made(9, TrialState::kPruned, std::nullopt, {{0, 0.1}}));
  trials.push_back(Made(10, TrialState::kPruned, std::nullopt, {{0, 5.0}, {3, 9.0}}));
  trials.push_back(Made(11, TrialState::kPruned, std::nullopt));
  trials.push_back(Made(12, TrialState::kFail, std::nullopt));
  trials.push_back(Made(13, TrialState::kRunning, std::nullopt));
  trials.push_back(Made(14, TrialState::kStale, std::nullopt));

  TpeSplit split = SplitTrials(trials, Direction::kMinimize, /*constant_liar=*/false);
  EXPECT_EQ(Numbers(split.below), (std::vector<int64_t>{6, 8}));
  EXPECT_EQ(Numbers(split.above), (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 7, 9, 10, 11}));
  split = SplitTrials(trials, Direction::kMinimize, /*constant_liar=*/true);
  EXPECT_EQ(Numbers(split.below), (std::vector<int64_t>{6, 8}));
  EXPECT_EQ(split.above.size(), 12u);
  EXPECT_EQ(split.above.back()->number, 14);

  // Maximize: the best are 0 (value 9) and 1 (value 8).
  split = SplitTrials(trials, Direction::kMaximize, false);
  EXPECT_EQ(Numbers(split.below), (std::vector<int64_t>{0, 1}));

  // Pruned trials alone, in Optuna's order: 10 got furthest (step 3) and ranks first although its
  // value is the worst, then 9 (step 0), then 11 (never reported). gamma(3) = 1 -> 10 is good.
  std::vector<FrozenTrial> pruned(trials.begin() + 9, trials.begin() + 12);
  split = SplitTrials(pruned, Direction::kMinimize, false);
  EXPECT_EQ(Numbers(split.below), (std::vector<int64_t>{10}));
}

SearchSpace Space(std::vector<ParamSpec> params) {
  absl::StatusOr<SearchSpace> space = SearchSpace::FromParams(std::move(params));
  EXPECT_TRUE(space.ok()) << space.status();
  return *space;
}

TEST(TpeSamplerTest, StartupTrialsAreUniformDrawsFromTheTrialStream) {
  const SearchSpace space = Space({ParamSpec::Float("x", -1, 1), ParamSpec::Int("n", 1, 9)});
  const TpeSampler tpe;
  std::vector<FrozenTrial> trials;
  for (int i = 0; i < 9; ++i) trials.push_back(Made(i, TrialState::kComplete, i));
  for (auto& t : trials) t.params = {0.0, 1.0};
  Rng a(Rng::TrialSeed(5, 9)), b(Rng::TrialSeed(5, 9));
  EXPECT_EQ(tpe.Sample(space, trials, Direction::kMinimize, a), SampleUniform(space, b));
  // The tenth finished trial ends the start-up phase.
  trials.push_back(Made(9, TrialState::kPruned, std::nullopt));
  trials.back().params = {0.0, 1.0};
  Rng c(Rng::TrialSeed(5, 10)), d(Rng::TrialSeed(5, 10));
  EXPECT_NE(tpe.Sample(space, trials, Direction::kMinimize, c), SampleUniform(space, d));
}

double Quadratic(const Trial& t) {
  const double x = t.Float("x") - 1.3, y = t.Float("y") + 0.7;
  return x * x + 2.0 * y * y;
}

// Branin-Hoo; minimum 0.397887 at (-pi, 12.275), (pi, 2.275), (9.42478, 2.475).
double Branin(const Trial& t) {
  const double x1 = t.Float("x1"), x2 = t.Float("x2");
  const double b = 5.1 / (4 * M_PI * M_PI), c = 5 / M_PI, s = 1 / (8 * M_PI);
  const double u = x2 - b * x1 * x1 + c * x1 - 6;
  return u * u + 10 * (1 - s) * std::cos(x1) + 10;
}

double BestValue(const SearchSpace& space, SamplerConfig sampler, uint64_t seed,
                 double (*f)(const Trial&), int n_trials) {
  StudyOptions options;
  options.seed = seed;
  options.sampler = sampler;
  std::unique_ptr<Study> study = Study::InMemory(space, options);
  const absl::Status s = RunStudy(
      *study, [&](TrialContext& c) -> absl::StatusOr<double> { return f(c.trial()); }, n_trials);
  EXPECT_TRUE(s.ok()) << s;
  absl::StatusOr<std::optional<FrozenTrial>> best = study->BestTrial();
  EXPECT_TRUE(best.ok() && best->has_value());
  return *(*best)->value;
}

struct Means {
  double random = 0, tpe = 0, tpe_multivariate = 0;
};

Means CompareSamplers(const SearchSpace& space, double (*f)(const Trial&), const char* name) {
  constexpr int kSeeds = 10, kTrials = 100;
  SamplerConfig random, tpe, multi;
  random.type = SamplerConfig::Type::kRandom;
  multi.tpe.multivariate = true;
  Means m;
  for (int seed = 0; seed < kSeeds; ++seed) {
    m.random += BestValue(space, random, seed, f, kTrials) / kSeeds;
    m.tpe += BestValue(space, tpe, seed, f, kTrials) / kSeeds;
    m.tpe_multivariate += BestValue(space, multi, seed, f, kTrials) / kSeeds;
  }
  std::printf(
      "[ %s ] mean best of %d trials over %d seeds: random %.6g, TPE %.6g, multivariate TPE %.6g\n",
      name, kTrials, kSeeds, m.random, m.tpe, m.tpe_multivariate);
  return m;
}

TEST(TpeSamplerTest, BeatsRandomSearchOnAQuadratic) {
  const SearchSpace space = Space({ParamSpec::Float("x", -5, 5), ParamSpec::Float("y", -5, 5)});
  const Means m = CompareSamplers(space, Quadratic, "quadratic");
  EXPECT_LT(m.tpe, m.random);
  EXPECT_LT(m.tpe_multivariate, m.random);
}

TEST(TpeSamplerTest, BeatsRandomSearchOnBranin) {
  const SearchSpace space = Space({ParamSpec::Float("x1", -5, 10), ParamSpec::Float("x2", 0, 15)});
  const Means m = CompareSamplers(space, Branin, "branin");
  EXPECT_LT(m.tpe, m.random);
  EXPECT_LT(m.tpe_multivariate, m.random);
}

std::vector<std::vector<double>> Suggestions(const SearchSpace& space, uint64_t seed,
                                             Direction direction, double sign, int n) {
  StudyOptions options;
  options.seed = seed;
  options.direction = direction;
  std::unique_ptr<Study> study = Study::InMemory(space, options);
  std::vector<std::vector<double>> params;
  for (int i = 0; i < n; ++i) {
    absl::StatusOr<Trial> t = study->Ask();
    EXPECT_TRUE(t.ok());
    params.push_back(t->values());
    EXPECT_TRUE(study->Tell(t->number(), sign * Quadratic(*t)).ok());
  }
  return params;
}

TEST(TpeSamplerTest, SeededAndDirectionSymmetric) {
  const SearchSpace space =
      Space({ParamSpec::Float("x", -5, 5), ParamSpec::Float("y", -5, 5, false, 0.5)});
  const auto a = Suggestions(space, 42, Direction::kMinimize, 1.0, 30);
  EXPECT_EQ(a, Suggestions(space, 42, Direction::kMinimize, 1.0, 30));
  EXPECT_NE(a, Suggestions(space, 43, Direction::kMinimize, 1.0, 30));
  // Maximising -f ranks trials exactly as minimising f, so TPE proposes the same points.
  EXPECT_EQ(a, Suggestions(space, 42, Direction::kMaximize, -1.0, 30));
  for (const auto& p : a) EXPECT_EQ(std::fmod(p[1] + 5.0, 0.5), 0.0) << p[1];
}

}  // namespace
}  // namespace pmpd::hpo
