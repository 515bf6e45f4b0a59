// pmpd-train and the learned scheduler: training learns a rule hidden in synthetic KV caches,
// resumes exactly, exports what it trained; reference-format classifiers give the reference's
// outputs; bad files and mismatches are refused clearly.
#include "trainer/classifier_trainer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>

#include "absl/strings/str_cat.h"
#include "dataset/kv_dataset.h"
#include "kernels/half.h"
#include "models/hdf5_file.h"
#include "scheduler_runtime/kv_classifier.h"
#include "tests/test_util.h"
#include "tests/trainer/synthetic_kv_data.h"
#include "trainer/classifier_export.h"
#include "trainer/classifier_state.h"

namespace pmpd::trainer {
namespace {

TrainOptions Quick() {
  TrainOptions o;
  o.epochs = 40;
  o.lr = 1e-2;
  o.batch_size = 16;
  o.val_fraction = 0.25;
  o.patience = 40;
  o.seed = 3;
  return o;
}

// Gaussian K and V ([H, T, D] each, standard deviation `sd`) of one prompt of t positions.
std::pair<std::vector<float>, std::vector<float>> RandomKv(std::mt19937& rng, int t,
                                                           float sd = 1.f) {
  std::normal_distribution<float> g(0.f, sd);
  std::vector<float> k(kH * t * kD), v(kH * t * kD);
  for (auto& x : k) x = g(rng);
  for (auto& x : v) x = g(rng);
  return {std::move(k), std::move(v)};
}

TEST(ClassifierTrainerTest, LearnsARuleAndBeatsTheMajorityClass) {
  const std::string data = SyntheticData("train_rule", 240, 1);
  auto r = TrainPairClassifier(data, 4, 3, Quick());
  ASSERT_TRUE(r.ok()) << r.status();
  const auto& best = r->epochs[r->best_epoch - 1];
  std::fprintf(stderr,
               "best epoch %d: val acc %.3f macro-F1 %.3f; majority acc %.3f macro-F1 %.3f\n",
               r->best_epoch, best.val.accuracy, best.val.macro_f1, r->majority.accuracy,
               r->majority.macro_f1);
  // 10% label noise caps accuracy near 0.92; the majority class of 4 balanced ones gets ~0.25.
  EXPECT_GT(best.val.accuracy, 0.7);
  EXPECT_GT(best.val.macro_f1, r->majority.macro_f1 + 0.4);
  EXPECT_LT(best.val_loss, r->epochs.front().val_loss);
  EXPECT_EQ(r->train_samples + r->val_samples, 240);
  EXPECT_EQ(r->val_samples, 60);
}

// A test split: held out after the validation split (which stays the same samples), scored once
// with the best weights; on the learnable synthetic rule it beats the majority class there too.
TEST(ClassifierTrainerTest, TestSplitIsHeldOutAndScoredOnce) {
  const std::string data = SyntheticData("train_test_split", 240, 1);
  TrainOptions o = Quick();
  o.test_fraction = 0.2;
  auto r = TrainPairClassifier(data, 4, 3, o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->val_samples, 60);
  EXPECT_EQ(r->test_samples, 48);
  EXPECT_EQ(r->train_samples, 240 - 60 - 48);
  int64_t counted = 0;
  for (int64_t c : r->test_class_counts) counted += c;
  EXPECT_EQ(counted, 48);
  std::fprintf(stderr, "test split: acc %.3f macro-F1 %.3f; majority acc %.3f macro-F1 %.3f\n",
               r->test.accuracy, r->test.macro_f1, r->majority_test.accuracy,
               r->majority_test.macro_f1);
  EXPECT_GT(r->test.accuracy, r->majority_test.accuracy + 0.3);
  EXPECT_GT(r->test.macro_f1, r->majority_test.macro_f1 + 0.3);
  // Without a test split the validation split is the same samples (same class counts).
  TrainOptions one_epoch = Quick();
  one_epoch.epochs = 1;  // the split does not depend on training
  auto plain = TrainPairClassifier(data, 4, 3, one_epoch);
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->val_class_counts, r->val_class_counts);
  EXPECT_EQ(plain->test_samples, 0);
  // Nothing left to train on: refused.
  o.val_fraction = 0.5;
  o.test_fraction = 0.5;
  EXPECT_FALSE(TrainPairClassifier(data, 4, 3, o).ok());
}

// --candidate-steps: a subset of the file's steps re-derives the labels from their Rouge-L (fewer
// classes from one labelling run); the result and its export switch only at those steps; a step
// the file does not have, or steps out of order, are refused naming the problem.
TEST(ClassifierTrainerTest, CandidateStepSubsetRelabelsFromTheStoredRougeL) {
  const std::string data = SyntheticData("train_step_subset", 120, 1);  // steps 0, 10, 20
  TrainOptions o = Quick();
  o.epochs = 2;
  auto full = TrainPairClassifier(data, 4, 3, o);
  ASSERT_TRUE(full.ok()) << full.status();
  ASSERT_EQ(full->train_class_counts.size(), 4u);
  o.candidate_steps = {0, 20};
  auto sub = TrainPairClassifier(data, 4, 3, o);
  ASSERT_TRUE(sub.ok()) << sub.status();
  EXPECT_EQ(sub->candidate_steps, (std::vector<int64_t>{0, 20}));
  EXPECT_EQ(sub->spec.num_classes, 3);
  // Same split; step 10's samples become step 20's (the earliest kept step that is as good).
  const auto& f = full->train_class_counts;
  EXPECT_EQ(sub->train_class_counts, (std::vector<int64_t>{f[0], f[1] + f[2], f[3]}));
  const auto& fv = full->val_class_counts;
  EXPECT_EQ(sub->val_class_counts, (std::vector<int64_t>{fv[0], fv[1] + fv[2], fv[3]}));
  // The whole set given explicitly is the file's labels, and the same run: it resumes a run that
  // gave none.
  TrainOptions resumable = Quick();
  resumable.epochs = 2;
  resumable.checkpoint_dir = testing::MakeTempDir("train_step_subset_ckpt");
  ASSERT_TRUE(TrainPairClassifier(data, 4, 3, resumable).ok());
  resumable.candidate_steps = {0, 10, 20};
  auto same = TrainPairClassifier(data, 4, 3, resumable);
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(same->train_class_counts, full->train_class_counts);
  EXPECT_EQ(same->resumed_epochs, 2);
  const std::string dir = testing::MakeTempDir("train_step_subset_export");
  ASSERT_TRUE(ExportClassifiers(dir, data, {*sub}, o).ok());
  auto manifest = scheduler::ReadClassifierManifest(dir);
  ASSERT_TRUE(manifest.ok()) << manifest.status();
  EXPECT_EQ(manifest->pairs.at(0).candidate_steps, (std::vector<int64_t>{0, 20}));

  o.candidate_steps = {0, 15};
  auto bad = TrainPairClassifier(data, 4, 3, o);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("--candidate-steps 15 is not one of the file's candidate "
                                        "steps 0,10,20"),
            std::string::npos)
      << bad.status();
  EXPECT_NE(bad.status().message().find(data), std::string::npos);
  EXPECT_EQ(CandidateStepIndices({20}, {0, 10, 20}, data).value(), (std::vector<size_t>{2}));
  EXPECT_EQ(CandidateStepIndices({}, {0, 10, 20}, data).value(), (std::vector<size_t>{0, 1, 2}));
  o.candidate_steps = {20, 0};
  EXPECT_FALSE(CheckTrainOptions(o).ok());
}

// excess_nll files: --label-tolerance is in nats per token (above 1 allowed), relabelling from the
// stored costs gives the rule's labels at 0.05 (the Rouge-L file of the same seed has them stored),
// every step costs something at 0, and everything is cheap enough at 0.5; the tolerance reaches
// the metrics. ParseLabelTolerances takes one value or one per pair.
TEST(ClassifierTrainerTest, ExcessNllFilesRelabelInNatsPerToken) {
  const std::string rouge = SyntheticData("train_nll_rouge", 120, 1);
  const std::string nll =
      SyntheticData("train_nll", 120, 1, {4, 3, 2}, -1, dataset::kLabelExcessNll);
  TrainOptions o = Quick();
  o.epochs = 1;
  auto want = TrainPairClassifier(rouge, 4, 3, o);
  ASSERT_TRUE(want.ok()) << want.status();
  auto stored = TrainPairClassifier(nll, 3, 2, o);
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(stored->train_class_counts, (std::vector<int64_t>{0, 0, 0, 90}));
  o.label_tolerance = 0.05;
  auto relabelled = TrainPairClassifier(nll, 4, 3, o);
  ASSERT_TRUE(relabelled.ok()) << relabelled.status();
  EXPECT_EQ(relabelled->train_class_counts, want->train_class_counts);
  EXPECT_EQ(relabelled->val_class_counts, want->val_class_counts);
  EXPECT_EQ(relabelled->label_tolerance, 0.05);
  EXPECT_EQ(nlohmann::json::parse(
                MetricsJson(*relabelled, Quick()))["hyperparameters"]["label_tolerance"],
            0.05);
  EXPECT_EQ(
      nlohmann::json::parse(MetricsJson(*relabelled, Quick()))["hyperparameters"]["label_metric"],
      "excess_nll");
  o.label_tolerance = 1.5;
  auto all_cheap = TrainPairClassifier(nll, 4, 3, o);
  ASSERT_TRUE(all_cheap.ok()) << all_cheap.status();
  EXPECT_EQ(all_cheap->train_class_counts, (std::vector<int64_t>{90, 0, 0, 0}));
  auto rouge_refused = TrainPairClassifier(rouge, 4, 3, o);
  ASSERT_FALSE(rouge_refused.ok());
  EXPECT_NE(rouge_refused.status().message().find("has Rouge-L labels: --label-tolerance 1.5 must "
                                                  "be in [0, 1)"),
            std::string::npos)
      << rouge_refused.status();

  EXPECT_EQ(ParseLabelTolerances("0.1", 2).value(), (std::vector<double>{0.1, 0.1}));
  EXPECT_EQ(ParseLabelTolerances("0.03, 0.2", 2).value(), (std::vector<double>{0.03, 0.2}));
  for (const char* bad : {"0.1,0.2,0.3", "-1", "x", "0.1,", "inf"}) {
    EXPECT_FALSE(ParseLabelTolerances(bad, 2).ok()) << bad;
  }
}

// The same seed gives the same classifier; a run interrupted twice and rerun gives it too.
TEST(ClassifierTrainerTest, InterruptedTrainingResumesToTheSameClassifier) {
  const std::string data = SyntheticData("train_resume", 80, 2);
  TrainOptions o = Quick();
  o.epochs = 9;
  o.balance = "oversample";  // the path with the most per-epoch randomness
  o.checkpoint_dir = testing::MakeTempDir("train_resume_a");
  auto whole = TrainPairClassifier(data, 4, 3, o);
  ASSERT_TRUE(whole.ok()) << whole.status();
  auto again = TrainPairClassifier(data, 4, 3, [&] {
    TrainOptions p = o;
    p.checkpoint_dir = "";
    return p;
  }());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->state.at("query").values, whole->state.at("query").values)
      << "same seed, different classifier";

  o.checkpoint_dir = testing::MakeTempDir("train_resume_b");
  for (int stop_at : {3, 6}) {
    auto part = TrainPairClassifier(data, 4, 3, o,
                                    [&](const EpochMetrics& e) { return e.epoch < stop_at; });
    ASSERT_TRUE(part.ok());
    EXPECT_EQ(static_cast<int>(part->epochs.size()), stop_at);
  }
  auto rest = TrainPairClassifier(data, 4, 3, o);
  ASSERT_TRUE(rest.ok());
  EXPECT_EQ(rest->resumed_epochs, 6);
  ASSERT_EQ(rest->epochs.size(), whole->epochs.size());
  for (size_t e = 0; e < rest->epochs.size(); ++e)
    EXPECT_EQ(rest->epochs[e].val_loss, whole->epochs[e].val_loss);
  EXPECT_EQ(rest->best_epoch, whole->best_epoch);
  for (const auto& [key, t] : whole->state) EXPECT_EQ(rest->state.at(key).values, t.values) << key;
  // Other settings do not resume the checkpoint.
  TrainOptions other = o;
  other.lr = 5e-3;
  auto fresh = TrainPairClassifier(data, 4, 3, other);
  ASSERT_TRUE(fresh.ok());
  EXPECT_EQ(fresh->resumed_epochs, 0);
}

// Export -> import: the exported files give the trained weights' outputs exactly.
TEST(ClassifierTrainerTest, ExportThenImportGivesIdenticalOutputs) {
  const std::string data = SyntheticData("train_export", 60, 3);
  TrainOptions o = Quick();
  o.epochs = 3;
  std::vector<TrainResult> results;
  for (auto [hi, lo] : {std::pair{4, 3}, std::pair{3, 2}}) {
    auto r = TrainPairClassifier(data, hi, lo, o);
    ASSERT_TRUE(r.ok());
    results.push_back(std::move(*r));
  }
  const std::string dir = testing::MakeTempDir("train_export_out");
  ASSERT_TRUE(ExportClassifiers(dir, data, results, o).ok());
  auto manifest = scheduler::ReadClassifierManifest(dir);
  ASSERT_TRUE(manifest.ok()) << manifest.status();
  ASSERT_EQ(manifest->pairs.size(), 2u);
  EXPECT_EQ(manifest->pairs[0].candidate_steps, (std::vector<int64_t>{0, 10, 20}));
  EXPECT_EQ(manifest->pairs[0].spec.kv_heads, kH);
  const auto metrics = nlohmann::json::parse(manifest->pairs[0].metrics_json);
  EXPECT_EQ(metrics.at("best_epoch").get<int>(), results[0].best_epoch);
  EXPECT_EQ(metrics.at("hyperparameters").at("lr").get<double>(), o.lr);

  // Issue 17: a manifest is not trusted. A file entry outside the directory, a pair listed twice,
  // candidate steps out of order: each a clear error naming manifest.json (all were accepted).
  const std::string good = testing::ReadFile(dir + "/manifest.json");
  for (const auto& [edit, needle] :
       std::vector<std::pair<std::function<void(nlohmann::json&)>, std::string>>{
           {[](nlohmann::json& j) { j["pairs"][0]["file"] = "../classifier_4_3.safetensors"; },
            "must be a file name inside the classifier directory"},
           {[](nlohmann::json& j) { j["pairs"][1] = j["pairs"][0]; }, "is listed twice"},
           {[](nlohmann::json& j) {
              j["pairs"][0]["candidate_steps"] = {0, 20, 10};
            },
            "not increasing non-negative step numbers"},
           {[](nlohmann::json& j) {
              j["pairs"][0]["candidate_steps"] = {-1, 10, 20};
            },
            "\"candidate_steps\" -1 is not an integer in [0, 1048576]"},
           // Found by fuzz/classifier_fuzzer (UBSan: float-to-int overflow in get<int>()), and
           // 2^32 + 1 heads narrowed to 1.
           {[](nlohmann::json& j) { j["pairs"][0]["high"] = 1e300; },
            "\"high\" 1e+300 is not an integer in [1, 64]"},
           {[](nlohmann::json& j) { j["pairs"][0]["kv_heads"] = 4294967297; },
            "\"kv_heads\" 4294967297 is not an integer in [1, 65536]"},
           {[](nlohmann::json& j) {
              j["pairs"][0]["candidate_steps"] = {0, 2.5, 20};
            },
            "\"candidate_steps\" 2.5 is not an integer"},
           // Found by fuzz/classifier_fuzzer in CI: a json::type_error escaped the reader.
           {[](nlohmann::json& j) {
              j["format"] = {1, 2};
            },
            "format is not \"pmpd-classifiers\""},
           {[](nlohmann::json& j) {
              j["tool_version"] = {1, 2};
            },
            "malformed manifest"}}) {
    auto j = nlohmann::json::parse(good);
    edit(j);
    testing::WriteFile(dir + "/manifest.json", j.dump());
    auto bad = scheduler::ReadClassifierManifest(dir);
    ASSERT_FALSE(bad.ok());
    EXPECT_NE(bad.status().message().find("manifest.json: "), std::string::npos) << bad.status();
    EXPECT_NE(bad.status().message().find(needle), std::string::npos) << bad.status();
  }
  {  // the manifest's dimensions contradicting the tensors it names
    auto j = nlohmann::json::parse(good);
    j["pairs"][0]["kv_heads"] = kH + 1;
    testing::WriteFile(dir + "/manifest.json", j.dump());
    auto sched =
        scheduler::MakeLearnedScheduler(scheduler::LearnedSchedulerOptions{dir, {4, 3}, 0, 0});
    ASSERT_FALSE(sched.ok());
    EXPECT_NE(sched.status().message().find("manifest.json says " + std::to_string(kH + 1)),
              std::string::npos)
        << sched.status();
  }
  {  // the two pairs' files swapped in the manifest (same shapes, so nothing else notices)
    auto j = nlohmann::json::parse(good);
    std::swap(j["pairs"][0]["file"], j["pairs"][1]["file"]);
    testing::WriteFile(dir + "/manifest.json", j.dump());
    auto sched =
        scheduler::MakeLearnedScheduler(scheduler::LearnedSchedulerOptions{dir, {4, 3, 2}, 0, 0});
    ASSERT_FALSE(sched.ok());
    EXPECT_NE(sched.status().message().find(
                  "classifier_3_2.safetensors: holds the classifier of pair 3->2, but it is listed "
                  "for 4->3 (files swapped or renamed?)"),
              std::string::npos)
        << sched.status();
  }
  testing::WriteFile(dir + "/manifest.json", good);
  ASSERT_TRUE(
      scheduler::MakeLearnedScheduler(scheduler::LearnedSchedulerOptions{dir, {4, 3, 2}, 0, 0})
          .ok());
  // NaN weights were accepted and switched at step 0 on every prompt: now refused by name.
  scheduler::ClassifierState nan_state = results[0].state;
  nan_state.begin()->second.values[0] = std::nanf("");
  auto nan_classifier = scheduler::KvClassifier::FromState(nan_state, "nan.safetensors");
  ASSERT_FALSE(nan_classifier.ok());
  EXPECT_NE(nan_classifier.status().message().find("nan.safetensors: tensor \""), std::string::npos)
      << nan_classifier.status();
  EXPECT_NE(nan_classifier.status().message().find("NaN or infinite"), std::string::npos);

  auto in_memory = scheduler::KvClassifier::FromState(results[0].state, "memory");
  auto state = scheduler::ReadClassifierSafetensors(dir + "/classifier_4_3.safetensors");
  ASSERT_TRUE(in_memory.ok() && state.ok());
  auto loaded = scheduler::KvClassifier::FromState(*state, "file");
  ASSERT_TRUE(loaded.ok());
  std::mt19937 rng(5);
  for (int t : {1, 5, 33}) {
    const auto [k, v] = RandomKv(rng, t);
    const inference::KvView kv = inference::HostKvView(k, v, kH, t, kD);
    auto a = (*in_memory)->Logits(kv);
    auto b = (*loaded)->Logits(kv);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(*a, *b) << "T = " << t;
  }
}

// The exported state of a network with the prompt-length input gives, through the runtime, the
// logits the network gives with its training standardisation (folded into length.weight/bias);
// a state with only one of the two length tensors, or whose manifest names the other
// architecture, is refused.
TEST(ClassifierTrainerTest, ExportedLengthStateGivesTheTrainingNetworksLogits) {
  torch::manual_seed(4);
  scheduler::KvClassifierNet net(kH, kD, 4, 0.0, /*prompt_length_input=*/true);
  net->length_center = 3.1;
  net->length_scale = 0.7;
  {
    torch::NoGradGuard no_grad;  // a length weight large enough to matter
    net->length->weight.copy_(torch::tensor({{1.5f}, {-0.5f}, {0.25f}, {-2.0f}}));
  }
  net->eval();
  auto c = scheduler::KvClassifier::FromState(ExportedState(net), "exported");
  ASSERT_TRUE(c.ok()) << c.status();
  std::mt19937 rng(8);
  for (int t : {1, 7, 40}) {
    auto [k, v] = RandomKv(rng, t);
    torch::NoGradGuard no_grad;
    const torch::Tensor want = net->forward(torch::from_blob(k.data(), {1, kH, t, kD}),
                                            torch::from_blob(v.data(), {1, kH, t, kD}));
    auto got = (*c)->Logits(inference::HostKvView(k, v, kH, t, kD));
    ASSERT_TRUE(got.ok());
    for (int i = 0; i < 4; ++i) EXPECT_NEAR((*got)[i], want[0][i].item<float>(), 1e-5) << t;
  }
  scheduler::ClassifierState misspelt = ExportedState(net);
  misspelt["length.weights"] = misspelt.at("length.weight");
  misspelt.erase("length.weight");
  misspelt.erase("length.bias");
  auto typo = scheduler::SpecFromState(misspelt, "typo.safetensors");
  ASSERT_FALSE(typo.ok());
  EXPECT_NE(typo.status().message().find(
                "typo.safetensors: unexpected classifier tensor \"length.weights\""),
            std::string::npos)
      << typo.status();
  scheduler::ClassifierState half = ExportedState(net);
  half.erase("length.bias");
  auto bad = scheduler::SpecFromState(half, "half.safetensors");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("half.safetensors: has one of length.weight and "
                                        "length.bias (the prompt-length input) but not "
                                        "\"length.bias\""),
            std::string::npos)
      << bad.status();
}

// The prompt-length input (architecture pmpd-reference+prompt-length): on labels that follow the
// prompt length alone (K/V noise) it learns the rule, which the reference architecture cannot see
// (attention pooling averages over positions, the layer norm removes the scale); exported, the
// manifest names the architecture, the runtime feeds the view's length (the same rows repeated
// twice pool to the same vector but give other logits), and a manifest that names the other
// architecture is refused.
TEST(ClassifierTrainerTest, PromptLengthInputLearnsWhatPoolingCannotSee) {
  const std::string data =
      SyntheticData("train_length", 400, 9, {4, 3}, -1, dataset::kLabelRougeL, true);
  TrainOptions o = Quick();
  auto plain = TrainPairClassifier(data, 4, 3, o);
  o.prompt_length_input = true;
  auto with_length = TrainPairClassifier(data, 4, 3, o);
  ASSERT_TRUE(plain.ok() && with_length.ok()) << plain.status() << with_length.status();
  const auto& p = plain->epochs[plain->best_epoch - 1].val;
  const auto& l = with_length->epochs[with_length->best_epoch - 1].val;
  std::fprintf(stderr,
               "length rule: val acc %.3f with the length input, %.3f without; majority %.3f\n",
               l.accuracy, p.accuracy, plain->majority.accuracy);
  EXPECT_GT(l.accuracy, 0.7);
  EXPECT_LT(p.accuracy, 0.5);
  EXPECT_EQ(with_length->state.at("length.weight").shape, (std::vector<int64_t>{4, 1}));
  EXPECT_EQ(plain->state.count("length.weight"), 0u);

  const std::string dir = testing::MakeTempDir("train_length_out");
  ASSERT_TRUE(ExportClassifiers(dir, data, {*with_length}, o).ok());
  auto manifest = scheduler::ReadClassifierManifest(dir);
  ASSERT_TRUE(manifest.ok()) << manifest.status();
  EXPECT_EQ(manifest->architecture, scheduler::kPromptLengthArchitecture);
  EXPECT_TRUE(manifest->pairs[0].spec.prompt_length_input);
  EXPECT_TRUE(nlohmann::json::parse(manifest->pairs[0].metrics_json)
                  .at("hyperparameters")
                  .at("prompt_length_input")
                  .get<bool>());
  auto state = scheduler::ReadClassifierSafetensors(dir + "/classifier_4_3.safetensors", 4, 3);
  ASSERT_TRUE(state.ok()) << state.status();
  auto spec = scheduler::SpecFromState(*state, "file");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_TRUE(spec->prompt_length_input);
  auto c = scheduler::KvClassifier::FromState(*state, "file");
  auto reference = scheduler::KvClassifier::FromState(plain->state, "plain");
  ASSERT_TRUE(c.ok() && reference.ok());
  std::mt19937 rng(2);
  const int t = 6;
  const auto [k, v] = RandomKv(rng, t);
  std::vector<float> k2, v2;  // per head: the t rows, then the same t rows again
  for (int h = 0; h < kH; ++h) {
    for (int rep = 0; rep < 2; ++rep) {
      k2.insert(k2.end(), k.begin() + h * t * kD, k.begin() + (h + 1) * t * kD);
      v2.insert(v2.end(), v.begin() + h * t * kD, v.begin() + (h + 1) * t * kD);
    }
  }
  auto once = (*c)->Logits(inference::HostKvView(k, v, kH, t, kD));
  auto twice = (*c)->Logits(inference::HostKvView(k2, v2, kH, 2 * t, kD));
  auto ref_once = (*reference)->Logits(inference::HostKvView(k, v, kH, t, kD));
  auto ref_twice = (*reference)->Logits(inference::HostKvView(k2, v2, kH, 2 * t, kD));
  ASSERT_TRUE(once.ok() && twice.ok() && ref_once.ok() && ref_twice.ok());
  float length_effect = 0;
  for (size_t i = 0; i < once->size(); ++i) {
    EXPECT_NEAR((*ref_once)[i], (*ref_twice)[i], 1e-4) << "class " << i;
    length_effect = std::max(length_effect, std::fabs((*once)[i] - (*twice)[i]));
  }
  EXPECT_GT(length_effect, 0.1);
  // The exported file (the training standardisation folded into its weights) applies the rule to
  // new prompts: octave of the length, K/V noise, no label noise.
  int right = 0;
  const int n_new = 200;
  std::uniform_real_distribution<double> u(0, 1);
  for (int i = 0; i < n_new; ++i) {
    const int tn = static_cast<int>(8 * std::exp2(4 * u(rng)));
    const auto [kn, vn] = RandomKv(rng, tn, 0.3f);
    auto logits = (*c)->Logits(inference::HostKvView(kn, vn, kH, tn, kD));
    ASSERT_TRUE(logits.ok());
    right += scheduler::SelectSwitchClass(*logits, 0) ==
             std::min(3, static_cast<int>(std::floor(std::log2(tn / 8.0))));
  }
  std::fprintf(stderr, "exported classifier on %d new prompts: accuracy %.3f\n", n_new,
               static_cast<double>(right) / n_new);
  EXPECT_GT(right, 0.7 * n_new);
  ASSERT_TRUE(
      scheduler::MakeLearnedScheduler(scheduler::LearnedSchedulerOptions{dir, {4, 3}, kH, kD})
          .ok());
  auto j = nlohmann::json::parse(testing::ReadFile(dir + "/manifest.json"));
  j["architecture"] = scheduler::kReferenceArchitecture;
  testing::WriteFile(dir + "/manifest.json", j.dump());
  auto sched =
      scheduler::MakeLearnedScheduler(scheduler::LearnedSchedulerOptions{dir, {4, 3}, kH, kD});
  ASSERT_FALSE(sched.ok());
  EXPECT_NE(sched.status().message().find(
                "classifier_4_3.safetensors: its tensors are a pmpd-reference+prompt-length "
                "classifier, manifest.json says pmpd-reference"),
            std::string::npos)
      << sched.status();
  {  // the other direction: plain tensors, a manifest that says prompt length
    const std::string plain_dir = testing::MakeTempDir("train_length_plain_out");
    TrainOptions plain_options = o;
    plain_options.prompt_length_input = false;
    ASSERT_TRUE(ExportClassifiers(plain_dir, data, {*plain}, plain_options).ok());
    auto pj = nlohmann::json::parse(testing::ReadFile(plain_dir + "/manifest.json"));
    EXPECT_EQ(pj["architecture"], scheduler::kReferenceArchitecture);
    pj["architecture"] = scheduler::kPromptLengthArchitecture;
    testing::WriteFile(plain_dir + "/manifest.json", pj.dump());
    auto s2 = scheduler::MakeLearnedScheduler(
        scheduler::LearnedSchedulerOptions{plain_dir, {4, 3}, kH, kD});
    ASSERT_FALSE(s2.ok());
    EXPECT_NE(s2.status().message().find("its tensors are a pmpd-reference classifier, "
                                         "manifest.json says pmpd-reference+prompt-length"),
              std::string::npos)
        << s2.status();
  }
  j["architecture"] = "pmpd-other";
  testing::WriteFile(dir + "/manifest.json", j.dump());
  auto unknown = scheduler::ReadClassifierManifest(dir);
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("unknown architecture \"pmpd-other\" (known: "
                                            "pmpd-reference, pmpd-reference+prompt-length)"),
            std::string::npos)
      << unknown.status();
}

// A state dict in the PMPD reference's format (torch.save, its key names, known values) gives the
// logits of a PyTorch forward of the architecture (tests/golden,
// scripts/make_classifier_golden.py).
TEST(KvClassifierTest, ReferenceFormatStateDictGivesTheExpectedOutputs) {
  const auto golden = nlohmann::json::parse(
      testing::ReadFile(testing::SourcePath("tests/golden/reference_classifier.json")));
  const std::string pt = testing::SourcePath("tests/golden/reference_classifier/classifier_4_3.pt");
  auto state = scheduler::ReadReferenceClassifierPt(pt);
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->size(), 7u);  // the unrelated key is skipped
  auto c = scheduler::KvClassifier::FromState(*state, pt);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ((*c)->spec().kv_heads, 4);
  EXPECT_EQ((*c)->spec().head_dim, 8);
  for (const auto& cs : golden["cases"]) {
    const std::vector<float> k = cs["k"], v = cs["v"];
    auto logits = (*c)->Logits(inference::HostKvView(k, v, 4, cs["T"].get<int>(), 8));
    ASSERT_TRUE(logits.ok());
    const std::vector<double> want = cs["logits"];
    for (size_t i = 0; i < want.size(); ++i) {
      // float32 both sides; sums of <= 32 terms of magnitude ~10: a few ulps of 10.
      EXPECT_NEAR((*logits)[i], want[i], 2e-5 * std::max(1.0, std::fabs(want[i]))) << "class " << i;
    }
  }
  // The learned scheduler reads the same directory (no manifest: the reference's step classes).
  const std::string dir = testing::SourcePath("tests/golden/reference_classifier");
  scheduler::LearnedSchedulerOptions lo{dir, {4, 3}, 4, 8, 255};
  auto sched = scheduler::MakeLearnedScheduler(lo);
  ASSERT_TRUE(sched.ok()) << sched.status();
  const auto& c0 = golden["cases"][1];  // class 0: switch at step 0
  const std::vector<float> k = c0["k"], v = c0["v"];
  ASSERT_TRUE((*sched)->OnPrefill(inference::HostKvView(k, v, 4, c0["T"].get<int>(), 8)).ok());
  EXPECT_EQ((*sched)->NextPrecision(1, 4, {}), 3);
  const auto& c3 = golden["cases"][0];  // class 3: never
  const std::vector<float> k3 = c3["k"], v3 = c3["v"];
  ASSERT_TRUE((*sched)->OnPrefill(inference::HostKvView(k3, v3, 4, c3["T"].get<int>(), 8)).ok());
  EXPECT_EQ((*sched)->NextPrecision(254, 4, {}), 4);
}

// The switch quantile: the earliest class whose cumulative softmax probability reaches q; 0 is
// the argmax. Probabilities 0.1, 0.2, 0.3, 0.4 given as log-probabilities plus a shift (softmax is
// shift-invariant).
TEST(KvClassifierTest, SwitchQuantileSelectsTheEarliestClassReachingIt) {
  using scheduler::SelectSwitchClass;
  std::vector<float> logits;
  for (double p : {0.1, 0.2, 0.3, 0.4}) logits.push_back(static_cast<float>(std::log(p) + 7.0));
  EXPECT_EQ(SelectSwitchClass(logits, 0), 3);
  EXPECT_EQ(SelectSwitchClass(logits, 0.05), 0);
  EXPECT_EQ(SelectSwitchClass(logits, 0.25), 1);  // cumulative 0.1, 0.3
  EXPECT_EQ(SelectSwitchClass(logits, 0.5), 2);   // 0.3 < 0.5 <= 0.6
  EXPECT_EQ(SelectSwitchClass(logits, 0.65), 3);
  EXPECT_EQ(SelectSwitchClass(logits, 0.99), 3);
  // The argmax is not the median: one dominant early class among many late ones.
  const std::vector<float> early = {std::log(0.4f), std::log(0.2f), std::log(0.2f), std::log(0.2f)};
  EXPECT_EQ(SelectSwitchClass(early, 0), 0);
  EXPECT_EQ(SelectSwitchClass(early, 0.5), 1);
  // Large logits do not overflow.
  EXPECT_EQ(SelectSwitchClass(std::vector<float>{1000.f, 1000.f}, 0.4), 0);
  EXPECT_EQ(SelectSwitchClass(std::vector<float>{1000.f, 1000.f}, 0.6), 1);
}

// The learned scheduler with a quantile: the reference-format classifier's case whose argmax is
// "never" switches no later as q falls, and at q -> 0 at the earliest step its mass allows.
TEST(KvClassifierTest, LearnedSchedulerAppliesTheSwitchQuantile) {
  const auto golden = nlohmann::json::parse(
      testing::ReadFile(testing::SourcePath("tests/golden/reference_classifier.json")));
  const std::string dir = testing::SourcePath("tests/golden/reference_classifier");
  const auto& c3 = golden["cases"][0];  // argmax class 3: never
  const std::vector<float> k = c3["k"], v = c3["v"];
  const std::vector<float> logits = c3["logits"].get<std::vector<float>>();
  const std::vector<int> steps = {0, 85, 170, -1};  // the reference's classes at N = 255
  auto step_at = [&](double q) {
    scheduler::LearnedSchedulerOptions lo{dir, {4, 3}, 4, 8, 255};
    lo.switch_quantile = q;
    auto sched = scheduler::MakeLearnedScheduler(lo);
    EXPECT_TRUE(sched.ok()) << sched.status();
    if (!sched.ok()) return -2;
    EXPECT_TRUE((*sched)->OnPrefill(inference::HostKvView(k, v, 4, c3["T"].get<int>(), 8)).ok());
    for (int s = 0; s < 255; ++s) {
      if ((*sched)->NextPrecision(s, 4, {}) == 3) return s;
    }
    return -1;
  };
  EXPECT_EQ(step_at(0), -1);
  int prev = 0;
  for (double q : {0.001, 0.005, 0.2, 0.4, 0.6, 0.8, 0.99}) {
    const int s = step_at(q);
    EXPECT_EQ(s, steps[scheduler::SelectSwitchClass(logits, q)]) << q;
    const int as_order = s < 0 ? 1000 : s;
    EXPECT_GE(as_order, prev) << q;
    prev = as_order;
  }
  EXPECT_EQ(step_at(0.005), 0);  // P(class 0) = 0.0083
  EXPECT_EQ(step_at(0.2), -1);
  // Out of range: a clear error at construction.
  scheduler::LearnedSchedulerOptions bad{dir, {4, 3}, 4, 8, 255};
  bad.switch_quantile = 1.0;
  auto r = scheduler::MakeLearnedScheduler(bad);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("switch quantile 1"), std::string::npos) << r.status();
}

// The classifier reads any KvView by its dtype and strides, knowing nothing of the engine: the same
// K/V as float16 in a cache of 40 positions with the heads and positions interleaved ([T, H, D],
// an engine layout other than ours) gives the float32 logits within fp16 rounding.
TEST(KvClassifierTest, ReadsAnyViewLayoutAndDtype) {
  const auto golden = nlohmann::json::parse(
      testing::ReadFile(testing::SourcePath("tests/golden/reference_classifier.json")));
  const std::string pt = testing::SourcePath("tests/golden/reference_classifier/classifier_4_3.pt");
  auto state = scheduler::ReadReferenceClassifierPt(pt);
  ASSERT_TRUE(state.ok());
  auto c = scheduler::KvClassifier::FromState(*state, pt);
  ASSERT_TRUE(c.ok());
  const int H = 4, D = 8, cap = 40;
  for (const auto& cs : golden["cases"]) {
    const std::vector<float> k = cs["k"], v = cs["v"];
    const int T = cs["T"].get<int>();
    std::vector<uint16_t> k16(static_cast<size_t>(cap) * H * D, 0x7e00),
        v16(k16.size(), 0x7e00);  // NaN padding
    for (int h = 0; h < H; ++h) {
      for (int t = 0; t < T; ++t) {
        for (int d = 0; d < D; ++d) {
          k16[(static_cast<size_t>(t) * H + h) * D + d] =
              kernels::F32ToF16(k[(static_cast<size_t>(h) * T + t) * D + d]);
          v16[(static_cast<size_t>(t) * H + h) * D + d] =
              kernels::F32ToF16(v[(static_cast<size_t>(h) * T + t) * D + d]);
        }
      }
    }
    inference::KvView view;
    view.dtype = inference::KvDtype::kFloat16;
    view.k = k16.data(), view.v = v16.data();
    view.kv_heads = H, view.length = T, view.head_dim = D;
    view.head_stride = D, view.position_stride = static_cast<int64_t>(H) * D;
    auto got = (*c)->Logits(view);
    auto want = (*c)->Logits(inference::HostKvView(k, v, H, T, D));
    ASSERT_TRUE(got.ok() && want.ok()) << got.status();
    for (size_t i = 0; i < want->size(); ++i) {
      // fp16 inputs: relative error 2^-11 per element, through layer norm and two products.
      EXPECT_NEAR((*got)[i], (*want)[i], 0.05 * std::max(1.0f, std::fabs((*want)[i])))
          << "class " << i;
    }
  }
}

TEST(KvClassifierTest, ChainRuleTurnsPairPredictionsIntoSwitchSteps) {
  using scheduler::ChainSwitchSteps;
  EXPECT_EQ(ChainSwitchSteps({85, 170}), (std::vector<int>{85, 170}));
  EXPECT_EQ(ChainSwitchSteps({85, 0}),
            (std::vector<int>{85, 85}));  // 3 bits starts no earlier than 3 exists
  EXPECT_EQ(ChainSwitchSteps({85, -1}), (std::vector<int>{85}));  // never 3->2: stay at 3
  EXPECT_EQ(ChainSwitchSteps({-1, 0}), (std::vector<int>{}));  // never 4->3: the chain stops at 4
}

TEST(ClassifierTrainerTest, BadInputIsRefusedClearly) {
  // A pair absent from the data.
  const std::string only43 = SyntheticData("bad_pair", 20, 4, {4, 3});
  auto r = TrainPairClassifier(only43, 3, 2, Quick());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(
      r.status().message().find("no group pair_3_2 (precision pair 3 -> 2); the file has pair_4_3"),
      std::string::npos)
      << r.status();
  // Issue 17: NaN in the K/V or a diverging learning rate ended with "no epoch finished".
  {
    const std::string nan_data = SyntheticData("bad_nan", 20, 6, {4, 3}, 3);
    auto nan = TrainPairClassifier(nan_data, 4, 3, Quick());
    ASSERT_FALSE(nan.ok());
    EXPECT_NE(nan.status().message().find(nan_data + ": sample 3 (document 3) of pair 4->3 has a "
                                                     "NaN or infinite K value"),
              std::string::npos)
        << nan.status();
    TrainOptions wild = Quick();
    wild.lr = 1e30;
    auto diverged = TrainPairClassifier(only43, 4, 3, wild);
    ASSERT_FALSE(diverged.ok());
    EXPECT_NE(diverged.status().message().find("the loss diverged"), std::string::npos)
        << diverged.status();
  }
  // Missing fields and groups.
  for (const std::string object : {"pair_4_3/labels", "samples/prompt_offset", "pair_4_3"}) {
    const std::string data = SyntheticData("bad_field", 12, 5);
    {
      auto f = models::Hdf5File::Open(data, true);
      ASSERT_TRUE(f.ok());
      ASSERT_TRUE(f->Remove(object).ok());
      ASSERT_TRUE(f->Close().ok());
    }
    auto bad = TrainPairClassifier(data, 4, 3, Quick());
    ASSERT_FALSE(bad.ok()) << object;
    EXPECT_NE(bad.status().message().find(data), std::string::npos) << bad.status();
    EXPECT_NE(bad.status().message().find(object.substr(object.find('/') + 1)), std::string::npos)
        << bad.status();
  }
  // Not an HDF5 file; an HDF5 file of another kind.
  const std::string dir = testing::MakeTempDir("bad_files");
  testing::WriteFile(dir + "/x.h5", "not hdf5");
  EXPECT_NE(
      TrainPairClassifier(dir + "/x.h5", 4, 3, Quick()).status().message().find("not an HDF5 file"),
      std::string::npos);
  {
    auto f = models::Hdf5File::Create(dir + "/other.h5");
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE(f->Close().ok());
  }
  EXPECT_NE(TrainPairClassifier(dir + "/other.h5", 4, 3, Quick())
                .status()
                .message()
                .find("not a pmpd-gen-data file"),
            std::string::npos);

  // Classifier directories that do not fit: another model's dims, another pair.
  const std::string data = SyntheticData("bad_cls", 20, 6);
  TrainOptions o = Quick();
  o.epochs = 1;
  auto r43 = TrainPairClassifier(data, 4, 3, o);
  ASSERT_TRUE(r43.ok());
  const std::string out = testing::MakeTempDir("bad_cls_out");
  ASSERT_TRUE(ExportClassifiers(out, data, {*r43}, o).ok());
  scheduler::LearnedSchedulerOptions lo{out, {4, 3}, 4, 8, 255};  // the model has 4 heads of dim 8
  auto dims = scheduler::MakeLearnedScheduler(lo);
  ASSERT_FALSE(dims.ok());
  EXPECT_NE(dims.status().message().find("reads 2 KV heads of dim 4, the model has 4 of dim 8"),
            std::string::npos)
      << dims.status();
  lo = {out, {4, 3, 2}, kH, kD, 255};
  auto pairs = scheduler::MakeLearnedScheduler(lo);
  ASSERT_FALSE(pairs.ok());
  EXPECT_NE(pairs.status().message().find("has no classifier for 3->2 (it has 4->3)"),
            std::string::npos)
      << pairs.status();
  // A classifier file with wrong shapes.
  scheduler::ClassifierState broken = r43->state;
  broken["ln.weight"].shape = {5};
  broken["ln.weight"].values.resize(5);
  auto spec = scheduler::SpecFromState(broken, "broken.safetensors");
  ASSERT_FALSE(spec.ok());
  EXPECT_NE(
      spec.status().message().find("broken.safetensors: ln.weight has shape [5], expected [8]"),
      std::string::npos)
      << spec.status();
  broken.erase("query");
  EXPECT_NE(scheduler::SpecFromState(broken, "b")
                .status()
                .message()
                .find("missing classifier tensor \"query\""),
            std::string::npos);
}

}  // namespace
}  // namespace pmpd::trainer
