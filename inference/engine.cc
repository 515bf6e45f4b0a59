#include "inference/engine.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "kernels/check.h"

namespace pmpd::inference {

absl::StatusOr<Device> ParseDevice(const std::string& text, const std::string& what) {
  if (text == "cpu") return Device::kCpu;
  if (text == "cuda") return Device::kCuda;
  if (text == "auto") return Device::kAuto;
  return absl::InvalidArgumentError(
      absl::StrCat(what, " must be cpu, cuda or auto, got \"", text, "\""));
}

std::string DeviceName(Device device) {
  switch (device) {
    case Device::kCpu:
      return "cpu";
    case Device::kCuda:
      return "cuda";
    case Device::kAuto:
      return "auto";
  }
  return "?";
}

absl::Status Engine::SelectSequence(int slot) {
  if (slot < 0 || slot >= max_batch()) {
    return absl::OutOfRangeError(absl::StrCat("sequence slot ", slot, " outside [0, ", max_batch(),
                                              "): this engine holds ", max_batch(),
                                              max_batch() == 1 ? " sequence" : " sequences"));
  }
  return absl::OkStatus();  // one slot: nothing to select
}

absl::Status CheckDecodeBatch(const Engine& engine, absl::Span<const int> slots,
                              absl::Span<const int> tokens) {
  if (slots.empty() || slots.size() != tokens.size()) {
    return absl::InvalidArgumentError(absl::StrCat("DecodeBatch: ", slots.size(), " slots and ",
                                                   tokens.size(),
                                                   " tokens (need one token per slot, >= 1)"));
  }
  std::vector<bool> seen(engine.max_batch(), false);
  for (int s : slots) {
    if (s < 0 || s >= engine.max_batch()) {
      return absl::OutOfRangeError(
          absl::StrCat("DecodeBatch: sequence slot ", s, " outside [0, ", engine.max_batch(), ")"));
    }
    if (seen[s]) {
      return absl::InvalidArgumentError(
          absl::StrCat("DecodeBatch: sequence slot ", s, " appears twice"));
    }
    seen[s] = true;
  }
  for (int id : tokens) {
    if (id < 0 || id >= engine.config().vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat("DecodeBatch: token id ", id,
                                                     " outside the vocabulary [0, ",
                                                     engine.config().vocab_size, ")"));
    }
  }
  return absl::OkStatus();
}

absl::Status Engine::DecodeBatch(absl::Span<const int> slots, absl::Span<const int> tokens,
                                 std::vector<float>* logits, std::vector<int>* argmax) {
  if (auto st = CheckDecodeBatch(*this, slots, tokens); !st.ok()) return st;
  const int selected = sequence();
  // Every slot must have room before any of them moves.
  for (int s : slots) {
    PMPD_CHECK(SelectSequence(s).ok(), "slot checked above");
    if (cache_len() >= max_context()) {
      PMPD_CHECK(SelectSequence(selected).ok(), "slot was selected before");
      return absl::OutOfRangeError(absl::StrCat("DecodeBatch: sequence slot ", s, " is full (",
                                                cache_len(), " of ", max_context(), " positions)"));
    }
  }
  const int vocab = config().vocab_size;
  if (logits != nullptr) logits->resize(slots.size() * static_cast<size_t>(vocab));
  if (argmax != nullptr) argmax->resize(slots.size());
  std::vector<float> row;
  absl::Status st;
  for (size_t i = 0; i < slots.size() && st.ok(); ++i) {
    PMPD_CHECK(SelectSequence(slots[i]).ok(), "slot checked above");
    int best = -1;
    st = DecodeStep(tokens[i], logits != nullptr ? &row : nullptr, &best);
    if (!st.ok()) break;
    if (logits != nullptr) std::copy(row.begin(), row.end(), logits->begin() + i * vocab);
    if (argmax != nullptr) (*argmax)[i] = best;
  }
  PMPD_CHECK(SelectSequence(selected).ok(), "slot was selected before");
  return st;
}

absl::Status CheckCopySequence(const Engine& engine, int from, int to, int length, int from_len) {
  for (int s : {from, to}) {
    if (s < 0 || s >= engine.max_batch()) {
      return absl::OutOfRangeError(absl::StrCat("CopySequence: sequence slot ", s, " outside [0, ",
                                                engine.max_batch(), ")"));
    }
  }
  if (from == to) {
    return absl::InvalidArgumentError(
        absl::StrCat("CopySequence: slot ", from, " copied onto itself"));
  }
  if (length < 0 || length > from_len) {
    return absl::OutOfRangeError(absl::StrCat("CopySequence: length ", length, " outside [0, ",
                                              from_len, "] (slot ", from, "'s cached tokens)"));
  }
  return absl::OkStatus();
}

absl::Status Engine::CopySequence(int /*from*/, int /*to*/, int /*length*/) {
  if (max_batch() == 1) {
    return absl::UnimplementedError(
        "CopySequence: this engine holds one sequence (nothing to branch into)");
  }
  return absl::UnimplementedError("CopySequence: not implemented by this engine");
}

KvView HostKvView(absl::Span<const float> k, absl::Span<const float> v, int kv_heads, int length,
                  int head_dim) {
  const size_t n = static_cast<size_t>(kv_heads) * length * head_dim;
  PMPD_CHECK(k.size() == n && v.size() == n,
             "HostKvView: K and V must each hold kv_heads * length * head_dim values");
  KvView view;
  view.k = k.data();
  view.v = v.data();
  view.kv_heads = kv_heads;
  view.length = length;
  view.head_dim = head_dim;
  view.position_stride = head_dim;
  view.head_stride = static_cast<int64_t>(length) * head_dim;
  return view;
}

}  // namespace pmpd::inference
