// A trained classifier network as the state a file holds (LibTorch header: trainer/ and its tests
// only). The prompt-length input's training standardisation is folded into length.weight and
// length.bias (w / scale, b - w * center / scale), so the state maps ln T itself, as
// scheduler_runtime's KvClassifier reads it (kv_classifier_module.h).
#pragma once

#include "scheduler_runtime/kv_classifier.h"
#include "scheduler_runtime/kv_classifier_module.h"

namespace pmpd::trainer {

scheduler::ClassifierState ExportedState(scheduler::KvClassifierNet& net);

}  // namespace pmpd::trainer
