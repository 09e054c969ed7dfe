// spear-bench: throughput of spear's kernels next to the raw library they stand on.
//
//   spear-bench matmul [--json] [--threads N]       square f32 GEMMs, spear vs raw cblas_sgemm,
//                                                   plus tall-skinny shapes under both GEMM
//                                                   policies
//   spear-bench elementwise [--json] [--threads N]  add and gelu bandwidth vs memcpy
//   spear-bench ops [--json] [--threads N]          autograd overhead per op on tiny tensors
//
// Each number is the best of several timed repetitions (the least disturbed run).
#include <cblas.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include <spear.h>

namespace {

using Clock = std::chrono::steady_clock;

// Best wall time in seconds of fn over repetitions totalling at least ~0.5 s (at least 3).
double best_seconds(const std::function<void()>& fn) {
  fn();  // warm up caches and thread pools
  double best = 1e30, total = 0;
  for (int rep = 0; rep < 3 || total < 0.5; ++rep) {
    auto t0 = Clock::now();
    fn();
    double s = std::chrono::duration<double>(Clock::now() - t0).count();
    best = std::min(best, s);
    total += s;
  }
  return best;
}

struct Options {
  bool json = false;
  int threads = 0;
};

void emit(const Options& opt, const std::string& line_json, const std::string& line_text) {
  std::cout << (opt.json ? line_json : line_text) << std::endl;
}

std::string fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

// GFLOP/s of spear::matmul and of one raw cblas_sgemm call (OpenBLAS at the same thread count).
void bench_matmul_shape(const Options& opt, int64_t m, int64_t k, int64_t n) {
  spear::Tensor a = spear::randn({m, k}), b = spear::randn({k, n});
  spear::Tensor c = spear::empty({m, n});
  const double gflop = 2.0 * m * n * k * 1e-9;
  const int threads = spear::get_num_threads();

  spear::set_gemm_policy(spear::GemmPolicy::tbb);
  double t_tbb = best_seconds([&] { spear::matmul(a, b); });
  spear::set_gemm_policy(spear::GemmPolicy::blas);
  double t_blas_policy = best_seconds([&] { spear::matmul(a, b); });
  // The raw call: OpenBLAS with its own threads, from this thread, outside any TBB region.
  double t_raw = best_seconds([&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a.data_ptr<float>(), k,
                b.data_ptr<float>(), n, 0.0f, c.data_ptr<float>(), n);
  });
  spear::set_gemm_policy(spear::GemmPolicy::tbb);

  double tbb = gflop / t_tbb, blas = gflop / t_blas_policy, raw = gflop / t_raw;
  std::string shape = std::to_string(m) + "x" + std::to_string(k) + "x" + std::to_string(n);
  emit(opt,
       "{\"bench\":\"matmul\",\"size\":" + std::to_string(m == k && k == n ? m : 0) +
           ",\"m\":" + std::to_string(m) + ",\"k\":" + std::to_string(k) +
           ",\"n\":" + std::to_string(n) + ",\"threads\":" + std::to_string(threads) +
           ",\"spear_gflops\":" + fmt(tbb) + ",\"spear_blas_policy_gflops\":" + fmt(blas) +
           ",\"sgemm_gflops\":" + fmt(raw) + ",\"ratio\":" + fmt(tbb / raw) + "}",
       "matmul " + shape + "  threads " + std::to_string(threads) + "  spear(tbb) " + fmt(tbb) +
           "  spear(blas policy) " + fmt(blas) + "  raw sgemm " + fmt(raw) + " GFLOP/s  ratio " +
           fmt(tbb / raw));
}

void bench_matmul(const Options& opt) {
  for (int64_t s : {256, 512, 1024, 2048}) bench_matmul_shape(opt, s, s, s);
  // Tall-skinny: activations (B*N, C) times a small weight, the shape of a transformer's Linear.
  bench_matmul_shape(opt, 16384, 64, 64);
  bench_matmul_shape(opt, 16384, 64, 256);
  bench_matmul_shape(opt, 64, 16384, 64);
}

// GB/s moved by add, gelu and memcpy on 16M f32 elements (64 MiB per tensor).
void bench_elementwise(const Options& opt) {
  const int64_t n = int64_t(1) << 24;
  spear::Tensor a = spear::randn({n}), b = spear::randn({n});
  std::vector<float> dst(static_cast<size_t>(n));
  const double bytes = 4.0 * n;
  double t_copy = best_seconds([&] { std::memcpy(dst.data(), a.data_ptr<float>(), 4 * n); });
  double t_add = best_seconds([&] { spear::add(a, b); });
  double t_gelu = best_seconds([&] { spear::gelu(a); });
  const double copy_gbps = 2 * bytes / t_copy * 1e-9;
  struct Row {
    const char* op;
    double gbps;
  };
  for (Row r : {Row{"memcpy", copy_gbps}, Row{"add", 3 * bytes / t_add * 1e-9},
                Row{"gelu", 2 * bytes / t_gelu * 1e-9}}) {
    emit(opt,
         std::string("{\"bench\":\"elementwise\",\"op\":\"") + r.op + "\",\"n\":" +
             std::to_string(n) + ",\"threads\":" + std::to_string(spear::get_num_threads()) +
             ",\"gbps\":" + fmt(r.gbps) + ",\"memcpy_gbps\":" + fmt(copy_gbps) + "}",
         std::string(r.op) + "  n " + std::to_string(n) + "  " + fmt(r.gbps) + " GB/s  (memcpy " +
             fmt(copy_gbps) + " GB/s)");
  }
}

// Microseconds per call of fn, best of 5 batches of `calls` calls.
double micros_per_call(int calls, const std::function<void()>& fn) {
  double best = best_seconds([&] {
    for (int i = 0; i < calls; ++i) fn();
  });
  return best / calls * 1e6;
}

// The cost of recording the graph: tiny (8 x 8) tensors, so the arithmetic is negligible and
// what is measured is dispatch, allocation and graph bookkeeping.
void bench_ops(const Options& opt) {
  struct Op {
    const char* name;
    std::function<spear::Tensor(const spear::Tensor&, const spear::Tensor&)> fn;
  };
  const std::vector<Op> ops = {
      {"add", [](const spear::Tensor& a, const spear::Tensor& b) { return a + b; }},
      {"mul", [](const spear::Tensor& a, const spear::Tensor& b) { return a * b; }},
      {"exp", [](const spear::Tensor& a, const spear::Tensor&) { return spear::exp(a); }},
      {"matmul",
       [](const spear::Tensor& a, const spear::Tensor& b) { return spear::matmul(a, b); }},
      {"sum", [](const spear::Tensor& a, const spear::Tensor&) { return spear::sum(a, {1}); }},
      {"softmax",
       [](const spear::Tensor& a, const spear::Tensor&) { return spear::softmax(a, -1); }},
      {"reshape",
       [](const spear::Tensor& a, const spear::Tensor&) {
         return a.reshape({4, 16});
       }},
      {"transpose", [](const spear::Tensor& a, const spear::Tensor&) { return a.transpose(0, 1); }},
  };
  spear::Tensor a = spear::randn({8, 8}).requires_grad_(),
                b = spear::randn({8, 8}).requires_grad_();
  const int calls = 2000;
  for (const Op& op : ops) {
    double fwd_nograd = micros_per_call(calls, [&] {
      spear::NoGradGuard guard;
      op.fn(a, b);
    });
    double fwd = micros_per_call(calls, [&] { op.fn(a, b); });
    spear::Tensor grad = spear::ones(op.fn(a, b).shape());
    double fwd_bwd = micros_per_call(calls, [&] { op.fn(a, b).backward(grad); });
    emit(opt,
         std::string("{\"bench\":\"ops\",\"op\":\"") + op.name + "\",\"shape\":[8,8],\"threads\":" +
             std::to_string(spear::get_num_threads()) + ",\"fwd_nograd_us\":" + fmt(fwd_nograd) +
             ",\"fwd_us\":" + fmt(fwd) + ",\"fwd_bwd_us\":" + fmt(fwd_bwd) + "}",
         std::string(op.name) + "  no-grad fwd " + fmt(fwd_nograd) + " us  fwd " + fmt(fwd) +
             " us  fwd+bwd " + fmt(fwd_bwd) + " us");
  }
}

int usage(int code) {
  (code ? std::cerr : std::cout)
      << "usage: spear-bench matmul|elementwise|ops [--json] [--threads N]\n"
         "  matmul       square f32 GEMMs 256..2048 and tall-skinny shapes: spear under both\n"
         "               GEMM policies vs one raw cblas_sgemm call\n"
         "  elementwise  add and gelu bandwidth on 16M floats vs memcpy\n"
         "  ops          autograd overhead per op on 8x8 tensors (forward, forward+backward)\n"
         "  --json       one JSON object per line\n"
         "  --threads N  threads for spear and OpenBLAS (default: SPEAR_NUM_THREADS or all "
         "cores)\n";
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return usage(2);
  std::string what = argv[1];
  if (what == "--help" || what == "-h") return usage(0);
  Options opt;
  for (int i = 2; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--json") {
      opt.json = true;
    } else if (arg == "--threads" && i + 1 < argc) {
      opt.threads = std::atoi(argv[++i]);
    } else {
      std::cerr << "spear-bench: unknown argument '" << arg << "'\n";
      return usage(2);
    }
  }
  try {
    if (opt.threads > 0) spear::set_num_threads(opt.threads);
    if (what == "matmul")
      bench_matmul(opt);
    else if (what == "elementwise")
      bench_elementwise(opt);
    else if (what == "ops")
      bench_ops(opt);
    else
      return usage(2);
  } catch (const spear::Error& e) {
    std::cerr << "spear-bench: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
