#!/usr/bin/env bash
# Carry a folder to a machine over several transfers when one transfer cannot hold it (the GPU
# machine takes 64 MiB of working tree a call; the brain-MRI dataset alone is 93 MB).
#
#   scripts/carry.sh pack FOLDER DEST BYTES [BYTES ...]
#       Here: tar and xz FOLDER once (xz takes 13 % off the dataset's JPEGs), cut the archive into pieces and deal them into DEST/1, DEST/2, …, the
#       first part holding at most the first BYTES (suffixes K, M accepted), each later part the
#       next BYTES, the last BYTES repeated as needed. Every part holds the MANIFEST: the folder's
#       name and every piece's SHA-256, so any part tells what the whole needs.
#   scripts/carry.sh gather PART STASH
#       There, once per transfer: copy PART's pieces into STASH (which must outlive the transfer,
#       e.g. under /tmp), check each against the MANIFEST, and once every piece is there unpack
#       the folder as STASH/<name>. Prints where the folder is and exits 0 when it is whole,
#       "k of n pieces" and exits 3 while pieces are missing, exits 1 on a damaged piece.
#
# The tar is made with sorted names and no owners or times, so packing the same folder twice
# gives the same pieces. Needs tar, xz, split and sha256sum on both sides.
set -euo pipefail

die() { echo "carry.sh: $*" >&2; exit 1; }
bytes() {
  local v=$1
  case $v in
    *K) echo $(( ${v%K} * 1024 )) ;;
    *M) echo $(( ${v%M} * 1024 * 1024 )) ;;
    *[!0-9]*|'') die "not a size: '$v' (bytes, or a number with K or M)" ;;
    *) echo "$v" ;;
  esac
}

pack() {
  [ $# -ge 3 ] || die "usage: carry.sh pack FOLDER DEST BYTES [BYTES ...]"
  local folder=$1 dest=$2; shift 2
  [ -d "$folder" ] || die "no folder at $folder"
  [ -e "$dest" ] && die "$dest exists; remove it first"
  local budgets=() b
  for b in "$@"; do budgets+=("$(bytes "$b")"); done
  local name work
  name=$(basename "$(cd "$folder" && pwd -P)")
  work=$(mktemp -d)
  trap 'rm -rf "$work"' RETURN
  # -h: a link to the dataset carries the dataset
  tar -C "$(dirname "$(cd "$folder" && pwd -P)")" -chf - --sort=name \
    --owner=0 --group=0 --numeric-owner --mtime=@0 "$name" | xz -T0 -6 > "$work/$name.tar.xz"
  # 1 MiB pieces (smaller for small budgets), so every part fills to within 1 MiB of its budget
  local piece=$(( 1024 * 1024 ))
  for b in "${budgets[@]}"; do
    if (( b / 32 < piece )); then piece=$(( b / 32 )); fi
  done
  (( piece >= 1024 )) || die "a budget under 32K"
  split -a 4 -d -b "$piece" "$work/$name.tar.xz" "$work/$name.tar.xz."
  rm "$work/$name.tar.xz"
  {
    echo "name $name"
    (cd "$work" && sha256sum "$name".tar.xz.*)
  } > "$work/MANIFEST"
  local part=1 used=0 budget=${budgets[0]} size f
  mkdir -p "$dest/$part"
  for f in "$work/$name".tar.xz.*; do
    size=$(stat -c %s "$f")
    if (( used + size > budget && used > 0 )); then
      cp "$work/MANIFEST" "$dest/$part/"
      part=$(( part + 1 )); used=0
      (( part <= ${#budgets[@]} )) && budget=${budgets[part-1]}
      mkdir -p "$dest/$part"
    fi
    (( size <= budget )) || die "a piece of $size bytes does not fit a part of $budget"
    mv "$f" "$dest/$part/"
    used=$(( used + size ))
  done
  cp "$work/MANIFEST" "$dest/$part/"
  local p
  for p in $(seq 1 "$part"); do
    echo "$dest/$p: $(du -sb "$dest/$p" | cut -f1) bytes, $(ls "$dest/$p" | grep -c '\.tar\.xz\.') pieces"
  done
}

gather() {
  [ $# -eq 2 ] || die "usage: carry.sh gather PART STASH"
  local part=$1 stash=$2
  [ -f "$part/MANIFEST" ] || die "no MANIFEST in $part"
  local name
  name=$(awk '$1 == "name" { print $2 }' "$part/MANIFEST")
  [ -n "$name" ] || die "$part/MANIFEST names no folder"
  if [ -d "$stash/$name" ] && [ -f "$stash/$name.complete" ]; then
    echo "$stash/$name"; return 0
  fi
  mkdir -p "$stash/pieces"
  cp "$part/MANIFEST" "$stash/pieces/MANIFEST"
  cp "$part/$name".tar.xz.* "$stash/pieces/" 2>/dev/null || true
  local want have=0 total=0 sum piece
  while read -r sum piece; do
    [ "$sum" = name ] && continue
    total=$(( total + 1 ))
    [ -f "$stash/pieces/$piece" ] || continue
    want=$(sha256sum "$stash/pieces/$piece" | cut -d' ' -f1)
    [ "$want" = "$sum" ] || die "$stash/pieces/$piece is damaged (SHA-256 $want, the MANIFEST says $sum)"
    have=$(( have + 1 ))
  done < "$stash/pieces/MANIFEST"
  if (( have < total )); then
    echo "$have of $total pieces of $name in $stash/pieces"
    return 3
  fi
  rm -rf "$stash/$name"
  cat "$stash/pieces/$name".tar.xz.* | xz -dc | tar -C "$stash" -xf -
  touch "$stash/$name.complete"
  rm -rf "$stash/pieces"
  echo "$stash/$name"
}

case ${1:-} in
  pack) shift; pack "$@" ;;
  gather) shift; gather "$@" ;;
  *) die "usage: carry.sh pack FOLDER DEST BYTES [BYTES ...] | carry.sh gather PART STASH" ;;
esac
