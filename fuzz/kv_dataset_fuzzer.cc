// Fuzz target: the pmpd-gen-data HDF5 reader (dataset::KvDatasetReader), structure-aware. Raw bytes
// would mostly exercise libhdf5's own parser (not ours, and not fixable here); instead a valid
// file (3 samples, pairs 4->3 and 3->2) is made once per label metric (rouge_l, excess_nll), and
// each input is a program of edits applied, to each of the two,
// through the HDF5 API: overwrite any element of any dataset or numeric attribute with arbitrary
// bytes, resize a dataset, delete a dataset or attribute, replace a string attribute, replace a
// numeric attribute by an array of another length. Then the file is read the way pmpd-train and
// `pmpd-gen-data merge` read it: Open, every pair's table, every sample's K/V, every whole sample.
#include <hdf5.h>

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "dataset/kv_dataset.h"
#include "fuzz/fuzz_util.h"

using namespace pmpd;

namespace {

const char* const kDatasets[] = {"samples/doc_id",
                                 "samples/prompt_length",
                                 "samples/prompt_offset",
                                 "samples/prompt_ids",
                                 "samples/reference_length",
                                 "samples/reference_offset",
                                 "samples/reference_ids",
                                 "pair_4_3/doc_ids",
                                 "pair_4_3/prompt_lengths",
                                 "pair_4_3/kv_offsets",
                                 "pair_4_3/labels",
                                 "pair_4_3/switch_steps",
                                 "pair_4_3/rouge_l",
                                 "pair_4_3/rouge_l_high",
                                 "pair_4_3/excess_nll",
                                 "pair_4_3/nll_high",
                                 "pair_4_3/k",
                                 "pair_4_3/v",
                                 "pair_3_2/doc_ids",
                                 "pair_3_2/prompt_lengths",
                                 "pair_3_2/kv_offsets",
                                 "pair_3_2/labels",
                                 "pair_3_2/switch_steps",
                                 "pair_3_2/rouge_l",
                                 "pair_3_2/rouge_l_high",
                                 "pair_3_2/excess_nll",
                                 "pair_3_2/nll_high",
                                 "pair_3_2/k",
                                 "pair_3_2/v"};
// {object, attribute}: the root's and the pair groups'.
const char* const kAttributes[][2] = {{"/", "format"},
                                      {"/", "format_version"},
                                      {"/", "tool_version"},
                                      {"/", "model_path"},
                                      {"/", "model_fingerprint"},
                                      {"/", "reference"},
                                      {"/", "source"},
                                      {"/", "prompt_format"},
                                      {"/", "label_metric"},
                                      {"/", "precisions"},
                                      {"/", "candidate_steps"},
                                      {"/", "max_new_tokens"},
                                      {"/", "max_prompt_tokens"},
                                      {"/", "min_prefix_tokens"},
                                      {"/", "seed"},
                                      {"/", "num_docs"},
                                      {"/", "kv_heads"},
                                      {"/", "head_dim"},
                                      {"/", "shard"},
                                      {"/", "num_samples"},
                                      {"/", "completed_samples"},
                                      {"pair_4_3", "high_precision"},
                                      {"pair_4_3", "low_precision"},
                                      {"pair_4_3", "candidate_steps"},
                                      {"pair_4_3", "num_classes"},
                                      {"pair_3_2", "candidate_steps"},
                                      {"pair_3_2", "num_classes"}};
constexpr int kNumDatasets = sizeof(kDatasets) / sizeof(kDatasets[0]);
constexpr int kNumAttributes = sizeof(kAttributes) / sizeof(kAttributes[0]);

std::string ReadAll(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// The valid file's bytes for each label metric, made once.
std::string MakeBaseFile(const std::string& metric) {
  const std::string path = fuzz::ScratchDir() + "/base_" + metric + ".h5";
  dataset::KvDatasetHeader h;
  h.tool_version = "fuzz";
  h.model_path = "m";
  h.model_fingerprint = "0";
  h.reference = "precision:8";
  h.source = "c4";
  h.precisions = {4, 3, 2};
  h.candidate_steps = {0, 4};
  h.max_new_tokens = 8;
  h.max_prompt_tokens = 64;
  h.num_docs = 3;
  h.kv_heads = 1;
  h.head_dim = 2;
  h.label_metric = metric;
  auto w = dataset::KvDatasetWriter::Create(path, h);
  if (!w.ok()) std::abort();
  for (int i = 0; i < 3; ++i) {
    dataset::KvSample s;
    s.doc_id = i * 2;
    s.prompt_ids.assign(static_cast<size_t>(i + 2), 7);
    s.reference_ids = {1, 2, 3};
    for (int p = 0; p < 2; ++p) {
      dataset::KvPairSample ps;
      ps.label = (i + p) % 3;
      if (metric == dataset::kLabelExcessNll) {
        ps.excess_nll = {0.3, 0.05};
        ps.nll_high = 1.5;
      } else {
        ps.rouge_l = {0.25, 0.5};
        ps.rouge_l_high = 0.5;
      }
      ps.k.assign(static_cast<size_t>((i + 2) * 2), 0x3c00);
      ps.v.assign(ps.k.size(), 0xbc00);
      s.pairs.push_back(std::move(ps));
    }
    if (!(*w)->Append(s).ok()) std::abort();
  }
  if (!(*w)->Finish().ok()) std::abort();
  return ReadAll(path);
}

void OverwriteElement(hid_t d, bool attribute, fuzz::Bytes& in) {
  const hid_t type = attribute ? H5Aget_type(d) : H5Dget_type(d);
  const hid_t space = attribute ? H5Aget_space(d) : H5Dget_space(d);
  const hssize_t n = H5Sget_simple_extent_npoints(space);
  const size_t esize = H5Tget_size(type);
  if (H5Tget_class(type) != H5T_STRING && n > 0 && n < (1 << 20) && esize <= 16) {
    std::vector<uint8_t> buf(static_cast<size_t>(n) * esize);
    if ((attribute ? H5Aread(d, type, buf.data())
                   : H5Dread(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data())) >= 0) {
      const size_t at = in.Read<uint32_t>() % static_cast<size_t>(n);
      for (size_t b = 0; b < esize; ++b) buf[at * esize + b] = in.Read<uint8_t>();
      if (attribute) {
        H5Awrite(d, type, buf.data());
      } else {
        H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data());
      }
    }
  }
  H5Sclose(space);
  H5Tclose(type);
}

void Edit(hid_t file, fuzz::Bytes& in) {
  const int op = in.Read<uint8_t>() % 6;
  if (op <= 2) {  // a dataset
    const char* name = kDatasets[in.Read<uint8_t>() % kNumDatasets];
    if (op == 2) {
      H5Ldelete(file, name, H5P_DEFAULT);
      return;
    }
    const hid_t d = H5Dopen2(file, name, H5P_DEFAULT);
    if (d < 0) return;
    if (op == 0) {
      OverwriteElement(d, false, in);
    } else {
      const hid_t space = H5Dget_space(d);
      hsize_t dims[4] = {0, 0, 0, 0};
      const int rank = H5Sget_simple_extent_dims(space, dims, nullptr);
      H5Sclose(space);
      if (rank >= 1 && rank <= 4) {
        dims[in.Read<uint8_t>() % rank] = in.Read<uint8_t>() % 24;
        H5Dset_extent(d, dims);
      }
    }
    H5Dclose(d);
    return;
  }
  const auto& [object, attr] = kAttributes[in.Read<uint8_t>() % kNumAttributes];
  const hid_t o = H5Oopen(file, object, H5P_DEFAULT);
  if (o < 0) return;
  if (op == 3) {
    const hid_t a = H5Aopen(o, attr, H5P_DEFAULT);
    if (a >= 0) {
      OverwriteElement(a, true, in);
      H5Aclose(a);
    }
  } else if (op == 4) {
    H5Adelete(o, attr);
  } else {  // replaced: a string, or an int64 array of another length
    H5Adelete(o, attr);
    if (in.Read<uint8_t>() & 1) {
      const std::string value = in.ReadString(64);
      const char* p = value.c_str();
      const hid_t t = H5Tcopy(H5T_C_S1);
      H5Tset_size(t, H5T_VARIABLE);
      H5Tset_cset(t, H5T_CSET_UTF8);
      const hid_t s = H5Screate(H5S_SCALAR);
      const hid_t a = H5Acreate2(o, attr, t, s, H5P_DEFAULT, H5P_DEFAULT);
      if (a >= 0) {
        H5Awrite(a, t, &p);
        H5Aclose(a);
      }
      H5Sclose(s);
      H5Tclose(t);
    } else {
      const hsize_t n = in.Read<uint8_t>() % 6;
      std::vector<int64_t> v(n);
      for (auto& x : v) x = in.Read<int64_t>();
      const hid_t s = n == 0 ? H5Screate(H5S_NULL) : H5Screate_simple(1, &n, nullptr);
      const hid_t a = H5Acreate2(o, attr, H5T_STD_I64LE, s, H5P_DEFAULT, H5P_DEFAULT);
      if (a >= 0) {
        if (n > 0) H5Awrite(a, H5T_NATIVE_INT64, v.data());
        H5Aclose(a);
      }
      H5Sclose(s);
    }
  }
  H5Oclose(o);
}

void EditAndRead(const std::string& base, const uint8_t* data, size_t size) {
  const std::string path = fuzz::WriteScratch("edited.h5", base);
  fuzz::Bytes in(data, size);
  {
    const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    if (file < 0) std::abort();
    for (int i = 0; i < 8 && !in.empty(); ++i) Edit(file, in);
    H5Fclose(file);
  }
  auto r = dataset::KvDatasetReader::Open(path);
  if (!r.ok()) return;
  for (const auto& [hi, lo] : (*r)->pairs()) {
    auto table = (*r)->ReadPair(hi, lo);
    if (!table.ok()) continue;
    std::vector<float> k, v;
    for (int64_t i = 0; i < (*r)->num_samples() && i < 64; ++i)
      (void)(*r)->ReadKv(*table, i, &k, &v);
  }
  for (int64_t i = 0; i < (*r)->num_samples() && i < 64; ++i) (void)(*r)->ReadSample(i);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  static const std::string rouge = MakeBaseFile(dataset::kLabelRougeL);
  static const std::string nll = MakeBaseFile(dataset::kLabelExcessNll);
  EditAndRead(rouge, data, size);
  EditAndRead(nll, data, size);
  return 0;
}
