#!/usr/bin/env bash
# Packs the GPU run kit for an offline NVIDIA machine (see bench/gpu/README.md):
#
#   bash bench/gpu/pack.sh OUTDIR [--no-download WHEELDIR] [--part-size 60M]
#
# 1. wheels: `pip download --no-deps` of every name in bench/gpu/wheels.txt at its pin in
#    constraints.txt (jax-cuda13-plugin / jax-cuda13-pjrt at jax's pin; a `name==version` line
#    keeps its own), cp312 manylinux x86_64 binaries only. --no-download WHEELDIR takes the
#    files of WHEELDIR instead (no network; the tests use it).
# 2. the project: `git archive HEAD` of rpo_jax/, bench/, configs/, tests/ and the packaging files
#    (committed files only: commit first).
# 3. OUTDIR/rpo_gpu_kit.tar.part-NN: one tar of both (plus sizes.txt, the size of every wheel),
#    split into parts of at most --part-size (split -b); OUTDIR/MANIFEST.sha256: sha256 of every
#    part and of the whole tar; OUTDIR/run.sh: a copy of bench/gpu/run.sh, which checks and
#    reassembles them on the GPU machine.
set -euo pipefail

usage() { echo "usage: bash bench/gpu/pack.sh OUTDIR [--no-download WHEELDIR] [--part-size 60M]" >&2; exit 2; }
fail() { echo "pack.sh: error: $*" >&2; exit 2; }

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
OUTDIR="" WHEELDIR="" PART_SIZE="60M"
while [ $# -gt 0 ]; do
  case "$1" in
    --no-download) [ $# -ge 2 ] || usage; WHEELDIR="$2"; shift 2 ;;
    --part-size) [ $# -ge 2 ] || usage; PART_SIZE="$2"; shift 2 ;;
    -h|--help) usage ;;
    -*) fail "unknown option $1" ;;
    *) [ -z "$OUTDIR" ] || fail "one OUTDIR only (got $OUTDIR and $1)"; OUTDIR="$1"; shift ;;
  esac
done
[ -n "$OUTDIR" ] || usage
[[ "$PART_SIZE" =~ ^[0-9]+[KMG]?$ ]] || fail "--part-size must be a size such as 60M or 512K, got $PART_SIZE"
[ -z "$WHEELDIR" ] || [ -d "$WHEELDIR" ] || fail "--no-download: $WHEELDIR is not a directory"
if [ -e "$OUTDIR" ] && [ -n "$(ls -A "$OUTDIR")" ]; then fail "$OUTDIR exists and is not empty"; fi

mkdir -p "$OUTDIR"
OUTDIR="$(cd "$OUTDIR" && pwd)"
STAGE="$(mktemp -d)"
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE/wheels"

pin() {  # pin NAME: its version in constraints.txt (names compared as pip normalises them)
  local want; want="$(echo "$1" | tr 'A-Z_.' 'a-z--')"
  awk -F'==' -v want="$want" '
    /^[A-Za-z0-9]/ { name = tolower($1); gsub(/[_.]/, "-", name); if (name == want) { print $2; exit } }
  ' "$REPO/constraints.txt"
}

if [ -n "$WHEELDIR" ]; then
  cp -p "$WHEELDIR"/* "$STAGE/wheels/"
else
  : > "$STAGE/requirements.txt"
  while read -r line; do
    line="${line%%#*}"; line="$(echo "$line" | xargs)"
    [ -n "$line" ] || continue
    if [[ "$line" == *"=="* ]]; then echo "$line" >> "$STAGE/requirements.txt"; continue; fi
    case "$line" in jax-cuda13-plugin|jax-cuda13-pjrt) version="$(pin jax)" ;; *) version="$(pin "$line")" ;; esac
    [ -n "$version" ] || fail "$line has no pin in constraints.txt"
    echo "$line==$version" >> "$STAGE/requirements.txt"
  done < "$HERE/wheels.txt"
  # pandas 3.1's only x86_64 wheel is tagged manylinux_2_24/2_28, which pip does not derive from 2_27.
  python3 -m pip download --quiet --no-deps --only-binary=:all: --implementation cp --python-version 3.12 \
    --platform manylinux_2_27_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 \
    -d "$STAGE/wheels" -r "$STAGE/requirements.txt"
  cp "$STAGE/requirements.txt" "$STAGE/wheels.lock"
  rm "$STAGE/requirements.txt"
fi
[ -n "$(ls -A "$STAGE/wheels")" ] || fail "no wheels to pack"

git -C "$REPO" archive --format=tar --prefix=rpo_jax/ -o "$STAGE/rpo_jax-src.tar" HEAD -- \
  rpo_jax bench configs tests pyproject.toml constraints.txt README.md
(cd "$STAGE/wheels" && ls -l | awk 'NR > 1 { print $5, $9 }' | sort -rn) > "$STAGE/sizes.txt"

TAR="rpo_gpu_kit.tar"
tar -cf "$OUTDIR/$TAR" -C "$STAGE" .
split -b "$PART_SIZE" -d -a 2 "$OUTDIR/$TAR" "$OUTDIR/$TAR.part-"
(cd "$OUTDIR" && sha256sum "$TAR".part-* "$TAR") > "$OUTDIR/MANIFEST.sha256"
rm "$OUTDIR/$TAR"
cp "$HERE/run.sh" "$OUTDIR/run.sh"

wheels_bytes=$(awk '{ s += $1 } END { print s + 0 }' "$STAGE/sizes.txt")
echo "pack.sh: $(wc -l < "$STAGE/sizes.txt") wheels, $((wheels_bytes / 1000000)) MB; project $(($(stat -c %s "$STAGE/rpo_jax-src.tar") / 1000)) kB"
(cd "$OUTDIR" && ls -l "$TAR".part-* | awk '{ printf "  %s %d bytes\n", $9, $5 }')
echo "pack.sh: wrote $OUTDIR (parts, MANIFEST.sha256, run.sh)"
