#!/bin/sh
# Installs what hvmem needs: on Debian/Ubuntu, QEMU's AArch64 system emulator and the AArch64 binutils
# (the conformance suite runs hvmem's tables on QEMU's MMU model); then the npm packages (npm ci also
# builds the CLI).
set -eu
if command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-system-arm binutils-aarch64-linux-gnu >/dev/null
  qemu-system-aarch64 --version | head -n 1
  # the real guests the capture tests boot (U-Boot, a Debian arm64 kernel), cached
  sh "$(dirname "$0")/guests.sh"
else
  echo "setup: no apt-get here; install qemu-system-aarch64 and the aarch64-linux-gnu binutils yourself for the conformance suite" >&2
fi
npm ci
