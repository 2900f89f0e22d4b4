// Learning-rate schedules: linear warmup from 0, then constant, linear or cosine decay to
// lr·min_lr_ratio at the last step.
#include <cmath>
#include <string>

#include "hone/error.h"
#include "hone/trainer.h"
#include "train/internal.h"

namespace hone {

LrSchedule parse_lr_schedule(std::string_view name) {
  if (name == "constant") return LrSchedule::constant;
  if (name == "linear") return LrSchedule::linear;
  if (name == "cosine") return LrSchedule::cosine;
  fail("train", cat("unknown learning-rate schedule '", name, "'; expected constant, linear or cosine"));
}

const char* lr_schedule_name(LrSchedule s) {
  switch (s) {
    case LrSchedule::constant: return "constant";
    case LrSchedule::linear: return "linear";
    case LrSchedule::cosine: return "cosine";
  }
  return "?";
}

namespace train {

double learning_rate(const TrainConfig& c, std::int64_t step, std::int64_t total) {
  if (c.warmup_steps > 0 && step < c.warmup_steps)
    return c.lr * static_cast<double>(step + 1) / static_cast<double>(c.warmup_steps);
  if (c.schedule == LrSchedule::constant) return c.lr;
  const std::int64_t span = total - c.warmup_steps;
  // Progress 0 at the first step after warmup, 1 at the last step.
  const double t = span <= 1 ? 1.0 : static_cast<double>(step - c.warmup_steps) / static_cast<double>(span - 1);
  const double floor = c.lr * c.min_lr_ratio;
  const double shape = c.schedule == LrSchedule::linear ? 1.0 - t : 0.5 * (1.0 + std::cos(M_PI * t));
  return floor + (c.lr - floor) * shape;
}

}  // namespace train
}  // namespace hone
