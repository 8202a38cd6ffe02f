#!/bin/bash
# tests/static/run.sh BUILD_DIR
#
# The static checks of issue 6, on src/ and examples/, over the compile
# commands meson wrote to BUILD_DIR/compile_commands.json:
#   clang-tidy   with the checked-in .clang-tidy (every report is an error)
#   cppcheck     --enable=warning,style,performance,portability, with
#                tests/static/cppcheck-suppressions.txt and inline
#                "cppcheck-suppress" comments, each with its reason
#   gcc -fanalyzer  each source compiled once more with -fanalyzer; a report
#                fails unless tests/static/fanalyzer-known.txt explains it
#                (false positives of GCC 12's analyzer, counted per file and
#                kind, so one more report of a known kind still fails)
# Each tool runs on every distinct source file once (meson compiles some
# twice: libhato.so and the tests' static library), JOBS at a time (default:
# the number of CPUs).  Exits 0 when all three are clean, 1 otherwise; 77
# (skip) when a tool is missing and HATO_STATIC_REQUIRED is unset.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:?usage: tests/static/run.sh BUILD_DIR}
build=$(cd "$build" && pwd)
jobs=${JOBS:-$(nproc)}
db=$build/compile_commands.json
[ -f "$db" ] || { echo "static: no $db (run meson setup first)" >&2; exit 1; }
for tool in clang-tidy cppcheck gcc; do
    if ! command -v "$tool" >/dev/null; then
        echo "static: $tool is not installed (tests/setup/install-deps.sh installs it)"
        [ -n "${HATO_STATIC_REQUIRED:-}" ] && exit 1
        exit 77
    fi
done
out=$(mktemp -d "${TMPDIR:-/tmp}/hato-static.XXXXXX")
trap 'rm -rf "$out"' EXIT

# One line per distinct source under src/ or examples/: FILE<TAB>DIR<TAB>COMMAND
python3 - "$db" "$top" > "$out/units" <<'PY'
import json, os, sys
seen = set()
for e in json.load(open(sys.argv[1])):
    f = os.path.normpath(os.path.join(e["directory"], e["file"]))
    rel = os.path.relpath(f, sys.argv[2])
    if not (rel.startswith("src/") or rel.startswith("examples/")) or f in seen:
        continue
    seen.add(f)
    print("%s\t%s\t%s" % (f, e["directory"], e["command"]))
PY
n=$(wc -l < "$out/units")
echo "static: $n source files, $jobs at a time"
failed=0

# --- clang-tidy ------------------------------------------------------------
t0=$SECONDS
cut -f1 "$out/units" | xargs -P "$jobs" -I{} sh -c \
    'clang-tidy -p "$1" --quiet "$2" > "$3/tidy.$(echo "$2" | tr / _)" 2>&1' sh "$build" {} "$out"
cat "$out"/tidy.* > "$out/tidy.all"
reports=$(grep -cE '^[^ ]+:[0-9]+:[0-9]+: (warning|error):' "$out/tidy.all")
echo "static: clang-tidy: $reports reports ($((SECONDS - t0)) s)"
if [ "$reports" -ne 0 ] || grep -q 'Error while processing' "$out/tidy.all"; then
    grep -vE '^[0-9]+ warnings? (and [0-9]+ errors? )?generated|^Suppressed|^Use -header-filter|^Error while processing' \
        "$out/tidy.all" | grep -E ': (warning|error):' -A3
    failed=1
fi

# --- cppcheck --------------------------------------------------------------
t0=$SECONDS
# The filters are absolute, as the project's paths are (meson writes them
# relative to the build directory, and cppcheck makes them absolute).
if ! cppcheck --project="$db" --enable=warning,style,performance,portability \
        --inline-suppr --suppressions-list="$top/tests/static/cppcheck-suppressions.txt" \
        --file-filter="$top/src/*" --file-filter="$top/examples/*" -q -j "$jobs" \
        --error-exitcode=1 --template='{file}:{line}:{column}: {severity}: {message} [{id}]' \
        > "$out/cppcheck" 2>&1; then
    cat "$out/cppcheck"
    failed=1
fi
reports=$(grep -c ': \(error\|warning\|style\|performance\|portability\):' "$out/cppcheck")
echo "static: cppcheck: $reports reports ($((SECONDS - t0)) s)"
[ "$reports" -eq 0 ] || failed=1

# --- gcc -fanalyzer --------------------------------------------------------
t0=$SECONDS
python3 -c '
import shlex, sys
for line in sys.stdin:
    f, d, cmd = line.rstrip("\n").split("\t", 2)
    a = shlex.split(cmd)
    keep, skip = [], False
    for x in a:
        if skip:
            skip = False
            continue
        if x in ("-o", "-MF", "-MQ", "-MT"):
            skip = True
            continue
        if x in ("-MD", "-MMD") or x.startswith("-fdiagnostics-color"):
            continue
        keep.append(x)
    keep += ["-fanalyzer", "-fdiagnostics-color=never", "-o", "/dev/null"]
    print(d + "\0" + shlex.join(keep), end="\0\0")
' < "$out/units" > "$out/fa.cmds"
python3 - "$out" "$jobs" <<'PY'
import os, subprocess, sys
from concurrent.futures import ThreadPoolExecutor
out, jobs = sys.argv[1], int(sys.argv[2])
units = [u for u in open(os.path.join(out, "fa.cmds")).read().split("\0\0") if u]
def run(u):
    d, cmd = u.split("\0", 1)
    return subprocess.run(cmd, shell=True, cwd=d, capture_output=True, text=True).stderr
with ThreadPoolExecutor(jobs) as ex, open(os.path.join(out, "fa.all"), "w") as f:
    for text in ex.map(run, units):
        f.write(text)
PY
python3 - "$out/fa.all" "$top/tests/static/fanalyzer-known.txt" "$top" <<'PY' || failed=1
import collections, os, re, sys
text, known_file, top = sys.argv[1:4]
found = collections.Counter()
lines = collections.defaultdict(list)
for line in open(text):
    m = re.match(r"(\S+?):(\d+):\d+: (warning|error): (.*) \[(-W[^\]]+)\]$", line.strip())
    if not m:
        continue
    f = os.path.relpath(os.path.normpath(m.group(1)), top) if os.path.isabs(m.group(1)) else m.group(1)
    f = re.sub(r"^(\.\./)+", "", f)
    found[(f, m.group(5))] += 1
    lines[(f, m.group(5))].append("%s:%s: %s [%s]" % (f, m.group(2), m.group(4), m.group(5)))
known = {}
for line in open(known_file):
    line = line.split("#", 1)[0].split()
    if len(line) >= 3:
        known[(line[0], line[1])] = int(line[2])
bad = 0
for key, count in sorted(found.items()):
    allowed = known.get(key, 0)
    if count > allowed:
        bad += 1
        print("static: gcc -fanalyzer: %d report(s) of %s in %s, %d explained:" % (count, key[1], key[0], allowed))
        for l in lines[key]:
            print("  " + l)
for key, allowed in sorted(known.items()):
    if found.get(key, 0) < allowed:
        print("static: note: fanalyzer-known.txt allows %d of %s in %s, found %d: lower it" % (allowed, key[1], key[0], found.get(key, 0)))
print("static: gcc -fanalyzer: %d reports, %d explained in tests/static/fanalyzer-known.txt"
      % (sum(found.values()), sum(min(c, known.get(k, 0)) for k, c in found.items())))
sys.exit(1 if bad else 0)
PY
echo "static: gcc -fanalyzer done ($((SECONDS - t0)) s)"

if [ "$failed" -ne 0 ]; then
    echo "static: FAILED"
    exit 1
fi
echo "static: clean"
