// Fuzz target: pmpd-serve's request bodies, what any client on the network can send. First byte
// % 2: 0, the rest as a /v1/chat/completions body; 1, as a /v1/completions body. A request that
// parses is also turned into every response object (echoing its model name and a text with the
// body's bytes), which must serialize without throwing.
#include <cstdint>
#include <string>

#include "fuzz/fuzz_util.h"
#include "serve/openai_api.h"

using namespace pmpd;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Bytes in(data, size);
  const int mode = in.Read<uint8_t>() % 2;
  const std::string body = in.Rest();
  serve::RequestLimits limits;
  limits.max_tokens = 4096;
  auto r = mode == 0 ? serve::ParseChatCompletionRequest(body, limits)
                     : serve::ParseCompletionRequest(body, limits);
  if (!r.ok()) {
    (void)serve::Dump(serve::ErrorJson(std::string(r.status().message()), "invalid_request_error"));
    return 0;
  }
  serve::CompletionOutput out;
  out.text = body.substr(0, 64);
  out.finish_reason = "stop";
  out.token_precisions = r->precisions;
  out.precisions = r->precisions;
  const nlohmann::json summary = serve::PmpdSummary(out);
  (void)serve::Dump(serve::CompletionResponse(*r, "id", 0, out));
  (void)serve::Dump(serve::StreamChunk(*r, "id", 0, out.text, 4, "", nullptr));
  (void)serve::Dump(serve::StreamChunk(*r, "id", 0, "", 0, "stop", &summary));
  (void)serve::Dump(serve::StreamUsageChunk(*r, "id", 0, out));
  return 0;
}
