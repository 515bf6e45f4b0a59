# Sourced (not run) by the GPU-machine scripts, with $root the tree there: the environment that
# builds and runs pmpd with what scripts/prepare-device-extras.sh put under .device/ (Debian's Abseil,
# a copy of ../shared, PCRE2's headers and pkg-config file; the machine has only PCRE2's runtime).
export LD_LIBRARY_PATH=$root/.device/absl/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
export PMPD_SHARED_DIR=$root/.device/shared
if [ -d "$root/.device/pcre2" ]; then
  # The .pc file's prefix must name where the headers are on this machine.
  sed -i "s|^prefix=.*|prefix=$root/.device/pcre2/usr|" "$root"/.device/pcre2/usr/lib/x86_64-linux-gnu/pkgconfig/*.pc
  export PKG_CONFIG_PATH=$root/.device/pcre2/usr/lib/x86_64-linux-gnu/pkgconfig:${PKG_CONFIG_PATH:-}
fi
