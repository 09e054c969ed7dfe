// spear-bench: throughput of spear's kernels, layers and autograd.
//
//   spear-bench matmul|elementwise|ops|attention|spe|train [--json] [--threads N]
#include <cstdlib>
#include <iostream>
#include <string>

#include <spear.h>

#include "bench/harness.h"

namespace {

int usage(int code) {
  (code ? std::cerr : std::cout)
      << "usage: spear-bench matmul|elementwise|ops|attention|spe|train [--json] [--threads N]\n"
         "                   [--only KIND] [train flags]\n"
         "  matmul       square f32 GEMMs 256..2048 and transformer shapes: spear under both\n"
         "               GEMM policies vs one raw cblas_sgemm call (GFLOP/s)\n"
         "  elementwise  add and gelu bandwidth on 16M floats vs memcpy (GB/s)\n"
         "  ops          autograd overhead per op on 8x8 tensors (microseconds)\n"
         "  attention    forward + backward time and peak tensor memory vs sequence length for\n"
         "               softmax, linear (fused and composed, causal and not) and FAVOR+\n"
         "  spe          forward + backward time and peak memory of SPE (sine, conv) feeding\n"
         "               linear attention, and of the attention alone (none), vs sequence length\n"
         "  train        a whole training step (forward, backward, AdamW) of a spear-train model:\n"
         "               ms/step, tokens/s, FLOPs, GFLOP/s, peak memory. Flags: --config FILE,\n"
         "               --kind K, --positional P, --n N, --batch B, --dim C, --layers L,\n"
         "               --set key.path=value, --warmup W (2), --steps S (5). Without --config:\n"
         "               an encoder classifier on random tokens, N 1024, batch 8\n"
         "  --json       one JSON object per line\n"
         "  --threads N  threads (default: SPEAR_NUM_THREADS or all cores)\n"
         "  --only KIND  attention: softmax, linear, linear_composed or favor; spe: none, sine\n"
         "               or conv\n";
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return usage(2);
  const std::string what = argv[1];
  if (what == "--help" || what == "-h") return usage(0);
  spear::bench::Options opt;
  for (int i = 2; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") return usage(0);
    if (arg == "--json") {
      opt.json = true;
    } else if (arg == "--only" && i + 1 < argc) {
      opt.only = argv[++i];
    } else if (arg == "--threads" && i + 1 < argc) {
      const int threads = std::atoi(argv[++i]);
      if (threads < 1) {
        std::cerr << "spear-bench: --threads needs a positive integer, got '" << argv[i] << "'\n";
        return 2;
      }
      spear::set_num_threads(threads);
    } else if (what == "train") {
      opt.rest.push_back(arg);
    } else {
      std::cerr << "spear-bench: unknown argument '" << arg << "'\n";
      return usage(2);
    }
  }
  try {
    if (what == "matmul")
      spear::bench::bench_matmul(opt);
    else if (what == "elementwise")
      spear::bench::bench_elementwise(opt);
    else if (what == "ops")
      spear::bench::bench_ops(opt);
    else if (what == "attention")
      spear::bench::bench_attention(opt);
    else if (what == "spe")
      spear::bench::bench_spe(opt);
    else if (what == "train")
      spear::bench::bench_train(opt);
    else
      return usage(2);
  } catch (const spear::Error& e) {
    std::cerr << "spear-bench: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
