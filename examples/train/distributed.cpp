#include "examples/train/distributed.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "autograd/node.h"

#ifdef SPEAR_MPI
#include <mpi.h>
#endif

namespace spear::train {
namespace {

using Clock = std::chrono::steady_clock;

// How many processes an MPI launcher started, from the environment it gives them: Open MPI's
// mpirun, or a PMI launcher (MPICH's and Intel MPI's Hydra, Slurm's srun). 0: no launcher.
int launched_size() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"})
    if (const char* value = std::getenv(name)) return std::atoi(value);
  return 0;
}

// Adds the time from construction to destruction to `total`.
class Timed {
 public:
  explicit Timed(double& total) : total_(total) {}
  ~Timed() { total_ += std::chrono::duration<double>(Clock::now() - start_).count(); }

 private:
  double& total_;
  Clock::time_point start_ = Clock::now();
};

}  // namespace

#ifdef SPEAR_MPI

namespace {

double timeout_from_environment() {
  const char* text = std::getenv("SPEAR_MPI_TIMEOUT");
  if (!text) return 300;
  char* end = nullptr;
  const double seconds = std::strtod(text, &end);
  SPEAR_CHECK_T(DistributedError, end != text && *end == '\0' && seconds > 0,
                "SPEAR_MPI_TIMEOUT must be a number of seconds > 0, got \"", text, "\"");
  return seconds;
}

// What a rank prints when SIGTERM stops it: mpirun stops every rank this way when one fails.
char sigterm_line[160];
size_t sigterm_length = 0;

void on_sigterm(int signal) {
  // Only async-signal-safe calls here: write, signal, raise.
  [[maybe_unused]] const ssize_t written = write(STDERR_FILENO, sigterm_line, sigterm_length);
  std::signal(signal, SIG_DFL);
  std::raise(signal);
}

MPI_Datatype mpi_type(DType dtype) {
  return dtype == DType::f32 ? MPI_FLOAT : dtype == DType::f64 ? MPI_DOUBLE : MPI_INT64_T;
}

}  // namespace

struct Communicator::Mpi {
  MPI_Comm comm = MPI_COMM_NULL;
  std::vector<MPI_Request> requests;  // started, not yet waited for
  double timeout_s = 300;

  // A failed call becomes a DistributedError.
  void check(int code, const char* call) const {
    if (code == MPI_SUCCESS) return;
    char text[MPI_MAX_ERROR_STRING];
    int length = 0;
    MPI_Error_string(code, text, &length);
    throw DistributedError(str_cat(call, " failed: ", std::string(text, length)));
  }

  MPI_Request* new_request() { return &requests.emplace_back(MPI_REQUEST_NULL); }

  // Waits for every started operation, polling, for at most timeout_s.
  void wait(const char* what) {
    const Clock::time_point start = Clock::now();
    for (;;) {
      int done = 0;
      check(MPI_Testall(static_cast<int>(requests.size()), requests.data(), &done,
                        MPI_STATUSES_IGNORE),
            "MPI_Testall");
      if (done) break;
      const double waited = std::chrono::duration<double>(Clock::now() - start).count();
      SPEAR_CHECK_T(DistributedError, waited < timeout_s, "no answer from the other ranks for ",
                    timeout_s, " s (", what,
                    "): a rank has died or hangs (SPEAR_MPI_TIMEOUT sets the limit)");
      std::this_thread::yield();  // a rank sharing this core may be the one we wait for
    }
    requests.clear();
  }
};

Communicator::Communicator(bool join_job) {
  if (!join_job || launched_size() == 0) return;
  const double timeout_s = timeout_from_environment();
  int provided = 0;
  MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);  // only this thread calls MPI
  mpi_ = std::make_unique<Mpi>();
  mpi_->timeout_s = timeout_s;
  // Our own communicator, so that MPI errors on it come back as codes (MPI_ERRORS_RETURN).
  MPI_Comm_dup(MPI_COMM_WORLD, &mpi_->comm);
  MPI_Comm_set_errhandler(mpi_->comm, MPI_ERRORS_RETURN);
  MPI_Comm_rank(mpi_->comm, &rank_);
  MPI_Comm_size(mpi_->comm, &size_);
  if (size_ > 1) {
    std::snprintf(sigterm_line, sizeof sigterm_line,
                  "spear-train: rank %d: stopped by SIGTERM: mpirun stops every rank when one "
                  "fails (see its message) or when the job is cancelled\n",
                  rank_);
    sigterm_length = std::strlen(sigterm_line);
    std::signal(SIGTERM, on_sigterm);
  }
}

Communicator::~Communicator() {
  if (!mpi_) return;
  MPI_Comm_free(&mpi_->comm);
  MPI_Finalize();
}

void Communicator::broadcast(const NamedTensors& tensors) {
  if (!mpi_) return;
  Timed timed(seconds_);
  // The sizes first, so that ranks with different models fail with a message, not a mismatch.
  std::vector<int64_t> sizes, root_sizes;
  for (const auto& [name, t] : tensors) sizes.push_back(t.numel());
  root_sizes = sizes;
  mpi_->check(MPI_Ibcast(root_sizes.data(), static_cast<int>(root_sizes.size()), MPI_INT64_T, 0,
                         mpi_->comm, mpi_->new_request()),
              "MPI_Ibcast");
  mpi_->wait("broadcast of the parameters");
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& [name, t] = tensors[i];
    SPEAR_CHECK_T(DistributedError, sizes[i] == root_sizes[i],
                  "the model differs from rank 0's at ", name, " (", sizes[i],
                  " elements, rank 0 has ", root_sizes[i], "); every rank needs the same config");
    SPEAR_CHECK_T(DistributedError, t.is_contiguous(), "broadcast: ", name, " is not contiguous");
    mpi_->check(MPI_Ibcast(t.raw_data(), static_cast<int>(t.numel()), mpi_type(t.dtype()), 0,
                           mpi_->comm, mpi_->new_request()),
                "MPI_Ibcast");
  }
  mpi_->wait("broadcast of the parameters");
}

double Communicator::sum(double x) {
  if (!mpi_) return x;
  Timed timed(seconds_);
  double total = 0;
  mpi_->check(MPI_Iallreduce(&x, &total, 1, MPI_DOUBLE, MPI_SUM, mpi_->comm, mpi_->new_request()),
              "MPI_Iallreduce");
  mpi_->wait("sum of the losses");
  return total;
}

void Communicator::barrier() {
  if (!mpi_) return;
  Timed timed(seconds_);
  mpi_->check(MPI_Ibarrier(mpi_->comm, mpi_->new_request()), "MPI_Ibarrier");
  mpi_->wait("barrier");
}

void Communicator::start_sum(float* data, int64_t n) {
  if (!mpi_) return;
  Timed timed(seconds_);
  mpi_->check(MPI_Iallreduce(MPI_IN_PLACE, data, static_cast<int>(n), MPI_FLOAT, MPI_SUM,
                             mpi_->comm, mpi_->new_request()),
              "MPI_Iallreduce");
}

void Communicator::poll() {
  if (!mpi_ || mpi_->requests.empty()) return;
  Timed timed(seconds_);
  int done = 0;
  mpi_->check(MPI_Testall(static_cast<int>(mpi_->requests.size()), mpi_->requests.data(), &done,
                          MPI_STATUSES_IGNORE),
              "MPI_Testall");
}

void Communicator::wait() {
  if (!mpi_) return;
  Timed timed(seconds_);
  mpi_->wait("sum of the gradients");
}

void Communicator::abort(int status) {
  if (mpi_) {
    std::signal(SIGTERM, SIG_DFL);  // mpirun's SIGTERM is no news to the rank that asked for it
    MPI_Abort(mpi_->comm, status);
  }
  std::exit(status);
}

#else  // built without MPI: this process alone

struct Communicator::Mpi {};

Communicator::Communicator(bool join_job) {
  const int launched = join_job ? launched_size() : 0;
  SPEAR_CHECK_T(DistributedError, launched <= 1, "an MPI launcher started ", launched,
                " processes, but spear was built without MPI (SPEAR_MPI off): each would train "
                "alone into the same run directory; rebuild with MPI or run one process");
}

Communicator::~Communicator() = default;
void Communicator::broadcast(const NamedTensors&) {}
double Communicator::sum(double x) {
  return x;
}
void Communicator::barrier() {}
void Communicator::start_sum(float*, int64_t) {}
void Communicator::poll() {}
void Communicator::wait() {}
void Communicator::abort(int status) {
  std::exit(status);
}

#endif

// ---- GradientReducer ----

GradientReducer::GradientReducer(Communicator& comm, const std::vector<Tensor>& params,
                                 int64_t bucket_bytes)
    : comm_(comm) {
  if (comm.size() == 1) return;
  for (const Tensor& p : params)
    if (p.requires_grad()) params_.push_back(p);
  slots_.resize(params_.size());
  const int64_t capacity = std::max<int64_t>(1, bucket_bytes / static_cast<int64_t>(sizeof(float)));
  std::vector<int64_t> filled;  // elements per bucket
  for (size_t i = params_.size(); i-- > 0;) {
    const Tensor& p = params_[i];
    SPEAR_CHECK_T(DistributedError, p.dtype() == f32, "GradientReducer: parameter ", i, " is ",
                  p.dtype(), "; gradients are summed in f32");
    // A parameter larger than a bucket gets a bucket of its own.
    if (buckets_.empty() || (filled.back() > 0 && filled.back() + p.numel() > capacity)) {
      buckets_.emplace_back();
      filled.push_back(0);
    }
    slots_[i] = {buckets_.size() - 1, filled.back()};
    buckets_.back().params.push_back(i);
    filled.back() += p.numel();
  }
  for (size_t b = 0; b < buckets_.size(); ++b) buckets_[b].buffer = zeros({filled[b]}, f32);
  for (size_t i = 0; i < params_.size(); ++i)
    register_post_accumulate_grad_hook(params_[i], [this, i](const Tensor&) { on_gradient(i); });
}

GradientReducer::~GradientReducer() {
  for (const Tensor& p : params_) clear_post_accumulate_grad_hooks(p);
}

void GradientReducer::prepare(double weight) {
  weight_ = weight;
  for (Slot& slot : slots_) slot.ready = false;
  for (Bucket& bucket : buckets_) bucket.pending = bucket.params.size();
  started_ = 0;
  active_ = true;
}

void GradientReducer::on_gradient(size_t i) {
  if (!active_) return;  // a backward pass outside prepare() ... finish()
  Slot& slot = slots_[i];
  SPEAR_CHECK_T(DistributedError, !slot.ready, "GradientReducer: parameter ", i,
                " got a second gradient before finish()");
  const Tensor grad = params_[i].grad().contiguous();
  const float* src = grad.data_ptr<float>();
  float* dst = buckets_[slot.bucket].buffer.data_ptr<float>() + slot.offset;
  for (int64_t j = 0; j < grad.numel(); ++j) dst[j] = static_cast<float>(weight_ * src[j]);
  slot.ready = true;
  --buckets_[slot.bucket].pending;
  start_ready_buckets();
  comm_.poll();
}

void GradientReducer::start_ready_buckets() {
  while (started_ < buckets_.size() && buckets_[started_].pending == 0) {
    Tensor& buffer = buckets_[started_++].buffer;
    comm_.start_sum(buffer.data_ptr<float>(), buffer.numel());
  }
}

void GradientReducer::finish() {
  if (comm_.size() == 1) return;
  for (size_t i = 0; i < params_.size(); ++i) {
    Slot& slot = slots_[i];
    if (slot.ready) continue;
    buckets_[slot.bucket].buffer.narrow(0, slot.offset, params_[i].numel()).zero_();
    slot.ready = true;
    --buckets_[slot.bucket].pending;
  }
  start_ready_buckets();
  comm_.wait();
  active_ = false;
  for (size_t i = 0; i < params_.size(); ++i) {
    const Slot& slot = slots_[i];
    Tensor& p = params_[i];
    p.set_grad(
        buckets_[slot.bucket].buffer.narrow(0, slot.offset, p.numel()).view(p.shape()).clone());
  }
}

}  // namespace spear::train
