#include "inference/generator.h"

#include <gtest/gtest.h>

#include "inference/llama_model.h"
#include "models/random_llama.h"
#include "tests/test_util.h"

namespace pmpd::inference {
namespace {

std::unique_ptr<LlamaModel> TinyModel(const std::vector<int>& eos) {
  models::LlamaConfig c = models::TinyDemoConfig(64);
  c.eos_token_ids = eos;
  const std::string dir = pmpd::testing::MakeTempDir("gen");
  EXPECT_TRUE(models::WriteRandomLlama(dir, c, 5).ok());
  auto m = LlamaModel::Load(dir);
  EXPECT_TRUE(m.ok()) << m.status();
  return m.ok() ? std::move(*m) : nullptr;
}

TEST(GeneratorTest, StopsAtEosAndCallsBackPerToken) {
  auto model = TinyModel({});
  ASSERT_NE(model, nullptr);
  const std::vector<int> prompt = {1, 5, 9};
  GenerationOptions opt;
  opt.max_new_tokens = 12;
  std::vector<int> seen;
  auto all = Generate(*model, prompt, opt, [&](int id) { seen.push_back(id); });
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->finish_reason, "length");
  EXPECT_EQ(all->new_ids.size(), 12u);
  EXPECT_EQ(seen, all->new_ids);
  EXPECT_EQ(all->decode_steps, 11);

  // Make the 4th greedy token an EOS id: generation stops right after emitting it.
  auto with_eos = TinyModel({all->new_ids[3]});
  auto stopped = Generate(*with_eos, prompt, opt);
  ASSERT_TRUE(stopped.ok());
  const size_t first =
      std::find(all->new_ids.begin(), all->new_ids.end(), all->new_ids[3]) - all->new_ids.begin();
  EXPECT_EQ(stopped->finish_reason, "eos");
  EXPECT_EQ(stopped->new_ids,
            std::vector<int>(all->new_ids.begin(), all->new_ids.begin() + first + 1));
}

TEST(GeneratorTest, StopsAtStopIdsLikeEos) {
  auto model = TinyModel({});
  ASSERT_NE(model, nullptr);
  const std::vector<int> prompt = {1, 5, 9};
  GenerationOptions opt;
  opt.max_new_tokens = 12;
  auto all = Generate(*model, prompt, opt);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->finish_reason, "length");
  EXPECT_EQ(all->text_ids().size(), all->new_ids.size());

  // The first greedy token is a stop id (a chat template's end of turn): one token, emitted and
  // counted like EOS, and not part of the text.
  opt.stop_ids = {all->new_ids[0], 63};
  std::vector<int> seen;
  auto first = Generate(*model, prompt, opt, [&](int id) { seen.push_back(id); });
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->finish_reason, "eos");
  EXPECT_EQ(first->new_ids, std::vector<int>({all->new_ids[0]}));
  EXPECT_EQ(seen, first->new_ids);
  EXPECT_TRUE(first->text_ids().empty());
  EXPECT_EQ(first->decode_steps, 0);

  // A later token: everything before it is the text.
  opt.stop_ids = {all->new_ids[5]};
  auto later = Generate(*model, prompt, opt);
  ASSERT_TRUE(later.ok());
  const size_t at =
      std::find(all->new_ids.begin(), all->new_ids.end(), all->new_ids[5]) - all->new_ids.begin();
  EXPECT_EQ(later->finish_reason, "eos");
  EXPECT_EQ(later->new_ids, std::vector<int>(all->new_ids.begin(), all->new_ids.begin() + at + 1));
  EXPECT_EQ(std::vector<int>(later->text_ids().begin(), later->text_ids().end()),
            std::vector<int>(all->new_ids.begin(), all->new_ids.begin() + at));

  // --ignore-eos (stop_at_eos false) ignores stop ids too; zero tokens asked, zero given.
  opt.stop_at_eos = false;
  opt.stop_ids = {all->new_ids[0]};
  auto ignored = Generate(*model, prompt, opt);
  ASSERT_TRUE(ignored.ok());
  EXPECT_EQ(ignored->new_ids, all->new_ids);
  opt.stop_at_eos = true;
  opt.max_new_tokens = 0;
  auto none = Generate(*model, prompt, opt);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->new_ids.empty());
  EXPECT_EQ(none->finish_reason, "length");
  EXPECT_TRUE(none->text_ids().empty());
}

// should_stop (a server's client gone, a time limit) ends generation after the token it follows,
// with the tokens so far: a prefix of the uninterrupted run, finish_reason "stopped".
TEST(GeneratorTest, ShouldStopEndsGenerationWithThePrefix) {
  auto model = TinyModel({});
  ASSERT_NE(model, nullptr);
  const std::vector<int> prompt = {1, 5, 9};
  GenerationOptions opt;
  opt.max_new_tokens = 12;
  auto all = Generate(*model, prompt, opt);
  ASSERT_TRUE(all.ok());
  int asked = 0;
  opt.should_stop = [&] { return ++asked == 4; };
  auto cut = Generate(*model, prompt, opt);
  ASSERT_TRUE(cut.ok());
  EXPECT_EQ(cut->finish_reason, "stopped");
  EXPECT_EQ(cut->new_ids, std::vector<int>(all->new_ids.begin(), all->new_ids.begin() + 4));
  EXPECT_EQ(cut->decode_steps, 3);
  opt.should_stop = [] { return false; };
  auto whole = Generate(*model, prompt, opt);
  ASSERT_TRUE(whole.ok());
  EXPECT_EQ(whole->new_ids, all->new_ids);
  EXPECT_EQ(whole->finish_reason, "length");
}

TEST(GeneratorTest, RejectsBadRequests) {
  auto model = TinyModel({2});
  ASSERT_NE(model, nullptr);
  GenerationOptions opt;
  EXPECT_FALSE(Generate(*model, {}, opt).ok());
  opt.max_new_tokens = -1;
  EXPECT_FALSE(Generate(*model, std::vector<int>{1}, opt).ok());
  opt.max_new_tokens = 4;
  opt.sampling.top_p = 0;
  EXPECT_FALSE(Generate(*model, std::vector<int>{1}, opt).ok());
  opt.sampling.top_p = 1;
  opt.max_new_tokens = 0;
  auto none = Generate(*model, std::vector<int>{1}, opt);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->new_ids.empty());
}

}  // namespace
}  // namespace pmpd::inference
