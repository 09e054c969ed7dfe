// spear-demo: a first look at the tensor library. Builds two tensors, multiplies them, takes a
// softmax, and writes the result to a safetensors file that PyTorch or numpy can open.
//
//   build/bin/spear-demo [--out FILE]
#include <cstring>
#include <iostream>

#include <spear.h>

int main(int argc, char** argv) {
  std::string out = "demo.safetensors";
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--help") == 0) {
      std::cout << "usage: spear-demo [--out FILE]\n"
                   "  --out FILE  where to write the result (default: demo.safetensors)\n";
      return 0;
    }
    if (std::strcmp(argv[i], "--out") == 0 && i + 1 < argc) {
      out = argv[++i];
    } else {
      std::cerr << "spear-demo: unknown argument '" << argv[i] << "' (see --help)\n";
      return 2;
    }
  }
  try {
    std::cout << "spear " << SPEAR_VERSION_STRING << ", " << spear::get_num_threads()
              << " threads, BLAS: " << spear::blas_info() << "\n\n";
    spear::manual_seed(0);
    spear::Tensor a = spear::arange(0.0, 6.0, 1.0, spear::f32).reshape({2, 3});
    spear::Tensor b = spear::randn({3, 4});
    spear::Tensor scores = spear::matmul(a, b);
    spear::Tensor probs = spear::softmax(scores, -1);
    std::cout << "a =\n"
              << a << "\n\nb = randn(3, 4) =\n"
              << b << "\n\nsoftmax(a @ b, -1) =\n"
              << probs << "\n\nrow sums = " << probs.sum({1}) << "\n";
    spear::save_safetensors(out, {{"a", a}, {"b", b}, {"probs", probs}},
                            {{"source", "spear-demo"}});
    std::cout << "\nwrote " << out << "\n";
  } catch (const spear::Error& e) {
    std::cerr << "spear-demo: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
