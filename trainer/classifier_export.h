// Export of trained classifiers: classifier_<hi>_<lo>.safetensors per pair plus manifest.json
// (architecture, dims, classes, candidate steps, data file hash, validation metrics and the
// hyperparameters), each written atomically; the format scheduler_runtime/kv_classifier.h loads.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "trainer/classifier_trainer.h"

namespace pmpd::trainer {

// The metrics object stored per pair in manifest.json (also printed by pmpd-train --json).
std::string MetricsJson(const TrainResult& r, const TrainOptions& o);

// Writes the classifiers and manifest.json into out_dir as one base::AtomicDirectory commit: a kill
// leaves the previous export or the complete new one. Of out_dir's other entries, the training
// curves (training_*.svg) and checkpoints/ stay; anything else there is removed.
absl::Status ExportClassifiers(const std::string& out_dir, const std::string& data_path,
                               const std::vector<TrainResult>& results,
                               const TrainOptions& options);

}  // namespace pmpd::trainer
