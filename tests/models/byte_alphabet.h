// GPT-2's bytes_to_unicode, written out independently of models/bpe_tokenizer.cc for tests that
// build byte-level vocabularies by hand: printable Latin-1 bytes stand for themselves, the n-th
// other byte for U+0100 + n; returned as UTF-8.
#pragma once

#include <string>

namespace pmpd::testing {

inline std::string ByteSymbol(unsigned char b) {
  auto as_is = [](int c) {
    return (c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || c >= 0xAE;
  };
  int cp = b;
  if (!as_is(b)) {
    cp = 256;
    for (int c = 0; c < b; ++c) cp += !as_is(c);
  }
  std::string s;
  if (cp < 0x80) {
    s.push_back(static_cast<char>(cp));
  } else {
    s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
  return s;
}

}  // namespace pmpd::testing
