"""Run .clusterfuzzlite/build.sh with OSS-Fuzz's variables and check its output.

Usage: check_build_sh.py SOURCE_DIR CLANGXX [address|undefined|coverage]
The variables are those the OSS-Fuzz / ClusterFuzzLite base-builder image sets for a
libFuzzer build with that sanitizer (its `compile` script): CFLAGS = the base flags, the
sanitizer's SANITIZER_FLAGS_<s> and COVERAGE_FLAGS (-fsanitize=fuzzer-no-link; for
`coverage`, COVERAGE_FLAGS_coverage: source-based profile instrumentation), CXXFLAGS the
same, LIB_FUZZING_ENGINE=-fsanitize=fuzzer, SANITIZER, FUZZING_ENGINE, FUZZING_LANGUAGE,
ARCHITECTURE, OUT, SRC, WORK. One difference: the image adds -stdlib=libc++ to CXXFLAGS,
and Debian's clang here has no libc++ installed, so the check builds against libstdc++.
Checks, for every fuzz target NAME (a fuzz/NAME/ folder with a CMakeLists.txt): OUT holds
an executable NAME_fuzzer that runs its seed corpus without a finding (with the runtime
options ClusterFuzzLite's runner uses for that sanitizer), a NAME_fuzzer_seed_corpus.zip
with every file of corpus/NAME, and the .dict/.options files the project has for NAME.
For `coverage`, running the seeds must also write a profile that llvm-profdata reads.
"""
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path


BASE = "-O1 -fno-omit-frame-pointer -gline-tables-only -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION"
UBSAN_CHECKS = ("array-bounds,bool,builtin,enum,float-divide-by-zero,function,integer-divide-by-zero,null,"
                "object-size,return,returns-nonnull-attribute,shift,signed-integer-overflow,unreachable,vla-bound,vptr")
SANITIZER_FLAGS = {
    "address": "-fsanitize=address -fsanitize-address-use-after-scope",
    "undefined": f"-fsanitize={UBSAN_CHECKS},unsigned-integer-overflow -fno-sanitize-recover={UBSAN_CHECKS}",
    "coverage": "",
}
COVERAGE_FLAGS = {
    "address": "-fsanitize=fuzzer-no-link",
    "undefined": "-fsanitize=fuzzer-no-link",
    "coverage": ("-fprofile-instr-generate -fcoverage-mapping -pthread -Wl,--no-as-needed -Wl,-ldl -Wl,-lm "
                 "-Wno-unused-command-line-argument"),
}
# What ClusterFuzzLite's runner sets when it runs the fuzzers of each build.
RUNTIME = {
    "address": {"ASAN_OPTIONS": "alloc_dealloc_mismatch=0:allocator_may_return_null=1:detect_leaks=1:"
                                "detect_stack_use_after_return=1:symbolize=1"},
    "undefined": {"UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1:print_summary=1:silence_unsigned_overflow=1:"
                                   "symbolize=1"},
    "coverage": {},
}


def main() -> int:
    src, cxx = Path(sys.argv[1]), sys.argv[2]
    sanitizer = sys.argv[3] if len(sys.argv) > 3 else "address"
    if sanitizer not in SANITIZER_FLAGS:
        print(f"usage: check_build_sh.py SOURCE_DIR CLANGXX [{'|'.join(SANITIZER_FLAGS)}]")
        return 2
    cc = cxx.replace("clang++", "clang")
    flags = f"{BASE} {SANITIZER_FLAGS[sanitizer]} {COVERAGE_FLAGS[sanitizer]}".replace("  ", " ")
    errors = []
    with tempfile.TemporaryDirectory(prefix="vmfuzz-ossfuzz-") as tmp:
        out, work = Path(tmp) / "out", Path(tmp) / "work"
        out.mkdir()
        work.mkdir()
        env = dict(os.environ, CC=cc, CXX=cxx, CFLAGS=flags, CXXFLAGS=flags,
                   LIB_FUZZING_ENGINE="-fsanitize=fuzzer", OUT=str(out), SRC=str(src.parent),
                   WORK=str(work), VMFUZZ_SRC=str(src), SANITIZER=sanitizer, FUZZING_ENGINE="libfuzzer",
                   FUZZING_LANGUAGE="c++", ARCHITECTURE="x86_64")
        print(f"build.sh with SANITIZER={sanitizer}\n  CXXFLAGS={flags}", flush=True)
        # As the base image's `compile` runs it: `bash -eux $SRC/build.sh` (the -e matters: a
        # failed build must stop the script, not fall through to copying nothing).
        rc = subprocess.call(["bash", "-eux", str(src / ".clusterfuzzlite" / "build.sh")], env=env)
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
            seeds = src / "corpus" / t
            profiles = Path(tmp) / f"profiles-{t}"
            renv = dict(os.environ, **RUNTIME[sanitizer], LLVM_PROFILE_FILE=str(profiles / "%m.profraw"))
            # -runs=0 with the seed folder: every seed runs once (libFuzzer's INITED pass).
            cmd = [str(binary), "-runs=0", str(seeds)] if seeds.is_dir() else [str(binary), "-runs=1"]
            run = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, env=renv)
            if run.returncode != 0:
                errors.append(f"{binary.name} {' '.join(cmd[1:2])} over its seeds exited {run.returncode}: "
                              f"{run.stderr[-800:]}")
            if sanitizer == "coverage":
                raws = sorted(profiles.glob("*.profraw"))
                if not raws:
                    errors.append(f"{binary.name}: the coverage build wrote no profile")
                else:
                    merged = subprocess.run(["llvm-profdata-14", "merge", "-sparse", *map(str, raws), "-o",
                                             str(profiles / "merged.profdata")], capture_output=True, text=True)
                    if merged.returncode != 0:
                        errors.append(f"{binary.name}: llvm-profdata cannot read its profile: {merged.stderr[-300:]}")
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
    print(f"build.sh checked ({sanitizer}): {len(targets)} targets, {len(errors)} problems")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
