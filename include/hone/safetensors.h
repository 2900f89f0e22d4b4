// safetensors: memory-mapped reading with every validation rule of the format, and writing
// (8-byte aligned header, {"format": "pt"} metadata) through a temporary file and a rename.
// Also the sharded form: model.safetensors.index.json naming one file per tensor.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "hone/tensor.h"

namespace hone {

struct SafetensorsEntry {
  std::string name;
  std::string dtype_name;         // as in the file: "BF16", "F32", "I8", ...
  std::optional<DType> dtype;     // hone's dtype, when hone has one for it
  std::size_t element_size = 0;
  Shape shape;
  std::uint64_t begin = 0, end = 0;  // byte range within the data buffer
};

class SafetensorsFile {
 public:
  // Maps and validates `path`; errors name the file and, where one is at fault, the tensor.
  static SafetensorsFile open(const std::string& path);
  const std::string& path() const { return path_; }
  const std::vector<SafetensorsEntry>& entries() const { return entries_; }  // by offset
  const SafetensorsEntry* find(std::string_view name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // The raw little-endian bytes of an entry, valid while this object (or a copy) lives.
  const void* bytes(const SafetensorsEntry& e) const;
  // A host tensor copy, in the file's dtype or converted to `as`.
  Tensor load(std::string_view name) const;
  Tensor load(std::string_view name, DType as) const;

 private:
  struct Mapping;
  std::string path_;
  std::shared_ptr<Mapping> map_;
  std::vector<SafetensorsEntry> entries_;
  std::map<std::string, std::string> metadata_;
  std::size_t data_start_ = 0;
};

// Writes host tensors (names unique) with metadata {"format": "pt"} plus `metadata`.
// The file appears complete or not at all: it is written to a temporary name and renamed.
void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// A checkpoint folder: model.safetensors, or shards listed by model.safetensors.index.json.
class SafetensorsCheckpoint {
 public:
  static SafetensorsCheckpoint open(const std::string& dir);
  std::vector<std::string> names() const;  // every tensor, sorted
  bool contains(std::string_view name) const;
  const SafetensorsFile& file_of(std::string_view name) const;
  Tensor load(std::string_view name) const;
  Tensor load(std::string_view name, DType as) const;

 private:
  std::vector<SafetensorsFile> files_;
  std::map<std::string, std::size_t, std::less<>> where_;  // tensor → index in files_
};

}  // namespace hone
