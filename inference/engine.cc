#include "inference/engine.h"

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
