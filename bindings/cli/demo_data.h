// The data of `hone demo`, generated in code from fixed word lists and a seed: a small English
// corpus for pre-training and a review-sentiment task (train and held-out splits) for
// fine-tuning, as the JSONL lines a user would write.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace hone::demo {

// {"text": ...} lines: verses and generated sentences, some of them reviews.
std::vector<std::string> corpus_lines(std::uint64_t seed, int sentences);

struct TaskExample {
  std::string prompt;      // "review: the soup was bland\nsentiment:"
  std::string completion;  // " negative"
};
// Reviews whose adjective decides the label. The held-out split uses (noun, adjective) pairs
// that never occur in the training split.
std::vector<TaskExample> task_examples(bool held_out);
std::string to_jsonl_line(const TaskExample& e);

}  // namespace hone::demo
