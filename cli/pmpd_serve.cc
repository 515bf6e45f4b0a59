// pmpd-serve: the PMPD chat page and an OpenAI-compatible API over one engine.
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/cli_common.h"
#include "scheduler_runtime/precision_scheduler.h"
#include "serve/server.h"

ABSL_FLAG(std::string, model, "",
          "Model: a Hugging Face Llama directory, an any-precision checkpoint (pmpd-quantize) or "
          "a .gguf file. Required.");
ABSL_FLAG(std::string, tokenizer, "", "Tokenizer file or directory (default: MODEL).");
ABSL_FLAG(std::string, classifier, "",
          "Classifier directory (pmpd-train): enables the learned scheduler.");
ABSL_FLAG(std::string, device, "cpu", "cpu, cuda or auto (cuda when a GPU is visible).");
ABSL_FLAG(bool, force, false,
          "Use --classifier even when its manifest records another model's fingerprint.");
ABSL_FLAG(std::string, host, "127.0.0.1",
          "Address to listen on (0.0.0.0: every interface; there is no authentication).");
ABSL_FLAG(int, port, 8080, "Port to listen on (0: any free port; the chosen one is printed).");
ABSL_FLAG(std::string, precisions, "",
          "Default schedule of requests that name none: precisions high to low, e.g. 5,4,3 "
          "(default: the checkpoint's highest precision).");
ABSL_FLAG(std::string, scheduler, "static",
          "Default scheduler: static (--switch-steps) or learned (--classifier).");
ABSL_FLAG(std::string, switch_steps, "",
          "Default static switch steps, one cumulative step per adjacent pair, e.g. 12,48.");
ABSL_FLAG(std::string, chat_template, "auto",
          "auto (the model's own), chatml, llama2 or vicuna; without one only /v1/completions "
          "works.");
ABSL_FLAG(std::string, model_name, "",
          "The model id /v1/models reports and responses echo (default: MODEL's file name).");
ABSL_FLAG(int, max_tokens, 256, "New tokens of a request that gives no max_tokens.");
ABSL_FLAG(int, max_tokens_limit, 2048, "The largest max_tokens a request may ask for.");
ABSL_FLAG(int, max_body_bytes, 1 << 20, "Largest request body; larger ones are answered 413.");
ABSL_FLAG(int, max_queue, 8,
          "Requests that may wait for the engine (one runs at a time); more are answered 503.");
ABSL_FLAG(int, threads, 4,
          "HTTP worker threads beyond those of the queue (for /health, /v1/models and 503 "
          "answers while the engine is busy).");
ABSL_FLAG(int, io_timeout, 10, "Seconds a socket read or write may wait.");
ABSL_FLAG(double, max_request_seconds, 600,
          "A generation is cut after this many seconds (finish_reason \"length\").");

namespace {

constexpr char kProgram[] = "pmpd-serve";

int Run() {
  using namespace pmpd;
  serve::ServerOptions o;
  o.model_path = absl::GetFlag(FLAGS_model);
  // Every flag checked before the model is loaded: parsed here, judged by CheckServerOptions.
  if (auto st = cli::CheckDeviceFlag(absl::GetFlag(FLAGS_device)); !st.ok())
    return cli::Fail(kProgram, st);
  auto device = inference::ParseDevice(absl::GetFlag(FLAGS_device), "--device");
  if (!device.ok()) return cli::Fail(kProgram, device.status());
  o.device = *device;
  o.tokenizer_path = absl::GetFlag(FLAGS_tokenizer);
  o.classifier_dir = absl::GetFlag(FLAGS_classifier);
  o.force_classifier = absl::GetFlag(FLAGS_force);
  o.host = absl::GetFlag(FLAGS_host);
  o.port = absl::GetFlag(FLAGS_port);
  if (!absl::GetFlag(FLAGS_precisions).empty()) {
    auto p = scheduler::ParseIntList(absl::GetFlag(FLAGS_precisions), "--precisions");
    if (!p.ok()) return cli::Fail(kProgram, p.status());
    o.precisions = *p;
  }
  o.scheduler = absl::GetFlag(FLAGS_scheduler);
  if (!absl::GetFlag(FLAGS_switch_steps).empty()) {
    auto s = scheduler::ParseIntList(absl::GetFlag(FLAGS_switch_steps), "--switch-steps");
    if (!s.ok()) return cli::Fail(kProgram, s.status());
    o.switch_steps = *s;
  }
  o.chat_template = absl::GetFlag(FLAGS_chat_template);
  o.model_name = absl::GetFlag(FLAGS_model_name);
  o.limits.default_max_tokens = absl::GetFlag(FLAGS_max_tokens);
  o.limits.max_tokens = absl::GetFlag(FLAGS_max_tokens_limit);
  o.max_body_bytes = absl::GetFlag(FLAGS_max_body_bytes);
  o.limits.max_text_bytes = static_cast<size_t>(std::max<int64_t>(o.max_body_bytes, 0));
  o.max_queue = absl::GetFlag(FLAGS_max_queue);
  o.threads = absl::GetFlag(FLAGS_threads);
  o.io_timeout_s = absl::GetFlag(FLAGS_io_timeout);
  o.max_request_seconds = absl::GetFlag(FLAGS_max_request_seconds);
  if (auto st = serve::CheckServerOptions(o); !st.ok()) return cli::Fail(kProgram, st);

  // SIGTERM and SIGINT stop the server from a thread of our own (sigwait), never from a signal
  // handler: blocked here, before any thread exists, so that every thread inherits the mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  std::fprintf(stderr, "%s: loading %s\n", kProgram, o.model_path.c_str());
  auto server = serve::Server::Create(o);
  if (!server.ok()) return cli::Fail(kProgram, server.status());
  auto port = (*server)->Bind();
  if (!port.ok()) return cli::Fail(kProgram, port.status());
  const nlohmann::json info = (*server)->ModelInfo();
  std::fprintf(stderr, "%s: %s on %s, %s; chat page and API at http://%s:%d/\n", kProgram,
               info["id"].get<std::string>().c_str(),
               info["pmpd"]["device"].get<std::string>().c_str(),
               info["pmpd"]["max_precision"].get<int>() > 0
                   ? absl::StrCat(info["pmpd"]["min_precision"].get<int>(), "-",
                                  info["pmpd"]["max_precision"].get<int>(), " bits")
                         .c_str()
                   : "plain weights",
               o.host.c_str(), *port);
  std::fflush(stderr);

  int got = 0;
  std::atomic<bool> served{false};
  std::thread waiter([&] {
    sigwait(&stop_signals, &got);
    // A signal that comes before the listener runs must still stop it: ask until Serve returns.
    while (!served.load() && !(*server)->Stop()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    // Generations stop at their next token; a client that holds its connection open (a slow
    // body) could still delay the exit by --io-timeout, so give up waiting after 10 s.
    for (int i = 0; i < 500 && !served.load(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (!served.load()) {
      std::fprintf(stderr, "%s: %s, stopped (connections still open after 10 s were dropped)\n",
                   kProgram, got == SIGINT ? "SIGINT" : "SIGTERM");
      std::fflush(stderr);
      std::_Exit(0);
    }
  });
  (*server)->Serve();
  served = true;
  if (got == 0) pthread_kill(waiter.native_handle(), SIGTERM);  // Serve ended on its own
  waiter.join();
  if (got != 0)
    std::fprintf(stderr, "%s: %s, stopped\n", kProgram, got == SIGINT ? "SIGINT" : "SIGTERM");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  pmpd::cli::InitUsage(
      "Serve a model over an OpenAI-compatible HTTP API (POST /v1/chat/completions, "
      "/v1/completions,\nGET /v1/models, /health) and the PMPD chat page at /: tokens coloured "
      "by the precision that\nproduced them, live tokens/s and average bits, two schedules side "
      "by side.\nExample: pmpd-serve --model smollm2-anyprec --precisions 5,4,3 --switch-steps "
      "12,48 --port 8080",
      {{"Model", {"model", "tokenizer", "device", "chat_template", "model_name"}},
       {"Default schedule (requests may override it)",
        {"precisions", "scheduler", "switch_steps", "classifier", "force"}},
       {"Listening", {"host", "port", "threads", "io_timeout"}},
       {"Limits",
        {"max_tokens", "max_tokens_limit", "max_body_bytes", "max_queue", "max_request_seconds"}}});
  pmpd::cli::ParseFlags(argc, argv);
  return pmpd::cli::RunGuarded(kProgram, [] { return Run(); });
}
