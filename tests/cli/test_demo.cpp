// The demo model end to end: its composed backward against finite differences in f64, and a
// short training run that must learn the text.
#include <catch2/catch.hpp>

#include "demo.h"
#include "support/fd.h"

using namespace hone;

TEST_CASE("demo model backward matches finite differences", "[cpu][fd][demo]") {
  demo::DemoConfig c;
  c.dim = 16;
  c.heads = 4;
  c.kv_heads = 2;
  c.head_dim = 4;
  c.ffn = 24;
  demo::DemoModel model(c, DType::f64, 3);
  const std::vector<std::int64_t> ids = {116, 104, 101, 32, 108, 97, 109, 112, 10, 116, 104, 101, 32, 98};
  const Tensor tokens = Tensor::from_vector<std::int64_t>({2, 7}, ids);
  model.forward_backward(tokens, true);
  const Tensor analytic = model.grads().clone();
  // Check the non-embedding parameters (all reached by every token) and the embedding rows
  // of the tokens used.
  const std::int64_t embed = c.vocab * c.dim;
  const Tensor rest = model.params().slice(embed, model.params().numel());
  const std::string report = test::check_gradient(
      rest, analytic.slice(embed, analytic.numel()),
      [&] { return model.forward_backward(tokens, false); }, 1e-6, 400);
  CHECK(report == "");
  const Tensor row = model.params().slice(116 * c.dim, 117 * c.dim);  // 't'
  const std::string row_report = test::check_gradient(
      row, analytic.slice(116 * c.dim, 117 * c.dim), [&] { return model.forward_backward(tokens, false); });
  CHECK(row_report == "");
}

TEST_CASE("demo training learns the embedded text", "[cpu][demo][slow]") {
  demo::DemoOptions o;
  o.steps = 150;
  o.progress = false;
  o.sample_bytes = 40;
  const demo::DemoReport r = demo::run_demo(o);
  INFO(r.to_json());
  CHECK(r.eval_loss_before > 5.0);  // near log(256) = 5.55 at initialisation
  CHECK(r.eval_loss_after < 2.0);
  CHECK(r.final_loss < r.first_loss - 3.0);
  CHECK(r.sample.rfind("the ", 0) == 0);
  CHECK(r.sample.size() == 44);
}
