// PyTorch `torch.save` checkpoints (`pytorch_model.bin`) read without LibTorch. The format: a zip
// archive of stored (uncompressed) records under one top folder named after the file,
//   <top>/data.pkl     a pickle of the state dict; tensors refer to storages by persistent id
//   <top>/data/<key>   the raw bytes of one storage
//   <top>/byteorder    "little" or "big" (absent before torch 2.1: little)
//   <top>/version      the archive format version
// The pickle is run by a small virtual machine that knows only the globals a state dict needs
// (collections.OrderedDict, torch._utils._rebuild_tensor{,_v2}, _rebuild_parameter and the typed
// torch storages); nothing in the file is ever executed.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "models/safetensors.h"

namespace pmpd::models {

// Reads every tensor of a torch.save zip archive (a state dict: an OrderedDict/dict of name ->
// tensor, possibly carrying a `_metadata` attribute set by BUILD, which is ignored). Returns the
// tensors in the pickle's key order, each as contiguous little-endian bytes (strided tensors are
// made contiguous). Storage location tags (e.g. 'cuda:0') are ignored: everything is read to host
// memory. Errors (not a zip, truncated, compressed entries, unsupported pickle opcode or global, a
// storage record missing, a tensor running past its storage) name the file and the problem. Never
// crashes. Cost: one read-only mmap of the file and one copy of every tensor's bytes.
absl::StatusOr<std::vector<TensorToWrite>> ReadTorchStateDict(const std::string& path);

}  // namespace pmpd::models
