"""Relocation tests of the packages scripts/package builds (issue 16, item 4). Standard
library only; run by scripts/test after `scripts/package --profile debug`:

    python3 tests/package_test.py --dist DIR --reference-cli target/debug/brainsam

Everything runs from a fresh temporary folder with a minimal environment (PATH=/usr/bin:/bin
plus the venv under test, no LD_LIBRARY_PATH), against torch 2.11.0 installed from PyPI
(pip's cache; installed once per Python into a folder outside the checkout that each
fresh venv sees through a .pth file), never the build tree's .venv; every program runs under
LD_DEBUG=libs and fails the test if it loads anything from the checkout or its .venv.

(a) the unpacked tarball: C example via pkg-config, C/C++ examples via
    find_package(BrainSAM) (CMake), C++ example via pkg-config, the ITK application, the
    CLI launcher; (b) readelf -d of every shipped ELF (tarball and installed wheels) names
    no absolute path; (c) per Python (3.12, 3.11, 3.9): fresh venv, pip install the wheel,
    segment a real volume through `import brainsam` and the console command, labels
    identical to the reference CLI's; (d) a missing, wrong or CPU-only torch gives the
    error naming what to install (Python, launcher, CMake).
Prints one line per check; a Python or ITK that is absent prints "skipped: <why>"
(with BRAINSAM_REQUIRE_ALL=1, as in CI, an absent one fails). Exit status 1 on failure.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHONS = [("3.12", "3.12.1"), ("3.11", "3.11.7"), ("3.9", "3.9.18")]
SEGMENT_FLAGS = ["--no-mirror", "--no-shift"]
TORCH_VERSION = "2.11.0"
REAL_VOLUME = "mne_testing_sample/T1_3mm.nii.gz"

failures: list[str] = []
skips: list[str] = []
STARTED = time.time()


def check(name: str, ok: bool, detail: str = "") -> bool:
    print(f"{'ok' if ok else 'FAILED'}: {name} [{time.time() - STARTED:.0f} s]"
          + (f"\n    {detail}" if detail and not ok else ""), flush=True)
    if not ok:
        failures.append(name)
    return ok


def skip(name: str, why: str) -> None:
    print(f"skipped: {name}: {why}", flush=True)
    skips.append(f"{name}: {why}")


def forbidden_prefixes() -> list[str]:
    """Paths no packaged program may touch: the checkout (target/ included) and its .venv
    (wherever the link points)."""
    prefixes = {str(ROOT)}
    venv = ROOT / ".venv"
    if venv.exists():
        prefixes.add(str(venv.resolve()))
    return sorted(prefixes)


class Runner:
    def __init__(self, scratch: Path):
        self.scratch = scratch
        self.count = 0

    def env(self, extra: dict | None = None, path_first: list[str] | None = None) -> dict:
        env = {
            "PATH": os.pathsep.join((path_first or []) + ["/usr/bin", "/bin"]),
            "HOME": str(self.scratch / "home"),
            "LANG": "C.UTF-8",
            "TMPDIR": str(self.scratch / "tmp"),
        }
        if os.environ.get("PIP_CACHE_DIR"):
            env["PIP_CACHE_DIR"] = os.environ["PIP_CACHE_DIR"]
        else:
            env["PIP_CACHE_DIR"] = str(Path.home() / ".cache" / "pip")
        for key in ("PIP_FIND_LINKS", "PIP_CERT", "PIP_DEFAULT_TIMEOUT", "PIP_INDEX_URL",
                    "PIP_EXTRA_INDEX_URL", "PIP_DISABLE_PIP_VERSION_CHECK", "PYENV_ROOT",
                    "SSL_CERT_FILE"):
            if key in os.environ:
                env[key] = os.environ[key]
        env.update(extra or {})
        return env

    def run(self, args: list, env: dict, cwd: Path | None = None, trace: bool = False,
            timeout: int = 900) -> subprocess.CompletedProcess:
        """Runs `args`; with `trace`, under LD_DEBUG=libs, and records a failure if it
        loaded a library from the checkout or its .venv."""
        env = dict(env)
        log = None
        if trace:
            self.count += 1
            log = self.scratch / "ld-debug" / f"run{self.count}"
            log.parent.mkdir(exist_ok=True)
            env["LD_DEBUG"] = "libs"
            env["LD_DEBUG_OUTPUT"] = str(log)
        result = subprocess.run([str(a) for a in args], env=env, cwd=cwd or self.scratch,
                                capture_output=True, text=True, timeout=timeout)
        if trace:
            loaded = set()
            for part in glob.glob(f"{log}.*"):
                for line in Path(part).read_text(errors="replace").splitlines():
                    match = re.search(r"(?:calling init|trying file)=?:?\s*(\S+)", line)
                    if match:
                        loaded.add(match.group(1))
            bad = sorted(p for p in loaded for f in forbidden_prefixes() if p.startswith(f))
            shown = " ".join(Path(str(a)).name if i == 0 else str(a).splitlines()[0][:40]
                             for i, a in enumerate(args[:3]))
            check(f"loads nothing from the checkout or .venv: {shown}", not bad and bool(loaded),
                  f"loaded {bad[:5]}" if bad else "LD_DEBUG recorded no library")
        return result


def ok_run(name: str, result: subprocess.CompletedProcess, expect: str | None = None) -> bool:
    good = result.returncode == 0 and (expect is None or expect in result.stdout)
    return check(name, good, f"exit {result.returncode}\nstdout: {result.stdout[-1500:]}\n"
                 f"stderr: {result.stderr[-3000:]}")


def error_run(name: str, result: subprocess.CompletedProcess, *needles: str) -> bool:
    text = result.stdout + result.stderr
    good = result.returncode != 0 and all(n in text for n in needles)
    return check(name, good, f"exit {result.returncode}, wanted {needles} in:\n{text[-2000:]}")


def python_for(short: str, full: str) -> str | None:
    """An interpreter of that version: python3.X on PATH (the checkout's .venv left out)
    with pyenv's version named."""
    search = os.pathsep.join(
        p for p in os.environ.get("PATH", "").split(os.pathsep)
        if p and not any(os.path.realpath(p).startswith(f) for f in forbidden_prefixes())
    )
    exe = shutil.which(f"python{short}", path=search)
    if exe is None:
        return None
    env = dict(os.environ, PYENV_VERSION=full)
    probe = subprocess.run([exe, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                           env=env, capture_output=True, text=True)
    if probe.returncode != 0 or probe.stdout.strip() != short:
        env.pop("PYENV_VERSION")
        probe = subprocess.run([exe, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                               env=env, capture_output=True, text=True)
        if probe.returncode != 0 or probe.stdout.strip() != short:
            return None
    probe = subprocess.run([exe, "-c", "import sys; print(sys.executable)"], env=env,
                           capture_output=True, text=True)
    real = probe.stdout.strip()
    return real or None


def torch_layer(runner: Runner, exe: str, short: str) -> Path | None:
    """torch 2.11.0 (with numpy, nibabel) installed from PyPI, through pip's cache, into a
    folder outside the checkout, once per Python version: a fresh venv sees it through a
    .pth file, so pip finds torch==2.11.0 satisfied and installs only the wheel (a full
    torch install takes minutes on 2 cores). BRAINSAM_PACKAGE_TEST_CACHE moves it."""
    cache = Path(os.environ.get("BRAINSAM_PACKAGE_TEST_CACHE")
                 or Path.home() / ".cache" / "brainsam-package-test")
    layer = cache / f"torch-{TORCH_VERSION}-py{short}"
    if (layer / ".complete").is_file():
        return layer
    shutil.rmtree(layer, ignore_errors=True)
    started = time.time()
    result = runner.run([exe, "-m", "pip", "install", "-q", "--target", layer,
                         f"torch=={TORCH_VERSION}", "numpy", "nibabel>=5.2"], runner.env())
    if not ok_run(f"Python {short}: torch {TORCH_VERSION} from PyPI into {layer} (first run "
                  f"only, {time.time() - started:.0f} s)", result):
        return None
    (layer / ".complete").write_text("")
    return layer


def fake_torch(folder: Path, version: str, cuda: bool) -> Path:
    """A folder that looks like a torch package of `version` (files only, never loaded)."""
    (folder / "lib").mkdir(parents=True)
    (folder / "version.py").write_text(f"__version__ = '{version}'\n")
    (folder / "lib" / "libtorch_cpu.so").write_bytes(b"")
    if cuda:
        (folder / "lib" / "libtorch_cuda.so").write_bytes(b"")
    return folder


def shipped_elves(folder: Path) -> list[Path]:
    elves = []
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            with open(path, "rb") as handle:
                if handle.read(4) == b"\x7fELF":
                    elves.append(path)
    return elves


def check_run_paths(where: str, elves: list[Path]) -> None:
    bad = []
    for elf in elves:
        out = subprocess.run(["readelf", "-d", str(elf)], capture_output=True, text=True).stdout
        for entry in re.findall(r"\((?:RPATH|RUNPATH)\)\s+Library r\w*path: \[(.*)\]", out):
            for item in entry.split(":"):
                if not item.startswith("$ORIGIN"):
                    bad.append(f"{elf.name}: {item}")
        if str(ROOT) in out:
            bad.append(f"{elf.name} names {ROOT}")
    check(f"readelf -d: {len(elves)} ELF files in {where} have only $ORIGIN run paths",
          bool(elves) and not bad, "; ".join(bad))


COMPARE = r"""# compare with the reference labels
import sys, numpy as np, nibabel, brainsam
volume, reference = sys.argv[1], sys.argv[2]
labels = brainsam.segment(volume, mirror_averaging=False, shift_averaging=False)
expected = np.asarray(nibabel.load(reference).dataobj)
assert labels.shape == expected.shape, (labels.shape, expected.shape)
same = np.array_equal(labels, expected)
found = sorted(int(v) for v in np.unique(labels))
info = brainsam.load_library().runtime_info()
print("python", sys.version.split()[0], "labels", found, "identical", same,
      "libtorch", info["libtorch_version"], "library", brainsam.load_library().path)
assert brainsam.STRUCTURES[1] == "Left-Thalamus"
sys.exit(0 if same and len(found) == 13 else 3)
"""

CLEAR_ERROR = r"""# expect a clear error
import brainsam
try:
    brainsam.load_library()
except brainsam.BrainSAMError as error:
    print(error)
    raise SystemExit(1)
print("loaded without error")
"""


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dist", type=Path, required=True)
    parser.add_argument("--reference-cli", type=Path, required=True)
    args = parser.parse_args()
    require_all = os.environ.get("BRAINSAM_REQUIRE_ALL") == "1"
    data = os.environ.get("BRAINSAM_DATA")
    args.dist = args.dist.resolve()
    tarball = next(iter(sorted(args.dist.glob("brainsam-*-linux-x86_64.tar.gz"))), None)
    wheel = next(iter(sorted(args.dist.glob("brainsam-*.whl"))), None)
    if tarball is None or wheel is None:
        check(f"packages present in {args.dist}", False, "run scripts/package first")
        return 1
    started = time.time()
    scratch = Path(tempfile.mkdtemp(prefix="brainsam-package-test-"))
    for sub in ("home", "tmp"):
        (scratch / sub).mkdir()
    runner = Runner(scratch)
    try:
        run_all(runner, scratch, tarball, wheel, args.reference_cli.resolve(), data, require_all)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"package tests: {len(failures)} failed, {len(skips)} skipped, "
          f"{time.time() - started:.0f} s")
    if require_all and skips:
        print("FAILED: BRAINSAM_REQUIRE_ALL=1 and checks were skipped")
        return 1
    return 1 if failures else 0


def run_all(runner: Runner, scratch: Path, tarball: Path, wheel: Path, reference_cli: Path,
            data: str | None, require_all: bool) -> None:
    # A real T1 small enough to segment nine times in seconds (86^3 voxels of 3 mm).
    volume = Path(data) / REAL_VOLUME if data else None
    if volume is None or not volume.is_file():
        skip("segmenting a real volume", f"BRAINSAM_DATA unset or without {REAL_VOLUME}")
        volume = None
    reference = scratch / "reference.nii"
    if volume is not None:
        # The build tree's own CLI (same cargo profile as the package), run in place.
        result = subprocess.run([reference_cli, "segment", "--input", volume, "--output",
                                 reference, *SEGMENT_FLAGS], capture_output=True, text=True)
        ok_run(f"reference labels from {reference_cli}", result)

    # -- (c) wheels: fresh venv per Python ----------------------------------------------
    venvs: dict[str, Path] = {}
    torch_dir = None
    for short, full in PYTHONS:
        exe = python_for(short, full)
        if exe is None:
            skip(f"Python {short} wheel", f"python{short} not found")
            continue
        venv = scratch / f"venv{short}"
        subprocess.run([exe, "-m", "venv", venv], check=True)
        if short != "3.9":
            layer = torch_layer(runner, exe, short)
            if layer is None:
                continue
            site = next(iter(glob.glob(str(venv / "lib/python*/site-packages"))))
            Path(site, "brainsam_test_torch_layer.pth").write_text(f"{layer}\n")
        started = time.time()
        result = runner.run([venv / "bin/python", "-m", "pip", "install", "-q", wheel],
                            runner.env(path_first=[str(venv / "bin")]))
        if not ok_run(f"Python {short}: pip install {wheel.name} into a fresh venv "
                      f"({time.time() - started:.0f} s)", result):
            continue
        venvs[short] = venv
        if torch_dir is None and short != "3.9":
            torch_dir = layer / "torch"
    if torch_dir is None:
        check("a fresh venv with torch 2.11.0 from PyPI", False, "no Python >= 3.10 venv")
        return
    print(f"    libtorch under test: {torch_dir}")
    for elf_venv in venvs.values():
        site = next(iter(glob.glob(str(elf_venv / "lib/python*/site-packages/brainsam"))))
        check_run_paths(f"the wheel installed in {elf_venv.name}", shipped_elves(Path(site)))

    for short, venv in venvs.items():
        extra = {"BRAINSAM_TORCH_DIR": str(torch_dir)} if short == "3.9" else {}
        env = runner.env(extra, path_first=[str(venv / "bin")])
        if volume is not None:
            result = runner.run([venv / "bin/python", "-c", COMPARE, volume, reference], env,
                                trace=True)
            ok_run(f"Python {short}: brainsam.segment(real volume) == reference CLI labels",
                   result)
            print("    " + result.stdout.strip())
            # No dot in the name: the CLI writes "a.b.nii" as "a.nii" (reported, not ours).
            out = scratch / f"cli{short.replace('.', '')}.nii"
            result = runner.run([venv / "bin/brainsam", "segment", "--input", volume,
                                 "--output", out, *SEGMENT_FLAGS], env, trace=True)
            if ok_run(f"Python {short}: console command `brainsam segment`", result):
                check(f"Python {short}: console command labels == reference CLI labels",
                      out.read_bytes() == reference.read_bytes())
        result = runner.run([venv / "bin/brainsam", "info"], env, trace=True)
        ok_run(f"Python {short}: `brainsam info`", result, "libtorch 2.11.0")

    # -- (d) missing / wrong / CPU-only torch --------------------------------------------
    wrong = fake_torch(scratch / "torch-2.10", "2.10.0+cu128", cuda=True)
    cpu_only = fake_torch(scratch / "torch-cpu", "2.11.0+cpu", cuda=False)
    no_torch_venv = venvs.get("3.9")
    if no_torch_venv is not None:
        # Python 3.9 venv: no torch of its own, and no python3 with torch on PATH.
        env = runner.env({"BRAINSAM_PYTHON": str(no_torch_venv / "bin/python")},
                         path_first=[str(no_torch_venv / "bin")])
        error_run("Python 3.9, no torch anywhere: clear error",
                  runner.run([no_torch_venv / "bin/python", "-c", CLEAR_ERROR], env),
                  "needs libtorch 2.11.0", "BRAINSAM_TORCH_DIR", "PyPI has no torch 2.11.0")
        error_run("console command, no torch: clear error",
                  runner.run([no_torch_venv / "bin/brainsam", "info"], env),
                  "needs libtorch 2.11.0")
    else:
        skip("missing-torch error in Python", "no Python 3.9 venv")
    some_venv = next(iter(venvs.values()))
    for label, fake, needle in [("wrong torch 2.10", wrong, "has torch 2.10.0+cu128"),
                                ("CPU-only torch", cpu_only, "CPU-only torch 2.11.0+cpu")]:
        env = runner.env({"BRAINSAM_TORCH_DIR": str(fake)}, path_first=[str(some_venv / "bin")])
        error_run(f"Python, {label}: clear error",
                  runner.run([some_venv / "bin/python", "-c", CLEAR_ERROR], env), needle)
        error_run(f"console command, {label}: clear error",
                  runner.run([some_venv / "bin/brainsam", "info"], env), needle)

    # -- (a) the tarball, unpacked into a fresh folder -----------------------------------
    unpack = scratch / "unpacked"
    unpack.mkdir()
    subprocess.run(["tar", "-xzf", tarball, "-C", unpack], check=True)
    prefix = next(unpack.iterdir())
    check_run_paths("the tarball", shipped_elves(prefix))
    for expected in ["lib/libbrainsam.so", "include/brainsam.h", "include/brainsam.hpp",
                     "lib/cmake/BrainSAM/BrainSAMConfig.cmake",
                     "lib/cmake/BrainSAM/BrainSAMConfigVersion.cmake",
                     "lib/pkgconfig/brainsam.pc", "lib/pkgconfig/brainsam-cxx.pc",
                     "share/brainsam/cxx/cxx_bridge.rs.cc", "share/brainsam/cxx/cxx.cc",
                     "share/brainsam/models/brainsam-default.safetensors",
                     "share/brainsam/models/README.md", "bin/brainsam",
                     "share/licenses/brainsam/LICENSE",
                     "share/licenses/brainsam/THIRD-PARTY-LICENSES.txt"]:
        if not (prefix / expected).is_file():
            check(f"tarball has {expected}", False)
    stray = sorted(str(p.relative_to(prefix)) for p in (prefix / "include").rglob("*.cc"))
    check(f"tarball's include/ holds headers only (compile inputs: {stray or 'none'})", not stray)
    model = prefix / "share/brainsam/models/brainsam-default.safetensors"
    # Sources of the examples, copied out of the checkout (same relative layout).
    src = scratch / "src"
    for part in ("examples", "tests/c", "tests/cmake_consumer"):
        shutil.copytree(ROOT / part, src / part)
    torch_env = {"BRAINSAM_TORCH_DIR": str(torch_dir)}
    env = runner.env(torch_env)

    result = runner.run([prefix / "bin/brainsam", "info"], env, trace=True)
    ok_run("tarball: bin/brainsam info (launcher finds torch via BRAINSAM_TORCH_DIR)", result,
           "libtorch 2.11.0")
    env_py = runner.env(path_first=[str(venvs[next(k for k in venvs if k != "3.9")] / "bin")])
    result = runner.run([prefix / "bin/brainsam", "info"], env_py, trace=True)
    ok_run("tarball: bin/brainsam info (launcher finds python3's torch)", result,
           "libtorch 2.11.0")
    if volume is not None:
        out = scratch / "tarball-cli.nii"
        result = runner.run([prefix / "bin/brainsam", "segment", "--input", volume, "--output",
                             out, *SEGMENT_FLAGS], env, trace=True)
        if ok_run("tarball: bin/brainsam segment (real volume, bundled default model)", result):
            check("tarball: CLI labels == reference CLI labels",
                  out.read_bytes() == reference.read_bytes())
    for label, fake, needle in [("no torch", None, "found none"),
                                ("wrong torch 2.10", wrong, "has torch 2.10.0+cu128"),
                                ("CPU-only torch", cpu_only, "CPU-only")]:
        bad_env = runner.env({"BRAINSAM_TORCH_DIR": str(fake)} if fake else {})
        error_run(f"tarball launcher, {label}: clear error",
                  runner.run([prefix / "bin/brainsam", "info"], bad_env), needle)

    # The C/C++ examples and the ITK app run a tiny random model made by the packaged CLI:
    # they show the API works from the package (the default model's labels are compared
    # above); the default model takes minutes per example in the debug build on 2 cores.
    tiny = scratch / "tiny.safetensors"
    ok_run("tarball: bin/brainsam init-model (tiny)", runner.run(
        [prefix / "bin/brainsam", "init-model", "--config", "tiny", "--out", tiny], env))
    model = tiny

    # pkg-config: C example, and the C++ example with brainsam-cxx.
    torch_lib = runner.run([prefix / "bin/brainsam-torch"], env).stdout.strip()
    pc_env = dict(env, PKG_CONFIG_PATH=str(prefix / "lib/pkgconfig"))

    def pkg_config(*args: str) -> list[str]:
        result = runner.run(["pkg-config", f"--define-variable=torch_libdir={torch_lib}", *args],
                            pc_env)
        check(f"pkg-config {' '.join(args)}", result.returncode == 0, result.stderr)
        return result.stdout.split()

    c_exe = scratch / "example_c_pkgconfig"
    result = runner.run(["cc", "-std=c11", "-Wall", "-Werror", src / "examples/c/segment.c",
                         *pkg_config("--cflags", "--libs", "brainsam"), "-o", c_exe], env)
    if ok_run("tarball: C example builds with pkg-config", result):
        ok_run("tarball: C example (pkg-config) runs", runner.run([c_exe, model], env,
                                                                   trace=True), "example c: ok")
    cxx_exe = scratch / "example_cpp_pkgconfig"
    glue = pkg_config("--variable=glue_sources", "brainsam-cxx")
    result = runner.run(["c++", "-std=c++17", src / "examples/cpp/segment.cpp", *glue,
                         *pkg_config("--cflags", "--libs", "brainsam-cxx"), "-o", cxx_exe], env)
    if ok_run("tarball: C++ example builds with pkg-config", result):
        ok_run("tarball: C++ example (pkg-config) runs", runner.run([cxx_exe, model], env,
                                                                     trace=True), "example c++: ok")

    # CMake: find_package(BrainSAM) from the unpacked prefix.
    build = scratch / "cmake-build"
    result = runner.run(["cmake", "-S", src / "tests/cmake_consumer", "-B", build,
                         f"-DCMAKE_PREFIX_PATH={prefix}", "-DCMAKE_BUILD_TYPE=Release"], env)
    if ok_run("tarball: CMake find_package(BrainSAM) configures", result):
        # The README's examples only (the other consumers add compile time, not coverage).
        result = runner.run(["cmake", "--build", build, "--parallel", "2", "--target",
                             "example_c", "example_cpp"], env)
        if ok_run("tarball: CMake builds the C and C++ examples", result):
            for exe, expect in [("example_c", "example c: ok"), ("example_cpp", "example c++: ok")]:
                ok_run(f"tarball: CMake {exe} runs",
                       runner.run([build / exe, model], env, trace=True), expect)
    for label, fake, needle in [("wrong torch 2.10", wrong, "has torch 2.10.0+cu128"),
                                ("CPU-only torch", cpu_only, "CPU-only")]:
        result = runner.run(["cmake", "-S", src / "tests/cmake_consumer", "-B",
                             scratch / f"cmake-bad-{fake.name}", f"-DCMAKE_PREFIX_PATH={prefix}"],
                            runner.env({"BRAINSAM_TORCH_DIR": str(fake)}))
        error_run(f"tarball: CMake with {label}: clear error", result, needle)

    # The ITK application against the unpacked package, on the real volume.
    itk = glob.glob("/usr/lib/cmake/ITK-*/ITKConfig.cmake") + glob.glob(
        "/usr/lib/x86_64-linux-gnu/cmake/ITK-*/ITKConfig.cmake")
    if not itk:
        skip("ITK application", "ITK not installed (Debian: libinsighttoolkit5-dev)")
    elif volume is None:
        skip("ITK application", "no real volume")
    else:
        itk_build = scratch / "itk-build"
        result = runner.run(["cmake", "-S", src / "examples/itk", "-B", itk_build,
                             f"-DCMAKE_PREFIX_PATH={prefix}", "-DCMAKE_BUILD_TYPE=Release"], env)
        if ok_run("tarball: ITK application configures", result):
            result = runner.run(["cmake", "--build", itk_build, "--parallel", "2"], env)
            if ok_run("tarball: ITK application builds", result):
                # A tiny random model made by the packaged CLI keeps this run short (the
                # app segments with all averaged views); the labels are checked above.
                out = scratch / "itk-labels.nii.gz"
                result = runner.run([itk_build / "brainsam_itk", volume, out, tiny, "cpu"], env,
                                    trace=True)
                ok_run("tarball: ITK application segments the real volume", result)
                check("tarball: ITK application wrote labels", out.is_file() and
                      out.stat().st_size > 1000)


if __name__ == "__main__":
    sys.exit(main())
