// pmpd-gen-data on stories260K (any-precision 2..4, float reference) and C4: the file reads back,
// labels equal a sequential recomputation, kills and shards change nothing, bad input is refused.
#include <dirent.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "base/atomic_file.h"
#include "data_gen/gen_data_job.h"
#include "data_gen/switch_labeler.h"
#include "dataset/kv_dataset.h"
#include "inference/generator.h"
#include "inference/llama_model.h"
#include "inference/metrics/rouge.h"
#include "kernels/half.h"
#include "models/chat_template.h"
#include "models/hdf5_file.h"
#include "models/text_stream.h"
#include "models/tokenizer.h"
#include "scheduler_runtime/scheduled_generation.h"
#include "tests/test_util.h"

namespace pmpd::data_gen {
namespace {

using dataset::KvDatasetReader;
using dataset::KvSample;

constexpr int kDocs = 10, kNew = 40;

class GenDataTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!testing::FileExistsForTest(testing::SharedPath("models/stories260K/config.json")) ||
        !testing::FileExistsForTest(testing::SharedPath("data/c4"))) {
      return;
    }
    model_ = new std::string(
        testing::QuantizeForTest("gendata", testing::SharedPath("models/stories260K"), 2, 4));
    whole_ = new std::string(testing::MakeTempDir("gendata_whole") + "/c4.h5");
    auto r = RunGenData(Options(*whole_));
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_EQ(r->samples, kDocs);
  }
  static void TearDownTestSuite() {
    delete model_;
    delete whole_;
    model_ = whole_ = nullptr;
  }
  void SetUp() override {
    PMPD_REQUIRE_SHARED("models/stories260K/config.json");
    PMPD_REQUIRE_SHARED("data/c4");
    ASSERT_NE(whole_, nullptr);
  }

  static GenDataOptions Options(const std::string& out) {
    GenDataOptions o;
    o.model_dir = *model_;
    o.source = testing::SharedPath("data/c4");
    o.out = out;
    o.precisions = {4, 3, 2};
    o.num_docs = kDocs;
    o.max_new_tokens = kNew;
    o.reference_model = testing::SharedPath("models/stories260K");
    o.flush_every = 3;
    o.seed = 7;
    return o;
  }
  // The flags that give Options() on the command line.
  static std::string Flags(const std::string& out) {
    return absl::StrCat("--model ", *model_, " --c4 ", testing::SharedPath("data/c4"), " --out ",
                        out, " --precisions 4,3,2 --num-docs ", kDocs, " --max-new-tokens ", kNew,
                        " --reference-model ", testing::SharedPath("models/stories260K"),
                        " --seed 7");
  }

  static std::string* model_;
  static std::string* whole_;
};
std::string* GenDataTest::model_ = nullptr;
std::string* GenDataTest::whole_ = nullptr;

std::vector<std::string> C4Texts(int n) {
  auto s = models::TextStream::Open(testing::SharedPath("data/c4"));
  EXPECT_TRUE(s.ok());
  std::vector<std::string> texts;
  std::string t;
  while (static_cast<int>(texts.size()) < n && *(*s)->Next(&t)) texts.push_back(t);
  return texts;
}

// Same header (but the shard), same samples, byte for byte.
void ExpectSameSamples(const std::string& a_path, const std::string& b_path) {
  auto a = KvDatasetReader::Open(a_path);
  auto b = KvDatasetReader::Open(b_path);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ((*a)->header().DiffIgnoringShard((*b)->header()), "");
  ASSERT_EQ((*a)->num_samples(), (*b)->num_samples());
  for (int64_t i = 0; i < (*a)->num_samples(); ++i) {
    auto x = (*a)->ReadSample(i);
    auto y = (*b)->ReadSample(i);
    ASSERT_TRUE(x.ok() && y.ok());
    EXPECT_EQ(x->doc_id, y->doc_id) << "sample " << i;
    EXPECT_EQ(x->prompt_ids, y->prompt_ids) << "sample " << i;
    EXPECT_EQ(x->reference_ids, y->reference_ids) << "sample " << i;
    ASSERT_EQ(x->pairs.size(), y->pairs.size());
    for (size_t p = 0; p < x->pairs.size(); ++p) {
      EXPECT_EQ(x->pairs[p].label, y->pairs[p].label) << "sample " << i << " pair " << p;
      EXPECT_EQ(x->pairs[p].rouge_l, y->pairs[p].rouge_l) << "sample " << i << " pair " << p;
      EXPECT_EQ(x->pairs[p].rouge_l_high, y->pairs[p].rouge_l_high);
      EXPECT_TRUE(x->pairs[p].k == y->pairs[p].k)
          << "K bytes differ: sample " << i << " pair " << p;
      EXPECT_TRUE(x->pairs[p].v == y->pairs[p].v)
          << "V bytes differ: sample " << i << " pair " << p;
    }
  }
}

TEST_F(GenDataTest, FileReadsBackAndMatchesRecomputation) {
  auto r = KvDatasetReader::Open(*whole_);
  ASSERT_TRUE(r.ok()) << r.status();
  const auto& h = (*r)->header();
  EXPECT_EQ(h.precisions, (std::vector<int64_t>{4, 3, 2}));
  EXPECT_EQ(h.candidate_steps, (std::vector<int64_t>{0, kNew / 3, 2 * kNew / 3}));
  EXPECT_EQ(h.max_prompt_tokens, 512 - kNew);  // stories260K's context minus the new tokens
  EXPECT_EQ(h.kv_heads, 4);
  EXPECT_EQ(h.head_dim, 8);
  EXPECT_EQ(h.reference, "model:" + testing::SharedPath("models/stories260K"));
  EXPECT_EQ(h.prompt_format, "text");  // no --chat-instruction
  ASSERT_EQ((*r)->pairs().size(), 2u);

  auto tok = models::Tokenizer::Load(*model_);
  auto quant = inference::LlamaModel::Load(*model_);
  auto ref = inference::LlamaModel::Load(testing::SharedPath("models/stories260K"));
  ASSERT_TRUE(tok.ok() && quant.ok() && ref.ok());
  const std::vector<std::string> texts = C4Texts(kDocs);
  auto t43 = (*r)->ReadPair(4, 3);
  ASSERT_TRUE(t43.ok()) << t43.status();
  for (int64_t i = 0; i < kDocs; ++i) {
    auto s = (*r)->ReadSample(i);
    ASSERT_TRUE(s.ok());
    EXPECT_EQ(s->doc_id, i);
    // The prompt is a prefix of the capped document of the allowed length.
    const std::vector<int> doc = (*tok)->Encode(texts[i], true);
    const int L = std::min<int>(doc.size(), 512 - kNew), T = static_cast<int>(s->prompt_ids.size());
    EXPECT_GE(T, std::max(1, std::min(32, L / 2)));
    EXPECT_LE(T, L);
    EXPECT_TRUE(std::equal(s->prompt_ids.begin(), s->prompt_ids.end(), doc.begin())) << "doc " << i;
    // The reference is the float model's greedy continuation.
    const std::vector<int> prompt(s->prompt_ids.begin(), s->prompt_ids.end());
    inference::GenerationOptions g;
    g.max_new_tokens = kNew;
    auto gen = inference::Generate(**ref, prompt, g);
    ASSERT_TRUE(gen.ok());
    EXPECT_EQ(std::vector<int>(s->reference_ids.begin(), s->reference_ids.end()), gen->new_ids)
        << "doc " << i;
    // K/V: the prefill at each pair's high precision, stored as float16 token-major.
    for (size_t p = 0; p < 2; ++p) {
      ASSERT_TRUE((*quant)->SetPrecision(static_cast<int>(h.precisions[p])).ok());
      (*quant)->Reset();
      std::vector<float> logits, k, v;
      ASSERT_TRUE((*quant)->Forward(prompt, false, &logits).ok());
      (*quant)->CopyLastLayerKv(&k, &v);
      ASSERT_EQ(k.size(), s->pairs[p].k.size());
      int worst = 0;
      for (int head = 0; head < 4; ++head) {
        for (int t = 0; t < T; ++t) {
          for (int d = 0; d < 8; ++d) {
            const float want = k[(head * T + t) * 8 + d];
            const float got = kernels::F16ToF32(s->pairs[p].k[(t * 4 + head) * 8 + d]);
            // Half precision keeps 11 significant bits: relative error <= 2^-11 (plus subnormals).
            if (std::fabs(got - want) > std::ldexp(std::fabs(want), -11) + 6e-8) ++worst;
          }
        }
      }
      EXPECT_EQ(worst, 0) << "doc " << i << " pair " << p
                          << ": K values off by more than float16 rounding";
    }
    // switch_steps mirror labels.
    const int label = t43->labels[i];
    EXPECT_EQ(t43->switch_steps[i], label == 3 ? -1 : static_cast<int>(h.candidate_steps[label]));
  }
}

// Acceptance 2: every branch rerun on its own (prefill, decode at hi, switch, decode at lo with the
// scheduler path) gives the stored Rouge-L values, and the rule gives the stored labels.
TEST_F(GenDataTest, LabelsEqualSequentialRecomputation) {
  auto r = KvDatasetReader::Open(*whole_);
  ASSERT_TRUE(r.ok());
  auto tok = models::Tokenizer::Load(*model_);
  auto quant = inference::LlamaModel::Load(*model_);
  ASSERT_TRUE(tok.ok() && quant.ok());
  int labels_checked = 0;
  std::set<int> classes_seen;
  for (const auto& [hi, lo] : (*r)->pairs()) {
    auto t = (*r)->ReadPair(hi, lo);
    ASSERT_TRUE(t.ok());
    for (int64_t i = 0; i < (*r)->num_samples(); ++i) {
      auto s = (*r)->ReadSample(i);
      ASSERT_TRUE(s.ok());
      const std::string ref_text =
          (*tok)->Decode(std::vector<int>(s->reference_ids.begin(), s->reference_ids.end()));
      PairLabelOptions o;
      o.high = static_cast<int>(hi);
      o.low = static_cast<int>(lo);
      o.candidate_steps = {0, kNew / 3, 2 * kNew / 3};
      o.max_new_tokens = kNew;
      auto seq = LabelPairSequential(**quant, **tok,
                                     std::vector<int>(s->prompt_ids.begin(), s->prompt_ids.end()),
                                     ref_text, o);
      ASSERT_TRUE(seq.ok()) << seq.status();
      const double high = metrics::RougeL(ref_text, (*tok)->Decode(seq->high_ids)).fmeasure;
      EXPECT_EQ(high, t->rouge_l_high[i]) << "pair " << hi << "->" << lo << " sample " << i;
      int label = 3;
      for (int c = 2; c >= 0; --c) {
        const double rc = metrics::RougeL(ref_text, (*tok)->Decode(seq->branch_ids[c])).fmeasure;
        EXPECT_EQ(rc, t->rouge_l[i * 3 + c])
            << "pair " << hi << "->" << lo << " sample " << i << " branch " << c;
        if (std::round(rc * 1000) >= std::round(high * 1000)) label = c;
      }
      EXPECT_EQ(label, t->labels[i]) << "pair " << hi << "->" << lo << " sample " << i;
      classes_seen.insert(t->labels[i]);
      ++labels_checked;
    }
  }
  EXPECT_EQ(labels_checked, 2 * kDocs);
  EXPECT_GE(classes_seen.size(), 2u)
      << "every label equal: the check would not tell branches apart";
}

// Labelling on sequence slots (--batch > 1): several prompts' reference, all-high and branch runs
// decode as shared steps, each branch copying its all-high run's cache. The CPU engine's batched
// rows are single steps, so the file must equal the branch-cache path's byte for byte; with 2
// slots runs wait for a free slot, with 8 several prompts share every step.
TEST_F(GenDataTest, SlotLabellingEqualsBranchCacheLabelling) {
  for (int batch : {2, 8}) {
    const std::string out = testing::MakeTempDir("gendata_slots") + "/c4.h5";
    GenDataOptions o = Options(out);
    o.batch = batch;
    auto r = RunGenData(o);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->batch, batch);
    ExpectSameSamples(*whole_, out);
  }
}

// LabelOnSlots run by run against LabelPairSequential and GreedyGeneration (every output's ids,
// the prefill K/V, Rouge-L and labels): candidates 0 and 1 (one shared branch), switch steps the
// all-high output may not reach (it stopped: the branch is the all-high output), a reference at the
// lowest precision (its own run, no pair's all-high run); 2 slots (runs wait) and 5.
TEST_F(GenDataTest, LabelOnSlotsEqualsSequentialRunByRun) {
  PMPD_REQUIRE_SHARED("data/text/tinystories_train_head2MiB.txt");
  // stories260K never emits EOS (2): it starts the next story with BOS (1). A copy of the model
  // that also stops at BOS ends some all-high outputs before the late switch steps.
  const std::string dir = testing::MakeTempDir("slots_eos");
  std::filesystem::copy(
      *model_, dir,
      std::filesystem::copy_options::recursive | std::filesystem::copy_options::overwrite_existing);
  auto config = nlohmann::json::parse(testing::ReadFile(dir + "/config.json"));
  config["eos_token_id"] = {2, 1};
  testing::WriteFile(dir + "/config.json", config.dump());
  auto tok = models::Tokenizer::Load(dir);
  auto model = inference::LlamaModel::Load(dir);
  ASSERT_TRUE(tok.ok() && model.ok());
  inference::LlamaModel& m = **model;
  m.CacheDequantizedWeights();
  // Prompts: TinyStories stories without their last 20 tokens, so the continuations tend to end
  // the story early; and a C4 document's first 24 tokens.
  std::vector<SlotLabelRequest> requests;
  const std::vector<std::string> stories = absl::StrSplit(
      testing::ReadFile(testing::SharedPath("data/text/tinystories_train_head2MiB.txt")),
      "<|endoftext|>");
  for (int i = 0; i < 3; ++i) {
    SlotLabelRequest r;
    r.prompt = (*tok)->Encode(std::string(absl::StripAsciiWhitespace(stories[i])), true);
    r.prompt.resize(std::clamp<int>(static_cast<int>(r.prompt.size()) - 20, 8, 200));
    requests.push_back(r);
  }
  {
    SlotLabelRequest r;
    r.prompt = (*tok)->Encode(C4Texts(1)[0], true);
    r.prompt.resize(std::min<size_t>(r.prompt.size(), 24));
    requests.push_back(r);
  }
  SlotLabelOptions so;
  so.precisions = {4, 3, 2};
  so.candidate_steps = {0, 1, 60, 150};
  so.max_new_tokens = 160;
  so.reference_precision = 2;
  EXPECT_EQ(LabelOnSlots(m, **tok, requests, so).status().code(),
            absl::StatusCode::kFailedPrecondition);  // one slot
  int ended_before_last_switch = 0;
  for (int batch : {2, 5}) {
    ASSERT_TRUE(m.SetMaxBatch(batch).ok());
    auto got = LabelOnSlots(m, **tok, requests, so);
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_EQ(got->size(), requests.size());
    for (size_t q = 0; q < requests.size(); ++q) {
      auto ref = scheduler::GreedyGeneration(m, requests[q].prompt, so.max_new_tokens, 2);
      ASSERT_TRUE(ref.ok());
      EXPECT_EQ((*got)[q].reference_ids, ref->new_ids) << "prompt " << q;
      ASSERT_EQ((*got)[q].pairs.size(), 2u);
      for (int p = 0; p < 2; ++p) {
        PairLabelOptions po;
        po.high = so.precisions[p];
        po.low = so.precisions[p + 1];
        po.candidate_steps = so.candidate_steps;
        po.max_new_tokens = so.max_new_tokens;
        auto want = LabelPairSequential(m, **tok, requests[q].prompt,
                                        DecodeWithoutEos(**tok, ref->new_ids), po);
        ASSERT_TRUE(want.ok()) << want.status();
        const PairLabel& g = (*got)[q].pairs[p];
        const std::string at = absl::StrCat("batch ", batch, " prompt ", q, " pair ", p);
        EXPECT_EQ(g.high_ids, want->high_ids) << at;
        EXPECT_EQ(g.branch_ids, want->branch_ids) << at;
        EXPECT_EQ(g.rouge_l, want->rouge_l) << at;
        EXPECT_EQ(g.rouge_l_high, want->rouge_l_high) << at;
        EXPECT_EQ(g.label, want->label) << at;
        EXPECT_TRUE(g.k == want->k && g.v == want->v) << at;
        ended_before_last_switch += want->high_ids.size() <= 150;
      }
    }
  }
  EXPECT_GT(ended_before_last_switch, 0)
      << "no all-high output ended before step 150: the never-switching branch went untested";
}

// On slots (3 of them; windows of flush_every = 3 prompts), stopped after 4 samples (mid-window:
// the window holding the 4th is labelled whole up to it) and resumed with another batch: the
// uninterrupted file, 4 + 6 samples.
TEST_F(GenDataTest, SlotLabellingStopsAndResumesAcrossWindows) {
  const std::string out = testing::MakeTempDir("gendata_slots_stop") + "/c4.h5";
  GenDataOptions o = Options(out);
  o.batch = 3;
  o.stop_after = 4;
  auto first = RunGenData(o);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(first->stopped_early);
  EXPECT_EQ(first->computed, 4);
  o.stop_after = 0;
  o.batch = 2;
  auto rest = RunGenData(o);
  ASSERT_TRUE(rest.ok()) << rest.status();
  EXPECT_EQ(rest->resumed, 4);
  EXPECT_EQ(rest->computed, kDocs - 4);
  ExpectSameSamples(*whole_, out);
}

// Without --reference-model the reference run is also the first pair's all-high run (both at the
// parent's 4 bits): on slots one run serves both; equal to the sequential path's file.
TEST_F(GenDataTest, SlotLabellingWithoutReferenceModelEqualsSequential) {
  const std::string dir = testing::MakeTempDir("gendata_slots_noref");
  GenDataOptions seq = Options(dir + "/seq.h5");
  seq.reference_model.clear();
  seq.batched_branches = false;
  seq.num_docs = 6;
  GenDataOptions slots = seq;
  slots.out = dir + "/slots.h5";
  slots.batched_branches = true;
  slots.batch = 3;
  auto a = RunGenData(seq);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->batch, 1);
  auto b = RunGenData(slots);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->batch, 3);
  ExpectSameSamples(dir + "/seq.h5", dir + "/slots.h5");
}

// --label-metric excess_nll, checked against an independent computation: the stored costs come
// from decode steps of the engine (LabelPairTeacherForced), the oracle here scores each branch with
// one all-positions forward (LlamaModel::Forward) as bench/switch_cost_probe.cc does. Prompts,
// references and K/V equal the Rouge-L run's (only the labels differ), and a run of the other
// metric into the same file is refused.
TEST_F(GenDataTest, TeacherForcedCostsEqualAllPositionsForward) {
  const std::string out = testing::MakeTempDir("gendata_nll") + "/c4.h5";
  GenDataOptions o = Options(out);
  o.label_metric = dataset::kLabelExcessNll;
  auto run = RunGenData(o);
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->label_metric, "excess_nll");
  ASSERT_EQ(run->median_excess_nll.size(), 2u);
  auto r = KvDatasetReader::Open(out);
  auto rouge = KvDatasetReader::Open(*whole_);
  ASSERT_TRUE(r.ok() && rouge.ok()) << r.status();
  EXPECT_EQ((*r)->header().label_metric, "excess_nll");
  EXPECT_EQ((*rouge)->header().label_metric, "rouge_l");
  auto quant = inference::LlamaModel::Load(*model_);
  ASSERT_TRUE(quant.ok());
  inference::LlamaModel& m = **quant;
  const int vocab = static_cast<int>(m.config().vocab_size);
  // Summed -log p over rows [0, rows) of `logits`, row j predicting ids[first + j].
  auto sum_nll = [&](const std::vector<float>& logits, const std::vector<int>& ids, int first,
                     int rows) {
    double sum = 0;
    for (int j = 0; j < rows; ++j) {
      sum += TokenNll(absl::MakeConstSpan(logits).subspan(static_cast<size_t>(j) * vocab, vocab),
                      ids[first + j]);
    }
    return sum;
  };
  double worst = 0;
  int positive = 0, costs = 0;
  std::set<int> classes_at_median;
  for (size_t p = 0; p < 2; ++p) {
    const auto [hi, lo] = (*r)->pairs()[p];
    auto t = (*r)->ReadPair(hi, lo);
    ASSERT_TRUE(t.ok()) << t.status();
    EXPECT_TRUE(t->rouge_l.empty());
    for (int64_t i = 0; i < kDocs; ++i) {
      auto s = (*r)->ReadSample(i);
      auto sr = (*rouge)->ReadSample(i);
      ASSERT_TRUE(s.ok() && sr.ok());
      EXPECT_EQ(s->prompt_ids, sr->prompt_ids);
      EXPECT_EQ(s->reference_ids, sr->reference_ids);
      EXPECT_TRUE(s->pairs[p].k == sr->pairs[p].k && s->pairs[p].v == sr->pairs[p].v)
          << "K/V bytes differ from the Rouge-L run's: sample " << i << " pair " << p;
      const std::vector<int> prompt(s->prompt_ids.begin(), s->prompt_ids.end());
      const std::vector<int> ref(s->reference_ids.begin(), s->reference_ids.end());
      const int n = static_cast<int>(ref.size()), T = static_cast<int>(prompt.size());
      ASSERT_GE(n, 2);
      // Staying high: one forward of prompt + R[..n-2]; row T - 1 + t predicts R[t].
      std::vector<int> seq = prompt;
      seq.insert(seq.end(), ref.begin(), ref.end() - 1);
      std::vector<float> logits;
      m.Reset();
      ASSERT_TRUE(m.SetPrecision(static_cast<int>(hi)).ok());
      ASSERT_TRUE(m.Forward(seq, true, &logits).ok());
      std::vector<double> high(n, 0.0);
      for (int tok = 1; tok < n; ++tok) {
        high[tok] = TokenNll(
            absl::MakeConstSpan(logits).subspan(static_cast<size_t>(T - 1 + tok) * vocab, vocab),
            ref[tok]);
      }
      double high_sum = 0;
      for (int tok = 1; tok < n; ++tok) high_sum += high[tok];
      EXPECT_NEAR(t->nll_high[i], high_sum / (n - 1), 1e-4 * (1 + high_sum / (n - 1)));
      std::vector<double> want;
      for (int64_t step : (*r)->header().candidate_steps) {
        const int k = std::max<int>(1, static_cast<int>(step));
        if (k >= n) {
          want.push_back(0);
          continue;
        }
        std::vector<int> head = prompt;
        head.insert(head.end(), ref.begin(), ref.begin() + (k - 1));
        m.Reset();
        ASSERT_TRUE(m.SetPrecision(static_cast<int>(hi)).ok());
        ASSERT_TRUE(m.Forward(head, false, &logits).ok());
        ASSERT_TRUE(m.SetPrecision(static_cast<int>(lo)).ok());
        const std::vector<int> rest(ref.begin() + (k - 1), ref.end() - 1);
        ASSERT_TRUE(m.Forward(rest, true, &logits).ok());
        double kept = 0;
        for (int tok = k; tok < n; ++tok) kept += high[tok];
        want.push_back((sum_nll(logits, ref, k, n - k) - kept) / (n - 1));
      }
      ASSERT_EQ(want.size(), 3u);
      for (size_t c = 0; c < want.size(); ++c) {
        const double got = t->excess_nll[i * 3 + c];
        worst = std::max(worst, std::fabs(got - want[c]));
        EXPECT_NEAR(got, want[c], 2e-4)
            << "pair " << hi << "->" << lo << " sample " << i << " candidate " << c;
        positive += want[c] > 0;
        ++costs;
      }
      // The stored label: the earliest candidate that costs nothing (tolerance 0).
      int label = 3;
      for (int c = 2; c >= 0; --c) {
        if (t->excess_nll[i * 3 + c] <= 1e-12) label = c;
      }
      EXPECT_EQ(t->labels[i], label) << "pair " << hi << "->" << lo << " sample " << i;
      classes_at_median.insert(dataset::CostSwitchLabel(want, run->median_excess_nll[p][1]));
    }
  }
  std::printf("largest |stored - all-positions| excess NLL: %.2e nats/token\n", worst);
  // Lower precision costs likelihood on most branches (else the comparison proves little), and a
  // tolerance at the median makes more than one class.
  EXPECT_GT(positive, costs / 2);
  EXPECT_GE(classes_at_median.size(), 2u);
  // Bad costs never reach a file, and a reference id outside the vocabulary is an error, not an
  // abort in the log-likelihood.
  {
    auto w = dataset::KvDatasetWriter::Create(testing::MakeTempDir("gendata_nll_nan") + "/x.h5",
                                              (*r)->header());
    ASSERT_TRUE(w.ok());
    auto s = (*r)->ReadSample(0);
    ASSERT_TRUE(s.ok());
    s->pairs[1].excess_nll[2] = std::nan("");
    const absl::Status st = (*w)->Append(*s);
    EXPECT_NE(st.message().find("NaN or infinite excess_nll"), std::string::npos) << st;
    PairLabelOptions po;
    po.high = 4;
    po.low = 3;
    po.candidate_steps = {0, 5};
    po.max_new_tokens = 8;
    auto bad =
        LabelPairTeacherForced(m, std::vector<int>{1, 5, 9}, std::vector<int>{3, vocab, 4}, po);
    ASSERT_FALSE(bad.ok());
    EXPECT_NE(bad.status().message().find("outside the vocabulary"), std::string::npos)
        << bad.status();
  }
  // The other metric into the same file: refused, naming the attribute.
  GenDataOptions other = Options(out);
  auto refused = RunGenData(other);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("label_metric"), std::string::npos) << refused.status();
}

// The tables of docs/gen-data-format.md describe the files: every documented dataset exists with
// its dtype and rank (the rows marked "`excess_nll` files:" in a file of that metric, the others in
// the Rouge-L file), every root attribute exists, and neither file holds an undocumented dataset.
TEST_F(GenDataTest, LayoutDocMatchesFile) {
  std::ifstream doc(testing::SourcePath("docs/gen-data-format.md"));
  ASSERT_TRUE(doc.good());
  GenDataOptions nll_options = Options(testing::MakeTempDir("gendata_layout_nll") + "/c4.h5");
  nll_options.num_docs = 2;
  nll_options.label_metric = dataset::kLabelExcessNll;
  ASSERT_TRUE(RunGenData(nll_options).ok());
  auto rouge_file = models::Hdf5File::Open(*whole_);
  auto nll_file = models::Hdf5File::Open(nll_options.out);
  ASSERT_TRUE(rouge_file.ok() && nll_file.ok());
  std::set<std::string> documented;
  int attrs = 0, datasets = 0;
  std::string line;
  const std::map<std::string, models::H5Type> types = {{"int32", models::H5Type::kInt32},
                                                       {"int64", models::H5Type::kInt64},
                                                       {"float16", models::H5Type::kFloat16},
                                                       {"float64", models::H5Type::kFloat64}};
  while (std::getline(doc, line)) {
    if (line.rfind("| ", 0) != 0 || line.rfind("|---", 0) == 0) continue;
    std::vector<std::string> cells = absl::StrSplit(line, '|');
    for (auto& c : cells) c = std::string(absl::StripAsciiWhitespace(c));
    if (cells.size() < 4 || cells[1] == "attribute" || cells[1] == "path") continue;
    if (cells.size() == 5) {  // | attribute | type | meaning |
      for (auto* f : {&*rouge_file, &*nll_file}) {
        EXPECT_TRUE(f->HasAttribute("/", cells[1]))
            << "documented root attribute missing: " << cells[1];
      }
      ++attrs;
    } else if (cells.size() == 6) {  // | path | dtype | shape | meaning |
      const bool nll_only = absl::StartsWith(cells[4], "`excess_nll` files:");
      const bool rouge_only = absl::StartsWith(cells[4], "`rouge_l` files:");
      models::Hdf5File* f = nll_only ? &*nll_file : &*rouge_file;
      for (const std::string pair : {"pair_4_3", "pair_3_2"}) {
        const std::string path = std::regex_replace(cells[1], std::regex("pair_HI_LO"), pair);
        documented.insert(path);
        if (rouge_only) {
          EXPECT_FALSE(nll_file->Exists(path)) << path << " in an excess_nll file";
        }
        if (nll_only) {
          EXPECT_FALSE(rouge_file->Exists(path)) << path << " in a rouge_l file";
        }
        auto shape = f->Shape(path);
        auto type = f->Type(path);
        ASSERT_TRUE(shape.ok() && type.ok()) << "documented dataset missing: " << path;
        EXPECT_EQ(*type, types.at(cells[2])) << path;
        const size_t rank = std::count(cells[3].begin(), cells[3].end(), ',') + 1;
        EXPECT_EQ(shape->size(), rank) << path << " documented as " << cells[3];
      }
      ++datasets;
    }
  }
  EXPECT_EQ(attrs, 22);  // 20 + prompt_format (--chat-instruction) + label_metric
  EXPECT_EQ(datasets, 18);
  for (auto* f : {&*rouge_file, &*nll_file}) {
    for (const std::string group : {"samples", "pair_4_3", "pair_3_2"}) {
      auto children = f->ListChildren(group);
      ASSERT_TRUE(children.ok());
      for (const std::string& c : *children)
        EXPECT_TRUE(documented.count(group + "/" + c)) << "undocumented: " << c;
    }
    auto root = f->ListChildren("/");
    ASSERT_TRUE(root.ok());
    EXPECT_EQ(*root, (std::vector<std::string>{"pair_3_2", "pair_4_3", "samples"}));
  }
}

// The file is readable from h5py as the document shows (Debian's python3-h5py; CI installs it).
TEST_F(GenDataTest, H5pyReadsTheFile) {
  if (std::system("/usr/bin/python3 -c 'import h5py' >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "/usr/bin/python3 has no h5py (apt-get install python3-h5py)";
  }
  const std::string out = testing::MakeTempDir("gendata_h5py") + "/read.json";
  const std::string cmd =
      absl::StrCat("/usr/bin/python3 ", testing::SourcePath("scripts/read_gen_data.py"), " ",
                   *whole_, " --sample 3 > ", out);
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  const auto j = nlohmann::json::parse(testing::ReadFile(out));
  auto r = KvDatasetReader::Open(*whole_);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(j["samples"].get<int64_t>(), kDocs);
  EXPECT_EQ(j["precisions"].get<std::vector<int64_t>>(), (std::vector<int64_t>{4, 3, 2}));
  EXPECT_EQ(j["model_fingerprint"].get<std::string>(), (*r)->header().model_fingerprint);
  auto t = (*r)->ReadPair(4, 3);
  std::vector<float> k, v;
  ASSERT_TRUE((*r)->ReadKv(*t, 3, &k, &v).ok());
  const auto& pk = j["pair_4_3"]["k"];  // [H, T, D] as nested lists
  ASSERT_EQ(pk.size(), 4u);
  const int T = t->prompt_lengths[3];
  ASSERT_EQ(pk[0].size(), static_cast<size_t>(T));
  for (int head = 0; head < 4; ++head) {
    for (int tok = 0; tok < T; ++tok) {
      for (int d = 0; d < 8; ++d)
        ASSERT_EQ(pk[head][tok][d].get<float>(), k[(head * T + tok) * 8 + d]);
    }
  }
  EXPECT_EQ(j["pair_4_3"]["label"].get<int>(), t->labels[3]);
  EXPECT_EQ(j["pair_4_3"]["rouge_l"].get<std::vector<double>>(),
            std::vector<double>(t->rouge_l.begin() + 9, t->rouge_l.begin() + 12));
}

// Acceptance 3: kill -9 twice mid-run, rerun; the file equals the uninterrupted run.
TEST_F(GenDataTest, KilledTwiceAndResumedEqualsUninterrupted) {
  const std::string dir = testing::MakeTempDir("gendata_kill");
  const std::string out = dir + "/c4.h5", partial = out + ".partial";
  const std::string cmd = absl::StrCat(testing::BinaryPath("cli/pmpd-gen-data"), " ", Flags(out),
                                       " --flush-every 1 2>/dev/null >/dev/null");
  auto segments = [&] {
    int n = 0;
    if (DIR* d = opendir(partial.c_str())) {
      while (dirent* e = readdir(d))
        n += std::string(e->d_name).rfind("seg_", 0) == 0 && !strstr(e->d_name, ".tmp.");
      closedir(d);
    }
    return n;
  };
  // Each round lets the run add at least two segments (one sample each) beyond what is on disk,
  // then kills it wherever it is (often inside a segment write or a sample).
  int on_disk = 0;
  for (int round = 0; round < 2; ++round) {
    const int target = on_disk + 2;
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      setpgid(0, 0);
      execl("/bin/sh", "sh", "-c", ("exec " + cmd).c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    const auto t0 = std::chrono::steady_clock::now();
    while (segments() < target && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(600))
      usleep(5000);
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status))
        << "the run ended before it could be killed (segments: " << segments() << ")";
    EXPECT_FALSE(testing::FileExistsForTest(out));
    on_disk = segments();
    ASSERT_GE(on_disk, target);
    std::fprintf(stderr, "killed with %d segments on disk\n", on_disk);
  }
  const testing::RunResult r =
      testing::RunBinary("cli/pmpd-gen-data", Flags(out) + " --flush-every 1 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out.substr(r.out.rfind('{')));
  EXPECT_EQ(j["resumed"].get<int>(), on_disk);
  EXPECT_EQ(j["resumed"].get<int>() + j["computed"].get<int>(), kDocs);
  EXPECT_FALSE(testing::FileExistsForTest(partial));
  ExpectSameSamples(*whole_, out);
  // A rerun of a finished job does nothing and says so.
  const testing::RunResult again = testing::RunBinary("cli/pmpd-gen-data", Flags(out));
  EXPECT_EQ(again.exit_code, 0);
  EXPECT_NE(again.err.find("already complete"), std::string::npos) << again.err;
}

// kill -9 inside each of gen-data's file commits (base/atomic_file.h's PMPD_CRASH_AT): a segment,
// the final file, a merge over nothing and over a previous merge. Each leaves the previous state
// (no file, or the previous merge byte for byte) and a rerun finishes the job from the segments.
TEST_F(GenDataTest, KilledInsideEachFileCommitLeavesThePreviousOrTheCompleteFile) {
  const std::string dir = testing::MakeTempDir("gendata_commits");
  const std::string out = dir + "/c4.h5", partial = out + ".partial";
  const std::string flags = Flags(out) + " --flush-every 3";
  auto listing = [](const std::string& d) {
    int segs = 0, temps = 0;
    if (DIR* h = opendir(d.c_str())) {
      while (dirent* e = readdir(h)) {
        const std::string n = e->d_name;
        temps += base::IsAtomicFileTemporary(n);
        segs += n.rfind("seg_", 0) == 0 && absl::EndsWith(n, ".h5");
      }
      closedir(h);
    }
    return std::make_pair(segs, temps);
  };
  // The second segment, killed when complete but not yet renamed into place.
  testing::RunBinaryKilledAt("h5:written:2", "cli/pmpd-gen-data", flags);
  EXPECT_FALSE(testing::FileExistsForTest(out));
  EXPECT_EQ(listing(partial), std::make_pair(1, 1))
      << "one segment in place, the killed one's temporary beside it";
  // The final file, killed at the same point: every segment is in place, the output is not.
  testing::RunBinaryKilledAt("/c4.h5:written", "cli/pmpd-gen-data", flags);
  EXPECT_FALSE(testing::FileExistsForTest(out));
  EXPECT_EQ(listing(partial).first, (kDocs + 2) / 3);
  EXPECT_EQ(listing(dir).second, 1) << "the final file's temporary";
  const std::string small =
      dir + "/small.h5";  // one segment (3 documents), kept for the merges below
  testing::WriteFile(small, testing::ReadFile(partial + "/seg_000000000_000000002.h5"));
  // The rerun joins the segments it finds and cleans up.
  const testing::RunResult r = testing::RunBinary("cli/pmpd-gen-data", flags + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out.substr(r.out.rfind('{')));
  EXPECT_EQ(j["resumed"].get<int>(), kDocs);
  EXPECT_EQ(j["computed"].get<int>(), 0);
  EXPECT_EQ(j["batch"].get<int>(), 1);  // the CPU's default: one prompt at a time
  EXPECT_GT(j["peak_host_bytes"].get<int64_t>(), 1 << 20);
  EXPECT_EQ(j["engine_device_bytes"].get<int64_t>(), 0);  // host engines
  EXPECT_FALSE(testing::FileExistsForTest(partial));
  EXPECT_EQ(listing(dir).second, 0) << "the killed final file's temporary is gone";
  ExpectSameSamples(*whole_, out);
  // merge: killed with no previous output, then over a complete previous one (3 documents) while
  // writing the 10-document one.
  const std::string merged = dir + "/merged.h5";
  testing::RunBinaryKilledAt("/merged.h5:written", "cli/pmpd-gen-data",
                             "merge --out " + merged + " " + out);
  EXPECT_FALSE(testing::FileExistsForTest(merged));
  const testing::RunResult m =
      testing::RunBinary("cli/pmpd-gen-data", "merge --out " + merged + " " + small);
  ASSERT_EQ(m.exit_code, 0) << m.err;
  const std::string before = testing::ReadFile(merged);
  testing::RunBinaryKilledAt("/merged.h5:written", "cli/pmpd-gen-data",
                             "merge --out " + merged + " " + out);
  EXPECT_EQ(testing::ReadFile(merged), before) << "the previous merge, byte for byte";
  testing::RunBinaryKilledAt("/merged.h5:renamed", "cli/pmpd-gen-data",
                             "merge --out " + merged + " " + out);
  ExpectSameSamples(*whole_, merged);
}

// Acceptance 4: shards 0/2 and 1/2 merged equal the unsharded run.
TEST_F(GenDataTest, TwoShardsMergedEqualUnsharded) {
  const std::string dir = testing::MakeTempDir("gendata_shards");
  std::vector<std::string> parts;
  for (int i = 0; i < 2; ++i) {
    GenDataOptions o = Options(absl::StrCat(dir, "/part", i, ".h5"));
    o.shard_index = i;
    o.shard_count = 2;
    auto r = RunGenData(o);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->samples, kDocs / 2);
    parts.push_back(o.out);
  }
  // Given in reverse order on purpose: merge orders by document.
  ASSERT_TRUE(MergeGenDataShards({parts[1], parts[0]}, dir + "/merged.h5").ok());
  ExpectSameSamples(*whole_, dir + "/merged.h5");
  auto merged = KvDatasetReader::Open(dir + "/merged.h5");
  EXPECT_EQ((*merged)->header().shard, "0/1");

  auto missing = MergeGenDataShards({parts[0]}, dir + "/bad.h5");
  EXPECT_NE(missing.message().find("shards 1 of 2 are missing"), std::string::npos) << missing;
  auto twice = MergeGenDataShards({parts[0], parts[0]}, dir + "/bad.h5");
  EXPECT_NE(twice.message().find("given twice"), std::string::npos) << twice;
  auto other = MergeGenDataShards({parts[0], *whole_}, dir + "/bad.h5");
  EXPECT_FALSE(other.ok());
  EXPECT_FALSE(testing::FileExistsForTest(dir + "/bad.h5"));
}

TEST_F(GenDataTest, StopAfterThenResumeEqualsUninterrupted) {
  const std::string out = testing::MakeTempDir("gendata_stop") + "/c4.h5";
  GenDataOptions o = Options(out);
  o.stop_after = 4;
  auto first = RunGenData(o);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(first->stopped_early);
  EXPECT_FALSE(testing::FileExistsForTest(out));
  // Another configuration may not append to the partial run ...
  GenDataOptions other = o;
  other.seed = 8;
  auto refused = RunGenData(other);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("another configuration (seed: 8 vs 7)"),
            std::string::npos)
      << refused.status();
  o.stop_after = 0;
  auto rest = RunGenData(o);
  ASSERT_TRUE(rest.ok()) << rest.status();
  EXPECT_EQ(rest->resumed, 4);
  EXPECT_EQ(rest->computed, kDocs - 4);
  ExpectSameSamples(*whole_, out);
  // ... nor to a finished file.
  other.candidate_steps = {0, 5};
  other.seed = 7;
  auto refused2 = RunGenData(other);
  EXPECT_NE(refused2.status().message().find(
                "another configuration (candidate_steps: \"0,5\" vs \"0,13,26\")"),
            std::string::npos)
      << refused2.status();
}

// A Vicuna chat template in the Hugging Face tokenizer_config.json form, given to stories260K
// (whose sentencepiece tokenizer has none) so that --chat-template auto has one to recognise.
constexpr char kVicunaTokenizerConfig[] = R"({"bos_token": "<s>", "eos_token": "</s>",
 "chat_template": "{% for m in messages %}{% if m['role'] == 'system' %}{{ m['content'] + ' ' }}{% elif m['role'] == 'user' %}{{ 'USER: ' + m['content'] + ' ' }}{% else %}{{ 'ASSISTANT: ' + m['content'] + eos_token }}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"})";

// --chat-instruction: every prompt is the template around "<instruction>\n\n<document prefix>"
// within the cap, the file records the format, and a run with another instruction (or none) may
// not append to it. A file from before prompt_format existed reads as "text".
TEST(GenDataChatTest, PromptsAreTheTemplateAroundInstructionAndPrefix) {
  PMPD_REQUIRE_SHARED("models/stories260K/config.json");
  PMPD_REQUIRE_SHARED("data/c4");
  const std::string model =
      testing::QuantizeForTest("gendata_chat", testing::SharedPath("models/stories260K"), 2, 4);
  testing::WriteFile(model + "/tokenizer_config.json", kVicunaTokenizerConfig);
  const std::string dir = testing::MakeTempDir("gendata_chat");
  constexpr int kChatDocs = 4, kCap = 160;
  const std::string instruction = "Summarize the following text.";
  auto flags = [&](const std::string& out, const std::string& chat) {
    return absl::StrCat("--model ", model, " --c4 ", testing::SharedPath("data/c4"), " --out ", out,
                        " --precisions 4,3,2 --num-docs ", kChatDocs,
                        " --max-new-tokens 12 --max-prompt-tokens ", kCap, " ", chat);
  };
  const std::string chat_flags = "--chat-instruction '" + instruction + "' --chat-template vicuna";
  const std::string out = dir + "/chat.h5";
  const testing::RunResult run = testing::RunBinary("cli/pmpd-gen-data", flags(out, chat_flags));
  ASSERT_EQ(run.exit_code, 0) << run.err;

  auto r = KvDatasetReader::Open(out);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ((*r)->header().prompt_format, "chat:vicuna:" + instruction);
  EXPECT_EQ((*r)->header().max_prompt_tokens, kCap);
  ASSERT_EQ((*r)->num_samples(), kChatDocs);
  auto tok = models::Tokenizer::Load(model);
  ASSERT_TRUE(tok.ok()) << tok.status();
  const std::string head = absl::StrCat(models::ChatTemplate::FromName("vicuna")->default_system(),
                                        " USER: ", instruction, "\n\n");
  const std::vector<std::string> texts = C4Texts(kChatDocs);
  for (int64_t i = 0; i < kChatDocs; ++i) {
    auto s = (*r)->ReadSample(i);
    ASSERT_TRUE(s.ok()) << s.status();
    EXPECT_LE(s->prompt_ids.size(), static_cast<size_t>(kCap)) << "sample " << i;
    const std::string text =
        (*tok)->Decode(std::vector<int>(s->prompt_ids.begin(), s->prompt_ids.end()));
    ASSERT_TRUE(absl::StartsWith(text, head)) << "sample " << i << ": " << text;
    ASSERT_TRUE(absl::EndsWith(text, " ASSISTANT:")) << "sample " << i << ": " << text;
    // Between the two: a non-empty prefix of the document (as the tokenizer spells it).
    const std::string prefix =
        text.substr(head.size(), text.size() - head.size() - std::string(" ASSISTANT:").size());
    const std::string doc = (*tok)->Decode((*tok)->Encode(texts[i], false));
    EXPECT_FALSE(prefix.empty()) << "sample " << i;
    EXPECT_TRUE(absl::StartsWith(doc, prefix)) << "sample " << i << ": " << prefix;
  }

  // Another instruction, the model's own template (recognised as vicuna) or no instruction at all
  // may not append to the finished file, nor to a partial run.
  const testing::RunResult other = testing::RunBinary(
      "cli/pmpd-gen-data", flags(out, "--chat-instruction 'Translate the following text.'"));
  const std::string recorded = "\"chat:vicuna:" + instruction + "\")";
  testing::ExpectCleanFailure(
      other, "pmpd-gen-data",
      "another configuration (prompt_format: \"chat:vicuna:Translate the following text.\" vs " +
          recorded);
  const testing::RunResult text_run = testing::RunBinary("cli/pmpd-gen-data", flags(out, ""));
  testing::ExpectCleanFailure(text_run, "pmpd-gen-data",
                              "another configuration (prompt_format: \"text\" vs " + recorded);
  const std::string partial = dir + "/partial.h5";
  ASSERT_EQ(testing::RunBinary("cli/pmpd-gen-data", flags(partial, chat_flags) + " --stop-after 1")
                .exit_code,
            0);
  const testing::RunResult resumed = testing::RunBinary(
      "cli/pmpd-gen-data", flags(partial, "--chat-instruction 'Translate the following text.'"));
  testing::ExpectCleanFailure(resumed, "pmpd-gen-data", "prompt_format: \"chat:vicuna:Translate");
  EXPECT_NE(resumed.err.find("refusing to append"), std::string::npos) << resumed.err;

  // Files written before the attribute existed have none: they read as "text".
  if (std::system("/usr/bin/python3 -c 'import h5py' >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "/usr/bin/python3 has no h5py (apt-get install python3-h5py): the case of a "
                    "file without prompt_format is not checked";
  }
  const std::string old = dir + "/old.h5";
  testing::WriteFile(old, testing::ReadFile(out));
  const std::string del = absl::StrCat("/usr/bin/python3 -c \"import h5py; f = h5py.File('", old,
                                       "', 'r+'); del f.attrs['prompt_format']; f.close()\"");
  ASSERT_EQ(std::system(del.c_str()), 0) << del;
  {
    auto f = models::Hdf5File::Open(old);
    ASSERT_TRUE(f.ok()) << f.status();
    EXPECT_FALSE(f->HasAttribute("/", "prompt_format"));
  }
  auto old_reader = KvDatasetReader::Open(old);
  ASSERT_TRUE(old_reader.ok()) << old_reader.status();
  EXPECT_EQ((*old_reader)->header().prompt_format, "text");
}

// Issue 17 findings, each a regression test: (1) a corrupt prompt/reference length in a gen-data
// file aborted merge, resume and pmpd-train (a negative or huge resize); now a clear error naming
// the file; (2) a finished run deleted every file in OUT.partial, not only its own segments;
// (3) an early error left an empty OUT.partial; (4) a failed merge left OUT.tmp.<pid>.
TEST_F(GenDataTest, CorruptLengthsAndLeftoversAreHandled) {
  const std::string dir = testing::MakeTempDir("gendata_corrupt");
  if (std::system("/usr/bin/python3 -c 'import h5py' >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "/usr/bin/python3 has no h5py (apt-get install python3-h5py)";
  }
  for (const auto& [field, value] :
       std::vector<std::pair<std::string, std::string>>{{"prompt_length", "-5"},
                                                        {"prompt_length", "2147483647"},
                                                        {"reference_length", "-1"},
                                                        {"reference_offset", "99999999"}}) {
    const std::string bad = absl::StrCat(dir, "/", field, value, ".h5");
    testing::WriteFile(bad, testing::ReadFile(*whole_));
    ASSERT_EQ(
        std::system(absl::StrCat("/usr/bin/python3 -c \"import h5py; f = h5py.File('", bad,
                                 "', 'r+'); f['samples/", field, "'][0] = ", value, "; f.close()\"")
                        .c_str()),
        0);
    const std::string needle = absl::StrCat(bad, ": sample 0 has samples/");
    testing::ExpectCleanFailure(
        testing::RunBinary("cli/pmpd-gen-data", "merge --out " + dir + "/m.h5 " + bad),
        "pmpd-gen-data", needle);
    testing::ExpectCleanFailure(
        testing::RunBinary("cli/pmpd-train",
                           absl::StrCat("--data ", bad, " --precisions 4,3 --out ", dir, "/cls")),
        "pmpd-train", needle);
  }
  int leftovers = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    leftovers += base::IsAtomicFileTemporary(e.path().filename().string());
  EXPECT_EQ(leftovers, 0) << "a failed merge left its temporary";
  EXPECT_FALSE(testing::FileExistsForTest(dir + "/m.h5"));

  // (2): a file of someone else's in OUT.partial survives the finished run; the segments do not.
  const std::string out = dir + "/own.h5";
  ASSERT_EQ(::mkdir((out + ".partial").c_str(), 0755), 0);
  testing::WriteFile(out + ".partial/notes.txt", "mine");
  GenDataOptions o = Options(out);
  o.num_docs = 2;
  o.flush_every = 1;
  ASSERT_TRUE(RunGenData(o).ok());
  EXPECT_EQ(testing::ReadFile(out + ".partial/notes.txt"), "mine");
  int segs = 0;
  for (const auto& e : std::filesystem::directory_iterator(out + ".partial"))
    segs += e.path().filename().string().rfind("seg_", 0) == 0;
  EXPECT_EQ(segs, 0);

  // (3): an error before the first segment leaves no OUT.partial.
  testing::WriteFile(dir + "/empty.jsonl", "");
  GenDataOptions e = Options(dir + "/early.h5");
  e.source = dir + "/empty.jsonl";
  ASSERT_FALSE(RunGenData(e).ok());
  EXPECT_FALSE(testing::FileExistsForTest(dir + "/early.h5.partial"));
}

TEST_F(GenDataTest, BadInputIsRefusedClearly) {
  const std::string dir = testing::MakeTempDir("gendata_bad");
  // Corrupt gzip: a real .json.gz cut in half.
  const std::string gz = testing::ReadFile(
      testing::SharedPath("data/c4/c4-validation.00000-of-00008.first800.json.gz"));
  testing::WriteFile(dir + "/cut.json.gz", gz.substr(0, 3000));  // cut inside the first documents
  GenDataOptions o = Options(dir + "/a.h5");
  o.source = dir + "/cut.json.gz";
  o.num_docs = 100000;
  o.max_new_tokens = 4;
  auto r = RunGenData(o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("cut.json.gz: corrupt gzip data"), std::string::npos)
      << r.status();
  // Only non-JSON lines and empty texts: nothing usable.
  testing::WriteFile(dir + "/junk.jsonl",
                     "not json\n{\"text\": 5}\n[1,2]\n{\"text\": \"   \"}\n{\"nope\": \"x\"}\n");
  o.source = dir + "/junk.jsonl";
  r = RunGenData(o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find(
                "junk.jsonl: no usable document (4 malformed lines, 1 empty texts)"),
            std::string::npos)
      << r.status();
  // Mixed: the bad lines are skipped and counted.
  testing::WriteFile(
      dir + "/mixed.jsonl",
      "{\"text\": \"Once upon a time there was a cat.\"}\n{broken\n\n{\"text\": \"\"}\n"
      "{\"text\": \"The dog ran to the park and played.\"}\n");
  o.source = dir + "/mixed.jsonl";
  o.out = dir + "/mixed.h5";
  r = RunGenData(o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->samples, 2);
  EXPECT_EQ(r->malformed_lines, 1);
  EXPECT_EQ(r->empty_texts, 1);
  // A precision the checkpoint lacks (it holds 2..4).
  o.precisions = {5, 3};
  o.out = dir + "/p.h5";
  r = RunGenData(o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("precision 5 is missing from " + *model_ +
                                      ", which holds 2 to 4 bits"),
            std::string::npos)
      << r.status();
  // The command line reports the same cleanly.
  const testing::RunResult cli = testing::RunBinary(
      "cli/pmpd-gen-data",
      absl::StrCat("--model ", *model_, " --c4 ", dir, "/junk.jsonl --out ", dir, "/c.h5"));
  testing::ExpectCleanFailure(cli, "pmpd-gen-data", "no usable document");
  const testing::RunResult shard =
      testing::RunBinary("cli/pmpd-gen-data", Flags(dir + "/s.h5") + " --shard 2/2");
  testing::ExpectCleanFailure(shard, "pmpd-gen-data", "--shard 2/2: need 0 <= i < n");
  // Slot flags the chosen mode would ignore, and a negative batch.
  testing::ExpectCleanFailure(
      testing::RunBinary("cli/pmpd-gen-data",
                         Flags(dir + "/b.h5") + " --batch 4 --branches sequential"),
      "pmpd-gen-data", "--batch has no effect with --branches sequential");
  testing::ExpectCleanFailure(
      testing::RunBinary("cli/pmpd-gen-data", Flags(dir + "/b.h5") + " --kv-fp16"), "pmpd-gen-data",
      "--kv-fp16 has no effect with --device cpu");
  testing::ExpectCleanFailure(
      testing::RunBinary("cli/pmpd-gen-data", Flags(dir + "/b.h5") + " --tensor-core-rows"),
      "pmpd-gen-data", "--tensor-core-rows has no effect with --device cpu");
  testing::ExpectCleanFailure(
      testing::RunBinary("cli/pmpd-gen-data", Flags(dir + "/b.h5") + " --batch -1"),
      "pmpd-gen-data", "--batch -1: must be >= 0");
  const testing::RunResult not_h5 = testing::RunBinary(
      "cli/pmpd-gen-data", absl::StrCat("merge --out ", dir, "/m.h5 ", dir, "/junk.jsonl"));
  testing::ExpectCleanFailure(not_h5, "pmpd-gen-data", "junk.jsonl: not an HDF5 file");
}

}  // namespace
}  // namespace pmpd::data_gen
