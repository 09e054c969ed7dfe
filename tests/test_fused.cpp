// The fused layers (layer_norm, dropout, cross_entropy, gelu) against their oracles: the same
// math composed from simpler differentiable ops, forward and every input gradient. Also
// gradcheck in f64, PyTorch values for cross_entropy, dropout statistics, thread-count
// independence and error messages.
//
// Tolerances are relative to the largest expected magnitude of the tensor compared (elementwise
// relative error means nothing for gradient entries that cancel to about 0). The fused and
// composed versions round differently, so they agree to a few ulps of each intermediate: 1e-12 in
// f64, where an ulp is 1e-16, and 1e-6 in f32, where an ulp is 6e-8 and the composed f32 chain
// (mean, subtract, var, sqrt, divide, ...) rounds at every step; the observed worst is 2e-7.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <string>
#include <tuple>

#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "tensor/kernels/kernels.h"
#include "tensor/parallel.h"
#include "tensor/random.h"

using namespace spear;
using V = std::vector<Tensor>;

namespace {

constexpr double kTolF64 = 1e-12;
constexpr double kTolF32 = 1e-6;

template <typename T>
constexpr double tol() {
  return std::is_same_v<T, double> ? kTolF64 : kTolF32;
}

// A random leaf: N(shift, scale^2) values, drawn in f64 from `seed`, then converted.
Tensor leaf(const Shape& shape, DType dtype, uint64_t seed, double scale = 1.0,
            double shift = 0.0) {
  Generator gen(seed);
  return kernels::to_dtype(randn(shape, f64, &gen) * scale + shift, dtype).requires_grad_();
}

std::vector<double> values(const Tensor& t) {
  REQUIRE(t.defined());
  return kernels::to_dtype(t, f64).to_vector<double>();
}

// The output of fn and the gradient of every leaf after back-propagating `upstream` (ones for
// a scalar output when upstream is undefined).
struct Result {
  std::vector<double> out;
  std::vector<std::vector<double>> grads;
};

Result run(const std::function<Tensor(const V&)>& fn, const V& leaves,
           const Tensor& upstream = Tensor()) {
  for (Tensor l : leaves) l.zero_grad();
  Tensor y = fn(leaves);
  y.backward(upstream);
  Result r{values(y), {}};
  for (const Tensor& l : leaves) r.grads.push_back(values(l.grad()));
  return r;
}

// Checks the worst element: |actual - expected| <= rtol * max |expected|.
void check_close(const std::vector<double>& actual, const std::vector<double>& expected,
                 double rtol, const std::string& what) {
  INFO(what);
  REQUIRE(actual.size() == expected.size());
  double scale = 0, worst = 0;
  size_t at = 0;
  for (double e : expected) scale = std::max(scale, std::fabs(e));
  for (size_t i = 0; i < actual.size(); ++i) {
    const double err = std::fabs(actual[i] - expected[i]);
    if (!(err <= worst)) std::tie(worst, at) = std::make_tuple(err, i);  // NaN counts as worst
  }
  if (actual.empty()) return;
  INFO("element " << at << ": " << actual[at] << " vs " << expected[at]);
  CHECK(worst <= rtol * scale);
}

void check_close(const Result& fused, const Result& composed, double rtol) {
  check_close(fused.out, composed.out, rtol, "forward");
  REQUIRE(fused.grads.size() == composed.grads.size());
  for (size_t i = 0; i < fused.grads.size(); ++i)
    check_close(fused.grads[i], composed.grads[i], rtol, str_cat("gradient of input ", i));
}

// fn with 1 thread and with 2 gives bit-identical outputs and gradients.
void check_thread_invariant(const std::function<Result()>& fn) {
  const int saved = get_num_threads();
  set_num_threads(1);
  Result one = fn();
  set_num_threads(2);
  Result two = fn();
  set_num_threads(saved);
  CHECK(one.out == two.out);
  CHECK(one.grads == two.grads);
}

void check_gradcheck(const char* name, const V& inputs, const GradcheckFn& fn) {
  GradcheckOptions options;
  options.name = name;
  GradcheckResult result = gradcheck(fn, inputs, options);
  CHECK_MESSAGE(result.ok, result.report);
}

template <typename E, typename Fn>
void check_throws(const std::string& message, Fn fn) {
  try {
    fn();
    FAIL("expected an exception: " << message);
  } catch (const E& e) {
    CHECK(std::string(e.what()) == message);
  }
}

// ---- Oracles ----

// (x - mean) / sqrt(var + eps) * w + b over the last dim, biased var; w, b may be undefined.
Tensor composed_layer_norm(const Tensor& x, const Tensor& w, const Tensor& b, double eps = 1e-5) {
  Tensor y = (x - mean(x, {-1}, true)) / sqrt(var(x, {-1}, true, /*unbiased=*/false) + eps);
  if (w.defined()) y = y * w;
  if (b.defined()) y = y + b;
  return y;
}

// -sum(log_softmax(logits) * q) / count, where row r of q is the smoothed one-hot target
// (1 - eps) * onehot(t_r) + eps / C, or zeros when t_r is ignored; count = rows not ignored.
Tensor composed_cross_entropy(const Tensor& logits, const std::vector<int64_t>& targets,
                              int64_t ignore_index = -100, double eps = 0.0) {
  const int64_t c = logits.size(-1);
  std::vector<double> q(targets.size() * static_cast<size_t>(c), 0.0);
  int64_t count = 0;
  for (size_t r = 0; r < targets.size(); ++r) {
    if (targets[r] == ignore_index) continue;
    ++count;
    for (int64_t k = 0; k < c; ++k)
      q[r * c + k] = eps / static_cast<double>(c) + (k == targets[r] ? 1 - eps : 0.0);
  }
  Tensor qt = kernels::to_dtype(tensor(q, logits.shape()), logits.dtype());
  return -sum(log_softmax(logits, -1) * qt) / static_cast<double>(count);
}

Tensor ids(const std::vector<int64_t>& v, const Shape& shape = {}) {
  return tensor(v, shape);
}

}  // namespace

// ---- layer_norm ----

TEST_CASE_TEMPLATE("layer_norm equals its composition, forward and gradients", T, float, double) {
  const DType dt = dtype_of<T>();
  // Rows with a large mean (shift 3) check that the variance does not cancel.
  Tensor x = leaf({3, 4, 7}, dt, 1, 2.0, 3.0), w = leaf({7}, dt, 2), b = leaf({7}, dt, 3);
  Tensor g = randn({3, 4, 7}, dt);
  SUBCASE("weight and bias") {
    check_close(
        run([](const V& in) { return layer_norm(in[0], in[1], in[2]); }, {x, w, b}, g),
        run([](const V& in) { return composed_layer_norm(in[0], in[1], in[2]); }, {x, w, b}, g),
        tol<T>());
  }
  SUBCASE("no weight or bias, and a different eps") {
    check_close(run([](const V& in) { return layer_norm(in[0], Tensor(), Tensor(), 0.1); }, {x}, g),
                run([](const V& in) { return composed_layer_norm(in[0], Tensor(), Tensor(), 0.1); },
                    {x}, g),
                tol<T>());
  }
  SUBCASE("weight only") {
    check_close(
        run([](const V& in) { return layer_norm(in[0], in[1], Tensor()); }, {x, w}, g),
        run([](const V& in) { return composed_layer_norm(in[0], in[1], Tensor()); }, {x, w}, g),
        tol<T>());
  }
  SUBCASE("a transposed (non-contiguous) input and an expanded weight") {
    Tensor base = leaf({7, 12}, dt, 4), w1 = leaf({1}, dt, 5);
    Tensor g2 = randn({12, 7}, dt);
    auto fused = [](const V& in) {
      return layer_norm(transpose(in[0], 0, 1), expand(in[1], {7}), in[2]);
    };
    auto composed = [](const V& in) {
      return composed_layer_norm(transpose(in[0], 0, 1), expand(in[1], {7}), in[2]);
    };
    check_close(run(fused, {base, w1, b}, g2), run(composed, {base, w1, b}, g2), tol<T>());
  }
}

TEST_CASE("layer_norm: saved statistics, a constant row, an empty batch") {
  // x = [1, 2, 3, 6]: mean 3, biased var (4 + 1 + 0 + 9) / 4 = 3.5.
  Tensor x = tensor(std::vector<double>{1, 2, 3, 6}, {1, 4});
  kernels::LayerNormResult r = kernels::layer_norm(x, ones({4}, f64), zeros({4}, f64), /*eps=*/0.0);
  CHECK(r.mean.shape() == Shape{1});
  CHECK(r.mean.item<double>() == 3.0);
  CHECK(r.rstd.item<double>() == doctest::Approx(1 / std::sqrt(3.5)).epsilon(1e-15));
  CHECK(r.y.to_vector<double>()[3] == doctest::Approx(3 / std::sqrt(3.5)).epsilon(1e-15));

  // A constant row: xhat = 0, so y = bias; rstd = 1/sqrt(eps) keeps the gradient finite:
  // dx = rstd * (g - mean(g)), here with g = dsum(y^2)/dy = 2 * bias = [2, 4, 6].
  Tensor c = full({2, 3}, 5.0, f64).requires_grad_();
  Tensor b = tensor(std::vector<double>{1, 2, 3});
  Tensor y = layer_norm(c, Tensor(), b);
  CHECK(y.to_vector<double>() == std::vector<double>{1, 2, 3, 1, 2, 3});
  sum(y * y).backward();
  const double rstd = 1 / std::sqrt(1e-5);
  check_close(values(c.grad()), {-2 * rstd, 0, 2 * rstd, -2 * rstd, 0, 2 * rstd}, kTolF64,
              "constant row gradient");

  // No rows: an empty output, and zero gradients for weight and bias.
  Tensor e = zeros({0, 5}, f32).requires_grad_();
  Tensor w = ones({5}, f32).requires_grad_(), bb = zeros({5}, f32).requires_grad_();
  Tensor ye = layer_norm(e, w, bb);
  CHECK(ye.shape() == Shape{0, 5});
  sum(ye).backward();
  CHECK(e.grad().shape() == Shape{0, 5});
  CHECK(w.grad().to_vector<float>() == std::vector<float>(5, 0.0f));
  CHECK(bb.grad().to_vector<float>() == std::vector<float>(5, 0.0f));
}

TEST_CASE("layer_norm passes gradcheck") {
  check_gradcheck("layer_norm", {leaf({3, 5}, f64, 10), leaf({5}, f64, 11), leaf({5}, f64, 12)},
                  [](const V& in) { return layer_norm(in[0], in[1], in[2]); });
  check_gradcheck("layer_norm (no affine)", {leaf({2, 3, 4}, f64, 13)},
                  [](const V& in) { return layer_norm(in[0], Tensor(), Tensor(), 1e-3); });
}

TEST_CASE("layer_norm is bit-identical with 1 and 2 threads") {
  // 512 rows of 128: 65536 elements, so forward rows and backward row blocks are both split.
  Tensor x = leaf({512, 128}, f32, 20, 1.5, 0.5), w = leaf({128}, f32, 21),
         b = leaf({128}, f32, 22);
  Tensor g = randn({512, 128}, f32);
  check_thread_invariant([&] {
    return run([](const V& in) { return layer_norm(in[0], in[1], in[2]); }, {x, w, b}, g);
  });
}

TEST_CASE("layer_norm errors name the op and the shapes") {
  Tensor x = zeros({2, 5});
  const std::string mismatch = " does not match the normalised last dim of input [2, 5]";
  check_throws<ShapeError>("layer_norm: weight shape [4]" + mismatch,
                           [&] { layer_norm(x, ones({4}), Tensor()); });
  check_throws<ShapeError>("layer_norm: bias shape [5, 1]" + mismatch, [&] {
    layer_norm(x, Tensor(), ones({5, 1}));
  });
  check_throws<DTypeError>("layer_norm: weight is f64 but input is f32",
                           [&] { layer_norm(x, ones({5}, f64), Tensor()); });
  check_throws<ShapeError>("layer_norm: input must have at least 1 dim, got shape []",
                           [&] { layer_norm(scalar_tensor(1.0), Tensor(), Tensor()); });
  check_throws<DTypeError>("layer_norm: expected a floating input, got i64", [&] {
    layer_norm(zeros({2, 5}, i64), Tensor(), Tensor());
  });
}

// ---- dropout ----

TEST_CASE_TEMPLATE("dropout equals x * mask / (1 - p) with the same mask", T, float, double) {
  const DType dt = dtype_of<T>();
  const double p = 0.3;
  Tensor x = leaf({6, 9}, dt, 30), g = randn({6, 9}, dt);
  Result fused = run(
      [&](const V& in) {
        Generator gen(99);
        return dropout(in[0], p, true, &gen);
      },
      {x}, g);
  Result composed = run(
      [&](const V& in) {
        Generator gen(99);
        return in[0] * bernoulli_mask({6, 9}, 1 - p, dt, &gen) / (1 - p);
      },
      {x}, g);
  check_close(fused, composed, tol<T>());
  // The mask really drops some elements and keeps others.
  int64_t zeros_seen = 0;
  for (double v : fused.out) zeros_seen += v == 0.0;
  CHECK(zeros_seen > 0);
  CHECK(zeros_seen < 54);
}

TEST_CASE("dropout keeps a fraction 1 - p and preserves the mean") {
  // n Bernoulli(1 - p) draws: the kept fraction has standard error sqrt(p (1 - p) / n). With
  // x = 3, y is 0 or 3 / (1 - p), so mean(y) has standard error 3 sqrt(p / ((1 - p) n)). The
  // bounds are 5 standard errors: a correct mask fails them with probability below 1e-6.
  const int64_t n = 200000;
  for (double p : {0.1, 0.5, 0.8}) {
    Generator gen(7);
    std::vector<double> y = values(dropout(full({n}, 3.0, f64), p, true, &gen));
    double kept = 0, total = 0, others = 0;
    for (double v : y) {
      kept += v != 0;
      total += v;
      others += v != 0 && v != 3.0 * (1 / (1 - p));  // a kept value is x times the scaled mask
    }
    CHECK(others == 0);
    const double nd = static_cast<double>(n);
    CHECK(std::fabs(kept / nd - (1 - p)) <= 5 * std::sqrt(p * (1 - p) / nd));
    CHECK(std::fabs(total / nd - 3.0) <= 5 * 3 * std::sqrt(p / ((1 - p) * nd)));
  }
}

TEST_CASE("dropout masks: the same seed repeats, the stream moves on, threads do not matter") {
  Tensor x = ones({40000}, f32);  // over 32768 elements, so the mask is drawn in parallel
  Generator a(5), b(5), c(6);
  std::vector<float> first = dropout(x, 0.5, true, &a).to_vector<float>();
  CHECK(first == dropout(x, 0.5, true, &b).to_vector<float>());
  CHECK(first != dropout(x, 0.5, true, &c).to_vector<float>());
  CHECK(first != dropout(x, 0.5, true, &a).to_vector<float>());  // a has moved on
  Tensor xl = leaf({40000}, f32, 40), g = randn({40000}, f32);
  check_thread_invariant([&] {
    return run(
        [](const V& in) {
          Generator gen(5);
          return dropout(in[0], 0.5, true, &gen);
        },
        {xl}, g);
  });
}

TEST_CASE("dropout: identity in eval mode or with p = 0, zeros with p = 1") {
  Tensor x = leaf({3, 4}, f32, 50);
  CHECK(dropout(x, 0.5, /*training=*/false).is_same(x));
  CHECK(dropout(x, 0.0, /*training=*/true).is_same(x));
  Generator gen(1);
  Tensor y = dropout(x, 1.0, true, &gen);
  CHECK(y.to_vector<float>() == std::vector<float>(12, 0.0f));
  sum(y).backward();
  CHECK(x.grad().to_vector<float>() == std::vector<float>(12, 0.0f));
}

TEST_CASE("dropout passes gradcheck") {
  check_gradcheck("dropout", {leaf({4, 6}, f64, 60)}, [](const V& in) {
    Generator gen(3);  // a fresh generator per call: every evaluation uses the same mask
    return dropout(in[0], 0.4, true, &gen);
  });
}

TEST_CASE("dropout errors") {
  Tensor x = zeros({3});
  const std::string range = "dropout: probability p must be in [0, 1], got ";
  check_throws<Error>(range + "-0.1", [&] { dropout(x, -0.1, true); });
  check_throws<Error>(range + "1.5", [&] { dropout(x, 1.5, false); });
  check_throws<Error>(range + "nan", [&] { dropout(x, std::nan(""), true); });
  check_throws<DTypeError>("dropout: expected a floating input, got i64",
                           [&] { dropout(zeros({3}, i64), 0.5, true); });
}

// ---- cross_entropy ----

TEST_CASE_TEMPLATE("cross_entropy matches PyTorch", T, float, double) {
  // The logits are exact in f32, so both dtypes see the same input.
  const std::vector<double> logits_values = {0.5,  -1.25, 2.0,   0.0,  1.5, -0.75, 3.0,
                                             0.25, -2.0,  1.0,   1.75, 0.5, -0.5,  2.25,
                                             -1.5, 0.0,   0.125, -3.0, 1.0, 0.5};
  Tensor x = kernels::to_dtype(tensor(logits_values, {4, 5}), dtype_of<T>()).requires_grad_();
  // Loss and x.grad from /usr/bin/python3 with torch 1.13, in float64 (16 significant digits):
  //   x = torch.tensor(logits_values).reshape(4, 5).requires_grad_()
  //   loss = torch.nn.functional.cross_entropy(x, torch.tensor(targets), **kwargs); loss.backward()
  struct Case {
    std::vector<int64_t> targets;
    int64_t ignore_index;
    double label_smoothing;
    double loss;
    std::vector<double> grad;
  };
  // clang-format off
  const std::vector<Case> cases = {
      // cross_entropy(x, [1, 0, 4, 2])
      {{1, 0, 4, 2}, -100, 0.0, 4.288960938535411,
       {0.02783878957226097, -0.2451623437551411, 0.1247647989574433, 0.01688507940486463,
        0.07567367582057216, -0.2452180997267834, 0.2033315736335668, 0.01299855261818809,
        0.001370037366383617, 0.02751793610864492, 0.08118465954279146, 0.02325979439047116,
        0.008556800162129178, 0.1338508750427484, -0.2468521291381402, 0.03816829660265324,
        0.04325034625149232, -0.2480997124075588, 0.1037521870782274, 0.06292888247518583}},
      // cross_entropy(x, [1, -100, 4, -100]): the default ignore_index
      {{1, -100, 4, -100}, -100, 0.0, 4.159882585889249,
       {0.05567757914452195, -0.4903246875102822, 0.2495295979148866, 0.03377015880972926,
        0.1513473516411443, 0, 0, 0, 0, 0, 0.1623693190855829, 0.04651958878094231,
        0.01711360032425836, 0.2677017500854968, -0.4937042582762804, 0, 0, 0, 0, 0}},
      // cross_entropy(x, [1, 0, 4, 2], ignore_index=2, label_smoothing=0.2)
      {{1, 0, 4, 2}, 2, 0.2, 3.768796025146697,
       {0.02378505276301462, -0.2735497916735214, 0.1530197319432577, 0.009180105873152832,
        0.08756490109409619, -0.2736241329690445, 0.2577754315114222, 0.003998070157584119,
        -0.01150661684482185, 0.02335724814485988, 0.09491287939038856, 0.01767972585396153,
        -0.001924266450494435, 0.1651345000569978, -0.2758028388508536, 0, 0, 0, 0, 0}},
  };
  // clang-format on
  // f32: the loss is rounded once from double; the gradient also carries the f32-rounded
  // logsumexp (|lse| < 4, so an error below 4 * 6e-8 in the exponent).
  for (const Case& c : cases) {
    CAPTURE(c.ignore_index);
    CAPTURE(c.label_smoothing);
    x.zero_grad();
    Tensor loss = cross_entropy(x, ids(c.targets), c.ignore_index, c.label_smoothing);
    CHECK(loss.shape() == Shape{});
    CHECK(loss.dtype() == dtype_of<T>());
    check_close(values(loss), {c.loss}, tol<T>(), "loss");
    loss.backward();
    check_close(values(x.grad()), c.grad, tol<T>(), "gradient");
  }

  // Every target ignored: the mean over no targets is 0 / 0 = NaN, as in PyTorch; the gradient
  // is zero.
  x.zero_grad();
  Tensor nan_loss = cross_entropy(x, ids({-100, -100, -100, -100}));
  CHECK(std::isnan(nan_loss.item<double>()));
  nan_loss.backward();
  CHECK(values(x.grad()) == std::vector<double>(20, 0.0));
}

TEST_CASE_TEMPLATE("cross_entropy equals log_softmax composed with the target distribution", T,
                   float, double) {
  const DType dt = dtype_of<T>();
  Tensor x = leaf({6, 9}, dt, 70, 2.0);
  const std::vector<int64_t> t = {3, 0, 8, -1, 5, 3};
  for (double eps : {0.0, 0.15}) {
    CAPTURE(eps);
    Tensor g = scalar_tensor(0.7, dt);  // a non-unit upstream gradient
    check_close(run([&](const V& in) { return cross_entropy(in[0], ids(t), -1, eps); }, {x}, g),
                run([&](const V& in) { return composed_cross_entropy(in[0], t, -1, eps); }, {x}, g),
                tol<T>());
  }
}

TEST_CASE("cross_entropy flattens (..., C) logits with (...) targets") {
  Tensor x = leaf({2, 3, 5}, f64, 80);
  Tensor t = ids({4, 0, -100, 2, 2, 1}, {2, 3});
  Result nd = run([&](const V& in) { return cross_entropy(in[0], t, -100, 0.1); }, {x});
  Result flat = run(
      [&](const V& in) {
        return cross_entropy(reshape(in[0], {6, 5}), reshape(t, {6}), -100, 0.1);
      },
      {x});
  CHECK(nd.out == flat.out);
  CHECK(nd.grads == flat.grads);

  // One unbatched row: logits (C), target ().
  Tensor row = leaf({5}, f64, 81);
  check_close(run([&](const V& in) { return cross_entropy(in[0], scalar_tensor(2, i64)); }, {row}),
              run([&](const V& in) { return composed_cross_entropy(in[0], {2}); }, {row}), kTolF64);
}

TEST_CASE("cross_entropy with a masked (-inf) logit stays finite") {
  // log softmax([0, -inf, 0])[0] = -log 2, and the masked class gets no gradient.
  const double inf = std::numeric_limits<double>::infinity();
  Tensor x = tensor(std::vector<double>{0, -inf, 0}, {1, 3}).requires_grad_();
  Tensor loss = cross_entropy(x, ids({0}));
  CHECK(loss.item<double>() == doctest::Approx(std::log(2.0)).epsilon(1e-15));
  loss.backward();
  CHECK(x.grad().to_vector<double>() == std::vector<double>{-0.5, 0.0, 0.5});
}

TEST_CASE("cross_entropy passes gradcheck") {
  check_gradcheck("cross_entropy", {leaf({4, 5}, f64, 90)}, [](const V& in) {
    return cross_entropy(in[0], ids({1, 0, 4, 2}));
  });
  check_gradcheck("cross_entropy (ignore_index, label_smoothing)", {leaf({4, 5}, f64, 91)},
                  [](const V& in) {
                    return cross_entropy(in[0], ids({1, -100, 4, 0}), -100, 0.1);
                  });
}

TEST_CASE("cross_entropy is bit-identical with 1 and 2 threads") {
  // 4096 rows of 16 classes: 65536 elements, split across threads.
  Tensor x = leaf({4096, 16}, f32, 100, 3.0);
  Generator gen(101);
  Tensor t = randint(-1, 16, {4096}, &gen);  // -1 is the ignore_index
  check_thread_invariant(
      [&] { return run([&](const V& in) { return cross_entropy(in[0], t, -1, 0.1); }, {x}); });
}

TEST_CASE("cross_entropy errors name the op, the shapes and the bad target") {
  Tensor x = zeros({5, 10});
  check_throws<Error>("cross_entropy: target 12 out of range [0, 10) at position 3", [&] {
    cross_entropy(x, ids({1, 2, 0, 12, 3}));
  });
  check_throws<Error>("cross_entropy: target -1 out of range [0, 10) at position 1", [&] {
    cross_entropy(x, ids({1, -1, 0, 2, 3}));
  });
  const std::string mismatch = "cross_entropy: targets shape [3] does not match logits [5, 10]";
  check_throws<ShapeError>(mismatch + " (expected [5])", [&] { cross_entropy(x, ids({1, 2, 3})); });
  check_throws<DTypeError>("cross_entropy: targets must be i64 class ids, got f32",
                           [&] { cross_entropy(x, zeros({5})); });
  check_throws<DTypeError>("cross_entropy: logits must be floating, got i64", [&] {
    cross_entropy(zeros({5, 10}, i64), ids({1, 2, 0, 2, 3}));
  });
  const std::string no_class = "cross_entropy: logits must have a last dim of at least one class";
  check_throws<ShapeError>(no_class + ", got shape [5, 0]", [&] {
    cross_entropy(zeros({5, 0}), ids({0, 0, 0, 0, 0}));
  });
  check_throws<Error>("cross_entropy: label_smoothing must be in [0, 1], got 1.5", [&] {
    cross_entropy(x, ids({1, 2, 0, 2, 3}), -100, 1.5);
  });
}

// ---- gelu (fused through kernels::unary_backward) ----

TEST_CASE_TEMPLATE("gelu equals 0.5 x (1 + erf(x / sqrt 2)), forward and gradient", T, float,
                   double) {
  const DType dt = dtype_of<T>();
  Tensor x = leaf({5, 7}, dt, 110, 2.0), g = randn({5, 7}, dt);
  check_close(
      run([](const V& in) { return gelu(in[0]); }, {x}, g),
      run([](const V& in) { return 0.5 * in[0] * (1.0 + erf(in[0] / std::sqrt(2.0))); }, {x}, g),
      tol<T>());
}
