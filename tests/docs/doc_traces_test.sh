#!/bin/sh
# doc_traces_test.sh REPLAY DOC — keeps the examples of a document honest. Every fenced
# block of DOC whose info string is `trace` is replayed with vmfuzz-replay and must exit 0
# (every op agreed, every assertion held); every `trace-unusable` block must exit 2, and
# its first line `# expect: LINE: reason` must be the `FILE:LINE: reason` printed.
set -u
R="$1"
DOC="$2"
W="${TMPDIR:-/tmp}/vmfuzz-doc-traces.$$"
mkdir -p "$W"
trap 'rm -rf "$W"' EXIT

# Cut the blocks into $W/N.trace (ok) and $W/N.unusable (exit 2 expected).
awk -v dir="$W" '
  /^```trace-unusable[ \t]*$/ { n++; out = dir "/" n ".unusable"; inblock = 1; next }
  /^```trace[ \t]*$/          { n++; out = dir "/" n ".trace";    inblock = 1; next }
  /^```/ && inblock            { inblock = 0; close(out); next }
  inblock                      { print > out }
' "$DOC"

count=0
failed=0
for f in "$W"/*.trace "$W"/*.unusable; do
  [ -e "$f" ] || continue
  count=$((count + 1))
  first=$(head -n 1 "$f")
  "$R" --quiet "$f" > "$W/out" 2>&1
  rc=$?
  case "$f" in
    *.trace)
      if [ $rc -ne 0 ]; then
        echo "FAIL: block '$first' exited $rc (expected 0):"
        cat "$W/out"
        failed=$((failed + 1))
      fi ;;
    *.unusable)
      want=$(printf '%s\n' "$first" | sed -n 's/^# expect: //p')
      if [ $rc -ne 2 ]; then
        echo "FAIL: unusable block '$first' exited $rc (expected 2):"
        cat "$W/out"
        failed=$((failed + 1))
      elif [ -z "$want" ] || ! grep -qF "$f:$want" "$W/out"; then
        echo "FAIL: unusable block: expected '$f:$want', got:"
        cat "$W/out"
        failed=$((failed + 1))
      fi ;;
  esac
done
if [ $count -eq 0 ]; then
  echo "FAIL: no trace blocks in $DOC"
  exit 1
fi
echo "$count blocks of $DOC replayed, $failed failed"
[ $failed -eq 0 ]
