// safetensors: files written by the reference Python package, round trips of hone's writer,
// every validation rule on crafted bad files, and sharded checkpoints.
#include <catch2/catch.hpp>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "hone/safetensors.h"

using namespace hone;

namespace {

const std::string kDir = std::string(HONE_TEST_DATA_DIR) + "/safetensors";

std::string temp_path(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / "hone_test_safetensors";
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}

// A file made of an explicit header text and `data_bytes` bytes of data.
std::string craft(const std::string& name, const std::string& header, std::size_t data_bytes,
                  std::int64_t claimed_length = -1) {
  const std::string path = temp_path(name);
  std::ofstream out(path, std::ios::binary);
  const std::uint64_t n = claimed_length < 0 ? header.size() : static_cast<std::uint64_t>(claimed_length);
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>(n >> (8 * i)));
  out << header << std::string(data_bytes, '\x01');
  return path;
}

}  // namespace

TEST_CASE("safetensors reads files written by the reference package", "[cpu][safetensors]") {
  const SafetensorsFile f = SafetensorsFile::open(kDir + "/reference.safetensors");
  std::ifstream in(kDir + "/expected.json");
  const nlohmann::json expected = nlohmann::json::parse(in);
  CHECK(f.metadata().at("format") == "pt");
  CHECK(f.metadata().at("note") == "fixture");
  CHECK(f.entries().size() == 8);
  for (const std::string name : {"a", "b", "c", "scalar", "empty", "bytes", "i32", "f64"}) {
    INFO(name);
    const Tensor t = f.load(name);
    CHECK(t.shape() == expected[name]["shape"].get<Shape>());
    CHECK(t.to_vector<double>() == expected[name]["values"].get<std::vector<double>>());
  }
  CHECK(f.load("c").dtype() == DType::f16);
  CHECK(f.load("b").to_vector<std::int64_t>()[3] == (std::int64_t{1} << 40));
  CHECK(f.load("scalar").shape().empty());
  CHECK(f.load("a", DType::f64).dtype() == DType::f64);
  CHECK_THROWS_WITH(f.load("missing"), Catch::Contains("reference.safetensors") && Catch::Contains("'missing'"));
}

TEST_CASE("safetensors writer round trips and aligns its header", "[cpu][safetensors]") {
  const std::string path = temp_path("roundtrip.safetensors");
  std::vector<std::pair<std::string, Tensor>> tensors = {
      {"w.bf16", Tensor::from_vector<double>({2, 3}, {1, -2, 0.5, 3, 4, -0.25}).to(DType::bf16)},
      {"ids", Tensor::from_vector<std::int64_t>({3}, {5, -6, 7})},
      {"flag", Tensor::from_vector<bool>({2}, {true, false})},
      {"s", Tensor::full({}, 2.5, DType::f32)},
      {"z", Tensor::empty({0}, DType::f16)},
  };
  save_safetensors(path, tensors, {{"step", "12"}});
  std::ifstream raw(path, std::ios::binary);
  unsigned char len[8];
  raw.read(reinterpret_cast<char*>(len), 8);
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | len[i];
  CHECK(n % 8 == 0);
  const SafetensorsFile f = SafetensorsFile::open(path);
  CHECK(f.metadata().at("format") == "pt");
  CHECK(f.metadata().at("step") == "12");
  for (const auto& [name, t] : tensors) {
    INFO(name);
    const Tensor back = f.load(name);
    CHECK(back.dtype() == t.dtype());
    CHECK(back.shape() == t.shape());
    CHECK(back.to_vector<double>() == t.to_vector<double>());
  }
  CHECK(f.find("w.bf16")->dtype_name == "BF16");
  CHECK(f.find("flag")->dtype_name == "BOOL");
  CHECK_FALSE(std::filesystem::exists(path + ".tmp." + std::to_string(::getpid())));
  CHECK_THROWS_WITH(save_safetensors(path, {{"a", Tensor::zeros({1}, DType::f32)}, {"a", Tensor::zeros({1}, DType::f32)}}),
                    Catch::Contains("'a' is given twice"));
  // A failed save leaves the previous file intact.
  CHECK_THROWS(save_safetensors(temp_path("nodir/x.safetensors"), tensors));
  CHECK(SafetensorsFile::open(path).entries().size() == tensors.size());
}

TEST_CASE("safetensors rejects malformed files by name", "[cpu][safetensors]") {
  auto err = [](const std::string& path) -> std::string {
    try {
      SafetensorsFile::open(path);
    } catch (const Error& e) {
      return e.what();
    }
    return "no error";
  };
  const std::string good = R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  CHECK(err(craft("ok.st", good, 8)) == "no error");
  {
    const std::string tiny = temp_path("tiny.st");
    std::ofstream(tiny, std::ios::binary) << "abc";
    CHECK_THAT(err(tiny), Catch::Contains("tiny.st") && Catch::Contains("too short"));
  }
  CHECK_THAT(err(craft("huge.st", good, 8, 200'000'000)), Catch::Contains("100 MB"));
  CHECK_THAT(err(craft("beyond.st", good, 8, 5000)), Catch::Contains("does not fit"));
  CHECK_THAT(err(craft("notjson.st", "{\"t\": [", 0)), Catch::Contains("not valid JSON"));
  CHECK_THAT(err(craft("nobrace.st", " " + good, 8)), Catch::Contains("does not start with '{'"));
  CHECK_THAT(err(craft("dup.st", R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"t":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8)),
             Catch::Contains("'t' appears twice"));
  CHECK_THAT(err(craft("hole.st", R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8)),
             Catch::Contains("'t' starts at byte 4"));
  CHECK_THAT(err(craft("overlap.st", R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8)),
             Catch::Contains("overlaps"));
  CHECK_THAT(err(craft("size.st", R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8)),
             Catch::Contains("'t'") && Catch::Contains("needs 12"));
  CHECK_THAT(err(craft("tail.st", good, 12)), Catch::Contains("data buffer has 12"));
  CHECK_THAT(err(craft("dtype.st", R"({"t":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}})", 8)),
             Catch::Contains("unknown dtype 'Q4'"));
  CHECK_THAT(err(craft("meta.st", R"({"__metadata__":{"n":1},"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 8)),
             Catch::Contains("__metadata__ value of 'n'"));
  CHECK_THAT(err(craft("neg.st", R"({"t":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8)),
             Catch::Contains("non-negative"));
  CHECK_THAT(err(temp_path("absent.st")), Catch::Contains("cannot open"));
  // A dtype hone knows by name but cannot hold loads as an error naming it.
  const SafetensorsFile i8 = SafetensorsFile::open(craft("i8.st", R"({"t":{"dtype":"I8","shape":[8],"data_offsets":[0,8]}})", 8));
  CHECK_THROWS_WITH(i8.load("t"), Catch::Contains("I8"));
}

TEST_CASE("safetensors sharded checkpoints follow the index", "[cpu][safetensors]") {
  const SafetensorsCheckpoint c = SafetensorsCheckpoint::open(kDir + "/sharded");
  CHECK(c.names() == std::vector<std::string>{"layer.0.w", "layer.1.w", "norm"});
  const Tensor w0 = c.load("layer.0.w");
  CHECK(w0.dtype() == DType::bf16);
  CHECK(w0.to_vector<double>() == std::vector<double>{1.0, -2.0, 0.15625, 384.0});
  CHECK(c.load("layer.1.w", DType::f64).to_vector<double>() == std::vector<double>{1.5, 2.5});
  CHECK_THROWS_WITH(c.load("nope"), Catch::Contains("'nope'"));
  CHECK_THROWS_WITH(SafetensorsCheckpoint::open(temp_path("")), Catch::Contains("neither model.safetensors"));

  const std::string single = temp_path("single");
  std::filesystem::create_directories(single);
  save_safetensors(single + "/model.safetensors", {{"x", Tensor::full({2}, 3.0, DType::f32)}});
  CHECK(SafetensorsCheckpoint::open(single).load("x").to_vector<float>() == std::vector<float>{3, 3});
}
