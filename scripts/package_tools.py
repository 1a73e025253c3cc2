"""Helpers of scripts/package (standard library only): the third-party licence file, the
platform tag, and the Python wheel (a plain platform wheel: the binding is ctypes, so one
wheel serves every Python >= 3.9; see README "Install").

    package_tools.py licenses OUT_FILE
    package_tools.py wheel --out DIR --version V --libtorch-version V --links-torch-cuda 0|1
                           --library LIB --cli BIN --model-dir DIR --licenses DIR
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def runtime_crates() -> list[dict]:
    """The crates linked into the shipped binaries: the normal (not build or dev)
    dependencies of the workspace's packages (the library and the CLI) on x86_64 Linux,
    transitively."""
    metadata = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--locked", "--offline",
             "--filter-platform", "x86_64-unknown-linux-gnu"],
            cwd=ROOT, check=True, capture_output=True, text=True,
        ).stdout
    )
    packages = {p["id"]: p for p in metadata["packages"]}
    nodes = {n["id"]: n for n in metadata["resolve"]["nodes"]}
    members = set(metadata["workspace_members"])
    seen, queue = set(members), list(members)
    while queue:
        node = nodes[queue.pop()]
        for dep in node["deps"]:
            if any(kind["kind"] is None for kind in dep["dep_kinds"]) and dep["pkg"] not in seen:
                seen.add(dep["pkg"])
                queue.append(dep["pkg"])
    seen -= members
    return sorted((packages[i] for i in seen), key=lambda p: (p["name"], p["version"]))


def write_licenses(out: Path) -> None:
    """One text file: each linked crate's name, version, licence expression and licence
    texts (the LICENSE*/COPYING* files it ships)."""
    parts = [
        "Third-party software linked into libbrainsam.so and the brainsam CLI (Rust crates).\n"
        "libtorch is not included: it comes from the torch you install (BSD-3-Clause).\n"
    ]
    for package in runtime_crates():
        folder = Path(package["manifest_path"]).parent
        texts = sorted(
            p for p in folder.iterdir()
            if p.is_file() and re.match(r"(?i)^(licen[cs]e|copying|notice)", p.name)
        )
        parts.append("=" * 78)
        parts.append(f"{package['name']} {package['version']}: {package.get('license') or 'see files'}")
        for text in texts:
            parts.append(f"--- {text.name}")
            parts.append(text.read_text(errors="replace").rstrip())
    out.write_text("\n".join(parts) + "\n")


def glibc_floor(*elves: Path) -> tuple[int, int]:
    """The newest GLIBC symbol version the ELF files need."""
    newest = (2, 17)
    for elf in elves:
        out = subprocess.run(["objdump", "-T", str(elf)], check=True, capture_output=True,
                             text=True).stdout
        for major, minor in re.findall(r"GLIBC_(\d+)\.(\d+)", out):
            newest = max(newest, (int(major), int(minor)))
    return newest


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def build_wheel(args: argparse.Namespace) -> Path:
    """Writes brainsam-VERSION-py3-none-manylinux_2_N_x86_64.whl into args.out."""
    major, minor = glibc_floor(args.library, args.cli)
    platform = f"manylinux_{major}_{minor}_x86_64"
    name = f"brainsam-{args.version}-py3-none-{platform}.whl"
    dist_info = f"brainsam-{args.version}.dist-info"
    package = ROOT / "python" / "brainsam"
    files: list[tuple[str, bytes, int]] = []
    for source in sorted(package.glob("*.py")):
        files.append((f"brainsam/{source.name}", source.read_bytes(), 0o644))
    files.append(("brainsam/lib/libbrainsam.so", args.library.read_bytes(), 0o755))
    files.append(("brainsam/bin/brainsam", args.cli.read_bytes(), 0o755))
    for model_file in ("brainsam-default.safetensors", "README.md"):
        files.append((f"brainsam/models/{model_file}",
                      (args.model_dir / model_file).read_bytes(), 0o644))
    build = {
        "version": args.version,
        "libtorch_version": args.libtorch_version,
        "links_torch_cuda": bool(int(args.links_torch_cuda)),
    }
    files.append(("brainsam/_build.json", (json.dumps(build, indent=1) + "\n").encode(), 0o644))
    readme = (ROOT / "python" / "README.md").read_text()
    metadata = "\n".join([
        "Metadata-Version: 2.1",
        "Name: brainsam",
        f"Version: {args.version}",
        "Summary: Subcortical brain MRI segmentation (12 structures) with SAM adapted by LoRA",
        "License: Apache-2.0",
        "Requires-Python: >=3.9",
        "Requires-Dist: numpy>=1.21",
        "Requires-Dist: nibabel>=5.2",
        # PyPI has no torch 2.11 for Python 3.9; there libtorch comes from
        # BRAINSAM_TORCH_DIR or another Python's torch (brainsam/_runtime.py).
        f'Requires-Dist: torch=={args.libtorch_version.split("+")[0]}; python_version >= "3.10"',
        "Description-Content-Type: text/markdown",
        "",
        readme,
    ])
    files.append((f"{dist_info}/METADATA", metadata.encode(), 0o644))
    files.append((f"{dist_info}/WHEEL", (
        "Wheel-Version: 1.0\nGenerator: brainsam scripts/package_tools.py\n"
        f"Root-Is-Purelib: false\nTag: py3-none-{platform}\n").encode(), 0o644))
    files.append((f"{dist_info}/entry_points.txt",
                  b"[console_scripts]\nbrainsam = brainsam.cli:main\n", 0o644))
    for licence in sorted(args.licenses.iterdir()):
        files.append((f"{dist_info}/licenses/{licence.name}", licence.read_bytes(), 0o644))
    record = [f"{path},{_record_hash(data)},{len(data)}" for path, data, _ in files]
    record.append(f"{dist_info}/RECORD,,")
    files.append((f"{dist_info}/RECORD", ("\n".join(record) + "\n").encode(), 0o644))
    args.out.mkdir(parents=True, exist_ok=True)
    wheel = args.out / name
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for path, data, mode in files:
            info = zipfile.ZipInfo(path, date_time=(2026, 1, 1, 0, 0, 0))
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return wheel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    licenses = sub.add_parser("licenses")
    licenses.add_argument("out", type=Path)
    wheel = sub.add_parser("wheel")
    wheel.add_argument("--out", type=Path, required=True)
    wheel.add_argument("--version", required=True)
    wheel.add_argument("--libtorch-version", required=True)
    wheel.add_argument("--links-torch-cuda", required=True)
    wheel.add_argument("--library", type=Path, required=True)
    wheel.add_argument("--cli", type=Path, required=True)
    wheel.add_argument("--model-dir", type=Path, required=True)
    wheel.add_argument("--licenses", type=Path, required=True)
    args = parser.parse_args()
    if args.command == "licenses":
        write_licenses(args.out)
    else:
        print(build_wheel(args))


if __name__ == "__main__":
    sys.exit(main())
