// Evaluation tasks: prompts and references for pmpd-eval, with the PMPD reference evaluation's
// prompt templates.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace pmpd::eval {

enum class QualityMetric { kRougeL, kBleu };

// prompt = prefix + content + suffix; `content` (the article, dialogue, ...) is what gets shortened
// when the prompt does not fit the model's context.
struct EvalExample {
  std::string prefix, content, suffix;
  std::vector<std::string> references;  // from the data set (may be replaced by model outputs)
  std::string Prompt() const { return prefix + content + suffix; }
};

struct EvalTask {
  std::string name;
  QualityMetric metric = QualityMetric::kRougeL;
  std::string data_path;
  std::vector<EvalExample> examples;
};

// Task names: tinystories, c4, cnn_dm, dialogsum, iwslt.
const std::vector<std::string>& EvalTaskNames();

// Loads `skip` + `n` examples (n <= 0: all) and keeps the last n (so two calls with disjoint skip
// ranges give disjoint splits). `data_path` empty: the task's file under `shared_dir`.
//  - tinystories: stories of the last 25% of data/text/tinystories_train_head2MiB.txt; prompt = the
//    story's first sentence; reference = the rest of the story.
//  - c4: documents of the second half of data/c4/*.json.gz (the first half is left for
//  calibration);
//    prompt = the first 48 words; reference = the next words.
//  - cnn_dm: "For the following article: {article} Return a summary comprising of around 3
//  sentences."
//  - dialogsum: "For the following dialogue: {dialogue} Return a summary comprising of 1 or 2
//  sentences."
//  - iwslt: "Translate the following text from French to English: {fr}" (our sample stores en->fr
//    pairs: the French side is the prompt, the English side the reference); scored with BLEU.
// Errors: unknown task, missing or empty file, malformed records (counted when skippable).
absl::StatusOr<EvalTask> LoadEvalTask(const std::string& name, const std::string& shared_dir,
                                      const std::string& data_path, int skip, int n);

}  // namespace pmpd::eval
