#include "inference/generator.h"

#include <gtest/gtest.h>

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
  const size_t first = std::find(all->new_ids.begin(), all->new_ids.end(), all->new_ids[3]) - all->new_ids.begin();
  EXPECT_EQ(stopped->finish_reason, "eos");
  EXPECT_EQ(stopped->new_ids, std::vector<int>(all->new_ids.begin(), all->new_ids.begin() + first + 1));
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
