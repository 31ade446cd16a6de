#!/usr/bin/env bash
# Exports container images for upload (Grand Challenge takes a gzipped `docker save` archive).
#
# Usage: scripts/export-images.sh [IMAGE...] [--output DIR]
#   IMAGE     images to export (default ocelot-algorithm ocelot-eval).
#   --output  folder for the archives (default runs/export); each becomes <name>_<tag>.tar.gz.
# pigz compresses on every core when it is installed, gzip otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '4,7p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
images=()
output=runs/export
while [ $# -gt 0 ]; do
  case "$1" in
    --output) [ $# -ge 2 ] || usage; output=$2; shift 2 ;;
    -*) usage ;;
    *) images+=("$1"); shift ;;
  esac
done
[ ${#images[@]} -gt 0 ] || images=(ocelot-algorithm ocelot-eval)
compress=gzip
command -v pigz >/dev/null && compress=pigz
mkdir -p "$output"
partial=""
trap 'rm -f "$partial"' EXIT

for image in "${images[@]}"; do
  docker image inspect "$image" >/dev/null 2>&1 || { echo "export-images: no image $image (build it first: scripts/build-images.sh)" >&2; exit 1; }
  name=${image%%:*}; tag=latest
  [[ $image == *:* ]] && tag=${image##*:}
  archive="$output/${name//\//_}_$tag.tar.gz"
  started=$SECONDS
  # Written beside the target and renamed, so an interrupted export leaves no truncated archive.
  partial=$archive.partial
  docker save "$image" | "$compress" -c > "$partial"
  mv "$partial" "$archive"
  echo "export-images: $archive ($(du -h "$archive" | cut -f1), $((SECONDS - started)) s)"
done
