"""Run .clusterfuzzlite/build.sh with OSS-Fuzz's variables and check its output.

Usage: check_build_sh.py SOURCE_DIR CLANGXX
Checks, for every fuzz target NAME (a fuzz/NAME/ folder with a CMakeLists.txt): OUT holds
an executable NAME_fuzzer that runs one input, a NAME_fuzzer_seed_corpus.zip with every
file of corpus/NAME, and the .dict/.options files the project has for NAME.
"""
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path


def main() -> int:
    src, cxx = Path(sys.argv[1]), sys.argv[2]
    cc = cxx.replace("clang++", "clang")
    flags = ("-O1 -fno-omit-frame-pointer -gline-tables-only -fsanitize=address "
             "-fsanitize-address-use-after-scope -fsanitize=fuzzer-no-link")
    errors = []
    with tempfile.TemporaryDirectory(prefix="vmfuzz-ossfuzz-") as tmp:
        out, work = Path(tmp) / "out", Path(tmp) / "work"
        out.mkdir()
        work.mkdir()
        env = dict(os.environ, CC=cc, CXX=cxx, CFLAGS=flags, CXXFLAGS=flags,
                   LIB_FUZZING_ENGINE="-fsanitize=fuzzer", OUT=str(out), SRC=str(src.parent),
                   WORK=str(work), VMFUZZ_SRC=str(src))
        rc = subprocess.call(["bash", str(src / ".clusterfuzzlite" / "build.sh")], env=env)
        if rc != 0:
            print(f"FAIL: build.sh exited {rc}")
            return 1
        targets = sorted(p.name for p in (src / "fuzz").iterdir() if (p / "CMakeLists.txt").exists())
        if not targets:
            errors.append("no fuzz target found under fuzz/")
        for t in targets:
            binary = out / f"{t}_fuzzer"
            if not os.access(binary, os.X_OK):
                errors.append(f"{binary.name}: missing or not executable")
                continue
            run = subprocess.run([str(binary), "-runs=1"], cwd=tmp, capture_output=True, text=True)
            if run.returncode != 0:
                errors.append(f"{binary.name} -runs=1 exited {run.returncode}: {run.stderr[-500:]}")
            seeds = src / "corpus" / t
            if seeds.is_dir():
                zpath = out / f"{t}_fuzzer_seed_corpus.zip"
                if not zpath.exists():
                    errors.append(f"{zpath.name}: missing")
                else:
                    want = sorted(p.name for p in seeds.iterdir() if p.is_file())
                    with zipfile.ZipFile(zpath) as z:
                        got = sorted(Path(n).name for n in z.namelist() if not n.endswith("/"))
                    if got != want:
                        errors.append(f"{zpath.name}: has {len(got)} files, corpus/{t} has {len(want)}")
            for ext in ("dict", "options"):
                if (src / "fuzz" / t / f"{t}.{ext}").exists() and not (out / f"{t}_fuzzer.{ext}").exists():
                    errors.append(f"{t}_fuzzer.{ext}: missing")
    for e in errors:
        print("FAIL: " + e)
    print(f"build.sh checked: {len(targets)} targets, {len(errors)} problems")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
