#include "trainer/classifier_export.h"

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/atomic_file.h"
#include "dataset/kv_dataset.h"
#include "models/file_util.h"
#include "models/model_fingerprint.h"
#include "scheduler_runtime/kv_classifier.h"

namespace pmpd::trainer {

std::string MetricsJson(const TrainResult& r, const TrainOptions& o) {
  const EpochMetrics& best =
      r.epochs[r.best_epoch - 1];  // epochs are numbered from 1, resumed ones included
  nlohmann::json j{{"best_epoch", r.best_epoch},
                   {"epochs_run", r.epochs.size()},
                   {"val_loss", best.val_loss},
                   {"val_accuracy", best.val.accuracy},
                   {"val_macro_f1", best.val.macro_f1},
                   {"val_confusion", best.val.confusion},
                   {"majority_class", r.majority_class},
                   {"majority_val_accuracy", r.majority.accuracy},
                   {"majority_val_macro_f1", r.majority.macro_f1},
                   {"train_samples", r.train_samples},
                   {"val_samples", r.val_samples},
                   {"train_class_counts", r.train_class_counts},
                   {"val_class_counts", r.val_class_counts},
                   {"hyperparameters",
                    {{"epochs", o.epochs},
                     {"lr", o.lr},
                     {"weight_decay", o.weight_decay},
                     {"dropout", o.dropout},
                     {"grad_accum", o.grad_accum},
                     {"batch_size", o.batch_size},
                     {"val_fraction", o.val_fraction},
                     {"test_fraction", o.test_fraction},
                     {"seed", o.seed},
                     {"balance", o.balance},
                     {"patience", o.patience},
                     {"prompt_length_input", o.prompt_length_input},
                     {"label_tolerance", r.label_tolerance},
                     {"label_metric", r.label_metric},
                     {"candidate_steps", o.candidate_steps}}}};
  if (r.test_samples > 0) {
    j["test_samples"] = r.test_samples;
    j["test_class_counts"] = r.test_class_counts;
    j["test_accuracy"] = r.test.accuracy;
    j["test_macro_f1"] = r.test.macro_f1;
    j["test_confusion"] = r.test.confusion;
    j["majority_test_accuracy"] = r.majority_test.accuracy;
    j["majority_test_macro_f1"] = r.majority_test.macro_f1;
  }
  return j.dump();
}

absl::Status ExportClassifiers(const std::string& out_dir, const std::string& data_path,
                               const std::vector<TrainResult>& results,
                               const TrainOptions& options) {
  if (auto st = models::MakeDirs(base::DirName(out_dir)); !st.ok()) return st;
  auto reader = dataset::KvDatasetReader::Open(data_path);
  if (!reader.ok()) return reader.status();
  auto data_fp = models::FingerprintFile(data_path);
  if (!data_fp.ok()) return data_fp.status();
  scheduler::ClassifierManifest m;
  m.data_path = data_path;
  m.data_fingerprint = *data_fp;
  m.model_fingerprint = (*reader)->header().model_fingerprint;
  // The classifiers and the manifest replace the previous ones in one step; the directory's other
  // entries (training plots, checkpoints/) stay.
  auto dir = base::AtomicDirectory::Create(out_dir);
  if (!dir.ok()) return dir.status();
  if (!results.empty()) m.architecture = scheduler::ArchitectureName(results[0].spec);
  for (const TrainResult& r : results) {
    if (scheduler::ArchitectureName(r.spec) != m.architecture) {
      return absl::InvalidArgumentError(
          absl::StrCat(out_dir, ": the classifiers of one export must share an architecture; pair ",
                       r.high, "->", r.low, " is ", scheduler::ArchitectureName(r.spec),
                       ", the first ", m.architecture));
    }
    scheduler::ClassifierPairInfo p;
    p.high = static_cast<int>(r.high);
    p.low = static_cast<int>(r.low);
    p.file = absl::StrCat("classifier_", r.high, "_", r.low, ".safetensors");
    p.candidate_steps = r.candidate_steps;
    p.spec = r.spec;
    p.metrics_json = MetricsJson(r, options);
    if (auto st = scheduler::WriteClassifierSafetensors(models::JoinPath(dir->temp_path(), p.file),
                                                        r.state, p.high, p.low);
        !st.ok()) {
      return st;
    }
    m.pairs.push_back(std::move(p));
  }
  if (auto st = scheduler::WriteClassifierManifest(dir->temp_path(), m); !st.ok()) return st;
  // Kept from the previous directory: the training curves and checkpoints pmpd-train wrote there.
  return dir->Commit([](absl::string_view name) {
    return name == "checkpoints" ||
           (absl::StartsWith(name, "training_") && absl::EndsWith(name, ".svg"));
  });
}

}  // namespace pmpd::trainer
