// pmpd-serve's server: one engine (CPU or CUDA) behind an OpenAI-compatible HTTP API and the
// PMPD chat page.
//
//   GET  /                     the chat page (serve/web/index.html, compiled into the binary)
//   GET  /health               {"status": "ok"}
//   GET  /v1/models            the model, with its precisions, chat template, default schedule
//   POST /v1/chat/completions  OpenAI chat completions, streamed (server-sent events) or not
//   POST /v1/completions       OpenAI text completions, streamed or not
//
// Requests run one at a time on the engine (it holds one KV cache); up to `max_queue` wait for it,
// more are answered 503. Bad requests are answered 400 with an OpenAI-style JSON error, oversized
// bodies 413, unknown paths 404; nothing a client sends ends the process. A streamed request whose
// client goes away stops generating at the next token.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "inference/engine.h"
#include "serve/openai_api.h"

namespace pmpd::serve {

struct ServerOptions {
  std::string model_path;         // Hugging Face directory, any-precision checkpoint or .gguf
  std::string tokenizer_path;     // default: model_path
  std::string classifier_dir;     // pmpd-train output: enables the learned scheduler
  bool force_classifier = false;  // use it even when its manifest names another model
  inference::Device device = inference::Device::kCpu;
  std::string host = "127.0.0.1";
  int port = 8080;  // 0: any free port (Bind returns it)
  // The default schedule of requests that name none: precisions high to low (empty: the
  // checkpoint's highest precision; none on a plain model), the scheduler ("static" or "learned")
  // and the static switch steps.
  std::vector<int> precisions;
  std::string scheduler = "static";
  std::vector<int> switch_steps;
  std::string chat_template = "auto";  // as pmpd-generate --chat-template
  std::string model_name;              // the id /v1/models reports (default: the file's name)
  RequestLimits limits;
  int64_t max_body_bytes = 1 << 20;
  int max_queue = 8;                 // requests waiting for the engine before 503
  int threads = 4;                   // HTTP workers beyond max_queue + 1 (idle clients hold one)
  int io_timeout_s = 10;             // socket read/write timeouts
  double max_request_seconds = 600;  // generation is cut there (finish_reason "length")
};

// Every option checked without loading anything (pmpd-serve runs it before the model loads;
// Create runs it too). Errors name the command-line flag.
absl::Status CheckServerOptions(const ServerOptions& options);

class Server {
 public:
  // Loads the tokenizer, the engine and the classifiers and checks the default schedule against
  // the checkpoint. Errors name the file or the option.
  static absl::StatusOr<std::unique_ptr<Server>> Create(const ServerOptions& options);
  ~Server();

  // Binds the listening socket; returns the port (the chosen one for port 0).
  absl::StatusOr<int> Bind();
  // Serves until Stop() (from any thread). Returns when the listener has closed, at once when
  // Stop() came first.
  void Serve();
  // Closes the listener; true when it was running (a Stop() racing a Serve() that has not started
  // listening yet returns false: call again until Serve returns).
  bool Stop();

  // What /v1/models reports about the model (also printed at start).
  nlohmann::json ModelInfo() const;

 private:
  struct Impl;
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace pmpd::serve
