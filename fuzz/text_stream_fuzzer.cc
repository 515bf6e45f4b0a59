// Fuzz target: the C4 / text document streams of pmpd-gen-data (TextStream): the rest of the input
// as a JSON-lines file, as a plain text file (documents separated by <|endoftext|>), or
// gzip-compressed JSON lines (first byte picks), read to the end.
#include <zlib.h>

#include <cstdint>
#include <string>

#include "fuzz/fuzz_util.h"
#include "models/text_stream.h"

using namespace pmpd;

namespace {

std::string Gzip(const std::string& raw) {
  z_stream z{};
  if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) std::abort();
  std::string out(deflateBound(&z, raw.size()) + 32, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(raw.data()));
  z.avail_in = static_cast<uInt>(raw.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  if (deflate(&z, Z_FINISH) != Z_STREAM_END) std::abort();
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Bytes in(data, size);
  const int mode = in.Read<uint8_t>() % 4;
  const std::string rest = in.Rest();
  std::string path;
  switch (mode) {
    case 0:
      path = fuzz::WriteScratch("docs.jsonl", rest);
      break;
    case 1:
      path = fuzz::WriteScratch("docs.txt", rest);
      break;
    case 2:
      path = fuzz::WriteScratch("docs.json.gz", Gzip(rest));
      break;
    default:
      path = fuzz::WriteScratch("docs.jsonl.gz", rest);
      break;  // not gzip at all
  }
  auto stream = models::TextStream::Open(path);
  if (!stream.ok()) return 0;
  std::string text;
  for (int i = 0; i < 100000; ++i) {
    auto more = (*stream)->Next(&text);
    if (!more.ok() || !*more) break;
  }
  (void)(*stream)->location();
  return 0;
}
