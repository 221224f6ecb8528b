#!/usr/bin/env bash
# Screenshots of the HTML report, taken by a headless browser (Debian's chromium):
#   scripts/report-screenshot.sh OUT.png RUN [RUN...]
# writes the report of RUN (or the comparison of several runs) into a scratch folder with
# `hhnas-pipe report`, opens its report.html in headless chromium and saves a full-page
# screenshot to OUT.png. Environment: HHNAS_BIN (default target/release/hhnas-pipe),
# HHNAS_CACHE_DIR (passed as --cache-dir when set), HHNAS_CHROMIUM (default chromium).
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: $0 OUT.png RUN [RUN...]" >&2
    exit 2
fi
out=$1
shift
bin=${HHNAS_BIN:-target/release/hhnas-pipe}
browser=${HHNAS_CHROMIUM:-chromium}
command -v "$browser" > /dev/null || {
    echo "$browser not found. Fix: apt install chromium, or set HHNAS_CHROMIUM" >&2
    exit 2
}
cache=()
[ -n "${HHNAS_CACHE_DIR:-}" ] && cache=(--cache-dir "$HHNAS_CACHE_DIR")
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$bin" "${cache[@]}" report --out "$dir" "$@" > /dev/null
"$browser" --headless --no-sandbox --disable-gpu --no-first-run --hide-scrollbars \
    --window-size=1200,4200 --screenshot="$(realpath -m "$out")" "file://$dir/report.html" \
    2> "$dir/browser.log" || { cat "$dir/browser.log" >&2; exit 1; }
echo "wrote $out"
