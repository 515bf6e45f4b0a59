#include "serve/server.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <exception>
#include <map>
#include <mutex>
#include <optional>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "httplib.h"
#include "inference/generator.h"
#include "inference/load_engine.h"
#include "models/chat_template.h"
#include "models/tokenizer.h"
#include "scheduler_runtime/kv_classifier.h"
#include "scheduler_runtime/precision_scheduler.h"
#include "scheduler_runtime/scheduled_generation.h"
#include "serve/web_page.h"

namespace pmpd::serve {
namespace {

using nlohmann::json;

// A request turned into what GenerateScheduled needs; built and checked before anything is sent,
// so that every problem with it is a 400.
struct Prepared {
  std::vector<int> prompt_ids;
  scheduler::ScheduledGenerationOptions sopt;
  std::unique_ptr<scheduler::PrecisionScheduler> owned;  // static schedules: one per request
  scheduler::PrecisionScheduler* sched = nullptr;        // owned, a cached learned one, or none
  std::string scheduler_name;                            // "static", "learned", "uniform", "none"
  std::vector<int> precisions;
};

std::string FileName(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p.substr(p.rfind('/') + 1);
}

}  // namespace

struct Server::Impl {
  ServerOptions options;
  std::unique_ptr<models::Tokenizer> tok;
  std::unique_ptr<inference::Engine> engine;
  std::optional<models::ChatTemplate> chat;
  std::string chat_error;  // why there is no chat template (answered to chat requests)
  // Texts the tokenizer would read as a control token (end of turn, BOS, EOS) inside a message: a
  // user could close their own turn and open another. Refused (400) rather than encoded.
  std::vector<std::string> control_texts;
  std::optional<scheduler::ClassifierManifest> manifest;
  std::string model_name;

  std::mutex engine_mu;   // one generation at a time
  std::mutex learned_mu;  // guards `learned` (its schedulers are used under engine_mu)
  std::map<std::vector<int>, std::unique_ptr<scheduler::PrecisionScheduler>> learned;
  std::atomic<int> waiting{0};
  std::atomic<bool> stop_requested{false};
  std::atomic<uint64_t> next_id{0};
  uint64_t id_salt = 0;

  httplib::Server http;

  std::string NewId(const char* prefix) {
    return absl::StrFormat("%s-%08x%06x", prefix, static_cast<uint32_t>(id_salt),
                           static_cast<uint32_t>(next_id.fetch_add(1)));
  }

  // The learned scheduler for a ladder, made once (loading the classifiers) and reused.
  absl::StatusOr<scheduler::PrecisionScheduler*> Learned(const std::vector<int>& ladder) {
    std::lock_guard<std::mutex> lock(learned_mu);
    auto it = learned.find(ladder);
    if (it != learned.end()) return it->second.get();
    scheduler::LearnedSchedulerOptions lo;
    lo.classifier_dir = options.classifier_dir;
    lo.precisions = ladder;
    lo.kv_heads = engine->config().num_key_value_heads;
    lo.head_dim = engine->config().head_dim;
    lo.device = inference::DeviceName(engine->device());
    // lo.model_path stays empty: Create checked the classifiers against the model once
    // (CheckClassifierModel reads every weight byte; not again on a request's path).
    auto made = scheduler::MakeLearnedScheduler(lo);
    if (!made.ok()) return made.status();
    auto* raw = made->get();
    learned[ladder] = std::move(*made);
    return raw;
  }

  // Everything about a request that can be wrong, checked before a byte of the answer is sent.
  absl::StatusOr<Prepared> Prepare(const CompletionRequest& req) {
    Prepared p;
    if (req.chat) {
      if (!chat) return absl::InvalidArgumentError(chat_error);
      for (size_t i = 0; i < req.messages.size(); ++i) {
        for (const std::string& t : control_texts) {
          if (req.messages[i].content.find(t) != std::string::npos) {
            return absl::InvalidArgumentError(
                absl::StrCat("messages[", i, "].content holds \"", t,
                             "\", which this model's tokenizer reads as a control token (it would "
                             "end the turn)"));
          }
        }
      }
      auto ids = chat->Encode(*tok, req.messages, /*add_generation_prompt=*/true);
      if (!ids.ok()) return absl::InvalidArgumentError(ids.status().message());
      p.prompt_ids = std::move(*ids);
    } else {
      p.prompt_ids = tok->Encode(req.prompt, /*add_bos=*/true);
    }
    inference::GenerationOptions& g = p.sopt.generation;
    g.max_new_tokens = req.max_tokens;
    g.sampling.temperature = static_cast<float>(req.temperature);
    g.sampling.top_p = static_cast<float>(req.top_p);
    g.sampling.top_k = req.top_k;
    g.sampling.seed = req.seed.value_or(std::random_device{}());
    if (req.chat) g.stop_ids = chat->StopIds(*tok);

    // The schedule: the request's, else the server's default.
    const bool any_precision = engine->max_precision() > 0;
    if (req.precision != 0) {
      p.precisions = {req.precision};
    } else if (!req.precisions.empty()) {
      p.precisions = req.precisions;
    } else {
      p.precisions = options.precisions;
      if (p.precisions.empty() && any_precision) p.precisions = {engine->max_precision()};
    }
    const std::string sched_name =
        req.scheduler.empty() ? (req.precision != 0 ? "static" : options.scheduler) : req.scheduler;
    if (!any_precision &&
        (!req.precisions.empty() || req.precision != 0 || req.switch_steps.has_value() ||
         req.prefill_precision != 0 || !req.scheduler.empty())) {
      return absl::InvalidArgumentError(
          "this model has plain weights (one precision): precisions, precision, scheduler, "
          "switch_steps and prefill_precision need an any-precision checkpoint (pmpd-quantize)");
    }
    if (!p.precisions.empty()) {
      if (auto st = scheduler::CheckPrecisionRange(engine->min_precision(), engine->max_precision(),
                                                   p.precisions);
          !st.ok())
        return st;
    }
    if (req.switch_steps.has_value() && (p.precisions.size() < 2 || sched_name == "learned")) {
      return absl::InvalidArgumentError(
          p.precisions.size() < 2
              ? "switch_steps needs a schedule of two or more precisions"
              : "switch_steps is for the static scheduler (the server's default is learned: add "
                "\"scheduler\": \"static\")");
    }
    if (p.precisions.empty()) {
      p.scheduler_name = "none";  // a plain model: its one precision
    } else if (sched_name == "learned" && p.precisions.size() > 1) {
      if (options.classifier_dir.empty()) {
        return absl::InvalidArgumentError(
            "scheduler \"learned\" needs classifiers: start pmpd-serve with --classifier DIR");
      }
      auto s = Learned(p.precisions);
      if (!s.ok()) return s.status();
      p.sched = *s;
      p.scheduler_name = "learned";
    } else {
      std::vector<int> steps;
      if (req.switch_steps.has_value()) {
        steps = *req.switch_steps;
      } else if (p.precisions == options.precisions) {
        steps = options.switch_steps;
      } else if (p.precisions.size() > 1) {
        return absl::InvalidArgumentError(
            absl::StrCat("a static schedule of ", p.precisions.size(),
                         " precisions needs switch_steps (one cumulative step per adjacent pair)"));
      }
      if (p.precisions.size() == 1) steps.clear();
      auto s = scheduler::MakeStaticScheduler(p.precisions, steps);
      if (!s.ok()) return s.status();
      p.owned = std::move(*s);
      p.sched = p.owned.get();
      p.scheduler_name = p.precisions.size() == 1 ? "uniform" : "static";
    }
    p.sopt.prefill_precision = req.prefill_precision;
    if (auto st = scheduler::CheckScheduledGeneration(*engine, p.prompt_ids, p.sopt, p.sched);
        !st.ok())
      return st;
    return p;
  }

  // Runs a prepared request on the engine (engine_mu held by the caller). `on_piece(text,
  // precision)` gets the text of every token as soon as it is whole UTF-8 (may be empty).
  absl::StatusOr<CompletionOutput> Run(Prepared& p,
                                       const std::function<void(const std::string&, int)>& on_piece,
                                       const std::function<bool()>& client_gone) {
    CompletionOutput out;
    models::IncrementalDetokenizer detok(*tok, p.prompt_ids);
    const auto start = std::chrono::steady_clock::now();
    bool timed_out = false, gone = false, shutting_down = false;
    p.sopt.generation.should_stop = [&] {
      if (client_gone && client_gone()) gone = true;
      const double s =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (s > options.max_request_seconds) timed_out = true;
      if (stop_requested.load()) shutting_down = true;
      return gone || timed_out || shutting_down;
    };
    const auto& eos = engine->config().eos_token_ids;
    auto r = scheduler::GenerateScheduled(*engine, p.prompt_ids, p.sopt, p.sched,
                                          [&](int id, int precision) {
                                            // A stop token (EOS, end of turn) ends the answer and
                                            // is not part of its text.
                                            if (inference::IsStopToken(p.sopt.generation, eos, id))
                                              return;
                                            std::string piece = detok.Push(id);
                                            out.text += piece;
                                            if (on_piece) on_piece(piece, precision);
                                          });
    if (!r.ok()) return r.status();
    const inference::GenerationResult& g = r->generation;
    out.finish_reason = g.finish_reason == "eos" ? "stop" : "length";
    if (timed_out) out.stopped_by = "time limit (--max-request-seconds)";
    if (gone) out.stopped_by = "client disconnected";
    if (shutting_down) out.stopped_by = "server shutting down";
    out.prompt_tokens = static_cast<int>(g.prompt_ids.size());
    out.completion_tokens = static_cast<int>(g.new_ids.size());
    out.token_precisions = r->token_precisions;
    out.avg_bits = r->avg_bits;
    out.prefill_ms = g.prefill_ms;
    out.decode_ms = g.decode_ms;
    out.tokens_per_s = g.decode_tokens_per_s();
    out.scheduler = p.scheduler_name;
    out.precisions = p.precisions;
    if (p.sched != nullptr && p.scheduler_name != "uniform") out.schedule = p.sched->Describe();
    return out;
  }

  static void Reply(httplib::Response& res, int status, const json& body) {
    res.status = status;
    res.set_content(Dump(body), "application/json");
  }

  static void ReplyError(httplib::Response& res, const absl::Status& st) {
    int status = 500;
    std::string type = "server_error";
    switch (st.code()) {
      case absl::StatusCode::kInvalidArgument:
      case absl::StatusCode::kOutOfRange:
      case absl::StatusCode::kNotFound:
      case absl::StatusCode::kFailedPrecondition:
        status = 400;
        type = "invalid_request_error";
        break;
      case absl::StatusCode::kResourceExhausted:
        status = 503;
        type = "server_busy";
        break;
      default:
        break;
    }
    Reply(res, status, ErrorJson(std::string(st.message()), type));
  }

  void HandleCompletion(const httplib::Request& req, httplib::Response& res, bool chat) {
    auto parsed = chat ? ParseChatCompletionRequest(req.body, options.limits)
                       : ParseCompletionRequest(req.body, options.limits);
    if (!parsed.ok()) return ReplyError(res, parsed.status());
    // One model per server: another name is OpenAI's 404 model_not_found (clients that send
    // none get this one).
    if (parsed->model.empty()) parsed->model = model_name;
    if (parsed->model != model_name) {
      return Reply(res, 404,
                   ErrorJson(absl::StrCat("the model ", parsed->model,
                                          " does not exist; this server serves ", model_name,
                                          " (GET /v1/models)"),
                             "invalid_request_error", "model_not_found"));
    }
    // Prepared while another request may be generating: it only reads the engine's shape.
    auto p = Prepare(*parsed);
    if (!p.ok()) return ReplyError(res, p.status());
    auto prepared = std::make_shared<Prepared>(std::move(*p));
    // Admission: one atomic step, so that concurrent requests cannot all pass the check.
    if (waiting.fetch_add(1) >= options.max_queue) {
      --waiting;
      res.set_header("Retry-After", "5");
      return ReplyError(res, absl::ResourceExhaustedError(absl::StrCat(
                                 options.max_queue,
                                 " requests are already waiting for the model; try again later")));
    }
    const std::string id = NewId(chat ? "chatcmpl" : "cmpl");
    const int64_t created = static_cast<int64_t>(std::time(nullptr));
    auto request = std::make_shared<CompletionRequest>(std::move(*parsed));
    if (!request->stream) {
      std::unique_lock<std::mutex> lock(engine_mu);
      --waiting;
      if (stop_requested.load())
        return ReplyError(res, absl::UnavailableError("the server is shutting down"));
      auto out = Run(*prepared, nullptr, nullptr);
      lock.unlock();
      if (!out.ok()) return ReplyError(res, out.status());
      return Reply(res, 200, CompletionResponse(*request, id, created, *out));
    }
    res.set_header("Cache-Control", "no-cache");
    // The admission is released once: by the provider when it runs, else (the client went away
    // before the response started) by the releaser.
    auto admitted = std::make_shared<std::atomic<bool>>(true);
    auto release = [this, admitted] {
      if (admitted->exchange(false)) --waiting;
    };
    auto provider = [this, request, prepared, id, created, release](size_t,
                                                                    httplib::DataSink& sink) {
      std::unique_lock<std::mutex> lock(engine_mu);
      release();
      bool ok = true;
      auto send = [&](const json& j) {
        if (!ok) return;
        const std::string event = absl::StrCat("data: ", Dump(j), "\n\n");
        ok = sink.write(event.data(), event.size());
      };
      if (stop_requested.load()) {
        send(ErrorJson("the server is shutting down", "server_busy"));
        sink.done();
        return true;
      }
      if (request->chat) send(StreamRoleChunk(*request, id, created));
      auto out = Run(
          *prepared,
          [&](const std::string& piece, int precision) {
            send(StreamChunk(*request, id, created, piece, precision, "", nullptr));
          },
          [&] { return !ok; });
      lock.unlock();
      if (!out.ok()) {
        // The headers are gone: the error travels as an event, as OpenAI's streams do.
        send(ErrorJson(std::string(out.status().message()), "server_error"));
      } else {
        const json summary = PmpdSummary(*out);
        send(StreamChunk(*request, id, created, "", 0, out->finish_reason, &summary));
        if (request->include_usage) send(StreamUsageChunk(*request, id, created, *out));
      }
      if (ok) {
        static const char kDone[] = "data: [DONE]\n\n";
        sink.write(kDone, sizeof(kDone) - 1);
      }
      sink.done();
      return true;
    };
    res.set_chunked_content_provider("text/event-stream", provider, [release](bool) { release(); });
  }

  void Routes() {
    http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      // --max-body-bytes is enforced by httplib on Content-Length only: a chunked body would be
      // read whole, however large.
      if (req.has_header("Transfer-Encoding")) {
        Reply(res, 411,
              ErrorJson("send the body with a Content-Length (chunked request bodies are not "
                        "accepted)",
                        "invalid_request_error"));
        return httplib::Server::HandlerResponse::Handled;
      }
      if (req.has_header("Range")) {  // httplib would cut our JSON to the range
        Reply(res, 416, ErrorJson("Range requests are not supported", "invalid_request_error"));
        return httplib::Server::HandlerResponse::Handled;
      }
      if (stop_requested.load()) {
        Reply(res, 503, ErrorJson("the server is shutting down", "server_busy"));
        return httplib::Server::HandlerResponse::Handled;
      }
      return httplib::Server::HandlerResponse::Unhandled;
    });
    http.Get("/", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(std::string(WebPage()), "text/html; charset=utf-8");
    });
    http.Get("/health", [](const httplib::Request&, httplib::Response& res) {
      Reply(res, 200, {{"status", "ok"}});
    });
    http.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
      json info = ModelInfo();
      Reply(res, 200, {{"object", "list"}, {"data", json::array({info})}});
    });
    http.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
      HandleCompletion(req, res, /*chat=*/true);
    });
    http.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
      HandleCompletion(req, res, /*chat=*/false);
    });
    // Errors httplib answers itself (404, 413, 400 for a malformed request line) get a JSON body.
    http.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return;
      std::string message = absl::StrCat("HTTP ", res.status);
      if (res.status == 404) message = absl::StrCat("no route for ", req.method, " ", req.path);
      if (res.status == 413) message = "the request body is larger than --max-body-bytes";
      if (res.status == 405) message = absl::StrCat(req.method, " is not allowed on ", req.path);
      Reply(res, res.status, ErrorJson(message, "invalid_request_error"));
    });
    http.set_exception_handler(
        [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
          std::string what = "unknown exception";
          try {
            std::rethrow_exception(ep);
          } catch (const std::exception& e) {
            what = e.what();
          } catch (...) {
          }
          Reply(res, 500, ErrorJson(what, "server_error"));
        });
  }

  json ModelInfo() const {
    json pmpd;
    pmpd["device"] = inference::DeviceName(engine->device());
    pmpd["min_precision"] = engine->min_precision();
    pmpd["max_precision"] = engine->max_precision();
    pmpd["max_context"] = engine->max_context();
    pmpd["chat_template"] = chat ? json(chat->name()) : json();
    pmpd["default"] = {{"precisions", options.precisions},
                       {"scheduler", options.scheduler},
                       {"switch_steps", options.switch_steps}};
    json pairs = json::array();
    if (manifest) {
      for (const auto& pr : manifest->pairs) pairs.push_back({pr.high, pr.low});
    }
    pmpd["classifier_pairs"] = pairs;
    pmpd["max_tokens_limit"] = options.limits.max_tokens;
    return {{"id", model_name},
            {"object", "model"},
            {"created", 0},
            {"owned_by", "pmpd"},
            {"pmpd", pmpd}};
  }
};

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Server::~Server() { Stop(); }

absl::Status CheckServerOptions(const ServerOptions& o) {
  auto bad = [](const std::string& m) { return absl::InvalidArgumentError(m); };
  if (o.model_path.empty()) return bad("--model is required (see --help)");
  if (o.port < 0 || o.port > 65535)
    return bad(absl::StrCat("--port must be in [0, 65535], got ", o.port));
  if (!o.precisions.empty()) {
    if (auto st = scheduler::CheckPrecisionLadder(o.precisions, 1, "--precisions"); !st.ok())
      return st;
  }
  if (o.scheduler != "static" && o.scheduler != "learned")
    return bad(absl::StrCat("--scheduler ", o.scheduler, ": expected static or learned"));
  if (o.scheduler == "learned" && !o.switch_steps.empty())
    return bad("--switch-steps is for the static scheduler; the learned one predicts the steps");
  if (o.scheduler == "learned" && o.classifier_dir.empty())
    return bad("--scheduler learned needs --classifier DIR (pmpd-train)");
  if (o.force_classifier && o.classifier_dir.empty())
    return bad("--force is for --classifier (none given)");
  if (o.limits.max_tokens < 1 || o.limits.default_max_tokens < 1 ||
      o.limits.default_max_tokens > o.limits.max_tokens) {
    return bad(absl::StrCat("need 1 <= --max-tokens (", o.limits.default_max_tokens,
                            ") <= --max-tokens-limit (", o.limits.max_tokens, ")"));
  }
  for (const auto& [value, flag] :
       {std::pair<int64_t, const char*>{o.max_body_bytes, "--max-body-bytes"},
        {o.max_queue, "--max-queue"},
        {o.threads, "--threads"},
        {o.io_timeout_s, "--io-timeout"}}) {
    if (value < 1) return bad(absl::StrCat(flag, " must be >= 1, got ", value));
  }
  if (!(o.max_request_seconds > 0)) return bad("--max-request-seconds must be > 0");
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Server>> Server::Create(const ServerOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  Impl& s = *impl;
  if (auto st = CheckServerOptions(options); !st.ok()) return st;
  auto tok = models::Tokenizer::Load(options.tokenizer_path.empty() ? options.model_path
                                                                    : options.tokenizer_path);
  if (!tok.ok()) return tok.status();
  s.tok = std::move(*tok);
  inference::LoadEngineOptions lo;
  lo.verbose = false;
  auto engine = inference::LoadEngine(options.model_path, options.device, lo);
  if (!engine.ok()) return engine.status();
  s.engine = std::move(*engine);
  auto chat = models::ChatTemplate::ForModel(options.chat_template, *s.tok);
  if (chat.ok()) {
    s.chat = *chat;
  } else if (options.chat_template != "auto") {
    return chat.status();
  } else {
    s.chat_error = absl::StrCat(
        "this model has no chat template: use /v1/completions, or start pmpd-serve with "
        "--chat-template ",
        absl::StrJoin(models::ChatTemplate::Names(), "|"));
  }
  if (s.chat) {
    // The control tokens of the chat formats we know, and whatever the stop ids decode to: kept
    // when the tokenizer reads the text as one token (byte-level BPE's added tokens; sentencepiece
    // does not parse "</s>" in text, so nothing is refused there).
    std::vector<std::string> candidates = {"<|im_start|>",
                                           "<|im_end|>",
                                           "<|endoftext|>",
                                           "<|begin_of_text|>",
                                           "<|eot_id|>",
                                           "<|end_of_text|>",
                                           "<|start_header_id|>",
                                           "<|end_header_id|>",
                                           "<s>",
                                           "</s>"};
    for (int id : s.chat->StopIds(*s.tok))
      candidates.push_back(s.tok->Decode(std::vector<int>{id}));
    for (const std::string& text : candidates) {
      if (text.size() > 1 && s.tok->Encode(text, /*add_bos=*/false).size() == 1 &&
          std::find(s.control_texts.begin(), s.control_texts.end(), text) ==
              s.control_texts.end()) {
        s.control_texts.push_back(text);
      }
    }
  }
  if (!options.classifier_dir.empty()) {
    if (auto st = scheduler::CheckClassifierModel(options.classifier_dir, options.model_path,
                                                  options.force_classifier);
        !st.ok())
      return st;
    auto m = scheduler::ReadClassifierManifest(options.classifier_dir);
    if (m.ok()) s.manifest = std::move(*m);  // reference .pt directories have none
  }
  s.model_name = options.model_name.empty() ? FileName(options.model_path) : options.model_name;
  s.id_salt = std::random_device{}();
  // The default schedule must work before the first request: check it now.
  CompletionRequest probe;
  probe.chat = false;
  probe.prompt = "x";
  probe.max_tokens = 1;
  if (auto p = s.Prepare(probe); !p.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the default schedule (--precisions, --scheduler, --switch-steps): ",
                     p.status().message()));
  }
  s.http.set_payload_max_length(static_cast<size_t>(options.max_body_bytes));
  s.http.set_read_timeout(options.io_timeout_s);
  s.http.set_write_timeout(options.io_timeout_s);
  // Workers: one per request that may wait for the engine, one for the running one, and
  // `threads` more so that /health, /v1/models and 503 answers never wait behind them. Idle
  // keep-alive connections hold a worker: they are closed after 2 s.
  const int threads = std::max(1, options.threads) + std::max(0, options.max_queue) + 1;
  s.http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  s.http.set_keep_alive_timeout(2);
  s.Routes();
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

absl::StatusOr<int> Server::Bind() {
  const std::string& host = impl_->options.host;
  int port = impl_->options.port;
  if (port == 0) {
    port = impl_->http.bind_to_any_port(host);
    if (port < 0) return absl::UnavailableError(absl::StrCat("cannot listen on ", host));
  } else if (!impl_->http.bind_to_port(host, port)) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", host, ":", port,
                                               " (in use, or not an address of this machine)"));
  }
  return port;
}

void Server::Serve() {
  if (!impl_->stop_requested.load()) impl_->http.listen_after_bind();
}

bool Server::Stop() {
  if (impl_ == nullptr) return false;
  impl_->stop_requested = true;
  if (!impl_->http.is_running()) return false;
  impl_->http.stop();
  return true;
}

nlohmann::json Server::ModelInfo() const { return impl_->ModelInfo(); }

}  // namespace pmpd::serve
