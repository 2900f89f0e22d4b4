// `hone demo`: trains the demo model on the embedded text and samples from it.
#pragma once
#include <cstdint>
#include <string>

#include "demo_model.h"

namespace hone::demo {

struct DemoOptions {
  std::int64_t steps = 300;
  std::int64_t batch = 8;
  std::int64_t seq = 64;
  double lr = 3e-3;
  double clip = 1.0;
  std::uint64_t seed = 1;
  std::string prompt = "the ";
  std::int64_t sample_bytes = 160;
  bool progress = true;
};

struct DemoReport {
  std::int64_t params = 0;
  double first_loss = 0;      // mean loss of the first training batch
  double final_loss = 0;      // mean loss of the last training batch
  double eval_loss_before = 0;  // fixed evaluation windows, before and after training
  double eval_loss_after = 0;
  double seconds = 0;
  double tokens_per_second = 0;
  std::string sample;         // greedy continuation of the prompt
  std::string to_json() const;
};

DemoReport run_demo(const DemoOptions& options);

}  // namespace hone::demo
