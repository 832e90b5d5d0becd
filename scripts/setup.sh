#!/usr/bin/env bash
# Neon: set up everything from nothing on Debian 12 / Ubuntu (x86_64 or aarch64).
#   - Debian packages (Cyclone DDS, EGL for MuJoCo, espeak-ng, PortAudio, ffmpeg, sox,
#     PulseAudio + the ALSA pulse plugin for the microphone test)
#   - .venv with torch first, then ROS 2 kilted wheels (or the system ROS 2 under
#     /opt/ros where one is installed), cyclonedds 0.10.2 built against the system
#     Cyclone DDS, unitree_sdk2py, mujoco, speech and data packages, neon_ros editable
#   - the G1 model assets (neon-ros assets)
# Idempotent: a second run with nothing to do only checks, in a few seconds.
# Environment: NEON_VENV (default ./.venv), PYTHON (default python3).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${NEON_VENV:-$ROOT/.venv}
PYTHON=${PYTHON:-python3}
STAMP="$VENV/.neon-setup-stamp"
say() { printf '\033[1m[neon setup]\033[0m %s\n' "$*"; }

SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "setup needs root or sudo to install Debian packages" >&2; exit 1; }
  SUDO=sudo
fi

# --- 1. Debian packages ------------------------------------------------------------
APT_PACKAGES=(
  build-essential cmake git pkg-config python3-dev python3-venv
  cyclonedds-dev cyclonedds-tools
  libegl1 libgl1-mesa-dri libgles2
  espeak-ng libportaudio2 libsndfile1 ffmpeg sox
  # the microphone path's test: a private user-space PulseAudio server (a VM has no sound
  # card and cannot load snd-aloop), paplay to speak into it, and the ALSA "pulse" device
  # through which PortAudio/sounddevice hears it (test/test_voice_mic.py)
  pulseaudio pulseaudio-utils libasound2-plugins
)
# A desktop whose sound server is PipeWire already has its own PulseAudio server: do not
# make apt swap it out (the mic test then skips and says which package it lacks).
if dpkg-query -W -f='${Status}' pipewire-pulse 2>/dev/null | grep -q "install ok installed"; then
  kept=()
  for p in "${APT_PACKAGES[@]}"; do [ "$p" = pulseaudio ] || kept+=("$p"); done
  APT_PACKAGES=("${kept[@]}")
fi
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# --- 2. ROS 2: system install (Jetson, robot) or PyPI wheels -----------------------
ROS_SETUP=""
for d in /opt/ros/*/setup.bash; do
  [ -f "$d" ] && ROS_SETUP=$d && break
done
ARCH=$(uname -m)
if [ -z "$ROS_SETUP" ] && [ "$ARCH" != "x86_64" ]; then
  echo "No ROS 2 found under /opt/ros and the PyPI ROS 2 wheels are x86_64 only ($ARCH here)." >&2
  echo "Install ROS 2 (Humble/Jazzy/Kilted) from the ROS apt repository, then run this again." >&2
  exit 1
fi

# --- 3. the virtual environment --------------------------------------------------------
hash_inputs() {
  cat "$ROOT/requirements/"*.txt "$ROOT/setup.py" "$ROOT/setup.cfg" "$ROOT/scripts/setup.sh"
  echo "$ROS_SETUP $ARCH"
}
want=$(hash_inputs | sha256sum | cut -d' ' -f1)

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -x "$VENV/bin/python" ]; then
  say "Python environment up to date ($VENV)"
else
  if [ ! -x "$VENV/bin/python" ]; then
    if [ -n "$ROS_SETUP" ]; then
      say "system ROS 2 at $(dirname "$ROS_SETUP"): venv with system site-packages"
      # shellcheck disable=SC1090
      set +u; source "$ROS_SETUP"; set -u
      "$PYTHON" -m venv --system-site-packages "$VENV"
    else
      "$PYTHON" -m venv "$VENV"
    fi
  fi
  PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check -q -c "$ROOT/requirements/constraints.txt")
  # pip, minus the machine's notes about absent local index folders
  pipq() { "${PIP[@]}" "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }; return "${PIPESTATUS[0]}"; }
  say "installing torch (first, so nothing pulls a CUDA build)"
  pipq -r "$ROOT/requirements/torch.txt"

  # cyclonedds 0.10.2, built against the system library (the Unitree SDK needs 0.10.x).
  if ! "$VENV/bin/python" -c "import cyclonedds" >/dev/null 2>&1; then
    CDDS_HOME="$VENV/cyclonedds-home"
    if [ -n "$ROS_SETUP" ] && [ -f "$(dirname "$ROS_SETUP")/lib/libddsc.so" ]; then
      CDDS_HOME=$(dirname "$ROS_SETUP")
    else
      # Debian keeps libddsc in the multiarch dir: give the build the layout it expects.
      multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
      mkdir -p "$CDDS_HOME/lib"
      ln -sfn /usr/include "$CDDS_HOME/include"
      ln -sfn /usr/bin "$CDDS_HOME/bin"
      for f in /usr/lib/"$multiarch"/libddsc.so* /usr/lib/"$multiarch"/libcycloneddsidl.so*; do
        ln -sf "$f" "$CDDS_HOME/lib/"
      done
    fi
    say "building cyclonedds 0.10.2 against $CDDS_HOME"
    CYCLONEDDS_HOME="$CDDS_HOME" pipq --no-binary cyclonedds "cyclonedds==0.10.2"
  fi

  say "installing Python packages (ROS 2 wheels, Unitree SDK, MuJoCo, speech, data)"
  if [ -n "$ROS_SETUP" ]; then
    grep -v '^ros-' "$ROOT/requirements/neon.txt" > "$VENV/.requirements-no-ros.txt"
    pipq -r "$VENV/.requirements-no-ros.txt"
  else
    pipq -r "$ROOT/requirements/neon.txt"
  fi
  say "installing neon_ros (editable)"
  pipq --no-deps -e "$ROOT"
  echo "$want" > "$STAMP"
fi

# --- 4. the G1 model ------------------------------------------------------------------
"$VENV/bin/neon-ros" assets --quiet
say "ready: source $VENV/bin/activate"
