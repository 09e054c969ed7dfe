// Data-parallel training (docs/distributed.md): the same model in P processes ("ranks"), each
// rank a disjoint slice of every batch, the gradients summed over the ranks before the optimiser
// step, so every rank takes the same step and the models never drift apart.
//
// Communicator is the only code that talks MPI. Built without MPI (SPEAR_MPI off), or started
// without an MPI launcher, it is this process alone: rank 0 of 1, every collective a no-op. So
// the trainer is written once, for P ranks, and P = 1 is the plain single-process run.
//
// Failures. MPI reports errors by return code here (MPI_ERRORS_RETURN, not the default abort),
// and they become DistributedErrors naming the call (spear-train adds the rank). Every wait polls
// with a deadline (SPEAR_MPI_TIMEOUT seconds, default 300), so a rank that hangs makes the others
// fail with a message instead of waiting forever. spear-train then calls abort(), and mpirun stops
// every rank. A rank that dies is noticed by mpirun itself, which stops the others with SIGTERM;
// each says so in a line of its own.
//
// GradientReducer sums the gradients in buckets. The parameters are grouped, last registered
// first (roughly the order in which backward finishes them), into flat f32 buffers of about
// bucket_bytes. A post-accumulate-grad hook (autograd/node.h) copies a parameter's gradient,
// times this rank's weight, into its bucket as soon as backward has finished it; a full bucket
// starts its non-blocking allreduce at once, so communication overlaps the rest of backward.
// Buckets start in index order on every rank, whatever order backward finished them in, because
// MPI needs every rank to start its collectives in the same order.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "tensor/error.h"
#include "tensor/safetensors.h"
#include "tensor/tensor.h"

namespace spear::train {

// A failed MPI call, or a wait that timed out.
struct DistributedError : Error {
  using Error::Error;
};

class Communicator {
 public:
  // join_job: join the MPI job this process was started in (by mpirun or another MPI launcher),
  // if there is one. Otherwise, or with false, this process alone. Throws DistributedError when
  // a launcher started several processes but spear was built without MPI (each would train
  // alone, all into one run directory), or when SPEAR_MPI_TIMEOUT is not a number of seconds.
  explicit Communicator(bool join_job = false);
  ~Communicator();  // leaves the MPI job (MPI_Finalize)
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  bool is_root() const { return rank_ == 0; }

  // Copies the values of every tensor of rank 0 into the same tensors (same names, shapes and
  // dtypes, contiguous) of the other ranks.
  void broadcast(const NamedTensors& tensors);
  // x summed over the ranks, on every rank.
  double sum(double x);
  // Returns when every rank has called it.
  void barrier();

  // Starts summing data[0, n) over the ranks, in place; wait() finishes every started sum.
  void start_sum(float* data, int64_t n);
  // Lets the started sums advance: MPI moves their data only while the process is in an MPI call.
  void poll();
  void wait();

  // Seconds spent so far in the calls above: the cost of training on several ranks (waiting for
  // a slower rank included).
  double seconds() const { return seconds_; }

  // Stops every rank (MPI_Abort), exiting with `status`; this process alone: std::exit.
  [[noreturn]] void abort(int status);

 private:
  struct Mpi;  // the MPI state of a joined job
  std::unique_ptr<Mpi> mpi_;
  int rank_ = 0, size_ = 1;
  double seconds_ = 0;
};

class GradientReducer {
 public:
  // Hooks every parameter; with one rank it does nothing at all.
  GradientReducer(Communicator& comm, const std::vector<Tensor>& params,
                  int64_t bucket_bytes = 256 << 10);
  ~GradientReducer();  // removes the hooks
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  // Before backward: this rank's gradients count `weight` times in the sum.
  void prepare(double weight);
  // After backward: every parameter's .grad() is the weighted sum over the ranks of their
  // gradients (a parameter that got no gradient on a rank adds zeros there).
  void finish();

  int64_t num_buckets() const { return static_cast<int64_t>(buckets_.size()); }

 private:
  struct Bucket {
    Tensor buffer;               // (n,) f32: the bucket's gradients, end to end
    std::vector<size_t> params;  // indices into params_
    size_t pending = 0;          // parameters not yet copied in during this backward
  };
  struct Slot {
    size_t bucket;
    int64_t offset;  // in the bucket's buffer
    bool ready = false;
  };

  void on_gradient(size_t param);  // the hook
  void start_ready_buckets();

  Communicator& comm_;
  std::vector<Tensor> params_;
  std::vector<Slot> slots_;
  std::vector<Bucket> buckets_;
  size_t started_ = 0;  // buckets [0, started_) are being summed
  double weight_ = 1;
  bool active_ = false;  // between prepare() and finish()
};

}  // namespace spear::train
