// safetensors reading (mmap + validation), writing (aligned header, atomic rename) and the
// sharded checkpoint index.
#include "hone/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "hone/error.h"

namespace hone {

namespace {

constexpr const char* kOp = "safetensors";
constexpr std::uint64_t kMaxHeader = 100'000'000;

struct DtypeSpec {
  const char* name;
  std::size_t size;
  std::optional<DType> dtype;
};
const DtypeSpec kDtypes[] = {
    {"BOOL", 1, DType::boolean}, {"U8", 1, DType::u8},     {"I8", 1, {}},          {"I16", 2, {}},
    {"U16", 2, {}},              {"F16", 2, DType::f16},   {"BF16", 2, DType::bf16}, {"I32", 4, DType::i32},
    {"U32", 4, {}},              {"F32", 4, DType::f32},   {"F64", 8, DType::f64}, {"I64", 8, DType::i64},
    {"U64", 8, {}},              {"F8_E4M3", 1, {}},       {"F8_E5M2", 1, {}}};

const DtypeSpec* find_dtype(std::string_view name) {
  for (const DtypeSpec& d : kDtypes)
    if (name == d.name) return &d;
  return nullptr;
}

const char* file_dtype_name(DType t) {
  for (const DtypeSpec& d : kDtypes)
    if (d.dtype == t) return d.name;
  return "?";
}

}  // namespace

struct SafetensorsFile::Mapping {
  void* addr = nullptr;
  std::size_t size = 0;
  ~Mapping() {
    if (addr && size) munmap(addr, size);
  }
};

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  SafetensorsFile f;
  f.path_ = path;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  HONE_CHECK(fd >= 0, kOp, "cannot open ", path, ": ", std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    ::close(fd);
    fail(kOp, cat("cannot stat ", path));
  }
  const auto size = static_cast<std::uint64_t>(st.st_size);
  f.map_ = std::make_shared<Mapping>();
  if (size > 0) {
    void* addr = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (addr == MAP_FAILED) {
      ::close(fd);
      fail(kOp, cat("cannot map ", path, ": ", std::strerror(errno)));
    }
    f.map_->addr = addr;
    f.map_->size = size;
  }
  ::close(fd);
  const auto* base = static_cast<const unsigned char*>(f.map_->addr);

  HONE_CHECK(size >= 8, kOp, path, ": file of ", size, " bytes is too short for a header length");
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | base[i];  // little-endian u64
  HONE_CHECK(n <= kMaxHeader, kOp, path, ": header length ", n, " exceeds the 100 MB limit");
  HONE_CHECK(n >= 2 && 8 + n <= size, kOp, path, ": header length ", n, " does not fit in a file of ", size, " bytes");
  const std::string_view header(reinterpret_cast<const char*>(base + 8), n);
  HONE_CHECK(header.front() == '{', kOp, path, ": header does not start with '{'");

  std::set<std::string> keys;
  std::string duplicate;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(header.begin(), header.end(),
                              [&](int depth, nlohmann::json::parse_event_t ev, nlohmann::json& v) {
                                if (depth == 1 && ev == nlohmann::json::parse_event_t::key &&
                                    !keys.insert(v.get<std::string>()).second)
                                  duplicate = v.get<std::string>();
                                return true;
                              });
  } catch (const nlohmann::json::exception& e) {
    fail(kOp, cat(path, ": header is not valid JSON (", e.what(), ")"));
  }
  HONE_CHECK(duplicate.empty(), kOp, path, ": tensor '", duplicate, "' appears twice in the header");
  HONE_CHECK(j.is_object(), kOp, path, ": header is not a JSON object");

  f.data_start_ = 8 + n;
  const std::uint64_t data_size = size - f.data_start_;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& name = it.key();
    const nlohmann::json& v = it.value();
    if (name == "__metadata__") {
      HONE_CHECK(v.is_object(), kOp, path, ": __metadata__ must be an object of strings");
      for (auto m = v.begin(); m != v.end(); ++m) {
        HONE_CHECK(m.value().is_string(), kOp, path, ": __metadata__ value of '", m.key(), "' is not a string");
        f.metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string where = cat(path, ": tensor '", name, "'");
    HONE_CHECK(v.is_object() && v.contains("dtype") && v.contains("shape") && v.contains("data_offsets"),
               kOp, where, " needs dtype, shape and data_offsets");
    SafetensorsEntry e;
    e.name = name;
    HONE_CHECK(v["dtype"].is_string(), kOp, where, ": dtype is not a string");
    e.dtype_name = v["dtype"].get<std::string>();
    const DtypeSpec* spec = find_dtype(e.dtype_name);
    HONE_CHECK(spec != nullptr, kOp, where, ": unknown dtype '", e.dtype_name, "'");
    e.dtype = spec->dtype;
    e.element_size = spec->size;
    HONE_CHECK(v["shape"].is_array(), kOp, where, ": shape is not an array");
    std::uint64_t numel = 1;
    for (const auto& d : v["shape"]) {
      HONE_CHECK(d.is_number_unsigned() || (d.is_number_integer() && d.get<std::int64_t>() >= 0), kOp,
                 where, ": shape ", v["shape"].dump(), " has a dimension that is not a non-negative integer");
      e.shape.push_back(d.get<std::int64_t>());
      numel *= d.get<std::uint64_t>();
    }
    const auto& off = v["data_offsets"];
    HONE_CHECK(off.is_array() && off.size() == 2 && off[0].is_number_unsigned() && off[1].is_number_unsigned(),
               kOp, where, ": data_offsets must be two non-negative integers");
    e.begin = off[0].get<std::uint64_t>();
    e.end = off[1].get<std::uint64_t>();
    HONE_CHECK(e.begin <= e.end, kOp, where, ": data_offsets [", e.begin, ", ", e.end, "] are reversed");
    HONE_CHECK(e.end - e.begin == numel * e.element_size, kOp, where, ": data_offsets [", e.begin, ", ",
               e.end, "] hold ", e.end - e.begin, " bytes but shape ", shape_str(e.shape), " of ",
               e.dtype_name, " needs ", numel * e.element_size);
    f.entries_.push_back(std::move(e));
  }
  std::sort(f.entries_.begin(), f.entries_.end(), [](const SafetensorsEntry& a, const SafetensorsEntry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  std::uint64_t expect = 0;
  for (const SafetensorsEntry& e : f.entries_) {
    HONE_CHECK(e.begin == expect, kOp, path, ": tensor '", e.name, "' starts at byte ", e.begin, " but ",
               e.begin < expect ? "it overlaps the previous tensor, which ends at " : "the previous tensor ends at ",
               expect, " (tensors must tile the data buffer)");
    expect = e.end;
  }
  HONE_CHECK(expect == data_size, kOp, path, ": tensors cover ", expect, " bytes but the data buffer has ",
             data_size, " (8 + header ", n, " + data must equal the file size ", size, ")");
  return f;
}

const SafetensorsEntry* SafetensorsFile::find(std::string_view name) const {
  for (const SafetensorsEntry& e : entries_)
    if (e.name == name) return &e;
  return nullptr;
}

const void* SafetensorsFile::bytes(const SafetensorsEntry& e) const {
  return static_cast<const char*>(map_->addr) + data_start_ + e.begin;
}

Tensor SafetensorsFile::load(std::string_view name) const {
  const SafetensorsEntry* e = find(name);
  HONE_CHECK(e != nullptr, kOp, path_, ": no tensor named '", name, "'");
  HONE_CHECK(e->dtype.has_value(), kOp, path_, ": tensor '", name, "' has dtype ", e->dtype_name,
             ", which hone cannot load");
  Tensor t = Tensor::empty(e->shape, *e->dtype);
  if (t.nbytes()) std::memcpy(t.raw(), bytes(*e), t.nbytes());
  return t;
}

Tensor SafetensorsFile::load(std::string_view name, DType as) const {
  Tensor t = load(name);
  return t.dtype() == as ? t : t.to(as);
}

void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header;
  nlohmann::ordered_json meta = nlohmann::ordered_json::object();
  meta["format"] = "pt";
  for (const auto& [k, v] : metadata)
    if (k != "format") meta[k] = v;
  header["__metadata__"] = meta;
  std::set<std::string> names;
  std::uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    HONE_CHECK(!name.empty() && name != "__metadata__", kOp, "cannot save a tensor named '", name, "'");
    HONE_CHECK(names.insert(name).second, kOp, "tensor '", name, "' is given twice");
    HONE_CHECK(t.defined() && t.device().is_cpu(), kOp, "tensor '", name, "' must be a defined host tensor; got ", t.str());
    header[name] = {{"dtype", file_dtype_name(t.dtype())}, {"shape", t.shape()},
                    {"data_offsets", {offset, offset + t.nbytes()}}};
    offset += t.nbytes();
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // pad so the data starts 8-byte aligned
  const std::uint64_t n = text.size();

  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    HONE_CHECK(out.good(), kOp, "cannot write ", tmp);
    unsigned char len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(n >> (8 * i));
    out.write(reinterpret_cast<const char*>(len), 8);
    out.write(text.data(), static_cast<std::streamsize>(n));
    for (const auto& [name, t] : tensors)
      out.write(static_cast<const char*>(t.raw()), static_cast<std::streamsize>(t.nbytes()));
    out.flush();
    if (!out.good()) {
      out.close();
      std::remove(tmp.c_str());
      fail(kOp, cat("writing ", tmp, " failed (disk full?)"));
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    std::remove(tmp.c_str());
    fail(kOp, cat("cannot rename ", tmp, " to ", path, ": ", why));
  }
}

SafetensorsCheckpoint SafetensorsCheckpoint::open(const std::string& dir) {
  namespace fs = std::filesystem;
  SafetensorsCheckpoint c;
  const fs::path index = fs::path(dir) / "model.safetensors.index.json";
  auto add_file = [&](const std::string& file) {
    c.files_.push_back(SafetensorsFile::open((fs::path(dir) / file).string()));
    return c.files_.size() - 1;
  };
  if (fs::exists(index)) {
    std::ifstream in(index);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
      fail(kOp, cat(index.string(), ": not valid JSON (", e.what(), ")"));
    }
    HONE_CHECK(j.contains("weight_map") && j["weight_map"].is_object(), kOp, index.string(),
               ": missing object \"weight_map\"");
    std::map<std::string, std::size_t> opened;
    for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
      HONE_CHECK(it.value().is_string(), kOp, index.string(), ": weight_map[\"", it.key(), "\"] is not a file name");
      const std::string file = it.value().get<std::string>();
      if (!opened.count(file)) opened[file] = add_file(file);
      const SafetensorsFile& f = c.files_[opened[file]];
      HONE_CHECK(f.find(it.key()) != nullptr, kOp, index.string(), ": tensor '", it.key(), "' is mapped to ",
                 file, ", which does not contain it");
      c.where_[it.key()] = opened[file];
    }
  } else {
    const fs::path single = fs::path(dir) / "model.safetensors";
    HONE_CHECK(fs::exists(single), kOp, dir, ": neither model.safetensors nor model.safetensors.index.json");
    const std::size_t i = add_file("model.safetensors");
    for (const SafetensorsEntry& e : c.files_[i].entries()) c.where_[e.name] = i;
  }
  return c;
}

std::vector<std::string> SafetensorsCheckpoint::names() const {
  std::vector<std::string> out;
  for (const auto& [name, i] : where_) out.push_back(name);
  return out;
}

bool SafetensorsCheckpoint::contains(std::string_view name) const { return where_.find(name) != where_.end(); }

const SafetensorsFile& SafetensorsCheckpoint::file_of(std::string_view name) const {
  const auto it = where_.find(name);
  HONE_CHECK(it != where_.end(), kOp, "checkpoint has no tensor named '", name, "'");
  return files_[it->second];
}

Tensor SafetensorsCheckpoint::load(std::string_view name) const { return file_of(name).load(name); }
Tensor SafetensorsCheckpoint::load(std::string_view name, DType as) const { return file_of(name).load(name, as); }

}  // namespace hone
