// Checks that an installed spear compiles, links and computes: exits 0 only on the right answer.
#include <iostream>

#include <spear.h>

int main() {
  spear::Tensor a = spear::tensor(std::vector<double>{1, 2, 3, 4}, {2, 2});
  spear::Tensor b = spear::matmul(a, a);  // [[7, 10], [15, 22]]
  std::cout << b << "\n";
  return b.to_vector<double>() == std::vector<double>{7, 10, 15, 22} ? 0 : 1;
}
