#include "examples/train/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <sstream>

namespace spear::train {
namespace {

using Clock = std::chrono::steady_clock;

double seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

std::string rate(double tokens_per_s) {
  return tokens_per_s >= 1e3 ? format_fixed(tokens_per_s / 1e3, 1) + "k tok/s"
                             : format_fixed(tokens_per_s, 0) + " tok/s";
}

}  // namespace

std::string format_fixed(double x, int digits) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(digits) << x;
  return os.str();
}

bool stderr_is_terminal() {
  return isatty(STDERR_FILENO) != 0;
}

Progress::Progress(std::ostream& out, bool live, int64_t first_step, int64_t total,
                   int64_t log_every)
    : out_(out),
      live_(live),
      first_step_(first_step),
      total_(total),
      log_every_(log_every),
      start_(Clock::now()),
      last_draw_(start_) {}

std::string Progress::eta(int64_t step) const {
  const double per_step = seconds(Clock::now() - start_) / static_cast<double>(step - first_step_);
  const double left = per_step * static_cast<double>(total_ - step);
  const int64_t s = std::isfinite(left) ? std::llround(left) : 0;
  std::ostringstream os;
  os << s / 60 << ":" << std::setw(2) << std::setfill('0') << s % 60;
  return os.str();
}

void Progress::step(int64_t step, double loss, double lr, double tokens_per_s) {
  std::ostringstream lr_text;
  lr_text << std::scientific << std::setprecision(2) << lr;
  const std::string stats = "loss " + format_fixed(loss, 4) + " | lr " + lr_text.str() + " | " +
                            rate(tokens_per_s) + " | ETA " + eta(step);
  if (!live_) {
    if (step % log_every_ == 0 || step == total_)
      out_ << "step " << step << "/" << total_ << " | " << stats << "\n" << std::flush;
    return;
  }
  // Redrawing costs a write per step; ten a second is as fast as anyone reads.
  const Clock::time_point now = Clock::now();
  if (step != total_ && seconds(now - last_draw_) < 0.1) return;
  last_draw_ = now;
  constexpr int kWidth = 20;
  const auto filled = static_cast<int>(kWidth * step / std::max<int64_t>(total_, 1));
  out_ << "\rstep " << step << "/" << total_ << " [" << std::string(filled, '#')
       << std::string(kWidth - filled, '.') << "] " << stats << "\x1b[K" << std::flush;
  bar_shown_ = true;
}

void Progress::line(const std::string& text) {
  if (bar_shown_) out_ << "\r\x1b[K";
  out_ << text << "\n" << std::flush;
  bar_shown_ = false;
}

void Progress::finish() {
  if (bar_shown_) out_ << "\n" << std::flush;
  bar_shown_ = false;
}

}  // namespace spear::train
