// A user of the installed pmpd package: loads a model (path as argv[1]) on the CPU engine, encodes
// "Once upon a time", decodes 16 tokens greedily through the public API and prints the prompt and
// the new text as `pmpd-generate --prompt "Once upon a time" --max-new-tokens 16` does.
#include <iostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "inference/load_engine.h"
#include "models/tokenizer.h"
#include "scheduler_runtime/scheduled_generation.h"

namespace {

int Fail(const absl::Status& status) {
  std::cerr << "pmpd_install_example: error: " << status << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace pmpd;
  if (argc != 2) {
    std::cerr << "usage: pmpd_install_example MODEL\n";
    return 2;
  }
  const std::string model_path = argv[1];
  const std::string prompt = "Once upon a time";

  auto tokenizer = models::Tokenizer::Load(model_path);
  if (!tokenizer.ok()) return Fail(tokenizer.status());
  inference::LoadEngineOptions options;
  options.verbose = false;
  auto engine = inference::LoadEngine(model_path, inference::Device::kCpu, options);
  if (!engine.ok()) return Fail(engine.status());

  const std::vector<int> prompt_ids = (*tokenizer)->Encode(prompt, /*add_bos=*/true);
  auto result = scheduler::GreedyGeneration(**engine, prompt_ids, /*max_new_tokens=*/16);
  if (!result.ok()) return Fail(result.status());

  // The new text decoded in the prompt's context (its spacing), piece by piece as pmpd-generate
  // streams it; the stop token, if any, is not shown.
  models::IncrementalDetokenizer detokenizer(**tokenizer, prompt_ids);
  std::cout << prompt;
  for (int id : result->text_ids()) std::cout << detokenizer.Push(id);
  std::cout << "\n";
  return 0;
}
