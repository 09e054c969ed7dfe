#include "examples/train/trainer.h"

#include <chrono>
#include <cmath>
#include <limits>
#include <memory>

#include "autograd/ops.h"
#include "examples/train/distributed.h"
#include "examples/train/evaluate.h"
#include "examples/train/metrics.h"
#include "examples/train/model.h"
#include "examples/train/progress.h"
#include "examples/train/run_dir.h"
#include "examples/train/seeds.h"
#include "examples/train/tasks.h"
#include "nn/optim.h"
#include "tensor/parallel.h"

namespace spear::train {
namespace {

using Clock = std::chrono::steady_clock;

std::unique_ptr<nn::Optimizer> make_optimizer(const TrainConfig& c, const nn::Module& model) {
  std::vector<nn::ParamGroup> groups = nn::param_groups(model, c.weight_decay);
  if (c.optimizer == "sgd") {
    nn::SGDOptions options;
    options.lr = c.lr;
    options.momentum = c.momentum;
    options.nesterov = c.nesterov;
    return std::make_unique<nn::SGD>(std::move(groups), options);
  }
  nn::AdamOptions options;
  options.lr = c.lr;
  options.beta1 = c.beta1;
  options.beta2 = c.beta2;
  options.eps = c.eps;
  if (c.optimizer == "adam") return std::make_unique<nn::Adam>(std::move(groups), options);
  return std::make_unique<nn::AdamW>(std::move(groups), options);
}

nn::Schedule make_schedule(const TrainConfig& c) {
  const bool decays = c.schedule == "cosine" || c.schedule == "linear";
  SPEAR_CHECK_T(ConfigError, !decays || c.warmup <= c.steps, "config: train.warmup ", c.warmup,
                " exceeds train.steps ", c.steps, " (a ", c.schedule,
                " schedule decays after the warmup)");
  nn::Schedule s;
  s.kind = c.schedule;
  s.lr = c.lr;
  s.warmup = c.warmup;
  s.total = c.steps;
  s.min_lr = c.min_lr;
  return s;
}

bool all_finite(const Tensor& t) {
  for (double v : t.detach().to(f64).to_vector<double>())
    if (!std::isfinite(v)) return false;
  return true;
}

// The first parameter, in state_dict order, whose value or gradient holds a NaN or Inf.
std::string first_nonfinite(const nn::Module& model) {
  for (const auto& [name, p] : model.named_parameters()) {
    if (!all_finite(p)) return "parameter " + name;
    if (p.grad().defined() && !all_finite(p.grad())) return "gradient of " + name;
  }
  return "none (each tensor is finite; their combination overflows)";
}

// "loss 0.1234 | accuracy 0.9870"
std::string describe(const Json& metrics) {
  std::string text;
  for (const auto& [name, value] : metrics.items())
    text += (text.empty() ? "" : " | ") + name + " " + format_fixed(value.get<double>(), 4);
  return text;
}

// How many elements of t equal `value`.
int64_t count(const Tensor& t, int64_t value) {
  int64_t n = 0;
  for (int64_t x : t.to_vector<int64_t>()) n += x == value;
  return n;
}

// The targets a batch's loss averages over.
int64_t scored_targets(const Batch& batch) {
  return batch.targets.numel() - count(batch.targets, kIgnore);
}

// Rank `rank`'s slice of the batch: rows [rank B / ranks, (rank + 1) B / ranks). The padding
// stays that of the whole batch, so every rank's tensors have the same shape.
Batch slice_of(const Batch& batch, int rank, int ranks) {
  if (ranks == 1) return batch;
  const int64_t rows = batch.inputs.size(0) / ranks, begin = rank * rows;
  Batch slice;
  slice.inputs = batch.inputs.narrow(0, begin, rows).contiguous();
  slice.padding_mask = batch.padding_mask.narrow(0, begin, rows).contiguous();
  slice.targets = batch.targets.narrow(0, begin, rows).contiguous();
  slice.tokens = count(slice.padding_mask, 0);
  return slice;
}

Json generator_state(const Generator& gen) {
  return {{"seed", gen.seed()}, {"offset", gen.offset()}};
}

class Trainer {
 public:
  Trainer(const TrainOptions& options, std::ostream& log);
  Json run();

 private:
  void print_header() const;
  void restore(const Checkpoint& checkpoint);
  Checkpoint load_checkpoint();
  Checkpoint checkpoint() const;
  void key_dropout_by_rank();
  void train_step(int64_t step);
  void end_step(int64_t step);  // logging, evaluation and checkpoint after step `step`
  Json evaluate_split(int64_t step, Split split);
  void write_metrics(const Json& line);
  double elapsed_s() const;
  Json summary();

  TrainOptions options_;
  Communicator single_process_;
  Communicator& comm_;  // options.comm, or single_process_
  Config config_;
  RunDir run_dir_;
  std::ostream& log_;
  std::unique_ptr<Task> task_;
  Generator model_gen_;
  Model model_;
  std::unique_ptr<nn::Optimizer> optimizer_;
  std::unique_ptr<GradientReducer> reducer_;
  nn::Schedule schedule_;
  std::unique_ptr<MetricsLog> metrics_;  // rank 0 only
  std::unique_ptr<Progress> progress_;

  // The state a checkpoint saves besides tensors.
  int64_t step_ = 0;
  int64_t skipped_ = 0;
  double window_loss_ = 0;    // summed losses of the steps since the last metrics line
  int64_t window_steps_ = 0;  // ... of those that were not skipped
  Json last_loss_;            // the last metrics line's loss
  Json best_val_;             // the best validation so far, by accuracy
  double elapsed_before_ = 0;

  // This process only.
  Clock::time_point start_ = Clock::now(), window_start_ = start_;
  int64_t window_tokens_ = 0, tokens_ = 0;
  double window_comm_s_ = 0;  // comm_.seconds() at the window's start
  double lr_ = 0, grad_norm_ = 0;
  Json final_val_, final_test_;
};

Trainer::Trainer(const TrainOptions& options, std::ostream& log)
    : options_(options),
      comm_(options.comm ? *options.comm : single_process_),
      config_(config_from_json(options.config)),
      run_dir_(options.dir),
      log_(log),
      model_gen_(derive_seed(config_.train.seed, Stream::init)) {
  const TrainConfig& t = config_.train;
  SPEAR_CHECK_T(ConfigError, t.batch_size % comm_.size() == 0, "config: train.batch_size ",
                t.batch_size, " is no multiple of the ", comm_.size(),
                " ranks (each rank takes an equal slice of every batch)");
  if (t.threads > 0) set_num_threads(t.threads);
  manual_seed(derive_seed(t.seed, Stream::default_generator));
  task_ = make_task(config_.task);
  model_ = build_model(config_.model, task_->spec(), &model_gen_);
  key_dropout_by_rank();
  optimizer_ = make_optimizer(t, *model_.module);
  reducer_ = std::make_unique<GradientReducer>(comm_, model_.module->parameters());
  schedule_ = make_schedule(t);
}

// Rank r draws its dropout masks from stream r of the model generator's seed (rank 0's is the
// single-process one), at the offset every rank shares: equal slices draw equally many numbers,
// so rank 0's checkpointed offset is every rank's.
void Trainer::key_dropout_by_rank() {
  model_gen_.set_state(derive_seed(config_.train.seed, Stream::init, comm_.rank()),
                       model_gen_.offset());
}

void Trainer::print_header() const {
  const TaskSpec& task = task_->spec();
  const ModelConfig& m = config_.model;
  const TrainConfig& t = config_.train;
  log_ << "spear " << SPEAR_VERSION_STRING << " | "
       << (comm_.size() > 1 ? str_cat(comm_.size(), " ranks x ") : "") << get_num_threads()
       << " threads | BLAS: " << blas_info() << " | f32\n"
       << "task " << task.name << " ("
       << (task.head == Head::language_model ? "language model" : "classifier") << "): vocabulary "
       << task.vocab_size << ", examples " << config_.task.train_size << "/"
       << config_.task.val_size << "/" << config_.task.test_size
       << " (train/val/test), chance accuracy "
       << format_fixed(task_->chance_accuracy(Split::test), 4) << "\nmodel "
       << model_.module->type_name() << ": " << model_.module->num_parameters()
       << " parameters | layers " << m.layers << ", dim " << m.dim << ", heads " << m.heads
       << " | attention " << m.attention << " | positional " << m.positional << "\n"
       << "optimizer " << t.optimizer << ", lr " << t.lr << " (" << t.schedule << ", warmup "
       << t.warmup << "), batch " << t.batch_size << ", " << t.steps << " steps\n"
       << "run " << run_dir_.dir() << "\n"
       << std::flush;
}

Checkpoint Trainer::checkpoint() const {
  Checkpoint c;
  c.step = step_;
  c.model = model_.module->state_dict();
  c.optimizer = optimizer_->state_dict();
  c.state = {
      {"rng",
       {{"model", generator_state(model_gen_)}, {"default", generator_state(default_generator())}}},
      {"skipped", skipped_},
      {"window", {{"loss", window_loss_}, {"steps", window_steps_}}},
      {"last_loss", last_loss_},
      {"best_val", best_val_},
      {"elapsed_s", elapsed_s()}};
  return c;
}

void Trainer::restore(const Checkpoint& c) {
  const std::string file = run_dir_.file("trainer_state.json");
  try {
    auto get = [&](const char* pointer) { return c.state.at(Json::json_pointer(pointer)); };
    model_gen_.set_state(get("/rng/model/seed").get<uint64_t>(),
                         get("/rng/model/offset").get<uint64_t>());
    default_generator().set_state(get("/rng/default/seed").get<uint64_t>(),
                                  get("/rng/default/offset").get<uint64_t>());
    skipped_ = get("/skipped").get<int64_t>();
    window_loss_ = get("/window/loss").get<double>();
    window_steps_ = get("/window/steps").get<int64_t>();
    last_loss_ = get("/last_loss");
    best_val_ = get("/best_val");
    elapsed_before_ = get("/elapsed_s").get<double>();
  } catch (const nlohmann::json::exception& e) {
    throw IOError(str_cat(file, ": missing or malformed entry (", e.what(), ")"));
  }
  key_dropout_by_rank();
  try {
    model_.module->load_state_dict(c.model);
    optimizer_->load_state_dict(c.optimizer);
  } catch (const Error& e) {
    throw IOError(str_cat(run_dir_.dir(), ": the checkpoint does not fit the model: ", e.what()));
  }
  step_ = c.step;
}

// Rank 0 loads first: load() also finishes or discards an interrupted commit, renaming files
// the others must not read half-way.
Checkpoint Trainer::load_checkpoint() {
  if (!comm_.is_root()) comm_.barrier();
  Checkpoint c = run_dir_.load();
  if (comm_.is_root()) comm_.barrier();
  return c;
}

double Trainer::elapsed_s() const {
  return elapsed_before_ + std::chrono::duration<double>(Clock::now() - start_).count();
}

void Trainer::train_step(int64_t step) {
  const TrainConfig& t = config_.train;
  const Batch batch = task_->train_batch(t.seed, step, t.batch_size);
  const Batch slice = slice_of(batch, comm_.rank(), comm_.size());
  // The loss is the mean over the batch's scored targets: this rank's mean weighs in by its share
  // of them (every example has a target, so no share is empty).
  const double weight =
      static_cast<double>(scored_targets(slice)) / static_cast<double>(scored_targets(batch));
  model_.select_draw(step);  // SPE: a new draw every step, the same on resume and on every rank
  optimizer_->zero_grad();
  Tensor loss = cross_entropy(model_.forward(slice), slice.targets, kIgnore);
  reducer_->prepare(weight);
  loss.backward();
  reducer_->finish();
  const double value = comm_.sum(weight * loss.item<double>());
  grad_norm_ =
      nn::clip_grad_norm_(model_.module->parameters(),
                          t.grad_clip > 0 ? t.grad_clip : std::numeric_limits<double>::infinity());
  lr_ = nn::lr_at(schedule_, step - 1);
  window_tokens_ += batch.tokens;
  tokens_ += batch.tokens;
  if (std::isfinite(value) && std::isfinite(grad_norm_)) {
    optimizer_->set_lr(lr_);
    optimizer_->step();
    window_loss_ += value;
    ++window_steps_;
    return;
  }
  // A NaN prints as "nan" whatever its sign bit (streams would show "-nan" for some).
  auto text = [](double x) { return std::isnan(x) ? std::string("nan") : str_cat(x); };
  const std::string what = std::isfinite(value) ? "the gradient norm is " + text(grad_norm_)
                                                : "the loss is " + text(value);
  const std::string message = str_cat(
      "step ", step, ": ", what, "; first non-finite tensor: ", first_nonfinite(*model_.module));
  if (t.on_nonfinite == "stop")
    throw NonFiniteError(message + " (train.on_nonfinite = \"skip\" skips such steps)");
  ++skipped_;
  progress_->line(message + "; step skipped");
}

Json Trainer::evaluate_split(int64_t step, Split split) {
  const Json metrics = evaluate(model_, *task_, split, config_.train.batch_size);
  Json line = {{"step", step}, {"split", split_name(split)}};
  line.update(metrics);
  write_metrics(line);
  progress_->line(str_cat("step ", step, " | ", split_name(split), " ", describe(metrics)));
  return metrics;
}

void Trainer::write_metrics(const Json& line) {
  if (metrics_) metrics_->write(line);
}

void Trainer::end_step(int64_t step) {
  const TrainConfig& t = config_.train;
  const bool last = step == t.steps;
  if (step > 0) {
    const double seconds = std::chrono::duration<double>(Clock::now() - window_start_).count();
    const double tokens_per_s = seconds > 0 ? static_cast<double>(window_tokens_) / seconds : 0;
    const double loss = window_steps_ ? window_loss_ / static_cast<double>(window_steps_)
                                      : std::numeric_limits<double>::quiet_NaN();
    progress_->step(step, loss, lr_, tokens_per_s);
    if (step % t.log_every == 0 || last) {
      last_loss_ = window_steps_ ? Json(loss) : Json();
      Json line = {{"step", step},
                   {"loss", last_loss_},
                   {"lr", lr_},
                   {"grad_norm", grad_norm_},
                   {"tokens_per_s", tokens_per_s},
                   {"elapsed_s", elapsed_s()}};
      if (t.on_nonfinite == "skip") line["skipped"] = skipped_;
      if (comm_.size() > 1)
        line["comm_share"] = seconds > 0 ? (comm_.seconds() - window_comm_s_) / seconds : 0.0;
      write_metrics(line);
      window_comm_s_ = comm_.seconds();
      window_loss_ = 0;
      window_steps_ = 0;
      window_tokens_ = 0;
      window_start_ = Clock::now();
    }
  }
  if (last || (step > 0 && t.eval_every > 0 && step % t.eval_every == 0)) {
    const Json val = evaluate_split(step, Split::val);
    if (best_val_.is_null() || val["accuracy"] > best_val_["accuracy"]) {
      best_val_ = val;
      best_val_["step"] = step;
    }
    if (last) final_val_ = val;
  }
  if (last) final_test_ = evaluate_split(step, Split::test);
  if (comm_.is_root() && (last || step == 0 || step == options_.stop_after ||
                          (t.checkpoint_every > 0 && step % t.checkpoint_every == 0)))
    run_dir_.save(checkpoint(), options_.config);
}

Json Trainer::summary() {
  // A run resumed after its last step evaluates again instead of writing the lines twice.
  if (final_val_.is_null())
    final_val_ = evaluate(model_, *task_, Split::val, config_.train.batch_size);
  if (final_test_.is_null())
    final_test_ = evaluate(model_, *task_, Split::test, config_.train.batch_size);
  const double seconds = std::chrono::duration<double>(Clock::now() - start_).count();
  Json summary = {{"steps", step_},
                  {"final_loss", last_loss_},
                  {"elapsed_s", elapsed_s()},
                  {"tokens_per_s", seconds > 0 ? static_cast<double>(tokens_) / seconds : 0.0},
                  {"params", model_.module->num_parameters()},
                  {"chance", task_->chance_accuracy(Split::test)},
                  {"val", final_val_},
                  {"test", final_test_},
                  {"best_val", best_val_},
                  {"skipped", skipped_},
                  {"run_dir", run_dir_.dir()}};
  if (comm_.size() > 1) {
    summary["ranks"] = comm_.size();
    summary["comm_share"] = seconds > 0 ? comm_.seconds() / seconds : 0.0;
  }
  return summary;
}

Json Trainer::run() {
  const TrainConfig& t = config_.train;
  const bool root = comm_.is_root();  // the rank that writes the run directory
  if (options_.resume) {
    restore(load_checkpoint());
    SPEAR_CHECK_T(ConfigError, step_ <= t.steps, "resume: the run is at step ", step_,
                  ", past train.steps ", t.steps);
    if (root) {
      run_dir_.write_config(options_.config);  // train.steps may have changed
      metrics_ = std::make_unique<MetricsLog>(run_dir_.file("metrics.jsonl"), step_);
    }
  } else if (root) {
    run_dir_.create();
    run_dir_.write_config(options_.config);
    metrics_ = std::make_unique<MetricsLog>(run_dir_.file("metrics.jsonl"), -1);
  }
  comm_.broadcast(model_.module->state_dict());  // every rank starts from rank 0's weights
  print_header();
  progress_ = std::make_unique<Progress>(log_, options_.live, step_, t.steps, t.log_every);
  if (options_.resume) progress_->line(str_cat("resuming from step ", step_));
  try {
    if (!options_.resume) end_step(0);
    model_.module->train();
    while (step_ < t.steps && step_ != options_.stop_after) {
      train_step(step_ + 1);
      ++step_;
      end_step(step_);
    }
  } catch (...) {
    progress_->finish();  // the error message gets a line of its own
    throw;
  }
  progress_->finish();
  return summary();
}

}  // namespace

Json train(const TrainOptions& options, std::ostream& log) {
  if (options.resume) {
    const Json previous = RunDir(options.dir).read_config();
    const std::string key =
        first_difference(previous, options.config, {"train.steps", "train.threads"});
    SPEAR_CHECK_T(ConfigError, key.empty(), "resume: the config differs from the run's at ", key,
                  " (the run has ", config_at(previous, key).dump(), ", now ",
                  config_at(options.config, key).dump(),
                  "); only train.steps and train.threads may change");
  }
  Trainer trainer(options, log);
  return trainer.run();
}

}  // namespace spear::train
