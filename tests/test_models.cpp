// Attention, positional encodings, transformer blocks and the two model heads: shapes, gradients
// (gradcheck in f64), the properties each part promises (causality, padding invariance, RoPE's
// relative positions, rows of attention weights summing to one), parameter names and errors.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>

#include <spear.h>

#include "nn/transformer.h"

using namespace spear;
using namespace spear::nn;

namespace {

std::vector<std::string> names(const NamedTensors& ts) {
  std::vector<std::string> out;
  for (const auto& [name, t] : ts) out.push_back(name);
  return out;
}

Tensor ids_tensor(const std::vector<int64_t>& ids, const Shape& shape) {
  return tensor(ids, shape);
}

TransformerConfig tiny_config(int64_t layers = 1) {
  TransformerConfig c;
  c.vocab_size = 7;
  c.dim = 8;
  c.heads = 2;
  c.layers = layers;
  c.ffn_hidden = 12;
  return c;
}

TransformerParts softmax_parts(std::shared_ptr<PositionalEncoding> input = nullptr,
                               bool rope = false) {
  TransformerParts parts;
  parts.attention = [](int64_t) { return std::make_shared<SoftmaxAttention>(); };
  if (rope) parts.qk_encoding = [](int64_t) { return std::make_shared<RotaryEncoding>(); };
  parts.input_encoding = std::move(input);
  return parts;
}

void check_gradients(const GradcheckFn& fn, const std::vector<Tensor>& inputs,
                     const std::string& what) {
  CAPTURE(what);
  GradcheckOptions options;
  options.name = what;
  GradcheckResult result = gradcheck(fn, inputs, options);
  CHECK_MESSAGE(result.ok, result.report);
}

bool all_finite(const Tensor& t) {
  for (double v : t.to_vector<double>())
    if (!std::isfinite(v)) return false;
  return true;
}

// The largest |a - b| over two tensors of one shape.
double max_abs_diff(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  std::vector<double> x = a.to_vector<double>(), y = b.to_vector<double>();
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i) worst = std::max(worst, std::fabs(x[i] - y[i]));
  return worst;
}

std::string message_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("softmax attention: rows of weights sum to one and blocked keys get exactly zero") {
  // With v = the identity over keys (M = N, v[b, j, h, :] = e_j) the output row of query i is the
  // row of attention weights itself.
  const int64_t B = 2, N = 4, H = 2, D = 3;
  Generator gen(1);
  Tensor q = randn({B, N, H, D}, f64, &gen), k = randn({B, N, H, D}, f64, &gen);
  Tensor v = one_hot(arange(N), N, f64).reshape({1, N, 1, N}).expand({B, N, H, N});
  Tensor mask = tensor(std::vector<int64_t>{0, 0, 0, 1, 0, 0, 1, 1}, {B, N});
  SoftmaxAttention attention;

  Tensor w = attention.forward(q, k, v, Tensor(), false);  // (B, N, H, N)
  std::vector<double> got = w.contiguous().to_vector<double>();
  // Row (b=1, i=2, h=1) by hand: softmax_j(q_i . k_j / sqrt(D)).
  std::vector<double> qv = q.to_vector<double>(), kv = k.to_vector<double>();
  auto at = [&](int64_t b, int64_t n, int64_t h) { return ((b * N + n) * H + h) * D; };
  std::vector<double> e(N);
  double total = 0;
  for (int64_t j = 0; j < N; ++j) {
    double dot = 0;
    for (int64_t d = 0; d < D; ++d) dot += qv[at(1, 2, 1) + d] * kv[at(1, j, 1) + d];
    total += e[j] = std::exp(dot / std::sqrt(3.0));
  }
  for (int64_t j = 0; j < N; ++j)
    CHECK(got[((1 * N + 2) * H + 1) * N + j] == doctest::Approx(e[j] / total).epsilon(1e-12));

  for (bool causal : {false, true}) {
    CAPTURE(causal);
    Tensor weights = attention.forward(q, k, v, mask, causal).contiguous();
    std::vector<double> p = weights.to_vector<double>();
    std::vector<int64_t> m = mask.to_vector<int64_t>();
    for (int64_t b = 0; b < B; ++b)
      for (int64_t i = 0; i < N; ++i)
        for (int64_t h = 0; h < H; ++h) {
          double sum = 0;
          for (int64_t j = 0; j < N; ++j) {
            const double pj = p[((b * N + i) * H + h) * N + j];
            if (m[b * N + j] || (causal && j > i)) CHECK(pj == 0.0);
            sum += pj;
          }
          CHECK(sum == doctest::Approx(1.0).epsilon(1e-12));
        }
  }
}

TEST_CASE("softmax attention: a query with no visible key outputs zeros, without NaN") {
  // Batch 1 is all padding; with causal masking and left padding in batch 0, query 0 sees only a
  // padded key. PyTorch gives NaN there; spear gives zeros and finite gradients.
  const int64_t B = 2, N = 3, H = 1, D = 2;
  Generator gen(2);
  Tensor q = randn({B, N, H, D}, f64, &gen).requires_grad_();
  Tensor k = randn({B, N, H, D}, f64, &gen).requires_grad_();
  Tensor v = randn({B, N, H, D}, f64, &gen).requires_grad_();
  Tensor mask = tensor(std::vector<int64_t>{1, 0, 0, 1, 1, 1}, {B, N});
  SoftmaxAttention attention;
  Tensor out = attention.forward(q, k, v, mask, true);
  std::vector<double> o = out.contiguous().to_vector<double>();
  CHECK(o[0] == 0.0);  // b = 0, i = 0
  CHECK(o[1] == 0.0);
  for (int64_t i = 3 * D; i < 6 * D; ++i) CHECK(o[i] == 0.0);  // b = 1: every query
  CHECK(all_finite(out));
  out.sum().backward();
  CHECK(all_finite(q.grad()));
  CHECK(all_finite(k.grad()));
  CHECK(all_finite(v.grad()));
  check_gradients(
      [&](const std::vector<Tensor>& in) {
        return attention.forward(in[0], in[1], in[2], mask, true);
      },
      {q, k, v}, "fully masked rows");
}

TEST_CASE("multihead attention has the right shapes, names and gradients") {
  Generator gen(3);
  const int64_t B = 2, N = 5, C = 8;
  MultiheadAttention mha(C, 2, std::make_shared<SoftmaxAttention>(), nullptr, &gen);
  CHECK(names(mha.named_parameters()) ==
        std::vector<std::string>{"q_proj.weight", "q_proj.bias", "k_proj.weight", "k_proj.bias",
                                 "v_proj.weight", "v_proj.bias", "out_proj.weight",
                                 "out_proj.bias"});
  CHECK(mha.forward(randn({B, N, C}, f32, &gen)).shape() == Shape{B, N, C});
  mha.to(f64);
  Tensor x = randn({B, N, C}, f64, &gen).requires_grad_();
  Tensor mask = tensor(std::vector<int64_t>{0, 0, 0, 1, 1, 0, 0, 0, 0, 0}, {B, N});
  for (bool causal : {false, true}) {
    check_gradients(
        [&](const std::vector<Tensor>& in) { return mha.forward(in[0], mask, causal); },
        {x, mha.q_proj->weight, mha.k_proj->bias, mha.v_proj->weight, mha.out_proj->weight},
        causal ? "mha causal padded" : "mha padded");
  }

  MultiheadAttention rope(C, 2, std::make_shared<SoftmaxAttention>(),
                          std::make_shared<RotaryEncoding>(), &gen);
  CHECK(names(rope.named_parameters()).size() == 8);  // RoPE adds no parameters
  rope.to(f64);
  check_gradients(
      [&](const std::vector<Tensor>& in) { return rope.forward(in[0], Tensor(), true, 3); },
      {x, rope.q_proj->weight, rope.k_proj->weight}, "mha rope");
}

TEST_CASE("RoPE rotates pairs by pos * base^(-2i/D), so scores depend on position differences") {
  // D = 2, position 1: the single pair turns by exactly 1 radian.
  RotaryEncoding rope;
  Tensor unit = tensor(std::vector<double>{1, 0}, {1, 1, 1, 2});
  std::vector<double> r = rope.forward(unit, unit, 1).first.to_vector<double>();
  CHECK(r[0] == doctest::Approx(std::cos(1.0)).epsilon(1e-15));
  CHECK(r[1] == doctest::Approx(std::sin(1.0)).epsilon(1e-15));
  // D = 4, pair 1 at position 3 with base 100 turns by 3 * 100^(-1/2) = 0.3 radians.
  RotaryEncoding rope100(100.0);
  Tensor x = tensor(std::vector<double>{0, 0, 0, 1}, {1, 1, 1, 4});
  std::vector<double> y = rope100.forward(x, x, 3).first.to_vector<double>();
  CHECK(y[2] == doctest::Approx(-std::sin(0.3)).epsilon(1e-14));
  CHECK(y[3] == doctest::Approx(std::cos(0.3)).epsilon(1e-14));

  // Shifting every position by 37 leaves every q'_i . k'_j unchanged.
  const int64_t B = 2, N = 6, H = 3, D = 8;
  Generator gen(4);
  Tensor q = randn({B, N, H, D}, f64, &gen), k = randn({B, N, H, D}, f64, &gen);
  auto scores = [&](int64_t offset) {
    auto [qr, kr] = rope.forward(q, k, offset);
    return matmul(qr.permute({0, 2, 1, 3}), kr.permute({0, 2, 3, 1}));  // (B, H, N, N)
  };
  CHECK(max_abs_diff(scores(0), scores(37)) < 1e-12);
  // A rotation keeps norms, and position 0 is the identity.
  Tensor q0 = rope.forward(q, k, 0).first;
  CHECK(max_abs_diff((q0 * q0).sum({3}), (q * q).sum({3})) < 1e-12);
  CHECK(max_abs_diff(q0.narrow(1, 0, 1), q.narrow(1, 0, 1)) == 0.0);
  // f32 input, f32 output.
  CHECK(rope.forward(q.to(f32), k.to(f32), 0).first.dtype() == f32);

  Tensor qg = q.clone().requires_grad_(), kg = k.clone().requires_grad_();
  check_gradients(
      [&](const std::vector<Tensor>& in) {
        auto [a, b] = rope.forward(in[0], in[1], 5);
        return a * b;
      },
      {qg, kg}, "rope");
}

TEST_CASE("sinusoidal and learned encodings add the documented tables") {
  const int64_t C = 6;
  SinusoidalEncoding sinusoidal(C);
  Tensor zero = zeros({1, 8, C}, f64);
  std::vector<double> pe = sinusoidal.forward(zero).to_vector<double>();
  CHECK(pe[0 * C + 0] == 0.0);  // sin(0)
  CHECK(pe[0 * C + 1] == 1.0);  // cos(0)
  CHECK(pe[1 * C + 0] == doctest::Approx(std::sin(1.0)).epsilon(1e-15));
  CHECK(pe[1 * C + 1] == doctest::Approx(std::cos(1.0)).epsilon(1e-15));
  const double w1 = std::pow(10000.0, -2.0 / C);  // frequency of pair 1
  CHECK(pe[5 * C + 2] == doctest::Approx(std::sin(5 * w1)).epsilon(1e-14));
  CHECK(pe[5 * C + 3] == doctest::Approx(std::cos(5 * w1)).epsilon(1e-14));
  // An offset continues the table.
  Tensor shifted = sinusoidal.forward(zeros({1, 5, C}, f64), 3);
  CHECK(max_abs_diff(shifted, sinusoidal.forward(zero).narrow(1, 3, 5)) == 0.0);

  Generator gen(5);
  LearnedEncoding learned(8, C, &gen);
  CHECK(names(learned.named_parameters()) == std::vector<std::string>{"weight"});
  CHECK(learned.weight.shape() == Shape{8, C});
  Tensor x = randn({2, 3, C}, f32, &gen);
  Tensor y = learned.forward(x, 4);
  CHECK(max_abs_diff(y, x + learned.weight.narrow(0, 4, 3)) == 0.0);

  learned.to(f64);
  Tensor xg = x.to(f64).requires_grad_();
  check_gradients([&](const std::vector<Tensor>& in) { return learned.forward(in[0], 2) * in[0]; },
                  {xg, learned.weight}, "learned");
  check_gradients(
      [&](const std::vector<Tensor>& in) { return sinusoidal.forward(in[0], 2) * in[0]; }, {xg},
      "sinusoidal");
}

TEST_CASE("state_dict names of one-layer models are PyTorch-style") {
  Generator gen(6);
  const std::vector<std::string> block = {
      "trunk.blocks.0.ln1.weight",           "trunk.blocks.0.ln1.bias",
      "trunk.blocks.0.attn.q_proj.weight",   "trunk.blocks.0.attn.q_proj.bias",
      "trunk.blocks.0.attn.k_proj.weight",   "trunk.blocks.0.attn.k_proj.bias",
      "trunk.blocks.0.attn.v_proj.weight",   "trunk.blocks.0.attn.v_proj.bias",
      "trunk.blocks.0.attn.out_proj.weight", "trunk.blocks.0.attn.out_proj.bias",
      "trunk.blocks.0.ln2.weight",           "trunk.blocks.0.ln2.bias",
      "trunk.blocks.0.ffn.fc1.weight",       "trunk.blocks.0.ffn.fc1.bias",
      "trunk.blocks.0.ffn.fc2.weight",       "trunk.blocks.0.ffn.fc2.bias"};
  auto expected = [&](std::vector<std::string> head, bool pos) {
    std::vector<std::string> out = {"trunk.embed.weight"};
    if (pos) out.push_back("trunk.pos.weight");
    out.insert(out.end(), block.begin(), block.end());
    out.insert(out.end(), {"trunk.ln_f.weight", "trunk.ln_f.bias"});
    out.insert(out.end(), head.begin(), head.end());
    return out;
  };
  const TransformerConfig config = tiny_config();
  EncoderClassifier classifier(config,
                               softmax_parts(std::make_shared<LearnedEncoding>(16, 8, &gen)), 3,
                               Pooling::mean, &gen);
  CHECK(names(classifier.state_dict()) == expected({"head.weight", "head.bias"}, true));
  CausalLM lm(config, softmax_parts(nullptr, true), false, &gen);
  CHECK(names(lm.state_dict()) == expected({"head.weight"}, false));
  CHECK(lm.head->weight.shape() == Shape{config.vocab_size, config.dim});
  CausalLM tied(config, softmax_parts(nullptr, true), true, &gen);
  CHECK(names(tied.state_dict()) == expected({}, false));
  CHECK(tied.head == nullptr);
  CHECK(classifier.trunk->blocks->at<TransformerBlock>(0).ffn->fc1->weight.shape() == Shape{12, 8});
  TransformerConfig wide = config;
  wide.ffn_hidden = 0;  // 4 * dim
  CHECK(TransformerBlock(wide, std::make_shared<SoftmaxAttention>(), nullptr)
            .ffn->fc1->weight.shape() == Shape{32, 8});
}

TEST_CASE("models produce the right shapes") {
  Generator gen(7);
  TransformerConfig config = tiny_config(2);
  Tensor ids = randint(0, config.vocab_size, {3, 5}, &gen);
  EncoderClassifier classifier(config, softmax_parts(std::make_shared<SinusoidalEncoding>(8)), 4,
                               Pooling::cls, &gen);
  CHECK(classifier.forward(ids).shape() == Shape{3, 4});
  CausalLM lm(config, softmax_parts(std::make_shared<LearnedEncoding>(8, 8, &gen), true), false,
              &gen);
  Tensor logits = lm.forward(ids);
  CHECK(logits.shape() == Shape{3, 5, config.vocab_size});
  CHECK(logits.dtype() == f32);
  CHECK(lm.trunk->forward(ids, Tensor(), true).shape() == Shape{3, 5, 8});
  // Zero layers: embedding, final norm and head only.
  CausalLM shallow(tiny_config(0), softmax_parts(), true, &gen);
  CHECK(shallow.forward(ids).shape() == Shape{3, 5, config.vocab_size});
}

TEST_CASE("a causal LM's logits at position i depend on tokens 0..i only") {
  Generator gen(8);
  TransformerConfig config = tiny_config(2);
  CausalLM lm(config, softmax_parts(std::make_shared<LearnedEncoding>(8, 8, &gen), true), true,
              &gen);
  const int64_t N = 6;
  std::vector<int64_t> base = {1, 4, 2, 6, 0, 3};
  std::vector<float> ref = lm.forward(ids_tensor(base, {1, N})).to_vector<float>();
  const int64_t V = config.vocab_size;
  for (int64_t j = 0; j < N; ++j) {
    CAPTURE(j);
    std::vector<int64_t> changed = base;
    changed[j] = (changed[j] + 3) % V;
    std::vector<float> out = lm.forward(ids_tensor(changed, {1, N})).to_vector<float>();
    for (int64_t i = 0; i < N; ++i) {
      bool same = std::equal(out.begin() + i * V, out.begin() + (i + 1) * V, ref.begin() + i * V);
      CHECK(same == (i < j));  // exactly equal before j, different from j on
    }
  }
}

TEST_CASE("a classifier ignores the tokens at padded positions") {
  Generator gen(9);
  TransformerConfig config = tiny_config(2);
  for (Pooling pooling : {Pooling::mean, Pooling::cls}) {
    EncoderClassifier model(config, softmax_parts(std::make_shared<SinusoidalEncoding>(8)), 3,
                            pooling, &gen);
    model.to(f64);
    Tensor mask = tensor(std::vector<int64_t>{0, 0, 0, 1, 1, 0, 0, 0, 0, 0}, {2, 5});
    Tensor a = ids_tensor({1, 2, 3, 4, 5, 6, 0, 1, 2, 3}, {2, 5});
    Tensor b = ids_tensor({1, 2, 3, 0, 6, 6, 0, 1, 2, 3}, {2, 5});  // padded tokens changed
    std::vector<double> ya = model.forward(a, mask).to_vector<double>();
    CHECK(ya == model.forward(b, mask).to_vector<double>());
    // The padded sequence classifies like the same tokens without padding.
    Tensor trimmed = ids_tensor({1, 2, 3}, {1, 3});
    std::vector<double> yt = model.forward(trimmed).to_vector<double>();
    for (size_t c = 0; c < yt.size(); ++c) CHECK(ya[c] == doctest::Approx(yt[c]).epsilon(1e-12));
  }
  // Mean pooling of a sequence that is all padding gives zeros (the head's bias), not NaN.
  EncoderClassifier model(config, softmax_parts(), 3, Pooling::mean, &gen);
  Tensor y = model.forward(ids_tensor({1, 2}, {1, 2}), ones({1, 2}));
  CHECK(y.to_vector<float>() == model.head->bias.to_vector<float>());
  CHECK(max_abs_diff(model.forward(ids_tensor({1, 2}, {1, 2}), zeros({1, 2})),
                     model.forward(ids_tensor({1, 2}, {1, 2}))) < 1e-6);
}

TEST_CASE("models pass gradcheck with respect to their parameters") {
  Generator gen(10);
  TransformerConfig config = tiny_config(1);
  Tensor ids = ids_tensor({1, 2, 3, 4, 5, 6, 0, 1, 2, 3}, {2, 5});
  Tensor mask = tensor(std::vector<int64_t>{0, 0, 0, 1, 1, 0, 0, 0, 0, 0}, {2, 5});

  EncoderClassifier classifier(config, softmax_parts(std::make_shared<SinusoidalEncoding>(8)), 3,
                               Pooling::mean, &gen);
  classifier.to(f64);
  const TransformerBlock& block = classifier.trunk->blocks->at<TransformerBlock>(0);
  check_gradients([&](const std::vector<Tensor>&) { return classifier.forward(ids, mask); },
                  {classifier.trunk->embed->weight, block.ln1->weight, block.attn->q_proj->weight,
                   block.ffn->fc1->bias, classifier.trunk->ln_f->bias, classifier.head->weight},
                  "classifier");

  CausalLM lm(config, softmax_parts(nullptr, true), true, &gen);
  lm.to(f64);
  const TransformerBlock& lm_block = lm.trunk->blocks->at<TransformerBlock>(0);
  check_gradients([&](const std::vector<Tensor>&) { return lm.forward(ids, 2); },
                  {lm.trunk->embed->weight, lm_block.attn->k_proj->weight,
                   lm_block.ffn->fc2->weight, lm_block.ln2->bias},
                  "causal lm");
}

TEST_CASE("tied embeddings: the head is the embedding table") {
  Generator gen(11);
  TransformerConfig config = tiny_config(1);
  CausalLM lm(config, softmax_parts(nullptr, true), true, &gen);
  Tensor ids = ids_tensor({0, 1, 0, 2}, {1, 4});
  Tensor h = lm.trunk->forward(ids, Tensor(), true);
  Tensor logits = lm.forward(ids);
  CHECK(logits.to_vector<float>() ==
        matmul(h, lm.trunk->embed->weight.transpose(0, 1)).to_vector<float>());
  // Tokens 3..6 never appear in the input, so only the head can give their rows a gradient.
  cross_entropy(logits, ids_tensor({1, 0, 2, 1}, {1, 4})).backward();
  std::vector<float> grad = lm.trunk->embed->weight.grad().to_vector<float>();
  float head_only = 0;
  for (int64_t i = 3 * config.dim; i < config.vocab_size * config.dim; ++i)
    head_only = std::max(head_only, std::fabs(grad[i]));
  CHECK(head_only > 0);
  // One table, one entry: the state holds it once, and changing it changes the logits.
  CHECK(lm.num_parameters() == lm.trunk->num_parameters());
  {
    NoGradGuard no_grad;
    lm.trunk->embed->weight.narrow(0, 5, 1).fill_(1.0);
  }
  CHECK(lm.forward(ids).to_vector<float>() != logits.to_vector<float>());
}

TEST_CASE("dropout acts in training and is the identity in eval mode") {
  Generator gen(12);
  TransformerConfig config = tiny_config(2);
  config.dropout = 0.3;
  CausalLM noisy(config, softmax_parts(nullptr, true), false, &gen);
  config.dropout = 0.0;
  CausalLM clean(config, softmax_parts(nullptr, true), false, &gen);
  clean.load_state_dict(noisy.state_dict());
  Tensor ids = ids_tensor({1, 2, 3, 4, 5}, {1, 5});
  std::vector<float> want = clean.forward(ids).to_vector<float>();
  CHECK(noisy.forward(ids).to_vector<float>() != want);
  noisy.eval();
  CHECK(!noisy.trunk->blocks->at<TransformerBlock>(1).ffn->drop->is_training());
  CHECK(noisy.forward(ids).to_vector<float>() == want);
}

TEST_CASE("forward and backward are bit-identical with 1 and 2 threads") {
  TransformerConfig config;
  config.vocab_size = 300;
  config.dim = 64;
  config.heads = 4;
  config.layers = 2;
  auto run = [&](int threads) {
    set_num_threads(threads);
    Generator gen(13);
    CausalLM lm(config, softmax_parts(nullptr, true), true, &gen);
    Tensor ids = randint(0, config.vocab_size, {4, 128}, &gen);
    Tensor logits = lm.forward(ids);
    cross_entropy(logits, ids).backward();
    std::vector<float> out = logits.to_vector<float>();
    for (const Tensor& p : lm.parameters()) {
      std::vector<float> g = p.grad().to_vector<float>();
      out.insert(out.end(), g.begin(), g.end());
    }
    return out;
  };
  const int before = get_num_threads();
  std::vector<float> one = run(1), two = run(2);
  set_num_threads(before);
  CHECK(one == two);
}

TEST_CASE("bad configurations and inputs give errors that name the problem") {
  auto softmax = std::make_shared<SoftmaxAttention>();
  std::string msg = message_of([&] { MultiheadAttention(10, 3, softmax); });
  CHECK(msg.find("MultiheadAttention: dim 10 must be a positive multiple of heads 3") !=
        std::string::npos);
  CHECK_THROWS_AS(MultiheadAttention(10, 3, softmax), ConfigError);
  CHECK_THROWS_AS(MultiheadAttention(8, 2, nullptr), ConfigError);

  RotaryEncoding rope;
  Tensor odd = zeros({1, 2, 1, 5});
  CHECK_THROWS_AS(rope.forward(odd, odd, 0), ShapeError);
  msg = message_of([&] { rope.forward(odd, odd, 0); });
  CHECK(msg.find("rotary_encoding: head width D = 5 must be even") != std::string::npos);

  LearnedEncoding learned(8, 4);
  CHECK_THROWS_AS(learned.forward(zeros({1, 9, 4})), ShapeError);
  msg = message_of([&] { learned.forward(zeros({1, 3, 4}), 6); });
  CHECK(msg.find("offset 6 + length 3") != std::string::npos);
  CHECK(msg.find("max_len 8") != std::string::npos);

  CHECK_THROWS_AS(pooling_from_name("max"), ConfigError);
  CHECK(pooling_from_name("cls") == Pooling::cls);
  TransformerConfig config = tiny_config();
  config.vocab_size = 0;
  CHECK_THROWS_AS(CausalLM(config, softmax_parts()), ConfigError);
  CHECK_THROWS_AS(CausalLM(tiny_config(), TransformerParts()), ConfigError);

  EncoderClassifier classifier(tiny_config(), softmax_parts(), 2);
  msg = message_of([&] { classifier.forward(zeros({2, 3}, i64), zeros({2, 4})); });
  CHECK(msg.find("key_padding_mask [2, 4] does not match ids [2, 3]") != std::string::npos);
  MultiheadAttention mha(8, 2, softmax);
  CHECK_THROWS_AS(mha.forward(zeros({2, 3, 6})), ShapeError);
  CHECK_THROWS_AS(softmax->forward(zeros({1, 2, 1, 4}), zeros({1, 2, 1, 4}), zeros({1, 3, 1, 4}),
                                   Tensor(), false),
                  ShapeError);
}
