#!/usr/bin/env bash
# `cargo check` for aarch64 macOS (a MacBook): the crate must build off Linux and off x86-64.
# It needs rustup's aarch64-apple-darwin standard library and a C cross compiler for the C code
# in burn's dependencies (zstd); zig (`pip install ziglang`) is one. Where either cannot be had,
# it says so and skips: nothing here links or runs, so it needs no macOS SDK.
set -euo pipefail
cd "$(dirname "$0")/.."
target=aarch64-apple-darwin
skip() { echo "cross check skipped: $1"; exit 0; }
if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
  rustup target add "$target" >/dev/null 2>&1 || skip "cannot install rustup's $target target"
fi
if ! python3 -m ziglang version >/dev/null 2>&1; then
  python3 -m pip install -q ziglang >/dev/null 2>&1 || skip "no zig (pip install ziglang) to compile zstd's C code"
fi
tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
# cc-rs passes its own target flags; zig takes `-target`.
cat > "$tools/cc" <<'SH'
#!/usr/bin/env bash
args=()
for a in "$@"; do
  case "$a" in --target=*|-arch|arm64) ;; *) args+=("$a") ;; esac
done
exec python3 -m ziglang cc -target aarch64-macos "${args[@]}"
SH
printf '#!/usr/bin/env bash\nexec python3 -m ziglang ar "$@"\n' > "$tools/ar"
chmod +x "$tools/cc" "$tools/ar"
CC_aarch64_apple_darwin="$tools/cc" AR_aarch64_apple_darwin="$tools/ar" \
  cargo check --quiet --target "$target" --all-targets
echo "cross check: cargo check --target $target passed"
