// fashion_mnist: sequential Fashion-MNIST (Xiao et al. 2017), LRA's "Image" setting on a data set
// Debian ships: a classifier reads a 28x28 grey image as a sequence of 784 pixel tokens, row by
// row, and names its class (T-shirt/top, trouser, pullover, dress, coat, sandal, shirt, sneaker,
// bag, ankle boot).
//
//   token = 1 + pixel * task.levels / 256      (pixel 0-255; id 0 is padding, so a black pixel
//                                               is not mistaken for it, unlike in LRA)
//
// task.downsample = S > 1 first averages each S x S block of pixels (rounding down), so the image
// becomes (28 / S)^2 tokens (196 for S = 2) on a (28 / S) x (28 / S) grid.
//
// The files are the four gzip IDX files of Debian's dataset-fashion-mnist package, in task.path
// (default /usr/share/datasets/fashion-mnist). Training draws from the first 60000 - val_size
// training images, validation takes the last val_size, test draws from the official 10000 test
// images. There is no CLS token: the positions are exactly the grid (TaskSpec::grid), so use
// model.pooling = mean.
#include <filesystem>

#include "examples/train/idx.h"
#include "examples/train/tasks.h"

namespace spear::train {
namespace {

constexpr int64_t kSide = 28;
const char* const kDefaultDir = "/usr/share/datasets/fashion-mnist";

// The images and labels of one IDX pair, checked against each other.
struct Images {
  IdxArray pixels, labels;
};

Images read_images(const std::string& dir, const std::string& prefix) {
  const std::string images = dir + "/" + prefix + "-images-idx3-ubyte.gz";
  const std::string labels = dir + "/" + prefix + "-labels-idx1-ubyte.gz";
  for (const std::string& path : {images, labels})
    SPEAR_CHECK_T(IOError, std::filesystem::exists(path), "fashion_mnist: ", path,
                  " is missing (install Debian's package dataset-fashion-mnist, or point "
                  "task.path at a directory holding its four files)");
  Images r;
  r.pixels = read_idx(images);
  r.labels = read_idx(labels);
  const std::vector<int64_t>& s = r.pixels.shape;
  SPEAR_CHECK_T(IOError, s.size() == 3 && s[1] == kSide && s[2] == kSide, "fashion_mnist: ", images,
                " holds an array of shape ", s, ", expected (n, 28, 28)");
  SPEAR_CHECK_T(IOError, r.labels.shape == std::vector<int64_t>{s[0]}, "fashion_mnist: ", labels,
                " holds shape ", r.labels.shape, ", expected (", s[0], ") to match ", images);
  for (size_t i = 0; i < r.labels.data.size(); ++i)
    SPEAR_CHECK_T(IOError, r.labels.data[i] < 10, "fashion_mnist: ", labels, ": label ",
                  static_cast<int>(r.labels.data[i]), " of image ", i, " is not a class 0-9");
  return r;
}

// The tokens of one 28x28 image: each side x side block of pixels averaged, then quantised.
std::vector<int64_t> image_tokens(const uint8_t* pixels, int64_t side, int64_t levels) {
  const int64_t out = kSide / side;
  std::vector<int64_t> tokens(static_cast<size_t>(out * out));
  for (int64_t i = 0; i < out; ++i)
    for (int64_t j = 0; j < out; ++j) {
      int64_t sum = 0;
      for (int64_t di = 0; di < side; ++di)
        for (int64_t dj = 0; dj < side; ++dj)
          sum += pixels[(i * side + di) * kSide + j * side + dj];
      tokens[static_cast<size_t>(i * out + j)] = 1 + sum / (side * side) * levels / 256;
    }
  return tokens;
}

}  // namespace

TaskSpec fashion_mnist_task(const TaskConfig& config) {
  TaskSpec spec;
  spec.name = "fashion_mnist";
  spec.head = Head::classifier;
  spec.vocab_size = config.levels + 1;
  spec.num_classes = 10;
  spec.pad_id = 0;
  const int64_t side = config.downsample;
  SPEAR_CHECK_T(ConfigError, side >= 1 && kSide % side == 0, "config: task.downsample ", side,
                " must divide the image side 28 (1, 2, 4, 7, 14 or 28)");
  spec.max_input_len = (kSide / side) * (kSide / side);
  spec.grid = {kSide / side, kSide / side};
  const std::string dir = config.path.empty() ? kDefaultDir : config.path;
  const int64_t levels = config.levels, val_size = config.val_size;
  spec.load = [dir, levels, val_size, side](Split split, int64_t size, Generator& gen) {
    const Images all = read_images(dir, split == Split::test ? "t10k" : "train");
    const int64_t n = all.pixels.shape[0];
    // Each split draws from a range of its file: [begin, end).
    int64_t begin = 0, end = n;
    if (split != Split::test) {
      SPEAR_CHECK_T(ConfigError, val_size < n, "config: task.val_size ", val_size,
                    " leaves no training images of the ", n, " in ", dir);
      (split == Split::train ? end : begin) = n - val_size;
    }
    SPEAR_CHECK_T(ConfigError, size <= end - begin, "config: task.", split_name(split), "_size ",
                  size, " exceeds the ", end - begin, " ", split_name(split), " images of ", dir);
    std::vector<Example> examples;
    for (int64_t i : random_subset(gen, end - begin, size)) {
      const auto image = static_cast<size_t>(begin + i);
      Example e;
      e.inputs = image_tokens(&all.pixels.data[image * kSide * kSide], side, levels);
      e.targets = {all.labels.data[image]};
      examples.push_back(std::move(e));
    }
    return examples;
  };
  return spec;
}

}  // namespace spear::train
