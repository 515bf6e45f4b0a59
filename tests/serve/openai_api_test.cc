#include "serve/openai_api.h"

#include <gtest/gtest.h>

#include <string>

namespace pmpd::serve {
namespace {

using nlohmann::json;

RequestLimits Limits() {
  RequestLimits l;
  l.max_tokens = 100;
  l.default_max_tokens = 16;
  l.max_messages = 4;
  l.max_text_bytes = 64;
  return l;
}

TEST(OpenAiApiTest, ParsesAChatRequestWithPmpdExtras) {
  auto r = ParseChatCompletionRequest(R"({
    "model": "m", "messages": [{"role": "developer", "content": "be brief"},
                               {"role": "user", "content": [{"type": "text", "text": "hi "},
                                                            {"type": "text", "text": "there"}]}],
    "max_completion_tokens": 40, "temperature": 0, "top_p": 0.9, "seed": 7, "stream": true,
    "stream_options": {"include_usage": true}, "precisions": "5,4,3", "switch_steps": [12, 48],
    "prefill_precision": 5, "user": "ignored", "n": 1, "stop": null, "logprobs": false})",
                                      Limits());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->chat);
  ASSERT_EQ(r->messages.size(), 2u);
  EXPECT_EQ(r->messages[0].role, "system");  // OpenAI's "developer" is the system message
  EXPECT_EQ(r->messages[1].content, "hi there");
  EXPECT_EQ(r->max_tokens, 40);
  EXPECT_EQ(r->temperature, 0);
  EXPECT_DOUBLE_EQ(r->top_p, 0.9);
  EXPECT_EQ(r->seed, 7u);
  EXPECT_TRUE(r->stream);
  EXPECT_TRUE(r->include_usage);
  EXPECT_EQ(r->precisions, (std::vector<int>{5, 4, 3}));
  EXPECT_EQ(r->switch_steps, (std::vector<int>{12, 48}));
  EXPECT_EQ(r->prefill_precision, 5);
}

TEST(OpenAiApiTest, DefaultsFollowOpenAiAndTheServer) {
  auto r = ParseCompletionRequest(R"({"prompt": "Once"})", Limits());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->chat);
  EXPECT_EQ(r->max_tokens, 16);  // the server's --max-tokens
  EXPECT_EQ(r->temperature, 1.0);
  EXPECT_FALSE(r->stream);
  EXPECT_FALSE(r->seed.has_value());
  EXPECT_TRUE(r->precisions.empty());
  EXPECT_FALSE(r->switch_steps.has_value());
}

// Every bad request is an InvalidArgument naming the field: the server answers it 400.
TEST(OpenAiApiTest, BadRequestsNameTheField) {
  const std::pair<const char*, const char*> chat_cases[] = {
      {"", "not valid JSON"},
      {"[1]", "must be a JSON object"},
      {R"({"messages": []})", "messages must be a non-empty list"},
      {R"({"messages": "hi"})", "messages must be a non-empty list"},
      {R"({"messages": [{"role": "tool", "content": "x"}]})", "messages[0].role must be"},
      {R"({"messages": [{"role": "user"}]})", "messages[0].content is missing"},
      {R"({"messages": [{"role": "user", "content": 5}]})", "messages[0].content must be"},
      {R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})",
       "messages[0].content[0] must be"},
      {R"({"messages": [1,2,3,4,5]})", "at most 4"},
      {R"({"messages": [{"role": "user", "content": "0123456789012345678901234567890123456789012345678901234567890123456789"}]})",
       "bytes (at most 64)"},
  };
  for (const auto& [body, needle] : chat_cases) {
    auto r = ParseChatCompletionRequest(body, Limits());
    ASSERT_FALSE(r.ok()) << body;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << body;
    EXPECT_NE(r.status().message().find(needle), std::string::npos)
        << body << " -> " << r.status().message();
  }
  const std::pair<const char*, const char*> cases[] = {
      {R"({})", "prompt must be a non-empty string"},
      {R"({"prompt": ["a", "b"]})", "prompt must be a non-empty string"},
      {R"({"prompt": "x", "max_tokens": 101})", "max_tokens must be an integer in [1, 100]"},
      {R"({"prompt": "x", "max_tokens": 0})", "max_tokens must be an integer in [1, 100]"},
      {R"({"prompt": "x", "max_tokens": 1e300})", "max_tokens must be an integer"},
      {R"({"prompt": "x", "max_tokens": "5"})", "max_tokens must be an integer"},
      {R"({"prompt": "x", "temperature": 2.5})", "temperature must be in [0, 2]"},
      {R"({"prompt": "x", "temperature": "hot"})", "temperature must be a number"},
      {R"({"prompt": "x", "top_p": 0})", "top_p must be > 0"},
      {R"({"prompt": "x", "seed": 1.5})", "seed must be an integer"},
      {R"({"prompt": "x", "stream": "yes"})", "stream must be true or false"},
      {R"({"prompt": "x", "stream_options": {"include_usage": true}})",
       "stream_options needs \"stream\": true"},
      {R"({"prompt": "x", "n": 2})", "n must be 1"},
      {R"({"prompt": "x", "stop": ["\n"]})", "stop is not supported"},
      {R"({"prompt": "x", "logprobs": 5})", "logprobs is not supported"},
      {R"({"prompt": "x", "presence_penalty": 0.5})", "presence_penalty is not supported"},
      {R"({"prompt": "x", "response_format": {"type": "json_object"}})", "response_format"},
      {R"({"prompt": "x", "precisions": [3, 4]})", "strictly decreasing"},
      {R"({"prompt": "x", "precisions": [9]})", "precisions"},
      {R"({"prompt": "x", "precisions": {"a": 1}})", "precisions must be a list"},
      {R"({"prompt": "x", "precisions": [4, 3.5]})", "precisions[1] must be an integer"},
      {R"({"prompt": "x", "scheduler": "magic"})", "scheduler must be \"static\" or \"learned\""},
      {R"({"prompt": "x", "scheduler": "learned", "switch_steps": [3]})",
       "switch_steps is for the static scheduler"},
      {R"({"prompt": "x", "precision": 4, "precisions": [4, 3]})", "precision (one precision)"},
      {R"({"prompt": "x", "precision": 11})", "precision must be an integer in [0, 8]"},
      {R"({"prompt": "x", "model": 5})", "model must be a string"},
  };
  for (const auto& [body, needle] : cases) {
    auto r = ParseCompletionRequest(body, Limits());
    ASSERT_FALSE(r.ok()) << body;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << body;
    EXPECT_NE(r.status().message().find(needle), std::string::npos)
        << body << " -> " << r.status().message();
  }
}

TEST(OpenAiApiTest, ResponsesHaveOpenAiShapeAndThePmpdSummary) {
  CompletionRequest req;
  req.chat = true;
  req.model = "smol";
  CompletionOutput out;
  out.text = "Hello";
  out.finish_reason = "stop";
  out.prompt_tokens = 7;
  out.completion_tokens = 4;
  out.token_precisions = {5, 5, 4, 3};
  out.avg_bits = 4.25;
  out.scheduler = "static";
  out.precisions = {5, 4, 3};
  const json j = CompletionResponse(req, "chatcmpl-1", 123, out);
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(j["choices"][0]["message"]["content"], "Hello");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(j["usage"]["total_tokens"], 11);
  EXPECT_EQ(j["pmpd"]["avg_bits"], 4.25);
  EXPECT_EQ(j["pmpd"]["switch_points"],
            json::parse(R"([{"step": 2, "from": 5, "to": 4}, {"step": 3, "from": 4, "to": 3}])"));

  req.chat = false;
  const json t = CompletionResponse(req, "cmpl-1", 123, out);
  EXPECT_EQ(t["object"], "text_completion");
  EXPECT_EQ(t["choices"][0]["text"], "Hello");

  const json chunk = StreamChunk(req, "cmpl-1", 1, " a", 4, "", nullptr);
  EXPECT_EQ(chunk["choices"][0]["text"], " a");
  EXPECT_TRUE(chunk["choices"][0]["finish_reason"].is_null());
  EXPECT_EQ(chunk["pmpd"]["precision"], 4);
  req.chat = true;
  const json summary = PmpdSummary(out);
  const json last = StreamChunk(req, "c", 1, "", 0, "length", &summary);
  EXPECT_EQ(last["choices"][0]["finish_reason"], "length");
  EXPECT_TRUE(last["choices"][0]["delta"].empty());
  EXPECT_EQ(last["pmpd"]["token_precisions"], json(out.token_precisions));
  EXPECT_EQ(StreamUsageChunk(req, "c", 1, out)["choices"], json::array());

  // A model may emit bytes that are not UTF-8: replaced on the wire, never a throw.
  EXPECT_NE(Dump(json{{"text", std::string("a\xff"
                                           "b")}}),
            "");
}

}  // namespace
}  // namespace pmpd::serve
