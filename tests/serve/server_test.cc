// pmpd-serve's server over real HTTP (cpp-httplib's client) on the any-precision test fixture
// (2..4 bits): answers equal a direct GenerateScheduled run, streams equal whole answers, and every
// bad request is a JSON error with the right status.
#include "serve/server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include "httplib.h"
#include "inference/load_engine.h"
#include "models/tokenizer.h"
#include "scheduler_runtime/precision_scheduler.h"
#include "scheduler_runtime/scheduled_generation.h"
#include "tests/test_util.h"

namespace pmpd::serve {
namespace {

using nlohmann::json;

constexpr char kFixture[] = "fixtures/anyprec-tiny";

class ServerTest : public ::testing::Test {
 protected:
  void Start(ServerOptions o) {
    if (o.model_path.empty()) o.model_path = testing::SharedPath(kFixture);
    o.host = "127.0.0.1";
    o.port = 0;
    auto s = Server::Create(o);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
    auto port = server_->Bind();
    ASSERT_TRUE(port.ok()) << port.status();
    thread_ = std::thread([this] { server_->Serve(); });
    port_ = *port;
    client_ = std::make_unique<httplib::Client>("127.0.0.1", *port);
    client_->set_read_timeout(60);
    for (int i = 0; i < 200 && !client_->Get("/health"); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  void TearDown() override {
    if (server_) {
      while (!server_->Stop()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      thread_.join();
    }
  }
  // POSTs `body`; returns the status and the parsed JSON body (null when not JSON).
  std::pair<int, json> Post(const std::string& path, const std::string& body) {
    auto r = client_->Post(path.c_str(), body, "application/json");
    if (!r) return {0, json()};
    return {r->status, json::parse(r->body, nullptr, false)};
  }
  // The events of a streamed response (the "data: " payloads, in order).
  std::vector<std::string> Events(const std::string& path, const std::string& body) {
    auto r = client_->Post(path.c_str(), body, "application/json");
    EXPECT_TRUE(r);
    if (!r) return {};
    EXPECT_EQ(r->status, 200) << r->body;
    EXPECT_NE(r->get_header_value("Content-Type").find("text/event-stream"), std::string::npos);
    std::vector<std::string> events;
    size_t pos = 0;
    while (pos < r->body.size()) {
      const size_t end = r->body.find("\n\n", pos);
      EXPECT_NE(end, std::string::npos) << "unterminated event";
      if (end == std::string::npos) break;
      const std::string e = r->body.substr(pos, end - pos);
      EXPECT_EQ(e.rfind("data: ", 0), 0u) << e;
      events.push_back(e.substr(6));
      pos = end + 2;
    }
    return events;
  }

  std::unique_ptr<Server> server_;
  std::thread thread_;
  std::unique_ptr<httplib::Client> client_;
  int port_ = 0;
};

// Sends `head` (a request line and headers) on a fresh connection and returns what comes back
// until the server closes or 2 s pass. Raw, so that a body the server refuses is never sent (a
// client still sending when the server closes may see a reset instead of the answer).
std::string RawExchange(int port, const std::string& head) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string got;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::send(fd, head.data(), head.size(), 0) == static_cast<ssize_t>(head.size())) {
    timeval tv{2, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char buf[4096];
    for (ssize_t n; (n = ::recv(fd, buf, sizeof(buf), 0)) > 0;) {
      got.append(buf, static_cast<size_t>(n));
      if (got.find("}}") != std::string::npos) break;  // the JSON error body is complete
    }
  }
  ::close(fd);
  return got;
}

TEST_F(ServerTest, HealthAndModelInfo) {
  PMPD_REQUIRE_SHARED("fixtures/anyprec-tiny/pytorch_model.bin");
  ServerOptions o;
  o.precisions = {4, 3, 2};
  o.switch_steps = {2, 5};
  Start(o);
  auto h = client_->Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(json::parse(h->body)["status"], "ok");
  auto m = client_->Get("/v1/models");
  ASSERT_TRUE(m);
  const json info = json::parse(m->body)["data"][0];
  EXPECT_EQ(info["id"], "anyprec-tiny");
  EXPECT_EQ(info["pmpd"]["min_precision"], 2);
  EXPECT_EQ(info["pmpd"]["max_precision"], 4);
  EXPECT_EQ(info["pmpd"]["default"]["precisions"], json({4, 3, 2}));
  auto page = client_->Get("/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  EXPECT_NE(page->get_header_value("Content-Type").find("text/html"), std::string::npos);
  EXPECT_NE(page->body.find("/v1/chat/completions"), std::string::npos);
  EXPECT_NE(page->body.find("</html>"), std::string::npos);  // the whole file was embedded
}

// The server's answer is the library's answer: the same tokens as GenerateScheduled on an engine
// of our own, the precisions of the static schedule, and the stream is the same text cut in
// pieces, one chunk per token, with its precision.
TEST_F(ServerTest, AnswersMatchTheLibraryAndStreamsMatchAnswers) {
  PMPD_REQUIRE_SHARED("fixtures/anyprec-tiny/pytorch_model.bin");
  ServerOptions o;
  o.precisions = {4, 3, 2};
  o.switch_steps = {2, 5};
  Start(o);
  const std::string body =
      R"({"prompt": "Once upon a time", "max_tokens": 9, "temperature": 0, "model": "anyprec-tiny")";
  auto [status, j] = Post("/v1/completions", body + "}");
  ASSERT_EQ(status, 200) << j.dump();
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["model"], "anyprec-tiny");
  EXPECT_EQ(j["usage"]["completion_tokens"], 9);
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  const json& p = j["pmpd"];
  EXPECT_EQ(p["token_precisions"], json({4, 4, 3, 3, 3, 2, 2, 2, 2}));
  EXPECT_EQ(p["scheduler"], "static");
  EXPECT_NEAR(p["avg_bits"].get<double>(), 25.0 / 9, 1e-9);
  EXPECT_EQ(p["switch_points"].size(), 2u);

  // The same through the library.
  auto tok = models::Tokenizer::Load(testing::SharedPath(kFixture));
  ASSERT_TRUE(tok.ok());
  inference::LoadEngineOptions lo;
  lo.verbose = false;
  auto engine = inference::LoadEngine(testing::SharedPath(kFixture), inference::Device::kCpu, lo);
  ASSERT_TRUE(engine.ok());
  auto sched = scheduler::MakeStaticScheduler({4, 3, 2}, {2, 5});
  ASSERT_TRUE(sched.ok());
  scheduler::ScheduledGenerationOptions sopt;
  sopt.generation.max_new_tokens = 9;
  const std::vector<int> prompt = (*tok)->Encode("Once upon a time", true);
  auto direct = scheduler::GenerateScheduled(**engine, prompt, sopt, sched->get());
  ASSERT_TRUE(direct.ok());
  models::IncrementalDetokenizer detok(**tok, prompt);
  std::string expected;
  for (int id : direct->generation.new_ids) expected += detok.Push(id);
  EXPECT_EQ(j["choices"][0]["text"], expected);
  EXPECT_EQ(p["token_precisions"], json(direct->token_precisions));

  // Streamed: one chunk per token with its precision, then the summary, then [DONE].
  const auto events = Events(
      "/v1/completions", body + R"(, "stream": true, "stream_options": {"include_usage": true}})");
  ASSERT_EQ(events.size(), 9u + 3u);
  std::string text;
  std::vector<int> precisions;
  for (size_t i = 0; i < 9; ++i) {
    const json c = json::parse(events[i]);
    EXPECT_EQ(c["object"], "text_completion");
    EXPECT_TRUE(c["choices"][0]["finish_reason"].is_null());
    text += c["choices"][0]["text"].get<std::string>();
    precisions.push_back(c["pmpd"]["precision"]);
  }
  EXPECT_EQ(text, expected);
  EXPECT_EQ(json(precisions), p["token_precisions"]);
  const json last = json::parse(events[9]);
  EXPECT_EQ(last["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(last["pmpd"]["token_precisions"], p["token_precisions"]);
  EXPECT_EQ(json::parse(events[10])["usage"]["completion_tokens"], 9);
  EXPECT_EQ(events[11], "[DONE]");
}

// Chat through a template (ChatML spelled as text on this vocabulary): the first chunk opens the
// assistant's turn; requests override the server's default schedule.
TEST_F(ServerTest, ChatCompletionsWithARequestedSchedule) {
  PMPD_REQUIRE_SHARED("fixtures/anyprec-tiny/pytorch_model.bin");
  ServerOptions o;
  o.chat_template = "chatml";
  Start(o);
  const std::string body =
      R"({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
          "max_tokens": 6, "temperature": 0, "precisions": [4, 2], "switch_steps": [3])";
  auto [status, j] = Post("/v1/chat/completions", body + "}");
  ASSERT_EQ(status, 200) << j.dump();
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(j["pmpd"]["precisions"], json({4, 2}));
  const auto& tp = j["pmpd"]["token_precisions"];
  ASSERT_GE(tp.size(), 1u);
  EXPECT_EQ(tp[0], 4);
  if (tp.size() > 3) EXPECT_EQ(tp[3], 2);
  const auto events = Events("/v1/chat/completions", body + R"(, "stream": true})");
  ASSERT_GE(events.size(), 3u);
  const json first = json::parse(events[0]);
  EXPECT_EQ(first["object"], "chat.completion.chunk");
  EXPECT_EQ(first["choices"][0]["delta"]["role"], "assistant");
  std::string text;
  for (size_t i = 1; i + 2 < events.size(); ++i)
    text += json::parse(events[i])["choices"][0]["delta"]["content"].get<std::string>();
  EXPECT_EQ(text, j["choices"][0]["message"]["content"]);
  EXPECT_EQ(events.back(), "[DONE]");

  // Without the default: the checkpoint's highest precision, uniform.
  auto [s2, u] = Post("/v1/chat/completions",
                      R"({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3})");
  ASSERT_EQ(s2, 200) << u.dump();
  EXPECT_EQ(u["pmpd"]["scheduler"], "uniform");
  EXPECT_EQ(u["pmpd"]["precisions"], json({4}));
}

TEST_F(ServerTest, BadRequestsAreJsonErrorsAndTheServerKeepsServing) {
  PMPD_REQUIRE_SHARED("fixtures/anyprec-tiny/pytorch_model.bin");
  ServerOptions o;
  o.max_body_bytes = 4096;
  o.limits.max_tokens = 50;
  o.limits.default_max_tokens = 8;
  Start(o);
  const std::string long_prompt(3000, 'a');  // far more tokens than the 256-position context
  const struct {
    const char* path;
    std::string body;
    int status;
    const char* needle;
  } cases[] = {
      {"/v1/completions", "{", 400, "not valid JSON"},
      {"/v1/completions", R"({"prompt": "x", "precisions": [8, 4]})", 400, "holds 2 to 4 bits"},
      {"/v1/completions", R"({"prompt": "x", "precisions": [4, 3]})", 400, "needs switch_steps"},
      {"/v1/completions", R"({"prompt": "x", "precisions": [4, 3], "scheduler": "learned"})", 400,
       "--classifier"},
      {"/v1/completions", R"({"prompt": "x", "max_tokens": 51})", 400, "max_tokens"},
      {"/v1/completions", R"({"prompt": ")" + long_prompt + R"("})", 400, "context"},
      {"/v1/completions", R"({"prompt": ")" + std::string(5000, 'a') + R"("})", 413,
       "--max-body-bytes"},
      {"/v1/chat/completions", R"({"messages": [{"role": "user", "content": "x"}]})", 400,
       "no chat template"},
      {"/v1/nothing", "{}", 404, "no route"},
      {"/v1/completions", R"({"prompt": "x", "model": "gpt-4"})", 404, "gpt-4 does not exist"},
  };
  for (const auto& c : cases) {
    auto [status, j] = Post(c.path, c.body);
    EXPECT_EQ(status, c.status) << c.body.substr(0, 80);
    ASSERT_TRUE(j.is_object()) << c.body.substr(0, 80);
    ASSERT_TRUE(j.contains("error")) << j.dump();
    const std::string message = j["error"]["message"];
    EXPECT_NE(message.find(c.needle), std::string::npos) << message;
  }
  auto [status, j] = Post("/v1/completions", R"({"prompt": "Once", "max_tokens": 2})");
  EXPECT_EQ(status, 200) << j.dump();
}

// What httplib would mishandle is refused before routing: a chunked body (it would be read whole,
// past --max-body-bytes) and a Range header (it would cut the JSON).
TEST_F(ServerTest, ChunkedBodiesAndRangesAreRefused) {
  PMPD_REQUIRE_SHARED("fixtures/anyprec-tiny/pytorch_model.bin");
  Start(ServerOptions());
  httplib::Headers range = {{"Range", "bytes=0-9"}};
  auto r = client_->Post("/v1/completions", range, R"({"prompt": "x", "max_tokens": 2})",
                         "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 416);
  // A chunked body: refused on its headers, before a byte of it is read.
  const std::string reply = RawExchange(
      port_,
      "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
      "Transfer-Encoding: chunked\r\n\r\n");
  EXPECT_EQ(reply.rfind("HTTP/1.1 411", 0), 0u) << reply;
  EXPECT_NE(reply.find("Content-Length"), std::string::npos) << reply;
  auto [status, j] = Post("/v1/completions", R"({"prompt": "x", "max_tokens": 2})");
  EXPECT_EQ(status, 200) << j.dump();
  // Options the schedule would ignore are refused.
  auto [s1, e1] =
      Post("/v1/completions", R"({"prompt": "x", "precisions": [4], "switch_steps": [2]})");
  EXPECT_EQ(s1, 400);
  EXPECT_NE(e1.dump().find("two or more precisions"), std::string::npos) << e1.dump();
}

TEST_F(ServerTest, APlainModelRefusesScheduleOptions) {
  PMPD_REQUIRE_SHARED("models/stories260K/config.json");
  ServerOptions o;
  o.model_path = testing::SharedPath("models/stories260K");
  Start(o);
  auto [s1, e1] =
      Post("/v1/completions", R"({"prompt": "Once", "precisions": [4, 3], "switch_steps": [2]})");
  EXPECT_EQ(s1, 400);
  EXPECT_NE(e1.dump().find("plain weights"), std::string::npos) << e1.dump();
  auto [s2, ok] = Post("/v1/completions", R"({"prompt": "Once", "max_tokens": 3})");
  EXPECT_EQ(s2, 200) << ok.dump();
  EXPECT_EQ(ok["pmpd"]["scheduler"], "none");
}

// A user message cannot hold the tokens that end a turn (byte-level BPE reads "<|im_end|>" in text
// as the control token: the user could close their turn and write the assistant's).
TEST_F(ServerTest, ControlTokensInMessagesAreRefused) {
  PMPD_REQUIRE_SMOLLM2();
  ServerOptions o;
  o.model_path = testing::SmolLM2Path();
  o.limits.default_max_tokens = 1;
  Start(o);
  for (const char* text : {"<|im_end|>", "a<|im_start|>system", "<|endoftext|>"}) {
    auto [status, j] = Post("/v1/chat/completions",
                            json{{"messages", {{{"role", "user"}, {"content", text}}}}}.dump());
    EXPECT_EQ(status, 400) << text;
    EXPECT_NE(j.dump().find("control token"), std::string::npos) << j.dump();
  }
  auto [status, j] = Post("/v1/chat/completions",
                          R"({"messages": [{"role": "user", "content": "<im_end> is fine"}]})");
  EXPECT_EQ(status, 200) << j.dump();
}

// A generation past --max-request-seconds is cut (finish_reason "length", stopped_by says why).
TEST_F(ServerTest, TheTimeLimitCutsAGeneration) {
  PMPD_REQUIRE_SHARED("fixtures/anyprec-tiny/pytorch_model.bin");
  ServerOptions o;
  o.max_request_seconds = 1e-9;
  Start(o);
  auto [status, j] =
      Post("/v1/completions", R"({"prompt": "Once", "max_tokens": 40, "temperature": 0})");
  ASSERT_EQ(status, 200) << j.dump();
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(j["usage"]["completion_tokens"], 1);
  EXPECT_NE(j["pmpd"]["stopped_by"].get<std::string>().find("time limit"), std::string::npos);
}

TEST(ServerCreateTest, BadOptionsNameTheProblem) {
  PMPD_REQUIRE_SHARED("fixtures/anyprec-tiny/pytorch_model.bin");
  ServerOptions o;
  o.model_path = testing::SharedPath(kFixture);
  o.precisions = {4, 3};  // static without switch steps
  auto s = Server::Create(o);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("default schedule"), std::string::npos) << s.status();
  o.precisions = {8};
  s = Server::Create(o);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("2 to 4 bits"), std::string::npos) << s.status();
  o.precisions = {};
  o.chat_template = "jinja-magic";
  s = Server::Create(o);
  ASSERT_FALSE(s.ok());
  o.chat_template = "auto";
  o.model_path = "/nonexistent/model";
  s = Server::Create(o);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("/nonexistent/model"), std::string::npos) << s.status();
}

}  // namespace
}  // namespace pmpd::serve
