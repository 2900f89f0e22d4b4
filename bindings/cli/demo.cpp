// Training loop of `hone demo`: Philox-sampled windows of the text, AdamW on the parameter slab
// with warmup + cosine learning rate and global-norm clipping, then greedy sampling.
#include "demo.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

#include "hone/log.h"
#include "hone/random.h"
#include "ops/ops.h"

namespace hone::demo {

namespace {

Tensor windows(const std::string& text, std::int64_t batch, std::int64_t seq, std::uint64_t seed,
               std::uint64_t offset) {
  const std::int64_t span = static_cast<std::int64_t>(text.size()) - (seq + 1);
  HONE_CHECK(span > 0, "demo", "sequence length ", seq, " exceeds the text (", text.size(), " bytes)");
  Tensor t = Tensor::empty({batch, seq + 1}, DType::i64);
  for (std::int64_t b = 0; b < batch; ++b) {
    const Philox4 r = philox_block(seed, offset + static_cast<std::uint64_t>(b));
    const std::int64_t start = static_cast<std::int64_t>(r.x[0] % static_cast<std::uint32_t>(span));
    for (std::int64_t i = 0; i <= seq; ++i)
      t.data<std::int64_t>()[b * (seq + 1) + i] = static_cast<unsigned char>(text[start + i]);
  }
  return t;
}

double learning_rate(const DemoOptions& o, std::int64_t step) {
  const std::int64_t warmup = std::max<std::int64_t>(1, o.steps / 15);
  if (step < warmup) return o.lr * static_cast<double>(step + 1) / static_cast<double>(warmup);
  const double progress = static_cast<double>(step - warmup) / std::max<std::int64_t>(1, o.steps - warmup);
  return o.lr * (0.1 + 0.9 * 0.5 * (1 + std::cos(M_PI * progress)));
}

std::string printable(const std::string& s) {
  std::string out;
  for (char ch : s) out += (ch == '\n' || (ch >= 32 && ch < 127)) ? ch : '?';
  return out;
}

std::string json_escape(const std::string& s) {
  std::string out;
  for (char ch : s) {
    if (ch == '"' || ch == '\\') out += '\\', out += ch;
    else if (ch == '\n') out += "\\n";
    else if (static_cast<unsigned char>(ch) < 32) out += ' ';
    else out += ch;
  }
  return out;
}

}  // namespace

std::string DemoReport::to_json() const {
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "{\"params\": %lld, \"first_loss\": %.6f, \"final_loss\": %.6f, "
                "\"eval_loss_before\": %.6f, \"eval_loss_after\": %.6f, \"seconds\": %.3f, "
                "\"tokens_per_second\": %.1f, ",
                static_cast<long long>(params), first_loss, final_loss, eval_loss_before,
                eval_loss_after, seconds, tokens_per_second);
  return std::string(buf) + "\"sample\": \"" + json_escape(sample) + "\"}";
}

DemoReport run_demo(const DemoOptions& o) {
  HONE_CHECK(o.steps >= 1, "demo", "--steps must be at least 1 (got ", o.steps, ")");
  HONE_CHECK(o.batch >= 1 && o.seq >= 2, "demo", "--batch ", o.batch, " / --seq ", o.seq, " too small");
  const std::string& text = demo_text();
  DemoModel model(DemoConfig{}, DType::f32, o.seed);
  const Tensor& p = model.params();
  const Tensor m = Tensor::zeros(p.shape(), DType::f32), v = Tensor::zeros(p.shape(), DType::f32);
  DemoReport r;
  r.params = p.numel();

  const Tensor eval = windows(text, 16, o.seq, o.seed ^ 0x5eedull, 1u << 30);
  r.eval_loss_before = model.forward_backward(eval, false);

  Progress progress("demo", o.steps);
  const auto start = std::chrono::steady_clock::now();
  for (std::int64_t step = 0; step < o.steps; ++step) {
    const Tensor batch = windows(text, o.batch, o.seq, o.seed, static_cast<std::uint64_t>(step * o.batch));
    const double loss = model.forward_backward(batch, true);
    if (step == 0) r.first_loss = loss;
    r.final_loss = loss;
    HONE_CHECK(std::isfinite(loss), "demo", "loss became ", loss, " at step ", step);
    const double norm = ops::clip_grad_norm({model.grads()}, o.clip);
    ops::AdamWArgs adam;
    adam.lr = learning_rate(o, step);
    adam.weight_decay = 0.0;
    adam.step = step + 1;
    ops::adamw_step(p, model.grads(), m, v, adam);
    if (o.progress) {
      char extra[96];
      std::snprintf(extra, sizeof extra, "loss %.3f  |g| %.2f  lr %.1e", loss, norm, adam.lr);
      progress.update(step + 1, extra);
    }
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (o.progress) progress.finish();
  r.tokens_per_second = static_cast<double>(o.steps * o.batch * o.seq) / r.seconds;
  r.eval_loss_after = model.forward_backward(eval, false);

  std::vector<std::int64_t> context;
  for (char ch : o.prompt) context.push_back(static_cast<unsigned char>(ch));
  HONE_CHECK(!context.empty(), "demo", "--prompt must not be empty");
  std::string sample = o.prompt;
  for (std::int64_t i = 0; i < o.sample_bytes; ++i) {
    const std::vector<std::int64_t> window(
        context.end() - std::min<std::int64_t>(static_cast<std::int64_t>(context.size()), o.seq),
        context.end());
    const std::vector<float> logits = model.next_logits(window);
    const auto next = std::max_element(logits.begin(), logits.end()) - logits.begin();
    context.push_back(next);
    sample += static_cast<char>(next);
  }
  r.sample = printable(sample);
  return r;
}

}  // namespace hone::demo
