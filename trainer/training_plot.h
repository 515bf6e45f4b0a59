// Training curves as SVG: train and validation loss per epoch, validation macro-F1 on its own
// axis, the best epoch marked.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "trainer/classifier_trainer.h"

namespace pmpd::trainer {

// Writes `path` atomically; errors name the file.
absl::Status WriteTrainingSvg(const std::string& path, const std::string& title,
                              const TrainResult& result);

}  // namespace pmpd::trainer
