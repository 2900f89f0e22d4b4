// Reading test data: whole files, and xz-compressed ones (the tokenizers in tests/data are
// stored with xz; the binary links LibLZMA::LibLZMA).
#pragma once
#include <lzma.h>

#include <cstdint>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace hone::test {

inline std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + path);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline std::string read_xz(const std::string& path) {
  const std::string in = read_file(path);
  lzma_stream s = LZMA_STREAM_INIT;
  if (lzma_stream_decoder(&s, UINT64_MAX, 0) != LZMA_OK) throw std::runtime_error("lzma init");
  std::string out;
  std::vector<std::uint8_t> buf(1 << 20);
  s.next_in = reinterpret_cast<const std::uint8_t*>(in.data());
  s.avail_in = in.size();
  lzma_ret r = LZMA_OK;
  while (r == LZMA_OK) {
    s.next_out = buf.data();
    s.avail_out = buf.size();
    r = lzma_code(&s, LZMA_FINISH);
    out.append(reinterpret_cast<const char*>(buf.data()), buf.size() - s.avail_out);
  }
  lzma_end(&s);
  if (r != LZMA_STREAM_END) throw std::runtime_error("cannot decompress " + path);
  return out;
}

}  // namespace hone::test
