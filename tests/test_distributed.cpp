// The pieces of data-parallel training (examples/train/distributed.h), run by ctest under
// `mpirun -np 2`: the post-accumulate-grad hook, the communicator's collectives, and the bucketed
// gradient allreduce over parameters of uneven sizes. The training runs themselves are tested
// by test_distributed_run.cpp.
#include <doctest/doctest.h>

#include <vector>

#include "autograd/node.h"
#include "autograd/ops.h"
#include "examples/train/distributed.h"

using namespace spear;
using namespace spear::train;

namespace {

// The two ranks of the job: MPI is joined once per process, and left when the program ends.
Communicator& world() {
  static Communicator comm(/*join_job=*/true);
  return comm;
}

// 1 + j % 3 for j in [0, n), times `scale`: small integers, so every weighted sum below is exact
// in f32 and the checks can ask for equality.
Tensor pattern(int64_t n, double scale) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t j = 0; j < n; ++j)
    v[static_cast<size_t>(j)] = static_cast<float>(scale * (1 + j % 3));
  return tensor(v, {n});
}

// How many elements of t differ from pattern(n, scale).
int64_t mismatches(const Tensor& t, double scale) {
  const std::vector<float> got = t.to_vector<float>(),
                           want = pattern(t.numel(), scale).to_vector<float>();
  int64_t bad = 0;
  for (size_t j = 0; j < got.size(); ++j) bad += got[j] != want[j];
  return bad;
}

}  // namespace

TEST_CASE("post-accumulate-grad hook: once per backward, after every use of the leaf is summed") {
  Tensor w = ones({3}).requires_grad_();
  int calls = 0;
  std::vector<float> seen;
  register_post_accumulate_grad_hook(w, [&](const Tensor& leaf) {
    ++calls;
    seen = leaf.grad().to_vector<float>();
  });
  ((w * 2.0).sum() + (w * 3.0).sum()).backward();  // two uses, one call with their sum
  CHECK(calls == 1);
  CHECK(seen == std::vector<float>{5, 5, 5});

  Tensor unused = ones({1}).requires_grad_();
  register_post_accumulate_grad_hook(unused, [&](const Tensor&) { ++calls; });
  (w * unused.detach()).sum().backward();  // `unused` is not in the graph: its hook does not run
  CHECK(calls == 2);

  clear_post_accumulate_grad_hooks(w);
  w.sum().backward();
  CHECK(calls == 2);
  CHECK_THROWS_AS(register_post_accumulate_grad_hook(w * 2.0, [](const Tensor&) {}), AutogradError);
}

TEST_CASE(
    "communicator: a process alone is rank 0 of 1, its reducer leaves gradients as they are") {
  Communicator alone;
  CHECK(alone.rank() == 0);
  CHECK(alone.size() == 1);
  CHECK(alone.sum(2.5) == 2.5);
  Tensor p = pattern(5, 1.0).requires_grad_();
  GradientReducer reducer(alone, {p});
  CHECK(reducer.num_buckets() == 0);
  reducer.prepare(0.5);
  (p * pattern(5, 2.0)).sum().backward();
  reducer.finish();
  CHECK(mismatches(p.grad(), 2.0) == 0);  // not scaled by the weight: there is nothing to average
}

TEST_CASE("communicator: sum, barrier and broadcast over two ranks") {
  Communicator& comm = world();
  REQUIRE_MESSAGE(comm.size() == 2, "run under mpirun -np 2, as ctest does");
  CHECK(comm.sum(comm.rank() + 0.5) == 2.0);
  comm.barrier();
  // Each rank fills the tensors with its own values; rank 0's win.
  const double r = comm.rank();
  const NamedTensors tensors = {{"f32", full({3, 2}, 1 + r, f32)},
                                {"f64", full({5}, 10 + r, f64)},
                                {"i64", full({2}, 100 + r, i64)}};
  comm.broadcast(tensors);
  CHECK(tensors[0].second.to_vector<float>() == std::vector<float>(6, 1));
  CHECK(tensors[1].second.to_vector<double>() == std::vector<double>(5, 10));
  CHECK(tensors[2].second.to_vector<int64_t>() == std::vector<int64_t>(2, 100));
  CHECK(comm.seconds() > 0);
}

TEST_CASE(
    "gradient reducer: uneven parameters in several buckets, summed with each rank's weight") {
  Communicator& comm = world();
  REQUIRE_MESSAGE(comm.size() == 2, "run under mpirun -np 2, as ctest does");
  const int rank = comm.rank();
  // Sizes 1, 7 and 1000003; `u` is used on rank 0 only, `z` on neither rank.
  Tensor a = zeros({1}).requires_grad_(), b = zeros({7}).requires_grad_(),
         c = zeros({1000003}).requires_grad_(), u = zeros({3}).requires_grad_(),
         z = zeros({2}).requires_grad_();
  // 64-byte buckets, filled last parameter first: {z, u}, {c} (larger than a bucket: alone),
  // {b, a}.
  GradientReducer reducer(comm, {a, b, c, u, z}, 64);
  CHECK(reducer.num_buckets() == 3);

  // Rank r's gradient of each parameter is pattern * (r + 1). The ranks visit the parameters in
  // opposite orders, so backward finishes them in different orders: buckets must still start in
  // the same order everywhere (a mismatch would hang or mix up buckets).
  for (const auto& [w0, w1] : {std::pair{0.25, 0.75}, std::pair{0.5, 0.5}}) {
    const double weight = rank == 0 ? w0 : w1;
    reducer.prepare(weight);
    const double scale = rank + 1;
    auto term = [&](const Tensor& p) { return (p * pattern(p.numel(), scale)).sum(); };
    Tensor loss = rank == 0 ? term(a) + term(b) + term(c) + term(u) : term(c) + term(b) + term(a);
    loss.backward();
    reducer.finish();
    const double both = w0 * 1 + w1 * 2;  // rank 0's scale is 1, rank 1's is 2
    CAPTURE(weight);
    CHECK(mismatches(a.grad(), both) == 0);
    CHECK(mismatches(b.grad(), both) == 0);
    CHECK(mismatches(c.grad(), both) == 0);
    CHECK(mismatches(u.grad(), w0) == 0);                            // rank 1 added zeros
    CHECK(z.grad().to_vector<float>() == std::vector<float>{0, 0});  // nobody had a gradient
    for (Tensor* p : {&a, &b, &c, &u, &z}) p->zero_grad();
  }
}
