// The emulated device's memory is closed to host code outside kernels and copies, as a GPU's
// is: reading it directly faults (with a message saying why), copies and kernels work.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "hone/tensor.h"
#include "ops/ops.h"
#include "support/device_tag.h"

using namespace hone;

TEST_CASE("host code that reads device memory directly faults on the emulated device", HONE_DEVICE_TAG) {
  const Tensor dev = Tensor::full({16}, 2.5, DType::f32, Device::cuda(0));
  // Copies and kernels see the memory.
  CHECK(dev.to_vector<float>() == std::vector<float>(16, 2.5f));
  ops::scale_(dev, 2.0);
  CHECK(dev.to(Device::cpu()).data<float>()[3] == 5.0f);

  // A direct read from host code, in a child process: it must die of SIGSEGV, saying why.
  int err[2];
  REQUIRE(pipe(err) == 0);
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    close(err[0]);
    dup2(err[1], 2);
    volatile float v = dev.data<float>()[0];  // the bug this guards against
    (void)v;
    _exit(0);  // not reached when the read faults
  }
  close(err[1]);
  std::string message;
  char buf[512];
  for (ssize_t n; (n = read(err[0], buf, sizeof buf)) > 0;) message.append(buf, static_cast<std::size_t>(n));
  close(err[0]);
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  CHECK(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGSEGV);
  CHECK(message.find("host code accessed device memory") != std::string::npos);
}
