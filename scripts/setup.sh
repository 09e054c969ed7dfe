# Shared set-up for run.sh and test.sh (sourced, not run): installs missing Debian packages and
# builds spear in Release into build/. Every step says what it does and fails loudly.
set -euo pipefail

SPEAR_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SPEAR_PACKAGES=(cmake g++ make libopenblas-dev libtbb-dev doctest-dev nlohmann-json3-dev
                zlib1g-dev libopenmpi-dev openmpi-bin python3 python3-numpy python3-matplotlib
                dataset-fashion-mnist)

step() { printf '\n==> %s\n' "$*" >&2; }
fail() { printf '\nFAILED: %s\n' "$*" >&2; exit 1; }

install_missing_packages() {
  local missing=()
  for p in "${SPEAR_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    step "packages: all present"
    return
  fi
  step "packages: installing ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq || fail "apt-get update"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" \
    || fail "apt-get install ${missing[*]}"
}

# build_spear DIR [cmake args...]: configure and build into DIR.
build_spear() {
  local dir=$1
  shift
  local log="$SPEAR_ROOT/$dir/configure.log"
  step "configure $dir $*"
  mkdir -p "$SPEAR_ROOT/$dir"
  cmake -S "$SPEAR_ROOT" -B "$SPEAR_ROOT/$dir" "$@" >"$log" 2>&1 \
    || { cat "$log" >&2; fail "cmake configure of $dir"; }
  step "build $dir"
  cmake --build "$SPEAR_ROOT/$dir" -j "$(nproc)" || fail "build of $dir"
}

install_missing_packages
build_spear build -DCMAKE_BUILD_TYPE=Release
