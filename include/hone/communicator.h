// hone::Communicator: what the trainer needs from the processes it trains with. A single process
// is the only implementation so far; data parallelism (NCCL on GPUs, MPI on CPUs) implements the
// same interface, so the trainer does not change when it arrives.
#pragma once
#include <memory>

#include "hone/tensor.h"

namespace hone {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  // In place, every rank ends with the elementwise sum over ranks (same order on every rank,
  // so the result is deterministic).
  virtual void all_reduce_sum(const Tensor& t) = 0;
  virtual void all_reduce_sum(double* values, int count) = 0;
  // Every rank ends with root's values.
  virtual void broadcast(const Tensor& t, int root) = 0;
  virtual void barrier() = 0;
};

// World of one: reductions and broadcasts leave their arguments as they are.
std::unique_ptr<Communicator> make_single_process_communicator();

}  // namespace hone
