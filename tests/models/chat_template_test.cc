// Chat templates against Hugging Face transformers' apply_chat_template on the official Jinja
// templates (tests/golden/chat_templates.json, made by scripts/make_chat_template_golden.py): the
// rendered text, and the token ids with the Llama-2 sentencepiece tokenizer (llama2, vicuna) and
// SmolLM2's GGUF tokenizer (chatml).
#include "models/chat_template.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tests/test_util.h"

namespace pmpd::models {
namespace {

using nlohmann::json;
using pmpd::testing::SharedPath;
using pmpd::testing::SmolLM2Path;

const json& Golden() {
  static const json* g = new json(json::parse(
      pmpd::testing::ReadFile(pmpd::testing::SourcePath("tests/golden/chat_templates.json"))));
  return *g;
}

std::vector<ChatMessage> Messages(const json& c) {
  std::vector<ChatMessage> out;
  for (const auto& m : c.at("messages")) out.push_back({m.at("role"), m.at("content")});
  return out;
}

// The format as Recognize reads it from the golden (official) template text.
ChatTemplate FromGolden(const std::string& format) {
  const json& f = Golden().at("formats").at(format);
  auto t = ChatTemplate::Recognize(f.at("template").get<std::string>(),
                                   f.at("source").get<std::string>());
  EXPECT_TRUE(t.ok()) << format << ": " << t.status();
  return t.ok() ? *t : *ChatTemplate::FromName(format);
}

void ExpectRendersMatch(const std::string& format) {
  const ChatTemplate t = FromGolden(format);
  const json& cases = Golden().at("formats").at(format).at("cases");
  ASSERT_GE(cases.size(), 4u);
  for (const auto& c : cases) {
    auto text = t.Render(Messages(c), c.at("add_generation_prompt").get<bool>());
    ASSERT_TRUE(text.ok()) << text.status();
    EXPECT_EQ(*text, c.at("text").get<std::string>()) << format;
  }
}

void ExpectIdsMatch(const std::string& format, const Tokenizer& tok) {
  const ChatTemplate t = FromGolden(format);
  for (const auto& c : Golden().at("formats").at(format).at("cases")) {
    auto ids = t.Encode(tok, Messages(c), c.at("add_generation_prompt").get<bool>());
    ASSERT_TRUE(ids.ok()) << ids.status();
    EXPECT_EQ(*ids, c.at("ids").get<std::vector<int>>())
        << format << ": " << c.at("text").get<std::string>();
  }
}

std::unique_ptr<Tokenizer> Llama2Tokenizer() {
  auto t = Tokenizer::Load(SharedPath("models/llama2-tokenizer/tokenizer.model"));
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? std::move(*t) : nullptr;
}

TEST(ChatTemplateTest, RecognisesTheOfficialTemplates) {
  for (const char* format : {"chatml", "llama2", "vicuna"}) {
    const ChatTemplate t = FromGolden(format);
    EXPECT_STREQ(t.name(), format);
    EXPECT_EQ(t.default_system(),
              Golden().at("formats").at(format).at("default_system").get<std::string>())
        << format;
  }
  // A ChatML template that only renders the caller's system message has no default of its own.
  auto plain = ChatTemplate::Recognize(
      "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
      "message['content'] + "
      "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ "
      "'<|im_start|>assistant\\n' }}{% endif %}",
      "plain");
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->format(), ChatFormat::kChatML);
  EXPECT_EQ(plain->default_system(), "");
  auto qwen_like = ChatTemplate::Recognize(
      "{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\\n' + "
      "messages[0]['content'] + "
      "'<|im_end|>\\n' }}{%- else %}{{- '<|im_start|>system\\nYou are Qwen, a \\'helpful\\' "
      "assistant.<|im_end|>\\n' "
      "}}{%- endif %}",
      "qwen");
  ASSERT_TRUE(qwen_like.ok());
  EXPECT_EQ(qwen_like->default_system(), "You are Qwen, a 'helpful' assistant.");
  // Mistral-style [INST] without <<SYS>> is read as llama2.
  auto mistral = ChatTemplate::Recognize(
      "{{ bos_token }}{% for m in messages %}[INST] {{ m['content'] }} [/INST]"
      "{% endfor %}",
      "mistral");
  ASSERT_TRUE(mistral.ok());
  EXPECT_EQ(mistral->format(), ChatFormat::kLlama2);
}

TEST(ChatTemplateTest, UnknownTemplateAndNameAreErrors) {
  auto unknown = ChatTemplate::Recognize(
      "{% for m in messages %}<start_of_turn>{{ m['content'] }}{% endfor %}",
      "/models/gemma/tokenizer_config.json");
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().message(),
            "/models/gemma/tokenizer_config.json: chat template not recognised; supported: chatml, "
            "llama2, vicuna "
            "(use --chat-template NAME)");
  auto name = ChatTemplate::FromName("alpaca");
  ASSERT_FALSE(name.ok());
  EXPECT_NE(name.status().message().find("supported: chatml, llama2, vicuna"), std::string::npos);
  EXPECT_EQ(ChatTemplate::Names(), (std::vector<std::string>{"chatml", "llama2", "vicuna"}));
}

TEST(ChatTemplateTest, RejectsBadRoleOrder) {
  const ChatTemplate t = *ChatTemplate::FromName("chatml");
  EXPECT_FALSE(t.Render({}, true).ok());
  EXPECT_FALSE(t.Render({{"system", "s"}}, true).ok());
  EXPECT_FALSE(t.Render({{"assistant", "a"}}, true).ok());
  auto twice = t.Render({{"user", "u"}, {"user", "v"}}, true);
  ASSERT_FALSE(twice.ok());
  EXPECT_NE(twice.status().message().find("chat message 1: expected role \"assistant\""),
            std::string::npos)
      << twice.status();
  EXPECT_FALSE(t.Render({{"user", "u"}, {"system", "s"}}, true).ok());
  EXPECT_TRUE(t.Render({{"system", "s"}, {"user", "u"}, {"assistant", "a"}}, false).ok());
}

TEST(ChatTemplateTest, ChatMLRendersMatchTransformers) { ExpectRendersMatch("chatml"); }
TEST(ChatTemplateTest, Llama2RendersMatchTransformers) { ExpectRendersMatch("llama2"); }
TEST(ChatTemplateTest, VicunaRendersMatchTransformers) { ExpectRendersMatch("vicuna"); }

TEST(ChatTemplateTest, Llama2IdsMatchTransformers) {
  PMPD_REQUIRE_SHARED("models/llama2-tokenizer/tokenizer.model");
  auto tok = Llama2Tokenizer();
  ASSERT_NE(tok, nullptr);
  ExpectIdsMatch("llama2", *tok);
  EXPECT_EQ(FromGolden("llama2").StopIds(*tok), std::vector<int>({tok->eos_id()}));
}

TEST(ChatTemplateTest, VicunaIdsMatchTransformers) {
  PMPD_REQUIRE_SHARED("models/llama2-tokenizer/tokenizer.model");
  auto tok = Llama2Tokenizer();
  ASSERT_NE(tok, nullptr);
  ExpectIdsMatch("vicuna", *tok);
  EXPECT_EQ(FromGolden("vicuna").StopIds(*tok), std::vector<int>({tok->eos_id()}));
}

TEST(ChatTemplateTest, ChatMLIdsMatchTransformersOnSmolLM2) {
  PMPD_REQUIRE_SMOLLM2();
  auto tok = Tokenizer::Load(SmolLM2Path());
  ASSERT_TRUE(tok.ok()) << tok.status();
  ExpectIdsMatch("chatml", **tok);
  // The model's own template is recognised, and a named chatml keeps its default system message.
  auto own = ChatTemplate::ForModel("auto", **tok);
  ASSERT_TRUE(own.ok()) << own.status();
  EXPECT_EQ(own->format(), ChatFormat::kChatML);
  EXPECT_EQ(own->default_system(),
            Golden().at("formats").at("chatml").at("default_system").get<std::string>());
  auto named = ChatTemplate::ForModel("chatml", **tok);
  ASSERT_TRUE(named.ok());
  EXPECT_EQ(named->default_system(), own->default_system());
  const int im_end = (*tok)->TokenId("<|im_end|>");
  ASSERT_GE(im_end, 0);
  const std::vector<int> stop = own->StopIds(**tok);
  ASSERT_FALSE(stop.empty());
  EXPECT_EQ(stop.front(), im_end);
}

TEST(ChatTemplateTest, ForModelWithoutTemplate) {
  PMPD_REQUIRE_SHARED("models/llama2-tokenizer/tokenizer.model");
  auto tok = Llama2Tokenizer();
  ASSERT_NE(tok, nullptr);
  ASSERT_TRUE(tok->chat_template().empty());
  auto none = ChatTemplate::ForModel("auto", *tok);
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("has no chat template; pass --chat-template NAME"),
            std::string::npos)
      << none.status();
  auto vicuna = ChatTemplate::ForModel("vicuna", *tok);
  ASSERT_TRUE(vicuna.ok());
  EXPECT_EQ(vicuna->format(), ChatFormat::kVicuna);
  EXPECT_FALSE(ChatTemplate::ForModel("gemma", *tok).ok());
}

}  // namespace
}  // namespace pmpd::models
