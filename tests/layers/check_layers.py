#!/usr/bin/env python3
"""The layer rules are a build fact: compile, with the very flags the build gives a
library's sources (compile_commands.json), one probe that includes a header the layer may
use (it must compile) and one per header above the layer (each must fail to compile).

usage: check_layers.py BUILD_DIR
"""
import json
import os
import shlex
import subprocess
import sys
import tempfile

# (a source file of the layer, an allowed include, forbidden includes)
LAYERS = [
    ("vm/machine/machine.cc", "vm/machine/machine.h", ["vm/pmap/pmap.h", "vm/vm_object.h", "reference_model/model.h"]),
    ("vm/pmap/pmap.cc", "vm/machine/machine.h", ["vm/vm_object.h", "vm/kernel.h", "harness/lang/text.h"]),
    ("vm/kernel.cc", "vm/pmap/pmap.h", ["reference_model/model.h", "harness/exec/executor.h"]),
    ("reference_model/model.cc", "vmfuzz/vocab.h", ["vm/kernel.h", "vm/machine/machine.h", "harness/lang/text.h"]),
    ("harness/lang/text.cc", "harness/lang/codec.h", ["vm/kernel.h", "reference_model/model.h", "harness/exec/executor.h"]),
    ("linux/profile.cc", "linux/profile.h", ["vm/kernel.h", "reference_model/model.h", "harness/lang/text.h"]),
    ("harness/exec/executor.cc", "vm/kernel.h", ["fuzz/vm_diff/vm_state_feedback.h", "props/support/prop_support.h"]),
]


def command_for(commands, source):
    for c in commands:
        if os.path.normpath(c["file"]).endswith(os.path.normpath(source)):
            return c
    return None


def compiles(entry, include, workdir):
    probe = os.path.join(workdir, "probe.cc")
    with open(probe, "w") as f:
        f.write('#include "%s"\nint vmfuzz_layer_probe;\n' % include)
    args = entry["arguments"] if "arguments" in entry else shlex.split(entry["command"])
    out = []
    skip = False
    for a in args:
        if skip:
            skip = False
            continue
        if a in ("-o", "-MF", "-MT", "-MQ"):
            skip = True
            continue
        if a in ("-c", "-MD", "-MMD") or os.path.normpath(a).endswith(os.path.normpath(entry["file"])):
            continue
        out.append(a)
    cmd = out + ["-fsyntax-only", probe]
    r = subprocess.run(cmd, cwd=entry["directory"], capture_output=True, text=True)
    return r.returncode == 0, r.stderr


def main():
    build = sys.argv[1]
    with open(os.path.join(build, "compile_commands.json")) as f:
        commands = json.load(f)
    failed = passed = 0
    with tempfile.TemporaryDirectory() as work:
        for source, allowed, forbidden in LAYERS:
            entry = command_for(commands, source)
            if entry is None:
                print("FAIL %s: not in compile_commands.json" % source)
                failed += 1
                continue
            ok, err = compiles(entry, allowed, work)
            if ok:
                passed += 1
            else:
                failed += 1
                print("FAIL %s: the allowed include %s does not compile:\n%s" % (source, allowed, err))
            for inc in forbidden:
                ok, _ = compiles(entry, inc, work)
                if ok:
                    failed += 1
                    print("FAIL %s: the upward include %s compiles" % (source, inc))
                else:
                    passed += 1
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
