#!/bin/sh
# Fetches the real guests the capture tests boot (test/conformance/guests.test.ts) into a cache
# directory, once: Debian's U-Boot for QEMU virt (u-boot-qemu, arch all) and a Debian arm64 kernel
# Image (linux-image-*-arm64, downloaded with apt-get download, unpacked with dpkg-deb, gunzipped).
# The cache is $HVMEM_GUESTS, default ~/.cache/hvmem-guests:
#   u-boot.bin   U-Boot for qemu_arm64 (/usr/lib/u-boot/qemu_arm64/u-boot.bin)
#   Image        the kernel, uncompressed arm64 Image
#   kernel.txt   the package the Image came from
#   Image-6.12   Debian's 6.12 kernel (linux-image-6.12.*+debN-arm64-unsigned: bookworm-security or
#                bookworm-backports, trixie), built with 52-bit VAs (LPA2); kernel-6.12.txt its package.
#                Optional: without it (offline, or no such package in apt's lists) this says so, exits 0,
#                and the 6.12 guest's test is skipped (outside CI)
# Debian or Ubuntu with apt only (as root or with sudo); elsewhere it says so and exits 0.
set -eu
CACHE=${HVMEM_GUESTS:-$HOME/.cache/hvmem-guests}
mkdir -p "$CACHE"
if ! command -v apt-get >/dev/null 2>&1; then
  echo "guests: no apt-get here; put u-boot.bin and an arm64 kernel Image in $CACHE yourself for the capture tests" >&2
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
if [ ! -s "$CACHE/u-boot.bin" ]; then
  [ -f /usr/lib/u-boot/qemu_arm64/u-boot.bin ] || $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq u-boot-qemu >/dev/null
  cp /usr/lib/u-boot/qemu_arm64/u-boot.bin "$CACHE/u-boot.bin.tmp"
  mv "$CACHE/u-boot.bin.tmp" "$CACHE/u-boot.bin"
fi
if [ ! -s "$CACHE/Image" ]; then
  if ! dpkg --print-foreign-architectures | grep -qx arm64 && [ "$(dpkg --print-architecture)" != arm64 ]; then
    $SUDO dpkg --add-architecture arm64
    $SUDO apt-get update -qq
  fi
  # The newest versioned, unsigned arm64 kernel package of the release (e.g. linux-image-6.1.0-41-arm64).
  PKG=$(apt-cache search --names-only '^linux-image-[0-9.]+-[0-9]+-arm64$' | awk '{print $1}' | sort -V | tail -n 1)
  if [ -z "$PKG" ]; then
    $SUDO apt-get update -qq
    PKG=$(apt-cache search --names-only '^linux-image-[0-9.]+-[0-9]+-arm64$' | awk '{print $1}' | sort -V | tail -n 1)
  fi
  [ -n "$PKG" ] || { echo "guests: no linux-image-*-arm64 package in apt's lists" >&2; exit 1; }
  WORK=$(mktemp -d)
  trap 'rm -rf "$WORK"' EXIT
  (cd "$WORK" && apt-get download -q "$PKG:arm64" >/dev/null)
  dpkg-deb -x "$WORK"/*.deb "$WORK/x"
  IMG=$(ls "$WORK"/x/boot/vmlinuz-* | head -n 1)
  if gzip -t "$IMG" 2>/dev/null; then gzip -dc "$IMG" >"$CACHE/Image.tmp"; else cp "$IMG" "$CACHE/Image.tmp"; fi
  mv "$CACHE/Image.tmp" "$CACHE/Image"
  echo "$PKG" >"$CACHE/kernel.txt"
fi
# Debian's 6.12 (ARM64_VA_BITS_52, ARM64_LPA2): on an LPA2 CPU (QEMU's -cpu max) it runs with
# TCR_EL1.DS 1 and a level -1 root. Failing to get it is not an error.
image612() {
  PKG=$(apt-cache search --names-only '^linux-image-6\.12\.[0-9]+\+deb[0-9]+-arm64-unsigned$' | awk '{print $1}' | sort -V | tail -n 1)
  if [ -z "$PKG" ]; then
    $SUDO apt-get update -qq >/dev/null 2>&1 || true
    PKG=$(apt-cache search --names-only '^linux-image-6\.12\.[0-9]+\+deb[0-9]+-arm64-unsigned$' | awk '{print $1}' | sort -V | tail -n 1)
  fi
  [ -n "$PKG" ] || { echo "guests: no linux-image-6.12.*-arm64-unsigned in apt's lists (add bookworm-backports or trixie); the 6.12 guest is skipped" >&2; return 0; }
  W=$(mktemp -d)
  if ! (cd "$W" && apt-get download -q "$PKG:arm64" >/dev/null 2>&1); then
    echo "guests: could not download $PKG (offline?); the 6.12 guest is skipped" >&2
    rm -rf "$W"
    return 0
  fi
  dpkg-deb -x "$W"/*.deb "$W/x"
  IMG=$(ls "$W"/x/boot/vmlinuz-* | head -n 1)
  if gzip -t "$IMG" 2>/dev/null; then gzip -dc "$IMG" >"$CACHE/Image-6.12.tmp"; else cp "$IMG" "$CACHE/Image-6.12.tmp"; fi
  mv "$CACHE/Image-6.12.tmp" "$CACHE/Image-6.12"
  echo "$PKG" >"$CACHE/kernel-6.12.txt"
  rm -rf "$W"
}
[ -s "$CACHE/Image-6.12" ] || image612
echo "guests: $CACHE: u-boot.bin, Image ($(cat "$CACHE/kernel.txt" 2>/dev/null || echo 'kernel')), Image-6.12 ($(cat "$CACHE/kernel-6.12.txt" 2>/dev/null || echo 'not there'))"
