// Tensor construction, views sharing storage, conversions and errors.
#include <catch2/catch.hpp>

#include "hone/device.h"
#include "hone/tensor.h"

using namespace hone;

TEST_CASE("tensor shapes views and slices share storage", "[cpu][core]") {
  Tensor t = Tensor::from_vector<float>({2, 3, 2}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11});
  CHECK(t.numel() == 12);
  CHECK(t.size(-1) == 2);
  CHECK(t.nbytes() == 48);
  CHECK(t.str() == "Tensor(f32, (2, 3, 2), cpu)");
  CHECK(reinterpret_cast<std::uintptr_t>(t.raw()) % 64 == 0);

  Tensor v = t.view({-1, 4});
  CHECK(v.shape() == Shape{3, 4});
  Tensor row = t.select(1);
  CHECK(row.shape() == Shape{3, 2});
  CHECK(row.data<float>()[0] == 6.0f);
  row.data<float>()[0] = 100.0f;  // writes through to t
  CHECK(t.data<float>()[6] == 100.0f);
  Tensor s = v.slice(1, 3);
  CHECK(s.shape() == Shape{2, 4});
  CHECK(s.data<float>()[0] == 4.0f);
  CHECK(t.flatten_to_2d().shape() == Shape{6, 2});

  Tensor c = t.clone();
  c.data<float>()[0] = -1.0f;
  CHECK(t.data<float>()[0] == 0.0f);
}

TEST_CASE("tensor fill conversion and item", "[cpu][core]") {
  Tensor t = Tensor::full({33}, 2.5, DType::bf16);
  const auto v = t.to_vector<float>();
  CHECK(v.size() == 33);
  CHECK(v[0] == 2.5f);
  CHECK(v[32] == 2.5f);
  CHECK(Tensor::zeros({5}, DType::i64).to_vector<std::int64_t>()[4] == 0);
  CHECK(Tensor::full({1}, 7, DType::i32).item() == 7.0);
  Tensor d = Tensor::from_vector<double>({3}, {1.25, -3.5, 4.0}).to(DType::f16);
  CHECK(d.to_vector<double>() == std::vector<double>{1.25, -3.5, 4.0});
  CHECK(Tensor::empty({0, 4}, DType::f32).numel() == 0);
  CHECK_FALSE(Tensor().defined());
}

TEST_CASE("tensor errors name the problem", "[cpu][core]") {
  Tensor t = Tensor::zeros({2, 3}, DType::f32);
  CHECK_THROWS_WITH(t.view({4, 2}), Catch::Contains("view") && Catch::Contains("(4, 2)"));
  CHECK_THROWS_WITH(t.slice(1, 3), Catch::Contains("[1, 3)"));
  CHECK_THROWS_WITH(t.data<double>(), Catch::Contains("data<f64>") && Catch::Contains("f32"));
  CHECK_THROWS_WITH(t.size(2), Catch::Contains("dim 2"));
  CHECK_THROWS_WITH(Tensor::empty({-1}, DType::f32), Catch::Contains("negative"));
  CHECK_THROWS_WITH(Tensor::from_vector<float>({3}, {1, 2}), Catch::Contains("2 values"));
  CHECK_THROWS_WITH(t.copy_from(Tensor::zeros({3, 2}, DType::f32)), Catch::Contains("copy_from"));
  CHECK_THROWS_AS(Tensor().raw(), Error);
}

TEST_CASE("devices parse and print", "[cpu][core]") {
  CHECK(Device::parse("cpu") == Device::cpu());
  CHECK(Device::parse("cuda:3") == Device::cuda(3));
  CHECK(Device::parse("cuda").str() == "cuda:0");
  CHECK_THROWS_WITH(Device::parse("tpu"), Catch::Contains("'tpu'"));
  CHECK_THROWS_WITH(Device::parse("cuda:x"), Catch::Contains("'cuda:x'"));
  if (cuda_device_count() == 0) {
    // Without a device, asking for device memory is a clear error, not a crash.
    CHECK_THROWS_WITH(Tensor::empty({4}, DType::f32, Device::cuda(0)), Catch::Contains("does not exist"));
  }
}
